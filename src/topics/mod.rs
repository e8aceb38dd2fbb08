//! The partition manager: topics, their partitions and configs, created, found and deleted.
//!
//! The topic table sits behind one read-mostly lock held only to look up or swap `Arc`s; every
//! partition's log has its own lock, so partitions never wait on each other.

pub mod config;
pub mod dirs;
pub mod health;
pub mod names;
pub mod partition;
pub mod store;
pub mod validate;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use kafka_protocol::ResponseError;
use thiserror::Error;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::live::LiveConfig;
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
    broker: Arc<LiveConfig>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Whether the data directory is still usable, shared with every partition.
    health: Arc<health::DirHealth>,
    /// Serialises create and delete so checks and writes of one do not interleave with another.
    admin: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl TopicManager {
    /// Loads every topic from the data directory, opening (and if needed repairing) each
    /// partition's log. Returns what start-up repaired or removed.
    pub fn open(
        data_dir: &Path,
        broker: Arc<LiveConfig>,
        clean: bool,
    ) -> Result<(TopicManager, Vec<String>), String> {
        let (records, mut report) = store::load_all(data_dir)
            .map_err(|e| format!("cannot read topic metadata in {}: {e}", data_dir.display()))?;
        let config = broker.current();
        let mut topics = BTreeMap::new();
        let health = Arc::new(health::DirHealth::default());
        for record in records {
            let topic = open_topic(
                data_dir,
                &config,
                &health,
                &record,
                Opening::Existing { clean },
            )
            .map_err(|e| format!("cannot open topic {}: {e}", record.name))?;
            topics.insert(record.name.clone(), Arc::new(topic));
        }
        let live = |topic: &str, index: i32| {
            topics
                .get(topic)
                .is_some_and(|t| t.partition(index).is_some())
        };
        let leftovers = dirs::sweep(data_dir, live, &mut report);
        dirs::remove_in_background(data_dir.to_path_buf(), leftovers);
        Ok((
            TopicManager {
                data_dir: data_dir.to_path_buf(),
                broker,
                topics: RwLock::new(topics),
                health,
                admin: tokio::sync::Mutex::new(()),
            },
            report,
        ))
    }

    /// Whether the data directory went offline (a failed fsync).
    pub fn offline(&self) -> bool {
        self.health.is_offline()
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

    pub fn broker_config(&self) -> Arc<BrokerConfig> {
        self.broker.current()
    }

    /// Resolves every topic's settings again after the broker's configuration changed, so
    /// topics without an override of their own follow a new dynamic default.
    pub async fn reconfigure(&self) {
        // Under the admin lock: a topic change resolving against the old configuration either
        // finishes first (and is resolved again here) or starts after and sees the new one.
        let _admin = self.admin.lock().await;
        let broker = self.broker.current();
        let mut changed = 0;
        for topic in self.list() {
            let settings = TopicSettings::resolve(&topic.configs, &broker);
            if settings == topic.settings {
                continue;
            }
            for p in &topic.partitions {
                p.log().set_config(settings.log_config());
            }
            let updated = Topic {
                settings,
                ..(*topic).clone()
            };
            self.write()
                .insert(topic.name.to_string(), Arc::new(updated));
            changed += 1;
        }
        if changed > 0 {
            info!(topics = changed, "topics follow the new broker defaults");
        }
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
        // The internal topics count as existing before they are made: a colliding name taken
        // first would keep them from ever being created.
        let existing = topics
            .keys()
            .map(String::as_str)
            .chain(names::INTERNAL.iter().copied());
        if let Some(other) = existing
            .filter(|t| *t != spec.name)
            .find(|t| names::collision_key(t) == key)
        {
            return Err(TopicError::new(
                ResponseError::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {other}",
                    spec.name
                ),
            ));
        }
        drop(topics);
        let broker = self.broker.current();
        let node = broker.node_id();
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
                -1 => broker.int("num.partitions") as i32,
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
        // Partition directories first, then the metadata record, which is the commit point:
        // directories without a record are removed as orphans at the next start.
        let (data_dir, broker, saved) =
            (self.data_dir.clone(), self.broker.current(), record.clone());
        let health = self.health.clone();
        let topic = blocking(move || {
            let mut stale = Vec::new();
            let topic = open_topic(
                &data_dir,
                &broker,
                &health,
                &saved,
                Opening::New(&mut stale),
            );
            dirs::remove_in_background(data_dir.clone(), stale);
            let topic = topic?;
            store::save(&data_dir, &saved).map_err(|e| e.to_string())?;
            Ok(topic)
        })
        .await?;
        let topic = Arc::new(topic);
        self.write().insert(record.name.clone(), topic.clone());
        info!(topic = %record.name, partitions, id = %record.id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic. It leaves the table first, so nothing new reaches it; `forget` then
    /// drops what others keep about it (committed offsets) and the record's removal commits
    /// the deletion. Before this returns, every partition's log is retired and its directory
    /// renamed for removal, so a topic created again under the name starts empty; the files
    /// are removed in the background.
    pub async fn delete<F, Fut>(&self, name: &str, forget: F) -> Result<Arc<Topic>, TopicError>
    where
        F: FnOnce(Arc<Topic>) -> Fut,
        Fut: Future<Output = Result<(), TopicError>>,
    {
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
        self.write().remove(name);
        let restore = |e: TopicError| {
            self.write().insert(name.to_string(), topic.clone());
            e
        };
        if let Err(e) = forget(topic.clone()).await {
            return Err(restore(e));
        }
        let (data_dir, topic_name) = (self.data_dir.clone(), name.to_string());
        blocking(move || store::remove(&data_dir, &topic_name).map_err(|e| e.to_string()))
            .await
            .map_err(restore)?;
        // The deletion is committed; what follows can only leave files for the next start.
        let (data_dir, parts) = (self.data_dir.clone(), topic.partitions.clone());
        let topic_name = name.to_string();
        let renamed = tokio::task::spawn_blocking(move || {
            let mut renamed = Vec::new();
            for p in &parts {
                let to = data_dir.join(dirs::delete_dir_name(&topic_name, p.index));
                match p.retire(&to) {
                    Ok(()) => renamed.push(to),
                    Err(e) => {
                        warn!(topic = %topic_name, partition = p.index, error = %e, "cannot rename a deleted partition's directory; it is removed at the next start")
                    }
                }
            }
            renamed
        })
        .await
        .unwrap_or_default();
        info!(topic = name, id = %topic.id, renamed = ?renamed, "deleted topic");
        dirs::remove_in_background(self.data_dir.clone(), renamed);
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
        let settings = TopicSettings::resolve(&configs, &self.broker.current());
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
            let node = self.broker.current().node_id();
            if let Some(replicas) = assignment.iter().find(|r| r.as_slice() != [node]) {
                return Err(bad(format!(
                    "A new partition is assigned to brokers {replicas:?}; this single broker is node {node}"
                )));
            }
        }
        if validate_only {
            return Ok(topic);
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: topic.id,
            partitions: count,
            configs: topic.configs.clone(),
        };
        // New logs first, then the record (the commit point): directories without a record
        // are orphans, removed at the next start.
        let (data_dir, grown) = (self.data_dir.clone(), topic.clone());
        let health = self.health.clone();
        let added = blocking(move || {
            let mut stale = Vec::new();
            let mut added = Vec::new();
            for index in current..count {
                match open_partition(
                    &data_dir,
                    &health,
                    &grown.name,
                    grown.id,
                    index,
                    &grown.settings,
                    Opening::New(&mut stale),
                ) {
                    Ok(p) => added.push(p),
                    Err(e) => {
                        dirs::remove_in_background(data_dir.clone(), stale);
                        return Err(e);
                    }
                }
            }
            dirs::remove_in_background(data_dir.clone(), stale);
            store::save(&data_dir, &record).map_err(|e| e.to_string())?;
            Ok(added)
        })
        .await?;
        let mut partitions = topic.partitions.clone();
        partitions.extend(added);
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
                let removed = p
                    .log()
                    .apply_retention(s.retention_ms, s.retention_bytes, now_ms);
                match removed {
                    Ok(r) if r.segments > 0 => {
                        info!(topic = %topic.name, partition = p.index, segments = r.segments, bytes = r.bytes, "retention removed segments")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.index, error = %e, "retention failed")
                    }
                }
                if let Err(e) = p.sync_dir_changes() {
                    warn!(topic = %topic.name, partition = p.index, error = %e, "cannot sync the log directory");
                }
            }
        }
    }

    /// Writes every partition's recovery point, and forgets idempotent producers idle since
    /// before `producer_cutoff_ms`. Blocking.
    pub fn checkpoint(&self, producer_cutoff_ms: i64) {
        for topic in self.list() {
            for p in &topic.partitions {
                let written = {
                    let mut log = p.log();
                    log.expire_producers(producer_cutoff_ms);
                    log.checkpoint_recovery_point()
                };
                if let Err(e) = written {
                    warn!(topic = %topic.name, partition = p.index, error = %e, "cannot write recovery point");
                    if !health::DirHealth::transient(&e) {
                        self.health
                            .fail(&self.data_dir, "writing a recovery point", &e);
                    }
                }
                // Segments rolled without an acks=all produce reach stable storage here.
                if let Err(e) = p.sync_dir_changes() {
                    self.health
                        .fail(&self.data_dir, "syncing a log directory", &e);
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

/// How a topic's partitions are opened.
enum Opening<'a> {
    /// Loaded at start-up; `clean` says the broker stopped cleanly last time, so logs are
    /// trusted without verification.
    Existing { clean: bool },
    /// Just created: fresh directories; stale ones found under their names are moved aside
    /// and listed here for removal.
    New(&'a mut Vec<PathBuf>),
}

/// Opens a topic's partitions. Blocking.
fn open_topic(
    data_dir: &Path,
    broker: &BrokerConfig,
    health: &Arc<health::DirHealth>,
    record: &TopicRecord,
    mut opening: Opening<'_>,
) -> Result<Topic, String> {
    let settings = TopicSettings::resolve(&record.configs, broker);
    let name: Arc<str> = record.name.as_str().into();
    let mut partitions = Vec::new();
    for index in 0..record.partitions {
        let how = match &mut opening {
            Opening::Existing { clean } => Opening::Existing { clean: *clean },
            Opening::New(stale) => Opening::New(stale),
        };
        partitions.push(open_partition(
            data_dir, health, &name, record.id, index, &settings, how,
        )?);
    }
    Ok(Topic {
        name,
        id: record.id,
        partitions,
        configs: record.configs.clone(),
        settings,
        internal: names::INTERNAL.contains(&record.name.as_str()),
    })
}

/// Opens one partition's log. Blocking.
fn open_partition(
    data_dir: &Path,
    health: &Arc<health::DirHealth>,
    topic: &Arc<str>,
    id: Uuid,
    index: i32,
    settings: &TopicSettings,
    opening: Opening<'_>,
) -> Result<Arc<Partition>, String> {
    let (dir, clean) = match opening {
        Opening::New(stale) => (dirs::prepare_new(data_dir, topic, index, id, stale)?, true),
        Opening::Existing { clean } => (dirs::partition_dir(data_dir, topic, index), clean),
    };
    let log =
        Log::open_with(&dir, settings.log_config(), now_ms(), clean).map_err(|e| e.to_string())?;
    dirs::ensure_marker(&dir, id)
        .map_err(|e| format!("cannot mark {} as this broker's: {e}", dir.display()))?;
    Ok(Arc::new(Partition::new(
        topic.clone(),
        index,
        log,
        health.clone(),
    )))
}

/// Runs blocking file work off the async workers; its error is a storage error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, TopicError> {
    let storage = |e: String| TopicError::new(ResponseError::KafkaStorageError, e);
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(storage),
        Err(e) => Err(storage(e.to_string())),
    }
}
