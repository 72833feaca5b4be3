//! Command-line flags: statsd_exporter's names, validated here, built into a [`Config`].
//!
//! [`Args`] only parses and validates; [`Args::build`] turns it into the
//! [`Config`] the daemon runs with, plus the warnings to log once logging is up.
//!
//! May import: vocab, sys, parser, mapper, store, relay, ingest, reload, push, remote_write, exposition, config.

use crate::config::Config;
use crate::mapper::ObserverType;
use clap::{ArgAction, Parser, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including each rejected line.
    Debug,
    /// Start-up, shutdown and configuration events.
    Info,
    /// Problems that do not stop the daemon.
    Warn,
    /// Only errors.
    Error,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time level target: message key=value ...`
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Default observer type for `ms`/`h`/`d` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObserverFlag {
    /// Summaries with quantiles 0.5, 0.9, 0.99 over 10 minutes (statsd_exporter's default).
    Summary,
    /// Histograms with buckets .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
    Histogram,
}

/// Raw flags. Names follow statsd_exporter so existing command lines keep working.
#[derive(Debug, Parser)]
#[command(
    name = "promstatsd",
    version,
    about = "StatsD to Prometheus aggregator: a fast drop-in replacement for statsd_exporter.",
    long_about = "Receives StatsD metrics (UDP, TCP, unix datagram), aggregates them, and serves \
them in the Prometheus text format.\n\nPoint Airflow at it with \
[metrics] statsd_on=True statsd_host=<host> statsd_port=8125, and Prometheus at <host>:9102.\n\n\
An empty address disables a listener (--statsd.listen-tcp=\"\").",
    after_help = "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the mapping file."
)]
pub struct Args {
    /// UDP address for StatsD (`host:port`, `:port` for all interfaces, IPv4 and IPv6; empty to disable).
    #[arg(
        long = "statsd.listen-udp",
        value_name = "ADDR",
        default_value = ":8125"
    )]
    pub listen_udp: String,

    /// TCP address for StatsD, newline-delimited (empty to disable).
    #[arg(
        long = "statsd.listen-tcp",
        value_name = "ADDR",
        default_value = ":8125"
    )]
    pub listen_tcp: String,

    /// Unix datagram socket path for StatsD (empty to disable). A stale socket file is replaced.
    #[arg(
        long = "statsd.listen-unixgram",
        value_name = "PATH",
        default_value = ""
    )]
    pub listen_unixgram: String,

    /// Unix stream socket path for StatsD, newline-delimited like TCP, or in
    /// DogStatsD's length-prefixed framing (told by a connection's first bytes);
    /// empty to disable. A stale socket file is replaced.
    #[arg(long = "statsd.listen-unix", value_name = "PATH", default_value = "")]
    pub listen_unix: String,

    /// Permission bits of the unix socket files, in octal.
    #[arg(
        long = "statsd.unixsocket-mode",
        value_name = "MODE",
        default_value = "755"
    )]
    pub unixsocket_mode: String,

    /// Receive buffer (SO_RCVBUF) of the datagram sockets, in bytes; the kernel caps it at net.core.rmem_max unless promstatsd has CAP_NET_ADMIN (then SO_RCVBUFFORCE lifts the cap). Default: the OS default.
    #[arg(long = "statsd.read-buffer", value_name = "BYTES")]
    pub read_buffer: Option<usize>,

    /// Parse DogStatsD tags (`|#k:v,k2:v2`).
    #[arg(long = "statsd.parse-dogstatsd-tags", value_name = "BOOL", num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub parse_dogstatsd: bool,
    /// Do not parse DogStatsD tags.
    #[arg(long = "no-statsd.parse-dogstatsd-tags")]
    pub no_parse_dogstatsd: bool,

    /// Parse InfluxDB tags (`name,k=v:1|c`).
    #[arg(long = "statsd.parse-influxdb-tags", value_name = "BOOL", num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub parse_influxdb: bool,
    /// Do not parse InfluxDB tags.
    #[arg(long = "no-statsd.parse-influxdb-tags")]
    pub no_parse_influxdb: bool,

    /// Parse Librato tags (`name#k=v:1|c`).
    #[arg(long = "statsd.parse-librato-tags", value_name = "BOOL", num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub parse_librato: bool,
    /// Do not parse Librato tags.
    #[arg(long = "no-statsd.parse-librato-tags")]
    pub no_parse_librato: bool,

    /// Parse SignalFX tags (`name[k=v]:1|c`).
    #[arg(long = "statsd.parse-signalfx-tags", value_name = "BOOL", num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub parse_signalfx: bool,
    /// Do not parse SignalFX tags.
    #[arg(long = "no-statsd.parse-signalfx-tags")]
    pub no_parse_signalfx: bool,

    /// How timers, histograms and distributions are aggregated by default.
    #[arg(
        long = "statsd.observer-type",
        value_enum,
        value_name = "TYPE",
        default_value = "summary"
    )]
    pub observer_type: ObserverFlag,

    /// Longest StatsD line accepted on any listener, in bytes; longer lines are
    /// refused and counted (reason line_too_long); a TCP connection stays open.
    #[arg(long = "statsd.max-line-length", alias = "statsd.tcp-max-line-length", value_name = "BYTES",
          default_value_t = promstatsd_default_line(),
          value_parser = clap::value_parser!(u64).range(16..=16 * 1024 * 1024))]
    pub tcp_max_line: u64,

    /// Most StatsD TCP connections open at once; more are closed at once and counted.
    #[arg(long = "statsd.tcp-max-connections", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub tcp_max_connections: u64,

    /// UDP ingest loops, each with its own socket on the same address (SO_REUSEPORT);
    /// the kernel spreads senders across them. 1 is right for most machines.
    #[arg(long = "statsd.udp-workers", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub udp_workers: u64,

    /// Address of the web endpoint (metrics, health), `:port` for all interfaces.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9102"
    )]
    pub web_listen: String,

    /// Path of the metrics page.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Seconds an HTTP client has to send its request headers.
    #[arg(long = "web.header-timeout", value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub web_header_timeout: u64,

    /// Most concurrent HTTP connections on the web port (one client address
    /// gets at most half); more are closed at once and counted.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub web_max_connections: u64,

    /// Most concurrent connections on the push port, a budget of its own (one
    /// client address gets at most half); more are closed at once and counted.
    #[arg(long = "push.max-connections", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub push_max_connections: u64,

    /// Log level.
    #[arg(
        long = "log.level",
        value_enum,
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(
        long = "log.format",
        value_enum,
        value_name = "FORMAT",
        default_value = "logfmt"
    )]
    pub log_format: LogFormat,

    /// statsd_exporter flags that do not apply here (internal queues, cache type):
    /// accepted so existing command lines keep working, and ignored with a warning.
    #[arg(long = "statsd.event-queue-size", value_name = "N", hide = true)]
    pub ignored_event_queue_size: Option<String>,
    #[allow(missing_docs)]
    #[arg(long = "statsd.event-flush-threshold", value_name = "N", hide = true)]
    pub ignored_event_flush_threshold: Option<String>,
    #[allow(missing_docs)]
    #[arg(
        long = "statsd.event-flush-interval",
        value_name = "DURATION",
        hide = true
    )]
    pub ignored_event_flush_interval: Option<String>,
    #[allow(missing_docs)]
    #[arg(long = "statsd.udp-packet-queue-size", value_name = "N", hide = true)]
    pub ignored_udp_packet_queue_size: Option<String>,
    #[allow(missing_docs)]
    #[arg(long = "statsd.cache-type", value_name = "TYPE", hide = true)]
    pub ignored_cache_type: Option<String>,
    #[allow(missing_docs)]
    #[arg(long = "debug.dump-fsm", value_name = "FILE", hide = true)]
    pub ignored_dump_fsm: Option<String>,

    /// statsd_exporter mapping file (YAML), or `airflow` for the built-in Airflow pack.
    /// Reloaded on SIGHUP (and PUT/POST /-/reload with --web.enable-lifecycle).
    #[arg(long = "statsd.mapping-config", value_name = "FILE|airflow")]
    pub mapping_config: Option<String>,

    /// Validate the mapping file, print the result, and exit 0 (valid) or 1 (invalid).
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Explain StatsD lines without starting the daemon: for each, the mapping
    /// rule that decides it (FILE:LINE), why earlier rules did not, and the
    /// family, type, labels and value it makes. `-` reads one line per stdin
    /// line. Exits 0, or 1 if a line does not parse (2 if the mapping does not
    /// load). Takes every following argument up to the next flag.
    #[arg(long = "explain", value_name = "LINE", num_args = 1..)]
    pub explain: Vec<String>,

    /// Bound on the cache of known series per ingest thread (0: no cache; at most
    /// 16,777,214, about 46 bytes an entry). Past it, about half the entries are
    /// dropped and re-mapped on their next sample.
    #[arg(
        long = "statsd.cache-size",
        value_name = "N",
        default_value_t = crate::ingest::DEFAULT_CACHE_ENTRIES as u64,
        value_parser = clap::value_parser!(u64).range(0..=crate::ingest::MAX_CACHE_ENTRIES as u64)
    )]
    pub cache_size: u64,

    /// Most series kept (0: no limit). Past it, samples for new series are refused
    /// and counted; existing series keep updating.
    #[arg(long = "statsd.max-series", value_name = "N", default_value_t = crate::store::DEFAULT_MAX_SERIES)]
    pub max_series: usize,

    /// TLS and basic auth for the web port: a file in the Prometheus exporter-toolkit
    /// format (tls_server_config.cert_file/key_file, basic_auth_users with bcrypt hashes).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Serve PUT/POST /-/reload to reload the mapping file.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Answer scrapes that accept OpenMetrics with OpenMetrics (counters gain
    /// `_total`). Off by default: Prometheus prefers OpenMetrics when offered, which
    /// would rename every counter series statsd_exporter dashboards query.
    #[arg(long = "web.enable-openmetrics")]
    pub enable_openmetrics: bool,

    /// Address of the Pushgateway-compatible push API (PUT/POST/DELETE
    /// /metrics/job/JOB{/LABEL/VALUE}); pushed metrics appear on the
    /// metrics page. Empty disables it. TLS and basic auth follow --web.config.file.
    #[arg(
        long = "push.listen-address",
        value_name = "ADDR",
        default_value = ":9091"
    )]
    pub push_listen: String,

    /// Largest push body accepted, in bytes (also after gzip decompression);
    /// larger pushes get 413.
    #[arg(long = "push.max-body-bytes", value_name = "BYTES",
          default_value_t = crate::push::DEFAULT_MAX_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
    pub push_max_body: u64,

    /// Most series (samples) all pushed groups may hold together; a push past
    /// it is refused with 400 (0: no limit).
    #[arg(long = "push.max-series", value_name = "N",
          default_value_t = crate::push::DEFAULT_MAX_SERIES as u64)]
    pub push_max_series: u64,

    /// Keep pushed groups in this file across restarts (written atomically when
    /// they changed, every --push.persistence.interval and at shutdown; read at start).
    #[arg(long = "push.persistence.file", value_name = "FILE")]
    pub push_persistence_file: Option<PathBuf>,

    /// How often changed push groups are written to --push.persistence.file
    /// (Go duration: 30s, 5m).
    #[arg(
        long = "push.persistence.interval",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub push_persistence_interval: String,

    /// Remove a pushed group this long after its last push (Go duration); 0 keeps
    /// groups until they are deleted, as the Pushgateway does.
    #[arg(long = "push.ttl", value_name = "DURATION", default_value = "0")]
    pub push_ttl: String,

    /// Send every series to this remote-write receiver (Prometheus remote write
    /// 1.0: Mimir, Cortex, Thanos Receive, VictoriaMetrics, Prometheus with
    /// --web.enable-remote-write-receiver). Repeat for several receivers.
    #[arg(long = "remote-write.url", value_name = "URL")]
    pub remote_write_url: Vec<String>,

    /// Time between two remote-write snapshots (Go duration).
    #[arg(
        long = "remote-write.interval",
        value_name = "DURATION",
        default_value = "15s"
    )]
    pub remote_write_interval: String,

    /// Most samples in one remote-write request.
    #[arg(long = "remote-write.max-samples-per-send", value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub remote_write_max_samples: u64,

    /// Most samples queued per receiver while it is slow or down; past it the
    /// oldest are dropped (counted), so a dead receiver costs bounded memory.
    #[arg(long = "remote-write.queue-capacity", value_name = "SAMPLES", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub remote_write_queue_capacity: u64,

    /// Time one remote-write request may take (Go duration).
    #[arg(
        long = "remote-write.timeout",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub remote_write_timeout: String,

    /// A label added to every remote-written series that lacks it, as name=value;
    /// repeatable. Without an `instance` one, instance=HOSTNAME is added so
    /// several promstatsd instances do not overwrite each other's series.
    #[arg(long = "remote-write.external-label", value_name = "NAME=VALUE")]
    pub remote_write_external_labels: Vec<String>,

    /// An HTTP header sent with every remote-write request, as NAME=VALUE;
    /// repeatable. For multi-tenant stores: X-Scope-OrgID=TENANT (Mimir, Cortex).
    /// Authorization, Content-Type, Content-Encoding, User-Agent and
    /// X-Prometheus-Remote-Write-Version cannot be replaced.
    #[arg(long = "remote-write.header", value_name = "NAME=VALUE")]
    pub remote_write_headers: Vec<String>,

    /// Basic-auth user for the remote-write receivers.
    #[arg(long = "remote-write.basic-auth.username", value_name = "USER")]
    pub remote_write_user: Option<String>,

    /// File holding the basic-auth password (needs --remote-write.basic-auth.username).
    #[arg(long = "remote-write.basic-auth.password-file", value_name = "FILE")]
    pub remote_write_password_file: Option<PathBuf>,

    /// File holding a bearer token for the remote-write receivers (re-read
    /// before every request, so a rotated token is picked up).
    #[arg(long = "remote-write.bearer-token-file", value_name = "FILE")]
    pub remote_write_bearer_file: Option<PathBuf>,

    /// PEM CA bundle to verify https receivers with (default: the Mozilla roots).
    #[arg(long = "remote-write.tls.ca-file", value_name = "FILE")]
    pub remote_write_ca: Option<PathBuf>,

    /// PEM client certificate for mutual TLS (with --remote-write.tls.key-file).
    #[arg(long = "remote-write.tls.cert-file", value_name = "FILE")]
    pub remote_write_cert: Option<PathBuf>,

    /// PEM private key for mutual TLS (with --remote-write.tls.cert-file).
    #[arg(long = "remote-write.tls.key-file", value_name = "FILE")]
    pub remote_write_key: Option<PathBuf>,

    /// Do not verify the receiver's certificate (testing only).
    #[arg(long = "remote-write.tls.insecure-skip-verify")]
    pub remote_write_insecure: bool,

    /// Send each histogram's native buckets as a native histogram sample
    /// too, beside its classic series; only for receivers that take them
    /// (Prometheus with --enable-feature=native-histograms, Mimir, ...).
    #[arg(long = "remote-write.native-histograms")]
    pub remote_write_native: bool,
    /// Forward every valid line to this StatsD (host:port) as well.
    #[arg(long = "statsd.relay.address", value_name = "ADDR")]
    pub relay_address: Option<String>,

    /// Largest relayed datagram, in bytes.
    #[arg(long = "statsd.relay.packet-length", value_name = "BYTES", default_value_t = 1400,
          value_parser = clap::value_parser!(u64).range(64..=65_000))]
    pub relay_packet_length: u64,
}

const fn promstatsd_default_line() -> u64 {
    crate::parser::DEFAULT_MAX_LINE_LENGTH as u64
}

/// A flag value that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// Parse a Go-syntax duration flag (`30s`, `5m`, `1h30m`, `0`).
fn parse_duration_flag(flag: &str, value: &str) -> Result<std::time::Duration, FlagError> {
    crate::mapper::config::parse_go_duration(value)
        .filter(|s| (0.0..1e12).contains(s))
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            FlagError(format!(
                "--{flag}={value:?}: expected a duration such as 30s, 5m or 1h30m"
            ))
        })
}

/// Parse a listen address as statsd_exporter does: empty disables, `:port`
/// means every interface (IPv4 and IPv6: see [`crate::sys::bind`]), otherwise
/// `host:port` (resolved; the first address wins).
pub fn parse_listen_addr(flag: &str, value: &str) -> Result<Option<SocketAddr>, FlagError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| FlagError(format!("--{flag}={value:?}: {why}"));
    if let Some(port) = value.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
        return Ok(Some(SocketAddr::from(([0, 0, 0, 0], port))));
    }
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    if !value.contains(':') {
        return Err(bad("expected host:port or :port"));
    }
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?;
    addrs
        .next()
        .map(Some)
        .ok_or_else(|| bad("the host resolves to no address"))
}

impl Args {
    fn build_remote_write(
        &self,
        rw: &mut crate::remote_write::RemoteWriteOptions,
    ) -> Result<(), FlagError> {
        let any_setting = self.remote_write_user.is_some()
            || self.remote_write_password_file.is_some()
            || self.remote_write_bearer_file.is_some()
            || self.remote_write_ca.is_some()
            || self.remote_write_cert.is_some()
            || self.remote_write_key.is_some()
            || self.remote_write_insecure
            || self.remote_write_native
            || !self.remote_write_external_labels.is_empty()
            || !self.remote_write_headers.is_empty();
        rw.urls = self
            .remote_write_url
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if rw.urls.is_empty() {
            if any_setting {
                return Err(FlagError(
                    "--remote-write.* settings need at least one --remote-write.url".to_owned(),
                ));
            }
            return Ok(());
        }
        Self::check_urls(&rw.urls)?;
        rw.interval = parse_duration_flag("remote-write.interval", &self.remote_write_interval)?;
        rw.timeout = parse_duration_flag("remote-write.timeout", &self.remote_write_timeout)?;
        if rw.interval.is_zero() || rw.timeout.is_zero() {
            return Err(FlagError(
                "--remote-write.interval and --remote-write.timeout must be longer than 0"
                    .to_owned(),
            ));
        }
        rw.max_samples_per_send = self.remote_write_max_samples as usize;
        rw.queue_capacity = self.remote_write_queue_capacity as usize;
        self.build_rw_labels(rw)?;
        self.build_rw_auth(rw)?;
        self.build_rw_tls(rw)
    }

    /// Each URL valid, and no receiver twice (credentials aside).
    fn check_urls(urls: &[String]) -> Result<(), FlagError> {
        let mut receivers = std::collections::HashSet::new();
        for u in urls {
            crate::remote_write::check_url(u)
                .map_err(|e| FlagError(format!("--remote-write.url: {e}")))?;
            // The `url` label of the self-metrics is the URL without credentials.
            let shown = crate::remote_write::redact(u);
            if !receivers.insert(shown.clone()) {
                return Err(FlagError(format!(
                    "--remote-write.url: {shown} is given twice (credentials aside)"
                )));
            }
        }
        Ok(())
    }

    /// External labels (`instance` by default) and extra headers.
    fn build_rw_labels(
        &self,
        rw: &mut crate::remote_write::RemoteWriteOptions,
    ) -> Result<(), FlagError> {
        rw.external_labels.clear();
        for l in &self.remote_write_external_labels {
            let (k, v) = l.split_once('=').ok_or_else(|| {
                FlagError(format!(
                    "--remote-write.external-label={l:?}: expected name=value"
                ))
            })?;
            if !crate::vocab::valid_label(k) || k.starts_with("__") {
                return Err(FlagError(format!(
                    "--remote-write.external-label={l:?}: {k:?} is not a valid label name"
                )));
            }
            rw.external_labels.retain(|(n, _)| n != k);
            rw.external_labels.push((k.to_owned(), v.to_owned()));
        }
        rw.headers.clear();
        for h in &self.remote_write_headers {
            let (name, value) = crate::remote_write::parse_header(h)
                .map_err(|e| FlagError(format!("--remote-write.header: {e}")))?;
            rw.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            rw.headers.push((name, value));
        }
        if !rw.external_labels.iter().any(|(k, _)| k == "instance") {
            rw.external_labels
                .push(("instance".to_owned(), crate::sys::hostname()));
        }
        Ok(())
    }

    /// Basic auth or a bearer token (not both), checked against each URL's
    /// own credentials.
    fn build_rw_auth(
        &self,
        rw: &mut crate::remote_write::RemoteWriteOptions,
    ) -> Result<(), FlagError> {
        rw.basic_auth = match (&self.remote_write_user, &self.remote_write_password_file) {
            (None, None) => None,
            (Some(u), Some(f)) => {
                let p = std::fs::read_to_string(f).map_err(|e| {
                    FlagError(format!(
                        "--remote-write.basic-auth.password-file={}: {e}",
                        f.display()
                    ))
                })?;
                Some((u.clone(), p.trim_end_matches(['\r', '\n']).to_owned()))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(FlagError(
                    "--remote-write.basic-auth.username and --remote-write.basic-auth.password-file go together".to_owned(),
                ))
            }
        };
        if rw.basic_auth.is_some() && self.remote_write_bearer_file.is_some() {
            return Err(FlagError(
                "remote write takes basic auth or a bearer token, not both".to_owned(),
            ));
        }
        rw.bearer_token_file = self.remote_write_bearer_file.clone();
        for u in &rw.urls {
            crate::remote_write::endpoint_auth(u, rw)
                .map_err(|e| FlagError(format!("--remote-write.url: {e}")))?;
        }
        Ok(())
    }

    /// CA, client certificate and key; the files are read now, so a broken
    /// one fails at start, not at the first send.
    fn build_rw_tls(
        &self,
        rw: &mut crate::remote_write::RemoteWriteOptions,
    ) -> Result<(), FlagError> {
        rw.tls_ca_file = self.remote_write_ca.clone();
        rw.tls_client = match (&self.remote_write_cert, &self.remote_write_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => {
                return Err(FlagError(
                    "--remote-write.tls.cert-file and --remote-write.tls.key-file go together"
                        .to_owned(),
                ))
            }
        };
        rw.tls_insecure_skip_verify = self.remote_write_insecure;
        rw.native_histograms = self.remote_write_native;
        // Fail at start, not at the first send, on unreadable TLS files.
        crate::remote_write::agent(rw).map_err(|e| FlagError(format!("remote write TLS: {e}")))?;
        Ok(())
    }

    /// Validate the flags and build the configuration, with warnings to log.
    pub fn build(&self) -> Result<(Config, Vec<String>), FlagError> {
        let warnings = self.ignored_flags();
        let mut cfg = Config::default();
        self.build_listen(&mut cfg)?;
        self.build_web(&mut cfg)?;
        self.build_push(&mut cfg)?;
        self.build_remote_write(&mut cfg.remote_write)?;
        cfg.web.enable_lifecycle = self.enable_lifecycle;
        cfg.web.enable_openmetrics = self.enable_openmetrics;
        cfg.store.openmetrics_names = self.enable_openmetrics;
        cfg.mapping = match self.mapping_config.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(crate::reload::MappingSource::from_flag(v)),
        };
        if self.check_config && cfg.mapping.is_none() {
            return Err(FlagError(
                "--check-config needs --statsd.mapping-config".to_owned(),
            ));
        }
        // At most `MAX_CACHE_ENTRIES` (the parser's range): fits a `usize`.
        cfg.cache_entries = usize::try_from(self.cache_size).unwrap_or(usize::MAX);
        cfg.store.max_series = self.max_series;
        cfg.web.max_connections = self.web_max_connections as usize;
        cfg.web.header_timeout = std::time::Duration::from_secs(self.web_header_timeout);
        Ok((cfg, warnings))
    }

    /// A warning for each statsd_exporter flag given that promstatsd ignores.
    fn ignored_flags(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let ignored = [
            ("statsd.event-queue-size", &self.ignored_event_queue_size),
            (
                "statsd.event-flush-threshold",
                &self.ignored_event_flush_threshold,
            ),
            (
                "statsd.event-flush-interval",
                &self.ignored_event_flush_interval,
            ),
            (
                "statsd.udp-packet-queue-size",
                &self.ignored_udp_packet_queue_size,
            ),
            ("statsd.cache-type", &self.ignored_cache_type),
            ("debug.dump-fsm", &self.ignored_dump_fsm),
        ];
        for (name, v) in ignored {
            if v.is_some() {
                warnings.push(format!(
                    "--{name} is a statsd_exporter flag that does not apply to promstatsd; ignored"
                ));
            }
        }
        warnings
    }

    /// StatsD listeners, the parser's tag styles and the observer type.
    fn build_listen(&self, cfg: &mut Config) -> Result<(), FlagError> {
        cfg.listen.udp = parse_listen_addr("statsd.listen-udp", &self.listen_udp)?;
        cfg.listen.tcp = parse_listen_addr("statsd.listen-tcp", &self.listen_tcp)?;
        cfg.listen.unixgram = match self.listen_unixgram.trim() {
            "" => None,
            p => Some(PathBuf::from(p)),
        };
        cfg.listen.unix = match self.listen_unix.trim() {
            "" => None,
            p => Some(PathBuf::from(p)),
        };
        if cfg.listen.udp.is_none()
            && cfg.listen.tcp.is_none()
            && cfg.listen.unixgram.is_none()
            && cfg.listen.unix.is_none()
        {
            return Err(FlagError(
                "at least one of --statsd.listen-udp, --statsd.listen-tcp, \
                 --statsd.listen-unixgram, --statsd.listen-unix must be set"
                    .to_owned(),
            ));
        }
        cfg.listen.unixsocket_mode = u32::from_str_radix(self.unixsocket_mode.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                FlagError(format!(
                    "--statsd.unixsocket-mode={:?}: expected octal permission bits such as 755",
                    self.unixsocket_mode
                ))
            })?;
        if let Some(b) = self.read_buffer {
            if b == 0 || b > i32::MAX as usize {
                return Err(FlagError(format!(
                    "--statsd.read-buffer={b}: expected a size in bytes from 1 to {}",
                    i32::MAX
                )));
            }
        }
        cfg.listen.read_buffer = self.read_buffer;
        cfg.listen.tcp_max_line = self.tcp_max_line as usize;
        cfg.parse.max_line_length = self.tcp_max_line as usize;
        cfg.listen.tcp_max_connections = self.tcp_max_connections as usize;
        cfg.listen.udp_workers = self.udp_workers as usize;
        cfg.parse.dogstatsd = self.parse_dogstatsd && !self.no_parse_dogstatsd;
        cfg.parse.influxdb = self.parse_influxdb && !self.no_parse_influxdb;
        cfg.parse.librato = self.parse_librato && !self.no_parse_librato;
        cfg.parse.signalfx = self.parse_signalfx && !self.no_parse_signalfx;
        cfg.mapper.observer = match self.observer_type {
            ObserverFlag::Summary => ObserverType::Summary,
            ObserverFlag::Histogram => ObserverType::Histogram,
        };
        Ok(())
    }

    /// The web port, its paths and TLS/auth file, and the relay.
    fn build_web(&self, cfg: &mut Config) -> Result<(), FlagError> {
        cfg.web_listen = parse_listen_addr("web.listen-address", &self.web_listen)?;
        if !self.telemetry_path.starts_with('/') {
            return Err(FlagError(format!(
                "--web.telemetry-path={:?}: the path must start with /",
                self.telemetry_path
            )));
        }
        if matches!(
            self.telemetry_path.as_str(),
            "/" | "/-/healthy" | "/-/ready"
        ) {
            return Err(FlagError(format!(
                "--web.telemetry-path={:?}: that path is taken by the landing page or a health check",
                self.telemetry_path
            )));
        }
        cfg.web.telemetry_path = self.telemetry_path.clone();
        cfg.relay = match self.relay_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => match parse_listen_addr("statsd.relay.address", a)? {
                Some(target) if !a.starts_with(':') => Some(crate::relay::RelayOptions {
                    target,
                    packet_length: self.relay_packet_length as usize,
                }),
                _ => {
                    return Err(FlagError(format!(
                        "--statsd.relay.address={a:?}: expected host:port"
                    )))
                }
            },
        };
        if let Some(f) = &self.web_config_file {
            cfg.web.config = crate::exposition::webconfig::WebConfig::load(f)
                .map_err(|e| FlagError(format!("--web.config.file: {e}")))?;
        }
        Ok(())
    }

    /// The push port and its body limit, persistence and TTL.
    fn build_push(&self, cfg: &mut Config) -> Result<(), FlagError> {
        cfg.push_listen = parse_listen_addr("push.listen-address", &self.push_listen)?;
        cfg.push.max_body_bytes = usize::try_from(self.push_max_body).unwrap_or(usize::MAX);
        cfg.push.max_connections = self.push_max_connections as usize;
        cfg.push.max_series = usize::try_from(self.push_max_series).unwrap_or(usize::MAX);
        cfg.push.persistence_file = self
            .push_persistence_file
            .clone()
            .filter(|f| !f.as_os_str().is_empty());
        cfg.push.persistence_interval =
            parse_duration_flag("push.persistence.interval", &self.push_persistence_interval)?;
        if cfg.push.persistence_interval.is_zero() {
            return Err(FlagError(
                "--push.persistence.interval must be longer than 0".to_owned(),
            ));
        }
        cfg.push.ttl = parse_duration_flag("push.ttl", &self.push_ttl)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(args: &[&str]) -> Result<(Config, Vec<String>), FlagError> {
        let mut v = vec!["promstatsd"];
        v.extend_from_slice(args);
        Args::try_parse_from(v)
            .map_err(|e| FlagError(e.to_string()))?
            .build()
    }

    #[test]
    fn defaults_are_airflow_friendly() {
        let (cfg, warnings) = build(&[]).unwrap();
        assert_eq!(cfg.listen.udp, Some(SocketAddr::from(([0, 0, 0, 0], 8125))));
        assert_eq!(cfg.listen.tcp, Some(SocketAddr::from(([0, 0, 0, 0], 8125))));
        assert_eq!(cfg.web_listen, Some(SocketAddr::from(([0, 0, 0, 0], 9102))));
        assert_eq!(cfg.web.telemetry_path, "/metrics");
        assert!(
            cfg.parse.dogstatsd && cfg.parse.influxdb && cfg.parse.librato && cfg.parse.signalfx
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn statsd_exporter_command_line_still_works() {
        let (cfg, warnings) = build(&[
            "--statsd.listen-udp=:9125",
            "--statsd.listen-tcp",
            "",
            "--statsd.event-flush-interval=200ms",
            "--no-statsd.parse-signalfx-tags",
            "--statsd.parse-librato-tags=false",
        ])
        .unwrap();
        assert_eq!(cfg.listen.udp, Some(SocketAddr::from(([0, 0, 0, 0], 9125))));
        assert_eq!(cfg.listen.tcp, None);
        assert!(!cfg.parse.signalfx && !cfg.parse.librato && cfg.parse.dogstatsd);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("statsd.event-flush-interval"));
    }

    #[test]
    fn bad_values_have_clear_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--statsd.listen-udp=:99999"], "port must be a number"),
            (&["--statsd.listen-udp=nonsense"], "expected host:port"),
            (&["--statsd.unixsocket-mode=9"], "octal"),
            (&["--web.telemetry-path=metrics"], "must start with /"),
            (
                &["--statsd.listen-udp=", "--statsd.listen-tcp="],
                "at least one",
            ),
            (&["--check-config"], "needs --statsd.mapping-config"),
            (&["--statsd.read-buffer=0"], "read-buffer"),
        ];
        for (args, want) in cases {
            let err = build(args).err().map(|e| e.0).unwrap_or_default();
            assert!(
                err.contains(want),
                "{args:?}: {err:?} should mention {want:?}"
            );
        }
    }
}
