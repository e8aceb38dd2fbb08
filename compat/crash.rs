//! Crash safety against a real `klamm` process: an idempotent rdkafka producer keeps writing
//! while the broker is SIGKILLed over and over, and on-disk damage of the kinds a crash or a
//! bad disk leaves (corrupt, torn or padded log tails, lost or torn index files, half-written
//! metadata) is repaired at start-up without losing or serving anything it should not.

#[path = "../protocol-tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};

use support::Klamm;

const TIMEOUT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Runs `fut` with a deadline; rdkafka completes its futures from its own threads.
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

/// A consumer that reads by explicit assignment and verifies every batch's CRC, so a corrupt
/// batch served by the broker shows up as an error.
fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "klamm-crash-check")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("check.crcs", "true")
        // Reassigned readers must not wait out a long poll at the log end.
        .set("fetch.wait.max.ms", "10")
        // The crash test restarts the broker often; reconnect quickly.
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .expect("consumer")
}

/// One stored message.
#[derive(Clone, Debug, PartialEq)]
struct Rec {
    offset: i64,
    value: Vec<u8>,
    timestamp: i64,
}

/// Reads `topic`/`partition` from `from` up to (not including) `to`. Fails on any consumer
/// error, on a gap or repeat in the offsets, and when the end is not reached in time.
fn read_range(bootstrap: &str, topic: &str, partition: i32, from: i64, to: i64) -> Vec<Rec> {
    read_with(&consumer(bootstrap), topic, partition, from, to)
}

/// [`read_range`] with a given consumer; its assignment is replaced.
fn read_with(c: &BaseConsumer, topic: &str, partition: i32, from: i64, to: i64) -> Vec<Rec> {
    let mut out = Vec::new();
    if from >= to {
        return out;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = from;
    while next < to {
        assert!(
            Instant::now() < deadline,
            "{topic}/{partition}: reading [{from}, {to}) stalled at {next}"
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("{topic}/{partition}: consumer error at {next}: {e}"),
            Some(Ok(m)) => {
                assert_eq!(
                    m.offset(),
                    next,
                    "{topic}/{partition}: offsets must be contiguous"
                );
                let timestamp = match m.timestamp() {
                    Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                    Timestamp::NotAvailable => -1,
                };
                out.push(Rec {
                    offset: m.offset(),
                    value: m.payload().unwrap_or_default().to_vec(),
                    timestamp,
                });
                next += 1;
            }
        }
    }
    out
}

fn watermarks(c: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match c.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(w) => return w,
            // The broker may still be coming up, or the client reconnecting to it.
            Err(e) if Instant::now() < deadline => {
                eprintln!("watermarks of {topic}/{partition}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("watermarks of {topic}/{partition}: {e}"),
        }
    }
}

/// A small xorshift generator; the seed is printed so a failing run can be repeated with
/// `KLAMM_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("KLAMM_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ms() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        eprintln!("KLAMM_CRASH_SEED={seed}");
        Rng(seed.max(1))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------------------------
// Crash loop
// ---------------------------------------------------------------------------------------------

const CRASH_TOPIC: &str = "crashloop";
const CRASH_PARTITIONS: usize = 3;
/// Messages per second, at most. Uncapped, a debug build stores millions of messages in the
/// time the test has, too many to read back after every few kills; this still keeps the
/// broker busy and rolls segments many times per partition.
const MAX_RATE: f64 = 12_000.0;

/// Values are `<partition>:<sequence>:` and padding; the sequence counts sends per partition.
fn crash_value(partition: usize, seq: u64) -> String {
    format!("{partition}:{seq:010}:{}", "x".repeat(120))
}

fn parse_value(v: &[u8]) -> (usize, u64) {
    let s = std::str::from_utf8(v).expect("utf-8 value");
    let mut parts = s.splitn(3, ':');
    let p = parts.next().and_then(|p| p.parse().ok());
    let seq = parts.next().and_then(|q| q.parse().ok());
    match (p, seq) {
        (Some(p), Some(seq)) => (p, seq),
        _ => panic!("unexpected value {s:?}"),
    }
}

/// Every acknowledgement the producer received: per partition, offset → sequence.
#[derive(Default)]
struct Acks {
    acked: Mutex<Vec<BTreeMap<i64, u64>>>,
    problems: Mutex<Vec<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                // Runs on librdkafka's thread: record problems rather than panic there.
                let (p, seq) = parse_value(m.payload().unwrap_or_default());
                if p as i32 != m.partition() {
                    self.problems.lock().unwrap().push(format!(
                        "partition {p}'s message acknowledged on partition {}",
                        m.partition()
                    ));
                    return;
                }
                let mut acked = self.acked.lock().unwrap();
                if let Some(prev) = acked[p].insert(m.offset(), seq) {
                    self.problems.lock().unwrap().push(format!(
                        "partition {p} offset {} acknowledged for sequence {prev} and {seq}",
                        m.offset()
                    ));
                }
            }
            Err((e, m)) => self.problems.lock().unwrap().push(format!(
                "delivery to partition {} failed: {e}",
                m.partition()
            )),
        }
    }
}

/// Reads every partition from 0 to its high watermark and checks it against the
/// acknowledgements in `acked` (taken before the watermarks were): offsets contiguous from 0,
/// each value stored once and in send order, every acknowledged message at its offset.
/// Returns the high watermarks.
fn check_crash_log(bootstrap: &str, acked: &[BTreeMap<i64, u64>], when: &str) -> Vec<i64> {
    let c = consumer(bootstrap);
    let mut hwms = Vec::new();
    for (p, acked) in acked.iter().enumerate() {
        let (low, high) = watermarks(&c, CRASH_TOPIC, p as i32);
        assert_eq!(low, 0, "{when}: partition {p} starts at 0");
        let t = Instant::now();
        let records = read_range(bootstrap, CRASH_TOPIC, p as i32, 0, high);
        eprintln!(
            "{when}: read {high} from partition {p} in {:?}",
            t.elapsed()
        );
        let mut seen = HashSet::new();
        let mut last_seq = None;
        for r in &records {
            let (vp, seq) = parse_value(&r.value);
            assert_eq!(
                vp, p,
                "{when}: offset {} of partition {p} holds {vp}'s message",
                r.offset
            );
            assert!(
                seen.insert(seq),
                "{when}: partition {p} holds sequence {seq} twice (again at offset {})",
                r.offset
            );
            assert!(
                last_seq < Some(seq),
                "{when}: partition {p} offset {}: sequence {seq} after {last_seq:?}",
                r.offset
            );
            last_seq = Some(seq);
        }
        for (&offset, &seq) in acked {
            assert!(
                offset < high,
                "{when}: partition {p}: acknowledged offset {offset} (sequence {seq}) is gone, \
                 high watermark {high}"
            );
            let (_, stored) = parse_value(&records[offset as usize].value);
            assert_eq!(
                stored, seq,
                "{when}: partition {p} offset {offset} was acknowledged for sequence {seq}"
            );
        }
        hwms.push(high);
    }
    hwms
}

#[test]
fn idempotent_producer_survives_repeated_sigkill() {
    let started = Instant::now();
    let mut rng = Rng::from_env();
    // Recovery points written every second, so that restarts trust some segments and verify
    // the rest, rather than verifying everything.
    let mut k = Klamm::start(&["log.flush.offset.checkpoint.interval.ms=1"]);
    let bootstrap = k.bootstrap();
    create_topic(
        &bootstrap,
        CRASH_TOPIC,
        CRASH_PARTITIONS as i32,
        &[("segment.bytes", "1048576")],
    );

    let acks = Acks {
        acked: Mutex::new(vec![BTreeMap::new(); CRASH_PARTITIONS]),
        problems: Mutex::default(),
    };
    let producer: Arc<ThreadedProducer<Acks>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "20000")
            .set("message.timeout.ms", "60000")
            .set("request.timeout.ms", "10000")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "200")
            .set("retry.backoff.ms", "20")
            .set("retry.backoff.max.ms", "200")
            .create_with_context(acks)
            .expect("producer"),
    );

    // Produce as fast as the broker takes it (up to MAX_RATE), round-robin over the
    // partitions, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (producer, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = [0u64; CRASH_PARTITIONS];
            let mut i = 0usize;
            let begun = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if i as f64 > MAX_RATE * begun.elapsed().as_secs_f64() {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let p = i % CRASH_PARTITIONS;
                let value = crash_value(p, sent[p]);
                let record = BaseRecord::<(), _>::to(CRASH_TOPIC)
                    .partition(p as i32)
                    .payload(&value);
                match producer.send(record) {
                    Ok(()) => {
                        sent[p] += 1;
                        i += 1;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err((e, _)) => panic!("enqueue: {e}"),
                }
            }
            sent
        })
    };

    let acked_now = |producer: &ThreadedProducer<Acks>| -> Vec<BTreeMap<i64, u64>> {
        producer.context().acked.lock().unwrap().clone()
    };
    let acked_total =
        |a: &[BTreeMap<i64, u64>]| -> usize { a.iter().map(BTreeMap::len).sum::<usize>() };

    let watch = consumer(&bootstrap);
    let kills = 30;
    let mut stalled_rounds = 0;
    for round in 1..=kills {
        let before = acked_total(&acked_now(&producer));
        // Mostly long enough for segments to fill and roll; sometimes right after start-up.
        let uptime = if rng.below(5) == 0 {
            rng.below(60)
        } else {
            300 + rng.below(1200)
        };
        std::thread::sleep(Duration::from_millis(uptime));
        k.kill();
        let acked = acked_now(&producer);
        if acked_total(&acked) == before {
            stalled_rounds += 1;
        }
        let t = Instant::now();
        k.start_again();
        let t_start = t.elapsed();
        assert_eq!(k.bootstrap(), bootstrap, "restarted on the same port");
        // Nothing acknowledged may be missing after a restart.
        for (p, a) in acked.iter().enumerate() {
            if let Some((&offset, _)) = a.last_key_value() {
                let (_, high) = watermarks(&watch, CRASH_TOPIC, p as i32);
                assert!(
                    offset < high,
                    "after kill {round}: partition {p} lost acknowledged offset {offset} \
                     (high watermark {high})"
                );
            }
        }
        eprintln!(
            "round {round}: up {uptime} ms, start {t_start:?}, checked {:?}, acked {}",
            t.elapsed(),
            acked_total(&acked)
        );
        if round % 8 == 0 && round < kills {
            let hwms = check_crash_log(&bootstrap, &acked, &format!("after kill {round}"));
            eprintln!(
                "after kill {round} ({:.1} s): high watermarks {hwms:?}, {} acknowledged",
                started.elapsed().as_secs_f64(),
                acked_total(&acked)
            );
        }
    }

    // Let the producer make progress on a broker that stays up, then drain it.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender thread");
    producer
        .flush(Duration::from_secs(60))
        .expect("every message is delivered");
    let problems = producer.context().problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "delivery problems ({}): {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    let acked = acked_now(&producer);
    let hwms = check_crash_log(&bootstrap, &acked, "at the end");
    for p in 0..CRASH_PARTITIONS {
        // Everything sent was acknowledged and is stored exactly once, in order.
        assert_eq!(
            acked[p].len() as u64,
            sent[p],
            "partition {p}: all acknowledged"
        );
        assert_eq!(hwms[p] as u64, sent[p], "partition {p}: no extra messages");
    }
    assert!(
        stalled_rounds < kills / 2,
        "the producer made progress in most rounds ({stalled_rounds} of {kills} stalled)"
    );
    let per_partition: Vec<usize> = (0..CRASH_PARTITIONS)
        .map(|p| segment_files(&k.data_dir.join(format!("{CRASH_TOPIC}-{p}"))).len())
        .collect();
    assert!(
        per_partition.iter().all(|&n| n >= 3),
        "segments rolled repeatedly during the test: {per_partition:?} segments"
    );
    let segments: usize = per_partition.iter().sum();
    // Interrupted atomic writes (snapshots, checkpoints) leave nothing behind once the broker
    // has started again and stopped cleanly.
    k.stop();
    for p in 0..CRASH_PARTITIONS {
        let dir = k.data_dir.join(format!("{CRASH_TOPIC}-{p}"));
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(
                !name.ends_with(".tmp"),
                "half-written file {name} left in {}",
                dir.display()
            );
        }
    }
    let repairs = log_since(&k, 0)
        .iter()
        .filter(|l| l.contains("truncated a damaged log tail"))
        .count();
    eprintln!(
        "{kills} kills, {} messages, {segments} segments, {repairs} damaged tails truncated, {:.1} s",
        acked_total(&acked),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Damaged files
// ---------------------------------------------------------------------------------------------

/// Small segments so that the data spans several of them.
const DAMAGE_SEGMENT_BYTES: &str = "16384";

/// Segment files of a partition directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// A stored batch: where it starts in its segment file, its size and offsets.
#[derive(Debug, Clone, Copy)]
struct StoredBatch {
    pos: u64,
    size: u64,
    base_offset: i64,
    last_offset: i64,
}

/// Walks the RecordBatch headers of a segment file (base offset, length, last offset delta).
fn stored_batches(path: &Path) -> Vec<StoredBatch> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 61 <= bytes.len() {
        let base_offset = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let length = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
        let size = 12 + length as u64;
        assert!(
            pos as u64 + size <= bytes.len() as u64,
            "whole batches only"
        );
        out.push(StoredBatch {
            pos: pos as u64,
            size,
            base_offset,
            last_offset: base_offset + delta as i64,
        });
        pos += size as usize;
    }
    assert_eq!(pos, bytes.len(), "{} holds whole batches", path.display());
    out
}

/// The messages produced by [`produce_known`], in offset order.
struct Known {
    topic: String,
    records: Vec<Rec>,
}

/// Produces `n` messages with distinct, increasing CreateTimes (from an hour ago, 10 ms apart)
/// to partition 0, in groups so that batches hold several messages; checks they were
/// acknowledged at contiguous offsets from `first_offset`.
fn produce_known(bootstrap: &str, topic: &str, n: usize, first_offset: i64) -> Vec<Rec> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let base_ts = now_ms() - 3_600_000;
    let mut out = Vec::new();
    for group in (0..n).collect::<Vec<_>>().chunks(10) {
        let mut pending = Vec::new();
        for &i in group {
            let value = format!("{topic}-{i:06}-{}", "v".repeat(80));
            let ts = base_ts + 10 * i as i64;
            let record = FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload(&value)
                .timestamp(ts);
            let d = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue");
            pending.push((value, ts, d));
        }
        for (value, ts, d) in pending {
            let delivery = wait("delivery", d)
                .expect("delivery future")
                .map_err(|(e, _)| e)
                .expect("delivered");
            assert_eq!(delivery.partition, 0);
            out.push(Rec {
                offset: delivery.offset,
                value: value.into_bytes(),
                timestamp: ts,
            });
        }
    }
    for (i, r) in out.iter().enumerate() {
        assert_eq!(
            r.offset,
            first_offset + i as i64,
            "acknowledged offsets are contiguous"
        );
    }
    out
}

fn known_topic(k: &Klamm, topic: &str, n: usize) -> Known {
    create_topic(
        &k.bootstrap(),
        topic,
        1,
        &[("segment.bytes", DAMAGE_SEGMENT_BYTES)],
    );
    let records = produce_known(&k.bootstrap(), topic, n, 0);
    Known {
        topic: topic.to_string(),
        records,
    }
}

impl Known {
    fn dir(&self, k: &Klamm) -> PathBuf {
        k.data_dir.join(format!("{}-0", self.topic))
    }

    /// The partition serves exactly `expected` (from offset 0), and nothing after it.
    fn check_served(&self, k: &Klamm, expected: &[Rec], when: &str) {
        let end = expected.len() as i64;
        let (low, high) = watermarks(&consumer(&k.bootstrap()), &self.topic, 0);
        assert_eq!((low, high), (0, end), "{when}: watermarks");
        let got = read_range(&k.bootstrap(), &self.topic, 0, 0, end);
        for (g, want) in got.iter().zip(expected) {
            assert_eq!(g, want, "{when}: offset {}", want.offset);
        }
        let c = consumer(&k.bootstrap());
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(end))
            .unwrap();
        c.assign(&tpl).unwrap();
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            panic!(
                "{when}: served past the high watermark: {:?}",
                m.map(|m| m.offset())
            );
        }
    }
}

/// Lines the broker logged since `mark` (a length of its log).
fn log_since(k: &Klamm, mark: usize) -> Vec<String> {
    k.log.lock().unwrap()[mark..].to_vec()
}

fn log_len(k: &Klamm) -> usize {
    k.log.lock().unwrap().len()
}

fn assert_logged(k: &Klamm, mark: usize, needle: &str, when: &str) {
    let lines = log_since(k, mark);
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "{when}: expected a log line containing {needle:?}; logged:\n{}",
        lines.join("\n")
    );
}

/// Produces known data, SIGKILLs the broker, lets `damage` change the newest segment given
/// its last batch, restarts, and checks the repair was logged, exactly the first `keep(last)`
/// messages are served and the log continues after them.
fn tail_damage(
    topic: &str,
    damage: impl FnOnce(&Path, StoredBatch),
    keep: impl FnOnce(StoredBatch) -> i64,
) {
    let mut k = Klamm::start(&[]);
    let known = known_topic(&k, topic, 400);
    k.kill();
    let segments = segment_files(&known.dir(&k));
    assert!(segments.len() > 2, "the data spans several segments");
    let newest = segments.last().unwrap();
    let last = *stored_batches(newest)
        .last()
        .expect("newest segment holds batches");
    assert_eq!(last.last_offset, known.records.len() as i64 - 1);
    assert!(
        last.last_offset > last.base_offset,
        "the last batch holds several messages"
    );
    damage(newest, last);
    let mark = log_len(&k);
    k.start_again();
    assert_logged(&k, mark, "truncated a damaged log tail", topic);
    let end = keep(last);
    let mut expected = known.records[..end as usize].to_vec();
    known.check_served(&k, &expected, topic);
    // The log continues where the repair left it.
    expected.extend(produce_known(&k.bootstrap(), topic, 3, end));
    known.check_served(
        &k,
        &expected,
        &format!("{topic}: produced after the repair"),
    );
    k.restart();
    known.check_served(&k, &expected, &format!("{topic}: after a clean restart"));
}

#[test]
fn flipped_byte_in_last_batch_is_truncated() {
    tail_damage(
        "flipped",
        |segment, last| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(segment)
                .unwrap();
            // A byte in the middle of the records, covered by the CRC.
            let at = last.pos + 61 + (last.size - 61) / 2;
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
        },
        |last| last.base_offset,
    );
}

#[test]
fn torn_last_batch_is_truncated() {
    tail_damage(
        "torn",
        |segment, last| {
            let f = OpenOptions::new().write(true).open(segment).unwrap();
            f.set_len(last.pos + last.size / 2).unwrap();
        },
        |last| last.base_offset,
    );
}

#[test]
fn zeros_after_last_batch_are_truncated() {
    tail_damage(
        "zeros",
        |segment, _| {
            let mut f = OpenOptions::new().append(true).open(segment).unwrap();
            f.write_all(&[0u8; 100]).unwrap();
        },
        |last| last.last_offset + 1,
    );
}

/// Offsets and timestamps lookups over the whole log: consuming from offsets in the middle of
/// segments and around their ends, and ListOffsets by timestamp at and just before message
/// timestamps. `focus` lists segments whose every message is checked.
fn check_lookups(k: &Klamm, known: &Known, focus: &[PathBuf], when: &str) {
    let bootstrap = k.bootstrap();
    let n = known.records.len() as i64;
    let mut offsets: Vec<i64> = (0..n).step_by(37).collect();
    let segments = segment_files(&known.dir(k));
    for seg in &segments {
        let batches = stored_batches(seg);
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            continue;
        };
        // Segment edges, and the last messages, which lie after the last index entry.
        offsets.extend([
            first.base_offset,
            first.base_offset + 1,
            last.base_offset,
            last.last_offset,
        ]);
        if focus.contains(seg) {
            offsets.extend(first.base_offset..=last.last_offset);
        }
    }
    offsets.retain(|&o| o < n);
    offsets.sort_unstable();
    offsets.dedup();

    let c = consumer(&bootstrap);
    let mut wrong_times = Vec::new();
    for &o in &offsets {
        let want = &known.records[o as usize];
        for (query, what) in [(want.timestamp, "at"), (want.timestamp - 5, "before")] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&known.topic, 0, Offset::Offset(query))
                .unwrap();
            let found = c
                .offsets_for_times(tpl, TIMEOUT)
                .expect("offsets_for_times");
            let elem = found.find_partition(&known.topic, 0).expect("partition");
            assert_eq!(elem.error(), Ok(()), "{when}: offsets_for_times");
            if elem.offset() != Offset::Offset(o) {
                wrong_times.push(format!(
                    "timestamp {what} offset {o}: got {:?}",
                    elem.offset()
                ));
            }
        }
    }
    assert!(
        wrong_times.is_empty(),
        "{when}: ListOffsets by timestamp went wrong for {} of {} queries, e.g. {:?}",
        wrong_times.len(),
        offsets.len() * 2,
        &wrong_times[..wrong_times.len().min(8)]
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &known.topic,
        0,
        Offset::Offset(known.records.last().unwrap().timestamp + 1),
    )
    .unwrap();
    let found = c
        .offsets_for_times(tpl, TIMEOUT)
        .expect("offsets_for_times");
    assert_eq!(
        found.find_partition(&known.topic, 0).unwrap().offset(),
        Offset::End,
        "{when}: a timestamp after every message"
    );

    // Consuming from a middle offset starts exactly there. Sample to keep it quick.
    for &o in offsets.iter().step_by(3) {
        let got = read_with(&c, &known.topic, 0, o, (o + 3).min(n));
        assert_eq!(
            got[..],
            known.records[o as usize..(o + 3).min(n) as usize],
            "{when}: consuming from offset {o}"
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum IndexDamage {
    Delete,
    /// Cut to a length that is not a whole number of entries.
    Tear,
}

fn damage_indexes(segment: &Path, how: IndexDamage) {
    for (ext, entry) in [("index", 8u64), ("timeindex", 12u64)] {
        let path = segment.with_extension(ext);
        match how {
            IndexDamage::Delete => std::fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("remove {}: {e}", path.display())),
            IndexDamage::Tear => {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .unwrap();
                // Half an entry off the end, or a lone partial entry when it was short.
                let torn = if len >= entry {
                    len - entry / 2
                } else {
                    entry / 2
                };
                f.set_len(torn).unwrap();
                assert_ne!(torn % entry, 0);
            }
        }
    }
}

#[test]
fn lost_and_torn_indexes_are_rebuilt() {
    let mut k = Klamm::start(&[]);
    let known = known_topic(&k, "indexes", 1500);
    let segments = segment_files(&known.dir(&k));
    assert!(segments.len() >= 6, "the data spans several segments");
    // Undamaged first: lookups work on a clean restart and after a crash.
    check_lookups(&k, &known, &[], "before any restart");
    k.restart();
    check_lookups(&k, &known, &[], "after a clean restart");
    k.kill();
    k.start_again();
    check_lookups(&k, &known, &[], "after a crash");

    let newest = segments.last().unwrap().clone();
    let cases = [
        (
            IndexDamage::Delete,
            vec![segments[0].clone(), segments[2].clone()],
            false,
        ),
        (
            IndexDamage::Tear,
            vec![segments[1].clone(), segments[3].clone()],
            true,
        ),
        (IndexDamage::Delete, vec![newest.clone()], true),
        (IndexDamage::Tear, vec![newest.clone()], false),
        (
            IndexDamage::Delete,
            vec![segments[4].clone(), newest.clone()],
            true,
        ),
        (
            IndexDamage::Tear,
            vec![segments[0].clone(), newest.clone()],
            false,
        ),
    ];
    for (how, damaged, crash) in cases {
        let when = format!(
            "{how:?} indexes of {:?} after {}",
            damaged
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                .collect::<Vec<_>>(),
            if crash { "a crash" } else { "a clean stop" }
        );
        if crash {
            k.kill();
        } else {
            k.stop();
        }
        for seg in &damaged {
            damage_indexes(seg, how);
        }
        let mark = log_len(&k);
        k.start_again();
        if !crash {
            // After a clean stop indexes are trusted, so rebuilding one is worth a warning.
            // After a crash everything past the recovery point is rebuilt anyway.
            for seg in &damaged {
                let base = seg
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .parse::<i64>()
                    .unwrap();
                let reported = log_since(&k, mark).iter().any(|l| {
                    l.contains("rebuilt the segment's indexes")
                        && l.contains(&format!("segment={base}"))
                });
                assert!(
                    reported,
                    "{when}: expected a warning that segment {base}'s indexes were rebuilt; \
                     logged:\n{}",
                    log_since(&k, mark).join("\n")
                );
            }
        }
        known.check_served(&k, &known.records, &when);
        check_lookups(&k, &known, &damaged, &when);
        // The rebuilt files are whole again.
        for seg in &damaged {
            for (ext, entry) in [("index", 8u64), ("timeindex", 12u64)] {
                let len = std::fs::metadata(seg.with_extension(ext))
                    .unwrap_or_else(|e| panic!("{when}: {ext} of {}: {e}", seg.display()))
                    .len();
                assert_eq!(len % entry, 0, "{when}: {ext} holds whole entries");
            }
        }
    }
}

#[test]
fn half_written_metadata_is_removed() {
    let mut k = Klamm::start(&[]);
    let known = known_topic(&k, "meta", 200);
    k.kill();
    let topics = k.data_dir.join("__topics");
    let real = std::fs::read(topics.join("meta.toml")).expect("meta.toml");
    // A config change to `meta` and a create of `ghost`, both interrupted before the rename.
    let stray = [
        (topics.join("meta.tmp"), real[..real.len() / 2].to_vec()),
        (
            topics.join("ghost.tmp"),
            b"name = \"ghost\"\nid = \"".to_vec(),
        ),
    ];
    for (path, bytes) in &stray {
        std::fs::write(path, bytes).unwrap();
    }
    let mark = log_len(&k);
    k.start_again();
    assert_logged(&k, mark, "half-written metadata", "stray .tmp files");
    for (path, _) in &stray {
        assert!(!path.exists(), "{} was removed", path.display());
    }
    known.check_served(&k, &known.records, "after removing stray metadata");
    // The topic keeps its configuration; the interrupted create left no topic.
    let described = wait(
        "DescribeConfigs",
        admin(&k.bootstrap()).describe_configs(&[ResourceSpecifier::Topic("meta")], &admin_opts()),
    )
    .expect("DescribeConfigs");
    let resource = described[0].as_ref().expect("meta's configs");
    assert_eq!(
        resource
            .get("segment.bytes")
            .and_then(|e| e.value.as_deref()),
        Some(DAMAGE_SEGMENT_BYTES)
    );
    let metadata = consumer(&k.bootstrap())
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"meta"), "topics: {names:?}");
    assert!(!names.contains(&"ghost"), "topics: {names:?}");
}
