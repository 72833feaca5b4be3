//! Remote write's self-metrics: per URL, samples sent, failed, retried,
//! dropped and queued, and the time of the last success. Every counter is
//! `Relaxed`: independent counters a scrape reads one by one.

use crate::model::collect::{Collector, SelfFamily};
use crate::store::atomic::AtomicF64;
use crate::vocab::MetricKind::{Counter, Gauge};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One remote-write URL's counters.
#[derive(Debug)]
pub struct RemoteWriteStats {
    /// The URL (user info removed), leaked once per configured URL so the
    /// self-metrics can label with it.
    url: &'static str,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
    last_success: AtomicF64,
}

/// A copy of one URL's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RemoteWriteSnapshot {
    /// Samples the receiver accepted.
    pub sent: u64,
    /// Samples the receiver refused (4xx), dropped.
    pub failed: u64,
    /// Samples in sends that will be retried (network error, 5xx, 429).
    pub retried: u64,
    /// Samples dropped because the queue was full.
    pub dropped: u64,
    /// Samples waiting in the queue.
    pub pending: u64,
    /// Unix time of the last accepted request (0: none yet).
    pub last_success: f64,
}

// Every counter below is Relaxed: see the module comment.
impl RemoteWriteStats {
    /// Counters for `url` (already redacted).
    pub fn new(url: &str) -> Self {
        Self {
            url: Box::leak(url.to_owned().into_boxed_str()),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            last_success: AtomicF64::new(0.0),
        }
    }

    /// A request of `n` samples was accepted.
    pub fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.last_success.store(crate::sys::unix_now());
    }

    /// A request of `n` samples was refused for good.
    pub fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A request of `n` samples will be retried.
    pub fn retried(&self, n: usize) {
        self.retried.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` queued samples were dropped to make room.
    pub fn dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The queue now holds `n` samples.
    pub fn set_pending(&self, n: usize) {
        self.pending.store(n as u64, Ordering::Relaxed);
    }

    /// Read every counter.
    pub fn snapshot(&self) -> RemoteWriteSnapshot {
        RemoteWriteSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            last_success: self.last_success.load(),
        }
    }
}

/// Every remote-write URL's counters (one per store, from its registry).
#[derive(Debug, Default)]
pub struct RemoteWriteMetrics {
    endpoints: Mutex<Vec<Arc<RemoteWriteStats>>>,
}

impl RemoteWriteMetrics {
    /// Register a remote-write URL's counters.
    pub fn endpoint(&self, url: &str) -> Arc<RemoteWriteStats> {
        let s = Arc::new(RemoteWriteStats::new(url));
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&s));
        s
    }
}

impl Collector for RemoteWriteMetrics {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        let endpoints: Vec<(&'static str, RemoteWriteSnapshot)> = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| (e.url, e.snapshot()))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let per_url = |f: fn(&RemoteWriteSnapshot) -> f64| {
            endpoints
                .iter()
                .map(move |(url, snap)| (vec![("url", *url)], f(snap)))
                .collect::<Vec<_>>()
        };
        out.extend([
            SelfFamily::labelled(
                "promstatsd_remote_write_samples_sent_total",
                Counter,
                "Samples the remote-write receiver accepted, by URL.",
                per_url(|s| s.sent as f64),
            ),
            SelfFamily::labelled(
                "promstatsd_remote_write_samples_failed_total",
                Counter,
                "Samples the remote-write receiver refused with a 4xx (not retried), by URL.",
                per_url(|s| s.failed as f64),
            ),
            SelfFamily::labelled(
                "promstatsd_remote_write_samples_retried_total",
                Counter,
                "Samples in remote-write requests retried after a network error, 5xx or 429, by URL.",
                per_url(|s| s.retried as f64),
            ),
            SelfFamily::labelled(
                "promstatsd_remote_write_samples_dropped_total",
                Counter,
                "Samples dropped because the remote-write queue was full, by URL.",
                per_url(|s| s.dropped as f64),
            ),
            SelfFamily::labelled(
                "promstatsd_remote_write_queue_samples",
                Gauge,
                "Samples waiting in the remote-write queue, by URL.",
                per_url(|s| s.pending as f64),
            ),
            SelfFamily::labelled(
                "promstatsd_remote_write_last_success_timestamp_seconds",
                Gauge,
                "Unix time of the last accepted remote-write request, by URL.",
                per_url(|s| s.last_success),
            ),
        ]);
    }
}
