//! The protobuf exposition, end to end: negotiated by `Accept`, decoded by
//! Python's protobuf package over `tests/proto/metrics.proto` (Debian's protoc
//! and pip's protobuf, installed by scripts/test.sh: code that shares nothing
//! with the encoder), compared sample by sample with the text page,
//! and scraped by a real Prometheus 2.42 that asks for protobuf first.

mod common;

use common::prom::{wait_query, Prometheus};
use common::Daemon;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Prometheus 2.42's `Accept` with `--enable-feature=native-histograms`.
const PROM_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROTO_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto")
}

/// `metrics_pb2.py`, compiled once per test into a temp directory.
fn compiled(name: &str) -> PathBuf {
    let out = common::temp_dir(name);
    let status = Command::new("protoc")
        .arg(format!("--proto_path={}", proto_dir().display()))
        .arg(format!("--python_out={}", out.display()))
        .arg("metrics.proto")
        .status()
        .expect("protoc (Debian's protobuf-compiler) runs");
    assert!(status.success(), "protoc failed");
    out
}

/// The page decoded by tests/proto/decode.py: text-format sample lines.
fn decode(page: &[u8], module: &Path) -> String {
    let mut child = Command::new("python3")
        .arg(proto_dir().join("decode.py"))
        .arg(module)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page)
        .expect("the page goes to python");
    let out = child.wait_with_output().expect("python exits");
    assert!(
        out.status.success(),
        "decode.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name{labels}` (labels unescaped and sorted) -> value, for every sample
/// line of a text page (or of decode.py's output).
fn samples(page: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect("a number"),
        };
        out.insert(normalise(series), value);
    }
    out
}

/// A series key with its labels unescaped, sorted and numbers in `le` and
/// `quantile` made canonical.
fn normalise(series: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else {
        return format!("{series}{{}}");
    };
    let body = rest.strip_suffix('}').expect("labels end in }");
    let mut pairs = Vec::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(o) => value.push(o),
                    None => {}
                },
                '"' => break,
                c => value.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        if key == "le" || key == "quantile" {
            if let Ok(v) = value.parse::<f64>() {
                value = format!("{v:?}");
            }
        }
        pairs.push((key, value));
    }
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Send lines over TCP: thousands at once, none lost.
fn send_tcp(d: &Daemon, lines: &[String]) {
    let addr = d.tcp.expect("a TCP listener");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the TCP listener");
    let mut text = lines.join("\n");
    text.push('\n');
    s.write_all(text.as_bytes()).expect("lines sent");
}

fn push(d: &Daemon, path: &str, body: &str) {
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let push = d.push.expect("push port");
    assert_eq!(common::raw_http(push, req.as_bytes()).status, 200);
}

const MAPPING: &str = "mappings:\n  - match: lat.*\n    name: lat\n    observer_type: histogram\n    labels:\n      route: $1\n";

#[test]
fn protobuf_page_decodes_with_python_and_matches_the_text_page() {
    let flag = common::mapping_flag("proto-page", MAPPING);
    let d = Daemon::start(&[&flag]);
    d.send_udp(b"hits:3|c|#k:v\nhits:2|c|#k:w\ntemp:21.5|g\nq,x=a\"b\\c:1|c\nt.sum:100|ms\nt.sum:300|ms\nlat.api:50|ms\nlat.api:700|ms\nlat.web:20|ms\nusers:alice|s\nusers:bob|s");
    d.wait_lines(11);
    push(
        &d,
        "/metrics/job/batch",
        "# TYPE pushed_h histogram\npushed_h_bucket{le=\"1\"} 2\npushed_h_bucket{le=\"+Inf\"} 3\npushed_h_sum 4.5\npushed_h_count 3\n# TYPE pushed_s summary\npushed_s{quantile=\"0.5\"} 7\npushed_s_sum 20\npushed_s_count 3\npushed_u 9\n",
    );
    let proto = d.get("/metrics", &[("Accept", PROM_NATIVE)]);
    assert_eq!(proto.status, 200);
    assert_eq!(proto.header("content-type"), Some(PROTO_TYPE));
    let text = d.get("/metrics", &[]);
    assert!(text
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let decoded = decode(&proto.body, &compiled("proto-page-py"));
    let (got, want) = (
        samples(&decoded),
        samples(&String::from_utf8_lossy(&text.body)),
    );
    // promstatsd's own counters move between the two scrapes.
    let stable = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.iter()
            .filter(|(k, _)| !k.starts_with("promstatsd_"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(stable(&got), stable(&want), "decoded:\n{decoded}");
    for key in [
        "hits{k=\"v\"}",
        "q{x=\"a\\\"b\\\\c\"}",
        "lat_bucket{le=\"+Inf\",route=\"api\"}",
        "t_sum_count{}",
        "users{}",
        "pushed_h_count{instance=\"\",job=\"batch\"}",
        "pushed_s_sum{instance=\"\",job=\"batch\"}",
    ] {
        assert!(
            got.contains_key(&normalise(key)),
            "{key} missing from\n{decoded}"
        );
    }
    // Native buckets beside the classic ones, schema 3 (factor 1.1): 50 ms is
    // in bucket ceil(8 log2 0.05) = -34, 700 ms in -4 (a gap of 29: a new
    // span), 20 ms in -45.
    for native in [
        "# native lat 3 2.938735877055719e-39 0 -34:1;29:1 1;0",
        "# native lat 3 2.938735877055719e-39 0 -45:1 1",
    ] {
        assert!(
            decoded.lines().any(|l| l == native),
            "{native} missing from\n{decoded}"
        );
    }
    let own = got
        .keys()
        .filter(|k| k.starts_with("promstatsd_lines_total"))
        .count();
    assert_eq!(own, 1, "self-metrics are on the protobuf page");
}

#[test]
fn a_family_longer_than_a_chunk_arrives_whole_in_several_messages() {
    let d = Daemon::start(&[]);
    let n = 6_000;
    let lines: Vec<String> = (0..n).map(|i| format!("big,id=series{i:05}:1|c")).collect();
    send_tcp(&d, &lines);
    d.wait_lines(n);
    let proto = d.get("/metrics", &[("Accept", PROM_NATIVE)]);
    let decoded = decode(&proto.body, &compiled("proto-big-py"));
    let messages = decoded
        .lines()
        .filter(|l| *l == "# family big counter")
        .count();
    assert!(messages > 1, "6,000 series fit one 64 KiB chunk?");
    let series = samples(&decoded)
        .keys()
        .filter(|k| k.starts_with("big{"))
        .count();
    assert_eq!(series, n as usize);
}

fn prometheus_scraping(d: &Daemon) -> Prometheus {
    Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: airflow\n    static_configs:\n      - targets: [\"{}\"]\n",
            d.web
        ),
        &["--enable-feature=native-histograms"],
    )
}

/// Timers of 1, 2, ... 1000 ms, and their exact nearest-rank quantile in seconds.
fn timers(name: &str) -> (Vec<String>, impl Fn(f64) -> f64) {
    let lines = (1..=1000).map(|ms| format!("{name}:{ms}|ms")).collect();
    (lines, |q: f64| (q * 1000.0).ceil() / 1000.0)
}

#[test]
fn real_prometheus_reads_native_histograms_and_split_families() {
    // Timers through a mapping with observer_type: histogram, default native
    // options (statsd_exporter's: bucket factor 1.1, 256 buckets).
    let flag = common::mapping_flag(
        "proto-native",
        "mappings:\n- match: pb.lat\n  name: pb_lat\n  observer_type: histogram\n",
    );
    let d = Daemon::start(&[&flag]);
    let mut lines: Vec<String> = (0..6_000)
        .map(|i| format!("split,id=s{i:05}:1|c"))
        .collect();
    lines.push("pb.hits:7|c".to_owned());
    let (lat, exact) = timers("pb.lat");
    lines.extend(lat);
    send_tcp(&d, &lines);
    d.wait_lines(lines.len() as u64);
    let p = prometheus_scraping(&d);
    assert_eq!(wait_query(&p, "up{job=\"airflow\"}", |v| v == 1.0), 1.0);
    assert_eq!(wait_query(&p, "pb_hits", |_| true), 7.0);
    assert_eq!(wait_query(&p, "histogram_count(pb_lat)", |_| true), 1000.0);
    let sum = wait_query(&p, "histogram_sum(pb_lat)", |_| true);
    assert!((sum - 500.5).abs() < 1e-6, "sum {sum}");
    // Schema 3 (bucket factor 1.1): a bucket is 2^(1/8) = 1.0905 wide, so an
    // estimate within the bucket of the exact value is off by at most 9.05 %.
    for q in [0.5, 0.9, 0.99] {
        let got = wait_query(&p, &format!("histogram_quantile({q}, pb_lat)"), |_| true);
        let want = exact(q);
        assert!(
            ((got - want) / want).abs() <= 0.0905,
            "p{q}: {got} against {want}"
        );
    }
    // A native histogram replaces the classic buckets in Prometheus 2.42.
    assert_eq!(common::prom::query(&p, "count(pb_lat_bucket)"), None);
    // A family split over several messages is one family, every series kept.
    assert_eq!(wait_query(&p, "count(split)", |v| v == 6000.0), 6000.0);
    let log = d.log();
    assert!(!log.contains("level=error"), "{log}");
}

#[test]
fn a_bucket_factor_of_1_keeps_histograms_classic() {
    let flag = common::mapping_flag("proto-classic", "defaults:\n  observer_type: histogram\n  histogram_options:\n    native_histogram_bucket_factor: 1\nmappings: []\n");
    let d = Daemon::start(&[&flag]);
    let (lat, _) = timers("cl.lat");
    send_tcp(&d, &lat);
    d.wait_lines(1000);
    let p = prometheus_scraping(&d);
    assert_eq!(wait_query(&p, "cl_lat_count", |_| true), 1000.0);
    let p50 = wait_query(&p, "histogram_quantile(0.5, cl_lat_bucket)", |_| true);
    assert!((0.25..=0.5).contains(&p50), "p50 {p50}");
    assert_eq!(common::prom::query(&p, "histogram_count(cl_lat)"), None);
}

/// A push body built by Python's protobuf package: a gauge and a histogram,
/// delimited, as the Go Pushgateway client sends by default.
const PY_PUSH_BODY: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import metrics_pb2
from google.protobuf.internal.encoder import _VarintBytes
g = metrics_pb2.MetricFamily(name="pushed_pb", help="a pushed gauge", type=metrics_pb2.GAUGE)
m = g.metric.add()
m.label.add(name="stage", value="load")
m.gauge.value = 42
h = metrics_pb2.MetricFamily(name="pushed_pb_seconds", type=metrics_pb2.HISTOGRAM)
hm = h.metric.add()
hm.histogram.sample_count = 3
hm.histogram.sample_sum = 2.5
b = hm.histogram.bucket.add()
b.upper_bound = 1
b.cumulative_count = 2
out = b""
for f in (g, h):
    data = f.SerializeToString()
    out += _VarintBytes(len(data)) + data
sys.stdout.buffer.write(out)
"#;

#[test]
fn a_protobuf_push_is_taken_like_a_text_push() {
    let d = Daemon::start(&[]);
    let module = compiled("proto-push-py");
    let out = Command::new("python3")
        .args(["-c", PY_PUSH_BODY])
        .arg(&module)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let push = |body: &[u8]| {
        let mut req = format!(
            "PUT /metrics/job/pb HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {PROTO_TYPE}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        common::raw_http(d.push.expect("push port"), &req)
    };
    assert_eq!(push(&out.stdout).status, 200);
    let page = String::from_utf8_lossy(&d.get("/metrics", &[]).body).into_owned();
    for line in [
        "# HELP pushed_pb a pushed gauge",
        "pushed_pb{instance=\"\",job=\"pb\",stage=\"load\"} 42",
        "pushed_pb_seconds_bucket{instance=\"\",job=\"pb\",le=\"1\"} 2",
        "pushed_pb_seconds_bucket{instance=\"\",job=\"pb\",le=\"+Inf\"} 3",
        "pushed_pb_seconds_sum{instance=\"\",job=\"pb\"} 2.5",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "{line} missing from\n{page}"
        );
    }
    // A body cut short is refused, and the group keeps what it had.
    let cut = &out.stdout[..out.stdout.len() - 3];
    let refused = push(cut);
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("invalid protobuf body"));
    let page = String::from_utf8_lossy(&d.get("/metrics", &[]).body).into_owned();
    assert!(page.contains("pushed_pb{instance=\"\",job=\"pb\",stage=\"load\"} 42"));
}
