//! The web endpoint: hyper (HTTP/1.1) on a current-thread tokio runtime that
//! lives on its own thread, so scrapes never run on the ingest thread.

use super::text;
use crate::model::collect::{Collector, SelfFamily, SelfValue};
use crate::push::{self, PushOptions};
use crate::store::atomic::AtomicF64;
use crate::store::Store;
use crate::vocab::MetricKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

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
    last_size: AtomicUsize,
    reload: Option<ReloadFn>,
    push: Option<PushOptions>,
    scrapes: Arc<ScrapeStats>,
    /// Memory for push bodies being read and applied, in KiB (see [`PUSH_BODIES_IN_FLIGHT`]).
    push_budget: Arc<Semaphore>,
}

/// How many bodies of the largest size the push port holds in memory at once;
/// more wait (up to [`PUSH_BUDGET_WAIT`], then 503), so a crowd of big pushes
/// cannot exhaust memory (512 connections x 16 MiB would be 8 GiB).
const PUSH_BODIES_IN_FLIGHT: usize = 4;

/// How long a push waits for room in the body budget before a 503.
const PUSH_BUDGET_WAIT: Duration = Duration::from_secs(30);

/// How long reading one push body may take; a client that trickles its body
/// gives its share of the budget back when this runs out (408).
const PUSH_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// KiB of budget a body of at most `bytes` needs (at least 1).
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// The whole push budget, in KiB: room for [`PUSH_BODIES_IN_FLIGHT`] bodies
/// of the largest size.
fn push_budget_kib(o: &PushOptions) -> usize {
    (kib(o.max_body_bytes) as usize)
        .saturating_mul(PUSH_BODIES_IN_FLIGHT)
        .min(Semaphore::MAX_PERMITS)
}

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
    reload: Option<ReloadFn>,
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
            store,
            opts,
            last_size: AtomicUsize::new(4096),
            reload,
            push_budget: Arc::new(Semaphore::new(
                push_opts.as_ref().map_or(0, push_budget_kib),
            )),
            push: push_opts,
        });
        let open = Arc::new(AtomicUsize::new(0));
        loop {
            let (accepted, role) = tokio::select! {
                _ = shutdown.notified() => return Ok(()),
                r = accept_opt(listener.as_ref()) => (r, Role::Web),
                r = accept_opt(push_listener.as_ref()) => (r, Role::Push),
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, ?role, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Relaxed: a connection count, only read by this thread.
            if open.load(Ordering::Relaxed) >= state.opts.max_connections {
                drop(stream);
                continue;
            }
            open.fetch_add(1, Ordering::Relaxed);
            let state = Arc::clone(&state);
            let open = Arc::clone(&open);
            tokio::spawn(async move {
                match state.opts.config.tls.clone() {
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                        let handshake = tokio::time::timeout(
                            state.opts.header_timeout,
                            acceptor.accept(stream),
                        );
                        match handshake.await {
                            Ok(Ok(tls_stream)) => serve_io(tls_stream, state, role).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "web: TLS handshake failed"),
                            Err(_) => tracing::debug!("web: TLS handshake timed out"),
                        }
                    }
                    None => serve_io(stream, state, role).await,
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    })
}

/// Serve HTTP/1.1 on one connection (plain or TLS).
async fn serve_io<I>(io: I, state: Arc<State>, role: Role)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|req| handle(Arc::clone(&state), req, role));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.opts.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "web: connection ended with an error");
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 405 naming the allowed methods (`allow` is the `Allow` header's value).
fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        match allow.rsplit_once(", ") {
            Some((first, last)) => format!("Method not allowed: use {first} or {last}.\n"),
            None => format!("Method not allowed: use {allow}.\n"),
        },
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn landing(path: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>promstatsd</title></head><body>\n\
         <h1>promstatsd</h1>\n<p>StatsD to Prometheus aggregator, version {}.</p>\n<ul>\n\
         <li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/-/healthy\">Health</a></li>\n\
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

/// True if the client lists OpenMetrics among the types it accepts.
fn wants_openmetrics(req: &Request<Incoming>) -> bool {
    header_accepts(req, hyper::header::ACCEPT, "application/openmetrics-text")
}

fn metrics(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let format = if state.opts.enable_openmetrics && wants_openmetrics(req) {
        text::Format::OpenMetrics
    } else {
        text::Format::Text
    };
    // `?collect[]=self` (node_exporter's parameter): only promstatsd's own
    // metrics, cheap to poll however many series the store holds.
    let self_only = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| matches!(p, "collect[]=self" | "collect%5B%5D=self"))
    });
    let mut page;
    if self_only {
        page = Vec::with_capacity(16 * 1024);
        text::render_self(&state.store, &mut page, format);
    } else {
        // Relaxed: a size hint only.
        page = Vec::with_capacity(state.last_size.load(Ordering::Relaxed) + 1024);
        text::render_as(&state.store, &mut page, format);
        state.last_size.store(page.len(), Ordering::Relaxed);
    }
    let gzip = wants_gzip(req);
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(page.len() / 4),
            flate2::Compression::fast(),
        );
        match enc.write_all(&page).and_then(|()| enc.finish()) {
            Ok(z) => Some(z),
            Err(e) => {
                tracing::warn!(error = %e, "web: gzip failed, sending the page uncompressed");
                None
            }
        }
    } else {
        None
    };
    let gzipped = body.is_some();
    let mut r = Response::new(Full::new(Bytes::from(body.unwrap_or(page))));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(match format {
            text::Format::Text => text::CONTENT_TYPE,
            text::Format::OpenMetrics => text::OPENMETRICS_CONTENT_TYPE,
        }),
    );
    if gzipped {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    state.scrapes.record(started.elapsed().as_secs_f64());
    r
}

/// Scrapes served and the time spent rendering them.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    scrapes: AtomicU64,
    seconds: AtomicF64,
}

impl ScrapeStats {
    /// Count one scrape that took `secs` to render.
    pub fn record(&self, secs: f64) {
        self.seconds.add(secs);
        // Relaxed: a self-metric counter, read on its own.
        self.scrapes.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for ScrapeStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        out.push(SelfFamily {
            name: "promstatsd_scrape_duration_seconds",
            help: "Time spent rendering /metrics.",
            kind: MetricKind::Summary,
            series: vec![(
                Vec::new(),
                SelfValue::Summary {
                    sum: self.seconds.load(),
                    // Relaxed: see `record`.
                    count: self.scrapes.load(Ordering::Relaxed),
                },
            )],
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The push port: the Pushgateway API, `/metrics` and health checks.
async fn handle_push(
    state: &State,
    opts: &PushOptions,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = match *req.method() {
        Method::PUT => Some(push::PushMethod::Put),
        Method::POST => Some(push::PushMethod::Post),
        Method::DELETE => Some(push::PushMethod::Delete),
        _ => None,
    };
    let key = match push::parse_group_path(&path) {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            if let Some(m) = method {
                push::record(
                    &state.store,
                    m,
                    None,
                    opts,
                    &push::PushOutcome::Invalid(e.clone()),
                );
            }
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
        None => {
            let get_or_head = req.method() == Method::GET || req.method() == Method::HEAD;
            return match path.as_str() {
                "/metrics" | "/-/healthy" | "/-/ready" if !get_or_head => {
                    method_not_allowed("GET, HEAD")
                }
                "/metrics" => metrics(state, &req),
                "/-/healthy" => plain(StatusCode::OK, "Healthy.\n"),
                "/-/ready" => plain(StatusCode::OK, "Ready.\n"),
                _ => plain(
                    StatusCode::NOT_FOUND,
                    "Not found. Push to /metrics/job/<job>{/<label>/<value>}.\n",
                ),
            };
        }
    };
    let Some(method) = method else {
        return method_not_allowed("PUT, POST, DELETE");
    };
    let header = |h: hyper::header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE);
    let content_encoding = header(CONTENT_ENCODING);
    let declared_len = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    // Outcomes decided here, before `push::handle` saw the body, are counted here.
    let refuse = |outcome: push::PushOutcome| {
        push::record(&state.store, method, Some(&key), opts, &outcome);
        push_response(method, opts, outcome)
    };
    if declared_len.is_some_and(|n| n > opts.max_body_bytes as u64) {
        return refuse(push::PushOutcome::TooLarge);
    }
    // Room in the body budget for the body (its declared length, else the limit)
    // and, when gzipped, for what it inflates to. A DELETE has no body to hold.
    // The permit travels with the work below and is returned when it ends,
    // even if the client hangs up first.
    let room = if method == push::PushMethod::Delete {
        None
    } else {
        let mut need = declared_len.map_or(opts.max_body_bytes, |n| n as usize);
        if content_encoding
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"))
        {
            need = need.saturating_add(opts.max_body_bytes);
        }
        let wanted = kib(need).min(u32::try_from(push_budget_kib(opts)).unwrap_or(u32::MAX));
        let permit = tokio::time::timeout(
            PUSH_BUDGET_WAIT,
            Arc::clone(&state.push_budget).acquire_many_owned(wanted),
        )
        .await;
        match permit {
            Ok(Ok(permit)) => Some(permit),
            _ => return refuse(push::PushOutcome::Busy),
        }
    };
    // A DELETE's body, if it sends one, is not read: it means nothing, and
    // unread it costs no memory.
    let read = match method {
        push::PushMethod::Delete => Ok(Ok(http_body_util::Collected::default())),
        _ => {
            tokio::time::timeout(
                PUSH_BODY_TIMEOUT,
                http_body_util::Limited::new(req.into_body(), opts.max_body_bytes).collect(),
            )
            .await
        }
    };
    let body = match read {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(push::PushOutcome::TooLarge)
        }
        Ok(Err(e)) => {
            return refuse(push::PushOutcome::Invalid(format!(
                "could not read the request body: {e}"
            )))
        }
        Err(_) => return refuse(push::PushOutcome::TimedOut),
    };
    // Parsing and applying a big body takes a while (linear, but 16 MiB is
    // 16 MiB): off the runtime's thread, so scrapes and health checks on the
    // same runtime go on meanwhile.
    let (store, push_opts) = (Arc::clone(&state.store), opts.clone());
    let applied = tokio::task::spawn_blocking(move || {
        let _room = room;
        push::handle(
            &store,
            &push_opts,
            method,
            &key,
            content_type.as_deref(),
            content_encoding.as_deref(),
            &body,
        )
    })
    .await;
    match applied {
        Ok(outcome) => push_response(method, opts, outcome),
        Err(e) => {
            // A panic in the handler: a bug, never the client's doing.
            tracing::error!(error = %e, "push handler failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the push could not be applied\n".to_owned(),
            )
        }
    }
}

/// The HTTP answer to a push outcome, as the Pushgateway gives it.
fn push_response(
    method: push::PushMethod,
    opts: &PushOptions,
    outcome: push::PushOutcome,
) -> Response<Full<Bytes>> {
    use push::PushOutcome as O;
    match outcome {
        O::Applied if method == push::PushMethod::Delete => plain(StatusCode::ACCEPTED, ""),
        O::Applied => plain(StatusCode::OK, ""),
        O::Invalid(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        O::TooLarge => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "push body over the limit of {} bytes (--push.max-body-bytes)\n",
                opts.max_body_bytes
            ),
        ),
        O::Unsupported(e) => text(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{e}\n")),
        O::Busy => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many large pushes in progress; retry later\n".to_owned(),
        ),
        O::TimedOut => text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body was not read within {} s\n",
                PUSH_BODY_TIMEOUT.as_secs()
            ),
        ),
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    role: Role,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !state.opts.config.authorized(
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized.\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"promstatsd\""),
        );
        return Ok(r);
    }
    if role == Role::Push {
        if let Some(opts) = &state.push {
            return Ok(handle_push(&state, opts, req).await);
        }
    }
    let path = req.uri().path();
    if path == "/-/reload" {
        if let Some(reload) = &state.reload {
            if req.method() != Method::PUT && req.method() != Method::POST {
                return Ok(method_not_allowed("PUT, POST"));
            }
            return Ok(match reload() {
                Ok(msg) => text(StatusCode::OK, format!("{msg}\n")),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reload failed, previous mappings kept: {e}\n"),
                ),
            });
        }
    }
    let get_or_head = req.method() == Method::GET || req.method() == Method::HEAD;
    let known =
        path == state.opts.telemetry_path || matches!(path, "/" | "/-/healthy" | "/-/ready");
    if known && !get_or_head {
        return Ok(method_not_allowed("GET, HEAD"));
    }
    let resp = if path == state.opts.telemetry_path {
        metrics(&state, &req)
    } else {
        match path {
            "/" => landing(&state.opts.telemetry_path),
            "/-/healthy" => plain(StatusCode::OK, "Healthy.\n"),
            "/-/ready" => plain(StatusCode::OK, "Ready.\n"),
            _ => plain(StatusCode::NOT_FOUND, "Not found.\n"),
        }
    };
    Ok(resp)
}
