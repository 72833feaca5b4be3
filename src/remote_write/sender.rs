//! One receiver's sender: POST a batch, retry with backoff on network errors,
//! 5xx and 429 (at least what `Retry-After` asks), drop on any other 4xx.

use super::options::RemoteWriteOptions;
use super::queue::{Endpoint, Take};
use super::snapshot::Batch;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest wait a receiver's `Retry-After` can ask for.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long [`RemoteWrite::stop`] gives the senders to deliver what is queued.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Seconds since the Unix epoch of an HTTP-date (IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms, which RFC 9110 says a recipient must accept too).
pub(super) fn http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// The wait a `Retry-After` value asks for: delay seconds, or an HTTP date
/// (`now_unix` is the current Unix time); `None` if it is neither.
pub(super) fn retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(v.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    http_date(v).map(|t| Duration::from_secs(t.saturating_sub(now_unix)))
}

/// What one send attempt came to.
pub(super) enum Sent {
    Ok,
    /// Worth another try, after at least `after` if the receiver said so.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Refused(String),
}

pub(super) fn send(
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

pub(super) fn sender_loop(ep: &Endpoint, agent: &ureq::Agent, opts: &RemoteWriteOptions) {
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
