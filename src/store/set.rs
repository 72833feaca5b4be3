//! StatsD sets (`name:member|s`): a gauge of distinct members seen.
//!
//! statsd_exporter refuses sets. We count distinct members since the series was
//! created with a HyperLogLog of 2^10 one-byte registers: 1 KiB per set series
//! whatever the number of members, a standard error of about 3 %, and exact
//! answers (through linear counting) for the small sets typical of StatsD.
//! Registers only grow, with `fetch_max`, so updates are lock-free.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU8, Ordering};

const P: u32 = 10;
const M: usize = 1 << P;

/// A lock-free HyperLogLog counter of distinct members.
///
/// The registers sit behind a thin pointer (their number is part of the type),
/// which keeps the store's series value at 16 bytes.
#[derive(Debug)]
pub struct DistinctSet {
    registers: Box<[AtomicU8; M]>,
}

impl Default for DistinctSet {
    fn default() -> Self {
        // Built on the heap, never as an array on the stack. The conversion cannot
        // fail (exactly M registers are collected); the fallback only keeps this
        // free of a panic path.
        let registers = (0..M)
            .map(|_| AtomicU8::new(0))
            .collect::<Box<[AtomicU8]>>()
            .try_into()
            .unwrap_or_else(|_| Box::new([const { AtomicU8::new(0) }; M]));
        Self { registers }
    }
}

fn hash_member(member: &[u8]) -> u64 {
    // A fixed seed: every ingest thread must put a member in the same register.
    foldhash::quality::FixedState::with_seed(0x5eed_5e75).hash_one(member)
}

impl DistinctSet {
    /// Record a member.
    pub fn insert(&self, member: &[u8]) {
        let h = hash_member(member);
        let idx = (h >> (64 - P)) as usize;
        let rank = ((h << P) | (1 << (P - 1))).leading_zeros() + 1;
        if let Some(r) = self.registers.get(idx) {
            // Relaxed: the register is a monotone statistic, nothing is published through it.
            r.fetch_max(rank as u8, Ordering::Relaxed);
        }
    }

    /// Estimated number of distinct members, rounded to an integer.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let mut zeros = 0usize;
        let mut inv_sum = 0.0;
        for r in self.registers.iter() {
            // Relaxed: see `insert`.
            let v = r.load(Ordering::Relaxed);
            if v == 0 {
                zeros += 1;
            }
            inv_sum += 1.0 / f64::from(1u32 << v);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / inv_sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round()
    }
}

#[cfg(test)]
mod tests {
    use super::DistinctSet;

    #[test]
    fn small_sets_are_exact() {
        let s = DistinctSet::default();
        assert_eq!(s.estimate(), 0.0);
        for m in ["a", "b", "c", "a", "b"] {
            s.insert(m.as_bytes());
        }
        assert_eq!(s.estimate(), 3.0);
    }

    #[test]
    fn large_sets_within_error() {
        let s = DistinctSet::default();
        for i in 0..100_000u32 {
            s.insert(i.to_string().as_bytes());
        }
        let e = s.estimate();
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.1, "estimate {e}");
    }
}
