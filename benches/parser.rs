//! Parser throughput: bytes/s and lines/s over real Airflow traffic and two
//! synthetic mixes. Each iteration parses a whole buffer of `\n`-separated lines
//! and touches every sample (so nothing is optimised away).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use promstatsd::parser::{lines, parse_line, ParseOptions, Value};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn data(file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn counters_mix() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..10_000 {
        out.push_str(&format!(
            "app.requests.count.{}:{}|c\n",
            i % 1000,
            i % 7 + 1
        ));
    }
    out.into_bytes()
}

fn timers_dogstatsd_mix() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..10_000 {
        if i % 2 == 0 {
            out.push_str(&format!(
                "airflow.task.duration:{}.{}|ms|#dag_id:dag_{},task_id:task_{},queue:default\n",
                i % 5000,
                i % 1000,
                i % 50,
                i % 20
            ));
        } else {
            out.push_str(&format!(
                "airflow.ti.finish:1|c|@0.5|#dag_id:dag_{},task_id:task_{},state:success\n",
                i % 50,
                i % 20
            ));
        }
    }
    out.into_bytes()
}

/// Parse every line; return a checksum of values so the work is observable.
fn parse_all(buf: &[u8], opts: ParseOptions) -> f64 {
    let mut acc = 0.0;
    for line in lines(buf) {
        for s in parse_line(line, opts).flatten() {
            if let Value::Number(v) = s.value {
                acc += v;
            }
            acc += s.name_head.len() as f64 + s.dog_tags.len() as f64;
        }
    }
    acc
}

fn bench(c: &mut Criterion) {
    let inputs = [
        ("airflow_plain", data("airflow-3.3.2-plain.statsd")),
        ("airflow_influx", data("airflow-3.3.2-influx.statsd")),
        ("airflow_datadog", data("airflow-3.3.2-datadog.statsd")),
        ("counters", counters_mix()),
        ("timers_dogstatsd", timers_dogstatsd_mix()),
    ];
    let opts = ParseOptions::default();
    let mut g = c.benchmark_group("parser_bytes");
    for (name, buf) in &inputs {
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| parse_all(black_box(buf), opts));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("parser_lines");
    for (name, buf) in &inputs {
        g.throughput(Throughput::Elements(lines(buf).count() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), buf, |b, buf| {
            b.iter(|| parse_all(black_box(buf), opts));
        });
    }
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
