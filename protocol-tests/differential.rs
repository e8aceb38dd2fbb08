//! Differential test: the same requests to Apache Kafka and to Klamm, and their responses
//! compared field by field.
//!
//! One Kafka (from `KAFKA_HOME`, see `compat/kafka/dist.sh`) and one Klamm start side by side,
//! configured alike where it matters. Each case sends one request to both (built from the
//! kafka-protocol types, with per-broker values such as member ids filled in by the case) and
//! compares the decoded responses through their `Debug` trees (`support::diff`), after
//! normalising only what must differ between two brokers (see [`RULES`]).
//!
//! Kafka is the reference. A difference we keep on purpose is listed, with its reason, in
//! `protocol-tests/differences.txt`; any other difference fails the test, and so does a listed
//! difference that no longer occurs (a stale entry would hide a regression later and mislead
//! readers now).
//!
//! Run: `KAFKA_HOME=$PWD/target/kafka/4.4.0 cargo test --release --test differential -- --nocapture`

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as AlterResource, AlterableConfig as AlterConfig,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Compression, Record};
use support::client::{creatable_topic, encode_batch, record};
use support::diff::{self, Difference, Rules, ABSENT};
use support::{ApacheKafka, Conn, Klamm};
use uuid::Uuid;

/// Settings both brokers get, so that the defaults these requests observe agree.
const ALIKE: &[&str] = &[
    // Auto-created topics and CreateTopics with -1 partitions get this many.
    "num.partitions=3",
    "default.replication.factor=1",
    "auto.create.topics.enable=true",
    // Set (to its default) so that broker-level synonyms include a static value.
    "log.retention.hours=168",
    // Kafka's default of 3 s would hold every first JoinGroup of a new group.
    "group.initial.rebalance.delay.ms=0",
    // One node: internal topics with one replica (Klamm ignores the key).
    "offsets.topic.replication.factor=1",
    // Fewer than Kafka's default 50, so creating `__consumer_offsets` is quick on both.
    "offsets.topic.num.partitions=5",
    // Both brokers are node 1, so node ids (leaders, replicas, coordinators) compare as is.
    "node.id=1",
];

/// What must differ between two brokers, and so is not compared (or only by presence).
/// Generated UUIDs (topic ids; the random part of member ids) are masked by `diff::normalise`:
/// each broker makes its own, but whether one is there, and the zero UUID, are compared.
const RULES: Rules = Rules {
    drop: &[
        // Quota throttling; neither broker throttles these requests, and Kafka may report a
        // time for a request it held (e.g. a delayed response).
        "throttle_time_ms",
        // Each broker listens on its own free port (both advertise 127.0.0.1).
        "port",
    ],
    presence: &[
        // Messages are prose for people: we compare that there is one, not its words. Where
        // Kafka has none, one from Klamm is fine too (see `Run::check`).
        "error_message",
        "batch_index_error_message",
        // Each cluster has its own random id.
        "cluster_id",
        // Config documentation is prose too (compared by presence: every config has some).
        "documentation",
    ],
};

const PROTOCOL_TYPE: &str = "consumer";
const SESSION_MS: i32 = 30_000;
/// Timestamps of the records these tests produce: fixed, so both logs hold the same bytes.
const T0: i64 = 1_700_000_000_000;

/// Config resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

// Shapes of the case tables below.
/// A topic to create: name, partitions, configs.
type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);
/// A config resource to describe: type, name, keys (all when `None`).
type Resource<'a> = (i8, &'a str, Option<&'a [&'a str]>);
/// A resource to change incrementally: type, name, (key, operation, value) changes.
type IncResourceSpec<'a> = (i8, &'a str, Vec<(&'a str, i8, Option<&'a str>)>);
/// A resource to replace: type, name, (key, value) pairs.
type AlterResourceSpec<'a> = (i8, &'a str, Vec<(&'a str, Option<&'a str>)>);
/// Topics and partitions of one group in OffsetFetch (all when `None`).
type GroupTopics<'a> = &'a [(&'a str, &'a [i32])];
/// Builds an OffsetCommit for one broker (member ids and generations differ).
type MakeCommit = Box<dyn Fn(&Side) -> OffsetCommitRequest>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

// ---------------------------------------------------------------------------------------------
// The harness: two brokers, one request at a time to both, differences collected.
// ---------------------------------------------------------------------------------------------

/// One broker under comparison, with the values it generated that later requests echo.
struct Side {
    name: &'static str,
    addr: std::net::SocketAddr,
    conn: Conn,
    /// Member ids by label (each broker hands out its own).
    members: HashMap<String, String>,
    /// Group generations by label.
    generations: HashMap<String, i32>,
    topic_ids: HashMap<String, Uuid>,
}

/// A connection whose reads give up after a few seconds: every request here is answered at once
/// (long polls wait 0 ms), and a broker that neither answers nor closes should not stall the run.
fn connect(addr: std::net::SocketAddr) -> Conn {
    let conn = Conn::connect(addr);
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .expect("set read timeout");
    conn
}

impl Side {
    fn call<R: Request>(&mut self, req: &R, version: i16) -> Option<R::Response> {
        let resp = self.conn.try_call(req, version);
        if resp.is_none() {
            self.conn = connect(self.addr);
        }
        resp
    }
    fn member(&self, label: &str) -> String {
        self.members.get(label).cloned().unwrap_or_default()
    }
    fn generation(&self, label: &str) -> i32 {
        self.generations.get(label).copied().unwrap_or(-1)
    }
    fn topic_id(&self, topic: &str) -> Uuid {
        self.topic_ids.get(topic).copied().unwrap_or_default()
    }
}

/// A difference found, with the case it came from.
struct Found {
    case: String,
    diff: Difference,
}

impl Found {
    /// What a line of `differences.txt` matches against: `path: only in Kafka`,
    /// `path: only in Klamm`, or `path: kafka=<value> klamm=<value>`.
    fn what(&self) -> String {
        let d = &self.diff;
        if d.klamm == ABSENT {
            format!("{}: only in Kafka", d.path)
        } else if d.kafka == ABSENT {
            format!("{}: only in Klamm", d.path)
        } else {
            format!("{}: kafka={} klamm={}", d.path, d.kafka, d.klamm)
        }
    }
}

struct Run {
    kafka_log: std::path::PathBuf,
    kafka: Side,
    klamm: Side,
    compared: usize,
    per_api: BTreeMap<String, usize>,
    found: Vec<Found>,
}

impl Run {
    fn new(kafka: &ApacheKafka, klamm: &Klamm) -> Run {
        let side = |name, addr| Side {
            name,
            addr,
            conn: connect(addr),
            members: HashMap::new(),
            generations: HashMap::new(),
            topic_ids: HashMap::new(),
        };
        Run {
            kafka_log: kafka.log_path(),
            kafka: side("kafka", kafka.addr),
            klamm: side("klamm", klamm.addr),
            compared: 0,
            per_api: BTreeMap::new(),
            found: Vec::new(),
        }
    }

    /// Sends the request `make` builds for each broker, compares the responses and returns
    /// them (Kafka's first).
    fn compare<R>(
        &mut self,
        case: &str,
        version: i16,
        make: impl Fn(&Side) -> R,
    ) -> [R::Response; 2]
    where
        R: Request,
        R::Response: Debug + Clone + Default,
    {
        self.compare_with(case, version, make, |_, _| {})
    }

    /// As `compare`, with `reconcile` run on both responses first, for differences that are
    /// fine by a rule that plain equality cannot express (e.g. "a subset of Kafka's versions").
    fn compare_with<R>(
        &mut self,
        case: &str,
        version: i16,
        make: impl Fn(&Side) -> R,
        reconcile: impl Fn(&mut R::Response, &mut R::Response),
    ) -> [R::Response; 2]
    where
        R: Request,
        R::Response: Debug + Clone + Default,
    {
        let api = ApiKey::try_from(R::KEY)
            .map_or_else(|_| format!("api{}", R::KEY), |k| format!("{k:?}"));
        let case = format!("{api} v{version} {case}");
        let t = Instant::now();
        // A broker that closes the connection instead of answering is a difference too; the
        // side that did gets a fresh connection and a default response to go on with.
        let kafka = self.kafka.call(&make(&self.kafka), version);
        let klamm = self.klamm.call(&make(&self.klamm), version);
        if kafka.is_none() != klamm.is_none() {
            let said = |r: &Option<R::Response>| {
                if r.is_some() {
                    "answered"
                } else {
                    "no answer"
                }
            };
            self.found.push(Found {
                case: case.clone(),
                diff: Difference {
                    path: "<connection>".into(),
                    kafka: said(&kafka).into(),
                    klamm: said(&klamm).into(),
                },
            });
        }
        let (mut a, mut b) = (kafka.unwrap_or_default(), klamm.unwrap_or_default());
        if t.elapsed() > Duration::from_secs(1) {
            println!("  slow: {case} took {:.1}s", t.elapsed().as_secs_f64());
        }
        let (ra, rb) = (a.clone(), b.clone());
        reconcile(&mut a, &mut b);
        self.check(&case, &a, &b);
        *self.per_api.entry(api).or_default() += 1;
        [ra, rb]
    }

    /// The same request to both.
    fn same<R>(&mut self, case: &str, version: i16, req: R) -> [R::Response; 2]
    where
        R: Request + Clone,
        R::Response: Debug + Clone + Default,
    {
        self.compare(case, version, move |_| req.clone())
    }

    fn check<T: Debug>(&mut self, case: &str, kafka: &T, klamm: &T) {
        self.compared += 1;
        // DIFFERENTIAL_DUMP=<case pattern> prints both responses in full, for a closer look.
        if std::env::var("DIFFERENTIAL_DUMP").is_ok_and(|p| diff::glob(&p, case)) {
            println!("=== {case}\n--- kafka: {kafka:#?}\n--- klamm: {klamm:#?}");
        }
        let (mut a, mut b) = (diff::tree(kafka), diff::tree(klamm));
        diff::normalise(&mut a, &RULES);
        diff::normalise(&mut b, &RULES);
        for d in diff::diff(&a, &b) {
            // Klamm may explain an error Kafka leaves bare (clients print a message when there
            // is one and the error's name otherwise); it must never be silent where Kafka speaks.
            let field = d.path.rsplit('.').next().unwrap_or_default();
            if RULES.presence.contains(&field)
                && field.ends_with("message")
                && d.kafka == diff::NONE
                && d.klamm == diff::PRESENT
            {
                continue;
            }
            self.found.push(Found {
                case: case.to_string(),
                diff: d,
            });
        }
    }

    /// Runs a step on both brokers without comparing (set-up whose success is asserted).
    fn both<T>(&mut self, mut f: impl FnMut(&mut Side) -> T) -> [T; 2] {
        [f(&mut self.kafka), f(&mut self.klamm)]
    }

    /// Reports every difference against the expected list and fails on any surprise.
    fn finish(self, started: Instant) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol-tests/differences.txt"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut expected = parse_expected(&text);
        let mut unexpected = Vec::new();
        let mut kept = 0;
        for f in &self.found {
            let what = f.what();
            match expected
                .iter_mut()
                .find(|e| diff::glob(&e.case, &f.case) && diff::glob(&e.what, &what))
            {
                Some(e) => {
                    e.hits += 1;
                    kept += 1;
                }
                None => unexpected.push(f),
            }
        }
        let stale: Vec<&Expected> = expected.iter().filter(|e| e.hits == 0).collect();

        println!();
        println!(
            "differential: compared {} requests with Apache Kafka in {:.1}s",
            self.compared,
            started.elapsed().as_secs_f64()
        );
        for (api, n) in &self.per_api {
            println!("  {api:<28} {n:>4}");
        }
        println!(
            "differences: {} found, {kept} listed in differences.txt, {} unexpected, {} stale entries",
            self.found.len(),
            unexpected.len(),
            stale.len()
        );
        for e in &expected {
            if e.hits > 0 {
                println!(
                    "  kept ({}x) {} | {}  — {}",
                    e.hits, e.case, e.what, e.reason
                );
            }
        }
        for f in &unexpected {
            println!("  UNEXPECTED {} | {}", f.case, f.what());
        }
        for e in &stale {
            println!(
                "  STALE differences.txt:{}: {} | {} (no longer occurs: remove it)",
                e.line, e.case, e.what
            );
        }
        if !unexpected.is_empty() {
            // Kafka's own complaints help explain a difference (e.g. a closed connection).
            let log = std::fs::read_to_string(&self.kafka_log).unwrap_or_default();
            let errors: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("Exception"))
                .collect();
            if !errors.is_empty() {
                println!("Kafka logged {} errors; the last ones:", errors.len());
                for line in errors.iter().rev().take(20).rev() {
                    println!("  | {line}");
                }
            }
        }
        assert!(
            unexpected.is_empty() && stale.is_empty(),
            "{} unexpected differences from Apache Kafka and {} stale entries in differences.txt (listed above)",
            unexpected.len(),
            stale.len()
        );
    }
}

/// One line of `differences.txt`: `case pattern | difference pattern | reason`.
struct Expected {
    line: usize,
    case: String,
    what: String,
    reason: String,
    hits: usize,
}

fn parse_expected(text: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, " | ").map(str::trim).collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| !p.is_empty()),
            "differences.txt:{}: want `case | difference | reason`, got {line:?}",
            n + 1
        );
        out.push(Expected {
            line: n + 1,
            case: parts[0].to_string(),
            what: parts[1].to_string(),
            reason: parts[2].to_string(),
            hits: 0,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Set-up helpers (run on both brokers, not compared).
// ---------------------------------------------------------------------------------------------

fn topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    creatable_topic(name, partitions, configs)
}

fn create_topics(topics: Vec<CreatableTopic>) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
}

/// Waits until every partition of `topic` answers ListOffsets without error (Kafka's brokers
/// learn about new partitions shortly after the controller commits them) and records its id.
fn await_topic(side: &mut Side, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let md = side.conn.call(
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(tn(topic)))
                ]))
                .with_allow_auto_topic_creation(false),
            12,
        );
        let t = &md.topics[0];
        if t.error_code == 0 && !t.partitions.is_empty() {
            side.topic_ids.insert(topic.to_string(), t.topic_id);
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_timestamp(-1)
                            })
                            .collect(),
                    )]);
            let lo = side.conn.call(&req, 7);
            if lo.topics[0].partitions.iter().all(|p| p.error_code == 0) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: topic {topic} not ready: {md:?}",
            side.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates topics on both brokers (not compared) and waits until they serve requests.
fn setup_topics(run: &mut Run, topics: &[TopicSpec]) {
    run.both(|side| {
        let req = create_topics(topics.iter().map(|(n, p, c)| topic(n, *p, c)).collect());
        let resp = side.conn.call(&req, 7);
        for t in &resp.topics {
            assert_eq!(
                t.error_code, 0,
                "{}: create {:?}: {:?}",
                side.name, t.name, t
            );
        }
        for (n, _, _) in topics {
            await_topic(side, n);
        }
    });
}

/// One record batch (v2, uncompressed) of `(key, value, timestamp)` records.
fn batch(records: &[(Option<&str>, &str, i64)]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            // No producer id, so the batch's base sequence is -1; kafka-protocol puts records
            // in one batch only while offset - sequence stays the same.
            sequence: i as i32 - 1,
            ..record(
                i,
                *ts,
                k.map(|k| Bytes::from(k.to_string())),
                Some(Bytes::from(v.to_string())),
            )
        })
        .collect();
    encode_batch(&records, Compression::None)
}

/// `n` keyless records with timestamps T0, T0+1000, …
fn values(n: usize, from: usize) -> Bytes {
    let owned: Vec<(String, i64)> = (from..from + n)
        .map(|i| (format!("value-{i}"), T0 + 1000 * i as i64))
        .collect();
    let recs: Vec<(Option<&str>, &str, i64)> =
        owned.iter().map(|(v, t)| (None, v.as_str(), *t)).collect();
    batch(&recs)
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Appends on both brokers (not compared).
fn setup_produce(run: &mut Run, topic: &str, partition: i32, records: Bytes) {
    run.both(|side| {
        let resp = side
            .conn
            .call(&produce_request(topic, partition, records.clone(), -1), 9);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 0,
            "{}: produce {topic}-{partition}: {p:?}",
            side.name
        );
    });
}

// ---------------------------------------------------------------------------------------------
// ApiVersions
// ---------------------------------------------------------------------------------------------

/// Where Klamm serves an API its range must lie within Kafka's: an equal or narrower range is
/// no difference. Kafka's row is replaced by ours when it contains it, so what remains to
/// compare is APIs only one side serves, and ranges of ours that reach beyond Kafka's.
fn versions_subset(kafka: &mut ApiVersionsResponse, klamm: &mut ApiVersionsResponse) {
    for ours in &klamm.api_keys {
        if let Some(theirs) = kafka
            .api_keys
            .iter_mut()
            .find(|k| k.api_key == ours.api_key)
        {
            if theirs.min_version <= ours.min_version && ours.max_version <= theirs.max_version {
                *theirs = ours.clone();
            }
        }
    }
}

fn api_versions(run: &mut Run) {
    for v in 0..=4 {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(s("klamm-differential"))
            .with_client_software_version(s("1.0"));
        run.compare_with("", v, move |_| req.clone(), versions_subset);
    }
    // v3+ validates the client's software name and version (KIP-511).
    let cases = [
        ("empty software name", "", "1.0"),
        ("bad software name", "-x-", "1.0"),
        ("empty software version", "ok", ""),
    ];
    for (case, name, version) in cases {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(s(name))
            .with_client_software_version(s(version));
        run.compare_with(case, 3, move |_| req.clone(), versions_subset);
    }
    // A version newer than either serves: UNSUPPORTED_VERSION in a v0 body listing the ranges.
    let mut bodies = Vec::new();
    for side in [&mut run.kafka, &mut run.klamm] {
        bodies.push(api_versions_too_new(&mut side.conn));
    }
    let (mut a, mut b) = (bodies.remove(0), bodies.remove(0));
    versions_subset(&mut a, &mut b);
    run.check("ApiVersions v99 (too new)", &a, &b);
    *run.per_api.entry("ApiVersions".into()).or_default() += 1;
}

/// ApiVersions at a version no broker knows: the response is read as v0, as clients do.
fn api_versions_too_new(conn: &mut Conn) -> ApiVersionsResponse {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(7777)
        .with_client_id(Some(s("klamm-tests")));
    let mut body = BytesMut::new();
    header.encode(&mut body, 2).expect("header");
    ApiVersionsRequest::default()
        .with_client_software_name(s("x"))
        .with_client_software_version(s("1"))
        .encode(&mut body, 4)
        .expect("body");
    conn.send_raw(&body);
    let mut frame = conn.read_frame().expect("ApiVersions v99 response");
    let header = ResponseHeader::decode(&mut frame, 0).expect("response header");
    assert_eq!(header.correlation_id, 7777);
    ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body")
}

// ---------------------------------------------------------------------------------------------
// Metadata, CreateTopics, CreatePartitions, DeleteTopics
// ---------------------------------------------------------------------------------------------

fn metadata_for(names: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(tn(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create)
}

fn metadata(run: &mut Run) {
    setup_topics(run, &[("md-one", 1, &[]), ("md-three", 3, &[])]);

    // The group coordinator's topic exists once a coordinator is looked up; Kafka creates it
    // asynchronously (COORDINATOR_NOT_AVAILABLE until then), so wait for it on both.
    run.both(|side| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = side.conn.call(
                &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("md-group")]),
                4,
            );
            if r.coordinators[0].error_code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no coordinator: {r:?}",
                side.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });

    for v in [1, 4, 9, 12] {
        // Before v4 every Metadata request may auto-create; the topics exist anyway.
        let req = metadata_for(&["md-one", "md-three"], v < 4);
        run.same("existing topics", v, req);
    }
    run.same(
        "unknown topic, no auto-create",
        12,
        metadata_for(&["md-nope"], false),
    );
    run.same(
        "invalid name, auto-create",
        12,
        metadata_for(&["bad name!"], true),
    );
    run.same(
        "internal topic",
        12,
        metadata_for(&["__consumer_offsets"], false),
    );
    run.same(
        "no topics",
        12,
        MetadataRequest::default().with_topics(Some(vec![])),
    );
    run.same(
        "authorized operations",
        10,
        metadata_for(&["md-one"], false)
            .with_include_topic_authorized_operations(true)
            .with_include_cluster_authorized_operations(true),
    );
    for (case, name) in [
        ("by topic id", None),
        ("by topic id, empty name", Some(tn(""))),
    ] {
        run.compare(case, 12, |side| {
            MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(name.clone())
                .with_topic_id(side.topic_id("md-three"))]))
        });
    }
    run.same(
        "unknown topic id",
        12,
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(Uuid::from_u128(0x1234))])),
    );

    // Auto-creation: Kafka hands the creation to its controller and answers before it is
    // done, so the first answer may differ (see differences.txt); once both have the topic,
    // they must describe it alike.
    run.same(
        "auto-create (first answer)",
        12,
        metadata_for(&["md-auto"], true),
    );
    run.both(|side| await_topic(side, "md-auto"));
    run.same("auto-created topic", 12, metadata_for(&["md-auto"], false));
}

fn create_topics_cases(run: &mut Run) {
    let long = "x".repeat(250);
    let longest = "y".repeat(249);
    // (case, topic, validate_only)
    let single: Vec<(&str, CreatableTopic, bool)> = vec![
        ("name empty", topic("", 1, &[]), false),
        ("name .", topic(".", 1, &[]), false),
        ("name ..", topic("..", 1, &[]), false),
        ("name too long", topic(&long, 1, &[]), false),
        ("name 249 chars", topic(&longest, 1, &[]), false),
        ("name with space", topic("a b", 1, &[]), false),
        ("name with slash", topic("a/b", 1, &[]), false),
        ("name non-ascii", topic("café", 1, &[]), false),
        ("partitions 0", topic("ct-p0", 0, &[]), false),
        ("partitions -2", topic("ct-pm2", -2, &[]), false),
        (
            "partitions -1 (default)",
            topic("ct-pdefault", -1, &[]),
            false,
        ),
        (
            "replication 0",
            topic("ct-r0", 1, &[]).with_replication_factor(0),
            false,
        ),
        (
            "replication 2",
            topic("ct-r2", 1, &[]).with_replication_factor(2),
            false,
        ),
        (
            "replication -2",
            topic("ct-rm2", 1, &[]).with_replication_factor(-2),
            false,
        ),
        (
            "replication -1 (default)",
            topic("ct-rdefault", 1, &[]).with_replication_factor(-1),
            false,
        ),
        (
            "unknown config",
            topic("ct-c1", 1, &[("no.such.config", "1")]),
            false,
        ),
        (
            "bad config value",
            topic("ct-c2", 1, &[("retention.ms", "soon")]),
            false,
        ),
        (
            "bad config choice",
            topic("ct-c3", 1, &[("cleanup.policy", "bogus")]),
            false,
        ),
        (
            "config out of range",
            topic("ct-c4", 1, &[("segment.bytes", "10")]),
            false,
        ),
        (
            "null config value",
            topic("ct-c5", 1, &[]).with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(None)]),
            false,
        ),
        (
            "good configs",
            topic(
                "ct-configs",
                2,
                &[
                    ("cleanup.policy", "compact"),
                    ("retention.ms", "3600000"),
                    ("max.message.bytes", "2000"),
                ],
            ),
            false,
        ),
        (
            "assignments",
            topic("ct-assigned", -1, &[])
                .with_replication_factor(-1)
                .with_assignments(assignments(&[&[1], &[1]])),
            false,
        ),
        (
            "assignments with partition count",
            topic("ct-assigned2", 2, &[])
                .with_replication_factor(-1)
                .with_assignments(assignments(&[&[1], &[1]])),
            false,
        ),
        (
            "assignment to unknown broker",
            topic("ct-assigned3", -1, &[])
                .with_replication_factor(-1)
                .with_assignments(assignments(&[&[7]])),
            false,
        ),
        (
            "assignment with duplicate replica",
            topic("ct-assigned4", -1, &[])
                .with_replication_factor(-1)
                .with_assignments(assignments(&[&[1, 1]])),
            false,
        ),
        (
            "assignment with a gap",
            topic("ct-assigned5", -1, &[])
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(1)
                    .with_broker_ids(vec![BrokerId(1)])]),
            false,
        ),
        (
            "validate only",
            topic("ct-validate", 2, &[("retention.ms", "1000")]),
            true,
        ),
        (
            "validate only, bad config",
            topic("ct-validate2", 2, &[("retention.ms", "x")]),
            true,
        ),
        ("collision setup", topic("ct.collide", 1, &[]), false),
        ("collides with existing", topic("ct_collide", 1, &[]), false),
        ("existing topic", topic("ct-configs", 2, &[]), false),
        (
            "existing topic, validate only",
            topic("ct-configs", 2, &[]),
            true,
        ),
        (
            "internal topic exists",
            topic("__consumer_offsets", 1, &[]),
            false,
        ),
    ];
    for (case, t, validate_only) in single {
        let req = create_topics(vec![t]).with_validate_only(validate_only);
        run.same(case, 7, req);
    }
    // Set-up for what follows must be done on both before any comparison reads it.
    for t in [
        "ct-pdefault",
        "ct-rdefault",
        "ct-configs",
        "ct-assigned",
        "ct.collide",
    ] {
        run.both(|side| await_topic(side, t));
    }
    run.same(
        "two topics, one bad",
        7,
        create_topics(vec![topic("ct-two-ok", 1, &[]), topic("ct two", 1, &[])]),
    );
    run.same(
        "the same topic twice",
        7,
        create_topics(vec![topic("ct-twice", 1, &[]), topic("ct-twice", 1, &[])]),
    );
    run.same(
        "colliding names in one request",
        7,
        create_topics(vec![topic("ct-in.one", 1, &[]), topic("ct-in_one", 1, &[])]),
    );
    for v in [2, 4, 5] {
        run.same(
            "old version",
            v,
            create_topics(vec![
                topic(&format!("ct-v{v}"), 1, &[("retention.ms", "1000")]),
                topic("", 1, &[]),
            ]),
        );
    }
    for t in ["ct-two-ok", "ct-v2", "ct-v4", "ct-v5"] {
        run.both(|side| await_topic(side, t));
    }
    // The topics as created: validate-only ones must not exist.
    run.same(
        "after creation",
        12,
        metadata_for(
            &[
                "ct-pdefault",
                "ct-rdefault",
                "ct-configs",
                "ct-assigned",
                "ct-validate",
                "ct_collide",
                &longest,
                "ct-two-ok",
            ],
            false,
        ),
    );
}

fn assignments(replicas: &[&[i32]]) -> Vec<CreatableReplicaAssignment> {
    replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i as i32)
                .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
        })
        .collect()
}

fn create_partitions(run: &mut Run) {
    setup_topics(run, &[("cp", 2, &[])]);
    let grow = |topic: &str, count: i32, assignments: Option<&[&[i32]]>| {
        CreatePartitionsTopic::default()
            .with_name(tn(topic))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.iter()
                    .map(|r| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect()
            }))
    };
    let request = |topics: Vec<CreatePartitionsTopic>, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only)
    };
    let cases: Vec<(&str, Vec<CreatePartitionsTopic>, bool)> = vec![
        ("fewer", vec![grow("cp", 1, None)], false),
        ("same count", vec![grow("cp", 2, None)], false),
        ("unknown topic", vec![grow("cp-nope", 4, None)], false),
        (
            "assignments of the wrong length",
            vec![grow("cp", 4, Some(&[&[1]]))],
            false,
        ),
        (
            "assignment to unknown broker",
            vec![grow("cp", 3, Some(&[&[7]]))],
            false,
        ),
        (
            "assignment with two replicas",
            vec![grow("cp", 3, Some(&[&[1, 1]]))],
            false,
        ),
        (
            "the same topic twice",
            vec![grow("cp", 3, None), grow("cp", 4, None)],
            false,
        ),
        ("validate only", vec![grow("cp", 5, None)], true),
        ("grow", vec![grow("cp", 3, Some(&[&[1]]))], false),
        ("grow again", vec![grow("cp", 4, None)], false),
        (
            "internal topic",
            vec![grow("__consumer_offsets", 9, None)],
            true,
        ),
    ];
    for (case, topics, validate_only) in cases {
        run.same(case, 3, request(topics, validate_only));
        run.both(|side| await_topic(side, "cp"));
    }
    run.same("after growing", 12, metadata_for(&["cp"], false));
}

fn delete_topics(run: &mut Run) {
    setup_topics(run, &[("dt-gone", 1, &[])]);
    let by_name = |names: &[&str]| {
        DeleteTopicsRequest::default()
            .with_topic_names(names.iter().map(|n| tn(n)).collect())
            .with_timeout_ms(10_000)
    };
    run.same("unknown topic", 5, by_name(&["dt-nope"]));
    run.same("existing topic", 5, by_name(&["dt-gone"]));
    run.same(
        "unknown topic id",
        6,
        DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_topic_id(Uuid::from_u128(77))])
            .with_timeout_ms(10_000),
    );
}

// ---------------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------------

fn describe_configs_request(resources: &[(i8, &str, Option<&[&str]>)]) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_resources(
            resources
                .iter()
                .map(|(t, n, keys)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(*t)
                        .with_resource_name(s(n))
                        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
                })
                .collect(),
        )
        .with_include_synonyms(true)
        .with_include_documentation(true)
}

/// Broker configs Klamm implements that Kafka has too: described by name, so the comparison
/// covers their values, sources, read-only and sensitive flags and synonyms. (Kafka has
/// hundreds more; the complete listing is compared by name below.)
const BROKER_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "delete.topic.enable",
    "message.max.bytes",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.segment.bytes",
    "log.roll.hours",
    "log.roll.ms",
    "log.index.interval.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.cleanup.policy",
    "compression.type",
    "socket.request.max.bytes",
    "queued.max.request.bytes",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offset.metadata.max.bytes",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offsets.topic.num.partitions",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "producer.id.expiration.ms",
    "no.such.config",
];

/// Broker keys whose values are each process's own: the addresses it listens on and
/// advertises, its data directory, and the controller listener a Kafka node needs (and a Klamm
/// has no use for). Left out of broker descriptions on both sides.
const PER_PROCESS_KEYS: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "controller.quorum.voters",
    "log.dirs",
    "log.dir",
];

fn without_process_keys(a: &mut DescribeConfigsResponse, b: &mut DescribeConfigsResponse) {
    for r in a.results.iter_mut().chain(b.results.iter_mut()) {
        if r.resource_type == BROKER {
            r.configs
                .retain(|c| !PER_PROCESS_KEYS.contains(&c.name.as_str()));
        }
    }
}

fn configs(run: &mut Run) {
    setup_topics(
        run,
        &[
            ("cfg-plain", 1, &[]),
            (
                "cfg-over",
                1,
                &[
                    ("retention.ms", "3600000"),
                    ("cleanup.policy", "compact"),
                    ("max.message.bytes", "2000"),
                ],
            ),
            ("cfg-alter", 1, &[("retention.ms", "3600000")]),
        ],
    );
    let describe: Vec<(&str, Vec<Resource>)> = vec![
        ("topic defaults", vec![(TOPIC, "cfg-plain", None)]),
        ("topic overrides", vec![(TOPIC, "cfg-over", None)]),
        (
            "topic keys",
            vec![(
                TOPIC,
                "cfg-over",
                Some(&["retention.ms", "segment.bytes", "no.such.config"]),
            )],
        ),
        ("unknown topic", vec![(TOPIC, "cfg-nope", None)]),
        ("invalid topic name", vec![(TOPIC, "bad name!", None)]),
        ("broker keys", vec![(BROKER, "1", Some(BROKER_KEYS))]),
        (
            "cluster default keys",
            vec![(BROKER, "", Some(BROKER_KEYS))],
        ),
        ("other broker", vec![(BROKER, "2", None)]),
        ("broker id not a number", vec![(BROKER, "one", None)]),
        (
            "broker logger",
            vec![(BROKER_LOGGER, "1", Some(&["kafka.server.KafkaApis"]))],
        ),
        ("unknown resource type", vec![(42, "x", None)]),
        (
            "two resources",
            vec![
                (TOPIC, "cfg-plain", Some(&["retention.ms"])),
                (TOPIC, "cfg-nope", None),
            ],
        ),
    ];
    for (case, resources) in &describe {
        let req = describe_configs_request(resources);
        run.compare_with(case, 4, move |_| req.clone(), without_process_keys);
    }
    for v in [1, 2, 3] {
        let req = describe_configs_request(&[(TOPIC, "cfg-over", None)])
            .with_include_documentation(v >= 3);
        run.same("topic overrides", v, req);
    }
    // Every broker config: names compared (Kafka has many more; see differences.txt), and the
    // values of the shared ones, as above.
    let req = describe_configs_request(&[(BROKER, "1", None)]).with_include_documentation(false);
    run.compare_with("broker, all", 4, move |_| req.clone(), without_process_keys);

    // IncrementalAlterConfigs
    let inc_cases: Vec<(&str, Vec<IncResourceSpec>, bool)> = vec![
        (
            "unknown topic",
            vec![(TOPIC, "cfg-nope", vec![("retention.ms", SET, Some("1000"))])],
            false,
        ),
        (
            "unknown key",
            vec![(TOPIC, "cfg-alter", vec![("no.such.config", SET, Some("1"))])],
            false,
        ),
        (
            "bad value",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("retention.ms", SET, Some("soon"))],
            )],
            false,
        ),
        (
            "null value for SET",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", SET, None)])],
            false,
        ),
        (
            "APPEND to a non-list",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("retention.ms", APPEND, Some("1"))],
            )],
            false,
        ),
        (
            "SUBTRACT from a non-list",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("retention.ms", SUBTRACT, Some("1"))],
            )],
            false,
        ),
        (
            "unknown operation",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", 9, Some("1"))])],
            false,
        ),
        (
            "the same key twice",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![
                    ("retention.ms", SET, Some("1")),
                    ("retention.ms", DELETE, None),
                ],
            )],
            false,
        ),
        (
            "the same resource twice",
            vec![
                (
                    TOPIC,
                    "cfg-alter",
                    vec![("retention.ms", SET, Some("1000"))],
                ),
                (TOPIC, "cfg-alter", vec![("segment.ms", SET, Some("1000"))]),
            ],
            false,
        ),
        (
            "unknown resource type",
            vec![(42, "x", vec![("a", SET, Some("1"))])],
            false,
        ),
        (
            "validate only",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("retention.ms", SET, Some("1000"))],
            )],
            true,
        ),
        (
            "set and append",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![
                    ("segment.ms", SET, Some("7200000")),
                    ("cleanup.policy", APPEND, Some("compact")),
                ],
            )],
            false,
        ),
        (
            "subtract",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("cleanup.policy", SUBTRACT, Some("delete"))],
            )],
            false,
        ),
        (
            "delete an unset key",
            vec![(TOPIC, "cfg-alter", vec![("flush.ms", DELETE, None)])],
            false,
        ),
        (
            "delete a set key",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", DELETE, None)])],
            false,
        ),
        (
            "broker, read-only key",
            vec![(BROKER, "1", vec![("log.dirs", SET, Some("/tmp/x"))])],
            true,
        ),
        (
            "broker, unknown key",
            vec![(BROKER, "1", vec![("no.such.config", SET, Some("1"))])],
            true,
        ),
        (
            "broker, dynamic key",
            vec![(BROKER, "1", vec![("log.retention.ms", SET, Some("1000"))])],
            true,
        ),
        (
            "cluster default, dynamic key",
            vec![(BROKER, "", vec![("log.retention.ms", SET, Some("1000"))])],
            true,
        ),
        (
            "other broker",
            vec![(BROKER, "2", vec![("log.retention.ms", SET, Some("1000"))])],
            true,
        ),
        (
            "broker logger",
            vec![(
                BROKER_LOGGER,
                "1",
                vec![("kafka.server.KafkaApis", SET, Some("DEBUG"))],
            )],
            true,
        ),
    ];
    for (case, resources, validate_only) in inc_cases {
        run.same(case, 1, inc_request(resources, validate_only));
    }
    run.same(
        "after incremental changes",
        4,
        describe_configs_request(&[(TOPIC, "cfg-alter", None)]),
    );

    // AlterConfigs (replaces a resource's whole set of overrides)
    let alter_cases: Vec<(&str, Vec<AlterResourceSpec>, bool)> = vec![
        (
            "unknown topic",
            vec![(TOPIC, "cfg-nope", vec![("retention.ms", Some("1000"))])],
            false,
        ),
        (
            "unknown key",
            vec![(TOPIC, "cfg-alter", vec![("no.such.config", Some("1"))])],
            false,
        ),
        (
            "bad value",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", Some("soon"))])],
            false,
        ),
        (
            "null value",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", None)])],
            false,
        ),
        (
            "the same key twice",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![("retention.ms", Some("1")), ("retention.ms", Some("2"))],
            )],
            false,
        ),
        (
            "the same resource twice",
            vec![
                (TOPIC, "cfg-alter", vec![("retention.ms", Some("1000"))]),
                (TOPIC, "cfg-alter", vec![]),
            ],
            false,
        ),
        (
            "unknown resource type",
            vec![(42, "x", vec![("a", Some("1"))])],
            false,
        ),
        (
            "validate only",
            vec![(TOPIC, "cfg-alter", vec![("retention.ms", Some("1000"))])],
            true,
        ),
        (
            "replace",
            vec![(
                TOPIC,
                "cfg-alter",
                vec![
                    ("retention.ms", Some("5000")),
                    ("min.insync.replicas", Some("1")),
                ],
            )],
            false,
        ),
        (
            "broker, read-only key",
            vec![(BROKER, "1", vec![("log.dirs", Some("/tmp/x"))])],
            true,
        ),
        (
            "broker, unknown key",
            vec![(BROKER, "1", vec![("no.such.config", Some("1"))])],
            true,
        ),
        (
            "broker, dynamic key",
            vec![(BROKER, "1", vec![("log.retention.ms", Some("1000"))])],
            true,
        ),
    ];
    for (case, resources, validate_only) in alter_cases {
        run.same(case, 2, alter_request(resources, validate_only));
    }
    run.same(
        "after replacing",
        4,
        describe_configs_request(&[(TOPIC, "cfg-alter", None)]),
    );
    dynamic_broker_configs(run);
}

fn inc_request(
    resources: Vec<IncResourceSpec>,
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .into_iter()
                .map(|(t, n, cs)| {
                    IncResource::default()
                        .with_resource_type(t)
                        .with_resource_name(s(n))
                        .with_configs(
                            cs.into_iter()
                                .map(|(k, op, v)| {
                                    IncConfig::default()
                                        .with_name(s(k))
                                        .with_config_operation(op)
                                        .with_value(v.map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn alter_request(resources: Vec<AlterResourceSpec>, validate_only: bool) -> AlterConfigsRequest {
    AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .into_iter()
                .map(|(t, n, cs)| {
                    AlterResource::default()
                        .with_resource_type(t)
                        .with_resource_name(s(n))
                        .with_configs(
                            cs.into_iter()
                                .map(|(k, v)| {
                                    AlterConfig::default().with_name(s(k)).with_value(v.map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// Broker keys the dynamic cases set, described by name.
const DYNAMIC_KEYS: &[&str] = &[
    "log.cleaner.threads",
    "log.cleaner.backoff.ms",
    "log.retention.ms",
    "log.retention.hours",
    "message.max.bytes",
    "log.cleanup.policy",
];

/// Dynamic broker configs: set for the broker and as the cluster default, described on both
/// and on a topic that takes them as defaults, then removed again (later cases expect the
/// static defaults).
fn dynamic_broker_configs(run: &mut Run) {
    let changes: Vec<(&str, Vec<IncResourceSpec>, bool)> = vec![
        (
            "broker, set dynamic keys",
            vec![(
                BROKER,
                "1",
                vec![
                    ("log.cleaner.threads", SET, Some("2")),
                    ("log.retention.ms", SET, Some("7200000")),
                ],
            )],
            false,
        ),
        (
            "cluster default, set dynamic keys",
            vec![(
                BROKER,
                "",
                vec![
                    ("log.cleaner.backoff.ms", SET, Some("20000")),
                    ("log.retention.ms", SET, Some("3600000")),
                    ("message.max.bytes", SET, Some("2000000")),
                ],
            )],
            false,
        ),
        (
            "broker, append to a list key",
            vec![(
                BROKER,
                "1",
                vec![("log.cleanup.policy", APPEND, Some("compact"))],
            )],
            true,
        ),
        (
            "cluster default, subtract from a list key",
            vec![(
                BROKER,
                "",
                vec![("log.cleanup.policy", SUBTRACT, Some("delete"))],
            )],
            true,
        ),
        (
            "broker, append to a non-list key",
            vec![(BROKER, "1", vec![("log.retention.ms", APPEND, Some("5"))])],
            true,
        ),
        (
            "broker, append to an unknown key",
            vec![(BROKER, "1", vec![("no.such.config", APPEND, Some("5"))])],
            true,
        ),
        (
            "broker, value out of range",
            vec![(BROKER, "1", vec![("message.max.bytes", SET, Some("-5"))])],
            true,
        ),
        (
            "cluster default, not a number",
            vec![(
                BROKER,
                "",
                vec![("log.cleaner.backoff.ms", SET, Some("soon"))],
            )],
            true,
        ),
        (
            "broker, a read-only spelling of a dynamic key",
            vec![(BROKER, "1", vec![("log.retention.hours", SET, Some("5"))])],
            true,
        ),
        (
            "broker, delete a key that is not set",
            vec![(BROKER, "1", vec![("log.flush.interval.ms", DELETE, None)])],
            false,
        ),
        (
            "broker id not a number",
            vec![(BROKER, "one", vec![("log.retention.ms", SET, Some("1"))])],
            true,
        ),
    ];
    for (case, resources, validate_only) in changes {
        run.same(case, 1, inc_request(resources, validate_only));
    }
    // Kafka applies a committed change when its broker replays the metadata record, a moment
    // after it answers.
    std::thread::sleep(Duration::from_millis(300));
    let described: Vec<(&str, Vec<Resource>)> = vec![
        (
            "dynamic broker keys",
            vec![(BROKER, "1", Some(DYNAMIC_KEYS))],
        ),
        ("dynamic cluster defaults", vec![(BROKER, "", None)]),
        (
            "topic under dynamic defaults",
            vec![(
                TOPIC,
                "cfg-plain",
                Some(&["retention.ms", "max.message.bytes", "cleanup.policy"]),
            )],
        ),
    ];
    for (case, resources) in &described {
        run.same(case, 4, describe_configs_request(resources));
    }
    let removals: Vec<(&str, Vec<IncResourceSpec>)> = vec![
        (
            "broker, delete dynamic keys",
            vec![(
                BROKER,
                "1",
                vec![
                    ("log.cleaner.threads", DELETE, None),
                    ("log.retention.ms", DELETE, None),
                ],
            )],
        ),
        (
            "cluster default, delete dynamic keys",
            vec![(
                BROKER,
                "",
                vec![
                    ("log.cleaner.backoff.ms", DELETE, None),
                    ("log.retention.ms", DELETE, None),
                    ("message.max.bytes", DELETE, None),
                ],
            )],
        ),
    ];
    for (case, resources) in removals {
        run.same(case, 1, inc_request(resources, false));
    }
    // AlterConfigs replaces all of a resource's values. (Not tried on the cluster default:
    // Kafka keeps its formatted min.insync.replicas there and refuses to drop it.)
    let replacements: Vec<(&str, Vec<AlterResourceSpec>)> = vec![
        (
            "broker, replace",
            vec![(
                BROKER,
                "1",
                vec![
                    ("log.retention.ms", Some("1800000")),
                    ("log.cleaner.backoff.ms", Some("16000")),
                ],
            )],
        ),
        (
            "broker, null value",
            vec![(BROKER, "1", vec![("log.retention.ms", None)])],
        ),
    ];
    for (case, resources) in replacements {
        run.same(case, 2, alter_request(resources, false));
    }
    let both: &[Resource] = &[
        (BROKER, "1", Some(DYNAMIC_KEYS)),
        (BROKER, "", Some(DYNAMIC_KEYS)),
    ];
    std::thread::sleep(Duration::from_millis(300));
    run.same("broker after replacing", 4, describe_configs_request(both));
    run.same(
        "broker, clear",
        2,
        alter_request(vec![(BROKER, "1", vec![])], false),
    );
    std::thread::sleep(Duration::from_millis(300));
    run.same("broker after clearing", 4, describe_configs_request(both));
}

// ---------------------------------------------------------------------------------------------
// Produce, Fetch, ListOffsets, DeleteRecords
// ---------------------------------------------------------------------------------------------

fn produce(run: &mut Run) {
    setup_topics(
        run,
        &[
            ("pr", 3, &[]),
            ("pr-small", 1, &[("max.message.bytes", "200")]),
            ("pr-compact", 1, &[("cleanup.policy", "compact")]),
            (
                "pr-append",
                1,
                &[("message.timestamp.type", "LogAppendTime")],
            ),
        ],
    );
    let big = "z".repeat(1000);
    let cases: Vec<(&str, ProduceRequest)> = vec![
        ("first batch", produce_request("pr", 0, values(3, 0), -1)),
        ("second batch", produce_request("pr", 0, values(2, 3), 1)),
        (
            "two batches for one partition",
            produce_request(
                "pr",
                0,
                {
                    let mut two = BytesMut::from(&values(1, 0)[..]);
                    two.extend_from_slice(&values(1, 1));
                    two.freeze()
                },
                -1,
            ),
        ),
        (
            "unknown topic",
            produce_request("pr-nope", 0, values(1, 0), -1),
        ),
        (
            "unknown partition",
            produce_request("pr", 7, values(1, 0), -1),
        ),
        (
            "negative partition",
            produce_request("pr", -1, values(1, 0), -1),
        ),
        (
            "record too large",
            produce_request("pr-small", 0, batch(&[(None, &big, T0)]), -1),
        ),
        ("acks 2", produce_request("pr", 1, values(1, 0), 2)),
        ("acks -2", produce_request("pr", 1, values(1, 0), -2)),
        (
            "compacted without keys",
            produce_request(
                "pr-compact",
                0,
                batch(&[(Some("k"), "v", T0), (None, "v", T0)]),
                -1,
            ),
        ),
        (
            "compacted with keys",
            produce_request(
                "pr-compact",
                0,
                batch(&[(Some("k"), "v", T0), (Some("k2"), "v", T0)]),
                -1,
            ),
        ),
        (
            "internal topic",
            produce_request("__consumer_offsets", 0, values(1, 0), -1),
        ),
        (
            "null records",
            produce_request("pr", 2, values(1, 0), -1).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(tn("pr"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(2)
                        .with_records(None)]),
            ]),
        ),
        (
            "two partitions, one unknown",
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(tn("pr"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(values(2, 0))),
                        PartitionProduceData::default()
                            .with_index(9)
                            .with_records(Some(values(2, 0))),
                    ])]),
        ),
    ];
    for (case, req) in cases {
        run.same(case, 9, req);
    }
    // LogAppendTime topics answer the broker's time: compare only that both set one.
    run.same_masked_time(
        "log append time",
        produce_request("pr-append", 0, values(1, 0), -1),
    );
    run.compare("by topic id", 13, |side| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_topic_id(side.topic_id("pr"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(2)
                    .with_records(Some(values(2, 0)))])])
    });
    run.same(
        "unknown topic id",
        13,
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_topic_id(Uuid::from_u128(99))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(values(1, 0)))])]),
    );
    // A CreateTime more than message.timestamp.after.max.ms (Kafka 4: an hour) ahead refuses
    // the batch and names the record; a LogAppendTime topic takes it.
    let later = klamm::clock::now_ms() + 2 * 3_600_000;
    run.same(
        "a record two hours ahead",
        9,
        produce_request(
            "pr",
            2,
            batch(&[(None, "now", T0), (None, "later", later)]),
            -1,
        ),
    );
    run.same_masked_time(
        "two hours ahead, log append time",
        produce_request("pr-append", 0, batch(&[(None, "later", later)]), -1),
    );
}

impl Run {
    /// Produce to a LogAppendTime topic: the broker stamps its own clock, so `log_append_time`
    /// is compared as "set" (> 0) or not.
    fn same_masked_time(&mut self, case: &str, req: ProduceRequest) -> [ProduceResponse; 2] {
        let mask = |r: &mut ProduceResponse| {
            for p in r
                .responses
                .iter_mut()
                .flat_map(|t| t.partition_responses.iter_mut())
            {
                if p.log_append_time_ms > 0 {
                    p.log_append_time_ms = 1;
                }
            }
        };
        self.compare_with(
            case,
            9,
            move |_| req.clone(),
            |a, b| {
                mask(a);
                mask(b);
            },
        )
    }
}

fn fetch_request(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

fn fetch(run: &mut Run) {
    // "pr"-0 holds offsets 0..5 from the produce cases.
    let cases: Vec<(&str, FetchRequest)> = vec![
        ("from 0", fetch_request("pr", 0, 0)),
        ("from the middle of a batch", fetch_request("pr", 0, 1)),
        ("at the end", fetch_request("pr", 0, 5)),
        ("past the end", fetch_request("pr", 0, 6)),
        ("far past the end", fetch_request("pr", 0, 1000)),
        ("negative offset", fetch_request("pr", 0, -1)),
        ("unknown partition", fetch_request("pr", 9, 0)),
        ("unknown topic", fetch_request("pr-nope", 0, 0)),
        ("fenced leader epoch", {
            let mut r = fetch_request("pr", 0, 0);
            r.topics[0].partitions[0].current_leader_epoch = 5;
            r
        }),
        (
            "read committed",
            fetch_request("pr", 0, 0).with_isolation_level(1),
        ),
        (
            "session start",
            fetch_request("pr", 0, 5).with_session_epoch(0),
        ),
        (
            "unknown session",
            fetch_request("pr", 0, 5)
                .with_session_id(12345)
                .with_session_epoch(3),
        ),
    ];
    for (case, req) in cases {
        run.compare_with(
            case,
            12,
            move |_| req.clone(),
            |a: &mut FetchResponse, b: &mut FetchResponse| {
                // A new fetch session gets a random id: compare only whether there is one.
                for r in [a, b] {
                    if r.session_id != 0 {
                        r.session_id = 1;
                    }
                }
            },
        );
    }
    run.compare("by topic id", 13, |side| {
        let mut r = fetch_request("", 0, 0);
        r.topics[0].topic_id = side.topic_id("pr");
        r
    });
    run.same("unknown topic id", 13, {
        let mut r = fetch_request("", 0, 0);
        r.topics[0].topic_id = Uuid::from_u128(98);
        r
    });
}

fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

fn list_offsets(run: &mut Run, label: &str) {
    let ts = |i: i64| T0 + 1000 * i;
    let cases: Vec<(String, ListOffsetsRequest)> = vec![
        ("latest".into(), list_offsets_request("lo", 0, -1)),
        ("earliest".into(), list_offsets_request("lo", 0, -2)),
        ("max timestamp".into(), list_offsets_request("lo", 0, -3)),
        ("earliest local".into(), list_offsets_request("lo", 0, -4)),
        ("latest tiered".into(), list_offsets_request("lo", 0, -5)),
        (
            "earliest pending upload".into(),
            list_offsets_request("lo", 0, -6),
        ),
        (
            "time before all records".into(),
            list_offsets_request("lo", 0, 0),
        ),
        (
            "time of record 2".into(),
            list_offsets_request("lo", 0, ts(2)),
        ),
        (
            "time between records 2 and 3".into(),
            list_offsets_request("lo", 0, ts(2) + 1),
        ),
        (
            "time of the last record".into(),
            list_offsets_request("lo", 0, ts(9)),
        ),
        (
            "time after all records".into(),
            list_offsets_request("lo", 0, ts(100)),
        ),
        (
            "empty partition, by time".into(),
            list_offsets_request("lo", 1, 0),
        ),
        (
            "empty partition, max timestamp".into(),
            list_offsets_request("lo", 1, -3),
        ),
        (
            "unknown partition".into(),
            list_offsets_request("lo", 5, -1),
        ),
        (
            "unknown topic".into(),
            list_offsets_request("lo-nope", 0, -1),
        ),
        (
            "invalid timestamp".into(),
            list_offsets_request("lo", 0, -7),
        ),
        (
            "read committed latest".into(),
            list_offsets_request("lo", 0, -1).with_isolation_level(1),
        ),
        ("fenced leader epoch".into(), {
            let mut r = list_offsets_request("lo", 0, -1);
            r.topics[0].partitions[0].current_leader_epoch = 5;
            r
        }),
        ("current leader epoch".into(), {
            let mut r = list_offsets_request("lo", 0, -1);
            r.topics[0].partitions[0].current_leader_epoch = 0;
            r
        }),
    ];
    for (case, req) in cases {
        let case = format!("{label}: {case}");
        let p = &req.topics[0].partitions[0];
        for v in [1, 4, 9] {
            // Max timestamp and the later special values need v7+; isolation levels v2+,
            // leader epochs v4+.
            if v < 7 && p.timestamp < -2
                || v < 4 && (req.isolation_level != 0 || p.current_leader_epoch != -1)
            {
                continue;
            }
            run.same(&case, v, req.clone());
        }
    }
}

/// Special timestamps at versions older than the one that introduced them.
fn list_offsets_too_early(run: &mut Run) {
    for (case, v, ts) in [
        ("max timestamp before v7", 6, -3),
        ("earliest local before v8", 7, -4),
        ("latest tiered before v9", 8, -5),
    ] {
        run.same(case, v, list_offsets_request("lo", 0, ts));
    }
}

fn offsets_and_delete_records(run: &mut Run) {
    setup_topics(run, &[("lo", 2, &[])]);
    // One batch of six records (offsets 0..5) and one of four (6..9), timestamps T0 + 1 s × i.
    setup_produce(run, "lo", 0, values(6, 0));
    setup_produce(run, "lo", 0, values(4, 6));
    list_offsets(run, "before DeleteRecords");
    list_offsets_too_early(run);

    let delete = |topic: &str, partition: i32, offset: i64| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])])
    };
    let cases = vec![
        ("unknown topic", delete("lo-nope", 0, 1)),
        ("unknown partition", delete("lo", 7, 1)),
        ("past the high watermark", delete("lo", 0, 11)),
        ("offset -2", delete("lo", 0, -2)),
        ("into the first batch", delete("lo", 0, 4)),
        ("below the log start", delete("lo", 0, 2)),
        ("empty partition, to the end", delete("lo", 1, -1)),
    ];
    for (case, req) in cases {
        run.same(case, 2, req);
    }
    // Now the log starts at offset 4, inside the first batch.
    list_offsets(run, "log start 4");
    run.same("from before the log start", 12, fetch_request("lo", 0, 2));
    run.same("at the log start", 12, fetch_request("lo", 0, 4));
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s(PROTOCOL_TYPE))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

fn sync_request(group: &str, generation: i32, member: &str, assign: bool) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s(PROTOCOL_TYPE)))
        .with_protocol_name(Some(s("range")))
        .with_assignments(if assign {
            vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(Bytes::from_static(b"assignment"))]
        } else {
            vec![]
        })
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o, meta) in offsets {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(s(meta)));
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(tn(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics)
}

fn offset_fetch_v8(groups: &[(&str, Option<GroupTopics>)]) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|(g, topics)| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(g))
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(tn(t))
                                    .with_partition_indexes(ps.to_vec())
                            })
                            .collect()
                    }))
            })
            .collect(),
    )
}

fn groups(run: &mut Run) {
    setup_topics(run, &[("gr", 2, &[])]);
    run.same(
        "one key",
        3,
        FindCoordinatorRequest::default().with_key(s("g1")),
    );
    run.same(
        "batched keys",
        4,
        FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]),
    );
    run.same(
        "empty group id",
        4,
        FindCoordinatorRequest::default().with_coordinator_keys(vec![s("")]),
    );
    run.same(
        "transaction coordinator",
        4,
        FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("tx")]),
    );
    run.same(
        "unknown key type",
        4,
        FindCoordinatorRequest::default()
            .with_key_type(5)
            .with_coordinator_keys(vec![s("x")]),
    );

    // JoinGroup error paths, then a member that joins and syncs.
    run.same("empty group id", 9, join_request("", ""));
    run.same(
        "session timeout too short",
        9,
        join_request("g-bad", "").with_session_timeout_ms(1),
    );
    run.same(
        "session timeout too long",
        9,
        join_request("g-bad", "").with_session_timeout_ms(3_600_000),
    );
    run.same(
        "no protocols",
        9,
        join_request("g-bad", "").with_protocols(vec![]),
    );
    run.same(
        "empty protocol type",
        9,
        join_request("g-bad", "").with_protocol_type(s("")),
    );
    run.same("unknown member id", 9, join_request("g-bad", "nobody"));
    let [a, b] = run.same("new member (member id required)", 9, join_request("g1", ""));
    run.kafka
        .members
        .insert("m1".into(), a.member_id.to_string());
    run.klamm
        .members
        .insert("m1".into(), b.member_id.to_string());
    let [a, b] = run.compare("join with the given id", 9, |side| {
        join_request("g1", &side.member("m1"))
    });
    run.kafka.generations.insert("g1".into(), a.generation_id);
    run.klamm.generations.insert("g1".into(), b.generation_id);
    run.compare("other protocol type", 9, |side| {
        join_request("g1", &side.member("m1")).with_protocol_type(s("connect"))
    });
    run.same(
        "other protocol type, new member",
        9,
        join_request("g1", "").with_protocol_type(s("connect")),
    );
    run.compare("old version, unknown member", 3, |_| {
        join_request("g1", "nobody")
    });

    // SyncGroup
    run.same(
        "unknown group",
        5,
        sync_request("g-nope", 1, "nobody", false),
    );
    run.same("unknown member", 5, sync_request("g1", 1, "nobody", false));
    run.compare("wrong generation", 5, |side| {
        sync_request("g1", side.generation("g1") + 5, &side.member("m1"), true)
    });
    run.compare("wrong protocol type", 5, |side| {
        sync_request("g1", side.generation("g1"), &side.member("m1"), true)
            .with_protocol_type(Some(s("connect")))
    });
    run.compare("wrong protocol name", 5, |side| {
        sync_request("g1", side.generation("g1"), &side.member("m1"), true)
            .with_protocol_name(Some(s("roundrobin")))
    });
    run.compare("leader assigns", 5, |side| {
        sync_request("g1", side.generation("g1"), &side.member("m1"), true)
    });
    run.compare("again, without assignments", 5, |side| {
        sync_request("g1", side.generation("g1"), &side.member("m1"), false)
    });

    // Heartbeat
    let hb = |group: &str, generation: i32, member: &str| {
        HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(member))
    };
    run.compare("member of a stable group", 4, |side| {
        hb("g1", side.generation("g1"), &side.member("m1"))
    });
    run.compare("wrong generation", 4, |side| {
        hb("g1", side.generation("g1") + 1, &side.member("m1"))
    });
    run.compare("unknown member", 4, |side| {
        hb("g1", side.generation("g1"), "nobody")
    });
    run.same("unknown group", 4, hb("g-nope", 1, "nobody"));
    run.same("empty group id", 4, hb("", 1, "nobody"));

    // OffsetCommit
    let off = [("gr", 0, 5, "meta"), ("gr", 1, 7, "")];
    let commit_cases: Vec<(&str, i16, MakeCommit)> = vec![
        (
            "member of the group",
            9,
            Box::new(move |side| {
                commit_request("g1", side.generation("g1"), &side.member("m1"), &off)
            }),
        ),
        (
            "wrong generation",
            9,
            Box::new(move |side| {
                commit_request("g1", side.generation("g1") + 3, &side.member("m1"), &off)
            }),
        ),
        (
            "unknown member",
            9,
            Box::new(move |side| commit_request("g1", side.generation("g1"), "nobody", &off)),
        ),
        (
            "no member, to a group with members",
            9,
            Box::new(move |_| commit_request("g1", -1, "", &off)),
        ),
        (
            "standalone, new group",
            9,
            Box::new(move |_| commit_request("g-simple", -1, "", &off)),
        ),
        (
            "generation for a group that does not exist",
            9,
            Box::new(move |_| commit_request("g-none", 3, "someone", &off)),
        ),
        (
            "old version, generation for a group that does not exist",
            8,
            Box::new(move |_| commit_request("g-none", 3, "someone", &off)),
        ),
        (
            "oldest version, generation for a group that does not exist",
            2,
            Box::new(move |_| commit_request("g-none", 3, "someone", &off)),
        ),
        (
            "no generation but a member id, new group",
            9,
            Box::new(move |_| commit_request("g-simple2", -1, "someone", &off)),
        ),
        (
            "unknown topic",
            9,
            Box::new(move |_| commit_request("g-simple", -1, "", &[("gr-nope", 0, 1, "")])),
        ),
        (
            "unknown partition",
            9,
            Box::new(move |_| commit_request("g-simple", -1, "", &[("gr", 9, 1, "")])),
        ),
        (
            "metadata too large",
            9,
            Box::new(move |_| {
                commit_request("g-simple", -1, "", &[("gr", 0, 1, &"m".repeat(5000))])
            }),
        ),
        (
            "old version, empty group id",
            2,
            Box::new(move |_| commit_request("", -1, "", &off)),
        ),
        (
            "empty group id",
            9,
            Box::new(move |_| commit_request("", -1, "", &off)),
        ),
        (
            "old version, member of the group",
            2,
            Box::new(move |side| {
                commit_request("g1", side.generation("g1"), &side.member("m1"), &off)
            }),
        ),
        (
            "old version, wrong generation",
            7,
            Box::new(move |side| {
                commit_request("g1", side.generation("g1") + 3, &side.member("m1"), &off)
            }),
        ),
    ];
    for (case, v, make) in commit_cases {
        run.compare(case, v, make);
    }

    // OffsetFetch
    let gr: &[(&str, &[i32])] = &[("gr", &[0, 1, 5]), ("gr-nope", &[0])];
    run.same(
        "groups and partitions",
        8,
        offset_fetch_v8(&[
            ("g1", Some(gr)),
            ("g-simple", Some(gr)),
            ("g-nope", Some(gr)),
        ]),
    );
    run.same(
        "all topics",
        8,
        offset_fetch_v8(&[("g1", None), ("g-nope", None)]),
    );
    run.same(
        "require stable",
        8,
        offset_fetch_v8(&[("g1", None)]).with_require_stable(true),
    );
    run.same("empty group id", 8, offset_fetch_v8(&[("", None)]));
    for v in [1, 2, 7] {
        run.same(
            "empty group id",
            v,
            OffsetFetchRequest::default()
                .with_group_id(gid(""))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(tn("gr"))
                    .with_partition_indexes(vec![0])])),
        );
    }
    for v in [1, 5, 7] {
        run.same(
            "one group",
            v,
            OffsetFetchRequest::default()
                .with_group_id(gid("g1"))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(tn("gr"))
                    .with_partition_indexes(vec![0, 1, 5])])),
        );
    }
    run.same(
        "all topics, one group",
        7,
        OffsetFetchRequest::default()
            .with_group_id(gid("g1"))
            .with_topics(None),
    );
    run.same(
        "unknown group",
        7,
        OffsetFetchRequest::default()
            .with_group_id(gid("g-nope"))
            .with_topics(None),
    );

    // DescribeGroups and ListGroups
    for v in [0, 3, 5, 6] {
        run.same(
            "stable, empty, unknown",
            v,
            DescribeGroupsRequest::default()
                .with_groups(vec![gid("g1"), gid("g-simple"), gid("g-nope"), gid("")])
                .with_include_authorized_operations(v >= 3),
        );
    }
    for v in [0, 3, 4, 5] {
        run.same("all", v, ListGroupsRequest::default());
    }
    run.same(
        "stable only",
        5,
        ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
    );
    run.same(
        "empty only",
        5,
        ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
    );
    run.same(
        "classic only",
        5,
        ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
    );
    run.same(
        "consumer only",
        5,
        ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
    );
    run.same(
        "unknown state",
        5,
        ListGroupsRequest::default().with_states_filter(vec![s("Sleeping")]),
    );

    // LeaveGroup, DeleteGroups
    let leave = |group: &str, members: &[&str]| {
        LeaveGroupRequest::default()
            .with_group_id(gid(group))
            .with_members(
                members
                    .iter()
                    .map(|m| MemberIdentity::default().with_member_id(s(m)))
                    .collect(),
            )
    };
    run.same("unknown group", 5, leave("g-nope", &["nobody"]));
    run.same("unknown member", 5, leave("g1", &["nobody"]));
    run.compare("member and unknown member", 5, |side| {
        leave("g1", &[&side.member("m1"), "nobody"])
    });
    run.compare("member again", 5, |side| leave("g1", &[&side.member("m1")]));
    run.same(
        "old version, unknown member",
        2,
        LeaveGroupRequest::default()
            .with_group_id(gid("g1"))
            .with_member_id(s("nobody")),
    );
    run.same(
        "after leaving",
        5,
        DescribeGroupsRequest::default().with_groups(vec![gid("g1")]),
    );

    // A second group with a member, to see DeleteGroups refuse it.
    let [a, b] = run.same("new member of g2", 9, join_request("g2", ""));
    run.kafka
        .members
        .insert("m2".into(), a.member_id.to_string());
    run.klamm
        .members
        .insert("m2".into(), b.member_id.to_string());
    run.compare("g2 joined", 9, |side| {
        join_request("g2", &side.member("m2"))
    });
    run.same(
        "non-empty, empty, unknown",
        2,
        DeleteGroupsRequest::default().with_groups_names(vec![
            gid("g2"),
            gid("g1"),
            gid("g-nope"),
            gid(""),
        ]),
    );
    run.same("after deleting", 8, offset_fetch_v8(&[("g1", None)]));
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

fn cluster(run: &mut Run) {
    run.same("brokers", 1, DescribeClusterRequest::default());
    run.same(
        "with operations",
        1,
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    run.same(
        "controllers",
        1,
        DescribeClusterRequest::default().with_endpoint_type(2),
    );
    run.same(
        "all topics",
        12,
        MetadataRequest::default().with_topics(None),
    );
}

/// Requests that change what every other case relies on, so they come last.
fn last(run: &mut Run) {
    run.same(
        "internal topic",
        5,
        DeleteTopicsRequest::default()
            .with_topic_names(vec![tn("__consumer_offsets")])
            .with_timeout_ms(10_000),
    );
}

#[test]
fn kafka_and_klamm_answer_alike() {
    let Some(home) = support::kafka_home_or_skip("differential") else {
        return;
    };
    let started = Instant::now();
    let kafka = std::thread::spawn(move || ApacheKafka::start(&home, ALIKE));
    let klamm = Klamm::start(ALIKE);
    let kafka = kafka.join().expect("Apache Kafka started");
    println!(
        "differential: Kafka at {}, Klamm at {}, up in {:.1}s",
        kafka.bootstrap(),
        klamm.bootstrap(),
        started.elapsed().as_secs_f64()
    );
    let mut run = Run::new(&kafka, &klamm);
    api_versions(&mut run);
    metadata(&mut run);
    create_topics_cases(&mut run);
    create_partitions(&mut run);
    delete_topics(&mut run);
    configs(&mut run);
    produce(&mut run);
    fetch(&mut run);
    offsets_and_delete_records(&mut run);
    groups(&mut run);
    cluster(&mut run);
    last(&mut run);
    run.finish(started);
}

/// The comparison machinery itself, without any broker.
#[test]
fn trees_compare_by_key_and_mask_ids() {
    let a = diff::parse(
        r#"R { t: 0, xs: [E { name: "a", v: Some(1) }, E { name: "b", v: None }], m: {}, id: 0f8fad5b-d9cb-469f-a165-70867728950e }"#,
    );
    let b = diff::parse(
        r#"R { t: 5, xs: [E { name: "b", v: None }, E { name: "a", v: Some(2) }], m: {}, id: 1f8fad5b-d9cb-469f-a165-70867728950e }"#,
    );
    let (mut a, mut b) = (a, b);
    diff::normalise(&mut a, &Rules::default());
    diff::normalise(&mut b, &Rules::default());
    let d = diff::diff(&a, &b);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].path.as_str(), d[1].path.as_str()), ("t", "xs[a].v"));
    assert!(diff::glob("xs[*].v", &d[1].path));
    assert!(!diff::glob("xs[b]*", &d[1].path));
    assert_eq!(
        diff::mask_uuids("\"c-0f8fad5b-d9cb-469f-a165-70867728950e\""),
        "\"c-<uuid>\""
    );
    let zero = "00000000-0000-0000-0000-000000000000";
    assert_eq!(diff::mask_uuids(zero), zero);
}
