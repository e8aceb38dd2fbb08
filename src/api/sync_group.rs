//! SyncGroup: the leader hands out assignments; every member receives its own.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let protocol_type = req.protocol_type.as_ref().map(|s| s.to_string());
    let protocol_name = req.protocol_name.as_ref().map(|s| s.to_string());
    let syncing = ctx.shared.groups().sync(
        ctx.shared.topics(),
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        instance.as_deref(),
        req.generation_id,
        protocol_type.as_deref(),
        protocol_name.as_deref(),
        assignments,
    );
    let out = super::until_shutdown(ctx, syncing)
        .await
        .unwrap_or(Err(kafka_protocol::ResponseError::CoordinatorNotAvailable));
    let v5 = ctx.api_version >= 5;
    match out {
        Ok((ptype, pname, assignment)) => SyncGroupResponse::default()
            .with_error_code(0)
            .with_protocol_type(if v5 {
                ptype.map(StrBytes::from_string)
            } else {
                None
            })
            .with_protocol_name(if v5 {
                pname.map(StrBytes::from_string)
            } else {
                None
            })
            .with_assignment(assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(e.code()),
    }
}
