//! A read-only view of a RecordBatch v2 header (magic 2), parsed from raw bytes.
//!
//! The log stores batches exactly as producers sent them; only the header fields below are ever
//! read or rewritten, so records are never decoded on the produce or fetch path.

use thiserror::Error;

/// Bytes before the first record of a v2 batch.
pub const HEADER_LEN: usize = 61;
/// Bytes that precede the `length` field's coverage (baseOffset + length).
pub const LOG_OVERHEAD: usize = 12;

const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// Attribute bit 3: the batch's timestamps are the broker's append time.
pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 1 << 3;
/// Attribute bit 4: part of a transaction.
pub const TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit 5: a control batch (transaction markers).
pub const CONTROL: i16 = 1 << 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch is truncated: {available} bytes available, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("message format v{0} is not supported (only RecordBatch v2)")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid batch header: {0}")]
    Invalid(&'static str),
}

/// The fixed-size header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// The `length` field: bytes after the length field itself.
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Only the header bytes need to be present.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < MAGIC_AT + 1 {
            return Err(BatchError::Truncated {
                available: buf.len(),
                needed: MAGIC_AT + 1,
            });
        }
        let length = be_i32(buf, LENGTH_AT);
        let magic = buf[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                available: buf.len(),
                needed: HEADER_LEN,
            });
        }
        if (length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::InvalidLength(length));
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            length,
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            record_count: be_i32(buf, RECORD_COUNT_AT),
        };
        if header.last_offset_delta < 0 {
            return Err(BatchError::Invalid("negative lastOffsetDelta"));
        }
        if header.record_count < 0 {
            return Err(BatchError::Invalid("negative record count"));
        }
        // The offset after the batch must exist: `last_offset() + 1` never overflows.
        let last = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta));
        if last.and_then(|l| l.checked_add(1)).is_none() {
            return Err(BatchError::Invalid("last offset overflows"));
        }
        Ok(header)
    }

    /// Total bytes the batch occupies, header included.
    pub fn total_size(&self) -> usize {
        self.length as usize + LOG_OVERHEAD
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & 0x07
    }
}

/// CRC32C of a whole batch as stored in its header: it covers attributes to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Parses and validates one complete batch occupying exactly `batch`.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_size() != batch.len() {
        return Err(BatchError::Truncated {
            available: batch.len(),
            needed: header.total_size(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// The header of a batch about to be appended, with the fields the broker assigns rewritten.
/// The records that follow the header are written untouched from the producer's buffer.
pub struct RewrittenHeader {
    pub bytes: [u8; HEADER_LEN],
}

impl RewrittenHeader {
    /// Sets the base offset and leader epoch. Neither is covered by the CRC.
    pub fn new(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Self {
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&batch[..HEADER_LEN]);
        bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
        bytes[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
        RewrittenHeader { bytes }
    }

    /// Marks the batch as LogAppendTime with the broker's clock; the CRC is recomputed over the
    /// new header tail and the unchanged records.
    pub fn set_log_append_time(&mut self, records: &[u8], now_ms: i64) {
        let attrs = be_i16(&self.bytes, ATTRIBUTES_AT) | TIMESTAMP_TYPE_LOG_APPEND;
        self.bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..]), records);
        self.bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal valid uncompressed batch with `count` empty-ish records for tests.
    pub fn test_batch(base_offset: i64, count: i32, timestamp: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            // record: length varint, attributes, tsDelta varint, offsetDelta varint,
            // keyLen varint(-1), valueLen varint(1) value, headers varint(0)
            let body = [0u8, 0, (i as u8) << 1, 1, 2, b'x', 0];
            records.push((body.len() as u8) << 1);
            records.extend_from_slice(&body);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&base_offset.to_be_bytes());
        let length = (HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        b[MAGIC_AT] = 2;
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
        b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
        b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = compute_crc(&b);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Rewrites the record count and lastOffsetDelta of a batch and fixes its CRC: a batch
    /// whose header lies about its records but is otherwise intact.
    pub fn set_count(batch: &mut [u8], count: i32, last_offset_delta: i32) {
        batch[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&last_offset_delta.to_be_bytes());
        fix_crc(batch);
    }

    /// Recomputes the CRC after a test changed the batch.
    pub fn fix_crc(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Replaces everything after the header with `records` and fixes length and CRC.
    pub fn with_records(batch: &[u8], records: &[u8]) -> Vec<u8> {
        let mut b = batch[..HEADER_LEN].to_vec();
        b.extend_from_slice(records);
        let length = (b.len() - LOG_OVERHEAD) as i32;
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        fix_crc(&mut b);
        b
    }

    #[test]
    fn parses_and_validates() {
        let b = test_batch(0, 3, 1000);
        let h = validate(&b).unwrap();
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.total_size(), b.len());
    }

    #[test]
    fn detects_corruption() {
        let mut b = test_batch(0, 3, 1000);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
        let mut old = test_batch(0, 1, 0);
        old[MAGIC_AT] = 1;
        assert_eq!(validate(&old), Err(BatchError::UnsupportedMagic(1)));
        assert!(matches!(
            validate(&b[..30]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let b = test_batch(0, 2, 1000);
        let mut h = RewrittenHeader::new(&b, 42, 0);
        h.set_log_append_time(&b[HEADER_LEN..], 5000);
        let mut out = h.bytes.to_vec();
        out.extend_from_slice(&b[HEADER_LEN..]);
        let parsed = validate(&out).unwrap();
        assert_eq!(parsed.base_offset, 42);
        assert_eq!(parsed.max_timestamp, 5000);
        assert_ne!(parsed.attributes & TIMESTAMP_TYPE_LOG_APPEND, 0);
    }
}
