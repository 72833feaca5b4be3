//! The operator's view: what the daemon is doing, as one JSON document
//! (`/api/v1/status`) and one HTML page (`/status`) over the same report.
//!
//! Owns: the history of the self-metrics (one reading a second for five
//! minutes, [`history`]), the families whose sample rates are followed
//! ([`Status::tick`]), the [`Report`] built on demand ([`report`]) and its two
//! encoders ([`json`], [`html`]). Every list in a report is bounded (the top
//! families by a heap of [`TOP_FAMILIES`], names by the tables that keep
//! them), so a report of a store of a million series costs one pass over its
//! sorted list, not a sort.
//!
//! May import: vocab, sys, model, mapper, store, ingest, reload.

pub mod history;
pub mod html;
pub mod json;
pub mod report;

use crate::mapper::MapperHandle;
use crate::store::{FamilyHandle, Store};
use history::History;
pub use report::Report;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Families in a report's `top_families`.
pub const TOP_FAMILIES: usize = 20;
/// Unmapped names in a report.
pub const TOP_UNMAPPED: usize = 20;
/// Most families whose sample rate is followed at once.
const MAX_FOLLOWED: usize = 2048;
/// Readings kept per followed family: ten seconds' worth.
const FOLLOW_READINGS: usize = 11;

/// A family whose samples are read every second.
#[derive(Debug)]
struct Followed {
    family: FamilyHandle,
    readings: VecDeque<(Instant, u32)>,
}

/// The operator view's state: started with the server, ticked once a second.
#[derive(Debug)]
pub struct Status {
    started: Instant,
    store: Arc<Store>,
    mapper: Arc<MapperHandle>,
    source: String,
    history: Mutex<History>,
    followed: Mutex<HashMap<Box<str>, Followed>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Status {
    /// The view of `store` and the mapper in force; `source` names the mapping
    /// (`--statsd.mapping-config`, or none).
    pub fn new(store: Arc<Store>, mapper: Arc<MapperHandle>, source: String) -> Self {
        let status = Self {
            started: Instant::now(),
            store,
            mapper,
            source,
            history: Mutex::new(History::default()),
            followed: Mutex::new(HashMap::new()),
        };
        status.tick();
        status
    }

    /// Take this second's readings: the self-metrics, the series count, and
    /// the samples of each followed family (the unmapped names' and the last
    /// report's top families).
    pub fn tick(&self) {
        let now = Instant::now();
        let families = self.store.self_families();
        lock(&self.history).record(now, &families, self.store.total_series());
        self.follow_unmapped();
        let mut followed = lock(&self.followed);
        followed.retain(|_, f| !f.family_gone(&self.store));
        for f in followed.values_mut() {
            if f.readings.len() == FOLLOW_READINGS {
                f.readings.pop_front();
            }
            f.readings.push_back((now, f.family.samples()));
        }
    }

    /// Follow the families of the names no rule maps.
    fn follow_unmapped(&self) {
        let (mapper, _) = self.mapper.load();
        for (_, family) in mapper.unmapped_names() {
            self.follow(&family);
        }
    }

    /// Start following family `name`'s samples (if there is room).
    fn follow(&self, name: &str) {
        let mut followed = lock(&self.followed);
        if followed.contains_key(name) || followed.len() >= MAX_FOLLOWED {
            return;
        }
        if let Some(family) = self.store.family_named(name) {
            followed.insert(
                name.into(),
                Followed {
                    family,
                    readings: VecDeque::with_capacity(FOLLOW_READINGS),
                },
            );
        }
    }

    /// Samples a second of family `name` over the readings kept, if it has
    /// been followed for a second or more.
    fn samples_per_s(&self, name: &str) -> Option<f64> {
        let followed = lock(&self.followed);
        let f = followed.get(name)?;
        let (t0, s0) = *f.readings.front()?;
        let now = Instant::now();
        let dt = now.duration_since(t0).as_secs_f64();
        (dt >= 1.0).then(|| f64::from(f.family.samples().wrapping_sub(s0)) / dt)
    }

    /// The report as of now.
    pub fn report(&self) -> Report {
        report::build(self)
    }
}

impl Followed {
    /// True once the store no longer has this family (expired or replaced).
    fn family_gone(&self, store: &Store) -> bool {
        store
            .family_named(self.family.name())
            .is_none_or(|f| !f.same(&self.family))
    }
}
