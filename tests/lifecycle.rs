//! Reload during ingestion (SIGHUP and /-/reload), TTL expiry and the series cap,
//! end to end against the real daemon, with its memory read from /proc.

mod common;

use common::{rss_kib, total, value, Daemon};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sends `a.x:1|c` datagrams until stopped; returns how many it sent.
fn sender(d: &Daemon, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    let addr = d.udp.unwrap();
    std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        while !stop.load(Ordering::Relaxed) {
            sock.send_to(b"a.x:1|c\nb.y:1|c", addr).unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

#[test]
fn reload_good_and_bad_files_during_ingestion() {
    let dir = common::temp_dir("reload");
    let file = dir.join("mapping.yml");
    std::fs::write(
        &file,
        "mappings:\n- match: a.*\n  name: mapped_a\n  labels:\n    k: $1\n",
    )
    .unwrap();
    let flag = format!("--statsd.mapping-config={}", file.display());
    let d = Daemon::start(&[&flag, "--web.enable-lifecycle"]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let t = sender(&d, Arc::clone(&stop), Arc::clone(&sent));

    let before = d.wait_for(|p| value(p, "mapped_a{k=\"x\"}").unwrap_or(0.0) > 50.0);
    assert!(
        before.contains("b_y "),
        "unmapped before the reload: {before}"
    );

    // A good file over HTTP: a new rule, the old one unchanged.
    std::fs::write(
        &file,
        "mappings:\n- match: a.*\n  name: mapped_a\n  labels:\n    k: $1\n- match: b.*\n  name: mapped_b\n",
    )
    .unwrap();
    let r = d.request("POST", "/-/reload", &[("Content-Length", "0")]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("2 mappings"));
    d.wait_for(|p| value(p, "mapped_b").unwrap_or(0.0) > 10.0);

    // A bad file over SIGHUP, then over HTTP: the old mapping stays.
    std::fs::write(&file, "mappings:\n- match: a.*\n  nme: typo\n").unwrap();
    common::signal(&d, 1);
    d.wait_for(|p| value(p, "promstatsd_config_reloads_total{outcome=\"failure\"}") == Some(1.0));
    let r = d.request("PUT", "/-/reload", &[("Content-Length", "0")]);
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("unknown field `nme`"));
    assert!(d.log().contains("reload failed"), "{}", d.log());
    let r = d.get("/-/reload", &[]);
    assert_eq!(r.status, 405);

    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let n = sent.load(Ordering::Relaxed);
    let page = d.wait_lines(2 * n);
    // Nothing accumulated under the unchanged rule was lost across the reloads.
    assert_eq!(value(&page, "mapped_a{k=\"x\"}"), Some(n as f64), "{page}");
    assert_eq!(
        value(
            &page,
            "promstatsd_config_reloads_total{outcome=\"success\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &page,
            "promstatsd_config_reloads_total{outcome=\"failure\"}"
        ),
        Some(2.0)
    );
    assert_eq!(value(&page, "promstatsd_loaded_mappings"), Some(2.0));
}

#[test]
fn reload_endpoint_needs_the_lifecycle_flag() {
    let d = Daemon::start(&["--statsd.mapping-config=airflow"]);
    assert_eq!(
        d.request("POST", "/-/reload", &[("Content-Length", "0")])
            .status,
        404
    );
}

/// Send `n` distinct counter names, 50 lines per datagram, pausing every 40
/// datagrams until the daemon has read them (loopback UDP drops nothing then).
fn send_distinct(d: &Daemon, prefix: &str, n: usize) {
    let base = value(&d.scrape(), "promstatsd_lines_total").unwrap_or(0.0) as u64;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = d.udp.unwrap();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<String> = (sent..(sent + 50).min(n))
            .map(|i| format!("{prefix}.{i}:1|c"))
            .collect();
        sock.send_to(batch.join("\n").as_bytes(), addr).unwrap();
        sent += batch.len();
        if sent % 2000 == 0 {
            d.wait_lines(base + sent as u64);
        }
    }
    d.wait_lines(base + n as u64);
}

#[test]
fn series_cap_refuses_new_series_and_bounds_memory() {
    let d = Daemon::start(&["--statsd.max-series=1000"]);
    let pid = d.child.id();
    d.send_udp(b"existing:1|c");
    d.wait_lines(1);
    let rss_start = rss_kib(pid);
    send_distinct(&d, "bomb", 50_000);
    let page = d.wait_lines(50_001);
    let rss_end = rss_kib(pid);
    eprintln!("series cap: RSS {rss_start} KiB before, {rss_end} KiB after 50,000 distinct names");
    assert_eq!(total(&page, "promstatsd_series"), 1000.0);
    assert_eq!(
        value(
            &page,
            "promstatsd_events_error_total{reason=\"series_limit\"}"
        ),
        Some(49_001.0)
    );
    // Existing series keep updating.
    d.send_udp(b"existing:1|c");
    let page = d.wait_lines(50_002);
    assert_eq!(value(&page, "existing"), Some(2.0));
    assert!(
        rss_end < rss_start + 4 * 1024,
        "RSS grew from {rss_start} to {rss_end} KiB"
    );
}

#[test]
fn ttl_expires_series_and_memory_is_reused() {
    let dir = common::temp_dir("ttl");
    let file = dir.join("ttl.yml");
    std::fs::write(&file, "defaults:\n  ttl: 4s\n").unwrap();
    let flag = format!("--statsd.mapping-config={}", file.display());
    let d = Daemon::start(&[&flag]);
    let pid = d.child.id();
    let rss_idle = rss_kib(pid);
    send_distinct(&d, "wave1", 20_000);
    let page = d.wait_lines(20_000);
    assert_eq!(total(&page, "promstatsd_series"), 20_000.0);
    let rss_wave1 = rss_kib(pid);
    // All of them expire.
    let page = d.wait_for_secs(20, |p| total(p, "promstatsd_series") == 0.0);
    assert!(
        !page.contains("wave1_"),
        "expired series are gone from the page"
    );
    // A second wave of as many new series reuses the freed memory.
    send_distinct(&d, "wave2", 20_000);
    let page = d.wait_lines(40_000);
    assert_eq!(total(&page, "promstatsd_series"), 20_000.0);
    let rss_wave2 = rss_kib(pid);
    eprintln!("ttl: RSS idle {rss_idle} KiB, after wave 1 {rss_wave1} KiB, after expiry and wave 2 {rss_wave2} KiB");
    let wave = rss_wave1.saturating_sub(rss_idle);
    assert!(
        rss_wave2 < rss_wave1 + wave / 2 + 2048,
        "memory was not reused: idle {rss_idle}, wave 1 {rss_wave1}, wave 2 {rss_wave2} KiB"
    );
}
