//! promstatsd: StatsD in, Prometheus out.
//!
//! A drop-in replacement for `prometheus/statsd_exporter`, usable as a daemon or
//! embedded as a library. Data flows one way, and the modules follow it:
//!
//! ```text
//! listener (mio: UDP/TCP/unixgram)    bytes off the sockets, in batches
//!   -> parser   (bytes -> borrowed samples, zero-copy)
//!   -> mapper   (name + tags -> family, labels, observer type)
//!   -> store    (sharded series: atomic counters/gauges, histogram buckets, summaries)
//!   -> exposition (own thread: store -> Prometheus text -> HTTP)
//! ```
//!
//! [`cli`] and [`config`] feed them. Only the [`store`] is shared between
//! threads; an [`ingest::Ingester`] (parser → mapper → store, with its own cache of
//! known series) belongs to one thread.
//!
//! # Embedding
//!
//! An [`Aggregator`] takes bytes and renders the page, with no sockets:
//!
//! ```
//! use promstatsd::{Aggregator, Config};
//!
//! let mut agg = Aggregator::new(&Config::default());
//! agg.ingest(b"a.b-c:1|c\na.b-c:2|c|@0.5\nlatency:250|ms|#route:home");
//! let page = agg.render_to_string();
//! assert!(page.contains("# TYPE a_b_c counter\na_b_c 5\n"));
//! assert!(page.contains("latency_sum{route=\"home\"} 0.25\n"));
//! ```
#![deny(missing_docs, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod exposition;
pub mod ingest;
pub mod listener;
pub mod mapper;
pub mod parser;
pub mod stats;
pub mod store;

pub use config::Config;

use std::sync::Arc;

/// An in-process aggregator: feed it StatsD bytes, render Prometheus text.
#[derive(Debug)]
pub struct Aggregator {
    ingester: ingest::Ingester,
}

impl Aggregator {
    /// A new, empty aggregator.
    pub fn new(config: &Config) -> Self {
        let store = Arc::new(store::Store::new(config.store.clone()));
        let mapper = Arc::new(mapper::Mapper::new(config.mapper.clone()));
        Self {
            ingester: ingest::Ingester::new(store, mapper, config.parse, config.cache_entries),
        }
    }

    /// Ingest StatsD lines (one or many, `\n`-separated).
    pub fn ingest(&mut self, bytes: &[u8]) {
        self.ingester.store().clock.tick();
        self.ingester.ingest_lines(bytes);
        self.ingester.flush_stats();
    }

    /// The shared store (for rendering from another thread, or reading stats).
    pub fn store(&self) -> &Arc<store::Store> {
        self.ingester.store()
    }

    /// Append the Prometheus text page to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        exposition::text::render(self.store(), out);
    }

    /// The Prometheus text page as a string.
    pub fn render_to_string(&self) -> String {
        let mut out = Vec::new();
        self.render(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
