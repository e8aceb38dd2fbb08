//! Malformed input over a raw socket closes only the offending connection: a client on another
//! connection keeps producing and consuming throughout, and nothing stored changes.

mod support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::Write;
use support::{Conn, Klamm};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A valid single-record batch built by hand, so this test shares nothing with the broker.
fn one_record_batch(value: &[u8]) -> Bytes {
    use kafka_protocol::records::*;
    let r = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&r],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(conn: &mut Conn, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("good"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    conn.call(&req, 9).responses[0].partition_responses[0].error_code
}

fn fetch_all(conn: &mut Conn) -> (i64, Bytes) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name("good"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = conn.call(&req, 12);
    let p = &resp.responses[0].partitions[0];
    (p.high_watermark, p.records.clone().unwrap_or_default())
}

fn header(key: i16, version: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&42i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let k = Klamm::start(&["socket.request.max.bytes=1048576"]);
    let mut good = Conn::connect(k.addr);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("good"))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(good.call(&req, 7).topics[0].error_code, 0);
    assert_eq!(produce(&mut good, one_record_batch(b"before")), 0);

    let size = |n: i32| n.to_be_bytes().to_vec();
    let mut garbage_header = size(10);
    garbage_header.extend_from_slice(&[0, 3, 0, 9, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]);
    let mut unknown_key = size(10);
    unknown_key.extend_from_slice(&header(999, 0));
    let mut unsupported = size(10);
    unsupported.extend_from_slice(&header(3, 99));
    let mut old_produce = size(10);
    old_produce.extend_from_slice(&header(0, 1));
    let mut truncated_body = size(12);
    truncated_body.extend_from_slice(&header(3, 1));
    truncated_body.extend_from_slice(&[0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("giant size", size(1 << 30)),
        ("negative size", size(-5)),
        ("garbage header", garbage_header),
        ("unknown api key", unknown_key),
        ("unsupported version", unsupported),
        ("produce v1", old_produce),
        ("truncated body", truncated_body),
        ("too short for a header", [size(3), vec![0, 1, 2]].concat()),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let mut bad = Conn::connect(k.addr);
        bad.stream.write_all(&bytes).unwrap();
        assert!(bad.is_closed(), "{what}: connection should be closed");
        // The other connection is unaffected and keeps working.
        assert_eq!(
            produce(
                &mut good,
                one_record_batch(format!("during {i}").as_bytes())
            ),
            0,
            "{what}"
        );
    }
    // A frame cut off mid-way: the client goes away before sending the rest.
    {
        let mut cut = Conn::connect(k.addr);
        cut.stream.write_all(&size(100)).unwrap();
        cut.stream.write_all(&[0, 3, 0, 1]).unwrap();
    }
    let (hw, records) = fetch_all(&mut good);
    assert_eq!(hw, 9);
    let mut records = records;
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    let values: Vec<String> = sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values[0], "before");
    assert_eq!(values.len(), 9);
    assert!(k.log_contains("closing connection"));
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("good"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("max.message.bytes"))
                .with_value(Some(StrBytes::from_static_str("200"))),
        ])]);
    assert_eq!(conn.call(&req, 7).topics[0].error_code, 0);
    // Flipped byte in the records: CRC mismatch → CORRUPT_MESSAGE (2).
    let mut corrupt = one_record_batch(b"x").to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(produce(&mut conn, Bytes::from(corrupt)), 2);
    // Magic 1 (old message format) → UNSUPPORTED_FOR_MESSAGE_FORMAT (43).
    let mut old = one_record_batch(b"x").to_vec();
    old[16] = 1;
    assert_eq!(produce(&mut conn, Bytes::from(old)), 43);
    // Over max.message.bytes → MESSAGE_TOO_LARGE (10).
    assert_eq!(produce(&mut conn, one_record_batch(&[7u8; 500])), 10);
    // Two batches in one partition's records → INVALID_RECORD (87).
    let two = [one_record_batch(b"a"), one_record_batch(b"b")].concat();
    assert_eq!(produce(&mut conn, Bytes::from(two)), 87);
    // Truncated batch → CORRUPT_MESSAGE.
    let whole = one_record_batch(b"abc");
    assert_eq!(produce(&mut conn, whole.slice(..whole.len() - 2)), 2);
    // Nothing was stored, and a good batch still works.
    assert_eq!(fetch_all(&mut conn).0, 0);
    assert_eq!(produce(&mut conn, one_record_batch(b"ok")), 0);
    assert_eq!(fetch_all(&mut conn).0, 1);
}
