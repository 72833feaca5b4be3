//! Native (sparse, exponential) histograms, with client_golang's rules, which
//! statsd_exporter (0.23 and later) inherits:
//!
//! - the schema is the largest in -4..=8 whose growth factor `2^(2^-schema)`
//!   does not exceed `native_histogram_bucket_factor` (8 for any factor just
//!   above 1); a factor of 1 or less means no native part;
//! - bucket `i` holds `(base^(i-1), base^i]`, found from the value's binary
//!   fraction and exponent as client_golang finds it (no logarithm); values
//!   with `|v|` at most the zero threshold (2^-128) go to the zero bucket;
//!   `±Inf` go one bucket past the one holding `f64::MAX`; NaN is counted in
//!   `count` only;
//! - past `native_histogram_max_buckets` populated buckets, the resolution is
//!   halved (`schema - 1`, bucket `i` into `ceil(i / 2)`), once per
//!   observation that finds too many, down to schema -4: client_golang's
//!   only strategy when, as in statsd_exporter, no reset duration and no
//!   maximum zero threshold are set;
//! - exposition as spans and deltas, where a gap of one or two empty buckets
//!   is filled rather than opening a span.
//!
//! Counts are kept dense per sign from the lowest to the highest populated
//! index (a timer spread over 1 ms .. 10 min at schema 3 spans about 155
//! buckets), each in as few bytes as the largest needs (`Counts`). This
//! plain [`Native`] is the model; a series holds a [`SharedNative`], which
//! readers read and a sole writer updates without a lock, and which a
//! property test keeps in agreement with the model.

use crate::model::NativeOptions;

/// The default zero threshold, 2^-128 (client_golang's
/// `DefNativeHistogramZeroThreshold`): a bucket boundary in every schema.
pub const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// Lowest and highest schema.
pub const MIN_SCHEMA: i8 = NativeOptions::MIN_SCHEMA;
/// See [`MIN_SCHEMA`].
pub const MAX_SCHEMA: i8 = NativeOptions::MAX_SCHEMA;

/// `(fraction, exponent)` with `v = fraction * 2^exponent` and fraction in
/// [0.5, 1) (Go's `math.Frexp`), for a finite `v > 0`.
fn frexp(v: f64) -> (f64, i32) {
    const MANTISSA: u64 = (1 << 52) - 1;
    let (v, shift) = if v < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first.
        (v * 2f64.powi(54), -54)
    } else {
        (v, 0)
    };
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & MANTISSA) | (1022u64 << 52));
    (frac, exp + shift)
}

/// For schema 1..=8, the fractions `0.5 * 2^(j / 2^schema)`, j in
/// `0..2^schema`, computed once.
fn fraction_bounds(schema: i8) -> &'static [f64] {
    static TABLES: std::sync::OnceLock<Vec<Vec<f64>>> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        (0..=MAX_SCHEMA)
            .map(|s| {
                let n = 1u32 << s;
                (0..n)
                    .map(|j| 0.5 * (f64::from(j) / f64::from(n)).exp2())
                    .collect()
            })
            .collect()
    });
    tables
        .get(schema.max(0) as usize)
        .map_or(&[], Vec::as_slice)
}

/// The bucket index of `v > 0` (finite, or `+Inf`) at `schema`.
pub fn bucket_index(v: f64, schema: i8) -> i32 {
    let inf = v.is_infinite();
    let (frac, exp) = frexp(if inf { f64::MAX } else { v });
    let key = if schema > 0 {
        // The first of the 2^schema fractions 0.5 * 2^(j / 2^schema) at or
        // above `frac` (client_golang's `nativeHistogramBounds`).
        let bounds = fraction_bounds(schema);
        let j = bounds.partition_point(|b| *b < frac) as i32;
        j + (exp - 1) * (1i32 << schema)
    } else {
        let mut key = exp;
        if frac == 0.5 {
            key -= 1;
        }
        let shift = -i32::from(schema);
        (key + (1 << shift) - 1) >> shift
    };
    key + i32::from(inf)
}

/// Dense counts stored in the fewest bytes that hold the largest: 1, 2, 4 or
/// 8 bytes each, little-endian, widened when a count outgrows its width. A
/// timer's 155 buckets take 155 bytes while no bucket passes 255.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Bytes per count: 1, 2, 4 or 8 (0 while empty).
    width: usize,
    bytes: Vec<u8>,
}

impl Counts {
    fn len(&self) -> usize {
        self.bytes.len().checked_div(self.width).unwrap_or(0)
    }

    fn get(&self, i: usize) -> u64 {
        let w = self.width;
        let mut le = [0u8; 8];
        if let (Some(src), Some(dst)) = (self.bytes.get(i * w..i * w + w), le.get_mut(..w)) {
            dst.copy_from_slice(src);
        }
        u64::from_le_bytes(le)
    }

    fn set(&mut self, i: usize, v: u64) {
        let need = match v {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        };
        if need > self.width {
            self.widen(need);
        }
        let w = self.width;
        if let Some(dst) = self.bytes.get_mut(i * w..i * w + w) {
            dst.copy_from_slice(&v.to_le_bytes()[..w]);
        }
    }

    fn widen(&mut self, width: usize) {
        let n = self.len();
        let mut bytes = Vec::with_capacity(n * width);
        for i in 0..n {
            bytes.extend_from_slice(&self.get(i).to_le_bytes()[..width]);
        }
        self.width = width;
        self.bytes = bytes;
    }

    /// `n` zero counts before the first, exactly sized.
    fn prepend(&mut self, n: usize) {
        let w = self.width.max(1);
        self.width = w;
        let mut bytes = Vec::with_capacity(self.bytes.len() + n * w);
        bytes.resize(n * w, 0);
        bytes.extend_from_slice(&self.bytes);
        self.bytes = bytes;
    }

    /// Grow to `n` counts with zeros, exactly sized.
    fn extend_to(&mut self, n: usize) {
        let w = self.width.max(1);
        self.width = w;
        if n * w > self.bytes.len() {
            self.bytes.reserve_exact(n * w - self.bytes.len());
            self.bytes.resize(n * w, 0);
        }
    }
}

/// Counts of one sign's buckets, dense from `first`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buckets {
    first: i32,
    counts: Counts,
    populated: u32,
}

impl Buckets {
    fn add(&mut self, index: i32, n: u64) {
        if self.counts.len() == 0 {
            self.first = index;
        }
        if index < self.first {
            self.counts.prepend((self.first - index) as usize);
            self.first = index;
        }
        let at = (index - self.first) as usize;
        if at >= self.counts.len() {
            self.counts.extend_to(at + 1);
        }
        let old = self.counts.get(at);
        if old == 0 {
            self.populated += 1;
        }
        self.counts.set(at, old.saturating_add(n));
    }

    /// Every bucket `i` into `ceil(i / 2)`.
    fn halve(&mut self) {
        let len = self.counts.len();
        if len == 0 {
            return;
        }
        let first = (self.first + 1) >> 1;
        let last = (self.first + len as i32) >> 1;
        let mut merged = vec![0u64; (last - first + 1) as usize];
        for k in 0..len {
            let key = self.first + k as i32;
            merged[(((key + 1) >> 1) - first) as usize] += self.counts.get(k);
        }
        let mut counts = Counts::default();
        counts.extend_to(merged.len());
        for (i, c) in merged.iter().enumerate() {
            counts.set(i, *c);
        }
        self.populated = merged.iter().filter(|c| **c > 0).count() as u32;
        self.first = first;
        self.counts = counts;
    }

    /// Populated `(index, count)` pairs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (0..self.counts.len())
            .map(|k| (self.first + k as i32, self.counts.get(k)))
            .filter(|(_, c)| *c > 0)
    }

    /// Spans and deltas of these buckets ([`spans_and_deltas`]).
    pub fn spans_and_deltas(&self, spans: &mut Vec<(i32, u32)>, deltas: &mut Vec<i64>) {
        spans_and_deltas(self.iter(), spans, deltas);
    }

    /// The first index and every count from it to the last populated one.
    fn dense(&self) -> (i32, Vec<u64>) {
        (
            self.first,
            (0..self.counts.len()).map(|k| self.counts.get(k)).collect(),
        )
    }
}

/// Spans `(offset, length)` and delta-encoded counts of populated buckets
/// `(index, count)` in ascending order, as client_golang writes them: a gap
/// of at most two buckets is filled with zeros.
pub fn spans_and_deltas(
    populated: impl Iterator<Item = (i32, u64)>,
    spans: &mut Vec<(i32, u32)>,
    deltas: &mut Vec<i64>,
) {
    spans.clear();
    deltas.clear();
    let (mut prev, mut next) = (0i64, 0i32);
    for (n, (i, count)) in populated.enumerate() {
        let gap = i - next;
        if n == 0 || gap > 2 {
            spans.push((gap, 0));
        } else {
            for _ in 0..gap {
                push_delta(spans, deltas, &mut prev, 0);
            }
        }
        push_delta(spans, deltas, &mut prev, count as i64);
        next = i + 1;
    }
}

fn push_delta(spans: &mut [(i32, u32)], deltas: &mut Vec<i64>, prev: &mut i64, count: i64) {
    if let Some(last) = spans.last_mut() {
        last.1 += 1;
    }
    deltas.push(count - *prev);
    *prev = count;
}

/// One series' native histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Native {
    schema: i8,
    max_buckets: u32,
    count: u64,
    zero_count: u64,
    positive: Buckets,
    negative: Buckets,
}

impl Native {
    /// An empty histogram at `schema`, halving past `max_buckets` populated
    /// buckets (0: no limit).
    pub fn new(schema: i8, max_buckets: u32) -> Self {
        Self::from_parts(
            schema.clamp(MIN_SCHEMA, MAX_SCHEMA),
            max_buckets,
            0,
            0,
            Buckets::default(),
            Buckets::default(),
        )
    }

    /// Observe `v`, `n` times.
    pub fn observe(&mut self, v: f64, n: u64) {
        self.count += n;
        if v.is_nan() {
            return;
        }
        if v.abs() <= ZERO_THRESHOLD {
            self.zero_count += n;
        } else {
            let side = if v > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            };
            side.add(bucket_index(v.abs(), self.schema), n);
        }
        // client_golang checks after every observation but NaN, and halves
        // once while over the limit; a weighted sample stands for `n` of them.
        for _ in 0..n.min(16) {
            if !self.over_limit() || self.schema == MIN_SCHEMA {
                break;
            }
            self.schema -= 1;
            self.positive.halve();
            self.negative.halve();
        }
    }

    /// More populated buckets than the limit allows.
    pub fn over_limit(&self) -> bool {
        self.max_buckets != 0 && self.populated() > self.max_buckets
    }

    /// A histogram in the given state (what a shared buffer holds).
    fn from_parts(
        schema: i8,
        max_buckets: u32,
        count: u64,
        zero_count: u64,
        positive: Buckets,
        negative: Buckets,
    ) -> Self {
        Self {
            schema,
            max_buckets,
            count,
            zero_count,
            positive,
            negative,
        }
    }

    /// Populated buckets of both signs.
    pub fn populated(&self) -> u32 {
        self.positive.populated + self.negative.populated
    }

    /// The current schema.
    pub fn schema(&self) -> i8 {
        self.schema
    }

    /// Observations, NaN included.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Observations in the zero bucket.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Buckets above zero.
    pub fn positive(&self) -> &Buckets {
        &self.positive
    }

    /// Buckets below zero (by `|v|`).
    pub fn negative(&self) -> &Buckets {
        &self.negative
    }
}

mod shared;
pub use shared::SharedNative;

#[cfg(test)]
mod tests;
