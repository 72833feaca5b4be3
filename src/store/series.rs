//! Series: a family, rendered labels and a value updated in place (atomic
//! counters and gauges, histogram cells, set registers, a summary behind a
//! small mutex), and how one is handed to an encoder.
//!
//! **Own families.** A label-less series whose family has no other series
//! when it is created, and no TTL, holds its family itself: the family's
//! definition instead of a [`Family`], the family's name where labels would
//! be, and the family's mapping generation and sample count in words an
//! own series has no other use for. At a family per series (an unmapped
//! StatsD client's every name) that is a 64-byte family chunk and a
//! family-index slot less a series. Labelled series that join such a family
//! later share a [`Family`] with the same definition; the own series stays
//! as it is, and readers group series by name and definition, not by
//! [`Family`] (see [`Series::same_family`]).

use super::atomic::{self, AtomicF64, Writers};
use super::family::{Family, FamilyDef};
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

/// A series' family: shared with the family's other series, or, for an own
/// series (see the module's note), only the family's definition. The
/// [`OWN`] bit of the series' state word names the live field.
union Link {
    shared: ManuallyDrop<Arc<Family>>,
    own: ManuallyDrop<Arc<FamilyDef>>,
}

/// How two series' families stand to each other (see
/// [`Series::family_match`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyMatch {
    /// One family.
    Same,
    /// Two families of one name: one a reload replaced, and its successor.
    SameName,
    /// Two families.
    Other,
}

/// Whom a new series belongs to (see [`Series::new`]).
pub(super) enum Owner {
    /// A family shared by its series.
    Shared(Arc<Family>),
    /// The series holds its family (no TTL, no labels): this definition, at
    /// this mapping generation.
    Own(Arc<FamilyDef>, u32),
}

/// One series: a family, a label set, a value.
pub struct Series {
    link: Link,
    /// Labels rendered once, `k="v",k2="v2"`, sorted by name and escaped;
    /// kept in place when short (no allocation for `id="123456"`). An own
    /// series has no labels, and keeps its family's name here.
    text: InlineStr,
    cell: Cell,
    /// The retired flag ([`RETIRED`], set once), the [`OWN`] flag and the
    /// value's [`Kind`] (3 bits), both fixed at creation, and in the low 27
    /// bits a copy of the family's TTL in seconds (fixed at creation), so the
    /// hot path does not chase the family pointer. An own series has no TTL:
    /// its low bits hold its family's mapping generation instead.
    pub(super) state: AtomicU32,
    /// Store clock second of the last update (only kept when the TTL is not
    /// 0). An own series keeps its family's sample count here instead.
    last_seen: AtomicU32,
}

/// The bit of [`Series::state`] set when the series is removed from the store.
pub(super) const RETIRED: u32 = 1 << 31;
/// Where the value's [`Kind`] sits in [`Series::state`].
const KIND_SHIFT: u32 = 28;
/// The bit of [`Series::state`] set when the series holds its own family.
const OWN: u32 = 1 << 27;
/// The bits of [`Series::state`] holding the TTL in seconds (at most
/// 2^27 - 1 seconds, four years and three months), or an own series' family
/// generation (saturating there: 134 million reloads).
pub(super) const TTL_MASK: u32 = OWN - 1;

impl Drop for Series {
    fn drop(&mut self) {
        // SAFETY: `is_own()` and `kind()` name the fields `Series::new`
        // wrote, each dropped here once: the series is being dropped.
        unsafe {
            if self.is_own() {
                ManuallyDrop::drop(&mut self.link.own);
            } else {
                ManuallyDrop::drop(&mut self.link.shared);
            }
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
            .field("family", &self.family_name())
            .field("labels", &self.labels())
            .field("value", &self.value())
            .field("state", &self.state)
            .finish()
    }
}

impl Series {
    /// A new series of `owner`'s family with zero value, last seen `now`,
    /// and `text` for its labels (for an own series: its family's name); the
    /// family's TTL is copied, clamped to [`TTL_MASK`]. `None` for a
    /// histogram family with more bounds than a series can count (more than
    /// [`super::MAX_HISTOGRAM_BUCKETS`]).
    pub(super) fn new(owner: Owner, text: InlineStr, now: u64) -> Option<Self> {
        let def: &FamilyDef = match &owner {
            Owner::Shared(f) => &f.def,
            Owner::Own(def, _) => def,
        };
        let (kind, cell) = match def.kind {
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
                    summary: ManuallyDrop::new(Box::new(Mutex::new(Summary::new(&def.summary)))),
                },
            ),
            FamilyKind::Histogram => histogram_cell(def.buckets.len(), def.native)?,
        };
        let ttl = u32::try_from(def.ttl_secs)
            .unwrap_or(TTL_MASK)
            .min(TTL_MASK);
        let (link, low, last_seen) = match owner {
            Owner::Shared(f) => (
                Link {
                    shared: ManuallyDrop::new(f),
                },
                ttl,
                now as u32,
            ),
            // The store makes own series only in families without a TTL.
            Owner::Own(def, generation) => (
                Link {
                    own: ManuallyDrop::new(def),
                },
                OWN | generation.min(TTL_MASK),
                0,
            ),
        };
        Some(Self {
            link,
            text,
            cell,
            state: AtomicU32::new(low | (kind as u32) << KIND_SHIFT),
            last_seen: AtomicU32::new(last_seen),
        })
    }

    /// Whether the series holds its own family (see the module's note).
    #[inline]
    pub fn is_own(&self) -> bool {
        // Relaxed: the bit is written once, before the series is shared.
        self.state.load(Ordering::Relaxed) & OWN != 0
    }

    /// The family this series shares with others; `None` for an own series.
    #[inline]
    pub fn shared_family(&self) -> Option<&Arc<Family>> {
        // SAFETY: `is_own()` names the field `Series::new` wrote; nothing
        // writes `link` afterwards, and it is dropped only with the series.
        (!self.is_own()).then(|| unsafe { &*self.link.shared })
    }

    /// The family's definition (type, HELP, buckets, summary options, TTL).
    #[inline]
    pub(super) fn def(&self) -> &FamilyDef {
        // SAFETY: as in `shared_family`.
        unsafe {
            if self.is_own() {
                &self.link.own
            } else {
                &self.link.shared.def
            }
        }
    }

    /// The definition as the shared handle an own series keeps; `None` for
    /// a series of a shared family.
    pub(super) fn own_def(&self) -> Option<&Arc<FamilyDef>> {
        // SAFETY: as in `shared_family`.
        self.is_own().then(|| unsafe { &*self.link.own })
    }

    /// The family's name.
    #[inline]
    pub fn family_name(&self) -> &str {
        match self.shared_family() {
            Some(f) => &f.name,
            None => &self.text,
        }
    }

    /// The rendered label pairs (empty when the series has no labels).
    #[inline]
    pub fn labels(&self) -> &str {
        if self.is_own() {
            ""
        } else {
            &self.text
        }
    }

    /// Where the series' text (labels, or an own series' family name) sits,
    /// for a prefetch.
    #[inline]
    pub(super) fn text_ptr(&self) -> *const u8 {
        self.text.as_ptr()
    }

    /// What the family aggregates.
    #[inline]
    pub fn family_kind(&self) -> FamilyKind {
        self.def().kind
    }

    /// The family as every output sees it.
    #[inline]
    pub fn head(&self) -> FamilyHead<'_> {
        let def = self.def();
        FamilyHead {
            name: self.family_name(),
            kind: def.kind.metric_kind(),
            help: &def.help,
        }
    }

    /// Whether `other` is of the same family: the same name and the same
    /// (interned) definition. An own series and the shared family that
    /// labelled series joined it in are one family; a family a reload
    /// replaced and its successor are two.
    #[inline]
    pub fn same_family(&self, other: &Series) -> bool {
        self.family_match(other) == FamilyMatch::Same
    }

    /// How `other`'s family stands to this one's: [`Series::same_family`],
    /// or only the same name (a family a reload replaced, and its
    /// successor), or neither; the name compared once.
    #[inline]
    pub fn family_match(&self, other: &Series) -> FamilyMatch {
        if let (Some(a), Some(b)) = (self.shared_family(), other.shared_family()) {
            // The common case, without comparing names.
            if Arc::ptr_eq(a, b) {
                return FamilyMatch::Same;
            }
        }
        if self.family_name() != other.family_name() {
            FamilyMatch::Other
        } else if std::ptr::eq(self.def(), other.def()) {
            FamilyMatch::Same
        } else {
            FamilyMatch::SameName
        }
    }

    /// Whether this series is of the family `owner` names: that shared
    /// family, or (an own series joined by it) its definition; or, for an
    /// own owner, its definition.
    pub(super) fn belongs_to(&self, owner: &Owner) -> bool {
        match (owner, self.shared_family(), self.own_def()) {
            (Owner::Shared(f), Some(g), _) => Arc::ptr_eq(f, g),
            (Owner::Shared(f), None, Some(d)) => Arc::ptr_eq(&f.def, d),
            (Owner::Own(def, _), None, Some(d)) => Arc::ptr_eq(def, d),
            _ => false,
        }
    }

    /// Whether `m` read as `kind` defines this series' family.
    pub(super) fn same_definition(&self, kind: FamilyKind, m: &crate::model::Mapping) -> bool {
        self.def().matches(kind, m)
    }

    /// Count one sample of the family, as `w` allows (see [`Writers`]).
    #[inline]
    pub fn count_sample(&self, w: Writers) {
        match self.shared_family() {
            Some(f) => f.count_sample(w),
            None => atomic::add_u32_wrapping(&self.last_seen, w),
        }
    }

    /// An own series' count of its family's samples, modulo 2^32 (0 for a
    /// series of a shared family, whose family counts them).
    pub(super) fn own_samples(&self) -> u32 {
        if self.is_own() {
            // Relaxed: an independent counter, read for rates.
            self.last_seen.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// An own series' family generation (see [`Family`]'s).
    pub(super) fn own_generation(&self) -> u32 {
        // Relaxed: only read and raised under the store's family lock.
        self.state.load(Ordering::Relaxed) & TTL_MASK
    }

    /// Raise an own series' family generation to `generation` (saturating
    /// at [`TTL_MASK`]); the caller holds the store's family lock.
    pub(super) fn raise_own_generation(&self, generation: u32) {
        let g = generation.min(TTL_MASK);
        // Relaxed: the generation is only read under the family lock; the
        // update keeps the other bits (a concurrent retirement's included).
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s & TTL_MASK < g).then_some((s & !TTL_MASK) | g)
            });
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
        // Relaxed: the TTL and own bits are written once, before the series
        // is shared.
        let state = self.state.load(Ordering::Relaxed);
        if state & OWN != 0 {
            0
        } else {
            state & TTL_MASK
        }
    }

    /// Whether the series has a TTL and went without an update for that
    /// long as of `now` (store clock seconds).
    pub(super) fn expired(&self, now: u64) -> bool {
        let ttl = self.ttl_secs();
        // Relaxed: see `touch`.
        ttl != 0
            && now.saturating_sub(u64::from(self.last_seen.load(Ordering::Relaxed)))
                >= u64::from(ttl)
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
                let idx = self.def().buckets.partition_point(|b| *b < v);
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
                s.observe(&self.def().summary, now, v, n);
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
        let labels = Labels::Rendered(self.labels());
        let f = self.def();
        let value = match self.value() {
            SeriesValue::Counter(c) => Value::Counter(c.load()),
            SeriesValue::Gauge(g) => Value::Gauge(g.load()),
            SeriesValue::Set(set) => Value::Gauge(set.estimate()),
            SeriesValue::Summary(m) => {
                let qs = &f.summary.quantiles;
                cells.estimates.clear();
                cells.estimates.resize(qs.len(), 0.0);
                let (sum, count) = {
                    let sm = m.lock().unwrap_or_else(PoisonError::into_inner);
                    sm.quantiles(&f.summary, now, qs, &mut cells.estimates);
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
                    bounds: &f.buckets,
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
