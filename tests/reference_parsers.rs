//! The page must parse with the reference parsers: the Python `prometheus_client`
//! text parser and `promtool check metrics`. Both are installed by the test
//! command (`scripts/test.sh`); a missing tool fails these tests, it never skips them.

mod common;

use common::Daemon;
use std::io::Write;
use std::process::{Command, Stdio};

fn run_with_stdin(cmd: &str, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} is required (run scripts/test.sh to install it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A page with every family kind, awkward label values and self-metrics.
fn rich_page() -> String {
    let d = Daemon::start(&[]);
    d.send_udp(
        "c.x-y:3|c|#env:prod,quote:a\"b,slash:c\\d\n\
         c.x-y:1|c|#env:dev\n\
         g:-1.5e-7|g\n\
         t:12|ms|#route:/x\n\
         t:14|ms|#route:/x\n\
         s:m1|s\n\
         big:1234567|c\n\
         tagged:1|c|#k:}\n"
            .as_bytes(),
    );
    // A newline always ends a StatsD line, so `}`, `"` and `\` are the label-value
    // injection risks a page can meet.
    d.wait_lines(8)
}

fn histogram_page() -> String {
    let d = Daemon::start(&["--statsd.observer-type=histogram"]);
    d.send_udp(b"h:3|ms|#a:b\nh:300|ms|#a:b\nd:0.2|d");
    d.wait_lines(3)
}

const PY_PARSE: &str = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(sys.stdin.read()))
out = {}
for f in fams:
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out, sort_keys=True))
"#;

#[test]
fn python_prometheus_client_parses_the_page() {
    for page in [rich_page(), histogram_page()] {
        let (code, out, err) = run_with_stdin("python3", &["-c", PY_PARSE], &page);
        assert_eq!(code, Some(0), "python parser failed: {err}\npage:\n{page}");
        let families: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        // Every family the page declares came back, with its type.
        for decl in &families {
            let mut it = decl.split(' ');
            let (name, ty) = (it.next().unwrap(), it.next().unwrap());
            // The Python parser strips `_total` from counter family names.
            let key = if ty == "counter" {
                name.trim_end_matches("_total")
            } else {
                name
            };
            assert!(
                out.contains(&format!("\"{key}\": {{\"samples\"")),
                "family {name} missing from the parse: {out}"
            );
            assert!(
                out.contains(&format!("\"type\": \"{ty}\"")),
                "type {ty} of {name}: {out}"
            );
        }
    }
    let (_, out, _) = run_with_stdin("python3", &["-c", PY_PARSE], &rich_page());
    // Awkward label values come back exactly as sent.
    assert!(out.contains(r#""quote": "a\"b""#), "{out}");
    assert!(out.contains(r#""slash": "c\\d""#), "{out}");
    assert!(out.contains(r#""k": "}""#), "{out}");
    assert!(out.contains(r#""route": "/x""#), "{out}");
}

#[test]
fn promtool_finds_no_format_error() {
    for page in [rich_page(), histogram_page()] {
        let (code, out, err) = run_with_stdin("promtool", &["check", "metrics"], &page);
        // 0: clean; 3: lint warnings only (counters without `_total` are expected for
        // statsd_exporter-compatible names). 1 would be a format error.
        assert!(
            matches!(code, Some(0) | Some(3)),
            "promtool exit {code:?}\n{out}\n{err}\npage:\n{page}"
        );
        assert!(!err.contains("error while linting"), "{err}");
    }
}
