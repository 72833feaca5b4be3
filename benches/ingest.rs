//! Ingest throughput, parser → cache → store, in process (no sockets): what the
//! daemon's ingest thread does per datagram, without the kernel's share. Lines per
//! second over pre-built 40-line datagrams, every series already known (the
//! steady state the load harness measures), with the harness's own line shapes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promstatsd::mapper::MapperDefaults;
use promstatsd::reload::MappingSource;
use promstatsd::{Aggregator, Config};
use std::path::PathBuf;
use std::time::Duration;

/// Datagrams of `per` lines cycling over `series` series (as `promstatsd-bench`).
fn datagrams(series: usize, per: usize, line: impl Fn(usize, usize) -> String) -> Vec<Vec<u8>> {
    let lines: Vec<String> = (0..series.max(per) * 2)
        .map(|n| line(n, n % series))
        .collect();
    lines
        .chunks(per)
        .map(|c| c.join("\n").into_bytes())
        .collect()
}

fn data(file: &str) -> Vec<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(40)
        .map(|c| c.join("\n").into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let airflow = match MappingSource::Airflow.load(&MapperDefaults::default()) {
        Ok((m, _)) => m,
        Err(e) => panic!("the Airflow mapping must load: {e}"),
    };
    let plain = promstatsd::mapper::Mapper::new(MapperDefaults::default());
    let cases = [
        (
            "counters_10k_series",
            plain.clone(),
            datagrams(10_000, 40, |_, s| format!("bench.requests.s{s}:1|c")),
        ),
        (
            "counter_timer_dogstatsd_10k_series",
            plain,
            datagrams(10_000, 40, |n, s| {
                if n % 2 == 1 {
                    format!("bench.latency:{}|ms|#series:s{s},env:prod", 1 + n % 250)
                } else {
                    format!("bench.requests:1|c|#series:s{s},env:prod")
                }
            }),
        ),
        (
            "airflow_plain_helm_mapping",
            airflow,
            data("airflow-3.3.2-plain.statsd"),
        ),
    ];
    let mut g = c.benchmark_group("ingest");
    for (name, mapper, grams) in cases {
        let lines: usize = grams
            .iter()
            .map(|d| promstatsd::parser::lines(d).count())
            .sum();
        let mut agg = Aggregator::with_mapper(&Config::default(), mapper);
        // Every series created and cached before the clock starts.
        for d in &grams {
            agg.ingest(d);
        }
        g.throughput(Throughput::Elements(lines as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for d in &grams {
                    agg.ingest(d);
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
