//! `--auth-flood N`: what a flood of wrong passwords costs everyone else.
//!
//! Starts the daemon with basic auth (one user, bcrypt cost 10, as `htpasswd
//! -nBC 10` makes), then times verified scrapes (`GET /metrics`, the
//! self-metrics page) on the web port, one every 10 ms for 3 s: idle, and while `N` clients send wrong
//! passwords to the push port as fast as they are answered. Also times a wrong
//! password for a known and for an unknown user name, idle: the two should cost
//! the same. Prints Markdown rows.

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

/// Median and 90th percentile, in milliseconds, of `one` run every 10 ms for
/// `secs` seconds (at least 5 runs, however long they take).
fn timed(secs: f64, mut one: impl FnMut() -> f64) -> (f64, f64) {
    let t0 = Instant::now();
    let mut t = Vec::new();
    while t.len() < 5 || t0.elapsed().as_secs_f64() < secs {
        t.push(one());
        std::thread::sleep(Duration::from_millis(10));
    }
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[t.len() * 9 / 10])
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

    let known = timed(0.5, || get(web, "/-/healthy", &wrong).1);
    let unknown = timed(0.5, || get(web, "/-/healthy", &basic("nobody", "wrong")).1);
    println!(
        "| wrong password, idle: known user / unknown user | median {:.1} / {:.1} ms |",
        known.0, unknown.0
    );
    let idle = timed(3.0, || get(web, "/metrics", &good).1);
    println!(
        "| verified scrape of /metrics on the web port, idle | median {:.2} ms, p90 {:.2} ms |",
        idle.0, idle.1
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
    let busy = timed(3.0, || get(web, "/metrics", &good).1);
    let secs = t0.elapsed().as_secs_f64();
    let during = refused.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.join();
    }
    println!(
        "| verified scrape of /metrics on the web port, {clients} clients sending wrong passwords to the push port | median {:.2} ms, p90 {:.2} ms ({:.1}× idle) | {:.0} wrong passwords answered/s |",
        busy.0,
        busy.1,
        busy.0 / idle.0.max(1e-3),
        during as f64 / secs
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
