//! The daemon: bind, start the ingest and web threads, wait for a signal, stop.

use crate::config::Config;
use crate::exposition::http;
use crate::ingest::Ingester;
use crate::listener::{self, Listener};
use crate::mapper::{Mapper, MapperHandle};
use crate::reload::Reloader;
use crate::store::Store;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Why the daemon stopped with an error.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

enum Event {
    Signal(i32),
    Failed(&'static str, std::io::Error),
}

/// Raise the soft open-files limit to the hard limit (as the Go runtime does for
/// statsd_exporter), so thousands of TCP clients do not exhaust descriptors.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; failure only leaves the old limit.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// The nice value of the threads that are not on the ingest path (web, push,
/// housekeeping, remote write): on a busy machine the scheduler then gives the
/// ingest threads the CPU first, so rendering a large page does not starve the
/// receive loop and lose datagrams. A scrape takes longer under contention.
pub const BACKGROUND_NICE: i32 = 10;

/// Lower the calling thread's priority to [`BACKGROUND_NICE`] (Linux: the nice
/// value is per thread). Failure leaves it as it was.
pub fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: plain syscall on our own thread id; an error only leaves the old value.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}

/// Run until SIGTERM or SIGINT (or a thread fails). Binding errors are returned
/// before anything starts.
pub fn run(cfg: Config) -> Result<(), RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    raise_nofile_limit();
    let mut sockets = listener::bind(&cfg.listen).map_err(|e| RunError(e.to_string()))?;
    let extra_udp = sockets.take_udp_workers();
    let web = match cfg.web_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| RunError(format!("cannot listen on web {addr}: {e}")))?,
        ),
        None => None,
    };
    let push = match cfg.push_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| RunError(format!("cannot listen on push {addr}: {e} (--push.listen-address=\"\" disables the push API)")))?,
        ),
        None => None,
    };
    if let Some(a) = sockets.udp_addr() {
        tracing::info!(listener = "udp", address = %a, workers = extra_udp.len() + 1, "listening");
    }
    if let Some(a) = sockets.tcp_addr() {
        tracing::info!(listener = "tcp", address = %a, "listening");
    }
    if let Some(p) = sockets.unixgram_path() {
        tracing::info!(listener = "unixgram", address = %p.display(), "listening");
    }
    if let Some(p) = sockets.unix_path() {
        tracing::info!(listener = "unix", address = %p.display(), "listening");
    }
    if let Some(a) = web.as_ref().and_then(|w| w.local_addr().ok()) {
        tracing::info!(listener = "web", address = %a, path = %cfg.web.telemetry_path, "listening");
    }
    if let Some(a) = push.as_ref().and_then(|w| w.local_addr().ok()) {
        tracing::info!(listener = "push", address = %a, "listening");
    }

    let mapper = match &cfg.mapping {
        Some(src) => {
            let (m, warnings) = src.load(&cfg.mapper).map_err(|e| RunError(e.to_string()))?;
            for w in warnings {
                tracing::warn!(source = %src.describe(), "{w}");
            }
            tracing::info!(source = %src.describe(), mappings = m.rule_count(), "mapping loaded");
            m
        }
        None => Mapper::new(cfg.mapper.clone()),
    };
    let store = Arc::new(Store::new(cfg.store.clone()));
    if let Some(f) = &cfg.push.persistence_file {
        let n = crate::push::load(&store, f).map_err(RunError)?;
        tracing::info!(file = %f.display(), groups = n, "push groups loaded");
    }
    store.stats.set_loaded_mappings(mapper.rule_count());
    let handle = Arc::new(MapperHandle::new(mapper));
    let reloader = Arc::new(Reloader::new(
        cfg.mapping.clone(),
        cfg.mapper.clone(),
        Arc::clone(&handle),
        Arc::clone(&store),
    ));
    let relay = |ing: Ingester| -> Result<Ingester, RunError> {
        match &cfg.relay {
            Some(r) => {
                let relay = crate::relay::Relay::new(r)
                    .map_err(|e| RunError(format!("cannot relay to {}: {e}", r.target)))?;
                Ok(ing.with_relay(relay))
            }
            None => Ok(ing),
        }
    };
    if let Some(r) = &cfg.relay {
        tracing::info!(target = %r.target, packet_length = r.packet_length, "relaying valid lines");
    }
    let mut workers = Vec::new();
    for (i, socks) in extra_udp.into_iter().enumerate() {
        let ing = relay(Ingester::new(
            Arc::clone(&store),
            Arc::clone(&handle),
            cfg.parse,
            cfg.cache_entries,
        ))?;
        let l = Listener::new(socks, ing, cfg.listen.clone())
            .map_err(|e| RunError(format!("cannot start UDP worker {}: {e}", i + 2)))?;
        workers.push(l);
    }
    let ingester = Ingester::new(Arc::clone(&store), handle, cfg.parse, cfg.cache_entries);
    // One ingest loop (no extra UDP workers; TCP and unix sockets share the loop)
    // is the only thread writing series values.
    let ingester = relay(if workers.is_empty() {
        ingester.sole_writer()
    } else {
        ingester
    })?;
    let listener = Listener::new(sockets, ingester, cfg.listen.clone())
        .map_err(|e| RunError(format!("cannot start the event loop: {e}")))?;
    let mut stoppers = vec![listener.stopper()];
    stoppers.extend(workers.iter().map(Listener::stopper));

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| RunError(format!("cannot install signal handlers: {e}")))?;
    let signal_handle = signals.handle();
    let (tx, rx) = mpsc::channel::<Event>();

    let sig_tx = tx.clone();
    let sig_thread = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if sig_tx.send(Event::Signal(s)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| RunError(format!("cannot start the signal thread: {e}")))?;

    let mut ingest_threads = Vec::new();
    for (i, l) in std::iter::once(listener).chain(workers).enumerate() {
        let ingest_tx = tx.clone();
        let t = thread::Builder::new()
            .name(format!("ingest-{i}"))
            .spawn(move || {
                if let Err(e) = l.run() {
                    let _ = ingest_tx.send(Event::Failed("ingest", e));
                }
            })
            .map_err(|e| RunError(format!("cannot start an ingest thread: {e}")))?;
        ingest_threads.push(t);
    }

    // TTL expiry once a second; push groups' TTL and persistence.
    let (house_stop, house_rx) = mpsc::channel::<()>();
    let house_store = Arc::clone(&store);
    let push_opts = cfg.push.clone();
    let house_thread = thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            lower_thread_priority();
            let mut persister = push_opts
                .persistence_file
                .clone()
                .map(|f| Persister::new(f, push_opts.persistence_interval, &house_store));
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                house_rx.recv_timeout(Duration::from_secs(1))
            {
                let n = house_store.expire(house_store.clock.tick());
                if n > 0 {
                    tracing::debug!(series = n, "expired series removed");
                }
                if !push_opts.ttl.is_zero() {
                    let n = house_store
                        .expire_pushed(crate::push::unix_now(), push_opts.ttl.as_secs_f64());
                    if n > 0 {
                        tracing::info!(groups = n, "push groups expired (--push.ttl)");
                    }
                }
                if let Some(p) = &mut persister {
                    p.tick(&house_store, false);
                }
            }
            if let Some(p) = &mut persister {
                p.tick(&house_store, true);
            }
        })
        .map_err(|e| RunError(format!("cannot start the housekeeping thread: {e}")))?;

    let web_stop = Arc::new(tokio::sync::Notify::new());
    let web_thread = match (web, push) {
        (None, None) => None,
        (l, push) => {
            let push = push.map(|listener| http::PushListener {
                listener,
                opts: cfg.push.clone(),
            });
            let store = Arc::clone(&store);
            let opts = cfg.web.clone();
            let stop = Arc::clone(&web_stop);
            let web_tx = tx.clone();
            let reload: Option<http::ReloadFn> = if cfg.web.enable_lifecycle {
                let r = Arc::clone(&reloader);
                Some(Arc::new(move || r.reload()))
            } else {
                None
            };
            Some(
                thread::Builder::new()
                    .name("web".into())
                    .spawn(move || {
                        lower_thread_priority();
                        if let Err(e) = http::serve(l, push, store, opts, stop, reload) {
                            let _ = web_tx.send(Event::Failed("web", e));
                        }
                    })
                    .map_err(|e| RunError(format!("cannot start the web thread: {e}")))?,
            )
        }
    };
    let remote_write = if cfg.remote_write.urls.is_empty() {
        None
    } else {
        Some(
            crate::remote_write::RemoteWrite::start(Arc::clone(&store), cfg.remote_write.clone())
                .map_err(RunError)?,
        )
    };
    drop(tx);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "promstatsd started");

    let mut result = Ok(());
    loop {
        match rx.recv() {
            Ok(Event::Signal(SIGHUP)) => {
                tracing::info!("SIGHUP received: reloading the mapping");
                let _ = reloader.reload();
            }
            Ok(Event::Signal(s)) => {
                tracing::info!(signal = s, "shutting down");
                break;
            }
            Ok(Event::Failed(what, e)) => {
                tracing::error!(thread = what, error = %e, "a thread failed; shutting down");
                result = Err(RunError(format!("the {what} thread failed: {e}")));
                break;
            }
            Err(_) => break,
        }
    }
    for s in &stoppers {
        s.stop();
    }
    if let Some(rw) = remote_write {
        rw.stop();
    }
    web_stop.notify_one();
    if let Some(t) = web_thread {
        let _ = t.join();
    }
    // After the web thread: the final persistence write sees the last push.
    drop(house_stop);
    let _ = house_thread.join();
    signal_handle.close();
    for t in ingest_threads {
        let _ = t.join();
    }
    let _ = sig_thread.join();
    tracing::info!("stopped");
    result
}

/// Writes the push groups to their persistence file when they changed, at most
/// once per interval, and at shutdown.
struct Persister {
    file: std::path::PathBuf,
    interval: Duration,
    written: u64,
    last: std::time::Instant,
}

impl Persister {
    fn new(file: std::path::PathBuf, interval: Duration, store: &Store) -> Self {
        Self {
            file,
            interval,
            written: store.pushed().changes(),
            last: std::time::Instant::now(),
        }
    }

    fn tick(&mut self, store: &Store, last_time: bool) {
        let changes = store.pushed().changes();
        if changes == self.written || (!last_time && self.last.elapsed() < self.interval) {
            return;
        }
        self.last = std::time::Instant::now();
        match crate::push::persist(store, &self.file) {
            Ok(()) => {
                self.written = changes;
                tracing::debug!(file = %self.file.display(), "push groups written");
            }
            Err(e) => {
                // Relaxed: a self-metric counter.
                store
                    .stats
                    .push_persist_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(file = %self.file.display(), error = %e, "cannot write the push persistence file; will retry");
            }
        }
    }
}
