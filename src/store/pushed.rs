//! Pushed groups: metrics pushed through the Pushgateway-compatible API.
//!
//! A group is what one grouping key (`job` plus optional labels from the push URL)
//! holds: a set of metric families, the time of its last successful change and of
//! its last failed one. `PUT` replaces a group's families, `POST` replaces the
//! families it names, `DELETE` removes the group. Every change is checked before
//! it is applied, as the Pushgateway checks it: a family must not change type
//! against another group or against the StatsD families, and no two samples on the
//! page may have the same name and labels. A rejected change applies nothing and
//! only stamps the group's `push_failure_time_seconds`.
//!
//! Pushed metrics are few and change rarely, so they live behind one mutex and a
//! scrape takes a snapshot of `Arc`s (see [`Store::pushed_view`]); pushes never
//! touch the StatsD hot path. Lock order: the store's family map, then this.

use super::{render_label_pairs, Store};
use crate::model::collect::{Encoder, FamilyHead, Labels, Value};
use crate::model::group::Converted;
pub use crate::model::group::{
    GroupKey, PushedFamily, PushedSample, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME,
    PUSH_TIME_HELP,
};
use crate::vocab::{MetricKind, SUFFIXES};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A family as a scrape shows it: the parts every group pushed, in group order.
#[derive(Clone, Debug)]
pub struct PushedView {
    /// Family name.
    pub name: Box<str>,
    /// The type.
    pub kind: MetricKind,
    /// HELP text: the first group's that has one.
    pub help: Box<str>,
    /// Each group's part.
    pub parts: Vec<Arc<PushedFamily>>,
}

impl PushedView {
    /// The family as every output sees it.
    pub fn head(&self) -> FamilyHead<'_> {
        FamilyHead {
            name: &self.name,
            kind: self.kind,
            help: &self.help,
        }
    }

    /// Hand the family and its samples to `enc`.
    pub fn encode(&self, enc: &mut impl Encoder) {
        enc.family(self.head());
        self.encode_series(enc);
    }

    /// Hand only the samples to `enc` (inside a StatsD family of the same name).
    pub fn encode_series(&self, enc: &mut impl Encoder) {
        let head = self.head();
        for s in self.parts.iter().flat_map(|p| p.samples.iter()) {
            let value = Value::Sample {
                name: &s.name,
                value: s.value,
            };
            enc.series(head, Labels::Rendered(&s.labels), value);
        }
    }
}

/// One group's state, for persistence.
#[derive(Clone, Debug)]
pub struct GroupExport {
    /// The grouping key.
    pub key: GroupKey,
    /// Unix seconds of the last successful change (0: never).
    pub push_time: f64,
    /// Unix seconds of the last failed change (0: never).
    pub failure_time: f64,
    /// The families.
    pub families: Vec<Arc<PushedFamily>>,
}

#[derive(Debug, Default)]
struct Group {
    families: BTreeMap<Box<str>, Arc<PushedFamily>>,
    push_time: f64,
    failure_time: f64,
}

#[derive(Debug, Default)]
struct Inner {
    groups: BTreeMap<GroupKey, Group>,
    /// Family name -> (type, number of groups holding it): the type check for
    /// StatsD families being created, without walking every group.
    kinds: HashMap<Box<str>, (MetricKind, usize)>,
    /// Samples (series) held in all groups.
    series: usize,
}

impl Inner {
    fn unindex(&mut self, f: &PushedFamily) {
        self.series = self.series.saturating_sub(f.samples.len());
        if let Some(e) = self.kinds.get_mut(&f.name) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.kinds.remove(&f.name);
            }
        }
    }

    fn index(&mut self, f: &PushedFamily) {
        self.series += f.samples.len();
        self.kinds
            .entry(f.name.clone())
            .and_modify(|e| e.1 += 1)
            .or_insert((f.kind, 1));
    }
}

/// The pushed groups (a field of [`Store`]).
#[derive(Debug, Default)]
pub struct Pushed {
    inner: Mutex<Inner>,
    /// Bumped on every change: persistence writes when it moved.
    changes: AtomicU64,
    /// Most series all groups may hold (`--push.max-series`; 0: no limit).
    max_series: AtomicUsize,
    /// OpenMetrics may be served: names that are one there clash.
    openmetrics_names: bool,
}

impl Pushed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        // Relaxed: a change counter polled by the persistence writer, which then
        // takes the mutex that orders the data itself.
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// A number that moves whenever the groups change.
    pub fn changes(&self) -> u64 {
        // Relaxed: see `changed`.
        self.changes.load(Ordering::Relaxed)
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.lock().groups.len()
    }

    /// The series budget: a push may not take the groups past
    /// `--push.max-series` (a push that shrinks them is always applied).
    fn check_series(
        &self,
        inner: &Inner,
        key: &GroupKey,
        new: &[Converted],
        replace: bool,
    ) -> Result<(), String> {
        // Relaxed: see `set_max_series`.
        let max = self.max_series.load(Ordering::Relaxed);
        let own = inner.groups.get(key);
        // What the push takes away: the whole group (PUT), or the families it
        // names (POST), each looked up by name.
        let going: usize = own.map_or(0, |g| {
            if replace {
                g.families.values().map(|f| f.samples.len()).sum()
            } else {
                new.iter()
                    .filter_map(|(f, _)| g.families.get(&f.name))
                    .map(|f| f.samples.len())
                    .sum()
            }
        });
        let coming: usize = new.iter().map(|(f, _)| f.samples.len()).sum();
        let after = inner.series - going + coming;
        if max > 0 && after > max && coming > going {
            return Err(format!(
                "the push would take the pushed series to {after}, over --push.max-series ({max})"
            ));
        }
        Ok(())
    }

    /// Number of series (samples) held in all groups.
    pub fn series_count(&self) -> usize {
        self.lock().series
    }

    /// Set the most series all groups may hold together (0: no limit).
    pub fn set_max_series(&self, n: usize) {
        // Relaxed: a setting read under the groups' lock by each push.
        self.max_series.store(n, Ordering::Relaxed);
    }

    /// The `# TYPE` of a pushed family (the push-time gauges included once any
    /// group exists).
    fn kind_of(inner: &Inner, name: &str) -> Option<MetricKind> {
        if (name == PUSH_TIME || name == PUSH_FAILURE_TIME) && !inner.groups.is_empty() {
            return Some(MetricKind::Gauge);
        }
        inner.kinds.get(name).map(|e| e.0)
    }

    /// Groups kept as OpenMetrics needs them when `openmetrics_names`.
    pub fn new(openmetrics_names: bool) -> Self {
        Self {
            openmetrics_names,
            ..Self::default()
        }
    }

    /// True if a StatsD family `name` of type `kind` would take a pushed
    /// family's OpenMetrics name.
    pub(super) fn openmetrics_clash(&self, name: &str, kind: MetricKind) -> bool {
        let inner = self.lock();
        crate::vocab::openmetrics_clash(name, kind, |n| inner.kinds.get(n).map(|e| e.0))
    }

    /// True if a StatsD family `name` of type `kind` would clash with a pushed one.
    pub(super) fn clashes(&self, name: &str, kind: MetricKind) -> bool {
        let inner = self.lock();
        if inner.groups.is_empty() {
            return false;
        }
        clashes(name, kind, |n| Self::kind_of(&inner, n))
    }

    /// The groups, held still while a StatsD series is checked against them and
    /// created: a push checks for StatsD series under the same lock, so a series
    /// cannot be created on both sides at once. Lock order: the family map, then
    /// this, then a shard.
    pub(super) fn hold(&self) -> Held<'_> {
        Held(self.lock())
    }
}

/// The pushed groups, locked (see [`Pushed::hold`]).
pub(super) struct Held<'a>(std::sync::MutexGuard<'a, Inner>);

impl Held<'_> {
    /// True if a pushed family `name` has a series with these rendered labels
    /// (for a summary or histogram: the labels of its `_sum` sample), so a StatsD
    /// series must not be created beside it.
    pub(super) fn has_series(&self, name: &str, labels: &str) -> bool {
        let inner = &self.0;
        if !inner.kinds.contains_key(name) {
            return false;
        }
        inner
            .groups
            .values()
            .filter_map(|g| g.families.get(name))
            .any(|f| {
                f.samples.iter().any(|s| {
                    &*s.labels == labels
                        && if has_suffixes(f.kind) {
                            s.name.strip_suffix("_sum") == Some(name)
                        } else {
                            *s.name == *name
                        }
                })
            })
    }
}

/// One pushed group in brief, for the operator view.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupBrief {
    /// The grouping key (`job="x",instance="y"`).
    pub key: String,
    /// Unix seconds of the last successful push.
    pub push_time: f64,
    /// Unix seconds of the last failed push (0: none).
    pub failure_time: f64,
    /// Samples (series) the group holds.
    pub series: usize,
}

impl Pushed {
    /// The first `limit` groups in key order, in brief, and how many there are.
    pub fn briefs(&self, limit: usize) -> (Vec<GroupBrief>, usize) {
        let inner = self.lock();
        let list = inner
            .groups
            .iter()
            .take(limit)
            .map(|(key, g)| GroupBrief {
                key: key.to_string(),
                push_time: g.push_time,
                failure_time: g.failure_time,
                series: g.families.values().map(|f| f.samples.len()).sum(),
            })
            .collect();
        (list, inner.groups.len())
    }

    /// Every group, for persistence.
    pub fn export(&self) -> Vec<GroupExport> {
        self.lock()
            .groups
            .iter()
            .map(|(key, g)| GroupExport {
                key: key.clone(),
                push_time: g.push_time,
                failure_time: g.failure_time,
                families: g.families.values().cloned().collect(),
            })
            .collect()
    }
}

fn has_suffixes(kind: MetricKind) -> bool {
    !kind.sample_suffixes().is_empty()
}

/// Whether a family `name` of type `kind` clashes with what `lookup` knows: the
/// same name with another type, or a name one renders as a sample of the other
/// (`x_sum` against summary `x`).
fn clashes(name: &str, kind: MetricKind, lookup: impl Fn(&str) -> Option<MetricKind>) -> bool {
    if lookup(name).is_some_and(|k| k != kind) {
        return true;
    }
    if has_suffixes(kind) {
        let mut probe = String::with_capacity(name.len() + 7);
        for s in SUFFIXES {
            probe.clear();
            probe.push_str(name);
            probe.push_str(s);
            if lookup(&probe).is_some() {
                return true;
            }
        }
    }
    SUFFIXES.iter().any(|s| {
        name.strip_suffix(s)
            .and_then(&lookup)
            .is_some_and(has_suffixes)
    })
}

impl Store {
    /// Apply a push of converted families (see `crate::push`) to the group
    /// `key`: `replace` (PUT) swaps the whole group, otherwise (POST) only the
    /// families named in `new`. A family without samples changes nothing (the
    /// parser leaves such families out, as the Pushgateway's does). `now` is
    /// Unix seconds. On `Err` (a clash with another group or with StatsD
    /// families) nothing was applied and the group's failure time is `now`.
    pub fn push(
        &self,
        key: &GroupKey,
        new: Vec<Converted>,
        replace: bool,
        now: f64,
    ) -> Result<(), String> {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut inner = self.pushed.lock();
        let checked = self
            .check_push(&families, &inner, key, &new, replace)
            .and_then(|()| self.pushed.check_series(&inner, key, &new, replace));
        let new = match checked {
            Ok(()) => new,
            Err(e) => {
                inner.groups.entry(key.clone()).or_default().failure_time = now;
                drop(inner);
                self.pushed.changed();
                return Err(e);
            }
        };
        let mut group = inner.groups.remove(key).unwrap_or_default();
        let dropped: Vec<Arc<PushedFamily>> = if replace {
            std::mem::take(&mut group.families).into_values().collect()
        } else {
            new.iter()
                .filter_map(|(f, _)| group.families.remove(&f.name))
                .collect()
        };
        for f in &dropped {
            inner.unindex(f);
        }
        for (f, _) in new {
            if !f.samples.is_empty() {
                inner.index(&f);
                group.families.insert(f.name.clone(), f);
            }
        }
        group.push_time = now;
        inner.groups.insert(key.clone(), group);
        drop(inner);
        self.pushed.changed();
        Ok(())
    }

    /// The checks a push must pass before anything is applied.
    fn check_push(
        &self,
        families: &super::Families,
        inner: &Inner,
        key: &GroupKey,
        new: &[Converted],
        replace: bool,
    ) -> Result<(), String> {
        let own = inner.groups.get(key);
        let new_kinds: HashMap<&str, MetricKind> =
            new.iter().map(|(f, _)| (&*f.name, f.kind)).collect();
        // What this group will no longer hold once the push applies.
        let replaced = |name: &str| {
            own.is_some_and(|g| g.families.contains_key(name))
                && (replace || new_kinds.contains_key(name))
        };
        let pushed_elsewhere = |name: &str| -> Option<MetricKind> {
            let (kind, n) = *inner.kinds.get(name)?;
            let n = n - usize::from(replaced(name));
            (n > 0).then_some(kind)
        };
        for (f, series) in new {
            let statsd = |n: &str| {
                self.kind_of(families, n)
                    .map(super::FamilyKind::metric_kind)
            };
            if clashes(&f.name, f.kind, statsd) {
                return Err(format!(
                    "metric {} of type {} clashes with a StatsD metric of another type or name",
                    f.name, f.kind
                ));
            }
            // The push's own other families count too (names are unique in it).
            let others = |n: &str| {
                pushed_elsewhere(n).or_else(|| new_kinds.get(n).copied().filter(|_| n != &*f.name))
            };
            if self.pushed.openmetrics_names
                && (crate::vocab::openmetrics_clash(&f.name, f.kind, statsd)
                    || crate::vocab::openmetrics_clash(&f.name, f.kind, others))
            {
                return Err(format!(
                    "metric {} of type {} is one name in OpenMetrics with another metric",
                    f.name, f.kind
                ));
            }
            if clashes(&f.name, f.kind, others) {
                return Err(format!(
                    "metric {} of type {} clashes with a pushed metric of another type or name",
                    f.name, f.kind
                ));
            }
            if self.kind_of(families, &f.name).is_some() {
                let dup = match series {
                    Some(series) => series
                        .iter()
                        .map(|l| &**l)
                        .find(|l| self.series_exists(&f.name, l)),
                    None => f
                        .samples
                        .iter()
                        .map(|s| &*s.labels)
                        .find(|l| self.series_exists(&f.name, l)),
                };
                if let Some(dup) = dup {
                    return Err(format!(
                        "series {}{{{dup}}} is already a StatsD series",
                        f.name
                    ));
                }
            }
            if pushed_elsewhere(&f.name).is_some() {
                let mine: HashSet<(&str, &str)> =
                    f.samples.iter().map(|s| (&*s.name, &*s.labels)).collect();
                for (k, g) in &inner.groups {
                    if k == key {
                        continue;
                    }
                    let Some(theirs) = g.families.get(&f.name) else {
                        continue;
                    };
                    if let Some(s) = theirs
                        .samples
                        .iter()
                        .find(|s| mine.contains(&(&*s.name, &*s.labels)))
                    {
                        return Err(format!(
                            "sample {}{{{}}} was already pushed by group {k}",
                            s.name, s.labels
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a StatsD series with this family name and rendered labels exists.
    fn series_exists(&self, name: &str, labels: &str) -> bool {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one((name, labels));
        let Some(shard) = self.shards.get((hash & self.mask) as usize) else {
            return false;
        };
        let map = shard.read().unwrap_or_else(PoisonError::into_inner);
        map.find(hash, |s| super::is_key(s, name, labels)).is_some()
    }

    /// Remove a group; true if it existed.
    pub fn delete_group(&self, key: &GroupKey) -> bool {
        let mut inner = self.pushed.lock();
        let Some(g) = inner.groups.remove(key) else {
            return false;
        };
        for f in g.families.values() {
            inner.unindex(f);
        }
        drop(inner);
        self.pushed.changed();
        true
    }

    /// Stamp a group's failure time (creating the group if needed), as after a
    /// rejected change; used when restoring persisted groups.
    pub fn set_push_failure_time(&self, key: &GroupKey, t: f64) {
        self.pushed
            .lock()
            .groups
            .entry(key.clone())
            .or_default()
            .failure_time = t;
        self.pushed.changed();
    }

    /// Set a group's push time (restoring persisted groups).
    pub fn set_push_time(&self, key: &GroupKey, t: f64) {
        if let Some(g) = self.pushed.lock().groups.get_mut(key) {
            g.push_time = t;
        }
    }

    /// Remove groups whose last successful push (for a group that never had
    /// one, its last failed push) is older than `now - ttl` (Unix seconds):
    /// pushes that keep failing do not keep old values alive. Returns how
    /// many went.
    pub fn expire_pushed(&self, now: f64, ttl: f64) -> usize {
        let mut inner = self.pushed.lock();
        let stale: Vec<GroupKey> = inner
            .groups
            .iter()
            .filter(|(_, g)| {
                let last = if g.push_time > 0.0 {
                    g.push_time
                } else {
                    g.failure_time
                };
                last < now - ttl
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &stale {
            if let Some(g) = inner.groups.remove(k) {
                for f in g.families.values() {
                    inner.unindex(f);
                }
            }
        }
        drop(inner);
        if !stale.is_empty() {
            self.pushed.changed();
        }
        stale.len()
    }

    /// The pushed families as a scrape shows them, sorted by name, the
    /// `push_time_seconds` and `push_failure_time_seconds` gauges included.
    pub fn pushed_view(&self) -> Vec<PushedView> {
        let inner = self.pushed.lock();
        if inner.groups.is_empty() {
            return Vec::new();
        }
        let mut by_name: BTreeMap<&str, PushedView> = BTreeMap::new();
        let mut times = [Vec::new(), Vec::new()];
        for (key, g) in &inner.groups {
            for f in g.families.values() {
                let v = by_name.entry(&f.name).or_insert_with(|| PushedView {
                    name: f.name.clone(),
                    kind: f.kind,
                    help: Box::from(""),
                    parts: Vec::new(),
                });
                if v.help.is_empty() {
                    if let Some(h) = &f.help {
                        v.help = h.clone();
                    }
                }
                v.parts.push(Arc::clone(f));
            }
            let labels = render_label_pairs(key.sample_labels().into_iter());
            for (i, t) in [g.push_time, g.failure_time].into_iter().enumerate() {
                times[i].push(PushedSample {
                    name: [PUSH_TIME, PUSH_FAILURE_TIME][i].into(),
                    labels: labels.clone(),
                    value: t,
                });
            }
        }
        let mut out: Vec<PushedView> = by_name.into_values().collect();
        for (i, samples) in times.into_iter().enumerate() {
            let (name, help) = [
                (PUSH_TIME, PUSH_TIME_HELP),
                (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP),
            ][i];
            out.push(PushedView {
                name: name.into(),
                kind: MetricKind::Gauge,
                help: help.into(),
                parts: vec![Arc::new(PushedFamily {
                    name: name.into(),
                    kind: MetricKind::Gauge,
                    help: Some(help.into()),
                    samples,
                })],
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
