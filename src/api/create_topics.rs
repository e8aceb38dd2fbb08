//! CreateTopics: Kafka's name, partition, replication and config rules on a single broker.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

// CreateTopics v5+ reports each config's source as DescribeConfigs does.
use super::configs::{
    topic_synonyms, SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER,
    SOURCE_DYNAMIC_TOPIC as SOURCE_TOPIC, SOURCE_STATIC_BROKER,
};
use super::RequestContext;
use crate::topics::config::{effective, TOPIC_DEFS};
use crate::topics::NewTopic;
use uuid::Uuid;

pub async fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            // One answer per name, as Kafka gives: results are keyed by name.
            if results
                .iter()
                .any(|r: &CreatableTopicResult| r.name == t.name)
            {
                continue;
            }
            results.push(fail(
                result,
                ResponseError::InvalidRequest,
                format!("Create topics request contains multiple entries for the topic {name}"),
            ));
            continue;
        }
        let spec = NewTopic {
            name,
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignment: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        };
        let topics = ctx.shared.topics();
        let outcome = if req.validate_only {
            topics
                .check(&spec)
                // Kafka's controller assigns an id while validating, and reports it.
                .map(|(partitions, configs)| (Uuid::new_v4(), partitions, configs))
        } else {
            topics
                .create(spec)
                .await
                .map(|t| (t.id, t.partitions.len() as i32, t.configs.clone()))
        };
        match outcome {
            Ok((id, partitions, configs)) => {
                results.push(created(ctx, result, id, partitions, &configs))
            }
            Err(e) => results.push(fail(result, e.code, e.message)),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn fail(
    result: CreatableTopicResult,
    error: ResponseError,
    message: String,
) -> CreatableTopicResult {
    result
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_topic_config_error_code(0)
}

fn created(
    ctx: &RequestContext<'_>,
    result: CreatableTopicResult,
    id: Uuid,
    partitions: i32,
    overrides: &BTreeMap<String, String>,
) -> CreatableTopicResult {
    let broker = ctx.shared.config();
    let configs = TOPIC_DEFS
        .iter()
        .map(|def| {
            let value = effective(def.name, overrides, &broker).map(|v| v.render());
            let synonyms = topic_synonyms(def.name);
            let set_in = |values: &BTreeMap<String, String>| {
                synonyms.iter().any(|b| values.contains_key(*b))
            };
            let dynamic = broker.dynamic();
            let source = if overrides.contains_key(def.name) {
                SOURCE_TOPIC
            } else if set_in(&dynamic.broker) {
                SOURCE_DYNAMIC_BROKER
            } else if set_in(&dynamic.cluster_default) {
                SOURCE_DYNAMIC_DEFAULT_BROKER
            } else if set_in(&broker.explicit) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(value.map(StrBytes::from_string))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
        })
        .collect();
    result
        .with_error_code(0)
        .with_topic_id(id)
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(Some(configs))
}
