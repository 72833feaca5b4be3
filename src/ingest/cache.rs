//! The known-series cache of one ingest thread: from a sample's raw key
//! (type, name section, DogStatsD tags, container id) to the series it
//! resolved to, or to why it resolved to none.

use crate::parser::Sample;
use crate::store::inline::InlineBytes;
use crate::store::{Series, SeriesArc};
use crate::sys::prefetch;
use std::hash::{BuildHasher, Hasher};

/// Why a key resolved to no series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Miss {
    /// Dropped by the mapping.
    Drop,
    /// The family exists with another type; its slot among the conflict
    /// counter's names ([`crate::ingest::stats::IngestStats::conflict_slot`]).
    Conflict(u8),
    /// The mapping produced an empty name.
    EmptyName,
    /// Refused at the series limit. Remembered (at most [`MAX_REFUSED`] keys, and
    /// forgotten whenever series are removed) so that a client that keeps sending
    /// a refused series costs a lookup per sample, not a mapping.
    Refused,
}

impl Miss {
    /// The one-byte form an [`Entry`] keeps.
    fn code(self) -> u8 {
        match self {
            Self::Drop => 0,
            Self::EmptyName => 1,
            Self::Refused => 2,
            Self::Conflict(slot) => slot.saturating_add(3),
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Drop,
            1 => Self::EmptyName,
            2 => Self::Refused,
            c => Self::Conflict(c - 3),
        }
    }
}

// A conflict slot (at most `MAX_CONFLICT_NAMES`) fits `Miss::code`'s byte.
const _: () = assert!(super::stats::MAX_CONFLICT_NAMES + 3 <= u8::MAX as usize);

/// Most refused keys the cache remembers (about 0.5 MB) until series are
/// removed; later refusals are mapped each time, so a flood of new names past
/// the limit cannot grow the cache.
pub(super) const MAX_REFUSED: usize = 4096;

/// Most distinct mapping `scale`s the cache can name (an entry holds an index).
pub(super) const MAX_SCALES: usize = 256;

/// A key's resolution, before it is cached.
#[derive(Debug)]
pub(super) struct Resolved {
    pub(super) target: Result<SeriesArc, Miss>,
    /// The mapping's `scale` (1 when none).
    pub(super) scale: f64,
    /// Malformed tags in the key, counted again for every sample.
    pub(super) tag_errors: u32,
    pub(super) has_tags: bool,
}

/// What applying a sample needs to know about its key, cached or not.
#[derive(Clone, Copy, Debug)]
pub(super) struct Answer<'a> {
    pub(super) target: Result<&'a Series, Miss>,
    pub(super) scale: f64,
    pub(super) tag_errors: u32,
    pub(super) has_tags: bool,
}

impl Resolved {
    pub(super) fn answer(&self) -> Answer<'_> {
        Answer {
            target: self.target.as_deref().map_err(|m| *m),
            scale: self.scale,
            tag_errors: self.tag_errors,
            has_tags: self.has_tags,
        }
    }
}

/// One cached key: 40 bytes, so that a million of them cost 40 MB (plus the
/// index, see [`Cache`]). A [`Resolved`] with its key, narrowed: its hash is
/// not kept (the index holds it, and [`Cache`] computes it again from the key
/// on the rare occasions it needs it).
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) series: Option<SeriesArc>,
    /// The name section, DogStatsD tags and container id, one after the other
    /// (`name_len` and `tags_len` split them); in place when short.
    pub(super) key: InlineBytes,
    pub(super) name_len: u16,
    pub(super) tags_len: u16,
    pub(super) tag_errors: u8,
    /// The scale, as an index into [`Cache::scales`] (0 is 1).
    pub(super) scale: u8,
    /// The metric type's code ([`crate::parser::MetricType::code`], ASCII),
    /// and [`HAS_TAGS`].
    flags: u8,
    /// Why there is no series (when `series` is `None`), as [`Miss::code`].
    miss: u8,
}

/// The bit of [`Entry::flags`] saying the key had tags.
const HAS_TAGS: u8 = 0x80;

impl Entry {
    /// The entry for `s`, or `None` when a length or count does not fit the
    /// narrow fields (a name or tag section of 64 KiB, or more than 255
    /// malformed tags: such keys are mapped on every sample instead).
    pub(super) fn new(s: &Sample<'_>, r: Resolved, scale: u8) -> Option<Self> {
        // Checked before the key is copied (and maybe allocated).
        let name_len = u16::try_from(s.name_section.len()).ok()?;
        let tags_len = u16::try_from(s.dog_tags.len()).ok()?;
        let tag_errors = u8::try_from(r.tag_errors).ok()?;
        let (series, miss) = match r.target {
            // `miss` is not read when there is a series.
            Ok(series) => (Some(series), Miss::Drop),
            Err(miss) => (None, miss),
        };
        Some(Self {
            key: InlineBytes::concat(&[s.name_section, s.dog_tags, s.container_id]),
            name_len,
            tags_len,
            tag_errors,
            scale,
            flags: s.metric_type.code() | if r.has_tags { HAS_TAGS } else { 0 },
            miss: miss.code(),
            series,
        })
    }

    /// The metric type's code.
    #[inline]
    fn code(&self) -> u8 {
        self.flags & !HAS_TAGS
    }

    /// Why there is no series (meaningless when there is one).
    pub(super) fn miss(&self) -> Miss {
        Miss::from_code(self.miss)
    }

    /// The name section, tags and container id.
    #[inline]
    fn parts(&self) -> (&[u8], &[u8], &[u8]) {
        let (n, d) = (usize::from(self.name_len), usize::from(self.tags_len));
        let key = self.key.as_bytes();
        let (name, rest) = key.split_at_checked(n).unwrap_or((key, &[]));
        let (tags, id) = rest.split_at_checked(d).unwrap_or((rest, &[]));
        (name, tags, id)
    }

    /// True if this entry is `s`'s key.
    #[inline]
    pub(super) fn matches(&self, s: &Sample<'_>) -> bool {
        let (name, tags, id) = self.parts();
        self.code() == s.metric_type.code()
            && same(name, s.name_section)
            && same(tags, s.dog_tags)
            && same(id, s.container_id)
    }

    /// The hash of this entry's key: its sample's (see [`Cache::hash`]).
    fn hash(&self, hasher: &foldhash::fast::RandomState) -> u32 {
        key_hash(hasher, self.parts(), self.code())
    }
}

/// Byte equality without a `memcmp` call for the short pieces keys are made of
/// (a call per piece was an eighth of the ingest thread's time).
#[inline(always)]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |x: &[u8], at: usize| {
        x.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    match n {
        0 => true,
        // Two overlapping 8-byte words cover 8..=16 bytes.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

/// The known-series cache: an open-addressing index of positions into a dense
/// vector of entries.
///
/// An index slot is 4 bytes: the entry's position (24 bits) and a tag of 8
/// more bits of its hash, so the index alone names the likely entry without
/// touching it (a wrong entry is read once in 256 probes of a full slot), and
/// the slot a hash starts probing at is known as soon as the hash is:
/// [`super::Ingester::ingest_lines`] prefetches the next samples' slots,
/// entries and series before it needs them. Linear probing over a table of
/// any length (a hash's home is `hash * len >> 32`), between a half and two
/// thirds full; the entries sit packed in a vector that only grows as entries
/// arrive, so at 1,000,000 series the cache costs 40 bytes an entry plus 6 to
/// 8 of index.
#[derive(Debug)]
pub(super) struct Cache {
    /// 0 for an empty slot, else [`slot`]`(hash, position)`.
    pub(super) slots: Vec<u32>,
    pub(super) entries: Vec<Entry>,
    /// The scales entries name; the first is 1.
    pub(super) scales: Vec<f64>,
    hasher: foldhash::fast::RandomState,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            entries: Vec::new(),
            scales: vec![1.0],
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// Most entries a cache holds: a slot names a position in 24 bits.
pub const MAX_ENTRIES: usize = (1 << 24) - 2;

/// The slot naming the entry at `pos` whose key hash is `hash`.
#[inline]
fn slot(hash: u32, pos: usize) -> u32 {
    ((pos as u32 + 1) << 8) | (hash & 0xFF)
}

/// The position a slot names (the slot is not empty).
#[inline]
fn slot_pos(slot: u32) -> usize {
    (slot >> 8) as usize - 1
}

/// The high half of a key's hash (the low half of foldhash's output is no
/// better, and 32 bits are what an index slot keeps).
#[inline]
fn key_hash(
    hasher: &foldhash::fast::RandomState,
    (name, tags, id): (&[u8], &[u8], &[u8]),
    code: u8,
) -> u32 {
    let mut h = hasher.build_hasher();
    h.write(name);
    if !tags.is_empty() || !id.is_empty() {
        h.write_u8(0xFF);
        h.write(tags);
        h.write_u8(0xFF);
        h.write(id);
    }
    h.write_u8(code);
    (h.finish() >> 32) as u32
}

impl Cache {
    /// The hash of a sample's key.
    #[inline]
    pub(super) fn hash(&self, s: &Sample<'_>) -> u32 {
        key_hash(
            &self.hasher,
            (s.name_section, s.dog_tags, s.container_id),
            s.metric_type.code(),
        )
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where probing for `hash` starts: `hash` scaled to the table's length
    /// (its high bits; the tag is its low byte).
    #[inline]
    pub(super) fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.slots.len() as u64) >> 32) as usize
    }

    /// The slot after `i`, wrapping.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 >= self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Prefetch the slot probing for `hash` starts at.
    #[inline]
    pub(super) fn prefetch_slot(&self, hash: u32) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(hash)));
    }

    /// Positions whose slot matches `hash`'s tag (probe order), without
    /// reading entries.
    #[inline]
    pub(super) fn candidates(&self, hash: u32) -> impl Iterator<Item = usize> + '_ {
        let mut i = self.home(hash);
        let mut done = self.slots.is_empty();
        std::iter::from_fn(move || {
            while !done {
                let slot = self.slots.get(i).copied().unwrap_or(0);
                if slot == 0 {
                    done = true;
                    return None;
                }
                i = self.next(i);
                if slot & 0xFF == hash & 0xFF {
                    return Some(slot_pos(slot));
                }
            }
            None
        })
    }

    /// The position the index names first for `hash`, without reading the entry.
    #[inline]
    pub(super) fn hint(&self, hash: u32) -> Option<usize> {
        self.candidates(hash).next()
    }

    /// The entry at `pos` if it is this sample's.
    #[inline]
    pub(super) fn at(&self, pos: usize, s: &Sample<'_>) -> Option<&Entry> {
        self.entries.get(pos).filter(|e| e.matches(s))
    }

    #[inline]
    pub(super) fn position(&self, hash: u32, s: &Sample<'_>) -> Option<usize> {
        self.candidates(hash).find(|&p| self.at(p, s).is_some())
    }

    #[inline]
    pub(super) fn find(&self, hash: u32, s: &Sample<'_>) -> Option<&Entry> {
        self.position(hash, s).and_then(|i| self.entries.get(i))
    }

    /// What an entry says, with its scale looked up.
    #[inline]
    pub(super) fn answer<'a>(&self, e: &'a Entry) -> Answer<'a> {
        Answer {
            target: e.series.as_deref().ok_or(e.miss()),
            scale: self
                .scales
                .get(usize::from(e.scale))
                .copied()
                .unwrap_or(1.0),
            tag_errors: u32::from(e.tag_errors),
            has_tags: e.flags & HAS_TAGS != 0,
        }
    }

    /// The index naming `scale`, added if new; `None` when [`MAX_SCALES`] are
    /// named already (a key with yet another scale is then not cached).
    pub(super) fn scale_index(&mut self, scale: f64) -> Option<u8> {
        let i = match self
            .scales
            .iter()
            .position(|s| s.to_bits() == scale.to_bits())
        {
            Some(i) => i,
            None if self.scales.len() < MAX_SCALES => {
                self.scales.push(scale);
                self.scales.len() - 1
            }
            None => return None,
        };
        u8::try_from(i).ok()
    }

    pub(super) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = 0);
        self.entries.clear();
        self.scales.truncate(1);
    }

    /// Rebuild the index for the entries, hashing their keys again (O(n): on
    /// growth, eviction and removal of retired series only).
    ///
    /// Entries are hashed a batch at a time and their home slots prefetched
    /// before any is placed: each placement is a write at a random spot of an
    /// index larger than the caches, and placed one at a time they waited for
    /// memory in turn. `examples/ramp.rs`, 2M names: the growth at 1.7M
    /// entries stalled ingest for 122-132 ms, now 38-49 ms.
    pub(super) fn reindex(&mut self) {
        const BATCH: usize = 32;
        self.empty_slots();
        let mut hashes = [0u32; BATCH];
        for first in (0..self.entries.len()).step_by(BATCH) {
            let batch = self.entries.get(first..).unwrap_or_default();
            let n = batch.len().min(BATCH);
            for (h, e) in hashes.iter_mut().zip(batch) {
                *h = e.hash(&self.hasher);
                self.prefetch_slot(*h);
            }
            for (i, &h) in hashes.iter().take(n).enumerate() {
                self.place(h, first + i);
            }
        }
    }

    /// Empty slots, twice as many as entries (at least 16).
    fn empty_slots(&mut self) {
        let want = (self.entries.len() * 2).max(16);
        if self.slots.len() < want {
            self.slots = vec![0; want];
        } else {
            self.slots.iter_mut().for_each(|s| *s = 0);
        }
    }

    /// A bigger index for the same entries, their hashes computed again from
    /// their keys (O(n), on growth only: the index keeps only 8 bits of each).
    fn grow(&mut self) {
        self.slots = Vec::new();
        self.reindex();
    }

    /// Put `pos` into the first free slot from `hash`'s home.
    pub(super) fn place(&mut self, hash: u32, pos: usize) {
        let mut i = self.home(hash);
        while self.slots.get(i).is_some_and(|s| *s != 0) {
            i = self.next(i);
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = slot(hash, pos);
        }
    }

    /// Keep the entries `keep` selects.
    pub(super) fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.entries.retain(keep);
        self.reindex();
    }

    /// Drop the entries whose key hash has `bit` set: about half, chosen
    /// independently of when they came.
    pub(super) fn evict(&mut self, bit: u32) {
        let hasher = &self.hasher;
        self.entries.retain(|e| e.hash(hasher) & bit == 0);
        self.reindex();
    }

    /// The slot holding `pos`.
    pub(super) fn slot_of(&self, hash: u32, pos: usize) -> Option<usize> {
        let mut i = self.home(hash);
        loop {
            let s = *self.slots.get(i)?;
            if s == 0 {
                return None;
            }
            if s == slot(hash, pos) {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// Empty slot `i` and shift later slots of its probe run back, so every
    /// entry stays reachable from its home (deletion without tombstones).
    pub(super) fn vacate(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = self.next(j);
            let s = self.slots.get(j).copied().unwrap_or(0);
            if s == 0 || j == i {
                break;
            }
            let Some(k) = self
                .entries
                .get(slot_pos(s))
                .map(|e| self.home(e.hash(&self.hasher)))
            else {
                break;
            };
            // Move it back unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
    }

    /// Remove the entry for this sample's key, if any.
    pub(super) fn remove(&mut self, hash: u32, s: &Sample<'_>) {
        let Some(pos) = self.position(hash, s) else {
            return;
        };
        if let Some(i) = self.slot_of(hash, pos) {
            self.vacate(i);
        }
        let last = self.entries.len() - 1;
        if pos != last {
            // The last entry moves into the hole: point its slot there.
            let moved = self.entries.get(last).map_or(0, |e| e.hash(&self.hasher));
            if let Some(i) = self.slot_of(moved, last) {
                self.slots[i] = slot(moved, pos);
            }
        }
        self.entries.swap_remove(pos);
    }

    /// Add an entry (its key, whose hash is `hash`, must not be present).
    pub(super) fn insert(&mut self, hash: u32, e: Entry) {
        let pos = self.entries.len();
        self.entries.push(e);
        if self.entries.len() * 3 > self.slots.len() * 2 {
            // Past two thirds full: twice as many slots as entries again.
            self.grow();
        } else {
            self.place(hash, pos);
        }
    }
}
