//! Model-based tests: random sequences of appends, rolls, reads, timestamp lookups, reopens and
//! torn tails, checked against a plain in-memory list of batches.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::batch::tests::test_batch;
use super::batch::{self, RewrittenHeader, HEADER_LEN};
use super::segment::read_header;
use super::{Log, LogConfig, LogError};

/// A batch as the log should hold it.
#[derive(Clone, PartialEq, Eq)]
struct Stored {
    base: i64,
    last: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let crc = crc32c::crc32c(&self.bytes);
        write!(
            f,
            "[{}..={} ts {} len {} crc {crc:08x}]",
            self.base,
            self.last,
            self.max_ts,
            self.bytes.len()
        )
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<Stored>,
    /// The log end offset: an empty newest segment keeps its base offset after a cut.
    end: i64,
    /// Offsets below this were synced by `sync_all`, so a power loss cannot take them.
    durable: i64,
    /// Batches were lost before later ones that survived.
    holes: bool,
}

impl Model {
    fn next_offset(&self) -> i64 {
        self.end
    }

    /// Index of the batch holding `offset`.
    fn holding(&self, offset: i64) -> Option<usize> {
        self.batches.iter().position(|b| b.last >= offset)
    }

    fn first_at_or_after_time(&self, ts: i64) -> Option<&Stored> {
        self.batches.iter().find(|b| b.max_ts >= ts)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: i32,
        ts: i64,
        log_append_time: bool,
        epoch: i32,
    },
    Roll,
    /// Advances the clock, which may trigger time-based rolls.
    Tick(i64),
    /// Reads from offset `pick % (end + 1)`: any offset of the log, or its end.
    Read {
        pick: u64,
    },
    FindTime {
        ts: i64,
    },
    Reopen {
        clean: bool,
    },
    /// Simulates a power loss: a segment holding data not yet synced loses part of that data
    /// from its end (at a batch boundary or not), then the log is reopened.
    TornTail {
        segment: u64,
        cut: u64,
        at_boundary: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (1..150i32, 0..1000i64, proptest::bool::weighted(0.2), 0..3i32).prop_map(
            |(count, ts, log_append_time, epoch)| Op::Append {
                count,
                ts,
                log_append_time,
                epoch
            }
        ),
        1 => Just(Op::Roll),
        1 => (0..2000i64).prop_map(Op::Tick),
        3 => any::<u64>().prop_map(|pick| Op::Read { pick }),
        3 => (-5..1100i64).prop_map(|ts| Op::FindTime { ts }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (any::<u64>(), any::<u64>(), proptest::bool::weighted(0.3)).prop_map(
            |(segment, cut, at_boundary)| Op::TornTail {
                segment,
                cut,
                at_boundary
            }
        ),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (64..4000u64, 500..5000i64, 0..2000u64).prop_map(
        |(segment_bytes, segment_ms, index_interval_bytes)| LogConfig {
            segment_bytes,
            segment_ms,
            index_interval_bytes,
        },
    )
}

/// Reads every batch from `offset` to the log end the way a fetch does: find the batch holding
/// the offset, then take whole batches from each slice in turn.
fn read_from(log: &Log, offset: i64) -> Result<Vec<Stored>, String> {
    let mut out = Vec::new();
    let mut at = offset;
    while let Some(slice) = log.slice_from(at).map_err(|e| e.to_string())? {
        let Some((pos, first)) = slice.find_offset(at).map_err(|e| e.to_string())? else {
            // A fetch ends here: nothing to return until more is appended.
            break;
        };
        if first.last_offset() < at {
            return Err(format!("batch {first:?} does not reach offset {at}"));
        }
        let bytes = slice
            .read(pos, slice.end - pos)
            .map_err(|e| e.to_string())?;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let h = batch::BatchHeader::parse(rest).map_err(|e| e.to_string())?;
            let whole = rest
                .get(..h.total_size())
                .ok_or_else(|| format!("partial batch at slice end: {h:?}"))?;
            batch::validate(whole).map_err(|e| format!("stored batch is invalid: {e}"))?;
            out.push(Stored {
                base: h.base_offset,
                last: h.last_offset(),
                max_ts: h.max_timestamp,
                bytes: whole.to_vec(),
            });
            at = h.last_offset() + 1;
            rest = &rest[h.total_size()..];
        }
        if out.len() > 100_000 {
            return Err("reading does not terminate".into());
        }
    }
    Ok(out)
}

/// The first batch with a max timestamp ≥ `ts`, as ListOffsets finds it.
fn find_time(log: &Log, ts: i64) -> Option<(i64, i64)> {
    if let Some(slice) = log.slice_for_time(ts).unwrap() {
        if let Some((pos, h)) = slice.find_timestamp(ts).unwrap() {
            assert_eq!(read_header(&slice.file, pos).unwrap(), h);
            return Some((h.base_offset, h.max_timestamp));
        }
    }
    None
}

fn check_whole(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_offset(), model.next_offset());
    prop_assert_eq!(log.log_start_offset(), 0);
    let all = read_from(log, 0).map_err(TestCaseError::fail)?;
    // Offsets are contiguous from the log start, except where the model has lost batches.
    let mut expect = 0;
    for b in &all {
        if !model.holes {
            prop_assert_eq!(b.base, expect, "offset gap or overlap");
        } else {
            prop_assert!(b.base >= expect, "offsets overlap at {}", b.base);
        }
        expect = b.last + 1;
    }
    prop_assert_eq!(&all, &model.batches);
    let max = model.batches.iter().map(|b| b.max_ts).max();
    match (log.max_timestamp(), max) {
        (None, None) => {}
        (Some((ts, base)), Some(max)) => {
            prop_assert_eq!(ts, max, "max timestamp");
            let holder = model.batches.iter().find(|b| b.base == base);
            prop_assert!(
                holder.is_some_and(|b| b.max_ts == max),
                "max timestamp {} reported at offset {}, whose batch does not hold it",
                ts,
                base
            );
        }
        (got, want) => prop_assert!(false, "max timestamp {:?}, expected {:?}", got, want),
    }
    Ok(())
}

/// The segment files in `dir`, oldest first: base offset, path, length.
fn segment_files(dir: &Path) -> Vec<(i64, PathBuf, u64)> {
    let mut segs: Vec<(i64, PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let base = p
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            let len = std::fs::metadata(&p).unwrap().len();
            Some((base, p, len))
        })
        .collect();
    segs.sort();
    segs
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Option<Log>,
    model: Model,
    now: i64,
}

impl Harness {
    fn log(&mut self) -> &mut Log {
        self.log.as_mut().expect("log is open")
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.log = None;
        let log = Log::open(self.dir.path(), self.config, self.now)
            .map_err(|e| TestCaseError::fail(format!("reopen failed: {e}")))?;
        self.log = Some(log);
        Ok(())
    }

    /// Cuts the tail of one segment holding unsynced batches, as a power loss may, and updates
    /// the model to what the reopened log must hold.
    fn tear(&mut self, pick: u64, cut: u64, at_boundary: bool) {
        let segments = segment_files(self.dir.path());
        // Per segment: its base offset, path and length, where its unsynced data starts, and the
        // end positions of its unsynced batches.
        let mut candidates = Vec::new();
        for (i, (base, path, len)) in segments.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(i64::MAX, |s| s.0);
            let mut pos = 0;
            let mut from = None;
            let mut ends = Vec::new();
            for b in &self.model.batches {
                if b.base < *base || b.base >= next_base {
                    continue;
                }
                if b.base >= self.model.durable && from.is_none() {
                    from = Some(pos);
                }
                pos += b.bytes.len() as u64;
                if from.is_some() {
                    ends.push(pos);
                }
            }
            if let Some(from) = from.filter(|f| f < len) {
                candidates.push((*base, next_base, path.clone(), *len, from, ends));
            }
        }
        if candidates.is_empty() {
            return;
        }
        let (base, next_base, path, len, from, ends) =
            &candidates[(pick % candidates.len() as u64) as usize];
        let new_len = if at_boundary {
            let mut cuts = vec![*from];
            cuts.extend(ends.iter().copied().filter(|e| e < len));
            cuts[(cut % cuts.len() as u64) as usize]
        } else {
            from + cut % (len - from)
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        // Batches of the cut segment no longer wholly in the file are lost. A batch cut in two is
        // damage: the log drops everything after it, later segments included. A cut at a batch
        // boundary looks like a shorter segment: as in Kafka, later segments stay and the lost
        // offsets become a hole.
        let torn = new_len != *from && !ends.contains(&new_len);
        let later_kept = !torn && *next_base != i64::MAX;
        let mut pos = 0u64;
        let before = self.model.batches.len();
        self.model.batches.retain(|b| {
            if b.base < *base || (b.base >= *next_base && !torn) {
                return true;
            }
            if b.base >= *next_base {
                return false;
            }
            pos += b.bytes.len() as u64;
            pos <= new_len
        });
        if later_kept && self.model.batches.len() < before {
            self.model.holes = true;
        }
        if torn || *next_base == i64::MAX {
            self.model.end = self
                .model
                .batches
                .last()
                .map_or(*base, |b| (b.last + 1).max(*base));
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Append {
                count,
                ts,
                log_append_time,
                epoch,
            } => {
                let b = test_batch(0, count, ts);
                let h = batch::validate(&b).unwrap();
                let append_time = log_append_time.then_some(self.now);
                let now = self.now;
                let a = self
                    .log()
                    .append(&b, &h, append_time, epoch, now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let base = self.model.next_offset();
                prop_assert_eq!(a.base_offset, base);
                prop_assert_eq!(a.last_offset, base + count as i64 - 1);
                prop_assert!(!a.duplicate);
                let mut header = RewrittenHeader::new(&b, base, epoch);
                if let Some(t) = append_time {
                    header.set_log_append_time(&b[HEADER_LEN..], t);
                }
                let mut bytes = header.bytes.to_vec();
                bytes.extend_from_slice(&b[HEADER_LEN..]);
                self.model.end = a.last_offset + 1;
                self.model.batches.push(Stored {
                    base,
                    last: a.last_offset,
                    max_ts: append_time.unwrap_or(ts),
                    bytes,
                });
            }
            Op::Roll => {
                let now = self.now;
                self.log()
                    .roll(now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Tick(ms) => self.now += ms,
            Op::Read { pick } => {
                let end = self.model.next_offset();
                let offset = (pick % (end as u64 + 1)) as i64;
                let log = self.log.as_ref().unwrap();
                let got = read_from(log, offset).map_err(TestCaseError::fail)?;
                let want = match self.model.holding(offset) {
                    Some(i) => self.model.batches[i..].to_vec(),
                    None => Vec::new(),
                };
                prop_assert_eq!(got, want, "reading from offset {}", offset);
                prop_assert!(
                    matches!(
                        log.slice_from(end + 1),
                        Err(LogError::OffsetOutOfRange { .. })
                    ),
                    "offset past the end must be out of range"
                );
            }
            Op::FindTime { ts } => {
                let log = self.log.as_ref().unwrap();
                let want = self
                    .model
                    .first_at_or_after_time(ts)
                    .map(|b| (b.base, b.max_ts));
                prop_assert_eq!(find_time(log, ts), want, "timestamp lookup for {}", ts);
            }
            Op::Reopen { clean } => {
                if clean {
                    self.log()
                        .sync_all()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    self.model.durable = self.model.next_offset();
                }
                self.reopen()?;
            }
            Op::TornTail {
                segment,
                cut,
                at_boundary,
            } => {
                self.log = None;
                self.tear(segment, cut, at_boundary);
                self.reopen()?;
            }
        }
        check_whole(self.log.as_ref().unwrap(), &self.model)
    }
}

fn run(config: LogConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config, 0).unwrap();
    let mut h = Harness {
        dir,
        config,
        log: Some(log),
        model: Model::default(),
        now: 0,
    };
    for op in ops {
        h.apply(op)?;
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES=5000 for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        // Failing seeds are kept beside this file (model_tests.proptest-regressions), so they
        // re-run first and travel with the code.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(config in config(), ops in proptest::collection::vec(op(), 1..60)) {
        run(config, &ops)?;
    }
}

fn append_one(log: &mut Log, ts: i64) {
    let b = test_batch(0, 1, ts);
    let h = batch::validate(&b).unwrap();
    log.append(&b, &h, None, 0, 0).unwrap();
}

/// A sealed segment's newest timestamp may sit after its last index entry; reopening must not
/// lose it, or lookups by time skip the segment.
#[test]
fn sealed_segment_keeps_its_max_timestamp_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    append_one(&mut log, 10);
    append_one(&mut log, 20);
    log.roll(0).unwrap();
    append_one(&mut log, 5);
    log.sync_all().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config, 0).unwrap();
    assert_eq!(log.max_timestamp(), Some((20, 1)));
    assert_eq!(find_time(&log, 15), Some((1, 20)));
}

/// Segments that lost all their bytes in a crash leave a hole; reads from inside it must reach
/// the data after it.
#[test]
fn reads_cross_a_hole_of_empty_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    for ts in 0..4 {
        append_one(&mut log, ts);
        log.roll(0).unwrap();
    }
    drop(log);
    for base in [1, 2] {
        let path = dir.path().join(super::segment::file_name(base, "log"));
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    let log = Log::open(dir.path(), config, 0).unwrap();
    assert_eq!(log.next_offset(), 4);
    let read: Vec<i64> = read_from(&log, 1).unwrap().iter().map(|b| b.base).collect();
    assert_eq!(read, [3]);
}

/// Compaction can empty whole segments: a reader starting in the first of two emptied segments
/// must still reach the records after them.
#[test]
fn reads_cross_segments_emptied_by_compaction() {
    use super::cleaner;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let keyed = |ts: i64| {
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: 0,
            timestamp: ts,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &[r], &opts).unwrap();
        buf.to_vec()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for ts in 0..4 {
        let b = keyed(ts);
        let h = batch::validate(&b).unwrap();
        log.append(&b, &h, None, 0, 0).unwrap();
        log.roll(0).unwrap();
    }
    // Offsets 0, 1 and 2 sit in sealed segments of their own; the key's latest is 3.
    let sealed = log.sealed_segments();
    let mut map = std::collections::HashMap::new();
    for (_, sealed, _) in &sealed {
        assert!(cleaner::add_to_map(&mut map, &sealed.slice().unwrap(), 100).unwrap());
    }
    for (base, sealed, _) in &sealed {
        let slice = &sealed.slice().unwrap();
        let dest = log.create_cleaned(*base).unwrap();
        cleaner::compact_segment(slice, &map, 0, dest).unwrap();
        assert!(log.replace_segment(*base, slice.end, 0).unwrap());
    }
    let read: Vec<i64> = read_from(&log, 0).unwrap().iter().map(|b| b.base).collect();
    assert_eq!(read, [3]);
}
