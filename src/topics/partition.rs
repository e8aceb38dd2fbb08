//! One partition: its log behind its own lock, a notification for waiting fetches, and group
//! commit for `acks=all`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};
use tracing::error;

use super::config::TopicSettings;
use crate::log::batch::{self, BatchError, BatchHeader};
use crate::log::producers::SequenceError;
use crate::log::segment::SegmentSlice;
use crate::log::{Log, LogError};

/// The leader epoch of every partition: a single broker is always the leader.
pub const LEADER_EPOCH: i32 = 0;

/// Checks the leader epoch a client believes in (-1: it does not say) against ours.
pub fn check_leader_epoch(requested: i32) -> Option<ResponseError> {
    if requested < 0 {
        return None;
    }
    match requested.cmp(&LEADER_EPOCH) {
        std::cmp::Ordering::Greater => Some(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Some(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => None,
    }
}

/// Why a produce to this partition failed, with Kafka's error code.
#[derive(Debug)]
pub struct ProduceError {
    pub error: ResponseError,
    pub message: String,
    /// Records of the batch that caused the error, by index, with why (Produce v8+).
    pub record_errors: Vec<(i32, String)>,
}

impl ProduceError {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ProduceError {
            error,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }
}

/// Where a produced batch went.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// The state of a partition needed to answer Fetch and ListOffsets.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    log: Mutex<Log>,
    /// When the oldest data not yet synced was appended, for `flush.ms`.
    unflushed_since: Mutex<Option<std::time::Instant>>,
    /// Woken on every append, for long-polling fetches.
    pub new_data: Notify,
    flushing: AtomicBool,
    flushed: watch::Sender<i64>,
}

impl Partition {
    pub fn new(topic: Arc<str>, index: i32, log: Log) -> Partition {
        let flushed = watch::Sender::new(log.flushed_offset());
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            unflushed_since: Mutex::new(None),
            new_data: Notify::new(),
            flushing: AtomicBool::new(false),
            flushed,
        }
    }

    /// The log, for the short, non-blocking critical sections around it.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock is a bug; the log itself stays consistent because
        // every mutation completes or is rolled back before returning, so keep serving.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn offsets(&self) -> Offsets {
        let log = self.log();
        Offsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.next_offset(),
        }
    }

    /// Validates and appends the records of one produce request to this partition.
    pub fn append(
        self: &Arc<Self>,
        records: &Bytes,
        settings: &TopicSettings,
        now_ms: i64,
    ) -> Result<Produced, ProduceError> {
        let header = validate_records(records, settings)?;
        let log_append_time = settings.log_append_time.then_some(now_ms);
        let mut log = self.log();
        let appended = log
            .append(records, &header, log_append_time, LEADER_EPOCH, now_ms)
            .map_err(|e| match e {
                LogError::Sequence(s) => sequence_error(s, &header),
                e => {
                    error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
                    ProduceError::new(ResponseError::KafkaStorageError, e.to_string())
                }
            })?;
        let produced = Produced {
            base_offset: appended.base_offset,
            last_offset: appended.last_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: log.log_start_offset(),
        };
        let unflushed = log.next_offset() - log.flushed_offset();
        drop(log);
        if unflushed > 0 {
            let mut since = self
                .unflushed_since
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            since.get_or_insert_with(std::time::Instant::now);
        }
        if !appended.duplicate {
            self.new_data.notify_waiters();
        }
        if unflushed >= settings.flush_messages {
            // flush.messages reached: sync in the background; acks=all callers wait themselves.
            let this = self.clone();
            tokio::spawn(async move {
                let _ = this.wait_durable(produced.last_offset).await;
            });
        }
        Ok(produced)
    }

    /// Returns once every offset ≤ `offset` is on stable storage. Concurrent callers share one
    /// fsync (group commit): whoever finds no sync in flight starts one covering everything
    /// appended so far; the others wait for its result.
    pub async fn wait_durable(self: &Arc<Self>, offset: i64) -> Result<(), ResponseError> {
        let mut rx = self.flushed.subscribe();
        loop {
            if *rx.borrow_and_update() > offset {
                return Ok(());
            }
            let job = {
                let log = self.log();
                if log.flushed_offset() > offset {
                    return Ok(());
                }
                if self.flushing.swap(true, Ordering::AcqRel) {
                    None
                } else {
                    Some(log.unflushed())
                }
            };
            match job {
                None => {
                    if rx.changed().await.is_err() {
                        return Err(ResponseError::KafkaStorageError);
                    }
                }
                Some((files, upto)) => {
                    let synced = tokio::task::spawn_blocking(move || {
                        files.iter().try_for_each(|f| f.sync_data())
                    })
                    .await;
                    let ok = matches!(synced, Ok(Ok(())));
                    if ok {
                        let mut log = self.log();
                        log.mark_flushed(upto);
                        if log.flushed_offset() >= log.next_offset() {
                            *self
                                .unflushed_since
                                .lock()
                                .unwrap_or_else(|p| p.into_inner()) = None;
                        }
                    } else {
                        error!(topic = %self.topic, partition = self.index, "fsync failed: {synced:?}");
                    }
                    self.flushing.store(false, Ordering::Release);
                    self.flushed.send_modify(|v| {
                        if ok {
                            *v = (*v).max(upto)
                        }
                    });
                    if !ok {
                        return Err(ResponseError::KafkaStorageError);
                    }
                }
            }
        }
    }

    /// A slice of the log to read from `offset`, or the out-of-range error.
    pub fn slice_from(&self, offset: i64) -> Result<(Option<SegmentSlice>, Offsets), LogError> {
        let log = self.log();
        let offsets = Offsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.next_offset(),
        };
        Ok((log.slice_from(offset)?, offsets))
    }

    /// The offset to sync up to when the oldest unsynced data is older than `flush_ms`.
    pub fn flush_due(&self, flush_ms: i64) -> Option<i64> {
        let since = *self
            .unflushed_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let age = since?.elapsed().as_millis() as i64;
        if age < flush_ms {
            return None;
        }
        let log = self.log();
        (log.next_offset() > log.flushed_offset()).then(|| log.next_offset() - 1)
    }

    /// Syncs everything; used on shutdown.
    pub fn sync_all(&self) -> Result<(), LogError> {
        self.log().sync_all()
    }
}

fn sequence_error(e: SequenceError, h: &BatchHeader) -> ProduceError {
    let (code, what) = match e {
        SequenceError::StaleEpoch => (
            ResponseError::InvalidProducerEpoch,
            "epoch is older than the producer's current epoch",
        ),
        SequenceError::OutOfOrder => (
            ResponseError::OutOfOrderSequenceNumber,
            "sequence number is out of order",
        ),
        SequenceError::UnknownProducer => (
            ResponseError::UnknownProducerId,
            "no state for this producer id",
        ),
    };
    ProduceError::new(
        code,
        format!(
            "producer {} epoch {} sequence {}: {what}",
            h.producer_id, h.producer_epoch, h.base_sequence
        ),
    )
}

/// Checks a produce request's records for one partition: exactly one RecordBatch v2, a valid
/// CRC, within `max.message.bytes`. Records are not decoded.
pub fn validate_records(
    records: &[u8],
    settings: &TopicSettings,
) -> Result<BatchHeader, ProduceError> {
    if records.is_empty() {
        return Err(ProduceError::new(
            ResponseError::InvalidRecord,
            "empty record set",
        ));
    }
    let header = match BatchHeader::parse(records) {
        Ok(h) => h,
        Err(BatchError::UnsupportedMagic(m)) => {
            return Err(ProduceError::new(
                ResponseError::UnsupportedForMessageFormat,
                format!("message format v{m} is not supported; use RecordBatch v2"),
            ))
        }
        Err(e) => {
            return Err(ProduceError::new(
                ResponseError::CorruptMessage,
                e.to_string(),
            ))
        }
    };
    if header.total_size() > settings.max_message_bytes {
        return Err(ProduceError::new(
            ResponseError::MessageTooLarge,
            format!(
                "batch of {} bytes exceeds max.message.bytes {}",
                header.total_size(),
                settings.max_message_bytes
            ),
        ));
    }
    if header.total_size() != records.len() {
        let msg = if header.total_size() < records.len() {
            "produce requests must contain exactly one record batch"
        } else {
            "record batch is truncated"
        };
        let code = if header.total_size() < records.len() {
            ResponseError::InvalidRecord
        } else {
            ResponseError::CorruptMessage
        };
        return Err(ProduceError::new(code, msg));
    }
    batch::validate(records)
        .map_err(|e| ProduceError::new(ResponseError::CorruptMessage, e.to_string()))?;
    if header.record_count == 0 || header.record_count != header.last_offset_delta + 1 {
        return Err(ProduceError::new(
            ResponseError::InvalidRecord,
            format!(
                "record count {} does not match lastOffsetDelta {}",
                header.record_count, header.last_offset_delta
            ),
        ));
    }
    if header.is_transactional() {
        return Err(ProduceError::new(
            ResponseError::InvalidTxnState,
            "transactions are not supported by this broker",
        ));
    }
    if header.is_control() {
        return Err(ProduceError::new(
            ResponseError::InvalidRecord,
            "clients may not produce control batches",
        ));
    }
    if settings.compact {
        // Compaction keeps the latest record per key: a record without one has no place.
        let keyless = keyless_records(records);
        if !keyless.is_empty() {
            let mut e = ProduceError::new(
                ResponseError::InvalidRecord,
                "One or more records have been rejected",
            );
            e.record_errors = keyless
                .into_iter()
                .map(|i| {
                    (
                        i,
                        "Compacted topic cannot accept message without key.".to_string(),
                    )
                })
                .collect();
            return Err(e);
        }
    }
    Ok(header)
}

/// The indexes of a batch's records that have no key (all of them if the batch cannot be
/// decoded). The only record-level check on the produce path, made for compacted topics as
/// Kafka does.
fn keyless_records(batch: &[u8]) -> Vec<i32> {
    let mut buf = Bytes::copy_from_slice(batch);
    match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| i as i32)
            .collect(),
        Err(_) => vec![0],
    }
}

impl Partition {
    /// The first offset whose record timestamp is ≥ `timestamp`, with that timestamp
    /// (ListOffsets by time). Blocking: reads segment files.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> std::io::Result<Option<(i64, i64)>> {
        let slices = self.log().slices_for_time(timestamp);
        for slice in slices {
            if let Some((pos, header)) = slice.find_timestamp(timestamp)? {
                let bytes = slice.read(pos, header.total_size() as u64)?;
                let found = records_of(&bytes, &header)
                    .into_iter()
                    .find(|(_, ts)| *ts >= timestamp)
                    .unwrap_or((header.base_offset, header.max_timestamp));
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> std::io::Result<Option<(i64, i64)>> {
        let (found, slice) = {
            let log = self.log();
            match log.max_timestamp() {
                None => return Ok(None),
                Some((ts, base)) => (ts, log.slice_from(base).ok().flatten()),
            }
        };
        let Some(slice) = slice else { return Ok(None) };
        let Some((pos, header)) = slice.find_timestamp(found)? else {
            return Ok(None);
        };
        let bytes = slice.read(pos, header.total_size() as u64)?;
        let record = records_of(&bytes, &header)
            .into_iter()
            .find(|(_, ts)| *ts == header.max_timestamp)
            .unwrap_or((header.last_offset(), header.max_timestamp));
        Ok(Some(record))
    }
}

/// Offsets and timestamps of the records of one stored batch. Only ListOffsets decodes records;
/// a batch that cannot be decoded yields nothing and callers fall back to its header.
fn records_of(batch: &[u8], header: &BatchHeader) -> Vec<(i64, i64)> {
    let mut buf = Bytes::copy_from_slice(batch);
    let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) else {
        return Vec::new();
    };
    let log_append = header.attributes & batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    set.records
        .iter()
        .map(|r| {
            (
                r.offset,
                if log_append {
                    header.max_timestamp
                } else {
                    r.timestamp
                },
            )
        })
        .collect()
}

impl Partition {
    /// Every stored batch from `offset` to the end, as raw bytes (used to load internal
    /// topics at start-up). Blocking: reads segment files.
    pub fn read_all_from(&self, mut offset: i64) -> std::io::Result<Vec<Bytes>> {
        let mut out = Vec::new();
        loop {
            let slice = match self.slice_from(offset) {
                Ok((Some(s), _)) => s,
                Ok((None, _)) => return Ok(out),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let Some((pos, _)) = slice.find_offset(offset)? else {
                return Ok(out);
            };
            let bytes = Bytes::from(slice.read(pos, slice.end - pos)?);
            let mut at = 0;
            let before = offset;
            while at + batch::HEADER_LEN <= bytes.len() {
                let Ok(h) = BatchHeader::parse(&bytes[at..]) else {
                    break;
                };
                if at + h.total_size() > bytes.len() {
                    break;
                }
                out.push(bytes.slice(at..at + h.total_size()));
                offset = h.last_offset() + 1;
                at += h.total_size();
            }
            if offset == before {
                return Ok(out);
            }
        }
    }
}

/// Limits of one cleaner pass.
#[derive(Debug, Clone, Copy)]
pub struct CleanerLimits {
    /// Keys the dedupe map may hold (from `log.cleaner.dedupe.buffer.size`).
    pub max_keys: usize,
    /// Bytes per second the cleaner may read and write (`log.cleaner.io.max.bytes.per.second`).
    pub io_bytes_per_sec: f64,
}

impl Partition {
    /// One compaction pass over the sealed segments, if enough of them is dirty. Blocking:
    /// reads and writes segment files; the partition's lock is only taken to list segments
    /// and to swap each compacted one in.
    pub fn compact(
        &self,
        settings: &TopicSettings,
        limits: CleanerLimits,
        now_ms: i64,
    ) -> std::io::Result<crate::log::cleaner::Compacted> {
        use crate::log::cleaner;
        let (sealed, cleaned_upto, dir, active_base) = {
            let log = self.log();
            (
                log.sealed_segments(),
                log.cleaned_upto(),
                log.dir().to_path_buf(),
                log.active_base(),
            )
        };
        let mut total = crate::log::cleaner::Compacted::default();
        // Only segments older than min.compaction.lag.ms may be compacted.
        let lag_cutoff = now_ms.saturating_sub(settings.min_compaction_lag_ms);
        let n = sealed
            .iter()
            .take_while(|(_, _, newest)| *newest <= lag_cutoff)
            .count();
        // Where the compactable range ends: the first segment not in it.
        let range_end = |i: usize| sealed.get(i).map(|(b, _, _)| *b).unwrap_or(active_base);
        let cleanable = &sealed[..n];
        let bytes: u64 = cleanable.iter().map(|(_, s, _)| s.end).sum();
        // Segments ending after the last pass's end are dirty.
        let dirty: u64 = cleanable
            .iter()
            .enumerate()
            .filter(|(i, (b, _, _))| {
                let end = cleanable
                    .get(i + 1)
                    .map(|(nb, _, _)| *nb)
                    .unwrap_or(i64::MAX);
                *b >= cleaned_upto || end > cleaned_upto
            })
            .map(|(_, (_, s, _))| s.end)
            .sum();
        if bytes == 0
            || (dirty as f64) / (bytes as f64) < settings.min_cleanable_dirty_ratio
            || dirty == 0
        {
            return Ok(total);
        }
        let mut map = std::collections::HashMap::new();
        let mut covered = 0;
        for (_, slice, _) in cleanable {
            if !cleaner::add_to_map(&mut map, slice, limits.max_keys)? {
                break;
            }
            covered += 1;
        }
        let tombstone_cutoff = now_ms.saturating_sub(settings.delete_retention_ms);
        for (base, slice, _) in cleanable.iter().take(covered) {
            let started = std::time::Instant::now();
            let dest = cleaner::cleaned_path(&dir, *base);
            let done = cleaner::compact_segment(slice, &map, tombstone_cutoff, &dest)?;
            let swapped = self
                .log()
                .replace_segment(*base, slice.end, &dest, now_ms)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if swapped {
                total.records_kept += done.records_kept;
                total.records_removed += done.records_removed;
                total.bytes_before += done.bytes_before;
                total.bytes_after += done.bytes_after;
            }
            // Stay under the I/O budget: each segment is read twice and written once.
            let io = (done.bytes_before * 2 + done.bytes_after) as f64;
            let budget =
                std::time::Duration::from_secs_f64((io / limits.io_bytes_per_sec).min(60.0));
            if let Some(rest) = budget.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        if covered > 0 {
            self.log().set_cleaned_upto(range_end(covered))?;
        }
        Ok(total)
    }
}
