//! The walk over the store in page order, in steps: a [`Walk`] remembers where
//! it stands, so a scrape can encode a bounded part of the page, send it, and
//! come back for the next part without holding any lock in between.
//!
//! The series are kept in one list sorted by family name, then labels
//! ([`Sorted`]). Starting a walk merges the series created since the last start
//! and drops removed ones; each step locks the list only while it encodes. When
//! another walk has changed the list between two steps, the walk finds its place
//! again after the last series it encoded (a binary search), so every series is
//! encoded at most once and families stay whole. Series created after a walk
//! started may or may not be on its page; a family replaced by a reload during
//! a walk keeps its old series on that page and shows the new ones on the next.

use super::pushed::PushedView;
use super::{Cells, FamilyHandle, FamilyMatch, SeriesArc, Store};
use crate::model::collect::{Encoder, FamilyHead, SelfFamily};
use std::cmp::Ordering as CmpOrdering;
use std::sync::{MutexGuard, PoisonError};

/// The render order, shared by every walk.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    /// The store's `removals` count the list was last filtered at.
    removals: u64,
    /// Bumped whenever the list changes, so a walk knows to find its place.
    generation: u64,
    /// Every series, sorted by [`cmp_series`].
    list: Vec<SeriesArc>,
}

/// How far ahead of the series being encoded a walk asks the CPU for the next
/// series' memory, and then for their label text.
const SERIES_AHEAD: usize = 8;
const LABELS_AHEAD: usize = 4;

/// Prefetch the series `SERIES_AHEAD` places after `i` (both cache lines of
/// its `Arc`), and the label text of the one `LABELS_AHEAD` after it, whose
/// series was prefetched earlier. A walk in name order visits series in an
/// order unrelated to where they sit in memory, so each one is a cache miss;
/// an encoder does enough work per series that the CPU no longer overlaps
/// those misses by itself. Measured with `cargo bench --bench render`
/// (BENCHMARKS.md, 2026-12-06).
#[inline(always)]
fn prefetch_ahead(series: &[SeriesArc], i: usize) {
    if let Some(next) = series.get(i + SERIES_AHEAD) {
        let p = next.as_ptr().cast::<u8>();
        crate::sys::prefetch(p);
        crate::sys::prefetch(p.wrapping_add(64));
    }
    if let Some(next) = series.get(i + LABELS_AHEAD) {
        crate::sys::prefetch(next.text_ptr());
    }
}

/// Page order: family name, then labels.
pub(super) fn cmp_series(a: &SeriesArc, b: &SeriesArc) -> CmpOrdering {
    a.family_name()
        .cmp(b.family_name())
        .then_with(|| a.labels().cmp(b.labels()))
}

/// The self-metric and pushed families, each sorted by name, waiting for their
/// turn among the StatsD families.
#[derive(Debug, Default)]
struct SmallSources {
    own: Vec<SelfFamily>,
    own_next: usize,
    pushed: Vec<PushedView>,
    pushed_next: usize,
}

impl SmallSources {
    /// Encode every family that sorts before `name` (all of them for `None`),
    /// in order; return the index of the pushed family named `name`, if any,
    /// for the caller to encode inside its StatsD family.
    fn before(&mut self, name: Option<&str>, enc: &mut impl Encoder) -> Option<usize> {
        let below = |n: &str| name.is_none_or(|name| n < name);
        loop {
            let own = self.own.get(self.own_next);
            let pushed = self.pushed.get(self.pushed_next);
            let next_own = own.map(|f| f.name).filter(|n| below(n));
            let next_pushed = pushed.map(|v| &*v.name).filter(|n| below(n));
            let own_first = match (next_own, next_pushed) {
                (None, None) => {
                    let same = pushed.is_some_and(|v| name.is_some_and(|n| *v.name == *n));
                    return same.then(|| {
                        self.pushed_next += 1;
                        self.pushed_next - 1
                    });
                }
                (Some(o), Some(p)) => o < p,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if let (true, Some(f)) = (own_first, own) {
                f.encode(enc);
                self.own_next += 1;
            } else if let Some(v) = pushed {
                v.encode(enc);
                self.pushed_next += 1;
            }
        }
    }

    /// Encode the series of the pushed family at `i` (one [`Self::before`]
    /// returned).
    fn encode_attached(&self, i: usize, enc: &mut impl Encoder) {
        if let Some(v) = self.pushed.get(i) {
            v.encode_series(enc);
        }
    }
}

/// Where a page stands: what is left of the small sources, the StatsD family
/// being encoded, and the place in the sorted list.
#[derive(Debug)]
pub struct Walk {
    /// Store clock seconds at the start (the summary window reads it).
    now: u64,
    small: SmallSources,
    cells: Cells,
    /// The index of the next series in the list, valid for `generation`.
    next: usize,
    generation: u64,
    /// The series encoded last, to find the place again in a changed list.
    last: Option<SeriesArc>,
    /// The first series of the StatsD family being encoded (which holds
    /// the family: see [`super::Series::same_family`]).
    current: Option<SeriesArc>,
    /// The pushed family of the same name, encoded when `current` ends.
    attached: Option<usize>,
    /// Every StatsD series is done; only the small sources may be left.
    series_done: bool,
    done: bool,
}

impl Walk {
    /// Whether the whole page has been encoded.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Store {
    /// The sorted list, brought up to date: removed series dropped, series
    /// created since the last call sorted on their own and merged in (so a
    /// scrape of a stable store does not sort at all).
    fn sorted_now(&self) -> MutexGuard<'_, Sorted> {
        let mut sorted = self.sorted.lock().unwrap_or_else(PoisonError::into_inner);
        let removals = self.removals();
        if removals != sorted.removals {
            sorted.list.retain(|s| !s.is_retired());
            sorted.removals = removals;
            sorted.generation += 1;
        }
        let mut fresh =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        // A series removed before its first scrape never joins the order (else
        // it, its family and definition stay until the next removal).
        fresh.retain(|s| !s.is_retired());
        if !fresh.is_empty() {
            fresh.sort_by(cmp_series);
            // Two sorted runs: the stable sort merges them in linear time.
            sorted.list.append(&mut fresh);
            sorted.list.sort_by(cmp_series);
            sorted.generation += 1;
        }
        sorted
    }

    /// Call `f` with every series, sorted by family name then labels (some
    /// may have been retired since the list was filtered).
    pub fn with_sorted<R>(&self, f: impl FnOnce(&[SeriesArc]) -> R) -> R {
        f(&self.sorted_now().list)
    }

    /// Start a page: the series list brought up to date, the self-metrics and
    /// the pushed families read now.
    pub fn walk(&self) -> Walk {
        let generation = self.sorted_now().generation;
        Walk {
            now: self.clock.tick(),
            small: SmallSources {
                own: self.self_families(),
                pushed: self.pushed_view(),
                ..SmallSources::default()
            },
            cells: Cells::default(),
            next: 0,
            generation,
            last: None,
            current: None,
            attached: None,
            series_done: false,
            done: false,
        }
    }

    /// Hand every family to `enc`, in name order: the StatsD series, the pushed
    /// families and the self-metrics, merged. A pushed family with the name of
    /// a StatsD family (the push API made sure the types agree) comes inside
    /// that family, after its StatsD series, so no family appears twice.
    ///
    /// The list is locked a few thousand series at a time, so a scrape
    /// streaming its page goes on meanwhile.
    pub fn collect(&self, enc: &mut impl Encoder) {
        let mut walk = self.walk();
        while !walk.is_done() {
            let mut n = 0u32;
            self.resume(&mut walk, enc, |_| {
                n += 1;
                n > 4096
            });
        }
    }

    /// Encode the next part of `walk`'s page into `enc`, until `full(enc)`
    /// says so (asked before each series; at least one is encoded per call).
    /// The self-metric and pushed families between two StatsD families go out
    /// whole. Once the page is complete, [`Walk::is_done`] is true.
    pub fn resume<E: Encoder>(&self, walk: &mut Walk, enc: &mut E, full: impl FnMut(&E) -> bool) {
        if !walk.series_done {
            self.resume_series(walk, enc, full);
            if !walk.series_done {
                return;
            }
        }
        if !walk.done {
            if let Some(i) = walk.attached.take() {
                walk.small.encode_attached(i, enc);
            }
            walk.current = None;
            walk.last = None;
            walk.small.before(None, enc);
            walk.done = true;
        }
    }

    fn resume_series<E: Encoder>(
        &self,
        walk: &mut Walk,
        enc: &mut E,
        mut full: impl FnMut(&E) -> bool,
    ) {
        let sorted = self.sorted.lock().unwrap_or_else(PoisonError::into_inner);
        let list = &sorted.list;
        if sorted.generation != walk.generation {
            walk.next = walk.last.as_ref().map_or(0, |last| {
                list.partition_point(|s| cmp_series(s, last) != CmpOrdering::Greater)
            });
            walk.generation = sorted.generation;
        }
        let mut head: Option<FamilyHead<'_>> = None;
        let mut first = true;
        while let Some(s) = list.get(walk.next) {
            if !first && full(enc) {
                walk.last = Some(SeriesArc::clone(&list[walk.next - 1]));
                return;
            }
            first = false;
            prefetch_ahead(list, walk.next);
            walk.next += 1;
            if s.is_retired() {
                continue;
            }
            let seen = walk.current.as_ref().map(|c| c.family_match(s));
            let h = match (seen, head) {
                (Some(FamilyMatch::Same), Some(h)) => h,
                (Some(FamilyMatch::Same), None) => *head.insert(s.head()),
                // Replaced by a reload while this page was being sent: its
                // new series are on the next page (a family appears once).
                (Some(FamilyMatch::SameName), _) => continue,
                _ => {
                    if let Some(i) = walk.attached.take() {
                        walk.small.encode_attached(i, enc);
                    }
                    walk.attached = walk.small.before(Some(s.family_name()), enc);
                    let h = s.head();
                    enc.family(h);
                    walk.current = Some(SeriesArc::clone(s));
                    *head.insert(h)
                }
            };
            s.encode(h, walk.now, &mut walk.cells, enc);
        }
        walk.series_done = true;
    }
}

/// A family and how many series it has, as [`Store::top_families`] ranks them.
#[derive(Clone, Debug)]
pub struct FamilyRank {
    /// The family.
    pub family: FamilyHandle,
    /// Its series in the store when counted.
    pub series: usize,
}

impl PartialEq for FamilyRank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for FamilyRank {}

impl PartialOrd for FamilyRank {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for FamilyRank {
    /// More series first, then by name: "greater" ranks higher.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.series
            .cmp(&other.series)
            .then_with(|| other.family.name().cmp(self.family.name()))
    }
}

impl Store {
    /// The `k` families with the most series, most first (ties by name),
    /// and the number of families seen. One pass over the sorted list,
    /// counting runs of one family, with a heap of `k`: no sort and no
    /// allocation per family, however many there are.
    pub fn top_families(&self, k: usize) -> (Vec<FamilyRank>, usize) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut heap: BinaryHeap<Reverse<FamilyRank>> = BinaryHeap::with_capacity(k + 1);
        let mut families = 0;
        // A run is named by its first series and by its first of a shared
        // family, if any (an own series joined by labelled ones: one family).
        let mut offer = |first: &SeriesArc, shared: Option<&SeriesArc>, series: usize| {
            families += 1;
            let beats_min = heap.peek().is_none_or(|Reverse(min)| {
                (series, min.family.name()) > (min.series, first.family_name())
            });
            if heap.len() < k || beats_min {
                let shared = shared.or(Some(first)).and_then(|s| s.shared_family());
                let own = first.is_own().then(|| SeriesArc::clone(first));
                if let Some(family) = FamilyHandle::from_parts(shared.cloned(), own) {
                    heap.push(Reverse(FamilyRank { family, series }));
                }
                if heap.len() > k {
                    heap.pop();
                }
            }
        };
        self.with_sorted(|list| {
            let mut run: Option<(&SeriesArc, Option<&SeriesArc>, usize)> = None;
            for (i, s) in list.iter().enumerate() {
                if let Some(next) = list.get(i + SERIES_AHEAD) {
                    crate::sys::prefetch(next.as_ptr().cast::<u8>());
                }
                if s.is_retired() {
                    continue;
                }
                match &mut run {
                    Some((first, shared, n)) if first.same_family(s) => {
                        *n += 1;
                        if shared.is_none() && !s.is_own() {
                            *shared = Some(s);
                        }
                    }
                    _ => {
                        if let Some((first, shared, n)) = run.take() {
                            offer(first, shared, n);
                        }
                        run = Some((s, None, 1));
                    }
                }
            }
            if let Some((first, shared, n)) = run {
                offer(first, shared, n);
            }
        });
        let mut out: Vec<FamilyRank> = heap.into_iter().map(|Reverse(r)| r).collect();
        out.sort_by(|a, b| b.cmp(a));
        (out, families)
    }
}
