//! Fetch: stored batches as they are, from the batch holding the fetch offset, with long
//! polling that wakes as soon as any fetched partition receives data.
//!
//! Sessions (KIP-227) are not kept: every response carries session id 0, which tells clients
//! to send full requests, as Kafka does when its session cache is full.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::RequestContext;
use crate::log::LogError;
use crate::topics::partition::{check_leader_epoch, Partition};

/// One partition asked for, resolved against the topic table.
struct Wanted {
    topic: usize,
    index: i32,
    fetch_offset: i64,
    max_bytes: i32,
    target: Result<Arc<Partition>, ResponseError>,
}

/// What was read for one partition.
struct Read {
    error: Option<ResponseError>,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

pub async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> FetchResponse {
    let version = ctx.api_version;
    if req.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let topics = ctx.shared.topics();
    let by_id = version >= 13;
    let mut names: Vec<(TopicName, Uuid)> = Vec::new();
    let mut wanted = Vec::new();
    for ft in &req.topics {
        let topic = if by_id {
            topics.get_by_id(ft.topic_id)
        } else {
            topics.get(ft.topic.0.as_str())
        };
        names.push((ft.topic.clone(), ft.topic_id));
        for fp in &ft.partitions {
            let target = match &topic {
                None if by_id => Err(ResponseError::UnknownTopicId),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(t) => match t.partition(fp.partition) {
                    None => Err(ResponseError::UnknownTopicOrPartition),
                    Some(p) => match check_leader_epoch(fp.current_leader_epoch) {
                        Some(e) => Err(e),
                        None => Ok(p.clone()),
                    },
                },
            };
            wanted.push(Wanted {
                topic: names.len() - 1,
                index: fp.partition,
                fetch_offset: fp.fetch_offset,
                max_bytes: fp.partition_max_bytes,
                target,
            });
        }
    }
    let wanted = Arc::new(wanted);
    // The broker's fetch.max.bytes caps what the client asks for (KIP-74's first batch
    // still goes whole).
    let broker_max = ctx.shared.config().int("fetch.max.bytes").max(0) as usize;
    let max_bytes = if version >= 3 {
        (req.max_bytes.max(0) as usize).min(broker_max)
    } else {
        broker_max
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.shared.shutdown_signal();
    let reads = loop {
        let partitions: Vec<Arc<Partition>> = wanted
            .iter()
            .filter_map(|w| w.target.clone().ok())
            .collect();
        // Register for wake-ups before reading, so an append between the read and the wait
        // is not missed.
        let mut notified: Vec<_> = partitions
            .iter()
            .map(|p| Box::pin(p.new_data.notified()))
            .collect();
        for n in notified.iter_mut() {
            n.as_mut().enable();
        }
        let job = wanted.clone();
        let reads = match tokio::task::spawn_blocking(move || read_all(&job, max_bytes)).await {
            Ok(r) => r,
            Err(_) => wanted.iter().map(|_| storage_error()).collect(),
        };
        let bytes: usize = reads.iter().map(|r| r.records.len()).sum();
        let any_error = reads.iter().any(|r| r.error.is_some());
        if bytes >= min_bytes
            || any_error
            || Instant::now() >= deadline
            || *shutdown.borrow()
            || notified.is_empty()
        {
            break reads;
        }
        let any = std::future::poll_fn(|cx| {
            for n in notified.iter_mut() {
                if n.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        tokio::select! {
            _ = any => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };
    respond(&names, &wanted, reads, req.isolation_level)
}

fn storage_error() -> Read {
    Read {
        error: Some(ResponseError::KafkaStorageError),
        high_watermark: -1,
        log_start_offset: -1,
        records: Bytes::new(),
    }
}

/// Reads every wanted partition within the response's byte budget (blocking file I/O).
fn read_all(wanted: &[Wanted], max_bytes: usize) -> Vec<Read> {
    let mut remaining = max_bytes;
    let mut first = true;
    wanted
        .iter()
        .map(|w| {
            let p = match &w.target {
                Ok(p) => p,
                Err(e) => {
                    return Read {
                        error: Some(*e),
                        high_watermark: -1,
                        log_start_offset: -1,
                        records: Bytes::new(),
                    }
                }
            };
            let (slice, offsets) = match p.slice_from(w.fetch_offset) {
                Ok(s) => s,
                // Kafka reports no offsets with this error (-1 each); the client asks
                // ListOffsets where to resume.
                Err(LogError::OffsetOutOfRange { .. }) => {
                    return Read {
                        error: Some(ResponseError::OffsetOutOfRange),
                        high_watermark: -1,
                        log_start_offset: -1,
                        records: Bytes::new(),
                    }
                }
                Err(_) => return storage_error(),
            };
            let mut read = Read {
                error: None,
                high_watermark: offsets.high_watermark,
                log_start_offset: offsets.log_start_offset,
                records: Bytes::new(),
            };
            let Some(slice) = slice else { return read };
            let found = match slice.find_offset(w.fetch_offset) {
                Ok(Some(found)) => found,
                Ok(None) => return read,
                Err(_) => return storage_error(),
            };
            let (pos, header) = found;
            let mut limit = (w.max_bytes.max(0) as usize).min(remaining);
            // KIP-74: the first batch of the response is returned whole even when it exceeds
            // the limits, so a consumer can always make progress. Later partitions get what
            // fits, possibly ending in a partial batch that clients discard.
            if first {
                limit = limit.max(header.total_size());
            }
            match slice.read(pos, limit as u64) {
                Ok(bytes) => {
                    if !bytes.is_empty() {
                        first = false;
                    }
                    remaining = remaining.saturating_sub(bytes.len());
                    read.records = Bytes::from(bytes);
                    read
                }
                Err(_) => storage_error(),
            }
        })
        .collect()
}

fn respond(
    names: &[(TopicName, Uuid)],
    wanted: &[Wanted],
    reads: Vec<Read>,
    isolation_level: i8,
) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = names
        .iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
        })
        .collect();
    for (w, r) in wanted.iter().zip(reads) {
        let code = r.error.map_or(0, |e| e.code());
        // Kafka answers partitions it does not know with an empty (not null) list of aborted
        // transactions; partitions it reads, with a list only under read_committed.
        let unknown = matches!(
            r.error,
            Some(ResponseError::UnknownTopicOrPartition | ResponseError::UnknownTopicId)
        );
        let aborted = (unknown || isolation_level == 1).then(Vec::new);
        let data = PartitionData::default()
            .with_partition_index(w.index)
            .with_error_code(code)
            .with_high_watermark(r.high_watermark)
            .with_last_stable_offset(r.high_watermark)
            .with_log_start_offset(r.log_start_offset)
            .with_aborted_transactions(aborted)
            .with_preferred_read_replica((-1).into())
            .with_records(Some(r.records));
        topics[w.topic].partitions.push(data);
    }
    FetchResponse::default()
        .with_error_code(0)
        .with_session_id(0)
        .with_responses(topics)
}
