//! The report both status encoders write: one snapshot of the daemon, every
//! list bounded.

use super::history::{self, History};
use super::{Status, TOP_FAMILIES, TOP_UNMAPPED};
use crate::ingest::stats::{IngestStats, ListenerKind};
use crate::mapper::config::{Action, MatchType};
use crate::model::collect::{SelfFamily, SelfValue};
use crate::reload::ReloadStats;
use crate::store::pushed::GroupBrief;
use crate::vocab::MetricKind;
use std::time::{Duration, Instant};

/// The short window of rates.
pub const SHORT: Duration = Duration::from_secs(10);
/// The long window of rates.
pub const LONG: Duration = Duration::from_secs(300);

/// A self-metric series: family name, label pairs, value.
pub type SelfSeries = (&'static str, Vec<(&'static str, String)>, f64);

/// A counter's value and its rates over [`SHORT`] and [`LONG`] (`None` until
/// a second of history exists).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rated {
    /// The total.
    pub total: f64,
    /// Per second over the last 10 s.
    pub per_s_10s: Option<f64>,
    /// Per second over the last 5 min.
    pub per_s_5m: Option<f64>,
}

/// One StatsD listener kind's traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerReport {
    /// `udp`, `tcp`, `unixgram`, `unix`.
    pub name: &'static str,
    /// Packets (stream listeners: reads).
    pub packets: Rated,
    /// Lines.
    pub lines: Rated,
    /// Bytes.
    pub bytes: Rated,
}

/// One self-metric counter series.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterReport {
    /// Family name.
    pub name: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// Value and rates.
    pub value: Rated,
    /// True for an error, refusal or drop counter.
    pub error: bool,
}

/// A family among the largest.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyReport {
    /// Family name.
    pub name: String,
    /// `counter`, `gauge`, `summary`, `histogram`, `set`.
    pub kind: &'static str,
    /// Its series.
    pub series: usize,
    /// Samples a second over the last 10 s (`None`: not followed for a second yet).
    pub samples_per_s: Option<f64>,
}

/// A StatsD name no rule maps.
#[derive(Clone, Debug, PartialEq)]
pub struct UnmappedReport {
    /// The StatsD name as first seen (tags removed).
    pub statsd_name: String,
    /// The family it became (the name escaped).
    pub family: String,
    /// Samples a second (`None`: not followed for a second yet).
    pub samples_per_s: Option<f64>,
}

/// One rule of the mapping in force.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleReport {
    /// 1-based line of its `match:` in the source, when known.
    pub line: Option<usize>,
    /// The `match` text.
    pub pattern: String,
    /// `glob` or `regex`.
    pub match_type: &'static str,
    /// `map` or `drop`.
    pub action: &'static str,
    /// Names it has mapped (each new series, and again after a cache flush).
    pub matches: u64,
}

/// The mapping in force.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingReport {
    /// Where it came from.
    pub source: String,
    /// Its rules, in file order.
    pub rules: Vec<RuleReport>,
    /// Names no rule matched (escaped), since it was loaded.
    pub unmatched: u64,
    /// Unix seconds of the last reload and its error (`None`: no reload yet).
    pub last_reload: Option<(f64, Option<String>)>,
}

/// Everything the status page and API show.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Version of this build.
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Traffic per StatsD listener kind.
    pub listeners: Vec<ListenerReport>,
    /// Every self-metric counter.
    pub counters: Vec<CounterReport>,
    /// Series in the store.
    pub series: usize,
    /// `--statsd.max-series` (`None`: no limit).
    pub max_series: Option<usize>,
    /// Series by type.
    pub series_by_type: Vec<(String, f64)>,
    /// Families in the store.
    pub families: usize,
    /// The [`TOP_FAMILIES`] families with the most series, most first.
    pub top_families: Vec<FamilyReport>,
    /// Up to [`TOP_UNMAPPED`] unmapped names, most samples a second first.
    pub unmapped: Vec<UnmappedReport>,
    /// Family names that hit a type conflict and their refused samples.
    pub conflicts: Vec<(String, u64)>,
    /// The mapping in force.
    pub mapping: MappingReport,
    /// Pushed groups (the first 50 by key) and how many there are.
    pub push_groups: (Vec<GroupBrief>, usize),
    /// Remote-write series (`promstatsd_remote_write_*`): name, labels, value.
    pub remote_write: Vec<SelfSeries>,
    /// Lines a second over the last 5 minutes, a value a second.
    pub spark_lines: Vec<f64>,
    /// Kernel drops a second over the last 5 minutes.
    pub spark_drops: Vec<f64>,
    /// Series over the last 5 minutes.
    pub spark_series: Vec<f64>,
}

/// Whether counter family `name` counts errors, refusals or drops.
fn is_error(name: &str) -> bool {
    [
        "error",
        "refused",
        "drops",
        "conflict",
        "timed_out",
        "failures",
        "too_long",
        "failed",
        "dropped",
        "actions",
    ]
    .iter()
    .any(|w| name.contains(w))
}

fn owned_labels(
    labels: &[(&'static str, std::borrow::Cow<'static, str>)],
) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn rated(h: &History, key: &str, total: f64, now: Instant) -> Rated {
    Rated {
        total,
        per_s_10s: h.rate(key, total, now, SHORT),
        per_s_5m: h.rate(key, total, now, LONG),
    }
}

fn counters(h: &History, families: &[SelfFamily], now: Instant) -> Vec<CounterReport> {
    families
        .iter()
        .filter(|f| f.kind == MetricKind::Counter)
        .flat_map(|f| {
            f.series.iter().filter_map(move |(labels, v)| {
                let SelfValue::Number(n) = v else { return None };
                Some(CounterReport {
                    name: f.name,
                    labels: owned_labels(labels),
                    value: rated(h, &history::key(f.name, labels), *n, now),
                    error: is_error(f.name),
                })
            })
        })
        .collect()
}

fn listeners(counters: &[CounterReport]) -> Vec<ListenerReport> {
    let find = |name: &str, l: &str| -> Rated {
        counters
            .iter()
            .find(|c| c.name == name && c.labels.iter().any(|(k, v)| *k == "listener" && v == l))
            .map_or(
                Rated {
                    total: 0.0,
                    per_s_10s: None,
                    per_s_5m: None,
                },
                |c| c.value,
            )
    };
    ListenerKind::ALL
        .iter()
        .map(|l| ListenerReport {
            name: l.name(),
            packets: find("promstatsd_packets_total", l.name()),
            lines: find("promstatsd_listener_lines_total", l.name()),
            bytes: find("promstatsd_bytes_total", l.name()),
        })
        .collect()
}

fn mapping(status: &Status) -> MappingReport {
    let (mapper, _) = status.mapper.load();
    let hits = mapper.rule_hits();
    let rules = mapper
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| RuleReport {
            line: r.line,
            pattern: r.pattern.clone(),
            match_type: match r.match_type {
                MatchType::Glob => "glob",
                MatchType::Regex => "regex",
            },
            action: match r.action {
                Action::Map => "map",
                Action::Drop => "drop",
            },
            matches: hits.get(i).copied().unwrap_or(0),
        })
        .collect();
    MappingReport {
        source: status.source.clone(),
        rules,
        unmatched: mapper.unmatched(),
        last_reload: status.store.metrics().shared::<ReloadStats>().last_reload(),
    }
}

fn top_families(status: &Status) -> (Vec<FamilyReport>, usize) {
    let (ranks, families) = status.store.top_families(TOP_FAMILIES);
    let top = ranks
        .iter()
        .map(|r| {
            status.follow(r.family.name());
            FamilyReport {
                name: r.family.name().to_string(),
                kind: r.family.kind().label(),
                series: r.series,
                samples_per_s: status.samples_per_s(r.family.name()),
            }
        })
        .collect();
    (top, families)
}

fn unmapped(status: &Status) -> Vec<UnmappedReport> {
    let (mapper, _) = status.mapper.load();
    let mut out: Vec<UnmappedReport> = mapper
        .unmapped_names()
        .into_iter()
        .map(|(statsd_name, family)| UnmappedReport {
            samples_per_s: status.samples_per_s(&family),
            statsd_name,
            family,
        })
        .collect();
    out.sort_by(|a, b| {
        b.samples_per_s
            .unwrap_or(0.0)
            .total_cmp(&a.samples_per_s.unwrap_or(0.0))
            .then_with(|| a.statsd_name.cmp(&b.statsd_name))
    });
    out.truncate(TOP_UNMAPPED);
    out
}

fn remote_write(families: &[SelfFamily]) -> Vec<SelfSeries> {
    families
        .iter()
        .filter(|f| f.name.starts_with("promstatsd_remote_write_"))
        .flat_map(|f| {
            f.series.iter().filter_map(|(labels, v)| match v {
                SelfValue::Number(n) => Some((f.name, owned_labels(labels), *n)),
                SelfValue::Summary { .. } => None,
            })
        })
        .collect()
}

fn series_by_type(families: &[SelfFamily]) -> Vec<(String, f64)> {
    families
        .iter()
        .filter(|f| f.name == "promstatsd_series")
        .flat_map(|f| f.series.iter())
        .filter_map(|(labels, v)| match (labels.first(), v) {
            (Some((_, t)), SelfValue::Number(n)) => Some((t.to_string(), *n)),
            _ => None,
        })
        .collect()
}

/// The report of `status` as of now.
pub(super) fn build(status: &Status) -> Report {
    let now = Instant::now();
    let families = status.store.self_families();
    let (top, family_count) = top_families(status);
    let h = super::lock(&status.history);
    let counters = counters(&h, &families, now);
    Report {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: status.started.elapsed().as_secs_f64(),
        listeners: listeners(&counters),
        series: status.store.total_series(),
        max_series: status.store.max_series(),
        series_by_type: series_by_type(&families),
        families: family_count,
        top_families: top,
        unmapped: unmapped(status),
        conflicts: status
            .store
            .metrics()
            .shared::<IngestStats>()
            .conflicting_names(),
        mapping: mapping(status),
        push_groups: status.store.pushed().briefs(50),
        remote_write: remote_write(&families),
        spark_lines: h.per_second(&history::key(history::LINES, &[])),
        spark_drops: h.per_second_family(history::DROPS),
        spark_series: h.series(),
        counters,
    }
}
