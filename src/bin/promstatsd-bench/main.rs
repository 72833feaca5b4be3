//! promstatsd-bench: the load harness.
//!
//! Starts the daemon (or a bare `recvmmsg` receiver that only counts lines: the
//! machine's receive-path limit), sends StatsD over UDP loopback with `sendmmsg`
//! at a fixed or open rate, and measures exactly: lines sent vs lines the daemon
//! counted (`promstatsd_lines_total`), the counter totals on the page, the daemon's
//! CPU time from `/proc`, and its RSS. `--search` finds the highest zero-loss rate;
//! `--scrape-during` scrapes the page in a loop while sending. Prints Markdown rows
//! for BENCHMARKS.md.
//!
//! ```text
//! promstatsd-bench --series 10000 --lines-per-datagram 40 --search
//! promstatsd-bench --mix counter-timer --tags dogstatsd --search
//! promstatsd-bench --bare --search
//! promstatsd-bench --memory 1000000 --mix counter
//! promstatsd-bench --auth-flood 16
//! promstatsd-bench --slowloris 520
//! promstatsd-bench --memory 1000000 --mix labelled --silent-readers 20
//! promstatsd-bench --churn 1800
//! promstatsd-bench --churn 60 --churn-ttl 5 --churn-warmup 20
//! promstatsd-bench --memory 1000000 --status
//! promstatsd-bench --preload 1000000 --rate 4000000 --secs 10 --status -- --statsd.max-series=2000000
//! promstatsd-bench --memory 10000 --mix timer --observations 10
//! promstatsd-bench --table
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod auth;
mod churn;
mod silent;
mod slowloris;
mod status;
mod table;
mod web;

#[derive(Clone)]
struct Opts {
    daemon: String,
    extra: Vec<String>,
    series: usize,
    per_datagram: usize,
    mix: String,
    tags: String,
    rate: u64,
    secs: f64,
    search: bool,
    scrape_during: bool,
    bare: bool,
    memory: usize,
    render: usize,
    preload: usize,
    /// Receive buffer of the daemon's (or the bare loop's) UDP socket.
    read_buffer: usize,
    /// `--auth-flood N`: clients sending wrong passwords (0: off).
    auth_flood: usize,
    /// `--slowloris N`: slow connections to the push port (0: off).
    slowloris: usize,
    /// `--silent-readers N` (with `--memory`): clients that never read the page.
    silent: usize,
    /// `--churn SECS`: the churn soak's length (0: off).
    churn: u64,
    /// `--churn-ttl SECS`: the soak's series TTL.
    churn_ttl: u64,
    /// `--churn-warmup SECS`: when RSS must have stopped growing.
    churn_warmup: u64,
    /// `--status`: time the operator view (`--memory`) or poll it each second.
    status: bool,
    /// `--protobuf`: the `--memory` scrapes ask for the protobuf page.
    protobuf: bool,
    /// `--against-bare`: with `--search`, the bare loop's search first, in the
    /// same run, and the daemon's figures as a share of it.
    against_bare: bool,
    /// `--observations K` (with `--memory`): lines sent to each series.
    observations: usize,
    /// `--table`: every row of the scale issue's table, in one run.
    table: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: promstatsd-bench [--daemon PATH] [--series N] [--lines-per-datagram K] \
         [--mix counter|counter-timer|timer] [--tags none|dogstatsd] [--rate LINES_PER_S] \
         [--secs S] [--search] [--scrape-during] [--status] [--protobuf] [--against-bare] [--bare] [--memory N] [--preload N] \
         [--read-buffer BYTES (default 26214400, both targets)] [--auth-flood CLIENTS] [--slowloris CONNECTIONS] [--silent-readers N] \
         [--churn SECS [--churn-ttl SECS (60)] [--churn-warmup SECS (300)]] \
         [--observations K (lines a series, with --memory)] [--table] \
         [-- DAEMON_FLAGS...]\n\
         with --memory, --mix is one of counter (a family per series), labelled \
         (one family, a label per series), timer, histogram, labelled-timer, \
         labelled-histogram, spread-timer (40 timings from 1 ms to 10 min a series)"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        daemon: "target/release/promstatsd".into(),
        extra: Vec::new(),
        series: 10_000,
        per_datagram: 40,
        mix: "counter".into(),
        tags: "none".into(),
        rate: 0,
        secs: 2.0,
        search: false,
        scrape_during: false,
        bare: false,
        memory: 0,
        render: 0,
        preload: 0,
        read_buffer: 26_214_400,
        auth_flood: 0,
        slowloris: 0,
        silent: 0,
        churn: 0,
        churn_ttl: 60,
        churn_warmup: 300,
        status: false,
        protobuf: false,
        against_bare: false,
        observations: 1,
        table: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--daemon" => o.daemon = val(),
            "--series" => o.series = val().parse().unwrap_or_else(|_| usage()),
            "--lines-per-datagram" => o.per_datagram = val().parse().unwrap_or_else(|_| usage()),
            "--mix" => o.mix = val(),
            "--tags" => o.tags = val(),
            "--rate" => o.rate = val().parse().unwrap_or_else(|_| usage()),
            "--secs" => o.secs = val().parse().unwrap_or_else(|_| usage()),
            "--search" => o.search = true,
            "--scrape-during" => o.scrape_during = true,
            "--bare" => o.bare = true,
            "--status" => o.status = true,
            "--protobuf" => o.protobuf = true,
            "--against-bare" => o.against_bare = true,
            "--table" => o.table = true,
            "--observations" => o.observations = val().parse().unwrap_or_else(|_| usage()),
            "--memory" => o.memory = val().parse().unwrap_or_else(|_| usage()),
            "--render" => o.render = val().parse().unwrap_or_else(|_| usage()),
            "--preload" => o.preload = val().parse().unwrap_or_else(|_| usage()),
            "--read-buffer" => o.read_buffer = val().parse().unwrap_or_else(|_| usage()),
            "--auth-flood" => o.auth_flood = val().parse().unwrap_or_else(|_| usage()),
            "--slowloris" => o.slowloris = val().parse().unwrap_or_else(|_| usage()),
            "--silent-readers" => o.silent = val().parse().unwrap_or_else(|_| usage()),
            "--churn" => o.churn = val().parse().unwrap_or_else(|_| usage()),
            "--churn-ttl" => o.churn_ttl = val().parse().unwrap_or_else(|_| usage()),
            "--churn-warmup" => o.churn_warmup = val().parse().unwrap_or_else(|_| usage()),
            "--" => {
                o.extra.extend(args.by_ref());
            }
            _ => usage(),
        }
    }
    o
}

/// Pre-built datagrams cycling over the series; every line adds 1 to a counter
/// (or observes a timer), so the expected totals are known.
fn datagrams(o: &Opts) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let lines_total = o.series.max(o.per_datagram) * 2;
    let mut buf = Vec::new();
    for n in 0..lines_total {
        let s = n % o.series;
        let timer = match o.mix.as_str() {
            "timer" => true,
            "counter-timer" => n % 2 == 1,
            _ => false,
        };
        let line = match (timer, o.tags.as_str()) {
            (false, "dogstatsd") => format!("bench.requests:1|c|#series:s{s},env:prod"),
            (true, "dogstatsd") => {
                format!("bench.latency:{}|ms|#series:s{s},env:prod", 1 + n % 250)
            }
            (false, _) => format!("bench.requests.s{s}:1|c"),
            (true, _) => format!("bench.latency.s{s}:{}|ms", 1 + n % 250),
        };
        buf.extend_from_slice(line.as_bytes());
        if (n + 1) % o.per_datagram == 0 {
            out.push(std::mem::take(&mut buf));
        } else {
            buf.push(b'\n');
        }
    }
    out
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    String::from_utf8_lossy(&body_of(&http_get_raw(addr, path))).into_owned()
}

/// The whole answer to a GET, as read (to its last byte; nothing converted).
fn http_get_raw(addr: SocketAddr, path: &str) -> Vec<u8> {
    http_get_accept(addr, path, "*/*")
}

/// Prometheus' `Accept` with native histograms: protobuf first.
const ACCEPT_PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,text/plain;version=0.0.4;q=0.5";

/// [`http_get_raw`] with an `Accept` header.
fn http_get_accept(addr: SocketAddr, path: &str, accept: &str) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The body of an answer [`http_get_raw`] read, dechunked.
fn body_of(answer: &[u8]) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = &answer[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    }
}

/// The data of a chunked body (as far as it is whole).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        let Some(data) = b.get(eol + 2..eol + 2 + size) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.extend_from_slice(data);
        b = b.get(eol + 2 + size + 2..).unwrap_or_default();
    }
    out
}

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// utime + stime of a process (or thread) in seconds, from /proc.
fn cpu_secs(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The highest RSS of a process while it is watched (sampled every 2 ms).
struct RssPeak {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssPeak {
    fn watch(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            // Relaxed: a stop flag polled in a loop; nothing else is published.
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        Self { stop, thread }
    }

    /// The peak in KiB.
    fn stop(self) -> u64 {
        // Relaxed: see `watch`.
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// Send `n` distinct series of the mix's type, `per_series` lines each (one
/// after the other, values varying), paced so none is lost.
fn load_series(target: &Target, dst: SocketAddr, n: usize, mix: &str, per_series: usize) {
    load_series_from(target, dst, 0..n, mix, per_series);
}

/// [`load_series`] for the series numbered `range`.
fn load_series_from(
    target: &Target,
    dst: SocketAddr,
    range: std::ops::Range<usize>,
    mix: &str,
    per_series: usize,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let base = target.lines() as usize;
    let mut line = String::new();
    let (mut sent, mut paced) = (0usize, 0usize);
    let last = range.end.saturating_sub(1);
    for i in range {
        for j in 0..per_series.max(1) {
            let v = (i + j) % 100;
            sent += series_line(&mut line, mix, i, v);
        }
        if line.len() > 1300 || i == last {
            let _ = sock.send_to(line.trim_end().as_bytes(), dst);
            line.clear();
            if sent - paced >= 20_000 {
                paced = sent;
                while (target.lines() as usize) < base + sent - 2_000 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// Append the lines of series `i` with value `v` for `--memory`'s mix; returns
/// how many lines.
fn series_line(line: &mut String, mix: &str, i: usize, v: usize) -> usize {
    match mix {
        "timer" => line.push_str(&format!("mem.series_{i}:{v}|ms\n")),
        "histogram" => line.push_str(&format!("mem.series_{i}:{v}|h\n")),
        "labelled" => line.push_str(&format!("mem.requests:1|c|#id:{i}\n")),
        "labelled-timer" => line.push_str(&format!("mem.latency:{v}|ms|#id:{i}\n")),
        "labelled-histogram" => line.push_str(&format!("mem.latency:{v}|h|#id:{i}\n")),
        // 40 timings spread evenly in log scale over 1 ms .. 10 min.
        "spread-timer" => {
            for j in 0..40 {
                let ms = 600_000f64.powf(f64::from(j) / 39.0);
                line.push_str(&format!("mem.latency:{ms:.3}|ms|#id:{i}\n"));
            }
            return 40;
        }
        _ => line.push_str(&format!("mem.series_{i}:1|c\n")),
    }
    1
}

/// What is being measured: the daemon, or the bare receiver in this process.
enum Target {
    Daemon {
        child: Child,
        web: SocketAddr,
    },
    Bare {
        lines: Arc<AtomicU64>,
        stat: String,
        stop: Arc<AtomicBool>,
    },
}

impl Target {
    fn lines(&self) -> f64 {
        match self {
            Target::Daemon { web, .. } => metric(
                &http_get(*web, "/metrics?collect[]=self"),
                "promstatsd_lines_total",
            ),
            Target::Bare { lines, .. } => lines.load(Ordering::Relaxed) as f64,
        }
    }
    fn cpu(&self) -> f64 {
        match self {
            Target::Daemon { child, .. } => cpu_secs(&format!("/proc/{}/stat", child.id())),
            Target::Bare { stat, .. } => cpu_secs(stat),
        }
    }
}

fn start_daemon(o: &Opts, udp: u16, web: u16) -> Target {
    let started = Instant::now();
    let mut child = Command::new(&o.daemon)
        .arg(format!("--statsd.listen-udp=127.0.0.1:{udp}"))
        .arg("--statsd.listen-tcp=")
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .arg("--push.listen-address=")
        .arg(format!("--statsd.read-buffer={}", o.read_buffer))
        .arg("--log.level=warn")
        .args(&o.extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); build it with cargo build --release",
                o.daemon
            )
        });
    let addr = SocketAddr::from(([127, 0, 0, 1], web));
    loop {
        if TcpStream::connect(addr).is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) || matches!(child.try_wait(), Ok(Some(_))) {
            panic!("the daemon did not start");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    eprintln!(
        "daemon ready in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Target::Daemon { child, web: addr }
}

fn start_bare(udp: u16, read_buffer: usize) -> Target {
    let sock = UdpSocket::bind(("127.0.0.1", udp)).expect("bind bare receiver");
    let s2 = socket2::SockRef::from(&sock);
    // The same buffer the daemon gets: forced past net.core.rmem_max when the
    // process may (CAP_NET_ADMIN), as the daemon does.
    let _ = s2.set_recv_buffer_size(read_buffer);
    if s2.recv_buffer_size().unwrap_or(0) < read_buffer {
        promstatsd::listener::force_read_buffer(&s2, read_buffer);
    }
    let lines = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (l2, st2) = (Arc::clone(&lines), Arc::clone(&stop));
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let _ = tx.send(format!("/proc/self/task/{tid}/stat"));
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut batch = promstatsd::listener::recv::RecvBatch::new(64, 65_536);
        let fd = sock.as_raw_fd();
        while !st2.load(Ordering::Relaxed) {
            // Blocking wait for the first datagram, then drain without blocking.
            let mut one = [0u8; 0];
            // SAFETY: a zero-length peek into a valid (empty) buffer.
            unsafe { libc::recv(fd, one.as_mut_ptr().cast(), 0, libc::MSG_PEEK) };
            while let Ok(n) = batch.recv(fd) {
                let mut c = 0u64;
                for i in 0..n {
                    let (m, _) = batch.message(i);
                    c += memchr::memchr_iter(b'\n', m).count() as u64 + u64::from(!m.is_empty());
                }
                l2.fetch_add(c, Ordering::Relaxed);
            }
        }
    });
    let stat = rx.recv().unwrap_or_default();
    Target::Bare { lines, stat, stop }
}

/// Send for `secs` at `rate` lines/s (0 = as fast as possible). Returns lines sent.
fn send(dst: SocketAddr, data: &[Vec<u8>], per_datagram: usize, rate: u64, secs: f64) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let _ = sock.connect(dst);
    let fd = sock.as_raw_fd();
    const BATCH: usize = 64;
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    let start = Instant::now();
    let mut sent_dgrams: u64 = 0;
    let mut idx = 0usize;
    let dgram_rate = rate as f64 / per_datagram as f64;
    while start.elapsed().as_secs_f64() < secs {
        let n = if rate == 0 {
            BATCH
        } else {
            let due = (start.elapsed().as_secs_f64() * dgram_rate) as u64;
            if due <= sent_dgrams {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            ((due - sent_dgrams) as usize).min(BATCH)
        };
        iov.clear();
        hdrs.clear();
        for k in 0..n {
            let d = &data[(idx + k) % data.len()];
            iov.push(libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            });
        }
        for v in iov.iter_mut() {
            // SAFETY: mmsghdr is plain old data; zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            hdrs.push(h);
        }
        // SAFETY: `hdrs` holds `n` headers pointing at live, read-only buffers.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, 0) };
        if r > 0 {
            sent_dgrams += r as u64;
            idx += r as usize;
        }
    }
    sent_dgrams * per_datagram as u64
}

/// Wait until the target's line count stops moving.
fn settle(t: &Target) -> f64 {
    let mut last = t.lines();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = t.lines();
        if now == last {
            return now;
        }
        last = now;
    }
}

struct Trial {
    rate: u64,
    sent: u64,
    received: u64,
    secs: f64,
    cpu: f64,
}

fn trial(t: &Target, dst: SocketAddr, data: &[Vec<u8>], o: &Opts, rate: u64) -> Trial {
    let before = settle(t);
    let cpu0 = t.cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = match (o.scrape_during, t) {
        (true, Target::Daemon { web, .. }) => {
            let (web, stop) = (*web, Arc::clone(&stop));
            Some(std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let _ = http_get(web, "/metrics");
                    n += 1;
                }
                n
            }))
        }
        _ => None,
    };
    let poller = match (o.status, t) {
        (true, Target::Daemon { web, .. }) => Some(status::poll(*web, Arc::clone(&stop))),
        _ => None,
    };
    let started = Instant::now();
    let sent = send(dst, data, o.per_datagram, rate, o.secs);
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = scraper {
        let n = s.join().unwrap_or(0);
        eprintln!("  ({n} scrapes during the trial)");
    }
    if let Some(mut p) = poller.and_then(|p| p.join().ok()) {
        p.print();
    }
    let after = settle(t);
    let cpu = t.cpu() - cpu0;
    Trial {
        rate,
        sent,
        received: (after - before) as u64,
        secs,
        cpu,
    }
}

fn report(label: &str, tr: &Trial) {
    let lost = tr.sent.saturating_sub(tr.received);
    println!(
        "| {label} | {:.2} M/s | {:.2} M | {} ({:.3} %) | {:.2} s | {:.2} M |",
        tr.sent as f64 / tr.secs / 1e6,
        tr.sent as f64 / 1e6,
        lost,
        100.0 * lost as f64 / tr.sent.max(1) as f64,
        tr.cpu,
        tr.received as f64 / tr.cpu.max(1e-9) / 1e6,
    );
}

fn main() -> std::process::ExitCode {
    let mut o = parse_args();
    if o.churn > 0 {
        return soak(&mut o);
    }
    if o.auth_flood > 0 {
        auth::flood(&o.daemon, o.auth_flood);
        return std::process::ExitCode::SUCCESS;
    }
    if o.slowloris > 0 {
        slowloris::run(&o.daemon, o.slowloris);
        return std::process::ExitCode::SUCCESS;
    }
    let (udp, web) = (18_125u16, 19_102u16);
    let dst = SocketAddr::from(([127, 0, 0, 1], udp));
    if o.table {
        table::run(&o, udp, web);
        return std::process::ExitCode::SUCCESS;
    }
    if o.against_bare && o.search && !o.bare {
        let _ = against_bare(&o, udp, web);
        return std::process::ExitCode::SUCCESS;
    }
    let target = if o.bare {
        start_bare(udp, o.read_buffer)
    } else {
        start_daemon(&o, udp, web)
    };
    if let Target::Daemon { child, .. } = &target {
        eprintln!("idle RSS {} KiB", rss_kib(child.id()));
    }
    if o.preload > 0 {
        load_series(&target, dst, o.preload, "counter", 1);
        let got = settle(&target);
        eprintln!("preloaded {} series ({got} lines)", o.preload);
    }
    if o.memory > 0 || o.render > 0 {
        let _ = memory_and_scrape(&o, &target, dst);
    } else {
        rates(&o, &target, dst);
    }
    finish(target);
    std::process::ExitCode::SUCCESS
}

/// The daemon's lines per CPU-second as a share of the bare loop's.
pub struct Share {
    /// Median of the paired trials' shares, percent.
    median: f64,
    /// The pair that gave the median: the daemon's and the loop's lines per
    /// CPU-second.
    daemon: f64,
    bare: f64,
}

const BARE: &str = "bare recvmmsg";
const DAEMON: &str = "promstatsd";

/// A row's first cell for `--against-bare`.
fn case_label(o: &Opts, what: &str, rate: u64) -> String {
    format!(
        "{what} mix={} K={} N={} rate={:.2}M",
        o.mix,
        o.per_datagram,
        o.series,
        rate as f64 / 1e6
    )
}

/// Paired fixed-rate trials `--against-bare` runs after the searches.
const PAIRS: usize = 5;

/// `--against-bare --search`: the bare `recvmmsg` loop's search, then the
/// daemon's, in one run, then [`PAIRS`] pairs of fixed-rate trials (the loop,
/// then the daemon, at 90 % of the lower zero-loss rate): each pair's lines
/// per CPU-second as a share of the loop's, and their median (the scale
/// issue's goal: at least 50 %). Pairs, because on this VM one target's
/// figure moves by 15 % from one trial to the next.
fn against_bare(o: &Opts, udp: u16, web: u16) -> Option<Share> {
    let data = datagrams(o);
    println!("| case | sent rate | lines sent | lost | target CPU | lines per CPU-second |");
    println!("| --- | --- | --- | --- | --- | --- |");
    // The bare loop on the next port, so the daemon's bind never waits for it.
    let bare_dst = SocketAddr::from(([127, 0, 0, 1], udp + 1));
    let daemon_dst = SocketAddr::from(([127, 0, 0, 1], udp));
    let bare = start_bare(udp + 1, o.read_buffer);
    let daemon = start_daemon(o, udp, web);
    let b = search(&bare, bare_dst, &data, o, &|r| case_label(o, BARE, r));
    let d = search(&daemon, daemon_dst, &data, o, &|r| case_label(o, DAEMON, r));
    let share = match (b, d) {
        (Some(b), Some(d)) => {
            let rate = |t: &Trial| t.sent as f64 / t.secs;
            println!(
                "| zero-loss rates, promstatsd / bare loop | {:.0} % ({:.2} / {:.2} M lines/s) | | | | |",
                100.0 * rate(&d) / rate(&b),
                rate(&d) / 1e6,
                rate(&b) / 1e6,
            );
            let fixed = (0.9 * rate(&d).min(rate(&b))) as u64;
            Some(pairs(
                o,
                &data,
                (&bare, bare_dst),
                (&daemon, daemon_dst),
                fixed,
            ))
        }
        _ => {
            eprintln!("no zero-loss rate found for one of the two; no ratio");
            None
        }
    };
    finish(bare);
    finish(daemon);
    share
}

/// [`PAIRS`] interleaved fixed-rate trials of the loop and the daemon.
fn pairs(
    o: &Opts,
    data: &[Vec<u8>],
    bare: (&Target, SocketAddr),
    daemon: (&Target, SocketAddr),
    rate: u64,
) -> Share {
    let per_cpu = |t: &Trial| t.received as f64 / t.cpu.max(1e-9);
    let mut shares = Vec::new();
    for _ in 0..PAIRS {
        let b = trial(bare.0, bare.1, data, o, rate);
        report(&case_label(o, BARE, rate), &b);
        let d = trial(daemon.0, daemon.1, data, o, rate);
        report(&case_label(o, DAEMON, rate), &d);
        shares.push((100.0 * per_cpu(&d) / per_cpu(&b), per_cpu(&d), per_cpu(&b)));
    }
    shares.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, daemon, bare) = shares[PAIRS / 2];
    println!(
        "| **promstatsd / bare loop, same run, {PAIRS} pairs at {:.2} M lines/s** | | | | | **{median:.0} %** median ({:.0}-{:.0} %; {:.2} / {:.2} M lines per CPU-second) |",
        rate as f64 / 1e6,
        shares[0].0,
        shares[PAIRS - 1].0,
        daemon / 1e6,
        bare / 1e6,
    );
    Share {
        median,
        daemon,
        bare,
    }
}

/// `--churn`: the daemon with every series on a TTL, then the soak.
fn soak(o: &mut Opts) -> std::process::ExitCode {
    let mapping = std::env::temp_dir().join(format!("promstatsd-soak-{}.yml", std::process::id()));
    if let Err(e) = std::fs::write(&mapping, churn::mapping(o.churn_ttl)) {
        eprintln!("cannot write {}: {e}", mapping.display());
        return std::process::ExitCode::from(2);
    }
    o.extra
        .push(format!("--statsd.mapping-config={}", mapping.display()));
    // Free ports, so a soak can run beside other runs of the harness.
    let free = |udp: bool| -> u16 {
        let port = if udp {
            UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
        } else {
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
        };
        port.map_or(0, |a| a.port())
    };
    let (udp, web) = (free(true), free(false));
    let target = start_daemon(o, udp, web);
    let Target::Daemon { child, web } = &target else {
        usage()
    };
    let soak = churn::Soak {
        secs: o.churn,
        warmup: o.churn_warmup.min(o.churn),
        new_per_sec: 5_000,
        steady: 100_000,
    };
    let dst = SocketAddr::from(([127, 0, 0, 1], udp));
    let passed = churn::run(&soak, dst, *web, child.id());
    finish(target);
    let _ = std::fs::remove_file(&mapping);
    if passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// What `--memory` measured.
pub struct Memory {
    /// Series in the store.
    series: f64,
    /// RSS growth per series while loading.
    bytes_per_series: f64,
    /// Highest RSS during the five scrapes over the RSS before them, MiB.
    peak_added_mib: f64,
    /// The median scrape, to the page's last byte, ms.
    scrape_ms: f64,
}

/// `--memory`/`--render`: RSS per series after loading them, then five
/// timed scrapes of the whole page.
fn memory_and_scrape(o: &Opts, target: &Target, dst: SocketAddr) -> Memory {
    let Target::Daemon { child, web } = target else {
        usage()
    };
    let n = o.memory.max(o.render);
    // Warm-up: 1 % more series (numbered past the measured ones), so the code
    // the load runs is paged in before the first RSS reading (2 MB of it
    // would be 200 bytes a series at 10,000 series).
    let warm = (n / 100).max(100);
    load_series_from(target, dst, n..n + warm, &o.mix, o.observations);
    settle(target);
    // Only the self-metrics: a full page would add its own buffers to the RSS.
    let self_series = || {
        metric(
            &http_get(*web, "/metrics?collect[]=self"),
            "promstatsd_series",
        )
    };
    let warm_series = self_series();
    let before = rss_kib(child.id());
    load_series(target, dst, n, &o.mix, o.observations);
    let got = settle(target);
    let series = self_series();
    let after = rss_kib(child.id());
    let bytes_per_series =
        (after.saturating_sub(before)) as f64 * 1024.0 / (series - warm_series).max(1.0);
    println!(
        "| {} {} series (after {} warm-up ones), {} lines each | {} lines received | RSS {} KiB -> {} KiB | {:.0} bytes/series |",
        series - warm_series, o.mix, warm_series, o.observations, got, before, after, bytes_per_series
    );
    // Scrape timing: a full GET of the page, while RSS is sampled.
    let peak = RssPeak::watch(child.id());
    let cpu_before = target.cpu();
    let mut times = Vec::new();
    for _ in 0..5 {
        // Timed to the page's last byte: the harness's own work on it after
        // (dechunking, counting) is not the daemon's.
        let t0 = Instant::now();
        let accept = if o.protobuf { ACCEPT_PROTOBUF } else { "*/*" };
        let answer = http_get_accept(*web, "/metrics", accept);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        times.push((ms, body_of(&answer).len()));
    }
    let peak = peak.stop();
    let cpu_per_scrape = (target.cpu() - cpu_before) / times.len() as f64;
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let peak_added_mib = peak.saturating_sub(after) as f64 / 1024.0;
    println!(
        "| peak RSS added by scraping | +{peak_added_mib:.1} MiB ({after} KiB before, {peak} KiB at most) |"
    );
    println!(
        "| {}scrape of {} series | median {:.0} ms (min {:.0}, max {:.0}) | {:.1} MB page | daemon CPU {:.0} ms a scrape |",
        if o.protobuf { "protobuf " } else { "" },
        series,
        times[2].0,
        times[0].0,
        times[4].0,
        times[2].1 as f64 / 1e6,
        cpu_per_scrape * 1e3
    );
    if o.status {
        status::time_pages(*web, series);
    }
    if o.silent > 0 {
        silent::run(*web, child.id(), o.silent, rss_kib);
    }
    Memory {
        series,
        bytes_per_series,
        peak_added_mib,
        scrape_ms: times[2].0,
    }
}

/// A fixed-rate trial, or `--search` for the highest zero-loss rate.
fn rates(o: &Opts, target: &Target, dst: SocketAddr) {
    let data = datagrams(o);
    println!("| case | sent rate | lines sent | lost | target CPU | lines per CPU-second |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let label = |rate: u64| {
        format!(
            "{} {} mix={} tags={} K={} N={} rate={}",
            if o.bare {
                "bare recvmmsg"
            } else {
                "promstatsd"
            },
            match (o.scrape_during, o.status) {
                (true, true) => "+scrapes +status",
                (true, false) => "+scrapes",
                (false, true) => "+status",
                (false, false) => "",
            },
            o.mix,
            o.tags,
            o.per_datagram,
            o.series,
            if rate == 0 {
                "open".to_string()
            } else {
                format!("{:.2}M", rate as f64 / 1e6)
            }
        )
    };
    if o.search {
        let _ = search(target, dst, &data, o, &label);
    } else {
        let t = trial(target, dst, &data, o, o.rate);
        report(&label(o.rate), &t);
    }
}

/// Open loop first: the most the sender manages; then bisect for zero loss.
fn search(
    target: &Target,
    dst: SocketAddr,
    data: &[Vec<u8>],
    o: &Opts,
    label: &dyn Fn(u64) -> String,
) -> Option<Trial> {
    let open = trial(target, dst, data, o, 0);
    report(&label(0), &open);
    let mut hi = (open.sent as f64 / open.secs) as u64;
    let mut lo = 0u64;
    let mut best: Option<Trial> = None;
    if open.received >= open.sent {
        best = Some(open);
        lo = hi;
    }
    for _ in 0..6 {
        if hi <= lo + hi / 50 {
            break;
        }
        let mid = if lo == 0 { hi / 2 } else { (lo + hi) / 2 };
        let t = trial(target, dst, data, o, mid);
        report(&label(mid), &t);
        if t.received >= t.sent {
            lo = mid;
            best = Some(t);
        } else {
            hi = mid;
        }
    }
    if let Some(b) = best {
        eprintln!(
            "highest zero-loss rate: {:.2} M lines/s",
            b.sent as f64 / b.secs / 1e6
        );
        report(&format!("**zero-loss** {}", label(b.rate)), &b);
        return Some(b);
    }
    None
}

/// The daemon's own counts, its peak memory, and stop it.
fn finish(target: Target) {
    if let Target::Daemon { web, .. } = &target {
        let page = http_get(*web, "/metrics?collect[]=self");
        eprintln!(
            "daemon: {} series, {} samples refused at the series limit, {} lines received",
            metric(&page, "promstatsd_series"),
            page.lines()
                .find(|l| l.starts_with("promstatsd_events_error_total{reason=\"series_limit\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("?"),
            metric(&page, "promstatsd_lines_total"),
        );
    }
    match target {
        Target::Daemon { mut child, .. } => {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            for l in status
                .lines()
                .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
            {
                eprintln!("daemon {l}");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Target::Bare { stop, .. } => stop.store(true, Ordering::Relaxed),
    }
}
