//! Log compaction: sealed segments are rewritten keeping only the latest record of each key
//! (and tombstones until `delete.retention.ms` has passed). Offsets never change; compacted
//! batches simply have gaps. Batches nothing was removed from are copied byte for byte.
//!
//! The work is done on segment slices outside the partition's lock; only the final swap of a
//! segment takes it, so produce and fetch are never held up by a pass.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::{BatchHeader, TIMESTAMP_TYPE_LOG_APPEND};
use super::segment::SegmentSlice;

/// 16 bytes per key, as Kafka's offset map hashes keys: two independent 64-bit hashes.
pub type KeyHash = u128;

pub fn key_hash(key: &[u8]) -> KeyHash {
    let mut a = std::hash::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    0x5bd1_e995u32.hash(&mut b);
    key.hash(&mut b);
    ((a.finish() as u128) << 64) | b.finish() as u128
}

/// Bytes of memory per entry of the key map, for sizing it from `log.cleaner.dedupe.buffer.size`.
pub const BYTES_PER_ENTRY: usize = 48;

/// Every whole batch of a slice, as stored.
pub fn batches(slice: &SegmentSlice) -> io::Result<Vec<(BatchHeader, Bytes)>> {
    let bytes = Bytes::from(slice.read(0, slice.end)?);
    let mut out = Vec::new();
    let mut at = 0;
    while at + super::batch::HEADER_LEN <= bytes.len() {
        let Ok(h) = BatchHeader::parse(&bytes[at..]) else {
            break;
        };
        if at + h.total_size() > bytes.len() {
            break;
        }
        out.push((h, bytes.slice(at..at + h.total_size())));
        at += h.total_size();
    }
    Ok(out)
}

fn records_of(batch: &Bytes) -> Option<Vec<Record>> {
    super::records::decode_stored(batch)
}

/// Adds the keys of a segment to the map (key → latest offset). Returns false, leaving the map
/// unchanged, when the segment's keys would not fit under `max_entries`.
pub fn add_to_map(
    map: &mut HashMap<KeyHash, i64>,
    slice: &SegmentSlice,
    max_entries: usize,
) -> io::Result<bool> {
    let mut staged: Vec<(KeyHash, i64)> = Vec::new();
    for (h, bytes) in batches(slice)? {
        if h.is_control() {
            continue;
        }
        let Some(records) = records_of(&bytes) else {
            continue;
        };
        for r in records {
            if let Some(k) = &r.key {
                staged.push((key_hash(k), r.offset));
            }
        }
    }
    let new_keys = staged.iter().filter(|(k, _)| !map.contains_key(k)).count();
    if map.len() + new_keys > max_entries {
        return Ok(false);
    }
    for (k, o) in staged {
        let e = map.entry(k).or_insert(o);
        *e = (*e).max(o);
    }
    Ok(true)
}

/// What compacting one segment did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub records_kept: usize,
    pub records_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn compression_of(h: &BatchHeader) -> Compression {
    match h.compression_codec() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Writes a compacted copy of a segment to `dest` (made by `Log::create_cleaned`): records
/// superseded by a later record with the same key are dropped, and tombstones whose batch is
/// older than `tombstone_cutoff_ms`.
pub fn compact_segment(
    slice: &SegmentSlice,
    map: &HashMap<KeyHash, i64>,
    tombstone_cutoff_ms: i64,
    dest: std::fs::File,
) -> io::Result<Compacted> {
    let mut out = io::BufWriter::new(dest);
    let mut stats = Compacted {
        bytes_before: slice.end,
        ..Default::default()
    };
    for (h, bytes) in batches(slice)? {
        let records = if h.is_control() {
            None
        } else {
            records_of(&bytes)
        };
        let Some(records) = records else {
            // Control batches and batches we cannot decode are kept as they are.
            out.write_all(&bytes)?;
            stats.bytes_after += bytes.len() as u64;
            continue;
        };
        let total = records.len();
        let expired_tombstones = h.max_timestamp < tombstone_cutoff_ms;
        let mut kept: Vec<Record> = records
            .into_iter()
            .filter(|r| match &r.key {
                None => true,
                Some(k) => {
                    let latest = map.get(&key_hash(k)).is_none_or(|o| *o == r.offset);
                    latest && !(r.value.is_none() && expired_tombstones)
                }
            })
            .collect();
        stats.records_kept += kept.len();
        stats.records_removed += total - kept.len();
        if kept.len() == total {
            out.write_all(&bytes)?;
            stats.bytes_after += bytes.len() as u64;
            continue;
        }
        if kept.is_empty() {
            continue;
        }
        let log_append = h.attributes & TIMESTAMP_TYPE_LOG_APPEND != 0;
        for r in kept.iter_mut() {
            r.partition_leader_epoch = h.partition_leader_epoch;
            if log_append {
                // The broker's append time is the batch's max timestamp; keep it.
                r.timestamp = h.max_timestamp;
                r.timestamp_type = TimestampType::LogAppend;
            }
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &kept,
            &RecordEncodeOptions {
                version: 2,
                compression: compression_of(&h),
            },
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        out.write_all(&buf)?;
        stats.bytes_after += buf.len() as u64;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(stats)
}

/// Where a segment's compacted copy is written before it replaces the original.
pub fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!(
        "{}.cleaned",
        super::segment::file_name(base, "log")
    ))
}
