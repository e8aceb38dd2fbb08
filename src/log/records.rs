//! Walking the records inside a RecordBatch v2 without building them, to check that a batch
//! holds what its header says before it is stored.
//!
//! Each record is `length varint` then, within those bytes: attributes (1), timestampDelta
//! (varlong), offsetDelta (varint), keyLength (varint, negative for null) and key, valueLength
//! and value, a header count (varint) and per header a key length, key, value length and value.
//! The walk reads lengths and skips the bytes they cover; nothing is allocated per record.
//!
//! Compressed records are read through a streaming decompressor that stops after `limit`
//! bytes of output, so a batch that decompresses to gigabytes (a "bomb") costs at most `limit`
//! bytes of work and a bounded decoder window, never the size it claims.

use std::io::{BufRead, BufReader, Read};

use thiserror::Error;

use super::batch::{BatchHeader, HEADER_LEN};

/// Largest zstd window accepted (2^24 = 16 MiB): every standard compression level up to 19
/// fits; a frame asking for more is refused instead of being given that much memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Snappy cannot expand input by more than this factor (a 3-byte copy element writes at most
/// 64 bytes); a block claiming more is corrupt and gets no buffer of the claimed size.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// How far a stored batch may decompress when it is read back (compaction, ListOffsets by
/// time, loading group state). Every batch was held to its topic's own limit when produced;
/// this only has to be above any of those in practice, and keeps data written before that
/// check existed from costing more.
pub const STORED_LIMIT: usize = 1 << 30;

/// What is wrong with a batch's records.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordsError {
    /// The records do not match the header or are malformed (Kafka: InvalidRecordException).
    #[error("record {index}: {what}")]
    Invalid { index: i32, what: &'static str },
    #[error("record {index} has offset delta {delta}, expected {index}")]
    OffsetDelta { index: i32, delta: i32 },
    #[error("the batch holds more records than its count of {count}")]
    Trailing { count: i32 },
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    #[error("cannot decompress the records: {0}")]
    Decompress(String),
    #[error("the records decompress to more than {0} bytes")]
    TooLarge(usize),
}

/// What the offset deltas of a batch's records must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deltas {
    /// 0, 1, 2, …: a batch as a producer writes it.
    Consecutive,
    /// Anything: a stored batch, which compaction may have thinned out.
    Any,
}

/// What the walk learns about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    pub index: i32,
    pub has_key: bool,
    /// The record's timestamp less the batch's base timestamp.
    pub timestamp_delta: i64,
}

/// Walks the records of `batch`, a whole v2 batch whose header `header` has been checked,
/// calling `each` for every record. The batch must hold exactly `header.record_count` records,
/// with offset deltas as `deltas` says, and nothing after them. Compressed records may take at
/// most `limit` bytes once decompressed.
pub fn walk(
    batch: &[u8],
    header: &BatchHeader,
    deltas: Deltas,
    limit: usize,
    each: impl FnMut(RecordInfo),
) -> Result<(), RecordsError> {
    let records = batch.get(HEADER_LEN..).unwrap_or_default();
    let count = header.record_count;
    match header.compression_codec() {
        0 => walk_input(
            &mut SliceInput {
                buf: records,
                at: 0,
            },
            count,
            deltas,
            each,
        ),
        1 => {
            let decoder = flate2::read::MultiGzDecoder::new(records);
            walk_input(&mut StreamInput::new(decoder, limit), count, deltas, each)
        }
        2 => {
            let decoder = SnappyReader::new(records, limit)?;
            walk_input(&mut StreamInput::new(decoder, limit), count, deltas, each)
        }
        3 => {
            let decoder = lz4::Decoder::new(records).map_err(decompress_error)?;
            walk_input(&mut StreamInput::new(decoder, limit), count, deltas, each)
        }
        4 => walk_input(
            &mut StreamInput::new(zstd_decoder(records)?, limit),
            count,
            deltas,
            each,
        ),
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

/// The records section of a batch compressed with `codec`, decompressed whole; at most
/// `limit` bytes of output.
pub fn decompress(records: &[u8], codec: i16, limit: usize) -> Result<Vec<u8>, RecordsError> {
    fn read_all(r: impl Read, limit: usize) -> Result<Vec<u8>, RecordsError> {
        let mut out = Vec::new();
        r.take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(decompress_error)?;
        if out.len() > limit {
            return Err(RecordsError::TooLarge(limit));
        }
        Ok(out)
    }
    match codec {
        0 => Ok(records.to_vec()),
        1 => read_all(flate2::read::MultiGzDecoder::new(records), limit),
        2 => read_all(SnappyReader::new(records, limit)?, limit),
        3 => read_all(lz4::Decoder::new(records).map_err(decompress_error)?, limit),
        4 => read_all(zstd_decoder(records)?, limit),
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

/// Snappy in Kafka's framing (snappy-java's stream format), which every client reads.
pub fn snappy_framed(raw: &[u8]) -> Result<Vec<u8>, RecordsError> {
    // snappy-java's block size.
    const BLOCK: usize = 32 * 1024;
    let mut out = Vec::with_capacity(SNAPPY_HEADER_LEN + raw.len() / 2);
    out.extend_from_slice(SNAPPY_MAGIC);
    // Version 1, compatible with version 1, as snappy-java writes them.
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in raw.chunks(BLOCK) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| RecordsError::Decompress(e.to_string()))?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// A zstd decoder that refuses windows above [`ZSTD_WINDOW_LOG_MAX`].
fn zstd_decoder(records: &[u8]) -> Result<zstd::stream::read::Decoder<'_, &[u8]>, RecordsError> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(records).map_err(decompress_error)?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(decompress_error)?;
    Ok(decoder)
}

/// A decompressor's way of saying the output would pass the limit.
#[derive(Debug, Error)]
#[error("the decompression limit of {0} bytes is reached")]
struct LimitReached(usize);

/// The records of a stored batch, decoded by kafka-protocol — only once [`walk`] has shown the
/// batch holds what its counts say, since the crate reserves room for the record count and for
/// each record's header count before reading them. `None` for a batch that fails either.
pub fn decode_stored(batch: &bytes::Bytes) -> Option<Vec<kafka_protocol::records::Record>> {
    let header = super::batch::validate(batch).ok()?;
    walk(batch, &header, Deltas::Any, STORED_LIMIT, |_| {}).ok()?;
    let mut buf = batch.clone();
    kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .ok()
        .map(|set| set.records)
}

fn decompress_error(e: std::io::Error) -> RecordsError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitReached>())
    {
        Some(LimitReached(limit)) => RecordsError::TooLarge(*limit),
        None => RecordsError::Decompress(e.to_string()),
    }
}

/// Where record bytes come from: the batch itself, or a decompressor.
trait Input {
    /// The next byte, `None` at the end.
    fn byte(&mut self) -> Result<Option<u8>, RecordsError>;
    /// Skips `n` bytes; false if fewer remain.
    fn skip(&mut self, n: usize) -> Result<bool, RecordsError>;
    /// Bytes read so far.
    fn position(&self) -> usize;
}

struct SliceInput<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Input for SliceInput<'_> {
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let b = self.buf.get(self.at).copied();
        self.at += b.is_some() as usize;
        Ok(b)
    }
    fn skip(&mut self, n: usize) -> Result<bool, RecordsError> {
        if n > self.buf.len() - self.at {
            return Ok(false);
        }
        self.at += n;
        Ok(true)
    }
    fn position(&self) -> usize {
        self.at
    }
}

/// Decompressed bytes through a small buffer, refused past `limit`.
struct StreamInput<R: Read> {
    reader: BufReader<std::io::Take<R>>,
    limit: usize,
    at: usize,
}

impl<R: Read> StreamInput<R> {
    fn new(decoder: R, limit: usize) -> Self {
        StreamInput {
            // One byte past the limit tells "exactly at the limit" from "over it".
            reader: BufReader::with_capacity(16 * 1024, decoder.take(limit as u64 + 1)),
            limit,
            at: 0,
        }
    }

    fn over_limit(&self) -> Result<(), RecordsError> {
        if self.at > self.limit {
            return Err(RecordsError::TooLarge(self.limit));
        }
        Ok(())
    }
}

impl<R: Read> Input for StreamInput<R> {
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let buf = self.reader.fill_buf().map_err(decompress_error)?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.reader.consume(1);
        self.at += 1;
        self.over_limit()?;
        Ok(Some(b))
    }
    fn skip(&mut self, mut n: usize) -> Result<bool, RecordsError> {
        while n > 0 {
            let buf = self.reader.fill_buf().map_err(decompress_error)?;
            if buf.is_empty() {
                return Ok(false);
            }
            let step = buf.len().min(n);
            self.reader.consume(step);
            self.at += step;
            n -= step;
            self.over_limit()?;
        }
        Ok(true)
    }
    fn position(&self) -> usize {
        self.at
    }
}

/// One record at a time, checking each length against the record's own size.
struct Record<'i, I: Input> {
    input: &'i mut I,
    index: i32,
    start: usize,
    size: usize,
}

impl<I: Input> Record<'_, I> {
    fn invalid(&self, what: &'static str) -> RecordsError {
        RecordsError::Invalid {
            index: self.index,
            what,
        }
    }

    fn used(&self) -> usize {
        self.input.position() - self.start
    }

    fn byte(&mut self) -> Result<u8, RecordsError> {
        if self.used() >= self.size {
            return Err(self.invalid("a field runs past the record's length"));
        }
        match self.input.byte()? {
            Some(b) => Ok(b),
            None => Err(self.invalid("the batch ends inside the record")),
        }
    }

    /// A zigzag varint of at most `max_bytes` bytes.
    fn varint(&mut self, max_bytes: u32) -> Result<i64, RecordsError> {
        zigzag(max_bytes, || self.byte())?.ok_or(self.invalid("varint too long"))
    }

    fn int(&mut self) -> Result<i32, RecordsError> {
        let v = self.varint(5)?;
        i32::try_from(v).map_err(|_| self.invalid("varint out of range"))
    }

    fn skip(&mut self, n: i32) -> Result<(), RecordsError> {
        let n = n as usize;
        if n > self.size - self.used() {
            return Err(self.invalid("a field runs past the record's length"));
        }
        if !self.input.skip(n)? {
            return Err(self.invalid("the batch ends inside the record"));
        }
        Ok(())
    }
}

/// Reads a zigzag varint of at most `max_bytes` bytes from `next`; `None` if it is longer.
fn zigzag<E>(max_bytes: u32, mut next: impl FnMut() -> Result<u8, E>) -> Result<Option<i64>, E> {
    let mut raw = 0u64;
    for i in 0..max_bytes {
        let b = next()?;
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((raw >> 1) as i64 ^ -((raw & 1) as i64)));
        }
    }
    Ok(None)
}

fn walk_input<I: Input>(
    input: &mut I,
    count: i32,
    deltas: Deltas,
    mut each: impl FnMut(RecordInfo),
) -> Result<(), RecordsError> {
    for index in 0..count {
        let invalid = |what| RecordsError::Invalid { index, what };
        let Some(first) = input.byte()? else {
            return Err(invalid("the batch holds fewer records than its count"));
        };
        let mut first = Some(first);
        let length = zigzag(5, || match first.take() {
            Some(b) => Ok(b),
            None => input
                .byte()?
                .ok_or(invalid("the batch ends inside a record length")),
        })?
        .ok_or(invalid("varint too long"))?;
        let size = usize::try_from(length).map_err(|_| invalid("negative record length"))?;
        let start = input.position();
        let mut r = Record {
            input: &mut *input,
            index,
            start,
            size,
        };
        r.byte()?; // attributes: unused in v2
        let timestamp_delta = r.varint(10)?;
        let delta = r.int()?;
        if deltas == Deltas::Consecutive && delta != index {
            return Err(RecordsError::OffsetDelta { index, delta });
        }
        let key_len = r.int()?;
        if key_len >= 0 {
            r.skip(key_len)?;
        }
        let value_len = r.int()?;
        if value_len >= 0 {
            r.skip(value_len)?;
        }
        let headers = r.int()?;
        if headers < 0 {
            return Err(r.invalid("negative header count"));
        }
        // Each header takes at least two bytes of the record, so the loop ends with the record.
        for _ in 0..headers {
            let key_len = r.int()?;
            if key_len < 0 {
                return Err(r.invalid("negative header key length"));
            }
            r.skip(key_len)?;
            let value_len = r.int()?;
            if value_len >= 0 {
                r.skip(value_len)?;
            }
        }
        if r.used() != size {
            return Err(r.invalid("the record is longer than its fields"));
        }
        each(RecordInfo {
            index,
            has_key: key_len >= 0,
            timestamp_delta,
        });
    }
    if input.byte()?.is_some() {
        return Err(RecordsError::Trailing { count });
    }
    Ok(())
}

/// Kafka's snappy framing (that of snappy-java): a 16-byte header, then blocks of a 4-byte
/// big-endian length and a raw snappy block. Without the header the whole input is one raw
/// block, as snappy-java also accepts.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    at: usize,
    /// Output still allowed; a block claiming more is refused before it gets a buffer.
    budget: usize,
    limit: usize,
}

const SNAPPY_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const SNAPPY_HEADER_LEN: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: usize) -> Result<Self, RecordsError> {
        let framed = input.starts_with(SNAPPY_MAGIC);
        if framed && input.len() < SNAPPY_HEADER_LEN {
            return Err(RecordsError::Decompress("truncated snappy header".into()));
        }
        Ok(SnappyReader {
            input: if framed {
                &input[SNAPPY_HEADER_LEN..]
            } else {
                input
            },
            framed,
            block: Vec::new(),
            at: 0,
            budget: limit.saturating_add(1),
            limit,
        })
    }

    /// Decompresses the next block; false at the end of the input.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            if self.input.len() < 4 {
                return Err(invalid("truncated snappy block length"));
            }
            let len =
                u32::from_be_bytes([self.input[0], self.input[1], self.input[2], self.input[3]])
                    as usize;
            let rest = &self.input[4..];
            if len > rest.len() {
                return Err(invalid("truncated snappy block"));
            }
            self.input = &rest[len..];
            &rest[..len]
        } else {
            std::mem::take(&mut self.input)
        };
        let claimed = snap::raw::decompress_len(compressed).map_err(|e| invalid(&e.to_string()))?;
        if claimed
            > compressed
                .len()
                .saturating_mul(SNAPPY_MAX_EXPANSION)
                .saturating_add(64)
        {
            return Err(invalid("snappy block claims more than it can hold"));
        }
        // Past the budget the stream is refused anyway: decompress only what the limit allows
        // to be seen, so that the refusal costs no more than the limit.
        if claimed > self.budget {
            return Err(std::io::Error::other(LimitReached(self.limit)));
        }
        self.budget -= claimed;
        self.block.clear();
        self.block.resize(claimed, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| invalid(&e.to_string()))?;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::log::batch::tests::{set_count, with_records};
    use crate::log::batch::BatchHeader;

    const LIMIT: usize = 1 << 20;

    pub fn record(i: i64, key: Option<&'static [u8]>, value: &[u8]) -> Record {
        let mut headers = indexmap::IndexMap::new();
        if i % 2 == 1 {
            headers.insert(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            );
        }
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // The encoder starts a new batch where offset - sequence changes.
            sequence: i as i32 - 1,
            timestamp: 1000 + i,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::copy_from_slice(value)),
            headers,
        }
    }

    pub fn batch(compression: Compression, records: &[Record]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn three(compression: Compression) -> Vec<u8> {
        batch(
            compression,
            &[
                record(0, Some(b"k0"), b"first"),
                record(1, None, b"second"),
                record(2, Some(b"k2"), &[7u8; 300]),
            ],
        )
    }

    fn check(b: &[u8]) -> Result<Vec<RecordInfo>, RecordsError> {
        let header = BatchHeader::parse(b).unwrap();
        let mut seen = Vec::new();
        walk(b, &header, Deltas::Consecutive, LIMIT, |r| seen.push(r))?;
        Ok(seen)
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn walks_every_codec_and_sees_keys() {
        for codec in CODECS {
            let seen = check(&three(codec)).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            let keys: Vec<(i32, bool)> = seen.iter().map(|r| (r.index, r.has_key)).collect();
            assert_eq!(keys, [(0, true), (1, false), (2, true)], "{codec:?}");
        }
    }

    #[test]
    fn a_count_that_lies_is_refused_quickly() {
        for codec in CODECS {
            let one = batch(codec, &[record(0, None, b"x")]);
            for (count, delta) in [(i32::MAX, i32::MAX - 1), (2, 1)] {
                let mut b = one.clone();
                set_count(&mut b, count, delta);
                assert_eq!(
                    check(&b),
                    Err(RecordsError::Invalid {
                        index: 1,
                        what: "the batch holds fewer records than its count"
                    }),
                    "{codec:?}"
                );
            }
            // Fewer declared than present.
            let mut b = three(codec);
            set_count(&mut b, 2, 1);
            assert_eq!(
                check(&b),
                Err(RecordsError::Trailing { count: 2 }),
                "{codec:?}"
            );
        }
    }

    /// Uncompressed record bytes for hand-made records.
    fn raw(fields: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = fields.concat();
        let mut out = vec![(body.len() as u8) << 1];
        out.extend_from_slice(&body);
        out
    }

    // Zigzag encodings of small numbers.
    const ZERO: &[u8] = &[0];
    const ONE: &[u8] = &[2];
    const TWO: &[u8] = &[4];
    const NULL: &[u8] = &[1];

    #[test]
    fn malformed_records_are_refused() {
        let base = three(Compression::None);
        let good = raw(&[ZERO, ZERO, ZERO, NULL, ONE, b"v", ZERO]);
        let one = |records: &[u8]| {
            let mut b = with_records(&base, records);
            set_count(&mut b, 1, 0);
            check(&b)
        };
        assert!(one(&good).is_ok());
        // Offset delta 1 for the first record.
        let skipped = raw(&[ZERO, ZERO, ONE, NULL, ONE, b"v", ZERO]);
        assert_eq!(
            one(&skipped),
            Err(RecordsError::OffsetDelta { index: 0, delta: 1 })
        );
        // A value longer than the record.
        let long_value = raw(&[ZERO, ZERO, ZERO, NULL, &[40], b"v", ZERO]);
        assert!(matches!(
            one(&long_value),
            Err(RecordsError::Invalid { index: 0, .. })
        ));
        // A record length past the end of the batch.
        let mut past_end = good.clone();
        past_end[0] = 100;
        assert!(matches!(
            one(&past_end),
            Err(RecordsError::Invalid { index: 0, .. })
        ));
        // A record longer than its fields.
        let padded = raw(&[ZERO, ZERO, ZERO, NULL, ONE, b"v", ZERO, ZERO]);
        assert!(matches!(one(&padded), Err(RecordsError::Invalid { .. })));
        // Negative header count, negative header key length.
        let headers = raw(&[ZERO, ZERO, ZERO, NULL, NULL, NULL]);
        assert!(matches!(one(&headers), Err(RecordsError::Invalid { .. })));
        let header_key = raw(&[ZERO, ZERO, ZERO, NULL, NULL, TWO, NULL, ZERO]);
        assert!(matches!(
            one(&header_key),
            Err(RecordsError::Invalid { .. })
        ));
        // 2^31 headers announced in a 9-byte record: stops at the record's end.
        let many = raw(&[
            ZERO,
            ZERO,
            ZERO,
            NULL,
            NULL,
            &[0xfe, 0xff, 0xff, 0xff, 0x0f],
        ]);
        assert!(matches!(one(&many), Err(RecordsError::Invalid { .. })));
        // A six-byte varint.
        let varint = raw(&[ZERO, ZERO, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]]);
        assert!(matches!(one(&varint), Err(RecordsError::Invalid { .. })));
        // Negative record length.
        assert!(matches!(one(&[1]), Err(RecordsError::Invalid { .. })));
    }

    /// A batch header around compressed bytes of one record whose value is `value_len` zeros.
    pub fn bomb(codec: Compression, value_len: usize) -> Vec<u8> {
        let mut body = vec![0u8, 0, 0, 1]; // attributes, timestamp delta, offset delta, null key
        let mut len = [0u8; 5];
        let mut put = |v: i64, out: &mut Vec<u8>| {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            let mut n = 0;
            while z >= 0x80 {
                len[n] = z as u8 | 0x80;
                z >>= 7;
                n += 1;
            }
            len[n] = z as u8;
            out.extend_from_slice(&len[..=n]);
        };
        put(value_len as i64, &mut body);
        let record_len = body.len() + value_len + 1;
        let mut head = Vec::new();
        put(record_len as i64, &mut head);
        head.extend_from_slice(&body);
        let zeros = std::io::repeat(0).take(value_len as u64);
        let mut stream = head.chain(zeros).chain(&[0u8][..]);
        let compressed = match codec {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                std::io::copy(&mut stream, &mut e).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                std::io::copy(&mut stream, &mut e).unwrap();
                e.finish().unwrap()
            }
            Compression::Lz4 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                std::io::copy(&mut stream, &mut e).unwrap();
                let (out, result) = e.finish();
                result.unwrap();
                out
            }
            other => panic!("no bomb for {other:?}"),
        };
        let template = batch(codec, &[record(0, None, b"x")]);
        let mut b = with_records(&template, &compressed);
        set_count(&mut b, 1, 0);
        b
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        for codec in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
            // 64 MiB of zeros in a few kilobytes, checked against a 1 MiB limit.
            let b = bomb(codec, 64 << 20);
            assert!(b.len() < 512 << 10, "{codec:?}: {} bytes", b.len());
            let started = std::time::Instant::now();
            assert_eq!(check(&b), Err(RecordsError::TooLarge(LIMIT)), "{codec:?}");
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            // The same record within the limit is fine.
            assert!(check(&bomb(codec, 1000)).is_ok(), "{codec:?}");
        }
    }

    #[test]
    fn snappy_blocks_cannot_claim_more_than_they_hold() {
        let template = three(Compression::Snappy);
        // A raw block claiming 2^31 bytes from four bytes of input.
        let mut b = with_records(&template, &[0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0]);
        crate::log::batch::tests::fix_crc(&mut b);
        assert!(matches!(check(&b), Err(RecordsError::Decompress(_))));
        // Framed, with a block length past the end.
        let mut framed = SNAPPY_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        framed.extend_from_slice(&[0, 0, 0x10, 0, 1, 2]);
        let b = with_records(&template, &framed);
        assert!(matches!(check(&b), Err(RecordsError::Decompress(_))));
        // Garbage under every codec.
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let b = with_records(&three(codec), b"definitely not compressed");
            assert!(
                matches!(check(&b), Err(RecordsError::Decompress(_))),
                "{codec:?}"
            );
        }
        // An unknown codec.
        let mut b = three(Compression::None);
        b[22] |= 0x07;
        crate::log::batch::tests::fix_crc(&mut b);
        assert_eq!(check(&b), Err(RecordsError::UnknownCodec(7)));
    }

    #[test]
    fn stored_batches_are_walked_before_the_crate_decodes_them() {
        // Compaction leaves gaps between offsets: fine for a stored batch, not for a produced one.
        let thinned = batch(
            Compression::Lz4,
            &[
                record(0, Some(b"a"), b"x"),
                record(2, Some(b"b"), b"y"),
                record(5, Some(b"c"), b"z"),
            ],
        );
        let header = BatchHeader::parse(&thinned).unwrap();
        assert_eq!((header.record_count, header.last_offset_delta), (3, 5));
        let offsets: Vec<i64> = decode_stored(&Bytes::from(thinned.clone()))
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, [0, 2, 5]);
        assert!(matches!(
            check(&thinned),
            Err(RecordsError::OffsetDelta { index: 1, delta: 2 })
        ));
        // A stored batch claiming 2^31-1 records would make the crate reserve ~300 GB; it is
        // skipped instead.
        let mut lie = batch(Compression::None, &[record(0, None, b"one")]);
        set_count(&mut lie, i32::MAX, i32::MAX - 1);
        assert!(decode_stored(&Bytes::from(lie)).is_none());
    }

    #[test]
    fn the_walk_allocates_nothing_per_record() {
        // Uncompressed: no allocation at all, however many records.
        let many: Vec<Record> = (0..500).map(|i| record(i, Some(b"k"), b"v")).collect();
        let b = batch(Compression::None, &many);
        let header = BatchHeader::parse(&b).unwrap();
        let mut n = 0;
        let (result, allocations, _) = crate::alloc_meter::measure(|| {
            walk(&b, &header, Deltas::Consecutive, LIMIT, |_| n += 1)
        });
        assert_eq!(result, Ok(()));
        assert_eq!((n, allocations), (500, 0));
        // Compressed: the decoder's buffers, the same for 5 records as for 500.
        let few: Vec<Record> = (0..5).map(|i| record(i, Some(b"k"), b"v")).collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let count = |records: &[Record]| {
                let b = batch(codec, records);
                let header = BatchHeader::parse(&b).unwrap();
                let (result, allocations, _) = crate::alloc_meter::measure(|| {
                    walk(&b, &header, Deltas::Consecutive, LIMIT, |_| {})
                });
                assert_eq!(result, Ok(()), "{codec:?}");
                allocations
            };
            assert_eq!(count(&few), count(&many), "{codec:?}");
        }
    }
}
