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
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
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
    MAX_PENDING_MEMBERS,
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

/// The group ids OffsetCommit, OffsetFetch, DescribeGroups and DeleteGroups accept: as in Kafka,
/// the empty one too (old clients committed offsets under it).
pub fn valid_offsets_group_id(id: &str) -> bool {
    id.len() <= i16::MAX as usize
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
                max_pending: MAX_PENDING_MEMBERS,
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
            let mut g = lock(group);
            if self.persist_group(&topic, &g).is_ok() {
                g.persisted = true;
            }
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
        if !valid_offsets_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        let topic = self.offsets_topic(topics).await?;
        // Without a generation the commit is a standalone one (a simple consumer), which may
        // create the group; with one, the group must exist.
        let group = if generation < 0 {
            self.get_or_create(group_id)
        } else {
            self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?
        };
        let mut g = lock(&group);
        match g.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            _ if generation < 0 && g.is_empty() => {}
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
        if !valid_offsets_group_id(group_id) {
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

    /// Removes every group's committed offsets of a deleted topic, with tombstones made
    /// durable before this returns, so a topic created again under the name is consumed from
    /// its beginning (auto.offset.reset), also after a restart: Kafka's clean-up of deleted
    /// partitions. Runs under the topic manager's admin lock, so it never creates the offsets
    /// topic (that would wait for the same lock); without one nothing was ever committed.
    pub async fn forget_topic(
        &self,
        topics: &TopicManager,
        topic: &str,
    ) -> Result<(), ResponseError> {
        let Some(offsets) = self
            .topic
            .get()
            .cloned()
            .or_else(|| topics.get(OFFSETS_TOPIC))
        else {
            return Ok(());
        };
        let mut written = std::collections::BTreeSet::new();
        for group in self.all() {
            let mut g = lock(&group);
            let gone: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            let entries = offset_tombstones(&g.id, &gone);
            self.write(&offsets, &g.id, entries)?;
            for k in &gone {
                g.offsets.remove(k);
            }
            written.insert(records::partition_for(
                &g.id,
                offsets.partitions.len() as i32,
            ));
        }
        for index in written {
            if let Some(p) = offsets.partition(index) {
                let end = p.offsets().high_watermark;
                p.wait_durable(end - 1).await?;
            }
        }
        Ok(())
    }

    /// Runs clock-driven transitions; called by the broker's ticker. `retention_due` every
    /// offsets.retention.check.interval.ms: then offsets expire, and idle groups go.
    pub async fn tick(&self, topics: &TopicManager, retention_due: bool) {
        let now = Instant::now();
        let now_ms = now_ms();
        for group in self.all() {
            let persist = lock(&group).tick(&self.limits, now, now_ms);
            self.apply_persist(topics, &group, persist).await;
        }
        if retention_due {
            self.cleanup(topics, now_ms).await;
        }
    }

    pub fn retention_check_interval(&self) -> Duration {
        self.retention_check.max(Duration::from_millis(1))
    }

    /// Kafka's periodic group clean-up: expires committed offsets by offsets.retention.minutes
    /// (see [`Group::expired_offsets`]), then removes every group left idle (Empty, with no
    /// offsets and no member ids handed out), tombstoning its metadata. So a group costs
    /// memory only while it has members, pending members or offsets.
    async fn cleanup(&self, topics: &TopicManager, now_ms: i64) {
        let groups = self.all();
        if groups.is_empty() {
            return;
        }
        let Ok(topic) = self.offsets_topic(topics).await else {
            return;
        };
        let (mut expired, mut removed) = (0usize, 0usize);
        for group in groups {
            let (n, gone) = self.cleanup_group(&topic, &group, now_ms);
            expired += n;
            removed += usize::from(gone);
        }
        if removed > 0 {
            // The table keeps its capacity as entries go; a storm of groups must not leave a
            // storm-sized table behind.
            let mut table = self.table();
            if table.capacity() > 64 && table.len() < table.capacity() / 4 {
                let len = table.len();
                table.shrink_to(len * 2);
            }
        }
        // At most once per check interval (10 minutes by default), so the cost is nothing.
        if removed > 0 {
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
        }
        if expired > 0 || removed > 0 {
            info!(
                offsets = expired,
                groups = removed,
                "expired committed offsets and removed idle groups"
            );
        }
    }

    /// One group's clean-up; returns how many offsets expired and whether the group went.
    fn cleanup_group(
        &self,
        topic: &Topic,
        group: &Arc<Mutex<Group>>,
        now_ms: i64,
    ) -> (usize, bool) {
        let (id, expired) = {
            let mut g = lock(group);
            if g.state == GroupState::Dead {
                return (0, false);
            }
            let expired = g.expired_offsets(now_ms, self.retention_ms);
            // As Kafka: an empty group goes once none of its offsets is left.
            let remove = g.is_unoccupied() && expired.len() == g.offsets.len();
            let mut entries = offset_tombstones(&g.id, &expired);
            if remove && g.persisted {
                let key = Key::Group {
                    group: g.id.clone(),
                };
                entries.push((key.encode(), None));
            }
            if self.write(topic, &g.id, entries).is_err() {
                return (0, false);
            }
            for k in &expired {
                g.offsets.remove(k);
            }
            if !remove {
                return (expired.len(), false);
            }
            // Dead first: a request that found the group before it leaves the table learns
            // that the coordinator moved, and retries (creating the group afresh).
            g.kill(now_ms);
            tracing::debug!(group = %g.id, "removed idle group");
            (g.id.clone(), expired.len())
        };
        let mut table = self.table();
        if table.get(&id).is_some_and(|cur| Arc::ptr_eq(cur, group)) {
            table.remove(&id);
        }
        (expired, true)
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
        for batch in batches {
            let Some(records) = crate::log::records::decode_stored(&batch) else {
                continue;
            };
            for r in records {
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
        let mut stale = Vec::new();
        for (id, g) in groups {
            if g.members.is_empty() && g.offsets.is_empty() {
                // An empty group the broker stopped before removing: gone now, as the next
                // retention check would have made it.
                if g.persisted {
                    stale.push(id);
                }
                continue;
            }
            table.insert(id, Arc::new(Mutex::new(g)));
        }
        drop(table);
        for id in stale {
            let key = Key::Group { group: id.clone() }.encode();
            let _ = self.write(&topic, &id, vec![(key, None)]);
        }
        let _ = self.topic.set(topic);
        info!(
            groups = n,
            records = count,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}

/// Tombstones of a group's committed offsets.
fn offset_tombstones(group: &str, keys: &[(String, i32)]) -> Vec<(Bytes, Option<Bytes>)> {
    keys.iter()
        .map(|(t, p)| {
            let key = Key::Offset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
            };
            (key.encode(), None)
        })
        .collect()
}

/// Returns freed heap memory to the system. glibc's malloc gives back only the top of each
/// heap as it frees; the rest stays resident until reused, so after a storm of groups (each a
/// handful of small allocations, interleaved with everything else) the broker would keep its
/// peak. `malloc_trim` releases the free pages inside the heaps too.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    // SAFETY: malloc_trim has no preconditions; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}

fn restore(g: &mut Group, v: GroupValue, now: Instant) {
    let offsets = std::mem::take(&mut g.offsets);
    *g = Group::new(&g.id.clone(), v.state_timestamp);
    g.offsets = offsets;
    g.generation = v.generation;
    g.persisted = true;
    // An empty consumer group stays one (its offsets expire by the time it became empty).
    if !v.protocol_type.is_empty() {
        g.protocol_type = Some(v.protocol_type);
    }
    if v.members.is_empty() {
        return;
    }
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
