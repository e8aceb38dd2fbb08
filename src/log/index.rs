//! Sparse indexes of a segment, in Kafka's on-disk layout:
//! `.index` maps relative offset → file position (4 + 4 bytes, big-endian) and
//! `.timeindex` maps max timestamp so far → relative offset (8 + 4 bytes).
//!
//! Entries are kept in memory for binary search and appended to the file as they are made; the
//! file is only read back on start-up. Both are rebuilt from the log when missing or damaged.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// One fixed-size index entry.
pub trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(buf: &[u8]) -> Self;
}

/// `.index` entry: offset relative to the segment's base offset, and byte position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// `.timeindex` entry: the largest timestamp seen so far and the offset of the batch holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// An append-only index file with its entries mirrored in memory. Once its segment is sealed
/// the file is closed: the entries in memory answer every lookup.
pub struct Index<E: Entry> {
    path: PathBuf,
    file: Option<File>,
    entries: Vec<E>,
}

impl<E: Entry> Index<E> {
    /// Creates an empty index, replacing any file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Index {
            path: path.to_path_buf(),
            file: Some(file),
            entries: Vec::new(),
        })
    }

    /// Loads an existing index. Returns `None` when the file is missing or its length is not a
    /// whole number of entries; the caller then rebuilds it from the log.
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        let mut file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        if buf.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries = buf.chunks_exact(E::SIZE).map(E::decode).collect();
        Ok(Some(Index {
            path: path.to_path_buf(),
            file: Some(file),
            entries,
        }))
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("append to a closed index"));
        };
        let mut buf = [0u8; 16];
        entry.encode(&mut buf[..E::SIZE]);
        if let Err(e) = file.write_all(&buf[..E::SIZE]) {
            // A partial entry would misalign every later one.
            let _ = file.set_len((self.entries.len() * E::SIZE) as u64);
            return Err(e);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Takes back the last entry (its batch could not be stored after all).
    pub fn undo_last(&mut self) {
        if self.entries.pop().is_some() {
            if let Some(file) = &self.file {
                let _ = file.set_len((self.entries.len() * E::SIZE) as u64);
            }
        }
    }

    /// Closes the file; the entries stay.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// The last entry whose key is ≤ `key`, by binary search over entries sorted by key.
    pub fn floor_by<K: Ord>(&self, key: K, key_of: impl Fn(&E) -> K) -> Option<E> {
        let n = self.entries.partition_point(|e| key_of(e) <= key);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Syncs the file; a closed one is opened for it (blocking either way).
    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => File::open(&self.path)?.sync_data(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub type OffsetIndex = Index<OffsetEntry>;
pub type TimeIndex = Index<TimeEntry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_floors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(&path).unwrap();
        for i in 0..10u32 {
            idx.append(OffsetEntry {
                relative_offset: i * 10,
                position: i * 4096,
            })
            .unwrap();
        }
        drop(idx);
        let idx = OffsetIndex::load(&path).unwrap().unwrap();
        assert_eq!(idx.entries().len(), 10);
        let e = idx.floor_by(35, |e| e.relative_offset).unwrap();
        assert_eq!(e.relative_offset, 30);
        assert_eq!(e.position, 3 * 4096);
        assert!(Index::<TimeEntry>::load(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path).unwrap().is_none());
    }
}
