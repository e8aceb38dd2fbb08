//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's overrides or on the
//! dynamic broker configs (this broker's or the cluster-wide default), applied together or not
//! at all.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::alter_configs::{
    alter_broker, alter_topic, duplicate_resource, repeated_resources, Failure,
};
use super::configs::{unsupported_resource, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::RequestContext;
use crate::config::defs::{self, split_list, Def, Kind};
use crate::config::dynamic::DynamicError;
use crate::config::BROKER_DEFS;
use crate::topics::config::TOPIC_DEFS;
use crate::topics::TopicError;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let repeated = repeated_resources(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let name = r.resource_name.as_str();
        let outcome = if repeated.contains(&(r.resource_type, name.to_string())) {
            Err(duplicate_resource(r.resource_type, name))
        } else if let Err(f) = check_ops(&r.configs) {
            Err(f)
        } else {
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let ops = r.configs.clone();
                    alter_topic(ctx, name, req.validate_only, move |current| {
                        apply(current, &ops, TOPIC_DEFS).map_err(|e| {
                            let message = match e {
                                OpError::Unknown(key) => {
                                    format!("Unknown topic config name: {key}")
                                }
                                OpError::NotAList { verb, key } => format!(
                                    "Can't {} to key {key} because its type is not LIST.",
                                    verb.to_ascii_uppercase()
                                ),
                            };
                            TopicError::new(ResponseError::InvalidConfig, message)
                        })
                    })
                    .await
                }
                RESOURCE_BROKER => {
                    let ops = &r.configs;
                    alter_broker(ctx, name, req.validate_only, move |current| {
                        apply(current, ops, BROKER_DEFS).map_err(|e| match e {
                            OpError::Unknown(key) => DynamicError::UnknownKey(key),
                            OpError::NotAList { verb, key } => DynamicError::NotAList { verb, key },
                        })
                    })
                    .await
                }
                other => Err(unsupported_resource(other)),
            }
        };
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => response.with_error_code(0).with_error_message(None),
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Checks the operations themselves, whatever the resource: known operation codes, each key
/// at most once, and a value wherever the operation needs one.
fn check_ops(ops: &[AlterableConfig]) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    for op in ops {
        if !seen.insert(op.name.as_str()) {
            repeated.push(op.name.as_str());
        }
    }
    if !repeated.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "Error due to duplicate config keys : {}",
                repeated.join(", ")
            ),
        ));
    }
    for op in ops {
        match op.config_operation {
            OP_DELETE => {}
            OP_SET | OP_APPEND | OP_SUBTRACT if op.value.is_none() => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for : {}", op.name),
                ))
            }
            OP_SET | OP_APPEND | OP_SUBTRACT => {}
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Unknown operations type {other}"),
                ))
            }
        }
    }
    Ok(())
}

/// Why an operation cannot be applied.
#[derive(Debug, PartialEq)]
enum OpError {
    /// APPEND or SUBTRACT on a key the resource does not have.
    Unknown(String),
    /// APPEND or SUBTRACT on a key that is not a list.
    NotAList { verb: &'static str, key: String },
}

/// Applies the operations to the values set on a resource (a topic's overrides, or the dynamic
/// broker configs at one level). Lists grow from the value set, or else from Kafka's default
/// for the key, as Kafka does. Keys SET or DELETEd are checked by the caller with the result.
fn apply(
    current: &BTreeMap<String, String>,
    ops: &[AlterableConfig],
    defs: &[Def],
) -> Result<BTreeMap<String, String>, OpError> {
    let mut configs = current.clone();
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match op.config_operation {
            OP_SET => {
                configs.insert(key, value);
            }
            OP_DELETE => {
                configs.remove(&key);
            }
            op_code => {
                let append = op_code == OP_APPEND;
                let def = defs::find(defs, &key).ok_or_else(|| OpError::Unknown(key.clone()))?;
                if !matches!(def.kind, Kind::List | Kind::ListOf(_)) {
                    let verb = if append { "append" } else { "subtract" };
                    return Err(OpError::NotAList { verb, key });
                }
                let base = configs
                    .get(&key)
                    .map(String::as_str)
                    .or(def.default)
                    .unwrap_or_default();
                let mut items = split_list(base);
                for item in split_list(&value) {
                    if append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|i| *i != item);
                    }
                }
                configs.insert(key, items.join(","));
            }
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, code: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_config_operation(code)
            .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
    }

    #[test]
    fn set_delete_append_subtract() {
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_string(), "5".to_string());
        let out = apply(
            &current,
            &[
                op("retention.ms", OP_DELETE, None),
                op("segment.ms", OP_SET, Some("100")),
                op("cleanup.policy", OP_APPEND, Some("compact")),
            ],
            TOPIC_DEFS,
        )
        .unwrap();
        assert_eq!(out.get("retention.ms"), None);
        assert_eq!(out["segment.ms"], "100");
        assert_eq!(out["cleanup.policy"], "delete,compact");
        let subtract = [op("cleanup.policy", OP_SUBTRACT, Some("delete"))];
        let out = apply(&out, &subtract, TOPIC_DEFS).unwrap();
        assert_eq!(out["cleanup.policy"], "compact");
        let err = apply(
            &out,
            &[op("retention.ms", OP_APPEND, Some("1"))],
            TOPIC_DEFS,
        );
        assert_eq!(
            err,
            Err(OpError::NotAList {
                verb: "append",
                key: "retention.ms".into()
            })
        );
        let err = apply(&out, &[op("nope", OP_SUBTRACT, Some("1"))], TOPIC_DEFS);
        assert_eq!(err, Err(OpError::Unknown("nope".into())));
        // Deleting a key that is not set (or not known) changes nothing, as in Kafka.
        assert_eq!(
            apply(&out, &[op("nope", OP_DELETE, None)], TOPIC_DEFS),
            Ok(out.clone())
        );
        // The broker's list keys grow from Kafka's default too.
        let grown = apply(
            &BTreeMap::new(),
            &[op("log.cleanup.policy", OP_APPEND, Some("compact"))],
            BROKER_DEFS,
        )
        .unwrap();
        assert_eq!(grown["log.cleanup.policy"], "delete,compact");
    }

    #[test]
    fn malformed_operations() {
        assert!(check_ops(&[op("a", OP_SET, Some("1")), op("a", OP_DELETE, None)]).is_err());
        assert!(check_ops(&[op("a", OP_SET, None)]).is_err());
        assert!(check_ops(&[op("a", 9, Some("1"))]).is_err());
        assert!(check_ops(&[op("a", OP_DELETE, None), op("b", OP_APPEND, Some("x"))]).is_ok());
    }
}
