//! Remote write: push every series to Prometheus-compatible stores (Mimir, Cortex,
//! Thanos Receive, VictoriaMetrics, Prometheus itself) on an interval.
//!
//! ```text
//! store --(every --remote-write.interval: walk, cut into batches)--> collector thread
//!   --> one bounded queue per URL --> one sender thread per URL --HTTP POST--> receiver
//! ```
//!
//! Each batch is a remote-write 1.0 `WriteRequest` (protobuf, snappy block
//! compression, `Content-Encoding: snappy`, `X-Prometheus-Remote-Write-Version:
//! 0.1.0`, any `--remote-write.header`) of at most
//! `--remote-write.max-samples-per-send` samples.
//!
//! A sender takes the oldest batch out of its queue and holds it ("in flight")
//! until it is done with it: it retries it with exponential backoff on network
//! errors, 5xx and 429 (waiting at least what a `Retry-After` asks, at most 60 s),
//! and drops it (counted as failed) on any other 4xx, which a retry would not fix.
//! Each batch is counted once: sent, failed or dropped. The queue holds at most
//! `--remote-write.queue-capacity` samples besides the batch in flight; when a dead
//! receiver lets it fill, the oldest queued batches are dropped (counted), so memory
//! stays bounded (the capacity plus one batch per URL) and, once the receiver is
//! back, the surviving batches go in order, oldest first. At shutdown a last
//! snapshot is queued and the senders get two seconds to deliver the queue, each
//! batch tried once; what is left is counted as dropped.
//!
//! Credentials in a URL (`https://user:pass@host/...`) are taken out of it and sent
//! as basic auth; logs and the `url` label show the URL without them. Nothing here
//! runs on an ingest thread; the snapshot walks the store as a scrape does,
//! through the collection model (and waits for a scrape in progress, as two
//! scrapes do).
//!
//! May import: vocab, sys, model, store.

pub mod proto;
pub mod snapshot;
pub mod stats;

mod options;
mod queue;
mod sender;

use crate::store::Store;
pub use options::{
    agent, check_url, endpoint_auth, parse_header, redact, url_credentials, RemoteWriteOptions,
};
use queue::{Endpoint, Queue};
use sender::{sender_loop, SHUTDOWN_GRACE};
use snapshot::{Batch, Batcher};
use stats::RemoteWriteMetrics;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running remote-write threads; [`RemoteWrite::stop`] ends them.
pub struct RemoteWrite {
    endpoints: Vec<Arc<Endpoint>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    senders: Vec<JoinHandle<()>>,
    collector: JoinHandle<()>,
}

impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

/// Join `t` if it ends by `deadline`; false if it is still running then.
fn join_by(t: JoinHandle<()>, deadline: Instant) -> bool {
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if t.is_finished() {
        let _ = t.join();
        true
    } else {
        false
    }
}

impl RemoteWrite {
    /// Start the collector and one sender per URL.
    pub fn start(store: Arc<Store>, opts: RemoteWriteOptions) -> Result<Self, String> {
        let agent = agent(&opts)?;
        let opts = Arc::new(opts);
        let mut endpoints = Vec::new();
        let mut senders = Vec::new();
        for (i, url) in opts.urls.iter().enumerate() {
            check_url(url)?;
            let shown = redact(url);
            let ep = Arc::new(Endpoint {
                stats: store
                    .metrics()
                    .shared::<RemoteWriteMetrics>()
                    .endpoint(&shown),
                url: shown,
                auth: endpoint_auth(url, &opts)?,
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            });
            let (ep2, agent, o) = (Arc::clone(&ep), agent.clone(), Arc::clone(&opts));
            senders.push(
                std::thread::Builder::new()
                    .name(format!("remote-write-{i}"))
                    .spawn(move || {
                        crate::sys::lower_thread_priority();
                        sender_loop(&ep2, &agent, &o)
                    })
                    .map_err(|e| format!("cannot start a remote-write thread: {e}"))?,
            );
            tracing::info!(url = %ep.url, interval = ?opts.interval, "remote write enabled");
            endpoints.push(ep);
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (eps, st, o) = (endpoints.clone(), Arc::clone(&stop), Arc::clone(&opts));
        let collector = std::thread::Builder::new()
            .name("remote-write".into())
            .spawn(move || {
                crate::sys::lower_thread_priority();
                collector_loop(&store, &eps, &st, &o)
            })
            .map_err(|e| format!("cannot start the remote-write thread: {e}"))?;
        Ok(Self {
            endpoints,
            stop,
            senders,
            collector,
        })
    }

    /// Stop every thread. A last snapshot is queued, then the senders have two
    /// seconds in all to deliver what is queued, each batch tried once (no
    /// retries); what is left then is counted as dropped. A receiver that swallows
    /// packets cannot hold a shutdown longer than that: a sender still blocked in
    /// a request ends with the process.
    pub fn stop(self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        // The last snapshot is queued before the senders may run dry and end.
        if !join_by(self.collector, deadline) {
            tracing::warn!("remote write: the last snapshot did not finish in time");
        }
        for ep in &self.endpoints {
            ep.drain(deadline);
        }
        for t in self.senders {
            if !join_by(t, deadline) {
                tracing::warn!(
                    "remote write: a request is still in flight at shutdown; not waiting for it"
                );
            }
        }
        for ep in &self.endpoints {
            let left = ep.close();
            if left > 0 {
                tracing::warn!(url = %ep.url, samples = left, "remote write: samples not delivered by shutdown; dropped");
            }
        }
    }
}

fn collector_loop(
    store: &Store,
    endpoints: &[Arc<Endpoint>],
    stop: &(Mutex<bool>, Condvar),
    opts: &RemoteWriteOptions,
) {
    let mut next = Instant::now() + opts.interval;
    loop {
        let stopping = {
            let stopped = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let wait = next.saturating_duration_since(Instant::now());
            let (stopped, _) = stop
                .1
                .wait_timeout_while(stopped, wait, |s| !*s)
                .unwrap_or_else(PoisonError::into_inner);
            *stopped
        };
        next += opts.interval;
        if next < Instant::now() {
            // A snapshot took longer than the interval: skip, do not pile up.
            next = Instant::now() + opts.interval;
        }
        snapshot(store, endpoints, opts);
        if stopping {
            // That was the last one, for the senders to deliver at shutdown.
            return;
        }
    }
}

/// Cut the store into batches and queue them for every URL.
fn snapshot(store: &Store, endpoints: &[Arc<Endpoint>], opts: &RemoteWriteOptions) {
    let started = Instant::now();
    let timestamp_ms = (crate::sys::unix_now() * 1000.0) as i64;
    let (mut batches, mut samples) = (0usize, 0usize);
    let mut emit = |b: Batch| {
        batches += 1;
        samples += b.samples;
        let b = Arc::new(b);
        for ep in endpoints {
            ep.enqueue(Arc::clone(&b), opts.queue_capacity);
        }
    };
    snapshot_batches(
        store,
        &opts.external_labels,
        timestamp_ms,
        opts.max_samples_per_send,
        opts.native_histograms,
        &mut emit,
    );
    tracing::debug!(batches, samples, took = ?started.elapsed(), "remote write: snapshot queued");
}

/// One snapshot of `store` cut into batches of at most `max_samples` samples,
/// each handed to `emit` (public for the snapshot bench).
#[doc(hidden)]
pub fn snapshot_batches(
    store: &Store,
    external_labels: &[(String, String)],
    timestamp_ms: i64,
    max_samples: usize,
    native_histograms: bool,
    emit: &mut impl FnMut(Batch),
) {
    let mut batcher = Batcher::new(external_labels, timestamp_ms, max_samples, emit)
        .with_native_histograms(native_histograms);
    store.collect(&mut batcher);
    batcher.flush();
}

#[cfg(test)]
mod tests {
    use super::queue::Take;
    use super::sender::{http_date, retry_after};
    use super::stats::RemoteWriteStats;
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(check_url("http://127.0.0.1:9090/api/v1/write").is_ok());
        assert!(check_url("https://u:p@mimir.example/api/v1/push").is_ok());
        for bad in ["127.0.0.1:9090", "ftp://x/y", "http://", "http://a b/"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            redact("https://u:p@mimir.example:443/api/v1/push"),
            "https://mimir.example:443/api/v1/push"
        );
        assert_eq!(redact("http://h/x@y"), "http://h/x@y");
        assert_eq!(redact("http://u:p@h?a=b@c"), "http://h?a=b@c");
        // A raw `/` in a password moves where the host seems to end: refused,
        // and the error shows nothing before the last `@`, valid port or not.
        for leaky in [
            "https://user:1234/secret@mimir.example/api/v1/push",
            "https://user:pa/ss@mimir.example/api/v1/push",
        ] {
            let e = check_url(leaky).unwrap_err();
            assert!(!e.contains("secret") && !e.contains("pa/ss"), "{e}");
            assert!(e.contains("…@mimir.example/api/v1/push"), "{e}");
        }
    }

    #[test]
    fn url_credentials_become_basic_auth() {
        use base64::Engine as _;
        let decoded = |auth: Option<String>| {
            let token = auth.unwrap();
            let token = token.strip_prefix("Basic ").unwrap();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .unwrap(),
            )
            .unwrap()
        };
        let opts = RemoteWriteOptions::default();
        // Percent-escapes are decoded; `@` and `:` may hide in the password.
        let url = "https://tenant%201:p%40ss:w%C3%B6rd@mimir.example/api/v1/push";
        assert_eq!(
            url_credentials(url).unwrap(),
            Some(("tenant 1".into(), "p@ss:wörd".into()))
        );
        assert_eq!(
            decoded(endpoint_auth(url, &opts).unwrap()),
            "tenant 1:p@ss:wörd"
        );
        assert_eq!(redact(url), "https://mimir.example/api/v1/push");
        // A user alone has an empty password; no user-info, no auth.
        assert_eq!(decoded(endpoint_auth("http://u@h/w", &opts).unwrap()), "u:");
        assert_eq!(endpoint_auth("http://h/w", &opts).unwrap(), None);
        assert_eq!(url_credentials("http://@h/w").unwrap(), None);
        // The flags' basic auth applies to URLs without credentials.
        let flags = RemoteWriteOptions {
            basic_auth: Some(("a".into(), "b".into())),
            ..RemoteWriteOptions::default()
        };
        assert_eq!(decoded(endpoint_auth("http://h/w", &flags).unwrap()), "a:b");
        // Both at once is refused, without showing the password.
        let err = endpoint_auth("http://u:secret@h/w", &flags).unwrap_err();
        assert!(
            err.contains("cannot be set too") && !err.contains("secret"),
            "{err}"
        );
        let bearer = RemoteWriteOptions {
            bearer_token_file: Some("/t".into()),
            ..RemoteWriteOptions::default()
        };
        assert!(endpoint_auth("http://u:p@h/w", &bearer).is_err());
        // Broken escapes are refused by check_url, without showing the password.
        for bad in [
            "http://u:%zzsecret@h/w",
            "http://u:secret%4@h/w",
            "http://u:%ffsecret@h/w",
            "http://u%3Av:secret@h/w",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn extra_headers_are_checked() {
        assert_eq!(
            parse_header("X-Scope-OrgID=tenant-1").unwrap(),
            ("X-Scope-OrgID".into(), "tenant-1".into())
        );
        assert_eq!(
            parse_header(" X-Token = a=b c ").unwrap(),
            ("X-Token".into(), "a=b c".into())
        );
        assert_eq!(
            parse_header("X-Empty=").unwrap(),
            ("X-Empty".into(), "".into())
        );
        for (bad, why) in [
            ("X-Scope-OrgID", "NAME=VALUE"),
            ("=v", "not a valid HTTP header name"),
            ("X Scope=v", "not a valid HTTP header name"),
            ("X:Scope=v", "not a valid HTTP header name"),
            ("X-Scope=a\r\nX-Evil: 1", "control character"),
            ("X-Scope=a\nb", "control character"),
            ("X-Scope=a\u{7f}", "control character"),
            ("authorization=Bearer x", "bearer-token-file"),
            ("Content-Type=text/plain", "set by promstatsd"),
            ("content-encoding=gzip", "set by promstatsd"),
            (
                "X-Prometheus-Remote-Write-Version=2.0.0",
                "set by promstatsd",
            ),
            ("User-Agent=x", "set by promstatsd"),
        ] {
            let err = parse_header(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    fn ep() -> Endpoint {
        Endpoint {
            url: "http://x".into(),
            auth: None,
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            stats: Arc::new(RemoteWriteStats::new("http://x")),
        }
    }

    fn batch(n: usize) -> Arc<Batch> {
        Arc::new(Batch {
            body: vec![0; n],
            samples: n,
        })
    }

    fn take(e: &Endpoint) -> Arc<Batch> {
        match e.take(Duration::ZERO) {
            Take::Batch(b) => b,
            Take::Idle => panic!("idle"),
            Take::Done => panic!("done"),
        }
    }

    #[test]
    fn the_queue_drops_the_oldest_past_its_capacity() {
        let e = ep();
        let (a, b, c, d) = (batch(40), batch(40), batch(40), batch(40));
        e.enqueue(Arc::clone(&a), 100);
        // The sender takes `a` out: in flight, it is no longer the queue's to drop.
        assert!(Arc::ptr_eq(&take(&e), &a));
        assert_eq!(e.stats.snapshot().pending, 40);
        e.enqueue(Arc::clone(&b), 100);
        e.enqueue(Arc::clone(&c), 100);
        e.enqueue(Arc::clone(&d), 100);
        // b, c and d are 120 queued samples: b goes. Memory holds the capacity
        // plus the batch in flight, and the gauge shows both.
        assert_eq!(e.lock().samples, 80);
        assert_eq!(e.stats.snapshot().dropped, 40);
        assert_eq!(e.stats.snapshot().pending, 120);
        // Finishing `a` counts it once (it was never dropped).
        assert!(e.finish());
        assert_eq!(e.stats.snapshot().pending, 80);
        assert_eq!(e.stats.snapshot().dropped, 40);
        // Oldest surviving batch first.
        assert!(Arc::ptr_eq(&take(&e), &c));
        assert!(e.finish());
        assert!(Arc::ptr_eq(&take(&e), &d));
        assert!(e.finish());
        assert!(matches!(e.take(Duration::ZERO), Take::Idle));
        // One batch bigger than the capacity still goes (alone).
        e.enqueue(batch(500), 100);
        e.enqueue(batch(500), 100);
        assert_eq!(e.lock().batches.len(), 1);
        assert_eq!(e.stats.snapshot().dropped, 540);
    }

    #[test]
    fn shutdown_drains_then_counts_what_is_left_as_dropped() {
        let e = ep();
        e.enqueue(batch(10), 100);
        e.enqueue(batch(20), 100);
        e.enqueue(batch(30), 100);
        assert_eq!(take(&e).samples, 10);
        assert!(e.finish());
        // While draining, batches are still handed out.
        e.drain(Instant::now() + Duration::from_secs(60));
        assert_eq!(take(&e).samples, 20);
        // The deadline: the sender ends with 30 queued and 20 in flight.
        e.drain(Instant::now());
        assert!(matches!(e.take(Duration::ZERO), Take::Done));
        assert_eq!(e.close(), 50);
        let s = e.stats.snapshot();
        assert_eq!((s.dropped, s.pending), (50, 0));
        // A request that completes after that is not counted again.
        assert!(!e.finish());
        e.enqueue(batch(5), 100);
        assert_eq!(e.stats.snapshot().dropped, 55);
        // An empty queue during the drain ends the sender at once.
        let f = ep();
        f.drain(Instant::now() + Duration::from_secs(60));
        assert!(matches!(f.take(Duration::from_secs(60)), Take::Done));
        assert_eq!(f.close(), 0);
    }

    #[test]
    fn retry_after_is_read_in_both_forms() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        // The obsolete forms, which a recipient must accept (RFC 9110, 5.6.7).
        for old in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(http_date(old), Some(784_111_777), "{old}");
        }
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
        let now = 784_111_777;
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means now.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
        for bad in ["", "-1", "+5", "1.5", "soon"] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }
}
