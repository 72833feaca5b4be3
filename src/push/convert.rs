//! A parsed body becomes a group's families: grouping labels override the
//! pushed ones, `instance=""` is added when absent, labels are sorted and
//! rendered, and the body's own consistency is checked (reserved names,
//! timestamps, negative counters, a sample twice).

use super::body::ParsedFamily;
use crate::model::group::{
    Converted, GroupKey, PushedFamily, PushedSample, PUSH_FAILURE_TIME, PUSH_TIME,
};
use crate::vocab::{label_pairs, MetricKind, SELF_PREFIX};
use std::sync::Arc;

fn has_suffixes(kind: MetricKind) -> bool {
    !kind.sample_suffixes().is_empty()
}

fn render_label_pairs<'a>(labels: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Box<str> {
    label_pairs(labels).into_boxed_str()
}

/// The labels that make a sample part of a series rather than the series itself.
fn is_series_label(kind: MetricKind, family: &str, sample: &str, label: &str) -> bool {
    !((kind == MetricKind::Histogram && label == "le" && sample.ends_with("_bucket"))
        || (kind == MetricKind::Summary && label == "quantile" && sample == family))
}

/// The label a sample of this kind carries besides its series' labels: a
/// histogram bucket's `le`, a summary quantile's `quantile`.
fn bound_label(kind: MetricKind) -> Option<&'static str> {
    match kind {
        MetricKind::Histogram => Some("le"),
        MetricKind::Summary => Some("quantile"),
        _ => None,
    }
}

/// Whether a sample, its labels merged with the grouping labels, fits its
/// family as a scrape reads it (the same rule as
/// [`crate::exposition::check`]): a histogram writes only `_bucket` (with
/// `le`), `_sum` and `_count` (without); a summary its quantiles (with
/// `quantile`), `_sum` and `_count` (without); other kinds the family name
/// only; no label twice. The text parser checks what it can see line by
/// line; this also covers protobuf bodies. Go's text parser instead drops an
/// `le` on `_sum`/`_count` and ignores a bare histogram sample: such bodies
/// are refused here rather than stored other than they were written.
fn fits(
    kind: MetricKind,
    family: &str,
    sample: &str,
    labels: &[(&str, &str)],
) -> Result<(), String> {
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("{sample} has the label {} twice", w[0].0));
    }
    let suffix = sample.strip_prefix(family).unwrap_or(sample);
    let needed = match (kind, suffix) {
        (MetricKind::Histogram, "_bucket") | (MetricKind::Summary, "") => true,
        (MetricKind::Histogram | MetricKind::Summary, "_sum" | "_count") => false,
        (MetricKind::Counter | MetricKind::Gauge | MetricKind::Untyped, "") => return Ok(()),
        _ => {
            let names = match kind {
                MetricKind::Histogram => {
                    format!("{family}_bucket, {family}_sum and {family}_count")
                }
                MetricKind::Summary => format!("{family}, {family}_sum and {family}_count"),
                _ => family.to_owned(),
            };
            return Err(format!(
                "{sample} is not a sample of {} {family} (its samples are {names})",
                kind.type_word()
            ));
        }
    };
    let Some(label) = bound_label(kind) else {
        return Ok(());
    };
    match (needed, labels.iter().any(|(k, _)| *k == label)) {
        (true, false) => Err(format!("{sample} needs a {label} label")),
        (false, true) => Err(format!("{sample} must not have a {label} label")),
        _ => Ok(()),
    }
}

/// Turn parsed families into the group's families: grouping labels override
/// the pushed ones, `instance=""` is added when absent, labels sorted and
/// rendered. Also returns, per family, the rendered label sets of its series
/// (without `le`/`quantile`), to check against StatsD series.
pub fn convert(key: &GroupKey, parsed: &[ParsedFamily<'_>]) -> Result<Vec<Converted>, String> {
    let group_labels: Vec<(&str, &str)> = key.labels().iter().map(|(k, v)| (&**k, &**v)).collect();
    let mut out = Vec::with_capacity(parsed.len());
    for pf in parsed {
        let name = pf.name;
        if name.starts_with(SELF_PREFIX) || name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            return Err(format!(
                "pushed metrics must not use the reserved name {name}"
            ));
        }
        let kind = pf.kind;
        // The grouping labels replace the body's: a grouping `le` would make
        // every bucket the same bucket (or, with one bucket, silently another).
        if let Some(label) = bound_label(kind).filter(|l| key.get(l).is_some()) {
            return Err(format!(
                "{} {name} cannot be pushed under a grouping key with a {label} label",
                kind.type_word()
            ));
        }
        if pf.samples.iter().any(|s| s.timestamp.is_some()) {
            return Err(format!(
                "pushed metrics must not have timestamps ({name} has one)"
            ));
        }
        if kind == MetricKind::Counter && pf.samples.iter().any(|s| s.value < 0.0) {
            return Err(format!("counter {name} has a negative value"));
        }
        // Only histograms and summaries have samples that are not series.
        let mut series: Option<Vec<Box<str>>> = has_suffixes(kind).then(Vec::new);
        let mut samples = Vec::with_capacity(pf.samples.len());
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for s in &pf.samples {
            labels.clear();
            labels.extend(
                s.labels
                    .iter()
                    .filter(|(k, _)| !group_labels.iter().any(|(g, _)| g == k))
                    .map(|(k, v)| (*k, &**v)),
            );
            labels.extend_from_slice(&group_labels);
            if !labels.iter().any(|(k, _)| *k == "instance") {
                labels.push(("instance", ""));
            }
            labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
            fits(kind, name, &s.name, &labels)?;
            if let Some(series) = &mut series {
                series.push(render_label_pairs(
                    labels
                        .iter()
                        .copied()
                        .filter(|(k, _)| is_series_label(kind, name, &s.name, k)),
                ));
            }
            samples.push(PushedSample {
                name: (*s.name).into(),
                labels: render_label_pairs(labels.iter().copied()),
                value: s.value,
            });
        }
        // A sample twice (perhaps only once the grouping labels apply): sorted
        // references, no copies.
        let mut keys: Vec<(&str, &str)> = samples.iter().map(|s| (&*s.name, &*s.labels)).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "sample {}{{{}}} appears twice once the grouping labels are applied",
                w[0].0, w[0].1
            ));
        }
        drop(keys);
        if let Some(series) = &mut series {
            series.sort_unstable();
            series.dedup();
        }
        out.push((
            Arc::new(PushedFamily {
                name: name.into(),
                kind,
                help: pf.help.as_deref().map(Into::into),
                samples,
            }),
            series,
        ));
    }
    Ok(out)
}
