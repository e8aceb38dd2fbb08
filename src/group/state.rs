//! One consumer group under the classic protocol, as a state machine fed by requests and by
//! the clock: Empty → PreparingRebalance → CompletingRebalance → Stable (→ Dead on deletion).
//!
//! Requests that must wait for a rebalance (JoinGroup, SyncGroup) leave a one-shot sender in
//! their member; the transition that completes the rebalance answers them all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Coordinator settings that shape every group.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// group.max.size: most members a group may have.
    pub max_size: usize,
    /// Most member ids a group holds for members that were told MEMBER_ID_REQUIRED and have not
    /// rejoined yet (see [`Pending`]).
    pub max_pending: usize,
}

/// The default of [`GroupLimits::max_pending`]. Kafka has no such bound (its pending ids only
/// expire with their session timeout); a member normally rejoins within milliseconds, so this
/// many at once means thousands of consumers starting together, or a storm of first joins.
pub const MAX_PENDING_MEMBERS: usize = 1_000;

impl GroupLimits {
    pub fn allows_session(&self, session: Duration) -> bool {
        (self.min_session_timeout..=self.max_session_timeout).contains(&session)
    }
}

/// What a JoinGroup waits for.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's id, instance id and metadata; only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup waits for: the member's assignment or an error.
pub type SyncOutcome = Result<(Option<String>, Option<String>, Bytes), ResponseError>;

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// Supported protocols with their metadata, in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Subscribed metadata for the group's protocol, for DescribeGroups.
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol.map(|p| self.metadata_for(p)).unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A join request's parameters.
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is given one and asked to rejoin with it.
    pub require_known_member_id: bool,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet used to rejoin.
    pending: Pending,
    /// Static members: group.instance.id → member id.
    pub instances: HashMap<String, String>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// When the current rebalance gives up on members that have not rejoined.
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits this long for more members.
    join_delay_until: Option<Instant>,
    rebalance_started: Option<Instant>,
    /// Wall-clock time of the last state change, for offsets retention.
    pub state_since_ms: i64,
    /// Whether `__consumer_offsets` holds a metadata record of this group (written, or loaded),
    /// which its removal must tombstone.
    pub persisted: bool,
}

/// Member ids handed out with MEMBER_ID_REQUIRED and not yet used to rejoin, each forgotten
/// when the session timeout of its join has passed, as Kafka expires a pending member. A group
/// holds at most [`GroupLimits::max_pending`]: a newer id pushes out the one closest to
/// expiry, whose member then learns UNKNOWN_MEMBER_ID when it rejoins and joins afresh.
#[derive(Debug, Default)]
struct Pending {
    by_id: HashMap<String, (Instant, u64)>,
    /// The same ids by deadline (a sequence number breaks ties), to expire and evict in order.
    by_deadline: BTreeMap<(Instant, u64), String>,
    next: u64,
}

impl Pending {
    fn insert(&mut self, id: String, deadline: Instant, cap: usize) {
        while self.by_id.len() >= cap.max(1) {
            let Some((_, evicted)) = self.by_deadline.pop_first() else {
                break;
            };
            self.by_id.remove(&evicted);
        }
        self.next += 1;
        let key = (deadline, self.next);
        self.by_deadline.insert(key, id.clone());
        self.by_id.insert(id, key);
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(key) = self.by_id.remove(id) else {
            return false;
        };
        self.by_deadline.remove(&key);
        self.release_if_empty();
        true
    }

    /// Forgets the ids whose deadline has come.
    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.by_deadline.first_entry() {
            if first.key().0 > now {
                break;
            }
            let id = first.remove();
            self.by_id.remove(&id);
        }
        self.release_if_empty();
    }

    /// A map keeps its capacity when emptied; a group that once held many ids gives it back.
    fn release_if_empty(&mut self) {
        if self.by_id.is_empty() && self.by_id.capacity() > 0 {
            self.by_id = HashMap::new();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Something the coordinator must persist after a state change.
#[derive(Debug, PartialEq, Eq)]
pub enum Persist {
    Nothing,
    GroupMetadata,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: Pending::default(),
            instances: HashMap::new(),
            offsets: BTreeMap::new(),
            rebalance_deadline: None,
            join_delay_until: None,
            rebalance_started: None,
            state_since_ms: now_ms,
            persisted: false,
        }
    }

    /// A group restored from its persisted metadata: members keep their assignment, and their
    /// sessions start now.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_member(
        &mut self,
        id: String,
        instance_id: Option<String>,
        client_id: String,
        client_host: String,
        rebalance_timeout: Duration,
        session_timeout: Duration,
        subscription: Bytes,
        assignment: Bytes,
        now: Instant,
    ) {
        let protocols = self
            .protocol_name
            .clone()
            .map(|p| vec![(p, subscription)])
            .unwrap_or_default();
        if let Some(i) = &instance_id {
            self.instances.insert(i.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id,
                client_id,
                client_host,
                session_timeout,
                rebalance_timeout,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                protocols,
                assignment,
                last_heartbeat: now,
                awaiting_join: None,
                awaiting_sync: None,
            },
        );
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol must be supported by every member, the newcomer included.
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn new_member_id(&self, client_id: &str, instance_id: Option<&str>) -> String {
        format!(
            "{}-{}",
            instance_id.unwrap_or(client_id),
            uuid::Uuid::new_v4()
        )
    }

    /// Handles JoinGroup. Returns a receiver for the response (answered now or when the
    /// rebalance completes) and whether the group's metadata must be persisted.
    pub fn join(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> (oneshot::Receiver<JoinOutcome>, Persist) {
        let (tx, rx) = oneshot::channel();
        let reply = |tx: oneshot::Sender<JoinOutcome>, e: ResponseError, id: &str| {
            let _ = tx.send(JoinOutcome::error(e, id));
        };
        if self.state == GroupState::Dead {
            reply(tx, ResponseError::CoordinatorNotAvailable, &req.member_id);
            return (rx, Persist::Nothing);
        }
        if !limits.allows_session(req.session_timeout) {
            reply(tx, ResponseError::InvalidSessionTimeout, &req.member_id);
            return (rx, Persist::Nothing);
        }
        if !self.accepts_joining(&req.member_id, limits) {
            // As Kafka: the member (or the id it was handed) leaves the group, and learns the
            // group is full under no member id.
            if !self.pending.remove(&req.member_id) {
                self.remove_member(&req.member_id);
            }
            let persist = self.maybe_complete_join(now, now_ms);
            reply(tx, ResponseError::GroupMaxSizeReached, "");
            return (rx, persist);
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            reply(tx, ResponseError::InconsistentGroupProtocol, &req.member_id);
            return (rx, Persist::Nothing);
        }
        if req.member_id.is_empty() {
            return self.join_unknown(req, tx, rx, limits, now, now_ms);
        }
        // A known member id.
        if let Some(instance) = &req.instance_id {
            match self.instances.get(instance) {
                Some(current) if current != &req.member_id => {
                    reply(tx, ResponseError::FencedInstanceId, &req.member_id);
                    return (rx, Persist::Nothing);
                }
                _ => {}
            }
        }
        if self.pending.remove(&req.member_id) {
            let id = req.member_id.clone();
            self.add_member(id, req, tx, now);
            self.prepare_rebalance(limits, now, now_ms);
            return (rx, Persist::Nothing);
        }
        let Some(member) = self.members.get_mut(&req.member_id) else {
            reply(tx, ResponseError::UnknownMemberId, &req.member_id);
            return (rx, Persist::Nothing);
        };
        member.last_heartbeat = now;
        let unchanged = member.protocols == req.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                let member = self.members.get_mut(&req.member_id).expect("checked above");
                member.protocols = req.protocols;
                member.session_timeout = req.session_timeout;
                member.rebalance_timeout = req.rebalance_timeout;
                member.awaiting_join = Some(tx);
                self.maybe_complete_join(now, now_ms);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && (self.state == GroupState::CompletingRebalance
                        || self.leader.as_deref() != Some(&req.member_id)) =>
            {
                // A repeated join (e.g. a lost response): answer with the current generation.
                let outcome = self.outcome_for(&req.member_id);
                let _ = tx.send(outcome);
            }
            _ => {
                let member = self.members.get_mut(&req.member_id).expect("checked above");
                member.protocols = req.protocols;
                member.awaiting_join = Some(tx);
                self.prepare_rebalance(limits, now, now_ms);
            }
        }
        (rx, Persist::Nothing)
    }

    fn join_unknown(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        rx: oneshot::Receiver<JoinOutcome>,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> (oneshot::Receiver<JoinOutcome>, Persist) {
        let new_id = self.new_member_id(&req.client_id, req.instance_id.as_deref());
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.instances.get(&instance).cloned() {
                // A static member restarting: it takes over its old membership under a new
                // id. In a stable group with unchanged protocols there is no rebalance.
                if let Some(mut old) = self.members.shift_remove(&old_id) {
                    if let Some(s) = old.awaiting_join.take() {
                        let _ =
                            s.send(JoinOutcome::error(ResponseError::FencedInstanceId, &old_id));
                    }
                    if let Some(s) = old.awaiting_sync.take() {
                        let _ = s.send(Err(ResponseError::FencedInstanceId));
                    }
                    old.id = new_id.clone();
                    old.protocols = req.protocols.clone();
                    old.session_timeout = req.session_timeout;
                    old.rebalance_timeout = req.rebalance_timeout;
                    old.client_id = req.client_id.clone();
                    old.client_host = req.client_host.clone();
                    old.last_heartbeat = now;
                    self.members.insert(new_id.clone(), old);
                    self.instances.insert(instance, new_id.clone());
                    if self.leader.as_deref() == Some(&old_id) {
                        self.leader = Some(new_id.clone());
                    }
                    // Only a change of the group's protocol forces a rebalance, as in Kafka:
                    // the metadata itself may differ after a restart (cooperative-sticky puts
                    // the owned partitions and the previous generation in it).
                    let unchanged = self.select_protocol() == self.protocol_name;
                    if self.state == GroupState::Stable && unchanged {
                        let mut outcome = self.outcome_for(&new_id);
                        // Only the leader learns the members; a replaced follower just syncs.
                        if self.leader.as_deref() != Some(&new_id) {
                            outcome.members.clear();
                        }
                        let _ = tx.send(outcome);
                        return (rx, Persist::GroupMetadata);
                    }
                    let member = self.members.get_mut(&new_id).expect("just inserted");
                    member.awaiting_join = Some(tx);
                    self.prepare_rebalance(limits, now, now_ms);
                    return (rx, Persist::GroupMetadata);
                }
            }
            self.instances.insert(instance, new_id.clone());
            self.add_member(new_id, req, tx, now);
            self.prepare_rebalance(limits, now, now_ms);
            return (rx, Persist::Nothing);
        }
        if req.require_known_member_id {
            self.pending.insert(
                new_id.clone(),
                now + req.session_timeout,
                limits.max_pending,
            );
            let _ = tx.send(JoinOutcome::error(ResponseError::MemberIdRequired, &new_id));
            return (rx, Persist::Nothing);
        }
        self.add_member(new_id, req, tx, now);
        self.prepare_rebalance(limits, now, now_ms);
        (rx, Persist::Nothing)
    }

    /// group.max.size as Kafka applies it to a joining member: an empty group takes anyone;
    /// during the join phase a newcomer fits while fewer than the maximum have joined (members
    /// yet to rejoin do not count, so the last of an oversized group to rejoin are turned away);
    /// otherwise a newcomer fits while the group has fewer members than the maximum.
    fn accepts_joining(&self, member_id: &str, limits: &GroupLimits) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self
                        .members
                        .values()
                        .filter(|m| m.awaiting_join.is_some())
                        .count()
                        < limits.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < limits.max_size
            }
        }
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        now: Instant,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                awaiting_join: Some(tx),
                awaiting_sync: None,
            },
        );
    }

    /// Starts (or extends) a rebalance.
    fn prepare_rebalance(&mut self, limits: &GroupLimits, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::PreparingRebalance => {
                // A newcomer during the initial delay extends it, within the rebalance timeout.
                if let (Some(until), Some(started)) =
                    (self.join_delay_until, self.rebalance_started)
                {
                    let cap = started + self.max_rebalance_timeout();
                    self.join_delay_until =
                        Some((now + limits.initial_rebalance_delay).min(cap).max(until));
                }
            }
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                // Members waiting for their assignment must rejoin.
                for m in self.members.values_mut() {
                    if let Some(s) = m.awaiting_sync.take() {
                        let _ = s.send(Err(ResponseError::RebalanceInProgress));
                    }
                }
                let was_empty = self.state == GroupState::Empty;
                self.transition(GroupState::PreparingRebalance, now_ms);
                self.rebalance_started = Some(now);
                self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
                self.join_delay_until = (was_empty && !limits.initial_rebalance_delay.is_zero())
                    .then(|| {
                        now + limits
                            .initial_rebalance_delay
                            .min(self.max_rebalance_timeout())
                    });
            }
            GroupState::Dead => return,
        }
        self.maybe_complete_join(now, now_ms);
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Completes the join phase when every member has rejoined (after any initial delay), or
    /// when the rebalance timeout has passed (dropping members that did not rejoin).
    pub fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) -> Persist {
        if self.state != GroupState::PreparingRebalance {
            return Persist::Nothing;
        }
        if self.join_delay_until.is_some_and(|d| now < d) {
            return Persist::Nothing;
        }
        // Members handed an id (MEMBER_ID_REQUIRED) that have not rejoined yet count as not
        // joined, as in Kafka: completing without them means another rebalance moments later,
        // which the others only learn of at their next heartbeat.
        let all_joined =
            self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending.is_empty();
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all_joined && !timed_out {
            return Persist::Nothing;
        }
        let stragglers: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in stragglers {
            self.remove_member(&id);
        }
        self.join_delay_until = None;
        self.rebalance_deadline = None;
        self.rebalance_started = None;
        self.generation += 1;
        if self.members.is_empty() {
            // The protocol type stays, as in Kafka: an empty group is still a consumer group.
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, now_ms);
            return Persist::GroupMetadata;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.outcome_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_heartbeat = now;
                if let Some(s) = m.awaiting_join.take() {
                    let _ = s.send(outcome);
                }
            }
        }
        Persist::Nothing
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((pref, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == pref) {
                    v.0 += 1;
                }
            }
        }
        // Most votes wins; ties go to the earlier candidate in the first member's preference.
        let best = votes.iter().map(|(v, _)| *v).max()?;
        votes
            .into_iter()
            .find(|(v, _)| *v == best)
            .map(|(_, c)| c.clone())
    }

    fn outcome_for(&self, member_id: &str) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.shift_remove(id) {
            if let Some(i) = &m.instance_id {
                if self.instances.get(i).map(String::as_str) == Some(id) {
                    self.instances.remove(i);
                }
            }
            if let Some(s) = m.awaiting_join.take() {
                let _ = s.send(JoinOutcome::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(s) = m.awaiting_sync.take() {
                let _ = s.send(Err(ResponseError::UnknownMemberId));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// Checks a request's member, instance and generation, as every member request does.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(i) = instance_id {
            if let Some(current) = self.instances.get(i) {
                if current != member_id {
                    return Some(ResponseError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        None
    }

    /// Handles SyncGroup. The leader's request carries every member's assignment.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        now_ms: i64,
    ) -> (oneshot::Receiver<SyncOutcome>, Persist) {
        let (tx, rx) = oneshot::channel();
        if let Some(e) = self.check_member(member_id, instance_id, generation) {
            let _ = tx.send(Err(e));
            return (rx, Persist::Nothing);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            let _ = tx.send(Err(ResponseError::InconsistentGroupProtocol));
            return (rx, Persist::Nothing);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let _ = tx.send(Err(ResponseError::RebalanceInProgress));
                (rx, Persist::Nothing)
            }
            GroupState::Stable => {
                let m = &self.members[member_id];
                let _ = tx.send(Ok((
                    self.protocol_type.clone(),
                    self.protocol_name.clone(),
                    m.assignment.clone(),
                )));
                (rx, Persist::Nothing)
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = Some(tx);
                    m.last_heartbeat = now;
                }
                if self.leader.as_deref() != Some(member_id) {
                    return (rx, Persist::Nothing);
                }
                let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = given.remove(&m.id).unwrap_or_default();
                }
                self.transition(GroupState::Stable, now_ms);
                let (pt, pn) = (self.protocol_type.clone(), self.protocol_name.clone());
                for m in self.members.values_mut() {
                    if let Some(s) = m.awaiting_sync.take() {
                        let _ = s.send(Ok((pt.clone(), pn.clone(), m.assignment.clone())));
                    }
                }
                (rx, Persist::GroupMetadata)
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(Err(ResponseError::UnknownMemberId));
                (rx, Persist::Nothing)
            }
        }
    }

    /// Handles Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Empty {
            return Some(ResponseError::UnknownMemberId);
        }
        if let Some(e) = self.check_member(member_id, instance_id, generation) {
            // A member of the previous generation learns to rejoin from REBALANCE_IN_PROGRESS.
            if e == ResponseError::IllegalGeneration && self.state == GroupState::PreparingRebalance
            {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_heartbeat = now;
                }
                return Some(ResponseError::RebalanceInProgress);
            }
            return Some(e);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Handles one member of a LeaveGroup request.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Result<Persist, ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(i) => {
                let current = self
                    .instances
                    .get(i)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && member_id != current {
                    return Err(ResponseError::FencedInstanceId);
                }
                current
            }
            None => {
                if self.pending.remove(member_id) {
                    return Ok(self.maybe_complete_join(now, now_ms));
                }
                if !self.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        self.remove_member(&id);
        Ok(self.after_removal(limits, now, now_ms))
    }

    fn after_removal(&mut self, limits: &GroupLimits, now: Instant, now_ms: i64) -> Persist {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.protocol_name = None;
                    self.leader = None;
                    self.transition(GroupState::Empty, now_ms);
                    Persist::GroupMetadata
                } else {
                    self.prepare_rebalance(limits, now, now_ms);
                    Persist::Nothing
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, now_ms),
            _ => Persist::Nothing,
        }
    }

    /// Expires members whose session ran out and ids never used to rejoin; completes a
    /// rebalance whose delay or timeout has passed.
    pub fn tick(&mut self, limits: &GroupLimits, now: Instant, now_ms: i64) -> Persist {
        self.pending.expire(now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
            .filter(|m| now.duration_since(m.last_heartbeat) > m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        let mut persist = Persist::Nothing;
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id);
            if self.after_removal(limits, now, now_ms) == Persist::GroupMetadata {
                persist = Persist::GroupMetadata;
            }
        }
        if self.maybe_complete_join(now, now_ms) == Persist::GroupMetadata {
            persist = Persist::GroupMetadata;
        }
        persist
    }

    /// Is any member subscribed to `topic`? (consumer protocol only)
    pub fn subscribed_to(&self, topic: &str) -> bool {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members.values().any(|m| {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                return false;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3))
                .map(|s| s.topics.iter().any(|t| t.as_str() == topic))
                .unwrap_or(true)
        })
    }

    /// The topics the members subscribe to, for a consumer group with a protocol chosen; `None`
    /// when that is unknown (another protocol type, no protocol yet, or metadata that does not
    /// decode), as Kafka computes a classic group's subscribed topics.
    fn subscribed_topics(&self) -> Option<HashSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = bytes::Buf::get_i16(&mut meta);
            let s = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(s.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// The committed offsets that `offsets.retention.minutes` (`retention_ms`) has expired at
    /// `now_ms`, by Kafka's rules:
    /// - a group that never had members (standalone commits): each offset `retention_ms`
    ///   after its commit;
    /// - an empty group: all of them, `retention_ms` after the group became empty;
    /// - a stable consumer group: offsets of topics no member subscribes to, `retention_ms`
    ///   after their commit (offsets of subscribed topics never expire);
    /// - any other group (rebalancing, another protocol type): none.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let due = |since: i64| now_ms.saturating_sub(since) >= retention_ms;
        let by_commit = |keep: &dyn Fn(&str) -> bool| -> Vec<(String, i32)> {
            self.offsets
                .iter()
                .filter(|((t, _), c)| !keep(t) && due(c.commit_timestamp))
                .map(|(k, _)| k.clone())
                .collect()
        };
        let has_protocol_type = self.protocol_type.as_deref().is_some_and(|t| !t.is_empty());
        match self.state {
            _ if !has_protocol_type => by_commit(&|_| false),
            // A state time from before Kafka recorded one (negative) falls back to each commit.
            GroupState::Empty if self.state_since_ms < 0 => by_commit(&|_| false),
            GroupState::Empty if due(self.state_since_ms) => self.offsets.keys().cloned().collect(),
            GroupState::Stable => match self.subscribed_topics() {
                Some(subscribed) => by_commit(&|t| subscribed.contains(t)),
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Empty, with no members and no member ids handed out: once it has no committed offsets
    /// either, the next retention check removes it, as Kafka removes an empty group without
    /// offsets. (Kafka would remove it with pending members too; they would then rejoin to no
    /// group and learn UNKNOWN_MEMBER_ID. Klamm keeps it until their ids expire.)
    pub fn is_unoccupied(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Marks the group deleted; waiting requests learn the coordinator moved on.
    pub fn kill(&mut self, now_ms: i64) {
        for m in self.members.values_mut() {
            if let Some(s) = m.awaiting_join.take() {
                let _ = s.send(JoinOutcome::error(
                    ResponseError::CoordinatorNotAvailable,
                    &m.id,
                ));
            }
            if let Some(s) = m.awaiting_sync.take() {
                let _ = s.send(Err(ResponseError::CoordinatorNotAvailable));
            }
        }
        self.members.clear();
        self.offsets.clear();
        self.transition(GroupState::Dead, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(delay_ms: u64) -> GroupLimits {
        GroupLimits {
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            min_session_timeout: Duration::from_millis(10),
            max_session_timeout: Duration::from_secs(600),
            max_size: 100,
            max_pending: MAX_PENDING_MEMBERS,
        }
    }

    fn req(member: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_millis(1000),
            rebalance_timeout: Duration::from_millis(2000),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"m")))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn outcome(rx: &mut oneshot::Receiver<JoinOutcome>) -> Option<JoinOutcome> {
        rx.try_recv().ok()
    }

    #[test]
    fn two_step_join_then_sync_makes_group_stable() {
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let (mut rx, _) = g.join(req("", &["range"]), &l, t0, 0);
        let first = outcome(&mut rx).unwrap();
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let id = first.member_id;
        let (mut rx, _) = g.join(req(&id, &["range"]), &l, t0, 0);
        let joined = outcome(&mut rx).unwrap();
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation, 1);
        assert_eq!(joined.leader, id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let (mut srx, persist) = g.sync(
            &id,
            None,
            1,
            None,
            None,
            vec![(id.clone(), Bytes::from_static(b"a"))],
            t0,
            0,
        );
        assert_eq!(persist, Persist::GroupMetadata);
        assert_eq!(srx.try_recv().unwrap().unwrap().2, Bytes::from_static(b"a"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, t0), None);
        assert_eq!(
            g.heartbeat(&id, None, 0, t0),
            Some(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 1, t0),
            Some(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn second_member_triggers_rebalance_and_expired_member_is_removed() {
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let a_id = join_and_sync(&mut g, &l, t0);
        let mut b = req("", &["range", "roundrobin"]);
        b.require_known_member_id = false;
        let (mut brx, _) = g.join(b, &l, t0, 0);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(outcome(&mut brx).is_none(), "waits for the other member");
        assert_eq!(
            g.heartbeat(&a_id, None, 1, t0),
            Some(ResponseError::RebalanceInProgress)
        );
        let (mut arx, _) = g.join(req(&a_id, &["range"]), &l, t0, 0);
        let a_out = outcome(&mut arx).unwrap();
        let b_out = outcome(&mut brx).unwrap();
        assert_eq!(a_out.generation, 2);
        assert_eq!(a_out.protocol_name.as_deref(), Some("range"));
        assert_eq!(
            a_out.members.len() + b_out.members.len(),
            2,
            "only the leader sees members"
        );
        // The leader syncs and keeps heartbeating; b never heartbeats: its session expires
        // and the group rebalances.
        let _ = g.sync(&a_id, None, 2, None, None, vec![], t0, 0);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            g.heartbeat(&a_id, None, 2, t0 + Duration::from_millis(1000)),
            None
        );
        let later = t0 + Duration::from_millis(1500);
        g.tick(&l, later, 0);
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.state, GroupState::PreparingRebalance);
    }

    #[test]
    fn join_waits_for_members_that_were_handed_an_id() {
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let (mut a, _) = g.join(req("", &["range"]), &l, t0, 0);
        let (mut b, _) = g.join(req("", &["range"]), &l, t0, 0);
        let a_id = outcome(&mut a).unwrap().member_id;
        let b_id = outcome(&mut b).unwrap().member_id;
        let (mut a, _) = g.join(req(&a_id, &["range"]), &l, t0, 0);
        assert!(
            outcome(&mut a).is_none(),
            "b holds an id and has not rejoined yet"
        );
        let (mut b, _) = g.join(req(&b_id, &["range"]), &l, t0, 0);
        let (a, b) = (outcome(&mut a).unwrap(), outcome(&mut b).unwrap());
        assert_eq!(
            (a.generation, b.generation),
            (1, 1),
            "one rebalance for both"
        );
        assert_eq!(a.members.len() + b.members.len(), 2);
    }

    #[test]
    fn inconsistent_protocols_and_static_fencing() {
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let mut a = req("", &["range"]);
        a.instance_id = Some("i1".into());
        let (mut rx, _) = g.join(a, &l, t0, 0);
        let a_id = outcome(&mut rx).unwrap().member_id;
        let _ = g.sync(
            &a_id,
            None,
            1,
            None,
            None,
            vec![(a_id.clone(), Bytes::from_static(b"x"))],
            t0,
            0,
        );
        let (mut rx, _) = g.join(req("", &["other"]), &l, t0, 0);
        assert_eq!(
            outcome(&mut rx).unwrap().error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        // The static member restarts with the same protocols: new id, no rebalance.
        let mut again = req("", &["range"]);
        again.instance_id = Some("i1".into());
        let gen = g.generation;
        let (mut rx, _) = g.join(again, &l, t0, 0);
        let out = outcome(&mut rx).unwrap();
        assert_eq!(out.error, None);
        assert_ne!(out.member_id, a_id);
        assert_eq!(g.generation, gen);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            g.heartbeat(&a_id, Some("i1"), gen, t0),
            Some(ResponseError::FencedInstanceId)
        );
    }

    /// A member that joins (with the old one-step join) and syncs: the group is then Stable
    /// with it alone.
    fn join_and_sync(g: &mut Group, l: &GroupLimits, t0: Instant) -> String {
        let mut a = req("", &["range"]);
        a.require_known_member_id = false;
        let (mut rx, _) = g.join(a, l, t0, 0);
        let a_id = outcome(&mut rx).unwrap().member_id;
        let _ = g.sync(&a_id, None, 1, None, None, vec![], t0, 0);
        a_id
    }

    fn error_of(rx: &mut oneshot::Receiver<JoinOutcome>) -> Option<ResponseError> {
        outcome(rx).and_then(|o| o.error)
    }

    #[test]
    fn pending_ids_expire_with_their_session_and_leave_the_group_unoccupied() {
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let (mut rx, _) = g.join(req("", &["range"]), &l, t0, 0);
        let id = outcome(&mut rx).unwrap().member_id;
        assert_eq!(g.pending.len(), 1);
        assert!(!g.is_unoccupied(), "a handed-out id keeps the group");
        // The session timeout of the join is 1 s.
        g.tick(&l, t0 + Duration::from_millis(999), 0);
        assert_eq!(g.pending.len(), 1);
        g.tick(&l, t0 + Duration::from_millis(1000), 0);
        assert_eq!(g.pending.len(), 0);
        assert!(g.is_unoccupied());
        let (mut rx, _) = g.join(req(&id, &["range"]), &l, t0, 0);
        assert_eq!(error_of(&mut rx), Some(ResponseError::UnknownMemberId));
        assert!(g.is_unoccupied());
    }

    #[test]
    fn pending_ids_are_bounded_per_group() {
        let mut l = limits(0);
        l.max_pending = 3;
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let ids: Vec<String> = (0..5)
            .map(|i| {
                let now = t0 + Duration::from_millis(i);
                let (mut rx, _) = g.join(req("", &["range"]), &l, now, 0);
                outcome(&mut rx).unwrap().member_id
            })
            .collect();
        assert_eq!(g.pending.len(), 3);
        assert_eq!(g.pending.by_deadline.len(), 3);
        // The two closest to expiry made room; their owners must start over.
        for old in &ids[..2] {
            let (mut rx, _) = g.join(req(old, &["range"]), &l, t0, 0);
            assert_eq!(error_of(&mut rx), Some(ResponseError::UnknownMemberId));
        }
        let (mut rx, _) = g.join(req(&ids[4], &["range"]), &l, t0, 0);
        assert!(outcome(&mut rx).is_none(), "waits for the other two ids");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.pending.len(), 2);
    }

    #[test]
    fn group_max_size_turns_newcomers_away_as_kafka_does() {
        let mut l = limits(0);
        l.max_size = 1;
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let a_id = join_and_sync(&mut g, &l, t0);
        assert_eq!(g.state, GroupState::Stable);
        // A full stable group gives a newcomer no id at all.
        let (mut rx, _) = g.join(req("", &["range"]), &l, t0, 0);
        let out = outcome(&mut rx).unwrap();
        assert_eq!(out.error, Some(ResponseError::GroupMaxSizeReached));
        assert_eq!(out.member_id, "");
        assert_eq!(g.pending.len(), 0);
        // The member itself may rejoin.
        let (mut rx, _) = g.join(req(&a_id, &["range"]), &l, t0, 0);
        assert_eq!(error_of(&mut rx), None);
        assert_eq!(g.members.len(), 1);

        // An empty group takes anyone; during the join phase only as many as the maximum.
        let mut g = Group::new("h", 0);
        let (mut rx, _) = g.join(req("", &["range"]), &l, t0, 0);
        let b_id = outcome(&mut rx).unwrap().member_id;
        let (mut rx, _) = g.join(req("", &["range"]), &l, t0, 0);
        let c_id = outcome(&mut rx).unwrap().member_id;
        let (mut b, _) = g.join(req(&b_id, &["range"]), &l, t0, 0);
        assert!(outcome(&mut b).is_none(), "waits for c's id");
        let (mut c, _) = g.join(req(&c_id, &["range"]), &l, t0, 0);
        let refused = outcome(&mut c).unwrap();
        assert_eq!(refused.error, Some(ResponseError::GroupMaxSizeReached));
        assert_eq!(refused.member_id, "");
        // With c's id gone, b's join completes.
        let joined = outcome(&mut b).unwrap();
        assert_eq!(joined.error, None);
        assert_eq!(joined.members.len(), 1);
    }

    fn subscription(topics: &[&str]) -> Bytes {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let s = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        );
        let mut b = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut b, 1);
        s.encode(&mut b, 1).unwrap();
        b.freeze()
    }

    fn committed(at: i64) -> Committed {
        Committed {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: at,
        }
    }

    #[test]
    fn offsets_expire_by_kafkas_rules() {
        const RETENTION: i64 = 1_000;
        let key = |t: &str| (t.to_string(), 0);
        // Standalone commits: each offset by its commit time.
        let mut g = Group::new("simple", 0);
        g.offsets.insert(key("old"), committed(100));
        g.offsets.insert(key("new"), committed(900));
        assert_eq!(g.expired_offsets(1_099, RETENTION), vec![]);
        assert_eq!(g.expired_offsets(1_100, RETENTION), vec![key("old")]);

        // A stable consumer group: only topics nobody subscribes to, by commit time.
        let l = limits(0);
        let t0 = Instant::now();
        let mut g = Group::new("g", 0);
        let mut a = req("", &[]);
        a.protocols = vec![("range".into(), subscription(&["sub"]))];
        a.require_known_member_id = false;
        let (mut rx, _) = g.join(a, &l, t0, 0);
        let a_id = outcome(&mut rx).unwrap().member_id;
        let _ = g.sync(&a_id, None, 1, None, None, vec![], t0, 500);
        assert_eq!(g.state, GroupState::Stable);
        g.offsets.insert(key("sub"), committed(100));
        g.offsets.insert(key("unsub"), committed(100));
        assert_eq!(g.expired_offsets(10_000, RETENTION), vec![key("unsub")]);

        // Rebalancing: nothing expires.
        let mut b = req("", &[]);
        b.protocols = vec![("range".into(), subscription(&["sub"]))];
        b.require_known_member_id = false;
        let _ = g.join(b, &l, t0, 600);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.expired_offsets(10_000, RETENTION), vec![]);

        // Empty: everything, once retention has passed since it became empty (not since the
        // commits).
        let mut g = Group::new("e", 0);
        let mut a = req("", &["range"]);
        a.require_known_member_id = false;
        let (mut rx, _) = g.join(a, &l, t0, 0);
        let a_id = outcome(&mut rx).unwrap().member_id;
        g.offsets.insert(key("t"), committed(0));
        assert_eq!(
            g.leave(&a_id, None, &l, t0, 5_000),
            Ok(Persist::GroupMetadata)
        );
        assert_eq!(g.state, GroupState::Empty);
        assert!(g.is_unoccupied());
        assert_eq!(g.expired_offsets(5_999, RETENTION), vec![]);
        assert_eq!(g.expired_offsets(6_000, RETENTION), vec![key("t")]);
    }
}
