//! Metadata: this broker, and the topics asked for (all when the request says so), creating
//! unknown ones when `auto.create.topics.enable` and the request allow it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::topics::{names, partition::LEADER_EPOCH, NewTopic, Topic};

/// Kafka's "authorized operations" value when they were not asked for.
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// Without ACLs every operation is allowed: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(super) const TOPIC_OPS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub(super) const CLUSTER_OPS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let shared = ctx.shared;
    let node = shared.node_id();
    let version = ctx.api_version;
    // Authorized operations exist for topics from v8, for the cluster in v8–v10 only.
    let topic_ops = if req.include_topic_authorized_operations && version >= 8 {
        TOPIC_OPS
    } else {
        OPS_NOT_REQUESTED
    };
    let cluster_ops = if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
        CLUSTER_OPS
    } else {
        OPS_NOT_REQUESTED
    };
    // v0 uses an empty list for "all topics"; later versions use null.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = shared.config().bool("auto.create.topics.enable")
        && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match wanted {
        None => {
            for t in shared.topics().list() {
                topics.push(describe(&t, node, topic_ops));
            }
        }
        Some(requested) => {
            for rt in requested {
                // A topic id wins over an empty name (the field's default), as in Kafka.
                let name = rt.name.filter(|n| !n.is_empty() || rt.topic_id.is_nil());
                let by_id = name.is_none() && !rt.topic_id.is_nil();
                let entry = match name {
                    Some(name) => lookup(ctx, name.0.as_str(), auto_create, node, topic_ops).await,
                    None if by_id => match shared.topics().get_by_id(rt.topic_id) {
                        Some(t) => describe(&t, node, topic_ops),
                        None => error_topic(None, rt.topic_id, ResponseError::UnknownTopicId),
                    },
                    None => error_topic(None, Uuid::nil(), ResponseError::InvalidRequest),
                };
                topics.push(entry);
            }
        }
    }
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(StrBytes::from_string(ctx.advertised.host.clone()))
        .with_port(ctx.advertised.port as i32)
        .with_rack(None);
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(shared.cluster_id().to_string())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

async fn lookup(
    ctx: &RequestContext<'_>,
    name: &str,
    auto_create: bool,
    node: i32,
    ops: i32,
) -> MetadataResponseTopic {
    let topics = ctx.shared.topics();
    if let Some(t) = topics.get(name) {
        return describe(&t, node, ops);
    }
    if names::validate(name).is_err() {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::InvalidTopicException,
        );
    }
    if !auto_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    if name == crate::group::OFFSETS_TOPIC {
        // As Kafka does, auto-creation makes the internal topic with the broker's settings.
        return match ctx.shared.groups().offsets_topic(topics).await {
            Ok(t) => describe(&t, node, ops),
            Err(e) => error_topic(Some(name), Uuid::nil(), e),
        };
    }
    let spec = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        ..Default::default()
    };
    match topics.create(spec).await {
        Ok(t) => describe(&t, node, ops),
        // Another request created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => match topics.get(name) {
            Some(t) => describe(&t, node, ops),
            None => error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            ),
        },
        Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
    }
}

fn describe(t: &Topic, node: i32, ops: i32) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
                .with_offline_replicas(vec![])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(t.name.to_string()))))
        .with_topic_id(t.id)
        .with_is_internal(t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(ops)
}

fn error_topic(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}
