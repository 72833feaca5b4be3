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

use super::{render_label_pairs, Store, SELF_PREFIX};
use crate::exposition::textparse::{sample_suffixes, valid_label, ParsedFamily, SUFFIXES};
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The per-group gauge of the last successful change.
pub const PUSH_TIME: &str = "push_time_seconds";
/// The per-group gauge of the last failed change.
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// A grouping key: `job` and the other grouping labels, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey(Vec<(String, String)>);

impl GroupKey {
    /// Build a key from the job and further labels; later duplicates win, as in
    /// the Pushgateway's URL handling.
    pub fn new(job: &str, labels: Vec<(String, String)>) -> Result<Self, String> {
        if job.is_empty() {
            return Err("job name is required".to_owned());
        }
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in labels {
            if !valid_label(&k) || k.starts_with("__") {
                return Err(format!("improper label name {k:?}"));
            }
            map.insert(k, v);
        }
        map.insert("job".to_owned(), job.to_owned());
        Ok(Self(map.into_iter().collect()))
    }

    /// The labels, sorted by name (`job` among them).
    pub fn labels(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of a grouping label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The URL path below `/metrics` that names this group, every value base64
    /// encoded (so any value round-trips): `/job@base64/YWlyZmxvdw/...`.
    pub fn to_path(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut out = String::new();
        let job = self.get("job").unwrap_or_default();
        out.push_str("/job@base64/");
        out.push_str(&b64.encode(job));
        for (k, v) in self.0.iter().filter(|(k, _)| k != "job") {
            out.push('/');
            out.push_str(k);
            out.push_str("@base64/");
            // An empty value encodes as `=`, which the Pushgateway's decoder accepts.
            if v.is_empty() {
                out.push('=');
            } else {
                out.push_str(&b64.encode(v));
            }
        }
        out
    }

    /// The labels every sample of the group carries: the key plus `instance=""`
    /// when the key has no instance.
    fn sample_labels(&self) -> Vec<(&str, &str)> {
        let mut l: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        if self.get("instance").is_none() {
            l.push(("instance", ""));
            l.sort_unstable();
        }
        l
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// One pushed sample, its labels already merged with the group's and rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedSample {
    /// Full sample name (`x`, `x_sum`, `x_bucket`, ...).
    pub name: Box<str>,
    /// Rendered labels, sorted by name and escaped: `instance="",job="a"`.
    pub labels: Box<str>,
    /// The value.
    pub value: f64,
}

/// One pushed family of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedFamily {
    /// Family name.
    pub name: Box<str>,
    /// The `# TYPE` word (`untyped` for a family without one).
    pub kind: &'static str,
    /// HELP text as pushed.
    pub help: Option<Box<str>>,
    /// Samples in the order pushed (a histogram's buckets stay in `le` order).
    pub samples: Vec<PushedSample>,
}

/// A family as a scrape shows it: the parts every group pushed, in group order.
#[derive(Clone, Debug)]
pub struct PushedView {
    /// Family name.
    pub name: Box<str>,
    /// The `# TYPE` word.
    pub kind: &'static str,
    /// HELP text: the first group's that has one.
    pub help: Box<str>,
    /// Each group's part.
    pub parts: Vec<Arc<PushedFamily>>,
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
    kinds: HashMap<Box<str>, (&'static str, usize)>,
}

impl Inner {
    fn unindex(&mut self, f: &PushedFamily) {
        if let Some(e) = self.kinds.get_mut(&f.name) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.kinds.remove(&f.name);
            }
        }
    }

    fn index(&mut self, f: &PushedFamily) {
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

    /// The `# TYPE` of a pushed family (the push-time gauges included once any
    /// group exists).
    fn kind_of(inner: &Inner, name: &str) -> Option<&'static str> {
        if (name == PUSH_TIME || name == PUSH_FAILURE_TIME) && !inner.groups.is_empty() {
            return Some("gauge");
        }
        inner.kinds.get(name).map(|e| e.0)
    }

    /// True if a StatsD family `name` of type `kind` would clash with a pushed one.
    pub(super) fn clashes(&self, name: &str, kind: &str) -> bool {
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

impl Pushed {
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

fn has_suffixes(kind: &str) -> bool {
    !sample_suffixes(kind).is_empty()
}

/// Whether a family `name` of type `kind` clashes with what `lookup` knows: the
/// same name with another type, or a name one renders as a sample of the other
/// (`x_sum` against summary `x`).
fn clashes(name: &str, kind: &str, lookup: impl Fn(&str) -> Option<&'static str>) -> bool {
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

fn kind_word(kind: &str) -> &'static str {
    match kind {
        "counter" => "counter",
        "gauge" => "gauge",
        "summary" => "summary",
        "histogram" => "histogram",
        _ => "untyped",
    }
}

/// The labels that make a sample part of a series rather than the series itself.
fn is_series_label(kind: &str, family: &str, sample: &str, label: &str) -> bool {
    !((kind == "histogram" && label == "le" && sample.ends_with("_bucket"))
        || (kind == "summary" && label == "quantile" && sample == family))
}

/// A converted family and, for histograms and summaries, the rendered label
/// sets of its series (`None`: every sample is a series, its labels are those).
type Converted = (Arc<PushedFamily>, Option<Vec<Box<str>>>);

/// Turn parsed families into the group's families: grouping labels override
/// the pushed ones, `instance=""` is added when absent, labels sorted and
/// rendered. Also returns, per family, the rendered label sets of its series
/// (without `le`/`quantile`), to check against StatsD series.
fn convert(key: &GroupKey, parsed: &[ParsedFamily<'_>]) -> Result<Vec<Converted>, String> {
    let group_labels: Vec<(&str, &str)> = key.0.iter().map(|(k, v)| (&**k, &**v)).collect();
    let mut out = Vec::with_capacity(parsed.len());
    for pf in parsed {
        let name = pf.name;
        if name.starts_with(SELF_PREFIX) || name == PUSH_TIME || name == PUSH_FAILURE_TIME {
            return Err(format!(
                "pushed metrics must not use the reserved name {name}"
            ));
        }
        let kind = kind_word(pf.kind);
        if pf.samples.iter().any(|s| s.timestamp.is_some()) {
            return Err(format!(
                "pushed metrics must not have timestamps ({name} has one)"
            ));
        }
        if kind == "counter" && pf.samples.iter().any(|s| s.value < 0.0) {
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
            if let Some(series) = &mut series {
                series.push(render_label_pairs(
                    labels
                        .iter()
                        .copied()
                        .filter(|(k, _)| is_series_label(kind, name, s.name, k)),
                ));
            }
            samples.push(PushedSample {
                name: s.name.into(),
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

impl Store {
    /// Apply a push to the group `key`: `replace` (PUT) swaps the whole group,
    /// otherwise (POST) only the families named in `parsed`. A family without
    /// samples changes nothing (the parser leaves such families out, as the
    /// Pushgateway's does). `now` is Unix seconds. On `Err` nothing was applied
    /// and the group's failure time is `now`.
    pub fn push(
        &self,
        key: &GroupKey,
        parsed: &[ParsedFamily<'_>],
        replace: bool,
        now: f64,
    ) -> Result<(), String> {
        // Converted before any lock is taken: a big push must not hold up
        // StatsD's new families or a scrape while its samples are rendered.
        let converted = convert(key, parsed);
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut inner = self.pushed.lock();
        let checked = converted.and_then(|new| {
            self.check_push(&families.by_name, &inner, key, &new, replace)?;
            Ok(new)
        });
        let new = match checked {
            Ok(new) => new,
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
    // `ByName` hashes and compares the family name only, which never changes;
    // the atomics inside a family play no part in the key.
    #[allow(clippy::mutable_key_type)]
    fn check_push(
        &self,
        families: &HashSet<super::ByName>,
        inner: &Inner,
        key: &GroupKey,
        new: &[Converted],
        replace: bool,
    ) -> Result<(), String> {
        let own = inner.groups.get(key);
        let new_kinds: HashMap<&str, &'static str> =
            new.iter().map(|(f, _)| (&*f.name, f.kind)).collect();
        // What this group will no longer hold once the push applies.
        let replaced = |name: &str| {
            own.is_some_and(|g| g.families.contains_key(name))
                && (replace || new_kinds.contains_key(name))
        };
        let pushed_elsewhere = |name: &str| -> Option<&'static str> {
            let (kind, n) = *inner.kinds.get(name)?;
            let n = n - usize::from(replaced(name));
            (n > 0).then_some(kind)
        };
        for (f, series) in new {
            let statsd = |n: &str| families.get(n).map(|sf| sf.0.kind().prom_type());
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
            if clashes(&f.name, f.kind, others) {
                return Err(format!(
                    "metric {} of type {} clashes with a pushed metric of another type or name",
                    f.name, f.kind
                ));
            }
            if families.contains(&*f.name) {
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
        map.find(hash, |s| &*s.family.name == name && &*s.labels == labels)
            .is_some()
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
                kind: "gauge",
                help: help.into(),
                parts: vec![Arc::new(PushedFamily {
                    name: name.into(),
                    kind: "gauge",
                    help: Some(help.into()),
                    samples,
                })],
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::textparse::parse;

    fn key(job: &str, labels: &[(&str, &str)]) -> GroupKey {
        GroupKey::new(
            job,
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn push(store: &Store, k: &GroupKey, body: &str, replace: bool) -> Result<(), String> {
        store.push(k, &parse(body).unwrap(), replace, 1000.0)
    }

    fn samples(store: &Store, name: &str) -> Vec<(String, String, f64)> {
        store
            .pushed_view()
            .iter()
            .filter(|v| &*v.name == name)
            .flat_map(|v| v.parts.iter())
            .flat_map(|p| p.samples.iter())
            .map(|s| (s.name.to_string(), s.labels.to_string(), s.value))
            .collect()
    }

    #[test]
    fn grouping_labels_override_and_instance_is_added() {
        let store = Store::default();
        let k = key("batch", &[("env", "prod")]);
        push(&store, &k, "x{env=\"dev\",a=\"1\"} 2\n", true).unwrap();
        assert_eq!(
            samples(&store, "x"),
            vec![(
                "x".into(),
                "a=\"1\",env=\"prod\",instance=\"\",job=\"batch\"".into(),
                2.0
            )]
        );
        assert_eq!(
            samples(&store, PUSH_TIME),
            vec![(
                PUSH_TIME.into(),
                "env=\"prod\",instance=\"\",job=\"batch\"".into(),
                1000.0
            )]
        );
    }

    #[test]
    fn put_replaces_the_group_and_post_only_named_families() {
        let store = Store::default();
        let k = key("j", &[]);
        push(&store, &k, "a 1\nb 1\n", true).unwrap();
        push(&store, &k, "b 2\nc 3\n", false).unwrap();
        assert_eq!(samples(&store, "a").len(), 1);
        assert_eq!(samples(&store, "b")[0].2, 2.0);
        push(&store, &k, "c 4\n", true).unwrap();
        assert!(samples(&store, "a").is_empty());
        assert!(samples(&store, "b").is_empty());
        assert_eq!(samples(&store, "c")[0].2, 4.0);
        assert!(store.delete_group(&k));
        assert!(store.pushed_view().is_empty());
        assert!(!store.delete_group(&k));
    }

    #[test]
    fn a_type_clash_between_groups_applies_nothing() {
        let store = Store::default();
        let (a, b) = (key("a", &[]), key("b", &[]));
        push(&store, &a, "# TYPE x counter\nx 1\n", true).unwrap();
        let err = store
            .push(
                &b,
                &parse("y 1\n# TYPE x gauge\nx 1\n").unwrap(),
                true,
                2000.0,
            )
            .unwrap_err();
        assert!(err.contains("clashes with a pushed metric"), "{err}");
        assert!(samples(&store, "y").is_empty());
        // The failed group exists with only its failure time.
        let fail = samples(&store, PUSH_FAILURE_TIME);
        assert!(fail
            .iter()
            .any(|(_, l, v)| l.contains("job=\"b\"") && *v == 2000.0));
        // The group that holds x alone may change x's type.
        push(&store, &a, "# TYPE x gauge\nx 1\n", true).unwrap();
    }

    #[test]
    fn the_same_series_from_two_groups_is_refused() {
        let store = Store::default();
        push(&store, &key("j", &[("instance", "h1")]), "x 1\n", true).unwrap();
        let err = push(&store, &key("j", &[]), "x{instance=\"h1\"} 1\n", true).unwrap_err();
        assert!(err.contains("already pushed"), "{err}");
    }

    #[test]
    fn statsd_and_a_push_racing_for_one_series_create_it_once() {
        // The push side checks for StatsD series and the StatsD side for pushed
        // ones; each check and its insert happen under the pushed groups' lock,
        // so racing for the same series, exactly one side gets it.
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        let store = Arc::clone(agg.store());
        let n = 3000;
        // Both sides start each series together.
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|t| {
            t.spawn(|| {
                let k = key("j", &[]);
                for i in 0..n {
                    let body = format!("# TYPE r{i} counter\nr{i}{{instance=\"h\"}} 5\n");
                    start.wait();
                    let _ = push(&store, &k, &body, false);
                }
            });
            for i in 0..n {
                let line = format!("r{i}:1|c|#instance:h,job:j");
                start.wait();
                agg.ingest(line.as_bytes());
            }
        });
        let page = agg.render_to_string();
        for i in 0..n {
            let lines = page.matches(&format!("\nr{i}{{")).count();
            assert_eq!(lines, 1, "r{i} on the page {lines} times");
        }
    }

    #[test]
    fn statsd_families_and_pushed_ones_must_agree() {
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        agg.ingest(b"hits:1|c|#k:v\nlat:1|ms");
        let store = agg.store();
        let k = key("j", &[]);
        let err = push(store, &k, "# TYPE hits gauge\nhits 1\n", true).unwrap_err();
        assert!(err.contains("StatsD metric"), "{err}");
        let err = push(store, &k, "lat_sum 1\n", true).unwrap_err();
        assert!(err.contains("StatsD metric"), "{err}");
        // Same type, other labels: fine; the exact StatsD series: refused.
        push(store, &k, "# TYPE hits counter\nhits{k=\"w\"} 1\n", true).unwrap();
        agg.ingest(b"dup:1|c|#instance:h,job:j");
        let store = agg.store();
        let err = push(
            store,
            &key("j", &[("instance", "h")]),
            "# TYPE dup counter\ndup 1\n",
            true,
        )
        .unwrap_err();
        assert!(err.contains("already a StatsD series"), "{err}");
        // A StatsD series identical to a pushed one is refused (a conflict).
        push(
            store,
            &k,
            "# TYPE pushed_first counter\npushed_first{instance=\"h\"} 5\n",
            false,
        )
        .unwrap();
        agg.ingest(b"pushed_first:1|c|#instance:h,job:j");
        let page = agg.render_to_string();
        assert_eq!(page.matches("pushed_first{").count(), 1, "{page}");
        assert!(page.contains("pushed_first{instance=\"h\",job=\"j\"} 5\n"));
        assert!(
            page.contains("promstatsd_events_conflict_total{type=\"counter\"} 1\n"),
            "{page}"
        );
        let store = agg.store();
        // A StatsD family of another type than a pushed one is refused in turn.
        push(store, &k, "# TYPE newone gauge\nnewone 1\n", false).unwrap();
        agg.ingest(b"newone:1|c");
        assert!(agg
            .render_to_string()
            .contains("newone{instance=\"\",job=\"j\"} 1\n"));
        assert!(!agg.render_to_string().contains("# TYPE newone counter"));
    }

    #[test]
    fn reserved_names_are_refused() {
        let store = Store::default();
        let k = key("j", &[]);
        for body in ["push_time_seconds 1\n", "promstatsd_x 1\n"] {
            assert!(push(&store, &k, body, true)
                .unwrap_err()
                .contains("reserved"));
        }
    }

    #[test]
    fn group_paths_round_trip_every_value() {
        let k = key("a/b", &[("x", ""), ("y", "ü=+/")]);
        let p = k.to_path();
        assert!(p.starts_with("/job@base64/"));
        assert_eq!(k.to_string(), "{job=\"a/b\",x=\"\",y=\"ü=+/\"}");
    }

    #[test]
    fn ttl_expiry_removes_old_groups() {
        let store = Store::default();
        push(&store, &key("old", &[]), "a 1\n", true).unwrap();
        store
            .push(&key("new", &[]), &parse("b 1\n").unwrap(), true, 5000.0)
            .unwrap();
        assert_eq!(store.expire_pushed(5000.0, 100.0), 1);
        assert!(samples(&store, "a").is_empty());
        assert_eq!(samples(&store, "b").len(), 1);
    }
}
