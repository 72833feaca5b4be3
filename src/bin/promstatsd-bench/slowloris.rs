//! `--slowloris N`: what N slow connections on the push port cost scrapes on
//! the web port.
//!
//! Starts the daemon, then times scrapes of `/metrics` (self-metrics page) on
//! the web port, one every 10 ms for 3 s: idle, and while N connections to the
//! push port send one header byte a second, reconnecting whenever the daemon
//! closes one. Prints Markdown rows: median and p90 of the scrapes answered,
//! and how many were not answered at all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One scrape: milliseconds, or `None` when it was not answered.
fn scrape(web: SocketAddr) -> Option<f64> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(web).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.starts_with(b"HTTP/1.1 200")
        .then(|| t0.elapsed().as_secs_f64() * 1e3)
}

/// Scrapes every 10 ms for 3 s: (median ms, p90 ms, answered, not answered).
fn scrapes(web: SocketAddr) -> (f64, f64, usize, usize) {
    let t0 = Instant::now();
    let (mut ok, mut failed) = (Vec::new(), 0);
    while t0.elapsed() < Duration::from_secs(3) {
        match scrape(web) {
            Some(ms) => ok.push(ms),
            None => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ok.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ok.get((ok.len() as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.9), ok.len(), failed)
}

pub fn run(daemon: &str, clients: usize) {
    let d = super::web::start(daemon, &[]);
    let (web, push) = (d.web, d.push);
    let idle = scrapes(web);
    println!(
        "| scrape of /metrics on the web port, idle | median {:.2} ms, p90 {:.2} ms | {} answered, {} not |",
        idle.0, idle.1, idle.2, idle.3
    );
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut conns: Vec<Option<TcpStream>> = (0..clients).map(|_| None).collect();
            // Relaxed: a stop flag.
            while !stop.load(Ordering::Relaxed) {
                for c in conns.iter_mut() {
                    let alive = c.as_mut().is_some_and(|s| s.write_all(b"G").is_ok());
                    if !alive {
                        *c = TcpStream::connect(push).ok();
                        if let Some(s) = c.as_mut() {
                            let _ = s.write_all(b"G");
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let busy = scrapes(web);
    stop.store(true, Ordering::Relaxed);
    let _ = slow.join();
    println!(
        "| scrape of /metrics on the web port, {clients} slow connections to the push port | median {:.2} ms, p90 {:.2} ms ({:.1}× idle) | {} answered, {} not |",
        busy.0,
        busy.1,
        busy.0 / idle.0.max(1e-3),
        busy.2,
        busy.3
    );
    drop(d);
}
