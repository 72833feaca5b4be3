//! The operator view: `/api/v1/status` and `/status` on a real daemon, and
//! `/status` rendered by a real browser (Debian's `chromium --headless`).

mod common;

use common::Daemon;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const HELM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/airflow-helm-statsd-mappings.yml"
);

fn status(d: &Daemon) -> Value {
    let r = d.get("/api/v1/status", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)))
}

/// 300 series of one family, a few of others: one UDP datagram per 20 lines.
fn load_families(d: &Daemon) -> u64 {
    let mut lines: Vec<String> = (0..300)
        .map(|i| format!("big.family:1|c|#id:{i}"))
        .collect();
    for f in 0..5 {
        for i in 0..3 {
            lines.push(format!("small.f{f}:{i}|g|#id:{i}"));
        }
    }
    for chunk in lines.chunks(20) {
        d.send_udp(chunk.join("\n").as_bytes());
    }
    d.wait_lines(lines.len() as u64);
    lines.len() as u64
}

#[test]
fn status_ranks_the_largest_family_first_with_its_exact_series_count() {
    let d = Daemon::start(&[]);
    load_families(&d);
    let s = status(&d);
    let top = s["top_families"].as_array().unwrap();
    assert_eq!(top[0]["name"], "big_family", "{top:?}");
    assert_eq!(top[0]["type"], "counter");
    assert_eq!(top[0]["series"], 300);
    assert_eq!(top[1]["series"], 3);
    assert_eq!(top.len(), 6);
    assert_eq!(s["series"]["total"], 315);
    assert_eq!(s["series"]["families"], 6);
    let udp = &s["listeners"][0];
    assert_eq!(udp["listener"], "udp");
    assert_eq!(udp["lines"]["total"], 315);
}

#[test]
fn status_follows_the_sample_rate_of_the_top_families() {
    let d = Daemon::start(&[]);
    load_families(&d);
    let _ = status(&d);
    // Followed from the first report on; one sample a series a second.
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let lines: Vec<String> = (0..20).map(|i| format!("big.family:1|c|#id:{i}")).collect();
        d.send_udp(lines.join("\n").as_bytes());
        sent += 20;
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = status(&d);
    let rate = s["top_families"][0]["samples_per_s"].as_f64().unwrap();
    assert!(
        (100.0..=300.0).contains(&rate),
        "{rate} samples/s after {sent} in 2.5 s"
    );
}

#[test]
fn status_names_rules_unmapped_names_and_conflicts() {
    let d = Daemon::start(&[&format!("--statsd.mapping-config={HELM}")]);
    d.send_udp(b"airflow.dag.d1.t1.duration:12|ms\nairflow.dag.d1.t2.duration:3|ms\nmy.app.hits:1|c\nx:1|c\nx:2|g\nx:3|g");
    d.wait_lines(6);
    let s = status(&d);
    let rules = s["mapping"]["rules"].as_array().unwrap();
    let duration = rules
        .iter()
        .find(|r| r["match"] == "airflow.dag.*.*.duration")
        .unwrap();
    assert_eq!(duration["matches"], 2, "{duration}");
    assert_eq!(duration["line"], 55);
    assert_eq!(s["mapping"]["source"], HELM);
    let unmapped: Vec<&str> = s["unmapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["statsd_name"].as_str().unwrap())
        .collect();
    assert_eq!(unmapped, ["my.app.hits", "x"]);
    assert_eq!(s["unmapped"][0]["family"], "my_app_hits");
    let conflicts = s["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["metric_name"], "x");
    assert_eq!(conflicts[0]["samples"], 2);
    let errors: Vec<&Value> = s["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["error"] == true && c["value"].as_f64() > Some(0.0))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["name"], "promstatsd_events_conflict_total");
}

#[test]
fn status_pages_answer_get_only_and_are_linked() {
    let d = Daemon::start(&[]);
    for path in ["/status", "/api/v1/status"] {
        assert_eq!(d.request("POST", path, &[]).status, 405, "{path}");
        assert_eq!(d.request("HEAD", path, &[]).status, 200, "{path}");
    }
    let landing = String::from_utf8(d.get("/", &[]).body).unwrap();
    assert!(landing.contains("href=\"/status\""), "{landing}");
    let page = d.get("/status", &[]);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("chromium is not installed (scripts/test.sh installs Debian's chromium)");
}

/// Run headless chromium on `url` with `args`; stdout and stderr.
fn browse(url: &str, args: &[&str]) -> (String, String) {
    let profile = common::temp_dir("chromium-profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of the first element with `id`'s first cell of class `class`.
fn cell<'a>(dom: &'a str, table_id: &str, class: &str) -> &'a str {
    let table = dom
        .split_once(&format!("id=\"{table_id}\""))
        .unwrap_or_else(|| panic!("no #{table_id} in\n{dom}"))
        .1;
    let after = table
        .split_once(&format!("class=\"{class}\">"))
        .unwrap_or_else(|| panic!("no .{class} in #{table_id}"))
        .1;
    after.split('<').next().unwrap()
}

#[test]
fn status_page_renders_in_a_real_browser_and_matches_the_api() {
    let d = Daemon::start(&[]);
    load_families(&d);
    let url = format!("http://{}/status", d.web);
    let (dom, log) = browse(&url, &["--dump-dom"]);
    let api = status(&d);
    assert_eq!(
        cell(&dom, "top-families", "family"),
        api["top_families"][0]["name"]
    );
    assert_eq!(cell(&dom, "top-families", "n series"), "300");
    assert!(dom.contains("<b id=\"series\">315</b>"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 3, "three sparklines");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    // A phone-sized screenshot, kept for a person to look at.
    let shot = common::temp_dir("status-shot").join("status.png");
    browse(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,1500",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
