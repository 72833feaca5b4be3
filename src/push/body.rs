//! A strict parser of the Prometheus text format (0.0.4), for pushed bodies.
//!
//! It borrows names, HELP text and raw label values from the input and allocates
//! only the vectors it returns (label values with escapes are unescaped into owned
//! strings). It is as strict as the Go parser the Pushgateway uses (and the push
//! is stricter where that parser drops what it cannot place: see
//! `convert::fits`): a sample must
//! belong to the family its `# TYPE` declared, a family must not be split, one
//! HELP and one TYPE per family, `le` and `quantile` must be numbers, and every
//! problem is an error with its line number. What that parser leaves to the
//! Pushgateway's consistency check (timestamps, duplicate samples) is left to
//! the push's check here too ([`crate::store::Store::push`]). Linear in the size
//! of the body. Building block for the Pushgateway-compatible push API.

use crate::vocab::{valid_label, valid_name, MetricKind, SUFFIXES};
use std::borrow::Cow;
use std::collections::HashMap;

/// One parsed family.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFamily<'a> {
    /// Family name.
    pub name: &'a str,
    /// The `# TYPE` (`Untyped` for a family without one).
    pub kind: MetricKind,
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
    pub name: Cow<'a, str>,
    /// Label pairs in the order written.
    pub labels: Labels<'a>,
    /// The value.
    pub value: f64,
    /// A timestamp after the value, in milliseconds (pushes refuse it).
    pub timestamp: Option<i64>,
}

/// Whether a push may use `name` as a label name: a valid one, and not one of
/// the names Prometheus reserves (`__` and up). Both body formats use it.
pub(super) fn valid_pushed_label(name: &str) -> bool {
    valid_label(name) && !name.starts_with("__")
}

/// A HELP text as a `# HELP` line carries it, which is how the page and the
/// persistence file write it: blanks before it are the line's separator and a
/// carriage return at its end the line's end. Both body formats use it, so a
/// HELP reads the same from either and survives a restart.
pub(super) fn help_as_text(help: &str) -> &str {
    help.trim_start_matches([' ', '\t']).trim_end_matches('\r')
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
    // Past a few labels, names are checked for repeats through a set: a line
    // of a million labels must not cost a million squared comparisons.
    let mut names: Option<std::collections::HashSet<&str>> = None;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let name = rest[..eq].trim();
        if !valid_pushed_label(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let repeated = match &mut names {
            Some(set) => !set.insert(name),
            None if out.len() < 16 => out.iter().any(|(k, _)| *k == name),
            None => {
                let mut set: std::collections::HashSet<&str> =
                    out.iter().map(|(k, _)| *k).collect();
                let repeated = !set.insert(name);
                names = Some(set);
                repeated
            }
        };
        if repeated {
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

/// Parse a whole body. Families come out in the order they appear; families
/// declared (`# TYPE`/`# HELP`) without a sample are left out, as the Go
/// parser the Pushgateway uses leaves them out. Linear in the body's size:
/// families are found by name through a map, never by a scan.
///
/// Like that parser it accepts a timestamp after the value (kept in
/// [`ParsedSample::timestamp`]) and does not look for duplicate samples: both
/// are refused later, by the push's consistency check, which also stamps the
/// group's failure time as the Pushgateway does.
pub fn parse(body: &str) -> Result<Vec<ParsedFamily<'_>>, String> {
    let mut p = Parser::default();
    for (n, line) in body.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.strip_prefix('#') {
            Some(rest) => p.comment(rest),
            None => p.sample(line),
        }
        .map_err(|m| format!("line {}: {m}", n + 1))?;
    }
    Ok(p.finish())
}

/// The families read so far, by name, and the HELP texts.
#[derive(Default)]
struct Parser<'a> {
    families: Vec<ParsedFamily<'a>>,
    by_name: HashMap<&'a str, usize>,
    helps: HashMap<&'a str, Cow<'a, str>>,
}

impl<'a> Parser<'a> {
    /// A `#` line (`rest` follows the `#`): HELP, TYPE, or a comment.
    fn comment(&mut self, rest: &'a str) -> Result<(), String> {
        let rest = rest.trim_start_matches([' ', '\t']);
        if let Some(h) = rest.strip_prefix("HELP ") {
            let h = h.trim_start_matches([' ', '\t']);
            let (name, text) = h.split_once([' ', '\t']).unwrap_or((h, ""));
            if !valid_name(name) {
                return Err(format!("invalid metric name {name:?} in HELP"));
            }
            let text = unescape(help_as_text(text), false)?;
            if self.helps.insert(name, text).is_some() {
                return Err(format!("second HELP line for {name}"));
            }
        } else if let Some(t) = rest.strip_prefix("TYPE ") {
            let t = t.trim_start_matches([' ', '\t']);
            let (name, kind) = t.split_once([' ', '\t']).unwrap_or((t, ""));
            let kind = kind.trim_matches([' ', '\t']);
            if !valid_name(name) {
                return Err(format!("invalid metric name {name:?} in TYPE"));
            }
            let Some(kind) = MetricKind::from_type_word(kind) else {
                return Err(format!("unknown metric type {kind:?}"));
            };
            if self.by_name.insert(name, self.families.len()).is_some() {
                return Err(format!(
                    "second TYPE line for {name}, or TYPE after its samples"
                ));
            }
            self.families.push(ParsedFamily {
                name,
                kind,
                help: None,
                samples: Vec::new(),
            });
        }
        Ok(())
    }

    /// A sample line: `name{labels} value [timestamp]`.
    fn sample(&mut self, line: &'a str) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let rest = line[name_end..].trim_start_matches([' ', '\t']);
        let (labels, rest) = if rest.starts_with('{') {
            labels(rest)?
        } else {
            (Vec::new(), rest)
        };
        let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
        let value = fields.next().ok_or("a sample without a value")?;
        let value = parse_value(value).ok_or_else(|| format!("invalid value {value:?}"))?;
        let timestamp = match fields.next() {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| format!("invalid timestamp {t:?}"))?,
            ),
        };
        if let Some(extra) = fields.next() {
            return Err(format!("unexpected {extra:?} after the timestamp"));
        }
        let fam = self.family_of(name)?;
        let label = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| v);
        let bound = |k: &str| -> Result<(), String> {
            match label(k) {
                None => Err(format!("{name} needs a {k} label")),
                Some(v) if parse_value(v).is_none() => Err(format!("{k}={v:?} is not a number")),
                Some(_) => Ok(()),
            }
        };
        match fam.kind {
            MetricKind::Histogram if name.len() > fam.name.len() && name.ends_with("_bucket") => {
                bound("le")?
            }
            MetricKind::Summary if name == fam.name => bound("quantile")?,
            _ => {}
        }
        fam.samples.push(ParsedSample {
            name: Cow::Borrowed(name),
            labels,
            value,
            timestamp,
        });
        Ok(())
    }

    /// The family a sample `name` belongs to: the one named `name`, or one
    /// whose type lets it write `name` as `<family>_sum` (etc.); it must be the
    /// current (last) one. An unknown name starts an untyped family.
    fn family_of(&mut self, name: &'a str) -> Result<&mut ParsedFamily<'a>, String> {
        let exact = self.by_name.get(name).copied();
        let by_suffix = SUFFIXES.iter().find_map(|s| {
            let i = *self.by_name.get(name.strip_suffix(s)?)?;
            self.families[i]
                .kind
                .sample_suffixes()
                .contains(s)
                .then_some(i)
        });
        let last = self.families.len().checked_sub(1);
        let idx = match (exact, by_suffix) {
            (None, None) => {
                self.by_name.insert(name, self.families.len());
                self.families.push(ParsedFamily {
                    name,
                    kind: MetricKind::Untyped,
                    help: None,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
            // Every family it could belong to is the current one.
            (a, b) if a.into_iter().chain(b).all(|i| Some(i) == last) => self.families.len() - 1,
            _ => return Err(format!("samples of {name} are not together")),
        };
        Ok(&mut self.families[idx])
    }

    /// The families with samples, their HELP texts in place.
    fn finish(mut self) -> Vec<ParsedFamily<'a>> {
        for (name, help) in self.helps {
            if let Some(&i) = self.by_name.get(name) {
                self.families[i].help = Some(help);
            }
        }
        self.families.retain(|f| !f.samples.is_empty());
        self.families
    }
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
        assert_eq!(f[0].kind.type_word(), "gauge");
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
                .map(|f| (f.name, f.kind.type_word(), f.samples.len()))
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
            ("a 1 17x\n", "invalid timestamp"),
            ("a 1 1 1\n", "after the timestamp"),
            ("# TYPE a counter junk\n", "unknown metric type"),
            ("# HELP a x\n# HELP a y\n", "second HELP"),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", "not a number"),
            ("# TYPE s summary\ns{quantile=\"\"} 1\n", "not a number"),
            ("a 1\n# TYPE a gauge\n", "TYPE after its samples"),
            (
                "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
                "not together",
            ),
            ("# TYPE a counter\n# TYPE a gauge\n", "second TYPE"),
            ("# TYPE h histogram\nh_bucket 1\n", "needs a le label"),
            ("# TYPE s summary\ns 1\n", "needs a quantile label"),
            ("a{b=\"1\",b=\"2\"} 1\n", "duplicate label"),
            (
                "a{l0=\"\",l1=\"\",l2=\"\",l3=\"\",l4=\"\",l5=\"\",l6=\"\",l7=\"\",l8=\"\",l9=\"\",\
                 l10=\"\",l11=\"\",l12=\"\",l13=\"\",l14=\"\",l15=\"\",l16=\"\",l17=\"\",l3=\"\"} 1\n",
                "duplicate label \"l3\"",
            ),
            ("a{__name__=\"x\"} 1\n", "invalid label name"),
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
    fn help_anywhere_in_its_family_and_empty_families_left_out() {
        let body = "# TYPE a gauge\n# HELP a after the type\na 1\n\
                    # HELP b\tbefore samples, no type\nb{x=\"1\"} 2\n\
                    # HELP c declared only\n# TYPE c counter\n\
                    # HELP d help only\n";
        let f = parse(body).unwrap();
        let got: Vec<_> = f
            .iter()
            .map(|f| (f.name, f.kind.type_word(), f.help.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "gauge", Some("after the type")),
                ("b", "untyped", Some("before samples, no type"))
            ]
        );
    }

    #[test]
    fn what_the_go_parser_accepts() {
        // A blank between the name and its labels, tabs, a timestamp (refused
        // later by the push check, not here), a negative counter, a sample
        // written twice (also the push check's business).
        let f = parse("# TYPE a counter\na {x=\"1\"}\t-2 1700000000000\na{x=\"1\"} 3\n").unwrap();
        assert_eq!(f[0].samples.len(), 2);
        assert_eq!(f[0].samples[0].value, -2.0);
        assert_eq!(f[0].samples[0].timestamp, Some(1_700_000_000_000));
        assert_eq!(f[0].samples[1].timestamp, None);
    }

    /// A slow, obviously quadratic oracle for the family a sample belongs to,
    /// checked against the map-based parser on generated bodies.
    #[test]
    fn family_lookup_matches_a_scan() {
        use proptest::prelude::*;
        let names = ["a", "a_sum", "a_count", "a_bucket", "b", "b_sum"];
        let kinds = ["counter", "summary", "histogram", "untyped"];
        let line = prop_oneof![
            (0..names.len(), 0..kinds.len())
                .prop_map(move |(n, k)| format!("# TYPE {} {}", names[n], kinds[k])),
            (0..names.len(), 0..3u8).prop_map(move |(n, l)| match l {
                0 => format!("{} 1", names[n]),
                1 => format!("{}{{le=\"1\",quantile=\"0.5\"}} 1", names[n]),
                _ => format!("{}{{x=\"{l}\",le=\"2\",quantile=\"1\"}} 1", names[n]),
            }),
        ];
        proptest!(ProptestConfig::with_cases(4000), |(lines in proptest::collection::vec(line, 0..12))| {
            let body = lines.join("\n");
            let oracle = scan_oracle(&body);
            let got = parse(&body).map(|f| {
                f.iter().map(|f| (f.name.to_owned(), f.samples.len())).collect::<Vec<_>>()
            });
            prop_assert_eq!(got.is_ok(), oracle.is_some(), "{}", body);
            if let (Ok(g), Some(o)) = (got, oracle) {
                prop_assert_eq!(g, o, "{}", body);
            }
        });
    }

    /// Families and their sample counts, by scanning every family for every
    /// line; `None` where the parser must refuse (TYPE twice or after samples,
    /// a split family). Only for bodies of `family_lookup_matches_a_scan`.
    fn scan_oracle(body: &str) -> Option<Vec<(String, usize)>> {
        let mut fams: Vec<(String, String, usize)> = Vec::new();
        for l in body.lines() {
            if let Some(t) = l.strip_prefix("# TYPE ") {
                let (n, k) = t.split_once(' ')?;
                if fams.iter().any(|f| f.0 == n) {
                    return None;
                }
                fams.push((n.to_owned(), k.to_owned(), 0));
                continue;
            }
            let name = &l[..l.find(['{', ' '])?];
            let belongs = |f: &(String, String, usize)| {
                f.0 == name
                    || MetricKind::from_type_word(&f.1)
                        .map_or(&[][..], MetricKind::sample_suffixes)
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.0.as_str()))
            };
            let found: Vec<usize> = (0..fams.len()).filter(|&i| belongs(&fams[i])).collect();
            match found.as_slice() {
                [] => fams.push((name.to_owned(), "untyped".to_owned(), 1)),
                all if all.iter().all(|&i| i + 1 == fams.len()) => {
                    let f = fams.last_mut()?;
                    let bare = !l.contains('{');
                    let needs_le = f.1 == "histogram" && name == format!("{}_bucket", f.0);
                    if bare && (needs_le || (f.1 == "summary" && name == f.0)) {
                        return None;
                    }
                    f.2 += 1;
                }
                _ => return None,
            }
        }
        Some(
            fams.into_iter()
                .filter(|f| f.2 > 0)
                .map(|f| (f.0, f.2))
                .collect(),
        )
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
            .any(|f| f.name == "t" && f.kind == MetricKind::Summary && f.samples.len() == 5));
    }
}
