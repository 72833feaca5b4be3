//! Self-metrics: what promstatsd received, refused and served.
//!
//! Ingest threads count into plain integers ([`LocalStats`]) and add them to the
//! shared atomics once per batch, so the hot path does no atomic read-modify-write
//! per line. Every `Ordering` here is `Relaxed` (independent counters read by a
//! scrape) except one pair: a flush adds `lines` last with `Release` and
//! [`collect`] reads it first with `Acquire`, so a page that shows L lines shows
//! every other ingest counter at least as far as the flush that brought `lines`
//! to L (a test that waits for its lines can then read packets, samples, events).

use crate::parser::ParseError;
use crate::store::atomic::AtomicF64;
use crate::store::{FamilyKind, Store};
use std::sync::atomic::{AtomicU64, Ordering};

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
    const ALL: [ListenerKind; 4] = [Self::Udp, Self::Tcp, Self::Unixgram, Self::Unix];

    fn name(self) -> &'static str {
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

/// Shared self-metric counters.
#[derive(Debug, Default)]
pub struct Stats {
    packets: [AtomicU64; 4],
    bytes: [AtomicU64; 4],
    lines: AtomicU64,
    samples: AtomicU64,
    sample_errors: [AtomicU64; N_ERR],
    tags: AtomicU64,
    tag_errors: AtomicU64,
    events: [AtomicU64; 4],
    conflicts: [AtomicU64; 4],
    negative_counters: AtomicU64,
    empty_names: AtomicU64,
    series_refused: AtomicU64,
    dropped: AtomicU64,
    cache_flushes: AtomicU64,
    /// TCP connections accepted.
    pub tcp_connections: AtomicU64,
    /// TCP connections open now (a gauge).
    pub tcp_open: AtomicU64,
    /// TCP connections refused at the connection limit.
    pub tcp_refused: AtomicU64,
    /// Errors reading from TCP connections.
    pub tcp_errors: AtomicU64,
    /// TCP lines discarded for exceeding the line-length limit.
    pub tcp_too_long: AtomicU64,
    /// Socket receive errors other than "would block".
    pub recv_errors: AtomicU64,
    /// UDP datagrams the kernel dropped for lack of socket buffer (SO_MEMINFO).
    pub udp_kernel_drops: AtomicU64,
    /// Successful mapping reloads.
    reloads_ok: AtomicU64,
    /// Failed mapping reloads.
    reloads_failed: AtomicU64,
    /// Rules in the mapping in force.
    loaded_mappings: AtomicU64,
    /// Relay counters.
    pub relay: crate::relay::RelayStats,
    /// Push API requests, by method (put, post, delete) and outcome (ok,
    /// invalid, too_large, unsupported).
    pub push_requests: [[AtomicU64; crate::push::RESULTS.len()]; 3],
    /// Failed writes of the push persistence file.
    pub push_persist_errors: AtomicU64,
    /// Remote-write endpoints' counters.
    remote_write: std::sync::Mutex<Vec<std::sync::Arc<RemoteWriteStats>>>,
    /// Scrapes served.
    pub scrapes: AtomicU64,
    /// Total seconds spent rendering scrapes.
    pub scrape_seconds: AtomicF64,
}

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
        self.last_success.store(crate::push::unix_now());
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

impl Stats {
    /// Register a remote-write URL's counters.
    pub fn remote_write_endpoint(&self, url: &str) -> std::sync::Arc<RemoteWriteStats> {
        let s = std::sync::Arc::new(RemoteWriteStats::new(url));
        self.remote_write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(std::sync::Arc::clone(&s));
        s
    }

    /// Count a reload and note how many rules are in force.
    pub fn record_reload(&self, ok: bool, rules: usize) {
        // Relaxed: see the module comment.
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.loaded_mappings.store(rules as u64, Ordering::Relaxed);
    }

    /// Note how many rules are in force (at start).
    pub fn set_loaded_mappings(&self, rules: usize) {
        // Relaxed: see the module comment.
        self.loaded_mappings.store(rules as u64, Ordering::Relaxed);
    }
}

/// Per-thread counters, added to [`Stats`] by [`LocalStats::flush`].
#[derive(Clone, Debug, Default)]
pub struct LocalStats {
    /// Packets per listener.
    pub packets: [u64; 4],
    /// Bytes per listener.
    pub bytes: [u64; 4],
    /// Lines.
    pub lines: u64,
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
    /// Events refused for a type conflict, by [`EventKind`].
    pub conflicts: [u64; 4],
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

    /// Count a conflicting event.
    #[inline]
    pub fn conflict(&mut self, k: EventKind) {
        self.conflicts[k as usize] += 1;
    }

    /// Add everything to `shared` and reset.
    pub fn flush(&mut self, shared: &Stats) {
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
        add(&shared.samples, self.samples);
        add_all(&shared.sample_errors, &self.sample_errors);
        add(&shared.tags, self.tags);
        add(&shared.tag_errors, self.tag_errors);
        add_all(&shared.events, &self.events);
        add_all(&shared.conflicts, &self.conflicts);
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

/// One self-metric sample: series-name suffix, labels, value.
pub type SelfSample = (&'static str, Vec<(&'static str, &'static str)>, f64);

/// One self-metric family, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfFamily {
    /// Family name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// `counter`, `gauge` or `summary`.
    pub kind: &'static str,
    /// `(series name suffix, labels as (name, value), value)`.
    pub samples: Vec<SelfSample>,
}

fn get(a: &AtomicU64) -> f64 {
    // Relaxed: see the module comment.
    a.load(Ordering::Relaxed) as f64
}

fn family(
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<SelfSample>,
) -> SelfFamily {
    SelfFamily {
        name,
        help,
        kind,
        samples,
    }
}

fn single(name: &'static str, kind: &'static str, help: &'static str, v: f64) -> SelfFamily {
    family(name, kind, help, vec![("", vec![], v)])
}

/// Read every self-metric, sorted by family name.
pub fn collect(store: &Store) -> Vec<SelfFamily> {
    let s = &store.stats;
    // Acquire, and first: pairs with the Release add in `LocalStats::flush`, so the
    // counters read below are at least as new as this line count.
    let lines = s.lines.load(Ordering::Acquire) as f64;
    let per_listener = |a: &[AtomicU64; 4]| {
        ListenerKind::ALL
            .iter()
            .map(|l| ("", vec![("listener", l.name())], get(&a[*l as usize])))
            .collect()
    };
    let per_event = |a: &[AtomicU64; 4]| {
        EventKind::ALL
            .iter()
            .map(|k| ("", vec![("type", k.name())], get(&a[*k as usize])))
            .collect()
    };
    let mut out = vec![
        family(
            "promstatsd_packets_total",
            "counter",
            "StatsD packets received (TCP: reads), by listener.",
            per_listener(&s.packets),
        ),
        family(
            "promstatsd_bytes_total",
            "counter",
            "StatsD bytes received, by listener.",
            per_listener(&s.bytes),
        ),
        single(
            "promstatsd_lines_total",
            "counter",
            "StatsD lines received.",
            lines,
        ),
        single(
            "promstatsd_samples_total",
            "counter",
            "StatsD samples received.",
            get(&s.samples),
        ),
        family(
            "promstatsd_sample_errors_total",
            "counter",
            "StatsD lines or samples rejected, by reason.",
            ParseError::ALL
                .iter()
                .map(|e| {
                    (
                        "",
                        vec![("reason", e.reason())],
                        get(&s.sample_errors[e.index()]),
                    )
                })
                .collect(),
        ),
        single(
            "promstatsd_tags_total",
            "counter",
            "Samples that carried tags.",
            get(&s.tags),
        ),
        single(
            "promstatsd_tag_errors_total",
            "counter",
            "Malformed tags skipped.",
            get(&s.tag_errors),
        ),
        family(
            "promstatsd_events_total",
            "counter",
            "Samples recorded, by type.",
            per_event(&s.events),
        ),
        family(
            "promstatsd_events_conflict_total",
            "counter",
            "Samples refused because their name is in use with another type, by type.",
            per_event(&s.conflicts),
        ),
        family(
            "promstatsd_events_error_total",
            "counter",
            "Samples refused after parsing, by reason.",
            vec![
                (
                    "",
                    vec![("reason", "empty_metric_name")],
                    get(&s.empty_names),
                ),
                (
                    "",
                    vec![("reason", "illegal_negative_counter")],
                    get(&s.negative_counters),
                ),
                ("", vec![("reason", "series_limit")], get(&s.series_refused)),
            ],
        ),
        family(
            "promstatsd_events_actions_total",
            "counter",
            "Samples dropped by a mapping.",
            vec![("", vec![("action", "drop")], get(&s.dropped))],
        ),
        family(
            "promstatsd_series",
            "gauge",
            "Series in the store, by type.",
            FamilyKind::ALL
                .iter()
                .map(|k| ("", vec![("type", k.label())], store.series_count(*k) as f64))
                .collect(),
        ),
        single(
            "promstatsd_ingest_cache_flushes_total",
            "counter",
            "Times an ingest thread's series cache was emptied because it was full.",
            get(&s.cache_flushes),
        ),
        single(
            "promstatsd_tcp_connections_total",
            "counter",
            "TCP connections accepted.",
            get(&s.tcp_connections),
        ),
        single(
            "promstatsd_tcp_connections_open",
            "gauge",
            "TCP connections open now.",
            get(&s.tcp_open),
        ),
        single(
            "promstatsd_tcp_connections_refused_total",
            "counter",
            "TCP connections closed at once because the connection limit was reached.",
            get(&s.tcp_refused),
        ),
        single(
            "promstatsd_tcp_connection_errors_total",
            "counter",
            "Errors reading from TCP connections.",
            get(&s.tcp_errors),
        ),
        single(
            "promstatsd_tcp_too_long_lines_total",
            "counter",
            "TCP lines discarded for exceeding the line-length limit.",
            get(&s.tcp_too_long),
        ),
        single(
            "promstatsd_receive_errors_total",
            "counter",
            "Socket receive errors (other than would-block).",
            get(&s.recv_errors),
        ),
        family(
            "promstatsd_scrape_duration_seconds",
            "summary",
            "Time spent rendering /metrics.",
            vec![
                ("_sum", vec![], s.scrape_seconds.load()),
                ("_count", vec![], get(&s.scrapes)),
            ],
        ),
        single(
            "promstatsd_udp_kernel_drops_total",
            "counter",
            "UDP datagrams the kernel dropped because the socket's receive buffer was full (SO_MEMINFO); raise --statsd.read-buffer.",
            get(&s.udp_kernel_drops),
        ),
        single(
            "promstatsd_relay_packets_total",
            "counter",
            "Datagrams relayed upstream.",
            get(&s.relay.packets),
        ),
        single(
            "promstatsd_relay_lines_relayed_total",
            "counter",
            "Lines relayed upstream.",
            get(&s.relay.lines),
        ),
        single(
            "promstatsd_relay_long_lines_total",
            "counter",
            "Lines too long for a relay datagram, not relayed.",
            get(&s.relay.long_lines),
        ),
        single(
            "promstatsd_relay_errors_total",
            "counter",
            "Relay datagrams the kernel refused (dead upstream, full buffer).",
            get(&s.relay.errors),
        ),
        family(
            "promstatsd_config_reloads_total",
            "counter",
            "Mapping reloads, by outcome.",
            vec![
                ("", vec![("outcome", "success")], get(&s.reloads_ok)),
                ("", vec![("outcome", "failure")], get(&s.reloads_failed)),
            ],
        ),
        family(
            "promstatsd_push_requests_total",
            "counter",
            "Push API requests, by method and result (ok, invalid, too_large, unsupported).",
            crate::push::PushMethod::ALL
                .iter()
                .flat_map(|&method| {
                    crate::push::RESULTS.iter().enumerate().map(move |(r, result)| {
                        (
                            "",
                            vec![("method", method.name()), ("result", *result)],
                            get(&s.push_requests[method as usize][r]),
                        )
                    })
                })
                .collect(),
        ),
        single(
            "promstatsd_push_groups",
            "gauge",
            "Groups held by the push API.",
            store.pushed().group_count() as f64,
        ),
        single(
            "promstatsd_push_persist_errors_total",
            "counter",
            "Failed writes of the push persistence file.",
            get(&s.push_persist_errors),
        ),
        single(
            "promstatsd_loaded_mappings",
            "gauge",
            "Rules in the mapping in force.",
            get(&s.loaded_mappings),
        ),
        single(
            "promstatsd_build_info",
            "gauge",
            "A constant 1, labelled with the version.",
            1.0,
        ),
    ];
    if let Some(f) = out.last_mut() {
        if let Some(sample) = f.samples.first_mut() {
            sample.1.push(("version", env!("CARGO_PKG_VERSION")));
        }
    }
    let endpoints: Vec<(&'static str, RemoteWriteSnapshot)> = s
        .remote_write
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|e| (e.url, e.snapshot()))
        .collect();
    if !endpoints.is_empty() {
        let per_url = |f: fn(&RemoteWriteSnapshot) -> f64| -> Vec<SelfSample> {
            endpoints
                .iter()
                .map(|(url, snap)| ("", vec![("url", *url)], f(snap)))
                .collect()
        };
        out.extend([
            family(
                "promstatsd_remote_write_samples_sent_total",
                "counter",
                "Samples the remote-write receiver accepted, by URL.",
                per_url(|s| s.sent as f64),
            ),
            family(
                "promstatsd_remote_write_samples_failed_total",
                "counter",
                "Samples the remote-write receiver refused with a 4xx (not retried), by URL.",
                per_url(|s| s.failed as f64),
            ),
            family(
                "promstatsd_remote_write_samples_retried_total",
                "counter",
                "Samples in remote-write requests retried after a network error, 5xx or 429, by URL.",
                per_url(|s| s.retried as f64),
            ),
            family(
                "promstatsd_remote_write_samples_dropped_total",
                "counter",
                "Samples dropped because the remote-write queue was full, by URL.",
                per_url(|s| s.dropped as f64),
            ),
            family(
                "promstatsd_remote_write_queue_samples",
                "gauge",
                "Samples waiting in the remote-write queue, by URL.",
                per_url(|s| s.pending as f64),
            ),
            family(
                "promstatsd_remote_write_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last accepted remote-write request, by URL.",
                per_url(|s| s.last_success),
            ),
        ]);
    }
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}
