//! The Prometheus text format (0.0.4), rendered into a reused buffer.
//!
//! Families come out sorted by name (promstatsd's own metrics merged in), series
//! sorted by labels; numbers are formatted exactly as client_golang formats them
//! (`strconv.FormatFloat(v, 'g', -1, 64)`), so a page diffs cleanly against
//! statsd_exporter's.

use crate::stats::{self, SelfFamily};
use crate::store::pushed::PushedView;
use crate::store::{Family, Series, SeriesValue, Store};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of OpenMetrics 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4 (statsd_exporter's output, the default).
    #[default]
    Text,
    /// OpenMetrics 1.0.0: counters' samples end in `_total`, `le` and `quantile`
    /// values are canonical (`1.0`), `"` is escaped in HELP, the page ends in `# EOF`.
    OpenMetrics,
}

/// The family name a `# TYPE` line uses: OpenMetrics names a counter family
/// without its `_total` suffix.
fn type_name<'a>(name: &'a str, kind: &str, format: Format) -> &'a str {
    if format == Format::OpenMetrics && kind == "counter" {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

/// The sample-name suffix a counter needs in OpenMetrics.
fn counter_suffix(name: &str, format: Format) -> &'static str {
    if format == Format::OpenMetrics && !name.ends_with("_total") {
        "_total"
    } else {
        ""
    }
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

fn write_help(out: &mut Vec<u8>, name: &str, help: &str, kind: &str, format: Format) {
    let name = type_name(name, kind, format);
    // A pushed family may have no HELP; StatsD families always have one.
    if !help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        for c in help.bytes() {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'"' if format == Format::OpenMetrics => out.extend_from_slice(b"\\\""),
                c => out.push(c),
            }
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    // OpenMetrics calls an untyped family `unknown` (a pushed body may have one).
    let kind = match kind {
        "untyped" if format == Format::OpenMetrics => "unknown",
        k => k,
    };
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
}

/// Write `name[suffix]{labels[,extra="value"]} value\n`.
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &str,
    extra: Option<(&str, f64)>,
    v: f64,
    format: Format,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() || extra.is_some() {
        out.push(b'{');
        out.extend_from_slice(labels.as_bytes());
        if let Some((k, ev)) = extra {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            let start = out.len();
            write_float(out, ev);
            // OpenMetrics' canonical form of an integral `le`/`quantile`: `1.0`.
            if format == Format::OpenMetrics
                && out[start..]
                    .iter()
                    .all(|c| c.is_ascii_digit() || *c == b'-')
            {
                out.extend_from_slice(b".0");
            }
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
    write_float(out, v);
    out.push(b'\n');
}

fn write_series(out: &mut Vec<u8>, s: &Series, now: u64, scratch: &mut Vec<f64>, format: Format) {
    let f = s.family();
    let name = &*f.name;
    let labels = s.labels();
    match s.value() {
        SeriesValue::Counter(c) => {
            let suffix = counter_suffix(name, format);
            write_sample(out, name, suffix, labels, None, c.load(), format)
        }
        SeriesValue::Gauge(c) => write_sample(out, name, "", labels, None, c.load(), format),
        SeriesValue::Set(set) => write_sample(out, name, "", labels, None, set.estimate(), format),
        SeriesValue::Summary(m) => {
            let qs = &f.summary().quantiles;
            scratch.clear();
            scratch.resize(qs.len(), 0.0);
            let (sum, count) = {
                let sm = m.lock().unwrap_or_else(PoisonError::into_inner);
                sm.quantiles(f.summary(), now, qs, scratch);
                (sm.sum(), sm.count())
            };
            for (q, v) in qs.iter().zip(scratch.iter()) {
                write_sample(out, name, "", labels, Some(("quantile", *q)), *v, format);
            }
            write_sample(out, name, "_sum", labels, None, sum, format);
            write_sample(out, name, "_count", labels, None, count as f64, format);
        }
        SeriesValue::Histogram { .. } => {
            let Some(h) = s.value().histogram() else {
                return;
            };
            let mut cumulative = 0u64;
            for (i, c) in h.counts().iter().enumerate() {
                // Relaxed: see the store's consistency note.
                cumulative += c.load(Ordering::Relaxed);
                let le = f.buckets().get(i).copied().unwrap_or(f64::INFINITY);
                write_sample(
                    out,
                    name,
                    "_bucket",
                    labels,
                    Some(("le", le)),
                    cumulative as f64,
                    format,
                );
            }
            write_sample(out, name, "_sum", labels, None, h.sum(), format);
            write_sample(out, name, "_count", labels, None, cumulative as f64, format);
        }
    }
}

fn write_self(out: &mut Vec<u8>, f: &SelfFamily, format: Format) {
    write_help(out, f.name, f.help, f.kind, format);
    for (suffix, labels, v) in &f.samples {
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        if f.kind == "counter" {
            out.extend_from_slice(counter_suffix(f.name, format).as_bytes());
        }
        if !labels.is_empty() {
            out.push(b'{');
            for (i, (k, lv)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b"=\"");
                out.extend_from_slice(lv.as_bytes());
                out.push(b'"');
            }
            out.push(b'}');
        }
        out.push(b' ');
        write_float(out, *v);
        out.push(b'\n');
    }
}

/// Render every series and self-metric of `store` into `out` (appending), in the
/// Prometheus text format.
pub fn render(store: &Store, out: &mut Vec<u8>) {
    render_as(store, out, Format::Text);
}

/// Write a pushed family's samples (no HELP/TYPE lines).
fn write_pushed_samples(out: &mut Vec<u8>, v: &PushedView, format: Format) {
    for s in v.parts.iter().flat_map(|p| p.samples.iter()) {
        let suffix = if v.kind == "counter" && *s.name == *v.name {
            counter_suffix(&s.name, format)
        } else {
            ""
        };
        write_sample(out, &s.name, suffix, &s.labels, None, s.value, format);
    }
}

/// Render only promstatsd's own metrics (`/metrics?collect[]=self`).
pub fn render_self(store: &Store, out: &mut Vec<u8>, format: Format) {
    for sf in &stats::collect(store) {
        write_self(out, sf, format);
    }
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}

/// Render the whole page as a `String` (tests, embedding).
pub fn render_to_string(store: &Store) -> String {
    let mut out = Vec::new();
    render(store, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Render in the given format.
///
/// Three sorted streams are merged by family name: the StatsD series, the
/// pushed families and promstatsd's own. A pushed family with the name of a
/// StatsD family (the push API made sure the types agree) is written inside
/// that family's block, after its StatsD series, so no family appears twice.
pub fn render_as(store: &Store, out: &mut Vec<u8>, format: Format) {
    let now = store.clock.tick();
    let own = stats::collect(store);
    let mut own = own.iter().peekable();
    let pushed = store.pushed_view();
    let mut pushed = pushed.iter().peekable();
    // Write every own or pushed family whose name sorts before `name`, in order.
    let mut before = |out: &mut Vec<u8>,
                      own: &mut std::iter::Peekable<std::slice::Iter<'_, SelfFamily>>,
                      name: Option<&str>| loop {
        let below = |n: &str| name.is_none_or(|name| n < name);
        let next_own = own.peek().map(|f| f.name).filter(|n| below(n));
        let next_pushed = pushed.peek().map(|v| &*v.name).filter(|n| below(n));
        let own_first = match (next_own, next_pushed) {
            (None, None) => return pushed.next_if(|v| name.is_some_and(|n| *v.name == *n)),
            (Some(o), Some(p)) => o < p,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if own_first {
            if let Some(sf) = own.next() {
                write_self(out, sf, format);
            }
        } else if let Some(v) = pushed.next() {
            write_help(out, &v.name, &v.help, v.kind, format);
            write_pushed_samples(out, v, format);
        }
    };
    let mut scratch = Vec::new();
    store.with_sorted(|series| {
        let mut current: Option<&Arc<Family>> = None;
        let mut attached: Option<&PushedView> = None;
        for s in series {
            if s.is_retired() {
                continue;
            }
            let f = s.family();
            if !current.is_some_and(|c| Arc::ptr_eq(c, f)) {
                if let Some(v) = attached.take() {
                    write_pushed_samples(out, v, format);
                }
                attached = before(out, &mut own, Some(&f.name));
                write_help(out, &f.name, f.help(), f.kind().prom_type(), format);
                current = Some(f);
            }
            write_series(out, s, now, &mut scratch, format);
        }
        if let Some(v) = attached {
            write_pushed_samples(out, v, format);
        }
    });
    before(out, &mut own, None);
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}

#[cfg(test)]
mod tests {
    use super::write_float;

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
}
