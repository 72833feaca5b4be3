//! Series: a family, rendered labels and a value updated in place (atomic
//! counters and gauges, histogram cells, set registers, a summary behind a
//! small mutex), and how one is handed to an encoder.

use super::atomic::{self, AtomicF64, Writers};
use super::family::Family;
use super::inline::InlineStr;
use super::native::{SharedNative, ZERO_THRESHOLD};
use super::set::DistinctSet;
use super::summary::Summary;
use super::FamilyKind;
use crate::model::collect::{Encoder, FamilyHead, Labels, NativeValue, Value};
use crate::model::NativeOptions;
use std::alloc::Layout;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The heap cells of one histogram series: a header cell holding how many
/// cells follow, then one atomic count per bound, one for `+Inf`, then the
/// bits of the `f64` sum.
///
/// It owns its cells: only `CellsPtr::alloc` makes one (the field is
/// private) and its `Drop` frees them. It is neither `Clone` nor `Copy`.
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

/// The layout of `len` cells and their header.
fn cells_layout(len: u16) -> Option<Layout> {
    // At most 65,536 cells of 8 bytes: never past `isize::MAX`.
    Layout::array::<AtomicU64>(usize::from(len) + 1).ok()
}

impl CellsPtr {
    /// `len` zeroed cells after a header saying `len`; `None` when `len` is 0.
    pub(super) fn alloc(len: u16) -> Option<Self> {
        if len == 0 {
            return None;
        }
        let layout = cells_layout(len)?;
        // SAFETY: `layout` has a non-zero size (at least two 8-byte cells).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(p) = NonNull::new(ptr.cast::<AtomicU64>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `p` is the first of `len + 1` zeroed, aligned cells just
        // allocated (all-zero bits are a valid `AtomicU64`); nothing else
        // points to them yet.
        unsafe { p.as_ref() }.store(u64::from(len), Ordering::Relaxed);
        Some(Self(p))
    }

    /// The number of cells after the header, as `alloc` wrote it.
    fn len(&self) -> u16 {
        // SAFETY: `self.0` is the header cell of a live allocation made by
        // `alloc` (freed only when `self` drops, which needs `&mut self`).
        let header = unsafe { self.0.as_ref() };
        // Relaxed: written once in `alloc`, before the cells were shared.
        header.load(Ordering::Relaxed) as u16
    }

    /// The cells as a view.
    fn view(&self) -> HistogramView<'_> {
        // SAFETY: `alloc` made `len + 1` zeroed, aligned cells at `self.0`:
        // the header, then the `len` read here. They are freed only when
        // `self` drops, which needs `&mut self`, so they outlive this shared
        // borrow; they are only accessed through shared references to
        // atomics, so aliasing `&[AtomicU64]`s is fine.
        let cells =
            unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(1), usize::from(self.len())) };
        HistogramView { cells }
    }
}

impl Drop for CellsPtr {
    fn drop(&mut self) {
        if let Some(layout) = cells_layout(self.len()) {
            // SAFETY: `alloc` allocated these cells with this very layout
            // (computed from the `len` it wrote in the header), and nothing
            // uses them after this owner drops.
            unsafe { std::alloc::dealloc(self.0.as_ptr().cast::<u8>(), layout) };
        }
    }
}

/// A histogram series with native buckets: its classic cells and its
/// native histogram (lock-free for a sole writer, see [`SharedNative`]).
#[derive(Debug)]
pub struct NativeSeries {
    cells: CellsPtr,
    native: SharedNative,
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

/// The value of one series, borrowed from it ([`Series::value`]).
#[derive(Clone, Copy, Debug)]
pub enum SeriesValue<'a> {
    /// A counter.
    Counter(&'a AtomicF64),
    /// A gauge.
    Gauge(&'a AtomicF64),
    /// A set.
    Set(&'a DistinctSet),
    /// A summary.
    Summary(&'a Mutex<Summary>),
    /// A histogram: its classic cells, and its native buckets when it has them.
    Histogram(HistogramView<'a>, Option<&'a SharedNative>),
}

impl<'a> SeriesValue<'a> {
    /// The histogram's counts and sum, when this is a histogram.
    #[inline]
    pub fn histogram(self) -> Option<HistogramView<'a>> {
        match self {
            Self::Histogram(h, _) => Some(h),
            _ => None,
        }
    }

    /// The native histogram, when this histogram has one.
    #[inline]
    pub fn native(self) -> Option<&'a SharedNative> {
        match self {
            Self::Histogram(_, n) => n,
            _ => None,
        }
    }
}

/// Which field of a series' [`Cell`] is live; kept in its state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter = 0,
    Gauge = 1,
    Set = 2,
    Summary = 3,
    Histogram = 4,
    Native = 5,
}

impl Kind {
    fn from_bits(bits: u32) -> Self {
        match bits {
            1 => Self::Gauge,
            2 => Self::Set,
            3 => Self::Summary,
            4 => Self::Histogram,
            5 => Self::Native,
            // Only `Series::new` writes these bits, with one of the values
            // above. (Were it otherwise, the number is the one field whose
            // every bit pattern is valid.)
            _ => Self::Counter,
        }
    }
}

/// A series' value as the store keeps it: 8 bytes, whose live field its
/// [`Kind`] names (the kind sits in the series' state word, not beside the
/// value: an enum's tag would cost 8 more bytes a series, one allocator size
/// class). Read it through [`Series::value`].
union Cell {
    /// A counter's or a gauge's value.
    number: ManuallyDrop<AtomicF64>,
    set: ManuallyDrop<DistinctSet>,
    summary: ManuallyDrop<Box<Mutex<Summary>>>,
    histogram: ManuallyDrop<CellsPtr>,
    native: ManuallyDrop<Box<NativeSeries>>,
}

/// One series: a family, a label set, a value.
pub struct Series {
    pub(super) family: Arc<Family>,
    /// Labels rendered once, `k="v",k2="v2"`, sorted by name and escaped;
    /// kept in place when short (no allocation for `id="123456"`).
    pub(super) labels: InlineStr,
    cell: Cell,
    /// The retired flag ([`RETIRED`], set once), the value's [`Kind`] (3 bits,
    /// fixed at creation) and, in the low 28 bits, a copy of the family's TTL
    /// in seconds (fixed at creation), so the hot path does not chase the
    /// family pointer.
    pub(super) state: AtomicU32,
    /// Store clock second of the last update (only kept when the TTL is not 0).
    pub(super) last_seen: AtomicU32,
}

/// The bit of [`Series::state`] set when the series is removed from the store.
pub(super) const RETIRED: u32 = 1 << 31;
/// Where the value's [`Kind`] sits in [`Series::state`].
const KIND_SHIFT: u32 = 28;
/// The bits of [`Series::state`] holding the TTL in seconds (at most
/// 2^28 - 1 seconds, eight and a half years).
pub(super) const TTL_MASK: u32 = (1 << KIND_SHIFT) - 1;

impl Drop for Series {
    fn drop(&mut self) {
        // SAFETY: `kind()` names the field `Series::new` wrote, which is
        // dropped here once: the series is being dropped.
        unsafe {
            match self.kind() {
                Kind::Counter | Kind::Gauge => {}
                Kind::Set => ManuallyDrop::drop(&mut self.cell.set),
                Kind::Summary => ManuallyDrop::drop(&mut self.cell.summary),
                Kind::Histogram => ManuallyDrop::drop(&mut self.cell.histogram),
                Kind::Native => ManuallyDrop::drop(&mut self.cell.native),
            }
        }
    }
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("family", &self.family.name.as_str())
            .field("labels", &self.labels.as_str())
            .field("value", &self.value())
            .field("state", &self.state)
            .finish()
    }
}

impl Series {
    /// A new series of `family` with zero value, `ttl_secs` (clamped to
    /// [`TTL_MASK`]) and last seen `now`; `None` for a histogram family with
    /// more bounds than a series can count (more than
    /// [`super::MAX_HISTOGRAM_BUCKETS`]).
    pub(super) fn new(
        family: Arc<Family>,
        labels: InlineStr,
        ttl_secs: u64,
        now: u64,
    ) -> Option<Self> {
        let (kind, cell) = match family.kind() {
            FamilyKind::Counter => (Kind::Counter, number()),
            FamilyKind::Gauge => (Kind::Gauge, number()),
            FamilyKind::Set => (
                Kind::Set,
                Cell {
                    set: ManuallyDrop::new(DistinctSet::default()),
                },
            ),
            FamilyKind::Summary => (
                Kind::Summary,
                Cell {
                    summary: ManuallyDrop::new(Box::new(Mutex::new(Summary::new(
                        family.summary(),
                    )))),
                },
            ),
            FamilyKind::Histogram => histogram_cell(family.buckets().len(), family.native())?,
        };
        let ttl = u32::try_from(ttl_secs).unwrap_or(TTL_MASK).min(TTL_MASK);
        Some(Self {
            family,
            labels,
            cell,
            state: AtomicU32::new(ttl | (kind as u32) << KIND_SHIFT),
            last_seen: AtomicU32::new(now as u32),
        })
    }

    /// The family.
    pub fn family(&self) -> &Arc<Family> {
        &self.family
    }

    /// The rendered label pairs (empty when the series has no labels).
    pub fn labels(&self) -> &str {
        &self.labels
    }

    #[inline]
    fn kind(&self) -> Kind {
        // Relaxed: the kind bits are written once, before the series is shared.
        Kind::from_bits((self.state.load(Ordering::Relaxed) >> KIND_SHIFT) & 0b111)
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> SeriesValue<'_> {
        // SAFETY: `kind()` names the field `Series::new` wrote; nothing writes
        // `cell` afterwards (the value is updated through shared references to
        // its atomics and mutex), and it is dropped only with the series.
        unsafe {
            match self.kind() {
                Kind::Counter => SeriesValue::Counter(&self.cell.number),
                Kind::Gauge => SeriesValue::Gauge(&self.cell.number),
                Kind::Set => SeriesValue::Set(&self.cell.set),
                Kind::Summary => SeriesValue::Summary(&self.cell.summary),
                Kind::Histogram => SeriesValue::Histogram(self.cell.histogram.view(), None),
                Kind::Native => {
                    let n: &NativeSeries = &self.cell.native;
                    SeriesValue::Histogram(n.cells.view(), Some(&n.native))
                }
            }
        }
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
        if let SeriesValue::Counter(c) = self.value() {
            c.add_as(d, w);
        }
    }

    /// Set or move a gauge.
    #[inline]
    pub fn gauge_update(&self, v: f64, relative: bool, w: Writers) {
        if let SeriesValue::Gauge(g) = self.value() {
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
        if let SeriesValue::Set(s) = self.value() {
            s.insert(member);
        }
    }

    /// Observe `v` with weight `n` at `now` (store clock seconds).
    #[inline]
    pub fn observe(&self, v: f64, n: u64, now: u64, w: Writers) {
        match self.value() {
            SeriesValue::Histogram(h, native) => {
                let idx = self.family.buckets().partition_point(|b| *b < v);
                if let Some(c) = h.counts().get(idx) {
                    atomic::add_u64(c, n, w);
                }
                h.add_sum(v * n as f64, w);
                if let Some(native) = native {
                    native.observe(v, n, w);
                }
            }
            SeriesValue::Summary(s) => {
                let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.observe(self.family.summary(), now, v, n);
            }
            _ => {}
        }
    }
}

/// A zero counter or gauge.
fn number() -> Cell {
    Cell {
        number: ManuallyDrop::new(AtomicF64::new(0.0)),
    }
}

/// A histogram of `bounds` bounds, all counts and the sum zero, with native
/// buckets as `native` says (classic only when `None`); `None` when `bounds`
/// exceeds [`super::MAX_HISTOGRAM_BUCKETS`].
fn histogram_cell(bounds: usize, native: Option<NativeOptions>) -> Option<(Kind, Cell)> {
    // `bounds + 2` fits in a `u16` exactly when `bounds <= MAX_HISTOGRAM_BUCKETS`.
    let len = u16::try_from(bounds.checked_add(2)?).ok()?;
    let cells = CellsPtr::alloc(len)?;
    Some(match native {
        None => (
            Kind::Histogram,
            Cell {
                histogram: ManuallyDrop::new(cells),
            },
        ),
        Some(n) => (
            Kind::Native,
            Cell {
                native: ManuallyDrop::new(Box::new(NativeSeries {
                    cells,
                    native: SharedNative::new(n),
                })),
            },
        ),
    })
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
        let value = match self.value() {
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
            SeriesValue::Histogram(h, native) => {
                cells.cumulative.clear();
                let mut total = 0u64;
                for c in h.counts() {
                    // Relaxed: see the module's consistency note.
                    total += c.load(Ordering::Relaxed);
                    cells.cumulative.push(total);
                }
                let sum = h.sum();
                // After the classic cells: the native count is at least their total.
                let native = native.map(|n| n.read(&mut cells.spans, &mut cells.deltas));
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
