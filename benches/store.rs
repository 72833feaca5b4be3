//! Store updates: an existing counter, gauge, histogram (with native buckets,
//! the default, and classic only) and summary, and the first insert of a series.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults, Mapping};
use promstatsd::parser::MetricType;
use promstatsd::store::atomic::Writers;
use promstatsd::store::{FamilyKind, Store};
use std::hint::black_box;
use std::time::Duration;

fn mapping(name: &str, labels: &[(&str, &str)]) -> Mapping {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match Mapper::new(MapperDefaults::default()).map(name, MetricType::Counter, labels) {
        MapOutcome::Map(m) => m,
        other => panic!("unexpected {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    let store = Store::default();
    let counter = store
        .get_or_create(&mapping("c", &[("k", "v")]), FamilyKind::Counter)
        .unwrap();
    let gauge = store
        .get_or_create(&mapping("g", &[]), FamilyKind::Gauge)
        .unwrap();
    let hist = store
        .get_or_create(&mapping("h", &[]), FamilyKind::Histogram)
        .unwrap();
    // The same histogram without native buckets (a bucket factor of 1).
    let mut classic_only = mapping("hc", &[]);
    classic_only.native = None;
    let hist_classic = store
        .get_or_create(&classic_only, FamilyKind::Histogram)
        .unwrap();
    let summ = store
        .get_or_create(&mapping("s", &[]), FamilyKind::Summary)
        .unwrap();
    g.bench_function("counter_add", |b| {
        b.iter(|| counter.counter_add(black_box(1.0), Writers::Shared))
    });
    // The daemon with one ingest loop: plain atomic stores.
    g.bench_function("counter_add_sole_writer", |b| {
        b.iter(|| counter.counter_add(black_box(1.0), Writers::Sole))
    });
    g.bench_function("gauge_set", |b| {
        b.iter(|| gauge.gauge_update(black_box(3.5), false, Writers::Shared))
    });
    g.bench_function("gauge_add", |b| {
        b.iter(|| gauge.gauge_update(black_box(1.0), true, Writers::Shared))
    });
    let mut v = 0.0f64;
    g.bench_function("histogram_observe", |b| {
        b.iter(|| {
            v = (v + 0.37) % 12.0;
            hist.observe(black_box(v), 1, 0, Writers::Shared)
        })
    });
    // The daemon with one ingest loop: no lock for the native buckets.
    g.bench_function("histogram_observe_sole_writer", |b| {
        b.iter(|| {
            v = (v + 0.37) % 12.0;
            hist.observe(black_box(v), 1, 0, Writers::Sole)
        })
    });
    g.bench_function("histogram_observe_classic_only", |b| {
        b.iter(|| {
            v = (v + 0.37) % 12.0;
            hist_classic.observe(black_box(v), 1, 0, Writers::Shared)
        })
    });
    g.bench_function("summary_observe", |b| {
        b.iter(|| {
            v = (v + 0.37) % 12.0;
            summ.observe(black_box(v), 1, 0, Writers::Shared)
        })
    });
    let mut i = 0u64;
    g.bench_function("first_insert", |b| {
        b.iter_batched(
            || {
                i += 1;
                mapping("new_series", &[("id", &i.to_string())])
            },
            |m| store.get_or_create(&m, FamilyKind::Counter),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
