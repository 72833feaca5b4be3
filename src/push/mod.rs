//! The Pushgateway-compatible push API, as one feature.
//!
//! `PUT`, `POST` and `DELETE` on `/metrics/job/<job>{/<label>/<value>}` (a name
//! ending in `@base64` marks a URL-safe base64 value, the only way to push a value
//! with a `/` or an empty one): the path becomes a grouping key ([`path`]), the
//! port's HTTP handler holds the body within a budget ([`http`]), the body is
//! parsed ([`body`], the Prometheus text format, or [`proto`], delimited
//! protobuf, into the same samples), converted and checked against
//! itself ([`convert`]), and the store checks it against the other groups and the
//! StatsD families and applies it ([`crate::store::pushed`]: storage and the
//! groups' lock only). Groups are kept across restarts by [`mod@persist`]; requests
//! and persistence failures are counted by [`PushStats`].
//!
//! May import: vocab, sys, model, store, respond, logfmt.

use crate::model::collect::{Collector, SelfFamily};
use crate::sys::unix_now;
use crate::vocab::MetricKind;
pub mod body;
pub mod convert;
#[cfg(test)]
mod group_tests;
pub mod http;
pub mod path;
pub mod persist;
pub mod proto;

pub use path::parse_group_path;
pub use persist::{load, persist, restore, serialize, Persister};

use crate::model::group::GroupKey;
use crate::store::Store;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Default bound on a push body, compressed or not (`--push.max-body-bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Push API settings.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Largest body accepted (after gzip decompression too); larger gets 413.
    pub max_body_bytes: usize,
    /// Where groups are kept across restarts, if anywhere.
    pub persistence_file: Option<PathBuf>,
    /// How often changed groups are written to the persistence file.
    pub persistence_interval: Duration,
    /// Groups not changed for this long are removed; zero keeps them forever.
    pub ttl: Duration,
    /// Most concurrent connections on the push port (`--push.max-connections`).
    pub max_connections: usize,
    /// Most series all groups may hold together (`--push.max-series`; 0: no limit).
    pub max_series: usize,
}

/// Default for [`PushOptions::max_series`].
pub const DEFAULT_MAX_SERIES: usize = 100_000;

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            persistence_file: None,
            persistence_interval: Duration::from_secs(300),
            ttl: Duration::ZERO,
            max_connections: 512,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// The push API's counters. Every one is `Relaxed`: independent counters a
/// scrape reads one by one.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Requests by method (put, post, delete) and [`RESULTS`] index.
    requests: [[AtomicU64; RESULTS.len()]; 3],
    /// Failed writes of the persistence file.
    persist_errors: AtomicU64,
    /// Refused pushes are the client's doing: one warning per 10 s at most.
    refusals: crate::logfmt::LogGate,
}

impl PushStats {
    /// Count one request's outcome.
    pub fn request(&self, method: PushMethod, outcome: &PushOutcome) {
        // Relaxed: see the type's comment.
        self.requests[method as usize][outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a failed write of the persistence file.
    pub fn persist_error(&self) {
        // Relaxed: see the type's comment.
        self.persist_errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for PushStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        // Relaxed: see the type's comment.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        out.push(SelfFamily::labelled(
            "promstatsd_push_requests_total",
            MetricKind::Counter,
            "Push API requests, by method and result (ok, invalid, too_large, unsupported, busy, timeout).",
            PushMethod::ALL.iter().flat_map(|&method| {
                RESULTS.iter().enumerate().map(move |(r, result)| {
                    (
                        vec![("method", method.name()), ("result", *result)],
                        get(&self.requests[method as usize][r]),
                    )
                })
            }),
        ));
        out.push(SelfFamily::single(
            "promstatsd_push_persist_errors_total",
            MetricKind::Counter,
            "Failed writes of the push persistence file.",
            get(&self.persist_errors),
        ));
    }
}

/// What a push request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMethod {
    /// Replace the whole group.
    Put,
    /// Replace the families named in the body.
    Post,
    /// Remove the group.
    Delete,
}

impl PushMethod {
    /// Every method, in the self-metric's counter order.
    pub const ALL: [PushMethod; 3] = [Self::Put, Self::Post, Self::Delete];

    /// Lower-case name, for logs and self-metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Post => "post",
            Self::Delete => "delete",
        }
    }
}

/// How a push request ended, for the response and the self-metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Applied (200 for PUT/POST, 202 for DELETE, as the Pushgateway answers).
    Applied,
    /// A bad URL, body or an inconsistent push: 400 with the reason.
    Invalid(String),
    /// Body over the size limit: 413.
    TooLarge,
    /// A body encoding promstatsd does not read (protobuf): 415.
    Unsupported(String),
    /// No room in the push port's body budget in time: 503.
    Busy,
    /// The body did not arrive in time: 408.
    TimedOut,
}

/// The `result` label values of `promstatsd_push_requests_total`, in
/// [`PushOutcome::index`] order.
pub const RESULTS: [&str; 6] = [
    "ok",
    "invalid",
    "too_large",
    "unsupported",
    "busy",
    "timeout",
];

impl PushOutcome {
    /// Position in [`RESULTS`] (and in the self-metric's counters).
    pub fn index(&self) -> usize {
        match self {
            Self::Applied => 0,
            Self::Invalid(_) => 1,
            Self::TooLarge => 2,
            Self::Unsupported(_) => 3,
            Self::Busy => 4,
            Self::TimedOut => 5,
        }
    }
}

/// Read a gzip body, refusing more than `limit` bytes of output.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, PushOutcome> {
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| PushOutcome::Invalid(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(PushOutcome::TooLarge);
    }
    Ok(out)
}

/// One push request whose body was read (within the size limit).
#[derive(Clone, Copy, Debug)]
pub struct PushRequest<'a> {
    /// `PUT`, `POST` or `DELETE`.
    pub method: PushMethod,
    /// The group, from the path.
    pub key: &'a GroupKey,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<&'a str>,
    /// The `Content-Encoding` header, if sent.
    pub content_encoding: Option<&'a str>,
    /// The body as received (gzip not yet undone).
    pub body: &'a [u8],
}

impl<'a> PushRequest<'a> {
    /// A request without `Content-Type` or `Content-Encoding`.
    pub fn new(method: PushMethod, key: &'a GroupKey, body: &'a [u8]) -> Self {
        Self {
            method,
            key,
            content_type: None,
            content_encoding: None,
            body,
        }
    }
}

/// Handle one push request: apply it, count and log its outcome.
pub fn handle(store: &Store, opts: &PushOptions, req: PushRequest<'_>) -> PushOutcome {
    let outcome = apply(store, opts, req);
    record(store, req.method, Some(req.key), opts, &outcome);
    outcome
}

/// Count a push request's outcome and log a refusal (one warning per 10 s;
/// the others at debug level, all of them counted).
pub fn record(
    store: &Store,
    method: PushMethod,
    key: Option<&GroupKey>,
    opts: &PushOptions,
    outcome: &PushOutcome,
) {
    let key = key.map_or_else(|| "(bad path)".to_owned(), GroupKey::to_string);
    let stats = store.metrics().shared::<PushStats>();
    stats.request(method, outcome);
    let why = match outcome {
        PushOutcome::Applied => {
            tracing::debug!(method = method.name(), group = %key, "push applied");
            return;
        }
        PushOutcome::Invalid(e) | PushOutcome::Unsupported(e) => e.clone(),
        PushOutcome::TooLarge => format!(
            "body over --push.max-body-bytes ({} bytes)",
            opts.max_body_bytes
        ),
        PushOutcome::Busy => "no room for its body among the pushes in progress".to_owned(),
        PushOutcome::TimedOut => "its body did not arrive in time".to_owned(),
    };
    let now = crate::sys::unix_now() as u64;
    match stats.refusals.admit(now) {
        Some(skipped) => tracing::warn!(
            method = method.name(),
            group = %key,
            error = %why,
            refusals_not_logged = skipped,
            "push refused (one warning per 10 s; promstatsd_push_requests_total counts them all)"
        ),
        None => tracing::debug!(method = method.name(), group = %key, error = %why, "push refused"),
    }
}

fn apply(store: &Store, opts: &PushOptions, req: PushRequest<'_>) -> PushOutcome {
    let PushRequest {
        method,
        key,
        content_type,
        content_encoding,
        body,
    } = req;
    if method == PushMethod::Delete {
        store.delete_group(key);
        return PushOutcome::Applied;
    }
    let protobuf = match content_type.map(body_format) {
        Some(BodyFormat::Protobuf) => true,
        Some(BodyFormat::UnsupportedProtobuf) => {
            return PushOutcome::Unsupported(
                "protobuf push bodies must be delimited io.prometheus.client.MetricFamily \
                 messages (proto=io.prometheus.client.MetricFamily; encoding=delimited)"
                    .to_owned(),
            )
        }
        _ => false,
    };
    let decoded;
    let body = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => body,
        Some(e) if e.eq_ignore_ascii_case("gzip") => match gunzip(body, opts.max_body_bytes) {
            Ok(b) => {
                decoded = b;
                &decoded[..]
            }
            Err(o) => return o,
        },
        Some(e) => {
            return PushOutcome::Unsupported(format!(
                "unsupported Content-Encoding {e:?} (use gzip or none)"
            ))
        }
    };
    if body.len() > opts.max_body_bytes {
        return PushOutcome::TooLarge;
    }
    let parsed = if protobuf {
        proto::parse(body).map_err(|e| format!("invalid protobuf body: {e}"))
    } else {
        std::str::from_utf8(body)
            .map_err(|_| "the body is not UTF-8".to_owned())
            .and_then(|text| body::parse(text).map_err(|e| format!("invalid text format: {e}")))
    };
    let families = match parsed {
        Ok(f) => f,
        Err(e) => return PushOutcome::Invalid(e),
    };
    match apply_parsed(store, key, &families, method == PushMethod::Put, unix_now()) {
        Ok(()) => PushOutcome::Applied,
        Err(e) => PushOutcome::Invalid(format!(
            "pushed metrics are invalid or inconsistent with existing metrics: {e}"
        )),
    }
}

/// How a push body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    /// The text format (anything that is not protobuf, as the Pushgateway).
    Text,
    /// Delimited `io.prometheus.client.MetricFamily` messages.
    Protobuf,
    /// Protobuf of another message or encoding.
    UnsupportedProtobuf,
}

fn body_format(content_type: &str) -> BodyFormat {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/vnd.google.protobuf"))
    {
        return BodyFormat::Text;
    }
    let (mut proto, mut encoding) = ("", "");
    for p in parts {
        match p
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        {
            Some(("proto", v)) => proto = v,
            Some(("encoding", v)) => encoding = v,
            _ => {}
        }
    }
    if proto == "io.prometheus.client.MetricFamily" && encoding == "delimited" {
        BodyFormat::Protobuf
    } else {
        BodyFormat::UnsupportedProtobuf
    }
}

/// Apply parsed families to the group `key`: converted first, before any
/// store lock is taken (a big push must not hold up StatsD's new families or a
/// scrape while its samples are rendered), then checked and applied by the
/// store. On `Err` nothing was applied and the group's failure time is `now`.
pub fn apply_parsed(
    store: &Store,
    key: &GroupKey,
    parsed: &[body::ParsedFamily<'_>],
    replace: bool,
    now: f64,
) -> Result<(), String> {
    match convert::convert(key, parsed) {
        Ok(new) => store.push(key, new, replace, now),
        Err(e) => {
            store.set_push_failure_time(key, now);
            Err(e)
        }
    }
}

/// Parse a text body and apply it (see [`apply_parsed`]).
#[cfg(test)]
fn apply_text(
    store: &Store,
    key: &GroupKey,
    text: &str,
    replace: bool,
    now: f64,
) -> Result<(), String> {
    apply_parsed(store, key, &body::parse(text)?, replace, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(path: &str) -> Result<GroupKey, String> {
        parse_group_path(path).unwrap_or_else(|| Err("not a push path".into()))
    }

    #[test]
    fn group_paths() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/metrics/job/airflow", Ok("{job=\"airflow\"}")),
            (
                "/metrics/job/a/instance/h1/x/y",
                Ok("{instance=\"h1\",job=\"a\",x=\"y\"}"),
            ),
            ("/metrics/job@base64/YS9i", Ok("{job=\"a/b\"}")),
            ("/metrics/job@base64/YS9i==", Ok("{job=\"a/b\"}")),
            (
                "/metrics/job/a/path@base64/L3Zhci90bXA",
                Ok("{job=\"a\",path=\"/var/tmp\"}"),
            ),
            (
                "/metrics/job/a/empty@base64/=",
                Ok("{empty=\"\",job=\"a\"}"),
            ),
            ("/metrics/job/my%20job", Ok("{job=\"my job\"}")),
            ("/metrics/job/a/instance/", Ok("{job=\"a\"}")),
            ("/metrics/job/a/instance@base64/=", Ok("{job=\"a\"}")),
            ("/metrics/job/a/x/1/x/2", Ok("{job=\"a\",x=\"2\"}")),
            ("/metrics/job/", Err("job name is required")),
            ("/metrics/job", Err("job name is required")),
            ("/metrics/job/a/x", Err("odd number")),
            ("/metrics/job/a/1x/y", Err("improper label name")),
            ("/metrics/job/a/__x/y", Err("improper label name")),
            ("/metrics/job@base64/!!", Err("invalid base64")),
            ("/metrics/job/a%zz", Err("percent-encoding")),
            ("/metrics/job/a/job/b", Err("must come first")),
        ];
        for (path, want) in cases {
            let got = key(path).map(|k| k.to_string());
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "{path}"),
                Err(w) => {
                    let e = got.expect_err(path);
                    assert!(e.contains(w), "{path}: {e:?} lacks {w:?}");
                }
            }
        }
        assert!(parse_group_path("/metrics").is_none());
        assert!(parse_group_path("/metrics/other/x").is_none());
    }

    #[test]
    fn every_key_round_trips_through_its_path() {
        for k in [
            "/metrics/job/a",
            "/metrics/job@base64/YS9i/e@base64/=/z/%C3%BC",
        ] {
            let k = key(k).unwrap();
            assert_eq!(key(&format!("/metrics{}", k.to_path())).unwrap(), k);
        }
    }

    fn put(store: &Store, path: &str, body: &str) -> PushOutcome {
        let k = key(path).unwrap();
        let req = PushRequest {
            content_type: Some("text/plain; version=0.0.4"),
            ..PushRequest::new(PushMethod::Put, &k, body.as_bytes())
        };
        handle(store, &PushOptions::default(), req)
    }

    #[test]
    fn bodies_are_checked() {
        let store = Store::default();
        assert_eq!(put(&store, "/metrics/job/a", "x 1\n"), PushOutcome::Applied);
        assert!(
            matches!(put(&store, "/metrics/job/a", "x 1 2\n"), PushOutcome::Invalid(e) if e.contains("timestamps"))
        );
        let opts = PushOptions {
            max_body_bytes: 4,
            ..PushOptions::default()
        };
        let k = key("/metrics/job/a").unwrap();
        let big = handle(
            &store,
            &opts,
            PushRequest::new(PushMethod::Post, &k, b"x 12345\n"),
        );
        assert_eq!(big, PushOutcome::TooLarge);
        let proto = PushRequest {
            content_type: Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text"),
            ..PushRequest::new(PushMethod::Put, &k, b"")
        };
        let proto = handle(&store, &opts, proto);
        assert!(matches!(proto, PushOutcome::Unsupported(_)));
        // The refused pushes left the first one in place.
        assert!(crate::exposition::text::render_to_string(&store)
            .contains("x{instance=\"\",job=\"a\"} 1\n"));
    }

    /// The fuzz target `push_requests` found it (2026-12-07): a push to
    /// `/metrics/job/a` then one to `/metrics/job/a/instance/` made two groups
    /// whose `push_time_seconds{instance="",job="a"}` both stood on the page.
    #[test]
    fn an_empty_instance_is_the_group_without_one() {
        let store = Store::default();
        assert_eq!(put(&store, "/metrics/job/a", "x 1\n"), PushOutcome::Applied);
        assert_eq!(
            put(&store, "/metrics/job/a/instance/", ""),
            PushOutcome::Applied
        );
        assert_eq!(store.pushed().group_count(), 1);
        let page = crate::exposition::text::render_to_string(&store);
        let checked = crate::exposition::check::check(page.as_bytes());
        assert!(checked.is_ok(), "{checked:?}\n{page}");
    }

    /// The fuzz target `push_requests` found the first case (2026-12-08 CI):
    /// `h 2` in a histogram family was accepted and put a sample on the page
    /// that no scraper reads as part of a histogram. Each case is refused with
    /// its reason, and the page stays valid.
    #[test]
    fn samples_that_do_not_fit_their_family_are_refused() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "/metrics/job/a",
                "# TYPE h histogram\nh 2\n",
                "not a sample of histogram h",
            ),
            (
                "/metrics/job/a",
                "# TYPE h histogram\nh_sum{le=\"1\"} 2\n",
                "h_sum must not have a le label",
            ),
            (
                "/metrics/job/a",
                "# TYPE s summary\ns_count{quantile=\"0.5\"} 2\n",
                "s_count must not have a quantile label",
            ),
            (
                "/metrics/job/a/le/1",
                "# TYPE h histogram\nh_sum 2\nh_count 1\n",
                "histogram h cannot be pushed under a grouping key with a le label",
            ),
            // The grouping `le` would have replaced the bucket's own.
            (
                "/metrics/job/a/le/1",
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\n",
                "histogram h cannot be pushed under a grouping key with a le label",
            ),
            (
                "/metrics/job/a/quantile/0.5",
                "# TYPE s summary\ns{quantile=\"0.9\"} 2\n",
                "summary s cannot be pushed under a grouping key with a quantile label",
            ),
        ];
        for (path, body, want) in cases {
            let store = Store::default();
            match put(&store, path, body) {
                PushOutcome::Invalid(e) => assert!(e.contains(want), "{body:?}: {e}"),
                other => panic!("{body:?}: {other:?}"),
            }
            let page = crate::exposition::text::render_to_string(&store);
            let checked = crate::exposition::check::check(page.as_bytes());
            assert!(checked.is_ok(), "{body:?}: {checked:?}\n{page}");
            assert!(
                !page.contains("# TYPE h ") && !page.contains("# TYPE s "),
                "{page}"
            );
        }
    }

    /// A grouping label `le` is an ordinary label on a counter's series.
    #[test]
    fn a_le_grouping_label_is_fine_on_a_counter() {
        let store = Store::default();
        let pushed = put(&store, "/metrics/job/a/le/1", "# TYPE c counter\nc 2\n");
        assert_eq!(pushed, PushOutcome::Applied);
        let page = crate::exposition::text::render_to_string(&store);
        assert!(
            page.contains("c{instance=\"\",job=\"a\",le=\"1\"} 2\n"),
            "{page}"
        );
    }

    #[test]
    fn gzip_bodies_are_read_and_bounded() {
        let store = Store::default();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"y 2\n").unwrap();
        let z = enc.finish().unwrap();
        let k = key("/metrics/job/z").unwrap();
        let opts = PushOptions::default();
        let gz = |body| PushRequest {
            content_encoding: Some("gzip"),
            ..PushRequest::new(PushMethod::Put, &k, body)
        };
        let ok = handle(&store, &opts, gz(&z));
        assert_eq!(ok, PushOutcome::Applied);
        let small = PushOptions {
            max_body_bytes: 3,
            ..PushOptions::default()
        };
        let big = handle(&store, &small, gz(&z));
        assert_eq!(big, PushOutcome::TooLarge);
        let bad = handle(&store, &opts, gz(b"nope"));
        assert!(matches!(bad, PushOutcome::Invalid(_)));
    }

    #[test]
    fn persistence_round_trips() {
        let store = Store::default();
        assert_eq!(
            put(
                &store,
                "/metrics/job@base64/YS9i/instance/h",
                "# HELP h Help with \\\\ and \\n.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
            ),
            PushOutcome::Applied
        );
        assert_eq!(
            put(&store, "/metrics/job/b", "q{v=\"a\\\"b\"} 1e-300\n"),
            PushOutcome::Applied
        );
        // A failed push stamps only the failure time.
        assert!(matches!(
            put(&store, "/metrics/job/c", "# TYPE q counter\nq 1\n"),
            PushOutcome::Invalid(_)
        ));
        let text = serialize(&store);
        let again = Store::default();
        let n = restore(&again, std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(n, 3);
        let page = |s: &Store| {
            crate::exposition::text::render_to_string(s)
                .lines()
                .filter(|l| !l.contains("promstatsd_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(page(&store), page(&again));
        assert_eq!(serialize(&again), text);
    }

    #[test]
    fn a_group_the_rules_refuse_is_skipped_on_restore() {
        let store = Store::default();
        let text = "# promstatsd push persistence v1\n\
                    #@group /job/a 1 0\nx 1\n\
                    #@group /job/b 2 0\n# TYPE h histogram\nh_sum{le=\"1\"} 2\n\
                    #@group /job/c 3 0\ny 1\n";
        assert_eq!(restore(&store, text), Ok(2));
        let page = crate::exposition::text::render_to_string(&store);
        assert!(page.contains("x{instance=\"\",job=\"a\"} 1\n"), "{page}");
        assert!(page.contains("y{instance=\"\",job=\"c\"} 1\n"), "{page}");
        assert!(!page.contains("job=\"b\""), "{page}");
    }

    #[test]
    fn damaged_files_are_refused_with_a_line() {
        let store = Store::default();
        let cases: &[(&str, &str)] = &[
            ("garbage", "bad first line"),
            (
                "# promstatsd push persistence v1\nx 1\n",
                "line 2: expected a #@group",
            ),
            (
                "# promstatsd push persistence v1\n#@group /job/a 1 0\nx{ 1\n",
                "group starting at line 2",
            ),
            (
                "# promstatsd push persistence v1\n#@group /job/a one 0\n",
                "bad time",
            ),
            (
                "# promstatsd push persistence v1\n#@group /nope 1 0\n",
                "bad group path",
            ),
        ];
        for (text, want) in cases {
            let e = restore(&store, text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
    }
}
