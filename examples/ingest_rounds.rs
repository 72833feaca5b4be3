//! Ingest the load harness's datagrams in process, a fixed number of rounds:
//! a steady, kernel-free workload whose instruction count is the same from run
//! to run, which a noisy VM's timings are not. Run it under cachegrind twice
//! and divide the difference by the lines of the extra rounds:
//!
//! ```text
//! cargo build --release --example ingest_rounds
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/ingest_rounds counters 0
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/ingest_rounds counters 20
//! ```
//!
//! `counters`: 10,000 counters a family each; `tagged`: counters and timers
//! with DogStatsD tags over 10,000 series (the harness's two mixes). Every
//! series is created before the rounds start, so the rounds are the steady
//! state: cache hits only.

use promstatsd::mapper::{Mapper, MapperDefaults};
use promstatsd::{Aggregator, Config};
use std::process::ExitCode;

/// Lines in one round: each of the 10,000 series twice.
const LINES: usize = 20_000;

fn line(mix: &str, n: usize) -> Option<String> {
    let s = n % 10_000;
    match mix {
        "counters" => Some(format!("bench.requests.s{s}:1|c")),
        "tagged" if n % 2 == 1 => Some(format!(
            "bench.latency:{}|ms|#series:s{s},env:prod",
            1 + n % 250
        )),
        "tagged" => Some(format!("bench.requests:1|c|#series:s{s},env:prod")),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mix = args.first().map_or("counters", String::as_str);
    let rounds: usize = match args.get(1).map_or(Ok(1), |r| r.parse()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("usage: ingest_rounds [counters|tagged] [ROUNDS]: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(lines) = (0..LINES).map(|n| line(mix, n)).collect::<Option<Vec<_>>>() else {
        eprintln!("usage: ingest_rounds [counters|tagged] [ROUNDS]");
        return ExitCode::from(2);
    };
    // 40 lines a datagram, as the harness sends them.
    let grams: Vec<Vec<u8>> = lines
        .chunks(40)
        .map(|c| c.join("\n").into_bytes())
        .collect();
    let mut agg =
        Aggregator::with_mapper(&Config::default(), Mapper::new(MapperDefaults::default()));
    for d in &grams {
        agg.ingest(d);
    }
    for _ in 0..rounds {
        for d in &grams {
            agg.ingest(std::hint::black_box(d));
        }
    }
    println!(
        "{mix}: {} lines in {rounds} rounds after {LINES} to create the series",
        rounds * LINES
    );
    ExitCode::SUCCESS
}
