//! CreatePartitions: grow topics, with new partitions on this broker (the only replica).

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::topics::names;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.as_str();
        let duplicate = seen.get(name).copied().unwrap_or(0) > 1;
        // One answer per name, as Kafka gives: results are keyed by name.
        if duplicate
            && results
                .iter()
                .any(|r: &CreatePartitionsTopicResult| r.name == t.name)
        {
            continue;
        }
        let outcome = if duplicate {
            Err((
                ResponseError::InvalidRequest,
                "Duplicate topic in request.".to_string(),
            ))
        } else if let Err(m) = names::validate(name) {
            Err((ResponseError::InvalidTopicException, m))
        } else {
            let assignment: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            ctx.shared
                .topics()
                .create_partitions(name, t.count, assignment.as_deref(), req.validate_only)
                .await
                .map(|_| ())
                .map_err(|e| (e.code, e.message))
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => result.with_error_code(0).with_error_message(None),
            Err((error, message)) => result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
