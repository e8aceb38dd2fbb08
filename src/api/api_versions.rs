//! ApiVersions: the versions of every API in the table.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{encode_frame, RequestContext, APIS};

fn api_keys() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect()
}

pub async fn handle(_ctx: &RequestContext<'_>, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    // Feature tagged fields stay empty: librdkafka 2.0 (Debian's kcat) mis-parses non-empty ones.
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

/// The answer to an ApiVersions request at a version newer than ours: UNSUPPORTED_VERSION in a
/// v0 body (header v0) listing our ranges, so the client retries at a version we serve (KIP-511).
pub fn unsupported_version_response(correlation_id: i32) -> Result<BytesMut, String> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    encode_frame(correlation_id, 0, &body)
}
