//! An `f64` in an `AtomicU64`, and the coarse clock shared by ingest and render.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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

/// A coarse monotonic clock in whole seconds since the store was created.
///
/// The ingest loop ticks it once per wake-up, so the hot path reads one atomic
/// instead of asking the OS for the time per sample.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    now: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            now: AtomicU64::new(0),
        }
    }
}

impl Clock {
    /// Refresh from the OS clock and return the new reading.
    pub fn tick(&self) -> u64 {
        let secs = self.start.elapsed().as_secs();
        // Relaxed: a coarse timestamp; a reader one tick behind is harmless.
        self.now.fetch_max(secs, Ordering::Relaxed);
        secs
    }

    /// The last reading.
    #[inline]
    pub fn now(&self) -> u64 {
        // Relaxed: see `tick`.
        self.now.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::AtomicF64;

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
