//! The partition log: an append-only sequence of segments holding RecordBatch v2 bytes.
//!
//! It knows nothing about requests: it assigns offsets to validated batches, stores them as they
//! arrived, and hands out byte ranges by offset or timestamp.

pub mod batch;
pub mod cleaner;
pub mod durable;
pub mod files;
pub mod flush;
pub mod index;
pub mod producers;
pub mod recompress;
pub mod records;
pub mod segment;

#[cfg(test)]
mod model_tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::warn;

use batch::{BatchHeader, RewrittenHeader, HEADER_LEN};
use flush::{DirSync, FlushJob};
use producers::{Check, Producers, SequenceError};
use segment::{SealedRef, Segment, SegmentSlice};

#[derive(Debug, Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("idempotent producer sequence check failed: {0:?}")]
    Sequence(SequenceError),
    #[error("the log's topic was deleted")]
    Retired,
    #[error("the log directory is offline")]
    Offline,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The settings of one log, taken from its topic's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
        }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch was a retry of one already written; nothing new was stored.
    pub duplicate: bool,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    next_offset: i64,
    /// Offset below which everything is known to be on stable storage.
    flushed_offset: i64,
    producers: Producers,
    /// The recovery point last written to disk.
    recovery_point_written: i64,
    /// Offsets below this were compacted by the last cleaner pass.
    cleaned_upto: i64,
    /// The topic was deleted and the directory renamed for removal: the log writes no file
    /// any more, so work still holding it cannot touch a directory re-created under its name.
    retired: bool,
    /// Changes to the directory's entries so far, and how many of them a directory sync has
    /// made durable; the sync runs outside the partition's lock.
    dir_changes: u64,
    dir_synced: u64,
}

const RECOVERY_POINT_FILE: &str = "recovery-point";
const LOG_START_FILE: &str = "log-start-offset";
const CLEANER_FILE: &str = "cleaner-offset-checkpoint";

/// Reads a checkpoint file holding one offset.
fn read_offset(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_offset(path: &Path, offset: i64) -> io::Result<()> {
    durable::write_atomic(path, format!("{offset}\n").as_bytes())
}

fn remove_segment_files(dir: &Path, base: i64) {
    for suffix in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(dir.join(segment::file_name(base, suffix)));
    }
}

/// What a retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub segments: usize,
    pub bytes: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir` after an unclean stop: see [`Log::open_with`].
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        Log::open_with(dir, config, now_ms, false)
    }

    /// Opens (or creates) the log in `dir`. After a clean shutdown (`clean`) segments and
    /// indexes are trusted; otherwise every segment holding offsets at or after the recovery
    /// point is verified batch by batch (length, magic, CRC32C), a torn or corrupt tail is
    /// truncated, and any segment after a damaged one is removed. Repairs are logged.
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        clean: bool,
    ) -> Result<Log, LogError> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Whether the directory's entries changed, so they must be synced before serving.
        let mut changed = created;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if name.ends_with(".cleaned") || name.ends_with(".swap") {
                // Left by a compaction interrupted before its swap: the original is intact.
                let _ = std::fs::remove_file(entry.path());
                changed = true;
            } else if name.ends_with(".tmp") {
                // A snapshot or checkpoint whose atomic write was interrupted; the previous
                // file is intact.
                let _ = std::fs::remove_file(entry.path());
                changed = true;
            }
        }
        bases.sort_unstable();
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_offset(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0)
        };
        let mut segments = BTreeMap::new();
        let mut damaged_at: Option<usize> = None;
        for (i, base) in bases.iter().copied().enumerate() {
            if damaged_at.is_some() {
                // Everything after a damaged segment is unreachable: offsets must be contiguous.
                warn!(log = %dir.display(), segment = base, "removing a segment that follows a damaged one");
                remove_segment_files(dir, base);
                changed = true;
                continue;
            }
            let last = i + 1 == bases.len();
            let end = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let verify = last && !clean || end > recovery_point;
            let (seg, repair) =
                Segment::open(dir, base, verify, config.index_interval_bytes, now_ms)
                    .map_err(io_err(dir))?;
            if verify {
                // What survived the crash may only be in the page cache: make it durable before
                // it counts as flushed.
                seg.sync().map_err(io_err(dir))?;
            }
            // Rebuilt indexes are new files.
            changed |= verify || repair.index_rebuilt.is_some();
            if let Some(reason) = repair.index_rebuilt {
                warn!(log = %dir.display(), segment = base, %reason, "rebuilt the segment's indexes");
            }
            if let Some(reason) = &repair.reason {
                warn!(
                    log = %dir.display(),
                    offset = repair.first_dropped_offset.unwrap_or(-1),
                    bytes_dropped = repair.bytes_dropped,
                    %reason,
                    "truncated a damaged log tail"
                );
                if !last {
                    damaged_at = Some(i);
                }
            }
            let mut seg = seg;
            if !last && damaged_at.is_none() {
                // Not written any more: its descriptors go to the bounded cache now, so a log
                // of thousands of segments does not hold them all open.
                seg.seal();
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            let base = read_offset(&dir.join(LOG_START_FILE)).unwrap_or(0).max(0);
            segments.insert(
                base,
                Segment::create(dir, base, now_ms).map_err(io_err(dir))?,
            );
            changed = true;
        }
        if changed {
            durable::sync_dir(dir).map_err(io_err(dir))?;
        }
        if created {
            durable::sync_parent(dir).map_err(io_err(dir))?;
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        // Never below the active segment's base, whatever a damaged file claims.
        let next_offset = segments
            .values()
            .next_back()
            .map(|s| s.next_offset().max(s.base_offset()))
            .unwrap_or(0)
            .max(first_base);
        // DeleteRecords may have moved the start inside the first segment.
        let log_start_offset = read_offset(&dir.join(LOG_START_FILE))
            .unwrap_or(first_base)
            .clamp(first_base, next_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            next_offset,
            flushed_offset: next_offset,
            producers: Producers::default(),
            recovery_point_written: -1,
            cleaned_upto: read_offset(&dir.join(CLEANER_FILE)).unwrap_or(0),
            retired: false,
            dir_changes: 0,
            dir_synced: 0,
        };
        log.load_producers().map_err(io_err(dir))?;
        Ok(log)
    }

    /// Rebuilds idempotent producers' state: the newest snapshot, then every batch after it.
    fn load_producers(&mut self) -> io::Result<()> {
        let mut from = self.log_start_offset;
        if let Some((offset, path)) = producers::latest_snapshot(&self.dir)? {
            if offset <= self.next_offset && offset >= self.log_start_offset {
                if let Some(p) = std::fs::read(&path)
                    .ok()
                    .and_then(|b| Producers::decode(&b))
                {
                    self.producers = p;
                    from = offset;
                }
            }
        }
        while let Some(slice) = self.slice_from(from).ok().flatten() {
            let Some((mut pos, _)) = slice.find_offset(from)? else {
                break;
            };
            let scanned_from = from;
            while pos + HEADER_LEN as u64 <= slice.end {
                let h = segment::read_header(&slice.file, pos)?;
                // Logs trusted after a clean shutdown are not verified: a damaged header that
                // would not move the scan forward ends it rather than looping forever.
                let last = h.base_offset.checked_add(i64::from(h.last_offset_delta));
                let (Some(last), Ok(length)) = (last, u64::try_from(h.length)) else {
                    break;
                };
                let size = length + batch::LOG_OVERHEAD as u64;
                if last < from || size < HEADER_LEN as u64 {
                    break;
                }
                self.producers.record(&h, h.base_offset, last);
                from = last.saturating_add(1);
                pos += size;
            }
            if from <= scanned_from {
                break;
            }
        }
        Ok(())
    }

    /// Writes the producers' state as of the log end, replacing older snapshots.
    pub fn write_producer_snapshot(&self) -> io::Result<()> {
        if self.retired {
            return Ok(());
        }
        let path = self.dir.join(producers::snapshot_name(self.next_offset));
        durable::write_atomic(&path, &self.producers.encode())?;
        for entry in std::fs::read_dir(&self.dir)? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "snapshot") && p != path {
                std::fs::remove_file(p)?;
            }
        }
        Ok(())
    }

    /// Forgets idempotent producers idle since before `cutoff_ms`.
    pub fn expire_producers(&mut self, cutoff_ms: i64) -> usize {
        self.producers.expire(cutoff_ms)
    }

    /// Appends one validated batch (`header` parsed from `batch`), assigning it the next
    /// offsets. With `log_append_time`, the batch's timestamp becomes the broker's clock.
    pub fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        log_append_time: Option<i64>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        if self.retired {
            return Err(LogError::Retired);
        }
        match self.producers.check(header).map_err(LogError::Sequence)? {
            Check::Append => {}
            Check::Duplicate(meta) => {
                return Ok(Appended {
                    base_offset: meta.base_offset,
                    last_offset: meta.last_offset,
                    duplicate: true,
                })
            }
        }
        let base_offset = self.next_offset;
        let size = batch.len() as u64;
        self.maybe_roll(size, header.last_offset_delta, now_ms)?;
        let mut rewritten = RewrittenHeader::new(batch, base_offset, leader_epoch);
        let records = &batch[HEADER_LEN..];
        if let Some(now) = log_append_time {
            rewritten.set_log_append_time(records, now);
        }
        let interval = self.config.index_interval_bytes;
        let dir = self.dir.clone();
        let active = self.active_mut();
        active
            .append(&rewritten.bytes, records, interval)
            .map_err(io_err(&dir))?;
        self.next_offset = base_offset + header.last_offset_delta as i64 + 1;
        self.producers
            .record(header, base_offset, self.next_offset - 1);
        Ok(Appended {
            base_offset,
            last_offset: self.next_offset - 1,
            duplicate: false,
        })
    }

    fn maybe_roll(&mut self, incoming: u64, last_delta: i32, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.size() == 0 {
            return Ok(());
        }
        let full = active.size() + incoming > self.config.segment_bytes;
        let old = now_ms - active.created_ms() >= self.config.segment_ms;
        let offsets_overflow =
            self.next_offset + last_delta as i64 - active.base_offset() > u32::MAX as i64;
        if full || old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next offset.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.retired {
            return Err(LogError::Retired);
        }
        let base = self.next_offset;
        if self.active().base_offset() == base {
            return Ok(());
        }
        let seg = Segment::create(&self.dir, base, now_ms).map_err(io_err(&self.dir))?;
        self.active_mut().seal();
        self.segments.insert(base, seg);
        // Synced with the next flush (outside the partition's lock): acks=all waits for it.
        self.dir_changes += 1;
        // A snapshot per roll bounds what a restart after a crash must rescan.
        if !self.producers.is_empty() {
            self.write_producer_snapshot().map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        // A log always holds at least one segment: open() and truncation guarantee it.
        self.segments
            .values()
            .next_back()
            .expect("log has at least one segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("log has at least one segment")
    }

    /// The segment slice that holds `offset`; `None` when `offset` is the log end offset.
    pub fn slice_from(&self, offset: i64) -> Result<Option<SegmentSlice>, LogError> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.next_offset,
            });
        }
        if offset == self.next_offset {
            return Ok(None);
        }
        let seg = self
            .segments
            .range(..=offset)
            .next_back()
            .filter(|(_, s)| s.next_offset() > offset)
            // Compaction or a crash can leave segments empty: skip to one holding batches.
            .or_else(|| {
                self.segments
                    .range(offset + 1..)
                    .find(|(_, s)| s.size() > 0)
            })
            .map(|(_, s)| s);
        seg.map(|s| s.slice_for(offset).map_err(io_err(s.path())))
            .transpose()
    }

    /// A slice of the segment that holds the first timestamp ≥ `timestamp`, if any: the first
    /// segment whose newest timestamp reaches it holds the answer.
    pub fn slice_for_time(&self, timestamp: i64) -> io::Result<Option<SegmentSlice>> {
        self.segments
            .values()
            .find(|s| s.max_timestamp().0 >= timestamp)
            .map(|s| s.slice_for_time(timestamp))
            .transpose()
    }

    /// The largest timestamp in the log and the base offset of the batch that holds it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.segments
            .values()
            .map(|s| s.max_timestamp())
            .filter(|(ts, _)| *ts >= 0)
            .max_by_key(|(ts, _)| *ts)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held on disk by the log's segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    /// The files holding data not yet known to be on stable storage (and the directory, when
    /// a segment was created since its last sync), and the offset that is durable once they
    /// are synced. Syncing happens outside the partition's lock. A retired log has nothing
    /// left to sync: its files are being removed.
    pub fn unflushed(&self) -> FlushJob {
        let files = if self.retired {
            Vec::new()
        } else {
            self.segments
                .values()
                .filter(|s| s.next_offset() > self.flushed_offset)
                .map(|s| s.file_ref())
                .collect()
        };
        FlushJob {
            files,
            dir: self.dir_sync_job(),
            upto: self.next_offset,
        }
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    /// Records what a [`FlushJob`] made durable.
    pub fn mark_flushed(&mut self, job: &FlushJob) {
        self.flushed_offset = self.flushed_offset.max(job.upto);
        if let Some(d) = &job.dir {
            self.mark_dir_synced(d);
        }
    }

    /// The directory sync owed for entries created, renamed or removed since the last one.
    pub fn dir_sync_job(&self) -> Option<DirSync> {
        (!self.retired && self.dir_changes != self.dir_synced).then(|| DirSync {
            dir: self.dir.clone(),
            changes: self.dir_changes,
        })
    }

    pub fn mark_dir_synced(&mut self, done: &DirSync) {
        self.dir_synced = self.dir_synced.max(done.changes);
    }

    /// Syncs every segment and index; used on shutdown.
    pub fn sync_all(&mut self) -> Result<(), LogError> {
        if self.retired {
            return Ok(());
        }
        for s in self.segments.values() {
            s.sync().map_err(io_err(s.path()))?;
        }
        if let Some(d) = self.dir_sync_job() {
            d.run().map_err(io_err(&self.dir))?;
            self.mark_dir_synced(&d);
        }
        self.flushed_offset = self.next_offset;
        self.write_producer_snapshot().map_err(io_err(&self.dir))?;
        self.checkpoint_recovery_point().map_err(io_err(&self.dir))
    }

    /// Records how far the log is known to be on stable storage: after a crash only what
    /// follows is verified. Written only when it moved.
    pub fn checkpoint_recovery_point(&mut self) -> io::Result<()> {
        if self.retired || self.flushed_offset == self.recovery_point_written {
            return Ok(());
        }
        write_offset(&self.dir.join(RECOVERY_POINT_FILE), self.flushed_offset)?;
        self.recovery_point_written = self.flushed_offset;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset to `offset` (≤ the log end), removing every
    /// segment wholly below it. Returns the new log start offset.
    pub fn delete_records(&mut self, offset: i64, now_ms: i64) -> Result<i64, LogError> {
        if self.retired {
            return Err(LogError::Retired);
        }
        if offset > self.next_offset || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.next_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        if offset == self.next_offset && self.active().size() > 0 {
            // Everything goes: start a fresh segment so the old ones can all be removed.
            self.roll(now_ms)?;
        }
        self.log_start_offset = offset;
        write_offset(&self.dir.join(LOG_START_FILE), offset).map_err(io_err(&self.dir))?;
        let below: Vec<i64> = self
            .segments
            .iter()
            .filter(|(_, s)| {
                s.next_offset() <= offset && s.base_offset() != self.active().base_offset()
            })
            .map(|(b, _)| *b)
            .collect();
        for base in below {
            self.remove_segment(base);
        }
        Ok(self.log_start_offset)
    }

    fn remove_segment(&mut self, base: i64) -> u64 {
        let size = self.segments.remove(&base).map(|s| s.size()).unwrap_or(0);
        // Readers holding the file keep reading it until they drop it.
        remove_segment_files(&self.dir, base);
        self.dir_changes += 1;
        size
    }

    /// Time and size retention: removes the oldest segments whose newest timestamp is older
    /// than `retention_ms` (when ≥ 0), then the oldest while the log exceeds `retention_bytes`
    /// (when ≥ 0). The active segment is rolled first if it has expired, so a quiet topic
    /// still empties. The log start offset advances past what was removed.
    pub fn apply_retention(
        &mut self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<Removed, LogError> {
        let mut removed = Removed::default();
        if self.retired {
            return Ok(removed);
        }
        if retention_ms >= 0 {
            let expired = |s: &Segment| {
                let newest = if s.max_timestamp().0 >= 0 {
                    s.max_timestamp().0
                } else {
                    s.created_ms()
                };
                s.size() > 0 && now_ms.saturating_sub(newest) > retention_ms
            };
            if expired(self.active()) {
                self.roll(now_ms)?;
            }
            while let Some((&base, seg)) = self.segments.iter().next() {
                if base == self.active().base_offset() || !expired(seg) {
                    break;
                }
                removed.bytes += self.remove_segment(base);
                removed.segments += 1;
            }
        }
        if retention_bytes >= 0 {
            loop {
                let total = self.size_bytes();
                let Some((&base, seg)) = self.segments.iter().next() else {
                    break;
                };
                if base == self.active().base_offset()
                    || total.saturating_sub(seg.size()) < retention_bytes as u64
                {
                    break;
                }
                removed.bytes += self.remove_segment(base);
                removed.segments += 1;
            }
        }
        if removed.segments > 0 {
            let first = self
                .segments
                .keys()
                .next()
                .copied()
                .unwrap_or(self.next_offset);
            if first > self.log_start_offset {
                self.log_start_offset = first;
                write_offset(&self.dir.join(LOG_START_FILE), first).map_err(io_err(&self.dir))?;
            }
        }
        Ok(removed)
    }

    /// The sealed segments, oldest first, for the cleaner: (base offset, slice of the whole
    /// segment, its newest timestamp).
    pub fn sealed_segments(&self) -> Vec<(i64, SealedRef, i64)> {
        let active = self.active().base_offset();
        self.segments
            .values()
            .filter(|s| s.base_offset() != active)
            .map(|s| (s.base_offset(), s.sealed_ref(), s.max_timestamp().0))
            .collect()
    }

    /// Creates the file a sealed segment's compacted copy is written to, in the log's
    /// directory as it is now (taken under the partition's lock, so a topic deleted meanwhile
    /// can never have it written into a directory re-created under its name).
    pub fn create_cleaned(&self, base: i64) -> Result<File, LogError> {
        if self.retired {
            return Err(LogError::Retired);
        }
        let path = cleaner::cleaned_path(&self.dir, base);
        File::create(&path).map_err(io_err(&path))
    }

    /// Replaces a sealed segment with its compacted copy made by [`Log::create_cleaned`] (same
    /// base offset, same offsets, fewer records). Nothing happens if the segment is gone or
    /// was replaced since `expected_size` was read, or the log was retired.
    pub fn replace_segment(
        &mut self,
        base: i64,
        expected_size: u64,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        if self.retired {
            // The whole directory is on its way out, the copy with it.
            return Ok(false);
        }
        let cleaned = cleaner::cleaned_path(&self.dir, base);
        let current = self.segments.get(&base).map(|s| s.size());
        if current != Some(expected_size) || base == self.active().base_offset() {
            let _ = std::fs::remove_file(&cleaned);
            return Ok(false);
        }
        let target = self.dir.join(segment::file_name(base, "log"));
        std::fs::rename(&cleaned, &target).map_err(io_err(&self.dir))?;
        self.dir_changes += 1;
        for suffix in ["index", "timeindex"] {
            let _ = std::fs::remove_file(self.dir.join(segment::file_name(base, suffix)));
        }
        let (mut seg, _) = Segment::open(
            &self.dir,
            base,
            true,
            self.config.index_interval_bytes,
            now_ms,
        )
        .map_err(io_err(&self.dir))?;
        seg.seal();
        self.segments.insert(base, seg);
        Ok(true)
    }

    /// The base offset of the segment appends go to.
    pub fn active_base(&self) -> i64 {
        self.active().base_offset()
    }

    /// Offsets below this were compacted by the last cleaner pass.
    pub fn cleaned_upto(&self) -> i64 {
        self.cleaned_upto
    }

    pub fn set_cleaned_upto(&mut self, offset: i64) -> io::Result<()> {
        if self.retired {
            return Ok(());
        }
        self.cleaned_upto = offset;
        write_offset(&self.dir.join(CLEANER_FILE), offset)
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Retires the log of a deleted topic: it stops writing files at once, then its
    /// directory is renamed to `to` (and the parent synced), freeing the old name for a topic
    /// created again; the renamed directory is removed later. Blocking.
    pub fn retire(&mut self, to: &Path) -> Result<(), LogError> {
        self.retired = true;
        std::fs::rename(&self.dir, to).map_err(io_err(&self.dir))?;
        self.dir = to.to_path_buf();
        durable::sync_parent(to).map_err(io_err(to))
    }

    pub fn is_retired(&self) -> bool {
        self.retired
    }
}

#[cfg(test)]
mod tests {
    use super::batch::tests::test_batch;
    use super::*;

    fn append(log: &mut Log, count: i32, ts: i64) -> Appended {
        let b = test_batch(0, count, ts);
        let h = batch::validate(&b).unwrap();
        log.append(&b, &h, None, 0, 0).unwrap()
    }

    fn read_all(log: &Log, from: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut offset = from;
        while let Some(slice) = log.slice_from(offset).unwrap() {
            let (mut pos, _) = slice.find_offset(offset).unwrap().unwrap();
            while pos < slice.end {
                let h = segment::read_header(&slice.file, pos).unwrap();
                out.push((h.base_offset, h.last_offset()));
                offset = h.last_offset() + 1;
                pos += h.total_size() as u64;
            }
        }
        out
    }

    #[test]
    fn appends_rolls_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 100,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config, 0).unwrap();
        for i in 0..20 {
            let a = append(&mut log, 3, 1000 + i);
            assert_eq!(a.base_offset, i * 3);
        }
        assert!(log.segments.len() > 3);
        let batches = read_all(&log, 0);
        assert_eq!(batches.len(), 20);
        assert_eq!(read_all(&log, 31)[0], (30, 32));
        drop(log);
        let log = Log::open(dir.path(), config, 0).unwrap();
        assert_eq!(log.next_offset(), 60);
        assert_eq!(read_all(&log, 0).len(), 20);
        assert!(matches!(
            log.slice_from(61),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        for _ in 0..5 {
            append(&mut log, 2, 1);
        }
        drop(log);
        let path = dir.path().join(segment::file_name(0, "log"));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        assert_eq!(log.next_offset(), 8);
        assert_eq!(read_all(&log, 0).len(), 4);
    }
}
