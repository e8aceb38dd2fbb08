//! One client connection: Kafka framing (4-byte big-endian size), header decoding, and
//! answering requests strictly in the order they arrived.
//!
//! Requests of one connection are handled one after another, as Kafka does: that keeps
//! responses in order (acks=0 requests simply have none) and keeps a producer's pipelined
//! batches in order on each partition. Different connections run in parallel.
//!
//! One exception makes acks=all fast: a Produce request appends its batches when it is first
//! polled, before it waits for anything, and then only waits for them to be durable. Once it
//! waits, the next request is read and started, so a producer's pipelined acks=all requests
//! (librdkafka and the Java client send up to five) share one fsync instead of waiting for one
//! each. Their responses still go out in the order the requests came.
//!
//! One task serves a connection, and it waits on whichever comes first: the request being
//! handled finishing, the socket taking more of the queued responses, the next request's
//! bytes arriving, or a deadline. So reading and handling the next request overlap with
//! sending the last response, and nothing is allocated for a connection between requests:
//! an idle connection is a socket, this task's state and a timer entry.
//!
//! What a connection may cost is bounded:
//! - request bytes: charged to `queued.max.request.bytes` as they arrive (see [`frame`]);
//! - responses: the next request is not read while more than [`WRITE_BACKLOG`] bytes wait to
//!   be sent, so a client that never reads holds at most that plus one response;
//! - time: a request must arrive within `request.timeout.ms` of its first byte, and a
//!   connection with no bytes in either direction for `connections.max.idle.ms` is closed
//!   (a client that stops reading its responses stops making progress, and is closed too).
//!
//! [`frame`]: super::frame

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::frame::{FrameReader, Progress};
use crate::api::{self, RequestContext};
use crate::broker::Shared;
use crate::config::network::NetworkConfig;
use crate::config::Listener;

/// Response bytes a connection may have waiting to be sent before it stops reading requests.
/// A response is queued whole, so the backlog is at most this plus one response.
pub const WRITE_BACKLOG: usize = 1024 * 1024;

/// Buffers handed to one vectored write.
const WRITE_SLICES: usize = 16;

/// Requests of one connection handled at once (Produce requests waiting for durability, and
/// the one after them).
const MAX_IN_FLIGHT: usize = 16;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("request size {0} is negative")]
    NegativeSize(i32),
    #[error("request size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
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
    #[error("request not received within request.timeout.ms ({timeout_ms} ms): {received} of {} bytes arrived", .size.map_or("?".to_string(), |s| (s + 4).to_string()))]
    RequestTimeout {
        timeout_ms: u128,
        received: usize,
        size: Option<usize>,
    },
    #[error("idle for connections.max.idle.ms ({0} ms)")]
    Idle(u128),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

type Handled = Result<Option<BytesMut>, ConnError>;

/// A request being handled, with its frame's share of the memory budget.
struct InFlight<'a> {
    response: Pin<Box<dyn Future<Output = Handled> + Send + 'a>>,
    /// Its result, once it has one and requests before it are still being handled.
    done: Option<Handled>,
    /// A Produce request: the next request may start once it has been polled (its appends are
    /// done, it only waits for durability).
    appends_first: bool,
    polled: bool,
    _memory: Option<OwnedSemaphorePermit>,
}

impl InFlight<'_> {
    /// Whether the next request may start while this one is still being handled (or is
    /// done, waiting for those before it).
    fn lets_next_start(&self) -> bool {
        self.done.is_some() || self.appends_first && self.polled
    }
}

/// Which deadline a connection is waiting under.
#[derive(Clone, Copy)]
enum Expiry {
    Request,
    Idle,
}

pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    advertised: Arc<Listener>,
    limits: Arc<NetworkConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let memory = shared.request_memory().cloned();
    let mut frames = FrameReader::default();
    let mut out = Outbox::default();
    let mut in_flight: VecDeque<InFlight<'_>> = VecDeque::new();
    let mut last_activity = Instant::now();
    let mut stopping = *stop.borrow();
    let mut client_done = false;
    // A request the connection cannot serve ends it, after the responses before it are sent.
    let mut failed: Option<ConnError> = None;
    let timer = tokio::time::sleep_until(last_activity);
    tokio::pin!(timer);
    let cut_off: Option<ConnError> = loop {
        let ending = stopping || client_done || failed.is_some();
        if ending && in_flight.is_empty() && out.is_empty() {
            break None;
        }
        let reading = !ending
            && out.bytes <= WRITE_BACKLOG
            && in_flight.len() < MAX_IN_FLIGHT
            && in_flight.back().is_none_or(InFlight::lets_next_start);
        let deadline = if !in_flight.is_empty() {
            None
        } else {
            deadline(&limits, &frames, last_activity)
        };
        if let Some((at, _)) = deadline {
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            biased;
            _ = stop.changed(), if !stopping => stopping = true,
            finished = progress(&mut in_flight), if !in_flight.is_empty() => {
                if !finished.is_empty() {
                    last_activity = Instant::now();
                }
                for done in finished {
                    match done {
                        Ok(Some(response)) => out.push(response.freeze()),
                        Ok(None) => {}
                        Err(e) => {
                            log_close(peer, &e);
                            failed = Some(e);
                        }
                    }
                }
                if failed.is_some() {
                    // Requests after the one that failed get no answer: the connection ends.
                    in_flight.clear();
                }
            }
            ready = stream.writable(), if !out.is_empty() => {
                match ready.and_then(|()| out.write_to(&stream)) {
                    Ok(0) => {}
                    Ok(_) => last_activity = Instant::now(),
                    Err(e) => break Some(e.into()),
                }
            }
            read = frames.read(&stream, limits.max_request_bytes, memory.as_ref()), if reading => {
                last_activity = Instant::now();
                match read {
                    Ok(Progress::Partial) => {}
                    Ok(Progress::Frame(frame)) => {
                        let appends_first = frame.bytes.get(..2) == Some(&[0, 0][..]);
                        in_flight.push_back(InFlight {
                            response: Box::pin(handle(&shared, &advertised, peer, frame.bytes)),
                            done: None,
                            appends_first,
                            polled: false,
                            _memory: frame.permit,
                        });
                    }
                    Ok(Progress::Closed) => client_done = true,
                    Err(e @ ConnError::Io(_)) => break Some(e),
                    Err(e) => {
                        log_close(peer, &e);
                        failed = Some(e);
                    }
                }
            }
            () = &mut timer, if deadline.is_some() => {
                let (received, size) = frames.progress();
                break Some(match deadline.map(|(_, why)| why) {
                    Some(Expiry::Request) => ConnError::RequestTimeout {
                        timeout_ms: limits.request_timeout.unwrap_or_default().as_millis(),
                        received,
                        size,
                    },
                    _ => ConnError::Idle(limits.idle_timeout.unwrap_or_default().as_millis()),
                });
            }
        }
    };
    drop(in_flight);
    match &cut_off {
        Some(e) => log_close(peer, e),
        // Everything owed was sent: end with a FIN rather than a reset.
        None => {
            let _ = stream.shutdown().await;
        }
    }
    debug!(%peer, "connection closed");
}

/// The earliest deadline of a connection waiting for bytes: its request's, once one has
/// begun to arrive, and its idle one.
fn deadline(
    limits: &NetworkConfig,
    frames: &FrameReader,
    last_activity: Instant,
) -> Option<(Instant, Expiry)> {
    // A deadline too far to represent is no deadline.
    let idle = limits
        .idle_timeout
        .and_then(|t| last_activity.checked_add(t))
        .map(|at| (at, Expiry::Idle));
    let request = frames
        .started()
        .zip(limits.request_timeout)
        .and_then(|(started, t)| started.checked_add(t))
        .map(|at| (at, Expiry::Request));
    match (request, idle) {
        (Some(r), Some(i)) => Some(if r.0 <= i.0 { r } else { i }),
        (r, i) => r.or(i),
    }
}

/// Polls every request being handled, in the order they came. Ready with the results of
/// those finished at the front (in order), or with none when a Produce request was polled for
/// the first time, so that the next request may be read.
async fn progress(in_flight: &mut VecDeque<InFlight<'_>>) -> Vec<Handled> {
    std::future::poll_fn(|cx| {
        let mut may_read_next = false;
        for f in in_flight.iter_mut().filter(|f| f.done.is_none()) {
            let first = !f.polled;
            f.polled = true;
            match f.response.as_mut().poll(cx) {
                std::task::Poll::Ready(r) => {
                    f.done = Some(r);
                    may_read_next = true;
                }
                std::task::Poll::Pending => may_read_next |= first && f.appends_first,
            }
        }
        let mut finished = Vec::new();
        while in_flight.front().is_some_and(|f| f.done.is_some()) {
            if let Some(r) = in_flight.pop_front().and_then(|f| f.done) {
                finished.push(r);
            }
        }
        if finished.is_empty() && !may_read_next {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(finished)
        }
    })
    .await
}

fn log_close(peer: SocketAddr, e: &ConnError) {
    match e {
        ConnError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            debug!(%peer, "client closed the connection mid-request")
        }
        ConnError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            debug!(%peer, "connection reset by client")
        }
        // Kafka closes idle connections quietly too.
        ConnError::Idle(_) => debug!(%peer, reason = %e, "closing connection"),
        _ => warn!(%peer, reason = %e, "closing connection"),
    }
}

/// Responses waiting to be sent, in order.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    bytes: usize,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn push(&mut self, response: Bytes) {
        self.bytes += response.len();
        self.queue.push_back(response);
    }

    /// Writes as much as the socket takes now; returns how many bytes it took.
    fn write_to(&mut self, stream: &TcpStream) -> std::io::Result<usize> {
        let mut written = 0;
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let mut count = 0;
            for (slot, buf) in slices.iter_mut().zip(&self.queue) {
                *slot = IoSlice::new(buf);
                count += 1;
            }
            let n = match stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            written += n;
            self.consume(n);
        }
        Ok(written)
    }

    fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// A request frame as far as the broker decodes it before a handler runs.
#[derive(Debug)]
// Made once per request and consumed at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        body: api::RequestBody,
    },
    /// ApiVersions at a version newer than ours: answered with our ranges (KIP-511).
    NewerApiVersions { correlation_id: i32 },
}

/// Decodes one request frame (header and body, without the size prefix): checks the API and
/// version against the table, decodes the header, then pre-checks and decodes the body. Every
/// failure is an error value; nothing the client sends may panic here.
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, ConnError> {
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
            return Ok(Decoded::NewerApiVersions { correlation_id });
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
    let body = api::decode_body(api_key, version, frame)?;
    Ok(Decoded::Request { header, body })
}

/// Decodes the request and dispatches it.
async fn handle(
    shared: &Shared,
    advertised: &Listener,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<Option<BytesMut>, ConnError> {
    match decode_request(frame)? {
        Decoded::NewerApiVersions { correlation_id } => {
            api::unsupported_version_response(correlation_id)
                .map(Some)
                .map_err(ConnError::Encode)
        }
        Decoded::Request { header, body } => {
            let ctx = RequestContext::new(shared, &header, advertised, peer);
            Ok(api::dispatch(&ctx, body).await?)
        }
    }
}
