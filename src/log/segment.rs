//! One segment of a partition's log: `<base offset>.log` with its `.index` and `.timeindex`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::files::FileRef;
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

/// File name of a segment or index: the base offset as 20 digits, as Kafka names them.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// What recovery found in a segment's tail.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Offset of the first batch that was dropped.
    pub first_dropped_offset: Option<i64>,
    pub bytes_dropped: u64,
    pub reason: Option<String>,
    /// Why the indexes of a segment that was to be trusted had to be rebuilt.
    pub index_rebuilt: Option<&'static str>,
}

pub struct Segment {
    base_offset: i64,
    path: PathBuf,
    file: FileRef,
    size: u64,
    next_offset: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    /// Largest timestamp in the segment and the base offset of the batch holding it.
    max_timestamp: (i64, i64),
    created_ms: i64,
}

/// A view of a segment's bytes that can be read without holding the partition lock: bytes
/// below `end` never change while the file handle is alive.
#[derive(Clone)]
pub struct SegmentSlice {
    pub file: Arc<File>,
    pub base_offset: i64,
    pub start_hint: u64,
    pub end: u64,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        Ok(Segment {
            base_offset,
            path,
            file: FileRef::Open(Arc::new(file)),
            size: 0,
            next_offset: base_offset,
            index: OffsetIndex::create(&dir.join(file_name(base_offset, "index")))?,
            time_index: TimeIndex::create(&dir.join(file_name(base_offset, "timeindex")))?,
            bytes_since_index: 0,
            max_timestamp: (-1, base_offset),
            created_ms: now_ms,
        })
    }

    /// Opens an existing segment. With `verify`, every batch is checked (length, magic, CRC)
    /// and the file is truncated at the first bad one, and the indexes are rebuilt. Without it,
    /// the indexes are trusted when present, and rebuilt (with verification) when not.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        verify: bool,
        index_interval: u64,
        now_ms: i64,
    ) -> io::Result<(Segment, Repair)> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let loaded = if verify {
            None
        } else {
            match (
                OffsetIndex::load(&index_path)?,
                TimeIndex::load(&time_path)?,
            ) {
                (Some(i), Some(t)) if indexes_plausible(&i, &t, size) => Some((i, t)),
                _ => None,
            }
        };
        let trusted = loaded.is_some();
        let index_rebuilt = (!verify && !trusted).then(|| {
            if index_path.exists() && time_path.exists() {
                "index file damaged"
            } else {
                "index file missing"
            }
        });
        let (index, time_index) = match loaded {
            Some(pair) => pair,
            None => (
                OffsetIndex::create(&index_path)?,
                TimeIndex::create(&time_path)?,
            ),
        };
        let created_ms = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(now_ms);
        let file = Arc::new(file);
        let mut seg = Segment {
            base_offset,
            path,
            file: FileRef::Open(file.clone()),
            size,
            next_offset: base_offset,
            index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: (-1, base_offset),
            created_ms,
        };
        if !trusted {
            let mut repair = seg.rebuild(&file, index_interval)?;
            repair.index_rebuilt = index_rebuilt;
            return Ok((seg, repair));
        }
        // Trust the indexes; only the tail after the last index entry is walked to find the
        // next offset.
        if let Some(t) = seg.time_index.last() {
            seg.max_timestamp = (t.timestamp, base_offset + t.relative_offset as i64);
        }
        let mut pos = seg.index.last().map(|e| e.position as u64).unwrap_or(0);
        while pos < size {
            let h = read_header(&file, pos)?;
            seg.next_offset = h.last_offset() + 1;
            // Batches after the last time index entry may hold a newer max timestamp.
            if h.max_timestamp > seg.max_timestamp.0 {
                seg.max_timestamp = (h.max_timestamp, h.base_offset);
            }
            seg.bytes_since_index += h.total_size() as u64;
            pos += h.total_size() as u64;
        }
        Ok((seg, Repair::default()))
    }

    /// Walks every batch, verifying it, rebuilding both indexes and truncating a bad tail.
    fn rebuild(&mut self, file: &File, index_interval: u64) -> io::Result<Repair> {
        let mut pos = 0u64;
        let mut buf = Vec::new();
        let mut repair = Repair::default();
        self.size = 0;
        let file_len = file.metadata()?.len();
        while pos < file_len {
            match read_verified(file, pos, file_len, &mut buf) {
                Ok(h) => {
                    if h.base_offset < self.next_offset {
                        repair.reason = Some(format!(
                            "offset {} goes backwards (expected ≥ {})",
                            h.base_offset, self.next_offset
                        ));
                        repair.first_dropped_offset = Some(h.base_offset);
                        break;
                    }
                    self.track(&h, pos, index_interval)?;
                    pos += h.total_size() as u64;
                    self.size = pos;
                }
                Err(reason) => {
                    repair.first_dropped_offset = Some(self.next_offset);
                    repair.reason = Some(reason);
                    break;
                }
            }
        }
        if pos < file_len {
            repair.bytes_dropped = file_len - pos;
            file.set_len(pos)?;
            file.sync_all()?;
        }
        Ok(repair)
    }

    /// Updates indexes and bookkeeping for a batch written at `pos`. On failure (an index
    /// write), nothing of the batch is tracked.
    fn track(&mut self, h: &BatchHeader, pos: u64, index_interval: u64) -> io::Result<()> {
        let max_timestamp = if h.max_timestamp > self.max_timestamp.0 {
            (h.max_timestamp, h.base_offset)
        } else {
            self.max_timestamp
        };
        if self.bytes_since_index >= index_interval || pos == 0 {
            self.index.append(OffsetEntry {
                relative_offset: (h.base_offset - self.base_offset) as u32,
                position: pos as u32,
            })?;
            if self.time_index.last().map(|t| t.timestamp) < Some(max_timestamp.0) {
                let timed = self.time_index.append(TimeEntry {
                    timestamp: max_timestamp.0,
                    relative_offset: (max_timestamp.1 - self.base_offset) as u32,
                });
                if let Err(e) = timed {
                    self.index.undo_last();
                    return Err(e);
                }
            }
            self.bytes_since_index = 0;
        }
        self.max_timestamp = max_timestamp;
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.last_offset() + 1;
        Ok(())
    }

    /// Appends one batch: the broker-rewritten header, then the producer's record bytes.
    pub fn append(
        &mut self,
        header: &[u8; HEADER_LEN],
        records: &[u8],
        index_interval: u64,
    ) -> io::Result<()> {
        let parsed = BatchHeader::parse(header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let FileRef::Open(file) = &self.file else {
            return Err(io::Error::other("append to a sealed segment"));
        };
        let file = file.clone();
        let pos = self.size;
        let written = file
            .write_all_at(header, pos)
            .and_then(|_| file.write_all_at(records, pos + HEADER_LEN as u64))
            .and_then(|_| self.track(&parsed, pos, index_interval));
        if let Err(e) = written {
            // Leave no half-written batch behind for readers or the next append (a full disk
            // or a failed index write): the segment stays as it was before this batch.
            let _ = file.set_len(pos);
            return Err(e);
        }
        self.size = pos + (HEADER_LEN + records.len()) as u64;
        Ok(())
    }

    /// The segment is no longer written: its indexes close (their entries stay in memory) and
    /// its data file is held by the bounded cache of open files from now on.
    pub fn seal(&mut self) {
        self.file = self.file.seal(&self.path);
        self.index.close();
        self.time_index.close();
    }

    /// The segment's data file, for syncing outside the partition's lock.
    pub fn file_ref(&self) -> FileRef {
        self.file.clone()
    }

    /// The whole segment, to be sliced later.
    pub fn sealed_ref(&self) -> SealedRef {
        SealedRef {
            file: self.file.clone(),
            base_offset: self.base_offset,
            end: self.size,
        }
    }

    /// Writes the segment's data and indexes to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file.get()?.sync_data()?;
        self.index.sync()?;
        self.time_index.sync()
    }

    /// A slice for reading from the batch at or before `offset`. Once sealed, the segment's
    /// file may have to be opened, which can fail (no descriptors left, say).
    pub fn slice_for(&self, offset: i64) -> io::Result<SegmentSlice> {
        let rel = (offset.max(self.base_offset) - self.base_offset).min(u32::MAX as i64) as u32;
        let start_hint = self
            .index
            .floor_by(rel, |e| e.relative_offset)
            .map(|e| e.position as u64)
            .unwrap_or(0);
        Ok(SegmentSlice {
            file: self.file.get()?,
            base_offset: self.base_offset,
            start_hint,
            end: self.size,
        })
    }

    /// A slice for finding the first batch with a timestamp ≥ `timestamp`.
    pub fn slice_for_time(&self, timestamp: i64) -> io::Result<SegmentSlice> {
        let rel = self
            .time_index
            .floor_by(timestamp, |e| e.timestamp)
            .map(|e| e.relative_offset)
            .unwrap_or(0);
        self.slice_for(self.base_offset + rel as i64)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn max_timestamp(&self) -> (i64, i64) {
        self.max_timestamp
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn indexes_plausible(index: &OffsetIndex, time: &TimeIndex, log_size: u64) -> bool {
    let positions_ok = index
        .entries()
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
        && index
            .last()
            .map(|e| (e.position as u64) < log_size.max(1))
            .unwrap_or(true);
    let times_ok = time
        .entries()
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp);
    positions_ok && times_ok && (log_size == 0 || !index.entries().is_empty())
}

/// Reads and parses the batch header at `pos`.
pub fn read_header(file: &File, pos: u64) -> io::Result<BatchHeader> {
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    BatchHeader::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads the whole batch at `pos` into `buf` and verifies it; the error says what is wrong.
fn read_verified(
    file: &File,
    pos: u64,
    file_len: u64,
    buf: &mut Vec<u8>,
) -> Result<BatchHeader, String> {
    let remaining = file_len - pos;
    if remaining < HEADER_LEN as u64 {
        return Err(format!(
            "{remaining} trailing bytes are not a whole batch header"
        ));
    }
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, pos)
        .map_err(|e| format!("read failed: {e}"))?;
    let h = BatchHeader::parse(&head).map_err(|e| e.to_string())?;
    if h.total_size() as u64 > remaining {
        return Err(format!(
            "batch at position {pos} needs {} bytes, only {remaining} remain",
            h.total_size()
        ));
    }
    buf.resize(h.total_size(), 0);
    file.read_exact_at(buf, pos)
        .map_err(|e| format!("read failed: {e}"))?;
    batch::validate(buf).map_err(|e| e.to_string())
}

/// A sealed segment for a pass over many (compaction): its file is opened only when it is
/// sliced, so a pass over thousands of segments holds one or two descriptors at a time.
#[derive(Clone)]
pub struct SealedRef {
    file: FileRef,
    pub base_offset: i64,
    pub end: u64,
}

impl SealedRef {
    /// A slice of the whole segment. Blocking: may open the file.
    pub fn slice(&self) -> io::Result<SegmentSlice> {
        Ok(SegmentSlice {
            file: self.file.get()?,
            base_offset: self.base_offset,
            start_hint: 0,
            end: self.end,
        })
    }
}

impl SegmentSlice {
    /// Finds the batch holding `offset` (or the first after it), scanning headers from the
    /// index hint. Returns its position and header, or `None` when the slice has no such batch.
    pub fn find_offset(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        self.find(|h| h.last_offset() >= offset)
    }

    /// Finds the first batch whose max timestamp is ≥ `timestamp`.
    pub fn find_timestamp(&self, timestamp: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        self.find(|h| h.max_timestamp >= timestamp)
    }

    fn find(&self, pred: impl Fn(&BatchHeader) -> bool) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.start_hint;
        while pos + HEADER_LEN as u64 <= self.end {
            let h = read_header(&self.file, pos)?;
            if pred(&h) {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Reads `len` bytes at `pos` (bounded by the slice's end).
    pub fn read(&self, pos: u64, len: u64) -> io::Result<Vec<u8>> {
        let len = len.min(self.end.saturating_sub(pos));
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }
}
