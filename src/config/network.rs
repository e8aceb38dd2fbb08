//! The network edge's settings as typed values, read once when the broker starts: what the
//! listener and each connection enforce (see `server/`).

use std::time::Duration;

use super::{BrokerConfig, ConfigError};

/// Limits of the listener and of every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// `socket.request.max.bytes`: the largest request frame.
    pub max_request_bytes: usize,
    /// `connections.max.idle.ms`: a connection with no bytes read or written for this long
    /// (and no request being handled) is closed; `None` (a negative value) never closes one.
    pub idle_timeout: Option<Duration>,
    /// `request.timeout.ms`: how long a request may take to arrive once its first byte has;
    /// `None` (0) for no limit.
    ///
    /// Kafka has no broker key for this (its selector only closes idle connections, so a client
    /// trickling a byte a minute holds its connection and its request buffer for ever). Kafka's
    /// broker does define `request.timeout.ms` (30 s), and clients give up on a request after
    /// their own `request.timeout.ms`, 30 s by default: a request still arriving after that
    /// has been abandoned by its sender. `connections.max.idle.ms` (10 min) would let a
    /// trickling client hold its bytes and its connection slot twenty times as long.
    pub request_timeout: Option<Duration>,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: u32,
    /// `max.connections.per.ip.overrides`: host (name or address) and its own limit.
    pub per_ip_overrides: Vec<(String, u32)>,
    /// `max.connection.creation.rate`: connections accepted per second, across listeners.
    pub max_connection_creation_rate: u32,
}

impl NetworkConfig {
    pub fn from_config(c: &BrokerConfig) -> Result<NetworkConfig, ConfigError> {
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let idle = c.int("connections.max.idle.ms");
        let request = c.int("request.timeout.ms");
        let key = "max.connections.per.ip.overrides";
        let raw = c.str(key);
        let per_ip_overrides = parse_ip_overrides(raw).map_err(|allowed| ConfigError::Invalid {
            key: key.to_string(),
            value: raw.to_string(),
            allowed,
        })?;
        Ok(NetworkConfig {
            max_request_bytes: c.int("socket.request.max.bytes").max(0) as usize,
            idle_timeout: (idle >= 0).then(|| ms(idle)),
            request_timeout: (request > 0).then(|| ms(request)),
            max_connections_per_ip: clamp_u32(c.int("max.connections.per.ip")),
            per_ip_overrides,
            max_connection_creation_rate: clamp_u32(c.int("max.connection.creation.rate")),
        })
    }
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

/// Parses Kafka's `host:count,host:count` (the count after the last colon, so IPv6 literals
/// work, with or without brackets). The error says what is allowed.
pub fn parse_ip_overrides(raw: &str) -> Result<Vec<(String, u32)>, String> {
    let allowed = || "a comma-separated list of host:count with counts ≥ 0".to_string();
    let mut out = Vec::new();
    for item in super::defs::split_list(raw) {
        let (host, count) = item.rsplit_once(':').ok_or_else(allowed)?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let count: u32 = count.trim().parse().map_err(|_| allowed())?;
        if host.is_empty() || count > i32::MAX as u32 {
            return Err(allowed());
        }
        out.push((host.to_string(), count));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn overrides_parse_as_kafka_writes_them() {
        assert_eq!(parse_ip_overrides(""), Ok(vec![]));
        assert_eq!(
            parse_ip_overrides("hostName:100, 127.0.0.1:200,[::1]:3,fe80::1:0"),
            Ok(vec![
                ("hostName".to_string(), 100),
                ("127.0.0.1".to_string(), 200),
                ("::1".to_string(), 3),
                ("fe80::1".to_string(), 0),
            ])
        );
        for bad in ["host", "host:", ":5", "host:-1", "host:x", "h:3000000000"] {
            assert!(parse_ip_overrides(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = BrokerConfig::from_pairs(BTreeMap::new()).unwrap();
        let n = NetworkConfig::from_config(&c).unwrap();
        assert_eq!(n.idle_timeout, Some(Duration::from_millis(600_000)));
        assert_eq!(n.request_timeout, Some(Duration::from_millis(30_000)));
        assert_eq!(n.max_connections_per_ip, i32::MAX as u32);
        assert_eq!(n.max_connection_creation_rate, i32::MAX as u32);
        assert!(n.per_ip_overrides.is_empty());
        assert_eq!(c.int("fetch.max.bytes"), 57_671_680);
    }

    #[test]
    fn a_bad_override_list_fails_the_load() {
        let pairs = BTreeMap::from([(
            "max.connections.per.ip.overrides".to_string(),
            "127.0.0.1=4".to_string(),
        )]);
        let err = BrokerConfig::from_pairs(pairs).unwrap_err().to_string();
        assert!(err.contains("max.connections.per.ip.overrides"), "{err}");
        let pairs = BTreeMap::from([("connections.max.idle.ms".to_string(), "-1".to_string())]);
        let c = BrokerConfig::from_pairs(pairs).unwrap();
        assert_eq!(NetworkConfig::from_config(&c).unwrap().idle_timeout, None);
    }
}
