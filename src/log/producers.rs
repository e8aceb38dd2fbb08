//! Idempotent producers' state per partition: for each producer id, its epoch and the sequence
//! ranges and offsets of its last five batches, so a retried batch is recognised and answered
//! with its original offsets instead of being written twice.
//!
//! The state is rebuilt from batch headers after a restart (from a snapshot written at clean
//! shutdown, plus whatever follows it in the log).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;

use super::batch::BatchHeader;

/// Batches remembered per producer, as Kafka does (max.in.flight is at most 5).
pub const REMEMBERED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// Max timestamp of the producer's last batch, for expiry.
    pub last_timestamp: i64,
}

/// Why an idempotent batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceError {
    /// The batch's epoch is older than the producer's current one.
    StaleEpoch,
    /// A gap or a reordering of sequence numbers.
    OutOfOrder,
    /// No state for this producer and the batch does not start a sequence.
    UnknownProducer,
}

/// The outcome of checking a batch against its producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not an idempotent batch, or the next in sequence: write it.
    Append,
    /// Already written: answer with these offsets and write nothing.
    Duplicate(BatchMeta),
}

fn last_seq_of(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX, as Kafka's do.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn follows(last: i32, next: i32) -> bool {
    next == if last == i32::MAX { 0 } else { last + 1 }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Producers {
    entries: HashMap<i64, ProducerEntry>,
}

impl Producers {
    /// Checks an incoming batch. Only batches with a producer id are checked.
    pub fn check(&self, h: &BatchHeader) -> Result<Check, SequenceError> {
        if h.producer_id < 0 {
            return Ok(Check::Append);
        }
        let Some(entry) = self.entries.get(&h.producer_id) else {
            return if h.base_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(SequenceError::UnknownProducer)
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch);
        }
        if h.producer_epoch > entry.epoch {
            // A new epoch restarts the sequence.
            return if h.base_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(SequenceError::OutOfOrder)
            };
        }
        let last = last_seq_of(h);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return Ok(Check::Duplicate(*dup));
        }
        match entry.batches.back() {
            Some(prev) if follows(prev.last_seq, h.base_sequence) => Ok(Check::Append),
            None if h.base_sequence == 0 => Ok(Check::Append),
            _ => Err(SequenceError::OutOfOrder),
        }
    }

    /// Records a batch that was written at `base_offset..=last_offset`.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, last_offset: i64) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .entries
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: h.max_timestamp,
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            base_offset,
            last_offset,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
    }

    /// Forgets producers whose last batch is older than `cutoff_ms` (producer.id.expiration.ms).
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.last_timestamp >= cutoff_ms);
        before - self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Serialises the state: a count, then per producer its id, epoch, last timestamp and
    /// batches. Big-endian, like everything else on disk.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for (pid, e) in &self.entries {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses what [`encode`](Self::encode) wrote; `None` if it is damaged.
    pub fn decode(buf: &[u8]) -> Option<Producers> {
        if buf.len() < 8 {
            return None;
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = body;
        let mut take = |n: usize| -> Option<&[u8]> {
            if r.len() < n {
                return None;
            }
            let (a, b) = r.split_at(n);
            r = b;
            Some(a)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut entries = HashMap::new();
        for _ in 0..count {
            let pid = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let last_timestamp = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let n = take(1)?[0];
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    last_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    base_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                    last_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                });
            }
            entries.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        Some(Producers { entries })
    }
}

/// Snapshot file name: the log end offset it describes, as Kafka names `.snapshot` files.
pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// Finds the newest snapshot in `dir`: (offset, path).
pub fn latest_snapshot(dir: &Path) -> io::Result<Option<(i64, std::path::PathBuf)>> {
    let mut best = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let offset = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".snapshot"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(o) = offset {
            if best.as_ref().is_none_or(|(b, _)| o > *b) {
                best = Some((o, path));
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 10,
            max_timestamp: 10,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut p = Producers::default();
        let b0 = header(7, 0, 0, 3);
        assert_eq!(p.check(&b0), Ok(Check::Append));
        p.record(&b0, 100, 102);
        let b1 = header(7, 0, 3, 2);
        assert_eq!(p.check(&b1), Ok(Check::Append));
        p.record(&b1, 103, 104);
        // A retry of b0 is a duplicate with its original offsets.
        assert_eq!(
            p.check(&b0),
            Ok(Check::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            }))
        );
        assert_eq!(p.check(&header(7, 0, 9, 1)), Err(SequenceError::OutOfOrder));
        assert_eq!(
            p.check(&header(8, 0, 5, 1)),
            Err(SequenceError::UnknownProducer)
        );
        assert_eq!(p.check(&header(7, 1, 0, 1)), Ok(Check::Append));
        p.record(&header(7, 1, 0, 1), 105, 105);
        assert_eq!(p.check(&header(7, 0, 5, 1)), Err(SequenceError::StaleEpoch));
        for i in 1..10 {
            let h = header(7, 1, i, 1);
            assert_eq!(p.check(&h), Ok(Check::Append));
            p.record(&h, 105 + i as i64, 105 + i as i64);
        }
        // Only the last five batches are remembered.
        assert_eq!(p.check(&header(7, 1, 1, 1)), Err(SequenceError::OutOfOrder));
        let decoded = Producers::decode(&p.encode()).unwrap();
        assert_eq!(decoded, p);
        let mut bad = p.encode();
        bad[5] ^= 1;
        assert!(Producers::decode(&bad).is_none());
        assert_eq!(p.expire(11), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn sequence_wraps() {
        let mut p = Producers::default();
        let mut h = header(1, 0, 0, 1);
        p.record(&h, 0, 0);
        h.base_sequence = i32::MAX - 1;
        h.last_offset_delta = 1;
        p.entries
            .get_mut(&1)
            .unwrap()
            .batches
            .back_mut()
            .unwrap()
            .last_seq = i32::MAX - 2;
        assert_eq!(p.check(&h), Ok(Check::Append));
        p.record(&h, 1, 2);
        assert_eq!(p.check(&header(1, 0, 0, 1)), Ok(Check::Append));
    }
}
