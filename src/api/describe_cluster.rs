//! DescribeCluster: the cluster id and its one broker, which is also its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::metadata::CLUSTER_OPS;
use super::RequestContext;

/// KIP-919 endpoint types.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let node = ctx.shared.node_id();
    // An error answer carries no cluster id, as Kafka's does.
    let response = DescribeClusterResponse::default();
    // v0 has no endpoint type: it always means brokers.
    if ctx.api_version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        let (error, message) = if req.endpoint_type == ENDPOINT_CONTROLLERS {
            (
                ResponseError::MismatchedEndpointType,
                "The request was sent to a broker endpoint, not a controller endpoint.".to_string(),
            )
        } else {
            (
                ResponseError::UnsupportedEndpointType,
                format!("Unknown endpoint type {}", req.endpoint_type),
            )
        };
        return response
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)));
    }
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(node))
        .with_host(StrBytes::from_string(ctx.advertised.host.clone()))
        .with_port(ctx.advertised.port as i32)
        .with_rack(None);
    let ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPS
    } else {
        i32::MIN
    };
    response
        .with_cluster_id(StrBytes::from_string(ctx.shared.cluster_id().to_string()))
        .with_error_code(0)
        .with_error_message(None)
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![broker])
        .with_cluster_authorized_operations(ops)
}
