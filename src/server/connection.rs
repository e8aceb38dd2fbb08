//! One client connection: Kafka framing (4-byte big-endian size), header decoding, and
//! answering requests strictly in the order they arrived.
//!
//! Requests of one connection are handled one after another, as Kafka does: that keeps
//! responses in order (acks=0 requests simply have none) and keeps a producer's pipelined
//! batches in order on each partition. Responses are written by a separate task, so reading
//! and handling the next request overlaps with sending the last response. Different
//! connections run in parallel.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::api::{self, RequestContext};
use crate::broker::Shared;
use crate::config::Listener;

/// Responses queued for writing per connection; a slow reader applies back-pressure here.
const WRITE_QUEUE: usize = 8;

#[derive(Debug, Error)]
enum ConnError {
    #[error("request size {0} is negative")]
    NegativeSize(i32),
    #[error("request size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: i64 },
    #[error("request of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?} (served: {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("invalid request header: {0}")]
    Header(String),
    #[error("{0}")]
    Dispatch(#[from] api::DispatchError),
    #[error("{0}")]
    Encode(String),
    #[error("broker is shutting down")]
    Closing,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    advertised: Arc<Listener>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let (tx, rx) = mpsc::channel::<BytesMut>(WRITE_QUEUE);
    let writer = tokio::spawn(write_loop(write, rx));
    let max = shared.config().int("socket.request.max.bytes");
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, max, shared.request_memory()) => f,
            _ = stop.changed() => break,
        };
        // The permit is held until the request has been handled.
        let (frame, _permit) = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                log_close(peer, &e);
                break;
            }
        };
        match handle(&shared, &advertised, peer, frame).await {
            Ok(Some(response)) => {
                if tx.send(response).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                log_close(peer, &e);
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    debug!(%peer, "connection closed");
}

fn log_close(peer: SocketAddr, e: &ConnError) {
    match e {
        ConnError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            debug!(%peer, "client closed the connection mid-request")
        }
        ConnError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
            debug!(%peer, "connection reset by client")
        }
        _ => warn!(%peer, reason = %e, "closing connection"),
    }
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<BytesMut>) {
    while let Some(buf) = rx.recv().await {
        if write.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Reads one size-prefixed frame; `None` on a clean end of stream between frames.
async fn read_frame(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    max: i64,
    memory: Option<&Arc<Semaphore>>,
) -> Result<Option<(Bytes, Option<OwnedSemaphorePermit>)>, ConnError> {
    let size = match reader.read_i32().await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if size < 0 {
        return Err(ConnError::NegativeSize(size));
    }
    if size as i64 > max {
        return Err(ConnError::TooLarge { size, max });
    }
    // Wait for room under queued.max.request.bytes before buffering the body.
    let permit = match memory {
        Some(m) => Some(
            m.clone()
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| ConnError::Closing)?,
        ),
        None => None,
    };
    let mut buf = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut buf).await?;
    Ok(Some((buf.freeze(), permit)))
}

/// Decodes the header, checks the API and version, and dispatches.
async fn handle(
    shared: &Shared,
    advertised: &Listener,
    peer: SocketAddr,
    mut frame: Bytes,
) -> Result<Option<BytesMut>, ConnError> {
    if frame.len() < 8 {
        return Err(ConnError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(key).map_err(|_| ConnError::UnknownApiKey(key))?;
    let spec = api::spec(api_key).ok_or(ConnError::UnknownApiKey(key))?;
    if !spec.serves(version) {
        if api_key == ApiKey::ApiVersions && version > spec.max {
            // KIP-511: tell the client our versions instead of closing.
            return api::unsupported_version_response(correlation_id)
                .map(Some)
                .map_err(ConnError::Encode);
        }
        return Err(ConnError::UnsupportedVersion {
            api: api_key,
            version,
            min: spec.served_min,
            max: spec.max,
        });
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| ConnError::Header(e.to_string()))?;
    let ctx = RequestContext::new(shared, &header, advertised, peer);
    let body = frame.slice(..);
    frame.advance(frame.len());
    Ok(api::dispatch(&ctx, api_key, body).await?)
}
