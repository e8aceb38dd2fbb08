//! FindCoordinator: this broker coordinates every group (single keys and, from v4, batches).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let error = match req.key_type {
        // Create the offsets topic now, so the group's first JoinGroup does not race it.
        GROUP => ctx
            .shared
            .groups()
            .offsets_topic(ctx.shared.topics())
            .await
            .err(),
        TRANSACTION => Some(ResponseError::CoordinatorNotAvailable),
        _ => Some(ResponseError::InvalidRequest),
    };
    let message = match (req.key_type, error) {
        (TRANSACTION, Some(_)) => Some("transactions are not supported by this broker".to_string()),
        (_, Some(e)) => Some(e.to_string()),
        _ => None,
    };
    let node = BrokerId(if error.is_some() {
        -1
    } else {
        ctx.shared.node_id()
    });
    let host = if error.is_some() {
        String::new()
    } else {
        ctx.advertised.host.clone()
    };
    let port = if error.is_some() {
        -1
    } else {
        ctx.advertised.port as i32
    };
    let code = error.map_or(0, |e| e.code());
    if ctx.api_version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.clone().map(StrBytes::from_string))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    // Kafka's single-key answer (v1–v3) names even success: "NONE".
    let message = message.or_else(|| Some("NONE".to_string()));
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port)
}
