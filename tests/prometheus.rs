//! A real Prometheus (Debian's `prometheus` package, installed by scripts/test.sh)
//! scrapes promstatsd with the Airflow job of the README; the real Python clients
//! Airflow uses (`statsd`, `datadog`) send the metrics. Values are read back through
//! Prometheus' HTTP query API.

mod common;

use common::prom::{wait_query, Prometheus};
use common::Daemon;
use std::net::SocketAddr;
use std::process::Command;

fn start_prometheus(target: SocketAddr) -> Prometheus {
    start_prometheus_with(target, "")
}

/// Start Prometheus with one job scraping `target`; `extra` is added to the job
/// (indented YAML, e.g. a scheme and credentials).
fn start_prometheus_with(target: SocketAddr, extra: &str) -> Prometheus {
    Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: airflow\n{extra}    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
        &[],
    )
}

fn python(code: &str) {
    let out = Command::new("python3")
        .args(["-c", code])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_prometheus_scrapes_what_real_clients_sent() {
    let d = Daemon::start(&["--statsd.observer-type=histogram"]);
    let port = d.udp.unwrap().port();
    // The `statsd` package (Airflow's default client) and the `datadog` one.
    python(&format!(
        "import statsd\n\
         c = statsd.StatsClient('127.0.0.1', {port}, prefix='airflow')\n\
         c.incr('scheduler_heartbeat', 5)\n\
         c.gauge('pool.open_slots.default_pool', 128)\n\
         c.gauge('pool.open_slots.default_pool', -28, delta=True)\n\
         c.timing('dag.etl.extract.duration', 120)\n\
         c.timing('dag.etl.extract.duration', 4000)\n"
    ));
    python(&format!(
        "from datadog.dogstatsd import DogStatsd\n\
         d = DogStatsd(host='127.0.0.1', port={port}, disable_telemetry=True)\n\
         d.increment('airflow.ti.finish', 3, tags=['dag_id:etl', 'state:success'])\n\
         d.gauge('airflow.executor.open_slots', 16, tags=['executor:LocalExecutor'])\n\
         d.flush()\n"
    ));
    d.wait_lines(7);
    let p = start_prometheus(d.web);
    assert_eq!(wait_query(&p, "up{job=\"airflow\"}", |v| v == 1.0), 1.0);
    assert_eq!(wait_query(&p, "airflow_scheduler_heartbeat", |_| true), 5.0);
    assert_eq!(
        wait_query(&p, "airflow_pool_open_slots_default_pool", |_| true),
        100.0
    );
    assert_eq!(
        wait_query(
            &p,
            "airflow_ti_finish{dag_id=\"etl\",state=\"success\"}",
            |_| true
        ),
        3.0
    );
    assert_eq!(
        wait_query(
            &p,
            "airflow_executor_open_slots{executor=\"LocalExecutor\"}",
            |_| true
        ),
        16.0
    );
    // Timers arrive in seconds, as histogram buckets Prometheus can take quantiles of.
    assert_eq!(
        wait_query(&p, "airflow_dag_etl_extract_duration_count", |_| true),
        2.0
    );
    let sum = wait_query(&p, "airflow_dag_etl_extract_duration_sum", |_| true);
    assert!((sum - 4.12).abs() < 1e-9, "{sum}");
    let p50 = wait_query(
        &p,
        "histogram_quantile(0.5, airflow_dag_etl_extract_duration_bucket)",
        |_| true,
    );
    assert!((0.1..=0.25).contains(&p50), "p50 {p50}");
    let p99 = wait_query(
        &p,
        "histogram_quantile(0.99, airflow_dag_etl_extract_duration_bucket)",
        |_| true,
    );
    assert!((2.5..=5.0).contains(&p99), "p99 {p99}");
    // Prometheus' own view of the scrape: no sample rejected.
    assert!(
        wait_query(
            &p,
            "scrape_samples_post_metric_relabeling{job=\"airflow\"}",
            |v| v > 0.0
        ) > 0.0
    );
}

#[test]
fn real_prometheus_scrapes_openmetrics_when_enabled() {
    let d = Daemon::start(&[
        "--web.enable-openmetrics",
        "--statsd.observer-type=histogram",
    ]);
    d.send_udp(b"om.hits:7|c\nom.lat:300|ms");
    d.wait_lines(2);
    // A pushed family without a TYPE line is untyped; OpenMetrics calls that
    // `unknown`, and Prometheus fails the whole scrape on any other word.
    let push = d.push.expect("push port");
    let body = "om_pushed 5\n";
    let req = format!(
        "PUT /metrics/job/om HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(common::raw_http(push, req.as_bytes()).status, 200);
    let p = start_prometheus(d.web);
    assert_eq!(wait_query(&p, "up{job=\"airflow\"}", |v| v == 1.0), 1.0);
    // Prometheus prefers OpenMetrics when offered: counters arrive with `_total`.
    assert_eq!(wait_query(&p, "om_hits_total", |_| true), 7.0);
    let p50 = wait_query(&p, "histogram_quantile(0.5, om_lat_bucket)", |_| true);
    assert!((0.25..=0.5).contains(&p50), "p50 {p50}");
    assert_eq!(
        wait_query(&p, "om_pushed{exported_job=\"om\"}", |_| true),
        5.0
    );
}

/// curl's HTTP status for a GET over TLS (certificate not verified).
fn curl_status(url: &str, user: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", url]);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    String::from_utf8_lossy(&cmd.output().expect("curl").stdout).into_owned()
}

#[test]
fn tls_and_basic_auth_with_a_real_prometheus() {
    let dir = common::temp_dir("tls");
    let (cert, _key) = common::self_signed_cert(&dir);
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let flag = format!("--web.config.file={}", web.display());
    let d = Daemon::start(&[&flag]);
    d.send_udp(b"secure.hits:4|c");
    let url = format!("https://{}/metrics", d.web);
    assert_eq!(curl_status(&url, Some("prometheus:s3cret")), "200");
    assert_eq!(curl_status(&url, Some("prometheus:wrong")), "401");
    assert_eq!(curl_status(&url, None), "401");
    assert_eq!(
        curl_status(&format!("http://{}/metrics", d.web), None),
        "000",
        "plain HTTP is refused"
    );

    let extra = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password: s3cret\n",
        cert.display()
    );
    let p = start_prometheus_with(d.web, &extra);
    assert_eq!(wait_query(&p, "up{job=\"airflow\"}", |v| v == 1.0), 1.0);
    assert_eq!(wait_query(&p, "secure_hits", |_| true), 4.0);
}

#[test]
fn pushed_groups_keep_their_job_only_with_honor_labels() {
    // The README's advice, checked: a scrape job's own `job` label wins over a
    // pushed group's unless the job says `honor_labels: true`; the pushed one
    // is then kept as `exported_job`, as with a Pushgateway.
    let d = Daemon::start(&[]);
    let body = "job_last_success_unixtime 1.5e9\n";
    let put = format!(
        "PUT /metrics/job/nightly_backup HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        common::raw_http(d.push.unwrap(), put.as_bytes()).status,
        200
    );
    let plain = start_prometheus(d.web);
    plain.wait_ready();
    assert_eq!(
        wait_query(
            &plain,
            "job_last_success_unixtime{job=\"airflow\",exported_job=\"nightly_backup\"}",
            |v| v == 1.5e9
        ),
        1.5e9
    );
    let honoring = start_prometheus_with(d.web, "    honor_labels: true\n");
    honoring.wait_ready();
    assert_eq!(
        wait_query(
            &honoring,
            "job_last_success_unixtime{job=\"nightly_backup\"}",
            |v| v == 1.5e9
        ),
        1.5e9
    );
}
