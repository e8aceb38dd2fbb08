//! Idempotence under retries: a fault-injecting proxy between an idempotent rdkafka producer
//! and the broker cuts the connection right after the broker has answered some Produce
//! requests, so the client never sees those answers and retries batches that were already
//! stored. Afterwards every message must be stored exactly once and in order.

#[path = "../protocol-tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use support::{Conn, Klamm};

/// Reads one size-prefixed frame (with its prefix).
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut buf = size.to_vec();
    buf.resize(4 + i32::from_be_bytes(size) as usize, 0);
    s.read_exact(&mut buf[4..]).ok()?;
    Some(buf)
}

/// Forwards Kafka frames both ways; after every `every`-th Produce response it closes both
/// sides instead of forwarding that response.
fn proxy(
    listener: TcpListener,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    every: usize,
    cuts: Arc<AtomicUsize>,
) {
    let produced = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming().flatten() {
        let Some(addr) = *upstream.lock().unwrap() else {
            continue;
        };
        let Ok(server) = TcpStream::connect(addr) else {
            continue;
        };
        let pending: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
        let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let p = pending.clone();
        std::thread::spawn(move || {
            while let Some(frame) = read_frame(&mut c_in) {
                let key = i16::from_be_bytes([frame[4], frame[5]]);
                let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                p.lock().unwrap().insert(correlation, key);
                if s_out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = s_out.shutdown(Shutdown::Both);
        });
        let (mut s_in, mut c_out) = (server, client);
        let produced = produced.clone();
        let cuts = cuts.clone();
        std::thread::spawn(move || {
            while let Some(frame) = read_frame(&mut s_in) {
                let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let key = pending.lock().unwrap().remove(&correlation);
                if key == Some(0) && produced.fetch_add(1, Ordering::SeqCst) % every == every - 1 {
                    cuts.fetch_add(1, Ordering::SeqCst);
                    let _ = c_out.shutdown(Shutdown::Both);
                    let _ = s_in.shutdown(Shutdown::Both);
                    return;
                }
                if c_out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = c_out.shutdown(Shutdown::Both);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_stored_exactly_once_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let upstream = Arc::new(Mutex::new(None));
    let cuts = Arc::new(AtomicUsize::new(0));
    {
        let (u, c) = (upstream.clone(), cuts.clone());
        std::thread::spawn(move || proxy(listener, u, 10, c));
    }
    let advertised = format!(
        "advertised.listeners=PLAINTEXT://127.0.0.1:{}",
        proxy_addr.port()
    );
    let k = Klamm::start(&[&advertised, "num.partitions=3"]);
    *upstream.lock().unwrap() = Some(k.addr);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", proxy_addr.to_string())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "100")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "60000")
        .set("reconnect.backoff.ms", "10")
        .create()
        .unwrap();
    let n = 3000;
    // Enqueue strictly in order (send_result does not wait), then await every delivery.
    let mut deliveries = Vec::new();
    for i in 0..n {
        let value = format!("m{i:05}");
        let key = format!("k{}", i % 3);
        let record = FutureRecord::to("idem")
            .key(&key)
            .payload(&value)
            .partition((i % 3) as i32);
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    for d in deliveries {
        let outcome = tokio::time::timeout(Duration::from_secs(90), d)
            .await
            .expect("delivery within 90 s");
        outcome
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("every message is delivered despite the cut connections");
    }
    assert!(
        cuts.load(Ordering::SeqCst) >= 3,
        "the proxy cut connections after produce responses"
    );

    // Read straight from the broker: each partition holds its messages once, in send order.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", k.bootstrap())
        .set("group.id", "idem-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("idem", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); 3];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.iter().map(Vec::len).sum::<usize>() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            seen[m.partition() as usize]
                .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    // Nothing more arrives: no duplicates beyond the n messages.
    assert!(consumer.poll(Duration::from_secs(2)).is_none());
    for (p, values) in seen.iter().enumerate() {
        let expected: Vec<String> = (0..n)
            .filter(|i| i % 3 == p)
            .map(|i| format!("m{i:05}"))
            .collect();
        assert_eq!(values, &expected, "partition {p}: exactly once, in order");
    }
}

fn batch(pid: i64, epoch: i16, seq: i32, count: usize) -> Bytes {
    use kafka_protocol::records::*;
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from(format!("v{}", seq as usize + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(conn: &mut Conn, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("seq")))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let r = conn.call(&req, 9);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn sequence_rules_and_restart() {
    let mut k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let meta = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("seq")))),
    ]));
    conn.call(&meta, 12);
    for v in 0..=5 {
        let r = conn.call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            v,
        );
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert!(r.producer_id.0 >= 0);
    }
    let init = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    // KIP-360: presenting the current id and epoch bumps the epoch.
    let bumped = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        4,
    );
    assert_eq!(
        (bumped.producer_id.0, bumped.producer_epoch),
        (pid, epoch + 1)
    );
    let epoch = epoch + 1;
    // Transactions are refused.
    let txn = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("t"))))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert_ne!(txn.error_code, 0);

    assert_eq!(produce(&mut conn, batch(pid, epoch, 0, 3)), (0, 0));
    assert_eq!(produce(&mut conn, batch(pid, epoch, 3, 2)), (0, 3));
    // A retry is answered with its original offset and not written again.
    assert_eq!(produce(&mut conn, batch(pid, epoch, 0, 3)), (0, 0));
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(produce(&mut conn, batch(pid, epoch, 9, 1)).0, 45);
    // An older epoch: INVALID_PRODUCER_EPOCH (47).
    assert_eq!(produce(&mut conn, batch(pid, epoch - 1, 5, 1)).0, 47);
    // A producer the partition has never seen, not starting at 0: UNKNOWN_PRODUCER_ID (59).
    assert_eq!(produce(&mut conn, batch(pid + 1000, 0, 7, 1)).0, 59);
    // The state survives a crash: the retry is still recognised.
    drop(conn);
    k.kill();
    k.start_again();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(produce(&mut conn, batch(pid, epoch, 3, 2)), (0, 3));
    assert_eq!(produce(&mut conn, batch(pid, epoch, 5, 1)), (0, 5));
    // And a clean restart (from the snapshot).
    drop(conn);
    k.restart();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(produce(&mut conn, batch(pid, epoch, 5, 1)), (0, 5));
    assert_eq!(produce(&mut conn, batch(pid, epoch, 6, 1)), (0, 6));
    // A new producer id after the restart is never one handed out before.
    let after = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert!(after.producer_id.0 > pid);
}
