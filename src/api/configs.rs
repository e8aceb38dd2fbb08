//! What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share: Kafka's resource
//! types, config sources and config types, and how topic keys map to broker synonyms.

use kafka_protocol::ResponseError;

use crate::config::defs::Kind;
use crate::config::dynamic::{DynamicError, Level};
use crate::config::BrokerConfig;
use crate::topics::config::broker_synonym;

/// ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// DescribeConfigs config sources.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType code for a key's kind (choices are strings, as Kafka types them).
pub fn config_type(kind: &Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Str | Kind::Choice(_) => 2,
        Kind::Int { .. } | Kind::IntOr { .. } => 3,
        Kind::Long { .. } => 5,
        Kind::Double { .. } => 6,
        Kind::List | Kind::ListOf(_) => 7,
    }
}

/// The broker keys that set a topic key's default, highest precedence first. Retention and
/// roll time each have several spellings; the first one set wins, as in Kafka.
pub fn topic_synonyms(topic_key: &str) -> Vec<&'static str> {
    match topic_key {
        "retention.ms" => vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "segment.ms" => vec!["log.roll.ms", "log.roll.hours"],
        other => broker_synonym(other)
            .or_else(|| described_synonym(other))
            .into_iter()
            .collect(),
    }
}

/// Broker keys Kafka names as a topic key's synonym though Klamm has no broker setting for
/// them (so they are only described, with the topic key's default).
fn described_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        "local.retention.bytes" => "log.local.retention.bytes",
        "local.retention.ms" => "log.local.retention.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "min.insync.replicas" => "min.insync.replicas",
        "preallocate" => "log.preallocate",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => return None,
    })
}

/// The broker keys that together decide a broker key's value, highest precedence first.
pub fn broker_synonyms(key: &str) -> Vec<&str> {
    match key {
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => {
            let all = [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours",
            ];
            all.iter().skip_while(|k| **k != key).copied().collect()
        }
        "log.roll.ms" | "log.roll.hours" => {
            let all = ["log.roll.ms", "log.roll.hours"];
            all.iter().skip_while(|k| **k != key).copied().collect()
        }
        // log.dirs falls back to log.dir, but Kafka does not list log.dir as its synonym.
        other => vec![other],
    }
}

/// Which broker a BROKER resource names: `Ok(true)` for this node, `Ok(false)` for the
/// cluster-wide default (the empty name).
pub fn broker_resource(name: &str, broker: &BrokerConfig) -> Result<bool, (ResponseError, String)> {
    if name.is_empty() {
        return Ok(false);
    }
    let node = broker.node_id();
    match name.trim().parse::<i32>() {
        Ok(id) if id == node => Ok(true),
        Ok(id) => Err((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {node} or empty string, but received {id}"),
        )),
        Err(_) => Err((
            ResponseError::InvalidRequest,
            format!("Broker id must be an integer, but it is: {name}"),
        )),
    }
}

/// Which dynamic level an alteration of a BROKER resource names: this node's id or the empty
/// name (the cluster-wide default). Kafka's alter path words its errors differently from
/// DescribeConfigs'.
pub fn alter_level(name: &str, broker: &BrokerConfig) -> Result<Level, (ResponseError, String)> {
    if name.is_empty() {
        return Ok(Level::ClusterDefault);
    }
    let node = broker.node_id();
    match name.parse::<i32>() {
        Ok(id) if id == node => Ok(Level::Broker),
        Ok(_) => Err((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {node}, but received {name}"),
        )),
        Err(_) => Err((
            ResponseError::InvalidRequest,
            format!("Node id must be an integer, but it is: {name}"),
        )),
    }
}

/// Kafka's error code for a refused change of dynamic broker configs.
pub fn dynamic_failure(e: DynamicError) -> (ResponseError, String) {
    let code = match &e {
        DynamicError::UnknownKey(_) | DynamicError::NotAList { .. } => ResponseError::InvalidConfig,
        DynamicError::Storage(_) => ResponseError::KafkaStorageError,
        // Kafka wraps every other configuration error in INVALID_REQUEST.
        DynamicError::ReadOnly(_)
        | DynamicError::InvalidValue { .. }
        | DynamicError::Reconfiguration(_) => ResponseError::InvalidRequest,
    };
    (code, e.to_string())
}

/// The error for a resource type these APIs do not handle.
pub fn unsupported_resource(resource_type: i8) -> (ResponseError, String) {
    match resource_type {
        RESOURCE_BROKER_LOGGER => (
            ResponseError::InvalidRequest,
            "Broker loggers are not configurable on this broker; set RUST_LOG at start-up instead"
                .to_string(),
        ),
        t => (
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {t}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_in_precedence_order() {
        assert_eq!(
            topic_synonyms("retention.ms"),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(topic_synonyms("max.message.bytes"), ["message.max.bytes"]);
        assert_eq!(
            topic_synonyms("delete.retention.ms"),
            ["log.cleaner.delete.retention.ms"]
        );
        assert_eq!(topic_synonyms("preallocate"), ["log.preallocate"]);
        assert!(topic_synonyms("segment.jitter.ms").is_empty());
        assert_eq!(
            broker_synonyms("log.retention.minutes"),
            ["log.retention.minutes", "log.retention.hours"]
        );
        assert_eq!(broker_synonyms("num.partitions"), ["num.partitions"]);
    }

    #[test]
    fn broker_names() {
        let broker = BrokerConfig::from_pairs(Default::default()).unwrap();
        assert_eq!(broker_resource("", &broker), Ok(false));
        assert_eq!(broker_resource("1", &broker), Ok(true));
        assert!(broker_resource("2", &broker).is_err());
        assert!(broker_resource("x", &broker).is_err());
        assert_eq!(alter_level("", &broker), Ok(Level::ClusterDefault));
        assert_eq!(alter_level("1", &broker), Ok(Level::Broker));
        let (code, message) = alter_level("2", &broker).unwrap_err();
        assert_eq!(code, ResponseError::InvalidRequest);
        assert_eq!(message, "Unexpected broker id, expected 1, but received 2");
        assert!(alter_level("x", &broker).is_err());
    }
}
