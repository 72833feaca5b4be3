//! The push semantics end to end: a body parsed, converted and applied to a
//! store, as the push port does.

use super::body::parse;
use crate::model::group::{GroupKey, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::store::Store;
use std::sync::Arc;

fn key(job: &str, labels: &[(&str, &str)]) -> GroupKey {
    GroupKey::new(
        job,
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

fn push(store: &Store, k: &GroupKey, body: &str, replace: bool) -> Result<(), String> {
    super::apply_text(store, k, body, replace, 1000.0)
}

fn samples(store: &Store, name: &str) -> Vec<(String, String, f64)> {
    store
        .pushed_view()
        .iter()
        .filter(|v| &*v.name == name)
        .flat_map(|v| v.parts.iter())
        .flat_map(|p| p.samples.iter())
        .map(|s| (s.name.to_string(), s.labels.to_string(), s.value))
        .collect()
}

#[test]
fn grouping_labels_override_and_instance_is_added() {
    let store = Store::default();
    let k = key("batch", &[("env", "prod")]);
    push(&store, &k, "x{env=\"dev\",a=\"1\"} 2\n", true).unwrap();
    assert_eq!(
        samples(&store, "x"),
        vec![(
            "x".into(),
            "a=\"1\",env=\"prod\",instance=\"\",job=\"batch\"".into(),
            2.0
        )]
    );
    assert_eq!(
        samples(&store, PUSH_TIME),
        vec![(
            PUSH_TIME.into(),
            "env=\"prod\",instance=\"\",job=\"batch\"".into(),
            1000.0
        )]
    );
}

#[test]
fn put_replaces_the_group_and_post_only_named_families() {
    let store = Store::default();
    let k = key("j", &[]);
    push(&store, &k, "a 1\nb 1\n", true).unwrap();
    push(&store, &k, "b 2\nc 3\n", false).unwrap();
    assert_eq!(samples(&store, "a").len(), 1);
    assert_eq!(samples(&store, "b")[0].2, 2.0);
    push(&store, &k, "c 4\n", true).unwrap();
    assert!(samples(&store, "a").is_empty());
    assert!(samples(&store, "b").is_empty());
    assert_eq!(samples(&store, "c")[0].2, 4.0);
    assert!(store.delete_group(&k));
    assert!(store.pushed_view().is_empty());
    assert!(!store.delete_group(&k));
}

#[test]
fn a_type_clash_between_groups_applies_nothing() {
    let store = Store::default();
    let (a, b) = (key("a", &[]), key("b", &[]));
    push(&store, &a, "# TYPE x counter\nx 1\n", true).unwrap();
    let err = super::apply_parsed(
        &store,
        &b,
        &parse("y 1\n# TYPE x gauge\nx 1\n").unwrap(),
        true,
        2000.0,
    )
    .unwrap_err();
    assert!(err.contains("clashes with a pushed metric"), "{err}");
    assert!(samples(&store, "y").is_empty());
    // The failed group exists with only its failure time.
    let fail = samples(&store, PUSH_FAILURE_TIME);
    assert!(fail
        .iter()
        .any(|(_, l, v)| l.contains("job=\"b\"") && *v == 2000.0));
    // The group that holds x alone may change x's type.
    push(&store, &a, "# TYPE x gauge\nx 1\n", true).unwrap();
}

#[test]
fn the_same_series_from_two_groups_is_refused() {
    let store = Store::default();
    push(&store, &key("j", &[("instance", "h1")]), "x 1\n", true).unwrap();
    let err = push(&store, &key("j", &[]), "x{instance=\"h1\"} 1\n", true).unwrap_err();
    assert!(err.contains("already pushed"), "{err}");
}

#[test]
fn statsd_and_a_push_racing_for_one_series_create_it_once() {
    // The push side checks for StatsD series and the StatsD side for pushed
    // ones; each check and its insert happen under the pushed groups' lock,
    // so racing for the same series, exactly one side gets it.
    let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
    let store = Arc::clone(agg.store());
    let n = 3000;
    // Both sides start each series together.
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|t| {
        t.spawn(|| {
            let k = key("j", &[]);
            for i in 0..n {
                let body = format!("# TYPE r{i} counter\nr{i}{{instance=\"h\"}} 5\n");
                start.wait();
                let _ = push(&store, &k, &body, false);
            }
        });
        for i in 0..n {
            let line = format!("r{i}:1|c|#instance:h,job:j");
            start.wait();
            agg.ingest(line.as_bytes());
        }
    });
    let page = agg.render_to_string();
    for i in 0..n {
        let lines = page.matches(&format!("\nr{i}{{")).count();
        assert_eq!(lines, 1, "r{i} on the page {lines} times");
    }
}

#[test]
fn statsd_families_and_pushed_ones_must_agree() {
    let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
    agg.ingest(b"hits:1|c|#k:v\nlat:1|ms");
    let store = agg.store();
    let k = key("j", &[]);
    let err = push(store, &k, "# TYPE hits gauge\nhits 1\n", true).unwrap_err();
    assert!(err.contains("StatsD metric"), "{err}");
    let err = push(store, &k, "lat_sum 1\n", true).unwrap_err();
    assert!(err.contains("StatsD metric"), "{err}");
    // Same type, other labels: fine; the exact StatsD series: refused.
    push(store, &k, "# TYPE hits counter\nhits{k=\"w\"} 1\n", true).unwrap();
    agg.ingest(b"dup:1|c|#instance:h,job:j");
    let store = agg.store();
    let err = push(
        store,
        &key("j", &[("instance", "h")]),
        "# TYPE dup counter\ndup 1\n",
        true,
    )
    .unwrap_err();
    assert!(err.contains("already a StatsD series"), "{err}");
    // A StatsD series identical to a pushed one is refused (a conflict).
    push(
        store,
        &k,
        "# TYPE pushed_first counter\npushed_first{instance=\"h\"} 5\n",
        false,
    )
    .unwrap();
    agg.ingest(b"pushed_first:1|c|#instance:h,job:j");
    let page = agg.render_to_string();
    assert_eq!(page.matches("pushed_first{").count(), 1, "{page}");
    assert!(page.contains("pushed_first{instance=\"h\",job=\"j\"} 5\n"));
    assert!(
        page.contains(
            "promstatsd_events_conflict_total{metric_name=\"pushed_first\",type=\"counter\"} 1\n"
        ),
        "{page}"
    );
    let store = agg.store();
    // A StatsD family of another type than a pushed one is refused in turn.
    push(store, &k, "# TYPE newone gauge\nnewone 1\n", false).unwrap();
    agg.ingest(b"newone:1|c");
    assert!(agg
        .render_to_string()
        .contains("newone{instance=\"\",job=\"j\"} 1\n"));
    assert!(!agg.render_to_string().contains("# TYPE newone counter"));
}

#[test]
fn reserved_names_are_refused() {
    let store = Store::default();
    let k = key("j", &[]);
    for body in ["push_time_seconds 1\n", "promstatsd_x 1\n"] {
        assert!(push(&store, &k, body, true)
            .unwrap_err()
            .contains("reserved"));
    }
}

#[test]
fn group_paths_round_trip_every_value() {
    let k = key("a/b", &[("x", ""), ("y", "ü=+/")]);
    let p = k.to_path();
    assert!(p.starts_with("/job@base64/"));
    assert_eq!(k.to_string(), "{job=\"a/b\",x=\"\",y=\"ü=+/\"}");
}

#[test]
fn ttl_expiry_removes_old_groups() {
    let store = Store::default();
    push(&store, &key("old", &[]), "a 1\n", true).unwrap();
    super::apply_parsed(
        &store,
        &key("new", &[]),
        &parse("b 1\n").unwrap(),
        true,
        5000.0,
    )
    .unwrap();
    assert_eq!(store.expire_pushed(5000.0, 100.0), 1);
    assert!(samples(&store, "a").is_empty());
    assert_eq!(samples(&store, "b").len(), 1);
}
