//! librdkafka's AdminClient (through the `rdkafka` crate) against a real `klamm` process:
//! describe and alter configs, add partitions and use them, delete the topic.

#[path = "../protocol-tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigResource, ConfigSource, NewPartitions, NewTopic,
    OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use support::Klamm;

/// Upper bound for any single wait, so a misbehaving broker fails a test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `fut` with a deadline on a throwaway runtime; rdkafka completes futures itself.
fn wait<F: Future>(what: &str, fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    rt.block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)))
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("enable.idempotence", "false")
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

fn describe(
    a: &AdminClient<DefaultClientContext>,
    resource: ResourceSpecifier<'_>,
) -> Result<ConfigResource, RDKafkaErrorCode> {
    let mut results =
        wait("DescribeConfigs", a.describe_configs([&resource], &opts())).expect("DescribeConfigs");
    assert_eq!(results.len(), 1);
    results.remove(0)
}

/// The `rdkafka` crate drops per-resource DescribeConfigs errors (such as an unknown topic),
/// returning the resource without entries, so that is what a refusal looks like here.
fn no_configs(a: &AdminClient<DefaultClientContext>, topic: &str) -> bool {
    describe(a, ResourceSpecifier::Topic(topic)).is_ok_and(|r| r.entries.is_empty())
}

/// A topic config's value and source.
fn topic_config(
    a: &AdminClient<DefaultClientContext>,
    topic: &str,
    key: &str,
) -> (Option<String>, ConfigSource) {
    let r = describe(a, ResourceSpecifier::Topic(topic)).expect("topic configs");
    let e = r
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("no config {key}"));
    (e.value, e.source)
}

/// Sends one message to `partition` and returns its offset, or the delivery error.
fn send(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    payload: &[u8],
) -> Result<i64, KafkaError> {
    let record = FutureRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(payload);
    wait("delivery", p.send(record, Duration::from_secs(5)))
        .map(|d| {
            assert_eq!(d.partition, partition);
            d.offset
        })
        .map_err(|(e, _)| e)
}

#[test]
fn configs_and_partitions() {
    let k = Klamm::start(&["log.retention.hours=48"]);
    let a = admin(&k.bootstrap());
    let topic = "compat-admin";
    let created =
        wait(
            "CreateTopics",
            a.create_topics(
                [&NewTopic::new(topic, 2, TopicReplication::Fixed(1))
                    .set("retention.ms", "86400000")],
                &opts(),
            ),
        )
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);

    // Describe: the override, a broker-set default and Kafka's default, each with its source.
    let r = describe(&a, ResourceSpecifier::Topic(topic)).expect("topic configs");
    assert_eq!(
        r.specifier,
        OwnedResourceSpecifier::Topic(topic.to_string())
    );
    let retention = r.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default && !retention.is_read_only && !retention.is_sensitive);
    let segment = r.get("segment.bytes").expect("segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.source, ConfigSource::Default);
    assert!(segment.is_default);
    let broker = describe(&a, ResourceSpecifier::Broker(1)).expect("broker configs");
    let hours = broker
        .get("log.retention.hours")
        .expect("log.retention.hours");
    assert_eq!(hours.value.as_deref(), Some("48"));
    assert_eq!(hours.source, ConfigSource::StaticBroker);
    assert!(hours.is_read_only);
    assert!(no_configs(&a, "no-such-topic"));

    // Alter: a new limit takes effect for the next produce.
    let p = producer(&k.bootstrap());
    assert_eq!(send(&p, topic, 0, &[b'x'; 1000]), Ok(0));
    let alter = |change: AlterConfig<'_>, options: &AdminOptions| {
        let mut results =
            wait("AlterConfigs", a.alter_configs([&change], options)).expect("AlterConfigs");
        assert_eq!(results.len(), 1);
        results.remove(0).map(|_| ()).map_err(|(_, code)| code)
    };
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("retention.ms", "7200000")
        .set("max.message.bytes", "300");
    assert_eq!(alter(change, &opts().validate_only(true)), Ok(()));
    assert_eq!(
        topic_config(&a, topic, "max.message.bytes").1,
        ConfigSource::Default,
        "validate_only changes nothing"
    );
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("retention.ms", "7200000")
        .set("max.message.bytes", "300");
    assert_eq!(alter(change, &opts()), Ok(()));
    assert_eq!(
        topic_config(&a, topic, "retention.ms"),
        (Some("7200000".into()), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        topic_config(&a, topic, "max.message.bytes"),
        (Some("300".into()), ConfigSource::DynamicTopic)
    );
    match send(&p, topic, 0, &[b'x'; 1000]) {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MessageSizeTooLarge, got {other:?}"),
    }
    // The crate drops per-resource AlterConfigs errors too (the protocol tests check the
    // INVALID_CONFIG itself); what shows here is that a bad value changes nothing.
    let bad = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "later");
    let _ = alter(bad, &opts());
    assert_eq!(
        topic_config(&a, topic, "retention.ms").0.as_deref(),
        Some("7200000")
    );

    // Partitions: fewer is refused, more appear at once and take records.
    let grow = |count: usize| {
        let mut r = wait(
            "CreatePartitions",
            a.create_partitions([&NewPartitions::new(topic, count)], &opts()),
        )
        .expect("CreatePartitions");
        r.remove(0).map(|_| ()).map_err(|(_, code)| code)
    };
    assert_eq!(grow(1), Err(RDKafkaErrorCode::InvalidPartitions));
    assert_eq!(grow(2), Err(RDKafkaErrorCode::InvalidPartitions));
    assert_eq!(grow(4), Ok(()));
    let md = a
        .inner()
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 4);
    let p = producer(&k.bootstrap());
    assert_eq!(send(&p, topic, 3, b"on a new partition"), Ok(0));
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", k.bootstrap())
        .set("group.id", "compat-admin")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 3, Offset::Beginning)
        .expect("assignment");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + TIMEOUT;
    let got = loop {
        assert!(
            Instant::now() < deadline,
            "nothing consumed from partition 3"
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => break (m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec)),
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    };
    assert_eq!(got, (3, 0, Some(b"on a new partition".to_vec())));

    // Delete: its configs go with it.
    let deleted = wait("DeleteTopics", a.delete_topics(&[topic], &opts())).expect("DeleteTopics");
    assert_eq!(deleted, vec![Ok(topic.to_string())]);
    assert!(no_configs(&a, topic));
}
