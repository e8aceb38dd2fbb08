//! The network edge: accepting connections within `max.connections`.

mod connection;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

use crate::broker::Shared;
use crate::config::Listener;

/// Accepts connections until shutdown. Each connection holds a permit of `connections` for
/// its lifetime, so at most `max.connections` are served at once and shutdown can wait for
/// all of them.
pub async fn accept_loop(
    socket: TcpListener,
    shared: Arc<Shared>,
    advertised: Arc<Listener>,
    connections: Arc<Semaphore>,
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
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                debug!(%peer, "connection accepted");
                let shared = shared.clone();
                let advertised = advertised.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    connection::serve(stream, peer, shared, advertised, stop).await;
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
