//! Vocabulary: the words every stage shares, and nothing else.
//!
//! Owns: name escaping and validation, the sample suffixes, the reserved
//! self-metric prefix, the one [`MetricKind`] enum, float and label formatting
//! as the exposition formats spell them.
//!
//! May import: nothing from this crate (a leaf).

/// The prefix reserved for promstatsd's own metrics.
pub const SELF_PREFIX: &str = "promstatsd_";

/// Every suffix a sample name may add to its family's name.
pub const SUFFIXES: [&str; 3] = ["_sum", "_count", "_bucket"];

/// What a metric family is, as every exposition format and the push API name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// A monotonic counter.
    Counter,
    /// A gauge.
    Gauge,
    /// Quantiles, `_sum` and `_count`.
    Summary,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
    /// A value of no declared type (only pushed bodies have these).
    Untyped,
}

/// The names a family takes in OpenMetrics: its family name (a counter's
/// without `_total`) and every sample name it may write, `_created` included.
pub fn openmetrics_names(name: &str, kind: MetricKind) -> Vec<String> {
    let with = |base: &str, suffixes: &[&str]| -> Vec<String> {
        std::iter::once(base.to_owned())
            .chain(suffixes.iter().map(|s| format!("{base}{s}")))
            .collect()
    };
    match kind {
        MetricKind::Counter => with(
            name.strip_suffix("_total").unwrap_or(name),
            &["_total", "_created"],
        ),
        MetricKind::Gauge | MetricKind::Untyped => with(name, &[]),
        MetricKind::Summary => with(name, &["_sum", "_count", "_created"]),
        MetricKind::Histogram => with(name, &["_bucket", "_sum", "_count", "_created"]),
    }
}

/// Whether a new family `name` of `kind` would take an OpenMetrics name a
/// family that `lookup` knows takes (`x` and `x_total`, both counters, are one
/// family `x` there; a gauge `y_created` is counter `y`'s creation time).
/// Another family `f` takes a name `n` only if `n` is `f`, `f` plus a sample
/// suffix, or `f` without `_total`; so the candidates are looked up by name.
pub fn openmetrics_clash(
    name: &str,
    kind: MetricKind,
    lookup: impl Fn(&str) -> Option<MetricKind>,
) -> bool {
    const SUFFIXES: [&str; 5] = ["_total", "_created", "_sum", "_count", "_bucket"];
    let mine = openmetrics_names(name, kind);
    let taken_by = |other: &str| {
        other != name
            && lookup(other)
                .is_some_and(|k| openmetrics_names(other, k).iter().any(|n| mine.contains(n)))
    };
    mine.iter().any(|n| {
        taken_by(n)
            || taken_by(&format!("{n}_total"))
            || SUFFIXES
                .iter()
                .filter_map(|s| n.strip_suffix(s))
                .any(|base| taken_by(base) || taken_by(&format!("{base}_total")))
    })
}

impl std::fmt::Display for MetricKind {
    /// The `# TYPE` word.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_word())
    }
}

impl MetricKind {
    /// The word of a text-format `# TYPE` line.
    pub fn type_word(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
            Self::Untyped => "untyped",
        }
    }

    /// The kind a `# TYPE` word names; `None` for any other word.
    pub fn from_type_word(word: &str) -> Option<Self> {
        Some(match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "summary" => Self::Summary,
            "histogram" => Self::Histogram,
            "untyped" => Self::Untyped,
            _ => return None,
        })
    }

    /// The suffixes a sample of a family of this kind may add to the family name.
    pub fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Summary => &["_sum", "_count"],
            Self::Histogram => &["_sum", "_count", "_bucket"],
            _ => &[],
        }
    }
}

/// Escape a name into the Prometheus charset `[a-zA-Z0-9_]` exactly as
/// statsd_exporter does: every other character becomes `_`, a `-` that follows a
/// `-` is dropped (so a run of dashes becomes one `_`), and a leading digit gets a
/// `_` prefix. A multi-byte character becomes a single `_`.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    let mut prev = '\0';
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !(c == '-' && prev == '-') {
            out.push('_');
        }
        prev = c;
    }
    out
}

/// Decode the `%XX` escapes of a URL part; `None` when an escape is broken
/// (`%` not followed by two hex digits) or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let broken = b.iter().enumerate().any(|(i, c)| {
        *c == b'%'
            && !b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if broken {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `k="v",k2="v2"`, allocated once at its exact size when no value needs escapes.
pub fn label_pairs<'a>(labels: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> String {
    let (n, bytes) = labels
        .clone()
        .fold((0, 0), |(n, b), (k, v)| (n + 1, b + k.len() + v.len() + 3));
    let mut out = String::with_capacity(bytes + n.max(1) - 1);
    for (i, (k, v)) in labels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        if v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        } else {
            out.push_str(v);
        }
        out.push('"');
    }
    out
}

/// Append `v` as client_golang does: `NaN`, `+Inf`, `-Inf`, otherwise the
/// shortest representation that round-trips, in `%e` form when the decimal
/// exponent is below -4 or at least 6 (Go's `'g'` with precision -1).
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    if v.fract() == 0.0 && v.abs() < 1e6 {
        // Exact in i64: |v| < 1e6.
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        return;
    }
    let mut rb = ryu::Buffer::new();
    let text = rb.format_finite(v).as_bytes();
    let (neg, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // Split ryu's output into significant digits and a decimal point position:
    // value = 0.DIGITS * 10^dp.
    let (mantissa, exp10) = match text.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&text[..i], parse_exp(&text[i + 1..])),
        None => (text, 0),
    };
    let mut digits = [0u8; 32];
    let mut nd = 0usize;
    let mut dp: i32 = 0;
    let mut seen_point = false;
    let mut leading = true;
    for &c in mantissa {
        if c == b'.' {
            seen_point = true;
            continue;
        }
        if !seen_point {
            dp += 1;
        }
        if leading && c == b'0' {
            dp -= 1;
            continue;
        }
        leading = false;
        if nd < digits.len() {
            digits[nd] = c;
            nd += 1;
        }
    }
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    let dp = dp + exp10;
    let digits = &digits[..nd];
    if neg {
        out.push(b'-');
    }
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        out.push(digits.first().copied().unwrap_or(b'0'));
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
    } else {
        // %f with exactly the significant digits.
        if dp <= 0 {
            out.push(b'0');
        } else {
            for i in 0..dp as usize {
                out.push(digits.get(i).copied().unwrap_or(b'0'));
            }
        }
        let frac = nd as i32 - dp;
        if frac > 0 {
            out.push(b'.');
            for i in dp..nd as i32 {
                out.push(if i < 0 { b'0' } else { digits[i as usize] });
            }
        }
    }
}

fn parse_exp(b: &[u8]) -> i32 {
    let (neg, b) = match b.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, b),
    };
    let mut e: i32 = 0;
    for &c in b {
        e = e
            .saturating_mul(10)
            .saturating_add(i32::from(c.wrapping_sub(b'0')));
    }
    if neg {
        -e
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("a.b", "a_b"),
            ("a.b-c", "a_b_c"),
            ("dagrun.dependency-check", "dagrun_dependency_check"),
            ("a--b", "a_b"),
            ("a---b", "a_b"),
            ("a-_-b", "a___b"),
            ("1abc", "_1abc"),
            ("_ok_", "_ok_"),
            (
                "operator_successes__PythonDecoratedOperator",
                "operator_successes__PythonDecoratedOperator",
            ),
            ("héllo", "h_llo"),
            ("日本", "__"),
            ("-", "_"),
            ("a b", "a_b"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_name(input), *want, "escape_name({input:?})");
        }
    }

    #[test]
    fn floats_as_go_formats_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (5.0, "5"),
            (999_999.0, "999999"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (1.7000000005e9, "1.7000000005e+09"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456.5, "123456.5"),
            (2.5, "2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e20, "1e+20"),
            (-3.25e-10, "-3.25e-10"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            write_float(&mut out, *v);
            assert_eq!(String::from_utf8_lossy(&out), *want, "write_float({v:e})");
        }
    }

    #[test]
    fn type_words_round_trip() {
        for k in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Summary,
            MetricKind::Histogram,
            MetricKind::Untyped,
        ] {
            assert_eq!(MetricKind::from_type_word(k.type_word()), Some(k));
        }
        assert_eq!(MetricKind::from_type_word("unknown"), None);
    }

    #[test]
    fn label_values_escaped_once() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], ""),
            (&[("a", "1")], "a=\"1\""),
            (
                &[("a", "x\"y"), ("b", "c\\d\ne")],
                "a=\"x\\\"y\",b=\"c\\\\d\\ne\"",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(label_pairs(pairs.iter().copied()), *want);
        }
    }
}
