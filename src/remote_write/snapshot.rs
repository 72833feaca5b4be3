//! One snapshot of the page, cut into remote-write batches.
//!
//! The snapshot is the page itself: rendered as a scrape renders it, then read
//! family by family with the strict text parser, so remote write sends exactly
//! what Prometheus would scrape (histograms and summaries as their `_bucket`,
//! `_sum`, `_count` and quantile series) and there is one renderer to keep right.
//! Only one family's parse and one batch are alive at a time besides the page.

use super::proto::{Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest};
use crate::exposition::textparse;
use prost::Message as _;

/// One request body, ready to send.
#[derive(Debug)]
pub struct Batch {
    /// Snappy-compressed `WriteRequest`.
    pub body: Vec<u8>,
    /// Samples it carries.
    pub samples: usize,
}

/// Split a page into its families: each starts at a `# HELP` line, or at a
/// `# TYPE` line that no `# HELP` line precedes.
pub fn families(page: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = page;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        let mut prev_help = false;
        let mut first = true;
        for line in rest.split_inclusive('\n') {
            let help = line.starts_with("# HELP ");
            let starts = help || (line.starts_with("# TYPE ") && !prev_help);
            if starts && !first {
                break;
            }
            first = false;
            prev_help = help;
            end += line.len();
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Builds batches of at most `max_samples` samples.
pub struct Batcher<'a> {
    external: &'a [(String, String)],
    timestamp_ms: i64,
    max_samples: usize,
    request: WriteRequest,
    encoded: Vec<u8>,
    /// Families the page had that the text parser refused (a bug if ever non-zero).
    pub unparsable: usize,
}

impl<'a> Batcher<'a> {
    /// A batcher stamping every sample with `timestamp_ms` and adding `external`
    /// labels to series that lack them.
    pub fn new(external: &'a [(String, String)], timestamp_ms: i64, max_samples: usize) -> Self {
        Self {
            external,
            timestamp_ms,
            max_samples: max_samples.max(1),
            request: WriteRequest::default(),
            encoded: Vec::new(),
            unparsable: 0,
        }
    }

    /// Add a whole page; `emit` receives each full batch.
    pub fn add_page(&mut self, page: &str, emit: &mut impl FnMut(Batch)) {
        for chunk in families(page) {
            match textparse::parse(chunk) {
                Ok(families) => {
                    for f in &families {
                        self.add_family(f, emit);
                    }
                }
                Err(e) => {
                    self.unparsable += 1;
                    tracing::debug!(error = %e, "remote write: a family did not parse; skipped");
                }
            }
        }
    }

    fn add_family(&mut self, f: &textparse::ParsedFamily<'_>, emit: &mut impl FnMut(Batch)) {
        let mut announced = false;
        for s in &f.samples {
            if !announced {
                self.request.metadata.push(MetricMetadata {
                    r#type: MetricType::from_type_word(f.kind) as i32,
                    metric_family_name: f.name.to_owned(),
                    help: f.help.as_deref().unwrap_or_default().to_owned(),
                    unit: String::new(),
                });
                announced = true;
            }
            let mut labels: Vec<Label> =
                Vec::with_capacity(s.labels.len() + 1 + self.external.len());
            labels.push(Label {
                name: "__name__".to_owned(),
                value: s.name.to_owned(),
            });
            // An empty label is the same as no label in Prometheus; dropping it
            // lets an external label of that name (instance) apply.
            labels.extend(
                s.labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| Label {
                        name: (*k).to_owned(),
                        value: v.to_string(),
                    }),
            );
            for (k, v) in self.external {
                if !labels.iter().any(|l| l.name == *k) {
                    labels.push(Label {
                        name: k.clone(),
                        value: v.clone(),
                    });
                }
            }
            labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            self.request.timeseries.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: s.value,
                    timestamp: self.timestamp_ms,
                }],
            });
            if self.request.timeseries.len() >= self.max_samples {
                self.flush(emit);
                announced = false;
            }
        }
    }

    /// Emit what is pending as a last, smaller batch.
    pub fn flush(&mut self, emit: &mut impl FnMut(Batch)) {
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
            Ok(body) => emit(Batch { body, samples }),
            // Only for inputs over ~4 GiB, which a batch never is.
            Err(e) => tracing::error!(error = %e, "remote write: snappy compression failed"),
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
    fn a_page_splits_into_its_families() {
        let page = "# HELP a A.\n# TYPE a counter\na 1\n# TYPE b gauge\nb 2\nb{x=\"1\"} 3\n# HELP c C.\n# TYPE c untyped\nc 4\n";
        let chunks: Vec<&str> = families(page).collect();
        assert_eq!(
            chunks,
            [
                "# HELP a A.\n# TYPE a counter\na 1\n",
                "# TYPE b gauge\nb 2\nb{x=\"1\"} 3\n",
                "# HELP c C.\n# TYPE c untyped\nc 4\n"
            ]
        );
        assert_eq!(families("").count(), 0);
    }

    #[test]
    fn series_labels_metadata_and_batches() {
        let page = "# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"1\",route=\"a\"} 1\nh_bucket{le=\"+Inf\",route=\"a\"} 2\nh_sum{route=\"a\"} 3.5\nh_count{route=\"a\"} 2\n\
                    # HELP g Pushed.\n# TYPE g gauge\ng{instance=\"\",job=\"j\"} 7\n";
        let external = vec![("instance".to_owned(), "node1".to_owned())];
        let mut b = Batcher::new(&external, 1_700_000_000_000, 3);
        let mut out = Vec::new();
        b.add_page(page, &mut |batch| out.push(batch));
        b.flush(&mut |batch| out.push(batch));
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

    #[test]
    fn our_own_page_converts_whole() {
        let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
        agg.ingest(b"c:1|c|#k:v\nt:5|ms\nh:2|h\ns:x|s\ng:-1|g");
        let page = agg.render_to_string();
        let expected = page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        let mut b = Batcher::new(&[], 0, 1000);
        let mut n = 0;
        b.add_page(&page, &mut |batch| n += batch.samples);
        b.flush(&mut |batch| n += batch.samples);
        assert_eq!(b.unparsable, 0);
        assert_eq!(n, expected);
    }
}
