//! The Pushgateway-compatible push API, end to end: the real Python
//! `prometheus_client` pushing, the byte-for-byte request a real client sent,
//! refusals, limits, and persistence across a restart.

mod common;

use common::{data_dir, raw_http, temp_dir, value, Daemon, Response};
use std::process::Command;

fn push_addr(d: &Daemon) -> std::net::SocketAddr {
    d.push.expect("the push listener is up")
}

/// Send `method path` with `body` to the push port.
fn send(d: &Daemon, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_http(push_addr(d), &bytes)
}

fn put(d: &Daemon, path: &str, body: &str) -> Response {
    send(
        d,
        "PUT",
        path,
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    )
}

/// Run Python with `prometheus_client`, pushing to the daemon.
fn python(d: &Daemon, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(push_addr(d).to_string())
        .output()
        .expect("python3 is required (scripts/test.sh installs prometheus_client)");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const PY_PUSH: &str = r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, Counter, Histogram, push_to_gateway
r = CollectorRegistry()
Gauge('job_last_success_unixtime', 'Last time a batch job successfully finished', registry=r).set(1700000000.5)
Counter('rows_processed', 'Rows processed', ['table'], registry=r).labels('dag_run').inc(42)
h = Histogram('task_seconds', 'Task duration', buckets=(1, 10), registry=r)
for v in (0.5, 5, 50):
    h.observe(v)
push_to_gateway(sys.argv[1], job='airflow', registry=r)
"#;

const PY_PUSHADD: &str = r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
r = CollectorRegistry()
Gauge('job_last_success_unixtime', 'Last time a batch job successfully finished', registry=r).set(1800000000)
pushadd_to_gateway(sys.argv[1], job='airflow', registry=r)
r2 = CollectorRegistry()
Gauge('queue_depth', 'Queue depth', registry=r2).set(7)
pushadd_to_gateway(sys.argv[1], job='airflow', registry=r2, grouping_key={'instance': 'worker/1'})
"#;

const PY_DELETE: &str = r#"
import sys
from prometheus_client import delete_from_gateway
delete_from_gateway(sys.argv[1], job='airflow')
"#;

#[test]
fn python_client_push_pushadd_and_delete() {
    let d = Daemon::start(&[]);
    python(&d, PY_PUSH);
    let page = d.scrape();
    assert_eq!(
        value(
            &page,
            "job_last_success_unixtime{instance=\"\",job=\"airflow\"}"
        ),
        Some(1_700_000_000.5),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "rows_processed_total{instance=\"\",job=\"airflow\",table=\"dag_run\"}"
        ),
        Some(42.0)
    );
    assert_eq!(
        value(
            &page,
            "task_seconds_bucket{instance=\"\",job=\"airflow\",le=\"10.0\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&page, "task_seconds_count{instance=\"\",job=\"airflow\"}"),
        Some(3.0)
    );
    assert_eq!(
        value(&page, "task_seconds_sum{instance=\"\",job=\"airflow\"}"),
        Some(55.5)
    );
    assert!(page.contains("# TYPE task_seconds histogram\n"));
    let pushed_at = value(&page, "push_time_seconds{instance=\"\",job=\"airflow\"}").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - pushed_at).abs() < 60.0,
        "push time {pushed_at} vs now {now}"
    );
    assert_eq!(
        value(
            &page,
            "push_failure_time_seconds{instance=\"\",job=\"airflow\"}"
        ),
        Some(0.0)
    );

    // pushadd (POST) replaces only the gauge; the counter and histogram stay.
    python(&d, PY_PUSHADD);
    let page = d.scrape();
    assert_eq!(
        value(
            &page,
            "job_last_success_unixtime{instance=\"\",job=\"airflow\"}"
        ),
        Some(1.8e9)
    );
    assert_eq!(
        value(
            &page,
            "rows_processed_total{instance=\"\",job=\"airflow\",table=\"dag_run\"}"
        ),
        Some(42.0)
    );
    // A `/` in a grouping value travels base64-encoded.
    assert_eq!(
        value(&page, "queue_depth{instance=\"worker/1\",job=\"airflow\"}"),
        Some(7.0)
    );

    // delete removes only the {job="airflow"} group.
    python(&d, PY_DELETE);
    let page = d.scrape();
    assert!(!page.contains("job_last_success_unixtime"), "{page}");
    assert!(!page.contains("rows_processed_total"), "{page}");
    assert_eq!(
        value(&page, "queue_depth{instance=\"worker/1\",job=\"airflow\"}"),
        Some(7.0)
    );
    assert!(page.contains("promstatsd_push_requests_total{method=\"delete\",result=\"ok\"} 1\n"));
    assert!(page.contains("promstatsd_push_requests_total{method=\"post\",result=\"ok\"} 2\n"));
    assert!(page.contains("promstatsd_push_groups 1\n"));
}

#[test]
fn the_captured_python_request_replayed_byte_for_byte() {
    let d = Daemon::start(&[]);
    let request = std::fs::read(data_dir().join("pushgateway-put-request.http")).unwrap();
    assert!(request.starts_with(b"PUT /metrics/job/airflow HTTP/1.1\r\n"));
    let r = raw_http(push_addr(&d), &request);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let page = d.scrape();
    assert!(
        page.contains(
            "# HELP job_last_success_unixtime Last time a batch job successfully finished\n\
             # TYPE job_last_success_unixtime gauge\n\
             job_last_success_unixtime{instance=\"\",job=\"airflow\"} 1.7000000005e+09\n"
        ),
        "{page}"
    );
    // The Pushgateway's own page is served on the push port too.
    let mut req = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec();
    let on_push_port = raw_http(push_addr(&d), &req);
    assert_eq!(on_push_port.status, 200);
    assert!(String::from_utf8_lossy(&on_push_port.body).contains("1.7000000005e+09"));
    req.clear();
}

#[test]
fn statsd_and_pushed_metrics_share_one_family_block() {
    let d = Daemon::start(&[]);
    d.send_udp(b"hits:3|c|#route:a");
    d.wait_lines(1);
    let r = put(
        &d,
        "/metrics/job/batch",
        "# TYPE hits counter\nhits{route=\"b\"} 5\n",
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let page = d.scrape();
    assert_eq!(page.matches("# TYPE hits counter").count(), 1, "{page}");
    let block: Vec<&str> = page
        .lines()
        .skip_while(|l| !l.starts_with("# TYPE hits "))
        .take(3)
        .collect();
    assert_eq!(
        block,
        [
            "# TYPE hits counter",
            "hits{route=\"a\"} 3",
            "hits{instance=\"\",job=\"batch\",route=\"b\"} 5"
        ]
    );
    // A pushed family of another type than the StatsD one is refused, whole.
    let r = put(
        &d,
        "/metrics/job/batch",
        "other 1\n# TYPE hits gauge\nhits 1\n",
    );
    assert_eq!(r.status, 400);
    let why = String::from_utf8_lossy(&r.body);
    assert!(why.contains("hits") && why.contains("StatsD"), "{why}");
    let page = d.scrape();
    assert!(
        !page.contains("\nother{"),
        "nothing of a refused push applies:\n{page}"
    );
    assert!(page.contains("hits{instance=\"\",job=\"batch\",route=\"b\"} 5\n"));
    assert!(
        value(
            &page,
            "push_failure_time_seconds{instance=\"\",job=\"batch\"}"
        )
        .unwrap()
            > 0.0
    );
}

#[test]
fn bad_pushes_get_400_with_the_reason() {
    let d = Daemon::start(&[]);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "PUT",
            "/metrics/job/a",
            "x 1 1700000000\n",
            400,
            "timestamps",
        ),
        (
            "PUT",
            "/metrics/job/a",
            "# TYPE x counter\nx -1\n",
            400,
            "negative",
        ),
        ("PUT", "/metrics/job/a", "x{y=\"1} 1\n", 400, "unterminated"),
        (
            "PUT",
            "/metrics/job/a",
            "push_time_seconds 1\n",
            400,
            "reserved",
        ),
        ("PUT", "/metrics/job/", "x 1\n", 400, "job name is required"),
        ("PUT", "/metrics/job/a/odd", "x 1\n", 400, "odd number"),
        ("PUT", "/metrics/job@base64/%%%", "x 1\n", 400, "percent"),
        ("GET", "/metrics/job/a", "", 405, "PUT, POST or DELETE"),
        ("PUT", "/nowhere", "", 404, "Not found"),
    ];
    for (method, path, body, status, why) in cases {
        let r = send(&d, method, path, &[], body.as_bytes());
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, *status, "{method} {path} {body:?}: {text}");
        assert!(
            text.contains(why),
            "{method} {path} {body:?}: {text:?} lacks {why:?}"
        );
    }
    // Delimited protobuf is read (an empty message has no valid name); other
    // protobuf encodings are not.
    let proto = send(
        &d,
        "PUT",
        "/metrics/job/a",
        &[(
            "Content-Type",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
        )],
        b"\x00",
    );
    assert_eq!(proto.status, 400);
    assert!(String::from_utf8_lossy(&proto.body).contains("invalid protobuf body"));
    let proto = send(
        &d,
        "PUT",
        "/metrics/job/a",
        &[(
            "Content-Type",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
        )],
        b"x 1\n",
    );
    assert_eq!(proto.status, 415);
    let page = d.scrape();
    assert!(!page.contains("\nx{"), "{page}");
    // Refused bodies stamp the group's failure time (bad paths name no group).
    assert!(value(&page, "push_failure_time_seconds{instance=\"\",job=\"a\"}").unwrap() > 0.0);
    assert_eq!(
        value(&page, "push_time_seconds{instance=\"\",job=\"a\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &page,
            "promstatsd_push_requests_total{method=\"put\",result=\"invalid\"}"
        ),
        Some(8.0),
        "{page}"
    );
}

#[test]
fn bodies_over_the_limit_get_413() {
    let d = Daemon::start(&["--push.max-body-bytes=64"]);
    let body = "x 1\n".repeat(20);
    let r = put(&d, "/metrics/job/a", &body);
    assert_eq!(r.status, 413);
    assert!(String::from_utf8_lossy(&r.body).contains("--push.max-body-bytes"));
    // Chunked bodies (no Content-Length) are bounded too.
    let mut req = b"PUT /metrics/job/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(b"4\r\nx 1\n\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_http(push_addr(&d), &req).status, 413);
    assert_eq!(put(&d, "/metrics/job/a", "x 1\n").status, 200);
    let page = d.scrape();
    assert_eq!(
        value(
            &page,
            "promstatsd_push_requests_total{method=\"put\",result=\"too_large\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn groups_survive_a_restart_with_persistence() {
    let dir = temp_dir("push-persist");
    let file = dir.join("push.state");
    let flag = format!("--push.persistence.file={}", file.display());
    let d = Daemon::start(&[&flag, "--push.persistence.interval=1s"]);
    assert_eq!(
        put(
            &d,
            "/metrics/job/airflow/instance@base64/d29ya2VyLzE",
            "# HELP done Finished.\n# TYPE done gauge\ndone{dag=\"a\\\"b\"} 1.5\n"
        )
        .status,
        200
    );
    assert_eq!(
        put(&d, "/metrics/job/other", "# TYPE c counter\nc 3\n").status,
        200
    );
    // A refused push leaves a failure time, which persists too.
    assert_eq!(
        put(&d, "/metrics/job/other", "# TYPE c gauge\nc 3\nc 4\n").status,
        400
    );
    let before = d.scrape();
    let pushed: Vec<&str> = before
        .lines()
        .filter(|l| !l.contains("promstatsd_"))
        .collect();
    assert!(pushed.iter().any(|l| l.starts_with("done{")), "{before}");
    // Written within the interval, before any shutdown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("#@group /job@base64/b3RoZXI")) {
        assert!(
            std::time::Instant::now() < deadline,
            "not written within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(d.terminate().success());
    assert!(file.is_file(), "written at shutdown");

    let d = Daemon::start(&[&flag]);
    assert!(d.log().contains("push groups loaded"), "{}", d.log());
    let after = d.scrape();
    let again: Vec<&str> = after
        .lines()
        .filter(|l| !l.contains("promstatsd_"))
        .collect();
    assert_eq!(pushed, again);
    // And the restored groups behave like pushed ones.
    assert_eq!(
        send(&d, "DELETE", "/metrics/job/other", &[], b"").status,
        202
    );
    assert!(!d.scrape().contains("job=\"other\""));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_damaged_persistence_file_is_moved_aside() {
    let dir = temp_dir("push-damaged");
    let file = dir.join("push.state");
    std::fs::write(&file, "not a state file\n").unwrap();
    let d = Daemon::start(&[&format!("--push.persistence.file={}", file.display())]);
    assert!(d.log().contains("damaged"), "{}", d.log());
    assert!(dir.join("push.state.corrupt").is_file());
    assert_eq!(put(&d, "/metrics/job/a", "x 1\n").status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ttl_removes_groups_not_pushed_again() {
    let d = Daemon::start(&["--push.ttl=2s"]);
    assert_eq!(put(&d, "/metrics/job/a", "x 1\n").status, 200);
    assert!(d.scrape().contains("x{instance=\"\",job=\"a\"} 1\n"));
    d.wait_for_secs(10, |p| !p.contains("job=\"a\""));
}

#[test]
fn an_empty_address_disables_the_push_api() {
    let d = Daemon::start_raw(&[
        "--statsd.listen-udp=127.0.0.1:0",
        "--web.listen-address=127.0.0.1:0",
        "--push.listen-address=",
    ])
    .unwrap();
    assert!(d.push.is_none(), "{}", d.log());
    assert!(!d.log().contains("listener=push "));
}

#[test]
fn the_page_with_pushed_metrics_passes_promtool() {
    let d = Daemon::start(&[]);
    d.send_udp(b"hits:3|c\nlat:5|ms");
    d.wait_lines(2);
    python(&d, PY_PUSH);
    let page = d.scrape();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is required (scripts/test.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // promtool lints (naming advice) exit 3; format errors exit 1.
    assert_ne!(out.status.code(), Some(1), "{text}\n{page}");
    assert!(!text.contains("error"), "{text}");
}

#[test]
fn pushgateway_details_empty_put_declared_only_families_trailing_slash() {
    let d = Daemon::start(&[]);
    let group = |page: &str, name: &str| value(page, &format!("{name}{{instance=\"\",job=\"d\"}}"));
    // A trailing slash after the job is no label path (the Pushgateway allows it).
    let r = put(
        &d,
        "/metrics/job/d/",
        "# TYPE a gauge\na 1\n# TYPE b counter\nb 2\n",
    );
    assert_eq!(r.status, 200);
    // POST answers 200; families declared without samples change nothing, not
    // even when their type differs (the Pushgateway's parser drops them).
    let r = send(
        &d,
        "POST",
        "/metrics/job/d",
        &[],
        b"# HELP a Declared only.\n# TYPE a gauge\n# TYPE b gauge\n",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = d.scrape();
    assert_eq!(
        (group(&page, "a"), group(&page, "b")),
        (Some(1.0), Some(2.0)),
        "{page}"
    );
    // HELP after TYPE belongs to its family.
    let r = send(
        &d,
        "POST",
        "/metrics/job/d",
        &[],
        b"# TYPE h gauge\n# HELP h Late help.\nh 3\n",
    );
    assert_eq!(r.status, 200);
    assert!(d.scrape().contains("# HELP h Late help.\n# TYPE h gauge\n"));
    // An empty PUT empties the group but keeps it, with a fresh push time.
    assert_eq!(put(&d, "/metrics/job/d", "").status, 200);
    let page = d.scrape();
    assert_eq!(
        (group(&page, "a"), group(&page, "h")),
        (None, None),
        "{page}"
    );
    assert!(
        group(&page, "push_time_seconds").is_some_and(|t| t > 1.6e9),
        "{page}"
    );
    // Timestamps are refused by the consistency check, which stamps the
    // group's failure time (the Pushgateway does both).
    let r = put(&d, "/metrics/job/t", "x 1 1700000000000\n");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("must not have timestamps"));
    let page = d.scrape();
    assert!(
        value(&page, "push_failure_time_seconds{instance=\"\",job=\"t\"}")
            .is_some_and(|t| t > 1.6e9)
    );
    assert_eq!(value(&page, "x{instance=\"\",job=\"t\"}"), None);
}

#[test]
fn a_push_of_many_families_is_applied_whole() {
    // 100,000 families of one sample each (~2 MB): a parser that looked
    // families up by scanning would need ~1e10 comparisons and miss the
    // client's 10-second timeout; the map-based one takes well under it, even
    // in the unoptimised test build.
    let d = Daemon::start(&[]);
    let n = 100_000;
    let mut body = String::with_capacity(n * 24);
    for i in 0..n {
        body.push_str(&format!("# TYPE m{i} gauge\nm{i} {i}\n"));
    }
    let r = put(&d, "/metrics/job/big", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = d.scrape();
    assert_eq!(
        value(&page, "m99999{instance=\"\",job=\"big\"}"),
        Some(99_999.0)
    );
    assert_eq!(
        page.matches("job=\"big\"} ").count(),
        n + 2,
        "with push times"
    );
}

#[test]
fn bodies_in_memory_at_once_are_bounded() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    // Room for four bodies of the largest size, taken as the bytes arrive:
    // four clients that send all but the last byte of a 1 KiB body fill the
    // budget; a fifth push waits for room instead of adding its body to
    // memory, and goes through once one of the four finishes.
    let d = Daemon::start(&["--push.max-body-bytes=1024"]);
    let addr = push_addr(&d);
    let body = "held 1\n";
    let padded = format!("{body}{}", "#".repeat(1024 - body.len()));
    let open = |job: usize| {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "PUT /metrics/job/h{job} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n{}",
            &padded[..1023]
        )
        .unwrap();
        s
    };
    let mut holders: Vec<TcpStream> = (0..4).map(open).collect();
    // Time for the daemon to read their bodies so far and give them their room.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let req = format!(
            "PUT /metrics/job/fifth HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tx.send(raw_http(addr, req.as_bytes()).status);
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(1)).is_err(),
        "the fifth push was taken in while four full bodies were pending"
    );
    // A DELETE's body is not read, so it needs no room.
    let r = send(&d, "DELETE", "/metrics/job/gone", &[], b"ignored 1\n");
    assert_eq!(r.status, 202);
    // One holder sends its last byte: its push is applied and its room comes back.
    let mut first = holders.remove(0);
    first.write_all(&padded.as_bytes()[1023..]).unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(200));
    drop(holders);
}

#[test]
fn a_flood_of_bad_pushes_logs_one_warning() {
    let d = Daemon::start(&[]);
    for i in 0..30 {
        let r = put(&d, &format!("/metrics/job/flood{i}"), "x 1 2\n");
        assert_eq!(r.status, 400);
    }
    let page = d.scrape();
    assert_eq!(
        common::value(
            &page,
            "promstatsd_push_requests_total{method=\"put\",result=\"invalid\"}"
        ),
        Some(30.0),
        "{page}"
    );
    let log = d.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("push refused"))
        .count();
    assert_eq!(warned, 1, "{log}");
}

#[test]
fn pushes_past_the_series_budget_are_refused() {
    let d = Daemon::start(&["--push.max-series=5"]);
    assert_eq!(
        put(
            &d,
            "/metrics/job/a",
            "x 1\ny 2\nz{k=\"1\"} 3\nz{k=\"2\"} 4\n"
        )
        .status,
        200
    );
    // Two more would make six.
    let over = put(&d, "/metrics/job/b", "w 1\nv 2\n");
    assert_eq!(over.status, 400);
    let why = String::from_utf8_lossy(&over.body);
    assert!(why.contains("--push.max-series"), "{why}");
    // One more fits; replacing a group counts what it gives back.
    assert_eq!(put(&d, "/metrics/job/b", "w 1\n").status, 200);
    assert_eq!(
        put(&d, "/metrics/job/a", "x 1\ny 2\nz 3\nq 4\n").status,
        200
    );
    let page = d.scrape();
    assert_eq!(value(&page, "promstatsd_push_series"), Some(5.0), "{page}");
    assert!(!page.contains("\nv{"), "{page}");
}

#[test]
fn slow_bodies_hold_only_what_they_sent_and_are_cut_off() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    // Six pushes announce 64 KiB bodies, send a few bytes and stall: they hold
    // room for what they sent, not for what they announced, so another push
    // goes through at once; and below 16 KiB/s after 5 s they are cut off (408).
    let d = Daemon::start(&["--push.max-body-bytes=65536"]);
    let addr = push_addr(&d);
    let mut stalled: Vec<TcpStream> = (0..6)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "PUT /metrics/job/slow{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 65536\r\n\r\nslow 1\n"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(put(&d, "/metrics/job/quick", "quick 1\n").status, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the push waited {:?} for room held by stalled bodies",
        started.elapsed()
    );
    let s = &mut stalled[0];
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let page = d.scrape();
    assert!(
        value(
            &page,
            "promstatsd_push_requests_total{method=\"put\",result=\"timeout\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
}
