//! Loading the mapping file, at start and on reload (SIGHUP, `/-/reload`).

use crate::mapper::config::ConfigError;
use crate::mapper::{Mapper, MapperDefaults, MapperHandle, AIRFLOW_PACK};
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

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
        match self {
            Self::Airflow => Mapper::from_yaml(&self.describe(), AIRFLOW_PACK, base),
            Self::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    source: self.describe(),
                    line: None,
                    message: format!("cannot read the mapping file: {e}"),
                })?;
                Mapper::from_yaml(&self.describe(), &text, base)
            }
        }
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
            store,
        }
    }

    /// Reload; the outcome is logged and counted. `Ok` carries a summary line.
    pub fn reload(&self) -> Result<String, String> {
        let Some(source) = &self.source else {
            let msg = "no mapping file configured; nothing to reload".to_owned();
            tracing::warn!("{msg}");
            return Ok(msg);
        };
        match source.load(&self.base) {
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
                self.store.stats.record_reload(true, n);
                let msg = format!("reloaded {}: {n} mappings", source.describe());
                tracing::info!("{msg}");
                Ok(msg)
            }
            Err(e) => {
                self.store
                    .stats
                    .record_reload(false, self.handle.load().0.rule_count());
                tracing::error!(error = %e, "reload failed; the previous mappings stay in force");
                Err(e.to_string())
            }
        }
    }
}
