//! Limits on accepting connections: how many one client address may hold
//! (`max.connections.per.ip` and its overrides) and how fast new ones are accepted
//! (`max.connection.creation.rate`).
//!
//! As in Kafka, a connection over its address's limit is accepted and closed at once with the
//! reason logged, while the creation rate only delays accepting (clients wait in the listen
//! backlog, as they do when `max.connections` is reached).

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::network::NetworkConfig;

/// Open connections per client address.
pub struct ConnectionQuotas {
    default_max: u32,
    overrides: HashMap<IpAddr, u32>,
    /// Only addresses with at least one open connection have an entry.
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// An address refused for holding its limit already.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub max: u32,
}

/// One counted connection; dropping it gives the slot back.
pub struct IpSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    /// Resolves the override hosts (every address a name resolves to gets its limit).
    pub fn new(config: &NetworkConfig) -> Result<ConnectionQuotas, String> {
        let mut overrides = HashMap::new();
        for (host, max) in &config.per_ip_overrides {
            let addrs = (host.as_str(), 0).to_socket_addrs().map_err(|e| {
                format!("max.connections.per.ip.overrides: cannot resolve {host}: {e}")
            })?;
            for a in addrs {
                overrides.insert(a.ip().to_canonical(), *max);
            }
        }
        Ok(ConnectionQuotas {
            default_max: config.max_connections_per_ip,
            overrides,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn max_for(&self, ip: IpAddr) -> u32 {
        self.overrides
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(self.default_max)
    }

    /// Counts a new connection from `ip`, or refuses it when the address is at its limit.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, TooManyConnections> {
        let ip = ip.to_canonical();
        let max = self.max_for(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(TooManyConnections { ip, max });
        }
        *count += 1;
        Ok(IpSlot {
            quotas: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip` now.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self
            .quotas
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A token bucket holding up to one second of `max.connection.creation.rate`.
pub struct CreationRate {
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl CreationRate {
    /// `None` when the rate is Kafka's default (no limit in practice).
    pub fn new(per_second: u32) -> Option<CreationRate> {
        (per_second < i32::MAX as u32).then(|| CreationRate {
            per_second: per_second as f64,
            state: Mutex::new((per_second as f64, Instant::now())),
        })
    }

    /// Takes a token for one new connection and says how long to wait before accepting it
    /// (zero when within the rate). Waiters queue: each takes its token in advance.
    pub fn take(&self, now: Instant) -> Duration {
        if self.per_second <= 0.0 {
            // A rate of 0 accepts nothing; wait a long while, then look again.
            return Duration::from_secs(3600);
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.per_second);
        *last = now.max(*last);
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*tokens / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(default_max: u32, overrides: &[(&str, u32)]) -> NetworkConfig {
        NetworkConfig {
            max_request_bytes: 1 << 20,
            idle_timeout: None,
            request_timeout: None,
            max_connections_per_ip: default_max,
            per_ip_overrides: overrides.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            max_connection_creation_rate: u32::MAX,
        }
    }

    #[test]
    fn per_ip_limit_counts_and_gives_back() {
        let q = Arc::new(ConnectionQuotas::new(&config(2, &[("10.0.0.9", 0)])).unwrap());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let s1 = q.open(a).unwrap();
        let _s2 = q.open(a).unwrap();
        assert_eq!(q.open(a).err(), Some(TooManyConnections { ip: a, max: 2 }));
        drop(s1);
        let _s3 = q.open(a).unwrap();
        // An override of 0 refuses the address outright, and leaves no entry behind.
        let b: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(q.open(b).is_err());
        assert_eq!(q.count(b), 0);
        // IPv4-mapped IPv6 is the same client.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(q.open(mapped).is_err());
        assert_eq!(q.count(a), 2);
    }

    #[test]
    fn override_names_are_resolved() {
        let q = ConnectionQuotas::new(&config(1, &[("localhost", 7)])).unwrap();
        assert_eq!(q.max_for("127.0.0.1".parse().unwrap()), 7);
        assert_eq!(q.max_for("10.1.1.1".parse().unwrap()), 1);
    }

    #[test]
    fn creation_rate_spaces_out_a_burst() {
        let r = CreationRate::new(10).unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(r.take(t0), Duration::ZERO);
        }
        let wait = r.take(t0);
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        let wait = r.take(t0);
        assert!(wait > Duration::from_millis(190) && wait <= Duration::from_millis(200));
        // A second later the bucket has refilled what the waiters took in advance.
        assert_eq!(r.take(t0 + Duration::from_millis(1300)), Duration::ZERO);
        assert!(CreationRate::new(i32::MAX as u32).is_none());
    }
}
