//! One partition: its log behind its own lock, a notification for waiting fetches, and group
//! commit for `acks=all`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};
use tracing::error;

use super::config::TopicSettings;
use super::health::DirHealth;
use super::validate::validate_records;
use crate::log::batch::{self, BatchHeader};
use crate::log::producers::SequenceError;
use crate::log::segment::SegmentSlice;
use crate::log::{recompress, records};
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
    pub(super) fn new(error: ResponseError, message: impl Into<String>) -> Self {
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
    health: Arc<DirHealth>,
}

impl Partition {
    pub fn new(topic: Arc<str>, index: i32, log: Log, health: Arc<DirHealth>) -> Partition {
        let flushed = watch::Sender::new(log.flushed_offset());
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            unflushed_since: Mutex::new(None),
            new_data: Notify::new(),
            flushing: AtomicBool::new(false),
            flushed,
            health,
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
        let header = validate_records(records, settings, now_ms)?;
        let recompressed = match settings.compression {
            Some(codec) => stored_as(records, &header, codec, settings)?,
            None => None,
        };
        let (records, header) = match &recompressed {
            Some((bytes, header)) => (bytes, *header),
            None => (records, header),
        };
        self.check_online()
            .map_err(|e| ProduceError::new(e, "The log directory is offline."))?;
        let log_append_time = settings.log_append_time.then_some(now_ms);
        let mut log = self.log();
        let appended = log
            .append(records, &header, log_append_time, LEADER_EPOCH, now_ms)
            .map_err(|e| match e {
                LogError::Sequence(s) => sequence_error(s, &header),
                LogError::Retired => ProduceError::new(
                    ResponseError::UnknownTopicOrPartition,
                    "The topic was deleted.",
                ),
                e => {
                    error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
                    if let LogError::Io { path, source } = &e {
                        if !DirHealth::transient(source) {
                            self.health.fail(path, "a write", source);
                        }
                    }
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
            self.check_online()?;
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
                Some(job) => {
                    let upto = job.upto;
                    let synced = tokio::task::spawn_blocking(move || job.run().map(|()| job)).await;
                    let ok = match &synced {
                        Ok(Ok(job)) => {
                            let mut log = self.log();
                            log.mark_flushed(job);
                            if log.flushed_offset() >= log.next_offset() {
                                *self
                                    .unflushed_since
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner()) = None;
                            }
                            true
                        }
                        Ok(Err(e)) => {
                            error!(topic = %self.topic, partition = self.index, error = %e, "fsync failed");
                            let dir = self.log().dir().to_path_buf();
                            self.health.fail(&dir, "fsync", e);
                            false
                        }
                        Err(e) => {
                            error!(topic = %self.topic, partition = self.index, error = %e, "fsync task failed");
                            false
                        }
                    };
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
        if self.health.is_offline() {
            return Err(LogError::Offline);
        }
        let log = self.log();
        let offsets = Offsets {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.next_offset(),
        };
        Ok((log.slice_from(offset)?, offsets))
    }

    /// KAFKA_STORAGE_ERROR once the log directory went offline.
    pub fn check_online(&self) -> Result<(), ResponseError> {
        if self.health.is_offline() {
            Err(ResponseError::KafkaStorageError)
        } else {
            Ok(())
        }
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

    /// Makes segments created, replaced or removed since the last sync durable by syncing the
    /// log's directory, outside the partition's lock. Blocking.
    pub fn sync_dir_changes(&self) -> std::io::Result<()> {
        if self.health.is_offline() {
            return Err(std::io::Error::other("the log directory is offline"));
        }
        let Some(job) = self.log().dir_sync_job() else {
            return Ok(());
        };
        job.run()?;
        self.log().mark_dir_synced(&job);
        Ok(())
    }

    /// Retires the log of a deleted topic, its directory renamed to `to` (see
    /// [`Log::retire`]), and wakes fetches waiting on it. Blocking.
    pub fn retire(&self, to: &std::path::Path) -> Result<(), LogError> {
        let retired = self.log().retire(to);
        self.new_data.notify_waiters();
        retired
    }
}

/// The batch in the topic's codec, when it differs from the producer's (Kafka's log validator
/// recompresses such batches); the result must still fit `max.message.bytes`.
fn stored_as(
    records: &Bytes,
    header: &BatchHeader,
    codec: i16,
    settings: &TopicSettings,
) -> Result<Option<(Bytes, BatchHeader)>, ProduceError> {
    let limit = super::validate::decompression_limit(settings);
    let converted =
        recompress::recompress(records, header, codec, settings.compression_levels, limit)
            .map_err(|e| ProduceError::new(ResponseError::CorruptMessage, e.to_string()))?;
    let Some(converted) = converted else {
        return Ok(None);
    };
    if converted.len() > settings.max_message_bytes {
        return Err(ProduceError::new(
            ResponseError::MessageTooLarge,
            format!(
                "The batch is {} bytes in the topic's compression, larger than max.message.bytes {}.",
                converted.len(),
                settings.max_message_bytes
            ),
        ));
    }
    let header = BatchHeader::parse(&converted)
        .map_err(|e| ProduceError::new(ResponseError::CorruptMessage, e.to_string()))?;
    Ok(Some((Bytes::from(converted), header)))
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

impl Partition {
    /// The first offset whose record timestamp is ≥ `timestamp`, with that timestamp
    /// (ListOffsets by time). Blocking: reads segment files.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> std::io::Result<Option<(i64, i64)>> {
        let start = self.offsets().log_start_offset;
        let slice = self.log().slice_for_time(timestamp)?;
        if let Some(slice) = slice {
            if let Some((pos, header)) = slice.find_timestamp(timestamp)? {
                let bytes = slice.read(pos, header.total_size() as u64)?;
                let found = records_of(&bytes, &header)
                    .into_iter()
                    .find(|(_, ts)| *ts >= timestamp)
                    .unwrap_or((header.base_offset, header.max_timestamp));
                if found.0 >= start {
                    return Ok(Some(found));
                }
                // DeleteRecords moved the log start past that record (into or beyond its
                // batch): as Kafka does, answer the first record at or after the log start.
                return self.first_at_or_after(start, timestamp);
            }
        }
        Ok(None)
    }

    /// The first record at or after `offset` whose timestamp is ≥ `timestamp`, walking batches
    /// forward from the one holding `offset`. Blocking: reads segment files.
    fn first_at_or_after(
        &self,
        mut offset: i64,
        timestamp: i64,
    ) -> std::io::Result<Option<(i64, i64)>> {
        loop {
            let slice = match self.slice_from(offset) {
                Ok((Some(slice), _)) => slice,
                Ok((None, _)) | Err(LogError::OffsetOutOfRange { .. }) => return Ok(None),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let Some((pos, header)) = slice.find_offset(offset)? else {
                return Ok(None);
            };
            if header.max_timestamp >= timestamp {
                let bytes = slice.read(pos, header.total_size() as u64)?;
                let found = records_of(&bytes, &header)
                    .into_iter()
                    .find(|(o, ts)| *o >= offset && *ts >= timestamp);
                if found.is_some() {
                    return Ok(found);
                }
            }
            offset = header.last_offset() + 1;
        }
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
    let Some(records) = records::decode_stored(&Bytes::copy_from_slice(batch)) else {
        return Vec::new();
    };
    let log_append = header.attributes & batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    records
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
        let (sealed, cleaned_upto, active_base) = {
            let log = self.log();
            (log.sealed_segments(), log.cleaned_upto(), log.active_base())
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
        // Segments ending after the last pass's end are dirty (a segment ends where the next
        // begins, so a range cleaned to its end is clean until more is sealed after it).
        let dirty: u64 = cleanable
            .iter()
            .enumerate()
            .filter(|(i, (b, _, _))| *b >= cleaned_upto || range_end(i + 1) > cleaned_upto)
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
        for (_, sealed, _) in cleanable {
            if !cleaner::add_to_map(&mut map, &sealed.slice()?, limits.max_keys)? {
                break;
            }
            covered += 1;
        }
        let tombstone_cutoff = now_ms.saturating_sub(settings.delete_retention_ms);
        for (base, sealed, _) in cleanable.iter().take(covered) {
            let slice = &sealed.slice()?;
            let started = std::time::Instant::now();
            // The copy's file is made under the lock, in the directory as it is then: a topic
            // deleted meanwhile stops the pass here, never touching its old files again.
            let dest = match self.log().create_cleaned(*base) {
                Ok(f) => f,
                Err(LogError::Retired) => return Ok(total),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let done = cleaner::compact_segment(slice, &map, tombstone_cutoff, dest)?;
            let swapped = self
                .log()
                .replace_segment(*base, slice.end, now_ms)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if swapped {
                self.sync_dir_changes()?;
            }
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
