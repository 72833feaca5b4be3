//! A/B of the hand-written pieces against the crates the design card named.
//!
//! `cargo bench --bench ab` runs, in one process, each hand-written piece and the
//! crate that could replace it in the same criterion group, so a ratio comes from
//! one run on one machine state:
//!
//! 1. `summary`: `store::summary::Summary` (our sliding-window log-bucket sketch)
//!    against `sketches-ddsketch` and `hdrhistogram` (3 significant figures,
//!    microseconds, 1 µs..1 h): observe throughput for 10 and 10,000
//!    observations of a log-normal latency, and the p50/p90/p99 query. Criterion
//!    measures the times; `main` then prints heap bytes per series (a counting
//!    global allocator) and the worst relative error against the exact
//!    nearest-rank quantile, as Markdown tables.
//! 2. `series_map`: `Store::get_or_create` on 100,000 existing series against a
//!    `DashMap` holding the same keys, one and two threads.
//! 3. `queue`: the remote-write queue's algorithm (Mutex + VecDeque + Condvar,
//!    oldest batches dropped past a capacity in samples), reproduced here since
//!    `remote_write::Queue` is private, against `crossbeam_queue::ArrayQueue`
//!    with `force_push` (which also drops the oldest), one producer and one
//!    consumer moving 1,000,000 small items.
//!
//! `cargo test --benches` runs every benchmark once (criterion's test mode) and
//! the tables on fewer series, so it stays fast.

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_queue::ArrayQueue;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults, Mapping};
use promstatsd::parser::MetricType;
use promstatsd::store::summary::{Summary, SummaryOptions};
use promstatsd::store::{FamilyKind, Store};
use sketches_ddsketch::{Config as DdConfig, DDSketch};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Counting allocator: live heap bytes, counted only while `COUNTING` is set so
// the timed benchmarks (two threads in `series_map`) share no counter cache line.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn add(n: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
    }

    fn sub(n: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            // Saturating: a block allocated before counting began may be freed
            // while counting; the measurements below free nothing of the kind.
            let _ = LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(n))
            });
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged
// and only updates counters besides, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through
        // this type) with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        Self::sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the
        // rest of `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::sub(layout.size());
            Self::add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `build` and return what it built, the heap bytes it still holds, and the
/// peak heap bytes it held on the way.
fn heap_of<T>(build: impl FnOnce() -> T) -> (T, usize, usize) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let t = build();
    COUNTING.store(false, Ordering::SeqCst);
    (
        t,
        LIVE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
    )
}

// ---------------------------------------------------------------------------
// Deterministic data.

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `n` request latencies in seconds: log-normal, median 50 ms, sigma 1
/// (99 % between 4 ms and 0.5 s, tail to a few seconds).
fn latencies(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..n)
        .map(|_| (0.05f64.ln() + rng.normal()).exp())
        .collect()
}

const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// The store clock second the single-slot cases observe at.
const NOW: u64 = 1_000;
/// Seconds at which the windowed cases start: 10 slots of 120 s, so
/// `WINDOW_START..WINDOW_START + 600` covers exactly the 5 slots of the window.
const WINDOW_START: u64 = 1_200;

// ---------------------------------------------------------------------------
// The three sketches behind one interface.

/// HDR: microseconds, 1 µs..1 h, 3 significant figures.
fn hdr_new() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid HDR bounds")
}

fn hdr_record(h: &mut Histogram<u64>, secs: f64) {
    h.saturating_record((secs * 1e6).round().max(1.0) as u64);
}

fn dd_new() -> DDSketch {
    // alpha 0.01 (our accuracy), 2048 bins (our cap), values below 1e-9 are zero.
    DDSketch::new(DdConfig::defaults())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ours,
    Dd,
    Hdr,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Ours, Kind::Dd, Kind::Hdr];

    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours (store::summary)",
            Kind::Dd => "sketches-ddsketch 0.4",
            Kind::Hdr => "hdrhistogram 7 (3 sig. fig., µs)",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Dd => "ddsketch",
            Kind::Hdr => "hdr",
        }
    }
}

/// One series' sketch (or, for the windowed crate cases, one per slot).
enum Sk {
    Ours(Summary),
    Dd(Vec<DDSketch>),
    Hdr(Vec<Histogram<u64>>),
}

impl Sk {
    /// An empty sketch; the crate cases get `slots` sketches (a window emulated
    /// the way ours does it: one per slot, merged at query time).
    fn new(kind: Kind, opts: &SummaryOptions, slots: usize) -> Self {
        match kind {
            Kind::Ours => Sk::Ours(Summary::new(opts)),
            Kind::Dd => Sk::Dd((0..slots).map(|_| dd_new()).collect()),
            Kind::Hdr => Sk::Hdr((0..slots).map(|_| hdr_new()).collect()),
        }
    }

    /// Observe `values` at `NOW` (one slot), or spread evenly over the
    /// 10-minute window when `windowed`.
    fn feed(&mut self, opts: &SummaryOptions, values: &[f64], windowed: bool) {
        let n = values.len() as u64;
        let slots = opts.age_buckets as u64;
        match self {
            Sk::Ours(s) => {
                for (i, &v) in values.iter().enumerate() {
                    let now = if windowed {
                        WINDOW_START + i as u64 * opts.max_age_secs / n
                    } else {
                        NOW
                    };
                    s.observe(opts, now, v, 1);
                }
            }
            Sk::Dd(d) => {
                for (i, &v) in values.iter().enumerate() {
                    let slot = if windowed { i as u64 * slots / n } else { 0 };
                    d[slot as usize].add(v);
                }
            }
            Sk::Hdr(h) => {
                for (i, &v) in values.iter().enumerate() {
                    let slot = if windowed { i as u64 * slots / n } else { 0 };
                    hdr_record(&mut h[slot as usize], v);
                }
            }
        }
    }

    /// p50, p90, p99 in seconds over everything fed (merging the slots).
    fn query(&self, opts: &SummaryOptions, windowed: bool, out: &mut [f64; 3]) {
        match self {
            Sk::Ours(s) => {
                let now = if windowed {
                    WINDOW_START + opts.max_age_secs - 1
                } else {
                    NOW
                };
                s.quantiles(opts, now, &QUANTILES, out);
            }
            Sk::Dd(d) => {
                let merged;
                let one = if d.len() == 1 {
                    &d[0]
                } else {
                    let mut m = d[0].clone();
                    for o in &d[1..] {
                        m.merge(o).expect("same config");
                    }
                    merged = m;
                    &merged
                };
                for (q, o) in QUANTILES.iter().zip(out.iter_mut()) {
                    *o = one.quantile(*q).ok().flatten().unwrap_or(f64::NAN);
                }
            }
            Sk::Hdr(h) => {
                let merged;
                let one = if h.len() == 1 {
                    &h[0]
                } else {
                    let mut m = h[0].clone();
                    for o in &h[1..] {
                        m.add(o).expect("same bounds");
                    }
                    merged = m;
                    &merged
                };
                for (q, o) in QUANTILES.iter().zip(out.iter_mut()) {
                    *o = one.value_at_quantile(*q) as f64 / 1e6;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Summary sketch.

fn bench_summary(c: &mut Criterion) {
    let opts = SummaryOptions::default();
    let mut g = c.benchmark_group("summary_observe");
    for n in [10usize, 10_000] {
        let values = latencies(7, n);
        g.throughput(Throughput::Elements(n as u64));
        for kind in Kind::ALL {
            g.bench_with_input(BenchmarkId::new(kind.id(), n), &values, |b, values| {
                // A fresh sketch per iteration, built outside the timing (64 per
                // batch: an HDR histogram is ~190 KB).
                b.iter_batched(
                    || Sk::new(kind, &opts, 1),
                    |mut s| {
                        s.feed(&opts, black_box(values), false);
                        s
                    },
                    BatchSize::NumIterations(64),
                )
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("summary_query_p50_p90_p99");
    for (n, windowed) in [(10usize, false), (10_000, false), (10_000, true)] {
        let values = latencies(7, n);
        let label = if windowed {
            format!("{n}_over_5_slots")
        } else {
            n.to_string()
        };
        for kind in Kind::ALL {
            let mut s = Sk::new(kind, &opts, if windowed { 5 } else { 1 });
            s.feed(&opts, &values, windowed);
            let mut out = [0.0; 3];
            g.bench_function(BenchmarkId::new(kind.id(), &label), |b| {
                b.iter(|| {
                    black_box(&s).query(&opts, windowed, &mut out);
                    black_box(out)
                })
            });
        }
    }
    g.finish();
}

/// Nearest rank (0-based) of quantile `q` among `n` sorted values.
fn nearest_rank(q: f64, n: usize) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n) - 1
}

struct ErrorRow {
    kind: Kind,
    n: usize,
    series: usize,
    /// Worst relative error per quantile against the nearest-rank value.
    worst: [f64; 3],
    /// Worst against the value at the sketch's own rank rule (DDSketch:
    /// `floor(q·(n−1))`), where that differs.
    worst_own_rank: Option<[f64; 3]>,
}

fn error_rows(series_for: impl Fn(usize) -> usize) -> Vec<ErrorRow> {
    let opts = SummaryOptions::default();
    let mut rows = Vec::new();
    for n in [10usize, 10_000] {
        let series = series_for(n);
        for kind in Kind::ALL {
            let mut worst = [0.0f64; 3];
            let mut own = [0.0f64; 3];
            for seed in 0..series as u64 {
                let values = latencies(1_000 + seed, n);
                let mut s = Sk::new(kind, &opts, 1);
                s.feed(&opts, &values, false);
                let mut got = [0.0; 3];
                s.query(&opts, false, &mut got);
                let mut sorted = values;
                sorted.sort_by(f64::total_cmp);
                for (i, q) in QUANTILES.iter().enumerate() {
                    let exact = sorted[nearest_rank(*q, n)];
                    worst[i] = worst[i].max((got[i] - exact).abs() / exact);
                    let own_rank = (q * (n as f64 - 1.0)) as usize;
                    let exact_own = sorted[own_rank];
                    own[i] = own[i].max((got[i] - exact_own).abs() / exact_own);
                }
            }
            rows.push(ErrorRow {
                kind,
                n,
                series,
                worst,
                worst_own_rank: (kind == Kind::Dd).then_some(own),
            });
        }
    }
    rows
}

struct MemRow {
    kind: Kind,
    case: &'static str,
    /// Heap bytes held after feeding, plus the sketch value itself (which the
    /// store keeps on the heap too: `Box<Mutex<Summary>>`).
    retained: usize,
    inline: usize,
    peak: usize,
}

fn memory_rows() -> Vec<MemRow> {
    let opts = SummaryOptions::default();
    let cases: [(&str, usize, bool); 4] = [
        ("empty (created, nothing observed)", 0, false),
        ("10 observations, one slot", 10, false),
        ("10,000 observations, one slot", 10_000, false),
        (
            "10,000 observations over the 10-min window (crates: 5 sketches, one per slot)",
            10_000,
            true,
        ),
    ];
    let mut rows = Vec::new();
    for (case, n, windowed) in cases {
        let values = latencies(7, n);
        for kind in Kind::ALL {
            let slots = if windowed { 5 } else { 1 };
            let (s, retained, peak) = heap_of(|| {
                let mut s = Sk::new(kind, &opts, slots);
                s.feed(&opts, &values, windowed);
                s
            });
            // The crate cases keep their sketch structs in the emulation's `Vec`:
            // count that block as the sketches' own (inline) bytes, not as heap.
            let inline = match &s {
                Sk::Ours(_) => std::mem::size_of::<Summary>(),
                Sk::Dd(d) => d.capacity() * std::mem::size_of::<DDSketch>(),
                Sk::Hdr(h) => h.capacity() * std::mem::size_of::<Histogram<u64>>(),
            };
            let vec_block = if matches!(s, Sk::Ours(_)) { 0 } else { inline };
            rows.push(MemRow {
                kind,
                case,
                retained: retained - vec_block,
                inline,
                peak: peak - vec_block,
            });
            drop(s);
        }
    }
    rows
}

// ---------------------------------------------------------------------------
// 2. Series map.

const SERIES: usize = 100_000;

fn series_mappings() -> Vec<Mapping> {
    let mapper = Mapper::new(MapperDefaults::default());
    (0..SERIES)
        .map(|i| {
            let labels = vec![
                ("dag_id".to_string(), format!("dag_{}", i / 100)),
                ("task_id".to_string(), format!("task_{}", i % 7)),
            ];
            let name = format!("airflow_task_metric_{}", i % 100);
            match mapper.map(&name, MetricType::Counter, labels) {
                MapOutcome::Map(m) => m,
                other => panic!("the default mapper maps everything, got {other:?}"),
            }
        })
        .collect()
}

/// The labels as the store renders them (`k="v",k2="v2"`, values escaped).
fn rendered_labels(m: &Mapping) -> String {
    promstatsd::vocab::label_pairs(m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

type Key = (Box<str>, Box<str>);
/// One shard of the store's table, reproduced: an entry is the key and a value.
type Shard = RwLock<hashbrown::HashTable<Arc<(Key, u64)>>>;

/// The store's series lookup, reproduced for a map-only comparison: a
/// power-of-two array of `RwLock<HashTable>`, one foldhash per key, looked up
/// with borrowed `(&str, &str)`.
struct Shards {
    shards: Box<[Shard]>,
    mask: u64,
    hasher: foldhash::fast::RandomState,
}

impl Shards {
    fn new(n: usize) -> Self {
        let n = n.next_power_of_two();
        Self {
            shards: (0..n)
                .map(|_| RwLock::new(hashbrown::HashTable::new()))
                .collect(),
            mask: n as u64 - 1,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash & self.mask) as usize]
    }

    fn insert(&self, key: Key, v: u64) {
        let hash = self.hasher.hash_one((&*key.0, &*key.1));
        let hasher = &self.hasher;
        self.shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert_unique(hash, Arc::new((key, v)), |e| {
                hasher.hash_one((&*e.0 .0, &*e.0 .1))
            });
    }

    fn get(&self, name: &str, labels: &str) -> Option<Arc<(Key, u64)>> {
        let hash = self.hasher.hash_one((name, labels));
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .find(hash, |e| &*e.0 .0 == name && &*e.0 .1 == labels)
            .cloned()
    }
}

/// A permutation of `0..n` (Fisher-Yates on xorshift), the lookup order.
fn shuffled(n: usize) -> Vec<usize> {
    let mut rng = Rng(0x5eed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    v
}

/// Run `f` over every index of `order` on `threads` threads at once, each
/// starting at a different point of the order.
fn on_threads(threads: usize, order: &[usize], f: &(impl Fn(usize) + Sync)) {
    if threads == 1 {
        order.iter().for_each(|&i| f(i));
        return;
    }
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let start = t * order.len() / threads;
                for &i in order[start..].iter().chain(&order[..start]) {
                    f(i);
                }
            });
        }
    });
}

fn bench_series_map(c: &mut Criterion) {
    let mappings = series_mappings();
    let order = shuffled(SERIES);
    let store = Store::default();
    for m in &mappings {
        store
            .get_or_create(m, FamilyKind::Counter)
            .expect("series created");
    }
    let keys: Vec<Key> = mappings
        .iter()
        .map(|m| (m.name.as_str().into(), rendered_labels(m).into_boxed_str()))
        .collect();
    let shards = Shards::new(64);
    let dash_fold: DashMap<Key, Arc<u64>, foldhash::fast::RandomState> =
        DashMap::with_hasher(foldhash::fast::RandomState::default());
    let dash_sip: DashMap<Key, Arc<u64>> = DashMap::new();
    for (i, k) in keys.iter().enumerate() {
        shards.insert(k.clone(), i as u64);
        dash_fold.insert(k.clone(), Arc::new(i as u64));
        dash_sip.insert(k.clone(), Arc::new(i as u64));
    }

    let mut g = c.benchmark_group("series_map_100k_hits");
    g.sampling_mode(SamplingMode::Flat);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((SERIES * threads) as u64));
        let t = format!("{threads}_thread");
        // What the ingest path calls: renders the labels, finds the series,
        // checks the family definition, clones the `Arc`.
        g.bench_function(BenchmarkId::new("store_get_or_create", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    black_box(store.get_or_create(&mappings[i], FamilyKind::Counter)).ok();
                })
            })
        });
        // The same work on a DashMap: render the labels the same way, then build
        // the owned key `get` needs (`(Box<str>, Box<str>)` has no borrowed form
        // `(&str, &str)` it can `Borrow` as): one allocation more than the store.
        g.bench_function(BenchmarkId::new("dashmap_foldhash_render_key", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    let m = &mappings[i];
                    let key: Key = (m.name.as_str().into(), rendered_labels(m).into_boxed_str());
                    black_box(dash_fold.get(&key).map(|r| Arc::clone(r.value())));
                })
            })
        });
        // The store's table (reproduced) with the same per-lookup rendering and no
        // family check: like-for-like with the line above, less its extra
        // allocation (the table is looked up by borrowed strs).
        g.bench_function(BenchmarkId::new("shards_replica_render_key", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    let m = &mappings[i];
                    black_box(shards.get(&m.name, &rendered_labels(m)));
                })
            })
        });
        // Map only, keys already rendered: the store's table (reproduced) looked
        // up by borrowed strs, against DashMap looked up by the prebuilt owned key.
        g.bench_function(BenchmarkId::new("shards_replica_prebuilt", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    let k = &keys[i];
                    black_box(shards.get(&k.0, &k.1));
                })
            })
        });
        g.bench_function(BenchmarkId::new("dashmap_foldhash_prebuilt", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    black_box(dash_fold.get(&keys[i]).map(|r| Arc::clone(r.value())));
                })
            })
        });
        g.bench_function(BenchmarkId::new("dashmap_siphash_prebuilt", &t), |b| {
            b.iter(|| {
                on_threads(threads, &order, &|i| {
                    black_box(dash_sip.get(&keys[i]).map(|r| Arc::clone(r.value())));
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// 3. Remote-write queue.

const ITEMS: u64 = 1_000_000;

/// A small item; `samples` is what the remote-write capacity counts.
#[derive(Clone, Copy)]
struct Item {
    seq: u64,
    samples: usize,
}

/// The remote-write queue's algorithm (`remote_write::Queue` and
/// `Endpoint::{enqueue, take}`), without its stats and shutdown drain.
#[derive(Default)]
struct MutexQueue {
    q: Mutex<(VecDeque<Item>, usize, bool)>,
    ready: Condvar,
}

impl MutexQueue {
    /// Queue `item`, dropping the oldest past `capacity` samples; the count dropped.
    fn enqueue(&self, item: Item, capacity: usize) -> u64 {
        let mut g = self.q.lock().unwrap_or_else(PoisonError::into_inner);
        g.1 += item.samples;
        g.0.push_back(item);
        let mut dropped = 0;
        while g.1 > capacity && g.0.len() > 1 {
            if let Some(old) = g.0.pop_front() {
                g.1 -= old.samples;
                dropped += 1;
            }
        }
        drop(g);
        self.ready.notify_one();
        dropped
    }

    /// The oldest item, waiting up to `wait`; `Err` once closed and empty.
    fn take(&self, wait: Duration) -> Result<Option<Item>, ()> {
        let mut g = self.q.lock().unwrap_or_else(PoisonError::into_inner);
        if g.0.is_empty() && !g.2 {
            g = self
                .ready
                .wait_timeout(g, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        match g.0.pop_front() {
            Some(it) => {
                g.1 -= it.samples;
                Ok(Some(it))
            }
            None if g.2 => Err(()),
            None => Ok(None),
        }
    }

    fn close(&self) {
        self.q.lock().unwrap_or_else(PoisonError::into_inner).2 = true;
        self.ready.notify_all();
    }
}

/// Items delivered and dropped in one run of 1,000,000 items.
#[derive(Clone, Copy, Debug, Default)]
struct QueueRun {
    delivered: u64,
    dropped: u64,
}

fn run_mutex_queue(capacity: usize) -> QueueRun {
    let q = MutexQueue::default();
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut delivered = 0u64;
            while let Ok(it) = q.take(Duration::from_millis(10)) {
                if let Some(it) = it {
                    black_box(it.seq);
                    delivered += 1;
                }
            }
            delivered
        });
        let mut dropped = 0;
        for seq in 0..ITEMS {
            dropped += q.enqueue(Item { seq, samples: 1 }, capacity);
        }
        q.close();
        QueueRun {
            delivered: consumer.join().expect("consumer"),
            dropped,
        }
    })
}

fn run_array_queue(capacity: usize) -> QueueRun {
    let q: ArrayQueue<Item> = ArrayQueue::new(capacity);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut delivered = 0u64;
            loop {
                match q.pop() {
                    Some(it) => {
                        black_box(it.seq);
                        delivered += 1;
                    }
                    // No blocking pop: poll, yielding the CPU (2 cores, shared).
                    None if done.load(Ordering::Acquire) && q.is_empty() => break,
                    None => std::thread::yield_now(),
                }
            }
            delivered
        });
        let mut dropped = 0;
        for seq in 0..ITEMS {
            dropped += u64::from(q.force_push(Item { seq, samples: 1 }).is_some());
        }
        done.store(true, Ordering::Release);
        QueueRun {
            delivered: consumer.join().expect("consumer"),
            dropped,
        }
    })
}

const QUEUE_CAPACITIES: [usize; 2] = [1_024, 1 << 20];

fn bench_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_1m_items_1p1c");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(ITEMS));
    for cap in QUEUE_CAPACITIES {
        g.bench_function(BenchmarkId::new("mutex_vecdeque_condvar", cap), |b| {
            b.iter(|| black_box(run_mutex_queue(cap)))
        });
        g.bench_function(
            BenchmarkId::new("crossbeam_arrayqueue_force_push", cap),
            |b| b.iter(|| black_box(run_array_queue(cap))),
        );
    }
    g.finish();
}

// ---------------------------------------------------------------------------

fn pct(x: f64) -> String {
    if x == 0.0 {
        "0 (exact)".to_string()
    } else {
        format!("{:.3} %", x * 100.0)
    }
}

fn print_tables(bench_mode: bool) {
    println!("\n## Summary sketch: heap bytes per series (counting global allocator)\n");
    println!(
        "Log-normal latencies (median 50 ms, sigma 1). bytes = heap still held after \
         feeding + the sketch value itself (`size_of`), which the store also keeps on \
         the heap. HDR: `Histogram<u64>`, 1 µs..1 h, 3 significant figures \
         (allocates its whole counts array up front). Only ours has a sliding window; \
         for the crates a window means one sketch per slot, merged at query time (last rows).\n"
    );
    println!("| case | sketch | bytes per series | of which heap | peak heap while feeding |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for r in memory_rows() {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.case,
            r.kind.name(),
            r.retained + r.inline,
            r.retained,
            r.peak
        );
    }

    let series_for = |n: usize| match (bench_mode, n) {
        (true, 10) => 10_000,
        (true, _) => 200,
        (false, 10) => 100,
        (false, _) => 3,
    };
    println!("\n## Summary sketch: worst relative error against the exact nearest-rank quantile\n");
    println!(
        "Each series fed at one instant (one slot); error = |estimate − exact| / exact, \
         exact = sorted values at rank ceil(q·n) (nearest rank, what ours and HDR \
         report). DDSketch ranks by floor(q·(n−1)): its second line measures it \
         against that rule.\n"
    );
    println!("| observations per series | series | sketch | p50 | p90 | p99 |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: |");
    for r in error_rows(series_for) {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.n,
            r.series,
            r.kind.name(),
            pct(r.worst[0]),
            pct(r.worst[1]),
            pct(r.worst[2])
        );
        if let Some(own) = r.worst_own_rank {
            println!(
                "| {} | {} | {} against its own rank rule | {} | {} | {} |",
                r.n,
                r.series,
                r.kind.name(),
                pct(own[0]),
                pct(own[1]),
                pct(own[2])
            );
        }
    }

    println!("\n## Remote-write queue: items delivered of 1,000,000 (one run each)\n");
    println!(
        "crossbeam's `ArrayQueue` bounds items, not samples (a batch holds thousands), \
         and has no blocking pop with a timeout: its consumer here polls with \
         `yield_now`.\n"
    );
    println!("| capacity (items = samples here) | queue | delivered | dropped (oldest) |");
    println!("| ---: | --- | ---: | ---: |");
    for cap in QUEUE_CAPACITIES {
        let m = run_mutex_queue(cap);
        let a = run_array_queue(cap);
        println!(
            "| {cap} | Mutex+VecDeque+Condvar | {} | {} |",
            m.delivered, m.dropped
        );
        println!(
            "| {cap} | crossbeam ArrayQueue::force_push | {} | {} |",
            a.delivered, a.dropped
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    bench_summary(&mut c);
    bench_series_map(&mut c);
    bench_queue(&mut c);
    c.final_summary();
    print_tables(std::env::args().any(|a| a == "--bench"));
}
