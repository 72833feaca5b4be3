//! The built configuration: what the daemon and the library run with.
//!
//! [`crate::cli`] turns raw flags into a [`Config`]; a program embedding promstatsd
//! builds one directly (`Config::default()` is the daemon's defaults).
//!
//! May import: parser, mapper, store, relay, ingest, listener, reload, push, remote_write, exposition.

use crate::exposition::http::WebOptions;
use crate::ingest::DEFAULT_CACHE_ENTRIES;
use crate::listener::ListenOptions;
use crate::mapper::MapperDefaults;
use crate::parser::ParseOptions;
use crate::reload::MappingSource;
use crate::store::StoreOptions;
use std::net::SocketAddr;

/// Everything promstatsd needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tag styles the parser recognises.
    pub parse: ParseOptions,
    /// Mapping defaults (observer type, buckets), which a mapping file's
    /// `defaults` section overrides.
    pub mapper: MapperDefaults,
    /// The mapping file (`--statsd.mapping-config`), if any.
    pub mapping: Option<MappingSource>,
    /// Store settings (shards, series limit, summary window).
    pub store: StoreOptions,
    /// Bound on each ingest thread's series cache.
    pub cache_entries: usize,
    /// StatsD listeners.
    pub listen: ListenOptions,
    /// Web listener address; `None` disables the web endpoint.
    pub web_listen: Option<SocketAddr>,
    /// Web settings.
    pub web: WebOptions,
    /// Relay to an upstream StatsD, if any.
    pub relay: Option<crate::relay::RelayOptions>,
    /// Push API listener address (`--push.listen-address`); `None` disables it.
    pub push_listen: Option<SocketAddr>,
    /// Push API settings.
    pub push: crate::push::PushOptions,
    /// Remote write (off while it has no URL).
    pub remote_write: crate::remote_write::RemoteWriteOptions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            parse: ParseOptions::default(),
            mapper: MapperDefaults::default(),
            mapping: None,
            store: StoreOptions::default(),
            cache_entries: DEFAULT_CACHE_ENTRIES,
            listen: ListenOptions::default(),
            web_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9102))),
            web: WebOptions::default(),
            relay: None,
            push_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9091))),
            push: crate::push::PushOptions::default(),
            remote_write: crate::remote_write::RemoteWriteOptions::default(),
        }
    }
}
