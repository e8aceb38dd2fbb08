//! AlterConfigs (the legacy form): each resource's config set replaces all of its values, as in
//! Kafka: a topic's overrides, or the dynamic broker configs of this broker or of the
//! cluster-wide default.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::configs::{
    alter_level, dynamic_failure, unsupported_resource, RESOURCE_BROKER, RESOURCE_TOPIC,
};
use super::RequestContext;
use crate::config::dynamic::DynamicError;
use crate::topics::names;

pub type Failure = (ResponseError, String);

pub async fn handle(ctx: &RequestContext<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
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
        } else if let Err(f) = unique_keys(r.configs.iter().map(|c| c.name.as_str())) {
            Err(f)
        } else {
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let mut wanted = BTreeMap::new();
                    let mut failure = None;
                    for c in &r.configs {
                        match &c.value {
                            Some(v) => {
                                wanted.insert(c.name.to_string(), v.to_string());
                            }
                            None => {
                                failure = Some((
                                    ResponseError::InvalidRequest,
                                    format!(
                                        "Null value not supported for topic configs: {}",
                                        c.name
                                    ),
                                ));
                                break;
                            }
                        }
                    }
                    match failure {
                        Some(f) => Err(f),
                        None => {
                            alter_topic(ctx, name, req.validate_only, move |_| Ok(wanted)).await
                        }
                    }
                }
                RESOURCE_BROKER => {
                    let nulls: Vec<&str> = r
                        .configs
                        .iter()
                        .filter(|c| c.value.is_none())
                        .map(|c| c.name.as_str())
                        .collect();
                    if nulls.is_empty() {
                        let wanted: BTreeMap<String, String> = r
                            .configs
                            .iter()
                            .filter_map(|c| {
                                Some((c.name.to_string(), c.value.as_ref()?.to_string()))
                            })
                            .collect();
                        alter_broker(ctx, name, req.validate_only, move |_| Ok(wanted)).await
                    } else {
                        Err((
                            ResponseError::InvalidRequest,
                            format!("Null value not supported for : {}", nulls.join(", ")),
                        ))
                    }
                }
                other => Err(unsupported_resource(other)),
            }
        };
        responses.push(response(r.resource_type, &r.resource_name, outcome));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Resources named more than once in one request; Kafka refuses every copy.
pub fn repeated_resources<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> Vec<(i8, String)> {
    let mut seen: HashMap<(i8, &str), usize> = HashMap::new();
    for r in resources {
        *seen.entry(r).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((t, name), _)| (t, name.to_string()))
        .collect()
}

/// Each key may appear once per resource.
pub fn unique_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), Failure> {
    let mut seen = std::collections::HashSet::new();
    let repeated: Vec<&str> = keys.filter(|k| !seen.insert(*k)).collect();
    if repeated.is_empty() {
        return Ok(());
    }
    Err((
        ResponseError::InvalidRequest,
        format!(
            "Error due to duplicate config keys : {}",
            repeated.join(",")
        ),
    ))
}

pub fn duplicate_resource(resource_type: i8, name: &str) -> Failure {
    (
        ResponseError::InvalidRequest,
        format!("Duplicate resource in request: type {resource_type}, name '{name}'"),
    )
}

/// Changes a topic's overrides: `change` maps the current overrides to the wanted ones.
pub async fn alter_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, crate::topics::TopicError>,
) -> Result<(), Failure> {
    names::validate(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
    ctx.shared
        .topics()
        .alter_configs(name, validate_only, change)
        .await
        .map(|_| ())
        .map_err(|e| (e.code, e.message))
}

/// Changes the dynamic broker configs named by a BROKER resource (this node's id, or the empty
/// name for the cluster-wide default): `change` maps the values set there to the wanted ones.
pub async fn alter_broker(
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, DynamicError>,
) -> Result<(), Failure> {
    let level = alter_level(name, &ctx.shared.config())?;
    ctx.shared
        .alter_broker_configs(level, validate_only, change)
        .await
        .map_err(dynamic_failure)
}

fn response(
    resource_type: i8,
    name: &StrBytes,
    outcome: Result<(), Failure>,
) -> AlterConfigsResourceResponse {
    let r = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name.clone());
    match outcome {
        Ok(()) => r.with_error_code(0).with_error_message(None),
        Err((error, message)) => r
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}
