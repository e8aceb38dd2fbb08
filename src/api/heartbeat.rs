//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;

pub async fn handle(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let error = ctx.shared.groups().heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
