//! Rendering the page: 10k, 100k and 1M counter series into a reused buffer.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use promstatsd::{exposition::text::render, Aggregator, Config};
use std::time::Duration;

fn aggregator(n: usize) -> Aggregator {
    let mut agg = Aggregator::new(&Config::default()).expect("default config");
    let mut buf = String::new();
    for i in 0..n {
        buf.push_str(&format!(
            "app.requests.total:{}|c|#instance:i{},route:r{}\n",
            i % 7 + 1,
            i % 1000,
            i / 1000
        ));
        if buf.len() > 1 << 16 {
            agg.ingest(buf.as_bytes());
            buf.clear();
        }
    }
    agg.ingest(buf.as_bytes());
    agg
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    for n in [10_000usize, 100_000, 1_000_000] {
        let agg = aggregator(n);
        let mut out = Vec::new();
        render(agg.store(), &mut out);
        g.throughput(Throughput::Elements(n as u64));
        if n >= 1_000_000 {
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                out.clear();
                render(agg.store(), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
