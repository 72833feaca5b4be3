//! `--explain`: what the daemon makes of a StatsD line, without starting it.
//!
//! Owns the text report of one line: for each sample, the rule that decided
//! (cited `FILE:LINE`), the family, its type, the labels and the value, and
//! why the rules before it did not decide. Every fact comes from the code the
//! daemon runs on the same line: the parser, [`Mapper::explain`] (which runs
//! [`Mapper::map`]'s own selection) and ingest's [`family_kind`],
//! [`recorded_value`] and [`observations`], so the report cannot drift from
//! what ingest does.
//!
//! May import: parser, mapper, store, ingest.

use crate::ingest::{family_kind, observations, recorded_value, reserved_label, sample_name};
use crate::mapper::config::{MatchMetricType, MatchType};
use crate::mapper::explain::{Explanation, SkipReason};
use crate::mapper::{MapOutcome, Mapper};
use crate::parser::{self, tags, MetricType, ParseOptions, Sample, Value};
use crate::store::FamilyKind;
use std::fmt::Write;

/// How rules are cited: `{file}:{line}`.
#[derive(Clone, Copy, Debug)]
pub struct Explainer<'a> {
    /// The mapping in force.
    pub mapper: &'a Mapper,
    /// The name rules are cited by (the mapping file as given, or
    /// [`PACK_FILE`] for the built-in pack).
    pub file: &'a str,
    /// The parser's options (the `--statsd.parse-*` flags).
    pub opts: ParseOptions,
}

/// How the built-in Airflow pack's rules are cited: its file in the source
/// tree, `src/mapper/airflow.yml`.
pub const PACK_FILE: &str = "airflow.yml";

/// The report on one line, and whether every sample in it parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Text for a terminal, ending in a newline.
    pub text: String,
    /// False when the line, or one of its samples, does not parse.
    pub parsed: bool,
}

impl Explainer<'_> {
    /// Explain one line (without its newline).
    pub fn line(&self, line: &str) -> Report {
        let mut text = format!("{line}\n");
        let mut parsed = true;
        let samples: Vec<_> = parser::parse_line(line.as_bytes(), self.opts).collect();
        let many = samples.len() > 1;
        for (i, sample) in samples.into_iter().enumerate() {
            if many {
                let _ = writeln!(text, "  sample {}:", i + 1);
            }
            let indent = if many { "    " } else { "  " };
            match sample {
                Ok(s) => self.sample(&s, indent, &mut text),
                Err(e) => {
                    parsed = false;
                    let _ = writeln!(text, "{indent}does not parse: {} ({e})", e.reason());
                }
            }
        }
        Report { text, parsed }
    }

    fn sample(&self, s: &Sample<'_>, indent: &str, out: &mut String) {
        let decoded = tags::decode(s);
        let name = sample_name(s);
        let e = self.mapper.explain(&name, s.metric_type, decoded.labels);
        let _ = writeln!(out, "{indent}{:<8}{}", "rule", self.decision(&e, &name));
        match &e.outcome {
            MapOutcome::Map(m) => {
                let kind = family_kind(s.metric_type, m.observer);
                let reserved = reserved_label(kind);
                let _ = writeln!(
                    out,
                    "{indent}{:<8}{} ({})",
                    "family",
                    m.name,
                    kind_name(kind)
                );
                let labels: Vec<String> = m
                    .labels
                    .iter()
                    .filter(|(k, _)| k != reserved)
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                let shown = if labels.is_empty() {
                    "none".to_owned()
                } else {
                    labels.join(", ")
                };
                let _ = writeln!(out, "{indent}{:<8}{shown}", "labels");
                if m.labels.iter().any(|(k, _)| k == reserved) {
                    let _ = writeln!(
                        out,
                        "{indent}{:<8}tag {reserved:?} skipped: the exposition adds that label",
                        "note"
                    );
                }
                let _ = writeln!(out, "{indent}{:<8}{}", "value", value(s, m.scale));
            }
            MapOutcome::Drop => {}
            MapOutcome::EmptyName => {
                let _ = writeln!(
                    out,
                    "{indent}{:<8}the name expands to nothing: refused (empty_metric_name)",
                    "family"
                );
            }
        }
        if decoded.errors > 0 {
            let _ = writeln!(
                out,
                "{indent}{:<8}{} malformed tag(s) skipped (tag_errors)",
                "note", decoded.errors
            );
        }
        self.skipped(&e, indent, out);
    }

    /// The `rule` line: which rule decided, or that none did.
    fn decision(&self, e: &Explanation, name: &str) -> String {
        let Some(rule) = e.rule else {
            return format!("no rule: escaped name (StatsD name {name:?})");
        };
        let cited = self.cite(rule);
        match e.outcome {
            MapOutcome::Drop => format!("dropped by {cited}"),
            _ => cited,
        }
    }

    /// `FILE:LINE (glob "pattern")`.
    fn cite(&self, rule: usize) -> String {
        let Some(r) = self.mapper.rules().get(rule) else {
            return format!("{}: rule #{}", self.file, rule + 1);
        };
        let at = match r.line {
            Some(line) => format!("{}:{line}", self.file),
            None => format!("{}: mapping #{}", self.file, rule + 1),
        };
        let kind = match r.match_type {
            MatchType::Glob => "glob",
            MatchType::Regex => "regex",
        };
        format!("{at} ({kind} {:?})", r.pattern)
    }

    /// Why the rules before the deciding one did not decide. Globs whose
    /// pattern does not match are only counted; every other reason, and a
    /// regex that does not match, is listed.
    fn skipped(&self, e: &Explanation, indent: &str, out: &mut String) {
        let mut quiet = 0usize;
        let mut listed = Vec::new();
        for s in &e.skipped {
            let is_regex = self
                .mapper
                .rules()
                .get(s.rule)
                .is_some_and(|r| r.match_type == MatchType::Regex);
            if s.reason == SkipReason::NoMatch && !is_regex {
                quiet += 1;
                continue;
            }
            listed.push(format!("{}: {}", self.cite(s.rule), self.reason(s.reason)));
        }
        if listed.is_empty() && quiet == 0 {
            return;
        }
        let _ = writeln!(out, "{indent}not decided by:");
        for l in listed {
            let _ = writeln!(out, "{indent}  {l}");
        }
        if quiet > 0 {
            let _ = writeln!(
                out,
                "{indent}  {quiet} glob rule(s) whose pattern does not match the name"
            );
        }
    }

    fn reason(&self, r: SkipReason) -> String {
        match r {
            SkipReason::NoMatch => "the pattern does not match the name".to_owned(),
            SkipReason::MetricType { rule, sample } => format!(
                "matches, but takes {} samples and this is {}",
                match rule {
                    MatchMetricType::Counter => "only counter (c)",
                    MatchMetricType::Gauge => "only gauge (g, s)",
                    MatchMetricType::Observer => "only observer (ms, h, d)",
                },
                type_name(sample)
            ),
            SkipReason::LessSpecific { winner } => format!(
                "matches, but glob_disable_ordering picks the more specific {}",
                self.cite(winner)
            ),
            SkipReason::RegexAfterGlobs { winner } => format!(
                "matches, but every glob is tried before any regex, and {} matched",
                self.cite(winner)
            ),
            SkipReason::Unexplained => {
                "matches and takes the sample, yet did not decide (a bug: please report it)"
                    .to_owned()
            }
        }
    }
}

fn kind_name(k: FamilyKind) -> &'static str {
    match k {
        FamilyKind::Set => "gauge, of distinct set members",
        _ => k.metric_kind().type_word(),
    }
}

fn type_name(t: MetricType) -> &'static str {
    match t {
        MetricType::Counter => "a counter (c)",
        MetricType::Gauge => "a gauge (g)",
        MetricType::Set => "a set (s)",
        MetricType::Timer => "a timer (ms)",
        MetricType::Histogram => "a histogram (h)",
        MetricType::Distribution => "a distribution (d)",
    }
}

/// What the sample does to its series, as ingest applies it.
fn value(s: &Sample<'_>, scale: Option<f64>) -> String {
    if let Value::Member(m) = s.value {
        return format!(
            "member {:?} added to the set (the gauge counts distinct members)",
            String::from_utf8_lossy(m)
        );
    }
    let v = recorded_value(s) * scale.unwrap_or(1.0);
    let scaled = scale.map_or(String::new(), |k| format!(", scaled by {k}"));
    match s.metric_type {
        MetricType::Counter if v < 0.0 => {
            format!("{v}: refused, a counter cannot decrease (negative_counter)")
        }
        MetricType::Counter if s.sample_rate != 1.0 => {
            format!("{v} added (sent at sample rate {}{scaled})", s.sample_rate)
        }
        MetricType::Counter => format!("{v} added{scaled}"),
        MetricType::Gauge | MetricType::Set if s.relative => {
            format!("{v:+} added to the gauge{scaled}")
        }
        MetricType::Gauge | MetricType::Set => format!("set to {v}{scaled}"),
        MetricType::Timer | MetricType::Histogram | MetricType::Distribution => {
            let unit = if s.metric_type == MetricType::Timer {
                " (ms as seconds)"
            } else {
                ""
            };
            match observations(s.sample_rate) {
                1 => format!("{v} observed{unit}{scaled}"),
                n => format!(
                    "{v} observed {n} times{unit}{scaled} (sample rate {})",
                    s.sample_rate
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
