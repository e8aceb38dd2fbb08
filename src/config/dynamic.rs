//! Dynamic broker configs (Kafka's KIP-226): keys changed at run time with AlterConfigs or
//! IncrementalAlterConfigs on a BROKER resource, either for this broker (resource name = its
//! node id) or as the cluster-wide default (the empty name).
//!
//! Precedence, highest first: per-broker dynamic, cluster-default dynamic, static (file,
//! environment, `--override`), built-in default. Which keys may change follows Kafka's update
//! modes; a key Kafka updates dynamically is dynamic here only if Klamm applies a change while
//! running, so a change that succeeds always takes effect.

use std::collections::BTreeMap;

use thiserror::Error;

use super::defs::{self, Def};
use super::{BrokerConfig, BROKER_DEFS};

/// Keys that can be changed at run time, all of them "cluster-wide" in Kafka's terms (settable
/// per broker and as the cluster default).
const DYNAMIC_KEYS: &[&str] = &[
    // Topic defaults (Kafka's DynamicLogConfig): the first broker synonym of each topic key.
    // Lower-precedence spellings (log.retention.hours, log.retention.minutes, log.roll.hours)
    // are read-only in Kafka, and so here.
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.index.interval.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.cleanup.policy",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "message.max.bytes",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    // The cleaner's own settings (Kafka's LogCleaner).
    "log.cleaner.threads",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    // Idempotent producer state (Kafka's DynamicProducerStateManagerConfig).
    "producer.id.expiration.ms",
];

/// Whether a broker key can be changed at run time.
pub fn is_dynamic(key: &str) -> bool {
    DYNAMIC_KEYS.contains(&key)
}

/// Which BROKER resource a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// This broker (the resource named by its node id).
    Broker,
    /// Every broker of the cluster (the resource with the empty name).
    ClusterDefault,
}

/// The dynamic values in force, raw as stored (already validated and normalised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicConfigs {
    pub broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicConfigs {
    pub fn at(&self, level: Level) -> &BTreeMap<String, String> {
        match level {
            Level::Broker => &self.broker,
            Level::ClusterDefault => &self.cluster_default,
        }
    }

    /// The value a key takes from the dynamic levels, per-broker first.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.broker
            .get(key)
            .or_else(|| self.cluster_default.get(key))
            .map(String::as_str)
    }
}

/// A refused change. Kafka answers all but the unknown-key and list-operation cases with
/// INVALID_REQUEST (its validation wraps every configuration error so).
#[derive(Debug, Error, PartialEq)]
pub enum DynamicError {
    #[error("Unknown config name: {0}")]
    UnknownKey(String),
    #[error("Config value {verb} is not allowed for config key: {key}")]
    NotAList { verb: &'static str, key: String },
    #[error("Cannot update these configs dynamically: [{}]", .0.join(", "))]
    ReadOnly(Vec<String>),
    #[error("Invalid value {value} for configuration {key}: must be {allowed}")]
    InvalidValue {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("Invalid dynamic configuration: {0}")]
    Reconfiguration(String),
    #[error("cannot store dynamic broker configs: {0}")]
    Storage(String),
}

/// Checks the complete set of values wanted at `level` against the configuration in force, and
/// returns the configuration they make (values normalised, as stored).
pub fn prepare(
    current: &BrokerConfig,
    level: Level,
    wanted: &BTreeMap<String, String>,
) -> Result<BrokerConfig, DynamicError> {
    if let Some(unknown) = wanted.keys().find(|k| defs::find(BROKER_DEFS, k).is_none()) {
        return Err(DynamicError::UnknownKey(unknown.clone()));
    }
    let read_only: Vec<String> = wanted.keys().filter(|k| !is_dynamic(k)).cloned().collect();
    if !read_only.is_empty() {
        return Err(DynamicError::ReadOnly(read_only));
    }
    let mut normalised = BTreeMap::new();
    for (key, raw) in wanted {
        normalised.insert(key.clone(), parse(key, raw)?);
    }
    let mut dynamic = current.dynamic().clone();
    match level {
        Level::Broker => dynamic.broker = normalised,
        Level::ClusterDefault => dynamic.cluster_default = normalised,
    }
    let next = current
        .with_dynamic(dynamic)
        .map_err(|e| DynamicError::Reconfiguration(e.to_string()))?;
    check_cleaner_threads(current, &next)?;
    Ok(next)
}

/// Validates one value as its static form is validated; the normalised value.
fn parse(key: &str, raw: &str) -> Result<String, DynamicError> {
    let def: &Def = defs::find(BROKER_DEFS, key).ok_or(DynamicError::UnknownKey(key.into()))?;
    def.kind
        .parse(raw)
        .map(|v| v.render())
        .map_err(|allowed| DynamicError::InvalidValue {
            key: key.to_string(),
            value: raw.to_string(),
            allowed,
        })
}

/// Kafka resizes its cleaner pool at most by half or double at a time, and never to nothing.
fn check_cleaner_threads(current: &BrokerConfig, next: &BrokerConfig) -> Result<(), DynamicError> {
    let (now, wanted) = (
        current.int("log.cleaner.threads"),
        next.int("log.cleaner.threads"),
    );
    if now == wanted {
        return Ok(());
    }
    let refuse = |m: String| Err(DynamicError::Reconfiguration(m));
    if wanted < 1 {
        return refuse("Log cleaner threads should be at least 1".into());
    }
    if wanted < now / 2 {
        return refuse(format!(
            "Log cleaner threads cannot be reduced to less than half the current value {now}"
        ));
    }
    if wanted > now.saturating_mul(2) {
        return refuse(format!(
            "Log cleaner threads cannot be increased to more than double the current value {now}"
        ));
    }
    Ok(())
}

/// Stored values that no longer pass (a key that stopped being dynamic, a value now out of
/// range) are dropped, each named in the returned warnings, as Kafka ignores them.
pub fn sanitise(
    stored: &BTreeMap<String, String>,
    level: &str,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut warnings = Vec::new();
    for (key, raw) in stored {
        if !is_dynamic(key) {
            warnings.push(format!(
                "ignoring stored {level} dynamic config {key}: it cannot be set dynamically"
            ));
            continue;
        }
        match parse(key, raw) {
            Ok(v) => {
                kept.insert(key.clone(), v);
            }
            Err(e) => warnings.push(format!("ignoring stored {level} dynamic config: {e}")),
        }
    }
    (kept, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> BrokerConfig {
        BrokerConfig::from_pairs(map(&[("log.retention.hours", "2")])).unwrap()
    }

    #[test]
    fn layers_in_kafkas_order() {
        let c = base();
        assert_eq!(c.retention_ms(), 2 * 3_600_000);
        let c = prepare(
            &c,
            Level::ClusterDefault,
            &map(&[("log.retention.ms", "500")]),
        )
        .unwrap();
        assert_eq!(c.retention_ms(), 500);
        let c = prepare(&c, Level::Broker, &map(&[("log.retention.ms", "700")])).unwrap();
        assert_eq!(c.retention_ms(), 700);
        assert_eq!(c.dynamic().get("log.retention.ms"), Some("700"));
        // Removing the per-broker value uncovers the cluster default, then the static value.
        let c = prepare(&c, Level::Broker, &BTreeMap::new()).unwrap();
        assert_eq!(c.retention_ms(), 500);
        let c = prepare(&c, Level::ClusterDefault, &BTreeMap::new()).unwrap();
        assert_eq!(c.retention_ms(), 2 * 3_600_000);
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        let c = base();
        let err = prepare(
            &c,
            Level::Broker,
            &map(&[("num.partitions", "3"), ("log.retention.hours", "1")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot update these configs dynamically: [log.retention.hours, num.partitions]"
        );
        let err = prepare(&c, Level::Broker, &map(&[("message.max.bytes", "-5")])).unwrap_err();
        assert!(matches!(err, DynamicError::InvalidValue { .. }), "{err}");
        assert!(err.to_string().contains("message.max.bytes"));
        let err = prepare(&c, Level::Broker, &map(&[("no.such", "1")])).unwrap_err();
        assert_eq!(err, DynamicError::UnknownKey("no.such".into()));
        let err = prepare(&c, Level::Broker, &map(&[("log.cleaner.threads", "3")])).unwrap_err();
        assert!(err.to_string().contains("more than double"), "{err}");
        let err = prepare(&c, Level::Broker, &map(&[("log.cleaner.threads", "0")])).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        assert!(prepare(&c, Level::Broker, &map(&[("log.cleaner.threads", "2")])).is_ok());
    }

    #[test]
    fn values_are_stored_normalised() {
        let c = prepare(
            &base(),
            Level::ClusterDefault,
            &map(&[("log.message.timestamp.type", "logappendtime")]),
        )
        .unwrap();
        assert_eq!(
            c.dynamic().cluster_default["log.message.timestamp.type"],
            "LogAppendTime"
        );
    }

    #[test]
    fn stored_values_that_no_longer_pass_are_dropped() {
        let (kept, warnings) = sanitise(
            &map(&[
                ("log.retention.ms", "5"),
                ("num.partitions", "3"),
                ("message.max.bytes", "x"),
            ]),
            "per-broker",
        );
        assert_eq!(kept, map(&[("log.retention.ms", "5")]));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn every_dynamic_key_is_a_broker_key() {
        for key in DYNAMIC_KEYS {
            assert!(defs::find(BROKER_DEFS, key).is_some(), "{key}");
        }
    }
}
