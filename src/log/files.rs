//! Open data files of sealed segments, bounded.
//!
//! Each partition's active segment keeps its files open; a segment that is no longer written
//! opens its data file when it is read, through this cache, and the least recently used file
//! is closed when the cache is full. So neither many partitions nor a small `segment.bytes`
//! can run the process out of descriptors. A reader holding a file keeps it open until it is
//! done, whether or not the cache still holds it.
//!
//! The cache is split into shards by segment, so partitions read at once rarely meet on a lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const SHARDS: usize = 16;

/// How many sealed segments' data files stay open when nothing is configured.
pub const DEFAULT_CAPACITY: usize = 1000;

/// A segment's data file: open while the segment is written, opened on demand once sealed.
#[derive(Clone)]
pub enum FileRef {
    Open(Arc<File>),
    Sealed(Arc<SealedFile>),
}

impl FileRef {
    /// The open file. Blocking: a sealed segment's file may have to be opened.
    pub fn get(&self) -> io::Result<Arc<File>> {
        match self {
            FileRef::Open(f) => Ok(f.clone()),
            FileRef::Sealed(s) => cache().get(s),
        }
    }

    /// Seals a written file: from now on it is opened read-only, through the cache, which
    /// starts out holding it (a just-sealed segment is the likeliest to be read next).
    pub fn seal(&self, path: &Path) -> FileRef {
        match self {
            FileRef::Sealed(_) => self.clone(),
            FileRef::Open(f) => {
                let sealed = Arc::new(SealedFile {
                    id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                    path: path.to_path_buf(),
                });
                cache().insert(sealed.id, f.clone());
                FileRef::Sealed(sealed)
            }
        }
    }
}

/// A sealed segment's data file, by path. When the last reference goes (the segment was
/// removed or replaced and no reader holds it), the cache lets go of its descriptor.
pub struct SealedFile {
    id: u64,
    path: PathBuf,
}

impl Drop for SealedFile {
    fn drop(&mut self) {
        cache().forget(self.id);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static CACHE: OnceLock<FileCache> = OnceLock::new();
static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_CAPACITY);

/// Sets how many sealed segments' files stay open at once; takes effect before the first use.
pub fn set_capacity(files: usize) {
    CAPACITY.store(files.max(1), Ordering::Relaxed);
}

/// Raises the process's soft limit on open descriptors to its hard limit (as the JVM does for
/// Kafka) and sizes the cache to a quarter of it, within [16, 4096]: the rest is for
/// connections and the active segments (three descriptors each). Returns (limit, capacity).
pub fn size_to_descriptor_limit() -> (u64, usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let limit = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            1024
        } else {
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            lim.rlim_cur
        }
    };
    let capacity = (limit / 4).clamp(16, 4096) as usize;
    set_capacity(capacity);
    (limit, capacity)
}

/// Sealed segments' files open in the cache now.
pub fn open_count() -> usize {
    CACHE.get().map(|c| c.len()).unwrap_or(0)
}

fn cache() -> &'static FileCache {
    CACHE.get_or_init(|| FileCache::new(CAPACITY.load(Ordering::Relaxed)))
}

struct FileCache {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    capacity: usize,
    /// Segment id → its open file and when it was last used.
    files: HashMap<u64, (Arc<File>, u64)>,
    clock: u64,
}

impl FileCache {
    fn new(capacity: usize) -> FileCache {
        let shards = SHARDS.min(capacity.max(1));
        let per_shard = capacity.max(1).div_ceil(shards);
        FileCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        capacity: per_shard,
                        ..Shard::default()
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, Shard> {
        let i = (id % self.shards.len() as u64) as usize;
        // The critical sections below cannot leave a shard inconsistent.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, sealed: &SealedFile) -> io::Result<Arc<File>> {
        {
            let mut shard = self.shard(sealed.id);
            shard.clock += 1;
            let now = shard.clock;
            if let Some((file, used)) = shard.files.get_mut(&sealed.id) {
                *used = now;
                return Ok(file.clone());
            }
        }
        // Opened outside the shard's lock: others in the shard need not wait for the disk.
        let file = Arc::new(OpenOptions::new().read(true).open(&sealed.path)?);
        self.insert(sealed.id, file.clone());
        Ok(file)
    }

    fn insert(&self, id: u64, file: Arc<File>) {
        let mut shard = self.shard(id);
        shard.clock += 1;
        let now = shard.clock;
        if !shard.files.contains_key(&id) && shard.files.len() >= shard.capacity {
            // Shards are small (the capacity over 16): a scan costs less than keeping order.
            if let Some(oldest) = shard
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
            {
                shard.files.remove(&oldest);
            }
        }
        shard.files.insert(id, (file, now));
    }

    fn forget(&self, id: u64) {
        self.shard(id).files.remove(&id);
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.files.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(dir: &Path, name: &str, id: u64) -> SealedFile {
        let path = dir.join(name);
        std::fs::write(&path, name).unwrap();
        SealedFile { id, path }
    }

    #[test]
    fn holds_at_most_its_capacity_and_drops_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        // One shard of three.
        let cache = FileCache::new(3);
        assert_eq!(cache.shards.len(), 3);
        let cache = FileCache {
            shards: vec![Mutex::new(Shard {
                capacity: 3,
                ..Shard::default()
            })],
        };
        let files: Vec<SealedFile> = (0..5)
            .map(|i| sealed(dir.path(), &format!("f{i}"), 1_000_000 + i))
            .collect();
        for f in &files[..3] {
            cache.get(f).unwrap();
        }
        assert_eq!(cache.len(), 3);
        // f0 used again: f1 is now the least recently used and goes first.
        cache.get(&files[0]).unwrap();
        cache.get(&files[3]).unwrap();
        assert_eq!(cache.len(), 3);
        let held: Vec<u64> = {
            let shard = cache.shard(0);
            let mut ids: Vec<u64> = shard.files.keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(held, vec![1_000_000, 1_000_002, 1_000_003]);
        // A file whose entry was evicted is opened again, with the same contents.
        let again = cache.get(&files[1]).unwrap();
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut &*again, &mut buf).unwrap();
        assert_eq!(buf, "f1");
        cache.forget(1_000_001);
        assert_eq!(cache.len(), 2);
        // A reader keeps a file it holds readable after eviction and after the file's removal.
        let held = cache.get(&files[4]).unwrap();
        std::fs::remove_file(&files[4].path).unwrap();
        cache.forget(1_000_004);
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut &*held, &mut buf).unwrap();
        assert_eq!(buf, "f4");
        // Gone from disk and from the cache: opening fails, as a read of a removed segment must.
        assert!(cache.get(&files[4]).is_err());
    }
}
