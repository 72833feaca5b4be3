//! The hand-written encoder checked against prost's decoder over messages
//! declared here from `metrics.proto`'s field numbers (an oracle the encoder
//! shares nothing with).

use super::*;
use crate::model::collect::{FamilyHead, Labels, Value};
use prost::Message;

use crate::model::proto_oracle::{Metric, MetricFamily, Span};

/// Every delimited message in `bytes`.
fn decode(mut bytes: &[u8]) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match MetricFamily::decode_length_delimited(&mut bytes) {
            Ok(f) => out.push(f),
            Err(e) => panic!("a delimited MetricFamily: {e}"),
        }
    }
    out
}

fn head(name: &'static str, kind: MetricKind) -> FamilyHead<'static> {
    FamilyHead {
        name,
        kind,
        help: "h",
    }
}

fn labels(m: &Metric) -> Vec<(String, String)> {
    m.label
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn each_kind_decodes_as_its_message() {
    let mut out = Vec::new();
    let mut enc = ProtoEncoder::new(&mut out);
    let c = head("c_total", MetricKind::Counter);
    enc.family(c);
    enc.series(
        c,
        Labels::Rendered("a=\"x\\\"y\",b=\"2\""),
        Value::Counter(5.0),
    );
    let g = head("g", MetricKind::Gauge);
    enc.family(g);
    enc.series(g, Labels::Pairs(&[]), Value::Gauge(-1.5));
    let s = head("s", MetricKind::Summary);
    enc.family(s);
    enc.series(
        s,
        Labels::Pairs(&[("k", "v")]),
        Value::Summary {
            quantiles: &[0.5, 0.99],
            values: &[1.0, 2.0],
            sum: 10.0,
            count: 7,
        },
    );
    let h = head("h", MetricKind::Histogram);
    enc.family(h);
    enc.series(
        h,
        Labels::Pairs(&[]),
        Value::Histogram {
            bounds: &[0.1, 1.0],
            cumulative: &[1, 3, 4],
            sum: 2.5,
            native: None,
        },
    );
    enc.finish();
    let fams = decode(&out);
    let names: Vec<(&str, i32)> = fams.iter().map(|f| (f.name.as_str(), f.r#type)).collect();
    assert_eq!(names, [("c_total", 0), ("g", 1), ("s", 2), ("h", 4)]);
    let c = &fams[0].metric[0];
    assert_eq!(labels(c), pairs(&[("a", "x\"y"), ("b", "2")]));
    assert_eq!(c.counter.as_ref().map(|v| v.value), Some(5.0));
    assert_eq!(
        fams[1].metric[0].gauge.as_ref().map(|v| v.value),
        Some(-1.5)
    );
    let sm = fams[2].metric[0].summary.clone().unwrap_or_default();
    assert_eq!((sm.sample_count, sm.sample_sum), (7, 10.0));
    let qs: Vec<(f64, f64)> = sm.quantile.iter().map(|q| (q.quantile, q.value)).collect();
    assert_eq!(qs, [(0.5, 1.0), (0.99, 2.0)]);
    let hm = fams[3].metric[0].histogram.clone().unwrap_or_default();
    assert_eq!((hm.sample_count, hm.sample_sum), (4, 2.5));
    let bs: Vec<(u64, f64)> = hm
        .bucket
        .iter()
        .map(|b| (b.cumulative_count, b.upper_bound))
        .collect();
    assert_eq!(bs, [(1, 0.1), (3, 1.0)], "no +Inf bucket");
    assert_eq!(fams[0].help, "h");
}

#[test]
fn a_family_without_series_is_not_sent() {
    let mut out = Vec::new();
    let mut enc = ProtoEncoder::new(&mut out);
    enc.family(head("empty", MetricKind::Gauge));
    let g = head("g", MetricKind::Gauge);
    enc.family(g);
    enc.series(g, Labels::Pairs(&[]), Value::Gauge(1.0));
    enc.finish();
    let fams = decode(&out);
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].name, "g");
}

#[test]
fn a_family_resumed_in_a_new_chunk_is_sent_again_under_its_name() {
    let g = head("g", MetricKind::Gauge);
    let mut out = Vec::new();
    let mut first = ProtoEncoder::new(&mut out);
    first.family(g);
    first.series(g, Labels::Pairs(&[("i", "1")]), Value::Gauge(1.0));
    first.finish();
    // The next chunk's encoder sees the rest of the family without its head.
    let mut second = ProtoEncoder::new(&mut out);
    second.series(g, Labels::Pairs(&[("i", "2")]), Value::Gauge(2.0));
    second.finish();
    let fams = decode(&out);
    assert_eq!(fams.len(), 2);
    assert!(fams
        .iter()
        .all(|f| f.name == "g" && f.r#type == 1 && f.help == "h"));
    assert_eq!(labels(&fams[1].metric[0]), pairs(&[("i", "2")]));
}

#[test]
fn pushed_summary_and_histogram_samples_become_one_metric_per_series() {
    let mut out = Vec::new();
    let mut enc = ProtoEncoder::new(&mut out);
    let h = head("h", MetricKind::Histogram);
    enc.family(h);
    let samples: &[(&str, &str, f64)] = &[
        ("h_bucket", "job=\"a\",le=\"1\"", 2.0),
        ("h_bucket", "job=\"a\",le=\"+Inf\"", 3.0),
        ("h_sum", "job=\"a\"", 4.5),
        ("h_count", "job=\"a\"", 3.0),
        ("h_bucket", "job=\"b\",le=\"1\"", 1.0),
        ("h_bucket", "job=\"b\",le=\"+Inf\"", 1.0),
        ("h_sum", "job=\"b\"", 0.5),
        ("h_count", "job=\"b\"", 1.0),
    ];
    for (name, l, v) in samples {
        enc.series(h, Labels::Rendered(l), Value::Sample { name, value: *v });
    }
    let s = head("s", MetricKind::Summary);
    enc.family(s);
    for (name, l, v) in [
        ("s", "job=\"a\",quantile=\"0.5\"", 7.0),
        ("s_sum", "job=\"a\"", 20.0),
        ("s_count", "job=\"a\"", 3.0),
    ] {
        enc.series(s, Labels::Rendered(l), Value::Sample { name, value: v });
    }
    let c = head("c", MetricKind::Counter);
    enc.family(c);
    enc.series(
        c,
        Labels::Rendered("job=\"a\""),
        Value::Sample {
            name: "c",
            value: 9.0,
        },
    );
    enc.finish();
    let fams = decode(&out);
    assert_eq!(fams.len(), 3);
    let hs = &fams[0].metric;
    assert_eq!(hs.len(), 2);
    let a = hs[0].histogram.clone().unwrap_or_default();
    assert_eq!(labels(&hs[0]), pairs(&[("job", "a")]));
    assert_eq!((a.sample_count, a.sample_sum, a.bucket.len()), (3, 4.5, 1));
    assert_eq!(
        (a.bucket[0].cumulative_count, a.bucket[0].upper_bound),
        (2, 1.0)
    );
    assert_eq!(labels(&hs[1]), pairs(&[("job", "b")]));
    let sm = fams[1].metric[0].summary.clone().unwrap_or_default();
    assert_eq!((sm.sample_count, sm.sample_sum), (3, 20.0));
    assert_eq!(sm.quantile.len(), 1);
    assert_eq!(
        fams[2].metric[0].counter.as_ref().map(|v| v.value),
        Some(9.0)
    );
}

#[test]
fn native_fields_decode_with_their_signs() {
    let mut out = Vec::new();
    let mut enc = ProtoEncoder::new(&mut out);
    let h = head("n", MetricKind::Histogram);
    enc.family(h);
    let native = crate::model::collect::NativeValue {
        schema: -2,
        zero_threshold: 1e-9,
        count: 9,
        zero_count: 2,
        positive: (&[(-3, 2), (4, 1)], &[1, 2, -3]),
        negative: (&[(5, 1)], &[3]),
    };
    enc.series(
        h,
        Labels::Pairs(&[]),
        Value::Histogram {
            bounds: &[],
            cumulative: &[9],
            sum: 1.0,
            native: Some(native),
        },
    );
    enc.finish();
    let fams = decode(&out);
    assert_eq!(fams[0].metric.len(), 1);
    let n = fams[0].metric[0].histogram.clone().unwrap_or_default();
    assert_eq!(
        (n.sample_count, n.schema, n.zero_threshold, n.zero_count),
        (9, Some(-2), 1e-9, 2)
    );
    let spans = |s: &[Span]| s.iter().map(|s| (s.offset, s.length)).collect::<Vec<_>>();
    assert_eq!(spans(&n.positive_span), [(-3, 2), (4, 1)]);
    assert_eq!(n.positive_delta, [1, 2, -3]);
    assert_eq!(spans(&n.negative_span), [(5, 1)]);
    assert_eq!(n.negative_delta, [3]);
}
