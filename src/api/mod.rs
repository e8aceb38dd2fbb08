//! The API table and dispatch: one row per Kafka API, naming its request type, its handler and
//! the versions we advertise and serve. ApiVersions is derived from this table, dispatch uses
//! it, and the protocol tests iterate over it, so what we advertise is exactly what we serve.

mod alter_configs;
mod api_versions;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sync_group;

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request, StrBytes, VersionRange,
};

use crate::broker::Shared;
use crate::config::Listener;

/// One row of the API table.
#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub min: i16,
    pub max: i16,
    /// Lowest version actually served. Versions in `min..served_min` are advertised only
    /// because clients infer features from the range (librdkafka enables compression only if
    /// Produce v0 is listed); requests at those versions are refused as Kafka 4 refuses them.
    pub served_min: i16,
}

impl ApiSpec {
    pub fn serves(&self, version: i16) -> bool {
        (self.served_min..=self.max).contains(&version)
    }
}

/// What a handler knows about the request it is answering.
pub struct RequestContext<'a> {
    pub shared: &'a Shared,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
    /// The address this connection's listener advertises to clients.
    pub advertised: &'a Listener,
    /// The client's address, as group descriptions show it.
    pub peer: std::net::SocketAddr,
    suppress: AtomicBool,
}

impl<'a> RequestContext<'a> {
    pub fn new(
        shared: &'a Shared,
        header: &RequestHeader,
        advertised: &'a Listener,
        peer: std::net::SocketAddr,
    ) -> Self {
        RequestContext {
            shared,
            api_version: header.request_api_version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.clone(),
            advertised,
            peer,
            suppress: AtomicBool::new(false),
        }
    }

    /// The request gets no response at all (Produce with acks=0).
    pub fn suppress_response(&self) {
        self.suppress.store(true, Ordering::Relaxed);
    }

    pub fn client_id(&self) -> String {
        self.client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// The client host as Kafka shows it in group descriptions.
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// Runs a request's wait, cut short (`None`) when the broker starts shutting down.
pub async fn until_shutdown<T>(
    ctx: &RequestContext<'_>,
    wait: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut stop = ctx.shared.shutdown_signal();
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        out = wait => Some(out),
        _ = stop.changed() => None,
    }
}

/// Why a request could not be served: the connection is closed with this reason logged.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot decode {api:?} v{version} request: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("API key {0} is not served")]
    Unserved(i16),
}

/// Decodes a body at a version and returns the bytes the decoder consumed and the value
/// re-encoded.
#[cfg(test)]
pub(crate) type DecodeFn = fn(i16, &[u8]) -> Result<(usize, Vec<u8>), String>;

/// kafka-protocol's codec of one request type, as plain functions.
#[cfg(test)]
pub(crate) struct RequestCodec {
    pub key: ApiKey,
    pub decode: DecodeFn,
    /// Encodes the request type's default value.
    pub encode_default: fn(i16) -> Result<Vec<u8>, String>,
}

/// Encodes a response frame: size, response header (at the version the API requires), body.
pub fn encode_frame<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<BytesMut, String> {
    let header_version = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    Ok(buf)
}

macro_rules! api_table {
    ($( $key:ident($req:ty) => $handler:path, advertise $min:literal ..= $max:literal $(, serve from $smin:literal)? ; )*) => {
        /// Every API this broker serves.
        pub const APIS: &[ApiSpec] = &[
            $( ApiSpec { key: ApiKey::$key, min: $min, max: $max, served_min: api_table!(@smin $min $(, $smin)?) }, )*
        ];

        /// For each row: the versions kafka-protocol can decode the request at and encode the
        /// response at. Every served version must lie in both (checked by a unit test).
        pub fn codec_ranges() -> Vec<(ApiKey, VersionRange, VersionRange)> {
            vec![ $( (ApiKey::$key, <$req as Message>::VERSIONS, <<$req as Request>::Response as Message>::VERSIONS), )* ]
        }

        /// For each row, kafka-protocol's codec of its request, for tests that hold our own
        /// request layouts against it.
        #[cfg(test)]
        pub(crate) fn request_codecs() -> Vec<RequestCodec> {
            vec![ $( RequestCodec {
                key: ApiKey::$key,
                decode: |version, bytes| {
                    let mut buf = Bytes::copy_from_slice(bytes);
                    let request = <$req>::decode(&mut buf, version).map_err(|e| e.to_string())?;
                    let used = bytes.len() - buf.len();
                    let mut out = BytesMut::new();
                    request.encode(&mut out, version).map_err(|e| e.to_string())?;
                    Ok((used, out.to_vec()))
                },
                encode_default: |version| {
                    let mut out = BytesMut::new();
                    <$req>::default().encode(&mut out, version).map_err(|e| e.to_string())?;
                    Ok(out.to_vec())
                },
            }, )* ]
        }

        /// A decoded request body of one of the APIs in the table.
        #[derive(Debug)]
        pub enum RequestBody {
            $( $key($req), )*
        }

        /// Checks and decodes a request body: everything between the header and the handler.
        /// The crate trusts the counts on the wire; nothing reaches it that our own walk of the
        /// body has not found to fit in its bytes.
        pub fn decode_body(
            key: ApiKey,
            version: i16,
            mut body: Bytes,
        ) -> Result<RequestBody, DispatchError> {
            let decode_error = |reason: String| DispatchError::Decode { api: key, version, reason };
            crate::codec::precheck(key, version, &body).map_err(|e| decode_error(e.to_string()))?;
            match key {
                $( ApiKey::$key => <$req>::decode(&mut body, version)
                    .map(RequestBody::$key)
                    .map_err(|e| decode_error(e.to_string())), )*
                _ => Err(DispatchError::Unserved(key as i16)),
            }
        }

        /// Runs the handler of a decoded request and encodes its response frame (`None` when
        /// the request gets no response).
        pub async fn dispatch(
            ctx: &RequestContext<'_>,
            request: RequestBody,
        ) -> Result<Option<BytesMut>, DispatchError> {
            let version = ctx.api_version;
            match request {
                $( RequestBody::$key(request) => {
                    let response = $handler(ctx, request).await;
                    if ctx.suppress.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    encode_frame(ctx.correlation_id, version, &response)
                        .map(Some)
                        .map_err(|reason| DispatchError::Encode { api: ApiKey::$key, version, reason })
                } )*
            }
        }
    };
    (@smin $min:literal) => { $min };
    (@smin $min:literal, $smin:literal) => { $smin };
}

api_table! {
    Produce(ProduceRequest) => produce::handle, advertise 0..=13, serve from 3;
    Fetch(FetchRequest) => fetch::handle, advertise 4..=18;
    ListOffsets(ListOffsetsRequest) => list_offsets::handle, advertise 1..=10;
    Metadata(MetadataRequest) => metadata::handle, advertise 0..=13;
    OffsetCommit(OffsetCommitRequest) => offset_commit::handle, advertise 2..=9;
    OffsetFetch(OffsetFetchRequest) => offset_fetch::handle, advertise 1..=9;
    FindCoordinator(FindCoordinatorRequest) => find_coordinator::handle, advertise 0..=6;
    JoinGroup(JoinGroupRequest) => join_group::handle, advertise 0..=9;
    Heartbeat(HeartbeatRequest) => heartbeat::handle, advertise 0..=4;
    LeaveGroup(LeaveGroupRequest) => leave_group::handle, advertise 0..=5;
    SyncGroup(SyncGroupRequest) => sync_group::handle, advertise 0..=5;
    DescribeGroups(DescribeGroupsRequest) => describe_groups::handle, advertise 0..=6;
    ListGroups(ListGroupsRequest) => list_groups::handle, advertise 0..=5;
    ApiVersions(ApiVersionsRequest) => api_versions::handle, advertise 0..=4;
    CreateTopics(CreateTopicsRequest) => create_topics::handle, advertise 2..=7;
    DeleteTopics(DeleteTopicsRequest) => delete_topics::handle, advertise 1..=6;
    InitProducerId(InitProducerIdRequest) => init_producer_id::handle, advertise 0..=5;
    DeleteRecords(DeleteRecordsRequest) => delete_records::handle, advertise 0..=2;
    DeleteGroups(DeleteGroupsRequest) => delete_groups::handle, advertise 0..=2;
    OffsetDelete(OffsetDeleteRequest) => offset_delete::handle, advertise 0..=0;
    DescribeConfigs(DescribeConfigsRequest) => describe_configs::handle, advertise 1..=4;
    AlterConfigs(AlterConfigsRequest) => alter_configs::handle, advertise 0..=2;
    DescribeLogDirs(DescribeLogDirsRequest) => describe_log_dirs::handle, advertise 1..=4;
    CreatePartitions(CreatePartitionsRequest) => create_partitions::handle, advertise 0..=3;
    ElectLeaders(ElectLeadersRequest) => elect_leaders::handle, advertise 0..=2;
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest) => incremental_alter_configs::handle, advertise 0..=1;
    DescribeCluster(DescribeClusterRequest) => describe_cluster::handle, advertise 0..=2;
    DescribeTopicPartitions(DescribeTopicPartitionsRequest) => describe_topic_partitions::handle, advertise 0..=0;
}

/// The table row for an API key, if we serve it.
pub fn spec(key: ApiKey) -> Option<&'static ApiSpec> {
    APIS.iter().find(|s| s.key == key)
}

pub use api_versions::unsupported_version_response;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_are_within_the_codec() {
        for (key, req, resp) in codec_ranges() {
            let spec = spec(key).unwrap();
            for v in spec.served_min..=spec.max {
                assert!(
                    req.min <= v && v <= req.max,
                    "{key:?} v{v}: request codec serves {req}"
                );
                assert!(
                    resp.min <= v && v <= resp.max,
                    "{key:?} v{v}: response codec serves {resp}"
                );
            }
        }
    }
}
