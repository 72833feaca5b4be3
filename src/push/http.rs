//! The push port's HTTP handler: a request on a push path becomes a push.
//!
//! Bodies are held in memory within a budget: room for four bodies of
//! `--push.max-body-bytes` at once (a body's declared length, or the limit, plus
//! the limit again for a gzipped one); past it a push waits up to 30 s, then gets
//! 503. A body must arrive within 60 s (408). A DELETE needs no room and its
//! body is not read. Parsing and applying run off the runtime's thread.

use super::PushOptions;
use crate::respond::{method_not_allowed, text};
use crate::store::Store;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many bodies of the largest size the push port holds in memory at once;
/// more wait (up to [`PUSH_BUDGET_WAIT`], then 503), so a crowd of big pushes
/// cannot exhaust memory (512 connections x 16 MiB would be 8 GiB).
const PUSH_BODIES_IN_FLIGHT: usize = 4;

/// How long a push waits for room in the body budget before a 503.
const PUSH_BUDGET_WAIT: Duration = Duration::from_secs(30);

/// How long reading one push body may take; a client that trickles its body
/// gives its share of the budget back when this runs out (408).
const PUSH_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The slowest a body may arrive, on average, once [`PUSH_BODY_GRACE`] has
/// passed: slower is cut off (408), whatever the time left.
const PUSH_BODY_FLOOR_BYTES_PER_SEC: f64 = 16.0 * 1024.0;

/// The time a body has before [`PUSH_BODY_FLOOR_BYTES_PER_SEC`] applies.
const PUSH_BODY_GRACE: Duration = Duration::from_secs(5);

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

/// The push port's settings and its body budget.
#[derive(Debug)]
pub struct PushPort {
    opts: PushOptions,
    /// Memory for bodies being read and applied, in KiB (see [`PUSH_BODIES_IN_FLIGHT`]).
    budget: Arc<Semaphore>,
}

impl PushPort {
    /// A push port with these settings and a fresh budget.
    pub fn new(opts: PushOptions) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(push_budget_kib(&opts))),
            opts,
        }
    }

    /// The port's settings.
    pub fn opts(&self) -> &PushOptions {
        &self.opts
    }

    /// Handle `req` if its path is a push path (`/metrics/job/...`); give it
    /// back otherwise, for the port's other routes.
    pub async fn handle(
        &self,
        store: &Arc<Store>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Request<Incoming>> {
        let path = req.uri().path().to_owned();
        let method = match *req.method() {
            Method::PUT => Some(super::PushMethod::Put),
            Method::POST => Some(super::PushMethod::Post),
            Method::DELETE => Some(super::PushMethod::Delete),
            _ => None,
        };
        let key = match super::parse_group_path(&path) {
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                if let Some(m) = method {
                    super::record(
                        store,
                        m,
                        None,
                        &self.opts,
                        &super::PushOutcome::Invalid(e.clone()),
                    );
                }
                return Ok(text(StatusCode::BAD_REQUEST, format!("{e}\n")));
            }
            None => return Err(req),
        };
        let Some(method) = method else {
            return Ok(method_not_allowed("PUT, POST, DELETE"));
        };
        let header = |h: hyper::header::HeaderName| {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let content_encoding = header(CONTENT_ENCODING);
        let declared_len =
            header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        // Outcomes decided here, before `super::handle` saw the body, are counted here.
        let refuse = |outcome: super::PushOutcome| {
            super::record(store, method, Some(&key), &self.opts, &outcome);
            push_response(method, &self.opts, outcome)
        };
        if declared_len.is_some_and(|n| n > self.opts.max_body_bytes as u64) {
            return Ok(refuse(super::PushOutcome::TooLarge));
        }
        let gzip = content_encoding
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
        let (body, room) = match self.read_body(method, req, gzip).await {
            Ok(read) => read,
            Err(refused) => return Ok(refuse(refused)),
        };
        // Parsing and applying a big body takes a while (linear, but 16 MiB is
        // 16 MiB): off the runtime's thread, so scrapes and health checks on the
        // same runtime go on meanwhile.
        let (store, push_opts) = (Arc::clone(store), self.opts.clone());
        let applied = tokio::task::spawn_blocking(move || {
            let _room = room;
            let req = super::PushRequest {
                method,
                key: &key,
                content_type: content_type.as_deref(),
                content_encoding: content_encoding.as_deref(),
                body: &body,
            };
            super::handle(&store, &push_opts, req)
        })
        .await;
        Ok(match applied {
            Ok(outcome) => push_response(method, &self.opts, outcome),
            Err(e) => {
                // A panic in the handler: a bug, never the client's doing.
                tracing::error!(error = %e, "push handler failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the push could not be applied\n".to_owned(),
                )
            }
        })
    }

    /// Take `kib` more of the body budget, waiting up to [`PUSH_BUDGET_WAIT`]
    /// for it (`Busy` then), into `held`.
    async fn take_room(
        &self,
        held: &mut Option<OwnedSemaphorePermit>,
        kib: u32,
    ) -> Result<(), super::PushOutcome> {
        if kib == 0 {
            return Ok(());
        }
        let kib = kib.min(u32::try_from(push_budget_kib(&self.opts)).unwrap_or(u32::MAX));
        let more = tokio::time::timeout(
            PUSH_BUDGET_WAIT,
            Arc::clone(&self.budget).acquire_many_owned(kib),
        )
        .await;
        match (more, held.as_mut()) {
            (Ok(Ok(more)), Some(h)) => h.merge(more),
            (Ok(Ok(more)), None) => *held = Some(more),
            _ => return Err(super::PushOutcome::Busy),
        }
        Ok(())
    }

    /// The body and its room in the body budget, taken as the bytes arrive
    /// (a body that trickles holds only what it sent) plus, for gzip, room for
    /// what it inflates to. The room travels with the work and is given back
    /// when it ends, even if the client hangs up first. Refused: over the size
    /// limit (413), no room within [`PUSH_BUDGET_WAIT`] (503), or not read
    /// within [`PUSH_BODY_TIMEOUT`] or at [`PUSH_BODY_FLOOR_BYTES_PER_SEC`]
    /// (408). A DELETE's body, if it sends one, is not read: it means nothing.
    async fn read_body(
        &self,
        method: super::PushMethod,
        req: Request<Incoming>,
        gzip: bool,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), super::PushOutcome> {
        if method == super::PushMethod::Delete {
            return Ok((Bytes::new(), None));
        }
        let started = tokio::time::Instant::now();
        let deadline = started + PUSH_BODY_TIMEOUT;
        let mut body = req.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut held_kib = 0u32;
        loop {
            // Wake at least every second to hold the body to the floor rate.
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            let frame = match tokio::time::timeout_at(wake, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => {
                    return Err(super::PushOutcome::Invalid(format!(
                        "could not read the request body: {e}"
                    )))
                }
                Ok(None) => break,
                Err(_) if wake >= deadline => return Err(super::PushOutcome::TimedOut),
                Err(_) => {
                    too_slow(started, buf.len())?;
                    continue;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > self.opts.max_body_bytes {
                return Err(super::PushOutcome::TooLarge);
            }
            buf.extend_from_slice(&data);
            let need = kib(buf.len());
            self.take_room(&mut held, need.saturating_sub(held_kib))
                .await?;
            held_kib = held_kib.max(need);
            too_slow(started, buf.len())?;
        }
        if gzip {
            self.take_room(&mut held, kib(self.opts.max_body_bytes))
                .await?;
        }
        Ok((Bytes::from(buf), held))
    }
}

/// The HTTP answer to a push outcome, as the Pushgateway gives it.
/// `TimedOut` when `got` bytes since `started` are below the floor rate
/// (once the grace time has passed).
fn too_slow(started: tokio::time::Instant, got: usize) -> Result<(), super::PushOutcome> {
    let secs = started.elapsed();
    if secs > PUSH_BODY_GRACE && (got as f64) < PUSH_BODY_FLOOR_BYTES_PER_SEC * secs.as_secs_f64() {
        return Err(super::PushOutcome::TimedOut);
    }
    Ok(())
}

fn push_response(
    method: super::PushMethod,
    opts: &PushOptions,
    outcome: super::PushOutcome,
) -> Response<Full<Bytes>> {
    use super::PushOutcome as O;
    match outcome {
        O::Applied if method == super::PushMethod::Delete => text(StatusCode::ACCEPTED, ""),
        O::Applied => text(StatusCode::OK, ""),
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
