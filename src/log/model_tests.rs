//! Model-based tests: random sequences of appends, rolls, reads, timestamp lookups, reopens and
//! torn tails, checked against a plain in-memory list of batches.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::batch::tests::test_batch;
use super::batch::{self, RewrittenHeader, HEADER_LEN};
use super::segment::read_header;
use super::{Log, LogConfig, LogError};

/// A batch as the log should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    base: i64,
    last: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<Stored>,
}

impl Model {
    fn next_offset(&self) -> i64 {
        self.batches.last().map(|b| b.last + 1).unwrap_or(0)
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
    /// Reads from `start + pick % (end - start + 1)`.
    Read {
        pick: u64,
    },
    FindTime {
        ts: i64,
    },
    Reopen {
        clean: bool,
    },
    /// Cuts `1 + cut % size` bytes off the newest non-empty segment, then reopens.
    TornTail {
        cut: u64,
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
        1 => any::<u64>().prop_map(|cut| Op::TornTail { cut }),
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
            return Err(format!("no batch at or after offset {at} in its slice"));
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
    for slice in log.slices_for_time(ts) {
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
    // Contiguous offsets from the log start.
    let mut expect = 0;
    for b in &all {
        prop_assert_eq!(b.base, expect, "offset gap or overlap");
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

/// Path of the newest segment file that holds any bytes.
fn newest_nonempty_segment(dir: &Path) -> Option<(i64, PathBuf, u64)> {
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
    // Only the newest segment can be cut: rebuilt older ones are trusted as sealed.
    segs.pop().filter(|s| s.2 > 0)
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
                }
                self.reopen()?;
            }
            Op::TornTail { cut } => {
                self.log = None;
                if let Some((base, path, len)) = newest_nonempty_segment(self.dir.path()) {
                    let new_len = len - (1 + cut % len);
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(new_len).unwrap();
                    // Keep the batches of this segment that still lie wholly in the file.
                    let mut pos = 0u64;
                    self.model.batches.retain(|b| {
                        if b.base < base {
                            return true;
                        }
                        pos += b.bytes.len() as u64;
                        pos <= new_len
                    });
                }
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
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(config in config(), ops in proptest::collection::vec(op(), 1..60)) {
        run(config, &ops)?;
    }
}
