//! OffsetCommit: member and generation checks, then the offsets are stored in
//! `__consumer_offsets`. Standalone commits (no member, generation -1) work for empty groups.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::clock::now_ms;
use crate::group::state::Committed;

/// A topic of the request with each partition's early error (unknown topic id), if any.
type Layout = Vec<(TopicName, uuid::Uuid, Vec<(i32, Option<ResponseError>)>)>;

pub async fn handle(ctx: &RequestContext<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let by_id = ctx.api_version >= 10;
    let topics = ctx.shared.topics();
    let now = now_ms();
    // Resolve names (v10 names topics by id); unknown ids answer UNKNOWN_TOPIC_ID.
    let mut layout: Layout = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        let name = if by_id {
            topics.get_by_id(t.topic_id).map(|x| x.name.to_string())
        } else {
            Some(t.name.0.to_string())
        };
        let mut parts = Vec::new();
        for p in &t.partitions {
            match &name {
                None => parts.push((p.partition_index, Some(ResponseError::UnknownTopicId))),
                Some(n) => {
                    parts.push((p.partition_index, None));
                    offsets.push((
                        (n.clone(), p.partition_index),
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                            commit_timestamp: now,
                        },
                    ));
                }
            }
        }
        layout.push((t.name.clone(), t.topic_id, parts));
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let outcome = ctx
        .shared
        .groups()
        .commit(
            topics,
            req.group_id.0.as_str(),
            req.generation_id_or_member_epoch,
            req.member_id.as_str(),
            instance.as_deref(),
            offsets,
        )
        .await;
    // Before v9 a commit with a generation to a group that does not exist is answered
    // ILLEGAL_GENERATION, as Kafka does; v9 names the problem.
    let outcome = match outcome {
        Err(ResponseError::GroupIdNotFound) if ctx.api_version < 9 => {
            Err(ResponseError::IllegalGeneration)
        }
        other => other,
    };
    let mut results = match &outcome {
        Ok(r) => r.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let responses = layout
        .into_iter()
        .map(|(name, id, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, early)| {
                    let error = match (&outcome, early) {
                        (_, Some(e)) => Some(e),
                        (Err(e), None) => Some(*e),
                        (Ok(_), None) => results.next().flatten(),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(if by_id {
                    TopicName(StrBytes::default())
                } else {
                    name
                })
                .with_topic_id(id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(responses)
}
