//! Series: a family, rendered labels and a value updated in place (atomic
//! counters and gauges, histogram cells, set registers, a summary behind a
//! small mutex), and how one is handed to an encoder.

use super::atomic::{self, AtomicF64, Writers};
use super::family::Family;
use super::inline::InlineStr;
use super::native::{SharedNative, ZERO_THRESHOLD};
use super::set::DistinctSet;
use super::summary::Summary;
use crate::model::collect::{Encoder, FamilyHead, Labels, NativeValue, Value};
use crate::model::NativeOptions;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The heap cells of one histogram series: one atomic count per bound, one for
/// `+Inf`, then the bits of the `f64` sum.
///
/// Only the store makes one (the field is private), always together with the
/// number of cells it allocated, and frees it when the [`SeriesValue`] holding
/// it drops. It is neither `Clone` nor `Copy`: it owns its cells.
pub struct CellsPtr(NonNull<AtomicU64>);

// SAFETY: a `CellsPtr` owns its cells as a `Box<[AtomicU64]>` would (nothing
// else points to them), and `AtomicU64` is `Send`: moving the owner to another
// thread is sound.
unsafe impl Send for CellsPtr {}
// SAFETY: shared access only ever reads the cells through `&AtomicU64`
// (`HistogramView`), and `AtomicU64` is `Sync`.
unsafe impl Sync for CellsPtr {}

impl std::fmt::Debug for CellsPtr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CellsPtr")
    }
}

impl CellsPtr {
    /// `len` zeroed cells; `None` when `len` is 0.
    pub(super) fn alloc(len: u16) -> Option<Self> {
        if len == 0 {
            return None;
        }
        // At most 65,535 cells of 8 bytes: never past `isize::MAX`.
        let layout = Layout::array::<AtomicU64>(usize::from(len)).ok()?;
        // SAFETY: `layout` has a non-zero size (at least one 8-byte cell).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        match NonNull::new(ptr.cast::<AtomicU64>()) {
            Some(p) => Some(Self(p)),
            None => std::alloc::handle_alloc_error(layout),
        }
    }
}

/// The cells at `cells`, `len` of them, as a view.
///
/// # Safety
/// `cells` and `len` must come from one [`SeriesValue::histogram_of`] (or
/// [`NativeSeries`]) that still owns them.
unsafe fn view_of(cells: &CellsPtr, len: u16) -> HistogramView<'_> {
    // SAFETY: the caller passes a live allocation of `len` zeroed cells made
    // by `CellsPtr::alloc` (`len >= 2`), aligned and initialised (all-zero
    // bits are a valid `AtomicU64`). It is freed only when its owner drops,
    // which needs `&mut`, so it outlives this shared borrow; the cells are
    // only accessed through shared references to atomics, so aliasing
    // `&[AtomicU64]`s is fine.
    let cells = unsafe { std::slice::from_raw_parts(cells.0.as_ptr(), usize::from(len)) };
    HistogramView { cells }
}

/// Free `len` cells at `cells`.
///
/// # Safety
/// `cells` must come from `CellsPtr::alloc(len)` and not be used afterwards.
unsafe fn free_cells(cells: &CellsPtr, len: u16) {
    if let Ok(layout) = Layout::array::<AtomicU64>(usize::from(len)) {
        // SAFETY: the caller passes cells from `alloc_zeroed` with this very
        // layout (`CellsPtr::alloc` computed it from the same `len`) that
        // nothing uses after this call.
        unsafe { std::alloc::dealloc(cells.0.as_ptr().cast::<u8>(), layout) };
    }
}

/// A histogram series with native buckets: its classic cells and its
/// native histogram (lock-free for a sole writer, see [`SharedNative`]).
#[derive(Debug)]
pub struct NativeSeries {
    cells: CellsPtr,
    len: u16,
    native: SharedNative,
}

impl Drop for NativeSeries {
    fn drop(&mut self) {
        // SAFETY: `NativeSeries::new` allocated `len` cells at `cells`; this
        // value owns them and is being dropped.
        unsafe { free_cells(&self.cells, self.len) };
    }
}

/// A read view of a histogram series' cells.
#[derive(Clone, Copy, Debug)]
pub struct HistogramView<'a> {
    pub(super) cells: &'a [AtomicU64],
}

impl<'a> HistogramView<'a> {
    /// Non-cumulative counts, one per bound plus `+Inf`.
    #[inline]
    pub fn counts(&self) -> &'a [AtomicU64] {
        self.cells.split_last().map_or(&[], |(_, c)| c)
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        // Relaxed: see the module's consistency note.
        self.cells
            .last()
            .map_or(0.0, |s| f64::from_bits(s.load(Ordering::Relaxed)))
    }

    #[inline]
    pub(super) fn add_sum(&self, d: f64, w: Writers) {
        if let Some(s) = self.cells.last() {
            atomic::add_f64_bits_as(s, d, w);
        }
    }
}

/// The value of one series.
///
/// 16 bytes: every variant holds at most one thin pointer or one 8-byte atomic
/// (the histogram's cell count fits beside the tag). Read a histogram through
/// [`SeriesValue::histogram`].
pub enum SeriesValue {
    /// A counter.
    Counter(AtomicF64),
    /// A gauge.
    Gauge(AtomicF64),
    /// A set.
    Set(DistinctSet),
    /// A summary.
    Summary(Box<Mutex<Summary>>),
    /// A histogram: `len` cells at `cells` (see [`CellsPtr`]).
    Histogram {
        /// The cells, allocated by the store.
        cells: CellsPtr,
        /// How many cells `cells` holds: the number of bounds plus 2.
        len: u16,
    },
    /// A histogram with native buckets too.
    NativeHistogram(Box<NativeSeries>),
}

impl SeriesValue {
    /// A histogram of `bounds` bounds, all counts and the sum zero; `None` when
    /// `bounds` exceeds [`MAX_HISTOGRAM_BUCKETS`].
    pub(super) fn histogram_of(bounds: usize) -> Option<Self> {
        // `bounds + 2` fits in a `u16` exactly when `bounds <= MAX_HISTOGRAM_BUCKETS`.
        let len = u16::try_from(bounds.checked_add(2)?).ok()?;
        Some(Self::Histogram {
            cells: CellsPtr::alloc(len)?,
            len,
        })
    }

    /// A histogram of `bounds` bounds with native buckets as `native` says
    /// (classic only when `None`).
    pub(super) fn histogram_with(bounds: usize, native: Option<NativeOptions>) -> Option<Self> {
        let Some(n) = native else {
            return Self::histogram_of(bounds);
        };
        let len = u16::try_from(bounds.checked_add(2)?).ok()?;
        Some(Self::NativeHistogram(Box::new(NativeSeries {
            cells: CellsPtr::alloc(len)?,
            len,
            native: SharedNative::new(n),
        })))
    }

    /// The histogram's counts and sum, when this is a histogram.
    #[inline]
    pub fn histogram(&self) -> Option<HistogramView<'_>> {
        match self {
            // SAFETY: only `histogram_of` builds this variant (`CellsPtr` has a
            // private field and the store never hands out `&mut SeriesValue`),
            // with `len` cells at `cells`, freed only when this value drops.
            Self::Histogram { cells, len } => Some(unsafe { view_of(cells, *len) }),
            // SAFETY: only `histogram_with` builds a `NativeSeries`, with `len`
            // cells at `cells`, freed only when it drops.
            Self::NativeHistogram(n) => Some(unsafe { view_of(&n.cells, n.len) }),
            _ => None,
        }
    }

    /// The native histogram, when this histogram has one.
    #[inline]
    pub fn native(&self) -> Option<&SharedNative> {
        match self {
            Self::NativeHistogram(n) => Some(&n.native),
            _ => None,
        }
    }
}

impl Drop for SeriesValue {
    fn drop(&mut self) {
        if let Self::Histogram { cells, len } = self {
            // SAFETY: `cells` came from `CellsPtr::alloc(len)` (`len` never
            // changes), nothing else owns the cells, and this value is being
            // dropped, so no view of them outlives this call.
            unsafe { free_cells(cells, *len) };
        }
    }
}

impl std::fmt::Debug for SeriesValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Counter(c) => f.debug_tuple("Counter").field(c).finish(),
            Self::Gauge(g) => f.debug_tuple("Gauge").field(g).finish(),
            Self::Set(s) => f.debug_tuple("Set").field(s).finish(),
            Self::Summary(s) => f.debug_tuple("Summary").field(s).finish(),
            Self::Histogram { .. } | Self::NativeHistogram(_) => {
                let h = self.histogram();
                f.debug_struct("Histogram")
                    .field("counts", &h.map(|h| h.counts()))
                    .field("sum", &h.map(|h| h.sum()))
                    .field("native", &self.native())
                    .finish()
            }
        }
    }
}

/// One series: a family, a label set, a value.
#[derive(Debug)]
pub struct Series {
    pub(super) family: Arc<Family>,
    /// Labels rendered once, `k="v",k2="v2"`, sorted by name and escaped;
    /// kept in place when short (no allocation for `id="123456"`).
    pub(super) labels: InlineStr,
    pub(super) value: SeriesValue,
    /// The retired flag ([`RETIRED`], set once) and, in the low 31 bits, a copy of
    /// the family's TTL in seconds (fixed at creation), so the hot path does not
    /// chase the family pointer.
    pub(super) state: AtomicU32,
    /// Store clock second of the last update (only kept when the TTL is not 0).
    pub(super) last_seen: AtomicU32,
}

/// The bit of [`Series::state`] set when the series is removed from the store.
pub(super) const RETIRED: u32 = 1 << 31;
/// The bits of [`Series::state`] holding the TTL in seconds.
pub(super) const TTL_MASK: u32 = RETIRED - 1;

impl Series {
    /// The family.
    pub fn family(&self) -> &Arc<Family> {
        &self.family
    }

    /// The rendered label pairs (empty when the series has no labels).
    pub fn labels(&self) -> &str {
        &self.labels
    }

    /// The value.
    pub fn value(&self) -> &SeriesValue {
        &self.value
    }

    /// True once the series was removed from the store; holders must look it up again.
    #[inline]
    pub fn is_retired(&self) -> bool {
        // Relaxed: a sample racing with the removal may land in the retired copy;
        // that one sample is lost either way.
        self.state.load(Ordering::Relaxed) & RETIRED != 0
    }

    /// Seconds without an update after which the series is removed; 0 = never.
    #[inline]
    pub(super) fn ttl_secs(&self) -> u32 {
        // Relaxed: the TTL bits are written once, before the series is shared.
        self.state.load(Ordering::Relaxed) & TTL_MASK
    }

    /// Note an update at `now` (store clock seconds), for TTL expiry.
    #[inline]
    pub fn touch(&self, now: u64) {
        if self.ttl_secs() != 0 {
            // Relaxed: a timestamp read by the expiry sweep; one second of skew is harmless.
            self.last_seen.store(now as u32, Ordering::Relaxed);
        }
    }

    /// Add to a counter (the caller checked `d >= 0`), as `w` allows.
    #[inline]
    pub fn counter_add(&self, d: f64, w: Writers) {
        if let SeriesValue::Counter(c) = &self.value {
            c.add_as(d, w);
        }
    }

    /// Set or move a gauge.
    #[inline]
    pub fn gauge_update(&self, v: f64, relative: bool, w: Writers) {
        if let SeriesValue::Gauge(g) = &self.value {
            if relative {
                g.add_as(v, w);
            } else {
                g.store(v);
            }
        }
    }

    /// Record a set member.
    #[inline]
    pub fn set_insert(&self, member: &[u8]) {
        if let SeriesValue::Set(s) = &self.value {
            s.insert(member);
        }
    }

    /// Observe `v` with weight `n` at `now` (store clock seconds).
    #[inline]
    pub fn observe(&self, v: f64, n: u64, now: u64, w: Writers) {
        if let Some(h) = self.value.histogram() {
            let idx = self.family.buckets().partition_point(|b| *b < v);
            if let Some(c) = h.counts().get(idx) {
                atomic::add_u64(c, n, w);
            }
            h.add_sum(v * n as f64, w);
            if let Some(native) = self.value.native() {
                native.observe(v, n, w);
            }
        } else if let SeriesValue::Summary(s) = &self.value {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            s.observe(self.family.summary(), now, v, n);
        }
    }
}

/// Scratch space a walk over the store reuses for every series: summary
/// estimates and cumulative histogram counts.
#[derive(Debug, Default)]
pub struct Cells {
    pub(super) estimates: Vec<f64>,
    pub(super) cumulative: Vec<u64>,
    /// A native histogram's spans and deltas, positive then negative.
    pub(super) spans: [Vec<(i32, u32)>; 2],
    pub(super) deltas: [Vec<i64>; 2],
}

impl Series {
    /// Hand this series to `enc` as a model value read now (`now`: store
    /// clock seconds, for the summary window).
    pub fn encode(
        &self,
        head: FamilyHead<'_>,
        now: u64,
        cells: &mut Cells,
        enc: &mut impl Encoder,
    ) {
        let labels = Labels::Rendered(&self.labels);
        let f = &self.family;
        let value = match &self.value {
            SeriesValue::Counter(c) => Value::Counter(c.load()),
            SeriesValue::Gauge(g) => Value::Gauge(g.load()),
            SeriesValue::Set(set) => Value::Gauge(set.estimate()),
            SeriesValue::Summary(m) => {
                let qs = &f.summary().quantiles;
                cells.estimates.clear();
                cells.estimates.resize(qs.len(), 0.0);
                let (sum, count) = {
                    let sm = m.lock().unwrap_or_else(PoisonError::into_inner);
                    sm.quantiles(f.summary(), now, qs, &mut cells.estimates);
                    (sm.sum(), sm.count())
                };
                Value::Summary {
                    quantiles: qs,
                    values: &cells.estimates,
                    sum,
                    count,
                }
            }
            SeriesValue::Histogram { .. } | SeriesValue::NativeHistogram(_) => {
                let Some(h) = self.value.histogram() else {
                    return;
                };
                cells.cumulative.clear();
                let mut total = 0u64;
                for c in h.counts() {
                    // Relaxed: see the module's consistency note.
                    total += c.load(Ordering::Relaxed);
                    cells.cumulative.push(total);
                }
                let sum = h.sum();
                // After the classic cells: the native count is at least their total.
                let native = self
                    .value
                    .native()
                    .map(|n| n.read(&mut cells.spans, &mut cells.deltas));
                Value::Histogram {
                    bounds: f.buckets(),
                    cumulative: &cells.cumulative,
                    sum,
                    native: native.map(|(schema, count, zero_count)| NativeValue {
                        schema,
                        zero_threshold: ZERO_THRESHOLD,
                        count,
                        zero_count,
                        positive: (&cells.spans[0], &cells.deltas[0]),
                        negative: (&cells.spans[1], &cells.deltas[1]),
                    }),
                }
            }
        };
        enc.series(head, labels, value);
    }
}
