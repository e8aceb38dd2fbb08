//! Producer ids for idempotent producers: unique and never reused, also across restarts.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any id of
//! it is used, so after a restart (clean or not) allocation resumes past everything issued.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;

const BLOCK: i64 = 1000;
const FILE: &str = "producer_ids";
/// Producers whose epoch can be bumped by a repeated InitProducerId; older ones get a new id.
const REMEMBERED: usize = 100_000;

struct Alloc {
    next: i64,
    block_end: i64,
    epochs: IndexMap<i64, i16>,
}

pub struct ProducerIds {
    path: PathBuf,
    alloc: Mutex<Alloc>,
}

impl ProducerIds {
    pub fn open(data_dir: &Path) -> std::io::Result<ProducerIds> {
        let path = data_dir.join(FILE);
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => crate::config::properties::parse(&text)
                .into_iter()
                .find(|(k, _)| k == "next.block")
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            alloc: Mutex::new(Alloc {
                next,
                block_end: next,
                epochs: IndexMap::new(),
            }),
        })
    }

    /// InitProducerId for a non-transactional producer. A producer presenting the id and epoch
    /// it was last given gets the epoch bumped (KIP-360); anyone else gets a new id, epoch 0.
    pub fn init(&self, producer_id: i64, epoch: i16) -> std::io::Result<(i64, i16)> {
        let mut a = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        if producer_id >= 0
            && epoch >= 0
            && a.epochs.get(&producer_id) == Some(&epoch)
            && epoch < i16::MAX - 1
        {
            a.epochs.insert(producer_id, epoch + 1);
            return Ok((producer_id, epoch + 1));
        }
        if a.next >= a.block_end {
            let end = a.next + BLOCK;
            crate::topics::store::write_atomic(
                &self.path,
                format!("next.block={end}\n").as_bytes(),
            )?;
            a.block_end = end;
        }
        let id = a.next;
        a.next += 1;
        a.epochs.insert(id, 0);
        if a.epochs.len() > REMEMBERED {
            a.epochs.shift_remove_index(0);
        }
        Ok((id, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_across_restarts_and_bumps_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let (a, ea) = ids.init(-1, -1).unwrap();
        let (b, _) = ids.init(-1, -1).unwrap();
        assert_ne!(a, b);
        assert_eq!(ids.init(a, ea).unwrap(), (a, 1));
        // A stale epoch is not bumped: a new id.
        let (c, ec) = ids.init(a, 0).unwrap();
        assert!(c != a && ec == 0);
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        let (d, _) = ids.init(-1, -1).unwrap();
        assert!(d > c, "ids are never reused after a restart: {d} vs {c}");
    }
}
