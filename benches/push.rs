//! Push bodies: parsing and applying a Pushgateway push (`push::handle`), for
//! the body a batch job sends, one family with many series, and many one-sample
//! families (the shape that made a scan-per-line parser quadratic).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use promstatsd::push::{handle, PushMethod, PushOptions, PushOutcome, PushRequest};
use promstatsd::store::pushed::GroupKey;
use promstatsd::{Aggregator, Config};
use std::time::Duration;

fn bodies() -> Vec<(&'static str, usize, String)> {
    let mut labelled = String::from("# HELP rows Rows per table.\n# TYPE rows counter\n");
    for i in 0..100_000 {
        labelled.push_str(&format!("rows{{table=\"t{i}\",dag=\"etl\"}} {i}\n"));
    }
    let mut families = String::new();
    for i in 0..100_000 {
        families.push_str(&format!("# TYPE m{i} gauge\nm{i} {i}\n"));
    }
    let job = "# HELP job_last_success_unixtime Last time a batch job successfully finished\n\
               # TYPE job_last_success_unixtime gauge\njob_last_success_unixtime 1.7000000005e+09\n"
        .to_owned();
    vec![
        ("python_client_job", 1, job),
        ("one_family_100k_series", 100_000, labelled),
        ("100k_families", 100_000, families),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    let agg = Aggregator::new(&Config::default()).expect("default config");
    let opts = PushOptions::default();
    let key = GroupKey::new("airflow", Vec::new()).expect("a valid key");
    for (name, samples, body) in bodies() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        if samples > 1 {
            g.sample_size(10);
        }
        for (verb, method) in [("put", PushMethod::Put), ("post", PushMethod::Post)] {
            g.bench_with_input(BenchmarkId::new(verb, name), &body, |b, body| {
                b.iter(|| {
                    let o = handle(
                        agg.store(),
                        &opts,
                        PushRequest::new(method, &key, body.as_bytes()),
                    );
                    assert_eq!(o, PushOutcome::Applied);
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
