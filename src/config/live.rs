//! The configuration in force: the static one with the dynamic broker configs laid over it,
//! replaced as a whole when a change is made, and the file that keeps the dynamic part across
//! restarts (Kafka keeps it in its metadata log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::dynamic::{self, DynamicConfigs, DynamicError, Level};
use super::BrokerConfig;
use crate::log::durable::write_atomic;

/// Holds the dynamic broker configs, under the data directory.
pub const FILE: &str = "dynamic-broker-configs.toml";

/// Why the stored dynamic configs cannot be used (the caller names the file).
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{0}")]
    Read(String),
    #[error("the stored values do not apply: {0}")]
    Apply(String),
}

/// The file's contents. Per-broker values belong to the node that set them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    node_id: i32,
    #[serde(default)]
    broker: BTreeMap<String, String>,
    #[serde(default)]
    cluster_default: BTreeMap<String, String>,
}

pub struct LiveConfig {
    current: RwLock<Arc<BrokerConfig>>,
    path: PathBuf,
    /// Serialises changes: each is validated against the one before it.
    changes: tokio::sync::Mutex<()>,
}

impl LiveConfig {
    /// Lays the stored dynamic configs over `config`. Returns what was dropped from the file, to
    /// be logged.
    pub fn open(
        config: BrokerConfig,
        data_dir: &Path,
    ) -> Result<(LiveConfig, Vec<String>), LoadError> {
        let path = data_dir.join(FILE);
        let (stored, mut warnings) = read(&path, config.node_id())?;
        let (broker, w) = dynamic::sanitise(&stored.broker, "per-broker");
        warnings.extend(w);
        let (cluster_default, w) = dynamic::sanitise(&stored.cluster_default, "cluster-default");
        warnings.extend(w);
        let config = config
            .with_dynamic(DynamicConfigs {
                broker,
                cluster_default,
            })
            .map_err(|e| LoadError::Apply(e.to_string()))?;
        Ok((
            LiveConfig {
                current: RwLock::new(Arc::new(config)),
                path,
                changes: tokio::sync::Mutex::new(()),
            },
            warnings,
        ))
    }

    pub fn current(&self) -> Arc<BrokerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the dynamic configs at `level`: `change` maps the values set there to the wanted
    /// ones, which are validated as a whole. The file is written before the new configuration
    /// takes effect. Returns the new configuration, or `None` when nothing changed (or
    /// `validate_only` asked for no change).
    pub async fn alter(
        &self,
        level: Level,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, DynamicError>,
    ) -> Result<Option<Arc<BrokerConfig>>, DynamicError> {
        let _serial = self.changes.lock().await;
        let current = self.current();
        let wanted = change(current.dynamic().at(level))?;
        let next = dynamic::prepare(&current, level, &wanted)?;
        if validate_only || next.dynamic() == current.dynamic() {
            return Ok(None);
        }
        let stored = Stored {
            node_id: next.node_id(),
            broker: next.dynamic().broker.clone(),
            cluster_default: next.dynamic().cluster_default.clone(),
        };
        let text = toml::to_string(&stored).map_err(|e| DynamicError::Storage(e.to_string()))?;
        let text = format!(
            "# Dynamic broker configs, as set with AlterConfigs and IncrementalAlterConfigs.\n{text}"
        );
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, text.as_bytes()))
            .await
            .map_err(|e| DynamicError::Storage(e.to_string()))?
            .map_err(|e| DynamicError::Storage(e.to_string()))?;
        let next = Arc::new(next);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next.clone();
        Ok(Some(next))
    }
}

/// The stored configs; none when the file does not exist. Per-broker values of another node
/// id are dropped with a warning.
fn read(path: &Path, node_id: i32) -> Result<(DynamicConfigs, Vec<String>), LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((DynamicConfigs::default(), Vec::new()))
        }
        Err(e) => return Err(LoadError::Read(e.to_string())),
    };
    let mut stored: Stored = toml::from_str(&text).map_err(|e| LoadError::Read(e.to_string()))?;
    let mut warnings = Vec::new();
    if stored.node_id != node_id && !stored.broker.is_empty() {
        warnings.push(format!(
            "ignoring the per-broker dynamic configs in {}: they were set for node {}, this is node {node_id}",
            path.display(),
            stored.node_id
        ));
        stored.broker.clear();
    }
    let configs = DynamicConfigs {
        broker: stored.broker,
        cluster_default: stored.cluster_default,
    };
    Ok((configs, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn static_config() -> BrokerConfig {
        BrokerConfig::from_pairs(BTreeMap::new()).unwrap()
    }

    #[tokio::test]
    async fn changes_are_kept_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (live, warnings) = LiveConfig::open(static_config(), dir.path()).unwrap();
        assert!(warnings.is_empty());
        let wanted = set(&[("log.retention.ms", "1000")]);
        let changed = live
            .alter(Level::ClusterDefault, false, |_| Ok(wanted.clone()))
            .await
            .unwrap();
        assert!(changed.is_some());
        live.alter(Level::Broker, false, |_| {
            Ok(set(&[("message.max.bytes", "5000")]))
        })
        .await
        .unwrap();
        // The same values again change nothing.
        let again = live
            .alter(Level::ClusterDefault, false, |_| Ok(wanted.clone()))
            .await
            .unwrap();
        assert!(again.is_none());

        let (reopened, _) = LiveConfig::open(static_config(), dir.path()).unwrap();
        let c = reopened.current();
        assert_eq!(c.retention_ms(), 1000);
        assert_eq!(c.int("message.max.bytes"), 5000);
        assert_eq!(c.dynamic().cluster_default, wanted);
    }

    #[tokio::test]
    async fn validate_only_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (live, _) = LiveConfig::open(static_config(), dir.path()).unwrap();
        let done = live
            .alter(Level::Broker, true, |_| {
                Ok(set(&[("log.retention.ms", "1")]))
            })
            .await
            .unwrap();
        assert!(done.is_none());
        let err = live
            .alter(Level::Broker, false, |_| Ok(set(&[("log.dirs", "/x")])))
            .await
            .unwrap_err();
        assert!(matches!(err, DynamicError::ReadOnly(_)));
        assert!(live.current().dynamic().broker.is_empty());
        assert!(!dir.path().join(FILE).exists());
    }

    #[test]
    fn another_nodes_values_and_stale_keys_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "node_id = 7\n[broker]\n\"log.retention.ms\" = \"5\"\n\
             [cluster_default]\n\"num.partitions\" = \"3\"\n\"log.segment.bytes\" = \"2000\"\n",
        )
        .unwrap();
        let (live, warnings) = LiveConfig::open(static_config(), dir.path()).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let c = live.current();
        assert!(c.dynamic().broker.is_empty());
        assert_eq!(
            c.dynamic().cluster_default,
            set(&[("log.segment.bytes", "2000")])
        );
        std::fs::write(dir.path().join(FILE), "not toml [").unwrap();
        assert!(LiveConfig::open(static_config(), dir.path()).is_err());
    }
}
