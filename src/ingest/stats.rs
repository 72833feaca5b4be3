//! Ingest's self-metrics: what the listeners received and what became of it.
//!
//! Ingest threads count into plain integers ([`LocalStats`]) and add them to the
//! shared atomics ([`IngestStats`]) once per batch, so the hot path does no
//! atomic read-modify-write per line. Every `Ordering` here is `Relaxed`
//! (independent counters read by a scrape) except one pair: a flush adds `lines`
//! last with `Release` and [`IngestStats`]' collector reads it first with
//! `Acquire`, so a page that shows L lines shows every other ingest counter at
//! least as far as the flush that brought `lines` to L (a test that waits for
//! its lines can then read packets, samples, events). The pipeline builder
//! registers this collector first, so the other parts' counters are read after
//! that `Acquire` too.

use crate::model::collect::{Collector, SelfFamily, SelfLabels, SelfValue};
use crate::parser::ParseError;
use crate::vocab::MetricKind::Counter;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A StatsD listener kind, for per-listener counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// UDP datagrams.
    Udp,
    /// TCP streams.
    Tcp,
    /// Unix datagrams.
    Unixgram,
    /// Unix streams.
    Unix,
}

impl ListenerKind {
    /// Every kind, in counter order.
    pub const ALL: [ListenerKind; 4] = [Self::Udp, Self::Tcp, Self::Unixgram, Self::Unix];

    /// The `listener` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Unixgram => "unixgram",
            Self::Unix => "unix",
        }
    }
}

/// Event kinds as statsd_exporter counts them (`type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `c`.
    Counter,
    /// `g`.
    Gauge,
    /// `ms`, `h`, `d`.
    Observer,
    /// `s`.
    Set,
}

impl EventKind {
    const ALL: [EventKind; 4] = [Self::Counter, Self::Gauge, Self::Observer, Self::Set];

    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Observer => "observer",
            Self::Set => "set",
        }
    }
}

const N_ERR: usize = ParseError::ALL.len();

/// Ingest counters shared by every ingest thread (one per store, from its
/// registry).
#[derive(Debug, Default)]
pub struct IngestStats {
    packets: [AtomicU64; 4],
    bytes: [AtomicU64; 4],
    lines: AtomicU64,
    listener_lines: [AtomicU64; 4],
    samples: AtomicU64,
    sample_errors: [AtomicU64; N_ERR],
    tags: AtomicU64,
    tag_errors: AtomicU64,
    events: [AtomicU64; 4],
    conflicts: ConflictNames,
    negative_counters: AtomicU64,
    empty_names: AtomicU64,
    series_refused: AtomicU64,
    dropped: AtomicU64,
    cache_flushes: AtomicU64,
}

fn get(a: &AtomicU64) -> f64 {
    // Relaxed: see the module comment.
    a.load(Ordering::Relaxed) as f64
}

fn per_listener(a: &[AtomicU64; 4]) -> Vec<(Vec<(&'static str, &'static str)>, f64)> {
    ListenerKind::ALL
        .iter()
        .map(|l| (vec![("listener", l.name())], get(&a[*l as usize])))
        .collect()
}

fn per_event(a: &[AtomicU64; 4]) -> Vec<(Vec<(&'static str, &'static str)>, f64)> {
    EventKind::ALL
        .iter()
        .map(|k| (vec![("type", k.name())], get(&a[*k as usize])))
        .collect()
}

impl Collector for IngestStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        // Acquire, and first: pairs with the Release add in `LocalStats::flush`, so
        // the counters read below are at least as new as this line count.
        let lines = self.lines.load(Ordering::Acquire) as f64;
        out.extend([
            SelfFamily::labelled(
                "promstatsd_packets_total",
                Counter,
                "StatsD packets received (TCP: reads), by listener.",
                per_listener(&self.packets),
            ),
            SelfFamily::labelled(
                "promstatsd_bytes_total",
                Counter,
                "StatsD bytes received, by listener.",
                per_listener(&self.bytes),
            ),
            SelfFamily::single(
                "promstatsd_lines_total",
                Counter,
                "StatsD lines received.",
                lines,
            ),
            SelfFamily::labelled(
                "promstatsd_listener_lines_total",
                Counter,
                "StatsD lines received, by listener (lines_total split; a line too \
                 long for a stream listener counts too).",
                per_listener(&self.listener_lines),
            ),
            SelfFamily::single(
                "promstatsd_samples_total",
                Counter,
                "StatsD samples received.",
                get(&self.samples),
            ),
            SelfFamily::labelled(
                "promstatsd_sample_errors_total",
                Counter,
                "StatsD lines or samples rejected, by reason.",
                ParseError::ALL.iter().map(|e| {
                    (
                        vec![("reason", e.reason())],
                        get(&self.sample_errors[e.index()]),
                    )
                }),
            ),
            SelfFamily::single(
                "promstatsd_tags_total",
                Counter,
                "Samples that carried tags.",
                get(&self.tags),
            ),
            SelfFamily::single(
                "promstatsd_tag_errors_total",
                Counter,
                "Malformed tags skipped.",
                get(&self.tag_errors),
            ),
            SelfFamily::labelled(
                "promstatsd_events_total",
                Counter,
                "Samples recorded, by type.",
                per_event(&self.events),
            ),
            SelfFamily {
                name: "promstatsd_events_conflict_total",
                help: "Samples refused because their family name is in use with another type, \
                       by type and family (past 100 names, metric_name=\"other\").",
                kind: Counter,
                series: self.conflicts.series(),
            },
            SelfFamily::labelled(
                "promstatsd_events_error_total",
                Counter,
                "Samples refused after parsing, by reason.",
                [
                    (
                        vec![("reason", "empty_metric_name")],
                        get(&self.empty_names),
                    ),
                    (
                        vec![("reason", "illegal_negative_counter")],
                        get(&self.negative_counters),
                    ),
                    (vec![("reason", "series_limit")], get(&self.series_refused)),
                ],
            ),
            SelfFamily::labelled(
                "promstatsd_events_actions_total",
                Counter,
                "Samples dropped by a mapping.",
                [(vec![("action", "drop")], get(&self.dropped))],
            ),
            SelfFamily::single(
                "promstatsd_ingest_cache_flushes_total",
                Counter,
                "Times an ingest thread's series cache was emptied because it was full.",
                get(&self.cache_flushes),
            ),
        ]);
    }
}

/// Most family names the conflict counter tells apart; samples of later ones
/// are counted under `metric_name="other"`.
pub const MAX_CONFLICT_NAMES: usize = 100;

/// Type-conflict counters by family name: a slot per name, given out the first
/// time a name conflicts (rare: an ingest thread remembers its slot with the
/// conflicting key), the last slot for every name past [`MAX_CONFLICT_NAMES`].
#[derive(Debug)]
struct ConflictNames {
    /// The name of each slot given out, in order.
    names: Mutex<Vec<Box<str>>>,
    /// Per slot (`MAX_CONFLICT_NAMES` + "other"), per [`EventKind`].
    counts: Box<[[AtomicU64; 4]]>,
}

impl Default for ConflictNames {
    fn default() -> Self {
        Self {
            names: Mutex::new(Vec::new()),
            counts: (0..=MAX_CONFLICT_NAMES)
                .map(|_| Default::default())
                .collect(),
        }
    }
}

impl ConflictNames {
    fn names(&self) -> std::sync::MutexGuard<'_, Vec<Box<str>>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, name: &str) -> u8 {
        let mut names = self.names();
        let i = match names.iter().position(|n| **n == *name) {
            Some(i) => i,
            None if names.len() < MAX_CONFLICT_NAMES => {
                names.push(name.into());
                names.len() - 1
            }
            None => MAX_CONFLICT_NAMES,
        };
        // MAX_CONFLICT_NAMES < 256 (checked at compile time below).
        i as u8
    }

    /// One series per name and type that has counted something.
    fn series(&self) -> Vec<(SelfLabels, SelfValue)> {
        let names = self.names();
        let label = |slot: usize| -> Cow<'static, str> {
            match names.get(slot) {
                Some(n) => Cow::Owned(n.to_string()),
                None => Cow::Borrowed("other"),
            }
        };
        let mut out = Vec::new();
        for (slot, kinds) in self.counts.iter().enumerate() {
            for k in EventKind::ALL {
                let n = get(&kinds[k as usize]);
                if n > 0.0 {
                    let labels = vec![
                        ("metric_name", label(slot)),
                        ("type", Cow::Borrowed(k.name())),
                    ];
                    out.push((labels, SelfValue::Number(n)));
                }
            }
        }
        out
    }

    /// Each name that has conflicted (the first [`MAX_CONFLICT_NAMES`]) and
    /// its conflicting samples, all types together.
    fn totals(&self) -> Vec<(String, u64)> {
        let names = self.names();
        let total = |slot: usize| -> u64 {
            self.counts
                .get(slot)
                // Relaxed: see the module comment.
                .map_or(0, |k| k.iter().map(|c| c.load(Ordering::Relaxed)).sum())
        };
        let mut out: Vec<(String, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), total(i)))
            .collect();
        let other = total(MAX_CONFLICT_NAMES);
        if other > 0 {
            out.push(("other".to_owned(), other));
        }
        out
    }
}

const _: () = assert!(MAX_CONFLICT_NAMES < u8::MAX as usize);

impl IngestStats {
    /// The conflict-counter slot of family `name` (see [`LocalStats::conflict`]).
    pub fn conflict_slot(&self, name: &str) -> u8 {
        self.conflicts.slot(name)
    }

    /// The family names that hit a type conflict and their refused samples,
    /// in the order they first conflicted (`other` last, when counted).
    pub fn conflicting_names(&self) -> Vec<(String, u64)> {
        self.conflicts.totals()
    }
}

/// Per-thread counters, added to [`IngestStats`] by [`LocalStats::flush`].
#[derive(Clone, Debug, Default)]
pub struct LocalStats {
    /// Packets per listener.
    pub packets: [u64; 4],
    /// Bytes per listener.
    pub bytes: [u64; 4],
    /// Lines.
    pub lines: u64,
    /// Lines per listener (the listeners add them from `lines`, see
    /// [`LocalStats::lines_since`]).
    pub listener_lines: [u64; 4],
    /// Samples.
    pub samples: u64,
    /// Sample errors by [`ParseError::index`].
    pub sample_errors: [u64; N_ERR],
    /// Samples that carried tags.
    pub tags: u64,
    /// Malformed tags.
    pub tag_errors: u64,
    /// Events recorded, by [`EventKind`].
    pub events: [u64; 4],
    /// Events refused for a type conflict, by `ConflictNames` slot, then
    /// by [`EventKind`] (grown as slots are used).
    pub conflicts: Vec<[u64; 4]>,
    /// Negative counter increments refused.
    pub negative_counters: u64,
    /// Samples whose mapping produced an empty name.
    pub empty_names: u64,
    /// Samples refused because the series limit is reached.
    pub series_refused: u64,
    /// Samples dropped by a mapping.
    pub dropped: u64,
    /// Times the ingest cache was emptied because it was full.
    pub cache_flushes: u64,
}

impl LocalStats {
    /// Count a packet of `len` bytes on a listener.
    #[inline]
    pub fn packet(&mut self, l: ListenerKind, len: usize) {
        self.packets[l as usize] += 1;
        self.bytes[l as usize] += len as u64;
    }

    /// Attribute the lines counted since `before` (a reading of `lines`) to
    /// listener `l`.
    #[inline]
    pub fn lines_since(&mut self, l: ListenerKind, before: u64) {
        self.listener_lines[l as usize] += self.lines.wrapping_sub(before);
    }

    /// Count a parse error.
    #[inline]
    pub fn sample_error(&mut self, e: ParseError) {
        if let Some(c) = self.sample_errors.get_mut(e.index()) {
            *c += 1;
        }
    }

    /// Count an event.
    #[inline]
    pub fn event(&mut self, k: EventKind) {
        self.events[k as usize] += 1;
    }

    /// Count a conflicting event of the family in conflict-name slot `slot`
    /// (see [`IngestStats::conflict_slot`]).
    #[inline]
    pub fn conflict(&mut self, slot: u8, k: EventKind) {
        let i = usize::from(slot);
        if self.conflicts.len() <= i {
            self.conflicts.resize(i + 1, [0; 4]);
        }
        if let Some(c) = self.conflicts.get_mut(i) {
            c[k as usize] += 1;
        }
    }

    /// Add everything to `shared` and reset.
    pub fn flush(&mut self, shared: &IngestStats) {
        fn add_all(dst: &[AtomicU64], src: &[u64]) {
            for (d, &s) in dst.iter().zip(src) {
                add(d, s);
            }
        }
        fn add(dst: &AtomicU64, v: u64) {
            if v != 0 {
                // Relaxed: see the module comment.
                dst.fetch_add(v, Ordering::Relaxed);
            }
        }
        add_all(&shared.packets, &self.packets);
        add_all(&shared.bytes, &self.bytes);
        add_all(&shared.listener_lines, &self.listener_lines);
        add(&shared.samples, self.samples);
        add_all(&shared.sample_errors, &self.sample_errors);
        add(&shared.tags, self.tags);
        add(&shared.tag_errors, self.tag_errors);
        add_all(&shared.events, &self.events);
        for (slot, kinds) in self.conflicts.iter_mut().enumerate() {
            if let Some(dst) = shared.conflicts.counts.get(slot) {
                add_all(dst, kinds);
            }
            *kinds = [0; 4];
        }
        add(&shared.negative_counters, self.negative_counters);
        add(&shared.empty_names, self.empty_names);
        add(&shared.series_refused, self.series_refused);
        add(&shared.dropped, self.dropped);
        add(&shared.cache_flushes, self.cache_flushes);
        if self.lines != 0 {
            // Release: publishes every add above to a `collect` that sees this one
            // (see the module comment).
            shared.lines.fetch_add(self.lines, Ordering::Release);
        }
        *self = LocalStats::default();
    }
}
