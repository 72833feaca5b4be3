//! Families: a name and a definition (type, HELP, buckets, summary options,
//! TTL) that the store interns and shares between families defined alike.

use super::inline::InlineStr;
use super::summary::SummaryOptions;
use super::{FamilyKind, SeriesArc};
use crate::model::collect::FamilyHead;
use crate::model::{Mapping, NativeOptions};
use hashbrown::HashTable;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A metric family: a name, its type, its HELP text and its observer settings.
///
/// 40 bytes (a 64-byte chunk with the `Arc`'s counts): the type, HELP text and
/// observer settings sit in one immutable record that the store shares between
/// all families defined alike.
#[derive(Debug)]
pub struct Family {
    /// The family name (in place when short).
    pub name: InlineStr,
    /// Type, HELP text and observer settings, interned by the store.
    pub(super) def: Arc<FamilyDef>,
    /// The mapping generation that last resolved a sample to this family
    /// (saturating at `u32::MAX`: four billion reloads).
    pub(super) generation: AtomicU32,
    /// Samples recorded into the family's series, wrapping: the operator view
    /// takes rates from it ([`Family::samples`]), nothing reads it as a total.
    pub(super) samples: AtomicU32,
}

/// A mapping generation as a family keeps it.
pub(super) fn generation32(g: u64) -> u32 {
    u32::try_from(g).unwrap_or(u32::MAX)
}

/// What a family is apart from its name: fixed when the family is created, and
/// shared between families with equal definitions (see [`Families::intern`]).
#[derive(Debug)]
pub(super) struct FamilyDef {
    /// What the family aggregates.
    pub(super) kind: FamilyKind,
    /// HELP text.
    pub(super) help: Arc<str>,
    /// Histogram upper bounds (ascending, finite).
    pub(super) buckets: Arc<[f64]>,
    /// A histogram's native buckets (`None`: classic only).
    pub(super) native: Option<NativeOptions>,
    /// Summary window and quantiles.
    pub(super) summary: Arc<SummaryOptions>,
    /// Seconds without an update after which a series is removed; 0 = never.
    pub(super) ttl_secs: u64,
}

impl FamilyDef {
    /// Whether `m` read as `kind` defines this family (as a reload compares).
    pub(super) fn matches(&self, kind: FamilyKind, m: &Mapping) -> bool {
        self.kind == kind
            && *self.help == *m.help
            && *self.buckets == *m.buckets
            && (kind != FamilyKind::Histogram || self.native == m.native)
            && *self.summary == *m.summary
            && self.ttl_secs == m.ttl_secs
    }
}

/// The interning hash of a definition: only parts whose equality `matches`
/// implies (not the bounds' bits: `0.0 == -0.0`).
pub(super) fn def_hash(
    hasher: &foldhash::fast::RandomState,
    kind: FamilyKind,
    help: &str,
    ttl_secs: u64,
    bounds: usize,
) -> u64 {
    hasher.hash_one((kind, help, ttl_secs, bounds))
}

/// The store's families by name, and their interned definitions.
#[derive(Debug, Default)]
pub(super) struct Families {
    /// The shared families. (An own family is found as its series, in the
    /// store's series index: see [`super::Store::own_series`].)
    pub(super) by_name: HashSet<ByName>,
    /// Every definition in use (and some no longer in use, until the next prune).
    pub(super) defs: HashTable<Arc<FamilyDef>>,
    /// `defs.len()` after the last prune; the next prune comes when it has doubled.
    pub(super) pruned_len: usize,
}

/// Fewest definitions kept before the first prune.
pub(super) const MIN_DEFS_BEFORE_PRUNE: usize = 16;

impl Families {
    /// A new shared family `name` of definition `def`, last resolved in
    /// mapping generation `generation`, in the set.
    pub(super) fn add(&mut self, name: &str, def: Arc<FamilyDef>, generation: u32) -> Arc<Family> {
        let family = Arc::new(Family {
            name: InlineStr::from(name),
            def,
            generation: AtomicU32::new(generation),
            samples: AtomicU32::new(0),
        });
        self.by_name.insert(ByName(Arc::clone(&family)));
        family
    }

    /// The definition of `m` read as `kind`: an equal one already in use, or a
    /// new one.
    pub(super) fn intern(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        kind: FamilyKind,
        m: &Mapping,
    ) -> Arc<FamilyDef> {
        let hash = def_hash(hasher, kind, &m.help, m.ttl_secs, m.buckets.len());
        if let Some(d) = self.defs.find(hash, |d| d.matches(kind, m)) {
            return Arc::clone(d);
        }
        // Reloads leave definitions behind: drop those only this table holds
        // (no family refers to them) once the table has doubled since the last
        // prune, so the work is linear in the inserts. A count of 1 cannot rise
        // meanwhile: new references are only taken here, under the lock.
        if self.defs.len() >= (2 * self.pruned_len).max(MIN_DEFS_BEFORE_PRUNE) {
            self.defs.retain(|d| Arc::strong_count(d) > 1);
            self.pruned_len = self.defs.len();
        }
        let def = Arc::new(FamilyDef {
            kind,
            help: Arc::clone(&m.help),
            buckets: Arc::clone(&m.buckets),
            native: (kind == FamilyKind::Histogram)
                .then_some(m.native)
                .flatten(),
            summary: Arc::clone(&m.summary),
            ttl_secs: m.ttl_secs,
        });
        self.defs.insert_unique(hash, Arc::clone(&def), |d| {
            def_hash(hasher, d.kind, &d.help, d.ttl_secs, d.buckets.len())
        });
        def
    }
}

/// A family as the store's readers hold it: its shared [`Family`], its own
/// series (see [`super::Series`]), or both (a label-less series that was
/// its family's only one, joined by labelled ones). At least one is there.
#[derive(Clone, Debug)]
pub struct FamilyHandle(Parts);

#[derive(Clone, Debug)]
enum Parts {
    Shared(Arc<Family>),
    Own(SeriesArc),
    /// A shared family and the own series it joined.
    Joined(Arc<Family>, SeriesArc),
}

impl FamilyHandle {
    /// The handle of a family's shared part, its own series, or both;
    /// `None` when neither is there.
    pub(super) fn from_parts(shared: Option<Arc<Family>>, own: Option<SeriesArc>) -> Option<Self> {
        Some(Self(match (shared, own) {
            (Some(f), Some(s)) => Parts::Joined(f, s),
            (Some(f), None) => Parts::Shared(f),
            (None, Some(s)) => Parts::Own(s),
            (None, None) => return None,
        }))
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        match &self.0 {
            Parts::Shared(f) | Parts::Joined(f, _) => &f.name,
            Parts::Own(s) => s.family_name(),
        }
    }

    /// What the family aggregates.
    pub fn kind(&self) -> FamilyKind {
        match &self.0 {
            Parts::Shared(f) | Parts::Joined(f, _) => f.kind(),
            Parts::Own(s) => s.family_kind(),
        }
    }

    /// Samples recorded so far, modulo 2^32: two readings a second or more
    /// apart give a rate (`wrapping_sub`).
    pub fn samples(&self) -> u32 {
        match &self.0 {
            Parts::Shared(f) => f.samples(),
            Parts::Own(s) => s.own_samples(),
            Parts::Joined(f, s) => f.samples().wrapping_add(s.own_samples()),
        }
    }

    /// Whether both handles hold the same parts.
    pub fn same(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Parts::Shared(a), Parts::Shared(b)) => Arc::ptr_eq(a, b),
            (Parts::Own(a), Parts::Own(b)) => SeriesArc::ptr_eq(a, b),
            (Parts::Joined(a, s), Parts::Joined(b, t)) => {
                Arc::ptr_eq(a, b) && SeriesArc::ptr_eq(s, t)
            }
            _ => false,
        }
    }
}

/// A family in the store's set, found by its name: the name is kept once, in
/// the family, instead of again as a map key.
#[derive(Debug)]
pub(super) struct ByName(pub(super) Arc<Family>);

impl std::borrow::Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl std::hash::Hash for ByName {
    /// As the name's `str` hash, so that lookups by `&str` find it.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.name.as_str().hash(h);
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByName {}

impl Family {
    pub(super) fn same_definition(&self, kind: FamilyKind, m: &Mapping) -> bool {
        self.def.matches(kind, m)
    }

    /// What the family aggregates.
    #[inline]
    pub fn kind(&self) -> FamilyKind {
        self.def.kind
    }

    /// HELP text.
    pub fn help(&self) -> &str {
        &self.def.help
    }

    /// The family as every output sees it.
    pub fn head(&self) -> FamilyHead<'_> {
        FamilyHead {
            name: &self.name,
            kind: self.kind().metric_kind(),
            help: self.help(),
        }
    }

    /// Histogram upper bounds (ascending, finite), fixed when the family is created.
    #[inline]
    pub fn buckets(&self) -> &[f64] {
        &self.def.buckets
    }

    /// A histogram's native buckets (`None`: classic only).
    pub fn native(&self) -> Option<NativeOptions> {
        self.def.native
    }

    /// Summary window and quantiles.
    pub fn summary(&self) -> &SummaryOptions {
        &self.def.summary
    }

    /// Seconds without an update after which a series is removed; 0 = never.
    pub fn ttl_secs(&self) -> u64 {
        self.def.ttl_secs
    }

    /// Samples recorded so far, modulo 2^32: two readings a second or more
    /// apart give a rate (`wrapping_sub`).
    pub fn samples(&self) -> u32 {
        // Relaxed: an independent counter, read for rates.
        self.samples.load(Ordering::Relaxed)
    }

    /// Count one sample, as `w` allows (see [`super::atomic::Writers`]).
    #[inline]
    pub fn count_sample(&self, w: super::atomic::Writers) {
        super::atomic::add_u32_wrapping(&self.samples, w);
    }
}
