//! `(line, what the report must say)` tables over the Airflow Helm chart's
//! mapping file (with a drop rule appended, as the chart's `extraMappings`
//! are), the built-in pack and small files for the rarer reasons.

use super::*;
use crate::mapper::{Mapper, MapperDefaults};

const HELM: &str = include_str!("../../tests/data/airflow-helm-statsd-mappings.yml");
/// One rule as the chart's `statsd.extraMappings` adds it, after its own.
const HELM_EXTRA: &str = "\n  - match: airflow.zombies_killed\n    action: drop\n";

fn mapper(yaml: &str) -> Mapper {
    match Mapper::from_yaml("test", yaml, &MapperDefaults::default()) {
        Ok((m, _)) => m,
        Err(e) => panic!("the test mapping loads: {e}"),
    }
}

fn report(m: &Mapper, file: &str, line: &str) -> Report {
    Explainer {
        mapper: m,
        file,
        opts: ParseOptions::default(),
    }
    .line(line)
}

/// Each case's report holds every listed line, in this order.
fn check(m: &Mapper, file: &str, cases: &[(&str, &[&str])]) {
    for (line, want) in cases {
        let r = report(m, file, line);
        assert!(r.parsed, "{line}: {}", r.text);
        let mut rest = r.text.as_str();
        for w in *want {
            match rest.find(w) {
                Some(i) => rest = &rest[i + w.len()..],
                None => panic!("{line}: {w:?} missing (or out of order) in\n{}", r.text),
            }
        }
    }
}

#[test]
fn helm_chart_rules_are_cited_by_line() {
    let m = mapper(&format!("{HELM}{HELM_EXTRA}"));
    let cases: &[(&str, &[&str])] = &[
        // glob
        (
            "airflow.dag.etl.extract.duration:1500|ms",
            &[
                "rule    helm.yml:55 (glob \"airflow.dag.*.*.duration\")",
                "family  airflow_task_duration (summary)",
                "labels  dag_id=\"etl\", task_id=\"extract\"",
                "value   1.5 observed (ms as seconds)",
                "not decided by:",
                "regex \"airflow.operator_successes_(.*)\"): the pattern does not match",
                "1 glob rule(s) whose pattern does not match the name",
            ],
        ),
        // regex, after another regex that does not match
        (
            "airflow.operator_failures_BashOperator:1|c",
            &[
                "rule    helm.yml:37 (regex \"airflow.operator_failures_(.*)\")",
                "family  airflow_operator_failures (counter)",
                "labels  operator=\"BashOperator\"",
                "value   1 added",
                "helm.yml:31 (regex \"airflow.operator_successes_(.*)\"): the pattern does not match",
            ],
        ),
        // drop
        (
            "airflow.zombies_killed:1|c",
            &["rule    dropped by helm.yml:144 (glob \"airflow.zombies_killed\")"],
        ),
        // no rule
        (
            "airflow.scheduler.tasks.starving:3|g",
            &[
                "rule    no rule: escaped name (StatsD name \"airflow.scheduler.tasks.starving\")",
                "family  airflow_scheduler_tasks_starving (gauge)",
                "labels  none",
                "value   set to 3",
                "18 glob rule(s) whose pattern does not match the name",
            ],
        ),
    ];
    check(&m, "helm.yml", cases);
}

#[test]
fn pack_rules_are_cited_by_their_line_in_the_pack() {
    let m = mapper(crate::mapper::AIRFLOW_PACK);
    let cases: &[(&str, &[&str])] = &[
        (
            "airflow.dag.etl.extract.duration:250|ms",
            &[
                "rule    airflow.yml:67 (glob \"airflow.dag.*.*.duration\")",
                "labels  dag_id=\"etl\", task_id=\"extract\"",
                "value   0.25 observed (ms as seconds)",
            ],
        ),
        (
            "airflow.task.duration:1500|ms|#dag_id:etl,task_id:extract",
            &["rule    dropped by airflow.yml:82 (glob \"airflow.task.duration\")"],
        ),
        (
            "airflow.operator_failures_PythonOperator:1|c",
            &[
                "rule    airflow.yml:251 (regex \"^airflow\\\\.operator_failures_(.+)$\")",
                "airflow.yml:246 (regex \"^airflow\\\\.operator_successes_(.+)$\"): the pattern does not match",
            ],
        ),
        (
            "myapp.requests:1|c",
            &["rule    no rule: escaped name", "family  myapp_requests (counter)"],
        ),
    ];
    check(&m, PACK_FILE, cases);
}

const REASONS: &str = "\
defaults:
  glob_disable_ordering: true
mappings:
  - match: app.*.latency
    name: by_host
    match_metric_type: counter
  - match: app.*.*
    name: any
  - match: ^app\\.api\\.(.*)$
    match_type: regex
    name: regex_api
  - match: app.api.*
    name: api
";

#[test]
fn reasons_name_the_rule_that_won() {
    let m = mapper(REASONS);
    let cases: &[(&str, &[&str])] = &[
        (
            "app.api.latency:5|ms",
            &[
                "rule    r.yml:12 (glob \"app.api.*\")",
                "family  api (summary)",
                "r.yml:4 (glob \"app.*.latency\"): matches, but takes only counter (c) samples and this is a timer (ms)",
                "r.yml:7 (glob \"app.*.*\"): matches, but glob_disable_ordering picks the more specific r.yml:12",
                "r.yml:9 (regex \"^app\\\\.api\\\\.(.*)$\"): matches, but every glob is tried before any regex, and r.yml:12",
            ],
        ),
        (
            "app.web.latency:5|c",
            &["rule    r.yml:4 (glob \"app.*.latency\")", "family  by_host (counter)"],
        ),
    ];
    check(&m, "r.yml", cases);
}

#[test]
fn values_read_as_ingest_applies_them() {
    let m = mapper("mappings: []");
    let cases: &[(&str, &[&str])] = &[
        ("a:2|c|@0.5", &["value   4 added (sent at sample rate 0.5)"]),
        (
            "a:-1|c",
            &["value   -1: refused, a counter cannot decrease"],
        ),
        ("a:+3|g", &["value   +3 added to the gauge"]),
        ("a:-3|g", &["value   -3 added to the gauge"]),
        ("a:7|g", &["value   set to 7"]),
        (
            "a:bob|s",
            &[
                "family  a (gauge, of distinct set members)",
                "value   member \"bob\" added",
            ],
        ),
        (
            "a:100|ms|@0.1",
            &["value   0.1 observed 10 times (ms as seconds) (sample rate 0.1)"],
        ),
        ("a:3|h", &["value   3 observed"]),
        ("a,host=x:1|c", &["labels  host=\"x\""]),
        ("a:1|c|#quantile:1", &["labels  quantile=\"1\""]),
        (
            "a:1|ms|#quantile:1",
            &["labels  none", "tag \"quantile\" skipped"],
        ),
        ("a:1|c|#broken", &["1 malformed tag(s) skipped"]),
    ];
    check(&m, "none", cases);
}

#[test]
fn a_line_with_several_samples_reports_each() {
    let m = mapper("mappings: []");
    let r = report(&m, "none", "a:1|c:2|g");
    assert!(r.parsed);
    assert!(r.text.contains("  sample 1:\n    rule"), "{}", r.text);
    assert!(r.text.contains("  sample 2:\n    rule"), "{}", r.text);
    assert!(r.text.contains("    value   set to 2"), "{}", r.text);
}

#[test]
fn a_line_that_does_not_parse_says_why() {
    let m = mapper("mappings: []");
    let cases = ["a", "a:1", "a:x|c", "a:1|zz", ":1|c"];
    for line in cases {
        let r = report(&m, "none", line);
        assert!(!r.parsed, "{line}: {}", r.text);
        assert!(r.text.contains("does not parse: "), "{line}: {}", r.text);
        assert!(!r.text.contains("rule "), "{line}: {}", r.text);
    }
}
