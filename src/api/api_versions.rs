//! ApiVersions: the versions of every API in the table.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
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

/// KIP-511: from v3 a client names its software, in letters, digits, dots and dashes that
/// start and end with a letter or digit.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() && b.iter().all(inner)
        }
        _ => false,
    }
}

pub async fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.api_version >= 3
        && !(valid_software_field(&req.client_software_name)
            && valid_software_field(&req.client_software_version))
    {
        // As Kafka answers: the error alone, no versions.
        return ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_finalized_features_epoch(-1);
    }
    // Feature tagged fields stay empty: librdkafka 2.0 (Debian's kcat) mis-parses non-empty ones.
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

/// The answer to an ApiVersions request at a version newer than ours: UNSUPPORTED_VERSION in a
/// v0 body (header v0) listing, as Kafka does, only our ApiVersions range, so the client retries
/// at a version we serve (KIP-511).
pub fn unsupported_version_response(correlation_id: i32) -> Result<BytesMut, String> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(
            api_keys()
                .into_iter()
                .filter(|k| k.api_key == ApiKey::ApiVersions as i16)
                .collect(),
        );
    encode_frame(correlation_id, 0, &body)
}

#[cfg(test)]
mod tests {
    use super::valid_software_field;

    #[test]
    fn software_names_as_kip_511_allows() {
        for ok in ["librdkafka", "apache-kafka-java", "3.9.0", "a", "x.y-z1"] {
            assert!(valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", ".", "a b", "é"] {
            assert!(!valid_software_field(bad), "{bad}");
        }
    }
}
