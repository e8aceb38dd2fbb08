//! The group coordinator: every consumer group of the classic protocol, their committed
//! offsets, and their persistence in the compacted internal topic `__consumer_offsets`.
//!
//! Each group sits behind its own lock; the table of groups is locked only to find or add one.
//! A ticker drives the clock-based transitions (session expiry, rebalance timeouts, the
//! initial rebalance delay, offsets retention).

pub mod records;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::topics::{NewTopic, Topic, TopicManager};
use records::{GroupValue, Key, MemberValue, OffsetValue};
use state::{
    Committed, Group, GroupLimits, GroupState, JoinOutcome, JoinRequest, Persist, SyncOutcome,
};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub struct GroupCoordinator {
    limits: GroupLimits,
    partitions: i32,
    metadata_max_bytes: usize,
    retention_ms: i64,
    retention_check: Duration,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    topic: OnceCell<Arc<Topic>>,
}

fn lock(g: &Mutex<Group>) -> MutexGuard<'_, Group> {
    g.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kafka rejects empty group ids; ids must also fit the int16-length string of the stored key.
pub fn valid_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= i16::MAX as usize
}

impl GroupCoordinator {
    pub fn new(config: &BrokerConfig) -> GroupCoordinator {
        let ms = |k: &str| Duration::from_millis(config.int(k).max(0) as u64);
        GroupCoordinator {
            limits: GroupLimits {
                initial_rebalance_delay: ms("group.initial.rebalance.delay.ms"),
                min_session_timeout: ms("group.min.session.timeout.ms"),
                max_session_timeout: ms("group.max.session.timeout.ms"),
                max_size: config.int("group.max.size").max(1) as usize,
            },
            partitions: config.int("offsets.topic.num.partitions") as i32,
            metadata_max_bytes: config.int("offset.metadata.max.bytes").max(0) as usize,
            retention_ms: config
                .int("offsets.retention.minutes")
                .saturating_mul(60_000),
            retention_check: ms("offsets.retention.check.interval.ms"),
            groups: Mutex::new(HashMap::new()),
            topic: OnceCell::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<Group>>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.table().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        self.table()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id, now_ms()))))
            .clone()
    }

    pub fn all(&self) -> Vec<Arc<Mutex<Group>>> {
        self.table().values().cloned().collect()
    }

    /// The internal topic, created on first use as Kafka does.
    pub async fn offsets_topic(&self, topics: &TopicManager) -> Result<Arc<Topic>, ResponseError> {
        self.topic
            .get_or_try_init(|| async {
                if let Some(t) = topics.get(OFFSETS_TOPIC) {
                    return Ok(t);
                }
                let spec = NewTopic {
                    name: OFFSETS_TOPIC.to_string(),
                    partitions: self.partitions,
                    replication_factor: -1,
                    assignment: Vec::new(),
                    configs: vec![
                        ("cleanup.policy".into(), Some("compact".into())),
                        ("segment.bytes".into(), Some("104857600".into())),
                    ],
                };
                match topics.create(spec).await {
                    Ok(t) => Ok(t),
                    Err(e) if e.code == ResponseError::TopicAlreadyExists => topics
                        .get(OFFSETS_TOPIC)
                        .ok_or(ResponseError::CoordinatorNotAvailable),
                    Err(e) => {
                        warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
                        Err(ResponseError::CoordinatorNotAvailable)
                    }
                }
            })
            .await
            .cloned()
    }

    /// Appends records for one group to its partition of `__consumer_offsets`.
    fn write(
        &self,
        topic: &Topic,
        group: &str,
        entries: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        if entries.is_empty() {
            return Ok(());
        }
        let index = records::partition_for(group, topic.partitions.len() as i32);
        let partition = topic
            .partition(index)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let now = now_ms();
        let records: Vec<Record> = entries
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|_| ResponseError::UnknownServerError)?;
        partition
            .append(&buf.freeze(), &topic.settings, now)
            .map(|_| ())
            .map_err(|e| {
                warn!(group, error = %e.message, "cannot write to {OFFSETS_TOPIC}");
                ResponseError::CoordinatorNotAvailable
            })
    }

    fn persist_group(&self, topic: &Topic, g: &Group) -> Result<(), ResponseError> {
        let key = Key::Group {
            group: g.id.clone(),
        }
        .encode();
        let value = if g.state == GroupState::Dead {
            None
        } else {
            let protocol = g.protocol_name.clone();
            Some(
                GroupValue {
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    generation: g.generation,
                    protocol: protocol.clone(),
                    leader: g.leader.clone(),
                    state_timestamp: g.state_since_ms,
                    members: g
                        .members
                        .values()
                        .map(|m| MemberValue {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                            session_timeout_ms: m.session_timeout.as_millis() as i32,
                            subscription: m.metadata(protocol.as_deref()),
                            assignment: m.assignment.clone(),
                        })
                        .collect(),
                }
                .encode(),
            )
        };
        self.write(topic, &g.id, vec![(key, value)])
    }

    async fn apply_persist(
        &self,
        topics: &TopicManager,
        group: &Arc<Mutex<Group>>,
        persist: Persist,
    ) {
        if persist != Persist::GroupMetadata {
            return;
        }
        if let Ok(topic) = self.offsets_topic(topics).await {
            let g = lock(group);
            let _ = self.persist_group(&topic, &g);
        }
    }

    pub async fn join(
        &self,
        topics: &TopicManager,
        group_id: &str,
        req: JoinRequest,
    ) -> JoinOutcome {
        if !valid_group_id(group_id) {
            return JoinOutcome::error(ResponseError::InvalidGroupId, &req.member_id);
        }
        // Kafka checks the session and the group's existence before creating it, so a refused
        // join leaves no empty group behind.
        if !self.limits.allows_session(req.session_timeout) {
            return JoinOutcome::error(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        if let Err(e) = self.offsets_topic(topics).await {
            return JoinOutcome::error(e, &req.member_id);
        }
        let member_id = req.member_id.clone();
        // Only a member without an id may create the group.
        let group = if member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(g) => g,
                None => return JoinOutcome::error(ResponseError::UnknownMemberId, &member_id),
            }
        };
        let (rx, persist) = lock(&group).join(req, &self.limits, Instant::now(), now_ms());
        self.apply_persist(topics, &group, persist).await;
        rx.await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::RebalanceInProgress, &member_id))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        topics: &TopicManager,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.get(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let (rx, persist) = lock(&group).sync(
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
            Instant::now(),
            now_ms(),
        );
        self.apply_persist(topics, &group, persist).await;
        rx.await.unwrap_or(Err(ResponseError::RebalanceInProgress))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if !valid_group_id(group_id) {
            return Some(ResponseError::InvalidGroupId);
        }
        match self.get(group_id) {
            None => Some(ResponseError::UnknownMemberId),
            Some(g) => lock(&g).heartbeat(member_id, instance_id, generation, Instant::now()),
        }
    }

    /// LeaveGroup for each `(member id, instance id)`; per-member results.
    pub async fn leave(
        &self,
        topics: &TopicManager,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.get(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Some(ResponseError::UnknownMemberId))
                .collect());
        };
        let mut results = Vec::new();
        let mut persist = Persist::Nothing;
        {
            let mut g = lock(&group);
            for (id, instance) in members {
                match g.leave(
                    id,
                    instance.as_deref(),
                    &self.limits,
                    Instant::now(),
                    now_ms(),
                ) {
                    Ok(p) => {
                        if p == Persist::GroupMetadata {
                            persist = p;
                        }
                        results.push(None);
                    }
                    Err(e) => results.push(Some(e)),
                }
            }
        }
        self.apply_persist(topics, &group, persist).await;
        Ok(results)
    }

    /// OffsetCommit: checks the member and generation (a negative generation with no member is
    /// a standalone commit, allowed for groups without members), then stores and persists.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        topics: &TopicManager,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<((String, i32), Committed)>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let topic = self.offsets_topic(topics).await?;
        let group = if generation < 0 && member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            self.get(group_id).ok_or(ResponseError::UnknownMemberId)?
        };
        let mut g = lock(&group);
        match g.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            _ if generation < 0 && member_id.is_empty() => {
                if !g.is_empty() {
                    return Err(ResponseError::UnknownMemberId);
                }
            }
            _ => {
                if let Some(i) = instance_id {
                    if g.instances.get(i).is_some_and(|cur| cur != member_id) {
                        return Err(ResponseError::FencedInstanceId);
                    }
                }
                if !g.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if generation != g.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
                // Only a current member waiting for its assignment is told to wait; a
                // stranger or a stale generation learns that first, as Kafka tells it.
                if g.state == GroupState::CompletingRebalance {
                    return Err(ResponseError::RebalanceInProgress);
                }
                if let Some(m) = g.members.get_mut(member_id) {
                    m.last_heartbeat = Instant::now();
                }
            }
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut entries = Vec::new();
        let mut accepted = Vec::new();
        for ((t, p), c) in offsets {
            let known = topics
                .get(&t)
                .is_some_and(|topic| topic.partition(p).is_some());
            if !known {
                results.push(Some(ResponseError::UnknownTopicOrPartition));
            } else if c.metadata.len() > self.metadata_max_bytes {
                results.push(Some(ResponseError::OffsetMetadataTooLarge));
            } else {
                entries.push((
                    Key::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: p,
                    }
                    .encode(),
                    Some(
                        OffsetValue {
                            offset: c.offset,
                            leader_epoch: c.leader_epoch,
                            metadata: c.metadata.clone(),
                            commit_timestamp: c.commit_timestamp,
                        }
                        .encode(),
                    ),
                ));
                accepted.push(((t, p), c));
                results.push(None);
            }
        }
        match self.write(&topic, group_id, entries) {
            Ok(()) => {
                for (k, c) in accepted {
                    g.offsets.insert(k, c);
                }
                Ok(results)
            }
            Err(e) => Ok(results.into_iter().map(|r| r.or(Some(e))).collect()),
        }
    }

    /// Committed offsets of a group (all of them when `wanted` is `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<Committed>)> {
        let group = self.get(group_id);
        let g = group.as_ref().map(|g| lock(g));
        match wanted {
            Some(list) => list
                .into_iter()
                .map(|k| {
                    let c = g.as_ref().and_then(|g| g.offsets.get(&k).cloned());
                    (k, c)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(k, c)| (k.clone(), Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// DeleteGroups for one group.
    pub async fn delete(&self, topics: &TopicManager, group_id: &str) -> Result<(), ResponseError> {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let topic = self.offsets_topic(topics).await?;
        {
            let mut g = lock(&group);
            match g.state {
                GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
                GroupState::Empty => {}
                _ => return Err(ResponseError::NonEmptyGroup),
            }
            let mut entries: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| {
                    (
                        Key::Offset {
                            group: group_id.into(),
                            topic: t.clone(),
                            partition: *p,
                        }
                        .encode(),
                        None,
                    )
                })
                .collect();
            entries.push((
                Key::Group {
                    group: group_id.into(),
                }
                .encode(),
                None,
            ));
            self.write(&topic, group_id, entries)?;
            g.kill(now_ms());
        }
        self.table().remove(group_id);
        info!(group = group_id, "deleted group");
        Ok(())
    }

    /// OffsetDelete: removes committed offsets of partitions no active member subscribes to.
    pub async fn delete_offsets(
        &self,
        topics: &TopicManager,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let topic = self.offsets_topic(topics).await?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        if !g.is_empty() && g.protocol_type.as_deref() != Some("consumer") {
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut results = Vec::new();
        let mut entries = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if topics
                .get(&t)
                .and_then(|x| x.partition(p).cloned())
                .is_none()
            {
                results.push(Some(ResponseError::UnknownTopicOrPartition));
            } else if g.subscribed_to(&t) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
            } else {
                if g.offsets.contains_key(&(t.clone(), p)) {
                    entries.push((
                        Key::Offset {
                            group: group_id.into(),
                            topic: t.clone(),
                            partition: p,
                        }
                        .encode(),
                        None,
                    ));
                    removed.push((t, p));
                }
                results.push(None);
            }
        }
        self.write(&topic, group_id, entries)?;
        for k in removed {
            g.offsets.remove(&k);
        }
        Ok(results)
    }

    /// Runs clock-driven transitions; called by the broker's ticker.
    pub async fn tick(&self, topics: &TopicManager, retention_due: bool) {
        let now = Instant::now();
        let now_ms = now_ms();
        for group in self.all() {
            let persist = lock(&group).tick(&self.limits, now, now_ms);
            self.apply_persist(topics, &group, persist).await;
            if retention_due {
                self.expire_offsets(topics, &group, now_ms).await;
            }
        }
    }

    pub fn retention_check_interval(&self) -> Duration {
        self.retention_check.max(Duration::from_millis(1))
    }

    /// offsets.retention.minutes: offsets of a group that has been empty that long expire (for
    /// groups that never had members, each offset expires that long after its commit).
    async fn expire_offsets(&self, topics: &TopicManager, group: &Arc<Mutex<Group>>, now_ms: i64) {
        let Ok(topic) = self.offsets_topic(topics).await else {
            return;
        };
        let mut g = lock(group);
        if g.state != GroupState::Empty {
            return;
        }
        let empty_since = g.state_since_ms;
        let retention = self.retention_ms;
        let expired: Vec<(String, i32)> = g
            .offsets
            .iter()
            .filter(|(_, c)| now_ms - c.commit_timestamp.max(empty_since) >= retention)
            .map(|(k, _)| k.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let id = g.id.clone();
        let entries = expired
            .iter()
            .map(|(t, p)| {
                (
                    Key::Offset {
                        group: id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    }
                    .encode(),
                    None,
                )
            })
            .collect();
        if self.write(&topic, &id, entries).is_ok() {
            for k in &expired {
                g.offsets.remove(k);
            }
            info!(group = %id, partitions = expired.len(), "expired committed offsets");
        }
    }

    /// Loads groups and offsets from `__consumer_offsets` at start-up.
    pub async fn load(&self, topics: &TopicManager) -> Result<(), String> {
        let Some(topic) = topics.get(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let parts = topic.partitions.clone();
        let batches = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for p in parts {
                let start = p.offsets().log_start_offset;
                all.extend(p.read_all_from(start)?);
            }
            Ok::<_, std::io::Error>(all)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {OFFSETS_TOPIC}: {e}"))?;
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut count = 0usize;
        for mut batch in batches {
            let Ok(set) = RecordBatchDecoder::decode(&mut batch) else {
                continue;
            };
            for r in set.records {
                let Some(key) = r.key.and_then(Key::decode) else {
                    continue;
                };
                let g = groups
                    .entry(key.group().to_string())
                    .or_insert_with(|| Group::new(key.group(), now_ms()));
                count += 1;
                match (key, r.value) {
                    (
                        Key::Offset {
                            topic, partition, ..
                        },
                        Some(v),
                    ) => {
                        if let Some(v) = OffsetValue::decode(v) {
                            g.offsets.insert(
                                (topic, partition),
                                Committed {
                                    offset: v.offset,
                                    leader_epoch: v.leader_epoch,
                                    metadata: v.metadata,
                                    commit_timestamp: v.commit_timestamp,
                                },
                            );
                        }
                    }
                    (
                        Key::Offset {
                            topic, partition, ..
                        },
                        None,
                    ) => {
                        g.offsets.remove(&(topic, partition));
                    }
                    (Key::Group { .. }, Some(v)) => {
                        if let Some(v) = GroupValue::decode(v) {
                            restore(g, v, now);
                        }
                    }
                    (Key::Group { group }, None) => {
                        let offsets = std::mem::take(&mut g.offsets);
                        *g = Group::new(&group, now_ms());
                        g.offsets = offsets;
                    }
                }
            }
        }
        let n = groups.len();
        let mut table = self.table();
        for (id, g) in groups {
            if g.members.is_empty() && g.offsets.is_empty() {
                continue;
            }
            table.insert(id, Arc::new(Mutex::new(g)));
        }
        drop(table);
        let _ = self.topic.set(topic);
        info!(
            groups = n,
            records = count,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}

fn restore(g: &mut Group, v: GroupValue, now: Instant) {
    let offsets = std::mem::take(&mut g.offsets);
    *g = Group::new(&g.id.clone(), v.state_timestamp);
    g.offsets = offsets;
    g.generation = v.generation;
    if v.members.is_empty() {
        return;
    }
    g.protocol_type = Some(v.protocol_type);
    g.protocol_name = v.protocol;
    g.leader = v.leader;
    for m in v.members {
        g.restore_member(
            m.member_id,
            m.instance_id,
            m.client_id,
            m.client_host,
            Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
            Duration::from_millis(m.session_timeout_ms.max(0) as u64),
            m.subscription,
            m.assignment,
            now,
        );
    }
    g.state = GroupState::Stable;
}
