//! Making changes to files and directories survive power loss.
//!
//! A file's own fsync does not make its directory entry durable: after creating, renaming or
//! removing a file the directory holding it must be synced as well, or a crash can bring back
//! the old entry (or lose the new file) although its bytes were synced.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Syncs a directory, making the creation, renaming and removal of its entries durable.
/// Blocking: call it off the async workers.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    tests::record(dir);
    File::open(dir)?.sync_all()
}

/// Syncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Writes `contents` to `path` atomically: a copy is written and synced, renamed over `path`,
/// and the directory synced, so a crash leaves the old or the new contents, never a mix.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

#[cfg(test)]
pub mod tests {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        /// Directories synced on this thread, so tests can check a change was made durable.
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn record(dir: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    }

    /// The directories synced on this thread since the last call.
    pub fn take_synced() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    #[test]
    fn write_atomic_syncs_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        take_synced();
        super::write_atomic(&dir.path().join("f"), b"x").unwrap();
        assert_eq!(take_synced(), [dir.path().to_path_buf()]);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"x");
    }
}
