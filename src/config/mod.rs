//! Broker configuration, under Kafka's own property names.
//!
//! Sources, lowest precedence first: built-in defaults, the `--config` file (TOML, or Kafka's
//! `server.properties` format for `*.properties`), `KLAMM_`-prefixed environment variables
//! (`KLAMM_LOG_DIRS` → `log.dirs`; `__` stands for `_` and `___` for `-`), and `--override
//! key=value`. Every source is merged by figment into nested tables which are flattened back
//! into dotted Kafka keys and validated against [`BROKER_DEFS`]. Dynamic broker configs
//! ([`dynamic`]) are laid over the result at run time ([`live`]).

pub mod defs;
pub mod dynamic;
pub mod live;
pub mod network;
pub mod properties;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::value::Value as FValue;
use figment::Provider;
use thiserror::Error;

use defs::{int_at_least, long_at_least, Def, Kind, Value, ANY_INT};
use dynamic::DynamicConfigs;

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Figment(Box::new(e))
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for configuration `{key}`: must be {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration error: {0}")]
    Figment(Box<figment::Error>),
    #[error("invalid --override {0:?}: expected key=value")]
    Override(String),
}

const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Compression levels, with Kafka's bounds.
pub const GZIP_LEVEL: Kind = Kind::IntOr {
    min: 1,
    max: 9,
    or: -1,
};
pub const LZ4_LEVEL: Kind = Kind::Int { min: 1, max: 17 };
pub const ZSTD_LEVEL: Kind = Kind::Int {
    min: -131072,
    max: 22,
};

/// The compression levels, the same keys at the broker and topic levels.
pub const COMPRESSION_LEVELS: [Def; 3] = [
    Def {
        name: "compression.gzip.level",
        kind: GZIP_LEVEL,
        default: Some("-1"),
        doc: "gzip level for batches the broker compresses (-1: zlib's default).",
    },
    Def {
        name: "compression.lz4.level",
        kind: LZ4_LEVEL,
        default: Some("9"),
        doc: "lz4 level for batches the broker compresses.",
    },
    Def {
        name: "compression.zstd.level",
        kind: ZSTD_LEVEL,
        default: Some("3"),
        doc: "zstd level for batches the broker compresses.",
    },
];

/// Every broker key Klamm understands. Keys outside this table are reported in one warning.
pub const BROKER_DEFS: &[Def] = &[
    Def {
        name: "node.id",
        kind: int_at_least(0),
        default: Some("1"),
        doc: "The id of this broker (alias: broker.id).",
    },
    Def {
        name: "listeners",
        kind: Kind::List,
        default: Some("PLAINTEXT://127.0.0.1:9092"),
        doc: "Addresses to listen on, as NAME://host:port.",
    },
    Def {
        name: "advertised.listeners",
        kind: Kind::List,
        default: None,
        doc: "Addresses given to clients in Metadata; defaults to listeners.",
    },
    Def {
        name: "listener.security.protocol.map",
        kind: Kind::List,
        default: Some(
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ),
        doc: "Listener name to security protocol.",
    },
    Def {
        name: "controller.listener.names",
        kind: Kind::List,
        default: None,
        doc: "Listeners used by KRaft controllers; Klamm does not serve them.",
    },
    Def {
        name: "log.dirs",
        kind: Kind::List,
        default: None,
        doc: "The data directory (alias: log.dir). Klamm uses one directory.",
    },
    Def {
        name: "log.dir",
        kind: Kind::Str,
        default: Some("./data"),
        doc: "The data directory when log.dirs is not set.",
    },
    Def {
        name: "num.partitions",
        kind: int_at_least(1),
        default: Some("1"),
        doc: "Partitions of auto-created topics and of CreateTopics with -1.",
    },
    Def {
        name: "default.replication.factor",
        kind: Kind::Int { min: 1, max: 1 },
        default: Some("1"),
        doc: "Replication factor of new topics; a single broker keeps one replica.",
    },
    Def {
        name: "auto.create.topics.enable",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "Create unknown topics named in Metadata requests.",
    },
    Def {
        name: "delete.topic.enable",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "Allow DeleteTopics.",
    },
    Def {
        name: "log.retention.hours",
        kind: ANY_INT,
        default: Some("168"),
        doc: "Hours to keep a segment (lowest precedence of the three).",
    },
    Def {
        name: "log.retention.minutes",
        kind: ANY_INT,
        default: None,
        doc: "Minutes to keep a segment.",
    },
    Def {
        name: "log.retention.ms",
        kind: long_at_least(-1),
        default: None,
        doc: "Milliseconds to keep a segment; -1 keeps forever.",
    },
    Def {
        name: "log.retention.bytes",
        kind: long_at_least(-1),
        default: Some("-1"),
        doc: "Bytes to keep per partition; -1 for no limit.",
    },
    Def {
        name: "log.retention.check.interval.ms",
        kind: long_at_least(1),
        default: Some("300000"),
        doc: "How often retention is checked.",
    },
    Def {
        name: "log.segment.bytes",
        kind: int_at_least(14),
        default: Some("1073741824"),
        doc: "Size at which a segment is rolled.",
    },
    Def {
        name: "log.roll.hours",
        kind: int_at_least(1),
        default: Some("168"),
        doc: "Age at which a segment is rolled.",
    },
    Def {
        name: "log.roll.ms",
        kind: long_at_least(1),
        default: None,
        doc: "Age in ms at which a segment is rolled (overrides log.roll.hours).",
    },
    Def {
        name: "log.index.interval.bytes",
        kind: int_at_least(0),
        default: Some("4096"),
        doc: "Bytes between offset index entries.",
    },
    Def {
        name: "log.flush.interval.messages",
        kind: long_at_least(1),
        default: Some("9223372036854775807"),
        doc: "Messages after which a partition is fsynced.",
    },
    Def {
        name: "log.flush.interval.ms",
        kind: long_at_least(0),
        default: None,
        doc: "Milliseconds after which a partition is fsynced.",
    },
    Def {
        name: "log.message.timestamp.type",
        kind: Kind::Choice(TIMESTAMP_TYPES),
        default: Some("CreateTime"),
        doc: "Timestamp type of new topics.",
    },
    Def {
        name: "log.message.timestamp.after.max.ms",
        kind: long_at_least(0),
        default: Some("3600000"),
        doc: "How far in the future a record's CreateTime may be (INVALID_TIMESTAMP past it).",
    },
    Def {
        name: "log.message.timestamp.before.max.ms",
        kind: long_at_least(0),
        default: Some("9223372036854775807"),
        doc: "How far in the past a record's CreateTime may be (INVALID_TIMESTAMP before it).",
    },
    Def {
        name: "log.cleanup.policy",
        kind: Kind::ListOf(CLEANUP_POLICIES),
        default: Some("delete"),
        doc: "Cleanup policy of new topics.",
    },
    Def {
        name: "compression.type",
        kind: Kind::Choice(COMPRESSION_TYPES),
        default: Some("producer"),
        doc: "Compression of stored batches (default of compression.type): producer keeps what producers send; a codec or uncompressed makes the broker recompress batches that differ.",
    },
    COMPRESSION_LEVELS[0],
    COMPRESSION_LEVELS[1],
    COMPRESSION_LEVELS[2],
    Def {
        name: "message.max.bytes",
        kind: int_at_least(0),
        default: Some("1048588"),
        doc: "Largest record batch a topic accepts by default.",
    },
    Def {
        name: "socket.request.max.bytes",
        kind: int_at_least(1),
        default: Some("104857600"),
        doc: "Largest request frame; larger ones close the connection.",
    },
    Def {
        name: "queued.max.request.bytes",
        kind: long_at_least(-1),
        default: Some("536870912"),
        doc: "Request bytes held in memory across all connections before reading waits; -1 for no limit.",
    },
    Def {
        name: "max.connections",
        kind: int_at_least(1),
        default: Some("10000"),
        doc: "Connections served at once; more wait to be accepted.",
    },
    Def {
        name: "max.connections.per.ip",
        kind: int_at_least(0),
        default: Some("2147483647"),
        doc: "Connections one client address may hold at once; more are closed when accepted.",
    },
    Def {
        name: "max.connections.per.ip.overrides",
        kind: Kind::Str,
        default: Some(""),
        doc: "Per-address exceptions to max.connections.per.ip, as host:count,host:count.",
    },
    Def {
        name: "max.connection.creation.rate",
        kind: int_at_least(0),
        default: Some("2147483647"),
        doc: "New connections accepted per second, across listeners; more wait to be accepted.",
    },
    Def {
        name: "connections.max.idle.ms",
        kind: defs::ANY_LONG,
        default: Some("600000"),
        doc: "Connections with no bytes in either direction for this long are closed; -1 never.",
    },
    Def {
        name: "request.timeout.ms",
        kind: int_at_least(0),
        default: Some("30000"),
        doc: "Longest a request may take to arrive once its first byte has; 0 for no limit.",
    },
    Def {
        name: "fetch.max.bytes",
        kind: int_at_least(1024),
        default: Some("57671680"),
        doc: "Most record bytes in one fetch response (the first batch is always whole).",
    },
    Def {
        name: "group.initial.rebalance.delay.ms",
        kind: int_at_least(0),
        default: Some("3000"),
        doc: "Delay before the first rebalance of a new group.",
    },
    Def {
        name: "group.min.session.timeout.ms",
        kind: int_at_least(0),
        default: Some("6000"),
        doc: "Shortest session timeout a member may ask for.",
    },
    Def {
        name: "group.max.session.timeout.ms",
        kind: int_at_least(0),
        default: Some("1800000"),
        doc: "Longest session timeout a member may ask for.",
    },
    Def {
        name: "group.max.size",
        kind: int_at_least(1),
        default: Some("2147483647"),
        doc: "Most members a group may have.",
    },
    Def {
        name: "offset.metadata.max.bytes",
        kind: int_at_least(0),
        default: Some("4096"),
        doc: "Largest metadata string of a committed offset.",
    },
    Def {
        name: "offsets.retention.minutes",
        kind: int_at_least(1),
        default: Some("10080"),
        doc: "How long offsets of an empty group are kept.",
    },
    Def {
        name: "offsets.retention.check.interval.ms",
        kind: long_at_least(1),
        default: Some("600000"),
        doc: "How often expired offsets are removed.",
    },
    Def { name: "log.flush.offset.checkpoint.interval.ms", kind: int_at_least(0), default: Some("60000"), doc: "How often each partition's recovery point is written." },
    Def { name: "producer.id.expiration.ms", kind: int_at_least(1), default: Some("86400000"), doc: "How long an idle idempotent producer's state is kept." },
    Def { name: "log.cleaner.enable", kind: Kind::Bool, default: Some("true"), doc: "Run the compaction cleaner for compacted topics." },
    Def { name: "log.cleaner.threads", kind: int_at_least(0), default: Some("1"), doc: "Partitions the cleaner compacts at once; 0 compacts none." },
    Def { name: "log.cleaner.backoff.ms", kind: long_at_least(0), default: Some("15000"), doc: "Pause between cleaner passes." },
    Def { name: "log.cleaner.dedupe.buffer.size", kind: long_at_least(1048576), default: Some("134217728"), doc: "Memory for the cleaner's key map." },
    Def { name: "log.cleaner.delete.retention.ms", kind: long_at_least(0), default: Some("86400000"), doc: "How long tombstones are kept (default of delete.retention.ms)." },
    Def { name: "log.cleaner.min.cleanable.ratio", kind: Kind::Double { min: 0.0, max: 1.0 }, default: Some("0.5"), doc: "Dirty ratio that triggers compaction (default of min.cleanable.dirty.ratio)." },
    Def { name: "log.cleaner.min.compaction.lag.ms", kind: long_at_least(0), default: Some("0"), doc: "Shortest time a record stays uncompacted (default of min.compaction.lag.ms)." },
    Def { name: "log.cleaner.io.max.bytes.per.second", kind: Kind::Double { min: 0.0, max: f64::MAX }, default: Some("1.7976931348623157E308"), doc: "Cleaner I/O limit in bytes per second." },
    Def {
        name: "offsets.topic.num.partitions",
        kind: int_at_least(1),
        default: Some("50"),
        doc: "Partitions of __consumer_offsets.",
    },
];

const ALIASES: &[(&str, &str)] = &[("broker.id", "node.id")];

/// A listener: a name (e.g. PLAINTEXT) and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(key: &str, raw: &str) -> Result<Listener, ConfigError> {
        let invalid = || ConfigError::Invalid {
            key: key.to_string(),
            value: raw.to_string(),
            allowed: "a list of NAME://host:port".to_string(),
        };
        let (name, rest) = raw.split_once("://").ok_or_else(invalid)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            return Err(invalid());
        }
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host: host.to_string(),
            port: port.parse().map_err(|_| invalid())?,
        })
    }

    /// Where to bind: an empty host means every interface.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        if self.host.is_empty() {
            return Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                self.port,
            ));
        }
        use std::net::ToSocketAddrs;
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }
}

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every key in [`BROKER_DEFS`] that has a value, validated.
    values: BTreeMap<&'static str, Value>,
    /// Keys set explicitly by some static source, with their raw values.
    pub explicit: BTreeMap<String, String>,
    /// Dynamic broker configs laid over the static ones.
    dynamic: DynamicConfigs,
    /// Keys that mean nothing to Klamm, with the source's values.
    pub unknown: Vec<String>,
    /// Listeners to serve and what each advertises.
    pub listeners: Vec<(Listener, Listener)>,
}

impl BrokerConfig {
    /// Validates flat `key → raw value` pairs (already merged by precedence).
    pub fn from_pairs(pairs: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let mut explicit = BTreeMap::new();
        let mut unknown = Vec::new();
        for (k, v) in pairs {
            let canonical = ALIASES
                .iter()
                .find(|(alias, _)| *alias == k)
                .map(|(_, c)| c.to_string())
                .unwrap_or(k.clone());
            if defs::find(BROKER_DEFS, &canonical).is_some() {
                // An explicit canonical key wins over its alias.
                if canonical == k || !explicit.contains_key(&canonical) {
                    explicit.insert(canonical, v);
                }
            } else {
                unknown.push(k);
            }
        }
        let dynamic = DynamicConfigs::default();
        let mut cfg = BrokerConfig {
            values: resolve(&explicit, &dynamic)?,
            explicit,
            dynamic,
            unknown,
            listeners: Vec::new(),
        };
        cfg.listeners = cfg.resolve_listeners()?;
        // Checked here so that a malformed value stops the load with its key named.
        network::NetworkConfig::from_config(&cfg)?;
        Ok(cfg)
    }

    /// This configuration with `dynamic` laid over its static values (replacing any dynamic
    /// values it had).
    pub fn with_dynamic(&self, dynamic: DynamicConfigs) -> Result<BrokerConfig, ConfigError> {
        Ok(BrokerConfig {
            values: resolve(&self.explicit, &dynamic)?,
            dynamic,
            ..self.clone()
        })
    }

    /// The dynamic broker configs in force.
    pub fn dynamic(&self) -> &DynamicConfigs {
        &self.dynamic
    }

    fn resolve_listeners(&self) -> Result<Vec<(Listener, Listener)>, ConfigError> {
        let list = |key: &str| -> Result<Vec<Listener>, ConfigError> {
            self.list(key)
                .iter()
                .map(|raw| Listener::parse(key, raw))
                .collect()
        };
        let controllers: Vec<String> = self
            .list("controller.listener.names")
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        let protocols: BTreeMap<String, String> = self
            .list("listener.security.protocol.map")
            .iter()
            .filter_map(|p| p.split_once(':'))
            .map(|(n, p)| (n.to_ascii_uppercase(), p.to_ascii_uppercase()))
            .collect();
        let advertised = list("advertised.listeners")?;
        let mut out = Vec::new();
        for l in list("listeners")? {
            if controllers.contains(&l.name) {
                continue;
            }
            let protocol = protocols.get(&l.name).cloned().unwrap_or(l.name.clone());
            if protocol != "PLAINTEXT" {
                return Err(ConfigError::Invalid {
                    key: "listeners".into(),
                    value: format!("{}://{}:{}", l.name, l.host, l.port),
                    allowed: "PLAINTEXT listeners (SSL and SASL are not supported yet)".into(),
                });
            }
            let mut adv = advertised
                .iter()
                .find(|a| a.name == l.name)
                .cloned()
                .unwrap_or_else(|| l.clone());
            if adv.host.is_empty() || adv.host == "0.0.0.0" || adv.host == "::" {
                // A wildcard is not an address a client can reach; loopback is, on this machine.
                adv.host = "127.0.0.1".into();
            }
            out.push((l, adv));
        }
        if out.is_empty() {
            return Err(ConfigError::Invalid {
                key: "listeners".into(),
                value: self.list("listeners").join(","),
                allowed: "at least one PLAINTEXT listener that is not a controller listener".into(),
            });
        }
        Ok(out)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        debug_assert!(
            defs::find(BROKER_DEFS, key).is_some(),
            "unknown broker key {key}"
        );
        self.values.get(key)
    }

    /// An integer key; every key asked for this way has a default in [`BROKER_DEFS`].
    pub fn int(&self, key: &str) -> i64 {
        self.get(key).and_then(Value::as_i64).unwrap_or_default()
    }
    pub fn opt_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or_default()
    }
    pub fn str(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_str).unwrap_or_default()
    }
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_list)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }
    pub fn double(&self, key: &str) -> f64 {
        match self.get(key) {
            Some(Value::Double(d)) => *d,
            _ => 0.0,
        }
    }
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }

    pub fn node_id(&self) -> i32 {
        self.int("node.id") as i32
    }

    pub fn data_dir(&self) -> PathBuf {
        match self.list("log.dirs").first() {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(self.str("log.dir")),
        }
    }

    /// `log.retention.ms`, else minutes, else hours, as Kafka resolves them.
    pub fn retention_ms(&self) -> i64 {
        if let Some(ms) = self.opt_int("log.retention.ms") {
            return ms;
        }
        if let Some(m) = self.opt_int("log.retention.minutes") {
            return if m < 0 { -1 } else { m * 60_000 };
        }
        let h = self.int("log.retention.hours");
        if h < 0 {
            -1
        } else {
            h * 3_600_000
        }
    }

    pub fn roll_ms(&self) -> i64 {
        self.opt_int("log.roll.ms")
            .unwrap_or_else(|| self.int("log.roll.hours") * 3_600_000)
    }
}

/// Every key's value, highest precedence first: per-broker dynamic, cluster-default dynamic,
/// static, built-in default.
fn resolve(
    explicit: &BTreeMap<String, String>,
    dynamic: &DynamicConfigs,
) -> Result<BTreeMap<&'static str, Value>, ConfigError> {
    let mut values = BTreeMap::new();
    for def in BROKER_DEFS {
        let raw = dynamic
            .get(def.name)
            .or_else(|| explicit.get(def.name).map(String::as_str))
            .or(def.default);
        if let Some(raw) = raw {
            let v = def
                .kind
                .parse(raw)
                .map_err(|allowed| ConfigError::Invalid {
                    key: def.name.to_string(),
                    value: raw.to_string(),
                    allowed,
                })?;
            values.insert(def.name, v);
        }
    }
    Ok(values)
}

/// Where configuration comes from, besides the defaults.
#[derive(Debug, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub overrides: Vec<String>,
    /// Read `KLAMM_*` environment variables (off in unit tests).
    pub env: bool,
}

/// Loads, merges and validates the configuration.
pub fn load(sources: &Sources) -> Result<BrokerConfig, ConfigError> {
    let mut providers: Vec<Box<dyn Provider>> = Vec::new();
    if let Some(path) = &sources.file {
        if !path.exists() {
            return Err(ConfigError::Read {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        if path.extension().is_some_and(|e| e == "properties") {
            let pairs = properties::Pairs::from_file(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            providers.push(Box::new(pairs));
        } else {
            providers.push(Box::new(Toml::file_exact(path)));
        }
    }
    if sources.env {
        providers.push(Box::new(
            Env::prefixed("KLAMM_").map(|k| env_key(k.as_str()).into()),
        ));
    }
    let mut pairs = Vec::new();
    for o in &sources.overrides {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::Override(o.clone()))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    providers.push(Box::new(properties::Pairs {
        name: "--override".into(),
        pairs,
    }));
    // Each source is flattened to dotted keys on its own, then laid over the previous ones:
    // `"log.dirs" = …` and `[log] dirs = …` in TOML are the same key, and precedence holds
    // whichever spelling each source used.
    let mut flat = BTreeMap::new();
    for provider in providers {
        let data = provider.data()?;
        if let Some(dict) = data.get(&figment::Profile::Default) {
            for (k, v) in dict {
                flatten(k, v, &mut flat);
            }
        }
    }
    BrokerConfig::from_pairs(flat)
}

/// `LOG_DIRS` → `log.dirs`; `__` → `_`; `___` → `-`.
fn env_key(k: &str) -> String {
    k.to_ascii_lowercase()
        .replace("___", "\u{1}")
        .replace("__", "\u{2}")
        .replace('_', ".")
        .replace('\u{1}', "-")
        .replace('\u{2}', "_")
}

fn flatten(prefix: &str, v: &FValue, out: &mut BTreeMap<String, String>) {
    match v {
        FValue::Dict(_, d) => {
            for (k, v) in d {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), scalar(other));
        }
    }
}

fn scalar(v: &FValue) -> String {
    match v {
        FValue::String(_, s) => s.clone(),
        FValue::Char(_, c) => c.to_string(),
        FValue::Bool(_, b) => b.to_string(),
        FValue::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_u128().map(|u| u.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        FValue::Empty(..) => String::new(),
        FValue::Array(_, items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        FValue::Dict(..) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = BrokerConfig::from_pairs(BTreeMap::new()).unwrap();
        assert_eq!(c.node_id(), 1);
        assert_eq!(c.data_dir(), PathBuf::from("./data"));
        assert_eq!(c.listeners[0].0.port, 9092);
        assert_eq!(c.listeners[0].1.host, "127.0.0.1");
        assert_eq!(c.retention_ms(), 168 * 3_600_000);
        assert_eq!(c.int("message.max.bytes"), 1048588);
    }

    #[test]
    fn shipped_configs_load() {
        for file in ["config/server.toml", "config/server.properties"] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
            let c = load(&Sources {
                file: Some(path),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(c.unknown.is_empty(), "{file}: {:?}", c.unknown);
            assert_eq!(c.listeners[0].0.port, 9092);
            assert_eq!(c.data_dir(), PathBuf::from("./data"));
        }
    }

    #[test]
    fn kafka_quickstart_config_starts() {
        let c = BrokerConfig::from_pairs(pairs(&[
            ("broker.id", "0"),
            ("zookeeper.connect", "localhost:2181"),
            ("num.network.threads", "3"),
            ("log.dirs", "/tmp/kafka-logs"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("log.retention.minutes", "5"),
        ]))
        .unwrap();
        assert_eq!(c.node_id(), 0);
        assert_eq!(c.unknown, vec!["num.network.threads", "zookeeper.connect"]);
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].1.host, "127.0.0.1");
        assert_eq!(c.retention_ms(), 300_000);
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/kafka-logs"));
    }

    #[test]
    fn bad_value_names_key_value_and_allowed() {
        let err = BrokerConfig::from_pairs(pairs(&[("num.partitions", "zero")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("num.partitions") && msg.contains("zero") && msg.contains("≥ 1"),
            "{msg}"
        );
        let err = BrokerConfig::from_pairs(pairs(&[("listeners", "SSL://:9093")])).unwrap_err();
        assert!(err.to_string().contains("SSL"));
    }

    #[test]
    fn precedence_file_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("k.toml");
        std::fs::write(
            &toml,
            "num.partitions = 3\n\"message.max.bytes\" = 5000\n[log]\ndirs = \"/x\"\n",
        )
        .unwrap();
        let c = load(&Sources {
            file: Some(toml.clone()),
            overrides: vec!["num.partitions=7".into()],
            env: false,
        })
        .unwrap();
        assert_eq!(c.int("num.partitions"), 7);
        assert_eq!(c.int("message.max.bytes"), 5000);
        assert_eq!(c.data_dir(), PathBuf::from("/x"));
        let props = dir.path().join("k.properties");
        std::fs::write(&props, "auto.create.topics.enable=false\nnode.id=4\n").unwrap();
        let c = load(&Sources {
            file: Some(props),
            ..Default::default()
        })
        .unwrap();
        assert!(!c.bool("auto.create.topics.enable"));
        assert_eq!(c.node_id(), 4);
        assert_eq!(env_key("LOG_RETENTION_MS"), "log.retention.ms");
        assert_eq!(env_key("A__B___C"), "a_b-c");
    }
}
