//! `--auth-flood N`: what a flood of wrong passwords costs everyone else.
//!
//! Starts the daemon with basic auth (one user, bcrypt cost 10, as `htpasswd
//! -nBC 10` makes), then times verified scrapes (`GET /metrics`, the
//! self-metrics page) on the web port, one every 10 ms for 3 s: idle, and while `N` clients send wrong
//! passwords to the push port as fast as they are answered. Also times a wrong
//! password for a known and for an unknown user name, idle: the two should cost
//! the same. Prints Markdown rows.

use super::web::sample;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `Basic` credentials for `user:password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// One `GET path` with `auth`, read to the end: its status and milliseconds.
fn get(addr: SocketAddr, path: &str, auth: &str) -> (u16, f64) {
    let t0 = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, 0.0);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = std::str::from_utf8(out.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t0.elapsed().as_secs_f64() * 1e3)
}

pub fn flood(daemon: &str, clients: usize) {
    let dir = std::env::temp_dir().join(format!("promstatsd-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let hash = bcrypt::hash("bench", 10).expect("bcrypt");
    let config = dir.join("web.yml");
    std::fs::write(&config, format!("basic_auth_users:\n  bench: '{hash}'\n"))
        .expect("write web.yml");
    let d = super::web::start(daemon, &[format!("--web.config.file={}", config.display())]);
    let (web, push) = (d.web, d.push);
    let (good, wrong) = (basic("bench", "bench"), basic("bench", "wrong"));
    assert_eq!(
        get(web, "/metrics", &good).0,
        200,
        "the right password is refused"
    );

    let known = sample(0.5, || Some(get(web, "/-/healthy", &wrong).1));
    let unknown = sample(0.5, || {
        Some(get(web, "/-/healthy", &basic("nobody", "wrong")).1)
    });
    println!(
        "| wrong password, idle: known user / unknown user | median {:.1} / {:.1} ms |",
        known.median, unknown.median
    );
    let idle = sample(3.0, || Some(get(web, "/metrics", &good).1));
    println!(
        "| verified scrape of /metrics on the web port, idle | median {:.2} ms, p90 {:.2} ms |",
        idle.median, idle.p90
    );

    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, refused, wrong) = (Arc::clone(&stop), Arc::clone(&refused), wrong.clone());
            std::thread::spawn(move || {
                // Relaxed: a stop flag and a tally read after the join.
                while !stop.load(Ordering::Relaxed) {
                    if get(push, "/-/healthy", &wrong).0 == 401 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Relaxed: see the flooders.
    let before = refused.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let busy = sample(3.0, || Some(get(web, "/metrics", &good).1));
    let secs = t0.elapsed().as_secs_f64();
    let during = refused.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.join();
    }
    println!(
        "| verified scrape of /metrics on the web port, {clients} clients sending wrong passwords to the push port | median {:.2} ms, p90 {:.2} ms ({:.1}× idle) | {:.0} wrong passwords answered/s |",
        busy.median,
        busy.p90,
        busy.median / idle.median.max(1e-3),
        during as f64 / secs
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
