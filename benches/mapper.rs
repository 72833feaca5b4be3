//! Mapper throughput: a known series (ingest-cache hit), an uncached glob match over
//! the Airflow Helm chart's 21 rules, and regex worst cases.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promstatsd::ingest::Ingester;
use promstatsd::mapper::{Mapper, MapperDefaults, MapperHandle};
use promstatsd::parser::{MetricType, ParseOptions};
use promstatsd::store::Store;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An ingester with the Helm chart's mappings and room for every series.
fn helm_ingester() -> Ingester {
    Ingester::new(
        Arc::new(Store::default()),
        Arc::new(MapperHandle::new(helm())),
        ParseOptions::default(),
        1 << 20,
    )
}

fn helm() -> Mapper {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/airflow-helm-statsd-mappings.yml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Mapper::from_yaml("helm", &text, &MapperDefaults::default())
        .unwrap()
        .0
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mapper");
    g.throughput(Throughput::Elements(1));

    // A known series: parse + cache hit + atomic update (the hot path).
    let mut ing = helm_ingester();
    let line = b"airflow.dag.corpus_etl.extract.duration:2084.5|ms";
    ing.ingest_line(line);
    g.bench_function("cache_hit_ingest_line", |b| {
        b.iter(|| ing.ingest_line(black_box(line)))
    });

    // Known series, 10,000 of them in turn: the cache working set exceeds L2.
    let mut ing = helm_ingester();
    let lines: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("app.requests.s{i}:1|c").into_bytes())
        .collect();
    for l in &lines {
        ing.ingest_line(l);
    }
    let mut i = 0;
    g.bench_function("cache_hit_10k_counters_in_turn", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            ing.ingest_line(black_box(&lines[i]))
        })
    });

    // Datagrams of 40 counter lines over 10,000 known series, as the load
    // harness sends them: the pipelined `ingest_lines` path, without the kernel.
    let mut ing = helm_ingester();
    let datagrams: Vec<Vec<u8>> = (0..250)
        .map(|d| {
            (0..40)
                .map(|l| format!("app.requests.count.{}:1|c\n", (d * 40 + l) * 7919 % 10_000))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    for d in &datagrams {
        ing.ingest_lines(d);
    }
    let mut i = 0;
    g.throughput(Throughput::Elements(40));
    g.bench_function("datagram_40_counters_of_10k", |b| {
        b.iter(|| {
            i = (i + 1) % datagrams.len();
            ing.ingest_lines(black_box(&datagrams[i]))
        })
    });
    g.throughput(Throughput::Elements(1));

    // The mapper alone, as run for a series seen for the first time.
    let m = helm();
    g.bench_function("uncached_glob_helm", |b| {
        b.iter(|| {
            m.map(
                black_box("airflow.dag.corpus_etl.extract.duration"),
                MetricType::Timer,
                Vec::new(),
            )
        })
    });
    g.bench_function("uncached_regex_helm", |b| {
        b.iter(|| {
            m.map(
                black_box("airflow.operator_successes_BashOperator"),
                MetricType::Counter,
                Vec::new(),
            )
        })
    });
    g.bench_function("unmatched_helm", |b| {
        b.iter(|| {
            m.map(
                black_box("airflow.scheduler.tasks.executable"),
                MetricType::Gauge,
                Vec::new(),
            )
        })
    });

    // Regex worst case: 100 regex rules, none matches, a long name.
    let mut yaml = String::from("mappings:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
            "- match: '^service{i}\\.(.+)\\.requests\\.(\\w+)$'\n  match_type: regex\n  name: svc{i}_requests\n  labels:\n    a: $1\n    b: $2\n"
        ));
    }
    let many = Mapper::from_yaml("many", &yaml, &MapperDefaults::default())
        .unwrap()
        .0;
    let long = format!("{}.requests.total", "x.".repeat(60));
    g.bench_function("regex_worst_100_rules_no_match", |b| {
        b.iter(|| many.map(black_box(&long), MetricType::Counter, Vec::new()))
    });
    g.bench_function("regex_100_rules_last_matches", |b| {
        b.iter(|| {
            many.map(
                black_box("service99.api.v1.requests.total"),
                MetricType::Counter,
                Vec::new(),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
