//! A strict checker of the Prometheus text format (0.0.4), for tests and fuzzing.
//!
//! It accepts what promstatsd is meant to produce and rejects anything a
//! Prometheus server or `promtool` would choke on: bad names, bad escapes,
//! unparsable values, a family split in two, a sample outside its family, a
//! duplicate series, `le`/`quantile` labels missing where they belong.

use std::collections::HashSet;

use crate::vocab::{valid_label as valid_label_name, valid_name as valid_metric_name};

fn valid_value(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf")
        || (s.parse::<f64>().is_ok() && !s.contains(['i', 'I', 'n', 'N']))
}

/// Label pairs, unescaped.
type Labels = Vec<(String, String)>;

/// Parse `{k="v",...}`; returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    let mut labels = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next().ok_or("unterminated label value")?;
            match c {
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label value")),
                },
                '"' => break i,
                '\n' => return Err("newline in label value".into()),
                c => value.push(c),
            }
        };
        if labels.iter().any(|(k, _): &(String, String)| k == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Check a whole page. `Ok` with the number of samples, or the first problem with
/// its line number.
pub fn check(page: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(page).map_err(|e| format!("not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    let mut done_families: HashSet<String> = HashSet::new();
    let mut current: Option<(String, String)> = None; // (name, type)
    let mut seen_series: HashSet<String> = HashSet::new();
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_metric_name(name) {
                return Err(at("invalid family name in HELP".into()));
            }
            let help = &rest[name.len()..];
            let mut it = help.chars();
            while let Some(c) = it.next() {
                if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                    return Err(at("bad escape in HELP".into()));
                }
            }
            if done_families.contains(name) {
                return Err(at("family appears twice".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, ty) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_metric_name(name) || parts.next().is_some() {
                return Err(at("malformed TYPE".into()));
            }
            if !matches!(
                ty,
                "counter" | "gauge" | "summary" | "histogram" | "untyped"
            ) {
                return Err(at(format!("unknown type {ty:?}")));
            }
            if let Some((prev, _)) = current.take() {
                done_families.insert(prev);
            }
            if done_families.contains(name) {
                return Err(at("family appears twice".into()));
            }
            current = Some((name.to_owned(), ty.to_owned()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at("unexpected comment or blank line".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("sample without value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at("invalid metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("missing space before the value".into()))?;
        if !valid_value(value) {
            return Err(at(format!("invalid value {value:?}")));
        }
        let Some((family, ty)) = &current else {
            return Err(at("sample before any TYPE".into()));
        };
        let suffix = name
            .strip_prefix(family.as_str())
            .ok_or_else(|| at("sample outside its family".into()))?;
        let has = |k: &str| labels.iter().any(|(l, _)| l == k);
        match (ty.as_str(), suffix) {
            ("counter" | "gauge" | "untyped", "") => {}
            ("summary", "") if has("quantile") => {}
            ("summary", "_sum" | "_count") if !has("quantile") => {}
            ("histogram", "_bucket") if has("le") => {}
            ("histogram", "_sum" | "_count") if !has("le") => {}
            _ => return Err(at(format!("sample does not fit a {ty} family"))),
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        if !seen_series.insert(format!("{name}{key_labels:?}")) {
            return Err(at("duplicate series".into()));
        }
        samples += 1;
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn good_pages_pass() {
        let page = "# HELP a Some \\\\ help \\n x.\n# TYPE a counter\na 1\na{k=\"v \\\" \\\\ \\n\"} 2.5e-05\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 0\ns_count 0\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
        assert_eq!(check(page.as_bytes()), Ok(8));
        assert_eq!(check(b""), Ok(0));
    }

    #[test]
    fn bad_pages_fail() {
        let cases: &[(&str, &str)] = &[
            ("# TYPE a counter\na{k=\"v} 1\n", "unterminated"),
            ("# TYPE a counter\na{k=\"\\x\"} 1\n", "bad escape"),
            ("# TYPE a counter\na 1\na 2\n", "duplicate series"),
            ("# TYPE a counter\nb 1\n", "outside its family"),
            ("a 1\n", "before any TYPE"),
            ("# TYPE a counter\na one\n", "invalid value"),
            (
                "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\n# TYPE a counter\na{x=\"1\"} 1\n",
                "twice",
            ),
            ("# TYPE s summary\ns 1\n", "does not fit"),
            ("# TYPE h histogram\nh_bucket 1\n", "does not fit"),
            ("# TYPE a counter\na{1x=\"1\"} 1\n", "invalid label name"),
            ("# TYPE a counter\na 1", "newline"),
            (
                "# TYPE a counter\na{k=\"1\",k=\"2\"} 1\n",
                "duplicate label",
            ),
        ];
        for (page, want) in cases {
            let err = check(page.as_bytes()).err().unwrap_or_default();
            assert!(
                err.contains(want),
                "{page:?}: {err:?} should mention {want:?}"
            );
        }
    }
}
