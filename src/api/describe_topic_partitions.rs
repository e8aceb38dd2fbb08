//! DescribeTopicPartitions (KIP-966): topics and their partitions in name order, paged by a
//! partition limit and a cursor, as Kafka's KRaft brokers serve it.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::metadata::TOPIC_OPS;
use super::RequestContext;
use crate::topics::{names, partition::LEADER_EPOCH, Topic};

/// Kafka's `max.request.partition.size.limit` default: the most partitions in one response.
const MAX_PARTITIONS: i32 = 2000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let topics = ctx.shared.topics();
    let all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    // Topics before the cursor's were served by earlier pages.
    let names: BTreeSet<String> = if all {
        topics
            .list()
            .iter()
            .map(|t| t.name.to_string())
            .filter(|n| *n >= cursor_topic)
            .collect()
    } else {
        req.topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| *n >= cursor_topic)
            .collect()
    };
    if !all && req.cursor.is_some() && !names.contains(&cursor_topic) {
        // Kafka fails the whole request; this response has no top-level error, so every
        // requested topic carries it.
        let failed = req
            .topics
            .iter()
            .map(|t| error_topic(&t.name.0, ResponseError::InvalidRequest))
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(failed);
    }
    let node = ctx.shared.node_id();
    let mut remaining = req.response_partition_limit.min(MAX_PARTITIONS);
    let mut out = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining <= 0 {
            if remaining == 0 {
                next_cursor = Some(cursor(&name, 0));
            }
            break;
        }
        let Some(topic) = topics.get(&name) else {
            // Listing every topic skips ones deleted meanwhile; named ones get an error.
            if !all {
                let error = if names::validate(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::InvalidTopicException
                };
                out.push(error_topic(&name, error));
            }
            continue;
        };
        let start = match &req.cursor {
            Some(c) if c.topic_name.0.as_str() == name => c.partition_index.max(0),
            _ => 0,
        };
        let count = topic.partitions.len() as i32;
        let end = count.min(start.saturating_add(remaining));
        out.push(describe(&topic, start..end.max(start), node));
        if end < count {
            next_cursor = Some(cursor(&name, end));
            break;
        }
        remaining -= (end - start).max(0);
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(out)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}

fn describe(
    t: &Topic,
    range: std::ops::Range<i32>,
    node: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = range
        .filter_map(|i| t.partition(i))
        .map(|p| {
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(Vec::new())
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(t.name.to_string()))))
        .with_topic_id(t.id)
        .with_is_internal(t.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_OPS)
}

fn error_topic(name: &str, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(Uuid::nil())
        .with_is_internal(false)
}
