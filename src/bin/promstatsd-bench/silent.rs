//! `--silent-readers N` (with `--memory`): what clients that ask for the page
//! and never read it cost.
//!
//! After the store is loaded, N connections (ten per loopback address,
//! 127.0.0.2 and up, as N clients behind a few hosts) send `GET /metrics` and
//! read nothing. Five seconds later the daemon's RSS is read, and a scrape by a
//! client that reads is timed. Prints a Markdown row.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP connection to `to` from loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    sock.bind(&SocketAddr::from((from, 0)).into()).ok()?;
    sock.connect(&to.into()).ok()?;
    Some(sock.into())
}

pub fn run(web: SocketAddr, pid: u32, clients: usize, rss_kib: impl Fn(u32) -> u64) {
    let before = rss_kib(pid);
    let silent: Vec<TcpStream> = (0..clients)
        .filter_map(|i| {
            let host = u8::try_from(2 + i / 10).unwrap_or(u8::MAX);
            let mut s = connect_from([127, 0, 0, host], web)?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
                .ok()?;
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let during = rss_kib(pid);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(web).expect("connect for a scrape");
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut page = Vec::new();
    let _ = s.read_to_end(&mut page);
    let scrape_ms = t0.elapsed().as_secs_f64() * 1e3;
    let status = String::from_utf8_lossy(page.get(..12).unwrap_or_default()).into_owned();
    println!(
        "| {} silent readers | RSS {} KiB -> {} KiB (+{:.0} MiB) | a reading scrape: {status}, {:.1} MB in {scrape_ms:.0} ms |",
        silent.len(),
        before,
        during,
        during.saturating_sub(before) as f64 / 1024.0,
        page.len() as f64 / 1e6,
    );
    drop(silent);
}
