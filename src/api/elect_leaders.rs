//! ElectLeaders: this broker leads every partition already, so no election is ever needed.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;

/// Election types (v1+): PREFERRED and UNCLEAN.
const ELECTION_TYPES: [i8; 2] = [0, 1];

pub async fn handle(ctx: &RequestContext<'_>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    if ctx.api_version >= 1 && !ELECTION_TYPES.contains(&req.election_type) {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    // Null asks for every partition; Kafka then reports only partitions that needed an
    // election, which here is none.
    let Some(requested) = req.topic_partitions else {
        return ElectLeadersResponse::default().with_error_code(0);
    };
    let topics = ctx.shared.topics();
    let results = requested
        .into_iter()
        .map(|tp| {
            let topic = topics.get(tp.topic.0.as_str());
            let partitions = tp
                .partitions
                .iter()
                .map(|&p| {
                    let known = topic.as_ref().is_some_and(|t| t.partition(p).is_some());
                    let (error, message) = if known {
                        (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.".to_string(),
                        )
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            format!("No such topic partition {}-{p}.", tp.topic.0),
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(tp.topic)
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(0)
        .with_replica_election_results(results)
}
