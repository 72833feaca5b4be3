//! Remote-write settings, and the checks and parsing behind the
//! `--remote-write.*` flags: URLs (credentials taken out and never shown),
//! extra headers, auth and the TLS agent.

use crate::vocab::percent_decode;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Send histograms' native buckets as native histogram samples too.
    pub native_histograms: bool,
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
            native_histograms: false,
        }
    }
}

/// Split `scheme://authority...` at the authority's end (the first `/`, `?` or `#`).
pub(super) fn split_url(url: &str) -> Option<(&str, &str, &str)> {
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
pub(super) fn shown_in_errors(url: &str) -> String {
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

pub(super) fn basic_auth(user: &str, pass: &str) -> String {
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
pub(super) const RESERVED_HEADERS: [&str; 8] = [
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

pub(super) fn read_pem(path: &std::path::Path) -> Result<Vec<ureq::tls::PemItem<'static>>, String> {
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
