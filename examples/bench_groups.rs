//! Measures the group coordinator with raw Kafka protocol requests, in one run on this machine:
//! how long a group of 1, 10 and 100 members takes to become Stable, and OffsetCommit latency at
//! a steady rate and maximum throughput.
//!
//!     cargo build --release && cargo run --release --example bench_groups -- [--rounds N]
//!         [--heartbeat-ms MS] [--rate PER_S] [--seconds S] [--burst-seconds S]
//!
//! It starts `target/release/klamm` (or `$KLAMM_BIN`) itself on a free port with a temporary
//! data directory and `group.initial.rebalance.delay.ms=0`. Every member is a thread with its
//! own connection that behaves as a consumer does: the two-step JoinGroup of v4+, SyncGroup
//! (the leader with everyone's assignment), and heartbeats that send it back to JoinGroup when a
//! rebalance starts. Absolute numbers on shared machines are noisy: compare runs made on the
//! same machine, one after the other.

mod support;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use support::wire::{
    assignments, create_topic, frame, join_alone, join_request, read_response, s, Conn,
    HEARTBEAT_V, ILLEGAL_GENERATION, JOIN_V, MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS, SYNC_V,
};
use support::{arg, ms, quantile, sorted};

const LEAVE_V: i16 = 5;
const COMMIT_V: i16 = 9;

const TOPIC: &str = "bench-groups";
const TOPIC_PARTITIONS: i32 = 4;

/// Starts a broker whose groups rebalance as soon as every member has joined.
fn start(dir: &std::path::Path) -> (Child, String) {
    let (child, addr, lines) = support::start(dir, &["group.initial.rebalance.delay.ms=0"]);
    support::drain(lines);
    (child, addr)
}

/// A member that has its assignment for a generation.
struct Synced {
    member_id: String,
    generation: i32,
    /// How many members the generation has; only the leader learns it.
    members: Option<usize>,
    at: Instant,
}

/// The second JoinGroup of the two-step join, then JoinGroup/SyncGroup until synced, then
/// heartbeats until `done`, rejoining whenever a heartbeat or sync reports a rebalance.
/// Returns when its second JoinGroup was sent.
fn run_member(
    addr: String,
    group: String,
    ready: Arc<Barrier>,
    synced: mpsc::Sender<Synced>,
    done: Arc<AtomicBool>,
    heartbeat: Duration,
) -> Instant {
    let mut conn = Conn::connect(&addr);
    let first = conn.call(&join_request(&group, "", TOPIC), JOIN_V);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "first JoinGroup");
    let member_id = first.member_id.to_string();
    // Every member holds its id before any of them rejoins with it.
    ready.wait();
    let rejoined = Instant::now();
    'membership: loop {
        let joined = conn.call(&join_request(&group, &member_id, TOPIC), JOIN_V);
        assert_eq!(joined.error_code, 0, "JoinGroup");
        let generation = joined.generation_id;
        let leader = joined.leader == joined.member_id;
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(joined.protocol_name.clone())
            .with_assignments(if leader {
                let ids: Vec<String> = joined
                    .members
                    .iter()
                    .map(|m| m.member_id.to_string())
                    .collect();
                assignments(TOPIC, TOPIC_PARTITIONS, &ids)
            } else {
                Vec::new()
            });
        let out = conn.call(&sync, SYNC_V);
        let at = Instant::now();
        match out.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
            e => panic!("SyncGroup: error {e}"),
        }
        let _ = synced.send(Synced {
            member_id: member_id.clone(),
            generation,
            members: leader.then_some(joined.members.len()),
            at,
        });
        let mut next = Instant::now() + heartbeat;
        while !done.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::sleep((next - now).min(Duration::from_millis(5)));
                continue;
            }
            let hb = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(generation)
                .with_member_id(s(&member_id));
            match conn.call(&hb, HEARTBEAT_V).error_code {
                0 => next += heartbeat,
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue 'membership,
                e => panic!("Heartbeat: error {e}"),
            }
        }
        return rejoined;
    }
}

/// One group of `n` members from nothing to Stable. Returns the time from the last member's
/// second JoinGroup to the last SyncGroup response of the generation with every member, and
/// that generation's number (1 when the first rebalance already had everyone).
fn form_group(addr: &str, group: &str, n: usize, heartbeat: Duration) -> (Duration, i32) {
    let ready = Arc::new(Barrier::new(n));
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let members: Vec<_> = (0..n)
        .map(|_| {
            let (addr, group) = (addr.to_string(), group.to_string());
            let (ready, done, tx) = (ready.clone(), done.clone(), tx.clone());
            std::thread::spawn(move || run_member(addr, group, ready, tx, done, heartbeat))
        })
        .collect();
    drop(tx);
    let mut by_generation: HashMap<i32, Vec<Synced>> = HashMap::new();
    let mut sizes: HashMap<i32, usize> = HashMap::new();
    let stable = loop {
        let s = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("group did not become Stable within 120 s");
        let g = s.generation;
        if let Some(size) = s.members {
            sizes.insert(g, size);
        }
        by_generation.entry(g).or_default().push(s);
        if sizes.get(&g) == Some(&n) && by_generation[&g].len() == n {
            break g;
        }
    };
    done.store(true, Ordering::Relaxed);
    let last_rejoin = members
        .into_iter()
        .map(|m| m.join().expect("member thread"))
        .max()
        .expect("members");
    let synced = &by_generation[&stable];
    let last_sync = synced.iter().map(|s| s.at).max().expect("synced");
    // Leave all at once so the group does not linger until its sessions expire.
    let mut conn = Conn::connect(addr);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(
            synced
                .iter()
                .map(|m| MemberIdentity::default().with_member_id(s(&m.member_id)))
                .collect(),
        );
    let _ = conn.call(&leave, LEAVE_V);
    (last_sync.duration_since(last_rejoin), stable)
}

/// The one stable member whose offsets the commit benchmarks write.
struct Committer {
    group: String,
    member_id: String,
    generation: i32,
}

fn single_member(addr: &str, group: &str) -> Committer {
    let mut conn = Conn::connect(addr);
    let (member_id, generation) = join_alone(&mut conn, group, TOPIC, TOPIC_PARTITIONS);
    Committer {
        group: group.to_string(),
        member_id,
        generation,
    }
}

impl Committer {
    fn request(&self, partition: i32, offset: i64) -> OffsetCommitRequest {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(s(&self.member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)])])
    }
}

fn commit_error(resp: &OffsetCommitResponse) -> i16 {
    resp.topics[0].partitions[0].error_code
}

/// Paced commits on one connection: request `i` is due at `start + i / rate` and is sent then
/// whether or not earlier answers arrived, so a slow answer delays nothing after it and each
/// latency counts from the time the request was due. Returns the achieved rate and the sorted
/// latencies in ms.
fn paced_commits(addr: &str, c: &Committer, rate: usize, seconds: usize) -> (f64, Vec<f64>) {
    let count = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let conn = Conn::connect(addr);
    let mut writer = conn.stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(conn.stream);
    let frames: Vec<BytesMut> = (0..count)
        .map(|i| frame(&c.request(0, i as i64), COMMIT_V, i as i32))
        .collect();
    let start = Instant::now() + Duration::from_millis(10);
    let sender = std::thread::spawn(move || {
        for (i, f) in frames.iter().enumerate() {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            writer.write_all(f).expect("write");
        }
    });
    let mut latencies = Vec::with_capacity(count);
    let mut last = start;
    for i in 0..count {
        let (correlation, resp) = read_response::<OffsetCommitRequest>(&mut reader, COMMIT_V);
        last = Instant::now();
        assert_eq!(correlation, i as i32, "responses out of order");
        assert_eq!(commit_error(&resp), 0, "OffsetCommit");
        latencies.push(ms(last - (start + interval * i as u32)));
    }
    sender.join().expect("sender");
    (
        count as f64 / (last - start).as_secs_f64(),
        sorted(latencies),
    )
}

/// Commits as fast as one request at a time allows, on `connections` connections (each its own
/// partition) for `seconds`. Returns commits/s and the sorted latencies in ms.
fn unpaced_commits(
    addr: &str,
    c: &Arc<Committer>,
    connections: usize,
    seconds: usize,
) -> (f64, Vec<f64>) {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds as u64);
    let workers: Vec<_> = (0..connections)
        .map(|k| {
            let (addr, c) = (addr.to_string(), c.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::connect(&addr);
                let mut latencies = Vec::new();
                let mut offset = 0i64;
                while Instant::now() < end {
                    let req = c.request(k as i32 % TOPIC_PARTITIONS, offset);
                    let sent = Instant::now();
                    let resp = conn.call(&req, COMMIT_V);
                    latencies.push(ms(sent.elapsed()));
                    assert_eq!(commit_error(&resp), 0, "OffsetCommit");
                    offset += 1;
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    (latencies.len() as f64 / elapsed, sorted(latencies))
}

fn main() {
    let rounds = arg::<usize>("--rounds", 5);
    let heartbeat = Duration::from_millis(arg::<usize>("--heartbeat-ms", 3000) as u64);
    let rate = arg::<usize>("--rate", 1000);
    let seconds = arg::<usize>("--seconds", 10);
    let burst = arg::<usize>("--burst-seconds", 3);

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = start(dir.path());
    let mut admin = Conn::connect(&addr);
    create_topic(&mut admin, TOPIC, TOPIC_PARTITIONS, &[]);

    let mut summary = Vec::new();
    println!(
        "group formation, group.initial.rebalance.delay.ms=0, heartbeat every {} ms, {rounds} rounds:",
        heartbeat.as_millis()
    );
    for n in [1, 10, 100] {
        let mut times = Vec::new();
        let mut generations = Vec::new();
        for round in 0..rounds {
            let (t, g) = form_group(&addr, &format!("bench-{n}-{round}"), n, heartbeat);
            times.push(ms(t));
            generations.push(g);
        }
        println!(
            "  {n:>3} members: {} ms (generations {:?})",
            times
                .iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(" "),
            generations
        );
        let t = sorted(times);
        summary.push(format!(
            "  {n:>3} members to Stable: median {:.1} ms, max {:.1} ms, generations {}..={}",
            quantile(&t, 0.5),
            t[t.len() - 1],
            generations.iter().min().expect("rounds"),
            generations.iter().max().expect("rounds"),
        ));
    }

    let committer = Arc::new(single_member(&addr, "bench-commits"));
    // Warm up the connection path and the offsets partition before measuring.
    let _ = unpaced_commits(&addr, &committer, 1, 1);
    let (achieved, lat) = paced_commits(&addr, &committer, rate, seconds);
    summary.push(format!(
        "  OffsetCommit paced at {rate}/s for {seconds} s: achieved {achieved:.0}/s, latency median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat[lat.len() - 1]
    ));
    for connections in [1, 4] {
        let (throughput, lat) = unpaced_commits(&addr, &committer, connections, burst);
        summary.push(format!(
            "  OffsetCommit unpaced, {connections} connection(s), one request in flight each, {burst} s: {throughput:.0}/s, latency median {:.2} ms, p99 {:.2} ms",
            quantile(&lat, 0.5),
            quantile(&lat, 0.99)
        ));
    }
    let _ = child.kill();
    let _ = child.wait();

    println!("summary:");
    for line in summary {
        println!("{line}");
    }
}
