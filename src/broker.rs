//! The broker as a library type: start it on a configuration, learn its bound addresses, shut
//! it down. `main.rs` only parses arguments and runs one; tests embed one the same way.

mod cleaner;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::dynamic::{DynamicError, Level};
use crate::config::live::LiveConfig;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::producer_ids::ProducerIds;
use crate::server;
use crate::topics::{store, TopicManager};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another broker (its lock file is held)")]
    Locked(PathBuf),
    #[error("cannot read or write {path}: {reason}")]
    Meta { path: PathBuf, reason: String },
    #[error("cannot load topics: {0}")]
    Topics(String),
    #[error("{0}")]
    Network(String),
    #[error("cannot listen on {addr} (listener {name}): {reason}")]
    Bind {
        name: String,
        addr: String,
        reason: String,
    },
}

/// State shared by every connection and handler.
pub struct Shared {
    config: Arc<LiveConfig>,
    cluster_id: String,
    topics: TopicManager,
    groups: GroupCoordinator,
    producer_ids: ProducerIds,
    shutdown: watch::Receiver<bool>,
    /// Bytes of request frames held in memory, across connections (`queued.max.request.bytes`).
    request_memory: Option<Arc<Semaphore>>,
}

impl Shared {
    /// The configuration in force (dynamic broker configs included); it may be replaced at any
    /// time, so long-running tasks ask again rather than keep it.
    pub fn config(&self) -> Arc<BrokerConfig> {
        self.config.current()
    }
    pub fn node_id(&self) -> i32 {
        self.config.current().node_id()
    }
    /// Changes the dynamic broker configs at `level` (see [`LiveConfig::alter`]); topics
    /// without overrides of their own take new defaults at once.
    pub async fn alter_broker_configs(
        &self,
        level: Level,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, DynamicError>,
    ) -> Result<(), DynamicError> {
        let Some(config) = self.config.alter(level, validate_only, change).await? else {
            return Ok(());
        };
        info!(level = ?level, configs = ?config.dynamic().at(level), "altered dynamic broker configs");
        self.topics.reconfigure().await;
        Ok(())
    }
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
    pub fn topics(&self) -> &TopicManager {
        &self.topics
    }
    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }
    pub fn producer_ids(&self) -> &ProducerIds {
        &self.producer_ids
    }
    pub fn request_memory(&self) -> Option<&Arc<Semaphore>> {
        self.request_memory.as_ref()
    }
    /// Becomes `true` when the broker starts shutting down; long polls end early on it.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// A running broker.
pub struct Broker {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    connections: Arc<Semaphore>,
    max_connections: u32,
    acceptors: Vec<JoinHandle<()>>,
    _lock: File,
    data_dir: PathBuf,
}

impl Broker {
    /// Opens the data directory (locking it), loads topics and binds every listener.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        let started = Instant::now();
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let (live, dropped) =
            LiveConfig::open(config, &data_dir).map_err(|e| StartError::Meta {
                path: data_dir.join(crate::config::live::FILE),
                reason: e.to_string(),
            })?;
        for line in dropped {
            warn!("{line}");
        }
        let live = Arc::new(live);
        let config = live.current();
        let cluster_id = load_or_create_cluster_id(&data_dir, config.node_id())?;
        // The marker says the last stop was clean: logs are trusted without verification. It
        // is removed before anything is served, so a crash from now on is noticed next time.
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker).map_err(|e| StartError::Meta {
                path: marker.clone(),
                reason: e.to_string(),
            })?;
        } else if data_dir.join(crate::topics::store::TOPICS_DIR).exists() {
            warn!("the last stop was not clean: verifying logs after their recovery points");
        }
        let (fd_limit, open_segments) = crate::log::files::size_to_descriptor_limit();
        info!(
            fd_limit,
            open_segments, "sealed segments keep at most this many files open"
        );
        let (topics, report) =
            TopicManager::open(&data_dir, live.clone(), clean).map_err(StartError::Topics)?;
        for line in report {
            warn!("{line}");
        }
        let (stop, shutdown) = watch::channel(false);
        let queued = config.int("queued.max.request.bytes");
        // Any single legal frame must fit, or its connection would wait forever.
        let request_memory = (queued >= 0).then(|| {
            let permits = queued.max(config.int("socket.request.max.bytes"));
            Arc::new(Semaphore::new(
                permits.min(Semaphore::MAX_PERMITS as i64) as usize
            ))
        });
        let producer_ids = ProducerIds::open(&data_dir).map_err(|e| StartError::Meta {
            path: data_dir.join("producer_ids"),
            reason: e.to_string(),
        })?;
        let groups = GroupCoordinator::new(&config);
        groups.load(&topics).await.map_err(StartError::Topics)?;
        let shared = Arc::new(Shared {
            config: live,
            cluster_id,
            topics,
            groups,
            producer_ids,
            shutdown,
            request_memory,
        });
        let ticker = tokio::spawn(group_ticker(shared.clone(), stop.subscribe()));
        let maintenance = tokio::spawn(log_maintenance(shared.clone(), stop.subscribe()));
        let cleaner = tokio::spawn(cleaner::run(shared.clone(), stop.subscribe()));
        let max_connections = config
            .int("max.connections")
            .clamp(1, Semaphore::MAX_PERMITS as i64) as u32;
        let connections = Arc::new(Semaphore::new(max_connections as usize));
        let edge = Arc::new(server::Edge::new(&config).map_err(StartError::Network)?);
        let mut addrs = Vec::new();
        let mut acceptors = Vec::new();
        for (listener, advertised) in &config.listeners {
            let bind = listener.bind_addr().map_err(|reason| StartError::Bind {
                name: listener.name.clone(),
                addr: format!("{}:{}", listener.host, listener.port),
                reason,
            })?;
            let socket = TcpListener::bind(bind)
                .await
                .map_err(|e| StartError::Bind {
                    name: listener.name.clone(),
                    addr: bind.to_string(),
                    reason: e.to_string(),
                })?;
            let local = socket.local_addr().map_err(|e| StartError::Bind {
                name: listener.name.clone(),
                addr: bind.to_string(),
                reason: e.to_string(),
            })?;
            let mut advertised = advertised.clone();
            if advertised.port == 0 {
                // Port 0 binds a free port; advertise the one we got.
                advertised.port = local.port();
            }
            addrs.push(local);
            acceptors.push(tokio::spawn(server::accept_loop(
                socket,
                shared.clone(),
                Arc::new(advertised),
                connections.clone(),
                edge.clone(),
                stop.subscribe(),
            )));
        }
        acceptors.push(ticker);
        acceptors.push(maintenance);
        acceptors.push(cleaner);
        let address = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        info!(
            address = %address,
            node_id = config.node_id(),
            cluster_id = %shared.cluster_id,
            data_dir = %data_dir.display(),
            startup_ms = started.elapsed().as_millis() as u64,
            "ready to accept connections"
        );
        Ok(Broker {
            shared,
            addrs,
            stop,
            connections,
            max_connections,
            acceptors,
            _lock: lock,
            data_dir,
        })
    }

    /// The addresses the listeners are bound to (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets connections answer the requests they are serving, then syncs and
    /// closes every log.
    pub async fn shutdown(self) {
        info!("shutting down");
        let _ = self.stop.send(true);
        for a in self.acceptors {
            let _ = a.await;
        }
        // Every connection holds a permit until it has answered its in-flight request.
        let drained = tokio::time::timeout(
            Duration::from_secs(10),
            self.connections.acquire_many(self.max_connections),
        )
        .await;
        if drained.is_err() {
            warn!("some connections did not finish within 10 s; closing anyway");
        }
        let shared = self.shared.clone();
        let synced = tokio::task::spawn_blocking(move || shared.topics().sync_all()).await;
        if matches!(synced, Ok(true)) {
            let marker = self.data_dir.join(CLEAN_SHUTDOWN_MARKER);
            if let Err(e) = crate::topics::store::write_atomic(&marker, b"") {
                warn!(error = %e, "cannot write the clean shutdown marker; the next start verifies logs");
            }
        } else {
            warn!("syncing logs on shutdown failed; the next start verifies logs");
        }
        info!(data_dir = %self.data_dir.display(), "shutdown complete");
    }
}

/// Written last by a clean shutdown, after every log is synced (Kafka's name for it).
const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";

/// Periodic log upkeep: time-based flushes (`flush.ms`), retention every
/// `log.retention.check.interval.ms`, and recovery points (with idle producers' expiry) every
/// `log.flush.offset.checkpoint.interval.ms`.
async fn log_maintenance(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = shared.config();
    let every = |k: &str| Duration::from_millis(config.int(k).max(1) as u64);
    let retention_every = every("log.retention.check.interval.ms");
    let checkpoint_every = every("log.flush.offset.checkpoint.interval.ms");
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_retention, mut last_checkpoint) = (Instant::now(), Instant::now());
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if shared.topics.offline() {
            // Nothing more is written, removed or synced in a directory that failed.
            continue;
        }
        flush_due_partitions(&shared).await;
        if last_retention.elapsed() >= retention_every {
            last_retention = Instant::now();
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                s.topics.apply_retention(crate::clock::now_ms())
            })
            .await;
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let s = shared.clone();
            // Dynamic: read at each checkpoint.
            let producer_expiry = shared.config().int("producer.id.expiration.ms");
            let cutoff = crate::clock::now_ms() - producer_expiry;
            let _ = tokio::task::spawn_blocking(move || s.topics.checkpoint(cutoff)).await;
        }
    }
}

/// `flush.ms`: partitions of topics that set it are synced once their oldest unflushed data
/// is about that old (checked every second).
async fn flush_due_partitions(shared: &Shared) {
    for topic in shared.topics.list() {
        if topic.settings.flush_ms == i64::MAX {
            continue;
        }
        for p in &topic.partitions {
            if let Some(offset) = p.flush_due(topic.settings.flush_ms) {
                let _ = p.wait_durable(offset).await;
            }
        }
    }
}

/// Drives the group coordinator's clock: session expiry, rebalance timeouts, offsets retention.
async fn group_ticker(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retention_every = shared.groups.retention_check_interval();
    let mut last_retention = Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let due = last_retention.elapsed() >= retention_every;
        if due {
            last_retention = Instant::now();
        }
        shared.groups.tick(&shared.topics, due).await;
    }
}

/// Takes an exclusive lock on `<data>/.lock` for the broker's lifetime: two brokers must never
/// share a data directory.
fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::Meta {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::Meta {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Reads the cluster id from `meta.properties`, as Kafka keeps it, or creates one.
fn load_or_create_cluster_id(dir: &Path, node_id: i32) -> Result<String, StartError> {
    let path = dir.join("meta.properties");
    let meta_err = |reason: String| StartError::Meta {
        path: path.clone(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| meta_err(e.to_string()))?;
        let pairs = crate::config::properties::parse(&text);
        if let Some((_, id)) = pairs.iter().find(|(k, _)| k == "cluster.id") {
            if let Some((_, stored)) = pairs.iter().find(|(k, _)| k == "node.id") {
                if stored != &node_id.to_string() {
                    warn!(stored = %stored, configured = node_id, "node.id differs from the one stored in meta.properties");
                }
            }
            return Ok(id.clone());
        }
    }
    let id = base64url(uuid::Uuid::new_v4().as_bytes());
    let text = format!("#Written by klamm\nversion=1\ncluster.id={id}\nnode.id={node_id}\n");
    store::write_atomic(&path, text.as_bytes()).map_err(|e| meta_err(e.to_string()))?;
    Ok(id)
}

/// URL-safe base64 without padding: the form of Kafka cluster ids (22 characters for 16 bytes).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_id_shape() {
        let id = super::base64url(&[0xff; 16]);
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
