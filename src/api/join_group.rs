//! JoinGroup: the first phase of a rebalance (two-step join with MEMBER_ID_REQUIRED from v4).

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::group::state::{JoinOutcome, JoinRequest};
use kafka_protocol::ResponseError;

pub async fn handle(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.api_version;
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    // v0 has no rebalance timeout: the session timeout serves for both.
    let rebalance = if version >= 1 {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: ctx.client_id(),
        client_host: ctx.client_host(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let joining = ctx
        .shared
        .groups()
        .join(ctx.shared.topics(), req.group_id.0.as_str(), join);
    // A join can wait for a whole rebalance; a shutting-down broker answers at once so the
    // client retries once it is back.
    let out = super::until_shutdown(ctx, joining)
        .await
        .unwrap_or_else(|| JoinOutcome::error(ResponseError::CoordinatorNotAvailable, &member_id));
    let members = out
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(id))
                .with_group_instance_id(if version >= 5 {
                    instance.map(StrBytes::from_string)
                } else {
                    None
                })
                .with_metadata(metadata)
        })
        .collect();
    let name = match out.protocol_name {
        Some(n) => Some(StrBytes::from_string(n)),
        // Before v7 the name is not nullable.
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(out.error.map_or(0, |e| e.code()))
        .with_generation_id(out.generation)
        .with_protocol_type(if version >= 7 {
            out.protocol_type.map(StrBytes::from_string)
        } else {
            None
        })
        .with_protocol_name(name)
        .with_leader(StrBytes::from_string(out.leader))
        .with_member_id(StrBytes::from_string(out.member_id))
        .with_members(members)
}
