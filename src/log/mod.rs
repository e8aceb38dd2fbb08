//! The partition log: an append-only sequence of segments holding RecordBatch v2 bytes.
//!
//! It knows nothing about requests: it assigns offsets to validated batches, stores them as they
//! arrived, and hands out byte ranges by offset or timestamp.

pub mod batch;
pub mod index;
pub mod producers;
pub mod segment;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tracing::warn;

use batch::{BatchHeader, RewrittenHeader, HEADER_LEN};
use producers::{Check, Producers, SequenceError};
use segment::{Segment, SegmentSlice};

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
}

impl Log {
    /// Opens (or creates) the log in `dir`, verifying the newest segment and truncating a torn
    /// or corrupt tail. Repairs are logged.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = bases.last().copied();
        for base in bases {
            let verify = Some(base) == last;
            let (seg, repair) =
                Segment::open(dir, base, verify, config.index_interval_bytes, now_ms)
                    .map_err(io_err(dir))?;
            if let Some(reason) = &repair.reason {
                warn!(
                    log = %dir.display(),
                    offset = repair.first_dropped_offset.unwrap_or(-1),
                    bytes_dropped = repair.bytes_dropped,
                    %reason,
                    "truncated a damaged log tail"
                );
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now_ms).map_err(io_err(dir))?);
        }
        let log_start_offset = segments.keys().next().copied().unwrap_or(0);
        let next_offset = segments
            .values()
            .next_back()
            .map(|s| s.next_offset())
            .unwrap_or(0);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            next_offset,
            flushed_offset: next_offset,
            producers: Producers::default(),
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
            while pos + HEADER_LEN as u64 <= slice.end {
                let h = segment::read_header(&slice.file, pos)?;
                self.producers.record(&h, h.base_offset, h.last_offset());
                from = h.last_offset() + 1;
                pos += h.total_size() as u64;
            }
        }
        Ok(())
    }

    /// Writes the producers' state as of the log end, replacing older snapshots.
    pub fn write_producer_snapshot(&self) -> io::Result<()> {
        let path = self.dir.join(producers::snapshot_name(self.next_offset));
        crate::topics::store::write_atomic(&path, &self.producers.encode())?;
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
        let base = self.next_offset;
        if self.active().base_offset() == base {
            return Ok(());
        }
        let seg = Segment::create(&self.dir, base, now_ms).map_err(io_err(&self.dir))?;
        self.segments.insert(base, seg);
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
            .or_else(|| self.segments.range(offset + 1..).next())
            .map(|(_, s)| s);
        Ok(seg.map(|s| s.slice_for(offset)))
    }

    /// Slices of every segment that may hold a timestamp ≥ `timestamp`, oldest first.
    pub fn slices_for_time(&self, timestamp: i64) -> Vec<SegmentSlice> {
        self.segments
            .values()
            .filter(|s| s.max_timestamp().0 >= timestamp)
            .map(|s| s.slice_for_time(timestamp))
            .collect()
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

    /// The files holding data not yet known to be on stable storage, and the offset that is
    /// durable once they are synced. Syncing happens outside the partition's lock.
    pub fn unflushed(&self) -> (Vec<Arc<File>>, i64) {
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset() > self.flushed_offset)
            .map(|s| s.slice_for(s.base_offset()).file)
            .collect();
        (files, self.next_offset)
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    pub fn mark_flushed(&mut self, offset: i64) {
        self.flushed_offset = self.flushed_offset.max(offset);
    }

    /// Syncs every segment and index; used on shutdown.
    pub fn sync_all(&mut self) -> Result<(), LogError> {
        for s in self.segments.values() {
            s.sync().map_err(io_err(s.path()))?;
        }
        self.flushed_offset = self.next_offset;
        self.write_producer_snapshot().map_err(io_err(&self.dir))
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
