//! Hostile input, end to end over real sockets. For each case: the daemon keeps
//! running, the right error counter moves by the right amount, valid lines in the
//! same datagram are kept, and the page stays valid (checked with the project's
//! exposition checker).

mod common;

use common::{raw_http, rss_kib, value, Daemon};
use promstatsd::exposition::check::check;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn err(page: &str, reason: &str) -> f64 {
    value(
        page,
        &format!("promstatsd_sample_errors_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(-1.0)
}

/// Send one datagram, wait for `lines` lines, check the page is valid and return it.
fn run(d: &Daemon, datagram: &[u8], lines: u64) -> String {
    let before = value(&d.scrape(), "promstatsd_lines_total").unwrap_or(0.0) as u64;
    d.send_udp(datagram);
    let page = d.wait_lines(before + lines);
    if let Err(e) = check(page.as_bytes()) {
        panic!("invalid page: {e}\n{page}");
    }
    page
}

#[test]
fn datagram_of_64_kib_with_an_over_long_line() {
    let d = Daemon::start(&[]);
    let mut dgram = b"ok:1|c\n".to_vec();
    dgram.extend_from_slice(format!("{}:1|c\n", "x".repeat(65_000)).as_bytes());
    dgram.extend_from_slice(b"ok:2|c");
    assert!(dgram.len() <= 65_507);
    let page = run(&d, &dgram, 3);
    assert_eq!(value(&page, "ok"), Some(3.0));
    assert_eq!(err(&page, "line_too_long"), 1.0);
    assert!(!page.contains("xxxxxxxx"));
}

#[test]
fn invalid_utf8_in_names_and_tag_values() {
    let d = Daemon::start(&[]);
    let page = run(
        &d,
        b"ok:1|c\nbad\xff\xfe:1|c\nt:1|c|#k:v\xc3\x28\nok:1|c",
        4,
    );
    assert_eq!(value(&page, "ok"), Some(2.0));
    assert_eq!(err(&page, "malformed_line"), 2.0);
}

#[test]
fn empty_names_and_names_that_escape_to_underscores() {
    let d = Daemon::start(&[]);
    let page = run(
        &d,
        ":1|c\n,k=v:1|c\n-:1|c\n\u{2603}:2|c\nok:1|c".as_bytes(),
        5,
    );
    assert_eq!(err(&page, "malformed_line"), 2.0);
    // `-` and a snowman both escape to `_`: one family, valid on the page.
    assert_eq!(value(&page, "_"), Some(3.0), "{page}");
    assert_eq!(value(&page, "ok"), Some(1.0));
}

#[test]
fn special_float_values() {
    let d = Daemon::start(&[]);
    let page = run(
        &d,
        b"gn:NaN|g\ngi:+Inf|g\ngz:-0|g\ncn:NaN|c\nci:Inf|c\nbig:1e309|g\ntn:NaN|ms\nok:1|c",
        8,
    );
    assert!(page.contains("\ngn NaN\n"), "{page}");
    assert!(page.contains("\ngi +Inf\n"));
    assert_eq!(value(&page, "gz"), Some(0.0));
    assert_eq!(err(&page, "malformed_value"), 4.0);
    assert_eq!(value(&page, "ok"), Some(1.0));
}

#[test]
fn odd_sample_rates() {
    let d = Daemon::start(&[]);
    let page = run(
        &d,
        b"r:1|c|@0\nr:1|c|@-1\nr:1|c|@2\nr:1|c|@abc\nr:1|c|@\nr:1|c|@0.5",
        6,
    );
    // @0 counts as 1, @0.5 as 2; the four others are refused.
    assert_eq!(value(&page, "r"), Some(3.0));
    assert_eq!(err(&page, "invalid_sample_factor"), 4.0);
}

#[test]
fn tag_values_cannot_inject_samples() {
    let d = Daemon::start(&[]);
    let page = run(
        &d,
        b"inj:1|c|#k:a\"} 999\ninj:2|c|#k:b\\\ninj:3|c|#k:}\ninj2,k=\"} 7 #:1|c",
        4,
    );
    assert!(page.contains("inj{k=\"a\\\"} 999\"} 1\n"), "{page}");
    assert!(page.contains("inj{k=\"b\\\\\"} 2\n"));
    assert!(page.contains("inj{k=\"}\"} 3\n"));
    assert!(page.contains("inj2{k=\"\\\"} 7 #\"} 1\n"), "{page}");
    assert!(!page.lines().any(|l| l.starts_with("999") || l == "inj 999"));
}

#[test]
fn thousands_of_tags_and_duplicate_keys() {
    let d = Daemon::start(&[]);
    let tags: Vec<String> = (0..1800).map(|i| format!("t{i}:x")).collect();
    let line = format!(
        "many:1|c|#{}\ndup:1|c|#k:first,k:second,k:third",
        tags.join(",")
    );
    assert!(line.len() < 16 * 1024, "within the default line limit");
    let page = run(&d, line.as_bytes(), 2);
    let many = page
        .lines()
        .find(|l| l.starts_with("many{"))
        .expect("series with 1800 labels");
    assert_eq!(many.matches("=\"x\"").count(), 1800);
    assert!(page.contains("dup{k=\"third\"} 1\n"));
}

#[test]
fn mixed_tag_styles_are_refused_alone() {
    let d = Daemon::start(&[]);
    let page = run(&d, b"m,a=b:1|c|#c:d\nm#a=b:1|c|#c:d\nok:1|c", 3);
    assert_eq!(err(&page, "mixed_tagging_styles"), 2.0);
    assert_eq!(value(&page, "ok"), Some(1.0));
}

#[test]
fn tcp_line_that_never_ends_and_silent_clients() {
    let d = Daemon::start(&["--statsd.max-line-length=1024"]);
    let addr = d.tcp.unwrap();
    let _silent = TcpStream::connect(addr).unwrap();
    let mut endless = TcpStream::connect(addr).unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..32 {
        endless.write_all(&chunk).unwrap();
    }
    // Another client is served meanwhile.
    let mut good = TcpStream::connect(addr).unwrap();
    good.write_all(b"ok:1|c\n").unwrap();
    drop(good);
    let page = d.wait_for(|p| value(p, "ok") == Some(1.0));
    assert_eq!(
        value(&page, "promstatsd_tcp_too_long_lines_total"),
        Some(1.0)
    );
    // The endless line is discarded as it streams: memory does not grow with it.
    let rss = rss_kib(d.child.id());
    for _ in 0..64 {
        endless.write_all(&chunk).unwrap();
    }
    endless.write_all(b"\nafter:1|c\n").unwrap();
    let page = d.wait_for(|p| value(p, "after") == Some(1.0));
    assert!(rss_kib(d.child.id()) < rss + 8 * 1024);
    assert_eq!(
        value(&page, "promstatsd_tcp_too_long_lines_total"),
        Some(1.0)
    );
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn thousands_of_tcp_connections_and_a_connection_limit() {
    raise_fd_limit();
    let d = Daemon::start(&["--statsd.tcp-max-connections=2000"]);
    let addr = d.tcp.unwrap();
    let mut conns = Vec::new();
    for _ in 0..3000 {
        conns.push(TcpStream::connect(addr).unwrap());
    }
    let page = d.wait_for(|p| {
        value(p, "promstatsd_tcp_connections_refused_total") == Some(1000.0)
            && value(p, "promstatsd_tcp_connections_open") == Some(2000.0)
    });
    assert_eq!(
        value(&page, "promstatsd_tcp_connections_total"),
        Some(2000.0)
    );
    // Accepted connections work; refused ones were closed by the daemon.
    conns[0].write_all(b"first:1|c\n").unwrap();
    conns[1999].write_all(b"last:1|c\n").unwrap();
    d.wait_for(|p| value(p, "first") == Some(1.0) && value(p, "last") == Some(1.0));
    conns[2999]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(
        matches!(conns[2999].read(&mut buf), Ok(0) | Err(_)),
        "refused connection is closed"
    );
    drop(conns);
    d.wait_for(|p| value(p, "promstatsd_tcp_connections_open") == Some(0.0));
}

#[test]
fn http_abuse() {
    let d = Daemon::start(&["--web.header-timeout=1"]);
    // Huge headers: refused with 431, the server stays up.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let mut s = TcpStream::connect(d.web).unwrap();
    let _ = s.write_all(huge.as_bytes());
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    assert!(
        String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // Bad method, bad path, garbage.
    assert_eq!(d.request("DELETE", "/metrics", &[]).status, 405);
    assert_eq!(d.get("/../../etc/passwd", &[]).status, 404);
    let garbage = raw_http(d.web, b"\x00\x01GARBAGE\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // A slow client that never finishes its headers is cut off after the timeout,
    // and does not block a scrape meanwhile.
    let mut slow = TcpStream::connect(d.web).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    assert_eq!(d.get("/metrics", &[]).status, 200);
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow client was not cut off"
    );
    // Still serving.
    assert_eq!(d.get("/-/healthy", &[]).status, 200);
}

/// `Basic` credentials for `user:password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[test]
fn a_slow_password_check_does_not_hold_up_verified_requests() {
    // Cost 12: a few hundred milliseconds of bcrypt per check in this build.
    let dir = common::temp_dir("auth-order");
    let hash = bcrypt::hash("right", 12).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  u: '{hash}'\n")).unwrap();
    let d = Daemon::start(&[&format!("--web.config.file={}", web.display())]);
    let good = basic("u", "right");
    // Verified once, then served from the daemon's cache of verified credentials.
    assert_eq!(d.get("/-/healthy", &[("Authorization", &good)]).status, 200);
    // A wrong password, and an unknown user (checked against a dummy hash so it
    // costs the same: user names do not leak by timing). Either check runs
    // while a verified request is served, and ends after it.
    for (who, header) in [
        ("wrong password", basic("u", "wrong")),
        ("unknown user", basic("nobody", "wrong")),
    ] {
        let addr = d.web;
        let check = std::thread::spawn(move || {
            let req = format!(
                "GET /-/healthy HTTP/1.1\r\nHost: t\r\nAuthorization: {header}\r\nConnection: close\r\n\r\n"
            );
            let status = raw_http(addr, req.as_bytes()).status;
            (status, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(d.get("/-/healthy", &[("Authorization", &good)]).status, 200);
        let served = Instant::now();
        let (status, refused) = check.join().unwrap();
        assert_eq!(status, 401, "{who}");
        assert!(
            served < refused,
            "{who}: the verified request waited for its check"
        );
    }
    let page = String::from_utf8(d.get("/metrics", &[("Authorization", &good)]).body).unwrap();
    assert_eq!(
        value(
            &page,
            "promstatsd_http_auth_failures_total{listener=\"web\"}"
        ),
        Some(2.0),
        "{page}"
    );
}

#[test]
fn health_checks_do_not_wait_for_a_render() {
    let d = Daemon::start(&[]);
    let lines: String = (0..600_000).map(|i| format!("big,i=s{i}:1|c\n")).collect();
    let mut tcp = TcpStream::connect(d.tcp.unwrap()).unwrap();
    tcp.write_all(lines.as_bytes()).unwrap();
    drop(tcp);
    d.wait_for_secs(60, |p| {
        value(p, "promstatsd_lines_total") == Some(600_000.0)
    });
    let web = d.web;
    // A gzipped page of 600,000 series: long enough to render that a check
    // queued behind it would wait most of it.
    let scrape = std::thread::spawn(move || {
        let started = Instant::now();
        let req = b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
        assert_eq!(raw_http(web, req).status, 200);
        (started.elapsed(), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(30));
    // Three checks; the fastest of those that ended before the page did counts:
    // one slowed by the machine (other tests run beside this one) is not one
    // that waited for the render, and a check after the render proves nothing.
    let checks: Vec<(Duration, Instant)> = (0..3)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(d.get("/-/healthy", &[]).status, 200);
            (started.elapsed(), Instant::now())
        })
        .collect();
    let (render, page_done) = scrape.join().unwrap();
    let health = checks
        .iter()
        .filter(|(_, done)| *done < page_done)
        .map(|(took, _)| *took)
        .min()
        .expect("a health check answered while the page was still being sent");
    assert!(
        health * 4 < render,
        "a health check took {health:?} while a scrape took {render:?}"
    );
}

#[test]
fn tcp_listeners_take_the_systems_backlog() {
    // A burst of clients connecting at once (Airflow workers starting) queues
    // in the listen backlog; the standard library's 128 overflowed it.
    let d = Daemon::start(&[]);
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let out = std::process::Command::new("ss")
        .args(["-ltnH"])
        .output()
        .expect("ss is required (scripts/test.sh installs iproute2)");
    let table = String::from_utf8_lossy(&out.stdout);
    for addr in [d.tcp.unwrap(), d.web, d.push.unwrap()] {
        // State, Recv-Q, Send-Q (the backlog of a listening socket), address.
        let backlog = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.get(3) == Some(&addr.to_string().as_str()))
            .and_then(|cols| cols.get(2).map(|b| b.to_string()))
            .unwrap_or_else(|| panic!("{addr} not in\n{table}"));
        assert_eq!(backlog, somaxconn.trim(), "{addr}");
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is
/// all loopback on Linux, so each test client can have an address of its own).
fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local = std::net::SocketAddr::from((from, 0));
    sock.bind(&local.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

#[test]
fn a_connection_flood_on_the_push_port_leaves_the_web_port_reachable() {
    let d = Daemon::start(&[
        "--push.max-connections=20",
        "--web.max-connections=30",
        "--web.header-timeout=2",
    ]);
    let push = d.push.unwrap();
    // Two clients that connect and send one header byte, 15 connections each:
    // the first gets its half of the push port (10) and 5 refusals; the second
    // gets the other 10, then the port is full.
    let mut held = Vec::new();
    for source in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        for _ in 0..15 {
            let mut s = connect_from(source, push);
            let _ = s.write_all(b"G");
            held.push(s);
        }
    }
    let refused = |p: &str, reason: &str| {
        value(
            p,
            &format!("promstatsd_http_connections_refused_total{{listener=\"push\",reason=\"{reason}\"}}"),
        )
    };
    // The web port has a budget of its own: a scrape is answered meanwhile.
    let page = d.wait_for(|p| {
        refused(p, "client_limit") == Some(5.0) && refused(p, "port_limit") == Some(5.0)
    });
    assert!(page.contains("promstatsd_build_info"));
    // The slow clients are cut off after the header timeout, and counted.
    d.wait_for_secs(10, |p| {
        value(
            p,
            "promstatsd_http_connections_timed_out_total{listener=\"push\"}",
        ) == Some(20.0)
    });
    drop(held);
}

#[test]
fn clients_that_never_read_their_page_hold_a_bounded_number_of_pages() {
    // A page of 600,000 series (about 16 MB) is far more than the socket
    // buffers take, so a client that never reads it leaves it unsent.
    let d = Daemon::start(&["--web.header-timeout=1"]);
    let lines: String = (0..600_000)
        .map(|i| format!("big,i=series{i}:1|c\n"))
        .collect();
    let mut tcp = TcpStream::connect(d.tcp.unwrap()).unwrap();
    tcp.write_all(lines.as_bytes()).unwrap();
    drop(tcp);
    d.wait_for_secs(60, |p| {
        value(p, "promstatsd_lines_total") == Some(600_000.0)
    });
    let page_bytes = d.get("/metrics", &[]).body.len() as u64;
    assert!(page_bytes > 10_000_000, "{page_bytes}");
    let before = rss_kib(d.child.id());
    // Four clients, five connections each, ask for the page and never read.
    let mut silent = Vec::new();
    for source in [
        [127, 0, 0, 2],
        [127, 0, 0, 3],
        [127, 0, 0, 4],
        [127, 0, 0, 5],
    ] {
        for _ in 0..5 {
            let mut s = connect_from(source, d.web);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            silent.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(2500));
    // The page is streamed: a silent reader holds a chunk, not a page.
    let grown = rss_kib(d.child.id()).saturating_sub(before) * 1024;
    assert!(
        grown < 8 << 20,
        "RSS grew {grown} bytes for twenty silent readers of a {page_bytes}-byte page"
    );
    // A client that reads gets its page: a silent reader gives its place up.
    let page = d.get("/metrics", &[]);
    assert_eq!(page.status, 200);
    // (The self-metrics in it have moved by a few bytes.)
    assert!(page.body.len() as u64 > page_bytes - 1000);
    d.wait_for_secs(20, |p| {
        value(
            p,
            "promstatsd_http_connections_timed_out_total{listener=\"web\"}",
        )
        .is_some_and(|n| n >= 4.0)
    });
    drop(silent);
}

/// Load `n` series of one family over TCP and wait until they are counted.
fn load_series(d: &Daemon, n: usize) {
    let mut tcp = TcpStream::connect(d.tcp.unwrap()).unwrap();
    for start in (0..n).step_by(100_000) {
        let lines: String = (start..(start + 100_000).min(n))
            .map(|i| format!("big,i=s{i}:1|c\n"))
            .collect();
        tcp.write_all(lines.as_bytes()).unwrap();
    }
    drop(tcp);
    d.wait_self(120, |p| {
        value(p, "promstatsd_lines_total") == Some(n as f64)
    });
}

#[test]
fn a_slow_reader_of_a_million_series_page_holds_a_chunk_not_the_page() {
    let d = Daemon::start(&[]);
    load_series(&d, 1_000_000);
    // One whole scrape first: what a scrape allocates once (the sorted list)
    // is in the baseline.
    let whole = d.get("/metrics", &[]).body;
    assert!(whole.len() > 15_000_000, "{}", whole.len());
    let before = rss_kib(d.child.id());
    // The slow reader: the request, then a byte per millisecond.
    let mut slow = TcpStream::connect(d.web).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let reading = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until && slow.read_exact(&mut byte).is_ok() {
            got.push(byte[0]);
            std::thread::sleep(Duration::from_millis(1));
        }
        (got, slow)
    });
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile a second scrape gets the whole page ...
    let second = d.get("/metrics", &[]);
    assert_eq!(second.status, 200);
    let samples = String::from_utf8_lossy(&second.body)
        .lines()
        .filter(|l| l.starts_with("big{"))
        .count();
    assert_eq!(samples, 1_000_000);
    // ... and ingestion goes on.
    d.send_udp(b"after_the_second_scrape:1|c");
    d.wait_self(5, |p| {
        value(p, "promstatsd_lines_total") == Some(1_000_001.0)
    });
    let grown_kib = rss_kib(d.child.id()).saturating_sub(before);
    let (got, slow) = reading.join().unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // A page held whole would be 15 MB and more; a chunk is 64 KiB.
    assert!(
        grown_kib < 8 * 1024,
        "RSS grew {grown_kib} KiB while a slow reader and a second scrape read a {}-byte page",
        whole.len()
    );
    drop(slow);
}
