//! Topic-level configuration: Kafka's topic keys, their broker-wide synonyms, validation, and
//! the resolved settings the log and the produce path use.

use std::collections::BTreeMap;

use crate::config::defs::{self, int_at_least, long_at_least, Def, Kind, Value, ANY_LONG};
use crate::config::{BrokerConfig, COMPRESSION_LEVELS, COMPRESSION_TYPES};

const CLEANUP: &[&str] = &["delete", "compact"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const LONG_MAX: &str = "9223372036854775807";

/// Every topic key Kafka accepts. Defaults are Kafka's; where a broker key is a synonym (see
/// [`broker_synonym`]), the broker's value is the default instead.
pub const TOPIC_DEFS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        kind: Kind::ListOf(CLEANUP),
        default: Some("delete"),
        doc: "delete, compact, or both.",
    },
    Def {
        name: "compression.type",
        kind: Kind::Choice(COMPRESSION_TYPES),
        default: Some("producer"),
        doc: "Compression of stored batches.",
    },
    COMPRESSION_LEVELS[0],
    COMPRESSION_LEVELS[1],
    COMPRESSION_LEVELS[2],
    Def {
        name: "delete.retention.ms",
        kind: long_at_least(0),
        default: Some("86400000"),
        doc: "How long tombstones are kept on compacted topics.",
    },
    Def {
        name: "file.delete.delay.ms",
        kind: long_at_least(0),
        default: Some("60000"),
        doc: "Delay before a deleted segment's file is removed.",
    },
    Def {
        name: "flush.messages",
        kind: long_at_least(1),
        default: Some(LONG_MAX),
        doc: "Messages between forced fsyncs.",
    },
    Def {
        name: "flush.ms",
        kind: long_at_least(0),
        default: Some(LONG_MAX),
        doc: "Milliseconds between forced fsyncs.",
    },
    Def {
        name: "follower.replication.throttled.replicas",
        kind: Kind::List,
        default: Some(""),
        doc: "Unused on a single broker.",
    },
    Def {
        name: "index.interval.bytes",
        kind: int_at_least(0),
        default: Some("4096"),
        doc: "Bytes between offset index entries.",
    },
    Def {
        name: "leader.replication.throttled.replicas",
        kind: Kind::List,
        default: Some(""),
        doc: "Unused on a single broker.",
    },
    Def {
        name: "local.retention.bytes",
        kind: long_at_least(-2),
        default: Some("-2"),
        doc: "Tiered storage: unused.",
    },
    Def {
        name: "local.retention.ms",
        kind: long_at_least(-2),
        default: Some("-2"),
        doc: "Tiered storage: unused.",
    },
    Def {
        name: "max.compaction.lag.ms",
        kind: long_at_least(1),
        default: Some(LONG_MAX),
        doc: "Longest a record stays uncompacted.",
    },
    Def {
        name: "max.message.bytes",
        kind: int_at_least(0),
        default: Some("1048588"),
        doc: "Largest record batch the topic accepts.",
    },
    Def {
        name: "message.downconversion.enable",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "Accepted for compatibility; Klamm never down-converts.",
    },
    Def {
        name: "message.format.version",
        kind: Kind::Str,
        default: Some("3.0-IV1"),
        doc: "Accepted for compatibility; batches are always v2.",
    },
    Def {
        name: "message.timestamp.after.max.ms",
        kind: long_at_least(0),
        default: Some("3600000"),
        doc: "How far in the future a CreateTime may be (Kafka 4: one hour).",
    },
    Def {
        name: "message.timestamp.before.max.ms",
        kind: long_at_least(0),
        default: Some(LONG_MAX),
        doc: "How far in the past a CreateTime may be.",
    },
    Def {
        name: "message.timestamp.difference.max.ms",
        kind: long_at_least(0),
        default: Some(LONG_MAX),
        doc: "Deprecated form of the two above.",
    },
    Def {
        name: "message.timestamp.type",
        kind: Kind::Choice(TIMESTAMP_TYPES),
        default: Some("CreateTime"),
        doc: "CreateTime or LogAppendTime.",
    },
    Def {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double { min: 0.0, max: 1.0 },
        default: Some("0.5"),
        doc: "Dirty ratio that triggers compaction.",
    },
    Def {
        name: "min.compaction.lag.ms",
        kind: long_at_least(0),
        default: Some("0"),
        doc: "Shortest time a record stays uncompacted.",
    },
    Def {
        name: "min.insync.replicas",
        kind: int_at_least(1),
        default: Some("1"),
        doc: "Replicas that must acknowledge acks=all writes.",
    },
    Def {
        name: "preallocate",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "Preallocate segment files.",
    },
    Def {
        name: "remote.storage.enable",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "Tiered storage: unused.",
    },
    Def {
        name: "retention.bytes",
        kind: ANY_LONG,
        default: Some("-1"),
        doc: "Bytes kept per partition; -1 for no limit.",
    },
    Def {
        name: "retention.ms",
        kind: long_at_least(-1),
        default: Some("604800000"),
        doc: "How long segments are kept; -1 forever.",
    },
    Def {
        name: "segment.bytes",
        kind: int_at_least(14),
        default: Some("1073741824"),
        doc: "Size at which a segment rolls.",
    },
    Def {
        name: "segment.index.bytes",
        kind: int_at_least(4),
        default: Some("10485760"),
        doc: "Maximum size of a segment's index.",
    },
    Def {
        name: "segment.jitter.ms",
        kind: long_at_least(0),
        default: Some("0"),
        doc: "Random jitter subtracted from segment.ms.",
    },
    Def {
        name: "segment.ms",
        kind: long_at_least(1),
        default: Some("604800000"),
        doc: "Age at which a segment rolls.",
    },
    Def {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "Unused on a single broker.",
    },
];

/// The broker key whose value is a topic key's default, as Kafka's synonyms go.
pub fn broker_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "cleanup.policy" => "log.cleanup.policy",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "compression.type" => "compression.type",
        "compression.gzip.level" => "compression.gzip.level",
        "compression.lz4.level" => "compression.lz4.level",
        "compression.zstd.level" => "compression.zstd.level",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        _ => return None,
    })
}

/// Validates one topic config; the error is Kafka's message for INVALID_CONFIG.
pub fn validate(key: &str, raw: &str) -> Result<Value, String> {
    let def =
        defs::find(TOPIC_DEFS, key).ok_or_else(|| format!("Unknown topic config name: {key}"))?;
    def.kind.parse(raw).map_err(|allowed| {
        format!("Invalid value {raw} for configuration {key}: must be {allowed}")
    })
}

/// The effective value of a topic key: the topic's override, else the broker's synonym, else
/// Kafka's default.
pub fn effective(
    key: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Option<Value> {
    let def = defs::find(TOPIC_DEFS, key)?;
    if let Some(v) = overrides.get(key).and_then(|raw| def.kind.parse(raw).ok()) {
        return Some(v);
    }
    let from_broker = match key {
        "retention.ms" => Some(Value::Int(broker.retention_ms())),
        "segment.ms" => Some(Value::Int(broker.roll_ms())),
        _ => broker_synonym(key).and_then(|b| broker.value(b).cloned()),
    };
    from_broker.or_else(|| def.default.and_then(|d| def.kind.parse(d).ok()))
}

/// Resolved settings used on the hot paths.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// How far before and after the broker's clock a CreateTime may lie.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub compact: bool,
    pub delete: bool,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    /// The codec batches are stored with (`compression.type`); `None` keeps the producer's.
    pub compression: Option<i16>,
    pub compression_levels: crate::log::recompress::Levels,
}

impl TopicSettings {
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> TopicSettings {
        let int = |k: &str| {
            effective(k, overrides, broker)
                .and_then(|v| v.as_i64())
                .unwrap_or(i64::MAX)
        };
        let policy = effective("cleanup.policy", overrides, broker)
            .and_then(|v| v.as_list().map(<[String]>::to_vec))
            .unwrap_or_default();
        TopicSettings {
            retention_ms: int("retention.ms"),
            retention_bytes: int("retention.bytes"),
            segment_bytes: int("segment.bytes").max(14) as u64,
            segment_ms: int("segment.ms"),
            index_interval_bytes: int("index.interval.bytes").max(0) as u64,
            max_message_bytes: int("max.message.bytes").max(0) as usize,
            log_append_time: effective("message.timestamp.type", overrides, broker)
                .is_some_and(|v| v.as_str() == Some("LogAppendTime")),
            timestamp_before_max_ms: int("message.timestamp.before.max.ms").max(0),
            timestamp_after_max_ms: int("message.timestamp.after.max.ms").max(0),
            compact: policy.iter().any(|p| p == "compact"),
            delete: policy.iter().any(|p| p == "delete"),
            flush_messages: int("flush.messages"),
            flush_ms: int("flush.ms"),
            delete_retention_ms: int("delete.retention.ms"),
            min_cleanable_dirty_ratio: match effective(
                "min.cleanable.dirty.ratio",
                overrides,
                broker,
            ) {
                Some(Value::Double(d)) => d,
                _ => 0.5,
            },
            min_compaction_lag_ms: int("min.compaction.lag.ms"),
            compression: effective("compression.type", overrides, broker)
                .and_then(|v| v.as_str().and_then(crate::log::recompress::target_codec)),
            compression_levels: crate::log::recompress::Levels {
                gzip: int("compression.gzip.level").clamp(-1, 9) as i32,
                lz4: int("compression.lz4.level").clamp(1, 17) as u32,
                zstd: int("compression.zstd.level").clamp(-131072, 22) as i32,
            },
        }
    }

    pub fn log_config(&self) -> crate::log::LogConfig {
        crate::log::LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_broker_synonyms_beat_defaults() {
        let broker = BrokerConfig::from_pairs(
            [("log.retention.hours".to_string(), "1".to_string())]
                .into_iter()
                .collect(),
        )
        .unwrap();
        let mut o = BTreeMap::new();
        let s = TopicSettings::resolve(&o, &broker);
        assert_eq!(s.retention_ms, 3_600_000);
        assert_eq!(s.max_message_bytes, 1048588);
        assert!(s.delete && !s.compact);
        o.insert("retention.ms".into(), "5".into());
        o.insert("cleanup.policy".into(), "compact".into());
        o.insert("message.timestamp.type".into(), "LogAppendTime".into());
        let s = TopicSettings::resolve(&o, &broker);
        assert_eq!(s.retention_ms, 5);
        assert!(s.compact && !s.delete && s.log_append_time);
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("no.such.key", "1")
            .unwrap_err()
            .contains("Unknown"));
    }

    #[test]
    fn broker_defaults_of_topic_keys_are_dynamic() {
        // Kafka updates the first broker synonym of every topic key at run time, and topics
        // follow it; every such key Klamm has must be dynamic too.
        for def in TOPIC_DEFS {
            if let Some(key) = broker_synonym(def.name) {
                if defs::find(crate::config::BROKER_DEFS, key).is_some() {
                    assert!(crate::config::dynamic::is_dynamic(key), "{key}");
                }
            }
        }
    }
}
