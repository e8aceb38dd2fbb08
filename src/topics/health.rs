//! Whether the data directory can still be trusted.
//!
//! A failed fsync cannot be retried into a success: the kernel may already have dropped the
//! dirty pages it could not write, so a later fsync that succeeds proves nothing about them.
//! As Kafka does, the directory goes offline at the first such failure: its partitions answer
//! KAFKA_STORAGE_ERROR and DescribeLogDirs reports it until the broker restarts (and recovers
//! the logs from what is really on disk). A full disk or a lack of descriptors is different:
//! nothing was lost, so those requests fail and the next ones may succeed.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::error;

#[derive(Default)]
pub struct DirHealth {
    offline: AtomicBool,
}

impl DirHealth {
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Takes the directory offline for good (until a restart); said once, in the log.
    pub fn fail(&self, dir: &Path, what: &str, err: &dyn std::fmt::Display) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            error!(
                dir = %dir.display(),
                error = %err,
                "log directory offline: {what} failed; its partitions answer KAFKA_STORAGE_ERROR until the broker restarts"
            );
        }
    }

    /// Whether a failed write leaves the directory usable: a full disk, a quota or a lack of
    /// descriptors lost nothing and may pass; anything else (an I/O error) may have.
    pub fn transient(err: &io::Error) -> bool {
        matches!(
            err.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EMFILE) | Some(libc::ENFILE)
        )
    }
}
