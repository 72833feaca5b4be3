//! Model: what the stages agree on, and how every output sees the data.
//!
//! Owns: the contract between mapper and store (a [`Mapping`], the observer
//! type, summary options, default buckets and quantiles, the bucket cap) and
//! the collection model ([`collect`]): the borrowed view of families, series
//! and values that every source yields and every encoder writes.
//!
//! Pushed groups' keys and families ([`group`]) are the same kind of contract,
//! between the push API and the store.
//!
//! May import: vocab.

pub mod collect;
pub mod group;
#[cfg(test)]
pub mod proto_oracle;
pub mod wire;

use std::sync::Arc;

/// statsd_exporter's default histogram buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// statsd_exporter's default summary objectives: (quantile, allowed error).
pub const DEFAULT_QUANTILES: [(f64, f64); 3] = [(0.5, 0.05), (0.9, 0.01), (0.99, 0.001)];

/// How observations (`ms`, `h`, `d`) are aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ObserverType {
    /// Quantiles over a sliding window, plus `_sum` and `_count` (the default, as
    /// statsd_exporter).
    #[default]
    Summary,
    /// Cumulative buckets, plus `_sum` and `_count`.
    Histogram,
}

/// The Prometheus identity of a StatsD metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// The family name, already valid in the Prometheus charset.
    pub name: String,
    /// Labels, sorted by name, names unique and valid.
    pub labels: Vec<(String, String)>,
    /// HELP text.
    pub help: Arc<str>,
    /// Observer aggregation for `ms`/`h`/`d`.
    pub observer: ObserverType,
    /// Histogram bucket upper bounds, ascending and finite.
    pub buckets: Arc<[f64]>,
    /// Summary window and quantiles.
    pub summary: Arc<SummaryOptions>,
    /// Seconds without an update after which the series is removed; 0 = never.
    pub ttl_secs: u64,
    /// Multiply every value by this.
    pub scale: Option<f64>,
    /// A histogram's native buckets beside its classic ones (`None`: classic
    /// only).
    pub native: Option<NativeOptions>,
}

/// A histogram family's native (sparse, exponential) buckets: statsd_exporter's
/// `native_histogram_bucket_factor`, as the schema client_golang picks for it,
/// and `native_histogram_max_buckets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NativeOptions {
    /// Resolution: bucket boundaries are powers of `2^(2^-schema)`, -4..=8.
    pub schema: i8,
    /// Most populated buckets before the resolution is halved (0: no limit).
    pub max_buckets: u32,
}

impl NativeOptions {
    /// statsd_exporter's defaults: bucket factor 1.1 (schema 3), 256 buckets.
    pub const DEFAULT: Self = Self {
        schema: 3,
        max_buckets: 256,
    };

    /// Lowest schema.
    pub const MIN_SCHEMA: i8 = -4;
    /// Highest schema.
    pub const MAX_SCHEMA: i8 = 8;

    /// The schema for a bucket factor, as client_golang's `pickSchema`: the
    /// largest in -4..=8 whose growth factor `2^(2^-schema)` does not exceed
    /// `factor` (8 for any factor just above 1); `None`, no native buckets,
    /// for a factor of 1 or less.
    pub fn schema_for(factor: f64) -> Option<i8> {
        if factor.is_nan() || factor <= 1.0 {
            return None;
        }
        let floor = factor.log2().log2().floor();
        Some(if floor <= -8.0 {
            Self::MAX_SCHEMA
        } else if floor >= 4.0 {
            Self::MIN_SCHEMA
        } else {
            -(floor as i8)
        })
    }
}

/// Most histogram bounds a family may have: a histogram series keeps one cell
/// per bound, one for `+Inf` and one for the sum, and counts them in a `u16`.
pub const MAX_HISTOGRAM_BUCKETS: usize = u16::MAX as usize - 2;

/// Summary settings shared by a family.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryOptions {
    /// Quantiles to report, each in [0, 1].
    pub quantiles: Vec<f64>,
    /// Window length in seconds.
    pub max_age_secs: u64,
    /// Number of slots the window is split into.
    pub age_buckets: u32,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        Self {
            quantiles: DEFAULT_QUANTILES.iter().map(|q| q.0).collect(),
            max_age_secs: 600,
            age_buckets: 5,
        }
    }
}

impl SummaryOptions {
    /// Length of one slot of the window, in seconds (at least 1).
    pub fn slot_secs(&self) -> u64 {
        (self.max_age_secs / u64::from(self.age_buckets.max(1))).max(1)
    }
}
