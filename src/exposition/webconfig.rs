//! `--web.config.file`: TLS and basic auth for the web port, in the Prometheus
//! exporter-toolkit format (the file Prometheus' own exporters take).
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Keys of the toolkit that promstatsd does not implement (client certificates,
//! cipher and curve choices, HTTP/2) are refused with a clear error rather than
//! silently ignored, since they are security settings.

use base64::Engine;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio_rustls::rustls;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// A loaded web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name → bcrypt hash; empty means no authentication.
    users: Arc<BTreeMap<String, String>>,
    /// Credentials already verified (bcrypt is deliberately slow; a scrape every
    /// few seconds must not pay it every time), kept as a keyed 64-bit hash of
    /// user and password so no password stays in memory. Bounded.
    verified: Arc<Mutex<HashSet<u64>>>,
    /// Per-process random key for `verified`.
    key: foldhash::quality::RandomState,
    /// A hash of the configured cost that no password is checked against for
    /// real: an unknown user is verified against it, so a wrong user name costs
    /// what a wrong password costs and names do not leak by timing. Made on
    /// first use (a bcrypt at start would cost start-up its budget).
    dummy: Arc<OnceLock<String>>,
}

/// What a request's `Authorization` header needs before it is served.
#[derive(Debug)]
pub enum Credentials {
    /// No authentication configured, or these credentials were verified before.
    Accepted,
    /// Missing or malformed: refused without running bcrypt.
    Refused,
    /// A bcrypt verification to run, off the thread that serves requests
    /// ([`WebConfig::verify`]).
    Verify(Verification),
}

/// A user name and password waiting for bcrypt.
#[derive(Debug)]
pub struct Verification {
    cache_key: u64,
    password: String,
    /// The user's hash; `None` for an unknown user.
    hash: Option<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .finish()
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl WebConfig {
    /// Load and check a web configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(path, &text)
    }

    /// Check a web configuration's text; `path` names it in errors and anchors
    /// the relative certificate paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let at = |m: String| format!("{}: {m}", path.display());
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                let m = e.to_string();
                at(m.lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .trim_start_matches("error: ")
                    .to_owned())
            })?
        };
        // Relative paths are relative to the file, as in exporter-toolkit.
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                if t.client_auth_type
                    .as_deref()
                    .is_some_and(|c| !c.is_empty() && c != "NoClientCert")
                {
                    return Err(at(
                        "client certificates (client_auth_type) are not supported".into(),
                    ));
                }
                let (Some(cert), Some(key)) = (t.cert_file, t.key_file) else {
                    return Err(at("tls_server_config needs cert_file and key_file".into()));
                };
                let versions: Vec<&'static rustls::SupportedProtocolVersion> =
                    match (t.min_version.as_deref(), t.max_version.as_deref()) {
                        (Some("TLS13"), _) => vec![&rustls::version::TLS13],
                        (_, Some("TLS12")) => vec![&rustls::version::TLS12],
                        (None | Some("TLS12"), None | Some("TLS13")) => {
                            vec![&rustls::version::TLS13, &rustls::version::TLS12]
                        }
                        (min, max) => {
                            return Err(at(format!(
                            "unsupported TLS versions min {min:?} max {max:?} (use TLS12 or TLS13)"
                        )))
                        }
                    };
                Some(Arc::new(
                    tls_config(&resolve(base, &cert), &resolve(base, &key), &versions)
                        .map_err(at)?,
                ))
            }
        };
        for (user, hash) in &raw.basic_auth_users {
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(at(format!(
                    "the password of user {user:?} is not a bcrypt hash"
                )));
            }
        }
        Ok(Self {
            tls,
            users: Arc::new(raw.basic_auth_users),
            verified: Arc::default(),
            key: foldhash::quality::RandomState::default(),
            dummy: Arc::default(),
        })
    }

    /// True when requests must carry credentials.
    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Check an `Authorization` header value, running bcrypt here if needed
    /// (the web server calls [`WebConfig::check`] and [`WebConfig::verify`]
    /// instead, to run bcrypt off its thread).
    pub fn authorized(&self, header: Option<&str>) -> bool {
        match self.check(header) {
            Credentials::Accepted => true,
            Credentials::Refused => false,
            Credentials::Verify(v) => self.verify(v),
        }
    }

    /// The cheap part of checking an `Authorization` header: everything but
    /// bcrypt.
    pub fn check(&self, header: Option<&str>) -> Credentials {
        if !self.needs_auth() {
            return Credentials::Accepted;
        }
        let Some((user, password)) = basic_credentials(header) else {
            return Credentials::Refused;
        };
        let cache_key = std::hash::BuildHasher::hash_one(&self.key, (&user, &password));
        if self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&cache_key)
        {
            return Credentials::Accepted;
        }
        Credentials::Verify(Verification {
            cache_key,
            password,
            hash: self.users.get(&user).cloned(),
        })
    }

    /// Run bcrypt for `v` (tens of milliseconds at cost 10, by design): true
    /// when the password matches. An unknown user is checked against a dummy
    /// hash of the same cost and refused.
    pub fn verify(&self, v: Verification) -> bool {
        let Some(hash) = &v.hash else {
            let _ = bcrypt::verify(&v.password, self.dummy_hash());
            return false;
        };
        let ok = bcrypt::verify(&v.password, hash).unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= 64 {
                cache.clear();
            }
            cache.insert(v.cache_key);
        }
        ok
    }

    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            // The cost is the two digits after `$2y$` in every bcrypt hash.
            let cost = self
                .users
                .values()
                .next()
                .and_then(|h| h.get(4..6))
                .and_then(|c| c.parse().ok())
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash("promstatsd: no such user", cost).unwrap_or_default()
        })
    }
}

/// User and password of a `Basic` `Authorization` header.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn tls_config(
    cert: &Path,
    key: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))
}
