//! The group coordinator over real sockets: every version of every group API, Kafka's error
//! codes for bad input (with no harm to other groups or members), rebalances between members on
//! separate connections, and groups and offsets surviving a clean restart and a crash.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use klamm::api::APIS;
use support::{Conn, Klamm};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// Sessions long enough that no member of a functional test expires mid-test.
const SESSION_MS: i32 = 30_000;
/// Non-ASCII metadata must round-trip byte for byte.
const META: &str = "métadonnées ✓ 日本語 🚀";

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let spec = APIS.iter().find(|s| s.key == key).expect("API in table");
    spec.served_min..=spec.max
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn gid(x: &str) -> GroupId {
    GroupId(s(x))
}

fn tname(x: &str) -> TopicName {
    TopicName(s(x))
}

/// A broker whose groups rebalance as soon as every member has joined.
fn start() -> Klamm {
    Klamm::start(&["group.initial.rebalance.delay.ms=0"])
}

fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(tname(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    assert_eq!(conn.call(&req, 7).topics[0].error_code, 0, "create {topic}");
}

/// A broker with topics `t` (3 partitions) and `other` (2), and a connection to it.
fn broker_with_topics(extra: &[&str]) -> (Klamm, Conn) {
    let k = Klamm::start(extra);
    let mut conn = Conn::connect(k.addr);
    create_topic(&mut conn, "t", 3);
    create_topic(&mut conn, "other", 2);
    (k, conn)
}

/// Every topic's id by name.
fn topic_ids(conn: &mut Conn) -> HashMap<String, Uuid> {
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    conn.call(&req, 12)
        .topics
        .into_iter()
        .filter_map(|t| t.name.map(|n| (n.0.to_string(), t.topic_id)))
        .collect()
}

/// Consumer-protocol member metadata: a version prefix, then the subscription at that version.
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .encode(&mut buf, 3)
        .unwrap();
    buf.freeze()
}

fn range(topics: &[&str]) -> Vec<(&'static str, Bytes)> {
    vec![("range", subscription(topics))]
}

fn join_request(group: &str, member: &str, protocols: &[(&str, Bytes)]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(n, m)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(n))
                        .with_metadata(m.clone())
                })
                .collect(),
        )
}

/// Joins as a new member. From v4 a dynamic member joins in two steps: the first answer is
/// MEMBER_ID_REQUIRED with the id to rejoin with.
fn join_new(conn: &mut Conn, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    let first = conn.call(&req, version);
    if version < 4 || req.group_instance_id.is_some() {
        return first;
    }
    assert_eq!(
        first.error_code, MEMBER_ID_REQUIRED,
        "v{version}: first join"
    );
    assert!(!first.member_id.is_empty(), "v{version}: id to rejoin with");
    let id = first.member_id.clone();
    let joined = conn.call(&req.with_member_id(id.clone()), version);
    assert_eq!(
        joined.member_id, id,
        "v{version}: rejoined under the given id"
    );
    joined
}

fn sync_request(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, Bytes)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(a.clone())
                })
                .collect(),
        )
}

#[derive(Debug, Clone)]
struct Member {
    group: String,
    id: String,
    generation: i32,
}

/// What a member's assignment is in these tests.
fn assignment_of(id: &str) -> Bytes {
    Bytes::from(format!("assignment of {id}"))
}

/// Joins and syncs a new member from `req`: alone in its group, it leads it to Stable.
fn stable_with(conn: &mut Conn, req: JoinGroupRequest) -> Member {
    let group = req.group_id.0.to_string();
    let joined = join_new(conn, req, 9);
    assert_eq!(joined.error_code, 0, "join {group}");
    let id = joined.member_id.to_string();
    assert_eq!(joined.leader.as_str(), id, "sole member leads {group}");
    let synced = conn.call(
        &sync_request(
            &group,
            joined.generation_id,
            &id,
            &[(&id, assignment_of(&id))],
        ),
        5,
    );
    assert_eq!(synced.error_code, 0, "sync {group}");
    assert_eq!(synced.assignment, assignment_of(&id));
    Member {
        group,
        id,
        generation: joined.generation_id,
    }
}

/// A one-member Stable group subscribed to `topics`.
fn stable_member(conn: &mut Conn, group: &str, topics: &[&str]) -> Member {
    stable_with(conn, join_request(group, "", &range(topics)))
}

fn heartbeat_raw(conn: &mut Conn, group: &str, generation: i32, member: &str, v: i16) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member));
    conn.call(&req, v).error_code
}

fn heartbeat(conn: &mut Conn, m: &Member) -> i16 {
    heartbeat_raw(conn, &m.group, m.generation, &m.id, 4)
}

fn leave(conn: &mut Conn, m: &Member) {
    let req = LeaveGroupRequest::default()
        .with_group_id(gid(&m.group))
        .with_members(vec![MemberIdentity::default().with_member_id(s(&m.id))]);
    let resp = conn.call(&req, 5);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.members[0].error_code, 0);
}

fn describe(conn: &mut Conn, groups: &[&str], v: i16) -> DescribeGroupsResponse {
    let req = DescribeGroupsRequest::default()
        .with_groups(groups.iter().map(|g| gid(g)).collect())
        .with_include_authorized_operations(v >= 3);
    let resp = conn.call(&req, v);
    assert_eq!(resp.groups.len(), groups.len());
    resp
}

/// One committed offset as the tests compare them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Off {
    topic: String,
    partition: i32,
    offset: i64,
    epoch: i32,
    metadata: String,
}

fn off(topic: &str, partition: i32, offset: i64, epoch: i32, metadata: &str) -> Off {
    Off {
        topic: topic.to_string(),
        partition,
        offset,
        epoch,
        metadata: metadata.to_string(),
    }
}

/// No committed offset, as OffsetFetch reports it.
fn none(topic: &str, partition: i32) -> Off {
    off(topic, partition, -1, -1, "")
}

/// Correlation ids of hand-encoded requests.
static RAW_CORRELATION: AtomicI32 = AtomicI32::new(1_000_000);

/// A request kafka-protocol cannot encode (OffsetCommit and OffsetFetch v10 name topics by id),
/// written field by field in the flexible encoding, behind a v2 request header.
struct Raw {
    buf: BytesMut,
    correlation: i32,
}

impl Raw {
    fn new(key: ApiKey, version: i16) -> Raw {
        let correlation = RAW_CORRELATION.fetch_add(1, Ordering::Relaxed);
        let mut buf = BytesMut::new();
        buf.put_i16(key as i16);
        buf.put_i16(version);
        buf.put_i32(correlation);
        buf.put_i16(11);
        buf.put_slice(b"klamm-tests");
        buf.put_u8(0);
        Raw { buf, correlation }
    }

    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn string(&mut self, x: &str) {
        self.uvarint(x.len() as u32 + 1);
        self.buf.put_slice(x.as_bytes());
    }

    fn null(&mut self) {
        self.uvarint(0);
    }

    fn len(&mut self, n: usize) {
        self.uvarint(n as u32 + 1);
    }

    fn no_tags(&mut self) {
        self.uvarint(0);
    }

    fn uuid(&mut self, id: Uuid) {
        self.buf.put_slice(id.as_bytes());
    }

    /// Sends the request and returns its correlation id.
    fn send(self, conn: &mut Conn) -> i32 {
        conn.send_raw(&self.buf);
        self.correlation
    }
}

/// Offsets grouped by topic, in first-seen order.
fn by_topic(offs: &[Off]) -> Vec<(String, Vec<&Off>)> {
    let mut out: Vec<(String, Vec<&Off>)> = Vec::new();
    for o in offs {
        match out.iter_mut().find(|(t, _)| *t == o.topic) {
            Some((_, ps)) => ps.push(o),
            None => out.push((o.topic.clone(), vec![o])),
        }
    }
    out
}

/// OffsetCommit at `version`; every partition's `(topic, partition, error)` in request order.
/// At v10 topics go by id; a topic the broker does not know gets a random one.
fn commit(
    conn: &mut Conn,
    group: &str,
    generation: i32,
    member: &str,
    offs: &[Off],
    version: i16,
) -> Vec<(String, i32, i16)> {
    let resp = if version >= 10 {
        let ids = topic_ids(conn);
        let mut names: HashMap<Uuid, String> = HashMap::new();
        let mut raw = Raw::new(ApiKey::OffsetCommit, version);
        raw.string(group);
        raw.buf.put_i32(generation);
        raw.string(member);
        raw.null();
        let topics = by_topic(offs);
        raw.len(topics.len());
        for (t, ps) in topics {
            let id = ids.get(&t).copied().unwrap_or_else(Uuid::new_v4);
            names.insert(id, t);
            raw.uuid(id);
            raw.len(ps.len());
            for o in ps {
                raw.buf.put_i32(o.partition);
                raw.buf.put_i64(o.offset);
                raw.buf.put_i32(o.epoch);
                raw.string(&o.metadata);
                raw.no_tags();
            }
            raw.no_tags();
        }
        raw.no_tags();
        let corr = raw.send(conn);
        let mut resp = conn.receive::<OffsetCommitRequest>(corr, version);
        for t in &mut resp.topics {
            assert!(t.name.is_empty(), "v10 names topics by id only");
            t.name = tname(&names[&t.topic_id]);
        }
        resp
    } else {
        let topics = by_topic(offs)
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default()
                    .with_name(tname(&t))
                    .with_partitions(
                        ps.into_iter()
                            .map(|o| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(o.partition)
                                    .with_committed_offset(o.offset)
                                    .with_committed_leader_epoch(if version >= 6 {
                                        o.epoch
                                    } else {
                                        -1
                                    })
                                    .with_committed_metadata(Some(s(&o.metadata)))
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(topics);
        conn.call(&req, version)
    };
    let out: Vec<(String, i32, i16)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    let asked: Vec<(String, i32)> = by_topic(offs)
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |o| (t.clone(), o.partition)))
        .collect();
    let answered: Vec<(String, i32)> = out.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    assert_eq!(
        answered, asked,
        "v{version}: one result per partition asked"
    );
    out
}

/// Commits and expects every partition accepted.
fn commit_ok(conn: &mut Conn, group: &str, generation: i32, member: &str, offs: &[Off], v: i16) {
    for (t, p, e) in commit(conn, group, generation, member, offs, v) {
        assert_eq!(e, 0, "v{v}: commit {group} {t}-{p}");
    }
}

/// A standalone commit: no member, generation -1 (what admin tools and manual-assignment
/// consumers send).
fn commit_standalone(conn: &mut Conn, group: &str, offs: &[Off]) {
    commit_ok(conn, group, -1, "", offs, 9);
}

type Wanted<'a> = Option<&'a [(&'a str, &'a [i32])]>;
/// A group's fetched offsets (sorted, each with its partition error), or its group error.
type Fetched = Result<Vec<(Off, i16)>, i16>;

/// OffsetFetch of several groups in one request (v8+).
fn fetch_groups(conn: &mut Conn, groups: &[(&str, Wanted)], version: i16) -> Vec<Fetched> {
    assert!(version >= 8);
    let resp = if version >= 10 {
        let ids = topic_ids(conn);
        let mut raw = Raw::new(ApiKey::OffsetFetch, version);
        raw.len(groups.len());
        for (g, wanted) in groups {
            raw.string(g);
            raw.null();
            raw.buf.put_i32(-1);
            match wanted {
                None => raw.null(),
                Some(ts) => {
                    raw.len(ts.len());
                    for (t, ps) in ts.iter() {
                        raw.uuid(ids.get(*t).copied().unwrap_or_else(Uuid::new_v4));
                        raw.len(ps.len());
                        for p in ps.iter() {
                            raw.buf.put_i32(*p);
                        }
                        raw.no_tags();
                    }
                }
            }
            raw.no_tags();
        }
        raw.buf.put_u8(0);
        raw.no_tags();
        let corr = raw.send(conn);
        let mut resp = conn.receive::<OffsetFetchRequest>(corr, version);
        let names: HashMap<Uuid, String> = ids.into_iter().map(|(n, id)| (id, n)).collect();
        for g in &mut resp.groups {
            for t in &mut g.topics {
                assert!(t.name.is_empty(), "v10 names topics by id only");
                t.name = tname(names.get(&t.topic_id).expect("a known topic id"));
            }
        }
        resp
    } else {
        let req = OffsetFetchRequest::default().with_groups(
            groups
                .iter()
                .map(|(g, wanted)| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(gid(g))
                        .with_topics(wanted.map(|ts| {
                            ts.iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(tname(t))
                                        .with_partition_indexes(ps.to_vec())
                                })
                                .collect()
                        }))
                })
                .collect(),
        );
        conn.call(&req, version)
    };
    assert_eq!(
        resp.groups.len(),
        groups.len(),
        "v{version}: one result per group"
    );
    resp.groups
        .into_iter()
        .zip(groups)
        .map(|(g, (asked, _))| {
            assert_eq!(g.group_id.0.as_str(), *asked, "v{version}");
            if g.error_code != 0 {
                return Err(g.error_code);
            }
            let mut offs: Vec<(Off, i16)> = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            off(
                                t.name.0.as_str(),
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_ref().map_or("<null>", |m| m.as_str()),
                            ),
                            p.error_code,
                        )
                    })
                })
                .collect();
            offs.sort();
            Ok(offs)
        })
        .collect()
}

/// OffsetFetch of one group at any version.
fn fetch(conn: &mut Conn, group: &str, wanted: Wanted, version: i16) -> Fetched {
    if version >= 8 {
        return fetch_groups(conn, &[(group, wanted)], version).remove(0);
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(wanted.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(tname(t))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    let resp = conn.call(&req, version);
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    let mut offs: Vec<(Off, i16)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    off(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_ref().map_or("<null>", |m| m.as_str()),
                    ),
                    p.error_code,
                )
            })
        })
        .collect();
    offs.sort();
    Ok(offs)
}

/// Fetches and expects exactly `expected` with no errors.
fn assert_offsets(conn: &mut Conn, group: &str, wanted: Wanted, v: i16, expected: &[Off]) {
    let got = fetch(conn, group, wanted, v).unwrap_or_else(|e| panic!("v{v}: fetch {group}: {e}"));
    let mut expected: Vec<(Off, i16)> = expected.iter().map(|o| (o.clone(), 0)).collect();
    expected.sort();
    assert_eq!(got, expected, "v{v}: offsets of {group}");
}

/// A group and member that bad requests elsewhere must not touch: its committed offset stays
/// and its member stays in the Stable group.
struct Bystander {
    conn: Conn,
    member: Member,
    offsets: Vec<Off>,
}

impl Bystander {
    fn new(k: &Klamm) -> Bystander {
        let mut conn = Conn::connect(k.addr);
        let member = stable_member(&mut conn, "bystander", &["t"]);
        let offsets = vec![off("t", 1, 77, 3, "bystander ✓")];
        commit_ok(
            &mut conn,
            &member.group,
            member.generation,
            &member.id,
            &offsets,
            9,
        );
        Bystander {
            conn,
            member,
            offsets,
        }
    }

    fn check(&mut self, after: &str) {
        assert_eq!(
            heartbeat(&mut self.conn, &self.member),
            0,
            "bystander's heartbeat after {after}"
        );
        let got = fetch(&mut self.conn, "bystander", None, 9).unwrap();
        let expected: Vec<(Off, i16)> = self.offsets.iter().map(|o| (o.clone(), 0)).collect();
        assert_eq!(got, expected, "bystander's offsets after {after}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every version of every group API.

#[test]
fn find_coordinator_every_version() {
    let k = start();
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::FindCoordinator) {
        if v < 4 {
            let req = FindCoordinatorRequest::default().with_key(s("some-group"));
            let resp = conn.call(&req, v);
            assert_eq!(resp.error_code, 0, "v{v}");
            assert_eq!(resp.node_id.0, 1, "v{v}");
            assert_eq!(resp.host.as_str(), "127.0.0.1", "v{v}");
            assert_eq!(resp.port, k.addr.port() as i32, "v{v}");
        } else {
            let req = FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("group-a"), s("group-b")]);
            let resp = conn.call(&req, v);
            assert_eq!(resp.coordinators.len(), 2, "v{v}");
            for (c, key) in resp.coordinators.iter().zip(["group-a", "group-b"]) {
                assert_eq!(c.key.as_str(), key, "v{v}");
                assert_eq!(c.error_code, 0, "v{v}");
                assert_eq!(c.node_id.0, 1, "v{v}");
                assert_eq!(c.host.as_str(), "127.0.0.1", "v{v}");
                assert_eq!(c.port, k.addr.port() as i32, "v{v}");
            }
        }
    }
}

#[test]
fn join_group_every_version() {
    let k = start();
    let mut conn = Conn::connect(k.addr);
    let protocols = vec![
        ("range", subscription(&["t"])),
        ("roundrobin", subscription(&["t", "u"])),
    ];
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("join-v{v}");
        let resp = join_new(&mut conn, join_request(&group, "", &protocols), v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.generation_id, 1, "v{v}");
        assert!(!resp.member_id.is_empty(), "v{v}");
        assert_eq!(resp.leader, resp.member_id, "v{v}: the sole member leads");
        assert_eq!(
            resp.protocol_name.as_ref().map(|p| p.as_str()),
            Some("range"),
            "v{v}: the first common protocol"
        );
        if v >= 7 {
            assert_eq!(
                resp.protocol_type.as_ref().map(|p| p.as_str()),
                Some("consumer"),
                "v{v}"
            );
        }
        assert_eq!(resp.members.len(), 1, "v{v}: the leader sees its members");
        assert_eq!(resp.members[0].member_id, resp.member_id, "v{v}");
        assert_eq!(resp.members[0].metadata, protocols[0].1, "v{v}");
        assert_eq!(resp.members[0].group_instance_id, None, "v{v}");

        // A repeated join with the same id and protocols gets the same generation back.
        let again = conn.call(
            &join_request(&group, resp.member_id.as_str(), &protocols),
            v,
        );
        assert_eq!(again.error_code, 0, "v{v}: repeated join");
        assert_eq!(again.generation_id, 1, "v{v}: repeated join");

        if v >= 5 {
            // A static member joins in one step and the leader sees its instance id.
            let group = format!("join-static-v{v}");
            let req = join_request(&group, "", &protocols).with_group_instance_id(Some(s("inst")));
            let resp = conn.call(&req, v);
            assert_eq!(resp.error_code, 0, "v{v}: static join");
            assert_eq!(resp.generation_id, 1, "v{v}");
            assert_eq!(resp.leader, resp.member_id, "v{v}");
            assert_eq!(resp.members.len(), 1, "v{v}");
            assert_eq!(
                resp.members[0]
                    .group_instance_id
                    .as_ref()
                    .map(|i| i.as_str()),
                Some("inst"),
                "v{v}"
            );
        }
    }
}

#[test]
fn sync_group_every_version() {
    let k = start();
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::SyncGroup) {
        let group = format!("sync-v{v}");
        let joined = join_new(&mut conn, join_request(&group, "", &range(&["t"])), 9);
        assert_eq!(joined.error_code, 0, "v{v}");
        let id = joined.member_id.to_string();
        let given = Bytes::from(format!("partitions for v{v} ✓"));
        let mut req = sync_request(&group, joined.generation_id, &id, &[(&id, given.clone())]);
        if v >= 5 {
            req = req
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(
            resp.assignment, given,
            "v{v}: the leader's assignment comes back"
        );
        if v >= 5 {
            assert_eq!(
                resp.protocol_type.as_ref().map(|p| p.as_str()),
                Some("consumer")
            );
            assert_eq!(
                resp.protocol_name.as_ref().map(|p| p.as_str()),
                Some("range")
            );
        }
        // A stable group answers a repeated sync with the member's assignment.
        let again = conn.call(&sync_request(&group, joined.generation_id, &id, &[]), v);
        assert_eq!(again.error_code, 0, "v{v}: repeated sync");
        assert_eq!(again.assignment, given, "v{v}: repeated sync");
        let bad = conn.call(&sync_request(&group, joined.generation_id + 1, &id, &[]), v);
        assert_eq!(bad.error_code, ILLEGAL_GENERATION, "v{v}");
        let bad = conn.call(&sync_request(&group, joined.generation_id, "ghost", &[]), v);
        assert_eq!(bad.error_code, UNKNOWN_MEMBER_ID, "v{v}");
    }
}

#[test]
fn heartbeat_every_version() {
    let k = start();
    let mut conn = Conn::connect(k.addr);
    let m = stable_member(&mut conn, "hb", &["t"]);
    for v in versions(ApiKey::Heartbeat) {
        assert_eq!(
            heartbeat_raw(&mut conn, "hb", m.generation, &m.id, v),
            0,
            "v{v}"
        );
        assert_eq!(
            heartbeat_raw(&mut conn, "hb", m.generation + 1, &m.id, v),
            ILLEGAL_GENERATION,
            "v{v}"
        );
        assert_eq!(
            heartbeat_raw(&mut conn, "hb", m.generation - 1, &m.id, v),
            ILLEGAL_GENERATION,
            "v{v}"
        );
        assert_eq!(
            heartbeat_raw(&mut conn, "hb", m.generation, "ghost", v),
            UNKNOWN_MEMBER_ID,
            "v{v}"
        );
        // Bad heartbeats change nothing.
        assert_eq!(
            heartbeat_raw(&mut conn, "hb", m.generation, &m.id, v),
            0,
            "v{v}"
        );
    }
}

#[test]
fn offset_commit_then_fetch_every_version() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    // A group that only ever had standalone commits, fetched alongside in batched requests.
    let solo = vec![off("other", 0, 9, 2, "solo ✓")];
    commit_standalone(&mut conn, "solo", &solo);
    for cv in versions(ApiKey::OffsetCommit) {
        let group = format!("commit-v{cv}");
        let m = stable_member(&mut conn, &group, &["t", "other"]);
        let committed = vec![
            off("t", 0, 100 + cv as i64, 7, &format!("{META} v{cv}")),
            off("t", 2, 5, 8, ""),
            off("other", 1, 42, -1, "x"),
        ];
        commit_ok(&mut conn, &group, m.generation, &m.id, &committed, cv);
        for fv in versions(ApiKey::OffsetFetch) {
            // The leader epoch survives when both versions carry it.
            let carried = |o: &Off| Off {
                epoch: if cv >= 6 && fv >= 5 { o.epoch } else { -1 },
                ..o.clone()
            };
            let expected: Vec<Off> = committed.iter().map(carried).collect();
            let mut named = expected.clone();
            named.push(none("t", 1));
            assert_offsets(
                &mut conn,
                &group,
                Some(&[("t", &[0, 1, 2]), ("other", &[1])]),
                fv,
                &named,
            );
            if fv >= 2 {
                // Null topics: every committed partition.
                assert_offsets(&mut conn, &group, None, fv, &expected);
            }
            if fv >= 8 {
                let both = fetch_groups(
                    &mut conn,
                    &[(&group, Some(&[("t", &[0])])), ("solo", None)],
                    fv,
                );
                let mine: Vec<(Off, i16)> = vec![(carried(&committed[0]), 0)];
                assert_eq!(both[0], Ok(mine), "v{fv}: batched, first group");
                let theirs: Vec<(Off, i16)> = solo.iter().map(|o| (o.clone(), 0)).collect();
                assert_eq!(both[1], Ok(theirs), "v{fv}: batched, second group");
            }
        }
    }
    drop(k);
}

#[test]
fn leave_group_every_version() {
    let k = start();
    let mut conn = Conn::connect(k.addr);
    for v in versions(ApiKey::LeaveGroup) {
        let group = format!("leave-v{v}");
        let m = stable_member(&mut conn, &group, &["t"]);
        if v < 3 {
            let req = LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(s(&m.id));
            assert_eq!(conn.call(&req, v).error_code, 0, "v{v}");
            assert_eq!(
                conn.call(&req, v).error_code,
                UNKNOWN_MEMBER_ID,
                "v{v}: again"
            );
        } else {
            let req = LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&m.id)),
                    MemberIdentity::default().with_member_id(s("ghost")),
                ]);
            let resp = conn.call(&req, v);
            assert_eq!(resp.error_code, 0, "v{v}");
            let results: Vec<(&str, i16)> = resp
                .members
                .iter()
                .map(|r| (r.member_id.as_str(), r.error_code))
                .collect();
            assert_eq!(
                results,
                vec![(m.id.as_str(), 0), ("ghost", UNKNOWN_MEMBER_ID)],
                "v{v}"
            );

            // A static member leaves by its instance id alone.
            let group = format!("leave-static-v{v}");
            let req =
                join_request(&group, "", &range(&["t"])).with_group_instance_id(Some(s("leaver")));
            let sm = stable_with(&mut conn, req);
            let req = LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![
                    MemberIdentity::default().with_group_instance_id(Some(s("leaver")))
                ]);
            let resp = conn.call(&req, v);
            assert_eq!(resp.error_code, 0, "v{v}");
            assert_eq!(resp.members.len(), 1, "v{v}");
            assert_eq!(resp.members[0].error_code, 0, "v{v}: static leave");
            assert_eq!(heartbeat(&mut conn, &sm), UNKNOWN_MEMBER_ID, "v{v}");
        }
        assert_eq!(heartbeat(&mut conn, &m), UNKNOWN_MEMBER_ID, "v{v}: left");
        let d = describe(&mut conn, &[&group], 5);
        assert_eq!(d.groups[0].group_state.as_str(), "Empty", "v{v}");
        assert!(d.groups[0].members.is_empty(), "v{v}");
    }
}

#[test]
fn list_groups_every_version() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let _m = stable_member(&mut conn, "listed-stable", &["t"]);
    commit_standalone(&mut conn, "listed-empty", &[off("t", 0, 1, -1, "")]);
    let ids = |resp: &ListGroupsResponse| -> Vec<String> {
        resp.groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect()
    };
    for v in versions(ApiKey::ListGroups) {
        let resp = conn.call(&ListGroupsRequest::default(), v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(ids(&resp), vec!["listed-empty", "listed-stable"], "v{v}");
        let stable = &resp.groups[1];
        assert_eq!(stable.protocol_type.as_str(), "consumer", "v{v}");
        assert_eq!(resp.groups[0].protocol_type.as_str(), "", "v{v}");
        if v >= 4 {
            assert_eq!(resp.groups[0].group_state.as_str(), "Empty", "v{v}");
            assert_eq!(stable.group_state.as_str(), "Stable", "v{v}");
            for (filter, expected) in [
                (vec!["Stable"], vec!["listed-stable"]),
                (vec!["Empty"], vec!["listed-empty"]),
                (
                    vec!["Stable", "Empty"],
                    vec!["listed-empty", "listed-stable"],
                ),
                (vec!["PreparingRebalance"], vec![]),
            ] {
                let req = ListGroupsRequest::default()
                    .with_states_filter(filter.iter().map(|f| s(f)).collect());
                let resp = conn.call(&req, v);
                assert_eq!(resp.error_code, 0);
                assert_eq!(ids(&resp), expected, "v{v}: states {filter:?}");
            }
        }
        if v >= 5 {
            assert_eq!(stable.group_type.as_str(), "classic", "v{v}");
            let req = ListGroupsRequest::default().with_types_filter(vec![s("classic")]);
            assert_eq!(ids(&conn.call(&req, v)).len(), 2, "v{v}: classic groups");
            let req = ListGroupsRequest::default().with_types_filter(vec![s("consumer")]);
            assert!(
                ids(&conn.call(&req, v)).is_empty(),
                "v{v}: no KIP-848 groups"
            );
        }
    }
    drop(k);
}

#[test]
fn describe_groups_every_version() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let req = join_request("described", "", &range(&["t", "other"]))
        .with_group_instance_id(Some(s("described-1")));
    let m = stable_with(&mut conn, req);
    commit_standalone(&mut conn, "described-empty", &[off("t", 0, 1, -1, "")]);
    for v in versions(ApiKey::DescribeGroups) {
        let resp = describe(
            &mut conn,
            &["described", "described-empty", "described-unknown"],
            v,
        );
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0, "v{v}");
        assert_eq!(g.group_id.0.as_str(), "described");
        assert_eq!(g.group_state.as_str(), "Stable", "v{v}");
        assert_eq!(g.protocol_type.as_str(), "consumer", "v{v}");
        assert_eq!(g.protocol_data.as_str(), "range", "v{v}");
        assert_eq!(g.members.len(), 1, "v{v}");
        let member = &g.members[0];
        assert_eq!(member.member_id.as_str(), m.id, "v{v}");
        assert_eq!(member.client_id.as_str(), "klamm-tests", "v{v}");
        assert_eq!(member.client_host.as_str(), "/127.0.0.1", "v{v}");
        assert_eq!(
            member.member_metadata,
            subscription(&["t", "other"]),
            "v{v}"
        );
        assert_eq!(member.member_assignment, assignment_of(&m.id), "v{v}");
        assert_eq!(
            member.group_instance_id.as_ref().map(|i| i.as_str()),
            if v >= 4 { Some("described-1") } else { None },
            "v{v}"
        );
        if v >= 3 {
            assert_ne!(
                g.authorized_operations,
                i32::MIN,
                "v{v}: operations asked for"
            );
        }

        let empty = &resp.groups[1];
        assert_eq!(empty.error_code, 0, "v{v}");
        assert_eq!(empty.group_state.as_str(), "Empty", "v{v}");
        assert!(empty.members.is_empty(), "v{v}");

        let unknown = &resp.groups[2];
        assert_eq!(unknown.group_id.0.as_str(), "described-unknown");
        assert_eq!(unknown.group_state.as_str(), "Dead", "v{v}");
        assert!(unknown.members.is_empty(), "v{v}");
        let expected = if v >= 6 { GROUP_ID_NOT_FOUND } else { 0 };
        assert_eq!(unknown.error_code, expected, "v{v}: unknown group");
    }
    drop(k);
}

#[test]
fn delete_groups_every_version() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    for v in versions(ApiKey::DeleteGroups) {
        let group = format!("deleted-v{v}");
        let m = stable_member(&mut conn, &group, &["t"]);
        commit_ok(
            &mut conn,
            &group,
            m.generation,
            &m.id,
            &[off("t", 0, 10, 1, META)],
            9,
        );
        let delete = |conn: &mut Conn| {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]);
            let resp = conn.call(&req, v);
            assert_eq!(resp.results.len(), 1, "v{v}");
            assert_eq!(resp.results[0].group_id.0.as_str(), group, "v{v}");
            resp.results[0].error_code
        };
        assert_eq!(
            delete(&mut conn),
            NON_EMPTY_GROUP,
            "v{v}: a member is in it"
        );
        assert_eq!(
            heartbeat(&mut conn, &m),
            0,
            "v{v}: the refusal harms nothing"
        );
        leave(&mut conn, &m);
        assert_eq!(delete(&mut conn), 0, "v{v}");
        assert_offsets(&mut conn, &group, Some(&[("t", &[0])]), 9, &[none("t", 0)]);
        assert_eq!(
            describe(&mut conn, &[&group], 6).groups[0].error_code,
            GROUP_ID_NOT_FOUND,
            "v{v}"
        );
        assert_eq!(delete(&mut conn), GROUP_ID_NOT_FOUND, "v{v}: already gone");
        // The id can be used again from scratch.
        let again = stable_member(&mut conn, &group, &["t"]);
        assert_eq!(again.generation, 1, "v{v}: a new group");
    }
    // A group that only has offsets is deleted at once, with them.
    commit_standalone(&mut conn, "offsets-only", &[off("t", 1, 3, -1, "")]);
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![gid("offsets-only"), gid("never-was")]);
    let resp = conn.call(&req, 2);
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, GROUP_ID_NOT_FOUND]);
    assert_offsets(&mut conn, "offsets-only", None, 9, &[]);
    drop(k);
}

#[test]
fn offset_delete_spares_subscribed_topics() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let m = stable_member(&mut conn, "od", &["t"]);
    let committed = vec![
        off("t", 0, 1, -1, "a"),
        off("t", 1, 2, -1, "b"),
        off("other", 0, 3, -1, "c"),
    ];
    commit_ok(&mut conn, "od", m.generation, &m.id, &committed, 9);
    let delete = |conn: &mut Conn, group: &str, topic: &str, partition: i32| {
        let req = OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(tname(topic))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(partition)
                ])]);
        let resp = conn.call(&req, 0);
        if resp.error_code != 0 {
            return resp.error_code;
        }
        assert_eq!(resp.topics[0].name.0.as_str(), topic);
        assert_eq!(resp.topics[0].partitions[0].partition_index, partition);
        resp.topics[0].partitions[0].error_code
    };
    for v in versions(ApiKey::OffsetDelete) {
        assert_eq!(v, 0, "only v0 exists");
        assert_eq!(delete(&mut conn, "od", "t", 0), GROUP_SUBSCRIBED_TO_TOPIC);
        assert_eq!(delete(&mut conn, "od", "other", 0), 0);
        assert_eq!(
            delete(&mut conn, "od", "nope", 0),
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(delete(&mut conn, "never-was", "t", 0), GROUP_ID_NOT_FOUND);
        assert_offsets(&mut conn, "od", None, 9, &committed[..2]);
        assert_eq!(heartbeat(&mut conn, &m), 0);
        // Once nobody subscribes, the topic's offsets can go.
        leave(&mut conn, &m);
        assert_eq!(delete(&mut conn, "od", "t", 0), 0);
        assert_offsets(&mut conn, "od", None, 9, &committed[1..2]);
    }
    drop(k);
}

// ---------------------------------------------------------------------------------------------
// Bad input: Kafka's error codes, and nothing else disturbed.

#[test]
fn bad_commits_get_kafka_codes_and_harm_nothing() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let mut bystander = Bystander::new(&k);
    for v in versions(ApiKey::OffsetCommit) {
        let group = format!("committer-v{v}");
        let m = stable_member(&mut conn, &group, &["t"]);
        let good = off("t", 0, 1000 + v as i64, -1, META);
        // An unknown topic or partition fails alone.
        let results = commit(
            &mut conn,
            &group,
            m.generation,
            &m.id,
            &[
                good.clone(),
                off("nope", 0, 1, -1, ""),
                off("t", 99, 1, -1, ""),
            ],
            v,
        );
        let unknown_topic = if v >= 10 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        let codes: Vec<i16> = results.iter().map(|r| r.2).collect();
        assert_eq!(
            codes,
            vec![0, unknown_topic, UNKNOWN_TOPIC_OR_PARTITION],
            "v{v}"
        );
        assert_offsets(&mut conn, &group, None, 9, std::slice::from_ref(&good));
        bystander.check(&format!("v{v} commit to unknown topic"));

        // Metadata over offset.metadata.max.bytes (4096) fails alone; exactly 4096 is fine.
        let results = commit(
            &mut conn,
            &group,
            m.generation,
            &m.id,
            &[
                off("t", 1, 5, -1, &"x".repeat(4097)),
                off("t", 2, 6, -1, &"y".repeat(4096)),
            ],
            v,
        );
        let codes: Vec<i16> = results.iter().map(|r| r.2).collect();
        assert_eq!(codes, vec![OFFSET_METADATA_TOO_LARGE, 0], "v{v}");
        let big = off("t", 2, 6, -1, &"y".repeat(4096));
        assert_offsets(&mut conn, &group, None, 9, &[good.clone(), big.clone()]);
        bystander.check(&format!("v{v} oversized metadata"));

        // Whole-request refusals: every partition carries the error and nothing is stored.
        let attempt = [off("t", 0, 1, -1, "no"), off("t", 1, 1, -1, "no")];
        for (generation, member, expected, what) in [
            (
                m.generation + 1,
                m.id.as_str(),
                ILLEGAL_GENERATION,
                "wrong generation",
            ),
            (m.generation, "ghost", UNKNOWN_MEMBER_ID, "unknown member"),
            (
                -1,
                "",
                UNKNOWN_MEMBER_ID,
                "standalone commit to a group with members",
            ),
        ] {
            let results = commit(&mut conn, &group, generation, member, &attempt, v);
            assert!(
                results.iter().all(|r| r.2 == expected),
                "v{v} {what}: {results:?}"
            );
            assert_offsets(&mut conn, &group, None, 9, &[good.clone(), big.clone()]);
            bystander.check(&format!("v{v} {what}"));
        }
        // As in Kafka, the empty group id is a group like any other for offsets (old clients
        // committed under it).
        let results = commit(&mut conn, "", -1, "", &attempt, v);
        assert!(
            results.iter().all(|r| r.2 == 0),
            "v{v} empty group id: {results:?}"
        );
        bystander.check(&format!("v{v} commit with empty group id"));
        assert_eq!(
            heartbeat(&mut conn, &m),
            0,
            "v{v}: the committer is still in"
        );
    }
    for v in versions(ApiKey::OffsetFetch) {
        if v >= 2 {
            assert!(
                fetch(&mut conn, "", None, v).is_ok(),
                "v{v}: fetch with empty group id"
            );
            bystander.check(&format!("v{v} fetch with empty group id"));
        }
    }
    drop(k);
}

#[test]
fn bad_joins_get_kafka_codes_and_harm_nothing() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let mut bystander = Bystander::new(&k);
    let m = stable_member(&mut conn, "joined", &["t"]);
    for v in versions(ApiKey::JoinGroup) {
        let join = |conn: &mut Conn, req: JoinGroupRequest| conn.call(&req, v).error_code;
        assert_eq!(
            join(&mut conn, join_request("", "", &range(&["t"]))),
            INVALID_GROUP_ID,
            "v{v}: empty group id"
        );
        bystander.check(&format!("v{v} join with empty group id"));

        let short = join_request("short", "", &range(&["t"])).with_session_timeout_ms(5999);
        assert_eq!(
            join(&mut conn, short),
            INVALID_SESSION_TIMEOUT,
            "v{v}: session below group.min.session.timeout.ms"
        );
        bystander.check(&format!("v{v} join with a short session"));

        let other_type =
            join_request("joined", "", &range(&["t"])).with_protocol_type(s("connect"));
        assert_eq!(
            join(&mut conn, other_type),
            INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: another protocol type"
        );
        let no_common = join_request("joined", "", &[("roundrobin", subscription(&["t"]))]);
        assert_eq!(
            join(&mut conn, no_common),
            INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: no common protocol"
        );
        assert_eq!(
            join(&mut conn, join_request("joined", "ghost", &range(&["t"]))),
            UNKNOWN_MEMBER_ID,
            "v{v}: unknown member id"
        );
        // The group kept its member and did not rebalance.
        assert_eq!(
            heartbeat(&mut conn, &m),
            0,
            "v{v}: the member is undisturbed"
        );
        let d = describe(&mut conn, &["joined"], 5);
        assert_eq!(d.groups[0].group_state.as_str(), "Stable", "v{v}");
        assert_eq!(d.groups[0].members.len(), 1, "v{v}");
        bystander.check(&format!("v{v} inconsistent joins"));

        assert_eq!(
            join(
                &mut conn,
                join_request("nobody-home", "ghost", &range(&["t"]))
            ),
            UNKNOWN_MEMBER_ID,
            "v{v}: a member id for a group that does not exist"
        );
    }
    // Refused joins leave no trace: only a join that is let in creates a group.
    let listed = conn.call(&ListGroupsRequest::default(), 4);
    let ids: Vec<&str> = listed
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    assert_eq!(ids, vec!["bystander", "joined"]);
    for phantom in ["short", "nobody-home"] {
        let d = describe(&mut conn, &[phantom], 6);
        assert_eq!(d.groups[0].error_code, GROUP_ID_NOT_FOUND, "{phantom}");
    }
    drop(k);
}

#[test]
fn static_member_rejoining_fences_its_old_id() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let mut bystander = Bystander::new(&k);
    let req = join_request("static", "", &range(&["t"])).with_group_instance_id(Some(s("pod-1")));
    let old = stable_with(&mut conn, req.clone());

    // The same instance restarts on a new connection: a new id, the same generation, no
    // rebalance (its protocols are unchanged).
    let mut restarted = Conn::connect(k.addr);
    let resp = restarted.call(&req, 9);
    assert_eq!(resp.error_code, 0);
    assert_ne!(resp.member_id.as_str(), old.id);
    assert_eq!(resp.generation_id, old.generation);
    let new = Member {
        group: "static".into(),
        id: resp.member_id.to_string(),
        generation: resp.generation_id,
    };
    for v in versions(ApiKey::Heartbeat).filter(|v| *v >= 3) {
        let hb = |conn: &mut Conn, m: &Member| {
            let req = HeartbeatRequest::default()
                .with_group_id(gid(&m.group))
                .with_generation_id(m.generation)
                .with_member_id(s(&m.id))
                .with_group_instance_id(Some(s("pod-1")));
            conn.call(&req, v).error_code
        };
        assert_eq!(hb(&mut conn, &old), FENCED_INSTANCE_ID, "v{v}: old id");
        assert_eq!(hb(&mut restarted, &new), 0, "v{v}: new id");
        bystander.check(&format!("v{v} fenced heartbeat"));
    }
    assert_eq!(
        heartbeat(&mut conn, &old),
        UNKNOWN_MEMBER_ID,
        "old id is gone"
    );
    let fenced_commit = OffsetCommitRequest::default()
        .with_group_id(gid("static"))
        .with_generation_id_or_member_epoch(old.generation)
        .with_member_id(s(&old.id))
        .with_group_instance_id(Some(s("pod-1")))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tname("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])]);
    let resp = conn.call(&fenced_commit, 9);
    assert_eq!(resp.topics[0].partitions[0].error_code, FENCED_INSTANCE_ID);
    assert_offsets(&mut conn, "static", None, 9, &[]);
    let d = describe(&mut conn, &["static"], 5);
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    let ids: Vec<&str> = d.groups[0]
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, vec![new.id.as_str()]);
    assert_eq!(
        d.groups[0].members[0].member_assignment,
        assignment_of(&old.id),
        "the instance keeps its assignment"
    );
    bystander.check("static membership");
    drop(k);
}

#[test]
fn standalone_commits_to_a_group_without_members() {
    let (k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let mut bystander = Bystander::new(&k);
    for v in versions(ApiKey::OffsetCommit) {
        let group = format!("standalone-v{v}");
        let committed = vec![
            off("t", 0, 11, if v >= 6 { 4 } else { -1 }, META),
            off("other", 1, 12, -1, ""),
        ];
        commit_ok(&mut conn, &group, -1, "", &committed, v);
        assert_offsets(&mut conn, &group, None, 9, &committed);
        let d = describe(&mut conn, &[&group], 5);
        assert_eq!(d.groups[0].group_state.as_str(), "Empty", "v{v}");
        bystander.check(&format!("v{v} standalone commit"));
    }
    drop(k);
}

// ---------------------------------------------------------------------------------------------
// Rebalances between members on their own connections.

/// Heartbeats until the answer is `code` (polling, as the event that causes it may still be in
/// flight on another connection).
fn heartbeat_until(conn: &mut Conn, m: &Member, code: i16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = heartbeat(conn, m);
        if got == code {
            return started.elapsed();
        }
        assert_eq!(got, 0, "heartbeat of {} while waiting for {code}", m.id);
        assert!(started.elapsed() < within, "no {code} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rebalance_on_join_and_on_session_expiry() {
    let k = Klamm::start(&[
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=100",
    ]);
    let session = 1500;
    let req = |member: &str| {
        join_request("rb", member, &range(&["t"]))
            .with_session_timeout_ms(session)
            .with_rebalance_timeout_ms(10_000)
    };
    let mut conn_a = Conn::connect(k.addr);
    let mut conn_b = Conn::connect(k.addr);
    let a = stable_with(&mut conn_a, req(""));
    assert_eq!(a.generation, 1);

    // B joins: its second step waits for the rebalance, and A learns of it by heartbeat.
    let first = conn_b.call(&req(""), 9);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let b_id = first.member_id.to_string();
    let b_join = conn_b.send(&req(&b_id), 9);
    heartbeat_until(
        &mut conn_a,
        &a,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(5),
    );
    let d = describe(&mut conn_a, &["rb"], 5);
    assert_eq!(d.groups[0].group_state.as_str(), "PreparingRebalance");

    let a_join = conn_a.send(&req(&a.id), 9);
    let a_resp = conn_a.receive::<JoinGroupRequest>(a_join, 9);
    let b_resp = conn_b.receive::<JoinGroupRequest>(b_join, 9);
    for (resp, id) in [(&a_resp, &a.id), (&b_resp, &b_id)] {
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.generation_id, 2);
        assert_eq!(resp.member_id.as_str(), id);
        assert_eq!(resp.leader, a_resp.leader, "one leader for everyone");
    }
    let leader = a_resp.leader.to_string();
    assert!(leader == a.id || leader == b_id);
    let (leads, follows) = if leader == a.id {
        (&a_resp, &b_resp)
    } else {
        (&b_resp, &a_resp)
    };
    let mut seen: Vec<String> = leads
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    seen.sort();
    let mut both = vec![a.id.clone(), b_id.clone()];
    both.sort();
    assert_eq!(seen, both, "the leader sees both members");
    assert!(follows.members.is_empty(), "only the leader sees members");

    // The follower's sync waits for the leader's.
    let assignments = [
        (a.id.as_str(), assignment_of(&a.id)),
        (b_id.as_str(), assignment_of(&b_id)),
    ];
    let (leader_conn, follower_conn, follower) = if leader == a.id {
        (&mut conn_a, &mut conn_b, b_id.clone())
    } else {
        (&mut conn_b, &mut conn_a, a.id.clone())
    };
    let f_sync = follower_conn.send(&sync_request("rb", 2, &follower, &[]), 5);
    let l_sync = leader_conn.send(&sync_request("rb", 2, &leader, &assignments), 5);
    let l_resp = leader_conn.receive::<SyncGroupRequest>(l_sync, 5);
    let f_resp = follower_conn.receive::<SyncGroupRequest>(f_sync, 5);
    assert_eq!(l_resp.error_code, 0);
    assert_eq!(f_resp.error_code, 0);
    assert_eq!(l_resp.assignment, assignment_of(&leader));
    assert_eq!(f_resp.assignment, assignment_of(&follower));
    let synced = Instant::now();
    let a = Member { generation: 2, ..a };
    let b = Member {
        group: "rb".into(),
        id: b_id.clone(),
        generation: 2,
    };
    assert_eq!(heartbeat(&mut conn_a, &a), 0);
    assert_eq!(heartbeat(&mut conn_b, &b), 0);

    // B goes silent; A keeps heartbeating. After B's session, B is removed and A must rejoin.
    heartbeat_until(
        &mut conn_a,
        &a,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(10),
    );
    let silent = synced.elapsed();
    assert!(
        silent >= Duration::from_millis(session as u64 - 200),
        "B removed after {silent:?}, before its {session} ms session ran out"
    );
    let rejoined = conn_a.call(&req(&a.id), 9);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, 3);
    assert_eq!(rejoined.leader.as_str(), a.id);
    let ids: Vec<&str> = rejoined
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, vec![a.id.as_str()], "only A is left");
    assert_eq!(heartbeat(&mut conn_b, &b), UNKNOWN_MEMBER_ID);
    drop(k);
}

/// Syncs a generation: followers first (they wait for the leader), then the leader with
/// everyone's assignment; checks each member gets its own.
fn sync_together(group: &str, generation: i32, leader: &str, members: &mut [(&mut Conn, &str)]) {
    let assignments: Vec<(&str, Bytes)> = members
        .iter()
        .map(|(_, id)| (*id, assignment_of(id)))
        .collect();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|i| members[*i].1 == leader);
    let mut sent = Vec::new();
    for i in order {
        let (conn, id) = &mut members[i];
        let given: &[(&str, Bytes)] = if *id == leader { &assignments } else { &[] };
        sent.push((i, conn.send(&sync_request(group, generation, id, given), 5)));
    }
    for (i, corr) in sent {
        let (conn, id) = &mut members[i];
        let resp = conn.receive::<SyncGroupRequest>(corr, 5);
        assert_eq!(resp.error_code, 0, "sync of {id}");
        assert_eq!(resp.assignment, assignment_of(id), "assignment of {id}");
    }
}

#[test]
fn laggard_dropped_at_rebalance_timeout_and_leader_leaving_hands_over() {
    let k = Klamm::start(&[
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=100",
    ]);
    let rebalance_ms = 1000;
    let req = |member: &str| {
        join_request("handover", member, &range(&["t"]))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(rebalance_ms)
    };
    let member = |id: &str, generation: i32| Member {
        group: "handover".into(),
        id: id.to_string(),
        generation,
    };
    let (mut conn_a, mut conn_b, mut conn_c) = (
        Conn::connect(k.addr),
        Conn::connect(k.addr),
        Conn::connect(k.addr),
    );
    let a = stable_with(&mut conn_a, req(""));

    // B joins and both rejoin into generation 2.
    let b_id = conn_b.call(&req(""), 9).member_id.to_string();
    let b_join = conn_b.send(&req(&b_id), 9);
    heartbeat_until(
        &mut conn_a,
        &a,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(5),
    );
    let a_resp = conn_a.call(&req(&a.id), 9);
    let b_resp = conn_b.receive::<JoinGroupRequest>(b_join, 9);
    assert_eq!((a_resp.generation_id, b_resp.generation_id), (2, 2));
    assert_eq!(a_resp.leader.as_str(), a.id, "the leader keeps leading");
    sync_together(
        "handover",
        2,
        &a.id,
        &mut [(&mut conn_a, &a.id), (&mut conn_b, &b_id)],
    );
    let (a, b) = (member(&a.id, 2), member(&b_id, 2));

    // C joins; A rejoins, B only heartbeats. After the rebalance timeout the generation
    // completes without B.
    let c_id = conn_c.call(&req(""), 9).member_id.to_string();
    let c_join = conn_c.send(&req(&c_id), 9);
    heartbeat_until(
        &mut conn_a,
        &a,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(5),
    );
    let started = Instant::now();
    let a_join = conn_a.send(&req(&a.id), 9);
    assert_eq!(heartbeat(&mut conn_b, &b), REBALANCE_IN_PROGRESS);
    let a_resp = conn_a.receive::<JoinGroupRequest>(a_join, 9);
    let waited = started.elapsed();
    let c_resp = conn_c.receive::<JoinGroupRequest>(c_join, 9);
    assert!(
        waited >= Duration::from_millis(rebalance_ms as u64 - 300)
            && waited < Duration::from_secs(5),
        "the join waited {waited:?} for the laggard"
    );
    assert_eq!((a_resp.error_code, c_resp.error_code), (0, 0));
    assert_eq!((a_resp.generation_id, c_resp.generation_id), (3, 3));
    let mut seen: Vec<&str> = a_resp
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    seen.sort();
    let mut expected = vec![a.id.as_str(), c_id.as_str()];
    expected.sort();
    assert_eq!(seen, expected, "B was dropped");
    assert_eq!(heartbeat(&mut conn_b, &b), UNKNOWN_MEMBER_ID);

    // Until the leader syncs, commits are checked for member and generation first; only a
    // current member of the new generation is told to wait.
    let d = describe(&mut conn_a, &["handover"], 5);
    assert_eq!(d.groups[0].group_state.as_str(), "CompletingRebalance");
    let attempt = [off("t", 0, 1, -1, "")];
    for (on_b, generation, id, expected, what) in [
        (true, 2, b.id.as_str(), UNKNOWN_MEMBER_ID, "dropped member"),
        (
            false,
            2,
            a.id.as_str(),
            ILLEGAL_GENERATION,
            "old generation",
        ),
        (false, -1, "", UNKNOWN_MEMBER_ID, "standalone commit"),
        (
            false,
            3,
            a.id.as_str(),
            REBALANCE_IN_PROGRESS,
            "current member",
        ),
    ] {
        let conn = if on_b { &mut conn_b } else { &mut conn_a };
        let results = commit(conn, "handover", generation, id, &attempt, 9);
        assert_eq!(results[0].2, expected, "{what} commits while completing");
    }
    sync_together(
        "handover",
        3,
        &a.id,
        &mut [(&mut conn_a, &a.id), (&mut conn_c, &c_id)],
    );
    let (a, c) = (member(&a.id, 3), member(&c_id, 3));
    assert_eq!(heartbeat(&mut conn_c, &c), 0);

    // The leader leaves: C must rejoin, and leads generation 4 alone.
    leave(&mut conn_a, &a);
    heartbeat_until(
        &mut conn_c,
        &c,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(5),
    );
    let c_resp = conn_c.call(&req(&c_id), 9);
    assert_eq!(c_resp.error_code, 0);
    assert_eq!(c_resp.generation_id, 4);
    assert_eq!(c_resp.leader.as_str(), c_id);
    let ids: Vec<&str> = c_resp
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, vec![c_id.as_str()]);
    drop(k);
}

#[test]
fn initial_rebalance_delay_holds_only_a_new_groups_first_rebalance() {
    let k = Klamm::start(&["group.initial.rebalance.delay.ms=1000"]);
    let mut conn_a = Conn::connect(k.addr);
    let mut conn_b = Conn::connect(k.addr);
    for v in [3, 9] {
        let group = format!("delayed-v{v}");
        let started = Instant::now();
        let resp = join_new(&mut conn_a, join_request(&group, "", &range(&["t"])), v);
        let took = started.elapsed();
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_secs(5),
            "v{v}: the first join of a new group took {took:?}"
        );
    }

    // A stable group's next rebalance is not delayed.
    let a = stable_member(&mut conn_a, "undelayed", &["t"]);
    let first = conn_b.call(&join_request("undelayed", "", &range(&["t"])), 9);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let b_join = conn_b.send(
        &join_request("undelayed", first.member_id.as_str(), &range(&["t"])),
        9,
    );
    heartbeat_until(
        &mut conn_a,
        &a,
        REBALANCE_IN_PROGRESS,
        Duration::from_secs(5),
    );
    let started = Instant::now();
    let a_resp = conn_a.call(&join_request("undelayed", &a.id, &range(&["t"])), 9);
    let took = started.elapsed();
    let b_resp = conn_b.receive::<JoinGroupRequest>(b_join, 9);
    assert_eq!(a_resp.error_code, 0);
    assert_eq!(b_resp.error_code, 0);
    assert_eq!(a_resp.generation_id, 2);
    assert!(
        took < Duration::from_millis(900),
        "the rebalance of an existing group took {took:?}"
    );
    drop(k);
}

// ---------------------------------------------------------------------------------------------
// Persistence in __consumer_offsets.

fn survives(restart: impl Fn(&mut Klamm)) {
    let (mut k, mut conn) = broker_with_topics(&["group.initial.rebalance.delay.ms=0"]);
    let req =
        join_request("kept", "", &range(&["t", "other"])).with_group_instance_id(Some(s("kept-1")));
    let m = stable_with(&mut conn, req);
    let kept = vec![
        off("t", 0, 1234, 9, META),
        off("t", 2, 0, -1, ""),
        off("other", 1, 55, 2, &"é".repeat(2048)),
    ];
    commit_ok(&mut conn, "kept", m.generation, &m.id, &kept, 9);
    let solo = vec![off("t", 1, 7, 1, "solo ✓")];
    commit_standalone(&mut conn, "solo", &solo);
    let left = stable_member(&mut conn, "left", &["t"]);
    let left_offsets = vec![off("t", 0, 3, -1, "left")];
    commit_ok(
        &mut conn,
        "left",
        left.generation,
        &left.id,
        &left_offsets,
        9,
    );
    leave(&mut conn, &left);
    let doomed = stable_member(&mut conn, "doomed", &["t"]);
    commit_ok(
        &mut conn,
        "doomed",
        doomed.generation,
        &doomed.id,
        &[off("t", 0, 1, -1, "")],
        9,
    );
    leave(&mut conn, &doomed);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid("doomed")]);
    assert_eq!(conn.call(&req, 2).results[0].error_code, 0);
    // Later commits replace earlier ones.
    let mut kept_now = kept.clone();
    kept_now[1] = off("t", 2, 99, 3, "replaced");
    commit_ok(&mut conn, "kept", m.generation, &m.id, &kept_now[1..2], 9);

    let check = |conn: &mut Conn, kept: &[Off], round: &str| {
        assert_offsets(conn, "kept", None, 9, kept);
        for v in [1, 5] {
            let wanted: &[(&str, &[i32])] = &[("t", &[0, 2]), ("other", &[1])];
            let got = fetch(conn, "kept", Some(wanted), v).unwrap();
            let metadata: Vec<&str> = got.iter().map(|(o, _)| o.metadata.as_str()).collect();
            let mut expected: Vec<&Off> = kept.iter().collect();
            expected.sort();
            let expected: Vec<&str> = expected.iter().map(|o| o.metadata.as_str()).collect();
            assert_eq!(metadata, expected, "{round}: v{v}");
        }
        assert_offsets(conn, "solo", None, 9, &solo);
        assert_offsets(conn, "left", None, 9, &left_offsets);
        assert_offsets(conn, "doomed", None, 9, &[]);
        let d = describe(conn, &["kept", "solo", "left", "doomed"], 5);
        let g = &d.groups[0];
        assert_eq!(g.group_state.as_str(), "Stable", "{round}");
        assert_eq!(g.protocol_type.as_str(), "consumer", "{round}");
        assert_eq!(g.protocol_data.as_str(), "range", "{round}");
        assert_eq!(g.members.len(), 1, "{round}");
        let member = &g.members[0];
        assert_eq!(member.member_id.as_str(), m.id, "{round}");
        assert_eq!(member.client_id.as_str(), "klamm-tests", "{round}");
        assert_eq!(member.client_host.as_str(), "/127.0.0.1", "{round}");
        assert_eq!(
            member.member_metadata,
            subscription(&["t", "other"]),
            "{round}"
        );
        assert_eq!(member.member_assignment, assignment_of(&m.id), "{round}");
        assert_eq!(
            member.group_instance_id.as_ref().map(|i| i.as_str()),
            Some("kept-1"),
            "{round}"
        );
        for g in &d.groups[1..3] {
            assert_eq!(g.error_code, 0, "{round}");
            assert_eq!(g.group_state.as_str(), "Empty", "{round}: {:?}", g.group_id);
            assert!(g.members.is_empty(), "{round}");
        }
        assert_eq!(d.groups[3].group_state.as_str(), "Dead", "{round}: deleted");
        // The member carries on in its generation, and its instance id still fences.
        assert_eq!(heartbeat(conn, &m), 0, "{round}");
        let impostor = HeartbeatRequest::default()
            .with_group_id(gid("kept"))
            .with_generation_id(m.generation)
            .with_member_id(s("impostor"))
            .with_group_instance_id(Some(s("kept-1")));
        assert_eq!(
            conn.call(&impostor, 4).error_code,
            FENCED_INSTANCE_ID,
            "{round}"
        );
    };
    check(&mut conn, &kept_now, "before");
    restart(&mut k);
    let mut conn = Conn::connect(k.addr);
    check(&mut conn, &kept_now, "after the first restart");

    // Commits after a restart survive the next one too.
    kept_now[0] = off("t", 0, 5000, 10, "after restart ✓");
    commit_ok(&mut conn, "kept", m.generation, &m.id, &kept_now[..1], 9);
    restart(&mut k);
    let mut conn = Conn::connect(k.addr);
    check(&mut conn, &kept_now, "after the second restart");

    // An emptied group keeps counting generations: 1 with its member, 2 when it left.
    let back = stable_member(&mut conn, "left", &["t"]);
    assert_eq!(back.generation, 3);
}

#[test]
fn groups_and_offsets_survive_a_clean_restart() {
    survives(|k| k.restart());
}

#[test]
fn groups_and_offsets_survive_a_crash() {
    survives(|k| {
        k.kill();
        k.start_again();
    });
}

// ---------------------------------------------------------------------------------------------
// Groups cost memory only while they exist.

/// Sends `n` JoinGroups, each to a group of its own (`<prefix>-<i>`), pipelined a window at a
/// time. Three in four are v4+ first joins, which leave a pending member (an id handed out with
/// MEMBER_ID_REQUIRED that is never used); one in four is an older join that makes a member
/// which then never syncs nor heartbeats. Returns the ids handed out.
fn join_storm(conn: &mut Conn, prefix: &str, n: usize, session_ms: i32) -> Vec<String> {
    const WINDOW: usize = 256;
    let all: Vec<i16> = versions(ApiKey::JoinGroup).collect();
    let (old, new): (Vec<i16>, Vec<i16>) = all.iter().partition(|v| **v < 4);
    assert!(
        !old.is_empty() && !new.is_empty(),
        "JoinGroup versions {all:?}"
    );
    let mut handed_out = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + WINDOW).min(n);
        let sent: Vec<(i32, i16)> = (i..end)
            .map(|j| {
                let v = if j % 4 == 3 {
                    old[j / 4 % old.len()]
                } else {
                    new[j % new.len()]
                };
                let req = join_request(&format!("{prefix}-{j}"), "", &range(&["storm"]))
                    .with_session_timeout_ms(session_ms)
                    .with_rebalance_timeout_ms(session_ms);
                (conn.send(&req, v), v)
            })
            .collect();
        for (correlation, v) in sent {
            let resp = conn.receive::<JoinGroupRequest>(correlation, v);
            let expected = if v >= 4 { MEMBER_ID_REQUIRED } else { 0 };
            assert_eq!(resp.error_code, expected, "v{v} join");
            assert!(!resp.member_id.is_empty(), "v{v} join: a member id");
            handed_out.push(resp.member_id.to_string());
        }
        i = end;
    }
    handed_out
}

/// How many listed groups have ids starting with `prefix`.
fn listed_with(conn: &mut Conn, prefix: &str) -> usize {
    let resp = conn.call(&ListGroupsRequest::default(), 4);
    assert_eq!(resp.error_code, 0);
    resp.groups
        .iter()
        .filter(|g| g.group_id.0.starts_with(prefix))
        .count()
}

/// Polls ListGroups until no group id starts with `prefix`; returns how long that took.
fn until_none_listed(conn: &mut Conn, prefix: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let left = listed_with(conn, prefix);
        if left == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{left} groups {prefix}-* still listed after {within:?}: expired members, pending \
             members and empty groups without offsets must go"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A storm of JoinGroups with fresh group ids (20,000 groups: pending members that never
/// rejoin, members that never heartbeat) leaves nothing once it stops: pending members expire
/// after their session timeout, members after theirs, and the emptied groups (no offsets) are
/// removed at the next retention check, as Kafka removes them. ListGroups must list none of
/// them, and the broker's resident memory must come back down from its peak; more storms
/// must not raise it further (nothing accumulates).
///
/// The broker runs with one malloc arena: glibc keeps freed memory in the arenas of the runtime's
/// other threads (6-15 MiB of a 32 MiB rise here, varying from run to run), which hides what
/// the broker itself keeps. With one arena what it gives back is measured to within a few
/// hundred KiB.
#[test]
fn a_storm_of_fresh_groups_leaves_nothing_behind() {
    const GROUPS: usize = 20_000;
    const SESSION_MS: i32 = 1_000;
    let k = Klamm::start_with_env(
        &[
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=100",
            "offsets.retention.check.interval.ms=500",
        ],
        &[("MALLOC_ARENA_MAX", "1")],
    );
    let mut conn = Conn::connect(k.addr);
    // A small storm first, so one-time costs (the offsets topic, the runtime's buffers, the
    // allocator's arenas) are in the baseline.
    join_storm(&mut conn, "warm-up", 1_000, SESSION_MS);
    until_none_listed(&mut conn, "warm-up", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let baseline = k.rss_kib();

    let mut after = Vec::new();
    let mut peaks = Vec::new();
    for round in 1..=3 {
        let prefix = format!("storm{round}");
        let started = Instant::now();
        let ids = join_storm(&mut conn, &prefix, GROUPS, SESSION_MS);
        let storm_took = started.elapsed();
        let listed = listed_with(&mut conn, &prefix);
        let peak = k.rss_kib();
        // Most of them are still there (the first may already have expired on a slow machine).
        assert!(
            listed > GROUPS / 2,
            "round {round}: only {listed} of {GROUPS} groups listed right after the storm"
        );
        let gone_after = until_none_listed(&mut conn, &prefix, Duration::from_secs(60));
        // The clean-up that removed the last of them hands the memory back right after.
        std::thread::sleep(Duration::from_millis(1_000));
        let rss = k.rss_kib();
        eprintln!(
            "round {round}: {GROUPS} JoinGroups in {storm_took:?} ({listed} groups listed); \
             all gone {gone_after:?} later; VmRSS baseline {baseline} KiB, peak {peak} KiB, \
             after {rss} KiB"
        );
        // A member id handed out in the storm is unknown now: its group is gone.
        let pending = &ids[0];
        let resp = conn.call(
            &join_request(&format!("{prefix}-0"), pending, &range(&["storm"]))
                .with_session_timeout_ms(SESSION_MS),
            9,
        );
        assert_eq!(
            resp.error_code, UNKNOWN_MEMBER_ID,
            "rejoin of an expired id"
        );
        peaks.push(peak);
        after.push(rss);
    }
    assert_eq!(listed_with(&mut conn, "storm"), 0);
    let grown = peaks[0].saturating_sub(baseline);
    assert!(
        grown >= 4 * 1024,
        "the storm cost only {grown} KiB at its peak: too little to measure a return"
    );
    // Each round gives back all but an eighth of its rise (measured: 0.3-0.8 MiB of 32 MiB
    // stays), and storms do not add up: two more leave at most a sixteenth more behind (a
    // leak of 50 bytes a group would fail this).
    for (round, rss) in after.iter().enumerate() {
        assert!(
            rss.saturating_sub(baseline) <= grown / 8,
            "round {}: VmRSS {rss} KiB, {} KiB above the baseline {baseline} KiB, after a \
             storm that peaked {grown} KiB above it",
            round + 1,
            rss.saturating_sub(baseline),
        );
    }
    assert!(
        after[2] <= after[0] + grown / 16,
        "storms add up: VmRSS after each {after:?} KiB (baseline {baseline} KiB, rise {grown} KiB)"
    );
}

// ---------------------------------------------------------------------------------------------
// Topic deletion.

/// Deleting a topic removes every group's committed offsets of it, durably: consumers of a
/// topic created again under the name start from its beginning, also after a restart.
#[test]
fn deleting_a_topic_removes_its_committed_offsets_for_good() {
    let mut k = start();
    let mut conn = Conn::connect(k.addr);
    create_topic(&mut conn, "doomed", 2);
    create_topic(&mut conn, "kept", 1);
    let all = [
        off("doomed", 0, 5, -1, ""),
        off("doomed", 1, 7, -1, ""),
        off("kept", 0, 3, -1, ""),
    ];
    commit_standalone(&mut conn, "g-one", &all);
    commit_standalone(&mut conn, "g-two", &all[..1]);
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![tname("doomed")])
        .with_timeout_ms(5000);
    assert_eq!(conn.call(&req, 5).responses[0].error_code, 0);
    create_topic(&mut conn, "doomed", 2);
    let check = |conn: &mut Conn, when: &str| {
        assert_offsets(conn, "g-one", None, 7, &[off("kept", 0, 3, -1, "")]);
        let asked: Wanted = Some(&[("doomed", &[0, 1])]);
        assert_offsets(
            conn,
            "g-one",
            asked,
            7,
            &[none("doomed", 0), none("doomed", 1)],
        );
        assert_eq!(fetch(conn, "g-two", None, 7), Ok(vec![]), "{when}");
    };
    check(&mut conn, "after the deletion");
    k.kill();
    k.start_again();
    let mut conn = Conn::connect(k.addr);
    check(&mut conn, "after a crash");
}
