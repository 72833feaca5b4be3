//! Replay the real Airflow 3.3.2 traffic in `tests/data/` through the daemon
//! over UDP: no parse error, and the page holds what Airflow sent.

mod common;

use common::{read_lines, replay, total, value, Daemon};
use std::collections::BTreeMap;

fn assert_clean(page: &str) {
    assert_eq!(total(page, "promstatsd_sample_errors_total"), 0.0, "{page}");
    assert_eq!(total(page, "promstatsd_tag_errors_total"), 0.0);
    assert_eq!(total(page, "promstatsd_events_conflict_total"), 0.0);
}

fn count_named(lines: &[String], name: &str, sep: &[char]) -> usize {
    lines
        .iter()
        .filter(|l| l.split(sep).next() == Some(name))
        .count()
}

#[test]
fn plain_mode_every_counter_and_gauge_matches_a_naive_replay() {
    let lines = read_lines("airflow-3.3.2-plain.statsd");
    let d = Daemon::start(&[]);
    let page = replay(&d, &lines);
    assert_clean(&page);

    // A naive model of what Airflow sent: counters summed (value / rate), gauges
    // set or moved, per escaped name.
    let mut counters: BTreeMap<String, f64> = BTreeMap::new();
    let mut gauges: BTreeMap<String, f64> = BTreeMap::new();
    for l in &lines {
        let (name, rest) = l.split_once(':').unwrap();
        let parts: Vec<&str> = rest.split('|').collect();
        let v: f64 = parts[0].parse().unwrap();
        let rate: f64 = parts
            .iter()
            .find_map(|p| p.strip_prefix('@'))
            .map_or(1.0, |r| r.parse().unwrap());
        let name = promstatsd::mapper::escape_name(name);
        match parts[1] {
            "c" => *counters.entry(name).or_default() += v / rate,
            "g" if parts[0].starts_with(['+', '-']) => *gauges.entry(name).or_default() += v,
            "g" => {
                gauges.insert(name, v);
            }
            _ => {}
        }
    }
    assert!(counters.len() > 20 && gauges.len() > 20);
    for (name, want) in counters.iter().chain(gauges.iter()) {
        let got = value(&page, name);
        assert_eq!(got, Some(*want), "{name}");
    }
    assert_eq!(
        value(&page, "airflow_scheduler_heartbeat"),
        Some(count_named(&lines, "airflow.scheduler_heartbeat", &[':']) as f64)
    );
    assert!(page.contains("# TYPE airflow_dag_processing_last_duration summary\n"));
    assert_eq!(
        value(&page, "airflow_dag_processing_last_duration_count"),
        Some(count_named(&lines, "airflow.dag_processing.last_duration", &[':']) as f64)
    );
    // A gauge sent with a sample rate keeps its value (the rate is ignored).
    assert_eq!(
        value(&page, "airflow_api_server_dag_bag_cache_size"),
        gauges.get("airflow_api_server_dag_bag_cache_size").copied()
    );
}

/// What both tagged modes must show: the heartbeat total, the last_duration
/// summary with its file labels, the executor gauge with its tags as labels.
fn assert_tagged_mode(file: &str, name_sep: &[char]) -> String {
    let lines = read_lines(file);
    let d = Daemon::start(&[]);
    let page = replay(&d, &lines);
    assert_clean(&page);
    assert_eq!(
        value(&page, "airflow_scheduler_heartbeat"),
        Some(count_named(&lines, "airflow.scheduler_heartbeat", &[':']) as f64)
    );
    assert!(page.contains("# TYPE airflow_dag_processing_last_duration summary\n"));
    assert_eq!(
        total(&page, "airflow_dag_processing_last_duration_count"),
        count_named(&lines, "airflow.dag_processing.last_duration", name_sep) as f64
    );
    assert!(
        page.contains("airflow_dag_processing_last_duration_count{bundle_name=\"dags-folder\",file_name=\"corpus_failing\"}"),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "airflow_executor_open_slots{executor_class_name=\"LocalExecutor\",status=\"open\"}"
        ),
        Some(4.0)
    );
    page
}

#[test]
fn influx_mode_tags_become_labels() {
    assert_tagged_mode("airflow-3.3.2-influx.statsd", &[',', ':']);
}

#[test]
fn datadog_mode_tags_become_labels() {
    let page = assert_tagged_mode("airflow-3.3.2-datadog.statsd", &[':']);
    // The datadog client's own telemetry arrives too.
    assert!(
        page.contains("# TYPE datadog_dogstatsd_client_metrics counter\n"),
        "{page}"
    );
}
