//! `--status`: what the operator view costs.
//!
//! With `--memory N`: after the store is loaded, `/api/v1/status` and
//! `/status` are each fetched five times, to the last byte, and the median,
//! least and most times printed as Markdown rows. In a rate trial: both pages
//! are fetched once a second while the trial sends, and the median and slowest
//! of each are printed, so the trial's loss column says what polling cost ingest.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The operator view's two pages.
const PAGES: [&str; 2] = ["/api/v1/status", "/status"];

/// One timed fetch: milliseconds to the last byte, and the body's bytes.
fn fetch(web: SocketAddr, path: &str) -> (f64, usize) {
    let t0 = Instant::now();
    let answer = super::http_get_raw(web, path);
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    (ms, super::body_of(&answer).len())
}

/// Time each page five times and print a row for each.
pub fn time_pages(web: SocketAddr, series: f64) {
    for path in PAGES {
        let mut times: Vec<(f64, usize)> = (0..5).map(|_| fetch(web, path)).collect();
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!(
            "| {path} with {series} series | median {:.1} ms (min {:.1}, max {:.1}) | {} bytes |",
            times[2].0, times[0].0, times[4].0, times[2].1
        );
    }
}

/// Every fetch of each page while polling.
pub struct Polled {
    /// Rounds completed (each fetches both pages).
    pub rounds: u32,
    /// Every fetch's milliseconds, per page in [`PAGES`] order.
    pub times: [Vec<f64>; 2],
    /// A fetch that came back empty (the daemon did not answer).
    pub failed: u32,
}

/// Fetch both pages once a second until `stop`.
pub fn poll(web: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Polled> {
    std::thread::spawn(move || {
        let mut out = Polled {
            rounds: 0,
            times: [Vec::new(), Vec::new()],
            failed: 0,
        };
        // Relaxed: a flag read once a round; nothing else is published by it.
        while !stop.load(Ordering::Relaxed) {
            let round = Instant::now();
            for (i, path) in PAGES.iter().enumerate() {
                let (ms, bytes) = fetch(web, path);
                out.times[i].push(ms);
                out.failed += u32::from(bytes == 0);
            }
            out.rounds += 1;
            let rest = Duration::from_secs(1).saturating_sub(round.elapsed());
            std::thread::sleep(rest);
        }
        out
    })
}

impl Polled {
    /// One line for the harness's log.
    pub fn print(&mut self) {
        let mut cells = Vec::new();
        for (path, times) in PAGES.iter().zip(self.times.iter_mut()) {
            times.sort_by(f64::total_cmp);
            let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
            let max = times.last().copied().unwrap_or(f64::NAN);
            cells.push(format!("{path} median {median:.1} ms, max {max:.1} ms"));
        }
        eprintln!(
            "  (status polled {} times: {}; {} failed)",
            self.rounds,
            cells.join("; "),
            self.failed
        );
    }
}
