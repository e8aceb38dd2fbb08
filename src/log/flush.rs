//! What a sync of a log must cover, taken under the partition's lock and run outside it (on a
//! blocking thread), so appends never wait for a disk.

use std::io;
use std::path::PathBuf;

use super::durable;
use super::files::FileRef;

/// The log's directory with entries (segments created, renamed, removed) not yet synced, and
/// how many changes the sync covers.
#[derive(Debug, Clone)]
pub struct DirSync {
    pub dir: PathBuf,
    pub changes: u64,
}

impl DirSync {
    /// Blocking.
    pub fn run(&self) -> io::Result<()> {
        durable::sync_dir(&self.dir)
    }
}

/// Everything that must reach stable storage for the log to be durable up to `upto`.
pub struct FlushJob {
    /// Segments' data files; a sealed one is opened here if the cache let it go.
    pub files: Vec<FileRef>,
    /// A just-rolled segment is lost on power failure unless its directory entry is synced too.
    pub dir: Option<DirSync>,
    /// The log end offset when the job was taken: everything below it is durable once it ran.
    pub upto: i64,
}

impl FlushJob {
    /// Syncs the files' data, then the directory. Blocking.
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.get()?.sync_data()?;
        }
        match &self.dir {
            Some(d) => d.run(),
            None => Ok(()),
        }
    }
}
