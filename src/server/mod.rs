//! The network edge: accepting connections within `max.connections`,
//! `max.connections.per.ip` (and its overrides) and `max.connection.creation.rate`, then serving
//! each one within its limits (see [`connection`]).

mod connection;
mod frame;
mod limits;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::broker::Shared;
use crate::config::network::NetworkConfig;
use crate::config::{BrokerConfig, Listener};
pub use connection::{decode_request, ConnError, Decoded, WRITE_BACKLOG};
use limits::{ConnectionQuotas, CreationRate};

/// What every listener of a broker shares: the limits, and the connections counted per client
/// address across listeners (as Kafka counts them).
pub struct Edge {
    config: Arc<NetworkConfig>,
    quotas: Arc<ConnectionQuotas>,
    rate: Option<CreationRate>,
}

impl Edge {
    /// Reads the network settings and resolves the hosts named in
    /// `max.connections.per.ip.overrides`.
    pub fn new(config: &BrokerConfig) -> Result<Edge, String> {
        let network = NetworkConfig::from_config(config).map_err(|e| e.to_string())?;
        let quotas = ConnectionQuotas::new(&network)?;
        Ok(Edge {
            rate: CreationRate::new(network.max_connection_creation_rate),
            quotas: Arc::new(quotas),
            config: Arc::new(network),
        })
    }
}

/// Accepts connections until shutdown. Each connection holds a permit of `connections` for
/// its lifetime, so at most `max.connections` are served at once and shutdown can wait for
/// all of them.
pub async fn accept_loop(
    socket: TcpListener,
    shared: Arc<Shared>,
    advertised: Arc<Listener>,
    connections: Arc<Semaphore>,
    edge: Arc<Edge>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        if let Some(rate) = &edge.rate {
            let wait = rate.take(std::time::Instant::now());
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let slot = match edge.quotas.open(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        // As Kafka does: accept, say why, close.
                        info!(
                            %peer,
                            limit = refused.max,
                            "refusing connection: {} already holds max.connections.per.ip connections",
                            refused.ip
                        );
                        drop(stream);
                        continue;
                    }
                };
                debug!(%peer, "connection accepted");
                let shared = shared.clone();
                let advertised = advertised.clone();
                let limits = edge.config.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    connection::serve(stream, peer, shared, advertised, limits, stop).await;
                    drop(slot);
                    drop(permit);
                });
            }
            Err(e) => {
                // Usually out of file descriptors: back off briefly rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
