//! A strict parser of the Prometheus text format (0.0.4), for pushed bodies.
//!
//! It borrows names, HELP text and raw label values from the input and allocates
//! only the vectors it returns (label values with escapes are unescaped into owned
//! strings). It is strict where the Pushgateway is: a sample must belong to the
//! family its `# TYPE` declared, a family must not be split, timestamps are refused
//! (pushed metrics must not carry them), and every problem is an error with its
//! line number. Building block for the Pushgateway-compatible push API.

use std::borrow::Cow;

/// One parsed family.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFamily<'a> {
    /// Family name.
    pub name: &'a str,
    /// `counter`, `gauge`, `summary`, `histogram` or `untyped`.
    pub kind: &'a str,
    /// HELP text, unescaped.
    pub help: Option<Cow<'a, str>>,
    /// Samples: full sample name, labels (unescaped), value.
    pub samples: Vec<ParsedSample<'a>>,
}

/// Label pairs in the order written, values unescaped.
pub type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample<'a> {
    /// The sample name (the family name, or with `_sum`/`_count`/`_bucket`).
    pub name: &'a str,
    /// Label pairs in the order written.
    pub labels: Labels<'a>,
    /// The value.
    pub value: f64,
}

/// A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Go's `ParseFloat` accepts these spellings of the special values.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            let v: f64 = s.parse().ok()?;
            v.is_finite().then_some(v)
        }
    }
}

fn unescape(s: &str, quote: bool) -> Result<Cow<'_, str>, String> {
    if !s.contains('\\') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            other => {
                return Err(format!(
                    "invalid escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// Parse `{k="v",...}` at the start of `s`; returns the labels and the rest.
fn labels(s: &str) -> Result<(Labels<'_>, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected {")?.trim_start();
    let mut out: Labels<'_> = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let name = rest[..eq].trim();
        if !valid_label(name) || name.starts_with("__") {
            return Err(format!("invalid label name {name:?}"));
        }
        if out.iter().any(|(k, _)| *k == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        // The value ends at the first `"` not escaped by a backslash.
        let bytes = rest.as_bytes();
        let mut i = 0;
        let end = loop {
            match bytes.get(i) {
                None => return Err("unterminated label value".into()),
                Some(b'\\') => i += 2,
                Some(b'"') => break i,
                Some(b'\n') => return Err("newline in a label value".into()),
                Some(_) => i += 1,
            }
        };
        let raw = rest.get(..end).ok_or("unterminated label value")?;
        out.push((name, unescape(raw, true)?));
        rest = rest[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Parse a whole body. Families come out in the order they appear.
pub fn parse(body: &str) -> Result<Vec<ParsedFamily<'_>>, String> {
    let mut families: Vec<ParsedFamily<'_>> = Vec::new();
    let mut pending_help: Option<(&str, Cow<'_, str>)> = None;
    for (n, line) in body.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}", n + 1);
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(h) = rest.strip_prefix("HELP ") {
                let (name, text) = h.split_once(' ').unwrap_or((h, ""));
                if !valid_name(name) {
                    return Err(at(format!("invalid metric name {name:?} in HELP")));
                }
                pending_help = Some((name, unescape(text, false).map_err(at)?));
            } else if let Some(t) = rest.strip_prefix("TYPE ") {
                let mut parts = t.split_whitespace();
                let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if !valid_name(name) {
                    return Err(at(format!("invalid metric name {name:?} in TYPE")));
                }
                if !matches!(
                    kind,
                    "counter" | "gauge" | "summary" | "histogram" | "untyped"
                ) {
                    return Err(at(format!("unknown metric type {kind:?}")));
                }
                if families.iter().any(|f| f.name == name) {
                    return Err(at(format!("second TYPE line for {name}")));
                }
                let help = match pending_help.take() {
                    Some((h, text)) if h == name => Some(text),
                    _ => None,
                };
                families.push(ParsedFamily {
                    name,
                    kind,
                    help,
                    samples: Vec::new(),
                });
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(at(format!("invalid metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| at("a sample without a value".into()))?;
        let value = parse_value(value).ok_or_else(|| at(format!("invalid value {value:?}")))?;
        if fields.next().is_some() {
            return Err(at("pushed metrics must not have timestamps".into()));
        }
        // The family: the last declared one this sample belongs to, else untyped.
        let belongs = |f: &ParsedFamily<'_>| {
            name == f.name
                || match f.kind {
                    "summary" => {
                        name.strip_suffix("_sum")
                            .or_else(|| name.strip_suffix("_count"))
                            == Some(f.name)
                    }
                    "histogram" => {
                        name.strip_suffix("_sum")
                            .or_else(|| name.strip_suffix("_count"))
                            .or_else(|| name.strip_suffix("_bucket"))
                            == Some(f.name)
                    }
                    _ => false,
                }
        };
        let idx = match families.iter().position(belongs) {
            Some(i) if i + 1 == families.len() => i,
            Some(_) => return Err(at(format!("samples of {name} are not together"))),
            None => {
                families.push(ParsedFamily {
                    name,
                    kind: "untyped",
                    help: None,
                    samples: Vec::new(),
                });
                families.len() - 1
            }
        };
        let fam = &mut families[idx];
        let has = |k: &str| labels.iter().any(|(l, _)| *l == k);
        match fam.kind {
            "histogram" if name.ends_with("_bucket") && !has("le") => {
                return Err(at("a histogram bucket without le".into()))
            }
            "summary" if name == fam.name && !has("quantile") => {
                return Err(at("a summary sample without quantile".into()))
            }
            "counter" if value < 0.0 => return Err(at("a negative counter".into())),
            _ => {}
        }
        if fam
            .samples
            .iter()
            .any(|s| s.name == name && s.labels == labels)
        {
            return Err(at(format!("duplicate sample {name}")));
        }
        fam.samples.push(ParsedSample {
            name,
            labels,
            value,
        });
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captured_python_client_body() {
        let body = "# HELP job_last_success_unixtime Last time a batch job successfully finished\n\
                    # TYPE job_last_success_unixtime gauge\n\
                    job_last_success_unixtime 1.7000000005e+09\n";
        let f = parse(body).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "job_last_success_unixtime");
        assert_eq!(f[0].kind, "gauge");
        assert_eq!(
            f[0].help.as_deref(),
            Some("Last time a batch job successfully finished")
        );
        assert_eq!(f[0].samples[0].value, 1.7000000005e9);
    }

    #[test]
    fn kinds_labels_and_escapes() {
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4.5\nh_count 3\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 0\ns_count 0\n\
                    x{a=\"q\\\"\\\\\\n\",b=\"}\"} -Inf\n";
        let f = parse(body).unwrap();
        assert_eq!(
            f.iter()
                .map(|f| (f.name, f.kind, f.samples.len()))
                .collect::<Vec<_>>(),
            vec![
                ("h", "histogram", 4),
                ("s", "summary", 3),
                ("x", "untyped", 1)
            ]
        );
        assert_eq!(f[2].samples[0].labels[0].1, "q\"\\\n");
        assert_eq!(f[2].samples[0].labels[1].1, "}");
    }

    #[test]
    fn strictness() {
        let cases: &[(&str, &str)] = &[
            ("a 1 1700000000\n", "timestamps"),
            ("# TYPE a counter\na -1\n", "negative counter"),
            (
                "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
                "not together",
            ),
            ("# TYPE a counter\n# TYPE a gauge\n", "second TYPE"),
            ("# TYPE h histogram\nh_bucket 1\n", "without le"),
            ("# TYPE s summary\ns 1\n", "without quantile"),
            ("a{b=\"1\",b=\"2\"} 1\n", "duplicate label"),
            ("a{__name__=\"x\"} 1\n", "invalid label name"),
            ("a 1\na 2\n", "duplicate sample"),
            ("a x\n", "invalid value"),
            ("a{b=\"1} 1\n", "unterminated"),
            ("a{b=\"\\x\"} 1\n", "invalid escape"),
            ("1a 1\n", "invalid metric name"),
            ("# TYPE a blob\n", "unknown metric type"),
            ("a\n", "without a value"),
        ];
        for (body, want) in cases {
            let err = parse(body).err().unwrap_or_default();
            assert!(err.contains(want), "{body:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn our_own_page_parses_back() {
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        agg.ingest(b"c:3|c|#k:v\\\"x\ng:-1.5|g\nt:12|ms\ns:m|s\nh.x:1|c");
        let page = agg.render_to_string();
        let f = parse(&page).unwrap();
        let c = f.iter().find(|f| f.name == "c").unwrap();
        assert_eq!(c.samples[0].labels[0].1, "v\\\"x");
        assert_eq!(c.samples[0].value, 3.0);
        assert!(f
            .iter()
            .any(|f| f.name == "t" && f.kind == "summary" && f.samples.len() == 5));
    }
}
