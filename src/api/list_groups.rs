//! ListGroups, with the state filter (v4+) and type filter (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let mut groups: Vec<ListedGroup> = Vec::new();
    for g in ctx.shared.groups().all() {
        let g = g.lock().unwrap_or_else(|p| p.into_inner());
        let state = g.state.name();
        if !states.is_empty() && !states.contains(&state.to_ascii_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            continue;
        }
        let mut listed = ListedGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(g.id.clone())))
            .with_protocol_type(StrBytes::from_string(
                g.protocol_type.clone().unwrap_or_default(),
            ));
        if ctx.api_version >= 4 {
            listed = listed.with_group_state(StrBytes::from_static_str(state));
        }
        if ctx.api_version >= 5 {
            listed = listed.with_group_type(StrBytes::from_static_str("classic"));
        }
        groups.push(listed);
    }
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    ListGroupsResponse::default()
        .with_error_code(0)
        .with_groups(groups)
}
