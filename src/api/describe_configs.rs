//! DescribeConfigs for topics (overrides, broker synonyms, defaults), for this broker (every
//! key, with its dynamic, static and default values as synonyms) and for the cluster-wide
//! default (only the keys set there dynamically).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::configs::{
    broker_resource, broker_synonyms, config_type, topic_synonyms, unsupported_resource,
    RESOURCE_BROKER, RESOURCE_TOPIC, SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER,
    SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER,
};
use super::RequestContext;
use crate::config::defs::{self, Def};
use crate::config::dynamic::is_dynamic;
use crate::config::{BrokerConfig, BROKER_DEFS};
use crate::topics::config::{effective, TOPIC_DEFS};
use crate::topics::names;

/// What the request asked to see of each config.
struct Detail {
    synonyms: bool,
    documentation: bool,
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation && ctx.api_version >= 3,
    };
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match describe(ctx, &r, &detail) {
                Ok(configs) => result
                    .with_error_code(0)
                    .with_error_message(None)
                    .with_configs(configs),
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

type Failure = (ResponseError, String);

fn describe(
    ctx: &RequestContext<'_>,
    r: &DescribeConfigsResource,
    detail: &Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    // An empty key list means every key, as a null one does.
    let wanted = |name: &str| match &r.configuration_keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    };
    let broker = ctx.shared.config();
    match r.resource_type {
        RESOURCE_TOPIC => {
            let name = r.resource_name.as_str();
            names::validate(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
            let topic = ctx.shared.topics().get(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            Ok(TOPIC_DEFS
                .iter()
                .filter(|d| wanted(d.name))
                .map(|d| topic_entry(d, &topic.configs, &broker, detail))
                .collect())
        }
        RESOURCE_BROKER => {
            if !broker_resource(r.resource_name.as_str(), &broker)? {
                // The cluster-wide default lists only the keys set there.
                return Ok(broker
                    .dynamic()
                    .cluster_default
                    .iter()
                    .filter(|(k, _)| wanted(k))
                    .filter_map(|(k, v)| defs::find(BROKER_DEFS, k).map(|d| (d, v)))
                    .map(|(d, v)| cluster_default_entry(d, v, &broker, detail))
                    .collect());
            }
            Ok(BROKER_DEFS
                .iter()
                .filter(|d| wanted(d.name))
                .map(|d| broker_entry(d, &broker, detail))
                .collect())
        }
        other => Err(unsupported_resource(other)),
    }
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.map(StrBytes::from_string))
        .with_source(source)
}

/// The broker-level synonyms of the given broker keys (the first is the key described), as
/// Kafka lists them: the per-broker dynamic values of the keys that are set there, then the
/// cluster-default dynamic ones, the static ones, and the defaults of those that have one; and
/// the list starts at the first entry for the first key, so a spelling of lower precedence
/// (`log.retention.hours` under `log.retention.ms`) shows only after an entry for the key
/// itself. `fallback` gives a default for keys this broker does not define.
fn broker_level(
    keys: &[&str],
    broker: &BrokerConfig,
    fallback: impl Fn(&str) -> Option<&'static str>,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    let dynamic = broker.dynamic();
    let layers = [
        (&dynamic.broker, SOURCE_DYNAMIC_BROKER),
        (&dynamic.cluster_default, SOURCE_DYNAMIC_DEFAULT_BROKER),
        (&broker.explicit, SOURCE_STATIC_BROKER),
    ];
    for (values, source) in layers {
        for key in keys {
            if let Some(raw) = values.get(*key) {
                out.push(synonym(key, Some(raw.clone()), source));
            }
        }
    }
    for key in keys {
        let default = match defs::find(BROKER_DEFS, key) {
            Some(d) => d.default,
            None => fallback(key),
        };
        if let Some(default) = default {
            out.push(synonym(key, Some(default.to_string()), SOURCE_DEFAULT));
        }
    }
    let first = keys.first().copied().unwrap_or_default();
    match out.iter().position(|s| s.name.as_str() == first) {
        Some(at) => out.split_off(at),
        None => Vec::new(),
    }
}

fn entry(
    def: &Def,
    value: Option<String>,
    synonyms: Vec<DescribeConfigsSynonym>,
    read_only: bool,
    detail: &Detail,
) -> DescribeConfigsResourceResult {
    // The value comes from the highest-precedence synonym.
    let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.source);
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(def.name))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_synonyms(if detail.synonyms {
            synonyms
        } else {
            Vec::new()
        })
        .with_config_type(config_type(&def.kind))
        .with_documentation(
            detail
                .documentation
                .then(|| StrBytes::from_static_str(def.doc)),
        )
}

fn topic_entry(
    def: &Def,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    detail: &Detail,
) -> DescribeConfigsResourceResult {
    let mut synonyms = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        synonyms.push(synonym(def.name, Some(v.clone()), SOURCE_DYNAMIC_TOPIC));
    }
    // Broker keys Klamm has no setting for default to the topic key's default, as in Kafka.
    synonyms.extend(broker_level(&topic_synonyms(def.name), broker, |_| {
        def.default
    }));
    let value = effective(def.name, overrides, broker).map(|v| v.render());
    entry(def, value, synonyms, false, detail)
}

fn broker_entry(
    def: &Def,
    broker: &BrokerConfig,
    detail: &Detail,
) -> DescribeConfigsResourceResult {
    let synonyms = broker_level(&broker_synonyms(def.name), broker, |_| None);
    let value = broker.value(def.name).map(|v| v.render());
    entry(def, value, synonyms, !is_dynamic(def.name), detail)
}

/// A key set as the cluster-wide default: its value there, and only synonyms from that level.
fn cluster_default_entry(
    def: &Def,
    value: &str,
    broker: &BrokerConfig,
    detail: &Detail,
) -> DescribeConfigsResourceResult {
    let mut synonyms = broker_level(&broker_synonyms(def.name), broker, |_| None);
    synonyms.retain(|s| s.source == SOURCE_DYNAMIC_DEFAULT_BROKER);
    entry(
        def,
        Some(value.to_string()),
        synonyms,
        !is_dynamic(def.name),
        detail,
    )
}
