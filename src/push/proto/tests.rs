//! Bodies built with prost from messages declared here (field numbers of
//! `metrics.proto`), read by the hand-written reader, and compared with the
//! text parser's reading of the same metrics written as text.

use super::*;
use crate::push::body;
use prost::Message;

use crate::model::proto_oracle::{
    Bucket, Histogram, LabelPair, Metric, MetricFamily, Quantile, Single, Summary,
};

fn delimited(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        if let Err(e) = f.encode_length_delimited(&mut out) {
            panic!("encode: {e}");
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| LabelPair {
            name: (*k).into(),
            value: (*v).into(),
        })
        .collect()
}

fn family(name: &str, t: i32, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: t,
        metric,
    }
}

/// A family of one gauge of value 1 with the label pairs `pairs`.
fn one_gauge(name: &str, pairs: &[(&str, &str)]) -> MetricFamily {
    family(
        name,
        1,
        vec![Metric {
            label: labels(pairs),
            gauge: Some(Single { value: 1.0 }),
            ..Metric::default()
        }],
    )
}

/// What a parse says, comparable across the two parsers (label values as
/// numbers where they are `le` or `quantile`).
/// `(type, sample name, sorted labels, value)`.
type Flat = (String, String, Vec<(String, String)>, f64);

fn flat(fams: &[ParsedFamily<'_>]) -> Vec<Flat> {
    let mut out = Vec::new();
    for f in fams {
        for s in &f.samples {
            let mut l: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| {
                    let v = match *k {
                        "le" | "quantile" => format!(
                            "{:?}",
                            v.replace("+Inf", "inf").parse::<f64>().unwrap_or(f64::NAN)
                        ),
                        _ => v.to_string(),
                    };
                    ((*k).to_owned(), v)
                })
                .collect();
            l.sort();
            out.push((
                f.kind.type_word().to_owned(),
                s.name.to_string(),
                l,
                s.value,
            ));
        }
    }
    out
}

#[test]
fn every_kind_reads_as_its_text_twin() {
    let single = |v| Some(Single { value: v });
    let body = delimited(&[
        family(
            "c_total",
            0,
            vec![Metric {
                label: labels(&[("a", "x\"y")]),
                counter: single(3.0),
                ..Metric::default()
            }],
        ),
        family(
            "g",
            1,
            vec![Metric {
                gauge: single(-2.5),
                ..Metric::default()
            }],
        ),
        family(
            "s",
            2,
            vec![Metric {
                label: labels(&[("k", "v")]),
                summary: Some(Summary {
                    sample_count: 4,
                    sample_sum: 10.0,
                    quantile: vec![Quantile {
                        quantile: 0.5,
                        value: 2.0,
                    }],
                }),
                ..Metric::default()
            }],
        ),
        family(
            "u",
            3,
            vec![Metric {
                untyped: single(7.0),
                ..Metric::default()
            }],
        ),
        family(
            "h",
            4,
            vec![Metric {
                histogram: Some(Histogram {
                    sample_count: 5,
                    sample_sum: 6.5,
                    bucket: vec![
                        Bucket {
                            cumulative_count: 2,
                            upper_bound: 0.5,
                        },
                        Bucket {
                            cumulative_count: 4,
                            upper_bound: 1.0,
                        },
                    ],
                    ..Histogram::default()
                }),
                ..Metric::default()
            }],
        ),
    ]);
    let text = "# TYPE c_total counter\nc_total{a=\"x\\\"y\"} 3\n# TYPE g gauge\ng -2.5\n\
        # TYPE s summary\ns{k=\"v\",quantile=\"0.5\"} 2\ns_sum{k=\"v\"} 10\ns_count{k=\"v\"} 4\n\
        # TYPE u untyped\nu 7\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\nh_bucket{le=\"1\"} 4\n\
        h_bucket{le=\"+Inf\"} 5\nh_sum 6.5\nh_count 5\n";
    let got = match parse(&body) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let want = match body::parse(text) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(flat(&got), flat(&want));
    assert_eq!(got[0].help.as_deref(), Some("c_total help"));
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    let native_only = delimited(&[family(
        "n",
        4,
        vec![Metric {
            histogram: Some(Histogram {
                sample_count: 1,
                sample_sum: 1.0,
                bucket: vec![],
                schema: Some(3),
                ..Histogram::default()
            }),
            ..Metric::default()
        }],
    )]);
    let twice = delimited(&[
        family(
            "g",
            1,
            vec![Metric {
                gauge: Some(Single { value: 1.0 }),
                ..Metric::default()
            }],
        ),
        family(
            "g",
            1,
            vec![Metric {
                gauge: Some(Single { value: 2.0 }),
                ..Metric::default()
            }],
        ),
    ]);
    let wrong_kind = delimited(&[family(
        "g",
        1,
        vec![Metric {
            counter: Some(Single { value: 1.0 }),
            ..Metric::default()
        }],
    )]);
    let bad_name = delimited(&[one_gauge("1x", &[])]);
    let bad_label = delimited(&[one_gauge("g", &[("a-b", "1")])]);
    // Restoring the persistence file (text) would refuse it.
    let reserved_label = delimited(&[one_gauge("g", &[("__x", "1")])]);
    let gauge_histogram = delimited(&[family("gh", 5, vec![])]);
    let mut truncated = twice.clone();
    truncated.truncate(5);
    let cases: &[(&[u8], &str)] = &[
        (&native_only, "native histogram"),
        (&twice, "appears twice"),
        (&wrong_kind, "does not match its type"),
        (&bad_name, "invalid metric name"),
        (&bad_label, "invalid label name"),
        (&reserved_label, "invalid label name \"__x\""),
        (&gauge_histogram, "unsupported metric type 5"),
        (&truncated, "truncated"),
        (
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            "varint",
        ),
    ];
    for (body, want) in cases {
        match parse(body) {
            Ok(f) => panic!("{want}: parsed {f:?}"),
            Err(e) => assert!(e.contains(want), "{want}: {e}"),
        }
    }
}

#[test]
fn a_timestamp_is_carried_for_the_push_check_to_refuse() {
    let body = delimited(&[family(
        "g",
        1,
        vec![Metric {
            gauge: Some(Single { value: 1.0 }),
            timestamp_ms: Some(5),
            ..Metric::default()
        }],
    )]);
    let got = parse(&body).unwrap_or_default();
    assert_eq!(got[0].samples[0].timestamp, Some(5));
}

/// A metric's own `le` or `quantile` label would stand beside the one the
/// reader adds: the push refuses it rather than put the label twice on the page.
#[test]
fn a_metric_labelled_le_or_quantile_is_refused_by_the_push() {
    let histogram = delimited(&[family(
        "h",
        4,
        vec![Metric {
            label: labels(&[("le", "1")]),
            histogram: Some(Histogram {
                sample_count: 1,
                sample_sum: 1.0,
                bucket: vec![Bucket {
                    cumulative_count: 1,
                    upper_bound: 1.0,
                }],
                ..Histogram::default()
            }),
            ..Metric::default()
        }],
    )]);
    let summary = delimited(&[family(
        "s",
        2,
        vec![Metric {
            label: labels(&[("quantile", "0.5")]),
            summary: Some(Summary {
                sample_count: 1,
                sample_sum: 1.0,
                quantile: vec![],
            }),
            ..Metric::default()
        }],
    )]);
    let key = crate::model::group::GroupKey::new("j", Vec::new());
    let Ok(key) = key else { panic!("{key:?}") };
    let cases: &[(&[u8], &str)] = &[
        (&histogram, "h_bucket has the label le twice"),
        (&summary, "s_sum must not have a quantile label"),
    ];
    for (body, want) in cases {
        let parsed = parse(body).unwrap_or_default();
        assert!(!parsed.is_empty(), "{want}: the reader took it");
        match crate::push::convert::convert(&key, &parsed) {
            Ok(_) => panic!("{want}: converted"),
            Err(e) => assert!(e.contains(want), "{want}: {e}"),
        }
    }
}

/// The fuzz target `push_protobuf` found it (2026-12-08): a HELP text with a
/// leading space went onto the page and into the persistence file as text,
/// where the space reads as the separator, so a restart changed it; a review
/// found the same of a carriage return at its end.
#[test]
fn a_help_text_reads_as_the_text_format_carries_it() {
    let mut fam = one_gauge("g", &[]);
    fam.help = " \t the help\r".into();
    let bytes = delimited(&[fam]);
    let got = parse(&bytes).unwrap_or_default();
    let text = body::parse("# HELP g  \t the help\r\n# TYPE g gauge\ng 1\n").unwrap_or_default();
    assert_eq!(
        got.first().map(|f| f.help.clone()),
        Some(Some("the help".into()))
    );
    assert_eq!(got.first().map(|f| &f.help), text.first().map(|f| &f.help));
}
