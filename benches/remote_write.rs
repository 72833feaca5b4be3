//! One remote-write snapshot of a large store: CPU time and peak memory added.
//!
//! `cargo bench --bench remote_write` builds a store (1,000,000 labelled counter
//! series, then 100,000 histogram series of 10 buckets) in a fresh process,
//! three times per case, cuts it into batches of 2,000 samples twice (the first
//! snapshot also sorts the new series into the render order, as a first scrape
//! does; the second is every later interval), and prints a Markdown row per
//! snapshot: CPU time (this thread's, `RUSAGE_THREAD`), wall time, the peak RSS
//! it added (`VmHWM` reset through `/proc/self/clear_refs` before each), and
//! the batches and samples it produced. Not a criterion bench: criterion measures
//! time only, and the peak memory is half of what this bench is for.

use promstatsd::{remote_write::snapshot_batches, Aggregator, Config};
use std::time::Instant;

fn fill(agg: &mut Aggregator, n: usize, line: impl Fn(usize) -> String) {
    let mut buf = String::new();
    for i in 0..n {
        buf.push_str(&line(i));
        buf.push('\n');
        if buf.len() > 1 << 16 {
            agg.ingest(buf.as_bytes());
            buf.clear();
        }
    }
    agg.ingest(buf.as_bytes());
}

fn counters(n: usize) -> Aggregator {
    let mut agg = Aggregator::new(&Config::default()).expect("default config");
    fill(&mut agg, n, |i| {
        format!(
            "app.requests.total:{}|c|#instance:i{},route:r{}",
            i % 7 + 1,
            i % 1000,
            i / 1000
        )
    });
    agg
}

fn histograms(n: usize) -> Aggregator {
    let mut config = Config::default();
    config.mapper.observer = promstatsd::mapper::ObserverType::Histogram;
    let mut agg = Aggregator::new(&config).expect("histogram config");
    fill(&mut agg, n, |i| {
        format!("app.latency:{}|ms|#route:r{}", i % 900, i)
    });
    agg
}

/// This thread's user + system CPU time, in seconds.
fn thread_cpu_secs() -> f64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One snapshot of `agg`: batches, samples and snappy bytes.
fn snapshot(agg: &Aggregator) -> (usize, usize, usize) {
    let (mut batches, mut samples, mut bytes) = (0usize, 0usize, 0usize);
    snapshot_batches(agg.store(), &[], 1_700_000_000_000, 2000, false, &mut |b| {
        batches += 1;
        samples += b.samples;
        bytes += b.body.len();
    });
    (batches, samples, bytes)
}

/// Two snapshots of `agg` in a process that has made none before: the
/// first also sorts the new series into the render order (as the first scrape
/// does), the second is the steady state of every later interval.
fn run(case: &str, round: u32, agg: &Aggregator) {
    for pass in ["first", "later"] {
        // Reset the peak RSS to the current RSS (Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss_before = status_kib("VmRSS:");
        let (cpu0, wall0) = (thread_cpu_secs(), Instant::now());
        let (batches, samples, bytes) = snapshot(agg);
        let (cpu, wall) = (thread_cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
        let peak_added = status_kib("VmHWM:").saturating_sub(rss_before);
        println!(
            "| {case}, {pass} snapshot | {round} | {cpu:.3} | {wall:.3} | {:.1} | {batches} | {samples} | {:.1} |",
            peak_added as f64 / 1024.0,
            bytes as f64 / 1048576.0
        );
    }
}

const CASES: [&str; 2] = ["1M labelled counters", "100k histograms (10 buckets)"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // A child run: `--case N --round R`, one snapshot in a fresh process, so the
    // peak RSS is not hidden by memory the allocator kept from an earlier run.
    if let [_, flag, case, _, round] = &args[..] {
        if flag == "--case" {
            let case: usize = case.parse().expect("case index");
            let agg = if case == 0 {
                counters(1_000_000)
            } else {
                histograms(100_000)
            };
            run(CASES[case], round.parse().expect("round"), &agg);
            return;
        }
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no flag: skip then.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    println!(
        "| case | run | CPU s | wall s | peak RSS added MiB | batches | samples | snappy MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let exe = std::env::current_exe().expect("own path");
    for case in 0..CASES.len() {
        for round in 1..=3 {
            let status = std::process::Command::new(&exe)
                .args(["--case", &case.to_string(), "--round", &round.to_string()])
                .status()
                .expect("child run");
            assert!(status.success(), "case {case} round {round}: {status}");
        }
    }
}
