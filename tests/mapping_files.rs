//! Mapping files that are not what they seem: a FIFO, a device, a huge file,
//! an empty file on reload. The daemon never blocks on one (start-up, reload,
//! scrapes and SIGTERM all go on), and a reload never silently drops the
//! mappings in force.

mod common;

use common::{signal, temp_dir, value, Daemon};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MAPPING: &str = "mappings:\n- match: app.*.hits\n  name: app_hits\n  labels:\n    app: $1\n";

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

fn mapping_flag(path: &Path) -> String {
    format!("--statsd.mapping-config={}", path.display())
}

/// Start with `flag`; the daemon must exit at once with an error naming why.
fn refused_at_start(flag: &str, why: &str) {
    let started = Instant::now();
    let err = match Daemon::start_raw(&[
        "--statsd.listen-udp=127.0.0.1:0",
        "--statsd.listen-tcp=",
        "--web.listen-address=127.0.0.1:0",
        "--push.listen-address=",
        flag,
    ]) {
        Ok(_) => panic!("the daemon started with {flag}"),
        Err(log) => log,
    };
    assert!(err.contains("exited with"), "{err}");
    assert!(err.contains(why), "expected {why:?} in:\n{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_fifo_as_mapping_file_is_refused_at_start() {
    let dir = temp_dir("mapping-fifo-start");
    let fifo = dir.join("mapping.yml");
    mkfifo(&fifo);
    refused_at_start(&mapping_flag(&fifo), "not a regular file");
}

#[test]
fn dev_zero_as_mapping_file_is_refused_at_start() {
    refused_at_start("--statsd.mapping-config=/dev/zero", "not a regular file");
}

#[test]
fn an_oversized_mapping_file_is_refused_at_start() {
    let dir = temp_dir("mapping-huge");
    let file = dir.join("huge.yml");
    let mut text = String::from(MAPPING);
    text.push_str(&"# padding\n".repeat(500_000));
    std::fs::write(&file, text).unwrap();
    refused_at_start(&mapping_flag(&file), "over the limit");
}

#[test]
fn a_fifo_swapped_in_blocks_neither_reload_nor_scrapes_nor_sigterm() {
    let dir = temp_dir("mapping-fifo-reload");
    let file = dir.join("mapping.yml");
    std::fs::write(&file, MAPPING).unwrap();
    let d = Daemon::start(&[&mapping_flag(&file), "--web.enable-lifecycle"]);
    mkfifo(&file);
    // /-/reload answers with the refusal, at once.
    let started = Instant::now();
    let r = d.request("POST", "/-/reload", &[]);
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 500, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // SIGHUP too; the mappings in force stay, and scrapes answer meanwhile.
    signal(&d, 1);
    d.send_udp(b"app.web.hits:1|c");
    let page = d.wait_lines(1);
    assert_eq!(value(&page, "app_hits{app=\"web\"}"), Some(1.0));
    let page = d.wait_for(|p| {
        value(p, "promstatsd_config_reloads_total{outcome=\"failure\"}") == Some(2.0)
    });
    assert_eq!(
        value(
            &page,
            "promstatsd_config_reloads_total{outcome=\"success\"}"
        ),
        Some(0.0)
    );
    assert_eq!(d.get("/-/healthy", &[]).status, 200);
    let started = Instant::now();
    assert!(d.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_empty_file_on_reload_keeps_the_mappings_in_force() {
    let dir = temp_dir("mapping-empty-reload");
    let file = dir.join("mapping.yml");
    std::fs::write(&file, MAPPING).unwrap();
    let d = Daemon::start(&[&mapping_flag(&file), "--web.enable-lifecycle"]);
    for blank in ["", "\n\n", "# being rewritten\n   \n"] {
        std::fs::write(&file, blank).unwrap();
        let r = d.request("POST", "/-/reload", &[]);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 500, "{blank:?}: {body}");
        assert!(body.contains("empty"), "{body}");
    }
    d.send_udp(b"app.api.hits:2|c");
    let page = d.wait_lines(1);
    assert_eq!(value(&page, "app_hits{app=\"api\"}"), Some(2.0));
    assert_eq!(value(&page, "promstatsd_loaded_mappings"), Some(1.0));
}

#[test]
fn an_empty_file_at_start_means_no_mappings() {
    let dir = temp_dir("mapping-empty-start");
    let file = dir.join("mapping.yml");
    std::fs::write(&file, "").unwrap();
    let d = Daemon::start(&[&mapping_flag(&file)]);
    d.send_udp(b"app.api.hits:2|c");
    let page = d.wait_lines(1);
    assert_eq!(value(&page, "app_api_hits"), Some(2.0));
}
