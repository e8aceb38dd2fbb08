//! OffsetFetch: committed offsets of one group (v0–v7) or several (v8+), all partitions when
//! none are named.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::group::state::Committed;
use crate::group::valid_offsets_group_id;

type Fetched = Vec<(String, Vec<(i32, Option<Committed>)>)>;

fn fetch(
    ctx: &RequestContext<'_>,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Fetched, ResponseError> {
    if !valid_offsets_group_id(group) {
        return Err(ResponseError::InvalidGroupId);
    }
    let flat = wanted.map(|w| {
        w.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    });
    let mut out: Fetched = Vec::new();
    for ((topic, p), c) in ctx.shared.groups().fetch_offsets(group, flat) {
        match out.last_mut() {
            Some((t, ps)) if *t == topic => ps.push((p, c)),
            _ => out.push((topic, vec![(p, c)])),
        }
    }
    Ok(out)
}

fn offset_of(c: &Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

pub async fn handle(ctx: &RequestContext<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = ctx.api_version;
    if version < 8 {
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        return match fetch(ctx, req.group_id.0.as_str(), wanted) {
            Err(e) => OffsetFetchResponse::default().with_error_code(e.code()),
            Ok(found) => OffsetFetchResponse::default()
                .with_error_code(0)
                .with_topics(
                    found
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, c)| {
                                            let (offset, epoch, meta) = offset_of(&c);
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(if version >= 5 {
                                                    epoch
                                                } else {
                                                    -1
                                                })
                                                .with_metadata(Some(StrBytes::from_string(meta)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        };
    }
    let by_id = version >= 10;
    let topics = ctx.shared.topics();
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        let name = if by_id {
                            topics
                                .get_by_id(t.topic_id)
                                .map(|x| x.name.to_string())
                                .unwrap_or_default()
                        } else {
                            t.name.0.to_string()
                        };
                        (name, t.partition_indexes)
                    })
                    .collect()
            });
            match fetch(ctx, g.group_id.0.as_str(), wanted) {
                Err(e) => OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(e.code()),
                Ok(found) => OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0.clone()))
                    .with_topics(
                        found
                            .into_iter()
                            .map(|(t, ps)| {
                                let id = topics.get(&t).map(|x| x.id).unwrap_or_default();
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(if by_id {
                                        StrBytes::default()
                                    } else {
                                        StrBytes::from_string(t)
                                    }))
                                    .with_topic_id(if by_id { id } else { uuid::Uuid::nil() })
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, c)| {
                                                let (offset, epoch, meta) = offset_of(&c);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(StrBytes::from_string(
                                                        meta,
                                                    )))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}
