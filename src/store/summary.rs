//! Summaries: quantiles over a sliding time window.
//!
//! statsd_exporter (through client_golang) keeps a CKMS stream per age bucket,
//! 43 KB per series. We keep, per age bucket, a log-bucketed sketch with 1 %
//! relative accuracy (the DDSketch idea): a value `v > 0` lands in bucket
//! `ceil(log_gamma(v))`, and a bucket is reported as the value with at most 1 %
//! relative error to every value in it. Each estimate is clamped to the window's
//! observed min and max, so a constant series reports its exact value. While a
//! slot has seen at most 16 observations it keeps them as they are, and a window
//! made only of such slots reports exact nearest-rank quantiles: the usual case
//! for per-task Airflow timers.
//!
//! The window is `max_age` long, split into `age_buckets` slots (statsd_exporter's
//! defaults: 10 minutes, 5 slots). An observation goes into the current slot; a
//! query merges the slots younger than `max_age`; so the quantiles cover between
//! `max_age - max_age/age_buckets` and `max_age` of history, as in client_golang.
//! `_sum` and `_count` cover all time, as in client_golang.

pub use crate::model::SummaryOptions;

/// Relative accuracy of the quantile estimates.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// A slot keeps up to this many observations exactly before it switches to buckets,
/// so low-rate series (most Airflow timers) report exact quantiles.
const EXACT_MAX: usize = 16;
/// A sketch keeps at most this many buckets per sign; beyond that the smallest
/// magnitudes are merged into the lowest kept bucket (bounded memory).
const MAX_BINS: usize = 2048;

/// A dense run of bucket counts starting at bucket index `offset`.
#[derive(Clone, Debug, Default)]
struct Bins {
    offset: i32,
    counts: Vec<u64>,
}

impl Bins {
    fn add(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        let mut index = index;
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            if grow + self.counts.len() > MAX_BINS {
                // Collapse: the smallest magnitudes share the lowest bucket.
                index = self.offset;
            } else {
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.offset = index;
            }
        }
        let pos = (index - self.offset) as usize;
        if pos >= self.counts.len() {
            if pos >= MAX_BINS {
                let last = self.counts.len() - 1;
                self.counts[last] += n;
                return;
            }
            self.counts.resize(pos + 1, 0);
        }
        self.counts[pos] += n;
    }

    fn merge_into(&self, out: &mut Bins) {
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                out.add(self.offset + i as i32, c);
            }
        }
    }
}

/// One slot's observations: exact while there are at most [`EXACT_MAX`],
/// then buckets. 40 bytes (one 48-byte allocation); the buckets, min and max
/// sit behind their own box, which a slot of few observations (the usual
/// Airflow timer) never allocates.
#[derive(Clone, Debug)]
struct Sketch {
    epoch: u64,
    /// Exact observations while `binned` is `None`.
    exact: Vec<f64>,
    binned: Option<Box<Binned>>,
}

/// A slot's observations once it has seen more than [`EXACT_MAX`].
#[derive(Clone, Debug)]
struct Binned {
    pos: Bins,
    neg: Bins,
    zero: u64,
    min: f64,
    max: f64,
}

impl Default for Binned {
    fn default() -> Self {
        Self {
            pos: Bins::default(),
            neg: Bins::default(),
            zero: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Binned {
    /// Add `v` with weight `n` to the buckets.
    fn add(&mut self, v: f64, n: u64, ln_gamma: f64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let mag = v.abs();
        if mag < MIN_MAGNITUDE {
            self.zero += n;
        } else if v > 0.0 {
            self.pos.add(bucket_index(mag, ln_gamma), n);
        } else {
            self.neg.add(bucket_index(mag, ln_gamma), n);
        }
    }

    fn count(&self) -> u64 {
        self.zero + self.pos.counts.iter().sum::<u64>() + self.neg.counts.iter().sum::<u64>()
    }
}

impl Sketch {
    fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            exact: Vec::new(),
            binned: None,
        }
    }

    fn add(&mut self, v: f64, n: u64, ln_gamma: f64) {
        if let Some(b) = &mut self.binned {
            b.add(v, n, ln_gamma);
            return;
        }
        if self.exact.len() as u64 + n <= EXACT_MAX as u64 {
            let n = n as usize;
            if self.exact.capacity() - self.exact.len() < n {
                // Grown four at a time: ten observations take 12 places, not 16.
                self.exact.reserve_exact(n.max(4));
            }
            self.exact.extend(std::iter::repeat_n(v, n));
            return;
        }
        let mut b = Box::<Binned>::default();
        for x in std::mem::take(&mut self.exact) {
            b.add(x, 1, ln_gamma);
        }
        b.add(v, n, ln_gamma);
        self.binned = Some(b);
    }

    /// Whether the slot still holds its observations exactly.
    fn is_exact(&self) -> bool {
        self.binned.is_none()
    }
}

/// Values smaller than this in magnitude count as zero.
const MIN_MAGNITUDE: f64 = 1e-12;

/// `ln((1 + a) / (1 - a))` for a = `RELATIVE_ACCURACY`, precomputed: `f64::ln` is
/// not `const`, and this runs on every observation.
const LN_GAMMA: f64 = 0.020000666706669435;

#[inline]
fn gamma_ln() -> f64 {
    LN_GAMMA
}

fn bucket_index(magnitude: f64, ln_gamma: f64) -> i32 {
    (magnitude.ln() / ln_gamma).ceil() as i32
}

fn bucket_value(index: i32, ln_gamma: f64) -> f64 {
    let gamma = ln_gamma.exp();
    2.0 * (f64::from(index) * ln_gamma).exp() / (gamma + 1.0)
}

/// The mutable state of one summary series (kept behind a per-series mutex).
#[derive(Clone, Debug)]
pub struct Summary {
    /// One sketch per age slot, allocated when the slot is first written: a
    /// series observed in one slot only (most, in a cardinality flood) costs one
    /// sketch, not `age_buckets` of them.
    slots: Box<[Option<Box<Sketch>>]>,
    sum: f64,
    count: u64,
}

impl Summary {
    /// An empty summary for these options.
    pub fn new(opts: &SummaryOptions) -> Self {
        Self {
            slots: (0..opts.age_buckets.max(1)).map(|_| None).collect(),
            sum: 0.0,
            count: 0,
        }
    }

    /// Observe `v`, `n` times, at `now` (seconds on the store clock).
    pub fn observe(&mut self, opts: &SummaryOptions, now: u64, v: f64, n: u64) {
        self.sum += v * n as f64;
        self.count += n;
        let epoch = now / opts.slot_secs();
        let len = self.slots.len() as u64;
        let Some(slot) = self.slots.get_mut((epoch % len) as usize) else {
            return;
        };
        let slot = slot.get_or_insert_with(|| Box::new(Sketch::empty(epoch)));
        if slot.epoch != epoch {
            // A new window in this slot: it starts empty (and exact) again.
            **slot = Sketch::empty(epoch);
        }
        slot.add(v, n, gamma_ln());
    }

    /// All-time sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// All-time count of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Estimate `quantiles` over the window ending at `now`, into `out` (same
    /// length). NaN when the window holds no observation, as client_golang.
    pub fn quantiles(&self, opts: &SummaryOptions, now: u64, quantiles: &[f64], out: &mut [f64]) {
        let epoch = now / opts.slot_secs();
        let len = self.slots.len() as u64;
        let live = |s: &&Sketch| s.epoch != u64::MAX && s.epoch <= epoch && epoch - s.epoch < len;
        let ln_gamma = gamma_ln();
        let live_slots = || self.slots.iter().filter_map(|s| s.as_deref()).filter(live);
        if live_slots().all(Sketch::is_exact) {
            // Exact: every live slot still holds its raw observations.
            let mut all: Vec<f64> = live_slots().flat_map(|s| s.exact.iter().copied()).collect();
            all.sort_by(f64::total_cmp);
            for (q, o) in quantiles.iter().zip(out.iter_mut()) {
                *o = match nearest_rank(*q, all.len() as u64) {
                    Some(r) => all.get(r as usize).copied().unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
            }
            return;
        }
        let mut merged = Binned::default();
        for s in live_slots() {
            for &x in &s.exact {
                merged.add(x, 1, ln_gamma);
            }
            if let Some(b) = &s.binned {
                b.pos.merge_into(&mut merged.pos);
                b.neg.merge_into(&mut merged.neg);
                merged.zero += b.zero;
                merged.min = merged.min.min(b.min);
                merged.max = merged.max.max(b.max);
            }
        }
        let total = merged.count();
        for (q, o) in quantiles.iter().zip(out.iter_mut()) {
            *o = match nearest_rank(*q, total) {
                Some(rank) => rank_value(&merged, rank, ln_gamma).clamp(merged.min, merged.max),
                None => f64::NAN,
            };
        }
    }
}

/// Nearest rank (0-based): the smallest value with at least `q·n` values at or
/// below it. `None` when there are no values.
fn nearest_rank(q: f64, n: u64) -> Option<u64> {
    if n == 0 {
        return None;
    }
    Some(((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n) - 1)
}

/// The estimated value at 0-based `rank` in ascending order.
fn rank_value(s: &Binned, rank: u64, ln_gamma: f64) -> f64 {
    let mut seen = 0u64;
    // Negative values: largest magnitude (most negative) first.
    for (i, &c) in s.neg.counts.iter().enumerate().rev() {
        seen += c;
        if seen > rank {
            return -bucket_value(s.neg.offset + i as i32, ln_gamma);
        }
    }
    seen += s.zero;
    if seen > rank {
        return 0.0;
    }
    for (i, &c) in s.pos.counts.iter().enumerate() {
        seen += c;
        if seen > rank {
            return bucket_value(s.pos.offset + i as i32, ln_gamma);
        }
    }
    s.max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &Summary, opts: &SummaryOptions, now: u64) -> Vec<f64> {
        let mut out = vec![0.0; opts.quantiles.len()];
        s.quantiles(opts, now, &opts.quantiles, &mut out);
        out
    }

    #[test]
    fn constant_series_is_exact() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        for _ in 0..10 {
            s.observe(&opts, 5, 0.1, 1);
        }
        assert_eq!(q(&s, &opts, 5), vec![0.1, 0.1, 0.1]);
        assert_eq!(s.count(), 10);
        assert!((s.sum() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn few_observations_are_exact() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        s.observe(&opts, 0, 0.3, 1);
        s.observe(&opts, 0, 0.1, 1);
        assert_eq!(q(&s, &opts, 0), vec![0.1, 0.3, 0.3]);
        // Spread over two slots, still exact.
        s.observe(&opts, 130, 0.2, 1);
        assert_eq!(q(&s, &opts, 130), vec![0.2, 0.3, 0.3]);
    }

    #[test]
    fn uniform_quantiles_within_accuracy() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        for i in 1..=1000 {
            s.observe(&opts, 0, f64::from(i), 1);
        }
        let got = q(&s, &opts, 0);
        for (g, want) in got.iter().zip([500.0, 900.0, 990.0]) {
            assert!((g - want).abs() / want <= 0.011, "got {g}, want {want}");
        }
    }

    #[test]
    fn negatives_zero_and_weights() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        s.observe(&opts, 0, -2.0, 3);
        s.observe(&opts, 0, 0.0, 1);
        s.observe(&opts, 0, 4.0, 1);
        // Sorted: -2 -2 -2 0 4 ; median rank 2 -> -2.
        let mut out = [0.0; 3];
        s.quantiles(&opts, 0, &[0.0, 0.5, 1.0], &mut out);
        assert!((out[0] + 2.0).abs() < 0.03);
        assert!((out[1] + 2.0).abs() < 0.03);
        assert_eq!(out[2], 4.0);
        assert_eq!(s.count(), 5);
    }

    #[test]
    fn window_forgets_old_slots_but_sum_stays() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        s.observe(&opts, 0, 1.0, 1);
        assert_eq!(q(&s, &opts, 599)[0], 1.0);
        // 600 s later the slot of t=0 has left the window.
        assert!(q(&s, &opts, 600)[0].is_nan());
        s.observe(&opts, 700, 2.0, 1);
        assert_eq!(q(&s, &opts, 700)[0], 2.0);
        assert_eq!(s.count(), 2);
        assert_eq!(s.sum(), 3.0);
    }

    #[test]
    fn ln_gamma_matches_the_accuracy() {
        let want = ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln();
        assert!((gamma_ln() - want).abs() < 1e-15);
    }

    #[test]
    fn bins_stay_bounded() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        for e in -300..300 {
            s.observe(&opts, 0, 10f64.powi(e / 10), 1);
        }
        for b in s.slots.iter().flatten().filter_map(|s| s.binned.as_ref()) {
            assert!(b.pos.counts.len() <= MAX_BINS);
        }
        assert_eq!(s.count(), 600);
    }

    /// The exact nearest-rank quantiles of every observation, as a slow
    /// oracle for [`Summary::quantiles`].
    fn oracle(obs: &[(u64, f64, u64)], quantiles: &[f64]) -> Vec<f64> {
        let mut all: Vec<f64> = obs
            .iter()
            .flat_map(|&(_, v, n)| std::iter::repeat_n(v, n as usize))
            .collect();
        all.sort_by(f64::total_cmp);
        quantiles
            .iter()
            .map(|&q| nearest_rank(q, all.len() as u64).map_or(f64::NAN, |r| all[r as usize]))
            .collect()
    }

    proptest::proptest! {
        /// Against the oracle, over one window (five 120 s slots): exact while
        /// every slot has seen at most `EXACT_MAX` observations, else within
        /// the relative accuracy (values from 1e-3 to 1e6 in magnitude, both
        /// signs, zero, weights up to 20).
        #[test]
        fn quantiles_agree_with_the_exact_oracle(
            obs in proptest::collection::vec(
                (0u64..600, -3i32..=6, 1u32..1000, proptest::bool::ANY, 1u64..=20, 0u8..10),
                1..120,
            ),
        ) {
            let opts = SummaryOptions::default();
            let obs: Vec<(u64, f64, u64)> = obs
                .into_iter()
                .map(|(t, e, m, neg, w, zero)| {
                    let v = if zero == 0 { 0.0 } else { f64::from(m) / 1000.0 * 10f64.powi(e) };
                    // Weight 1 most of the time, so that exact slots are common.
                    (t, if neg { -v } else { v }, if w > 15 { w } else { 1 })
                })
                .collect();
            let mut s = Summary::new(&opts);
            for &(t, v, n) in &obs {
                s.observe(&opts, t, v, n);
            }
            let qs = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0];
            let mut got = [0.0; 6];
            s.quantiles(&opts, 599, &qs, &mut got);
            let want = oracle(&obs, &qs);
            let mut per_slot = [0u64; 5];
            for &(t, _, n) in &obs {
                per_slot[(t / opts.slot_secs()) as usize % 5] += n;
            }
            let exact = per_slot.iter().all(|&n| n <= EXACT_MAX as u64);
            for ((q, g), w) in qs.iter().zip(got).zip(want) {
                if exact {
                    proptest::prop_assert_eq!(g, w, "q={}", q);
                } else {
                    let tolerance = RELATIVE_ACCURACY * w.abs() * (1.0 + 1e-9);
                    proptest::prop_assert!((g - w).abs() <= tolerance, "q={} got {} want {}", q, g, w);
                }
            }
            proptest::prop_assert_eq!(s.count(), obs.iter().map(|o| o.2).sum::<u64>());
        }
    }

    /// Ten observations in one slot take one 40-byte sketch and 12 exact
    /// places, no buckets.
    #[test]
    fn a_few_observations_allocate_no_buckets() {
        let opts = SummaryOptions::default();
        let mut s = Summary::new(&opts);
        for i in 0..10 {
            s.observe(&opts, 0, f64::from(i), 1);
        }
        assert_eq!(std::mem::size_of::<Sketch>(), 40);
        let slot = s.slots.iter().flatten().next().expect("a slot");
        assert!(slot.binned.is_none());
        assert_eq!(slot.exact.capacity(), 12);
    }
}
