//! Remote write: push every series to Prometheus-compatible stores (Mimir, Cortex,
//! Thanos Receive, VictoriaMetrics, Prometheus itself) on an interval.
//!
//! ```text
//! store --(every --remote-write.interval: render, cut into batches)--> collector thread
//!   --> one bounded queue per URL --> one sender thread per URL --HTTP POST--> receiver
//! ```
//!
//! Each batch is a remote-write 1.0 `WriteRequest` (protobuf, snappy block
//! compression, `Content-Encoding: snappy`, `X-Prometheus-Remote-Write-Version:
//! 0.1.0`) of at most `--remote-write.max-samples-per-send` samples. A sender
//! retries a batch with exponential backoff on network errors, 5xx and 429, and
//! drops it (counted as failed) on any other 4xx, which a retry would not fix.
//! The queue holds at most `--remote-write.queue-capacity` samples; when a dead
//! receiver lets it fill, the oldest batches are dropped (counted), so memory stays
//! bounded and the newest values go first once the receiver is back. Nothing here
//! runs on an ingest thread; the snapshot renders the page as a scrape does (and
//! waits for a scrape in progress, as two scrapes do).

pub mod proto;
pub mod snapshot;

use crate::stats::RemoteWriteStats;
use crate::store::Store;
use snapshot::{Batch, Batcher};
use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Remote-write settings.
#[derive(Clone, Debug)]
pub struct RemoteWriteOptions {
    /// Receiver URLs (`--remote-write.url`, repeatable); empty disables remote write.
    pub urls: Vec<String>,
    /// Time between snapshots.
    pub interval: Duration,
    /// Most samples per request.
    pub max_samples_per_send: usize,
    /// Most samples queued per URL; past it the oldest batches are dropped.
    pub queue_capacity: usize,
    /// Time a request may take, connection included.
    pub timeout: Duration,
    /// Labels added to every series that lacks them (`instance` by default).
    pub external_labels: Vec<(String, String)>,
    /// HTTP basic auth: user and password.
    pub basic_auth: Option<(String, String)>,
    /// A file holding a bearer token, read before every snapshot's requests.
    pub bearer_token_file: Option<PathBuf>,
    /// PEM CA bundle to verify the receiver with (default: the Mozilla roots).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for receivers that want mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Skip verifying the receiver's certificate (testing only).
    pub tls_insecure_skip_verify: bool,
    /// First retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for RemoteWriteOptions {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            interval: Duration::from_secs(15),
            max_samples_per_send: 2000,
            queue_capacity: 500_000,
            timeout: Duration::from_secs(30),
            external_labels: Vec::new(),
            basic_auth: None,
            bearer_token_file: None,
            tls_ca_file: None,
            tls_client: None,
            tls_insecure_skip_verify: false,
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A URL without its user-info part, for logs and the `url` label.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Check a receiver URL: `http://` or `https://`, a host, no spaces or quotes.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "{url:?}: the URL must start with http:// or https://"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?}: the URL has no host"));
    }
    Ok(())
}

fn read_pem(path: &std::path::Path) -> Result<Vec<ureq::tls::PemItem<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ureq::tls::parse_pem(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))
}

/// Build the HTTP agent all senders share (checks the TLS files).
pub fn agent(opts: &RemoteWriteOptions) -> Result<ureq::Agent, String> {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder().disable_verification(opts.tls_insecure_skip_verify);
    if let Some(ca) = &opts.tls_ca_file {
        let certs: Vec<_> = read_pem(ca)?
            .into_iter()
            .filter_map(|i| match i {
                PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", ca.display()));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let Some((cert, key)) = &opts.tls_client {
        let chain: Vec<_> = read_pem(cert)?
            .into_iter()
            .filter_map(|i| match i {
                PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let key = read_pem(key)?
            .into_iter()
            .find_map(|i| match i {
                PemItem::PrivateKey(k) => Some(k),
                _ => None,
            })
            .ok_or_else(|| format!("{}: no private key in the file", key.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in the file", cert.display()));
        }
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(opts.timeout))
        .user_agent(concat!("promstatsd/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .new_agent())
}

/// A queue of batches bounded in samples.
#[derive(Default)]
struct Queue {
    batches: VecDeque<Arc<Batch>>,
    samples: usize,
    stopped: bool,
}

struct Endpoint {
    url: String,
    queue: Mutex<Queue>,
    ready: Condvar,
    stats: Arc<RemoteWriteStats>,
}

impl Endpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a batch, dropping the oldest ones past the capacity.
    fn enqueue(&self, batch: Arc<Batch>, capacity: usize) {
        let mut q = self.lock();
        q.samples += batch.samples;
        q.batches.push_back(batch);
        let mut dropped = 0;
        while q.samples > capacity && q.batches.len() > 1 {
            if let Some(old) = q.batches.pop_front() {
                q.samples -= old.samples;
                dropped += old.samples;
            }
        }
        self.stats.set_pending(q.samples);
        drop(q);
        if dropped > 0 {
            self.stats.dropped(dropped);
            tracing::warn!(url = %self.url, samples = dropped, "remote write: queue full, oldest samples dropped");
        }
        self.ready.notify_one();
    }

    /// Remove `batch` if it is still at the front (the queue may have dropped it).
    fn done(&self, batch: &Arc<Batch>) {
        let mut q = self.lock();
        if q.batches.front().is_some_and(|b| Arc::ptr_eq(b, batch)) {
            q.batches.pop_front();
            q.samples -= batch.samples;
        }
        self.stats.set_pending(q.samples);
    }

    /// The front batch, waiting up to `wait` for one; `None` when stopped.
    fn front(&self, wait: Duration) -> Option<Option<Arc<Batch>>> {
        let mut q = self.lock();
        if q.batches.is_empty() && !q.stopped {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if q.stopped {
            return None;
        }
        Some(q.batches.front().cloned())
    }

    /// Sleep up to `d`, waking early when stopped; false if stopped.
    fn pause(&self, d: Duration) -> bool {
        let q = self.lock();
        if q.stopped {
            return false;
        }
        let q = self
            .ready
            .wait_timeout_while(q, d, |q| !q.stopped)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        !q.stopped
    }
}

/// What one send attempt came to.
enum Sent {
    Ok,
    Retry(String),
    Refused(String),
}

fn send(agent: &ureq::Agent, opts: &RemoteWriteOptions, url: &str, batch: &Batch) -> Sent {
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    if let Some((user, pass)) = &opts.basic_auth {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req = req.header("Authorization", format!("Basic {token}"));
    } else if let Some(f) = &opts.bearer_token_file {
        match std::fs::read_to_string(f) {
            Ok(t) => req = req.header("Authorization", format!("Bearer {}", t.trim())),
            Err(e) => {
                return Sent::Retry(format!(
                    "cannot read the bearer token file {}: {e}",
                    f.display()
                ))
            }
        }
    }
    match req.send(&batch.body[..]) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Sent::Ok;
            }
            let mut why = String::new();
            let _ = resp
                .body_mut()
                .as_reader()
                .take(512)
                .read_to_string(&mut why);
            let why = format!("HTTP {status}: {}", why.trim());
            if status >= 500 || status == 429 {
                Sent::Retry(why)
            } else {
                Sent::Refused(why)
            }
        }
        Err(e) => Sent::Retry(e.to_string()),
    }
}

fn sender_loop(ep: &Endpoint, agent: &ureq::Agent, opts: &RemoteWriteOptions) {
    let mut backoff = opts.min_backoff;
    let mut failing = false;
    while let Some(front) = ep.front(Duration::from_secs(1)) {
        let Some(batch) = front else { continue };
        match send(agent, opts, &ep.url, &batch) {
            Sent::Ok => {
                ep.done(&batch);
                ep.stats.sent(batch.samples);
                if failing {
                    tracing::info!(url = %ep.url, "remote write: receiver accepts again");
                    failing = false;
                }
                backoff = opts.min_backoff;
            }
            Sent::Refused(why) => {
                ep.done(&batch);
                ep.stats.failed(batch.samples);
                tracing::warn!(url = %ep.url, samples = batch.samples, error = %why, "remote write: receiver refused a batch; dropped");
            }
            Sent::Retry(why) => {
                ep.stats.retried(batch.samples);
                if !failing {
                    tracing::warn!(url = %ep.url, error = %why, "remote write: send failed; retrying with backoff");
                    failing = true;
                }
                if !ep.pause(backoff) {
                    break;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
}

/// The running remote-write threads; [`RemoteWrite::stop`] ends them.
pub struct RemoteWrite {
    endpoints: Vec<Arc<Endpoint>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl RemoteWrite {
    /// Start the collector and one sender per URL.
    pub fn start(store: Arc<Store>, opts: RemoteWriteOptions) -> Result<Self, String> {
        let agent = agent(&opts)?;
        let opts = Arc::new(opts);
        let mut endpoints = Vec::new();
        let mut threads = Vec::new();
        for (i, url) in opts.urls.iter().enumerate() {
            check_url(url)?;
            let ep = Arc::new(Endpoint {
                url: url.clone(),
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
                stats: store.stats.remote_write_endpoint(&redact(url)),
            });
            let (ep2, agent, o) = (Arc::clone(&ep), agent.clone(), Arc::clone(&opts));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("remote-write-{i}"))
                    .spawn(move || {
                        crate::daemon::lower_thread_priority();
                        sender_loop(&ep2, &agent, &o)
                    })
                    .map_err(|e| format!("cannot start a remote-write thread: {e}"))?,
            );
            tracing::info!(url = %redact(url), interval = ?opts.interval, "remote write enabled");
            endpoints.push(ep);
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (eps, st, o) = (endpoints.clone(), Arc::clone(&stop), Arc::clone(&opts));
        threads.push(
            std::thread::Builder::new()
                .name("remote-write".into())
                .spawn(move || {
                    crate::daemon::lower_thread_priority();
                    collector_loop(&store, &eps, &st, &o)
                })
                .map_err(|e| format!("cannot start the remote-write thread: {e}"))?,
        );
        Ok(Self {
            endpoints,
            stop,
            threads,
        })
    }

    /// Stop every thread. Waits up to two seconds for requests in flight, so a
    /// receiver that swallows packets cannot hold a shutdown for the whole
    /// `--remote-write.timeout`; a sender still blocked then ends with the process.
    pub fn stop(self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        for ep in &self.endpoints {
            ep.lock().stopped = true;
            ep.ready.notify_all();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    "remote write: a request is still in flight at shutdown; not waiting for it"
                );
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
    let mut page = Vec::new();
    loop {
        {
            let stopped = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let wait = next.saturating_duration_since(Instant::now());
            let (stopped, _) = stop
                .1
                .wait_timeout_while(stopped, wait, |s| !*s)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
        next += opts.interval;
        if next < Instant::now() {
            // A snapshot took longer than the interval: skip, do not pile up.
            next = Instant::now() + opts.interval;
        }
        let started = Instant::now();
        let timestamp_ms = (crate::push::unix_now() * 1000.0) as i64;
        page.clear();
        crate::exposition::text::render(store, &mut page);
        let text = String::from_utf8_lossy(&page);
        let mut batcher = Batcher::new(
            &opts.external_labels,
            timestamp_ms,
            opts.max_samples_per_send,
        );
        let (mut batches, mut samples) = (0usize, 0usize);
        let mut emit = |b: Batch| {
            batches += 1;
            samples += b.samples;
            let b = Arc::new(b);
            for ep in endpoints {
                ep.enqueue(Arc::clone(&b), opts.queue_capacity);
            }
        };
        batcher.add_page(&text, &mut emit);
        batcher.flush(&mut emit);
        tracing::debug!(batches, samples, took = ?started.elapsed(), "remote write: snapshot queued");
    }
}

#[cfg(test)]
mod tests {
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
    }

    fn ep() -> Endpoint {
        Endpoint {
            url: "http://x".into(),
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

    #[test]
    fn the_queue_drops_the_oldest_past_its_capacity() {
        let e = ep();
        let (a, b, c) = (batch(40), batch(40), batch(40));
        e.enqueue(Arc::clone(&a), 100);
        e.enqueue(Arc::clone(&b), 100);
        e.enqueue(Arc::clone(&c), 100);
        assert_eq!(e.lock().samples, 80);
        assert_eq!(e.stats.snapshot().dropped, 40);
        // The sender held `a` when it was dropped: finishing it removes nothing.
        e.done(&a);
        assert_eq!(e.lock().batches.len(), 2);
        e.done(&b);
        assert_eq!(e.lock().samples, 40);
        // One batch bigger than the capacity still goes (alone).
        e.enqueue(batch(500), 100);
        assert_eq!(e.lock().batches.len(), 1);
    }
}
