//! DeleteRecords: moves partitions' log start offsets forward (-1: to the high watermark).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::clock::now_ms;
use crate::log::LogError;

pub async fn handle(ctx: &RequestContext<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = ctx.shared.topics();
    let mut out = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = topics.get(t.name.0.as_str());
        let mut results = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let Some(partition) = topic
                .as_ref()
                .and_then(|x| x.partition(p.partition_index))
                .cloned()
            else {
                results.push(
                    result
                        .with_low_watermark(-1)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                );
                continue;
            };
            if topic.as_ref().is_some_and(|x| x.internal) {
                results.push(
                    result
                        .with_low_watermark(-1)
                        .with_error_code(ResponseError::InvalidTopicException.code()),
                );
                continue;
            }
            if let Err(e) = partition.check_online() {
                results.push(result.with_low_watermark(-1).with_error_code(e.code()));
                continue;
            }
            let offset = p.offset;
            let outcome = tokio::task::spawn_blocking(move || {
                let mut log = partition.log();
                let target = if offset == -1 {
                    log.next_offset()
                } else {
                    offset
                };
                log.delete_records(target, now_ms())
            })
            .await;
            results.push(match outcome {
                Ok(Ok(low)) => result.with_low_watermark(low).with_error_code(0),
                Ok(Err(LogError::OffsetOutOfRange { .. })) => result
                    .with_low_watermark(-1)
                    .with_error_code(ResponseError::OffsetOutOfRange.code()),
                _ => result
                    .with_low_watermark(-1)
                    .with_error_code(ResponseError::KafkaStorageError.code()),
            });
        }
        out.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(results),
        );
    }
    DeleteRecordsResponse::default().with_topics(out)
}
