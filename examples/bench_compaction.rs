//! Measures what compacting a large partition costs the requests around it: heartbeat latency
//! of a consumer-group member and acks=all produce latency on another topic, first while
//! nothing compacts, then while one partition of a compacted topic (`--mib`, default 1024, of
//! keyed records in sealed segments) is compacted; `--rounds` times (default 5), each with a
//! topic of its own, and the figures of all rounds together.
//!
//!     cargo build --release && cargo run --release --example bench_compaction -- [--mib 1024]
//!         [--rounds 5] [--keys N] [--idle-seconds 10] [--producers 2]
//!         [--produce-interval-ms 10] [--heartbeat-ms 100] [--timeout-seconds 900]
//!
//! It starts `target/release/klamm` (or `$KLAMM_BIN`) itself on a free port with a temporary
//! data directory, with the cleaner enabled and waking every 100 ms. How compaction is held off
//! and then started: each round's topic B is created with `min.compaction.lag.ms` of a day, so
//! the cleaner finds nothing it may compact while B is filled and while the idle baseline is
//! measured; an IncrementalAlterConfigs that sets it to 0 then makes the whole of B
//! compactable, and the cleaner starts within its 100 ms backoff. That needs no broker restart
//! and no guess at how long the fill takes, and the load never stops between the two phases.
//!
//! The load, running from start to end: one group member (JoinGroup, SyncGroup, then
//! Heartbeat every `--heartbeat-ms`) and `--producers` producers, each on its own connection,
//! sending batches of 10 records of 100 bytes with acks=all to topic A's one partition every
//! `--produce-interval-ms` (the next one leaves when the last was answered, at the earliest).
//! Every round trip is recorded with the phase it started in. Each round then:
//!
//! 1. fills B (one partition, `segment.bytes` 64 MiB) with acks=1 batches of 1,000 records of
//!    1,000 bytes each, keys drawn at random from `--keys` (default a tenth of the records), so
//!    compaction removes about nine records in ten. Then `segment.ms` is set to 1 ms and one
//!    more record is produced, which rolls the active segment: everything filled is sealed, and
//!    the cleaner never touches the active segment. `sync(2)` then writes the fill's dirty
//!    pages, so their writeback does not fall into the baseline;
//! 2. measures the idle baseline for `--idle-seconds`;
//! 3. measures during compaction: from the config change until the broker logs `compacted` for
//!    B. The compaction's duration is that interval, so it includes up to one backoff of waiting.
//!
//! Rounds are there because 1 GiB compacts in a few seconds here: one round has only some
//! forty heartbeats during compaction. Earlier rounds' topics stay, compacted, with the delete
//! policy from then on so that the cleaner leaves them alone. The filled segments are still in
//! the page cache when they are compacted (the machine has the memory), so this measures the
//! cleaner's CPU and writes, not cold reads. Absolute numbers on shared machines are noisy:
//! compare runs made on the same machine, one after the other.

mod support;

use std::io::{BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::ChildStderr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use support::wire::{
    create_topic, join_alone, s, set_topic_configs, Conn, HEARTBEAT_V, ILLEGAL_GENERATION,
    REBALANCE_IN_PROGRESS,
};
use support::{arg, field, ms, quantile, sorted};

const TOPIC_A: &str = "bench-compaction-a";
/// Round `r` compacts topic `bench-compaction-b<r>`.
const TOPIC_B: &str = "bench-compaction-b";
const GROUP: &str = "bench-compaction";
const PRODUCE_V: i16 = 9;

const FILL_VALUE_BYTES: usize = 1000;
const FILL_BATCH_RECORDS: usize = 1000;
/// acks=1 fill requests in flight on the one connection.
const FILL_WINDOW: usize = 4;
const SEGMENT_BYTES: u64 = 64 << 20;
const MIB: f64 = (1u64 << 20) as f64;

/// What a sample is counted in: neither phase (warm-up, fill), the baseline, or compaction.
const OTHER: u8 = 0;
const IDLE: u8 = 1;
const COMPACTING: u8 = 2;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// `(key, value)` records as one uncompressed batch, stamped now.
fn batch(records: impl Iterator<Item = (Option<Bytes>, Bytes)>) -> Bytes {
    support::wire::record_batch(records, now_ms()).freeze()
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn produce_error(resp: &ProduceResponse) -> i16 {
    resp.responses[0].partition_responses[0].error_code
}

/// splitmix64: reproducible keys without a dependency.
struct Keys(u64);

impl Keys {
    fn next(&mut self, space: u64) -> Bytes {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Bytes::from(format!("key-{:010}", (z ^ (z >> 31)) % space))
    }
}

/// Fills `topic` with `batches` acks=1 batches, `FILL_WINDOW` in flight. Returns the bytes sent.
fn fill(addr: &str, topic: &str, batches: usize, key_space: u64, keys: &mut Keys) -> u64 {
    let mut conn = Conn::connect(addr);
    let value = Bytes::from(vec![b'v'; FILL_VALUE_BYTES]);
    let mut sent = 0u64;
    let mut in_flight = 0;
    for _ in 0..batches {
        let records =
            batch((0..FILL_BATCH_RECORDS).map(|_| (Some(keys.next(key_space)), value.clone())));
        sent += records.len() as u64;
        conn.send(&produce_request(topic, 1, records), PRODUCE_V);
        in_flight += 1;
        if in_flight == FILL_WINDOW {
            let (_, resp) = conn.recv::<ProduceRequest>(PRODUCE_V);
            assert_eq!(produce_error(&resp), 0, "fill {topic}");
            in_flight -= 1;
        }
    }
    for _ in 0..in_flight {
        let (_, resp) = conn.recv::<ProduceRequest>(PRODUCE_V);
        assert_eq!(produce_error(&resp), 0, "fill {topic}");
    }
    sent
}

/// Seals `topic`'s active segment: with `segment.ms` at 1 the next append rolls it.
fn roll(addr: &str, topic: &str) {
    let mut conn = Conn::connect(addr);
    set_topic_configs(&mut conn, topic, &[("segment.ms", "1")]);
    thread::sleep(Duration::from_millis(10));
    let one = batch(std::iter::once((
        Some(Bytes::from_static(b"roll")),
        Bytes::from_static(b"x"),
    )));
    let resp = conn.call(&produce_request(topic, 1, one), PRODUCE_V);
    assert_eq!(produce_error(&resp), 0, "roll {topic}");
    // Back to a week, so nothing else rolls.
    set_topic_configs(&mut conn, topic, &[("segment.ms", "604800000")]);
}

/// Segment files of `topic`'s partition and their total size.
fn segments(dir: &Path, topic: &str) -> (usize, u64) {
    let entries = std::fs::read_dir(dir.join(format!("{topic}-0"))).expect("partition dir");
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .fold((0, 0), |(n, bytes), e| {
            (n + 1, bytes + e.metadata().map(|m| m.len()).unwrap_or(0))
        })
}

/// Round trips in ms, each with the phase it started in.
type Samples = Vec<(u8, f64)>;

/// One member alone in a group: heartbeats every `every` until `stop`, rejoining when told to.
fn member(addr: String, every: Duration, phase: Arc<AtomicU8>, stop: Arc<AtomicBool>) -> Samples {
    let mut conn = Conn::connect(&addr);
    let mut samples = Vec::new();
    'join: while !stop.load(Ordering::Relaxed) {
        let (member_id, generation) = join_alone(&mut conn, GROUP, TOPIC_A, 1);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id));
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                thread::sleep((next - now).min(Duration::from_millis(20)));
                continue;
            }
            next += every;
            let p = phase.load(Ordering::Relaxed);
            let sent = Instant::now();
            let code = conn.call(&hb, HEARTBEAT_V).error_code;
            samples.push((p, ms(sent.elapsed())));
            match code {
                0 => {}
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => {
                    println!("  heartbeat: error {code}, rejoining");
                    continue 'join;
                }
                e => panic!("Heartbeat: error {e}"),
            }
        }
    }
    samples
}

/// Small acks=all batches to A, one every `every` at most, until `stop`.
fn producer(addr: String, every: Duration, phase: Arc<AtomicU8>, stop: Arc<AtomicBool>) -> Samples {
    let mut conn = Conn::connect(&addr);
    let value = Bytes::from(vec![b'a'; 100]);
    let req = produce_request(TOPIC_A, -1, batch((0..10).map(|_| (None, value.clone()))));
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            thread::sleep(next - now);
        }
        next = Instant::now() + every;
        let p = phase.load(Ordering::Relaxed);
        let sent = Instant::now();
        let resp = conn.call(&req, PRODUCE_V);
        samples.push((p, ms(sent.elapsed())));
        assert_eq!(produce_error(&resp), 0, "produce to {TOPIC_A}");
    }
    samples
}

/// What the broker logged when it compacted a partition of a round's topic.
struct Compacted {
    topic: String,
    at: Instant,
    removed: u64,
    kept: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// Reads the broker's log: `compacted` lines of the rounds' topics go to `done`, WARN and ERROR
/// lines are kept.
fn watch_log(
    lines: Lines<BufReader<ChildStderr>>,
    done: mpsc::Sender<Compacted>,
    problems: Arc<Mutex<Vec<String>>>,
) {
    thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                problems.lock().expect("log lock").push(line);
                continue;
            }
            let Some(topic) = field(&line, "topic") else {
                continue;
            };
            if !line.contains(" compacted ") || !topic.starts_with(TOPIC_B) {
                continue;
            }
            let n = |k: &str| field(&line, k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let _ = done.send(Compacted {
                topic: topic.to_string(),
                at: Instant::now(),
                removed: n("removed"),
                kept: n("kept"),
                bytes_before: n("bytes_before"),
                bytes_after: n("bytes_after"),
            });
        }
    });
}

/// Sample count, p50, p99 and max of one phase; `None` without samples.
fn stats(samples: &[Samples], phase: u8) -> Option<(usize, [f64; 3])> {
    let v = sorted(
        samples
            .iter()
            .flatten()
            .filter(|(p, _)| *p == phase)
            .map(|&(_, ms)| ms)
            .collect(),
    );
    (!v.is_empty()).then(|| {
        (
            v.len(),
            [quantile(&v, 0.5), quantile(&v, 0.99), v[v.len() - 1]],
        )
    })
}

/// Two rows (idle, compacting) and their ratio; `seconds` is each phase's total length.
fn print_rows(name: &str, samples: &[Samples], seconds: [f64; 2]) {
    let idle = stats(samples, IDLE);
    let busy = stats(samples, COMPACTING);
    for (label, st, secs) in [("idle", idle, seconds[0]), ("compacting", busy, seconds[1])] {
        match st {
            Some((n, q)) => println!(
                "{name:<22} {label:<11} {n:>6} {:>7.1} {:>9.2} {:>9.2} {:>9.2}",
                n as f64 / secs,
                q[0],
                q[1],
                q[2]
            ),
            None => println!("{name:<22} {label:<11} {:>6}", 0),
        }
    }
    if let (Some((_, a)), Some((_, b))) = (idle, busy) {
        println!(
            "{name:<22} {:<11} {:>6} {:>7} {:>8.1}x {:>8.1}x {:>8.1}x",
            "ratio",
            "",
            "",
            b[0] / a[0],
            b[1] / a[1],
            b[2] / a[2]
        );
    }
}

/// One round's figures.
struct Round {
    idle: Duration,
    busy: Duration,
}

/// What every round needs: the broker, the phase the load's samples are counted in, the
/// broker's `compacted` lines, and the options.
struct Run {
    addr: String,
    dir: PathBuf,
    pid: u32,
    phase: Arc<AtomicU8>,
    done: mpsc::Receiver<Compacted>,
    batches: usize,
    key_space: u64,
    idle: Duration,
    timeout: Duration,
}

impl Run {
    /// Fills a fresh topic B, measures the baseline, then compaction. Prints one line.
    fn round(&self, n: usize, keys: &mut Keys) -> Round {
        let topic = format!("{TOPIC_B}{n}");
        let mut admin = Conn::connect(&self.addr);
        create_topic(
            &mut admin,
            &topic,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", &SEGMENT_BYTES.to_string()),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "86400000"),
            ],
        );
        let started = Instant::now();
        let sent = fill(&self.addr, &topic, self.batches, self.key_space, keys);
        let filled = started.elapsed();
        roll(&self.addr, &topic);
        let synced = Instant::now();
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let synced = synced.elapsed();
        let (files, _) = segments(&self.dir, &topic);
        thread::sleep(Duration::from_secs(1));

        let cpu = support::cpu_seconds(self.pid);
        self.phase.store(IDLE, Ordering::Relaxed);
        let idle_start = Instant::now();
        let mut idle_rss = 0;
        while idle_start.elapsed() < self.idle {
            thread::sleep(Duration::from_millis(100));
            idle_rss = idle_rss.max(support::rss_kib(self.pid));
        }
        let idle = idle_start.elapsed();
        let cpu_idle = support::cpu_seconds(self.pid) - cpu;

        let cpu = support::cpu_seconds(self.pid);
        self.phase.store(COMPACTING, Ordering::Relaxed);
        let busy_start = Instant::now();
        set_topic_configs(&mut admin, &topic, &[("min.compaction.lag.ms", "0")]);
        let mut busy_rss = 0;
        let compacted = loop {
            match self.done.recv_timeout(Duration::from_millis(100)) {
                Ok(c) if c.topic == topic => break c,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    busy_rss = busy_rss.max(support::rss_kib(self.pid));
                    assert!(
                        busy_start.elapsed() < self.timeout,
                        "{topic} not compacted within {} s",
                        self.timeout.as_secs()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the broker's log ended"),
            }
        };
        self.phase.store(OTHER, Ordering::Relaxed);
        let busy = compacted.at - busy_start;
        let cpu_busy = support::cpu_seconds(self.pid) - cpu;
        let (_, on_disk) = segments(&self.dir, &topic);
        println!(
            "round {n}: filled {:.0} MiB in {:.1} s, sync {:.1} s, {files} segment files",
            sent as f64 / MIB,
            filled.as_secs_f64(),
            synced.as_secs_f64(),
        );
        println!(
            "  compacted {:.1} -> {:.1} MiB ({:.1} MiB on disk) in {:.1} s: {} records removed, {} kept",
            compacted.bytes_before as f64 / MIB,
            compacted.bytes_after as f64 / MIB,
            on_disk as f64 / MIB,
            busy.as_secs_f64(),
            compacted.removed,
            compacted.kept,
        );
        println!(
            "  broker CPU {:.0}% idle, {:.0}% compacting; peak RSS {:.0} MiB idle, {:.0} MiB compacting",
            cpu_idle / idle.as_secs_f64() * 100.0,
            cpu_busy / busy.as_secs_f64() * 100.0,
            idle_rss as f64 / 1024.0,
            busy_rss as f64 / 1024.0,
        );
        Round { idle, busy }
    }
}

fn main() {
    let mib = arg::<u64>("--mib", 1024);
    let rounds = arg::<usize>("--rounds", 5).max(1);
    let producers = arg::<usize>("--producers", 2);
    let produce_every = Duration::from_millis(arg::<u64>("--produce-interval-ms", 10));
    let heartbeat_every = Duration::from_millis(arg::<u64>("--heartbeat-ms", 100));
    // One batch's size decides how many make `--mib`.
    let batch_bytes = batch((0..FILL_BATCH_RECORDS).map(|_| {
        (
            Some(Keys(0).next(1)),
            Bytes::from(vec![0; FILL_VALUE_BYTES]),
        )
    }))
    .len() as u64;
    let batches = ((mib << 20) / batch_bytes).max(1) as usize;
    let records = (batches * FILL_BATCH_RECORDS) as u64;

    let dir = tempfile::tempdir().expect("temp dir");
    let (child, addr, lines) = support::start(
        dir.path(),
        &[
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.enable=true",
            "log.cleaner.backoff.ms=100",
        ],
    );
    let mut broker = support::KillOnDrop(child);
    let pid = broker.0.id();
    let (done_tx, done) = mpsc::channel();
    let problems = Arc::new(Mutex::new(Vec::new()));
    watch_log(lines, done_tx, problems.clone());
    create_topic(&mut Conn::connect(&addr), TOPIC_A, 1, &[]);
    let phase = Arc::new(AtomicU8::new(OTHER));
    let run = Run {
        addr: addr.clone(),
        dir: dir.path().to_path_buf(),
        pid,
        phase: phase.clone(),
        done,
        batches,
        key_space: arg::<u64>("--keys", (records / 10).max(1)),
        idle: Duration::from_secs(arg::<u64>("--idle-seconds", 10)),
        timeout: Duration::from_secs(arg::<u64>("--timeout-seconds", 900)),
    };
    println!(
        "bench_compaction: broker pid {pid}; {rounds} rounds of {records} records under {} keys ({batches} batches of {:.2} MiB, acks=1); {producers} acks=all producers every {} ms, a heartbeat every {} ms",
        run.key_space,
        batch_bytes as f64 / MIB,
        produce_every.as_millis(),
        heartbeat_every.as_millis()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (p, st, a) = (phase.clone(), stop.clone(), addr.clone());
    let heartbeats = thread::spawn(move || member(a, heartbeat_every, p, st));
    let producing: Vec<_> = (0..producers)
        .map(|_| {
            let (p, st, a) = (phase.clone(), stop.clone(), addr.clone());
            thread::spawn(move || producer(a, produce_every, p, st))
        })
        .collect();

    let mut keys = Keys(42);
    let (mut idle, mut busy) = (Duration::ZERO, Duration::ZERO);
    for n in 0..rounds {
        let r = run.round(n, &mut keys);
        idle += r.idle;
        busy += r.busy;
    }
    stop.store(true, Ordering::Relaxed);
    let heartbeats = vec![heartbeats.join().expect("member thread")];
    let produced: Vec<Samples> = producing
        .into_iter()
        .map(|h| h.join().expect("producer thread"))
        .collect();
    broker.stop();

    println!();
    println!(
        "{:<22} {:<11} {:>6} {:>7} {:>9} {:>9} {:>9}",
        "latency (ms)", "phase", "n", "per s", "p50", "p99", "max"
    );
    let secs = [idle.as_secs_f64(), busy.as_secs_f64()];
    print_rows(
        &format!("heartbeat /{}ms", heartbeat_every.as_millis()),
        &heartbeats,
        secs,
    );
    print_rows(&format!("produce acks=all x{producers}"), &produced, secs);
    let problems = problems.lock().expect("log lock");
    if !problems.is_empty() {
        println!("\nthe broker logged {} WARN/ERROR lines:", problems.len());
        for l in problems.iter().take(10) {
            println!("  {l}");
        }
    }
}
