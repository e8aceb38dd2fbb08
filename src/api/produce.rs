//! Produce: validate each partition's batch, append it, and acknowledge per `acks`.
//! One partition's error never fails the others in the request.

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::clock::now_ms;
use crate::topics::partition::Partition;

fn failed(index: i32, error: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Everything up to the durability wait must stay synchronous: the connection starts its next
/// request as soon as this future is first pending, counting on the appends being done.
pub async fn handle(ctx: &RequestContext<'_>, req: ProduceRequest) -> ProduceResponse {
    let acks = req.acks;
    let by_id = ctx.api_version >= 13;
    let topics = ctx.shared.topics();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Partitions whose appends must be durable before acks=all is answered.
    let mut to_sync: Vec<(usize, usize, std::sync::Arc<Partition>, i64)> = Vec::new();
    for td in req.topic_data {
        let topic = if by_id {
            topics.get_by_id(td.topic_id)
        } else {
            topics.get(td.name.0.as_str())
        };
        let unknown = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partition_responses = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let response = if !matches!(acks, -1..=1) {
                failed(pd.index, ResponseError::InvalidRequiredAcks, None)
            } else {
                match topic.as_ref() {
                    None => failed(pd.index, unknown, None),
                    Some(t) if t.internal => failed(
                        pd.index,
                        ResponseError::InvalidTopicException,
                        Some(format!("Cannot append to internal topic {}", t.name)),
                    ),
                    Some(t) => match (t.partition(pd.index), pd.records) {
                        (None, _) => failed(pd.index, ResponseError::UnknownTopicOrPartition, None),
                        (Some(_), None) => failed(
                            pd.index,
                            ResponseError::InvalidRecord,
                            Some("null records".into()),
                        ),
                        (Some(p), Some(records)) => match p.append(&records, &t.settings, now_ms())
                        {
                            Ok(done) => {
                                if acks == -1 {
                                    to_sync.push((
                                        responses.len(),
                                        partition_responses.len(),
                                        p.clone(),
                                        done.last_offset,
                                    ));
                                }
                                PartitionProduceResponse::default()
                                    .with_index(pd.index)
                                    .with_error_code(0)
                                    .with_base_offset(done.base_offset)
                                    .with_log_append_time_ms(done.log_append_time)
                                    .with_log_start_offset(done.log_start_offset)
                            }
                            // Kafka reports the log start with record-level errors (its
                            // validator's), and -1 with errors about the batch as a whole.
                            Err(e) => failed(pd.index, e.error, Some(e.message))
                                .with_log_start_offset(if e.record_errors.is_empty() {
                                    -1
                                } else {
                                    p.offsets().log_start_offset
                                })
                                .with_record_errors(
                                    // Record-level errors exist from v8.
                                    e.record_errors
                                        .into_iter()
                                        .filter(|_| ctx.api_version >= 8)
                                        .map(|(i, m)| {
                                            BatchIndexAndErrorMessage::default()
                                                .with_batch_index(i)
                                                .with_batch_index_error_message(Some(
                                                    StrBytes::from_string(m),
                                                ))
                                        })
                                        .collect(),
                                ),
                        },
                    },
                }
            };
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_topic_id(td.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        ctx.suppress_response();
    }
    // acks=all: every partition syncs concurrently; each shares its fsync with other producers.
    let waits: Vec<_> = to_sync
        .into_iter()
        .map(|(t, p, partition, offset)| {
            (
                t,
                p,
                tokio::spawn(async move { partition.wait_durable(offset).await }),
            )
        })
        .collect();
    for (t, p, wait) in waits {
        let outcome = wait.await.unwrap_or(Err(ResponseError::KafkaStorageError));
        if let Err(error) = outcome {
            let index = responses[t].partition_responses[p].index;
            responses[t].partition_responses[p] =
                failed(index, error, Some("write could not be made durable".into()));
        }
    }
    ProduceResponse::default().with_responses(responses)
}
