//! The protobuf exposition: `io.prometheus.client.MetricFamily` messages,
//! each preceded by its length as a varint (`encoding=delimited`), the format
//! Prometheus asks for first when it scrapes native histograms.
//!
//! Written by hand over the collection model, as the text encoder is: nothing
//! is allocated per series (one `Metric` is built in a reused scratch buffer).
//! A page is streamed in chunks, and a delimited message needs its length
//! before its bytes, so each chunk holds whole messages: a family whose series
//! span several chunks is sent as several `MetricFamily` messages of the same
//! name, each with the same HELP and type (Prometheus reads each message on its
//! own; only series must be unique). A family with no series is not sent, as
//! client_golang sends none.
//!
//! Field numbers are those of `io/prometheus/client/metrics.proto`
//! (prometheus/client_model); the histogram omits its `+Inf` bucket, which
//! `sample_count` stands for, as client_golang writes it.

use crate::model::collect::{Encoder, FamilyHead, Labels, NativeValue, Value};
use crate::model::wire::{put_key, put_varint, FIXED64, LEN, VARINT};
use crate::vocab::MetricKind;

/// The content type of the delimited protobuf exposition.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Only promstatsd's own metrics (`?collect[]=self`), into `out`.
pub fn render_self(store: &crate::store::Store, out: &mut Vec<u8>) {
    let mut enc = ProtoEncoder::new(out);
    for f in &store.self_families() {
        f.encode(&mut enc);
    }
    enc.finish();
}

/// `MetricFamily` fields.
mod family {
    pub const NAME: u32 = 1;
    pub const HELP: u32 = 2;
    pub const TYPE: u32 = 3;
    pub const METRIC: u32 = 4;
}

/// `Metric` fields.
mod metric {
    pub const LABEL: u32 = 1;
    pub const GAUGE: u32 = 2;
    pub const COUNTER: u32 = 3;
    pub const SUMMARY: u32 = 4;
    pub const UNTYPED: u32 = 5;
    pub const HISTOGRAM: u32 = 7;
}

/// `MetricType` values.
fn type_value(kind: MetricKind) -> u64 {
    match kind {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Summary => 2,
        MetricKind::Untyped => 3,
        MetricKind::Histogram => 4,
    }
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn double_field(out: &mut Vec<u8>, field: u32, v: f64) {
    put_key(out, field, FIXED64);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn uint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, VARINT);
    put_varint(out, v);
}

/// The protobuf exposition as an [`Encoder`], appending delimited
/// `MetricFamily` messages to a buffer.
#[derive(Debug)]
pub struct ProtoEncoder<'o> {
    out: &'o mut Vec<u8>,
    /// The open family's fields so far (name, HELP, type, metrics); empty
    /// when no family is open.
    family: Vec<u8>,
    /// The open family's name and whether it holds a metric yet.
    name: String,
    metrics: usize,
    /// Scratch: one `Metric`, the value message inside it, one label pair.
    metric: Vec<u8>,
    inner: Vec<u8>,
    pair: Vec<u8>,
    /// A pushed summary or histogram being gathered from its samples.
    pushed: Pushed,
}

impl<'o> ProtoEncoder<'o> {
    /// An encoder appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Self {
            out,
            family: Vec::new(),
            name: String::new(),
            metrics: 0,
            metric: Vec::new(),
            inner: Vec::new(),
            pair: Vec::new(),
            pushed: Pushed::default(),
        }
    }

    /// Bytes written or waiting in the open family.
    pub fn written(&self) -> usize {
        self.out.len() + self.family.len()
    }

    /// Send the open family (call at the end of every chunk).
    pub fn finish(mut self) {
        self.close();
    }

    /// Open `head`'s family unless it is the open one.
    fn open(&mut self, head: FamilyHead<'_>) {
        if !self.family.is_empty() && self.name == head.name {
            return;
        }
        self.close();
        self.name.clear();
        self.name.push_str(head.name);
        bytes_field(&mut self.family, family::NAME, head.name.as_bytes());
        if !head.help.is_empty() {
            bytes_field(&mut self.family, family::HELP, head.help.as_bytes());
        }
        uint_field(&mut self.family, family::TYPE, type_value(head.kind));
    }

    /// Write the open family, delimited, if it holds a metric.
    fn close(&mut self) {
        self.flush_pushed();
        if self.metrics > 0 {
            put_varint(self.out, self.family.len() as u64);
            self.out.extend_from_slice(&self.family);
        }
        self.family.clear();
        self.metrics = 0;
    }

    /// Add `Metric { label..., <field> = inner }` to the open family.
    fn push_metric<'l>(
        &mut self,
        labels: impl Iterator<Item = (&'l str, std::borrow::Cow<'l, str>)>,
        field: u32,
    ) {
        self.metric.clear();
        for (k, v) in labels {
            self.pair.clear();
            bytes_field(&mut self.pair, 1, k.as_bytes());
            bytes_field(&mut self.pair, 2, v.as_bytes());
            bytes_field(&mut self.metric, metric::LABEL, &self.pair);
        }
        bytes_field(&mut self.metric, field, &self.inner);
        bytes_field(&mut self.family, family::METRIC, &self.metric);
        self.metrics += 1;
    }

    fn flush_pushed(&mut self) {
        let Some((labels, field)) = self.pushed.take(&mut self.inner) else {
            return;
        };
        let pairs = labels.iter().map(|(k, v)| (k.as_str(), v.as_str().into()));
        self.push_metric(pairs, field);
    }
}

impl Encoder for ProtoEncoder<'_> {
    fn family(&mut self, head: FamilyHead<'_>) {
        self.open(head);
    }

    fn series(&mut self, head: FamilyHead<'_>, labels: Labels<'_>, value: Value<'_>) {
        self.open(head);
        self.inner.clear();
        let field = match value {
            Value::Counter(v) => {
                double_field(&mut self.inner, 1, v);
                metric::COUNTER
            }
            Value::Gauge(v) => {
                double_field(&mut self.inner, 1, v);
                metric::GAUGE
            }
            Value::Untyped(v) => {
                double_field(&mut self.inner, 1, v);
                metric::UNTYPED
            }
            Value::Summary {
                quantiles,
                values,
                sum,
                count,
            } => {
                summary(
                    &mut self.inner,
                    count,
                    sum,
                    quantiles.iter().copied().zip(values.iter().copied()),
                );
                metric::SUMMARY
            }
            Value::Histogram {
                bounds,
                cumulative,
                sum,
                native,
            } => {
                let count = native.map_or(Value::histogram_count(cumulative), |n| n.count);
                let buckets = bounds
                    .iter()
                    .copied()
                    .zip(cumulative.iter().map(|c| *c as f64));
                histogram(&mut self.inner, count, sum, buckets);
                if let Some(n) = native {
                    native_fields(&mut self.inner, &n, &mut self.pair);
                }
                metric::HISTOGRAM
            }
            Value::Sample { name, value } => {
                self.pushed_sample(head, labels, name, value);
                return;
            }
        };
        self.push_metric(labels.pairs(), field);
    }
}

impl ProtoEncoder<'_> {
    /// A pushed sample: a counter, gauge or untyped sample is a metric of its
    /// own; a summary's or histogram's samples are gathered, by labels, into
    /// one metric (a push lists a series' samples together).
    fn pushed_sample(&mut self, head: FamilyHead<'_>, labels: Labels<'_>, name: &str, value: f64) {
        let field = match head.kind {
            MetricKind::Counter => metric::COUNTER,
            MetricKind::Gauge => metric::GAUGE,
            MetricKind::Untyped => metric::UNTYPED,
            MetricKind::Summary | MetricKind::Histogram => {
                let suffix = name.strip_prefix(head.name).unwrap_or("");
                let mut key = None;
                let rest: Vec<(String, String)> = labels
                    .pairs()
                    .filter_map(|(k, v)| match k {
                        "le" | "quantile" => {
                            key = label_float(&v);
                            None
                        }
                        _ => Some((k.to_owned(), v.into_owned())),
                    })
                    .collect();
                if !self.pushed.continues(head.kind, &rest) {
                    self.flush_pushed();
                    self.pushed.start(head.kind, rest);
                }
                self.pushed.add(suffix, key, value);
                return;
            }
        };
        self.inner.clear();
        double_field(&mut self.inner, 1, value);
        self.push_metric(labels.pairs(), field);
    }
}

/// An `le` or `quantile` label's value as a number.
fn label_float(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => v.parse().ok(),
    }
}

/// `Summary { sample_count = 1, sample_sum = 2, quantile = 3 }`.
fn summary(out: &mut Vec<u8>, count: u64, sum: f64, quantiles: impl Iterator<Item = (f64, f64)>) {
    uint_field(out, 1, count);
    double_field(out, 2, sum);
    let mut q = Vec::with_capacity(18);
    for (quantile, v) in quantiles {
        q.clear();
        double_field(&mut q, 1, quantile);
        double_field(&mut q, 2, v);
        bytes_field(out, 3, &q);
    }
}

/// `Histogram { sample_count = 1, sample_sum = 2, bucket = 3 }`, each
/// `Bucket { cumulative_count = 1, upper_bound = 2 }`; no `+Inf` bucket.
fn histogram(out: &mut Vec<u8>, count: u64, sum: f64, buckets: impl Iterator<Item = (f64, f64)>) {
    uint_field(out, 1, count);
    double_field(out, 2, sum);
    let mut b = Vec::with_capacity(20);
    for (le, cumulative) in buckets {
        if le == f64::INFINITY {
            continue;
        }
        b.clear();
        uint_field(&mut b, 1, cumulative as u64);
        double_field(&mut b, 2, le);
        bytes_field(out, 3, &b);
    }
}

/// `n` zigzag-encoded, as `sint32` and `sint64` fields are.
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The native fields of a `Histogram`: `schema = 5` (sint32),
/// `zero_threshold = 6`, `zero_count = 7`, `negative_span = 9`,
/// `negative_delta = 10` (sint64, packed), `positive_span = 12`,
/// `positive_delta = 13`; each `BucketSpan { offset = 1 (sint32), length = 2 }`.
fn native_fields(out: &mut Vec<u8>, n: &NativeValue<'_>, scratch: &mut Vec<u8>) {
    uint_field(out, 5, zigzag(i64::from(n.schema)));
    double_field(out, 6, n.zero_threshold);
    uint_field(out, 7, n.zero_count);
    for (spans_field, (spans, deltas)) in [(9, n.negative), (12, n.positive)] {
        for &(offset, length) in spans {
            scratch.clear();
            uint_field(scratch, 1, zigzag(i64::from(offset)));
            uint_field(scratch, 2, u64::from(length));
            bytes_field(out, spans_field, scratch);
        }
        if !deltas.is_empty() {
            scratch.clear();
            for d in deltas {
                put_varint(scratch, zigzag(*d));
            }
            bytes_field(out, spans_field + 1, scratch);
        }
    }
}

/// A pushed summary or histogram series, gathered from its samples.
#[derive(Debug, Default)]
struct Pushed {
    kind: Option<MetricKind>,
    labels: Vec<(String, String)>,
    count: f64,
    sum: f64,
    /// `(le or quantile, value)`.
    points: Vec<(f64, f64)>,
}

impl Pushed {
    fn continues(&self, kind: MetricKind, labels: &[(String, String)]) -> bool {
        self.kind == Some(kind) && self.labels == labels
    }

    fn start(&mut self, kind: MetricKind, labels: Vec<(String, String)>) {
        *self = Self {
            kind: Some(kind),
            labels,
            ..Self::default()
        };
    }

    fn add(&mut self, suffix: &str, key: Option<f64>, value: f64) {
        match (suffix, key) {
            ("_sum", _) => self.sum = value,
            ("_count", _) => self.count = value,
            ("_bucket" | "", Some(k)) => self.points.push((k, value)),
            _ => {}
        }
    }

    /// The gathered series as a value message in `inner`, with its labels
    /// and `Metric` field; `None` when nothing is gathered.
    fn take(&mut self, inner: &mut Vec<u8>) -> Option<(Vec<(String, String)>, u32)> {
        let kind = self.kind.take()?;
        inner.clear();
        let count = self.count as u64;
        let points = std::mem::take(&mut self.points);
        let field = if kind == MetricKind::Summary {
            summary(inner, count, self.sum, points.into_iter());
            metric::SUMMARY
        } else {
            histogram(inner, count, self.sum, points.into_iter());
            metric::HISTOGRAM
        };
        Some((std::mem::take(&mut self.labels), field))
    }
}

#[cfg(test)]
mod tests;
