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

use crate::store::Store;
use crate::vocab::percent_decode;
use snapshot::{Batch, Batcher};
use stats::{RemoteWriteMetrics, RemoteWriteStats};
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
    /// Most samples queued per URL besides the batch in flight; past it the oldest
    /// queued batches are dropped.
    pub queue_capacity: usize,
    /// Time a request may take, connection included.
    pub timeout: Duration,
    /// Labels added to every series that lacks them (`instance` by default).
    pub external_labels: Vec<(String, String)>,
    /// Extra HTTP headers sent with every request (`X-Scope-OrgID` for a tenant),
    /// checked by [`parse_header`].
    pub headers: Vec<(String, String)>,
    /// HTTP basic auth: user and password (for URLs without credentials of their own).
    pub basic_auth: Option<(String, String)>,
    /// A file holding a bearer token, re-read before every request (a rotated
    /// token is picked up).
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
            headers: Vec::new(),
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

/// Split `scheme://authority...` at the authority's end (the first `/`, `?` or `#`).
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    Some((scheme, authority, path))
}

/// A URL without its user-info part: what requests go to, and what logs and the
/// `url` label show.
pub fn redact(url: &str) -> String {
    match split_url(url) {
        Some((scheme, authority, path)) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A URL as error messages may show it: everything before the last `@` after
/// the scheme hidden, so no credentials show even when a raw `/`, `?` or `#` in
/// a password cut the URL somewhere else than its user meant.
fn shown_in_errors(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, after)) => format!("{scheme}://…@{after}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, after)) => format!("…@{after}"),
            None => url.to_owned(),
        },
    }
}

/// The user and password of a URL's user-info (`https://user:pass@host/...`),
/// percent-decoded; `None` when the URL has none.
pub fn url_credentials(url: &str) -> Result<Option<(String, String)>, String> {
    let Some((_, authority, _)) = split_url(url) else {
        return Ok(None);
    };
    let Some((info, _)) = authority.rsplit_once('@') else {
        return Ok(None);
    };
    if info.is_empty() {
        return Ok(None);
    }
    let (user, pass) = info.split_once(':').unwrap_or((info, ""));
    let bad = |what: &str| {
        format!(
            "{}: the {what} in the URL is not valid percent-encoded UTF-8",
            redact(url)
        )
    };
    let user = percent_decode(user).ok_or_else(|| bad("user"))?;
    let pass = percent_decode(pass).ok_or_else(|| bad("password"))?;
    if user.contains(':') {
        return Err(format!(
            "{}: the user in the URL holds a colon, which basic auth cannot carry",
            redact(url)
        ));
    }
    Ok(Some((user, pass)))
}

fn basic_auth(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

/// The `Authorization` value every request to `url` carries: basic auth from the
/// URL's user-info, else from [`RemoteWriteOptions::basic_auth`]; `None` without
/// either (a bearer token, if any, is read per request). Credentials in the URL
/// together with the basic-auth or bearer-token settings are refused.
pub fn endpoint_auth(url: &str, opts: &RemoteWriteOptions) -> Result<Option<String>, String> {
    match url_credentials(url)? {
        Some(_) if opts.basic_auth.is_some() || opts.bearer_token_file.is_some() => Err(format!(
            "{}: the URL carries credentials, so --remote-write.basic-auth.* and \
             --remote-write.bearer-token-file cannot be set too; use one or the other",
            redact(url)
        )),
        Some((user, pass)) => Ok(Some(basic_auth(&user, &pass))),
        None => Ok(opts.basic_auth.as_ref().map(|(u, p)| basic_auth(u, p))),
    }
}

/// Check a receiver URL: `http://` or `https://`, a host, no spaces or quotes,
/// well-formed credentials if it has any. Errors never show the credentials.
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = shown_in_errors(url);
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "{shown:?}: the URL must start with http:// or https://"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{shown:?}: the URL has no host"));
    }
    if split_url(url).is_some_and(|(_, _, path)| {
        path.split(['?', '#'])
            .next()
            .is_some_and(|p| p.contains('@'))
    }) {
        return Err(format!(
            "{shown:?}: an @ after the host; if it belongs to credentials, percent-encode \
             any /, ?, # or @ in the user or password (%2F, %3F, %23, %40)"
        ));
    }
    url_credentials(url)?;
    Ok(())
}

/// Headers the client sets itself, which `--remote-write.header` may not replace
/// (lower case).
const RESERVED_HEADERS: [&str; 8] = [
    "content-type",
    "content-encoding",
    "x-prometheus-remote-write-version",
    "user-agent",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// Parse a `NAME=VALUE` extra header: the name an HTTP token, the value free of
/// control characters (no header can be smuggled in), neither one the client sets.
/// Errors name the header but never show its value (it may be a secret).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err("expected NAME=VALUE".to_owned());
    };
    let (name, value) = (name.trim(), value.trim_matches([' ', '\t']));
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("{name:?} is not a valid HTTP header name"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "the value of {name} holds a control character (CR, LF, ...)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "authorization" {
        return Err(
            "Authorization cannot be set this way: use --remote-write.basic-auth.username \
             and --remote-write.basic-auth.password-file, --remote-write.bearer-token-file, \
             or credentials in the URL"
                .to_owned(),
        );
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "{name} is set by promstatsd itself and cannot be replaced"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
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

/// A queue of batches bounded in samples, and the batch its sender holds.
#[derive(Default)]
struct Queue {
    /// Batches waiting, oldest first.
    batches: VecDeque<Arc<Batch>>,
    /// Samples in `batches` (what the capacity bounds).
    samples: usize,
    /// Samples of the batch the sender took out and has not finished with.
    in_flight: usize,
    /// Set by [`RemoteWrite::stop`]: deliver what is queued, each batch once,
    /// until this instant.
    drain_until: Option<Instant>,
    /// Set by [`RemoteWrite::stop`] at its deadline: what was left has been
    /// counted as dropped; nothing is counted any more.
    closed: bool,
}

struct Endpoint {
    /// The URL requests go to, without user-info; logs and the `url` label show it.
    url: String,
    /// The `Authorization` value fixed for the run (basic auth), if any.
    auth: Option<String>,
    queue: Mutex<Queue>,
    ready: Condvar,
    stats: Arc<RemoteWriteStats>,
}

/// What [`Endpoint::take`] found.
enum Take {
    /// The oldest batch, now in flight.
    Batch(Arc<Batch>),
    /// Nothing queued yet.
    Idle,
    /// Shutting down and nothing (or no time) left: the sender ends.
    Done,
}

impl Endpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a batch, dropping the oldest queued ones past the capacity (never
    /// the one in flight: its sender holds it).
    fn enqueue(&self, batch: Arc<Batch>, capacity: usize) {
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
    fn take(&self, wait: Duration) -> Take {
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
    fn finish(&self) -> bool {
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
    fn settle(&self, count: impl FnOnce(&RemoteWriteStats)) {
        if self.finish() {
            count(&self.stats);
        }
    }

    /// The shutdown deadline, once shutdown has begun.
    fn draining(&self) -> Option<Instant> {
        self.lock().drain_until
    }

    /// Begin the shutdown drain: deliver what is queued until `deadline`.
    fn drain(&self, deadline: Instant) {
        self.lock().drain_until = Some(deadline);
        self.ready.notify_all();
    }

    /// End for good: count what is still queued or in flight as dropped, and
    /// return how many samples that was.
    fn close(&self) -> usize {
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
    fn pause(&self, d: Duration) {
        let q = self.lock();
        drop(
            self.ready
                .wait_timeout_while(q, d, |q| q.drain_until.is_none())
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

/// The longest wait a receiver's `Retry-After` can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long [`RemoteWrite::stop`] gives the senders to deliver what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Seconds since the Unix epoch of an HTTP-date (IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms, which RFC 9110 says a recipient must accept too).
fn http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// The wait a `Retry-After` value asks for: delay seconds, or an HTTP date
/// (`now_unix` is the current Unix time); `None` if it is neither.
fn retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(v.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    http_date(v).map(|t| Duration::from_secs(t.saturating_sub(now_unix)))
}

/// What one send attempt came to.
enum Sent {
    Ok,
    /// Worth another try, after at least `after` if the receiver said so.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Refused(String),
}

fn send(
    agent: &ureq::Agent,
    opts: &RemoteWriteOptions,
    ep: &Endpoint,
    batch: &Batch,
    timeout: Duration,
) -> Sent {
    let mut req = agent
        .post(&ep.url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    for (name, value) in &opts.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(auth) = &ep.auth {
        req = req.header("Authorization", auth);
    } else if let Some(f) = &opts.bearer_token_file {
        match std::fs::read_to_string(f) {
            Ok(t) => req = req.header("Authorization", format!("Bearer {}", t.trim())),
            Err(e) => {
                return Sent::Retry {
                    why: format!("cannot read the bearer token file {}: {e}", f.display()),
                    after: None,
                }
            }
        }
    }
    match req.send(&batch.body[..]) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Sent::Ok;
            }
            let now_unix = crate::sys::unix_now() as u64;
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now_unix));
            let mut why = String::new();
            let _ = resp
                .body_mut()
                .as_reader()
                .take(512)
                .read_to_string(&mut why);
            let why = format!("HTTP {status}: {}", why.trim());
            if status >= 500 || status == 429 {
                Sent::Retry { why, after }
            } else {
                Sent::Refused(why)
            }
        }
        Err(e) => Sent::Retry {
            why: e.to_string(),
            after: None,
        },
    }
}

fn sender_loop(ep: &Endpoint, agent: &ureq::Agent, opts: &RemoteWriteOptions) {
    let mut backoff = opts.min_backoff;
    let mut failing = false;
    // The batch taken out of the queue and retried from here: the queue cannot
    // drop it meanwhile, so it is counted once, as sent, failed or dropped.
    let mut held: Option<Arc<Batch>> = None;
    loop {
        let batch = match held.take() {
            Some(b) => b,
            None => match ep.take(Duration::from_secs(1)) {
                Take::Batch(b) => b,
                Take::Idle => continue,
                Take::Done => return,
            },
        };
        // Shutting down: one try each, within what is left of the deadline.
        let draining = ep.draining();
        let timeout = match draining {
            None => opts.timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return; // `RemoteWrite::stop` counts the batch as dropped.
                }
                left.min(opts.timeout)
            }
        };
        match send(agent, opts, ep, &batch, timeout) {
            Sent::Ok => {
                ep.settle(|s| s.sent(batch.samples));
                if failing {
                    tracing::info!(url = %ep.url, "remote write: receiver accepts again");
                    failing = false;
                }
                backoff = opts.min_backoff;
            }
            Sent::Refused(why) => {
                ep.settle(|s| s.failed(batch.samples));
                tracing::warn!(url = %ep.url, samples = batch.samples, error = %why, "remote write: receiver refused a batch; dropped");
            }
            Sent::Retry { why, .. } if draining.is_some() => {
                ep.settle(|s| s.dropped(batch.samples));
                tracing::warn!(url = %ep.url, samples = batch.samples, error = %why, "remote write: send failed at shutdown; dropped");
            }
            Sent::Retry { why, after } => {
                ep.stats.retried(batch.samples);
                if !failing {
                    tracing::warn!(url = %ep.url, error = %why, "remote write: send failed; retrying with backoff");
                    failing = true;
                }
                let wait = after.map_or(backoff, |a| a.min(MAX_RETRY_AFTER).max(backoff));
                held = Some(batch);
                // Woken early by shutdown: the held batch gets its one last try.
                ep.pause(wait);
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
}

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
    emit: &mut impl FnMut(Batch),
) {
    let mut batcher = Batcher::new(external_labels, timestamp_ms, max_samples, emit);
    store.collect(&mut batcher);
    batcher.flush();
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
