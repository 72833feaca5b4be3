//! One snapshot of the store, cut into remote-write batches.
//!
//! [`Batcher`] is an [`Encoder`] over the collection model: the store hands it
//! every family and series as a scrape's text encoder sees them, and it writes
//! the same samples Prometheus would scrape (histograms and summaries as their
//! `_bucket`, `_sum`, `_count` and quantile series) straight into remote-write
//! `TimeSeries`, with no text page in between. Only one batch is alive at a
//! time.

use super::proto::{Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest};
use crate::model::collect::{Encoder, FamilyHead, Labels, Value};
use crate::vocab::{write_float, MetricKind};
use prost::Message as _;

/// One request body, ready to send.
#[derive(Debug)]
pub struct Batch {
    /// Snappy-compressed `WriteRequest`.
    pub body: Vec<u8>,
    /// Samples it carries.
    pub samples: usize,
}

impl MetricType {
    /// The remote-write type of a family kind.
    pub fn of(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Counter => Self::Counter,
            MetricKind::Gauge => Self::Gauge,
            MetricKind::Histogram => Self::Histogram,
            MetricKind::Summary => Self::Summary,
            MetricKind::Untyped => Self::Unknown,
        }
    }
}

/// Builds batches of at most `max_samples` samples and hands each full one to
/// `emit`.
pub struct Batcher<'a, F: FnMut(Batch)> {
    external: &'a [(String, String)],
    timestamp_ms: i64,
    max_samples: usize,
    request: WriteRequest,
    encoded: Vec<u8>,
    /// Whether the current family's metadata is in `request` already.
    announced: bool,
    /// Scratch for a formatted `le` or `quantile` value.
    number: Vec<u8>,
    emit: F,
}

impl<'a, F: FnMut(Batch)> Batcher<'a, F> {
    /// A batcher stamping every sample with `timestamp_ms` and adding `external`
    /// labels to series that lack them.
    pub fn new(
        external: &'a [(String, String)],
        timestamp_ms: i64,
        max_samples: usize,
        emit: F,
    ) -> Self {
        Self {
            external,
            timestamp_ms,
            max_samples: max_samples.max(1),
            request: WriteRequest::default(),
            encoded: Vec::new(),
            announced: false,
            number: Vec::new(),
            emit,
        }
    }

    /// Add one sample: `name` + `suffix`, the series' labels, an optional
    /// `le`/`quantile` label.
    fn sample(
        &mut self,
        head: FamilyHead<'_>,
        name: (&str, &str),
        labels: Labels<'_>,
        extra: Option<(&str, f64)>,
        value: f64,
    ) {
        if !self.announced {
            self.request.metadata.push(MetricMetadata {
                r#type: MetricType::of(head.kind) as i32,
                metric_family_name: head.name.to_owned(),
                help: head.help.to_owned(),
                unit: String::new(),
            });
            self.announced = true;
        }
        let mut out: Vec<Label> = Vec::with_capacity(4 + self.external.len());
        out.push(Label {
            name: "__name__".to_owned(),
            value: [name.0, name.1].concat(),
        });
        // An empty label is the same as no label in Prometheus; dropping it
        // lets an external label of that name (instance) apply.
        out.extend(
            labels
                .pairs()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| Label {
                    name: k.to_owned(),
                    value: v.into_owned(),
                }),
        );
        if let Some((k, v)) = extra {
            self.number.clear();
            write_float(&mut self.number, v);
            out.push(Label {
                name: k.to_owned(),
                value: String::from_utf8_lossy(&self.number).into_owned(),
            });
        }
        for (k, v) in self.external {
            if !out.iter().any(|l| l.name == *k) {
                out.push(Label {
                    name: k.clone(),
                    value: v.clone(),
                });
            }
        }
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.request.timeseries.push(TimeSeries {
            labels: out,
            samples: vec![Sample {
                value,
                timestamp: self.timestamp_ms,
            }],
        });
        if self.request.timeseries.len() >= self.max_samples {
            self.flush();
        }
    }

    /// Emit what is pending as a last, smaller batch.
    pub fn flush(&mut self) {
        self.announced = false;
        if self.request.timeseries.is_empty() {
            self.request.metadata.clear();
            return;
        }
        self.encoded.clear();
        // Encoding into a Vec cannot run out of room.
        let _ = self.request.encode(&mut self.encoded);
        let samples = self.request.timeseries.len();
        self.request.timeseries.clear();
        self.request.metadata.clear();
        match snap::raw::Encoder::new().compress_vec(&self.encoded) {
            Ok(body) => (self.emit)(Batch { body, samples }),
            // Only for inputs over ~4 GiB, which a batch never is.
            Err(e) => tracing::error!(error = %e, "remote write: snappy compression failed"),
        }
    }
}

impl<F: FnMut(Batch)> Encoder for Batcher<'_, F> {
    fn family(&mut self, _head: FamilyHead<'_>) {
        self.announced = false;
    }

    fn series(&mut self, head: FamilyHead<'_>, labels: Labels<'_>, value: Value<'_>) {
        let name = head.name;
        match value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                self.sample(head, (name, ""), labels, None, v);
            }
            Value::Summary {
                quantiles,
                values,
                sum,
                count,
            } => {
                for (q, v) in quantiles.iter().zip(values) {
                    self.sample(head, (name, ""), labels, Some(("quantile", *q)), *v);
                }
                self.sample(head, (name, "_sum"), labels, None, sum);
                self.sample(head, (name, "_count"), labels, None, count as f64);
            }
            Value::Histogram {
                bounds,
                cumulative,
                sum,
            } => {
                for (i, c) in cumulative.iter().enumerate() {
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    self.sample(head, (name, "_bucket"), labels, Some(("le", le)), *c as f64);
                }
                self.sample(head, (name, "_sum"), labels, None, sum);
                let count = Value::histogram_count(cumulative) as f64;
                self.sample(head, (name, "_count"), labels, None, count);
            }
            Value::Sample { name, value } => self.sample(head, (name, ""), labels, None, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &Batch) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(&b.body).unwrap();
        WriteRequest::decode(&raw[..]).unwrap()
    }

    #[test]
    fn series_labels_metadata_and_batches() {
        let external = vec![("instance".to_owned(), "node1".to_owned())];
        let mut out = Vec::new();
        let mut b = Batcher::new(&external, 1_700_000_000_000, 3, |batch| out.push(batch));
        let h = FamilyHead {
            name: "h",
            kind: MetricKind::Histogram,
            help: "Latency.",
        };
        b.family(h);
        b.series(
            h,
            Labels::Rendered("route=\"a\""),
            Value::Histogram {
                bounds: &[1.0],
                cumulative: &[1, 2],
                sum: 3.5,
            },
        );
        let g = FamilyHead {
            name: "g",
            kind: MetricKind::Gauge,
            help: "Pushed.",
        };
        b.family(g);
        b.series(
            g,
            Labels::Rendered("instance=\"\",job=\"j\""),
            Value::Sample {
                name: "g",
                value: 7.0,
            },
        );
        b.flush();
        drop(b);
        assert_eq!(out.iter().map(|b| b.samples).collect::<Vec<_>>(), [3, 2]);
        let first = decode(&out[0]);
        let labels: Vec<(String, String)> = first.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__".to_owned(), "h_bucket".to_owned()),
                ("instance".to_owned(), "node1".to_owned()),
                ("le".to_owned(), "1".to_owned()),
                ("route".to_owned(), "a".to_owned()),
            ]
        );
        assert_eq!(first.timeseries[0].samples[0].timestamp, 1_700_000_000_000);
        assert_eq!(first.metadata.len(), 1);
        assert_eq!(first.metadata[0].r#type, MetricType::Histogram as i32);
        assert_eq!(first.metadata[0].help, "Latency.");
        let second = decode(&out[1]);
        // The histogram's rest carries its metadata again; the gauge's instance=""
        // gave way to the external label.
        assert_eq!(second.metadata.len(), 2);
        let g = &second.timeseries[1];
        assert!(g
            .labels
            .iter()
            .any(|l| l.name == "instance" && l.value == "node1"));
        assert!(g.labels.iter().any(|l| l.name == "job" && l.value == "j"));
        assert_eq!(g.samples[0].value, 7.0);
    }

    /// Oracle: the text page of the same store. Every sample line on it comes
    /// out as one time series, with the same name, labels and value.
    #[test]
    fn every_sample_of_the_page_is_written() {
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        agg.ingest(b"c:1|c|#k:v\nt:5|ms\nh:2|h\ns:x|s\ng:-1|g\nq:1|c|#k:a\"b");
        let page = agg.render_to_string();
        let mut want: Vec<String> = page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect();
        let mut batches = Vec::new();
        let mut b = Batcher::new(&[], 0, 1000, |batch| batches.push(batch));
        agg.store().collect(&mut b);
        b.flush();
        drop(b);
        let mut got = Vec::new();
        for batch in &batches {
            for ts in decode(batch).timeseries {
                let mut name = String::new();
                let mut pairs = Vec::new();
                for l in &ts.labels {
                    if l.name == "__name__" {
                        name = l.value.clone();
                    } else {
                        pairs.push((l.name.as_str(), l.value.as_str()));
                    }
                }
                // The text page writes `le`/`quantile` after the series' labels.
                pairs.sort_by_key(|(k, _)| matches!(*k, "le" | "quantile"));
                let labels = crate::vocab::label_pairs(pairs.into_iter());
                let mut line = name;
                if !labels.is_empty() {
                    line = format!("{line}{{{labels}}}");
                }
                let mut v = Vec::new();
                write_float(&mut v, ts.samples[0].value);
                got.push(format!("{line} {}", String::from_utf8_lossy(&v)));
            }
        }
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}
