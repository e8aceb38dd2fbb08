//! DescribeGroups: state, protocol and members (with their metadata and assignments).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::group::valid_offsets_group_id;

/// Without ACLs every group operation is allowed: READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS (the set Kafka reports).
const GROUP_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
const OPS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.api_version;
    let ops = if req.include_authorized_operations && version >= 3 {
        GROUP_OPS
    } else {
        OPS_NOT_REQUESTED
    };
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(ops);
            if !valid_offsets_group_id(id.0.as_str()) {
                return base.with_error_code(ResponseError::InvalidGroupId.code());
            }
            let Some(group) = ctx.shared.groups().get(id.0.as_str()) else {
                // Before v6 an unknown group is described as Dead with no error.
                return if version >= 6 {
                    base.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_authorized_operations(OPS_NOT_REQUESTED)
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Group {} not found.",
                            id.0.as_str()
                        ))))
                        .with_group_state(StrBytes::from_static_str("Dead"))
                } else {
                    base.with_group_state(StrBytes::from_static_str("Dead"))
                };
            };
            let g = group.lock().unwrap_or_else(|p| p.into_inner());
            let protocol = g.protocol_name.clone();
            let members = g
                .members
                .values()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.id.clone()))
                        .with_group_instance_id(if version >= 4 {
                            m.instance_id.clone().map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_client_id(StrBytes::from_string(m.client_id.clone()))
                        .with_client_host(StrBytes::from_string(m.client_host.clone()))
                        .with_member_metadata(m.metadata(protocol.as_deref()))
                        .with_member_assignment(m.assignment.clone())
                })
                .collect();
            base.with_error_code(0)
                .with_group_state(StrBytes::from_static_str(g.state.name()))
                .with_protocol_type(StrBytes::from_string(
                    g.protocol_type.clone().unwrap_or_default(),
                ))
                .with_protocol_data(StrBytes::from_string(protocol.unwrap_or_default()))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
