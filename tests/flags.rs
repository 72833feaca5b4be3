//! Every flag in the README's flag table has a test that fails if the daemon
//! accepts the flag and then ignores it. `FLAG_TESTS` names that test for each
//! flag; `every_readme_flag_has_a_behaviour_test` checks the table against the
//! README and the tests' sources, and `--help` against the README. The flags no
//! other file shows at work are shown here.

mod common;

use common::{value, Daemon};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (flag, `file::test` that shows it at work, text that test's body must
/// contain: `""` means the flag's own name).
#[rustfmt::skip]
const FLAG_TESTS: &[(&str, &str, &str)] = &[
    ("--statsd.listen-udp", "flags::listen_address_flags_bind_where_told", ""),
    ("--statsd.listen-tcp", "flags::listen_address_flags_bind_where_told", ""),
    ("--statsd.listen-unixgram", "e2e::unixgram_listener_and_socket_mode", ""),
    ("--statsd.listen-unix", "e2e::unix_stream_listener_takes_newline_delimited_lines", ""),
    ("--statsd.unixsocket-mode", "e2e::unixgram_listener_and_socket_mode", ""),
    ("--statsd.read-buffer", "e2e::read_buffer_flag_is_applied", ""),
    // The four tag-style flags are rows of `TAG_STYLES`, which the test walks.
    ("--statsd.parse-dogstatsd-tags", "flags::tag_style_flags_turn_each_style_off", "TAG_STYLES"),
    ("--statsd.parse-influxdb-tags", "flags::tag_style_flags_turn_each_style_off", "TAG_STYLES"),
    ("--statsd.parse-librato-tags", "flags::tag_style_flags_turn_each_style_off", "TAG_STYLES"),
    ("--statsd.parse-signalfx-tags", "flags::tag_style_flags_turn_each_style_off", "TAG_STYLES"),
    ("--statsd.mapping-config", "airflow::helm_chart_mapping_file_loads_unchanged_and_maps_real_traffic", ""),
    ("--check-config", "airflow::check_config_validates_without_starting", ""),
    ("--explain", "explain::explain_takes_lines_as_arguments_and_exits_0", ""),
    ("--statsd.cache-size", "flags::cache_size_bounds_the_ingest_cache", ""),
    ("--statsd.max-series", "lifecycle::series_cap_refuses_new_series_and_bounds_memory", ""),
    ("--statsd.udp-workers", "e2e::two_udp_workers_count_exactly", ""),
    ("--statsd.observer-type", "e2e::histograms_by_flag", ""),
    ("--statsd.max-line-length", "e2e::tcp_over_long_lines_are_dropped_alone", ""),
    ("--statsd.tcp-max-line-length", "flags::tcp_max_line_length_is_an_alias", ""),
    ("--statsd.tcp-max-connections", "hostile::thousands_of_tcp_connections_and_a_connection_limit", ""),
    ("--statsd.relay.address", "e2e::relay_forwards_valid_lines_packed_and_survives_a_dead_upstream", ""),
    ("--statsd.relay.packet-length", "e2e::relay_forwards_valid_lines_packed_and_survives_a_dead_upstream", ""),
    ("--web.listen-address", "flags::listen_address_flags_bind_where_told", ""),
    ("--web.telemetry-path", "e2e::endpoints_and_errors", ""),
    ("--web.max-connections", "flags::web_max_connections_closes_the_extra_connection", ""),
    ("--web.header-timeout", "hostile::http_abuse", ""),
    ("--web.config.file", "prometheus::tls_and_basic_auth_with_a_real_prometheus", ""),
    ("--web.enable-lifecycle", "lifecycle::reload_good_and_bad_files_during_ingestion", ""),
    ("--web.enable-openmetrics", "e2e::openmetrics_is_opt_in_and_negotiated", ""),
    ("--push.listen-address", "flags::listen_address_flags_bind_where_told", ""),
    ("--push.max-series", "push::pushes_past_the_series_budget_are_refused", ""),
    ("--push.max-connections", "hostile::a_connection_flood_on_the_push_port_leaves_the_web_port_reachable", ""),
    ("--push.max-body-bytes", "push::bodies_over_the_limit_get_413", ""),
    ("--push.persistence.file", "push::groups_survive_a_restart_with_persistence", ""),
    ("--push.persistence.interval", "push::groups_survive_a_restart_with_persistence", ""),
    ("--push.ttl", "push::ttl_removes_groups_not_pushed_again", ""),
    ("--remote-write.url", "remote_write::requests_on_the_wire_are_remote_write_with_auth_headers_and_retries", ""),
    ("--remote-write.interval", "remote_write::requests_on_the_wire_are_remote_write_with_auth_headers_and_retries", ""),
    ("--remote-write.max-samples-per-send", "remote_write::max_samples_per_send_caps_each_request", ""),
    ("--remote-write.queue-capacity", "remote_write::a_receiver_restart_is_retried_within_the_queue_bound", ""),
    ("--remote-write.timeout", "remote_write::a_request_past_the_timeout_is_abandoned_and_retried", ""),
    // The two instances differ only by the label the helper passes.
    ("--remote-write.external-label", "remote_write::two_instances_sum_in_the_receiver", "instance=\\\"b\\\""),
    ("--remote-write.header", "remote_write::requests_on_the_wire_are_remote_write_with_auth_headers_and_retries", ""),
    ("--remote-write.basic-auth.username", "remote_write::tls_and_basic_auth_to_a_real_receiver", ""),
    ("--remote-write.basic-auth.password-file", "remote_write::tls_and_basic_auth_to_a_real_receiver", ""),
    ("--remote-write.bearer-token-file", "remote_write::bearer_token_is_read_from_its_file_before_each_request", ""),
    ("--remote-write.tls.ca-file", "remote_write::tls_and_basic_auth_to_a_real_receiver", ""),
    ("--remote-write.tls.cert-file", "remote_write::mutual_tls_with_a_client_certificate", ""),
    ("--remote-write.tls.key-file", "remote_write::mutual_tls_with_a_client_certificate", ""),
    ("--remote-write.tls.insecure-skip-verify", "remote_write::mutual_tls_with_a_client_certificate", ""),
    ("--remote-write.native-histograms", "remote_write::native_histograms_arrive_in_a_receiver_that_takes_them", ""),
    ("--log.level", "flags::log_level_hides_lower_levels", ""),
    ("--log.format", "flags::log_format_is_logfmt_by_default_or_json", ""),
];

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The flags in the first column of the README's flag table.
fn readme_flags(readme: &str) -> Vec<String> {
    let start = readme.find("## Flags").expect("README has a Flags section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|f| f.trim_matches('`').trim_start_matches("--"))
        .map(|f| format!("--{f}"))
        .collect()
}

/// The body of `fn name(` in `source`: up to the next item at column 0.
fn fn_body<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let start = source.find(&format!("\nfn {name}("))? + 1;
    let rest = &source[start..];
    let end = rest.find("\n}\n").map_or(rest.len(), |i| i + 3);
    Some(&rest[..end])
}

#[test]
fn every_readme_flag_has_a_behaviour_test() {
    let readme = repo("README.md");
    let documented = readme_flags(&readme);
    assert!(documented.len() > 40, "found only {documented:?}");
    let mut problems = Vec::new();
    for flag in &documented {
        if !FLAG_TESTS.iter().any(|(f, _, _)| f == flag) {
            problems.push(format!(
                "{flag}: in the README's table, no row in FLAG_TESTS"
            ));
        }
    }
    for (flag, test, evidence) in FLAG_TESTS {
        if !readme.contains(&format!("`{flag}`")) {
            problems.push(format!("{flag}: in FLAG_TESTS, not in the README"));
        }
        let (file, name) = test.split_once("::").expect("file::test");
        let source = repo(&format!("tests/{file}.rs"));
        let Some(body) = fn_body(&source, name) else {
            problems.push(format!("{flag}: no fn {name} in tests/{file}.rs"));
            continue;
        };
        if !source.contains(&format!("#[test]\nfn {name}(")) {
            problems.push(format!("{flag}: {test} is not a #[test]"));
        }
        let want = if evidence.is_empty() {
            flag.trim_start_matches("--")
        } else {
            evidence
        };
        if !body.contains(want) {
            problems.push(format!("{flag}: {test} never mentions {want:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_flag_in_help_is_in_the_readme() {
    let out = Command::new(common::BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = repo("README.md");
    let mut missing = Vec::new();
    for word in help.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '(' | ')'))
    {
        let flag = word
            .split('=')
            .next()
            .unwrap_or("")
            .trim_end_matches(['.', ':', ';']);
        if flag.len() > 3 && flag.starts_with("--") && !readme.contains(flag) {
            missing.push(flag.to_owned());
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "in --help, not in the README: {missing:?}"
    );
}

/// The address a listener logged, as `listener="name" address=...`.
fn logged_address(log: &str, listener: &str) -> Option<SocketAddr> {
    let needle = format!("listener={listener} address=");
    let line = log.lines().find(|l| l.contains(&needle))?;
    let rest = &line[line.find(&needle)? + needle.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn listen_address_flags_bind_where_told() {
    // Loopback and an ephemeral port: the defaults are all interfaces and the
    // well-known ports, so an ignored flag shows in the logged address.
    let d = Daemon::start_raw(&[
        "--statsd.listen-udp=127.0.0.1:0",
        "--statsd.listen-tcp=127.0.0.1:0",
        "--web.listen-address=127.0.0.1:0",
        "--push.listen-address=127.0.0.1:0",
    ])
    .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    let log = d.log();
    for (listener, default_port) in [("udp", 8125), ("tcp", 8125), ("web", 9102), ("push", 9091)] {
        let addr = logged_address(&log, listener).unwrap_or_else(|| panic!("{listener}: {log}"));
        assert!(addr.ip().is_loopback(), "{listener} on {addr}");
        assert_ne!(addr.port(), default_port, "{listener} on {addr}");
    }
    d.send_udp(b"over_udp:1|c");
    let mut tcp = TcpStream::connect(d.tcp.unwrap()).unwrap();
    tcp.write_all(b"over_tcp:1|c\n").unwrap();
    let page = d.wait_lines(2);
    assert_eq!(value(&page, "over_udp"), Some(1.0), "{page}");
    assert_eq!(value(&page, "over_tcp"), Some(1.0), "{page}");
    let push = common::raw_http(
        d.push.unwrap(),
        b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(push.status, 200);
}

#[test]
fn port_only_addresses_listen_on_ipv4_and_ipv6() {
    // `:port` is every interface, both families, as statsd_exporter's (Go's)
    // listeners are: Airflow with `statsd_ipv6 = True` sends over IPv6.
    let d = Daemon::start_raw(&[
        "--statsd.listen-udp=:0",
        "--statsd.listen-tcp=:0",
        "--web.listen-address=:0",
        "--push.listen-address=",
    ])
    .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    let log = d.log();
    let port = |listener: &str| {
        logged_address(&log, listener)
            .unwrap_or_else(|| panic!("{listener}: {log}"))
            .port()
    };
    let (udp, tcp, web) = (port("udp"), port("tcp"), port("web"));
    for (family, host) in [("v4", "127.0.0.1"), ("v6", "::1")] {
        let ip: std::net::IpAddr = host.parse().unwrap();
        let sock = std::net::UdpSocket::bind((ip, 0)).unwrap();
        sock.send_to(format!("over_udp_{family}:1|c").as_bytes(), (ip, udp))
            .unwrap();
        let mut stream = TcpStream::connect((ip, tcp)).unwrap();
        stream
            .write_all(format!("over_tcp_{family}:1|c\n").as_bytes())
            .unwrap();
        drop(stream);
        let health = common::raw_http(
            SocketAddr::new(ip, web),
            b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(health.status, 200, "{family}");
    }
    let page = d.wait_lines(4);
    for series in ["over_udp_v4", "over_udp_v6", "over_tcp_v4", "over_tcp_v6"] {
        assert_eq!(value(&page, series), Some(1.0), "{series}\n{page}");
    }
}

/// (flag that turns one style off, line in that style, series with the style
/// on, series with it off)
const TAG_STYLES: &[(&str, &str, &str, &str)] = &[
    (
        "--no-statsd.parse-dogstatsd-tags",
        "dog:100|c|#tag1:bar,tag2:baz",
        "dog{tag1=\"bar\",tag2=\"baz\"}",
        "dog",
    ),
    (
        "--statsd.parse-influxdb-tags=false",
        "inf,k=v:1|c",
        "inf{k=\"v\"}",
        "inf_k_v",
    ),
    (
        "--no-statsd.parse-librato-tags",
        "lib#k=v:1|c",
        "lib{k=\"v\"}",
        "lib_k_v",
    ),
    (
        "--statsd.parse-signalfx-tags=false",
        "sfx[k=v]:1|c",
        "sfx{k=\"v\"}",
        "sfx_k_v_",
    ),
];

#[test]
fn tag_style_flags_turn_each_style_off() {
    let on = Daemon::start(&[]);
    for (flag, line, tagged, untagged) in TAG_STYLES {
        on.send_udp(line.as_bytes());
        let page = on.wait_for(|p| p.lines().any(|l| l.starts_with(tagged)));
        assert!(value(&page, untagged).is_none(), "{flag} default: {page}");

        let off = Daemon::start(&[flag]);
        off.send_udp(line.as_bytes());
        let page = off.wait_lines(1);
        assert!(
            value(&page, untagged).is_some(),
            "{flag}: no {untagged} in\n{page}"
        );
        assert!(!page.contains(tagged), "{flag}: {tagged} in\n{page}");
        // statsd_exporter counts a sample as tagged only when it kept tags.
        assert_eq!(
            value(&page, "promstatsd_tags_total"),
            Some(0.0),
            "{flag}: {page}"
        );
    }
}

#[test]
fn cache_size_bounds_the_ingest_cache() {
    let lines: String = (0..64).map(|i| format!("cached_{i}:1|c\n")).collect();
    let flushes = |d: &Daemon| {
        d.send_udp(lines.as_bytes());
        let page = d.wait_lines(64);
        value(&page, "promstatsd_ingest_cache_flushes_total").expect("flush counter")
    };
    assert_eq!(
        flushes(&Daemon::start(&[])),
        0.0,
        "the default cache holds 64 series"
    );
    let small = Daemon::start(&["--statsd.cache-size=8"]);
    assert!(flushes(&small) > 0.0, "an 8-entry cache never flushed");
}

/// A cache index slot names an entry in 24 bits: past 16,777,214 entries the
/// flag is refused at start, with the range, rather than clamped silently.
#[test]
fn cache_size_past_the_index_bound_is_refused() {
    for (size, refused) in [("16777214", false), ("16777215", true), ("100000000", true)] {
        let out = Command::new(common::BIN)
            .args([&format!("--statsd.cache-size={size}"), "--check-config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("not in 0..=16777214"),
            refused,
            "{size}: {stderr}"
        );
        if refused {
            assert_eq!(out.status.code(), Some(2), "{size}");
        }
    }
}

#[test]
fn tcp_max_line_length_is_an_alias() {
    let d = Daemon::start(&["--statsd.tcp-max-line-length=32"]);
    let long = format!("{}:1|c\n", "x".repeat(40));
    let mut tcp = TcpStream::connect(d.tcp.unwrap()).unwrap();
    tcp.write_all(format!("{long}short:1|c\n").as_bytes())
        .unwrap();
    // The listener's counters are published once per turn of its loop.
    let page = d.wait_for(|p| {
        value(p, "short") == Some(1.0)
            && value(p, "promstatsd_tcp_too_long_lines_total") == Some(1.0)
    });
    assert!(!page.contains("xxxx"), "{page}");
}

#[test]
fn web_max_connections_closes_the_extra_connection() {
    let d = Daemon::start(&["--web.max-connections=2"]);
    // Two connections that send nothing hold both places.
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(d.web).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(d.web).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = third.write_all(b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = third.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "the third connection was served: {:?}",
        String::from_utf8_lossy(&got)
    );
    // A place freed is a place taken again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(d.web).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        if got.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start the binary with `args` and collect its log until `done` holds for a
/// line (`secs` at most); then stop it.
fn log_until(args: &[&str], secs: u64, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut child = Command::new(common::BIN)
        .args([
            "--statsd.listen-udp=127.0.0.1:0",
            "--statsd.listen-tcp=127.0.0.1:0",
        ])
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--push.listen-address=127.0.0.1:0",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let stop = done(&line);
        lines.push(line);
        if stop {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn log_level_hides_lower_levels() {
    // An ignored statsd_exporter flag is a warning; "started" is info.
    let args = ["--statsd.cache-type=lru"];
    let info = log_until(&args, 5, |l| l.contains("promstatsd started"));
    assert!(info.iter().any(|l| l.contains(" level=warn ")), "{info:?}");
    assert!(
        info.iter().any(|l| l.contains("promstatsd started")),
        "{info:?}"
    );

    let warn = log_until(&[args[0], "--log.level=warn"], 5, |l| {
        l.contains(" level=warn ")
    });
    assert!(warn.iter().any(|l| l.contains(" level=warn ")), "{warn:?}");
    // Give the info line time to appear if the level were ignored.
    let quiet = log_until(&["--log.level=warn"], 2, |_| false);
    assert!(
        !quiet.iter().any(|l| l.contains("promstatsd started")),
        "info line at --log.level=warn: {quiet:?}"
    );
}

/// The `key=value` pairs of a logfmt line (quoted values unescaped).
fn logfmt_pairs(line: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || key.contains([' ', '"']) {
            return None;
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => value.push(chars.next()?.1),
                        (_, c) => value.push(c),
                    }
                };
                (value, &quoted[end + 1..])
            }
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        pairs.push((key.to_owned(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
        if !after.is_empty() && !after.starts_with(' ') {
            return None;
        }
    }
    Some(pairs)
}

#[test]
fn log_format_is_logfmt_by_default_or_json() {
    let lines = log_until(&[], 5, |l| l.contains("promstatsd started"));
    assert!(
        lines.iter().any(|l| l.contains("promstatsd started")),
        "{lines:?}"
    );
    for line in &lines {
        let pairs = logfmt_pairs(line).unwrap_or_else(|| panic!("not logfmt: {line}"));
        let keys: Vec<&str> = pairs.iter().take(4).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ts", "level", "target", "msg"], "{line}");
    }
    let udp = lines
        .iter()
        .filter_map(|l| logfmt_pairs(l))
        .find(|p| p.iter().any(|(k, v)| k == "listener" && v == "udp"))
        .expect("the UDP listener's line");
    assert!(
        udp.iter()
            .any(|(k, v)| k == "address" && v.starts_with("127.0.0.1:")),
        "{udp:?}"
    );

    let lines = log_until(&["--log.format=json"], 5, |l| {
        l.contains("promstatsd started")
    });
    assert!(
        lines.iter().any(|l| l.contains("promstatsd started")),
        "{lines:?}"
    );
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
    }
}
