//! `--churn SECS`: the churn soak. For SECS seconds, 5,000 new series a second
//! (each sent once, then left to its TTL) while 100,000 steady series are each
//! updated once a second, all as DogStatsD-tagged counters over UDP. Every ten
//! seconds the whole page is scraped and checked, and the daemon's RSS read.
//!
//! At the end: lines sent against lines counted (nothing may be lost), every
//! steady series' total against what was sent to it, every scrape valid, and
//! RSS after the warm-up against RSS at its end (it must stay flat: no growth
//! past 5 % plus 4 MiB). Prints Markdown rows; exits 1 when a check fails.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What the soak is asked to do.
pub struct Soak {
    /// Seconds to run.
    pub secs: u64,
    /// Seconds before RSS is expected to be flat.
    pub warmup: u64,
    /// New series per second.
    pub new_per_sec: u64,
    /// Series updated once a second throughout.
    pub steady: u64,
}

/// The mapping file the soak's daemon needs: every series expires after `ttl`
/// seconds without an update.
pub fn mapping(ttl: u64) -> String {
    format!("defaults:\n  ttl: {ttl}s\nmappings: []\n")
}

/// Lines per datagram.
const PER_DATAGRAM: u64 = 40;

/// Sends the soak's traffic: call [`Sender::catch_up`] often.
struct Sender {
    sock: UdpSocket,
    steady: u64,
    new_per_sec: u64,
    /// Lines sent so far, of each kind.
    steady_sent: u64,
    churn_sent: u64,
    buf: Vec<u8>,
}

impl Sender {
    /// Send what is due `elapsed` into the soak.
    fn catch_up(&mut self, elapsed: f64) {
        let steady_due = (elapsed * self.steady as f64) as u64;
        let churn_due = (elapsed * self.new_per_sec as f64) as u64;
        let mut in_datagram = 0;
        while self.steady_sent < steady_due || self.churn_sent < churn_due {
            // Interleaved by share, as clients of both kinds would send.
            let churn_behind = self.churn_sent * self.steady < self.steady_sent * self.new_per_sec;
            if (churn_behind && self.churn_sent < churn_due) || self.steady_sent >= steady_due {
                let _ = writeln!(self.buf, "soak_churn:1|c|#id:{}", self.churn_sent);
                self.churn_sent += 1;
            } else {
                let _ = writeln!(
                    self.buf,
                    "soak_steady:1|c|#id:{}",
                    self.steady_sent % self.steady
                );
                self.steady_sent += 1;
            }
            in_datagram += 1;
            if in_datagram == PER_DATAGRAM {
                self.flush();
                in_datagram = 0;
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.sock.send(&self.buf);
            self.buf.clear();
        }
    }
}

/// One reading, every ten seconds.
struct Reading {
    at: u64,
    rss_kib: u64,
    series: f64,
    scrape_ms: f64,
}

/// Run the soak against the daemon listening on `dst` (StatsD) and `web`.
/// Returns whether every check passed.
pub fn run(soak: &Soak, dst: SocketAddr, web: SocketAddr, pid: u32) -> bool {
    let lines_at_start = lines(web);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the soak's sender");
    sock.connect(dst).expect("connect the soak's sender");
    let mut sender = Sender {
        sock,
        steady: soak.steady,
        new_per_sec: soak.new_per_sec,
        steady_sent: 0,
        churn_sent: 0,
        buf: Vec::with_capacity(2048),
    };
    let started = Instant::now();
    let mut readings = Vec::new();
    let mut invalid = Vec::new();
    let mut next_reading = 10;
    println!("| second | series | RSS | scrape (checked) |");
    println!("| --- | --- | --- | --- |");
    while started.elapsed().as_secs() < soak.secs {
        sender.catch_up(started.elapsed().as_secs_f64());
        if started.elapsed().as_secs() >= next_reading {
            let t0 = Instant::now();
            let page = super::http_get(web, "/metrics");
            let scrape_ms = t0.elapsed().as_secs_f64() * 1e3;
            if let Err(e) = promstatsd::exposition::check::check(page.as_bytes()) {
                invalid.push(format!("second {next_reading}: {e}"));
            }
            let r = Reading {
                at: next_reading,
                rss_kib: super::rss_kib(pid),
                series: super::metric(&page, "promstatsd_series"),
                scrape_ms,
            };
            if r.at % 60 == 0 || soak.secs <= 120 {
                println!(
                    "| {} | {:.0} | {} KiB | {:.0} ms |",
                    r.at, r.series, r.rss_kib, r.scrape_ms
                );
            }
            readings.push(r);
            next_reading += 10;
            // Sending catches up after the scrape (UDP queues meanwhile).
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sender.catch_up(soak.secs as f64);
    verdict(soak, &sender, &readings, &invalid, web, lines_at_start)
}

/// `promstatsd_lines_total`, once it has stopped moving.
fn lines(web: SocketAddr) -> f64 {
    let read = || {
        super::metric(
            &super::http_get(web, "/metrics?collect[]=self"),
            "promstatsd_lines_total",
        )
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn verdict(
    soak: &Soak,
    sender: &Sender,
    readings: &[Reading],
    invalid: &[String],
    web: SocketAddr,
    lines_at_start: f64,
) -> bool {
    let sent = sender.steady_sent + sender.churn_sent;
    let counted = (lines(web) - lines_at_start) as u64;
    let page = super::http_get(web, "/metrics");
    let steady_total = super::metric(&page, "soak_steady");
    let flat_from = readings
        .iter()
        .find(|r| r.at >= soak.warmup)
        .map_or(0, |r| r.rss_kib);
    let last = readings.last().map_or(0, |r| r.rss_kib);
    let peak_after = readings
        .iter()
        .filter(|r| r.at >= soak.warmup)
        .map(|r| r.rss_kib)
        .max()
        .unwrap_or(0);
    let flat = last <= flat_from + flat_from / 20 + 4096;
    let lost = sent.saturating_sub(counted);
    let steady_ok = steady_total == sender.steady_sent as f64;
    println!();
    println!("| check | result |");
    println!("| --- | --- |");
    println!(
        "| lines sent / counted / lost | {sent} / {counted} / {lost} ({} new series) |",
        sender.churn_sent
    );
    println!(
        "| steady series' totals against lines sent to them | {steady_total} / {} |",
        sender.steady_sent
    );
    println!(
        "| scrapes checked / invalid | {} / {} |",
        readings.len(),
        invalid.len()
    );
    println!(
        "| RSS at {} s / peak after / at the end | {flat_from} / {peak_after} / {last} KiB ({}) |",
        soak.warmup,
        if flat { "flat" } else { "GROWING" }
    );
    for e in invalid.iter().take(3) {
        println!("invalid page: {e}");
    }
    lost == 0 && steady_ok && invalid.is_empty() && flat && !readings.is_empty()
}
