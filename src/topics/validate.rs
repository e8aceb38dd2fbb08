//! What a produced batch must satisfy before it is stored, in one place: the checks Kafka makes
//! in `UnifiedLog.analyzeAndValidateRecords` and `LogValidator`, with the same error codes.
//!
//! 1. exactly one RecordBatch v2 (older formats: UNSUPPORTED_FOR_MESSAGE_FORMAT; more than one
//!    batch: INVALID_RECORD), whole (CORRUPT_MESSAGE), within `max.message.bytes`
//!    (MESSAGE_TOO_LARGE), with base offset 0 (INVALID_RECORD) and a valid CRC
//!    (CORRUPT_MESSAGE);
//! 2. a header that agrees with itself: a positive record count equal to lastOffsetDelta + 1,
//!    not a control batch, a sequence number when it has a producer id (INVALID_RECORD);
//!    transactions are not supported here (INVALID_TXN_STATE);
//! 3. the records themselves, walked as Kafka's validator iterates them: exactly the declared
//!    number, offset deltas 0, 1, 2, …, every length inside its record and nothing after the
//!    last one (INVALID_RECORD). Compressed records are decompressed as a stream within
//!    [`DECOMPRESSION_FACTOR`] × `max.message.bytes` (past it: MESSAGE_TOO_LARGE; a stream that
//!    does not decompress: CORRUPT_MESSAGE);
//! 4. on a compacted topic, a key on every record (INVALID_RECORD, with the record indexes);
//! 5. with CreateTime, every record's timestamp within `message.timestamp.before.max.ms` before
//!    and `message.timestamp.after.max.ms` after the broker's clock (INVALID_TIMESTAMP, with
//!    the record indexes). Records without a timestamp (-1) pass, as in Kafka.
//!
//! A batch that fails is never stored and moves no offset. Kafka rewrites record offsets it
//! finds out of sequence inside compressed batches (for pre-v2 clients); we only take v2, whose
//! producers always number records 0, 1, 2, …, and refuse anything else.

use kafka_protocol::ResponseError;

use super::config::TopicSettings;
use super::partition::ProduceError;
use crate::log::batch::{self, BatchError, BatchHeader};
use crate::log::records::{self, Deltas, RecordsError};

/// How many times `max.message.bytes` a batch's records may take once decompressed. Kafka has
/// no such limit; without one a megabyte of zstd can stand for gigabytes. Producers size
/// batches by their (estimated) compressed size, and real data rarely compresses better than
/// 1:20, so this leaves room for very compressible batches while bounding the work a bomb
/// costs. The decompressors stream: memory stays a small window whatever the limit.
pub const DECOMPRESSION_FACTOR: usize = 64;

/// The least decompression limit, for topics with a very small `max.message.bytes`.
const MIN_DECOMPRESSION_LIMIT: usize = 1 << 20;

/// How many bytes the records of one batch may decompress to on a topic.
pub fn decompression_limit(settings: &TopicSettings) -> usize {
    settings
        .max_message_bytes
        .saturating_mul(DECOMPRESSION_FACTOR)
        .max(MIN_DECOMPRESSION_LIMIT)
}

/// Checks a produce request's records for one partition and returns the batch's header.
/// `now_ms` is the broker's clock, for the timestamp bounds.
pub fn validate_records(
    records: &[u8],
    settings: &TopicSettings,
    now_ms: i64,
) -> Result<BatchHeader, ProduceError> {
    let header = check_framing(records, settings)?;
    check_header(&header)?;
    check_records(records, &header, settings, now_ms)?;
    Ok(header)
}

/// Step 1: one whole v2 batch within the size limit, with a valid CRC.
fn check_framing(records: &[u8], settings: &TopicSettings) -> Result<BatchHeader, ProduceError> {
    use ResponseError::{CorruptMessage, InvalidRecord, MessageTooLarge};
    if records.is_empty() {
        return Err(ProduceError::new(InvalidRecord, "empty record set"));
    }
    let header = match BatchHeader::parse(records) {
        Ok(h) => h,
        Err(BatchError::UnsupportedMagic(m)) => {
            return Err(ProduceError::new(
                ResponseError::UnsupportedForMessageFormat,
                format!("message format v{m} is not supported; use RecordBatch v2"),
            ))
        }
        Err(e) => return Err(ProduceError::new(CorruptMessage, e.to_string())),
    };
    let size = header.total_size();
    if size > settings.max_message_bytes {
        return Err(ProduceError::new(
            MessageTooLarge,
            format!(
                "batch of {size} bytes exceeds max.message.bytes {}",
                settings.max_message_bytes
            ),
        ));
    }
    if size < records.len() {
        return Err(ProduceError::new(
            InvalidRecord,
            "produce requests must contain exactly one record batch",
        ));
    }
    if size > records.len() {
        return Err(ProduceError::new(
            CorruptMessage,
            "record batch is truncated",
        ));
    }
    if header.base_offset != 0 {
        return Err(ProduceError::new(
            InvalidRecord,
            format!(
                "the base offset of a produced batch must be 0, not {}",
                header.base_offset
            ),
        ));
    }
    batch::validate(records).map_err(|e| ProduceError::new(CorruptMessage, e.to_string()))?;
    Ok(header)
}

/// Step 2: the header's own fields.
fn check_header(header: &BatchHeader) -> Result<(), ProduceError> {
    use ResponseError::InvalidRecord;
    if header.record_count <= 0 || header.record_count as i64 != header.last_offset_delta as i64 + 1
    {
        return Err(ProduceError::new(
            InvalidRecord,
            format!(
                "record count {} does not match lastOffsetDelta {}",
                header.record_count, header.last_offset_delta
            ),
        ));
    }
    if header.is_control() {
        return Err(ProduceError::new(
            InvalidRecord,
            "clients may not produce control batches",
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(ProduceError::new(
            InvalidRecord,
            format!(
                "invalid sequence number {} in a batch of producer {}",
                header.base_sequence, header.producer_id
            ),
        ));
    }
    if header.is_transactional() {
        return Err(ProduceError::new(
            ResponseError::InvalidTxnState,
            "transactions are not supported by this broker",
        ));
    }
    Ok(())
}

/// Steps 3 to 5: the records, their keys on a compacted topic, their timestamps.
fn check_records(
    records: &[u8],
    header: &BatchHeader,
    settings: &TopicSettings,
    now_ms: i64,
) -> Result<(), ProduceError> {
    let mut keyless = Vec::new();
    let mut untimely = Vec::new();
    let compact = settings.compact;
    // LogAppendTime replaces every timestamp; otherwise the bounds apply.
    let bounds = (!settings.log_append_time).then(|| {
        (
            now_ms.saturating_sub(settings.timestamp_before_max_ms),
            now_ms.saturating_add(settings.timestamp_after_max_ms),
        )
    });
    records::walk(
        records,
        header,
        Deltas::Consecutive,
        decompression_limit(settings),
        |r| {
            if compact && !r.has_key {
                keyless.push(r.index);
            }
            if let Some((earliest, latest)) = bounds {
                let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
                if ts != NO_TIMESTAMP && !(earliest..=latest).contains(&ts) {
                    untimely.push((r.index, ts));
                }
            }
        },
    )
    .map_err(|e| {
        let code = match e {
            RecordsError::Invalid { .. }
            | RecordsError::OffsetDelta { .. }
            | RecordsError::Trailing { .. } => ResponseError::InvalidRecord,
            RecordsError::UnknownCodec(_) | RecordsError::Decompress(_) => {
                ResponseError::CorruptMessage
            }
            // A producer that gets this splits the batch and tries again (Java client).
            RecordsError::TooLarge(_) => ResponseError::MessageTooLarge,
        };
        ProduceError::new(code, e.to_string())
    })?;
    if !keyless.is_empty() {
        // Compaction keeps the latest record per key: a record without one has no place.
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
    if let (Some((earliest, latest)), false) = (bounds, untimely.is_empty()) {
        let mut e = ProduceError::new(
            ResponseError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp",
        );
        e.record_errors = untimely
            .into_iter()
            .map(|(i, ts)| {
                (
                    i,
                    format!(
                        "Timestamp {ts} of record {i} is outside [{earliest}, {latest}] \
                         (message.timestamp.before.max.ms / message.timestamp.after.max.ms)"
                    ),
                )
            })
            .collect();
        return Err(e);
    }
    Ok(())
}

/// A record timestamp that says there is none.
const NO_TIMESTAMP: i64 = -1;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::records::Compression;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::batch::tests::{fix_crc, set_count};
    use crate::log::records::tests::{batch, bomb, record};

    /// The broker's clock in these tests; their records are stamped 1000 + i.
    const NOW: i64 = 1_700_000_000_000;

    fn settings(overrides: &[(&str, &str)]) -> TopicSettings {
        let broker = BrokerConfig::from_pairs(BTreeMap::new()).unwrap();
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicSettings::resolve(&overrides, &broker)
    }

    fn code(records: &[u8], settings: &TopicSettings) -> Option<ResponseError> {
        validate_records(records, settings, NOW)
            .err()
            .map(|e| e.error)
    }

    #[test]
    fn good_batches_pass_under_every_codec() {
        let s = settings(&[]);
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(codec, &[record(0, Some(b"k"), b"a"), record(1, None, b"b")]);
            let h = validate_records(&b, &s, NOW).unwrap_or_else(|e| panic!("{codec:?}: {e:?}"));
            assert_eq!((h.record_count, h.last_offset_delta), (2, 1));
        }
    }

    #[test]
    fn a_batch_claiming_more_records_than_it_holds_is_invalid() {
        let s = settings(&[]);
        for codec in [Compression::None, Compression::Zstd] {
            let mut b = batch(codec, &[record(0, None, b"only one")]);
            set_count(&mut b, i32::MAX, i32::MAX - 1);
            let e = validate_records(&b, &s, NOW).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidRecord, "{codec:?}");
            assert!(e.message.contains("fewer records"), "{}", e.message);
            // Count and lastOffsetDelta that disagree are refused from the header alone.
            set_count(&mut b, 1, 5);
            assert_eq!(code(&b, &s), Some(ResponseError::InvalidRecord));
        }
    }

    #[test]
    fn header_rules_follow_kafka() {
        let s = settings(&[]);
        let good = batch(Compression::None, &[record(0, None, b"x")]);
        // Base offset other than 0.
        let mut b = good.clone();
        b[7] = 5;
        assert_eq!(code(&b, &s), Some(ResponseError::InvalidRecord));
        // A producer id without a sequence.
        let mut b = good.clone();
        b[43..51].copy_from_slice(&7i64.to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        fix_crc(&mut b);
        assert_eq!(code(&b, &s), Some(ResponseError::InvalidRecord));
        // A control batch.
        let mut b = good.clone();
        b[22] |= 0x20;
        fix_crc(&mut b);
        assert_eq!(code(&b, &s), Some(ResponseError::InvalidRecord));
        // A bad CRC.
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(code(&b, &s), Some(ResponseError::CorruptMessage));
        // Two batches.
        assert_eq!(
            code(&[good.clone(), good.clone()].concat(), &s),
            Some(ResponseError::InvalidRecord)
        );
        assert_eq!(code(&good, &s), None);
    }

    #[test]
    fn compressed_trouble_gets_kafka_codes() {
        let s = settings(&[]);
        // 8 MiB of zeros in a few hundred bytes, on a topic whose limit is the 1 MiB floor.
        let small = settings(&[("max.message.bytes", "1000")]);
        assert_eq!(decompression_limit(&small), MIN_DECOMPRESSION_LIMIT);
        let b = bomb(Compression::Zstd, 8 << 20);
        assert!(b.len() < 1000);
        assert_eq!(code(&b, &small), Some(ResponseError::MessageTooLarge));
        assert_eq!(code(&b, &s), None);
        assert!(decompression_limit(&s) >= s.max_message_bytes * DECOMPRESSION_FACTOR);
        // Undecodable compressed bytes.
        let good = batch(Compression::Gzip, &[record(0, None, b"x")]);
        let mut b = crate::log::batch::tests::with_records(&good, b"not gzip");
        set_count(&mut b, 1, 0);
        assert_eq!(code(&b, &s), Some(ResponseError::CorruptMessage));
    }

    #[test]
    fn compacted_topics_name_the_records_without_a_key() {
        let s = settings(&[("cleanup.policy", "compact")]);
        let b = batch(
            Compression::Lz4,
            &[
                record(0, Some(b"k"), b"a"),
                record(1, None, b"b"),
                record(2, None, b"c"),
            ],
        );
        let e = validate_records(&b, &s, NOW).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidRecord);
        let indexes: Vec<i32> = e.record_errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2]);
        assert_eq!(code(&b, &settings(&[])), None);
    }

    fn untimely(b: &[u8], s: &TopicSettings, now: i64) -> Vec<i32> {
        match validate_records(b, s, now) {
            Ok(_) => Vec::new(),
            Err(e) => {
                assert_eq!(e.error, ResponseError::InvalidTimestamp, "{e:?}");
                e.record_errors.iter().map(|(i, _)| *i).collect()
            }
        }
    }

    #[test]
    fn create_times_must_lie_within_the_topics_bounds() {
        // Stamped 1000, 1001, 1002.
        let b = batch(
            Compression::Zstd,
            &[
                record(0, None, b"a"),
                record(1, None, b"b"),
                record(2, None, b"c"),
            ],
        );
        // Kafka 4's default: up to an hour ahead, any time before.
        let s = settings(&[]);
        assert_eq!(untimely(&b, &s, 1002 - 3_600_000), Vec::<i32>::new());
        assert_eq!(untimely(&b, &s, 1001 - 3_600_000), [2]);
        assert_eq!(untimely(&b, &s, i64::MAX), Vec::<i32>::new());
        let s = settings(&[("message.timestamp.before.max.ms", "0")]);
        assert_eq!(untimely(&b, &s, 1001), [0]);
        let s = settings(&[("message.timestamp.after.max.ms", "0")]);
        assert_eq!(untimely(&b, &s, 1000), [1, 2]);
        // LogAppendTime replaces the timestamps: no bounds.
        let s = settings(&[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "0"),
            ("message.timestamp.after.max.ms", "0"),
        ]);
        assert_eq!(untimely(&b, &s, 0), Vec::<i32>::new());
        // A record without a timestamp (-1) passes whatever the bounds.
        let none = batch(
            Compression::None,
            &[kafka_protocol::records::Record {
                timestamp: -1,
                ..record(0, None, b"a")
            }],
        );
        let s = settings(&[("message.timestamp.before.max.ms", "0")]);
        assert_eq!(untimely(&none, &s, NOW), Vec::<i32>::new());
    }

    #[test]
    fn the_broker_keys_set_the_timestamp_bounds_of_topics_without_their_own() {
        let broker = BrokerConfig::from_pairs(BTreeMap::from([(
            "log.message.timestamp.after.max.ms".to_string(),
            "5".to_string(),
        )]))
        .unwrap();
        let s = TopicSettings::resolve(&BTreeMap::new(), &broker);
        assert_eq!(
            (s.timestamp_after_max_ms, s.timestamp_before_max_ms),
            (5, i64::MAX)
        );
        let own = BTreeMap::from([(
            "message.timestamp.after.max.ms".to_string(),
            "7".to_string(),
        )]);
        assert_eq!(
            TopicSettings::resolve(&own, &broker).timestamp_after_max_ms,
            7
        );
    }
}
