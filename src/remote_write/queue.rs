//! One receiver's queue: batches bounded in samples (the oldest dropped past
//! the capacity), the batch its sender holds, and the shutdown drain.

use super::snapshot::Batch;
use super::stats::RemoteWriteStats;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A queue of batches bounded in samples, and the batch its sender holds.
#[derive(Default)]
pub(super) struct Queue {
    /// Batches waiting, oldest first.
    pub(super) batches: VecDeque<Arc<Batch>>,
    /// Samples in `batches` (what the capacity bounds).
    pub(super) samples: usize,
    /// Samples of the batch the sender took out and has not finished with.
    pub(super) in_flight: usize,
    /// Set by [`RemoteWrite::stop`]: deliver what is queued, each batch once,
    /// until this instant.
    pub(super) drain_until: Option<Instant>,
    /// Set by [`RemoteWrite::stop`] at its deadline: what was left has been
    /// counted as dropped; nothing is counted any more.
    pub(super) closed: bool,
}

pub(super) struct Endpoint {
    /// The URL requests go to, without user-info; logs and the `url` label show it.
    pub(super) url: String,
    /// The `Authorization` value fixed for the run (basic auth), if any.
    pub(super) auth: Option<String>,
    pub(super) queue: Mutex<Queue>,
    pub(super) ready: Condvar,
    pub(super) stats: Arc<RemoteWriteStats>,
}

/// What [`Endpoint::take`] found.
pub(super) enum Take {
    /// The oldest batch, now in flight.
    Batch(Arc<Batch>),
    /// Nothing queued yet.
    Idle,
    /// Shutting down and nothing (or no time) left: the sender ends.
    Done,
}

impl Endpoint {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a batch, dropping the oldest queued ones past the capacity (never
    /// the one in flight: its sender holds it).
    pub(super) fn enqueue(&self, batch: Arc<Batch>, capacity: usize) {
        let mut q = self.lock();
        if q.closed {
            drop(q);
            self.stats.dropped(batch.samples);
            return;
        }
        q.samples += batch.samples;
        q.batches.push_back(batch);
        let mut dropped = 0;
        while q.samples > capacity && q.batches.len() > 1 {
            if let Some(old) = q.batches.pop_front() {
                q.samples -= old.samples;
                dropped += old.samples;
            }
        }
        self.stats.set_pending(q.samples + q.in_flight);
        drop(q);
        if dropped > 0 {
            self.stats.dropped(dropped);
            tracing::warn!(url = %self.url, samples = dropped, "remote write: queue full, oldest samples dropped");
        }
        self.ready.notify_one();
    }

    /// Take the oldest batch out of the queue (it is in flight until
    /// [`Endpoint::finish`]), waiting up to `wait` for one.
    pub(super) fn take(&self, wait: Duration) -> Take {
        let mut q = self.lock();
        if q.batches.is_empty() && q.drain_until.is_none() {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if q.closed || q.drain_until.is_some_and(|d| Instant::now() >= d) {
            return Take::Done;
        }
        match q.batches.pop_front() {
            Some(b) => {
                q.samples -= b.samples;
                q.in_flight = b.samples;
                self.stats.set_pending(q.samples + q.in_flight);
                Take::Batch(b)
            }
            None if q.drain_until.is_some() => Take::Done,
            None => Take::Idle,
        }
    }

    /// The batch in flight is finished with (sent, refused or given up); false
    /// when shutdown already counted it as dropped, so it must not be counted again.
    pub(super) fn finish(&self) -> bool {
        let mut q = self.lock();
        if q.closed {
            return false;
        }
        q.in_flight = 0;
        self.stats.set_pending(q.samples);
        true
    }

    /// Finish the batch in flight and count it with `count`, unless shutdown
    /// already counted it as dropped.
    pub(super) fn settle(&self, count: impl FnOnce(&RemoteWriteStats)) {
        if self.finish() {
            count(&self.stats);
        }
    }

    /// The shutdown deadline, once shutdown has begun.
    pub(super) fn draining(&self) -> Option<Instant> {
        self.lock().drain_until
    }

    /// Begin the shutdown drain: deliver what is queued until `deadline`.
    pub(super) fn drain(&self, deadline: Instant) {
        self.lock().drain_until = Some(deadline);
        self.ready.notify_all();
    }

    /// End for good: count what is still queued or in flight as dropped, and
    /// return how many samples that was.
    pub(super) fn close(&self) -> usize {
        let mut q = self.lock();
        q.closed = true;
        let left = q.samples + q.in_flight;
        q.batches.clear();
        q.samples = 0;
        q.in_flight = 0;
        self.stats.set_pending(0);
        drop(q);
        if left > 0 {
            self.stats.dropped(left);
        }
        left
    }

    /// Sleep up to `d`, waking early when shutdown begins.
    pub(super) fn pause(&self, d: Duration) {
        let q = self.lock();
        drop(
            self.ready
                .wait_timeout_while(q, d, |q| q.drain_until.is_none())
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}
