//! Remote write into a real receiver: Debian's Prometheus with
//! `--web.enable-remote-write-receiver` (installed by scripts/test.sh). StatsD goes
//! in over UDP; the values come back through Prometheus' query API. A capture
//! receiver (a TCP listener answering HTTP/1.1 by hand) checks the requests on the
//! wire: headers, auth, body, retries.

mod common;

use common::prom::{query, wait_query, wait_query_at, Prometheus};
use common::{value, Daemon};
use promstatsd::remote_write::proto::WriteRequest;
use prost::Message as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn receiver() -> Prometheus {
    let p = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver"],
    );
    p.wait_ready();
    p
}

fn daemon(p: &Prometheus, instance: &str, extra: &[&str]) -> Daemon {
    let url = format!("--remote-write.url=http://{}/api/v1/write", p.addr);
    let label = format!("--remote-write.external-label=instance={instance}");
    let mut args = vec![url.as_str(), label.as_str(), "--remote-write.interval=1s"];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn self_metric(d: &Daemon, name: &str) -> f64 {
    let page = d.scrape();
    page.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

#[test]
fn statsd_values_arrive_in_a_real_receiver() {
    let p = receiver();
    // Timers are histograms, except api.latency, which the mapping makes a summary.
    let dir = common::temp_dir("rw-summary");
    let mapping = dir.join("mapping.yml");
    std::fs::write(
        &mapping,
        "mappings:\n  - match: api.latency\n    name: api_latency\n    observer_type: summary\n",
    )
    .unwrap();
    let mapping_flag = format!("--statsd.mapping-config={}", mapping.display());
    let d = daemon(
        &p,
        "node1",
        &["--statsd.observer-type=histogram", &mapping_flag],
    );
    // Counters, a gauge and a histogram (timers in ms become seconds).
    d.send_udp(b"jobs.done:2|c\njobs.done:3|c|#queue:default\npool.open_slots:128|g");
    d.send_udp(b"task.duration:100|ms\ntask.duration:300|ms\ntask.duration:2000|ms");
    d.send_udp(b"api.latency:500|ms\napi.latency:100|ms\napi.latency:300|ms");
    d.wait_lines(9);
    // A pushed gauge travels too; its instance="" gives way to the external label.
    let r = common::raw_http(
        d.push.unwrap(),
        b"PUT /metrics/job/airflow HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 31\r\n\r\njob_last_success_unixtime 1.5e9\n",
    );
    assert_eq!(r.status, 200);

    assert_eq!(
        wait_query(&p, "jobs_done{instance=\"node1\",queue=\"\"}", |v| v == 2.0),
        2.0
    );
    assert_eq!(
        wait_query(&p, "jobs_done{instance=\"node1\",queue=\"default\"}", |v| v
            == 3.0),
        3.0
    );
    assert_eq!(wait_query(&p, "pool_open_slots", |v| v == 128.0), 128.0);
    assert_eq!(wait_query(&p, "task_duration_count", |v| v == 3.0), 3.0);
    assert_eq!(wait_query(&p, "task_duration_sum", |v| v > 0.0), 2.4);
    // Observations 0.1, 0.3 and 2 s; the median interpolates inside (0.25, 0.5].
    let median = wait_query(
        &p,
        "histogram_quantile(0.5, sum by (le) (task_duration_bucket))",
        |v| v.is_finite(),
    );
    assert!((median - 0.375).abs() < 1e-9, "median {median}");
    // The summary's quantile series arrive as the page shows them: of 0.1, 0.3
    // and 0.5 s, the median is 0.3.
    assert_eq!(
        wait_query(
            &p,
            "api_latency{quantile=\"0.5\",instance=\"node1\"}",
            |v| v.is_finite()
        ),
        0.3
    );
    assert_eq!(wait_query(&p, "api_latency_count", |v| v == 3.0), 3.0);
    assert_eq!(
        wait_query(
            &p,
            "job_last_success_unixtime{job=\"airflow\",instance=\"node1\"}",
            |v| v > 0.0
        ),
        1.5e9
    );
    // Later values follow on the next interval.
    d.send_udp(b"jobs.done:5|c");
    assert_eq!(wait_query(&p, "jobs_done{queue=\"\"}", |v| v == 7.0), 7.0);
    assert!(self_metric(&d, "promstatsd_remote_write_samples_sent_total{") > 0.0);
    assert!(
        self_metric(
            &d,
            "promstatsd_remote_write_last_success_timestamp_seconds{"
        ) > 1.7e9
    );
    assert_eq!(
        self_metric(&d, "promstatsd_remote_write_samples_failed_total{"),
        0.0
    );
}

/// Debian's VictoriaMetrics (single-node), killed on drop.
struct Victoria {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Victoria {
    fn start() -> Victoria {
        let dir = common::temp_dir("victoria-metrics");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], common::prom::free_port()));
        let child = std::process::Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.join("data").display()))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-retentionPeriod=1d")
            // Points are visible to queries at once, not 30 s later.
            .arg("-search.latencyOffset=0s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("victoria-metrics is required (scripts/test.sh installs Debian's package)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while common::prom::http_get(addr, "/health").is_none() {
            assert!(
                Instant::now() < deadline,
                "victoria-metrics not ready after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Victoria { child, addr }
    }
}

#[test]
fn victoria_metrics_takes_the_writes_and_answers_promql() {
    // A second real receiver: VictoriaMetrics' /api/v1/write, queried back
    // through its Prometheus-compatible API.
    let vm = Victoria::start();
    let d = Daemon::start(&[
        &format!("--remote-write.url=http://{}/api/v1/write", vm.addr),
        "--remote-write.external-label=instance=node7",
        "--remote-write.interval=1s",
        "--statsd.observer-type=histogram",
    ]);
    d.send_udp(b"jobs.done:2|c|#queue:default\npool.open_slots:128|g");
    d.send_udp(b"task.duration:100|ms\ntask.duration:300|ms\ntask.duration:2000|ms");
    d.wait_lines(5);
    let q = |expr: &str, ok: fn(f64) -> bool| wait_query_at(vm.addr, expr, ok);
    assert_eq!(
        q("jobs_done{instance=\"node7\",queue=\"default\"}", |v| v
            == 2.0),
        2.0
    );
    assert_eq!(
        q("pool_open_slots{instance=\"node7\"}", |v| v == 128.0),
        128.0
    );
    assert_eq!(q("task_duration_count", |v| v == 3.0), 3.0);
    assert_eq!(q("task_duration_sum", |v| v > 2.0), 2.4);
    assert_eq!(
        q("task_duration_bucket{le=\"0.5\"}", |v| v == 2.0),
        2.0,
        "0.1 and 0.3 s are at or under 0.5 s"
    );
    // A later value replaces the earlier one.
    d.send_udp(b"jobs.done:5|c|#queue:default");
    assert_eq!(q("jobs_done{queue=\"default\"}", |v| v == 7.0), 7.0);
    assert_eq!(
        self_metric(&d, "promstatsd_remote_write_samples_failed_total{"),
        0.0
    );
}

#[test]
fn two_instances_sum_in_the_receiver() {
    let p = receiver();
    let a = daemon(&p, "a", &[]);
    let b = daemon(&p, "b", &[]);
    a.send_udp(b"dag.runs:3|c\ndag.runs:1|c");
    b.send_udp(b"dag.runs:4|c");
    a.wait_lines(2);
    b.wait_lines(1);
    assert_eq!(wait_query(&p, "sum(dag_runs)", |v| v == 8.0), 8.0);
    assert_eq!(wait_query(&p, "count(dag_runs)", |v| v == 2.0), 2.0);
    assert_eq!(query(&p, "dag_runs{instance=\"a\"}"), Some(4.0));
    assert_eq!(query(&p, "dag_runs{instance=\"b\"}"), Some(4.0));
}

#[test]
fn a_receiver_restart_is_retried_within_the_queue_bound() {
    let mut p = receiver();
    let capacity = 400;
    let cap_flag = format!("--remote-write.queue-capacity={capacity}");
    let d = daemon(
        &p,
        "n",
        &[&cap_flag, "--remote-write.max-samples-per-send=50"],
    );
    d.send_udp(b"beats:1|c");
    d.wait_lines(1);
    wait_query(&p, "beats", |v| v == 1.0);

    p.stop();
    d.send_udp(b"beats:1|c");
    // About 130 samples a second queue up against a bound of 400: the queue fills,
    // stays at the bound, and the oldest go. The gauge counts the batch being
    // retried (at most 50 samples) on top.
    let bound = (capacity + 50) as f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queued = self_metric(&d, "promstatsd_remote_write_queue_samples{");
        assert!(queued <= bound, "queue {queued} over its bound");
        if self_metric(&d, "promstatsd_remote_write_samples_dropped_total{") > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing dropped while the receiver was down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(self_metric(&d, "promstatsd_remote_write_samples_retried_total{") > 0.0);
    let down_since = self_metric(
        &d,
        "promstatsd_remote_write_last_success_timestamp_seconds{",
    );

    p.restart();
    p.wait_ready();
    d.send_udp(b"beats:1|c");
    assert_eq!(wait_query(&p, "beats", |v| v == 3.0), 3.0);
    let url = format!("{{url=\"http://{}/api/v1/write\"}}", p.addr);
    let page = d.wait_for_secs(30, |page| {
        value(
            page,
            &format!("promstatsd_remote_write_last_success_timestamp_seconds{url}"),
        )
        .is_some_and(|t| t > down_since)
    });
    assert!(
        value(
            &page,
            &format!("promstatsd_remote_write_queue_samples{url}")
        )
        .unwrap()
            <= bound
    );
}

/// An instant query through curl (the receiver speaks only TLS here).
fn curl_query(addr: std::net::SocketAddr, q: &str) -> Option<f64> {
    curl_query_with(addr, q, &["-u", "writer:s3cret"])
}

/// The same with other curl arguments (credentials).
fn curl_query_with(addr: std::net::SocketAddr, q: &str, auth: &[&str]) -> Option<f64> {
    let out = std::process::Command::new("curl")
        .args(["-sk"])
        .args(auth)
        .args(["--get", "--data-urlencode"])
        .arg(format!("query={q}"))
        .arg(format!("https://{addr}/api/v1/query"))
        .output()
        .expect("curl is required (scripts/test.sh installs it)");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn tls_and_basic_auth_to_a_real_receiver() {
    let dir = common::temp_dir("rw-tls");
    let (cert, _key) = common::self_signed_cert(&dir);
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  writer: '{hash}'\n"),
    )
    .unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    let p = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver", &web_flag],
    );
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let url = format!("--remote-write.url=https://{}/api/v1/write", p.addr);
    let ca = format!("--remote-write.tls.ca-file={}", cert.display());
    let pw_flag = format!("--remote-write.basic-auth.password-file={}", pw.display());
    let d = Daemon::start(&[
        &url,
        &ca,
        "--remote-write.basic-auth.username=writer",
        &pw_flag,
        "--remote-write.interval=1s",
    ]);
    d.send_udp(b"secure.writes:6|c");
    d.wait_lines(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl_query(p.addr, "secure_writes") != Some(6.0) {
        assert!(Instant::now() < deadline, "never arrived:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    // The default instance is the host name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        curl_query(
            p.addr,
            &format!("secure_writes{{instance=\"{}\"}}", host.trim())
        ),
        Some(6.0)
    );

    // A wrong password is a 401: refused for good, counted, not retried forever.
    std::fs::write(&pw, "wrong\n").unwrap();
    let bad_pw = format!("--remote-write.basic-auth.password-file={}", pw.display());
    let bad = Daemon::start(&[
        &url,
        &ca,
        "--remote-write.basic-auth.username=writer",
        &bad_pw,
        "--remote-write.interval=1s",
    ]);
    bad.wait_for_secs(20, |page| {
        page.lines().any(|l| {
            l.starts_with("promstatsd_remote_write_samples_failed_total{") && !l.ends_with(" 0")
        })
    });
    assert!(bad.log().contains("HTTP 401"), "{}", bad.log());
}

#[test]
fn bad_remote_write_flags_are_refused() {
    for (args, why) in [
        (
            vec!["--remote-write.url=localhost:9090"],
            "http:// or https://",
        ),
        (
            vec!["--remote-write.external-label=instance=x"],
            "need at least one --remote-write.url",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.external-label=1x=y",
            ],
            "not a valid label name",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.basic-auth.username=u",
            ],
            "go together",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.tls.ca-file=/nonexistent",
            ],
            "cannot read",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.interval=soon",
            ],
            "duration",
        ),
        // One receiver twice (its self-metrics would share a `url` label).
        (
            vec![
                "--remote-write.url=http://a:b@h/w",
                "--remote-write.url=http://h/w",
            ],
            "given twice",
        ),
        // Every remote-write setting needs a URL, not only some.
        (
            vec!["--remote-write.tls.insecure-skip-verify"],
            "need at least one --remote-write.url",
        ),
        (
            vec!["--remote-write.tls.key-file=/k.pem"],
            "need at least one --remote-write.url",
        ),
        (
            vec!["--remote-write.basic-auth.password-file=/pw"],
            "need at least one --remote-write.url",
        ),
        (
            vec!["--remote-write.header=X-Scope-OrgID=t1"],
            "need at least one --remote-write.url",
        ),
        // Credentials in the URL and the auth flags at once.
        (
            vec![
                "--remote-write.url=http://u:secret@h/w",
                "--remote-write.bearer-token-file=/t",
            ],
            "cannot be set too",
        ),
        (
            vec!["--remote-write.url=http://u:%zz@h/w"],
            "percent-encoded",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.header=Authorization=Bearer x",
            ],
            "bearer-token-file",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.header=X-Scope-OrgID=a\r\nX-Evil: 1",
            ],
            "control character",
        ),
        (
            vec![
                "--remote-write.url=http://h/w",
                "--remote-write.header=Content-Type=text/plain",
            ],
            "set by promstatsd",
        ),
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err:?} lacks {why:?}");
        assert!(
            !err.contains("secret"),
            "{args:?}: {err:?} shows the password"
        );
    }
}

#[test]
fn a_silent_receiver_does_not_hold_up_shutdown() {
    // Accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming().flatten() {
            held.push(c);
        }
    });
    let url = format!("--remote-write.url=http://{addr}/api/v1/write");
    let d = Daemon::start(&[
        &url,
        "--remote-write.interval=1s",
        "--remote-write.timeout=60s",
    ]);
    // Let a request go out and hang.
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    assert!(d.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
}

/// One request as the capture receiver read it.
struct Captured {
    /// When its head had arrived.
    at: Instant,
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn write_request(&self) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&self.body)
            .expect("the body is a snappy block");
        WriteRequest::decode(&raw[..]).expect("the body is a WriteRequest")
    }

    fn samples(&self) -> u64 {
        self.write_request()
            .timeseries
            .iter()
            .map(|t| t.samples.len() as u64)
            .sum()
    }
}

/// Accept one connection (within `secs`) and read one HTTP/1.1 request from it.
fn accept_request(l: &TcpListener, secs: u64) -> (TcpStream, Captured) {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no request within {secs} s");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside the request head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("the request has a Content-Length");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (
        s,
        Captured {
            at,
            request_line,
            headers,
            body,
        },
    )
}

/// Answer and close the connection.
fn answer(mut s: TcpStream, status: &str, headers: &str, body: &str) {
    let r = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(r.as_bytes()).unwrap();
}

/// The remote-write counters of the daemon's only URL: sent, failed, retried, dropped.
fn counters(d: &Daemon) -> [f64; 4] {
    [
        "promstatsd_remote_write_samples_sent_total{",
        "promstatsd_remote_write_samples_failed_total{",
        "promstatsd_remote_write_samples_retried_total{",
        "promstatsd_remote_write_samples_dropped_total{",
    ]
    .map(|m| self_metric(d, m))
}

/// The request must be a well-formed remote-write 1.0 request, with the tenant
/// header and the URL's credentials as basic auth.
fn check_wire_format(c: &Captured, addr: std::net::SocketAddr) {
    use base64::Engine as _;
    assert_eq!(c.request_line, "POST /api/v1/push HTTP/1.1");
    assert_eq!(c.header("Host"), Some(addr.to_string().as_str()));
    assert_eq!(c.header("Content-Encoding"), Some("snappy"));
    assert_eq!(c.header("Content-Type"), Some("application/x-protobuf"));
    assert_eq!(c.header("X-Prometheus-Remote-Write-Version"), Some("0.1.0"));
    assert_eq!(c.header("X-Scope-OrgID"), Some("tenant-7"));
    assert!(c
        .header("User-Agent")
        .is_some_and(|u| u.starts_with("promstatsd/")));
    let auth = c.header("Authorization").expect("basic auth");
    let token = auth.strip_prefix("Basic ").expect("basic auth");
    let pair = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert_eq!(pair, b"wire user:p@ss:w");
    for ts in c.write_request().timeseries {
        assert!(
            ts.labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted: {:?}",
            ts.labels
        );
        assert!(ts.labels.iter().any(|l| l.name == "__name__"));
        assert!(
            ts.labels
                .iter()
                .any(|l| l.name == "instance" && l.value == "wire"),
            "no instance: {:?}",
            ts.labels
        );
    }
}

/// The value of the `wire_hits` series in the request, if it carries it.
fn wire_hits(c: &Captured) -> Option<f64> {
    let ts = c.write_request().timeseries.into_iter().find(|t| {
        t.labels
            .iter()
            .any(|l| l.name == "__name__" && l.value == "wire_hits")
    })?;
    let labels: Vec<(&str, &str)> = ts
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("__name__", "wire_hits"),
            ("app", "a"),
            ("instance", "wire"),
            ("zone", "b")
        ]
    );
    assert_eq!(ts.samples.len(), 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now_ms - ts.samples[0].timestamp).abs() < 60_000);
    Some(ts.samples[0].value)
}

#[test]
fn requests_on_the_wire_are_remote_write_with_auth_headers_and_retries() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // User "wire user", password "p@ss:w", percent-encoded in the URL.
    let url = format!("--remote-write.url=http://wire%20user:p%40ss%3Aw@{addr}/api/v1/push");
    let d = Daemon::start(&[
        &url,
        "--remote-write.header=X-Scope-OrgID=tenant-7",
        "--remote-write.external-label=instance=wire",
        "--remote-write.interval=1s",
        "--remote-write.max-samples-per-send=100000",
    ]);
    d.send_udp(b"wire.hits:5|c|#zone:b,app:a");
    d.wait_lines(1);

    // Accepted requests until one carries the counter.
    let mut sent = 0;
    loop {
        let (s, c) = accept_request(&l, 10);
        check_wire_format(&c, addr);
        let hits = wire_hits(&c);
        sent += c.samples();
        answer(s, "204 No Content", "", "");
        if hits.is_some() {
            assert_eq!(hits, Some(5.0));
            break;
        }
    }

    // A 503 with Retry-After: 1. The sender finished the batches before, so
    // they are counted by now.
    let (s, first) = accept_request(&l, 10);
    check_wire_format(&first, addr);
    assert_eq!(counters(&d), [sent as f64, 0.0, 0.0, 0.0]);
    // Taken before the answer goes out: the sender's wait starts after it.
    let answered = Instant::now();
    answer(s, "503 Service Unavailable", "Retry-After: 1\r\n", "busy");
    // The same batch again, no sooner than asked (the backoff alone is 30 ms).
    let (s, again) = accept_request(&l, 10);
    assert_eq!(again.body, first.body, "not the same batch");
    let waited = again.at - answered;
    assert!(
        waited >= Duration::from_millis(990),
        "retried after {waited:?}"
    );
    let [s_sent, failed, retried, dropped] = counters(&d);
    assert_eq!(
        (s_sent, failed, retried, dropped),
        (sent as f64, 0.0, first.samples() as f64, 0.0)
    );
    answer(s, "204 No Content", "", "");
    sent += again.samples();

    // The next batch is refused with a 400: counted failed, not retried.
    let (s, refused) = accept_request(&l, 10);
    assert_ne!(refused.body, again.body);
    // The retried batch counted once as sent.
    assert_eq!(
        counters(&d),
        [sent as f64, 0.0, first.samples() as f64, 0.0]
    );
    answer(s, "400 Bad Request", "", "out of order sample");
    let (s, next) = accept_request(&l, 10);
    assert_ne!(next.body, refused.body, "a 400 was retried");
    assert_eq!(
        counters(&d),
        [
            sent as f64,
            refused.samples() as f64,
            first.samples() as f64,
            0.0
        ]
    );
    answer(s, "204 No Content", "", "");
    let log = d.log();
    assert!(log.contains("HTTP 400: out of order sample"), "{log}");
    // After start, sends, a retry and a refusal: the password never logged.
    assert!(
        !log.contains("p@ss") && !log.contains("p%40ss"),
        "the password is logged:\n{log}"
    );
}

#[test]
fn the_last_snapshot_goes_out_at_shutdown() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let url = format!("--remote-write.url=http://{addr}/api/v1/write");
    // No snapshot falls due in the test: only the one taken at shutdown can carry it.
    let d = Daemon::start(&[&url, "--remote-write.interval=1h"]);
    d.send_udp(b"final.count:9|c");
    d.wait_lines(1);
    let receiver = std::thread::spawn(move || {
        let (s, c) = accept_request(&l, 10);
        answer(s, "204 No Content", "", "");
        c
    });
    assert!(d.terminate().success());
    let c = receiver.join().unwrap();
    let found = c.write_request().timeseries.into_iter().find(|t| {
        t.labels
            .iter()
            .any(|l| l.name == "__name__" && l.value == "final_count")
    });
    assert_eq!(found.map(|t| t.samples[0].value), Some(9.0));
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let dir = common::temp_dir("rw-mtls");
    let client_dir = common::temp_dir("rw-mtls-client");
    common::self_signed_cert(&dir);
    let (client_cert, client_key) = common::self_signed_cert(&client_dir);
    std::fs::copy(&client_cert, dir.join("client-ca.pem")).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n",
    )
    .unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    let p = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver", &web_flag],
    );
    let url = format!("--remote-write.url=https://{}/api/v1/write", p.addr);
    let cert = format!("--remote-write.tls.cert-file={}", client_cert.display());
    let key = format!("--remote-write.tls.key-file={}", client_key.display());
    // No CA file: the receiver's self-signed certificate is accepted only
    // because verification is skipped.
    let d = Daemon::start(&[
        &url,
        &cert,
        &key,
        "--remote-write.tls.insecure-skip-verify",
        "--remote-write.interval=1s",
    ]);
    d.send_udp(b"mtls.writes:3|c");
    d.wait_lines(1);
    let curl_auth = [
        "--cert",
        client_cert.to_str().unwrap(),
        "--key",
        client_key.to_str().unwrap(),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl_query_with(p.addr, "mtls_writes", &curl_auth) != Some(3.0) {
        assert!(Instant::now() < deadline, "never arrived:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }

    // Without the client certificate the receiver refuses the connection.
    let anonymous = Daemon::start(&[
        &url,
        "--remote-write.tls.insecure-skip-verify",
        "--remote-write.interval=1s",
    ]);
    anonymous.wait_for_secs(20, |page| {
        page.lines().any(|l| {
            l.starts_with("promstatsd_remote_write_samples_retried_total{") && !l.ends_with(" 0")
        })
    });
    assert!(
        anonymous.log().contains("send failed"),
        "{}",
        anonymous.log()
    );
}

/// A capture receiver and a daemon writing to it every second, plus `extra` flags.
fn capture_daemon(extra: &[&str]) -> (TcpListener, Daemon) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "--remote-write.url=http://{}/api/v1/push",
        l.local_addr().unwrap()
    );
    let mut args = vec![url.as_str(), "--remote-write.interval=1s"];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    (l, d)
}

#[test]
fn bearer_token_is_read_from_its_file_before_each_request() {
    let dir = common::temp_dir("rw-bearer");
    let token = dir.join("token");
    std::fs::write(&token, "tok-1\n").unwrap();
    let flag = format!("--remote-write.bearer-token-file={}", token.display());
    let (l, _d) = capture_daemon(&[&flag]);
    let (s, c) = accept_request(&l, 10);
    assert_eq!(c.header("Authorization"), Some("Bearer tok-1"));
    answer(s, "204 No Content", "", "");
    // A rotated token is used from the next request on (one already being
    // built may still carry the old one).
    std::fs::write(&token, "tok-2\n").unwrap();
    let mut old = 0;
    loop {
        let (s, c) = accept_request(&l, 10);
        answer(s, "204 No Content", "", "");
        match c.header("Authorization") {
            Some("Bearer tok-2") => break,
            Some("Bearer tok-1") if old == 0 => old += 1,
            other => panic!("Authorization {other:?} after the rotation"),
        }
    }
}

#[test]
fn max_samples_per_send_caps_each_request() {
    let (l, d) = capture_daemon(&["--remote-write.max-samples-per-send=10"]);
    let lines: String = (0..25).map(|i| format!("capped_{i}:1|c\n")).collect();
    d.send_udp(lines.as_bytes());
    d.wait_lines(25);
    // Self-metrics alone are over a hundred samples: a snapshot takes many
    // requests, none over the cap, most at it.
    let sizes: Vec<u64> = (0..12)
        .map(|_| {
            let (s, c) = accept_request(&l, 10);
            answer(s, "204 No Content", "", "");
            c.samples()
        })
        .collect();
    assert!(sizes.iter().all(|&n| (1..=10).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().filter(|&&n| n == 10).count() >= 6, "{sizes:?}");
}

#[test]
fn a_request_past_the_timeout_is_abandoned_and_retried() {
    let (l, d) = capture_daemon(&["--remote-write.timeout=1s"]);
    // Read the request and never answer it.
    let (silent, first) = accept_request(&l, 10);
    let (s, again) = accept_request(&l, 10);
    let waited = again.at - first.at;
    assert_eq!(again.body, first.body, "not the same batch");
    // One second of timeout, then a 30 ms backoff; the default (30 s) would
    // not have given up yet.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(6),
        "retried after {waited:?}"
    );
    answer(s, "204 No Content", "", "");
    drop(silent);
    assert!(d.log().contains("send failed"), "{}", d.log());
}

#[test]
fn native_histograms_arrive_in_a_receiver_that_takes_them() {
    let p = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=native-histograms",
        ],
    );
    p.wait_ready();
    let flag = common::mapping_flag(
        "rw-native",
        "mappings:\n- match: rw.lat\n  name: rw_lat\n  observer_type: histogram\n",
    );
    let d = daemon(
        &p,
        "rw-native",
        &["--remote-write.native-histograms", &flag],
    );
    let lines: Vec<String> = (1..=1000).map(|ms| format!("rw.lat:{ms}|ms")).collect();
    for chunk in lines.chunks(50) {
        d.send_udp(chunk.join("\n").as_bytes());
    }
    d.wait_lines(1000);
    let count = wait_query(&p, "histogram_count(rw_lat{instance=\"rw-native\"})", |v| {
        v == 1000.0
    });
    assert_eq!(count, 1000.0);
    let sum = wait_query(&p, "histogram_sum(rw_lat)", |_| true);
    assert!((sum - 500.5).abs() < 1e-6, "sum {sum}");
    // Schema 3: within 9.05 % of the exact nearest-rank quantile.
    for q in [0.5, 0.9, 0.99] {
        let got = wait_query(&p, &format!("histogram_quantile({q}, rw_lat)"), |_| true);
        let want = (q * 1000.0f64).ceil() / 1000.0;
        assert!(
            ((got - want) / want).abs() <= 0.0905,
            "p{q}: {got} against {want}"
        );
    }
    // The classic series go out beside it.
    assert_eq!(wait_query(&p, "rw_lat_count", |_| true), 1000.0);
    assert_eq!(
        self_metric(&d, "promstatsd_remote_write_samples_failed_total"),
        0.0
    );
}
