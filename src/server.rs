//! The server: one pipeline built from a [`Config`], its sockets bound and its
//! threads started, behind a handle another program can hold.
//!
//! [`Pipeline`] is the part without sockets (store, mapper, reloader, the
//! self-metric collectors registered in a fixed order) that both
//! [`crate::Aggregator`] and [`Server`] build. [`Server::start`] binds every
//! listener (port 0 works: [`Server::addrs`] says what was bound), starts the
//! ingest, web, housekeeping and remote-write threads, and returns; the daemon
//! ([`crate::daemon`]) is signal handling around it. Dropping a `Server` shuts
//! it down as [`Server::shutdown`] does.
//!
//! May import: vocab, sys, model, parser, mapper, store, relay, ingest, listener, reload, push, remote_write, exposition, status, config.

use crate::config::Config;
use crate::exposition::http;
use crate::ingest::stats::IngestStats;
use crate::ingest::Ingester;
use crate::listener::stats::ListenerStats;
use crate::listener::{self, Listener, Stopper};
use crate::mapper::config::ConfigError;
use crate::mapper::{Mapper, MapperHandle};
use crate::push::Persister;
use crate::reload::{ReloadStats, Reloader};
use crate::store::Store;
use crate::sys::lower_thread_priority;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Why the server could not start, or stopped with an error.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// The socket-free part of promstatsd: a store, the mapper in force and what
/// reloads it.
#[derive(Debug)]
pub struct Pipeline {
    /// The store every thread shares.
    pub store: Arc<Store>,
    /// The mapper in force, swapped by reloads.
    pub handle: Arc<MapperHandle>,
    /// Reloads the mapping source of the config.
    pub reloader: Arc<Reloader>,
    parse: crate::parser::ParseOptions,
    cache_entries: usize,
}

impl Pipeline {
    /// Load the config's mapping (warnings logged) and build the pipeline.
    pub fn build(cfg: &Config) -> Result<Self, ConfigError> {
        Ok(Self::with_mapper(cfg, load_mapper(cfg)?))
    }

    /// Build the pipeline around an already built mapper.
    pub fn with_mapper(cfg: &Config, mapper: Mapper) -> Self {
        let store = Arc::new(Store::new(cfg.store.clone()));
        store.pushed().set_max_series(cfg.push.max_series);
        // First: a scrape reads the collectors in this order, and the ingest
        // counters' Acquire read of the line count must come before the rest
        // (see `crate::ingest::stats`).
        // Every part's counters are on the page from the start, zero until they
        // move (as statsd_exporter shows them), whichever parts run.
        let m = store.metrics();
        let _ = m.shared::<IngestStats>();
        let _ = m.shared::<ListenerStats>();
        let _ = m.shared::<crate::relay::RelayStats>();
        m.shared::<ReloadStats>()
            .set_loaded_mappings(mapper.rule_count());
        let _ = m.shared::<crate::push::PushStats>();
        let _ = m.shared::<crate::exposition::stream::ScrapeStats>();
        let _ = m.shared::<http::AuthStats>();
        let _ = m.shared::<http::ConnStats>();
        let _ = m.shared::<crate::remote_write::stats::RemoteWriteMetrics>();
        let handle = Arc::new(MapperHandle::new(mapper));
        let reloader = Arc::new(Reloader::new(
            cfg.mapping.clone(),
            cfg.mapper.clone(),
            Arc::clone(&handle),
            Arc::clone(&store),
        ));
        Self {
            store,
            handle,
            reloader,
            parse: cfg.parse,
            cache_entries: cfg.cache_entries,
        }
    }

    /// A new ingester (one per ingest thread) into this pipeline's store.
    pub fn ingester(&self) -> Ingester {
        Ingester::new(
            Arc::clone(&self.store),
            Arc::clone(&self.handle),
            self.parse,
            self.cache_entries,
        )
    }
}

/// The mapper the config names (its warnings logged), or one without rules.
pub fn load_mapper(cfg: &Config) -> Result<Mapper, ConfigError> {
    let Some(src) = &cfg.mapping else {
        return Ok(Mapper::new(cfg.mapper.clone()));
    };
    let (m, warnings) = src.load(&cfg.mapper)?;
    for w in warnings {
        tracing::warn!(source = %src.describe(), "{w}");
    }
    tracing::info!(source = %src.describe(), mappings = m.rule_count(), "mapping loaded");
    Ok(m)
}

/// `/api/v1/status` and `/status`: the operator view, on the web port.
fn status_pages(status: Arc<crate::status::Status>) -> Vec<http::ExtraPage> {
    let json = Arc::clone(&status);
    vec![
        http::ExtraPage {
            path: "/api/v1/status",
            content_type: "application/json",
            render: Arc::new(move || crate::status::json::write(&json.report())),
        },
        http::ExtraPage {
            path: "/status",
            content_type: "text/html; charset=utf-8",
            render: Arc::new(move || crate::status::html::write(&status.report())),
        },
    ]
}

/// What a running server bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    /// StatsD over UDP.
    pub udp: Option<SocketAddr>,
    /// StatsD over TCP.
    pub tcp: Option<SocketAddr>,
    /// StatsD over a unix datagram socket.
    pub unixgram: Option<PathBuf>,
    /// StatsD over a unix stream socket.
    pub unix: Option<PathBuf>,
    /// The web port (`/metrics`).
    pub web: Option<SocketAddr>,
    /// The push port.
    pub push: Option<SocketAddr>,
}

/// Something that happened to a running server, for whoever waits on it.
#[derive(Debug)]
pub enum Event {
    /// A signal, sent through [`Server::notifier`] (the daemon's signal thread).
    Signal(i32),
    /// A thread stopped with an error; the server should be shut down.
    Failed(&'static str, std::io::Error),
}

/// Sends [`Event`]s to a server's [`Server::next_event`].
#[derive(Clone, Debug)]
pub struct Notifier(mpsc::Sender<Event>);

impl Notifier {
    /// Send `event`; false once the server is gone.
    pub fn send(&self, event: Event) -> bool {
        self.0.send(event).is_ok()
    }
}

/// A background thread and what tells it to stop.
type Stoppable<S> = (S, JoinHandle<()>);

/// A running promstatsd: bound sockets and started threads.
#[derive(Debug)]
pub struct Server {
    pipeline: Pipeline,
    addrs: Addrs,
    stoppers: Vec<Stopper>,
    ingest_threads: Vec<JoinHandle<()>>,
    web: Option<Stoppable<Arc<tokio::sync::Notify>>>,
    house: Option<Stoppable<mpsc::Sender<()>>>,
    remote_write: Option<crate::remote_write::RemoteWrite>,
    events: mpsc::Receiver<Event>,
    notify: mpsc::Sender<Event>,
}

/// Bound sockets, before any thread starts.
struct Bound {
    statsd: listener::Sockets,
    web: Option<std::net::TcpListener>,
    push: Option<std::net::TcpListener>,
}

fn bind_tcp(
    addr: Option<SocketAddr>,
    what: &str,
    hint: &str,
) -> Result<Option<std::net::TcpListener>, RunError> {
    addr.map(|a| {
        crate::sys::tcp_listener(a)
            .map_err(|e| RunError(format!("cannot listen on {what} {a}: {e}{hint}")))
    })
    .transpose()
}

impl Bound {
    fn new(cfg: &Config) -> Result<Self, RunError> {
        Ok(Self {
            statsd: listener::bind(&cfg.listen).map_err(|e| RunError(e.to_string()))?,
            web: bind_tcp(cfg.web_listen, "web", "")?,
            push: bind_tcp(
                cfg.push_listen,
                "push",
                " (--push.listen-address=\"\" disables the push API)",
            )?,
        })
    }

    fn addrs(&self) -> Addrs {
        Addrs {
            udp: self.statsd.udp_addr(),
            tcp: self.statsd.tcp_addr(),
            unixgram: self.statsd.unixgram_path().map(PathBuf::from),
            unix: self.statsd.unix_path().map(PathBuf::from),
            web: self.web.as_ref().and_then(|w| w.local_addr().ok()),
            push: self.push.as_ref().and_then(|w| w.local_addr().ok()),
        }
    }
}

fn log_addrs(a: &Addrs, udp_workers: usize, cfg: &Config) {
    if let Some(a) = a.udp {
        tracing::info!(listener = "udp", address = %a, workers = udp_workers, "listening");
    }
    if let Some(a) = a.tcp {
        tracing::info!(listener = "tcp", address = %a, "listening");
    }
    if let Some(p) = &a.unixgram {
        tracing::info!(listener = "unixgram", address = %p.display(), "listening");
    }
    if let Some(p) = &a.unix {
        tracing::info!(listener = "unix", address = %p.display(), "listening");
    }
    if let Some(a) = a.web {
        tracing::info!(listener = "web", address = %a, path = %cfg.web.telemetry_path, "listening");
    }
    if let Some(a) = a.push {
        tracing::info!(listener = "push", address = %a, "listening");
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, RunError> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| RunError(format!("cannot start the {name} thread: {e}")))
}

impl Server {
    /// Bind every listener of `cfg`, start every thread, and return. Binding
    /// and mapping errors come back before any thread starts.
    pub fn start(cfg: Config) -> Result<Self, RunError> {
        let mut bound = Bound::new(&cfg)?;
        let extra_udp = bound.statsd.take_udp_workers();
        let addrs = bound.addrs();
        log_addrs(&addrs, extra_udp.len() + 1, &cfg);
        let pipeline = Pipeline::build(&cfg).map_err(|e| RunError(e.to_string()))?;
        if let Some(f) = &cfg.push.persistence_file {
            let n = crate::push::load(&pipeline.store, f).map_err(RunError)?;
            tracing::info!(file = %f.display(), groups = n, "push groups loaded");
        }
        let listeners = Self::listeners(&cfg, &pipeline, bound.statsd, extra_udp)?;
        let (notify, events) = mpsc::channel();
        let mut server = Self {
            stoppers: listeners.iter().map(Listener::stopper).collect(),
            pipeline,
            addrs,
            ingest_threads: Vec::new(),
            web: None,
            house: None,
            remote_write: None,
            events,
            notify,
        };
        // From here on, a failure drops `server`, which stops what started.
        for (i, l) in listeners.into_iter().enumerate() {
            let tx = server.notify.clone();
            server
                .ingest_threads
                .push(spawn(format!("ingest-{i}"), move || {
                    if let Err(e) = l.run() {
                        let _ = tx.send(Event::Failed("ingest", e));
                    }
                })?);
        }
        let status = Arc::new(crate::status::Status::new(
            Arc::clone(&server.pipeline.store),
            Arc::clone(&server.pipeline.handle),
            cfg.mapping
                .as_ref()
                .map_or_else(|| "none (names escaped)".to_owned(), |m| m.describe()),
        ));
        server.house = Some(server.start_housekeeping(&cfg, Arc::clone(&status))?);
        server.web = server.start_web(&cfg, bound.web.take(), bound.push.take(), status)?;
        if !cfg.remote_write.urls.is_empty() {
            let store = Arc::clone(&server.pipeline.store);
            server.remote_write = Some(
                crate::remote_write::RemoteWrite::start(store, cfg.remote_write.clone())
                    .map_err(RunError)?,
            );
        }
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "promstatsd started");
        Ok(server)
    }

    /// One listener per UDP worker socket set, then the main one (TCP and
    /// unix sockets share it); with no extra worker, its ingester is the only
    /// thread writing series values.
    fn listeners(
        cfg: &Config,
        pipeline: &Pipeline,
        sockets: listener::Sockets,
        extra_udp: Vec<listener::Sockets>,
    ) -> Result<Vec<Listener>, RunError> {
        if let Some(r) = &cfg.relay {
            tracing::info!(target = %r.target, packet_length = r.packet_length, "relaying valid lines");
        }
        let relay = |ing: Ingester| -> Result<Ingester, RunError> {
            let Some(r) = &cfg.relay else { return Ok(ing) };
            let relay = crate::relay::Relay::new(r)
                .map_err(|e| RunError(format!("cannot relay to {}: {e}", r.target)))?;
            Ok(ing.with_relay(relay))
        };
        let sole = extra_udp.is_empty();
        let main = pipeline.ingester();
        let main = relay(if sole { main.sole_writer() } else { main })?;
        let mut out = vec![Listener::new(sockets, main, cfg.listen.clone())
            .map_err(|e| RunError(format!("cannot start the event loop: {e}")))?];
        for (i, socks) in extra_udp.into_iter().enumerate() {
            let ing = relay(pipeline.ingester())?;
            out.push(
                Listener::new(socks, ing, cfg.listen.clone())
                    .map_err(|e| RunError(format!("cannot start UDP worker {}: {e}", i + 2)))?,
            );
        }
        Ok(out)
    }

    /// TTL expiry once a second; push groups' TTL and persistence; the
    /// status history's readings.
    fn start_housekeeping(
        &self,
        cfg: &Config,
        status: Arc<crate::status::Status>,
    ) -> Result<Stoppable<mpsc::Sender<()>>, RunError> {
        let (stop, rx) = mpsc::channel::<()>();
        let store = Arc::clone(&self.pipeline.store);
        let push = cfg.push.clone();
        let t = spawn("housekeeping".into(), move || {
            lower_thread_priority();
            let mut persister = push
                .persistence_file
                .clone()
                .map(|f| Persister::new(f, push.persistence_interval, &store));
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(1))
            {
                let n = store.expire(store.clock.tick());
                if n > 0 {
                    tracing::debug!(series = n, "expired series removed");
                }
                if !push.ttl.is_zero() {
                    let n = store.expire_pushed(crate::sys::unix_now(), push.ttl.as_secs_f64());
                    if n > 0 {
                        tracing::info!(groups = n, "push groups expired (--push.ttl)");
                    }
                }
                if let Some(p) = &mut persister {
                    p.tick(&store, false);
                }
                status.tick();
            }
            if let Some(p) = &mut persister {
                p.tick(&store, true);
            }
        })?;
        Ok((stop, t))
    }

    /// The web thread, serving the web port and the push port, if either is on.
    fn start_web(
        &self,
        cfg: &Config,
        web: Option<std::net::TcpListener>,
        push: Option<std::net::TcpListener>,
        status: Arc<crate::status::Status>,
    ) -> Result<Option<Stoppable<Arc<tokio::sync::Notify>>>, RunError> {
        if web.is_none() && push.is_none() {
            return Ok(None);
        }
        let push = push.map(|listener| http::PushListener {
            listener,
            opts: cfg.push.clone(),
        });
        let store = Arc::clone(&self.pipeline.store);
        let opts = cfg.web.clone();
        let stop = Arc::new(tokio::sync::Notify::new());
        let thread_stop = Arc::clone(&stop);
        let tx = self.notify.clone();
        let reload: Option<http::ReloadFn> = cfg.web.enable_lifecycle.then(|| {
            let r = Arc::clone(&self.pipeline.reloader);
            Arc::new(move || r.reload()) as http::ReloadFn
        });
        let hooks = http::Hooks {
            reload,
            pages: status_pages(status),
        };
        let t = spawn("web".into(), move || {
            lower_thread_priority();
            if let Err(e) = http::serve(web, push, store, opts, thread_stop, hooks) {
                let _ = tx.send(Event::Failed("web", e));
            }
        })?;
        Ok(Some((stop, t)))
    }

    /// What was bound (the real ports when the config asked for port 0).
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The store every thread writes to and renders from.
    pub fn store(&self) -> &Arc<Store> {
        &self.pipeline.store
    }

    /// Reload the mapping source (as SIGHUP does); `Ok` says what was loaded.
    pub fn reload(&self) -> Result<String, String> {
        self.pipeline.reloader.reload()
    }

    /// Start a reload on a thread of its own and return at once (SIGHUP: the
    /// thread that waits for signals must stay free to stop the daemon).
    pub fn reload_in_background(&self) {
        let reloader = Arc::clone(&self.pipeline.reloader);
        let started = thread::Builder::new().name("reload".into()).spawn(move || {
            let _ = reloader.reload();
        });
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start a reload thread; mappings unchanged");
        }
    }

    /// A sender of events to [`Server::next_event`] (for a signal thread).
    pub fn notifier(&self) -> Notifier {
        Notifier(self.notify.clone())
    }

    /// Wait for the next event: a signal sent through a [`Notifier`], or a
    /// thread that failed.
    pub fn next_event(&self) -> Option<Event> {
        self.events.recv().ok()
    }

    /// A thread's failure, if one has happened, without waiting.
    pub fn failure(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Stop every thread and wait for them: listeners first, then remote write
    /// (a last snapshot is delivered), the web thread, housekeeping (a last
    /// persistence write sees the last push).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for s in &self.stoppers {
            s.stop();
        }
        if let Some(rw) = self.remote_write.take() {
            rw.stop();
        }
        if let Some((stop, t)) = self.web.take() {
            stop.notify_one();
            let _ = t.join();
        }
        if let Some((stop, t)) = self.house.take() {
            drop(stop);
            let _ = t.join();
        }
        for t in self.ingest_threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The self-metric families a page shows before anything happened: every
    /// part's, zero until they move (the list statsd_exporter users alert on).
    #[test]
    fn every_part_counts_from_the_start() {
        let want = [
            "promstatsd_build_info",
            "promstatsd_bytes_total",
            "promstatsd_config_reloads_total",
            "promstatsd_events_actions_total",
            "promstatsd_events_conflict_total",
            "promstatsd_events_error_total",
            "promstatsd_events_total",
            "promstatsd_http_auth_failures_total",
            "promstatsd_http_connections_refused_total",
            "promstatsd_http_connections_timed_out_total",
            "promstatsd_ingest_cache_flushes_total",
            "promstatsd_lines_total",
            "promstatsd_listener_lines_total",
            "promstatsd_loaded_mappings",
            "promstatsd_packets_total",
            "promstatsd_push_groups",
            "promstatsd_push_persist_errors_total",
            "promstatsd_push_requests_total",
            "promstatsd_push_series",
            "promstatsd_receive_errors_total",
            "promstatsd_relay_errors_total",
            "promstatsd_relay_lines_relayed_total",
            "promstatsd_relay_long_lines_total",
            "promstatsd_relay_packets_total",
            "promstatsd_sample_errors_total",
            "promstatsd_samples_total",
            "promstatsd_scrape_duration_seconds",
            "promstatsd_scrapes_refused_total",
            "promstatsd_series",
            "promstatsd_tag_errors_total",
            "promstatsd_tags_total",
            "promstatsd_tcp_connection_errors_total",
            "promstatsd_tcp_connections_open",
            "promstatsd_tcp_connections_refused_total",
            "promstatsd_tcp_connections_total",
            "promstatsd_tcp_too_long_lines_total",
            "promstatsd_udp_kernel_drops_total",
        ];
        let agg = crate::Aggregator::new(&Config::default()).unwrap();
        let page = agg.render_to_string();
        let got: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .filter(|n| n.starts_with(crate::vocab::SELF_PREFIX))
            .collect();
        assert_eq!(got, want);
    }
}
