//! A series' native histogram as its writers and readers share it, without a
//! lock for a sole writer.
//!
//! Readers (scrapes, remote write) load the current buffer ([`Buf`]) through an
//! `ArcSwap` and read its atomics; they never block a writer. A writer updates
//! the buffer's atomics in place while the observation lands in a bucket the
//! buffer already spans and fits the buffer's count width, which is nearly
//! always. Otherwise (a bucket outside the span, a count outgrowing its width, a
//! new bucket past the limit) it copies the buffer into the plain model
//! ([`Native`]), observes there (so halving and every rule are the model's), and
//! publishes a new buffer; the old one is freed when its last reader lets go.
//! Writers are serialised: a sole writer is alone by definition, and several
//! (`Writers::Shared`) take a mutex among themselves, so every update is a plain
//! load and store. A property test drives this and the model with the same
//! observations and compares them.
//!
//! Ordering: a writer stores the count before the bucket (Release on the
//! bucket); a reader loads the buckets (Acquire) before the count, so the count
//! it reads covers every bucket it read, as Prometheus requires.

use super::{bucket_index, Buckets, Native, ZERO_THRESHOLD};
use crate::model::NativeOptions;
use crate::store::atomic::Writers;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One sign's counts: atomics of the width the largest count needs.
#[derive(Debug, Default)]
enum Cells {
    #[default]
    Empty,
    W1(Box<[AtomicU8]>),
    W2(Box<[AtomicU16]>),
    W4(Box<[AtomicU32]>),
    W8(Box<[AtomicU64]>),
}

impl Cells {
    /// Cells holding `values`, each as wide as the largest needs.
    fn of(values: &[u64]) -> Self {
        let max = values.iter().copied().max().unwrap_or(0);
        if values.is_empty() {
            Self::Empty
        } else if max <= u64::from(u8::MAX) {
            Self::W1(values.iter().map(|v| AtomicU8::new(*v as u8)).collect())
        } else if max <= u64::from(u16::MAX) {
            Self::W2(values.iter().map(|v| AtomicU16::new(*v as u16)).collect())
        } else if max <= u64::from(u32::MAX) {
            Self::W4(values.iter().map(|v| AtomicU32::new(*v as u32)).collect())
        } else {
            Self::W8(values.iter().map(|v| AtomicU64::new(*v)).collect())
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::W1(c) => c.len(),
            Self::W2(c) => c.len(),
            Self::W4(c) => c.len(),
            Self::W8(c) => c.len(),
        }
    }

    /// Count `i`. Acquire: pairs with the writer's Release in `set`, so the
    /// count the writer stored before is visible to a later count load.
    fn get(&self, i: usize) -> u64 {
        let o = Ordering::Acquire;
        match self {
            Self::Empty => None,
            Self::W1(c) => c.get(i).map(|a| u64::from(a.load(o))),
            Self::W2(c) => c.get(i).map(|a| u64::from(a.load(o))),
            Self::W4(c) => c.get(i).map(|a| u64::from(a.load(o))),
            Self::W8(c) => c.get(i).map(|a| a.load(o)),
        }
        .unwrap_or(0)
    }

    /// Store `v` at `i` if it fits the width (false otherwise). Release: see `get`.
    fn set(&self, i: usize, v: u64) -> bool {
        let o = Ordering::Release;
        match self {
            Self::Empty => None,
            Self::W1(c) => u8::try_from(v)
                .ok()
                .zip(c.get(i))
                .map(|(v, a)| a.store(v, o)),
            Self::W2(c) => u16::try_from(v)
                .ok()
                .zip(c.get(i))
                .map(|(v, a)| a.store(v, o)),
            Self::W4(c) => u32::try_from(v)
                .ok()
                .zip(c.get(i))
                .map(|(v, a)| a.store(v, o)),
            Self::W8(c) => c.get(i).map(|a| a.store(v, o)),
        }
        .is_some()
    }
}

/// One sign's buckets in a buffer: counts of `first`, `first + 1`, ...
#[derive(Debug, Default)]
struct Side {
    first: i32,
    cells: Cells,
}

impl Side {
    fn of(b: &Buckets) -> Self {
        let (first, values) = b.dense();
        Self {
            first,
            cells: Cells::of(&values),
        }
    }

    /// The cell of bucket `index`, if this buffer spans it.
    fn slot(&self, index: i32) -> Option<usize> {
        let i = usize::try_from(i64::from(index) - i64::from(self.first)).ok()?;
        (i < self.cells.len()).then_some(i)
    }

    fn iter(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (0..self.cells.len())
            .map(|i| (self.first + i as i32, self.cells.get(i)))
            .filter(|(_, c)| *c > 0)
    }

    /// Every count from `first`, zeros included.
    fn values(&self) -> Vec<u64> {
        (0..self.cells.len()).map(|i| self.cells.get(i)).collect()
    }

    /// A copy (the writer's own view: no reader changes it).
    fn copy(&self) -> Self {
        Self {
            first: self.first,
            cells: Cells::of(&self.values()),
        }
    }

    /// A copy spanning bucket `index` too, `n` added to it: grown past
    /// `index` by half the span again (at least 4), so a run of values that
    /// climbs or falls does not copy the buffer for every new bucket.
    fn grown(&self, index: i32, n: u64) -> Self {
        let mut values = self.values();
        let len = values.len() as i64;
        let pad = (len / 2).max(4);
        let mut first = i64::from(self.first);
        if values.is_empty() {
            first = i64::from(index);
            values.push(0);
        } else if i64::from(index) < first {
            let grow = first - i64::from(index) + pad;
            values.splice(0..0, std::iter::repeat_n(0, grow as usize));
            first -= grow;
        } else if i64::from(index) >= first + len {
            values.resize((i64::from(index) - first + 1 + pad) as usize, 0);
        }
        if let Some(c) = values.get_mut((i64::from(index) - first) as usize) {
            *c = c.saturating_add(n);
        }
        Self {
            first: first as i32,
            cells: Cells::of(&values),
        }
    }

    fn to_buckets(&self) -> Buckets {
        let mut b = Buckets::default();
        for (i, c) in self.iter() {
            b.add(i, c);
        }
        b
    }
}

/// What readers load: replaced whole when the buckets outgrow it.
#[derive(Debug)]
struct Buf {
    schema: i8,
    count: AtomicU64,
    zero_count: AtomicU64,
    /// Populated buckets of both signs (only writers read it).
    populated: AtomicU32,
    positive: Side,
    negative: Side,
}

impl Buf {
    fn of(n: &Native) -> Self {
        Self {
            schema: n.schema(),
            count: AtomicU64::new(n.count()),
            zero_count: AtomicU64::new(n.zero_count()),
            populated: AtomicU32::new(n.populated()),
            positive: Side::of(n.positive()),
            negative: Side::of(n.negative()),
        }
    }
}

/// A native histogram shared by its series' writers and readers.
#[derive(Debug)]
pub struct SharedNative {
    current: ArcSwap<Buf>,
    /// Serialises several writers (`Writers::Shared`); a sole writer never
    /// takes it.
    writers: Mutex<()>,
    max_buckets: u32,
}

impl SharedNative {
    /// An empty histogram with `opts`.
    pub fn new(opts: NativeOptions) -> Self {
        Self {
            current: ArcSwap::from_pointee(Buf::of(&Native::new(opts.schema, opts.max_buckets))),
            writers: Mutex::new(()),
            max_buckets: opts.max_buckets,
        }
    }

    /// Observe `v`, `n` times.
    pub fn observe(&self, v: f64, n: u64, w: Writers) {
        let _alone = match w {
            Writers::Shared => Some(self.writers.lock().unwrap_or_else(PoisonError::into_inner)),
            Writers::Sole => None,
        };
        let buf = self.current.load();
        match self.in_place(&buf, v, n) {
            Step::Done => {}
            Step::Grow { index } => self.current.store(Arc::new(grown(&buf, v, index, n))),
            Step::Model => {
                let mut model = self.model(&buf);
                model.observe(v, n);
                self.current.store(Arc::new(Buf::of(&model)));
            }
        }
    }

    /// Apply the observation to `buf` where it stands, if it can be.
    /// Relaxed loads and stores of the writer's own counters: writers are
    /// serialised, and readers order themselves on the bucket's Release.
    fn in_place(&self, buf: &Buf, v: f64, n: u64) -> Step {
        let count = buf.count.load(Ordering::Relaxed).saturating_add(n);
        if v.is_nan() {
            buf.count.store(count, Ordering::Relaxed);
            return Step::Done;
        }
        let populated = buf.populated.load(Ordering::Relaxed);
        let limited = self.max_buckets != 0 && buf.schema > super::MIN_SCHEMA;
        if limited && populated > self.max_buckets {
            // Still over the limit: this observation halves again (the model's rule).
            return Step::Model;
        }
        if v.abs() <= ZERO_THRESHOLD {
            buf.count.store(count, Ordering::Relaxed);
            let z = buf.zero_count.load(Ordering::Relaxed).saturating_add(n);
            // Release: a reader that sees it sees the count above.
            buf.zero_count.store(z, Ordering::Release);
            return Step::Done;
        }
        let side = if v > 0.0 {
            &buf.positive
        } else {
            &buf.negative
        };
        let index = bucket_index(v.abs(), buf.schema);
        let slot = side.slot(index);
        let old = slot.map_or(0, |i| side.cells.get(i));
        if old == 0 && limited && populated >= self.max_buckets {
            // A new bucket past the limit: the model halves.
            return Step::Model;
        }
        let new = old.saturating_add(n);
        let Some(i) = slot.filter(|_| fits(&side.cells, new)) else {
            return Step::Grow { index };
        };
        buf.count.store(count, Ordering::Relaxed);
        side.cells.set(i, new);
        if old == 0 {
            buf.populated.store(populated + 1, Ordering::Relaxed);
        }
        Step::Done
    }

    fn model(&self, buf: &Buf) -> Native {
        // Relaxed: the serialised writer reading its own buffer (or `snapshot`
        // reading a histogram no one writes).
        Native::from_parts(
            buf.schema,
            self.max_buckets,
            buf.count.load(Ordering::Relaxed),
            buf.zero_count.load(Ordering::Relaxed),
            buf.positive.to_buckets(),
            buf.negative.to_buckets(),
        )
    }

    /// Read the histogram now: spans and deltas of each sign into the
    /// buffers, and `(schema, count, zero_count)`. The count is read last, so
    /// it covers every bucket read.
    pub fn read(
        &self,
        spans: &mut [Vec<(i32, u32)>; 2],
        deltas: &mut [Vec<i64>; 2],
    ) -> (i8, u64, u64) {
        let buf = self.current.load();
        let [ps, ns] = spans;
        let [pd, nd] = deltas;
        super::spans_and_deltas(buf.positive.iter(), ps, pd);
        super::spans_and_deltas(buf.negative.iter(), ns, nd);
        // Acquire: see `in_place`.
        let zero = buf.zero_count.load(Ordering::Acquire);
        (buf.schema, buf.count.load(Ordering::Relaxed), zero)
    }

    /// The histogram as the plain model, for one no writer is updating
    /// (tests): unlike [`SharedNative::read`], it reads the count first.
    pub fn snapshot(&self) -> Native {
        self.model(&self.current.load())
    }
}

/// What an observation needs.
enum Step {
    /// Applied in place.
    Done,
    /// A copy of the buffer spanning bucket `index`, or with wider counts.
    Grow { index: i32 },
    /// The model's rules (halving): a copy through [`Native`].
    Model,
}

/// A copy of `buf` with `n` observations of `v` in bucket `index`.
fn grown(buf: &Buf, v: f64, index: i32, n: u64) -> Buf {
    let (positive, negative) = if v > 0.0 {
        (buf.positive.grown(index, n), buf.negative.copy())
    } else {
        (buf.positive.copy(), buf.negative.grown(index, n))
    };
    let side = if v > 0.0 {
        &buf.positive
    } else {
        &buf.negative
    };
    let new_bucket = side.slot(index).is_none_or(|i| side.cells.get(i) == 0);
    // Relaxed: the serialised writer's own counters; the ArcSwap store that
    // publishes the new buffer orders everything written into it.
    Buf {
        schema: buf.schema,
        count: AtomicU64::new(buf.count.load(Ordering::Relaxed).saturating_add(n)),
        zero_count: AtomicU64::new(buf.zero_count.load(Ordering::Relaxed)),
        populated: AtomicU32::new(buf.populated.load(Ordering::Relaxed) + u32::from(new_bucket)),
        positive,
        negative,
    }
}

/// Whether `v` fits the cells' width.
fn fits(cells: &Cells, v: u64) -> bool {
    match cells {
        Cells::Empty => false,
        Cells::W1(_) => v <= u64::from(u8::MAX),
        Cells::W2(_) => v <= u64::from(u16::MAX),
        Cells::W4(_) => v <= u64::from(u32::MAX),
        Cells::W8(_) => true,
    }
}
