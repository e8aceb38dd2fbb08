//! The admin APIs against the real broker, at every version we serve: configs (describe,
//! alter, incremental alter), partitions, cluster, log dirs, topic partitions and elections,
//! their happy paths and the ways they refuse bad input without changing anything.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use klamm::api::APIS;
use support::client::{creatable_topic, earliest_offset, encode_batch, record};
use support::{Conn, Klamm};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const MESSAGE_TOO_LARGE: i16 = 10;
const ELECTION_NOT_NEEDED: i16 = 84;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let spec = APIS.iter().find(|s| s.key == key).expect("API in table");
    spec.served_min..=spec.max
}

fn create(conn: &mut Conn, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(topic, partitions, configs)])
        .with_timeout_ms(5000);
    let resp = conn.call(&req, 7);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "create {topic}: {:?}",
        resp.topics[0].error_message
    );
}

fn partition_count(conn: &mut Conn, topic: &str) -> usize {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let resp = conn.call(&req, 12);
    assert_eq!(resp.topics[0].error_code, 0, "metadata {topic}");
    resp.topics[0].partitions.len()
}

/// Describes one resource at `version`, with synonyms and (where the version has it)
/// documentation.
fn describe(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    keys: Option<&[&str]>,
    version: i16,
) -> describe_configs_response::DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(resource))
                .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect())),
        ])
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3);
    let mut resp = conn.call(&req, version);
    assert_eq!(resp.results.len(), 1);
    resp.results.remove(0)
}

fn topic_configs(conn: &mut Conn, topic: &str) -> Vec<DescribeConfigsResourceResult> {
    let r = describe(conn, TOPIC, topic, None, 4);
    assert_eq!(r.error_code, 0, "describe {topic}: {:?}", r.error_message);
    r.configs
}

fn config(conn: &mut Conn, topic: &str, key: &str) -> DescribeConfigsResourceResult {
    topic_configs(conn, topic)
        .into_iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{topic} has no config {key}"))
}

fn value(conn: &mut Conn, topic: &str, key: &str) -> (String, i8) {
    let c = config(conn, topic, key);
    (
        c.value.map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
    )
}

/// The overrides of a topic: every config whose source is the topic itself.
fn overrides(conn: &mut Conn, topic: &str) -> Vec<(String, String)> {
    topic_configs(conn, topic)
        .into_iter()
        .filter(|c| c.config_source == SOURCE_DYNAMIC_TOPIC)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

fn alter(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
    version: i16,
) -> (i16, Option<String>) {
    let req = AlterConfigsRequest::default()
        .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(resource))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s(k))
                            .with_value(v.map(s))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only);
    let resp = conn.call(&req, version);
    assert_eq!(resp.responses.len(), 1);
    let r = &resp.responses[0];
    assert_eq!(r.resource_name.as_str(), resource);
    assert_eq!(r.resource_type, resource_type);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One incremental change: key, operation, value.
type Op<'a> = (&'a str, i8, Option<&'a str>);

fn incremental(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    ops: &[Op],
    validate_only: bool,
    version: i16,
) -> (i16, Option<String>) {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(resource))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ])
        .with_validate_only(validate_only);
    let resp = conn.call(&req, version);
    assert_eq!(resp.responses.len(), 1);
    let r = &resp.responses[0];
    assert_eq!(r.resource_name.as_str(), resource);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn create_partitions(
    conn: &mut Conn,
    topic: &str,
    count: i32,
    assignment: Option<Vec<Vec<i32>>>,
    validate_only: bool,
    version: i16,
) -> (i16, Option<String>) {
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count)
                .with_assignments(assignment.map(|a| {
                    a.into_iter()
                        .map(|ids| {
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    let resp = conn.call(&req, version);
    assert_eq!(resp.results.len(), 1);
    let r = &resp.results[0];
    assert_eq!(r.name.0.as_str(), topic);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn produce(conn: &mut Conn, topic: &str, partition: i32, values: &[&str]) {
    let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let records = support::client::batch(&values);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let resp = conn.call(&req, 9);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce {topic}-{partition}");
}

#[test]
fn describe_configs_every_version() {
    let k = Klamm::start(&["message.max.bytes=2000000", "log.retention.hours=2"]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "dc", 1, &[("retention.ms", "1234")]);
    for v in versions(ApiKey::DescribeConfigs) {
        let r = describe(&mut conn, TOPIC, "dc", None, v);
        assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
        assert_eq!(r.resource_type, TOPIC);
        assert_eq!(r.resource_name.as_str(), "dc");
        let find = |key: &str| {
            r.configs
                .iter()
                .find(|c| c.name.as_str() == key)
                .unwrap_or_else(|| panic!("v{v}: no {key}"))
        };
        // A topic override: its own synonym first, then the broker's from the key retention.ms
        // stands for (log.retention.ms) on. As in Kafka, log.retention.hours, a spelling of
        // lower precedence, is not listed while log.retention.ms itself is unset.
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1234"), "v{v}");
        assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC, "v{v}");
        assert!(!retention.read_only && !retention.is_sensitive);
        let syn: Vec<(&str, Option<&str>, i8)> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![("retention.ms", Some("1234"), SOURCE_DYNAMIC_TOPIC)],
            "v{v}"
        );
        // Set on the broker only.
        let max = find("max.message.bytes");
        assert_eq!(max.value.as_deref(), Some("2000000"), "v{v}");
        assert_eq!(max.config_source, SOURCE_STATIC_BROKER, "v{v}");
        // Neither: Kafka's default.
        let segment = find("segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1073741824"), "v{v}");
        assert_eq!(segment.config_source, SOURCE_DEFAULT, "v{v}");
        if v >= 3 {
            assert_eq!(retention.config_type, 5, "LONG");
            assert_eq!(segment.config_type, 3, "INT");
            assert_eq!(find("cleanup.policy").config_type, 7, "LIST");
            assert_eq!(find("preallocate").config_type, 1, "BOOLEAN");
            assert_eq!(find("min.cleanable.dirty.ratio").config_type, 6, "DOUBLE");
            assert_eq!(find("message.timestamp.type").config_type, 2, "STRING");
            assert!(retention
                .documentation
                .as_ref()
                .is_some_and(|d| !d.is_empty()));
        }

        // Only the keys asked for.
        let r = describe(&mut conn, TOPIC, "dc", Some(&["segment.ms", "nope"][..]), v);
        let names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["segment.ms"], "v{v}");

        let r = describe(&mut conn, TOPIC, "missing", None, v);
        assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
        assert!(r.configs.is_empty());

        // This broker: its static configuration; keys Kafka updates at run time are not
        // read-only.
        let r = describe(&mut conn, BROKER, "1", None, v);
        assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
        let max = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "message.max.bytes")
            .expect("message.max.bytes");
        assert_eq!(max.value.as_deref(), Some("2000000"));
        assert_eq!(max.config_source, SOURCE_STATIC_BROKER);
        assert!(!max.read_only);
        let partitions = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "num.partitions")
            .expect("num.partitions");
        assert_eq!(partitions.value.as_deref(), Some("1"));
        assert_eq!(partitions.config_source, SOURCE_DEFAULT);
        assert!(partitions.read_only);

        // The cluster-wide default has no dynamic configs; other brokers do not exist.
        let r = describe(&mut conn, BROKER, "", None, v);
        assert_eq!((r.error_code, r.configs.len()), (0, 0), "v{v}");
        let r = describe(&mut conn, BROKER, "7", None, v);
        assert_eq!(r.error_code, INVALID_REQUEST, "v{v}");
        let r = describe(&mut conn, BROKER_LOGGER, "1", None, v);
        assert_eq!(r.error_code, INVALID_REQUEST, "v{v}");
    }
}

#[test]
fn alter_configs_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::AlterConfigs) {
        let t = format!("ac{v}");
        create(&mut conn, &t, 1, &[("segment.ms", "100000")]);
        let ok = alter(
            &mut conn,
            TOPIC,
            &t,
            &[
                ("retention.ms", Some("4321")),
                ("cleanup.policy", Some("compact")),
            ],
            false,
            v,
        );
        assert_eq!(ok, (0, None), "v{v}");
        // The whole override set is replaced: segment.ms is back to its default.
        assert_eq!(
            overrides(&mut conn, &t),
            vec![
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("retention.ms".to_string(), "4321".to_string()),
            ],
            "v{v}"
        );
        assert_eq!(value(&mut conn, &t, "segment.ms").1, SOURCE_DEFAULT);

        let before = overrides(&mut conn, &t);
        let (code, message) = alter(
            &mut conn,
            TOPIC,
            &t,
            &[("retention.ms", Some("soon"))],
            false,
            v,
        );
        assert_eq!(code, INVALID_CONFIG, "v{v}");
        assert!(message.is_some_and(|m| m.contains("retention.ms")));
        let (code, message) = alter(
            &mut conn,
            TOPIC,
            &t,
            &[("no.such.key", Some("1"))],
            false,
            v,
        );
        assert_eq!(code, INVALID_CONFIG, "v{v}");
        assert!(message.is_some_and(|m| m.contains("no.such.key")));
        let (code, _) = alter(&mut conn, TOPIC, &t, &[("retention.ms", None)], false, v);
        assert_eq!(code, INVALID_REQUEST, "v{v}");
        let twice = [("retention.ms", Some("1")), ("retention.ms", Some("2"))];
        let (code, _) = alter(&mut conn, TOPIC, &t, &twice, false, v);
        assert_eq!(code, INVALID_REQUEST, "v{v}");
        assert_eq!(
            overrides(&mut conn, &t),
            before,
            "v{v}: refused changes change nothing"
        );

        // validate_only checks but changes nothing.
        let ok = alter(
            &mut conn,
            TOPIC,
            &t,
            &[("retention.ms", Some("1"))],
            true,
            v,
        );
        assert_eq!(ok, (0, None), "v{v}");
        let (code, _) = alter(
            &mut conn,
            TOPIC,
            &t,
            &[("retention.ms", Some("x"))],
            true,
            v,
        );
        assert_eq!(code, INVALID_CONFIG, "v{v}");
        assert_eq!(overrides(&mut conn, &t), before, "v{v}: validate_only");

        let (code, _) = alter(
            &mut conn,
            TOPIC,
            "missing",
            &[("retention.ms", Some("1"))],
            false,
            v,
        );
        assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");

        // A read-only broker key is refused with a reason; an empty set changes nothing.
        let (code, message) = alter(
            &mut conn,
            BROKER,
            "1",
            &[("num.partitions", Some("3"))],
            false,
            v,
        );
        assert_eq!(code, INVALID_REQUEST, "v{v}");
        assert!(message.is_some_and(|m| m.contains("num.partitions")));
        assert_eq!(alter(&mut conn, BROKER, "1", &[], false, v), (0, None));
        let (code, _) = alter(&mut conn, BROKER, "9", &[], false, v);
        assert_eq!(code, INVALID_REQUEST, "v{v}");
    }
}

#[test]
fn incremental_alter_configs_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let t = format!("iac{v}");
        create(&mut conn, &t, 1, &[("segment.ms", "100000")]);
        let ok = incremental(
            &mut conn,
            TOPIC,
            &t,
            &[
                ("retention.ms", SET, Some("98765")),
                ("cleanup.policy", APPEND, Some("compact")),
            ],
            false,
            v,
        );
        assert_eq!(ok, (0, None), "v{v}");
        // Other overrides stay.
        assert_eq!(
            value(&mut conn, &t, "segment.ms"),
            ("100000".into(), SOURCE_DYNAMIC_TOPIC)
        );
        assert_eq!(
            value(&mut conn, &t, "retention.ms"),
            ("98765".into(), SOURCE_DYNAMIC_TOPIC)
        );
        // APPEND starts from the default, "delete".
        assert_eq!(
            value(&mut conn, &t, "cleanup.policy"),
            ("delete,compact".into(), SOURCE_DYNAMIC_TOPIC)
        );
        let ok = incremental(
            &mut conn,
            TOPIC,
            &t,
            &[
                ("cleanup.policy", SUBTRACT, Some("delete")),
                ("segment.ms", DELETE, None),
            ],
            false,
            v,
        );
        assert_eq!(ok, (0, None), "v{v}");
        assert_eq!(value(&mut conn, &t, "cleanup.policy").0, "compact");
        assert_eq!(value(&mut conn, &t, "segment.ms").1, SOURCE_DEFAULT);

        let before = overrides(&mut conn, &t);
        let refused: [(&[Op], i16); 6] = [
            (&[("retention.ms", SET, Some("-5"))], INVALID_CONFIG),
            (&[("max.message.bytes", SET, Some("big"))], INVALID_CONFIG),
            (&[("no.such.key", SET, Some("1"))], INVALID_CONFIG),
            (&[("retention.ms", APPEND, Some("1"))], INVALID_CONFIG),
            (
                &[
                    ("retention.ms", SET, Some("1")),
                    ("retention.ms", DELETE, None),
                ],
                INVALID_REQUEST,
            ),
            // The good change is not applied when another in the same resource fails.
            (
                &[
                    ("retention.ms", SET, Some("1")),
                    ("segment.bytes", SET, Some("1")),
                ],
                INVALID_CONFIG,
            ),
        ];
        for (ops, expected) in refused {
            let (code, message) = incremental(&mut conn, TOPIC, &t, ops, false, v);
            assert_eq!(code, expected, "v{v} {ops:?}: {message:?}");
            assert!(message.is_some());
        }
        assert_eq!(
            overrides(&mut conn, &t),
            before,
            "v{v}: refused changes change nothing"
        );

        let ok = incremental(
            &mut conn,
            TOPIC,
            &t,
            &[("retention.ms", SET, Some("1"))],
            true,
            v,
        );
        assert_eq!(ok, (0, None), "v{v}");
        assert_eq!(overrides(&mut conn, &t), before, "v{v}: validate_only");

        let (code, _) = incremental(
            &mut conn,
            TOPIC,
            "missing",
            &[("retention.ms", DELETE, None)],
            false,
            v,
        );
        assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
        let (code, _) = incremental(
            &mut conn,
            BROKER,
            "1",
            &[("num.partitions", SET, Some("2"))],
            false,
            v,
        );
        assert_eq!(code, INVALID_REQUEST, "v{v}");
        let (code, _) = incremental(
            &mut conn,
            BROKER,
            "",
            &[("num.partitions", DELETE, None)],
            false,
            v,
        );
        assert_eq!(code, 0, "v{v}: nothing dynamic to delete");
    }
}

#[test]
fn altered_configs_survive_restart_and_take_effect() {
    let mut k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "keep", 1, &[]);
    let ok = incremental(
        &mut conn,
        TOPIC,
        "keep",
        &[
            ("retention.ms", SET, Some("3600000")),
            ("max.message.bytes", SET, Some("200")),
        ],
        false,
        1,
    );
    assert_eq!(ok, (0, None));
    // The new limit applies at once.
    let big = "x".repeat(400);
    let records = encode_batch(
        &[record(0, 1_700_000_000_000, None, Some(Bytes::from(big)))],
        Compression::None,
    );
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("keep"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = conn.call(&req, 9);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 10,
        "MESSAGE_TOO_LARGE under the new max.message.bytes"
    );
    let (code, _) = create_partitions(&mut conn, "keep", 3, None, false, 3);
    assert_eq!(code, 0);

    k.restart();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(
        value(&mut conn, "keep", "retention.ms"),
        ("3600000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(value(&mut conn, "keep", "max.message.bytes").0, "200");
    assert_eq!(partition_count(&mut conn, "keep"), 3);
}

#[test]
fn create_partitions_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::CreatePartitions) {
        let t = format!("cp{v}");
        create(&mut conn, &t, 2, &[]);
        assert_eq!(
            create_partitions(&mut conn, &t, 3, None, false, v),
            (0, None),
            "v{v}"
        );
        assert_eq!(partition_count(&mut conn, &t), 3);
        produce(&mut conn, &t, 2, &["new"]);

        for count in [2, 3, 0, -1] {
            let (code, message) = create_partitions(&mut conn, &t, count, None, false, v);
            assert_eq!(code, INVALID_PARTITIONS, "v{v} to {count}: {message:?}");
        }
        // validate_only checks but adds nothing.
        assert_eq!(
            create_partitions(&mut conn, &t, 5, None, true, v),
            (0, None)
        );
        let (code, _) = create_partitions(&mut conn, &t, 1, None, true, v);
        assert_eq!(code, INVALID_PARTITIONS);
        assert_eq!(partition_count(&mut conn, &t), 3, "v{v}: state unchanged");

        // Manual assignment: to this node only, one list per new partition.
        let (code, _) = create_partitions(&mut conn, &t, 5, Some(vec![vec![1]]), false, v);
        assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "v{v}");
        let (code, _) = create_partitions(&mut conn, &t, 4, Some(vec![vec![2]]), false, v);
        assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "v{v}");
        assert_eq!(partition_count(&mut conn, &t), 3);
        let ok = create_partitions(&mut conn, &t, 5, Some(vec![vec![1], vec![1]]), false, v);
        assert_eq!(ok, (0, None), "v{v}");
        assert_eq!(partition_count(&mut conn, &t), 5);

        let (code, _) = create_partitions(&mut conn, "missing", 4, None, false, v);
        assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    }
    // The same topic twice in one request is refused for both.
    let topic = create_partitions_request::CreatePartitionsTopic::default()
        .with_name(name("cp0"))
        .with_count(9);
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![topic.clone(), topic])
        .with_timeout_ms(5000);
    let resp = conn.call(&req, 3);
    assert!(resp.results.iter().all(|r| r.error_code == INVALID_REQUEST));
    assert_eq!(partition_count(&mut conn, "cp0"), 5);
}

#[test]
fn describe_cluster_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let metadata = conn.call(&MetadataRequest::default().with_topics(Some(vec![])), 12);
    let cluster_id = metadata.cluster_id.expect("cluster id").to_string();
    for v in versions(ApiKey::DescribeCluster) {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.cluster_id.as_str(), cluster_id);
        assert_eq!(resp.controller_id, BrokerId(1));
        assert_eq!(resp.brokers.len(), 1);
        let b = &resp.brokers[0];
        assert_eq!(b.broker_id, BrokerId(1));
        assert_eq!(b.host.as_str(), k.addr.ip().to_string());
        assert_eq!(b.port, k.addr.port() as i32);
        assert!(resp.cluster_authorized_operations > 0);
        if v >= 1 {
            assert_eq!(resp.endpoint_type, 1);
            let resp = conn.call(&DescribeClusterRequest::default().with_endpoint_type(2), v);
            assert_eq!(resp.error_code, MISMATCHED_ENDPOINT_TYPE, "v{v}");
        }
    }
}

#[test]
fn describe_log_dirs_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "ld", 2, &[]);
    create(&mut conn, "other", 1, &[]);
    produce(&mut conn, "ld", 1, &["a", "b", "c"]);
    let dir = std::fs::canonicalize(&k.data_dir).unwrap();
    for v in versions(ApiKey::DescribeLogDirs) {
        let resp = conn.call(&DescribeLogDirsRequest::default().with_topics(None), v);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.results.len(), 1);
        let r = &resp.results[0];
        assert_eq!(r.error_code, 0);
        assert_eq!(std::path::Path::new(r.log_dir.as_str()), dir);
        let ld = r
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "ld")
            .expect("ld listed");
        assert_eq!(ld.partitions.len(), 2);
        let size = |p: i32| {
            ld.partitions
                .iter()
                .find(|x| x.partition_index == p)
                .map(|x| (x.partition_size, x.offset_lag))
                .expect("partition")
        };
        assert_eq!(size(0), (0, 0), "v{v}");
        assert!(size(1).0 > 0, "v{v}: produced bytes count");
        assert!(r.topics.iter().any(|t| t.name.0.as_str() == "other"));

        // Only what is asked for; unknown topics and partitions are left out.
        let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name("ld"))
                .with_partitions(vec![1, 7]),
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name("missing"))
                .with_partitions(vec![0]),
        ]));
        let resp = conn.call(&req, v);
        let topics = &resp.results[0].topics;
        assert_eq!(topics.len(), 1, "v{v}");
        let parts: Vec<i32> = topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(parts, [1]);
    }
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "dtp-a", 3, &[]);
    create(&mut conn, "dtp-b", 2, &[]);
    create(&mut conn, "dtp-c", 1, &[]);
    let page = |conn: &mut Conn, topics: &[&str], cursor: Option<(&str, i32)>, limit: i32| {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        describe_topic_partitions_request::TopicRequest::default()
                            .with_name(name(t))
                    })
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(name(t))
                    .with_partition_index(p)
            }));
        let resp = conn.call(&req, 0);
        let got: Vec<(String, i16, Vec<i32>)> = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let next = resp
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (got, next, resp.topics)
    };
    let t = |n: &str, ps: &[i32]| (n.to_string(), 0i16, ps.to_vec());

    let (got, next, topics) = page(&mut conn, &[], None, 2000);
    assert_eq!(
        got,
        vec![
            t("dtp-a", &[0, 1, 2]),
            t("dtp-b", &[0, 1]),
            t("dtp-c", &[0])
        ]
    );
    assert_eq!(next, None);
    let p = &topics[0].partitions[0];
    assert_eq!(p.leader_id, BrokerId(1));
    assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert_eq!(p.last_known_elr, Some(vec![]));
    assert!(!topics[0].topic_id.is_nil());

    // Two partitions per page, following the cursor.
    let (got, next, _) = page(&mut conn, &[], None, 2);
    assert_eq!(got, vec![t("dtp-a", &[0, 1])]);
    assert_eq!(next, Some(("dtp-a".into(), 2)));
    let (got, next, _) = page(&mut conn, &[], Some(("dtp-a", 2)), 2);
    assert_eq!(got, vec![t("dtp-a", &[2]), t("dtp-b", &[0])]);
    assert_eq!(next, Some(("dtp-b".into(), 1)));
    let (got, next, _) = page(&mut conn, &[], Some(("dtp-b", 1)), 2);
    assert_eq!(got, vec![t("dtp-b", &[1]), t("dtp-c", &[0])]);
    assert_eq!(next, None);
    let (got, next, _) = page(&mut conn, &[], None, 3);
    assert_eq!(got, vec![t("dtp-a", &[0, 1, 2])]);
    assert_eq!(next, Some(("dtp-b".into(), 0)));

    // Named topics, in name order, unknown ones with an error.
    let (got, _, _) = page(&mut conn, &["dtp-c", "nope", "dtp-a"], None, 2000);
    assert_eq!(
        got,
        vec![
            t("dtp-a", &[0, 1, 2]),
            t("dtp-c", &[0]),
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION, vec![]),
        ]
    );
    // A cursor must name one of the requested topics.
    let (got, _, _) = page(&mut conn, &["dtp-a"], Some(("dtp-b", 0)), 2000);
    assert_eq!(got, vec![("dtp-a".to_string(), INVALID_REQUEST, vec![])]);
}

#[test]
fn elect_leaders_every_version() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "el", 2, &[]);
    for v in versions(ApiKey::ElectLeaders) {
        let req = ElectLeadersRequest::default()
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(name("el"))
                    .with_partitions(vec![0, 1, 5]),
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(name("missing"))
                    .with_partitions(vec![0]),
            ]))
            .with_timeout_ms(5000);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0);
        let got: Vec<(String, i32, i16)> = resp
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("el".to_string(), 0, ELECTION_NOT_NEEDED),
                ("el".to_string(), 1, ELECTION_NOT_NEEDED),
                ("el".to_string(), 5, UNKNOWN_TOPIC_OR_PARTITION),
                ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ],
            "v{v}"
        );
        // Every partition: none needed an election, so none is listed.
        let resp = conn.call(
            &ElectLeadersRequest::default().with_topic_partitions(None),
            v,
        );
        assert_eq!(resp.error_code, 0);
        assert!(resp.replica_election_results.is_empty(), "v{v}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dynamic broker configs
// ---------------------------------------------------------------------------------------------

/// How a described config came to its value: source, then each synonym as (source, name,
/// value).
type Described = (Option<String>, i8, bool, Vec<(i8, String, String)>);

/// The given keys of a BROKER resource ("1" or the cluster default ""), by name.
fn broker_configs(conn: &mut Conn, resource: &str, keys: &[&str]) -> Vec<(String, Described)> {
    let r = describe(conn, BROKER, resource, Some(keys), 4);
    assert_eq!(
        r.error_code, 0,
        "describe broker {resource:?}: {:?}",
        r.error_message
    );
    r.configs
        .into_iter()
        .map(|c| {
            let synonyms = c
                .synonyms
                .iter()
                .map(|s| {
                    let value = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    (s.source, s.name.to_string(), value)
                })
                .collect();
            let value = c.value.map(|v| v.to_string());
            (
                c.name.to_string(),
                (value, c.config_source, c.read_only, synonyms),
            )
        })
        .collect()
}

fn broker_config(conn: &mut Conn, resource: &str, key: &str) -> Described {
    let mut all = broker_configs(conn, resource, &[key]);
    assert_eq!(
        all.len(),
        1,
        "broker {resource:?} describes {key} once: {all:?}"
    );
    all.remove(0).1
}

fn syn(source: i8, name: &str, value: &str) -> (i8, String, String) {
    (source, name.to_string(), value.to_string())
}

/// Names of the keys the cluster-wide default lists.
fn cluster_default_keys(conn: &mut Conn) -> Vec<String> {
    let r = describe(conn, BROKER, "", None, 4);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r.configs.iter().map(|c| c.name.to_string()).collect()
}

#[test]
fn dynamic_broker_configs_per_broker_and_cluster_default() {
    let k = Klamm::start(&["log.retention.hours=2"]);
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let set_threads = [("log.cleaner.threads", SET, Some("2"))];
        assert_eq!(
            incremental(&mut conn, BROKER, "1", &set_threads, false, v),
            (0, None),
            "v{v}"
        );
        let defaults = [
            ("log.cleaner.backoff.ms", SET, Some("20000")),
            ("log.retention.ms", SET, Some("60000")),
        ];
        assert_eq!(
            incremental(&mut conn, BROKER, "", &defaults, false, v),
            (0, None),
            "v{v}"
        );

        // Broker 1 describes every key: the per-broker value first, then the cluster default,
        // the static value and the default, each as a synonym (Kafka's order).
        assert_eq!(
            broker_config(&mut conn, "1", "log.cleaner.threads"),
            (
                Some("2".into()),
                SOURCE_DYNAMIC_BROKER,
                false,
                vec![
                    syn(SOURCE_DYNAMIC_BROKER, "log.cleaner.threads", "2"),
                    syn(SOURCE_DEFAULT, "log.cleaner.threads", "1"),
                ]
            ),
            "v{v}"
        );
        assert_eq!(
            broker_config(&mut conn, "1", "log.cleaner.backoff.ms"),
            (
                Some("20000".into()),
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                false,
                vec![
                    syn(
                        SOURCE_DYNAMIC_DEFAULT_BROKER,
                        "log.cleaner.backoff.ms",
                        "20000"
                    ),
                    syn(SOURCE_DEFAULT, "log.cleaner.backoff.ms", "15000"),
                ]
            ),
            "v{v}"
        );
        let retention = [("log.retention.ms", SET, Some("90000"))];
        assert_eq!(
            incremental(&mut conn, BROKER, "1", &retention, false, v),
            (0, None)
        );
        assert_eq!(
            broker_config(&mut conn, "1", "log.retention.ms"),
            (
                Some("90000".into()),
                SOURCE_DYNAMIC_BROKER,
                false,
                vec![
                    syn(SOURCE_DYNAMIC_BROKER, "log.retention.ms", "90000"),
                    syn(SOURCE_DYNAMIC_DEFAULT_BROKER, "log.retention.ms", "60000"),
                    syn(SOURCE_STATIC_BROKER, "log.retention.hours", "2"),
                    syn(SOURCE_DEFAULT, "log.retention.hours", "168"),
                ]
            ),
            "v{v}"
        );
        let (_, _, read_only, _) = broker_config(&mut conn, "1", "num.partitions");
        assert!(read_only, "v{v}: num.partitions is read-only");

        // The cluster-wide default lists only what is set there, with its own synonyms only.
        assert_eq!(
            cluster_default_keys(&mut conn),
            ["log.cleaner.backoff.ms", "log.retention.ms"],
            "v{v}"
        );
        assert_eq!(
            broker_config(&mut conn, "", "log.retention.ms"),
            (
                Some("60000".into()),
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                false,
                vec![syn(
                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                    "log.retention.ms",
                    "60000"
                )]
            ),
            "v{v}"
        );

        // Deleting the per-broker values uncovers the cluster default again, then the
        // static value.
        let delete = [
            ("log.cleaner.threads", DELETE, None),
            ("log.retention.ms", DELETE, None),
        ];
        assert_eq!(
            incremental(&mut conn, BROKER, "1", &delete, false, v),
            (0, None)
        );
        assert_eq!(
            broker_config(&mut conn, "1", "log.retention.ms")
                .0
                .as_deref(),
            Some("60000")
        );
        let delete = [
            ("log.cleaner.backoff.ms", DELETE, None),
            ("log.retention.ms", DELETE, None),
        ];
        assert_eq!(
            incremental(&mut conn, BROKER, "", &delete, false, v),
            (0, None)
        );
        let (value, source, _, _) = broker_config(&mut conn, "1", "log.retention.ms");
        assert_eq!((value, source), (None, SOURCE_DEFAULT), "v{v}");
        assert!(cluster_default_keys(&mut conn).is_empty(), "v{v}");
    }

    // APPEND and SUBTRACT on the one list key, from Kafka's default when nothing is set.
    let append = [("log.cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &append, false, 1),
        (0, None)
    );
    assert_eq!(
        broker_config(&mut conn, "", "log.cleanup.policy")
            .0
            .as_deref(),
        Some("delete,compact")
    );
    let subtract = [("log.cleanup.policy", SUBTRACT, Some("delete"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &subtract, false, 1),
        (0, None)
    );
    assert_eq!(
        broker_config(&mut conn, "1", "log.cleanup.policy")
            .0
            .as_deref(),
        Some("compact")
    );

    // AlterConfigs replaces all of a resource's values.
    for v in versions(ApiKey::AlterConfigs) {
        let wanted = [
            ("log.retention.ms", Some("30000")),
            ("log.cleaner.backoff.ms", Some("16000")),
        ];
        assert_eq!(alter(&mut conn, BROKER, "", &wanted, false, v), (0, None));
        assert_eq!(
            cluster_default_keys(&mut conn),
            ["log.cleaner.backoff.ms", "log.retention.ms"],
            "v{v}: log.cleanup.policy replaced away"
        );
        let wanted = [("log.cleaner.threads", Some("2"))];
        assert_eq!(alter(&mut conn, BROKER, "1", &wanted, false, v), (0, None));
        assert_eq!(
            broker_config(&mut conn, "1", "log.cleaner.threads").1,
            SOURCE_DYNAMIC_BROKER
        );
        assert_eq!(alter(&mut conn, BROKER, "1", &[], false, v), (0, None));
        assert_eq!(alter(&mut conn, BROKER, "", &[], false, v), (0, None));
        assert!(cluster_default_keys(&mut conn).is_empty(), "v{v}");
        assert_eq!(
            broker_config(&mut conn, "1", "log.cleaner.threads").1,
            SOURCE_DEFAULT
        );
    }
}

#[test]
fn dynamic_broker_configs_refused_or_validate_only_change_nothing() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let set = [("log.retention.ms", SET, Some("60000"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &set, false, 1),
        (0, None)
    );
    let before = (
        broker_configs(&mut conn, "1", &[]),
        broker_configs(&mut conn, "", &[]),
    );

    let refused: Vec<(&str, &str, Vec<Op>, i16, &str)> = vec![
        // Read-only keys, including the lower-precedence spellings of dynamic ones.
        (
            "read-only keys",
            "1",
            vec![
                ("num.partitions", SET, Some("3")),
                ("log.retention.hours", SET, Some("1")),
            ],
            INVALID_REQUEST,
            "Cannot update these configs dynamically: [log.retention.hours, num.partitions]",
        ),
        (
            "a read-only list key",
            "",
            vec![("log.dirs", APPEND, Some("/elsewhere"))],
            INVALID_REQUEST,
            "Cannot update these configs dynamically: [log.dirs]",
        ),
        // Values are checked as static ones are: type and range.
        (
            "out of range",
            "",
            vec![("message.max.bytes", SET, Some("-5"))],
            INVALID_REQUEST,
            "Invalid value -5 for configuration message.max.bytes",
        ),
        (
            "not a number",
            "1",
            vec![("log.cleaner.backoff.ms", SET, Some("soon"))],
            INVALID_REQUEST,
            "Invalid value soon for configuration log.cleaner.backoff.ms",
        ),
        (
            "not a choice",
            "1",
            vec![("log.message.timestamp.type", SET, Some("Whenever"))],
            INVALID_REQUEST,
            "log.message.timestamp.type",
        ),
        (
            "cleaner threads more than doubled",
            "",
            vec![("log.cleaner.threads", SET, Some("3"))],
            INVALID_REQUEST,
            "more than double the current value 1",
        ),
        (
            "unknown key",
            "1",
            vec![("no.such.config", SET, Some("1"))],
            INVALID_CONFIG,
            "Unknown config name: no.such.config",
        ),
        (
            "append to a non-list",
            "1",
            vec![("log.retention.ms", APPEND, Some("5"))],
            INVALID_CONFIG,
            "Config value append is not allowed for config key: log.retention.ms",
        ),
        (
            "another broker",
            "2",
            vec![("log.retention.ms", SET, Some("5"))],
            INVALID_REQUEST,
            "Unexpected broker id, expected 1, but received 2",
        ),
        (
            "a broker name that is no id",
            "one",
            vec![("log.retention.ms", SET, Some("5"))],
            INVALID_REQUEST,
            "Node id must be an integer, but it is: one",
        ),
        (
            // One bad key refuses the whole resource.
            "a good key with a bad one",
            "1",
            vec![
                ("log.cleaner.backoff.ms", SET, Some("100")),
                ("message.max.bytes", SET, Some("x")),
            ],
            INVALID_REQUEST,
            "message.max.bytes",
        ),
    ];
    for (case, resource, ops, code, message) in refused {
        let (got, text) = incremental(&mut conn, BROKER, resource, &ops, false, 1);
        assert_eq!(got, code, "{case}: {text:?}");
        let text = text.unwrap_or_default();
        assert!(text.contains(message), "{case}: {text}");
    }
    let (code, text) = alter(
        &mut conn,
        BROKER,
        "1",
        &[("log.retention.ms", None)],
        false,
        2,
    );
    assert_eq!(code, INVALID_REQUEST, "{text:?}");

    // validate_only: a valid change is accepted and not made.
    let change = [
        ("log.retention.ms", DELETE, None),
        ("log.cleaner.backoff.ms", SET, Some("100")),
    ];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &change, true, 1),
        (0, None)
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "1",
            &[("log.segment.bytes", Some("5000"))],
            true,
            2
        ),
        (0, None)
    );
    let after = (
        broker_configs(&mut conn, "1", &[]),
        broker_configs(&mut conn, "", &[]),
    );
    assert_eq!(
        before, after,
        "refused and validate-only changes left configs as they were"
    );
}

#[test]
fn dynamic_broker_configs_survive_restart() {
    let mut k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "plain", 1, &[]);
    let per_broker = [("log.cleaner.threads", SET, Some("2"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "1", &per_broker, false, 1),
        (0, None)
    );
    let default = [("message.max.bytes", SET, Some("5000"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &default, false, 1),
        (0, None)
    );

    k.restart();
    let mut conn = Conn::connect(k.addr);
    let (threads, source, _, _) = broker_config(&mut conn, "1", "log.cleaner.threads");
    assert_eq!(
        (threads.as_deref(), source),
        (Some("2"), SOURCE_DYNAMIC_BROKER)
    );
    assert_eq!(cluster_default_keys(&mut conn), ["message.max.bytes"]);
    // Topics are resolved against the dynamic defaults from the start.
    assert_eq!(
        value(&mut conn, "plain", "max.message.bytes"),
        ("5000".into(), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );

    // A kill (no clean shutdown) loses nothing either: the file is written before the change
    // is answered.
    let delete = [("log.cleaner.threads", DELETE, None)];
    assert_eq!(
        incremental(&mut conn, BROKER, "1", &delete, false, 1),
        (0, None)
    );
    k.kill();
    k.start_again();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(
        broker_config(&mut conn, "1", "log.cleaner.threads").1,
        SOURCE_DEFAULT
    );
    assert_eq!(cluster_default_keys(&mut conn), ["message.max.bytes"]);
}

/// One record with the broker's current time (so retention measures its age from now).
fn fresh_record(size: usize) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    encode_batch(
        &[record(0, now, None, Some(Bytes::from("x".repeat(size))))],
        Compression::None,
    )
}

#[test]
fn topics_without_an_override_take_dynamic_defaults() {
    let k = Klamm::start(&["log.retention.check.interval.ms=200"]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "plain", 1, &[]);
    create(
        &mut conn,
        "own",
        1,
        &[("max.message.bytes", "100000"), ("retention.ms", "3600000")],
    );
    for topic in ["plain", "own"] {
        let (code, _) = support::client::produce(&mut conn, topic, 0, fresh_record(400));
        assert_eq!(code, 0, "{topic}");
    }

    // A dynamic default of the topic key's broker synonym: described, and enforced on produce.
    let default = [("message.max.bytes", SET, Some("200"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &default, false, 1),
        (0, None)
    );
    let c = config(&mut conn, "plain", "max.message.bytes");
    assert_eq!(c.value.as_deref(), Some("200"));
    assert_eq!(c.config_source, SOURCE_DYNAMIC_DEFAULT_BROKER);
    let synonyms: Vec<(i8, String)> = c
        .synonyms
        .iter()
        .map(|s| (s.source, s.name.to_string()))
        .collect();
    assert_eq!(
        synonyms,
        [
            (
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                "message.max.bytes".to_string()
            ),
            (SOURCE_DEFAULT, "message.max.bytes".to_string()),
        ]
    );
    let (code, _) = support::client::produce(&mut conn, "plain", 0, fresh_record(400));
    assert_eq!(code, MESSAGE_TOO_LARGE, "plain follows the dynamic default");
    let (code, _) = support::client::produce(&mut conn, "own", 0, fresh_record(400));
    assert_eq!(code, 0, "own keeps its override");
    // A topic created afterwards takes it too.
    create(&mut conn, "later", 1, &[]);
    assert_eq!(value(&mut conn, "later", "max.message.bytes").0, "200");

    // A per-broker value wins over the cluster default, and its removal uncovers it.
    let per_broker = [("message.max.bytes", SET, Some("300000"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "1", &per_broker, false, 1),
        (0, None)
    );
    assert_eq!(
        value(&mut conn, "plain", "max.message.bytes"),
        ("300000".into(), SOURCE_DYNAMIC_BROKER)
    );
    let (code, _) = support::client::produce(&mut conn, "plain", 0, fresh_record(400));
    assert_eq!(code, 0);
    let delete = [("message.max.bytes", DELETE, None)];
    assert_eq!(
        incremental(&mut conn, BROKER, "1", &delete, false, 1),
        (0, None)
    );
    assert_eq!(
        incremental(&mut conn, BROKER, "", &delete, false, 1),
        (0, None)
    );
    assert_eq!(
        value(&mut conn, "plain", "max.message.bytes"),
        ("1048588".into(), SOURCE_DEFAULT)
    );

    // A dynamic retention default reaches the logs: plain loses its records, own keeps them.
    let retention = [("log.retention.ms", SET, Some("1000"))];
    assert_eq!(
        incremental(&mut conn, BROKER, "", &retention, false, 1),
        (0, None)
    );
    assert_eq!(
        value(&mut conn, "plain", "retention.ms"),
        ("1000".into(), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while earliest_offset(&mut conn, "plain", 0) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "plain's records outlived the dynamic log.retention.ms"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(earliest_offset(&mut conn, "own", 0), 0);
}
