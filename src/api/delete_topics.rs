//! DeleteTopics, by name (all versions) and by topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::topics::{Topic, TopicError};

pub async fn handle(ctx: &RequestContext<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let topics = ctx.shared.topics();
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.api_version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let enabled = ctx.shared.config().bool("delete.topic.enable");
    let mut results = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => Some(n.0.to_string()),
            (None, false) => topics.get_by_id(id).map(|t| t.name.to_string()),
            (None, true) => None,
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        let outcome = match resolved {
            None if !id.is_nil() => Err((
                ResponseError::UnknownTopicId,
                "This server does not host this topic ID.".to_string(),
            )),
            None => Err((
                ResponseError::InvalidRequest,
                "Neither topic name nor id was given.".to_string(),
            )),
            Some(_) if !enabled => Err((
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.".to_string(),
            )),
            Some(n) => {
                let groups = ctx.shared.groups();
                // A topic created again under the name must not inherit committed offsets.
                let forget = |t: Arc<Topic>| async move {
                    groups.forget_topic(topics, &t.name).await.map_err(|e| {
                        TopicError::new(
                            ResponseError::KafkaStorageError,
                            format!("cannot remove the committed offsets of {}: {e}", t.name),
                        )
                    })
                };
                topics
                    .delete(&n, forget)
                    .await
                    .map_err(|e| (e.code, e.message))
            }
        };
        results.push(match outcome {
            Ok(t) => result
                .with_name(Some(TopicName(StrBytes::from_string(t.name.to_string()))))
                .with_topic_id(t.id)
                .with_error_code(0),
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    DeleteTopicsResponse::default().with_responses(results)
}
