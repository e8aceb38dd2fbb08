//! LeaveGroup: one member (v0–v2) or a batch of members (v3+, static members by instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::RequestContext;

pub async fn handle(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.api_version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = ctx
        .shared
        .groups()
        .leave(ctx.shared.topics(), req.group_id.0.as_str(), &members)
        .await;
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(errors) if !batched => {
            LeaveGroupResponse::default().with_error_code(errors[0].map_or(0, |e| e.code()))
        }
        Ok(errors) => LeaveGroupResponse::default()
            .with_error_code(0)
            .with_members(
                req.members
                    .into_iter()
                    .zip(errors)
                    .map(|(m, e)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id)
                            .with_group_instance_id(m.group_instance_id)
                            .with_error_code(e.map_or(0, |e| e.code()))
                    })
                    .collect(),
            ),
    }
}
