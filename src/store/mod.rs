//! Store: the series, shared between the ingest thread(s) and the render thread.
//!
//! This is the only state shared across threads. Each series is a [`SeriesArc`]
//! whose value is updated in place: counters and gauges are atomic `f64`s,
//! histogram buckets are atomic counts, sets are atomic HyperLogLog registers,
//! and summaries are a small per-series mutex (taken by one ingest thread and, for
//! the length of one quantile computation, by a scrape).
//!
//! Finding a series by name and labels goes through a sharded map (a power-of-two
//! number of `RwLock`ed hash tables, one hash per key). Only the first sample of a
//! series takes that path: ingest threads keep their own cache from the raw StatsD
//! key to the [`SeriesArc`] (see [`crate::ingest`]), so a known series is updated
//! with no lock and no allocation.
//!
//! **Scrape consistency.** A scrape reads each value atomically but not the store
//! as a whole at one instant: samples that arrive while a page renders may appear
//! in series rendered later and not in earlier ones. A histogram's buckets and
//! `_count` come from one read of its buckets (`_count` is their sum), so
//! `le="+Inf"` always equals `_count`; its `_sum` may be a few samples ahead.
//! A page is walked in steps ([`Walk`]): each series is read once, whole,
//! in one step; series created while a page is out may or may not be on it.
//!
//! May import: vocab, sys, model.

pub mod atomic;
mod family;
pub mod inline;
pub mod native;
pub mod pushed;
mod series;
pub mod set;
pub mod summary;
mod walk;

use crate::model::collect::{Registry, SelfFamily};
use crate::model::Mapping;
pub use crate::model::MAX_HISTOGRAM_BUCKETS;
use crate::vocab::MetricKind;
use atomic::Clock;
use family::{ByName, Families};
pub use family::{Family, FamilyHandle};
use hashbrown::HashTable;
use inline::InlineStr;
use series::Owner;
use series::RETIRED;
pub use series::{Cells, CellsPtr, FamilyMatch, HistogramView, Series, SeriesValue};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
pub use walk::{FamilyRank, Walk};

use crate::vocab::label_pairs;
pub use crate::vocab::SELF_PREFIX;

/// Default series limit (`--statsd.max-series`).
pub const DEFAULT_MAX_SERIES: usize = 1_000_000;

/// What a family aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FamilyKind {
    /// A monotonic counter (`c`).
    Counter,
    /// A gauge (`g`).
    Gauge,
    /// A gauge of distinct set members (`s`).
    Set,
    /// A summary of observations (`ms`, `h`, `d`).
    Summary,
    /// A histogram of observations (`ms`, `h`, `d`).
    Histogram,
}

impl FamilyKind {
    /// All kinds, in a fixed order.
    pub const ALL: [FamilyKind; 5] = [
        Self::Counter,
        Self::Gauge,
        Self::Set,
        Self::Summary,
        Self::Histogram,
    ];

    /// The kind every output calls it (a set is a gauge).
    pub fn metric_kind(self) -> MetricKind {
        match self {
            Self::Counter => MetricKind::Counter,
            Self::Gauge | Self::Set => MetricKind::Gauge,
            Self::Summary => MetricKind::Summary,
            Self::Histogram => MetricKind::Histogram,
        }
    }

    /// The `type` label used by promstatsd's self-metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Set => "set",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether this kind renders `_sum`/`_count` (and `_bucket`) series.
    fn has_suffixes(self) -> bool {
        matches!(self, Self::Summary | Self::Histogram)
    }
}

/// Why the store refused to create a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The family exists with another type (or its name collides with the
    /// `_sum`/`_count`/`_bucket` series of another family, or the reserved prefix,
    /// or it is a histogram with more than [`MAX_HISTOGRAM_BUCKETS`] bounds).
    Conflict,
    /// The series limit is reached.
    Limit,
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Number of shards (rounded up to a power of two).
    pub shards: usize,
    /// Most series the store holds; past it new series are refused.
    pub max_series: usize,
    /// The page may be served as OpenMetrics (`--web.enable-openmetrics`):
    /// refuse families whose OpenMetrics names clash (`x` and `x_total`, both
    /// counters), as type conflicts are refused.
    pub openmetrics_names: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            shards: 64,
            max_series: DEFAULT_MAX_SERIES,
            openmetrics_names: false,
        }
    }
}

/// A shared handle to a series: `triomphe`'s `Arc`, which has no weak count,
/// so a series takes 8 bytes fewer than with `std`'s (nothing needs a weak
/// handle to a series).
pub type SeriesArc = triomphe::Arc<Series>;

type Shard = RwLock<HashTable<SeriesArc>>;

/// What [`Store::get_or_create`] found for a new key.
enum Resolved {
    /// The series of an own family with another definition, which stands.
    Existing(SeriesArc),
    /// Make the series, owned so.
    New(Owner),
}

/// What [`Store::insert`] did.
enum Placed {
    /// Made the series.
    New(SeriesArc),
    /// Found the key's series there already.
    Found(SeriesArc),
}

/// All series, plus the self-metrics and the clock.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Shard]>,
    mask: u64,
    hasher: foldhash::fast::RandomState,
    /// Families by name and their interned definitions.
    families: Mutex<Families>,
    pending: Mutex<Vec<SeriesArc>>,
    /// The render order (see [`Walk`]).
    sorted: Mutex<walk::Sorted>,
    series_by_kind: [AtomicUsize; 5],
    total_series: AtomicUsize,
    max_series: usize,
    openmetrics_names: bool,
    /// Bumped whenever series are removed (TTL, reload): caches drop retired handles.
    removals: AtomicU64,
    /// The mapping generation in force (see [`Store::set_mapping_generation`]).
    mapping_generation: AtomicU64,
    /// True once any family has a TTL, so the sweep has work.
    has_ttl: AtomicBool,
    /// The coarse clock ingest threads read.
    pub clock: Clock,
    /// The self-metric collectors of the parts that feed and serve this store.
    metrics: Registry,
    /// Groups pushed through the Pushgateway-compatible API.
    pushed: pushed::Pushed,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(StoreOptions::default())
    }
}

fn render_labels(labels: &[(String, String)]) -> InlineStr {
    InlineStr::from(label_pairs(
        labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

/// Render label pairs (already sorted) as `k="v",k2="v2"`, values escaped.
fn render_label_pairs<'a>(labels: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Box<str> {
    label_pairs(labels).into_boxed_str()
}

impl Store {
    /// An empty store.
    pub fn new(opts: StoreOptions) -> Self {
        let n = opts.shards.max(1).next_power_of_two();
        Self {
            shards: (0..n).map(|_| RwLock::new(HashTable::new())).collect(),
            mask: n as u64 - 1,
            hasher: foldhash::fast::RandomState::default(),
            families: Mutex::new(Families::default()),
            pending: Mutex::new(Vec::new()),
            sorted: Mutex::default(),
            series_by_kind: Default::default(),
            total_series: AtomicUsize::new(0),
            max_series: if opts.max_series == 0 {
                usize::MAX
            } else {
                opts.max_series
            },
            openmetrics_names: opts.openmetrics_names,
            removals: AtomicU64::new(0),
            mapping_generation: AtomicU64::new(0),
            has_ttl: AtomicBool::new(false),
            clock: Clock::default(),
            metrics: Registry::default(),
            pushed: pushed::Pushed::new(opts.openmetrics_names),
        }
    }

    /// Number of series of a kind.
    pub fn series_count(&self, kind: FamilyKind) -> usize {
        // Relaxed: a gauge for self-metrics.
        self.series_by_kind[kind.index()].load(Ordering::Relaxed)
    }

    /// The self-metric collectors: each part asks for its own and counts into it.
    pub fn metrics(&self) -> &Registry {
        &self.metrics
    }

    /// Every self-metric family, sorted by name: the registry's and the store's
    /// own (series by type, push groups, build info).
    pub fn self_families(&self) -> Vec<SelfFamily> {
        let mut out = self.metrics.collect();
        out.push(SelfFamily::labelled(
            "promstatsd_series",
            MetricKind::Gauge,
            "Series in the store, by type.",
            FamilyKind::ALL
                .iter()
                .map(|k| (vec![("type", k.label())], self.series_count(*k) as f64)),
        ));
        out.push(SelfFamily::single(
            "promstatsd_push_groups",
            MetricKind::Gauge,
            "Groups held by the push API.",
            self.pushed.group_count() as f64,
        ));
        out.push(SelfFamily::single(
            "promstatsd_push_series",
            MetricKind::Gauge,
            "Series held by the push API, in all groups (see --push.max-series).",
            self.pushed.series_count() as f64,
        ));
        out.push(SelfFamily::labelled(
            "promstatsd_build_info",
            MetricKind::Gauge,
            "A constant 1, labelled with the version.",
            [(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        ));
        out.sort_by(|a, b| a.name.cmp(b.name));
        out
    }

    /// The pushed groups.
    pub fn pushed(&self) -> &pushed::Pushed {
        &self.pushed
    }

    /// The family of this name, if the store has one.
    pub fn family_named(&self, name: &str) -> Option<FamilyHandle> {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = families.by_name.get(name).map(|ByName(f)| Arc::clone(f));
        FamilyHandle::from_parts(shared, self.own_series(name))
    }

    /// The own series of the family `name` (see [`Series`]): its label-less
    /// series, found in the series index, if it holds its family. Asked
    /// under the family lock, which every creation of a series holds.
    fn own_series(&self, name: &str) -> Option<SeriesArc> {
        let hash = self.hasher.hash_one((name, ""));
        let shard = self.shards.get((hash & self.mask) as usize)?;
        let map = shard.read().unwrap_or_else(PoisonError::into_inner);
        map.find(hash, |s| s.is_own() && s.family_name() == name)
            .cloned()
    }

    /// The kind of the family `name`, shared or own, if there is one
    /// (`families` is the locked family map).
    fn kind_of(&self, families: &Families, name: &str) -> Option<FamilyKind> {
        match families.by_name.get(name) {
            Some(ByName(f)) => Some(f.kind()),
            None => self.own_series(name).map(|s| s.family_kind()),
        }
    }

    /// The most series the store takes (`--statsd.max-series`); `None`: no limit.
    pub fn max_series(&self) -> Option<usize> {
        (self.max_series != usize::MAX).then_some(self.max_series)
    }

    /// Number of series in total.
    pub fn total_series(&self) -> usize {
        // Relaxed: a gauge for self-metrics and the limit check.
        self.total_series.load(Ordering::Relaxed)
    }

    /// Find or create the series for a mapping. Called once per new series key.
    pub fn get_or_create(&self, m: &Mapping, kind: FamilyKind) -> Result<SeriesArc, Refusal> {
        let labels = render_labels(&m.labels);
        let hash = self.hasher.hash_one((m.name.as_str(), labels.as_str()));
        let shard = self
            .shards
            .get((hash & self.mask) as usize)
            .ok_or(Refusal::Limit)?;
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            match map.find(hash, |s| is_key(s, &m.name, &labels)) {
                Some(s) if s.same_definition(kind, m) => return Ok(SeriesArc::clone(s)),
                Some(_) => {}
                // Refuse before creating anything, the family included: a flood of
                // new names past the limit must not grow memory.
                None if self.total_series() >= self.max_series => return Err(Refusal::Limit),
                None => {}
            }
        }
        // Held until the series is in its shard: an own series is its
        // family, so it must be in place before another thread looks for
        // the family.
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let owner = match self.owner(&mut families, m, kind, labels.is_empty())? {
            Resolved::New(owner) => owner,
            Resolved::Existing(s) => return Ok(s),
        };
        let series = match self.insert(shard, hash, &m.name, labels, owner)? {
            Placed::New(series) => series,
            Placed::Found(series) => return Ok(series),
        };
        drop(families);
        // Relaxed: counts for self-metrics and the (approximate) series limit.
        self.total_series.fetch_add(1, Ordering::Relaxed);
        self.series_by_kind[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(SeriesArc::clone(&series));
        Ok(series)
    }

    /// Make the series `name{labels}` of `owner`'s family and put it in its
    /// shard (whose key hash is `hash`); the caller holds the family lock.
    /// A series of that key that is there already (made before the caller
    /// took the lock, or under another rule's definition, which stands) is
    /// found instead when it is of `owner`'s family, else refused.
    fn insert(
        &self,
        shard: &Shard,
        hash: u64,
        name: &str,
        labels: InlineStr,
        owner: Owner,
    ) -> Result<Placed, Refusal> {
        // Held until the series is in its shard (see `Pushed::hold`).
        let pushed = self.pushed.hold();
        if pushed.has_series(name, &labels) {
            return Err(Refusal::Conflict);
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = map.find(hash, |s| is_key(s, name, &labels)) {
            return if s.belongs_to(&owner) {
                Ok(Placed::Found(SeriesArc::clone(s)))
            } else {
                Err(Refusal::Conflict)
            };
        }
        if self.total_series() >= self.max_series {
            return Err(Refusal::Limit);
        }
        let text = match owner {
            Owner::Own(..) => InlineStr::from(name),
            Owner::Shared(_) => labels,
        };
        // `None`: more bounds than a series can count (the mapping file
        // refuses them; only a hand-built `Mapping` gets here).
        let series = Series::new(owner, text, self.clock.now())
            .map(SeriesArc::new)
            .ok_or(Refusal::Conflict)?;
        let hasher = &self.hasher;
        map.insert_unique(hash, SeriesArc::clone(&series), |s| {
            hasher.hash_one((s.family_name(), s.labels()))
        });
        Ok(Placed::New(series))
    }

    /// Whom a new series of `m` (label-less when `bare`) belongs to: its
    /// family, found or made, or the series itself when it would hold its
    /// own family (label-less, no TTL, no family yet). A found own series
    /// that labelled series now join gets a shared family with its
    /// definition. The caller holds `families` until the series is in
    /// place.
    fn owner(
        &self,
        families: &mut Families,
        m: &Mapping,
        kind: FamilyKind,
        bare: bool,
    ) -> Result<Resolved, Refusal> {
        // Relaxed: the generation only orders families against reloads, and the
        // family map's mutex orders everything else.
        let generation = family::generation32(self.mapping_generation.load(Ordering::Relaxed));
        if let Some(ByName(f)) = families.by_name.get(m.name.as_str()) {
            if f.same_definition(kind, m) {
                f.generation.fetch_max(generation, Ordering::Relaxed);
                return Ok(Resolved::New(Owner::Shared(Arc::clone(f))));
            }
            if f.generation.load(Ordering::Relaxed) >= generation {
                // Same mapping, another type (or a second rule naming the family
                // differently): the first definition stands.
                return if f.kind() == kind {
                    Ok(Resolved::New(Owner::Shared(Arc::clone(f))))
                } else {
                    Err(Refusal::Conflict)
                };
            }
            // A reload changed this family's definition: its old series go, the
            // new definition takes over.
            self.replace(families, &m.name);
        } else if let Some(s) = self.own_series(&m.name) {
            let same = s.same_definition(kind, m);
            if same {
                s.raise_own_generation(generation);
            }
            if same || (s.own_generation() >= generation.min(series::TTL_MASK)) {
                if s.family_kind() != kind {
                    return Err(Refusal::Conflict);
                }
                if bare {
                    // Its own key: the first definition stands.
                    return Ok(Resolved::Existing(s));
                }
                let def = s.own_def().map(Arc::clone).ok_or(Refusal::Conflict)?;
                let family = families.add(&m.name, def, s.own_generation());
                return Ok(Resolved::New(Owner::Shared(family)));
            }
            self.replace(families, &m.name);
        }
        if m.name.starts_with(SELF_PREFIX)
            || collides(&m.name, kind, |n| self.kind_of(families, n))
            || (self.openmetrics_names
                && (crate::vocab::openmetrics_clash(&m.name, kind.metric_kind(), |n| {
                    self.kind_of(families, n).map(FamilyKind::metric_kind)
                }) || self.pushed.openmetrics_clash(&m.name, kind.metric_kind())))
            || self.pushed.clashes(&m.name, kind.metric_kind())
        {
            return Err(Refusal::Conflict);
        }
        if m.ttl_secs > 0 {
            // Relaxed: a hint for the sweep; the next sweep sees it at the latest.
            self.has_ttl.store(true, Ordering::Relaxed);
        }
        let def = families.intern(&self.hasher, kind, m);
        if bare && m.ttl_secs == 0 {
            return Ok(Resolved::New(Owner::Own(def, generation)));
        }
        Ok(Resolved::New(Owner::Shared(
            families.add(&m.name, def, generation),
        )))
    }

    /// Remove the family `name` and its series (a reload redefined it).
    fn replace(&self, families: &mut Families, name: &str) {
        families.by_name.remove(name);
        self.retire_where(|s| s.family_name() == name);
    }

    /// Start a new mapping generation (after a reload): families whose definition
    /// the new mapping changes are replaced the first time a sample resolves to them.
    pub fn set_mapping_generation(&self, generation: u64) {
        // Relaxed: see `owner`.
        self.mapping_generation
            .fetch_max(generation, Ordering::Relaxed);
    }

    /// Bumped whenever series are removed; holders of series handles compare it to
    /// know when to drop retired ones.
    pub fn removals(&self) -> u64 {
        // Acquire: pairs with the Release in `retire_where`, so a reader that sees
        // the new count also sees the retired flags.
        self.removals.load(Ordering::Acquire)
    }

    /// Remove every series `pred` selects; returns how many.
    pub fn retire_where(&self, pred: impl Fn(&Series) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            map.retain(|s| {
                if pred(s) {
                    // Relaxed: see `is_retired`; the Release below publishes it.
                    s.state.fetch_or(RETIRED, Ordering::Relaxed);
                    self.total_series.fetch_sub(1, Ordering::Relaxed);
                    self.series_by_kind[s.family_kind().index()].fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                    false
                } else {
                    true
                }
            });
        }
        if removed > 0 {
            // Release: see `removals`.
            self.removals.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// Remove series not updated within their TTL (as of `now`, store clock
    /// seconds); returns how many. Cheap when no family has a TTL.
    pub fn expire(&self, now: u64) -> usize {
        // Relaxed: see `owner`.
        if !self.has_ttl.load(Ordering::Relaxed) {
            return 0;
        }
        let removed = self.retire_where(|s| s.expired(now));
        if removed > 0 {
            let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
            // A family whose last series expired goes too (its type is free again).
            let live: std::collections::HashSet<*const Family> = self
                .shards
                .iter()
                .flat_map(|sh| {
                    let map = sh.read().unwrap_or_else(PoisonError::into_inner);
                    map.iter()
                        .filter_map(|s| s.shared_family().map(Arc::as_ptr))
                        .collect::<Vec<_>>()
                })
                .collect();
            families
                .by_name
                .retain(|ByName(f)| f.ttl_secs() == 0 || live.contains(&Arc::as_ptr(f)));
        }
        removed
    }
}

/// Whether `s` is the series `name{labels}`.
fn is_key(s: &SeriesArc, name: &str, labels: &str) -> bool {
    s.family_name() == name && s.labels() == labels
}

/// Whether a new family `name` of `kind` would render a series name that another
/// family already renders (`x_sum` of summary `x` against a counter `x_sum`).
fn collides(name: &str, kind: FamilyKind, kind_of: impl Fn(&str) -> Option<FamilyKind>) -> bool {
    if kind.has_suffixes() {
        let mut probe = String::with_capacity(name.len() + 7);
        for suffix in crate::vocab::SUFFIXES {
            probe.clear();
            probe.push_str(name);
            probe.push_str(suffix);
            if kind_of(&probe).is_some() {
                return true;
            }
        }
    }
    crate::vocab::SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| kind_of(base).is_some_and(FamilyKind::has_suffixes))
    })
}

#[cfg(test)]
mod tests {
    use super::atomic::Writers;
    use super::*;
    use crate::mapper::{MapOutcome, Mapper, MapperDefaults};
    use crate::parser::MetricType;

    pub(super) fn mapping(name: &str, labels: &[(&str, &str)]) -> Mapping {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Mapper::new(MapperDefaults::default()).map(name, MetricType::Counter, labels) {
            MapOutcome::Map(m) => m,
            other => panic!("the default mapper maps everything, got {other:?}"),
        }
    }

    proptest::proptest! {
        /// Oracle: count every family's series with a map, sort, take k. The
        /// one-pass heap over the sorted list agrees, removed series included.
        #[test]
        fn top_families_agree_with_a_full_sort(
            series in proptest::collection::vec((0u8..12, 0u16..40), 0..300),
            removed in proptest::collection::vec(0u16..40, 0..10),
            k in 0usize..8,
        ) {
            let store = Store::default();
            for (f, l) in &series {
                let id = l.to_string();
                store
                    .get_or_create(&mapping(&format!("f{f}"), &[("id", &id)]), FamilyKind::Counter)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e:?}")))?;
            }
            let gone: Vec<String> = removed.iter().map(|l| format!("id=\"{l}\"")).collect();
            store.retire_where(|s| gone.iter().any(|g| s.labels() == g.as_str()));
            let mut naive: std::collections::HashMap<String, usize> = Default::default();
            store.with_sorted(|list| {
                for s in list.iter().filter(|s| !s.is_retired()) {
                    *naive.entry(s.family_name().to_string()).or_default() += 1;
                }
            });
            let mut want: Vec<(String, usize)> = naive.into_iter().collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let families = want.len();
            want.truncate(k);
            let (top, seen) = store.top_families(k);
            let got: Vec<(String, usize)> =
                top.iter().map(|r| (r.family.name().to_string(), r.series)).collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(seen, families);
        }
    }

    /// A family's sample count moves with each sample, as either writer.
    #[test]
    fn families_count_their_samples() {
        let store = Store::default();
        let s = store
            .get_or_create(&mapping("x", &[]), FamilyKind::Counter)
            .unwrap();
        for w in [Writers::Shared, Writers::Sole, Writers::Sole] {
            s.count_sample(w);
        }
        assert_eq!(store.family_named("x").map(|f| f.samples()), Some(3));
    }

    #[test]
    fn same_key_same_series() {
        let store = Store::default();
        let a = store.get_or_create(&mapping("x", &[("a", "1")]), FamilyKind::Counter);
        let b = store.get_or_create(&mapping("x", &[("a", "1")]), FamilyKind::Counter);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(SeriesArc::ptr_eq(&a, &b));
        assert_eq!(store.total_series(), 1);
        assert_eq!(a.labels(), "a=\"1\"");
    }

    #[test]
    fn type_conflict_refused() {
        let store = Store::default();
        assert!(store
            .get_or_create(&mapping("x", &[]), FamilyKind::Counter)
            .is_ok());
        assert_eq!(
            store
                .get_or_create(&mapping("x", &[("b", "2")]), FamilyKind::Gauge)
                .err(),
            Some(Refusal::Conflict)
        );
    }

    #[test]
    fn suffix_collisions_refused() {
        let store = Store::default();
        assert!(store
            .get_or_create(&mapping("t", &[]), FamilyKind::Summary)
            .is_ok());
        assert_eq!(
            store
                .get_or_create(&mapping("t_count", &[]), FamilyKind::Counter)
                .err(),
            Some(Refusal::Conflict)
        );
        assert!(store
            .get_or_create(&mapping("u_sum", &[]), FamilyKind::Counter)
            .is_ok());
        assert_eq!(
            store
                .get_or_create(&mapping("u", &[]), FamilyKind::Histogram)
                .err(),
            Some(Refusal::Conflict)
        );
    }

    #[test]
    fn reserved_prefix_refused() {
        let store = Store::default();
        assert_eq!(
            store
                .get_or_create(&mapping("promstatsd_lines_total", &[]), FamilyKind::Counter)
                .err(),
            Some(Refusal::Conflict)
        );
    }

    #[test]
    fn openmetrics_name_pairs_clash_only_when_openmetrics_is_on() {
        use FamilyKind::{Counter, Gauge, Histogram, Summary};
        // (first family, second family, the second is refused with OpenMetrics on)
        let cases = [
            (("x", Counter), ("x_total", Counter), true),
            (("x_total", Counter), ("x", Counter), true),
            (("z", Gauge), ("z_total", Counter), true),
            (("y", Counter), ("y_created", Gauge), true),
            (("x_total", Counter), ("x_created", Gauge), true),
            (("s", Summary), ("s_created", Gauge), true),
            (("h_created", Gauge), ("h", Histogram), true),
            (("a", Counter), ("b", Counter), false),
            (("h", Histogram), ("h_total", Gauge), false),
            (("g", Gauge), ("g_total_total", Counter), false),
        ];
        for ((n1, k1), (n2, k2), clash) in cases {
            for openmetrics_names in [false, true] {
                let store = Store::new(StoreOptions {
                    openmetrics_names,
                    ..StoreOptions::default()
                });
                assert!(store.get_or_create(&mapping(n1, &[]), k1).is_ok(), "{n1}");
                let second = store.get_or_create(&mapping(n2, &[]), k2);
                let refused = second.err() == Some(Refusal::Conflict);
                assert_eq!(
                    refused,
                    clash && openmetrics_names,
                    "{n1} then {n2}, OpenMetrics {openmetrics_names}"
                );
            }
        }
    }

    #[test]
    fn limit_refuses_new_series_only() {
        let store = Store::new(StoreOptions {
            max_series: 1,
            ..StoreOptions::default()
        });
        assert!(store
            .get_or_create(&mapping("a", &[]), FamilyKind::Counter)
            .is_ok());
        assert_eq!(
            store
                .get_or_create(&mapping("b", &[]), FamilyKind::Counter)
                .err(),
            Some(Refusal::Limit)
        );
        assert!(store
            .get_or_create(&mapping("a", &[]), FamilyKind::Counter)
            .is_ok());
    }

    #[test]
    fn label_values_escaped() {
        let store = Store::default();
        let s = store
            .get_or_create(&mapping("x", &[("k", "a\"b\\c\nd")]), FamilyKind::Gauge)
            .unwrap();
        assert_eq!(s.labels(), r#"k="a\"b\\c\nd""#);
    }

    #[test]
    fn sorted_view_merges_new_series() {
        let store = Store::default();
        for name in ["c", "a", "b"] {
            store
                .get_or_create(&mapping(name, &[]), FamilyKind::Counter)
                .unwrap();
        }
        let names = |s: &Store| {
            s.with_sorted(|v| {
                v.iter()
                    .map(|s| s.family_name().to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(names(&store), ["a", "b", "c"]);
        store
            .get_or_create(&mapping("aa", &[]), FamilyKind::Counter)
            .unwrap();
        assert_eq!(names(&store), ["a", "aa", "b", "c"]);
    }

    #[test]
    fn histogram_buckets_le_semantics() {
        for w in [Writers::Shared, Writers::Sole] {
            let store = Store::default();
            let s = store
                .get_or_create(&mapping("h", &[]), FamilyKind::Histogram)
                .unwrap();
            s.observe(0.005, 1, 0, w); // == first bound: first bucket
            s.observe(0.0051, 2, 0, w);
            s.observe(100.0, 1, 0, w); // +Inf
            let Some(h) = s.value().histogram() else {
                panic!("not a histogram")
            };
            let counts: Vec<u64> = h
                .counts()
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            assert_eq!(counts[0], 1, "{w:?}");
            assert_eq!(counts[1], 2, "{w:?}");
            assert_eq!(counts[11], 1, "{w:?}");
            assert!((h.sum() - 100.0152).abs() < 1e-9, "{w:?}");
        }
    }

    /// A mapping file on statsd_exporter's keys, observations through the
    /// store, and what client_golang would hold for them, worked out by hand
    /// (each case says how).
    #[test]
    fn a_mapping_file_gives_client_golangs_schema_zero_bucket_and_counts() {
        use crate::mapper::{MapOutcome, Mapper, MapperDefaults};
        use crate::parser::MetricType;
        let yaml = "defaults:\n  observer_type: histogram\nmappings:\n\
            - match: fine.*\n  name: fine\n  histogram_options:\n    native_histogram_bucket_factor: 1.005\n\
            - match: coarse.*\n  name: coarse\n  histogram_options:\n    native_histogram_bucket_factor: 2\n    native_histogram_max_buckets: 2\n";
        let Ok((mapper, _)) = Mapper::from_yaml("t", yaml, &MapperDefaults::default()) else {
            panic!("the mapping loads")
        };
        /// (name, observations, schema, zero count, positive (index, count), negative)
        type Case<'a> = (
            &'a str,
            &'a [f64],
            i8,
            u64,
            &'a [(i32, u64)],
            &'a [(i32, u64)],
        );
        let cases: &[Case<'_>] = &[
            // Default factor 1.1 -> schema 3: 1 in bucket 0, 1.05 in 1, 0 and
            // 1e-40 (under 2^-128) in the zero bucket, -2 in negative 8.
            (
                "plain.x",
                &[1.0, 1.05, 0.0, 1e-40, -2.0],
                3,
                2,
                &[(0, 1), (1, 1)],
                &[(8, 1)],
            ),
            // Factor 1.005 -> schema 8: 2 = base^256.
            ("fine.x", &[2.0, 2.0], 8, 0, &[(256, 2)], &[]),
            // Factor 2 -> schema 0, at most 2 buckets: 1, 2, 4 are buckets 0,
            // 1, 2; the third halves once to schema -1: 0->0, 1->1, 2->1.
            ("coarse.x", &[1.0, 2.0, 4.0], -1, 0, &[(0, 1), (1, 2)], &[]),
        ];
        for (name, values, schema, zero, pos, neg) in cases {
            let MapOutcome::Map(m) = mapper.map(name, MetricType::Timer, Vec::new()) else {
                panic!("{name} maps")
            };
            let store = Store::default();
            let Ok(s) = store.get_or_create(&m, FamilyKind::Histogram) else {
                panic!("{name}: a series")
            };
            for v in *values {
                s.observe(*v, 1, 0, Writers::Sole);
            }
            let Some(n) = s.value().native() else {
                panic!("{name}: native buckets")
            };
            let n = n.snapshot();
            assert_eq!(n.schema(), *schema, "{name}");
            assert_eq!(n.zero_count(), *zero, "{name}");
            assert_eq!(n.count(), values.len() as u64, "{name}");
            assert_eq!(n.positive().iter().collect::<Vec<_>>(), *pos, "{name}");
            assert_eq!(n.negative().iter().collect::<Vec<_>>(), *neg, "{name}");
        }
    }

    fn counts(s: &Series) -> Vec<u64> {
        let h = s.value().histogram().expect("a histogram");
        h.counts()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    #[test]
    fn histogram_cells_round_trip() {
        for w in [Writers::Shared, Writers::Sole] {
            let store = Store::default();
            let mut m = mapping("h", &[("a", "1")]);
            m.buckets = Arc::from(&[1.0, 2.0, 4.0][..]);
            let s = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
            assert_eq!(counts(&s), [0, 0, 0, 0], "{w:?}");
            assert_eq!(s.value().histogram().map(|h| h.sum()), Some(0.0));
            for (v, n) in [(0.5, 1), (1.0, 2), (1.5, 3), (4.0, 1), (4.5, 5), (-3.0, 1)] {
                s.observe(v, n, 0, w);
            }
            assert_eq!(counts(&s), [4, 3, 1, 5], "{w:?}");
            let h = s.value().histogram().unwrap();
            assert_eq!(h.sum(), 0.5 + 2.0 + 4.5 + 4.0 + 22.5 - 3.0, "{w:?}");
            // The same cells seen from another handle of the same series.
            let again = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
            assert_eq!(counts(&again), [4, 3, 1, 5]);
            assert!(format!("{:?}", s.value()).contains("Histogram"));
            // Other kinds have no histogram view.
            let c = store
                .get_or_create(&mapping("c", &[]), FamilyKind::Counter)
                .unwrap();
            assert!(c.value().histogram().is_none());
        }
    }

    #[test]
    fn histogram_without_bounds_has_only_inf() {
        let store = Store::default();
        let mut m = mapping("h", &[]);
        m.buckets = Arc::from(&[][..]);
        let s = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
        s.observe(7.0, 2, 0, Writers::Shared);
        assert_eq!(counts(&s), [2]);
        assert_eq!(s.value().histogram().map(|h| h.sum()), Some(14.0));
    }

    #[test]
    fn histogram_bound_count_limited() {
        let store = Store::default();
        let bounds = |n: usize| -> Arc<[f64]> { (0..n).map(|i| i as f64).collect() };
        let mut m = mapping("wide", &[]);
        m.buckets = bounds(MAX_HISTOGRAM_BUCKETS);
        let s = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
        s.observe(1e9, 1, 0, Writers::Shared);
        let c = counts(&s);
        assert_eq!(c.len(), MAX_HISTOGRAM_BUCKETS + 1);
        assert_eq!(c.last(), Some(&1));
        let mut m = mapping("wider", &[]);
        m.buckets = bounds(MAX_HISTOGRAM_BUCKETS + 1);
        assert_eq!(
            store.get_or_create(&m, FamilyKind::Histogram).err(),
            Some(Refusal::Conflict)
        );
        assert_eq!(store.total_series(), 1);
    }

    /// Histogram series dropped by TTL expiry, by a reload and with the store:
    /// each frees its cells (the `Drop` of `SeriesValue`).
    #[test]
    fn histogram_series_are_freed() {
        let store = Store::default();
        let mut m = mapping("h", &[]);
        m.ttl_secs = 5;
        let mut held = Vec::new();
        for i in 0..2000 {
            m.labels = vec![("i".to_owned(), i.to_string())];
            let s = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
            s.observe(i as f64 / 1000.0, 1, 0, Writers::Shared);
            if i % 100 == 0 {
                held.push(s);
            }
        }
        assert_eq!(store.total_series(), 2000);
        store.with_sorted(|v| assert_eq!(v.len(), 2000));
        assert_eq!(store.expire(store.clock.now() + 3600), 2000);
        assert_eq!(store.total_series(), 0);
        store.with_sorted(|v| assert!(v.is_empty()));
        for s in &held {
            assert!(s.is_retired());
            // A retired series still reads (its holder has not let go yet).
            assert_eq!(counts(s).iter().sum::<u64>(), 1);
            assert_eq!(SeriesArc::strong_count(s), 1, "only this handle is left");
        }
        drop(held);

        // A reload that changes the buckets retires the old series.
        m.ttl_secs = 0;
        for i in 0..500 {
            m.labels = vec![("i".to_owned(), i.to_string())];
            store.get_or_create(&m, FamilyKind::Histogram).unwrap();
        }
        store.set_mapping_generation(1);
        m.buckets = Arc::from(&[1.0][..]);
        m.labels.clear();
        let s = store.get_or_create(&m, FamilyKind::Histogram).unwrap();
        assert_eq!(counts(&s), [0, 0]);
        assert_eq!(store.total_series(), 1);
        store.with_sorted(|v| assert_eq!(v.iter().filter(|s| !s.is_retired()).count(), 1));
        // The rest go with the store.
        for i in 0..500 {
            m.labels = vec![("i".to_owned(), i.to_string())];
            store.get_or_create(&m, FamilyKind::Histogram).unwrap();
        }
        drop(store);
        assert_eq!(SeriesArc::strong_count(&s), 1);
    }

    fn def_count(store: &Store) -> usize {
        store
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .defs
            .len()
    }

    #[test]
    fn equal_definitions_are_shared() {
        let store = Store::default();
        let get = |name: &str, kind: FamilyKind, f: &dyn Fn(&mut Mapping)| {
            let mut m = mapping(name, &[]);
            f(&mut m);
            store.get_or_create(&m, kind).unwrap()
        };
        let a = get("a", FamilyKind::Counter, &|_| {});
        let b = get("b", FamilyKind::Counter, &|_| {});
        assert!(std::ptr::eq(a.def(), b.def()));
        assert!(!a.same_family(&b));
        let g = get("g", FamilyKind::Gauge, &|_| {});
        assert!(!std::ptr::eq(a.def(), g.def()));
        let h = get("h", FamilyKind::Counter, &|m| m.help = Arc::from("Other."));
        assert!(!std::ptr::eq(a.def(), h.def()));
        assert_eq!(&*h.def().help, "Other.");
        let t = get("t", FamilyKind::Counter, &|m| m.ttl_secs = 60);
        assert!(!std::ptr::eq(a.def(), t.def()));
        assert_eq!(t.def().ttl_secs, 60);
        // Equal bounds share a definition, the sign of a zero notwithstanding.
        let neg = get("neg", FamilyKind::Histogram, &|m| {
            m.buckets = Arc::from(&[-0.0, 1.0][..])
        });
        let pos = get("pos", FamilyKind::Histogram, &|m| {
            m.buckets = Arc::from(&[0.0, 1.0][..])
        });
        assert!(std::ptr::eq(neg.def(), pos.def()));
        let other = get("other", FamilyKind::Histogram, &|m| {
            m.buckets = Arc::from(&[0.0, 2.0][..])
        });
        assert!(!std::ptr::eq(pos.def(), other.def()));
        assert_eq!(*other.def().buckets, [0.0, 2.0]);
        assert_eq!(other.family_kind(), FamilyKind::Histogram);
        assert_eq!(def_count(&store), 6);
    }

    /// Definitions no family uses any more (left behind by reloads or TTL expiry)
    /// do not pile up.
    #[test]
    fn unused_definitions_are_pruned() {
        let store = Store::default();
        let keep = store
            .get_or_create(&mapping("keep", &[]), FamilyKind::Counter)
            .unwrap();
        for round in 0..50 {
            for i in 0..20 {
                let mut m = mapping(&format!("f{i}"), &[]);
                m.help = Arc::from(format!("Round {round}, family {i}."));
                m.ttl_secs = 1;
                store.get_or_create(&m, FamilyKind::Gauge).unwrap();
            }
            assert_eq!(store.expire(store.clock.now() + 10), 20);
            // A scrape lets go of the expired series (never scraped).
            store.with_sorted(|_| ());
            // In use: `keep`'s (1); the table prunes once it has doubled, so it
            // holds at most one round's leftovers twice over.
            assert!(
                def_count(&store) <= 2 * 21 + 1,
                "round {round}: {}",
                def_count(&store)
            );
        }
        // The definition still in use survived every prune.
        let again = store
            .get_or_create(&mapping("keep2", &[]), FamilyKind::Counter)
            .unwrap();
        assert!(std::ptr::eq(keep.def(), again.def()));
    }

    /// A series removed before any scrape saw it does not join the render order
    /// (which would hold it, its family and definition until the next removal).
    #[test]
    fn a_series_expired_before_its_first_scrape_is_let_go() {
        let store = Store::default();
        let mut m = mapping("short_lived", &[]);
        m.ttl_secs = 1;
        let s = store.get_or_create(&m, FamilyKind::Gauge).unwrap();
        assert_eq!(store.expire(store.clock.now() + 10), 1);
        store.with_sorted(|v| assert!(v.is_empty()));
        assert_eq!(SeriesArc::strong_count(&s), 1, "only this handle is left");
    }

    #[test]
    fn retired_flag_and_ttl_share_a_word() {
        let store = Store::default();
        let mut m = mapping("x", &[]);
        m.ttl_secs = u64::MAX;
        let s = store.get_or_create(&m, FamilyKind::Counter).unwrap();
        assert!(!s.is_retired());
        assert_eq!(s.ttl_secs(), series::TTL_MASK);
        let mut m = mapping("y", &[]);
        m.ttl_secs = 30;
        let t = store.get_or_create(&m, FamilyKind::Counter).unwrap();
        assert_eq!(t.ttl_secs(), 30);
        let now = store.clock.now();
        t.touch(now);
        assert_eq!(store.expire(now + 29), 0);
        assert!(!t.is_retired());
        assert_eq!(store.expire(now + 30), 1);
        assert!(t.is_retired());
        assert_eq!(t.ttl_secs(), 30, "retiring keeps the TTL");
        assert!(
            matches!(t.value(), SeriesValue::Counter(_)),
            "retiring keeps the kind"
        );
        assert!(!s.is_retired());
    }
}
#[cfg(test)]
mod size_guard {
    /// Memory per series is a budget (BENCHMARKS.md): a field added to `Series`
    /// must be a decision, not an accident. 48 bytes plus the `SeriesArc`'s one
    /// count is 56, one 64-byte glibc chunk (a chunk holds its size plus 8,
    /// rounded up to 16); 8 more bytes would make it 80.
    #[test]
    fn a_series_fits_in_48_bytes() {
        assert!(std::mem::size_of::<super::Series>() <= 48);
        let store = super::Store::default();
        let m = super::tests::mapping("x", &[]);
        let s = store.get_or_create(&m, super::FamilyKind::Counter).unwrap();
        assert_eq!(
            s.as_ptr() as usize - s.heap_ptr() as usize,
            8,
            "one count before the series"
        );
    }

    /// A family per series is common (StatsD names without tags): 40 bytes plus
    /// the `Arc`'s counts is 56, one 64-byte chunk; its definition is shared.
    #[test]
    fn a_family_fits_in_40_bytes() {
        assert!(std::mem::size_of::<super::Family>() <= 40);
    }
}
#[cfg(test)]
mod own_tests;
