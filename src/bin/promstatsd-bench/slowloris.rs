//! `--slowloris N`: what N slow connections on the push port cost scrapes on
//! the web port.
//!
//! Starts the daemon, then times scrapes of `/metrics` (self-metrics page) on
//! the web port, one every 10 ms for 3 s: idle, and while N connections to the
//! push port send one header byte a second, reconnecting whenever the daemon
//! closes one. Prints Markdown rows: median and p90 of the scrapes answered,
//! and how many were not answered at all.

use super::web::sample;
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

pub fn run(daemon: &str, clients: usize) {
    let d = super::web::start(daemon, &[]);
    let (web, push) = (d.web, d.push);
    let idle = sample(3.0, || scrape(web));
    println!(
        "| scrape of /metrics on the web port, idle | median {:.2} ms, p90 {:.2} ms | {} answered, {} not |",
        idle.median, idle.p90, idle.answered, idle.failed
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
    let busy = sample(3.0, || scrape(web));
    stop.store(true, Ordering::Relaxed);
    let _ = slow.join();
    println!(
        "| scrape of /metrics on the web port, {clients} slow connections to the push port | median {:.2} ms, p90 {:.2} ms ({:.1}× idle) | {} answered, {} not |",
        busy.median,
        busy.p90,
        busy.median / idle.median.max(1e-3),
        busy.answered,
        busy.failed
    );
    drop(d);
}
