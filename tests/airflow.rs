//! Airflow end to end: the Helm chart's mapping file and the built-in pack, on the
//! real Airflow 3.3.2 traffic in `tests/data/`, through the real daemon.

mod common;

use common::{read_lines, replay, total, value, Daemon};
use std::collections::{BTreeMap, BTreeSet};

fn assert_no_errors(page: &str) {
    assert_eq!(total(page, "promstatsd_sample_errors_total"), 0.0, "{page}");
    assert_eq!(
        total(page, "promstatsd_events_conflict_total"),
        0.0,
        "{page}"
    );
    assert_eq!(total(page, "promstatsd_tag_errors_total"), 0.0);
}

/// Values of the legacy lines whose name is exactly `name`.
fn values_of(lines: &[String], name: &str) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| {
            let (n, rest) = l.split_once(':')?;
            let n = n.split(',').next()?;
            (n == name).then(|| rest.split('|').next()?.parse().ok())?
        })
        .collect()
}

#[test]
fn helm_chart_mapping_file_loads_unchanged_and_maps_real_traffic() {
    let helm = common::data_dir().join("airflow-helm-statsd-mappings.yml");
    let flag = format!("--statsd.mapping-config={}", helm.display());
    let d = Daemon::start(&[&flag]);
    let lines = read_lines("airflow-3.3.2-plain.statsd");
    let page = replay(&d, &lines);
    assert_no_errors(&page);
    assert_eq!(value(&page, "promstatsd_loaded_mappings"), Some(21.0));

    let durations = values_of(&lines, "airflow.dag.corpus_etl.extract.duration");
    assert!(!durations.is_empty());
    assert_eq!(
        value(
            &page,
            "airflow_task_duration_count{dag_id=\"corpus_etl\",task_id=\"extract\"}"
        ),
        Some(durations.len() as f64),
        "{page}"
    );
    let sum = value(
        &page,
        "airflow_task_duration_sum{dag_id=\"corpus_etl\",task_id=\"extract\"}",
    )
    .unwrap();
    let want: f64 = durations.iter().map(|v| v / 1000.0).sum();
    assert!((sum - want).abs() < 1e-9, "sum {sum} want {want}");

    let open = values_of(&lines, "airflow.pool.open_slots.default_pool");
    assert_eq!(
        value(&page, "airflow_pool_open_slots{pool=\"default_pool\"}"),
        open.last().copied(),
        "{page}"
    );
    // The regex rules: operator name captured, heartbeat labelled.
    assert_eq!(
        value(&page, "airflow_scheduler_heartbeat{type=\"counter\"}"),
        Some(values_of(&lines, "airflow.scheduler_heartbeat").len() as f64)
    );
    assert!(
        page.contains("airflow_operator_successes{operator=\"BashOperator\"}"),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "airflow_executor_open_slots{executor=\"LocalExecutor\"}"
        ),
        values_of(&lines, "airflow.executor.open_slots.LocalExecutor")
            .last()
            .copied()
    );
}

/// Families the pack labels with ids, and the labels every series must carry:
/// the new-name twin (without ids) must never add a series beside them.
const LABELLED: &[(&str, &[&str])] = &[
    ("airflow_ti_start", &["dag_id", "task_id"]),
    ("airflow_ti_finish", &["dag_id", "task_id", "state"]),
    ("airflow_ti_running", &["queue", "dag_id", "task_id"]),
    ("airflow_ti_queued", &["queue", "dag_id", "task_id"]),
    ("airflow_ti_deferred", &["queue", "dag_id", "task_id"]),
    ("airflow_task_duration", &["dag_id", "task_id"]),
    ("airflow_task_scheduled_duration", &["dag_id", "task_id"]),
    ("airflow_operator_successes", &["operator"]),
    ("airflow_task_instance_created", &["operator"]),
    ("airflow_dagrun_duration", &["dag_id", "state"]),
    ("airflow_dagrun_dependency_check", &["dag_id"]),
    ("airflow_dagrun_schedule_delay", &["dag_id"]),
    ("airflow_dagrun_first_task_scheduling_delay", &["dag_id"]),
    ("airflow_pool_open_slots", &["pool"]),
    ("airflow_pool_starving_tasks", &["pool"]),
    ("airflow_executor_open_slots", &["executor"]),
    ("airflow_triggers_running", &["hostname"]),
    ("airflow_triggerer_capacity_left", &["hostname"]),
    (
        "airflow_dag_processing_last_duration",
        &["bundle_name", "file_name"],
    ),
    ("airflow_dag_processing_last_run_seconds_ago", &["dag_file"]),
];

/// Series lines of a family (its own name, `_sum`, `_count`, `_bucket`).
fn series_of<'a>(page: &'a str, family: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            name == family
                || ["_sum", "_count", "_bucket"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family))
        })
        .collect()
}

fn families(page: &str) -> BTreeMap<String, String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| !n.starts_with("promstatsd_"))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// `airflow_*`/`datadog_*` family names listed in the README's pack table.
fn readme_families() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- airflow-pack-table -->")
        .expect("README pack table marker");
    let end = readme
        .find("<!-- /airflow-pack-table -->")
        .expect("README pack table end marker");
    readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Rows of a README table between `<!-- marker -->` and `<!-- /marker -->`:
/// the first cell's code name and the set of code names in cell `col`.
fn readme_table(marker: &str, col: usize) -> BTreeMap<String, BTreeSet<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find(&format!("<!-- {marker} -->")).expect(marker);
    let end = readme.find(&format!("<!-- /{marker} -->")).expect(marker);
    let code = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = code(cells.first()?).into_iter().next()?;
            Some((name, code(cells.get(col)?)))
        })
        .collect()
}

/// Label names per family on a page (`le` and `quantile` left out).
fn label_names(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let kinds = families(page);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = l.split_once('{') else {
            continue;
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| kinds.contains_key(*f)))
            .unwrap_or(name);
        let names = rest
            .split("\",")
            .filter_map(|p| p.split_once("=\"").map(|(k, _)| k.trim_start_matches(',')))
            .filter(|k| !matches!(*k, "le" | "quantile"))
            .map(str::to_string);
        out.entry(family.to_string()).or_default().extend(names);
    }
    out
}

fn pack_run(file: &str) -> (Vec<String>, String) {
    let d = Daemon::start(&["--statsd.mapping-config=airflow"]);
    let lines = read_lines(file);
    let page = replay(&d, &lines);
    (lines, page)
}

#[test]
fn airflow_pack_on_all_three_wire_modes() {
    let documented = readme_families();
    let mut seen = BTreeSet::new();
    for file in [
        "airflow-3.3.2-plain.statsd",
        "airflow-3.3.2-influx.statsd",
        "airflow-3.3.2-datadog.statsd",
    ] {
        let (lines, page) = pack_run(file);
        assert_no_errors(&page);
        // Every line was either recorded or dropped on purpose (a twin).
        let samples = value(&page, "promstatsd_samples_total").unwrap();
        let recorded = total(&page, "promstatsd_events_total");
        let dropped = value(&page, "promstatsd_events_actions_total{action=\"drop\"}").unwrap();
        assert_eq!(samples, lines.len() as f64, "{file}");
        assert_eq!(recorded + dropped, samples, "{file}");
        assert!(dropped > 0.0);

        // No series twice: labelled families carry their id labels on every series.
        for (family, labels) in LABELLED {
            for s in series_of(&page, family) {
                for l in *labels {
                    assert!(s.contains(&format!("{l}=\"")), "{file}: {s} lacks {l}");
                }
            }
        }
        // Values: legacy counts land in the labelled family, once.
        let starts = values_of(&lines, "airflow.ti.start.corpus_etl.extract").len();
        assert_eq!(
            value(
                &page,
                "airflow_ti_start{dag_id=\"corpus_etl\",task_id=\"extract\"}"
            ),
            Some(starts as f64),
            "{file}"
        );
        // One spelling of an id per page: the legacy names' `__` is a dot
        // again, as in the tags of the tagged modes.
        assert!(
            value(
                &page,
                "airflow_ti_start{dag_id=\"corpus_etl\",task_id=\"transform.clean\"}"
            )
            .is_some(),
            "{file}"
        );
        let doubled: Vec<&str> = page
            .lines()
            .filter(|l| l.contains("task_id=\"") && l.contains("__") && !l.starts_with('#'))
            .collect();
        assert!(doubled.is_empty(), "{file}: {doubled:?}");
        // Seconds sent as `ms` are corrected back to seconds.
        let last_duration: f64 = lines
            .iter()
            .filter(|l| {
                l.starts_with("airflow.dag_processing.last_duration.dags-folder.corpus_etl:")
            })
            .filter_map(|l| l.split([':', '|']).nth(1)?.parse::<f64>().ok())
            .sum();
        let got = value(
            &page,
            "airflow_dag_processing_last_duration_sum{bundle_name=\"dags-folder\",file_name=\"corpus_etl\"}",
        )
        .unwrap();
        assert!(
            (got - last_duration).abs() < 1e-9,
            "{file}: {got} vs {last_duration}"
        );

        // Label names: the pack table's in plain mode, plus the tagged-labels
        // table's in the tagged modes (unmapped families carry what was sent).
        let documented_labels = readme_table("airflow-pack-table", 2);
        let tagged_extra = readme_table("airflow-pack-tagged-labels", 1);
        for (family, got) in label_names(&page) {
            let Some(want) = documented_labels.get(&family) else {
                continue;
            };
            if want.is_empty() {
                continue; // "tags as sent"
            }
            let mut want = want.clone();
            if !file.contains("plain") {
                want.extend(tagged_extra.get(&family).cloned().unwrap_or_default());
            }
            assert_eq!(got, want, "{file}: labels of {family}");
        }
        let fams = families(&page);
        for name in fams.keys() {
            assert!(
                documented.contains(name),
                "{file}: {name} is produced but not in the README table"
            );
        }
        seen.extend(fams.into_keys());
    }
    // The README lists nothing the traffic can show that the pack no longer produces
    // (families for metrics absent from the sample traffic are marked in the table).
    assert!(seen.len() > 60, "{seen:?}");
}

#[test]
fn check_config_validates_without_starting() {
    let helm = common::data_dir().join("airflow-helm-statsd-mappings.yml");
    let ok = std::process::Command::new(common::BIN)
        .arg(format!("--statsd.mapping-config={}", helm.display()))
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK, 21 mappings"));

    let pack = std::process::Command::new(common::BIN)
        .args(["--statsd.mapping-config=airflow", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(pack.status.code(), Some(0));

    let dir = common::temp_dir("check-config");
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "mappings:\n- match: a.b\n  name: x\n  bogus: 1\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg(format!("--statsd.mapping-config={}", bad.display()))
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yml: line 4 column 3: unknown field `bogus`"),
        "{err}"
    );

    // The daemon refuses to start with it too, with the same message.
    let flag = format!("--statsd.mapping-config={}", bad.display());
    let start = Daemon::start_raw(&[
        &flag,
        "--statsd.listen-udp=127.0.0.1:0",
        "--statsd.listen-tcp=",
        "--web.listen-address=127.0.0.1:0",
        "--push.listen-address=127.0.0.1:0",
    ]);
    let log = start.err().expect("must not start");
    assert!(log.contains("unknown field `bogus`"), "{log}");
}

#[test]
fn task_state_gauges_expire_and_awaiting_input_is_labelled() {
    use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults, AIRFLOW_PACK};
    use promstatsd::parser::MetricType;
    let (pack, _) = Mapper::from_yaml("airflow", AIRFLOW_PACK, &MapperDefaults::default())
        .expect("the pack loads");
    // (legacy name, family, TTL in seconds)
    let cases = [
        (
            "airflow.ti.running.default.etl.load",
            "airflow_ti_running",
            120,
        ),
        (
            "airflow.ti.queued.default.etl.load",
            "airflow_ti_queued",
            120,
        ),
        (
            "airflow.ti.scheduled.default.etl.load",
            "airflow_ti_scheduled",
            120,
        ),
        (
            "airflow.ti.deferred.default.etl.load",
            "airflow_ti_deferred",
            120,
        ),
        (
            "airflow.ti.awaiting_input.default.etl.load",
            "airflow_ti_awaiting_input",
            120,
        ),
        // A counter that carries ids keeps its series.
        ("airflow.ti.finish.etl.load.success", "airflow_ti_finish", 0),
    ];
    for (name, family, ttl) in cases {
        match pack.map(name, MetricType::Gauge, Vec::new()) {
            MapOutcome::Map(m) => {
                assert_eq!(m.name, family, "{name}");
                assert_eq!(m.ttl_secs, ttl, "{name}");
                assert!(
                    m.labels.iter().any(|(k, v)| k == "task_id" && v == "load"),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
