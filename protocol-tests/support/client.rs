//! Requests many tests make (create a topic, produce a batch, fetch from an offset) and what
//! the broker process costs (resident memory, open descriptors), read from /proc.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{Conn, Klamm};

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// An uncompressed RecordBatch v2 with one keyless record per value.
pub fn batch(values: &[&[u8]]) -> Bytes {
    batch_with(values, false, Compression::None)
}

/// A RecordBatch v2 with one record per value, keyed `k0`, `k1`, … when `keyed`.
pub fn batch_with(values: &[&[u8]], keyed: bool, compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            record(
                i,
                1_700_000_000_000 + i as i64,
                keyed.then(|| Bytes::from(format!("k{i}"))),
                Some(Bytes::copy_from_slice(v)),
            )
        })
        .collect();
    encode_batch(&records, compression)
}

/// Record `i` of a batch from a producer without an id: offset delta `i`, creation time
/// `timestamp`, no headers. kafka-protocol starts a new batch whenever offset - sequence
/// changes, so the sequence follows the offset.
pub fn record(i: usize, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: i as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` as one RecordBatch v2.
pub fn encode_batch(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode a record batch");
    buf.freeze()
}

/// A topic for CreateTopics: `partitions` partitions, replication factor 1, these overrides.
pub fn creatable_topic(topic: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        )
}

/// Creates a topic (CreateTopics v7) and asserts it was created.
pub fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![creatable_topic(topic, partitions, &[])]);
    let resp = conn.call(&req, 7);
    assert_eq!(resp.topics[0].error_code, 0, "create topic {topic}");
}

/// A Produce v9 request (acks=1) of one batch to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces one batch and returns the partition's error code and base offset.
pub fn produce(conn: &mut Conn, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let resp = conn.call(&produce_request(topic, partition, records), 9);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A Fetch v12 request (no wait) for `(partition, offset)` pairs of one topic, with a response
/// limit and a per-partition limit.
pub fn fetch_request(
    topic: &str,
    from: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                from.iter()
                    .map(|&(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_current_leader_epoch(-1)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// A whole request frame (size, header v1/v2 as the version needs, body), for tests that write
/// to a socket themselves.
pub fn request_frame<R: Request>(req: &R, version: i16, correlation: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("klamm-tests")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("encode a request header");
    req.encode(&mut body, version).expect("encode a request");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

impl Klamm {
    /// The broker's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// A memory figure of the broker from `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`,
    /// `VmHWM`, ...), in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    /// Descriptors the broker has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// The earliest offset (ListOffsets v7, timestamp -2) of a partition: its log start.
pub fn earliest_offset(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = kafka_protocol::messages::ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-2)])]);
    let resp = conn.call(&req, 7);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "list offsets of {topic}-{partition}");
    p.offset
}
