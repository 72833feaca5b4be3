//! One snapshot of the store, cut into remote-write batches.
//!
//! [`Batcher`] is an [`Encoder`] over the collection model: the store hands it
//! every family and series as a scrape's text encoder sees them, and it writes
//! the same samples Prometheus would scrape (histograms and summaries as their
//! `_bucket`, `_sum`, `_count` and quantile series) straight into remote-write
//! `TimeSeries`, with no text page in between. Only one batch is alive at a
//! time.

use super::proto::{BucketSpan, Histogram, Label, MetricMetadata, MetricType, TimeSeries};
use crate::model::collect::{Encoder, FamilyHead, Labels, NativeValue, Value};
use crate::model::wire::{put_key, put_varint, varint_len, FIXED64, LEN, VARINT};
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

/// Bytes of a length-delimited field of one-byte key holding `len` bytes.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of a string field (proto3: an empty string is not written).
fn string_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(s.len())
    }
}

fn put_string(out: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        put_key(out, tag, LEN);
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

/// Builds batches of at most `max_samples` samples and hands each full one to
/// `emit`.
///
/// Each sample's `TimeSeries` is written straight into the request's bytes
/// (the wire format of `prompb.TimeSeries`, as prost writes it): its labels are
/// copied into one reused buffer and sorted there, so a series costs no
/// allocation once the buffers have grown. Metadata, one per family per
/// request, goes through prost.
pub struct Batcher<'a, F: FnMut(Batch)> {
    external: &'a [(String, String)],
    timestamp_ms: i64,
    max_samples: usize,
    /// `WriteRequest.timeseries` fields written so far.
    encoded: Vec<u8>,
    samples: usize,
    metadata: Vec<MetricMetadata>,
    /// Whether the current family's metadata is in `metadata` already.
    announced: bool,
    /// The current sample's label names and values, one after the other,
    /// and their (name, value) ranges in it.
    text: String,
    ranges: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Scratch for a formatted `le` or `quantile` value.
    number: Vec<u8>,
    /// Whether histograms' native buckets go out as native histogram samples.
    native: bool,
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
            encoded: Vec::new(),
            samples: 0,
            metadata: Vec::new(),
            announced: false,
            text: String::new(),
            ranges: Vec::new(),
            number: Vec::new(),
            native: false,
            emit,
        }
    }

    /// Send histograms' native buckets too, as native histogram samples
    /// (remote write 1.0 `TimeSeries.histograms`), beside the classic series.
    pub fn with_native_histograms(mut self, on: bool) -> Self {
        self.native = on;
        self
    }

    /// The family's metadata, once per family per request.
    fn announce(&mut self, head: FamilyHead<'_>) {
        if !self.announced {
            self.metadata.push(MetricMetadata {
                r#type: MetricType::of(head.kind) as i32,
                metric_family_name: head.name.to_owned(),
                help: head.help.to_owned(),
                unit: String::new(),
            });
            self.announced = true;
        }
    }

    /// One native histogram sample under the family's own name. Rare (one
    /// per histogram series), so it goes through prost.
    fn native_histogram(
        &mut self,
        head: FamilyHead<'_>,
        labels: Labels<'_>,
        n: &NativeValue<'_>,
        sum: f64,
    ) {
        self.announce(head);
        self.labels((head.name, ""), labels, None);
        let text = &self.text;
        let part = |r: &std::ops::Range<usize>| text.get(r.clone()).unwrap_or_default().to_owned();
        let spans = |s: &[(i32, u32)]| {
            s.iter()
                .map(|&(offset, length)| BucketSpan { offset, length })
                .collect()
        };
        let series = TimeSeries {
            labels: self
                .ranges
                .iter()
                .map(|(k, v)| Label {
                    name: part(k),
                    value: part(v),
                })
                .collect(),
            samples: Vec::new(),
            histograms: vec![Histogram {
                count_int: n.count,
                sum,
                schema: i32::from(n.schema),
                zero_threshold: n.zero_threshold,
                zero_count_int: n.zero_count,
                negative_spans: spans(n.negative.0),
                negative_deltas: n.negative.1.to_vec(),
                positive_spans: spans(n.positive.0),
                positive_deltas: n.positive.1.to_vec(),
                timestamp: self.timestamp_ms,
            }],
        };
        put_key(&mut self.encoded, 1, LEN);
        put_varint(&mut self.encoded, series.encoded_len() as u64);
        // Encoding into a Vec cannot run out of room.
        let _ = series.encode(&mut self.encoded);
        self.samples += 1;
        if self.samples >= self.max_samples {
            self.flush();
        }
    }

    /// Note a label for the current sample.
    fn label(&mut self, name: &str, value: impl FnOnce(&mut String)) {
        let n = self.text.len();
        self.text.push_str(name);
        let v = self.text.len();
        value(&mut self.text);
        self.ranges.push((n..v, v..self.text.len()));
    }

    /// Collect the current sample's labels, sorted by name: `__name__`, the
    /// series' labels with a value (an empty label is the same as no label in
    /// Prometheus; dropping it lets an external label of that name apply), an
    /// optional `le`/`quantile`, then the external labels it lacks.
    fn labels(&mut self, name: (&str, &str), labels: Labels<'_>, extra: Option<(&str, f64)>) {
        self.text.clear();
        self.ranges.clear();
        self.label("__name__", |t| {
            t.push_str(name.0);
            t.push_str(name.1);
        });
        for (k, v) in labels.pairs().filter(|(_, v)| !v.is_empty()) {
            self.label(k, |t| t.push_str(&v));
        }
        if let Some((k, v)) = extra {
            let mut number = std::mem::take(&mut self.number);
            number.clear();
            write_float(&mut number, v);
            // `write_float` writes ASCII only.
            self.label(k, |t| {
                t.push_str(std::str::from_utf8(&number).unwrap_or("NaN"))
            });
            self.number = number;
        }
        for (k, v) in self.external {
            let text = &self.text;
            if !self
                .ranges
                .iter()
                .any(|(n, _)| text.get(n.clone()) == Some(k))
            {
                self.label(k, |t| t.push_str(v));
            }
        }
        let text = &self.text;
        self.ranges
            .sort_unstable_by(|a, b| text.get(a.0.clone()).cmp(&text.get(b.0.clone())));
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
        self.announce(head);
        self.labels(name, labels, extra);
        self.write_series(value);
        self.samples += 1;
        if self.samples >= self.max_samples {
            self.flush();
        }
    }

    /// Write the current labels and one sample as a `timeseries` field.
    fn write_series(&mut self, value: f64) {
        let text = &self.text;
        let part = |r: &std::ops::Range<usize>| text.get(r.clone()).unwrap_or_default();
        let label_len = |(n, v): &(std::ops::Range<usize>, std::ops::Range<usize>)| {
            string_len(part(n)) + string_len(part(v))
        };
        // prost leaves proto3 defaults (0.0, 0) out; so does this.
        let ts = self.timestamp_ms;
        let sample_len = if value.to_bits() == 0 { 0 } else { 9 }
            + if ts == 0 {
                0
            } else {
                1 + varint_len(ts as u64)
            };
        let series_len = self
            .ranges
            .iter()
            .map(|l| field_len(label_len(l)))
            .sum::<usize>()
            + field_len(sample_len);
        let out = &mut self.encoded;
        put_key(out, 1, LEN);
        put_varint(out, series_len as u64);
        for l in &self.ranges {
            put_key(out, 1, LEN);
            put_varint(out, label_len(l) as u64);
            put_string(out, 1, part(&l.0));
            put_string(out, 2, part(&l.1));
        }
        put_key(out, 2, LEN);
        put_varint(out, sample_len as u64);
        if value.to_bits() != 0 {
            put_key(out, 1, FIXED64);
            out.extend_from_slice(&value.to_le_bytes());
        }
        if ts != 0 {
            put_key(out, 2, VARINT);
            put_varint(out, ts as u64);
        }
    }

    /// Emit what is pending as a last, smaller batch.
    pub fn flush(&mut self) {
        self.announced = false;
        if self.samples == 0 {
            self.metadata.clear();
            return;
        }
        for m in self.metadata.drain(..) {
            put_key(&mut self.encoded, 3, LEN);
            put_varint(&mut self.encoded, m.encoded_len() as u64);
            // Encoding into a Vec cannot run out of room.
            let _ = m.encode(&mut self.encoded);
        }
        let samples = std::mem::take(&mut self.samples);
        let compressed = snap::raw::Encoder::new().compress_vec(&self.encoded);
        self.encoded.clear();
        match compressed {
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
        match value {
            Value::Sample { name, value } => self.sample(head, (name, ""), labels, None, value),
            v => {
                v.for_each_sample(|suffix, extra, x| {
                    self.sample(head, (head.name, suffix), labels, extra, x);
                });
                if let Value::Histogram {
                    native: Some(n),
                    sum,
                    ..
                } = v
                {
                    if self.native {
                        self.native_histogram(head, labels, &n, sum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::WriteRequest;
    use super::*;

    fn decode(b: &Batch) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(&b.body).unwrap();
        WriteRequest::decode(&raw[..]).unwrap()
    }

    #[test]
    fn native_histograms_go_out_only_when_asked_beside_the_classic_series() {
        let native = NativeValue {
            schema: 3,
            zero_threshold: 1e-9,
            count: 3,
            zero_count: 1,
            positive: (&[(-34, 1), (29, 1)], &[1, 0]),
            negative: (&[], &[]),
        };
        let h = FamilyHead {
            name: "lat",
            kind: MetricKind::Histogram,
            help: "",
        };
        for on in [false, true] {
            let mut out = Vec::new();
            let mut b =
                Batcher::new(&[], 5, 100, |batch| out.push(batch)).with_native_histograms(on);
            b.family(h);
            let value = Value::Histogram {
                bounds: &[1.0],
                cumulative: &[2, 2],
                sum: 0.75,
                native: Some(native),
            };
            b.series(h, Labels::Rendered("route=\"a\""), value);
            b.flush();
            drop(b);
            let req = decode(&out[0]);
            let natives: Vec<_> = req
                .timeseries
                .iter()
                .filter(|t| !t.histograms.is_empty())
                .collect();
            // _bucket x2, _sum, _count always.
            assert_eq!(req.timeseries.len(), 4 + usize::from(on), "native {on}");
            assert_eq!(out[0].samples, 4 + usize::from(on));
            if !on {
                assert!(natives.is_empty());
                continue;
            }
            let t = natives[0];
            let names: Vec<(&str, &str)> = t
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            assert_eq!(names, [("__name__", "lat"), ("route", "a")]);
            let g = &t.histograms[0];
            assert_eq!(
                (g.count_int, g.sum, g.schema, g.zero_count_int, g.timestamp),
                (3, 0.75, 3, 1, 5)
            );
            let spans: Vec<(i32, u32)> = g
                .positive_spans
                .iter()
                .map(|s| (s.offset, s.length))
                .collect();
            assert_eq!(spans, [(-34, 1), (29, 1)]);
            assert_eq!(g.positive_deltas, [1, 0]);
        }
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
                native: None,
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

    /// Oracle: prost. Decoding a batch and encoding it again with prost gives
    /// the same bytes, so the hand-written `TimeSeries` are exactly the wire
    /// format prost would write (field order, lengths, defaults left out).
    #[test]
    fn the_hand_written_wire_format_is_what_prost_writes() {
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        agg.ingest(b"c:1|c|#k:v\nz:0|g\nt:5|ms\nh:2|h\ns:x|s\ng:-1|g\nq:1|c|#k:a\"b,e:");
        let external = vec![("instance".to_owned(), "node\u{e9}1".to_owned())];
        for ts in [0, 1_700_000_000_000] {
            let mut batches = Vec::new();
            let mut b = Batcher::new(&external, ts, 7, |batch| batches.push(batch));
            agg.store().collect(&mut b);
            b.flush();
            drop(b);
            assert!(batches.len() > 3);
            for batch in &batches {
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&batch.body)
                    .unwrap();
                let again = WriteRequest::decode(&raw[..]).unwrap().encode_to_vec();
                assert_eq!(raw, again);
            }
        }
    }
}
