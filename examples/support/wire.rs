//! Raw Kafka protocol over a blocking socket, for programs that time single requests: frames,
//! a connection with one request in flight (or a few, with `send` and `recv`), and the admin
//! requests they need first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const MEMBER_ID_REQUIRED: i16 = 79;

pub const JOIN_V: i16 = 9;
pub const SYNC_V: i16 = 5;
pub const HEARTBEAT_V: i16 = 4;
const CREATE_V: i16 = 7;
const ALTER_V: i16 = 1;
const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// One request as a length-prefixed frame.
pub fn frame<R: Request>(req: &R, version: i16, correlation: i32) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("klamm-examples")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .expect("encode header");
    req.encode(&mut buf, version).expect("encode request");
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

/// Reads one response; returns its correlation id and body.
pub fn read_response<R: Request>(stream: &mut impl Read, version: i16) -> (i32, R::Response) {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("read response size");
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut buf).expect("read response");
    let mut buf = Bytes::from(buf);
    let api = ApiKey::try_from(R::KEY).expect("api key");
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .expect("response header");
    let body = R::Response::decode(&mut buf, version).expect("response body");
    assert_eq!(buf.remaining(), 0, "{api:?} v{version}: trailing bytes");
    (header.correlation_id, body)
}

/// A blocking connection. `call` has one request in flight; `send` and `recv` pipeline.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    pub fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        Conn {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends a request without waiting; returns its correlation id.
    pub fn send<R: Request>(&mut self, req: &R, version: i16) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        self.stream
            .write_all(&frame(req, version, correlation))
            .expect("write");
        correlation
    }

    /// The next response, with its correlation id.
    pub fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        read_response::<R>(&mut self.stream, version)
    }

    pub fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let correlation = self.send(req, version);
        let (got, resp) = self.recv::<R>(version);
        assert_eq!(got, correlation, "responses out of order");
        resp
    }
}

/// Creates a topic with replication factor 1 and these configs; panics unless it was created.
pub fn create_topic(conn: &mut Conn, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(5000);
    let code = conn.call(&req, CREATE_V).topics[0].error_code;
    assert_eq!(code, 0, "create {name}");
}

/// Sets these configs of a topic (IncrementalAlterConfigs, SET); panics unless it succeeded.
pub fn set_topic_configs(conn: &mut Conn, name: &str, configs: &[(&str, &str)]) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(OP_SET)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let r = &conn.call(&req, ALTER_V).responses[0];
    assert_eq!(r.error_code, 0, "alter {name}: {:?}", r.error_message);
}

/// A consumer's subscription to one topic, as JoinGroup metadata.
pub fn subscription(topic: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(topic)])
        .encode(&mut buf, 3)
        .expect("subscription");
    buf.freeze()
}

/// Range-style assignment of a topic's `partitions` to `members` (some members get none).
pub fn assignments(
    topic: &str,
    partitions: i32,
    members: &[String],
) -> Vec<SyncGroupRequestAssignment> {
    members
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mine: Vec<i32> = (0..partitions)
                .filter(|p| *p as usize % members.len() == i)
                .collect();
            let mut buf = BytesMut::new();
            buf.put_i16(3);
            ConsumerProtocolAssignment::default()
                .with_assigned_partitions(vec![
                    consumer_protocol_assignment::TopicPartition::default()
                        .with_topic(TopicName(s(topic)))
                        .with_partitions(mine),
                ])
                .encode(&mut buf, 3)
                .expect("assignment");
            SyncGroupRequestAssignment::default()
                .with_member_id(s(id))
                .with_assignment(buf.freeze())
        })
        .collect()
}

/// A consumer's JoinGroup (v`JOIN_V`) subscribing to `topic`; `member_id` empty at first.
pub fn join_request(group: &str, member_id: &str, topic: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(topic))])
}

/// Joins `group` as its only member, assigning itself every partition of `topic`. Returns the
/// member id and generation. Needs `group.initial.rebalance.delay.ms=0` to be quick.
pub fn join_alone(conn: &mut Conn, group: &str, topic: &str, partitions: i32) -> (String, i32) {
    let first = conn.call(&join_request(group, "", topic), JOIN_V);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "first JoinGroup");
    let member_id = first.member_id.to_string();
    let joined = conn.call(&join_request(group, &member_id, topic), JOIN_V);
    assert_eq!(joined.error_code, 0, "JoinGroup");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(joined.protocol_name)
        .with_assignments(assignments(
            topic,
            partitions,
            std::slice::from_ref(&member_id),
        ));
    assert_eq!(conn.call(&sync, SYNC_V).error_code, 0, "SyncGroup");
    (member_id, joined.generation_id)
}

/// `(key, value)` records as one uncompressed RecordBatch v2 from a producer without an id,
/// each stamped `timestamp`.
pub fn record_batch(
    records: impl Iterator<Item = (Option<Bytes>, Bytes)>,
    timestamp: i64,
) -> BytesMut {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes.
            sequence: i as i32,
            timestamp,
            key,
            value: Some(value),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode a record batch");
    buf
}
