//! `promstatsd --explain`: the binary, as an operator runs it. The report's
//! contents are table-tested in `src/explain/tests.rs`; here: arguments and
//! stdin, the exit codes, and that no daemon starts.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(common::BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("stdin takes the lines");
    }
    child.wait_with_output().expect("the binary exits")
}

fn helm_flag() -> String {
    let helm = common::data_dir().join("airflow-helm-statsd-mappings.yml");
    format!("--statsd.mapping-config={}", helm.display())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn explain_takes_lines_as_arguments_and_exits_0() {
    let helm = helm_flag();
    let out = run(
        &[
            &helm,
            "--explain",
            "airflow.dag.etl.extract.duration:1500|ms",
            "airflow.operator_failures_BashOperator:1|c",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("airflow-helm-statsd-mappings.yml:55 (glob"),
        "{text}"
    );
    assert!(
        text.contains("airflow-helm-statsd-mappings.yml:37 (regex"),
        "{text}"
    );
    assert!(
        text.contains("family  airflow_task_duration (summary)"),
        "{text}"
    );
}

#[test]
fn explain_reads_stdin_for_a_dash_skipping_blank_lines() {
    let out = run(
        &["--statsd.mapping-config=airflow", "--explain", "-"],
        "airflow.task.duration:1500|ms\n\r\n\nmyapp.requests:1|c\r\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("dropped by airflow.yml:82"), "{text}");
    assert!(text.contains("family  myapp_requests (counter)"), "{text}");
    assert_eq!(text.matches("rule    ").count(), 2, "{text}");
}

#[test]
fn explain_exits_1_on_a_line_that_does_not_parse_and_explains_the_rest() {
    let out = run(&["--explain", "no_value", "ok:1|c"], "");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("does not parse: "), "{text}");
    assert!(text.contains("family  ok (counter)"), "{text}");
}

#[test]
fn explain_exits_2_when_the_mapping_does_not_load() {
    let dir = common::temp_dir("explain-bad");
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "mappings:\n- match: a.b\n  bogus: 1\n").expect("a temp file");
    let flag = format!("--statsd.mapping-config={}", bad.display());
    let out = run(&[&flag, "--explain", "a.b:1|c"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yml"));
}
