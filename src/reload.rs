//! Loading the mapping file, at start and on reload (SIGHUP, `/-/reload`).
//!
//! May import: vocab, sys, model, mapper, store.

use crate::mapper::config::ConfigError;
use crate::mapper::{Mapper, MapperDefaults, MapperHandle, AIRFLOW_PACK};
use crate::model::collect::{Collector, SelfFamily};
use crate::store::Store;
use crate::vocab::MetricKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest mapping file read (`--statsd.mapping-config`): 4 MiB, a hundred
/// times the size of the Airflow Helm chart's file; a larger one is refused.
pub const MAX_MAPPING_FILE_BYTES: u64 = 4 << 20;

/// Where the mappings come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappingSource {
    /// The built-in Airflow pack (`--statsd.mapping-config=airflow`).
    Airflow,
    /// A statsd_exporter mapping file.
    File(PathBuf),
}

impl MappingSource {
    /// `airflow` names the built-in pack; anything else is a path (write
    /// `./airflow` for a file of that name).
    pub fn from_flag(value: &str) -> Self {
        if value == "airflow" {
            Self::Airflow
        } else {
            Self::File(PathBuf::from(value))
        }
    }

    /// How errors name this source.
    pub fn describe(&self) -> String {
        match self {
            Self::Airflow => "built-in Airflow pack".to_owned(),
            Self::File(p) => p.display().to_string(),
        }
    }

    /// Read and compile the mappings; returns the mapper and warnings to log.
    pub fn load(&self, base: &MapperDefaults) -> Result<(Mapper, Vec<String>), ConfigError> {
        Mapper::from_yaml(&self.describe(), &self.read()?, base)
    }

    /// The text of the mappings: the pack, or the file (a regular file of at
    /// most [`MAX_MAPPING_FILE_BYTES`]).
    fn read(&self) -> Result<std::borrow::Cow<'static, str>, ConfigError> {
        match self {
            Self::Airflow => Ok(AIRFLOW_PACK.into()),
            Self::File(p) => crate::sys::read_regular_file(p, MAX_MAPPING_FILE_BYTES)
                .map(Into::into)
                .map_err(|e| ConfigError {
                    source: self.describe(),
                    line: None,
                    message: format!("cannot read the mapping file: {e}"),
                }),
        }
    }

    /// Read and compile the mappings for a reload: as [`MappingSource::load`],
    /// but a file with nothing but blanks and comments is refused (a file
    /// being rewritten is often empty for a moment; at start an empty file
    /// means no mappings, on reload it would silently drop them all).
    pub fn reload(&self, base: &MapperDefaults) -> Result<(Mapper, Vec<String>), ConfigError> {
        let text = self.read()?;
        let blank = text
            .lines()
            .map(str::trim)
            .all(|l| l.is_empty() || l.starts_with('#'));
        if blank {
            return Err(ConfigError {
                source: self.describe(),
                line: None,
                message: "the mapping file is empty (or only comments); an empty file is \
                          accepted at start only, so a file caught mid-rewrite cannot drop \
                          every mapping"
                    .to_owned(),
            });
        }
        Mapper::from_yaml(&self.describe(), &text, base)
    }
}

/// Reload counters and the size of the mapping in force. Every counter is
/// `Relaxed`: independent values a scrape reads one by one.
#[derive(Debug, Default)]
pub struct ReloadStats {
    ok: AtomicU64,
    failed: AtomicU64,
    loaded_mappings: AtomicU64,
    /// Unix seconds of the last reload and its error (`None`: it worked).
    last: std::sync::Mutex<Option<(f64, Option<String>)>>,
}

impl ReloadStats {
    /// Count a reload (`error`: why it failed) and note how many rules are
    /// in force.
    pub fn record_reload(&self, error: Option<String>, rules: usize) {
        let ok = error.is_none();
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((crate::sys::unix_now(), error));
        // Relaxed: see the type's comment.
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.set_loaded_mappings(rules);
    }

    /// Unix seconds of the last reload and its error, if there was a reload.
    pub fn last_reload(&self) -> Option<(f64, Option<String>)> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Note how many rules are in force (at start).
    pub fn set_loaded_mappings(&self, rules: usize) {
        // Relaxed: see the type's comment.
        self.loaded_mappings.store(rules as u64, Ordering::Relaxed);
    }
}

impl Collector for ReloadStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        // Relaxed: see the type's comment.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        out.push(SelfFamily::labelled(
            "promstatsd_config_reloads_total",
            MetricKind::Counter,
            "Mapping reloads, by outcome.",
            [
                (vec![("outcome", "success")], get(&self.ok)),
                (vec![("outcome", "failure")], get(&self.failed)),
            ],
        ));
        out.push(SelfFamily::single(
            "promstatsd_loaded_mappings",
            MetricKind::Gauge,
            "Rules in the mapping in force.",
            get(&self.loaded_mappings),
        ));
    }
}

/// Re-reads the mapping source and puts the new mapper in force, or keeps the old
/// one when the new file is invalid.
#[derive(Debug)]
pub struct Reloader {
    source: Option<MappingSource>,
    base: MapperDefaults,
    handle: Arc<MapperHandle>,
    store: Arc<Store>,
    stats: Arc<ReloadStats>,
    running: std::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for `source` (none: reloading only says there is nothing to reload).
    pub fn new(
        source: Option<MappingSource>,
        base: MapperDefaults,
        handle: Arc<MapperHandle>,
        store: Arc<Store>,
    ) -> Self {
        Self {
            source,
            base,
            handle,
            stats: store.metrics().shared(),
            store,
            running: std::sync::Mutex::new(()),
        }
    }

    /// Reload; the outcome is logged and counted. `Ok` carries a summary line.
    /// Reloads run one at a time; call it off the threads that serve or stop
    /// the daemon (the file is a regular file of bounded size, but its disk
    /// may still be slow).
    pub fn reload(&self) -> Result<String, String> {
        let _one_at_a_time = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(source) = &self.source else {
            let msg = "no mapping file configured; nothing to reload".to_owned();
            tracing::warn!("{msg}");
            return Ok(msg);
        };
        match source.reload(&self.base) {
            Ok((mapper, warnings)) => {
                for w in warnings {
                    tracing::warn!(source = %source.describe(), "{w}");
                }
                let n = mapper.rule_count();
                // The store learns the new generation first, so a family created by
                // the new mapper is never taken for one of the old mapper's.
                self.store
                    .set_mapping_generation(self.handle.generation() + 1);
                self.handle.replace(mapper);
                self.stats.record_reload(None, n);
                let msg = format!("reloaded {}: {n} mappings", source.describe());
                tracing::info!("{msg}");
                Ok(msg)
            }
            Err(e) => {
                self.stats
                    .record_reload(Some(e.to_string()), self.handle.load().0.rule_count());
                tracing::error!(error = %e, "reload failed; the previous mappings stay in force");
                Err(e.to_string())
            }
        }
    }
}
