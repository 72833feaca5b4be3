//! The web endpoint: hyper (HTTP/1.1) on a current-thread tokio runtime that
//! lives on its own thread, so scrapes never run on the ingest thread.

use super::budget;
use super::conn::{Conn, Watched};
use super::stream::{PageBody, PageFormat, ScrapeStats};
use super::text;
use super::webconfig::Credentials;
use crate::model::collect::{Collector, SelfFamily};
use crate::push::http::PushPort;
use crate::push::PushOptions;
use crate::respond::{method_not_allowed, text};
use crate::store::Store;
use crate::vocab::MetricKind;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// An answer: a small body in memory, or the page streamed.
type Answer = Either<Full<Bytes>, PageBody>;

/// A small answer as an [`Answer`].
fn small(r: Response<Full<Bytes>>) -> Response<Answer> {
    r.map(Either::Left)
}

/// Web settings.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// Path of the metrics page (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// Most concurrent HTTP connections; more are closed at once.
    pub max_connections: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Serve `PUT`/`POST /-/reload` (`--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
    /// Answer `Accept: application/openmetrics-text` with OpenMetrics
    /// (`--web.enable-openmetrics`).
    pub enable_openmetrics: bool,
    /// TLS and basic auth (`--web.config.file`).
    pub config: super::webconfig::WebConfig,
}

/// Reloads the mapping; `Ok` or `Err` carries a line for the HTTP response.
pub type ReloadFn = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Renders one page of the web port that this module knows only by path.
pub type PageFn = Arc<dyn Fn() -> String + Send + Sync>;

/// A page the server adds to the web port (the status page and API), served
/// to `GET` and `HEAD` behind the same TLS and auth as `/metrics`, rendered
/// off the serving thread.
#[derive(Clone)]
pub struct ExtraPage {
    /// The path it answers.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Renders its body.
    pub render: PageFn,
}

impl std::fmt::Debug for ExtraPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraPage")
            .field("path", &self.path)
            .finish()
    }
}

/// What the server plugs into the web port besides the store.
#[derive(Clone, Default)]
pub struct Hooks {
    /// `/-/reload` (with `--web.enable-lifecycle`).
    pub reload: Option<ReloadFn>,
    /// Pages by path.
    pub pages: Vec<ExtraPage>,
}

impl Default for WebOptions {
    fn default() -> Self {
        Self {
            telemetry_path: "/metrics".to_owned(),
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            enable_lifecycle: false,
            enable_openmetrics: false,
            config: super::webconfig::WebConfig::default(),
        }
    }
}

struct State {
    store: Arc<Store>,
    opts: WebOptions,
    reload: Option<ReloadFn>,
    extra: Vec<ExtraPage>,
    push: Option<PushPort>,
    scrapes: Arc<ScrapeStats>,
    auth: Arc<AuthStats>,
    /// Room for bcrypt verifications: half the CPUs (at least one), so a flood
    /// of wrong passwords queues here and leaves a CPU to ingestion.
    verifying: tokio::sync::Semaphore,
    /// Pages being sent: [`PAGES_IN_FLIGHT`], half per client.
    pages: Arc<budget::Budget>,
    /// The connections given a place among the pages (some may have given it
    /// back or closed since).
    page_holders: std::sync::Mutex<Vec<std::sync::Weak<Conn>>>,
    /// Addresses whose connection was closed for not reading its page, and
    /// when: their page requests are refused at once for [`SILENT_PENALTY`].
    silent: std::sync::Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

/// How long an address that left a page unread gets 503 for pages at once,
/// instead of waiting for (and taking) places from clients that read.
const SILENT_PENALTY: Duration = Duration::from_secs(10);

impl State {
    fn mark_silent(&self, peer: IpAddr) {
        let mut silent = self
            .silent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if silent.len() >= 4096 {
            silent.retain(|_, at| now.duration_since(*at) < SILENT_PENALTY);
        }
        if silent.len() < 4096 {
            silent.insert(peer, now);
        }
    }

    fn is_silent(&self, peer: IpAddr) -> bool {
        let silent = self
            .silent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        silent
            .get(&peer)
            .is_some_and(|at| at.elapsed() < SILENT_PENALTY)
    }
}

/// A connection that has not been able to write its page out for this long
/// gives its place up to a scrape that is waiting for one.
const EVICT_AFTER: Duration = Duration::from_secs(1);

/// Pages sent at once (one client address gets half). A page in flight holds
/// one chunk and its gzip state, not the page (see [`super::stream`]); the
/// bound keeps the encoding work of concurrent scrapes, which share the
/// serving thread, from slowing each of them past a scrape timeout.
const PAGES_IN_FLIGHT: usize = 8;

/// How long a scrape waits for a place among [`PAGES_IN_FLIGHT`] before a 503.
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The web port: metrics, health, lifecycle.
    Web,
    /// The push port (`--push.listen-address`): the Pushgateway API, plus the
    /// metrics page and health checks as the Pushgateway serves them.
    Push,
}

/// The push listener and its settings.
pub struct PushListener {
    /// The bound socket.
    pub listener: std::net::TcpListener,
    /// Settings.
    pub opts: PushOptions,
}

/// Accept on `l`, or wait forever when there is no such listener.
async fn accept_opt(
    l: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serve HTTP on `listener` (and the push API on `push`, if given) until
/// `shutdown` is notified. Blocks the calling thread.
pub fn serve(
    listener: Option<std::net::TcpListener>,
    push: Option<PushListener>,
    store: Arc<Store>,
    opts: WebOptions,
    shutdown: Arc<Notify>,
    hooks: Hooks,
) -> std::io::Result<()> {
    if let Some(l) = &listener {
        l.set_nonblocking(true)?;
    }
    let (push_listener, push_opts) = match push {
        Some(p) => {
            p.listener.set_nonblocking(true)?;
            (Some(p.listener), Some(p.opts))
        }
        None => (None, None),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = listener
            .map(tokio::net::TcpListener::from_std)
            .transpose()?;
        let push_listener = push_listener
            .map(tokio::net::TcpListener::from_std)
            .transpose()?;
        let state = Arc::new(State {
            scrapes: store.metrics().shared(),
            auth: store.metrics().shared(),
            verifying: tokio::sync::Semaphore::new((crate::sys::cpus() / 2).max(1)),
            pages: budget::Budget::new(PAGES_IN_FLIGHT),
            page_holders: std::sync::Mutex::default(),
            silent: std::sync::Mutex::default(),
            store,
            opts,
            reload: hooks.reload,
            extra: hooks.pages,
            push: push_opts.map(PushPort::new),
        });
        let budgets = [
            budget::Budget::new(state.opts.max_connections),
            budget::Budget::new(state.push.as_ref().map_or(1, |p| p.opts().max_connections)),
        ];
        let conns: Arc<ConnStats> = state.store.metrics().shared();
        loop {
            let (accepted, role) = tokio::select! {
                _ = shutdown.notified() => return Ok(()),
                r = accept_opt(listener.as_ref()) => (r, Role::Web),
                r = accept_opt(push_listener.as_ref()) => (r, Role::Push),
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, ?role, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // An IPv4 client of a dual-stack listener is `::ffff:a.b.c.d`:
            // one client, one address, however it came in.
            let client = peer.ip().to_canonical();
            let place = match budgets[role as usize].admit(client) {
                Ok(place) => place,
                Err(why) => {
                    conns.refused(role, why);
                    drop(stream);
                    continue;
                }
            };
            let state = Arc::clone(&state);
            let conns = Arc::clone(&conns);
            tokio::spawn(async move {
                let _place = place;
                match state.opts.config.tls.clone() {
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                        let handshake = tokio::time::timeout(
                            state.opts.header_timeout,
                            acceptor.accept(stream),
                        );
                        match handshake.await {
                            Ok(Ok(tls_stream)) => {
                                serve_io(tls_stream, client, state, role, &conns).await
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "web: TLS handshake failed"),
                            Err(_) => conns.timed_out(role),
                        }
                    }
                    None => serve_io(stream, client, state, role, &conns).await,
                }
            });
        }
    })
}

/// Serve HTTP/1.1 on one connection (plain or TLS). A connection that has had
/// data to send and no room for it for three header timeouts (the client
/// stopped reading) is cut off and counted as timed out.
async fn serve_io<I>(io: I, peer: IpAddr, state: Arc<State>, role: Role, conns: &ConnStats)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Conn::new(peer);
    let write_timeout = state.opts.header_timeout * 3;
    let service = {
        let (state, conn) = (Arc::clone(&state), Arc::clone(&conn));
        hyper::service::service_fn(move |req| {
            handle(Arc::clone(&state), req, role, Arc::clone(&conn))
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.opts.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(Watched::new(io, Arc::clone(&conn))), service);
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                if e.is_timeout() {
                    conns.timed_out(role);
                }
                tracing::debug!(error = %e, "web: connection ended with an error");
            }
        }
        () = conn.stalled(write_timeout) => {
            state.mark_silent(peer);
            conns.timed_out(role);
            tracing::debug!(client = %peer, "web: client stopped reading; connection cut off");
        }
        () = conn.evicted() => {
            state.mark_silent(peer);
            conns.timed_out(role);
            tracing::debug!(client = %peer, "web: client not reading its page; its place went to one who does");
        }
    }
}

/// Connections refused by a budget, and cut off for sending their request
/// headers (or TLS handshake) too slowly, per port.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// By port and [`budget::Refusal`] (port limit, client limit).
    refused: [[AtomicU64; 2]; 2],
    timed_out: [AtomicU64; 2],
}

impl ConnStats {
    fn refused(&self, role: Role, why: budget::Refusal) {
        // Relaxed: self-metric counters, read one by one.
        self.refused[role as usize][why as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn timed_out(&self, role: Role) {
        // Relaxed: see `refused`.
        self.timed_out[role as usize].fetch_add(1, Ordering::Relaxed);
    }
}

const PORTS: [(Role, &str); 2] = [(Role::Web, "web"), (Role::Push, "push")];

impl Collector for ConnStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        // Relaxed: see `refused`.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let reasons = [budget::Refusal::PortLimit, budget::Refusal::ClientLimit];
        out.push(SelfFamily::labelled(
            "promstatsd_http_connections_refused_total",
            MetricKind::Counter,
            "HTTP connections closed at once: the port's budget was spent \
             (port_limit) or the client address held its half (client_limit).",
            PORTS.iter().flat_map(|&(role, port)| {
                reasons.iter().map(move |&why| {
                    (
                        vec![("listener", port), ("reason", why.reason())],
                        get(&self.refused[role as usize][why as usize]),
                    )
                })
            }),
        ));
        out.push(SelfFamily::labelled(
            "promstatsd_http_connections_timed_out_total",
            MetricKind::Counter,
            "HTTP connections cut off for not sending their request headers (or \
             TLS handshake) within --web.header-timeout.",
            PORTS.map(|(role, port)| {
                (
                    vec![("listener", port)],
                    get(&self.timed_out[role as usize]),
                )
            }),
        ));
    }
}

/// Render an extra page on a blocking thread: a status report walks the
/// store, and the serving thread must stay free for scrapes meanwhile.
async fn extra_page(page: &ExtraPage) -> Response<Full<Bytes>> {
    let render = Arc::clone(&page.render);
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            );
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page failed: {e}\n"),
        ),
    }
}

fn landing(path: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>promstatsd</title></head><body>\n\
         <h1>promstatsd</h1>\n<p>StatsD to Prometheus aggregator, version {}.</p>\n<ul>\n\
         <li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/status\">Status</a> \
         (<a href=\"/api/v1/status\">JSON</a>)</li>\n<li><a href=\"/-/healthy\">Health</a></li>\n\
         <li><a href=\"/-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        path = html_escape(path),
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// True if a list header (`Accept`, `Accept-Encoding`) names `token` without
/// refusing it with `q=0`.
fn header_accepts(req: &Request<Incoming>, header: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case(token) && !refused
        })
}

fn wants_gzip(req: &Request<Incoming>) -> bool {
    header_accepts(req, ACCEPT_ENCODING, "gzip")
}

/// The page format an `Accept` header asks for: among the media ranges
/// promstatsd serves (delimited protobuf `MetricFamily`, OpenMetrics when
/// `openmetrics` is on, text), the one with the highest `q`, ties to the
/// first listed; text when none is listed (or no header is sent).
pub fn negotiate<'h>(accept: impl Iterator<Item = &'h str>, openmetrics: bool) -> PageFormat {
    let mut best: Option<(f64, PageFormat)> = None;
    for item in accept.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let (mut q, mut proto, mut encoding) = (1.0, "", "");
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim() {
                "q" => q = v.parse().unwrap_or(0.0),
                "proto" => proto = v,
                "encoding" => encoding = v,
                _ => {}
            }
        }
        let format = if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
            if proto != "io.prometheus.client.MetricFamily" || encoding != "delimited" {
                continue;
            }
            PageFormat::Protobuf
        } else if media.eq_ignore_ascii_case("application/openmetrics-text") && openmetrics {
            PageFormat::Text(text::Format::OpenMetrics)
        } else if ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            PageFormat::Text(text::Format::Text)
        } else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map_or(PageFormat::Text(text::Format::Text), |(_, f)| f)
}

/// What a scrape asked for, read from its request on the serving thread.
#[derive(Clone, Copy, Debug)]
struct PageRequest {
    format: PageFormat,
    /// `?collect[]=self`: only promstatsd's own metrics.
    self_only: bool,
    gzip: bool,
}

impl PageRequest {
    fn of(state: &State, req: &Request<Incoming>) -> Self {
        let accept = req
            .headers()
            .get_all(hyper::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let format = negotiate(accept, state.opts.enable_openmetrics);
        // `?collect[]=self` (node_exporter's parameter): cheap to poll however
        // many series the store holds.
        let self_only = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|p| matches!(p, "collect[]=self" | "collect%5B%5D=self"))
        });
        Self {
            format,
            self_only,
            gzip: wants_gzip(req),
        }
    }
}

/// The page, streamed ([`PageBody`]): it is encoded chunk by chunk as the
/// client reads it. A full page needs a place among [`PAGES_IN_FLIGHT`]; the
/// self-metrics page is small and is built at once.
async fn metrics(
    state: &Arc<State>,
    req: &Request<Incoming>,
    conn: &Arc<Conn>,
) -> Response<Answer> {
    let page = PageRequest::of(state, req);
    let mut r = if page.self_only {
        let started = Instant::now();
        let mut out = Vec::with_capacity(16 * 1024);
        match page.format {
            PageFormat::Text(format) => text::render_self(&state.store, &mut out, format),
            PageFormat::Protobuf => super::proto::render_self(&state.store, &mut out),
        }
        let body = if page.gzip { gzip(&out) } else { None };
        let gzipped = body.is_some();
        state.scrapes.record(started.elapsed().as_secs_f64());
        let mut r = Response::new(Answer::Left(Full::new(Bytes::from(body.unwrap_or(out)))));
        if gzipped {
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    } else {
        let Some(place) = page_place(state, conn).await else {
            state.scrapes.refused();
            return small(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many pages being sent; try again.\n",
            ));
        };
        let body = PageBody::new(
            Arc::clone(&state.store),
            page.format,
            page.gzip,
            conn.start_page(place),
            Arc::clone(&state.scrapes),
        );
        let mut r = Response::new(Answer::Right(body));
        if page.gzip {
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(page.format.content_type()),
    );
    r
}

/// `data` gzipped, or `None` (logged) if that failed.
fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = super::stream::gzip_writer(data.len() / 4);
    match enc.write_all(data).and_then(|()| enc.finish()) {
        Ok(z) => Some(z),
        Err(e) => {
            tracing::warn!(error = %e, "web: gzip failed, sending the page uncompressed");
            None
        }
    }
}

/// A place among the pages in flight for `conn`, waiting up to [`PAGE_WAIT`].
/// While none is free, the connection that has been unable to write its page
/// out the longest (at least [`EVICT_AFTER`]) is closed to make room: a client
/// that reads comes before one that does not. An address that left a page
/// unread lately gets no place at all (see [`SILENT_PENALTY`]).
async fn page_place(state: &State, conn: &Arc<Conn>) -> Option<budget::Admission> {
    let deadline = Instant::now() + PAGE_WAIT;
    loop {
        if state.is_silent(conn.peer) {
            return None;
        }
        if let Ok(place) = state.pages.admit(conn.peer) {
            let mut holders = state
                .page_holders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Once per connection (a keep-alive scraper comes back every
            // interval), and none that closed.
            holders.retain(|h| h.strong_count() > 0);
            if !holders
                .iter()
                .any(|h| std::ptr::eq(h.as_ptr(), Arc::as_ptr(conn)))
            {
                holders.push(Arc::downgrade(conn));
            }
            return Some(place);
        }
        evict_one_stuck(state);
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Close the page holder stuck longest, if one has been stuck [`EVICT_AFTER`].
fn evict_one_stuck(state: &State) {
    let holders = state
        .page_holders
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stuck = holders
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter_map(|c| Some((c.stuck_with_page()?, c)))
        .filter(|(stuck_for, _)| *stuck_for >= EVICT_AFTER)
        .max_by_key(|(stuck_for, _)| *stuck_for);
    if let Some((_, c)) = stuck {
        c.evict();
    }
}

/// The push port: the Pushgateway API ([`crate::push::http`]), and
/// `/metrics` and health checks as the Pushgateway serves them.
async fn handle_push(
    state: &Arc<State>,
    port: &PushPort,
    req: Request<Incoming>,
    conn: &Arc<Conn>,
) -> Response<Answer> {
    let req = match port.handle(&state.store, req).await {
        Ok(answer) => return small(answer),
        Err(not_a_push) => not_a_push,
    };
    let get_or_head = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        "/metrics" | "/-/healthy" | "/-/ready" if !get_or_head => {
            small(method_not_allowed("GET, HEAD"))
        }
        "/metrics" => metrics(state, &req, conn).await,
        "/-/healthy" => small(text(StatusCode::OK, "Healthy.\n")),
        "/-/ready" => small(text(StatusCode::OK, "Ready.\n")),
        _ => small(text(
            StatusCode::NOT_FOUND,
            "Not found. Push to /metrics/job/<job>{/<label>/<value>}.\n",
        )),
    }
}

/// Check the request's credentials; bcrypt, when needed, runs on a blocking
/// thread behind `State::verifying`, so neither a slow hash nor a flood of
/// wrong passwords holds up the requests whose credentials were verified before.
async fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let verification = match state.opts.config.check(header) {
        Credentials::Accepted => return true,
        Credentials::Refused => return false,
        Credentials::Verify(v) => v,
    };
    let Ok(_room) = state.verifying.acquire().await else {
        return false;
    };
    let config = state.opts.config.clone();
    tokio::task::spawn_blocking(move || config.verify(verification))
        .await
        .unwrap_or(false)
}

/// Requests refused for missing or wrong credentials, per port.
#[derive(Debug, Default)]
pub struct AuthStats {
    failures: [AtomicU64; 2],
}

impl AuthStats {
    fn failure(&self, role: Role) {
        // Relaxed: a self-metric counter, read on its own.
        self.failures[role as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for AuthStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        out.push(SelfFamily::labelled(
            "promstatsd_http_auth_failures_total",
            MetricKind::Counter,
            "HTTP requests refused for missing or wrong credentials, by port.",
            PORTS.map(|(role, name)| {
                // Relaxed: see `failure`.
                let n = self.failures[role as usize].load(Ordering::Relaxed);
                (vec![("listener", name)], n as f64)
            }),
        ));
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    role: Role,
    conn: Arc<Conn>,
) -> Result<Response<Answer>, Infallible> {
    if !authorized(&state, &req).await {
        state.auth.failure(role);
        let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized.\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"promstatsd\""),
        );
        return Ok(small(r));
    }
    if role == Role::Push {
        if let Some(port) = &state.push {
            return Ok(handle_push(&state, port, req, &conn).await);
        }
    }
    let path = req.uri().path();
    if path == "/-/reload" {
        if let Some(reload) = &state.reload {
            if req.method() != Method::PUT && req.method() != Method::POST {
                return Ok(small(method_not_allowed("PUT, POST")));
            }
            // Off the runtime's thread: scrapes and health checks go on
            // while the file is read and compiled.
            let reload = Arc::clone(reload);
            return Ok(small(
                match tokio::task::spawn_blocking(move || reload()).await {
                    Ok(Ok(msg)) => text(StatusCode::OK, format!("{msg}\n")),
                    Ok(Err(e)) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("reload failed, previous mappings kept: {e}\n"),
                    ),
                    Err(e) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("reload failed, previous mappings kept: {e}\n"),
                    ),
                },
            ));
        }
    }
    let get_or_head = req.method() == Method::GET || req.method() == Method::HEAD;
    let extra = state.extra.iter().find(|p| p.path == path);
    let known = path == state.opts.telemetry_path
        || matches!(path, "/" | "/-/healthy" | "/-/ready")
        || extra.is_some();
    if known && !get_or_head {
        return Ok(small(method_not_allowed("GET, HEAD")));
    }
    let resp = if path == state.opts.telemetry_path {
        metrics(&state, &req, &conn).await
    } else if let Some(page) = extra {
        small(extra_page(page).await)
    } else {
        small(match path {
            "/" => landing(&state.opts.telemetry_path),
            "/-/healthy" => text(StatusCode::OK, "Healthy.\n"),
            "/-/ready" => text(StatusCode::OK, "Ready.\n"),
            _ => text(StatusCode::NOT_FOUND, "Not found.\n"),
        })
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use text::Format;

    /// Prometheus 2.42's `Accept` with `--enable-feature=native-histograms`,
    /// and without (scrape/scrape.go's `scrapeAcceptHeader`).
    const PROM_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROM_PLAIN: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn the_accept_header_picks_the_format() {
        use PageFormat::{Protobuf, Text as T};
        let om = T(Format::OpenMetrics);
        let text = T(Format::Text);
        let cases: &[(&[&str], bool, PageFormat)] = &[
            (&[], false, text),
            (&[PROM_NATIVE], false, Protobuf),
            (&[PROM_NATIVE], true, Protobuf),
            (&[PROM_PLAIN], false, text),
            (&[PROM_PLAIN], true, om),
            (&["application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"], false, text),
            (&["application/vnd.google.protobuf;encoding=delimited"], false, text),
            (&["application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=delimited"], false, Protobuf),
            (&["text/plain;q=0.9", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5"], false, text),
            (&["application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"], false, text),
            (&["application/json"], true, text),
            (&["text/plain, application/openmetrics-text"], true, text),
        ];
        for (headers, openmetrics, want) in cases {
            assert_eq!(
                negotiate(headers.iter().copied(), *openmetrics),
                *want,
                "{headers:?} {openmetrics}"
            );
        }
    }
}
