//! An `f64` in an `AtomicU64`, and the coarse clock shared by ingest and render.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// An atomically updated `f64`.
///
/// Every access is `Relaxed`: each value is an independent statistic and no other
/// memory is published through it; a scrape only needs each load to be untorn.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// A new value.
    pub fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    /// The current value.
    #[inline]
    pub fn load(&self) -> f64 {
        // Relaxed: see the type's comment.
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Replace the value.
    #[inline]
    pub fn store(&self, v: f64) {
        // Relaxed: see the type's comment.
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Add `d` (a compare-and-swap loop, uncontended in practice: one ingest thread
    /// writes a series).
    #[inline]
    pub fn add(&self, d: f64) {
        add_f64_bits(&self.0, d);
    }

    /// Add `d` as the series' only writer (see [`Writers::Sole`]).
    #[inline]
    pub fn add_as(&self, d: f64, w: Writers) {
        add_f64_bits_as(&self.0, d, w);
    }
}

/// Who updates a store's series values, and so how an update is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Writers {
    /// Several threads may update one series: read-modify-write instructions
    /// (`lock cmpxchg`, `lock xadd`).
    #[default]
    Shared,
    /// One thread updates every series (the daemon with one ingest loop): a plain
    /// atomic load and store, so a scrape still never sees a torn value, without
    /// the locked instruction (about 5 % of the ingest thread's time with counters,
    /// most of it waiting for the store buffer to drain).
    Sole,
}

/// Add `n` to a count with the update `w` allows.
#[inline]
pub fn add_u64(cell: &AtomicU64, n: u64, w: Writers) {
    // Relaxed: independent statistics (see `AtomicF64`).
    match w {
        Writers::Shared => {
            cell.fetch_add(n, Ordering::Relaxed);
        }
        Writers::Sole => cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        ),
    }
}

/// Add one to a wrapping count with the update `w` allows.
#[inline]
pub fn add_u32_wrapping(cell: &AtomicU32, w: Writers) {
    // Relaxed: an independent counter, read for rates.
    match w {
        Writers::Shared => {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        // The only writer: a plain load and store, no locked instruction.
        Writers::Sole => cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        ),
    }
}

/// [`add_f64_bits`] with the update `w` allows.
#[inline]
pub fn add_f64_bits_as(cell: &AtomicU64, d: f64, w: Writers) {
    match w {
        Writers::Shared => add_f64_bits(cell, d),
        Writers::Sole => {
            // Relaxed: see `AtomicF64`; no other thread writes this cell.
            let cur = cell.load(Ordering::Relaxed);
            cell.store((f64::from_bits(cur) + d).to_bits(), Ordering::Relaxed);
        }
    }
}

/// Add `d` to the `f64` whose bits `cell` holds (for an `f64` kept among integer
/// cells, such as a histogram's sum beside its counts).
#[inline]
pub fn add_f64_bits(cell: &AtomicU64, d: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + d).to_bits();
        // Relaxed on both paths: see `AtomicF64`'s comment.
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

pub use crate::sys::Clock;

#[cfg(test)]
mod tests {
    use super::AtomicF64;

    #[test]
    fn sole_and_shared_updates_agree() {
        use super::{add_f64_bits_as, add_u64, Writers};
        use std::sync::atomic::{AtomicU64, Ordering};
        for w in [Writers::Shared, Writers::Sole] {
            let a = AtomicF64::new(0.5);
            a.add_as(2.25, w);
            a.add_as(-1.0, w);
            assert_eq!(a.load(), 1.75, "{w:?}");
            let n = AtomicU64::new(3);
            add_u64(&n, 4, w);
            assert_eq!(n.load(Ordering::Relaxed), 7, "{w:?}");
            let s = AtomicU64::new(1.5f64.to_bits());
            add_f64_bits_as(&s, 0.25, w);
            assert_eq!(f64::from_bits(s.load(Ordering::Relaxed)), 1.75, "{w:?}");
        }
    }

    #[test]
    fn add_and_store() {
        let a = AtomicF64::new(1.5);
        a.add(2.0);
        assert_eq!(a.load(), 3.5);
        a.store(-0.25);
        a.add(0.25);
        assert_eq!(a.load(), 0.0);
    }
}
