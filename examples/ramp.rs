//! Ingest a cardinality ramp in process and time every datagram: `N` new
//! counter names (default 1,000,000), 40 lines a datagram, each name once.
//! Prints the slowest datagrams and the tail of the distribution: a datagram
//! that takes long is one during which the socket's buffer fills. Fails if a
//! name did not become a series.
//!
//! ```text
//! cargo run --release --example ramp -- 1000000
//! ```

use promstatsd::mapper::{Mapper, MapperDefaults};
use promstatsd::store::FamilyKind;
use promstatsd::{Aggregator, Config};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let n: usize = match std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse()) {
        Ok(n) if n > 0 => n,
        Ok(_) => {
            eprintln!("usage: ramp [NAMES]: at least one name");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("usage: ramp [NAMES]: {e}");
            return ExitCode::from(2);
        }
    };
    let grams: Vec<Vec<u8>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(40)
        .map(|c| {
            c.iter()
                .map(|i| format!("ramp.name{i}:1|c"))
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes()
        })
        .collect();
    let mut config = Config::default();
    config.store.max_series = config.store.max_series.max(n + 1000);
    config.cache_entries = config.cache_entries.max(n + 1000);
    let mut agg = Aggregator::with_mapper(&config, Mapper::new(MapperDefaults::default()));
    let mut times: Vec<(Duration, usize)> = Vec::with_capacity(grams.len());
    let start = Instant::now();
    for (i, d) in grams.iter().enumerate() {
        let t = Instant::now();
        agg.ingest(d);
        times.push((t.elapsed(), i * 40));
    }
    let total = start.elapsed();
    let series = agg.store().series_count(FamilyKind::Counter);
    if series != n {
        eprintln!("ramp: {n} names sent, {series} counter series in the store");
        return ExitCode::FAILURE;
    }
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let q = |p: f64| sorted[((sorted.len() as f64) * p) as usize].0;
    println!(
        "{n} names in {} datagrams, {total:.2?} ({:.0} ns a line)",
        grams.len(),
        total.as_nanos() as f64 / n as f64
    );
    println!(
        "p99.9 {:.2?}, p99.99 {:.2?}; over 10 ms: {}",
        q(0.001),
        q(0.0001),
        sorted
            .iter()
            .filter(|t| t.0 > Duration::from_millis(10))
            .count()
    );
    for (t, at) in sorted.iter().take(8) {
        println!("  {t:>10.2?} at name {at}");
    }
    ExitCode::SUCCESS
}
