//! Every API and version we advertise, exercised against the real broker over a socket: the
//! request is encoded by kafka-protocol at that version, served, and the response decoded at
//! that version with no bytes left over. Versions advertised but not served close the
//! connection; ApiVersions newer than ours gets the KIP-511 fallback.

mod support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use klamm::api::APIS;
use support::{Conn, Klamm};
use uuid::Uuid;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let spec = APIS.iter().find(|s| s.key == key).expect("API in table");
    spec.served_min..=spec.max
}

fn batch(values: &[&str], compression: Compression) -> Bytes {
    let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    support::client::batch_with(&values, true, compression)
}

fn create(conn: &mut Conn, topic: &str, partitions: i32) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    conn.call(&req, 7)
}

fn topic_id(conn: &mut Conn, topic: &str) -> Uuid {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    conn.call(&req, 12).topics[0].topic_id
}

#[test]
fn api_versions_lists_the_table_at_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::ApiVersions) {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), APIS.len());
        for spec in APIS {
            let a = resp
                .api_keys
                .iter()
                .find(|a| a.api_key == spec.key as i16)
                .unwrap();
            assert_eq!((a.min_version, a.max_version), (spec.min, spec.max));
        }
        // librdkafka enables compression only when Produce v0 is advertised.
        let produce = resp.api_keys.iter().find(|a| a.api_key == 0).unwrap();
        assert_eq!(produce.min_version, 0);
    }
}

#[test]
fn api_versions_newer_than_ours_gets_v0_fallback() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    // ApiVersions v99 with a v2 header: the broker must answer in a v0 body with header v0.
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&18i16.to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&7i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw.extend_from_slice(&[0u8]);
    conn.send_raw(&raw);
    let resp = conn.receive::<ApiVersionsRequest>(7, 0);
    assert_eq!(resp.error_code, 35);
    // As Kafka does, only the ApiVersions range: what the client needs to retry.
    assert_eq!(resp.api_keys.len(), 1);
    assert_eq!(resp.api_keys[0].api_key, ApiKey::ApiVersions as i16);
    // The connection stays usable: retry at a version we serve.
    let resp = conn.call(
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
            .with_client_software_version(StrBytes::from_static_str("1")),
        3,
    );
    assert_eq!(resp.error_code, 0);
}

#[test]
fn metadata_every_version() {
    let k = Klamm::start(&["auto.create.topics.enable=false"]);
    let mut conn = Conn::connect(k.addr);
    assert_eq!(create(&mut conn, "meta", 3).topics[0].error_code, 0);
    let id = topic_id(&mut conn, "meta");
    assert!(!id.is_nil());
    for v in versions(ApiKey::Metadata) {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("meta"))),
                MetadataRequestTopic::default().with_name(Some(name("absent"))),
            ]))
            // The field exists from v4; before that the broker's setting alone decides.
            .with_allow_auto_topic_creation(v < 4);
        let resp = conn.call(&req, v);
        assert_eq!(resp.brokers.len(), 1, "v{v}");
        assert_eq!(resp.brokers[0].node_id.0, 1);
        assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(resp.brokers[0].port, k.addr.port() as i32);
        let t = &resp.topics[0];
        assert_eq!(t.error_code, 0, "v{v}");
        assert_eq!(t.partitions.len(), 3);
        assert!(t
            .partitions
            .iter()
            .all(|p| p.leader_id.0 == 1 && p.replica_nodes == vec![BrokerId(1)]));
        if v >= 10 {
            assert_eq!(t.topic_id, id);
        }
        if v >= 1 {
            assert_eq!(resp.controller_id.0, 1);
        }
        if v >= 2 {
            assert!(resp.cluster_id.as_ref().is_some_and(|c| c.len() == 22));
        }
        assert_eq!(resp.topics[1].error_code, 3, "v{v}: unknown topic");
        // All topics: null list (v1+) or empty list (v0).
        let all = MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None });
        let resp = conn.call(&all, v);
        assert!(resp
            .topics
            .iter()
            .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("meta")));
    }
}

#[test]
fn metadata_auto_creates_when_allowed() {
    let k = Klamm::start(&["num.partitions=4"]);
    let mut conn = Conn::connect(k.addr);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("auto")))
        ]))
        .with_allow_auto_topic_creation(true);
    let resp = conn.call(&req, 12);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 4);
    let bad = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("bad name")))
        ]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(conn.call(&bad, 12).topics[0].error_code, 17);
}

#[test]
fn create_and_delete_topics_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::CreateTopics) {
        let topic = format!("ct-{v}");
        let req = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(&topic))
                    .with_num_partitions(2)
                    .with_replication_factor(-1),
                CreatableTopic::default()
                    .with_name(name(&format!("{topic}-rf3")))
                    .with_num_partitions(1)
                    .with_replication_factor(3),
            ])
            .with_timeout_ms(5000);
        let resp = conn.call(&req, v);
        assert_eq!(resp.topics[0].error_code, 0, "v{v}");
        assert_eq!(
            resp.topics[1].error_code, 38,
            "v{v}: INVALID_REPLICATION_FACTOR"
        );
        if v >= 5 {
            assert_eq!(resp.topics[0].num_partitions, 2);
            assert!(resp.topics[0]
                .configs
                .as_ref()
                .is_some_and(|c| !c.is_empty()));
        }
        if v >= 7 {
            assert!(!resp.topics[0].topic_id.is_nil());
        }
        let again = conn.call(&req, v);
        assert_eq!(again.topics[0].error_code, 36, "v{v}: TOPIC_ALREADY_EXISTS");
    }
    let validate = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("vo"))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_validate_only(true);
    assert_eq!(conn.call(&validate, 7).topics[0].error_code, 0);
    assert_eq!(
        topic_id(&mut conn, "vo"),
        Uuid::nil(),
        "validate_only must not create"
    );

    for v in versions(ApiKey::DeleteTopics) {
        let topic = format!("dt-{v}");
        assert_eq!(create(&mut conn, &topic, 1).topics[0].error_code, 0);
        let id = topic_id(&mut conn, &topic);
        let req = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        }
        .with_timeout_ms(5000);
        assert_eq!(conn.call(&req, v).responses[0].error_code, 0, "v{v}");
        assert_eq!(
            conn.call(&req, v).responses[0].error_code,
            if v >= 6 { 100 } else { 3 },
            "v{v}: gone"
        );
        assert!(
            !k.data_dir.join(format!("{topic}-0")).exists(),
            "deleted topic's files are removed"
        );
        assert_eq!(topic_id(&mut conn, &topic), Uuid::nil());
    }
}

#[test]
fn produce_fetch_list_offsets_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    assert_eq!(create(&mut conn, "pf", 1).topics[0].error_code, 0);
    let id = topic_id(&mut conn, "pf");
    let mut expected_offset = 0;
    for v in versions(ApiKey::Produce) {
        let compression = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ][v as usize % 5];
        let td = if v >= 13 {
            TopicProduceData::default().with_topic_id(id)
        } else {
            TopicProduceData::default().with_name(name("pf"))
        };
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![td.with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&["a", "b"], compression))),
            ])]);
        let resp = conn.call(&req, v);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{v}: {:?}", p.error_message);
        assert_eq!(p.base_offset, expected_offset, "Produce v{v}");
        expected_offset += 2;
    }
    for v in versions(ApiKey::Fetch) {
        let ft = if v >= 13 {
            FetchTopic::default().with_topic_id(id)
        } else {
            FetchTopic::default().with_topic(name("pf"))
        };
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![ft.with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(3)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
        let resp = conn.call(&req, v);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, expected_offset);
        let mut records = p.records.clone().unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        // The batch holding offset 3 starts at 2.
        assert_eq!(sets[0].records[0].offset, 2, "Fetch v{v}");
        let total: usize = sets.iter().map(|s| s.records.len()).sum();
        assert_eq!(total as i64, expected_offset - 2);
    }
    for v in versions(ApiKey::ListOffsets) {
        let part = |ts| {
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)
                .with_current_leader_epoch(-1)
        };
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("pf"))
                .with_partitions(vec![part(-1), part(-2), part(1_700_000_000_001)])]);
        let resp = conn.call(&req, v);
        let ps = &resp.topics[0].partitions;
        assert_eq!(ps[0].offset, expected_offset, "ListOffsets v{v} latest");
        assert_eq!(ps[1].offset, 0, "ListOffsets v{v} earliest");
        assert_eq!(ps[2].offset, 1, "ListOffsets v{v} by time");
        assert_eq!(ps[2].timestamp, 1_700_000_000_001);
    }
}

#[test]
fn advertised_but_unserved_versions_close_the_connection() {
    let k = Klamm::start(&[]);
    for key in APIS.iter().filter(|s| s.served_min > s.min) {
        let mut conn = Conn::connect(k.addr);
        let mut raw = BytesMut::new();
        raw.extend_from_slice(&(key.key as i16).to_be_bytes());
        raw.extend_from_slice(&key.min.to_be_bytes());
        raw.extend_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&(-1i16).to_be_bytes());
        conn.send_raw(&raw);
        assert!(conn.is_closed(), "{:?} v{}", key.key, key.min);
    }
}
