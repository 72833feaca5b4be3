//! promstatsd: StatsD in, Prometheus out.
//!
//! A drop-in replacement for `prometheus/statsd_exporter`, usable as a daemon or
//! embedded as a library. Data flows one way, and the modules follow it:
//!
//! ```text
//! listener (mio: UDP/TCP/unix)    bytes off the sockets, in batches
//!   -> parser   (bytes -> borrowed samples, zero-copy)
//!   -> mapper   (name + tags -> family, labels, observer type)
//!   -> store    (sharded series: atomic counters/gauges, histogram buckets, summaries)
//!   -> model::collect  (one borrowed view of every family and series)
//!   -> encoders: exposition::text (text 0.0.4, OpenMetrics), remote_write (protobuf)
//! ```
//!
//! [`vocab`], [`sys`] and [`model`] sit under everything; [`cli`] and [`config`]
//! feed the rest; [`server`] builds the pipeline and starts the threads. Only the
//! [`store`] is shared between threads; an [`ingest::Ingester`] (parser → mapper
//! → store, with its own cache of known series) belongs to one thread. Every
//! top-level module names what it may import in its docs, and `tests/layout.rs`
//! holds it to that.
//!
//! # Embedding
//!
//! An [`Aggregator`] takes bytes and renders the page, with no sockets:
//!
//! ```
//! use promstatsd::{Aggregator, Config};
//!
//! let mut agg = Aggregator::new(&Config::default())?;
//! agg.ingest(b"a.b-c:1|c\na.b-c:2|c|@0.5\nlatency:250|ms|#route:home");
//! let page = agg.render_to_string();
//! assert!(page.contains("# TYPE a_b_c counter\na_b_c 5\n"));
//! assert!(page.contains("latency_sum{route=\"home\"} 0.25\n"));
//! # Ok::<(), promstatsd::mapper::config::ConfigError>(())
//! ```
//!
//! With a statsd_exporter mapping file (or the built-in Airflow pack):
//!
//! ```
//! use promstatsd::{reload::MappingSource, Aggregator, Config};
//!
//! let config = Config { mapping: Some(MappingSource::Airflow), ..Config::default() };
//! let mut agg = Aggregator::new(&config)?;
//! agg.ingest(b"airflow.ti.finish.etl.load.success:1|c");
//! assert!(agg.render_to_string().contains(
//!     "airflow_ti_finish{dag_id=\"etl\",state=\"success\",task_id=\"load\"} 1\n"
//! ));
//! # Ok::<(), promstatsd::mapper::config::ConfigError>(())
//! ```
#![deny(missing_docs, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod explain;
pub mod exposition;
pub mod ingest;
pub mod listener;
pub mod logfmt;
pub mod mapper;
pub mod model;
pub mod parser;
pub mod push;
pub mod relay;
pub mod reload;
pub mod remote_write;
pub mod respond;
pub mod server;
pub mod status;
pub mod store;
pub mod sys;
pub mod vocab;

pub use config::Config;

/// An in-process aggregator: feed it StatsD bytes, render Prometheus text.
#[derive(Debug)]
pub struct Aggregator {
    ingester: ingest::Ingester,
    last_expiry: u64,
}

impl Aggregator {
    /// A new, empty aggregator; fails only on an invalid mapping file.
    pub fn new(config: &Config) -> Result<Self, mapper::config::ConfigError> {
        Ok(Self::from_pipeline(&server::Pipeline::build(config)?))
    }

    /// A new, empty aggregator with an already built mapper (`config.mapping` is
    /// not read).
    pub fn with_mapper(config: &Config, mapper: mapper::Mapper) -> Self {
        Self::from_pipeline(&server::Pipeline::with_mapper(config, mapper))
    }

    fn from_pipeline(p: &server::Pipeline) -> Self {
        Self {
            ingester: p.ingester(),
            last_expiry: 0,
        }
    }

    /// Ingest StatsD lines (one or many, `\n`-separated).
    pub fn ingest(&mut self, bytes: &[u8]) {
        self.expire_on_a_new_second();
        self.ingester.ingest_lines(bytes);
        self.ingester.flush_stats();
    }

    /// [`Aggregator::ingest`] one line at a time, without the pipelined lookups
    /// (for the fuzz target that checks both paths agree).
    #[doc(hidden)]
    pub fn ingest_each_line(&mut self, bytes: &[u8]) {
        self.expire_on_a_new_second();
        for line in parser::lines(bytes) {
            self.ingester.ingest_line(line);
        }
        self.ingester.flush_stats();
    }

    /// Advance the store clock; on a new second, drop series past their TTL.
    fn expire_on_a_new_second(&mut self) {
        let now = self.ingester.store().clock.tick();
        if now != self.last_expiry {
            self.last_expiry = now;
            self.ingester.store().expire(now);
        }
    }

    /// The shared store (for rendering from another thread, or reading stats).
    pub fn store(&self) -> &std::sync::Arc<store::Store> {
        self.ingester.store()
    }

    /// Append the Prometheus text page to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        exposition::text::render(self.store(), out);
    }

    /// The Prometheus text page as a string.
    pub fn render_to_string(&self) -> String {
        exposition::text::render_to_string(self.store())
    }
}
