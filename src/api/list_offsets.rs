//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), and the
//! first offset at or after a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::topics::partition::{check_leader_epoch, LEADER_EPOCH};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

fn answer(
    index: i32,
    error: Option<ResponseError>,
    offset: i64,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_offset(offset)
        .with_timestamp(timestamp)
        // No offset found (a time after every record, an empty partition): no epoch either.
        .with_leader_epoch(if error.is_none() && offset >= 0 {
            LEADER_EPOCH
        } else {
            -1
        })
}

/// Whether `timestamp` means something at `version`: times from 0, latest and earliest always,
/// each later special value from the version that introduced it. Kafka answers anything else
/// UNSUPPORTED_VERSION (earliest pending upload, -6, needs v11, beyond what we serve).
fn valid_at(timestamp: i64, version: i16) -> bool {
    match timestamp {
        0.. | LATEST | EARLIEST => true,
        MAX_TIMESTAMP => version >= 7,
        EARLIEST_LOCAL => version >= 8,
        LATEST_TIERED => version >= 9,
        _ => false,
    }
}

pub async fn handle(ctx: &RequestContext<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = ctx.shared.topics();
    let mut out: Vec<ListOffsetsTopicResponse> = Vec::with_capacity(req.topics.len());
    for rt in req.topics {
        let topic = topics.get(rt.name.0.as_str());
        let mut partitions = Vec::with_capacity(rt.partitions.len());
        for rp in rt.partitions {
            let index = rp.partition_index;
            let Some(p) = topic.as_ref().and_then(|t| t.partition(index)).cloned() else {
                partitions.push(answer(
                    index,
                    Some(ResponseError::UnknownTopicOrPartition),
                    -1,
                    -1,
                ));
                continue;
            };
            if let Some(e) = check_leader_epoch(rp.current_leader_epoch) {
                partitions.push(answer(index, Some(e), -1, -1));
                continue;
            }
            if !valid_at(rp.timestamp, ctx.api_version) {
                partitions.push(answer(
                    index,
                    Some(ResponseError::UnsupportedVersion),
                    -1,
                    -1,
                ));
                continue;
            }
            if let Err(e) = p.check_online() {
                partitions.push(answer(index, Some(e), -1, -1));
                continue;
            }
            let offsets = p.offsets();
            let response = match rp.timestamp {
                LATEST => answer(index, None, offsets.high_watermark, -1),
                EARLIEST | EARLIEST_LOCAL => answer(index, None, offsets.log_start_offset, -1),
                LATEST_TIERED => answer(index, None, -1, -1),
                MAX_TIMESTAMP | 0.. => {
                    let ts = rp.timestamp;
                    let found = tokio::task::spawn_blocking(move || {
                        if ts == MAX_TIMESTAMP {
                            p.max_timestamp_offset()
                        } else {
                            p.offset_for_timestamp(ts)
                        }
                    })
                    .await;
                    match found {
                        Ok(Ok(Some((offset, ts)))) => answer(index, None, offset, ts),
                        Ok(Ok(None)) => answer(index, None, -1, -1),
                        _ => answer(index, Some(ResponseError::KafkaStorageError), -1, -1),
                    }
                }
                _ => answer(index, Some(ResponseError::UnsupportedVersion), -1, -1),
            };
            partitions.push(response);
        }
        out.push(
            ListOffsetsTopicResponse::default()
                .with_name(rt.name)
                .with_partitions(partitions),
        );
    }
    if ctx.api_version < 4 {
        for p in out.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            p.leader_epoch = -1;
        }
    }
    ListOffsetsResponse::default().with_topics(out)
}
