//! librdkafka (through the `rdkafka` crate) against a real `klamm` process: topic admin,
//! produce and consume with every codec, restarts, acks=0, LogAppendTime and size limits.

#[path = "../protocol-tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders, ToBytes};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};

use support::Klamm;

/// Upper bound for any single wait, so a misbehaving broker fails a test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Runs `fut` with a deadline. rdkafka completes its futures from its own threads, so a
/// throwaway current-thread runtime is enough.
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

fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)))
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = configs.iter().fold(
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)),
        |t, (k, v)| t.set(k, v),
    );
    let results = wait(
        "CreateTopics",
        admin(bootstrap).create_topics([&topic], &admin_opts()),
    )
    .expect("CreateTopics");
    assert_eq!(results, vec![Ok(name.to_string())]);
}

fn producer(bootstrap: &str, settings: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        // Fail deliveries well before the test deadline rather than retrying forever.
        .set("message.timeout.ms", "20000")
        // The broker has no InitProducerId yet.
        .set("enable.idempotence", "false");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

/// A consumer that reads by explicit assignment and commits nothing. librdkafka's assign()
/// needs a group.id even though no group is joined.
fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "klamm-compat-assign")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .expect("consumer")
}

/// One message as produced or consumed; comparable field by field.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Timestamp,
}

impl Record {
    fn from_message(m: &BorrowedMessage<'_>) -> Record {
        Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: m.timestamp(),
        }
    }

    fn seq(&self) -> usize {
        self.headers
            .iter()
            .find(|(k, _)| k == "seq")
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("record without a seq header: {self:?}"))
    }

    fn create_time(&self) -> i64 {
        match self.timestamp {
            Timestamp::CreateTime(t) => t,
            other => panic!("expected a CreateTime, got {other:?}"),
        }
    }
}

/// Enqueues `record`, waiting while librdkafka's local queue is full.
fn enqueue<K, P>(producer: &FutureProducer, mut record: FutureRecord<'_, K, P>) -> DeliveryFuture
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                record = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("enqueue failed: {e}"),
        }
    }
}

/// Produces messages number `seqs` over 50 keys, each with two headers (one the number) and
/// the explicit timestamp `base_ts + number`. Returns them with the partition and offset the
/// delivery reports gave.
fn produce_keyed(
    producer: &FutureProducer,
    topic: &str,
    tag: &str,
    seqs: Range<usize>,
    base_ts: i64,
) -> Vec<Record> {
    let mut pending = Vec::with_capacity(seqs.len());
    for i in seqs {
        let key = format!("key-{}", i % 50).into_bytes();
        // Varying lengths so batches are not uniform.
        let value = format!("{tag} message {i} {}", "v".repeat(i % 200)).into_bytes();
        let headers = vec![
            ("seq".to_string(), Some(i.to_string().into_bytes())),
            ("bin".to_string(), Some(vec![(i % 256) as u8, 0, 255])),
        ];
        let ts = base_ts + i as i64;
        let owned = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: v.as_deref(),
            })
        });
        let delivery = enqueue(
            producer,
            FutureRecord::to(topic)
                .key(&key)
                .payload(&value)
                .headers(owned)
                .timestamp(ts),
        );
        let record = Record {
            partition: -1,
            offset: -1,
            key: Some(key),
            value: Some(value),
            headers,
            timestamp: Timestamp::CreateTime(ts),
        };
        pending.push((delivery, record));
    }
    wait("delivery reports", async move {
        let mut out = Vec::with_capacity(pending.len());
        for (delivery, mut record) in pending {
            let d = delivery
                .await
                .expect("delivery report dropped")
                .unwrap_or_else(|(e, _)| panic!("delivery of seq {} failed: {e}", record.seq()));
            record.partition = d.partition;
            record.offset = d.offset;
            out.push(record);
        }
        out
    })
}

/// Reads partitions `0..partitions` of `topic` from the beginning until `expected` records
/// arrived, then a little longer so that any extra records show up too.
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Record> {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + TIMEOUT;
    let mut linger_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if out.len() >= expected {
            if now >= *linger_until.get_or_insert(now + Duration::from_millis(300)) {
                break;
            }
        } else if now >= deadline {
            panic!(
                "{topic}: consumed {} of {expected} records before the deadline",
                out.len()
            );
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push(Record::from_message(&m)),
            Some(Err(e)) => panic!("{topic}: consume error: {e}"),
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// `got` must hold exactly `sent`: every partition contiguous from offset 0, every record
/// where its delivery report put it, and each key's records in production order.
fn check(sent: &[Record], mut got: Vec<Record>) {
    got.sort_by_key(|r| (r.partition, r.offset));
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        let n = next.entry(r.partition).or_insert(0);
        assert_eq!(
            r.offset, *n,
            "partition {} has a gap or duplicate",
            r.partition
        );
        *n += 1;
    }
    let mut expected = sent.to_vec();
    expected.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(got.len(), expected.len(), "record count");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            g, e,
            "record at partition {} offset {}",
            e.partition, e.offset
        );
    }
    let mut last_seq: HashMap<(i32, Option<Vec<u8>>), usize> = HashMap::new();
    for r in &got {
        let seq = r.seq();
        if let Some(prev) = last_seq.insert((r.partition, r.key.clone()), seq) {
            assert!(
                prev < seq,
                "key {:?} out of order: {prev} before {seq}",
                r.key
            );
        }
    }
}

/// ListOffsets through the consumer API: watermarks, and offsets by timestamp at and around
/// the produced records' CreateTimes.
fn check_offsets(bootstrap: &str, topic: &str, partitions: i32, sent: &[Record]) {
    let c = consumer(bootstrap);
    let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in sent {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for records in by_partition.values_mut() {
        records.sort_by_key(|r| r.offset);
    }
    for p in 0..partitions {
        let records = by_partition.get(&p).cloned().unwrap_or_default();
        let watermarks = c.fetch_watermarks(topic, p, TIMEOUT).expect("watermarks");
        assert_eq!(
            watermarks,
            (0, records.len() as i64),
            "watermarks of {topic}/{p}"
        );
    }
    let all_ts: Vec<i64> = sent.iter().map(Record::create_time).collect();
    let (min, max) = (
        all_ts.iter().copied().min().expect("records"),
        all_ts.iter().copied().max().expect("records"),
    );
    let mid = all_ts[all_ts.len() / 2];
    for query in [min - 1000, min, mid - 1, mid, mid + 1, max, max + 1] {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Offset(query))
                .expect("tpl");
        }
        let found = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets_for_times");
        for p in 0..partitions {
            // The first record whose timestamp is at or after the query; none means "end".
            let want = by_partition
                .get(&p)
                .and_then(|rs| rs.iter().find(|r| r.create_time() >= query))
                .map_or(Offset::End, |r| Offset::Offset(r.offset));
            let elem = found
                .find_partition(topic, p)
                .unwrap_or_else(|| panic!("offsets_for_times lacks {topic}/{p}"));
            assert_eq!(elem.error(), Ok(()), "offsets_for_times {topic}/{p}");
            assert_eq!(
                elem.offset(),
                want,
                "offsets_for_times({query}) on {topic}/{p}"
            );
        }
    }
}

fn codec_roundtrip(codec: &str) {
    let k = Klamm::start(&[]);
    let bootstrap = k.bootstrap();
    let topic = format!("codec-{codec}");
    create_topic(&bootstrap, &topic, 3, &[]);
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("linger.ms", "20"),
            ("compression.type", codec),
        ],
    );
    let sent = produce_keyed(&p, &topic, codec, 0..10_000, now_ms() - 3_600_000);
    drop(p);
    let got = consume_all(&bootstrap, &topic, 3, sent.len());
    check(&sent, got);
    check_offsets(&bootstrap, &topic, 3, &sent);
}

#[test]
fn codec_none() {
    codec_roundtrip("none");
}

#[test]
fn codec_gzip() {
    codec_roundtrip("gzip");
}

#[test]
fn codec_snappy() {
    codec_roundtrip("snappy");
}

#[test]
fn codec_lz4() {
    codec_roundtrip("lz4");
}

#[test]
fn codec_zstd() {
    codec_roundtrip("zstd");
}

#[test]
fn admin_topics() {
    let k = Klamm::start(&[]);
    let a = admin(&k.bootstrap());
    let opts = admin_opts();
    let create = |t: NewTopic<'_>| {
        wait("CreateTopics", a.create_topics([&t], &opts)).expect("CreateTopics request")
    };

    let name = "admin-topic";
    let topic = || NewTopic::new(name, 3, TopicReplication::Fixed(1));
    assert_eq!(create(topic()), vec![Ok(name.to_string())]);
    assert_eq!(
        create(topic()),
        vec![Err((
            name.to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    let too_long = "x".repeat(250);
    for bad in ["bad/name", "bad name", "..", too_long.as_str()] {
        assert_eq!(
            create(NewTopic::new(bad, 1, TopicReplication::Fixed(1))),
            vec![Err((bad.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "topic name {bad:?}"
        );
    }
    assert_eq!(
        create(NewTopic::new("rf-three", 1, TopicReplication::Fixed(3))),
        vec![Err((
            "rf-three".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );

    // All topics rather than one by name, so that a lookup cannot auto-create anything.
    let md = a.inner().fetch_metadata(None, TIMEOUT).expect("metadata");
    let brokers: Vec<(i32, u16)> = md
        .brokers()
        .iter()
        .map(|b| (b.id(), b.port() as u16))
        .collect();
    assert_eq!(brokers, vec![(1, k.addr.port())]);
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert_eq!(names, vec![name], "only the valid topic exists");
    let t = &md.topics()[0];
    assert_eq!(t.error(), None);
    let mut partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = t
        .partitions()
        .iter()
        .map(|p| {
            assert_eq!(p.error(), None, "partition {}", p.id());
            (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec())
        })
        .collect();
    partitions.sort();
    assert_eq!(
        partitions,
        (0..3).map(|i| (i, 1, vec![1], vec![1])).collect::<Vec<_>>()
    );

    let deleted =
        wait("DeleteTopics", a.delete_topics(&[name], &opts)).expect("DeleteTopics request");
    assert_eq!(deleted, vec![Ok(name.to_string())]);
    let md = a.inner().fetch_metadata(None, TIMEOUT).expect("metadata");
    assert!(
        md.topics().iter().all(|t| t.name() != name),
        "deleted topic still listed"
    );
    let again =
        wait("DeleteTopics", a.delete_topics(&[name], &opts)).expect("DeleteTopics request");
    assert_eq!(
        again,
        vec![Err((
            name.to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

/// Produces, restarts the broker with `bounce`, and expects the same records back, and new
/// appends to continue where the log ended.
fn survives_restart(bounce: fn(&mut Klamm)) {
    let mut k = Klamm::start(&[]);
    let bootstrap = k.bootstrap();
    let topic = "durable";
    create_topic(&bootstrap, topic, 3, &[]);
    let settings = [
        ("acks", "all"),
        ("linger.ms", "10"),
        ("compression.type", "lz4"),
    ];
    let base = now_ms() - 60_000;
    let p = producer(&bootstrap, &settings);
    let sent = produce_keyed(&p, topic, "before", 0..3000, base);
    drop(p);
    let before = consume_all(&bootstrap, topic, 3, sent.len());
    check(&sent, before.clone());

    bounce(&mut k);
    assert_eq!(k.bootstrap(), bootstrap, "restarted on the same port");
    let after = consume_all(&bootstrap, topic, 3, sent.len());
    assert_eq!(after.len(), before.len(), "record count after restart");
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a, b, "record changed across the restart");
    }
    check_offsets(&bootstrap, topic, 3, &sent);

    let p = producer(&bootstrap, &settings);
    let more = produce_keyed(&p, topic, "after", 3000..3300, base);
    drop(p);
    let all = [sent, more].concat();
    check(&all, consume_all(&bootstrap, topic, 3, all.len()));
}

#[test]
fn clean_restart_keeps_everything() {
    survives_restart(|k| k.restart());
}

#[test]
fn crash_keeps_acknowledged_records() {
    survives_restart(|k| {
        k.kill();
        k.start_again();
    });
}

/// Makes `producer` use `acks` for `topic` only. librdkafka reads acks from the topic's
/// configuration and the crate exposes only the default one, so the topic handle is created
/// through the C API before any message names the topic; later sends find and reuse it.
/// The returned handle must outlive the sends.
fn topic_with_acks(producer: &FutureProducer, topic: &str, acks: &str) -> TopicHandle {
    use rdkafka::bindings as rd;
    let name = CString::new(topic).expect("topic name");
    let key = CString::new("acks").expect("key");
    let value = CString::new(acks).expect("value");
    let mut err = [0 as std::ffi::c_char; 256];
    // SAFETY: the client pointer is valid while `producer` lives; the topic conf is consumed
    // by rd_kafka_topic_new on success and destroyed by us otherwise.
    unsafe {
        let conf = rd::rd_kafka_topic_conf_new();
        let set = rd::rd_kafka_topic_conf_set(
            conf,
            key.as_ptr(),
            value.as_ptr(),
            err.as_mut_ptr(),
            err.len(),
        );
        if set != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
            rd::rd_kafka_topic_conf_destroy(conf);
            panic!("cannot set acks={acks}");
        }
        let handle = rd::rd_kafka_topic_new(producer.client().native_ptr(), name.as_ptr(), conf);
        if handle.is_null() {
            rd::rd_kafka_topic_conf_destroy(conf);
            panic!("rd_kafka_topic_new({topic}) failed");
        }
        TopicHandle(handle)
    }
}

struct TopicHandle(*mut rdkafka::bindings::rd_kafka_topic_t);

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_topic_new and released exactly once.
        unsafe { rdkafka::bindings::rd_kafka_topic_destroy(self.0) }
    }
}

#[test]
fn acks_zero_then_acks_one_on_one_connection() {
    let k = Klamm::start(&[]);
    let bootstrap = k.bootstrap();
    create_topic(&bootstrap, "acks-zero", 1, &[]);
    create_topic(&bootstrap, "acks-one", 1, &[]);
    let p = producer(&bootstrap, &[("acks", "0"), ("linger.ms", "5")]);
    let handle = topic_with_acks(&p, "acks-one", "1");
    let base = now_ms() - 10_000;

    let mut zero = Vec::new();
    let mut one = Vec::new();
    // Interleave so acks=1 requests follow unanswered acks=0 ones on the same connection.
    for round in 0..3 {
        let seqs = round * 500..(round + 1) * 500;
        let first = seqs.start;
        let unacked = produce_keyed(&p, "acks-zero", "zero", seqs.clone(), base);
        // No response, so no offset: proof that acks=0 really went out.
        assert!(
            unacked.iter().all(|r| r.offset < 0),
            "acks=0 report with an offset"
        );
        zero.extend(unacked);
        let acked = produce_keyed(&p, "acks-one", "one", seqs, base);
        for (i, r) in acked.iter().enumerate() {
            assert_eq!(
                r.offset,
                (first + i) as i64,
                "acks=1 delivery report offset"
            );
        }
        one.extend(acked);
    }
    drop(handle);
    drop(p);

    // acks=0 reports carry no offset; what arrived must be every message, in order.
    let got = consume_all(&bootstrap, "acks-zero", 1, zero.len());
    assert_eq!(got.len(), zero.len());
    for (i, (g, s)) in got.iter().zip(&zero).enumerate() {
        assert_eq!(g.offset, i as i64);
        assert_eq!(
            (&g.key, &g.value, &g.headers, g.timestamp),
            (&s.key, &s.value, &s.headers, s.timestamp)
        );
    }
    check(&one, consume_all(&bootstrap, "acks-one", 1, one.len()));
}

#[test]
fn log_append_time_topic_uses_broker_time() {
    let k = Klamm::start(&[]);
    let bootstrap = k.bootstrap();
    let topic = "append-time";
    create_topic(
        &bootstrap,
        topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let p = producer(&bootstrap, &[("acks", "all"), ("linger.ms", "5")]);
    let fake = 1_000_000_000_000; // September 2001
    let started = now_ms();
    let deliveries: Vec<DeliveryFuture> = (0..100)
        .map(|i| {
            let value = format!("m{i}");
            enqueue(
                &p,
                FutureRecord::<(), _>::to(topic)
                    .payload(&value)
                    .timestamp(fake),
            )
        })
        .collect();
    let reports = wait("delivery reports", async {
        let mut out = Vec::new();
        for d in deliveries {
            out.push(d.await.expect("report dropped").map_err(|(e, _)| e));
        }
        out
    });
    let finished = now_ms();
    let near_now = |t: i64| (started - 5000..=finished + 5000).contains(&t);
    for r in reports {
        let d = r.expect("delivery");
        // The ProduceResponse carries the append time and librdkafka reports it.
        assert!(
            matches!(d.timestamp, Timestamp::LogAppendTime(t) if near_now(t)),
            "delivery report timestamp {:?}",
            d.timestamp
        );
    }
    let got = consume_all(&bootstrap, topic, 1, 100);
    assert_eq!(got.len(), 100);
    for r in &got {
        assert!(
            matches!(r.timestamp, Timestamp::LogAppendTime(t) if near_now(t)),
            "offset {}: timestamp {:?}, expected broker time near {started}",
            r.offset,
            r.timestamp
        );
    }
}

#[test]
fn oversized_message_is_rejected_alone() {
    let k = Klamm::start(&[]);
    let bootstrap = k.bootstrap();
    let topic = "small-messages";
    create_topic(&bootstrap, topic, 1, &[("max.message.bytes", "2000")]);
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("compression.type", "none"),
            // Deliver one at a time so the big message is alone in its batch.
            ("linger.ms", "0"),
            ("max.in.flight.requests.per.connection", "1"),
        ],
    );
    let send = |value: &[u8]| {
        wait(
            "delivery",
            enqueue(&p, FutureRecord::to(topic).key("k").payload(value)),
        )
        .expect("report dropped")
        .map_err(|(e, _)| e)
    };
    let small: Vec<Vec<u8>> = (0..10).map(|i| format!("small {i}").into_bytes()).collect();
    for (i, v) in small[..5].iter().enumerate() {
        assert_eq!(send(v).expect("small message").offset, i as i64);
    }
    let big = vec![b'x'; 10_000];
    match send(&big) {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("10 KB message: expected MessageSizeTooLarge, got {other:?}"),
    }
    for (i, v) in small[5..].iter().enumerate() {
        assert_eq!(send(v).expect("small message").offset, 5 + i as i64);
    }
    drop(p);
    let got = consume_all(&bootstrap, topic, 1, small.len());
    let values: Vec<Vec<u8>> = got.into_iter().filter_map(|r| r.value).collect();
    assert_eq!(values, small);
}
