//! The partition manager: topics, their partitions and configs, created, found and deleted.
//!
//! The topic table sits behind one read-mostly lock held only to look up or swap `Arc`s; every
//! partition's log has its own lock, so partitions never wait on each other.

pub mod config;
pub mod names;
pub mod partition;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use kafka_protocol::ResponseError;
use thiserror::Error;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::log::Log;
use config::TopicSettings;
use partition::Partition;
use store::TopicRecord;

/// A failed topic operation, carrying Kafka's error code and message.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct TopicError {
    pub code: ResponseError,
    pub message: String,
}

impl TopicError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

#[derive(Clone)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    /// Configs set on the topic itself (Kafka's "dynamic topic configs").
    pub configs: BTreeMap<String, String>,
    pub settings: TopicSettings,
    pub internal: bool,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker's `num.partitions`.
    pub partitions: i32,
    /// -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index → broker ids.
    pub assignment: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, Option<String>)>,
}

pub struct TopicManager {
    data_dir: PathBuf,
    broker: Arc<BrokerConfig>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create and delete so checks and writes of one do not interleave with another.
    admin: tokio::sync::Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl TopicManager {
    /// Loads every topic from the data directory, opening (and if needed repairing) each
    /// partition's log. Returns what start-up repaired or removed.
    pub fn open(
        data_dir: &Path,
        broker: Arc<BrokerConfig>,
        clean: bool,
    ) -> Result<(TopicManager, Vec<String>), String> {
        let (records, mut report) = store::load_all(data_dir)
            .map_err(|e| format!("cannot read topic metadata in {}: {e}", data_dir.display()))?;
        let mut topics = BTreeMap::new();
        for record in records {
            let topic = open_topic(data_dir, &broker, &record, clean)
                .map_err(|e| format!("cannot open topic {}: {e}", record.name))?;
            topics.insert(record.name.clone(), Arc::new(topic));
        }
        report.extend(remove_orphans(data_dir, &topics));
        Ok((
            TopicManager {
                data_dir: data_dir.to_path_buf(),
                broker,
                topics: RwLock::new(topics),
                admin: tokio::sync::Mutex::new(()),
            },
            report,
        ))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read().values().find(|t| t.id == id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn broker_config(&self) -> &BrokerConfig {
        &self.broker
    }

    /// Checks a request to create a topic and resolves its partition count and configs,
    /// without creating it (CreateTopics with `validate_only`).
    pub fn check(&self, spec: &NewTopic) -> Result<(i32, BTreeMap<String, String>), TopicError> {
        names::validate(&spec.name)
            .map_err(|m| TopicError::new(ResponseError::InvalidTopicException, m))?;
        let topics = self.read();
        if topics.contains_key(&spec.name) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        let key = names::collision_key(&spec.name);
        if let Some(other) = topics.keys().find(|t| names::collision_key(t) == key) {
            return Err(TopicError::new(
                ResponseError::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {other}",
                    spec.name
                ),
            ));
        }
        drop(topics);
        let node = self.broker.node_id();
        let partitions = if !spec.assignment.is_empty() {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return Err(TopicError::new(
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                ));
            }
            let mut indexes: Vec<i32> = spec.assignment.iter().map(|(p, _)| *p).collect();
            indexes.sort_unstable();
            if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
                return Err(TopicError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "Partitions should be a consecutive 0-based integer sequence",
                ));
            }
            if let Some((p, replicas)) =
                spec.assignment.iter().find(|(_, r)| r.as_slice() != [node])
            {
                return Err(TopicError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Partition {p} is assigned to brokers {replicas:?}; this single broker is node {node}"),
                ));
            }
            indexes.len() as i32
        } else {
            let partitions = match spec.partitions {
                -1 => self.broker.int("num.partitions") as i32,
                p if p >= 1 => p,
                p => {
                    return Err(TopicError::new(
                        ResponseError::InvalidPartitions,
                        format!(
                            "Number of partitions was set to an invalid non-positive value: {p}"
                        ),
                    ))
                }
            };
            match spec.replication_factor {
                -1 | 1 => {}
                rf => {
                    return Err(TopicError::new(
                        ResponseError::InvalidReplicationFactor,
                        format!("Replication factor {rf} is larger than the 1 broker of this cluster: Klamm is a single broker, use 1 or -1"),
                    ))
                }
            }
            partitions
        };
        if partitions > 100_000 {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions {partitions} is too large"),
            ));
        }
        let mut configs = BTreeMap::new();
        for (k, v) in &spec.configs {
            let Some(v) = v else {
                return Err(TopicError::new(
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for topic configs: {k}"),
                ));
            };
            let value = config::validate(k, v)
                .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
            configs.insert(k.clone(), value.render());
        }
        Ok((partitions, configs))
    }

    /// Creates a topic after checking the request.
    pub async fn create(&self, spec: NewTopic) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().await;
        let (partitions, configs) = self.check(&spec)?;
        let record = TopicRecord {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let storage = |e: String| TopicError::new(ResponseError::KafkaStorageError, e);
        // Partition directories first, then the metadata record, which is the commit point:
        // directories without a record are removed as orphans at the next start.
        let topic = open_topic(&self.data_dir, &self.broker, &record, true).map_err(storage)?;
        store::save(&self.data_dir, &record).map_err(|e| storage(e.to_string()))?;
        let topic = Arc::new(topic);
        self.write().insert(record.name.clone(), topic.clone());
        info!(topic = %record.name, partitions, id = %record.id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: its record first (the commit point), then its files.
    pub async fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or_else(|| {
            TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            )
        })?;
        if topic.internal {
            return Err(TopicError::new(
                ResponseError::TopicDeletionDisabled,
                format!("Internal topic {name} cannot be deleted"),
            ));
        }
        store::remove(&self.data_dir, name)
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        self.write().remove(name);
        let dirs: Vec<PathBuf> = (0..topic.partitions.len() as i32)
            .map(|p| partition_dir(&self.data_dir, name, p))
            .collect();
        let removed = tokio::task::spawn_blocking(move || {
            for d in dirs {
                if let Err(e) = std::fs::remove_dir_all(&d) {
                    warn!(dir = %d.display(), error = %e, "could not remove a deleted topic's files; they are removed at the next start");
                }
            }
        })
        .await;
        if removed.is_err() {
            warn!(topic = name, "file removal task failed");
        }
        for p in &topic.partitions {
            p.new_data.notify_waiters();
        }
        info!(topic = name, id = %topic.id, "deleted topic");
        Ok(topic)
    }

    /// Changes a topic's config overrides: `change` maps the current overrides to the wanted
    /// ones, which are validated and normalised here. The record is saved before the new
    /// settings take effect; with `validate_only` nothing changes. Returns the overrides in
    /// force (or that would be).
    pub async fn alter_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or_else(|| unknown_topic(name))?;
        let mut configs = BTreeMap::new();
        for (k, v) in change(&topic.configs)? {
            let value = config::validate(&k, &v)
                .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
            configs.insert(k, value.render());
        }
        if validate_only || configs == topic.configs {
            return Ok(configs);
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: topic.id,
            partitions: topic.partitions.len() as i32,
            configs: configs.clone(),
        };
        store::save(&self.data_dir, &record)
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let settings = TopicSettings::resolve(&configs, &self.broker);
        let updated = Topic {
            configs: configs.clone(),
            settings,
            ..(*topic).clone()
        };
        for p in &updated.partitions {
            p.log().set_config(updated.settings.log_config());
        }
        self.write().insert(name.to_string(), Arc::new(updated));
        info!(topic = name, configs = ?configs, "altered topic configs");
        Ok(configs)
    }

    /// Grows a topic to `count` partitions. `assignment`, when given, names the replicas of
    /// each new partition, which on a single broker must be this node alone.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        let invalid = |m: String| TopicError::new(ResponseError::InvalidPartitions, m);
        if topic.internal {
            // Groups are mapped to its partitions by count; more would strand their offsets.
            return Err(TopicError::new(
                ResponseError::InvalidRequest,
                format!("The number of partitions of the internal topic {name} cannot be changed."),
            ));
        }
        if count == current {
            return Err(invalid(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        if count < current {
            return Err(invalid(format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            )));
        }
        if count > 100_000 {
            return Err(invalid(format!(
                "Number of partitions {count} is too large"
            )));
        }
        if let Some(assignment) = assignment {
            let bad = |m: String| TopicError::new(ResponseError::InvalidReplicaAssignment, m);
            let added = count - current;
            if assignment.len() as i64 != added as i64 {
                return Err(bad(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignment.len()
                )));
            }
            let node = self.broker.node_id();
            if let Some(replicas) = assignment.iter().find(|r| r.as_slice() != [node]) {
                return Err(bad(format!(
                    "A new partition is assigned to brokers {replicas:?}; this single broker is node {node}"
                )));
            }
        }
        if validate_only {
            return Ok(topic);
        }
        let storage = |e: String| TopicError::new(ResponseError::KafkaStorageError, e);
        let new_dirs: Vec<PathBuf> = (current..count)
            .map(|p| partition_dir(&self.data_dir, name, p))
            .collect();
        let remove_new = || {
            for d in &new_dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        };
        // New logs first, then the record (the commit point): directories without a record
        // are orphans, removed here on failure or at the next start after a crash.
        let mut partitions = topic.partitions.clone();
        for index in current..count {
            match open_partition(&self.data_dir, &topic.name, index, &topic.settings, true) {
                Ok(p) => partitions.push(p),
                Err(e) => {
                    remove_new();
                    return Err(storage(e));
                }
            }
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: topic.id,
            partitions: count,
            configs: topic.configs.clone(),
        };
        if let Err(e) = store::save(&self.data_dir, &record) {
            remove_new();
            return Err(storage(e.to_string()));
        }
        let updated = Arc::new(Topic {
            partitions,
            ..(*topic).clone()
        });
        self.write().insert(name.to_string(), updated.clone());
        info!(topic = name, from = current, to = count, "added partitions");
        Ok(updated)
    }

    /// Retention for every topic whose cleanup policy includes delete. Blocking: removes files.
    pub fn apply_retention(&self, now_ms: i64) {
        for topic in self.list() {
            let s = &topic.settings;
            if !s.delete {
                continue;
            }
            for p in &topic.partitions {
                match p
                    .log()
                    .apply_retention(s.retention_ms, s.retention_bytes, now_ms)
                {
                    Ok(r) if r.segments > 0 => {
                        info!(topic = %topic.name, partition = p.index, segments = r.segments, bytes = r.bytes, "retention removed segments")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    /// Writes every partition's recovery point, and forgets idempotent producers idle since
    /// before `producer_cutoff_ms`. Blocking.
    pub fn checkpoint(&self, producer_cutoff_ms: i64) {
        for topic in self.list() {
            for p in &topic.partitions {
                let mut log = p.log();
                log.expire_producers(producer_cutoff_ms);
                if let Err(e) = log.checkpoint_recovery_point() {
                    warn!(topic = %topic.name, partition = p.index, error = %e, "cannot write recovery point");
                }
            }
        }
    }

    /// Syncs every partition; used on shutdown. False if any partition could not be synced.
    pub fn sync_all(&self) -> bool {
        let mut ok = true;
        for topic in self.list() {
            for p in &topic.partitions {
                if let Err(e) = p.sync_all() {
                    warn!(topic = %topic.name, partition = p.index, error = %e, "sync on shutdown failed");
                    ok = false;
                }
            }
        }
        ok
    }
}

fn unknown_topic(name: &str) -> TopicError {
    TopicError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("The topic '{name}' does not exist."),
    )
}

/// Opens a topic's partitions; `clean` says the broker stopped cleanly last time, so logs are
/// trusted without verification.
fn open_topic(
    data_dir: &Path,
    broker: &BrokerConfig,
    record: &TopicRecord,
    clean: bool,
) -> Result<Topic, String> {
    let settings = TopicSettings::resolve(&record.configs, broker);
    let name: Arc<str> = record.name.as_str().into();
    let mut partitions = Vec::new();
    for index in 0..record.partitions {
        partitions.push(open_partition(data_dir, &name, index, &settings, clean)?);
    }
    Ok(Topic {
        name,
        id: record.id,
        partitions,
        configs: record.configs.clone(),
        settings,
        internal: record.name.starts_with("__consumer_offsets"),
    })
}

fn open_partition(
    data_dir: &Path,
    topic: &Arc<str>,
    index: i32,
    settings: &TopicSettings,
    clean: bool,
) -> Result<Arc<Partition>, String> {
    let dir = partition_dir(data_dir, topic, index);
    let log =
        Log::open_with(&dir, settings.log_config(), now_ms(), clean).map_err(|e| e.to_string())?;
    Ok(Arc::new(Partition::new(topic.clone(), index, log)))
}

/// Removes partition directories that belong to no topic (left by an interrupted create or
/// delete). Only directories named like `<topic>-<n>` are touched.
fn remove_orphans(data_dir: &Path, topics: &BTreeMap<String, Arc<Topic>>) -> Vec<String> {
    let mut report = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return report;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let known = topics
            .get(topic)
            .is_some_and(|t| index < t.partitions.len());
        if !known {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => report.push(format!("removed orphaned partition directory {name}")),
                Err(e) => report.push(format!(
                    "could not remove orphaned partition directory {name}: {e}"
                )),
            }
        }
    }
    report
}
