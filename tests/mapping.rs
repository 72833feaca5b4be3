//! Mapping-file behaviour, one named case per key, through the library pipeline
//! (parse -> map -> store -> render), plus the invalid files and their messages.

use promstatsd::mapper::{Mapper, MapperDefaults};
use promstatsd::reload::MappingSource;
use promstatsd::{Aggregator, Config};
use std::io::Write;

fn aggregator(yaml: &str) -> Aggregator {
    let dir = std::env::temp_dir().join(format!("promstatsd-mapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.yml", fxhash(yaml)));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let cfg = Config {
        mapping: Some(MappingSource::File(path)),
        ..Config::default()
    };
    Aggregator::new(&cfg).unwrap_or_else(|e| panic!("mapping did not load: {e}"))
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// (case, mapping file, StatsD input, lines the page must contain, text it must not contain)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const CASES: &[Case] = &[
    (
        "glob_captures_into_name_and_labels",
        "mappings:\n- match: test.dispatcher.*.*.*\n  name: dispatcher_events_total\n  labels:\n    processor: $1\n    action: $2\n    outcome: $3\n    job: test_dispatcher\n",
        "test.dispatcher.FooProcessor.send.success:1|c",
        &["dispatcher_events_total{action=\"send\",job=\"test_dispatcher\",outcome=\"success\",processor=\"FooProcessor\"} 1"],
        &[],
    ),
    (
        "glob_star_is_one_component",
        "mappings:\n- match: a.*\n  name: one\n",
        "a.b:1|c\na.b.c:1|c",
        &["one 1", "a_b_c 1"],
        &[],
    ),
    (
        "glob_first_in_file_order_wins",
        "mappings:\n- match: order.*.*\n  name: first\n- match: order.*.bbb\n  name: second\n",
        "order.x.bbb:1|c",
        &["first 1"],
        &["second"],
    ),
    (
        "glob_disable_ordering_most_specific_wins",
        "defaults:\n  glob_disable_ordering: true\nmappings:\n- match: o.*.*\n  name: general\n- match: o.*.bbb\n  name: specific\n",
        "o.x.bbb:1|c\no.x.y:1|c",
        &["specific 1", "general 1"],
        &[],
    ),
    (
        "globs_before_regexes",
        "mappings:\n- match: .*\n  match_type: regex\n  name: regex_all\n- match: web.*\n  name: web_glob\n",
        "web.host:1|c\nother:1|c",
        &["web_glob 1", "regex_all 1"],
        &[],
    ),
    (
        "regex_captures_and_whole_match",
        "mappings:\n- match: 'test3\\.(\\w+)\\.(\\w+)'\n  match_type: regex\n  name: ${2}_$1\n  labels:\n    whole: $0\n",
        "test3.total_requests.count:2|c",
        &["count_total_requests{whole=\"test3.total_requests.count\"} 2"],
        &[],
    ),
    (
        "regex_is_unanchored",
        "mappings:\n- match: heartbeat\n  match_type: regex\n  name: hb\n",
        "airflow.scheduler_heartbeat:1|c",
        &["hb 1"],
        &[],
    ),
    (
        "glob_reference_followed_by_text_is_empty",
        "mappings:\n- match: t.*\n  name: t\n  labels:\n    bad: $1_foo\n    good: ${1}_foo\n",
        "t.a:1|c",
        &["t{bad=\"\",good=\"a_foo\"} 1"],
        &[],
    ),
    (
        "action_drop",
        "mappings:\n- match: noisy.*\n  action: drop\n  name: x\n",
        "noisy.a:1|c\nkept:1|c",
        &["kept 1", "promstatsd_events_actions_total{action=\"drop\"} 1"],
        &["noisy"],
    ),
    (
        "match_metric_type_selects_by_type",
        "mappings:\n- match: m.*\n  match_metric_type: counter\n  name: m_counter\n- match: m.*\n  match_metric_type: gauge\n  name: m_gauge\n- match: m.*\n  match_metric_type: observer\n  name: m_observer\n",
        "m.a:1|c\nm.a:5|g\nm.a:100|ms",
        &["m_counter 1", "m_gauge 5", "m_observer_sum 0.1"],
        &[],
    ),
    (
        "mapping_labels_win_over_tags",
        "mappings:\n- match: l.*\n  name: l\n  labels:\n    env: mapped\n",
        "l.a:1|c|#env:tag,other:x",
        &["l{env=\"mapped\",other=\"x\"} 1"],
        &[],
    ),
    (
        "honor_labels_keeps_tags",
        "mappings:\n- match: l.*\n  name: l\n  honor_labels: true\n  labels:\n    env: mapped\n    team: core\n",
        "l.a:1|c|#env:tag",
        &["l{env=\"tag\",team=\"core\"} 1"],
        &[],
    ),
    (
        "label_value_replace_rewrites_the_rules_labels",
        "mappings:\n- match: ti.*.*\n  name: ti\n  label_value_replace: {\"__\": \".\"}\n  labels:\n    dag_id: \"$1\"\n    task_id: \"$2\"\n",
        "ti.etl.group__clean:1|c|#note:a__b",
        // The rule's own labels are rewritten; a tag is left as sent.
        &["ti{dag_id=\"etl\",note=\"a__b\",task_id=\"group.clean\"} 1"],
        &[],
    ),
    (
        "help_text",
        "mappings:\n- match: h.*\n  name: h\n  help: Requests handled.\n",
        "h.a:1|c",
        &["# HELP h Requests handled.", "# TYPE h counter"],
        &[],
    ),
    (
        "scale_applies_after_ms_conversion",
        "mappings:\n- match: secs.*\n  name: secs\n  scale: 1000\n  observer_type: histogram\n  histogram_options:\n    buckets: [1, 10]\n",
        "secs.a:2.5|ms",
        &["secs_bucket{le=\"1\"} 0", "secs_bucket{le=\"10\"} 1", "secs_sum 2.5"],
        &[],
    ),
    (
        "scale_on_counters_and_gauges",
        "mappings:\n- match: c.*\n  name: c\n  scale: 0.5\n- match: g.*\n  name: g\n  scale: 2\n",
        "c.a:4|c\ng.a:3|g\ng.a:+1|g",
        &["c 2", "g 8"],
        &[],
    ),
    (
        "observer_type_and_buckets",
        "mappings:\n- match: lat.*\n  name: lat\n  observer_type: histogram\n  histogram_options:\n    buckets: [0.1, 1]\n",
        "lat.a:50|ms\nlat.a:500|ms",
        &["# TYPE lat histogram", "lat_bucket{le=\"0.1\"} 1", "lat_bucket{le=\"1\"} 2", "lat_bucket{le=\"+Inf\"} 2"],
        &[],
    ),
    (
        "summary_quantiles",
        "mappings:\n- match: s.*\n  name: s\n  summary_options:\n    quantiles:\n    - quantile: 0.75\n      error: 0.01\n    max_age: 5m\n    age_buckets: 2\n    buf_cap: 100\n",
        "s.a:10|ms\ns.a:20|ms\ns.a:30|ms\ns.a:40|ms",
        &["s{quantile=\"0.75\"} 0.03", "s_count 4"],
        &["quantile=\"0.5\""],
    ),
    (
        "defaults_observer_histogram",
        "defaults:\n  observer_type: histogram\n  histogram_options:\n    buckets: [1]\n",
        "x:2|h",
        &["x_bucket{le=\"1\"} 0", "x_bucket{le=\"+Inf\"} 1"],
        &[],
    ),
    (
        "deprecated_keys_still_work",
        "defaults:\n  timer_type: histogram\n  buckets: [1, 2]\nmappings:\n- match: q.*\n  name: q\n  timer_type: summary\n  quantiles:\n  - quantile: 0.5\n    error: 0.05\n",
        "q.a:1|h\nz:1.5|h",
        &["q{quantile=\"0.5\"} 1", "z_bucket{le=\"2\"} 1"],
        &[],
    ),
    (
        "defaults_match_type_regex",
        "defaults:\n  match_type: regex\nmappings:\n- match: 'rx\\.(\\w+)$'\n  name: rx_$1\n",
        "rx.hits:1|c",
        &["rx_hits 1"],
        &[],
    ),
    (
        "defaults_summary_options",
        "defaults:\n  summary_options:\n    quantiles:\n    - quantile: 0.3\n      error: 0.01\n    buf_cap: 10\n",
        "d.a:10|ms\nd.a:20|ms\nd.a:30|ms",
        &["d_a{quantile=\"0.3\"} 0.01", "d_a_count 3"],
        &["quantile=\"0.5\""],
    ),
    (
        "deprecated_default_quantiles_yield_to_summary_options",
        "defaults:\n  quantiles: [{quantile: 0.9, error: 0.1}]\n  summary_options:\n    quantiles: [{quantile: 0.42, error: 0.04}]\nmappings:\n- match: test.*.*\n  observer_type: summary\n  name: \"foo\"\n",
        "test.a.b:1|ms",
        &["foo{quantile=\"0.42\"} 0.001"],
        &["quantile=\"0.9\""],
    ),
    (
        "deprecated_default_quantiles_alone",
        "defaults:\n  quantiles: [{quantile: 0.9, error: 0.1}]\n",
        "dq:2|ms",
        &["dq{quantile=\"0.9\"} 0.002"],
        &["quantile=\"0.5\""],
    ),
    (
        "deprecated_default_buckets_yield_to_histogram_options",
        "defaults:\n  observer_type: histogram\n  buckets: [5]\n  histogram_options:\n    buckets: [2]\n",
        "hb:1|h",
        &["hb_bucket{le=\"2\"} 1"],
        &["le=\"5\""],
    ),
    (
        "deprecated_mapping_buckets",
        "mappings:\n- match: b.*\n  name: b\n  observer_type: histogram\n  buckets: [3]\n",
        "b.x:1|h",
        &["b_bucket{le=\"3\"} 1"],
        &["le=\"0.005\""],
    ),
    (
        "native_histogram_options_keep_the_text_page_classic",
        "defaults:\n  histogram_options:\n    native_histogram_bucket_factor: 1.1\n    native_histogram_max_buckets: 160\nmappings:\n- match: n.*\n  name: n\n  observer_type: histogram\n  histogram_options:\n    buckets: [1]\n    native_histogram_bucket_factor: 1.1\n    native_histogram_max_buckets: 160\n",
        "n.a:0.5|h",
        &["n_bucket{le=\"1\"} 1", "n_bucket{le=\"+Inf\"} 1"],
        &[],
    ),
    (
        "action_map_is_the_default",
        "mappings:\n- match: am.*\n  action: map\n  name: am\n",
        "am.a:1|c",
        &["am 1"],
        &["am_a"],
    ),
    (
        "empty_expanded_name_is_counted",
        "mappings:\n- match: e.*\n  name: $2\n",
        "e.a:1|c",
        &["promstatsd_events_error_total{reason=\"empty_metric_name\"} 1"],
        &[],
    ),
    (
        "mapped_names_are_escaped",
        "mappings:\n- match: 'x\\.(.*)'\n  match_type: regex\n  name: x_$1\n",
        "x.a-b.c:1|c",
        &["x_a_b_c 1"],
        &[],
    ),
];

/// (key as the README's table names it, where: `defaults` or `mapping`, the
/// case of `CASES` or the test that shows its effect on a page)
#[rustfmt::skip]
const KEY_CASES: &[(&str, &str, &str)] = &[
    ("match", "mapping", "glob_captures_into_name_and_labels"),
    ("match_type", "defaults", "defaults_match_type_regex"),
    ("match_type", "mapping", "regex_captures_and_whole_match"),
    ("glob_disable_ordering", "defaults", "glob_disable_ordering_most_specific_wins"),
    ("name", "mapping", "glob_captures_into_name_and_labels"),
    ("labels", "mapping", "glob_captures_into_name_and_labels"),
    ("help", "mapping", "help_text"),
    ("action", "mapping", "action_drop"),
    ("action", "mapping", "action_map_is_the_default"),
    ("match_metric_type", "mapping", "match_metric_type_selects_by_type"),
    ("observer_type", "defaults", "defaults_observer_histogram"),
    ("observer_type", "mapping", "observer_type_and_buckets"),
    ("histogram_options.buckets", "defaults", "defaults_observer_histogram"),
    ("histogram_options.buckets", "mapping", "observer_type_and_buckets"),
    ("histogram_options.native_histogram_bucket_factor", "defaults", "native_histogram_options_keep_the_text_page_classic"),
    ("histogram_options.native_histogram_bucket_factor", "mapping", "native_histogram_options_keep_the_text_page_classic"),
    ("histogram_options.native_histogram_max_buckets", "defaults", "native_histogram_options_keep_the_text_page_classic"),
    ("histogram_options.native_histogram_max_buckets", "mapping", "native_histogram_options_keep_the_text_page_classic"),
    ("summary_options.quantiles", "defaults", "defaults_summary_options"),
    ("summary_options.quantiles", "mapping", "summary_quantiles"),
    ("summary_options.max_age", "defaults", "summary_window_forgets_old_observations"),
    ("summary_options.max_age", "mapping", "summary_window_forgets_old_observations"),
    ("summary_options.age_buckets", "defaults", "summary_window_forgets_old_observations"),
    ("summary_options.age_buckets", "mapping", "summary_window_forgets_old_observations"),
    ("summary_options.buf_cap", "defaults", "defaults_summary_options"),
    ("summary_options.buf_cap", "mapping", "summary_quantiles"),
    ("ttl", "defaults", "ttl_removes_idle_series"),
    ("ttl", "mapping", "ttl_removes_idle_series"),
    ("honor_labels", "mapping", "honor_labels_keeps_tags"),
    ("label_value_replace", "mapping", "label_value_replace_rewrites_the_rules_labels"),
    ("scale", "mapping", "scale_applies_after_ms_conversion"),
    ("timer_type", "defaults", "deprecated_keys_still_work"),
    ("timer_type", "mapping", "deprecated_keys_still_work"),
    ("buckets", "defaults", "deprecated_default_buckets_yield_to_histogram_options"),
    ("buckets", "mapping", "deprecated_mapping_buckets"),
    ("quantiles", "defaults", "deprecated_default_quantiles_alone"),
    ("quantiles", "mapping", "deprecated_keys_still_work"),
];

/// (key, places) of every row of the README's mapping-key table.
fn readme_keys() -> Vec<(String, Vec<String>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find("<!-- mapping-keys-table -->")
        .expect("README has the key table");
    let end = readme
        .find("<!-- /mapping-keys-table -->")
        .expect("and its end");
    let mut rows = Vec::new();
    for line in readme[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let places: Vec<String> = cells[1].split(", ").map(str::to_owned).collect();
        for key in cells[0].trim_start_matches("| ").split(", ") {
            rows.push((key.trim_matches('`').to_owned(), places.clone()));
        }
    }
    rows
}

#[test]
fn every_readme_mapping_key_has_a_case() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mapping.rs"),
    )
    .unwrap();
    let rows = readme_keys();
    assert!(rows.len() > 20, "{rows:?}");
    let mut problems = Vec::new();
    for (key, places) in &rows {
        for place in places {
            if !KEY_CASES.iter().any(|(k, p, _)| k == key && p == place) {
                problems.push(format!("{place} {key}: no case in KEY_CASES"));
            }
        }
    }
    for (key, place, case) in KEY_CASES {
        if !rows
            .iter()
            .any(|(k, p)| k == key && p.iter().any(|p| p == place))
        {
            problems.push(format!("{place} {key}: not in the README's table"));
        }
        // The case's mapping file must use the key where the row says.
        let text = match CASES.iter().find(|c| c.0 == *case) {
            Some(c) => c.1.to_owned(),
            None => match source.find(&format!("\nfn {case}(")) {
                Some(i) => source[i..].split("\n}\n").next().unwrap_or("").to_owned(),
                None => {
                    problems.push(format!("{place} {key}: no case or test {case}"));
                    continue;
                }
            },
        };
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let in_defaults = text.contains("defaults:");
        let in_mappings = text.contains("mappings:");
        let placed = if *place == "defaults" {
            in_defaults
        } else {
            in_mappings
        };
        if !text.contains(&format!("{leaf}:")) || !placed {
            problems.push(format!("{place} {key}: {case} does not set it there"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn mapping_cases() {
    let mut failures = Vec::new();
    for (name, yaml, input, want, absent) in CASES {
        let mut agg = aggregator(yaml);
        agg.ingest(input.as_bytes());
        let page = agg.render_to_string();
        for w in *want {
            if !page.lines().any(|l| l == *w) {
                failures.push(format!("{name}: missing line {w:?}"));
            }
        }
        for a in *absent {
            if page
                .lines()
                .any(|l| !l.starts_with("promstatsd_") && !l.starts_with('#') && l.contains(a))
            {
                failures.push(format!("{name}: unexpected {a:?}"));
            }
        }
        if !failures.is_empty() && failures.last().is_some_and(|f| f.starts_with(name)) {
            failures.push(format!("--- page of {name}:\n{page}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ttl_removes_idle_series() {
    let mut agg =
        aggregator("mappings:\n- match: t.*\n  name: t\n  ttl: 1s\n  labels:\n    k: $1\n");
    // defaults.ttl covers mapped and unmapped series alike.
    let mut by_default = aggregator("defaults:\n  ttl: 1s\nmappings:\n- match: m.*\n  name: m\n");
    agg.ingest(b"t.a:1|c\nt.b:1|c\nkeep:1|c");
    by_default.ingest(b"m.a:1|c\nunmapped:1|c");
    assert!(agg.render_to_string().contains("t{k=\"a\"} 1\n"));
    assert!(by_default.render_to_string().contains("unmapped 1\n"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    agg.ingest(b"t.b:1|c");
    by_default.ingest(b"other:1|c");
    let page = agg.render_to_string();
    assert!(!page.contains("t{k=\"a\"}"), "{page}");
    // t.b expired before its new sample arrived, so it starts again at 1.
    assert!(page.contains("t{k=\"b\"} 1\n"), "{page}");
    assert!(page.contains("keep 1\n"), "a series without TTL stays");
    let page = by_default.render_to_string();
    assert!(
        !page.contains("\nm 1") && !page.contains("unmapped 1"),
        "{page}"
    );
    assert!(page.contains("other 1\n"), "{page}");
}

#[test]
fn summary_window_forgets_old_observations() {
    // A 4 s window in one slot, set in defaults and in a mapping; observations
    // 1, 2, 3 (seconds) at 0, 2.5 and 4.5 s. By the last, the slot holding the
    // first two has left the window: the lowest quantile is 3. With the default
    // window (10 minutes) it would be 1; with the default 5 slots (1 s each
    // here) the 2 would still be in the window.
    let window = "summary_options:\n  quantiles: [{quantile: 0.01, error: 0.001}]\n  max_age: 4s\n  age_buckets: 1\n";
    let indent = |by: &str| {
        window
            .replace('\n', &format!("\n{by}"))
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut by_default = aggregator(&format!("defaults:\n  {}", indent("  ")));
    let mut mapped = aggregator(&format!(
        "mappings:\n- match: w.*\n  name: w\n  {}",
        indent("  ")
    ));
    for (wait_ms, v) in [(0, 1000), (2500, 2000), (2000, 3000)] {
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        let line = format!("w.a:{v}|ms");
        by_default.ingest(line.as_bytes());
        mapped.ingest(line.as_bytes());
    }
    for (name, page, series) in [
        ("defaults", by_default.render_to_string(), "w_a"),
        ("mapping", mapped.render_to_string(), "w"),
    ] {
        assert!(
            page.contains(&format!("{series}{{quantile=\"0.01\"}} 3\n")),
            "{name}: {page}"
        );
        // _count and _sum cover all time.
        assert!(
            page.contains(&format!("{series}_count 3\n")),
            "{name}: {page}"
        );
    }
}

#[test]
fn deprecated_keys_warn() {
    let (_, warnings) = Mapper::from_yaml(
        "f.yml",
        "defaults:\n  timer_type: histogram\nmappings:\n- match: a.*\n  name: a\n  buckets: [1]\n",
        &MapperDefaults::default(),
    )
    .unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("timer_type is deprecated")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("buckets are deprecated")),
        "{warnings:?}"
    );
}

/// (case, mapping file, expected message fragment)
const INVALID: &[(&str, &str, &str)] = &[
    ("unknown_key", "mappings:\n- match: a.b\n  name: x\n  bogus: 1\n", "f.yml: line 4 column 3: unknown field `bogus`"),
    ("unknown_top_level_key", "mapping:\n- match: a\n", "unknown field `mapping`"),
    ("bad_yaml", "mappings: [\n", "f.yml: line 1"),
    ("no_name", "mappings:\n- match: a.b\n", "f.yml: line 2: mapping 1 (match \"a.b\"): metric mapping didn't set a metric name"),
    ("bad_glob", "mappings:\n- match: a.b*\n  name: x\n", "invalid match: a.b*"),
    ("bad_regex", "mappings:\n- match: '(a'\n  match_type: regex\n  name: x\n", "invalid regex"),
    ("bad_name", "mappings:\n- match: a.*\n  name: 0foo\n", "metric name \"0foo\" is not valid"),
    ("bad_label", "mappings:\n- match: a.*\n  name: x\n  labels:\n    bad-key: $1\n", "invalid label key: bad-key"),
    ("bad_action", "mappings:\n- match: a.*\n  name: x\n  action: keep\n", "invalid action type \"keep\""),
    ("empty_label_value_replace", "mappings:\n- match: a.*\n  name: x\n  label_value_replace: {\"\": \".\"}\n", "a substring to replace cannot be empty"),
    ("bad_match_type", "mappings:\n- match: a.*\n  name: x\n  match_type: fuzzy\n", "invalid match type \"fuzzy\""),
    ("bad_metric_type", "mappings:\n- match: a.*\n  name: x\n  match_metric_type: wrong\n", "invalid metric type \"wrong\""),
    ("bad_observer", "mappings:\n- match: a.*\n  name: x\n  observer_type: bar\n", "invalid observer type \"bar\""),
    ("bad_ttl", "mappings:\n- match: a.*\n  name: x\n  ttl: 1d\n", "invalid duration \"1d\""),
    ("unsorted_buckets", "mappings:\n- match: a.*\n  name: x\n  observer_type: histogram\n  histogram_options:\n    buckets: [2, 1]\n", "increasing order"),
    ("histogram_with_summary_options", "mappings:\n- match: a.*\n  name: x\n  observer_type: histogram\n  summary_options:\n    max_age: 1m\n", "cannot use histogram observer and summary options"),
    ("quantile_out_of_range", "mappings:\n- match: a.*\n  name: x\n  summary_options:\n    quantiles:\n    - quantile: 1.5\n      error: 0.1\n", "quantile 1.5 is outside [0, 1]"),
    ("both_bucket_keys", "mappings:\n- match: a.*\n  name: x\n  buckets: [1]\n  histogram_options:\n    buckets: [1]\n", "cannot use buckets in both"),
    ("duplicate_key", "mappings:\n- match: a.*\n  name: x\n  name: y\n", "duplicate mapping key"),
];

#[test]
fn invalid_files_name_the_file_line_and_reason() {
    let mut failures = Vec::new();
    for (name, yaml, want) in INVALID {
        match Mapper::from_yaml("f.yml", yaml, &MapperDefaults::default()) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(want) {
                    failures.push(format!("{name}: {msg:?} lacks {want:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_empty_file_is_valid() {
    let (m, _) = Mapper::from_yaml("f.yml", "", &MapperDefaults::default()).unwrap();
    assert_eq!(m.rule_count(), 0);
}
