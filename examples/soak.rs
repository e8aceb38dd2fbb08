//! A mixed load against a real broker for a fixed time, with the broker's resident memory sampled
//! as it runs: producers with acks=0, 1 and all, a consumer group whose members keep leaving and
//! joining, topics created and deleted, and malformed frames on connections of their own. At the
//! end every record acknowledged with acks=1 or all is read back and compared.
//!
//!     cargo build --release && cargo run --release --example soak -- [--seconds 300]
//!         [--sample-seconds 10] [--rate RECORDS_PER_S_PER_PRODUCER]
//!
//! It starts `target/release/klamm` (or `$KLAMM_BIN`) itself on a free port with a temporary
//! data directory. It prints one line per sample (resident memory, records produced, consumed,
//! topics churned, malformed connections) and a summary, and exits non-zero when an acknowledged
//! record is missing or changed, when the broker died, or when its memory kept growing after the
//! first minute (the last sample more than half again above the lowest one after warm-up), or
//! when the broker logged an ERROR.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const VALUE_BYTES: usize = 200;
const ACKS: [&str; 3] = ["0", "1", "all"];

/// The broker's log lines at WARN and ERROR, kept for the summary. Connections it closed for
/// what they sent are the malformed load's doing; anything else is counted apart.
#[derive(Default)]
struct BrokerLog {
    closed: u64,
    warn: u64,
    error: u64,
    first: Vec<String>,
}

/// Starts the broker; returns it, its address and what its log says.
fn start(dir: &std::path::Path) -> (Child, String, Arc<Mutex<BrokerLog>>) {
    let (child, addr, lines) = support::start(dir, &["group.initial.rebalance.delay.ms=0"]);
    let log = Arc::new(Mutex::new(BrokerLog::default()));
    let seen = log.clone();
    thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let (warn, error) = (line.contains(" WARN "), line.contains(" ERROR "));
            if !(warn || error) {
                continue;
            }
            let mut l = seen.lock().expect("log lock");
            if warn && line.contains("closing connection") {
                l.closed += 1;
                continue;
            }
            l.warn += warn as u64;
            l.error += error as u64;
            if l.first.len() < 10 {
                l.first.push(line);
            }
        }
    });
    (child, addr, log)
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
    rejoins: AtomicU64,
    topics: AtomicU64,
    malformed: AtomicU64,
}

/// Where each acknowledged record landed: (partition, offset) -> its sequence number.
type Acked = Arc<Mutex<HashMap<(i32, i64), u64>>>;

struct Delivery {
    acked: Acked,
    counters: Arc<Counters>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(m) => {
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
                // acks=0 reports no offset.
                if m.offset() >= 0 {
                    let mut acked = self.acked.lock().expect("acked lock");
                    acked.insert((m.partition(), m.offset()), *seq);
                }
            }
            Err(_) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn value(seq: u64) -> Vec<u8> {
    let mut v = format!("{seq:012}-").into_bytes();
    v.resize(VALUE_BYTES, b'x');
    v
}

/// One producer at `rate` records a second until `stop`.
fn produce(
    addr: String,
    acks: &'static str,
    rate: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Acked {
    let acked: Acked = Arc::default();
    let producer: ThreadedProducer<Delivery> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(Delivery {
            acked: acked.clone(),
            counters: counters.clone(),
        })
        .expect("producer");
    let topic = format!("soak-acks-{acks}");
    let start = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Keep to the rate: as many records as the time so far allows.
        let due = start.elapsed().as_millis() as u64 * rate / 1000;
        if seq >= due {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let v = value(seq);
        let key = (seq % 64).to_string();
        let record = BaseRecord::with_opaque_to(&topic, Box::new(seq))
            .payload(&v)
            .key(&key);
        match producer.send(record) {
            Ok(()) => {
                seq += 1;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("flush the producer");
    acked
}

/// A group member that reads for a while, leaves, and joins again, until `stop`.
fn churning_member(addr: String, id: u64, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("group.id", "soak-group")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .expect("consumer");
        consumer
            .subscribe(&["soak-acks-1", "soak-acks-all"])
            .expect("subscribe");
        counters.rejoins.fetch_add(1, Ordering::Relaxed);
        // Members stay between 5 and 25 s, staggered so rebalances keep happening.
        let stay = Duration::from_secs(5 + (id * 7 + round * 11) % 21);
        let joined = Instant::now();
        while joined.elapsed() < stay && !stop.load(Ordering::Relaxed) {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
                counters.consumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        round += 1;
    }
}

/// Creates a topic, writes to it and deletes it, again and again until `stop`.
fn churn_topics(addr: String, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .expect("admin client");
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("soak-churn-{n}");
        let topic = NewTopic::new(&name, 3, TopicReplication::Fixed(1));
        if rt.block_on(admin.create_topics([&topic], &opts)).is_ok() {
            for i in 0..10u64 {
                let v = value(i);
                let _ = producer.send(BaseRecord::<(), _>::to(&name).payload(&v));
            }
            let _ = producer.flush(Duration::from_secs(5));
            let _ = rt.block_on(admin.delete_topics(&[&name], &opts));
            counters.topics.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
        thread::sleep(Duration::from_millis(500));
    }
}

/// Connections that send what no client should, each closed by the broker (or by us after 2 s).
fn malformed(addr: String, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let frames: [&[u8]; 5] = [
        // A size far past any limit, then nothing.
        &[0x7f, 0xff, 0xff, 0xff, 0, 3],
        // A negative size.
        &[0xff, 0xff, 0xff, 0xfe],
        // Metadata v12 claiming 2^32-2 topics.
        &[
            0, 0, 0, 20, 0, 3, 0, 12, 0, 0, 0, 1, 0, 1, b'x', 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0,
            0, 0,
        ],
        // An unknown API key.
        &[0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 2, 0xff, 0xff],
        // Produce v9 whose body is garbage.
        &[
            0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02,
        ],
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(frames[i % frames.len()]);
            let mut sink = [0u8; 512];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            counters.malformed.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reads every partition of `topic` from its start: (partition, offset) -> sequence number.
fn read_back(addr: &str, topic: &str) -> HashMap<(i32, i64), u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "soak-read-back")
        .set("enable.auto.commit", "false")
        .create()
        .expect("read-back consumer");
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign");
    let total: i64 = ends.values().sum();
    let mut got = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (got.len() as i64) < total && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let seq = m
                .payload()
                .and_then(|v| std::str::from_utf8(v.get(..12)?).ok()?.parse().ok())
                .unwrap_or(u64::MAX);
            got.insert((m.partition(), m.offset()), seq);
        }
    }
    got
}

fn main() {
    let seconds = support::arg::<u64>("--seconds", 300);
    let sample = support::arg::<u64>("--sample-seconds", 10).max(1);
    let rate = support::arg::<u64>("--rate", 2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut broker, addr, log) = start(dir.path());
    let pid = broker.id();
    println!(
        "soak: broker pid {pid} at {addr}; {seconds} s, {rate} records/s per producer (acks {})",
        ACKS.join(", ")
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .expect("admin client");
    let names: Vec<String> = ACKS.iter().map(|a| format!("soak-acks-{a}")).collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for r in rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("create topics")
    {
        r.expect("topic created");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let producers: Vec<_> = ACKS
        .iter()
        .map(|&acks| {
            let (a, s, c) = (addr.clone(), stop.clone(), counters.clone());
            thread::spawn(move || (acks, produce(a, acks, rate, s, c)))
        })
        .collect();
    let mut others = Vec::new();
    for id in 0..3 {
        let (a, s, c) = (addr.clone(), stop.clone(), counters.clone());
        others.push(thread::spawn(move || churning_member(a, id, s, c)));
    }
    let (a, s, c) = (addr.clone(), stop.clone(), counters.clone());
    others.push(thread::spawn(move || churn_topics(a, s, c)));
    let (a, s, c) = (addr.clone(), stop.clone(), counters.clone());
    others.push(thread::spawn(move || malformed(a, s, c)));

    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9}",
        "t (s)", "RSS MiB", "sent", "acked", "consumed", "rejoins", "topics", "malformed"
    );
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut died = None;
    while started.elapsed() < Duration::from_secs(seconds) {
        thread::sleep(Duration::from_secs(sample));
        if let Ok(Some(status)) = broker.try_wait() {
            died = Some(status);
            break;
        }
        let t = started.elapsed().as_secs();
        let rss = support::rss_kib(pid);
        samples.push((t, rss));
        let c = &counters;
        println!(
            "{:>6} {:>9.1} {:>10} {:>10} {:>10} {:>8} {:>7} {:>9}",
            t,
            rss as f64 / 1024.0,
            c.sent.load(Ordering::Relaxed),
            c.acked.load(Ordering::Relaxed),
            c.consumed.load(Ordering::Relaxed),
            c.rejoins.load(Ordering::Relaxed),
            c.topics.load(Ordering::Relaxed),
            c.malformed.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(&str, Acked)> = producers
        .into_iter()
        .map(|h| h.join().expect("producer thread"))
        .collect();
    for h in others {
        h.join().expect("load thread");
    }

    let mut ok = true;
    if let Some(status) = died {
        println!("FAILED: the broker exited during the run ({status})");
        ok = false;
    }
    println!();
    for (acks, acked) in acked.iter().filter(|(a, _)| *a != "0") {
        let topic = format!("soak-acks-{acks}");
        let acked = acked.lock().expect("acked lock");
        let stored = read_back(&addr, &topic);
        let missing = acked
            .iter()
            .filter(|(at, seq)| stored.get(at) != Some(seq))
            .count();
        println!(
            "{topic}: {} acknowledged, {} stored, {missing} acknowledged records missing or changed",
            acked.len(),
            stored.len()
        );
        ok &= missing == 0;
    }
    let failed = counters.failed.load(Ordering::Relaxed);
    println!("delivery failures reported to producers: {failed}");

    // Memory after warm-up (the first minute): flat means the last sample is within half
    // again of the lowest one.
    let warm: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= 60)
        .map(|&(_, r)| r)
        .collect();
    if let (Some(&low), Some(&high), Some(&last)) =
        (warm.iter().min(), warm.iter().max(), warm.last())
    {
        println!(
            "RSS after the first minute: lowest {:.1} MiB, highest {:.1} MiB, last {:.1} MiB",
            low as f64 / 1024.0,
            high as f64 / 1024.0,
            last as f64 / 1024.0
        );
        if last * 2 > low * 3 {
            println!("FAILED: resident memory kept growing");
            ok = false;
        }
    }
    let log = log.lock().expect("log lock");
    println!(
        "broker log: {} connections closed for what they sent; otherwise {} WARN, {} ERROR lines{}",
        log.closed,
        log.warn,
        log.error,
        if log.first.is_empty() {
            ""
        } else {
            "; the first ones:"
        }
    );
    for l in &log.first {
        println!("  {l}");
    }
    if log.error > 0 {
        println!("FAILED: the broker logged errors");
        ok = false;
    }
    drop(log);
    let _ = broker.kill();
    let _ = broker.wait();
    if !ok {
        std::process::exit(1);
    }
}
