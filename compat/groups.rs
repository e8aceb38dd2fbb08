//! Consumer groups with librdkafka (through the `rdkafka` crate) against a real `klamm`
//! process: partitions spread over members and move when one dies, several groups on one
//! topic, committed offsets across broker restarts, each assignor, static membership and the
//! initial rebalance delay.
//!
//! Consumers that must be killable run as processes of their own: this test binary, started
//! again with `CHILD_ENV` set, runs one subscribed consumer (see `consumer_process`) and
//! reports on stdout what it was assigned and what it read. With `KLAMM_GROUP_DEBUG` set (to
//! librdkafka `debug` contexts, e.g. `cgrp`), failures also show those processes' client logs.

#[path = "../protocol-tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use support::Klamm;

/// Upper bound for any single wait, so a misbehaving broker fails a test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The smallest session timeout the broker accepts by default; members die this fast.
const SESSION_TIMEOUT: Duration = Duration::from_millis(6000);
/// Rebalances in these tests should not wait for stragglers that are not coming.
const NO_DELAY: &str = "group.initial.rebalance.delay.ms=0";
/// Set in a consumer process's environment: its topic, then its settings as `key=value` lines.
const CHILD_ENV: &str = "KLAMM_GROUP_CHILD";
/// Prefixes the lines a consumer process reports, to tell them from the test harness's output.
const MARK: &str = "@klamm-child";

type Partitions = BTreeSet<i32>;
/// A message by partition and offset.
type At = (i32, i64);

// ---------------------------------------------------------------------------------------------
// The consumer process.

/// Not a test of its own: the entry point of the consumer processes the other tests start.
/// Without `CHILD_ENV` it returns at once.
#[test]
fn consumer_process() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_consumer_process(&spec);
    }
}

/// Reports every rebalance callback, with the protocol librdkafka chose, and the assignment
/// whenever it changes.
#[derive(Default)]
struct Reporter {
    reported: Mutex<Option<Partitions>>,
}

impl Reporter {
    fn report_assignment(&self, consumer: &BaseConsumer<Self>) {
        let Ok(tpl) = consumer.assignment() else {
            return;
        };
        let now = partitions_of(&tpl);
        let mut reported = self.reported.lock().unwrap();
        if reported.as_ref() != Some(&now) {
            report(&format!("assignment {}", list(&now)));
            *reported = Some(now);
        }
    }
}

impl ClientContext for Reporter {
    // librdkafka's own log (enable with KLAMM_GROUP_DEBUG=cgrp,...) joins the report, so a
    // failing test can show what the client saw.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        report(&format!("log {level:?} {fac} {log_message}"));
    }
}

impl ConsumerContext for Reporter {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => report(&format!(
                "revoke {} {}",
                protocol_name(consumer),
                list(&partitions_of(tpl))
            )),
            Rebalance::Error(e) => report(&format!("error rebalance: {e}")),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // The new assignment first: once the test sees the callback, it sees its effect.
            self.report_assignment(consumer);
            report(&format!(
                "assign {} {}",
                protocol_name(consumer),
                list(&partitions_of(tpl))
            ));
        }
    }
}

fn protocol_name(consumer: &BaseConsumer<Reporter>) -> &'static str {
    match consumer.rebalance_protocol() {
        RebalanceProtocol::Eager => "eager",
        RebalanceProtocol::Cooperative => "cooperative",
        RebalanceProtocol::None => "none",
    }
}

fn report(line: &str) {
    println!("{MARK} {line}");
}

fn partitions_of(tpl: &TopicPartitionList) -> Partitions {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn list(ps: &Partitions) -> String {
    ps.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn run_consumer_process(spec: &str) {
    let mut lines = spec.lines();
    let topic = lines.next().expect("topic line");
    let mut cfg = ClientConfig::new();
    for line in lines {
        let (k, v) = line.split_once('=').expect("key=value");
        cfg.set(k, v);
    }
    if let Ok(debug) = std::env::var("KLAMM_GROUP_DEBUG") {
        cfg.set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let consumer: BaseConsumer<Reporter> = cfg
        .create_with_context(Reporter::default())
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    // The test holds our stdin. "close" asks for a clean leave; the end of input means the
    // test is gone: vanish at once, as a crash would, rather than linger as an orphan.
    let closing = Arc::new(AtomicBool::new(false));
    let flag = closing.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if line == "close" {
                flag.store(true, Ordering::SeqCst);
                return;
            }
        }
        std::process::exit(0);
    });
    let give_up = Instant::now() + Duration::from_secs(300);
    while !closing.load(Ordering::SeqCst) && Instant::now() < give_up {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => report(&format!("msg {} {}", m.partition(), m.offset())),
            Some(Err(e)) => report(&format!("error poll: {e}")),
        }
        consumer.context().report_assignment(&consumer);
    }
    // Dropping the consumer sends LeaveGroup.
    drop(consumer);
    report("closed");
}

// ---------------------------------------------------------------------------------------------
// The test side of a consumer process.

/// What a consumer process reported so far.
#[derive(Default)]
struct Seen {
    /// Its current assignment; `None` until it reported one.
    assignment: Option<Partitions>,
    /// Rebalance callbacks: "assign <protocol> <partitions>" and "revoke ...".
    rebalances: Vec<String>,
    /// Every assignment it reported, in order.
    history: Vec<Partitions>,
    msgs: Vec<At>,
    errors: Vec<String>,
    log: Vec<String>,
    exited: bool,
}

struct Member {
    name: String,
    child: Option<Child>,
    /// Held open: the process exits when it closes.
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
}

/// Settings of a group member: quick heartbeats so that rebalances spread fast, frequent
/// commits, and the smallest session timeout.
fn member_settings(
    bootstrap: &str,
    group: &str,
    name: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = [
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("client.id", name),
        (
            "session.timeout.ms",
            &SESSION_TIMEOUT.as_millis().to_string(),
        ),
        ("heartbeat.interval.ms", "500"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        s.retain(|(key, _)| key != k);
        s.push((k.to_string(), v.to_string()));
    }
    s
}

impl Member {
    fn start(name: &str, topic: &str, settings: &[(String, String)]) -> Member {
        let mut spec = topic.to_string();
        for (k, v) in settings {
            spec.push_str(&format!("\n{k}={v}"));
        }
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "consumer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn consumer process");
        let stdout = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may have begun a line of its own ("test consumer_process ... ").
                let Some(rest) = line.find(MARK).map(|i| &line[i + MARK.len()..]) else {
                    continue;
                };
                let rest = rest.trim();
                let (what, args) = rest.split_once(' ').unwrap_or((rest, ""));
                let mut s = sink.lock().unwrap();
                match what {
                    "msg" => {
                        let mut it = args.split(' ').map(|x| x.parse::<i64>().expect("number"));
                        let p = it.next().expect("partition") as i32;
                        s.msgs.push((p, it.next().expect("offset")));
                    }
                    "assignment" => {
                        let ps = parse_list(args);
                        s.history.push(ps.clone());
                        s.assignment = Some(ps);
                    }
                    "assign" | "revoke" => s.rebalances.push(rest.to_string()),
                    "log" => s.log.push(format!("{} {args}", stamp())),
                    "closed" => {}
                    _ => s.errors.push(rest.to_string()),
                }
            }
            sink.lock().unwrap().exited = true;
        });
        Member {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child: Some(child),
            seen,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    fn assignment(&self) -> Option<Partitions> {
        self.seen().assignment.clone()
    }

    fn rebalances(&self) -> Vec<String> {
        self.seen().rebalances.clone()
    }

    fn msgs(&self) -> Vec<At> {
        self.seen().msgs.clone()
    }

    /// A clean exit: the consumer leaves the group.
    fn close(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "close").expect("write to consumer process");
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + TIMEOUT;
            while c.try_wait().expect("consumer process status").is_none() {
                assert!(Instant::now() < deadline, "{} did not close", self.name);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.stdin = None;
    }

    /// SIGKILL: the process dies without leaving the group.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdin = None;
    }

    fn describe(&self) -> String {
        let s = self.seen();
        format!(
            "{}: assignment {:?}, {} messages, exited {}, rebalances {:?}, other {:?}",
            self.name,
            s.assignment,
            s.msgs.len(),
            s.exited || self.child.is_none(),
            s.rebalances,
            s.errors
        ) + &s
            .log
            .iter()
            .map(|l| format!("\n    {l}"))
            .collect::<String>()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wall-clock time of day, to line client logs up with the broker's.
fn stamp() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn parse_list(s: &str) -> Partitions {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().expect("partition"))
        .collect()
}

/// The protocol a rebalance callback line names, and its partitions.
fn parse_rebalance(line: &str) -> (&str, &str, Partitions) {
    let mut it = line.split(' ');
    let what = it.next().unwrap_or_default();
    let protocol = it.next().unwrap_or_default();
    (what, protocol, parse_list(it.next().unwrap_or_default()))
}

fn refs(ms: &[Member]) -> Vec<&Member> {
    ms.iter().collect()
}

fn live(ms: &[Member]) -> Vec<&Member> {
    ms.iter().filter(|m| m.child.is_some()).collect()
}

fn broker_log(k: &Klamm) -> String {
    k.log.lock().map(|l| l.join("\n")).unwrap_or_default()
}

fn describe_all(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.describe())
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Polls `check` until it yields a value; panics after `limit` with `describe()`.
fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}:\n  {}", describe());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `assignments` cover partitions `0..partitions` once each, as evenly as possible.
fn balanced(assignments: &[Partitions], partitions: i32) -> bool {
    let n = assignments.len() as i32;
    let (low, high) = (partitions / n, (partitions + n - 1) / n);
    let total: usize = assignments.iter().map(BTreeSet::len).sum();
    let union: Partitions = assignments.iter().flatten().copied().collect();
    total == partitions as usize
        && union == (0..partitions).collect()
        && assignments
            .iter()
            .all(|a| (low..=high).contains(&(a.len() as i32)))
}

/// Waits until `members` (all of one group) split the partitions evenly with none owned twice;
/// returns their assignments in order.
fn wait_balanced(what: &str, members: &[&Member], partitions: i32) -> Vec<Partitions> {
    wait_until(
        what,
        TIMEOUT,
        || {
            // A member still joining reports an empty assignment before its first assign
            // callback; with more members than partitions that could pass for an idle one.
            let done = members.iter().all(|m| {
                m.rebalances()
                    .last()
                    .is_some_and(|r| parse_rebalance(r).0 == "assign")
            });
            let a: Option<Vec<Partitions>> = members.iter().map(|m| m.assignment()).collect();
            a.filter(|a| done && balanced(a, partitions))
        },
        || describe_all(members),
    )
}

/// Waits until `members` (those of one group, dead ones included) have read every message in
/// `produced`, then a little longer, and checks that each was read exactly once and nothing
/// else was read. Returns who read each message.
fn check_read_once(members: &[&Member], produced: &BTreeSet<At>) -> BTreeMap<At, String> {
    let read = || {
        members
            .iter()
            .flat_map(|m| m.msgs().into_iter().map(|at| (at, m.name.clone())))
            .collect::<Vec<_>>()
    };
    wait_until(
        "every produced message to be read",
        TIMEOUT,
        || {
            let got: BTreeSet<At> = read().into_iter().map(|(at, _)| at).collect();
            produced.is_subset(&got).then_some(())
        },
        || {
            let got: BTreeSet<At> = read().into_iter().map(|(at, _)| at).collect();
            let missing: Vec<&At> = produced.difference(&got).take(10).collect();
            format!("missing e.g. {missing:?}\n  {}", describe_all(members))
        },
    );
    // Duplicates from a bad resume position would arrive right behind.
    std::thread::sleep(Duration::from_millis(700));
    for m in members {
        assert!(
            m.seen().errors.is_empty(),
            "consumer errors:\n  {}",
            m.describe()
        );
    }
    let mut by: BTreeMap<At, Vec<String>> = BTreeMap::new();
    for (at, name) in read() {
        by.entry(at).or_default().push(name);
    }
    let twice: Vec<_> = by
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .take(10)
        .collect();
    assert!(
        twice.is_empty(),
        "messages read more than once: {twice:?}\n  {}",
        describe_all(members)
    );
    let unexpected: Vec<_> = by.keys().filter(|at| !produced.contains(at)).collect();
    assert!(unexpected.is_empty(), "unexpected messages {unexpected:?}");
    by.into_iter()
        .map(|(at, mut who)| (at, who.remove(0)))
        .collect()
}

/// Checks that each message of `batch` was read by the member that owns its partition.
fn check_owners(
    read_by: &BTreeMap<At, String>,
    batch: &BTreeSet<At>,
    owners: &[(&str, &Partitions)],
) {
    for at in batch {
        let owner = owners
            .iter()
            .find(|(_, ps)| ps.contains(&at.0))
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("nobody owns partition {}", at.0));
        assert_eq!(read_by[at], owner, "reader of {at:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Broker-side helpers: topics, producing, committed offsets.

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

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = wait("CreateTopics", admin.create_topics([&topic], &opts)).expect("CreateTopics");
    assert_eq!(results, vec![Ok(name.to_string())]);
}

/// Produces `per_partition` messages to each of partitions `0..partitions`; returns where
/// they landed.
fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) -> BTreeSet<At> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = format!("message {i} of partition {p}");
            let record = FutureRecord::<(), _>::to(topic)
                .partition(p)
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
            pending.push(delivery);
        }
    }
    wait("delivery reports", async move {
        let mut out = BTreeSet::new();
        for d in pending {
            let d = d
                .await
                .expect("delivery report dropped")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
            out.insert((d.partition, d.offset));
        }
        out
    })
}

/// The next offset to read in each partition, after all of `produced`.
fn ends(produced: &BTreeSet<At>) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for &(p, o) in produced {
        let e = out.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    out
}

/// A consumer that only reads committed offsets (it never subscribes, so it joins nothing).
fn offsets_reader(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// The committed offsets and metadata of `group` for partitions `0..partitions`.
fn committed(
    c: &BaseConsumer<impl ConsumerContext>,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, (Offset, String)> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    got.elements()
        .iter()
        .map(|e| (e.partition(), (e.offset(), e.metadata().to_string())))
        .collect()
}

/// Waits until the group's committed offsets reach the ends of `produced`, so that whoever
/// takes a partition over starts behind everything already read.
fn wait_committed(bootstrap: &str, group: &str, topic: &str, produced: &BTreeSet<At>) {
    let reader = offsets_reader(bootstrap, group);
    let want: BTreeMap<i32, Offset> = ends(produced)
        .into_iter()
        .map(|(p, o)| (p, Offset::Offset(o)))
        .collect();
    let partitions = want.len() as i32;
    let current = || -> BTreeMap<i32, Offset> {
        committed(&reader, topic, partitions)
            .into_iter()
            .map(|(p, (o, _))| (p, o))
            .collect()
    };
    wait_until(
        "offsets to be committed",
        TIMEOUT,
        || (current() == want).then_some(()),
        || format!("want {want:?}, committed {:?}", current()),
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// Three members split six partitions; one is killed and the other two take its partitions
/// once its session expires; more members spread the partitions again, and a seventh live
/// member on six partitions gets none.
#[test]
fn members_share_partitions_and_take_over_from_a_dead_one() {
    let k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let (topic, group) = ("spread", "spread-group");
    create_topic(&b, topic, 6);
    let start = |name: &str| Member::start(name, topic, &member_settings(&b, group, name, &[]));

    let mut all = vec![start("a"), start("b"), start("c")];
    let three = wait_balanced("three members to own two partitions each", &refs(&all), 6);
    assert!(three.iter().all(|a| a.len() == 2), "{three:?}");
    let mut produced = produce(&b, topic, 6, 50);
    let read_by = check_read_once(&refs(&all), &produced);
    let names = ["a", "b", "c"];
    let owners: Vec<(&str, &Partitions)> = names.iter().copied().zip(&three).collect();
    check_owners(&read_by, &produced, &owners);
    wait_committed(&b, group, topic, &produced);

    // SIGKILL: no LeaveGroup, so only the session timeout tells the broker.
    let killed_at = Instant::now();
    all[2].kill();
    let two = wait_balanced(
        "the survivors to take over the dead member's partitions",
        &[&all[0], &all[1]],
        6,
    );
    let took = killed_at.elapsed();
    assert!(
        took < SESSION_TIMEOUT + Duration::from_secs(5),
        "takeover took {took:?}"
    );
    let batch = produce(&b, topic, 6, 50);
    produced.extend(&batch);
    // The new owners resume at the committed offsets: nothing is read twice.
    let read_by = check_read_once(&refs(&all), &produced);
    check_owners(&read_by, &batch, &[("a", &two[0]), ("b", &two[1])]);
    wait_committed(&b, group, topic, &produced);

    all.push(start("d"));
    all.push(start("e"));
    let four = wait_balanced("four members to share six partitions", &live(&all), 6);
    assert!(four.iter().all(|a| a.len() <= 2), "{four:?}");
    let batch = produce(&b, topic, 6, 20);
    produced.extend(&batch);
    let read_by = check_read_once(&refs(&all), &produced);
    let live_names = ["a", "b", "d", "e"];
    let owners: Vec<(&str, &Partitions)> = live_names.iter().copied().zip(&four).collect();
    check_owners(&read_by, &batch, &owners);
    wait_committed(&b, group, topic, &produced);

    all.push(start("f"));
    all.push(start("g"));
    all.push(start("h"));
    let seven = wait_balanced("seven members on six partitions", &live(&all), 6);
    assert_eq!(
        seven.iter().filter(|a| a.is_empty()).count(),
        1,
        "exactly one idle member: {seven:?}"
    );
    let batch = produce(&b, topic, 6, 20);
    produced.extend(&batch);
    let read_by = check_read_once(&refs(&all), &produced);
    let live_names = ["a", "b", "d", "e", "f", "g", "h"];
    let owners: Vec<(&str, &Partitions)> = live_names.iter().copied().zip(&seven).collect();
    check_owners(&read_by, &batch, &owners);
}

/// Two groups on one topic each read every message; the two members of one group split the
/// partitions.
#[test]
fn two_groups_each_read_everything() {
    let k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let topic = "shared";
    create_topic(&b, topic, 4);
    let start = |name: &str, group: &str| {
        Member::start(name, topic, &member_settings(&b, group, name, &[]))
    };
    let (a1, mut a2, solo) = (
        start("a1", "group-a"),
        start("a2", "group-a"),
        start("solo", "group-b"),
    );
    let split = wait_balanced("group-a to split the partitions", &[&a1, &a2], 4);
    assert!(split.iter().all(|a| a.len() == 2), "{split:?}");
    wait_balanced("group-b's only member to own everything", &[&solo], 4);
    let produced = produce(&b, topic, 4, 100);
    let read_by = check_read_once(&[&a1, &a2], &produced);
    check_owners(&read_by, &produced, &[("a1", &split[0]), ("a2", &split[1])]);
    check_read_once(&[&solo], &produced);

    // A member that leaves cleanly hands its partitions over at once, not after its session
    // timeout.
    let closed_at = Instant::now();
    a2.close();
    wait_balanced("the remaining member to own everything", &[&a1], 4);
    assert!(
        closed_at.elapsed() < SESSION_TIMEOUT / 2,
        "handover after a clean leave took {:?}",
        closed_at.elapsed()
    );
    let batch = produce(&b, topic, 4, 20);
    let mut all = produced.clone();
    all.extend(&batch);
    let read_by = check_read_once(&[&a1, &a2], &all);
    assert!(batch.iter().all(|at| read_by[at] == "a1"));
}

/// An in-process group member that commits only when told to.
fn manual_member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Reads until `expected` messages arrived, then a little longer so extra ones show up too.
fn read(c: &BaseConsumer, expected: usize) -> BTreeSet<At> {
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut linger_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if out.len() >= expected {
            if now >= *linger_until.get_or_insert(now + Duration::from_millis(700)) {
                break;
            }
        } else if now >= deadline {
            panic!(
                "read {} of {expected} messages before the deadline",
                out.len()
            );
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push((m.partition(), m.offset())),
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    let set: BTreeSet<At> = out.iter().copied().collect();
    assert_eq!(set.len(), out.len(), "a message was read twice: {out:?}");
    set
}

/// A member commits (its whole position, then chosen offsets with metadata) and the broker
/// restarts under it; the committed offsets survive, and a new member of the group starts
/// exactly there.
fn resumes_at_committed_offsets(bounce: fn(&mut Klamm)) {
    let mut k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let (topic, group) = ("resume", "resume-group");
    create_topic(&b, topic, 3);
    let first = produce(&b, topic, 3, 100);
    let a = manual_member(&b, group, topic);
    assert_eq!(read(&a, first.len()), first);
    a.commit_consumer_state(CommitMode::Sync)
        .expect("commit position");
    let at = |o: i64| (Offset::Offset(o), String::new());
    assert_eq!(
        committed(&a, topic, 3),
        BTreeMap::from([(0, at(100)), (1, at(100)), (2, at(100))])
    );

    let second = produce(&b, topic, 3, 100);
    assert_eq!(read(&a, second.len()), second);
    // Less than was read, so the rest must be read again.
    let chosen = [(0, 130), (1, 160), (2, 200)];
    let mut tpl = TopicPartitionList::new();
    for (p, o) in chosen {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .expect("tpl");
    }
    for mut e in tpl.elements() {
        let p = e.partition();
        e.set_metadata(format!("checkpoint of partition {p}"));
    }
    a.commit(&tpl, CommitMode::Sync)
        .expect("commit chosen offsets");
    let want: BTreeMap<i32, (Offset, String)> = chosen
        .iter()
        .map(|&(p, o)| {
            (
                p,
                (Offset::Offset(o), format!("checkpoint of partition {p}")),
            )
        })
        .collect();
    assert_eq!(committed(&a, topic, 3), want);

    bounce(&mut k);
    assert_eq!(k.bootstrap(), b, "restarted on the same port");
    // The member outlives the restart: it still sees its commits, and its leave on drop must
    // leave the group empty for the next member.
    assert_eq!(committed(&a, topic, 3), want, "after the restart");
    // Its membership was restored too: a commit of its generation is accepted.
    a.commit(&tpl, CommitMode::Sync)
        .expect("commit after the restart");
    drop(a);

    let c = manual_member(&b, group, topic);
    let expected: BTreeSet<At> = chosen
        .iter()
        .flat_map(|&(p, o)| (o..200).map(move |x| (p, x)))
        .collect();
    assert_eq!(read(&c, expected.len()), expected, "resumed reads");
    c.commit_consumer_state(CommitMode::Sync)
        .expect("commit position");
    // Nothing was read from partition 2, so its commit is not repeated and keeps its metadata.
    let mut now = want;
    now.insert(0, at(200));
    now.insert(1, at(200));
    assert_eq!(committed(&c, topic, 3), now);
}

#[test]
fn group_resumes_at_committed_offsets_after_clean_restart() {
    resumes_at_committed_offsets(|k| k.restart());
}

#[test]
fn group_resumes_at_committed_offsets_after_crash() {
    resumes_at_committed_offsets(|k| {
        k.kill();
        k.start_again();
    });
}

/// Three members with an eager assignor split six partitions as the assignor lays them out
/// (members sort by id, and ids start with the client id) and read everything once.
fn eager_assignor(strategy: &str, layout: [[i32; 2]; 3]) {
    let k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let topic = format!("assignor-{strategy}");
    let group = format!("group-{strategy}");
    create_topic(&b, &topic, 6);
    let strategy_setting = [("partition.assignment.strategy", strategy)];
    let ms: Vec<Member> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            Member::start(
                n,
                &topic,
                &member_settings(&b, &group, n, &strategy_setting),
            )
        })
        .collect();
    let refs: Vec<&Member> = ms.iter().collect();
    let got = wait_balanced("three members to split six partitions", &refs, 6);
    let want: Vec<Partitions> = layout.iter().map(|l| l.iter().copied().collect()).collect();
    assert_eq!(got, want, "{strategy} layout");
    for m in &ms {
        assert!(
            m.rebalances()
                .iter()
                .all(|r| parse_rebalance(r).1 == "eager"),
            "{}",
            m.describe()
        );
    }
    let produced = produce(&b, &topic, 6, 50);
    let read_by = check_read_once(&refs, &produced);
    let owners: Vec<(&str, &Partitions)> = ["a", "b", "c"].into_iter().zip(&got).collect();
    check_owners(&read_by, &produced, &owners);
}

#[test]
fn range_assignor() {
    eager_assignor("range", [[0, 1], [2, 3], [4, 5]]);
}

#[test]
fn roundrobin_assignor() {
    eager_assignor("roundrobin", [[0, 3], [1, 4], [2, 5]]);
}

/// cooperative-sticky: a third member joins and the first two give up only what moves to it,
/// through incremental revocations, keeping the rest.
#[test]
fn cooperative_sticky_assignor_rebalances_incrementally() {
    let k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let (topic, group) = ("assignor-cooperative", "group-cooperative");
    create_topic(&b, topic, 6);
    let strategy = [("partition.assignment.strategy", "cooperative-sticky")];
    let start = |n: &str| Member::start(n, topic, &member_settings(&b, group, n, &strategy));
    let (a, bm) = (start("a"), start("b"));
    let before = wait_balanced("two members to split six partitions", &[&a, &bm], 6);
    let mut produced = produce(&b, topic, 6, 50);
    check_read_once(&[&a, &bm], &produced);
    wait_committed(&b, group, topic, &produced);
    let seen_before = (a.rebalances().len(), bm.rebalances().len());

    let c = start("c");
    let after = wait_balanced("three members to split six partitions", &[&a, &bm, &c], 6);
    for (i, (m, seen)) in [(&a, seen_before.0), (&bm, seen_before.1)]
        .into_iter()
        .enumerate()
    {
        assert!(
            after[i].is_subset(&before[i]),
            "{} lost partitions it could keep: {:?} -> {:?}",
            m.name,
            before[i],
            after[i]
        );
        let rebalances = m.rebalances();
        assert!(
            rebalances
                .iter()
                .all(|r| parse_rebalance(r).1 == "cooperative"),
            "{}",
            m.describe()
        );
        // Only what moved was revoked, never the whole assignment.
        let revoked: Partitions = rebalances[seen..]
            .iter()
            .map(|r| parse_rebalance(r))
            .filter(|(what, _, _)| *what == "revoke")
            .flat_map(|(_, _, ps)| ps)
            .collect();
        let moved: Partitions = before[i].difference(&after[i]).copied().collect();
        assert_eq!(revoked, moved, "{}", m.describe());
        // A kept partition is never revoked and handed back; its history only shrinks.
        let history = m.seen().history.clone();
        assert!(
            history.iter().rev().take_while(|h| !h.is_empty()).count() >= 2,
            "{} went through an empty assignment: {history:?}",
            m.name
        );
    }
    let batch = produce(&b, topic, 6, 50);
    produced.extend(&batch);
    let read_by = check_read_once(&[&a, &bm, &c], &produced);
    let owners: Vec<(&str, &Partitions)> = ["a", "b", "c"].into_iter().zip(&after).collect();
    check_owners(&read_by, &batch, &owners);
}

/// Static members: the leader and a follower restart within the session timeout and take
/// their old places back without a rebalance; one that stays away longer loses its partitions.
fn static_member_restart_does_not_rebalance(strategy: &str, protocol: &str) {
    let k = Klamm::start(&[NO_DELAY]);
    let b = k.bootstrap();
    let topic = &format!("static-{strategy}");
    let group = &format!("static-group-{strategy}");
    create_topic(&b, topic, 6);
    let start = |n: &str| {
        let extra = [
            ("group.instance.id", n),
            ("partition.assignment.strategy", strategy),
        ];
        Member::start(n, topic, &member_settings(&b, group, n, &extra))
    };
    // s1 alone first, so that it is the leader: the leader's rejoin differs (it is sent the
    // members to assign).
    let mut ms = vec![start("s1")];
    wait_balanced("the first member to own everything", &refs(&ms), 6);
    ms.push(start("s2"));
    ms.push(start("s3"));
    let before = wait_balanced(
        "three static members to split six partitions",
        &refs(&ms),
        6,
    );
    let mut produced = produce(&b, topic, 6, 50);
    check_read_once(&refs(&ms), &produced);
    wait_committed(&b, group, topic, &produced);
    let s3_rebalances = ms[2].rebalances();

    let killed_at = Instant::now();
    ms[0].kill();
    ms[1].kill();
    ms.push(start("s1"));
    ms.push(start("s2"));
    for (i, old) in [(3, 0), (4, 1)] {
        let back = wait_until(
            "a restarted static member to get its partitions back",
            TIMEOUT,
            || ms[i].assignment().filter(|a| !a.is_empty()),
            || describe_all(&refs(&ms)),
        );
        assert_eq!(
            back,
            before[old],
            "{}'s assignment:\n  {}",
            ms[i].name,
            describe_all(&refs(&ms))
        );
    }
    assert!(
        killed_at.elapsed() < SESSION_TIMEOUT,
        "restarts took {:?}, longer than the session timeout",
        killed_at.elapsed()
    );
    // Past the old processes' session timeout: nobody noticed anything.
    std::thread::sleep((killed_at + SESSION_TIMEOUT + Duration::from_secs(2)) - Instant::now());
    let quiet = |m: &Member, want: &[String]| {
        assert_eq!(
            m.rebalances(),
            want,
            "{} saw a rebalance:\n  {}\nbroker log:\n{}",
            m.name,
            describe_all(&refs(&ms)),
            broker_log(&k)
        );
    };
    quiet(&ms[2], &s3_rebalances);
    quiet(&ms[3], &[format!("assign {protocol} {}", list(&before[0]))]);
    quiet(&ms[4], &[format!("assign {protocol} {}", list(&before[1]))]);
    assert_eq!(ms[2].assignment().as_ref(), Some(&before[2]));
    let batch = produce(&b, topic, 6, 50);
    produced.extend(&batch);
    let read_by = check_read_once(&refs(&ms), &produced);
    check_owners(
        &read_by,
        &batch,
        &[("s1", &before[0]), ("s2", &before[1]), ("s3", &before[2])],
    );
    wait_committed(&b, group, topic, &produced);

    // Away for good: after its session timeout its partitions go to the others.
    ms[2].kill();
    let two = wait_balanced("the others to take s3's partitions", &[&ms[3], &ms[4]], 6);
    let batch = produce(&b, topic, 6, 20);
    produced.extend(&batch);
    let read_by = check_read_once(&refs(&ms), &produced);
    check_owners(&read_by, &batch, &[("s1", &two[0]), ("s2", &two[1])]);
}

#[test]
fn static_members_restart_without_rebalance_range() {
    static_member_restart_does_not_rebalance("range", "eager");
}

#[test]
fn static_members_restart_without_rebalance_cooperative_sticky() {
    static_member_restart_does_not_rebalance("cooperative-sticky", "cooperative");
}

/// With the initial rebalance delay, members that arrive together join one generation: each
/// is assigned its share once, and nobody holds more in between.
#[test]
fn initial_rebalance_delay_gathers_the_first_members() {
    let k = Klamm::start(&["group.initial.rebalance.delay.ms=2000"]);
    let b = k.bootstrap();
    let (topic, group) = ("delayed", "delayed-group");
    create_topic(&b, topic, 6);
    let started = Instant::now();
    let ms: Vec<Member> = ["a", "b", "c"]
        .iter()
        .map(|n| Member::start(n, topic, &member_settings(&b, group, n, &[])))
        .collect();
    let refs: Vec<&Member> = ms.iter().collect();
    wait_balanced("three members to split six partitions", &refs, 6);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the first rebalance did not wait"
    );
    for m in &ms {
        let assigns = m
            .rebalances()
            .iter()
            .filter(|r| r.starts_with("assign "))
            .count();
        assert_eq!(assigns, 1, "{}", m.describe());
        assert!(
            m.seen().history.iter().all(|h| h.len() <= 2),
            "{}",
            m.describe()
        );
    }
}
