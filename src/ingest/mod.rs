//! Ingest: parser → mapper → store, with a per-thread cache for known series.
//!
//! An [`Ingester`] belongs to one thread. For each sample it hashes the raw key
//! (type, name section, DogStatsD tags, container id) once and looks it up in its
//! own cache. A hit updates the series' atomics: no lock, no allocation. A miss
//! decodes tags, runs the mapper, creates or finds the series in the store, and
//! caches the answer (including "dropped" and "type conflict").
//!
//! May import: vocab, sys, model, parser, mapper, store, relay.

use crate::mapper::{MapOutcome, Mapper, MapperHandle, ObserverType};
use crate::parser::{self, tags, LineStart, MetricType, ParseOptions, Sample, Value};
mod cache;
pub mod stats;

use crate::relay::RelayStats;
use crate::store::atomic::Writers;
use crate::store::{FamilyKind, Refusal, Store};
use crate::sys::prefetch;
use cache::{Answer, Cache, Entry, Miss, Resolved, MAX_REFUSED};
use stats::{EventKind, IngestStats, ListenerKind, LocalStats};
use std::mem::MaybeUninit;
use std::sync::Arc;

pub use cache::MAX_ENTRIES as MAX_CACHE_ENTRIES;

/// Default bound on an ingester's cache entries.
pub const DEFAULT_CACHE_ENTRIES: usize = 1 << 20;

/// Samples parsed before their cache lookups start (see [`Ingester::ingest_lines`]).
const BATCH: usize = 32;

/// A sample between its cache lookup and its update (see [`Ingester::ingest_lines`]).
struct InFlight<'a> {
    s: Sample<'a>,
    value: f64,
    hash: u32,
    /// Where the index says its entry is (checked before use).
    hint: Option<usize>,
}

/// Up to [`BATCH`] started samples, filled in order.
///
/// Its places start uninitialised: an array of `Option`s was filled by 32
/// copies of a 160-byte `None` for every datagram.
struct Batch<'a> {
    items: [MaybeUninit<InFlight<'a>>; BATCH],
    /// How many of `items`, from the first, hold a sample.
    len: usize,
}

// `drain` forgets samples without dropping them.
const _: () = assert!(!std::mem::needs_drop::<InFlight<'static>>());

impl<'a> Batch<'a> {
    fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; BATCH],
            len: 0,
        }
    }

    /// Add `f`; true when the batch is full. The caller drains a full batch
    /// before the next push (a push into a full one would lose the sample).
    #[inline(always)]
    fn push(&mut self, f: InFlight<'a>) -> bool {
        debug_assert!(self.len < BATCH, "push into a full batch");
        if let Some(place) = self.items.get_mut(self.len) {
            place.write(f);
            self.len += 1;
        }
        self.len == BATCH
    }

    /// The samples in order; the batch is empty afterwards.
    #[inline(always)]
    fn drain(&mut self) -> &mut [InFlight<'a>] {
        let len = std::mem::take(&mut self.len).min(BATCH);
        // SAFETY: `push` wrote the first `len` places (and `len` never exceeds
        // `BATCH`); `MaybeUninit<T>` has `T`'s layout, so they form a valid
        // `[InFlight]`. The slice borrows `self`, so no `push` overwrites them
        // while it lives, and `InFlight` needs no drop.
        unsafe { std::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast(), len) }
    }
}

fn event_kind(t: MetricType) -> EventKind {
    match t {
        MetricType::Counter => EventKind::Counter,
        MetricType::Gauge => EventKind::Gauge,
        MetricType::Set => EventKind::Set,
        MetricType::Timer | MetricType::Histogram | MetricType::Distribution => EventKind::Observer,
    }
}

/// Feeds bytes into a store; one per thread.
#[derive(Debug)]
pub struct Ingester {
    store: Arc<Store>,
    handle: Arc<MapperHandle>,
    mapper: Arc<Mapper>,
    mapper_generation: u64,
    removals: u64,
    opts: ParseOptions,
    cache: Cache,
    cache_cap: usize,
    /// Refused keys in the cache.
    refused: usize,
    /// Counters not yet added to the store's stats; see [`Ingester::flush_stats`].
    pub local: LocalStats,
    relay: Option<crate::relay::Relay>,
    /// The store's shared ingest and relay counters.
    stats: Arc<IngestStats>,
    relay_stats: Arc<RelayStats>,
    /// Whether other threads update this store's series too.
    writers: Writers,
}

impl Ingester {
    /// An ingester writing into `store`, mapping with the mapper `handle` holds.
    /// `cache_cap` bounds the series cache (0: no cache, every sample is mapped;
    /// at most [`MAX_CACHE_ENTRIES`]).
    pub fn new(
        store: Arc<Store>,
        handle: Arc<MapperHandle>,
        opts: ParseOptions,
        cache_cap: usize,
    ) -> Self {
        let (mapper, mapper_generation) = handle.load();
        let removals = store.removals();
        let stats = store.metrics().shared::<IngestStats>();
        let relay_stats = store.metrics().shared::<RelayStats>();
        Self {
            stats,
            relay_stats,
            store,
            handle,
            mapper,
            mapper_generation,
            removals,
            opts,
            cache: Cache::default(),
            cache_cap: cache_cap.min(cache::MAX_ENTRIES),
            refused: 0,
            local: LocalStats::default(),
            relay: None,
            writers: Writers::Shared,
        }
    }

    /// Update series values with plain atomic stores instead of read-modify-write
    /// instructions. Only for an ingester that is the one thread writing its
    /// store's series (the daemon with one ingest loop); with a second writer,
    /// concurrent updates of one series could be lost (never torn).
    pub(crate) fn sole_writer(mut self) -> Self {
        self.writers = Writers::Sole;
        self
    }

    /// Forward every valid line to an upstream StatsD as well.
    pub fn with_relay(mut self, relay: crate::relay::Relay) -> Self {
        self.relay = Some(relay);
        self
    }

    /// The store this ingester writes to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Ingest one datagram (or a run of complete lines) received on `listener`.
    pub fn ingest_packet(&mut self, listener: ListenerKind, buf: &[u8]) {
        self.local.packet(listener, buf.len());
        let before = self.local.lines;
        self.ingest_lines(buf);
        self.local.lines_since(listener, before);
    }

    /// Ingest `\n`-separated lines.
    ///
    /// In batches of up to 32 samples, so that the cache misses of a large
    /// working set overlap each other instead of stalling one sample at a time:
    /// parsing a sample prefetches its index slot; once the batch is parsed, a
    /// pass reads every slot and prefetches the entry it names, a pass reads
    /// every entry and prefetches its series, and a last pass applies the
    /// samples in order. Each pass finds the memory the one before asked for a
    /// whole batch earlier. A pass only prefetches, and the last checks the
    /// entry again, so a cache change made by an earlier sample of the batch (a
    /// new entry, an eviction) costs a lookup, never a wrong update.
    pub fn ingest_lines(&mut self, buf: &[u8]) {
        if self.relay.is_some() {
            // The relay forwards whole valid lines: keep the line-at-a-time path.
            for line in parser::lines(buf) {
                self.ingest_line(line);
            }
            return;
        }
        let mut batch = Batch::new();
        for line in parser::lines(buf) {
            self.local.lines += 1;
            match parser::start_line(line, self.opts) {
                LineStart::Plain(s) => self.take(s, &mut batch),
                LineStart::Other(rest) => {
                    for sample in rest.samples() {
                        match sample {
                            Ok(s) => self.take(s, &mut batch),
                            Err(e) => self.local.sample_error(e),
                        }
                    }
                }
            }
        }
        self.run_batch(batch.drain());
    }

    /// Count a parsed sample and add it to `batch`, running the batch when full.
    #[inline(always)]
    fn take<'a>(&mut self, s: Sample<'a>, batch: &mut Batch<'a>) {
        self.local.samples += 1;
        if let Some(f) = self.start(s) {
            if batch.push(f) {
                self.run_batch(batch.drain());
            }
        }
    }

    /// The passes of [`Ingester::ingest_lines`] over one parsed batch.
    #[inline(always)]
    fn run_batch(&mut self, batch: &mut [InFlight<'_>]) {
        for f in batch.iter_mut() {
            f.hint = self.cache.hint(f.hash);
            if let Some(e) = f.hint.and_then(|i| self.cache.entries.get(i)) {
                // A 40-byte entry may straddle two cache lines: ask for both.
                prefetch(e);
                prefetch(
                    (e as *const Entry)
                        .cast::<u8>()
                        .wrapping_add(size_of::<Entry>() - 1),
                );
            }
        }
        for f in batch.iter() {
            self.prefetch_series(f);
        }
        for f in batch.iter() {
            self.finish(&f.s, f.value, f.hash, f.hint);
        }
    }

    /// Check the value, hash the key and prefetch the index slot.
    #[inline]
    fn start<'a>(&mut self, s: Sample<'a>) -> Option<InFlight<'a>> {
        let value = self.checked_value(&s)?;
        let hash = self.hash(&s);
        self.cache.prefetch_slot(hash);
        Some(InFlight {
            s,
            value,
            hash,
            hint: None,
        })
    }

    /// Prefetch the series and the out-of-line key a sample's (already
    /// prefetched) entry points to.
    #[inline]
    fn prefetch_series(&self, f: &InFlight<'_>) {
        if let Some(e) = f.hint.and_then(|i| self.cache.entries.get(i)) {
            // A key too long to sit in the entry is compared at the next stage.
            prefetch(e.key.as_bytes().as_ptr());
            if let Some(series) = &e.series {
                prefetch(series.as_ptr());
            }
        }
    }

    /// Apply a started sample: through its entry if the hint still holds (the
    /// previous sample may have changed the cache), else by a full lookup.
    #[inline]
    fn finish(&mut self, s: &Sample<'_>, value: f64, hash: u32, hint: Option<usize>) {
        let now = self.store.clock.now();
        let entry = hint
            .and_then(|i| self.cache.at(i, s))
            .or_else(|| self.cache.find(hash, s));
        if let Some(e) = entry {
            if !e.series.as_ref().is_some_and(|series| series.is_retired()) {
                let a = self.cache.answer(e);
                apply(a, &mut self.local, s, value, now, self.writers);
                return;
            }
        }
        self.resolve(s, hash, value, now);
    }

    /// Ingest one line (without its newline).
    pub fn ingest_line(&mut self, line: &[u8]) {
        self.local.lines += 1;
        let mut valid = true;
        for sample in parser::parse_line(line, self.opts) {
            match sample {
                Ok(s) => {
                    self.local.samples += 1;
                    self.record(&s);
                }
                Err(e) => {
                    valid = false;
                    self.local.sample_error(e);
                }
            }
        }
        if valid {
            if let Some(r) = &mut self.relay {
                r.push(line, &self.relay_stats);
            }
        }
    }

    /// Add the counts gathered since the last flush to the shared self-metrics,
    /// and pick up a reloaded mapping or drop handles of removed series. Called
    /// once per batch.
    pub fn flush_stats(&mut self) {
        self.local.flush(&self.stats);
        if let Some(r) = &mut self.relay {
            r.tick(self.store.clock.now(), &self.relay_stats);
        }
        if self.handle.generation() != self.mapper_generation {
            let (mapper, generation) = self.handle.load();
            self.mapper = mapper;
            self.mapper_generation = generation;
            // Every key is mapped again: series whose mapping did not change are
            // found again in the store with their values.
            self.cache.clear();
            self.refused = 0;
        }
        let removals = self.store.removals();
        if removals != self.removals {
            self.removals = removals;
            // Room was made: refused keys may fit now.
            self.cache.retain(|e| match &e.series {
                Some(s) => !s.is_retired(),
                None => e.miss() != Miss::Refused,
            });
            self.refused = 0;
        }
    }

    /// The hash of a sample's key (see [`Cache::hash`]).
    #[inline]
    fn hash(&self, s: &Sample<'_>) -> u32 {
        self.cache.hash(s)
    }

    /// Record one parsed sample.
    pub fn record(&mut self, s: &Sample<'_>) {
        // Not through `start`: that would copy the sample into an `InFlight`.
        if let Some(value) = self.checked_value(s) {
            let hash = self.hash(s);
            self.finish(s, value, hash, None);
        }
    }

    /// The value to apply, or `None` (counted) for one the series would refuse,
    /// checked before any lookup (statsd_exporter does not create a series for it
    /// either).
    #[inline]
    fn checked_value(&mut self, s: &Sample<'_>) -> Option<f64> {
        let v = recorded_value(s);
        if s.metric_type == MetricType::Counter && v < 0.0 {
            self.local.negative_counters += 1;
            return None;
        }
        Some(v)
    }

    /// The slow path: map and find or create the series, cache the answer, apply
    /// the sample. A sample refused at the series limit is counted, not cached.
    fn resolve(&mut self, s: &Sample<'_>, hash: u32, value: f64, now: u64) {
        let decoded = tags::decode(s);
        let mut tag_errors = decoded.errors;
        let has_tags = !decoded.labels.is_empty();
        let name = sample_name(s);
        let mut scale = 1.0;
        let target = match self.mapper.map(&name, s.metric_type, decoded.labels) {
            MapOutcome::Drop => Err(Miss::Drop),
            MapOutcome::EmptyName => Err(Miss::EmptyName),
            MapOutcome::Map(mut m) => {
                scale = m.scale.unwrap_or(1.0);
                let family_kind = family_kind(s.metric_type, m.observer);
                // A tag named like the label the exposition adds would make the page
                // invalid: skip it and count it.
                let reserved = reserved_label(family_kind);
                let before = m.labels.len();
                m.labels.retain(|(k, _)| k != reserved);
                tag_errors += (before - m.labels.len()) as u32;
                match self.store.get_or_create(&m, family_kind) {
                    Ok(series) => Ok(series),
                    Err(Refusal::Conflict) => {
                        Err(Miss::Conflict(self.stats.conflict_slot(&m.name)))
                    }
                    Err(Refusal::Limit) if self.refused < MAX_REFUSED => {
                        self.refused += 1;
                        Err(Miss::Refused)
                    }
                    Err(Refusal::Limit) => {
                        // Enough refusals remembered: count this one, keep nothing.
                        self.local.series_refused += 1;
                        self.local.tag_errors += u64::from(tag_errors);
                        return;
                    }
                }
            }
        };
        let r = Resolved {
            target,
            scale,
            tag_errors,
            has_tags,
        };
        apply(r.answer(), &mut self.local, s, value, now, self.writers);
        if self.cache_cap == 0 {
            // No cache: nothing to remember.
            return;
        }
        if self.cache.len() >= self.cache_cap {
            // Full: drop about half the entries (chosen by hash), so a working set
            // slightly above the bound does not re-map everything at once.
            self.cache.evict(1u32 << (self.local.cache_flushes % 32));
            if self.cache.len() >= self.cache_cap {
                self.cache.clear();
                self.refused = 0;
            }
            self.local.cache_flushes += 1;
        }
        // Remove a stale entry for the same key (a retired series) first.
        self.cache.remove(hash, s);
        if let Some(entry) = self
            .cache
            .scale_index(r.scale)
            .and_then(|scale| Entry::new(s, r, scale))
        {
            self.cache.insert(hash, entry);
        }
    }
}

/// The StatsD name the mapper sees: the name without embedded tags.
pub fn sample_name(s: &Sample<'_>) -> String {
    let mut name = String::from_utf8_lossy(s.name_head).into_owned();
    name.push_str(&String::from_utf8_lossy(s.name_tail));
    name
}

/// The kind of family a sample of type `t` records into; `observer` (the
/// rule's `observer_type`) decides for `ms`, `h` and `d`.
pub fn family_kind(t: MetricType, observer: ObserverType) -> FamilyKind {
    match t {
        MetricType::Counter => FamilyKind::Counter,
        MetricType::Gauge => FamilyKind::Gauge,
        MetricType::Set => FamilyKind::Set,
        MetricType::Timer | MetricType::Histogram | MetricType::Distribution => match observer {
            ObserverType::Summary => FamilyKind::Summary,
            ObserverType::Histogram => FamilyKind::Histogram,
        },
    }
}

/// The label the exposition adds to a family of `kind` (`quantile`, `le`), so
/// a tag of that name is skipped and counted as a tag error; `""` for none.
pub fn reserved_label(kind: FamilyKind) -> &'static str {
    match kind {
        FamilyKind::Summary => "quantile",
        FamilyKind::Histogram => "le",
        _ => "",
    }
}

/// A sample's value as recorded, before a rule's `scale`: a counter's divided
/// by its sample rate, a timer's milliseconds in seconds, a set member 0 (the
/// member itself is what counts). A negative counter value is refused by the
/// caller.
#[inline(always)]
pub fn recorded_value(s: &Sample<'_>) -> f64 {
    match s.value {
        Value::Number(v) => match s.metric_type {
            // Skip the division (tens of cycles) for the usual unsampled line.
            MetricType::Counter if s.sample_rate != 1.0 => v / s.sample_rate,
            MetricType::Timer => v / 1000.0,
            _ => v,
        },
        Value::Member(_) => 0.0,
    }
}

/// How many observations an `ms`/`h`/`d` sample stands for: its sample rate
/// inverted, as statsd_exporter replays `int(1/rate)` copies (at least one).
#[inline]
pub fn observations(sample_rate: f64) -> u64 {
    ((1.0 / sample_rate) as u64).max(1)
}

/// Apply a sample to what its key resolved to.
#[inline]
fn apply(a: Answer<'_>, local: &mut LocalStats, s: &Sample<'_>, value: f64, now: u64, w: Writers) {
    let kind = event_kind(s.metric_type);
    local.tag_errors += u64::from(a.tag_errors);
    local.tags += u64::from(a.has_tags);
    let series = match a.target {
        Ok(series) => series,
        Err(Miss::Drop) => {
            local.dropped += 1;
            return;
        }
        Err(Miss::Conflict(slot)) => {
            local.conflict(slot, kind);
            return;
        }
        Err(Miss::Refused) => {
            local.series_refused += 1;
            return;
        }
        Err(Miss::EmptyName) => {
            local.empty_names += 1;
            return;
        }
    };
    let value = value * a.scale;
    if s.metric_type == MetricType::Counter && value < 0.0 {
        local.negative_counters += 1;
        return;
    }
    series.touch(now);
    series.count_sample(w);
    match s.metric_type {
        MetricType::Counter => series.counter_add(value, w),
        MetricType::Gauge => series.gauge_update(value, s.relative, w),
        MetricType::Set => {
            if let Value::Member(m) = s.value {
                series.set_insert(m);
            }
        }
        MetricType::Timer | MetricType::Histogram | MetricType::Distribution => {
            // Weighted by the sample rate: the same result as statsd_exporter's
            // replaying `int(1/rate)` copies, in one update.
            series.observe(value, observations(s.sample_rate), now, w);
        }
    }
    local.event(kind);
}

#[cfg(test)]
mod tests {
    use super::cache::{same, MAX_SCALES};
    use super::*;
    use crate::mapper::MapperDefaults;

    fn ingester() -> Ingester {
        Ingester::new(
            Arc::new(Store::default()),
            Arc::new(MapperHandle::new(Mapper::new(MapperDefaults::default()))),
            ParseOptions::default(),
            DEFAULT_CACHE_ENTRIES,
        )
    }

    #[test]
    fn short_byte_equality_agrees_with_slices() {
        let base: Vec<u8> = (0..40u8).collect();
        for n in 0..40 {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 0x20;
                assert!(!same(a, &b), "{n} differs at {i}");
            }
            assert!(!same(a, &base[..n + 1]));
        }
    }

    fn sample(line: &[u8]) -> Sample<'_> {
        match parser::parse_line(line, ParseOptions::default()).next() {
            Some(Ok(s)) => s,
            other => panic!(
                "{:?} did not parse: {other:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }

    fn dropped() -> Resolved {
        Resolved {
            target: Err(Miss::Drop),
            scale: 1.0,
            tag_errors: 0,
            has_tags: false,
        }
    }

    #[test]
    fn an_entry_matches_its_own_key_only() {
        let s = sample(b"a.b:1|c|#k:v|c:abc");
        let Some(e) = Entry::new(&s, dropped(), 0) else {
            panic!("short key not cached")
        };
        assert!(e.matches(&s));
        for other in [
            &b"a.b:1|g|#k:v|c:abc"[..],
            b"a.b:1|c|#k:v|c:abd",
            b"a.b:1|c|#k:w|c:abc",
            b"a.c:1|c|#k:v|c:abc",
            b"a.b:1|c|#k:v",
            // The same bytes split differently between name, tags and container id.
            b"a.bk:1|c|#:v|c:abc",
            b"a.b:1|c|#k:vabc",
        ] {
            assert!(
                !e.matches(&sample(other)),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert!(e.matches(&sample(b"a.b:7|c|@0.5|#k:v|c:abc")));
    }

    /// Conflicts are counted by family name, past the bound as `other`, and a
    /// cached conflicting key keeps counting under its own name.
    #[test]
    fn conflicts_are_named_up_to_the_bound() {
        let mut ing = ingester();
        let extra = 7;
        for i in 0..stats::MAX_CONFLICT_NAMES + extra {
            let lines = format!("c{i}:1|c\nc{i}:1|g\nc{i}:2|g");
            ing.ingest_lines(lines.as_bytes());
        }
        ing.flush_stats();
        let page = crate::exposition::text::render_to_string(ing.store());
        let value = |labels: &str| -> Option<&str> {
            let prefix = format!("promstatsd_events_conflict_total{{{labels}}} ");
            page.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
        };
        let cases = [
            ("metric_name=\"c0\",type=\"gauge\"", Some("2")),
            ("metric_name=\"c99\",type=\"gauge\"", Some("2")),
            ("metric_name=\"c100\",type=\"gauge\"", None),
            ("metric_name=\"other\",type=\"gauge\"", Some("14")),
            ("metric_name=\"c0\",type=\"counter\"", None),
        ];
        for (labels, want) in cases {
            assert_eq!(value(labels), want, "{labels}");
        }
        let names = ing.stats.conflicting_names();
        assert_eq!(names.len(), stats::MAX_CONFLICT_NAMES + 1);
        assert_eq!(names.first(), Some(&("c0".to_owned(), 2)));
        assert_eq!(names.last(), Some(&("other".to_owned(), 2 * extra as u64)));
    }

    #[test]
    fn an_entry_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn long_keys_are_cached_too_and_huge_ones_are_not() {
        let long = format!("{}:1|c|#{}", "n".repeat(300), "t:v,".repeat(100));
        let s = sample(long.as_bytes());
        assert!(Entry::new(&s, dropped(), 0).is_some_and(|e| e.matches(&s)));
        // Only with `--statsd.max-line-length` raised past 64 KiB.
        let opts = ParseOptions {
            max_line_length: 1 << 20,
            ..ParseOptions::default()
        };
        let huge = format!("{}:1|c", "n".repeat(70_000));
        let s = parser::parse_line(huge.as_bytes(), opts).next();
        let Some(Ok(s)) = s else {
            panic!("a 70,000-byte name did not parse")
        };
        assert!(Entry::new(&s, dropped(), 0).is_none());
        // A key that cannot be cached is still counted on every sample.
        let mut ing = ingester();
        ing.opts = opts;
        let twice = format!("{}:1|c\n{}:2|c", "n".repeat(70_000), "n".repeat(70_000));
        ing.ingest_lines(twice.as_bytes());
        assert_eq!(ing.cache.len(), 0);
        ing.flush_stats();
        let page = crate::exposition::text::render_to_string(ing.store());
        assert!(
            page.contains(&format!("\n{} 3\n", "n".repeat(70_000))),
            "value 3 expected"
        );
    }

    #[test]
    fn scales_are_shared_and_bounded() {
        let mut cache = Cache::default();
        assert_eq!(cache.scale_index(1.0), Some(0));
        assert_eq!(cache.scale_index(0.001), Some(1));
        assert_eq!(cache.scale_index(0.001), Some(1));
        for i in 2..MAX_SCALES {
            assert_eq!(cache.scale_index(i as f64 + 0.5), u8::try_from(i).ok());
        }
        assert_eq!(cache.scale_index(-7.0), None);
        assert_eq!(cache.scale_index(0.001), Some(1));
        cache.clear();
        assert_eq!(cache.scale_index(-7.0), Some(1));
    }

    #[test]
    fn the_cache_finds_what_it_holds_after_removals() {
        let mut ing = ingester();
        let lines: Vec<String> = (0..50).map(|i| format!("k{i}:1|c")).collect();
        let samples: Vec<Vec<u8>> = lines.iter().map(|l| l.clone().into_bytes()).collect();
        fn parse(l: &[u8]) -> Option<Sample<'_>> {
            parser::parse_line(l, ParseOptions::default())
                .next()
                .and_then(Result::ok)
        }
        for l in &samples {
            ing.ingest_line(l);
        }
        assert_eq!(ing.cache.len(), 50);
        // Remove every third key; the rest must still be found at their entries.
        for l in samples.iter().step_by(3) {
            let Some(s) = parse(l) else { panic!("parse") };
            let h = ing.hash(&s);
            ing.cache.remove(h, &s);
            assert!(ing.cache.find(h, &s).is_none());
        }
        for (i, l) in samples.iter().enumerate() {
            let Some(s) = parse(l) else { panic!("parse") };
            let h = ing.hash(&s);
            assert_eq!(ing.cache.find(h, &s).is_some(), i % 3 != 0, "{i}");
        }
        let before = ing.cache.len();
        ing.cache.evict(1);
        assert!(ing.cache.len() < before, "eviction dropped nothing");
        // Kept: the keys not removed above whose hash has the bit clear.
        for (i, l) in samples.iter().enumerate() {
            let Some(s) = parse(l) else { panic!("parse") };
            let h = ing.hash(&s);
            let found = ing.cache.find(h, &s);
            assert_eq!(found.is_some(), i % 3 != 0 && h & 1 == 0, "{i}");
            assert!(found.is_none_or(|e| e.matches(&s)));
        }
    }

    fn pages_equal(a: &Ingester, b: &Ingester) -> Result<(), String> {
        let render = |i: &Ingester| {
            let mut out = Vec::new();
            crate::exposition::text::render(i.store(), &mut out);
            // Which entries a flush keeps depends on each ingester's random hash
            // seed, so the flush count may differ; nothing else may.
            String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| !l.contains("cache_flushes"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (pa, pb) = (render(a), render(b));
        if pa == pb {
            Ok(())
        } else {
            Err(format!("pipelined:\n{pa}\nline by line:\n{pb}"))
        }
    }

    proptest::proptest! {
        /// The batched path (lookups a batch of up to 32 samples ahead, hints
        /// that earlier samples' cache changes can invalidate, plain lines taken
        /// without the line iterator) gives exactly the line-by-line result, with
        /// a cache small enough to be flushed mid-batch, over lines of one or
        /// several samples, bad samples between good ones, sample rates and
        /// relative gauges.
        #[test]
        fn pipelined_ingest_equals_line_by_line(
            lines in proptest::collection::vec(
                (0u8..12, 0u8..4, -3i8..20, proptest::bool::ANY, 0u8..6),
                1..120,
            ),
            cap in 0usize..8,
        ) {
            let mut a = ingester();
            let mut b = ingester();
            a.cache_cap = cap;
            b.cache_cap = cap;
            let mut buf = Vec::new();
            for (key, ty, v, tagged, shape) in &lines {
                let types = ["c", "g", "ms", "s"];
                let t = types[usize::from(*ty)];
                let t2 = types[usize::from((*ty + 1) % 4)];
                let tags = if *tagged { "|#k:v" } else { "" };
                let line = match shape {
                    0 => format!("m{key}:{v}|{t}{tags}\n"),
                    1 => format!("m{key}:{v}|{t}:{}|{t2}\n", *v + 1),
                    2 => format!("m{key}:{v}|{t}:oops|zz:{v}|{t2}\r\n"),
                    3 => format!("m{key}:{v}:{}|ms{tags}\n", *v + 2),
                    4 => format!("m{key}:{v}|{t}|@0.25{tags}\n"),
                    _ => format!("m{key}:+{v}|g\nm{key}:-{v}|g{tags}\n"),
                };
                buf.extend_from_slice(line.as_bytes());
            }
            a.ingest_lines(&buf);
            for line in parser::lines(&buf) {
                b.ingest_line(line);
            }
            a.flush_stats();
            b.flush_stats();
            proptest::prop_assert_eq!(pages_equal(&a, &b), Ok(()));
        }
    }

    proptest::proptest! {
        /// The cache against a model set, through inserts, removals (backward
        /// shifts in the probe runs) and retains, with a tiny key space so probe
        /// runs collide and wrap.
        #[test]
        fn the_cache_index_agrees_with_a_model(
            ops in proptest::collection::vec((0u8..3, 0u16..300), 1..400),
        ) {
            let lines: Vec<Vec<u8>> = (0..300).map(|i| format!("k{i}:1|c").into_bytes()).collect();
            let sample = |i: u16| {
                parser::parse_line(&lines[usize::from(i)], ParseOptions::default())
                    .next()
                    .and_then(Result::ok)
            };
            let mut cache = Cache::default();
            let mut model = std::collections::BTreeSet::new();
            for (op, k) in ops {
                let Some(s) = sample(k) else { continue };
                let h = cache.hash(&s);
                match op {
                    0 if !model.contains(&k) => {
                        let r = Resolved { tag_errors: u32::from(k % 250), ..dropped() };
                        if let Some(e) = Entry::new(&s, r, 0) {
                            cache.insert(h, e);
                        }
                        model.insert(k);
                    }
                    1 => {
                        cache.remove(h, &s);
                        model.remove(&k);
                    }
                    2 if k % 7 == 0 => {
                        cache.retain(|e| e.tag_errors % 2 == 0);
                        model.retain(|m| (m % 250) % 2 == 0);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(cache.len(), model.len());
            }
            for k in 0..300u16 {
                let Some(s) = sample(k) else { continue };
                let found = cache.find(cache.hash(&s), &s).map(|e| u16::from(e.tag_errors));
                proptest::prop_assert_eq!(found, model.contains(&k).then_some(k % 250));
            }
        }
    }

    #[test]
    fn refusals_at_the_limit_are_remembered_until_room_is_made() {
        let store = Arc::new(Store::new(crate::store::StoreOptions {
            max_series: 1,
            ..Default::default()
        }));
        let mut ing = Ingester::new(
            Arc::clone(&store),
            Arc::new(MapperHandle::new(Mapper::new(MapperDefaults::default()))),
            ParseOptions::default(),
            DEFAULT_CACHE_ENTRIES,
        );
        ing.ingest_lines(b"kept:1|c\nover:1|c\nover:1|c\nover:1|c");
        assert_eq!(ing.local.series_refused, 3);
        assert!(ing
            .cache
            .entries
            .iter()
            .any(|e| e.series.is_none() && e.miss() == Miss::Refused));
        // Room is made (the kept series is removed): the refused key maps again.
        store.retire_where(|_| true);
        ing.flush_stats();
        ing.ingest_lines(b"over:1|c");
        assert_eq!(store.total_series(), 1);
        let page = crate::exposition::text::render_to_string(&store);
        assert!(page.contains("\nover 1\n"), "{page}");
    }

    #[test]
    fn cache_full_is_flushed_and_counted() {
        let mut ing = ingester();
        ing.cache_cap = 2;
        ing.ingest_lines(b"a:1|c\nb:1|c\nc:1|c\na:1|c");
        assert!(ing.local.cache_flushes >= 1);
        assert!(ing.cache.len() <= 2);
        assert_eq!(ing.store.total_series(), 3);
        assert_eq!(ing.local.events[EventKind::Counter as usize], 4);
    }
}
