//! Partition directories in the data directory: their names, the marker that says this broker
//! made one, the renaming of a deleted topic's directories for removal, and the start-up sweep
//! that removes what the broker left behind — and nothing else.
//!
//! Kafka's layout: `<topic>-<partition>` holds a partition's log, with a `partition.metadata`
//! file naming its topic id; a deleted partition's directory is first renamed to
//! `<topic>-<partition>.<uuid>-delete`, then removed in the background.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};
use uuid::Uuid;

use crate::log::durable;

/// Written into every partition directory the broker makes (Kafka's file of this name).
pub const MARKER: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";
/// Longest file name most file systems take.
const MAX_NAME_BYTES: usize = 255;

pub fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

/// `<topic>-<partition>` split into its parts; `None` for any other name.
pub fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if topic.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, index.parse().ok()?))
}

/// A new name for a deleted partition's directory, as Kafka makes it:
/// `<topic>-<partition>.<uuid without dashes>-delete`, the topic cut short to fit the name in
/// 255 bytes.
pub fn delete_dir_name(topic: &str, index: i32) -> String {
    let suffix = format!("-{index}.{}{DELETE_SUFFIX}", Uuid::new_v4().simple());
    let mut keep = topic.len().min(MAX_NAME_BYTES - suffix.len());
    while !topic.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &topic[..keep])
}

/// Whether `name` is a directory the broker renamed for removal.
pub fn is_delete_dir(name: &str) -> bool {
    let Some((partition, id)) = name
        .strip_suffix(DELETE_SUFFIX)
        .and_then(|rest| rest.rsplit_once('.'))
    else {
        return false;
    };
    id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && parse_partition_dir(partition).is_some()
}

fn marker_text(id: Uuid) -> String {
    format!(
        "version: 0\ntopic_id: {}\n",
        crate::broker::base64url(id.as_bytes())
    )
}

fn has_marker(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Makes the directory of a new partition, marked as the broker's. A directory already there
/// under that name belongs to no live topic: one the broker made (a delete whose rename
/// failed, a create interrupted by a crash) is renamed for removal and pushed to `stale`; an
/// empty one is taken over; one holding anything else is left alone and the creation refused,
/// so a new topic never adopts old files and nobody else's are ever removed. Blocking.
pub fn prepare_new(
    data_dir: &Path,
    topic: &str,
    index: i32,
    id: Uuid,
    stale: &mut Vec<PathBuf>,
) -> Result<PathBuf, String> {
    let dir = partition_dir(data_dir, topic, index);
    let failed = |what: &str, e: io::Error| format!("cannot {what} {}: {e}", dir.display());
    match fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("read", e)),
        Ok(mut entries) => {
            if has_marker(&dir) {
                let to = data_dir.join(delete_dir_name(topic, index));
                fs::rename(&dir, &to).map_err(|e| failed("move aside the stale", e))?;
                durable::sync_dir(data_dir).map_err(|e| failed("sync the parent of", e))?;
                warn!(dir = %dir.display(), to = %to.display(), "moved a stale partition directory aside for removal");
                stale.push(to);
            } else if entries.next().is_some() {
                return Err(format!(
                    "{} already exists and holds files this broker did not create; move it away to create partition {index} of topic {topic}",
                    dir.display()
                ));
            }
        }
    }
    match fs::create_dir(&dir) {
        Ok(()) => durable::sync_dir(data_dir).map_err(|e| failed("sync the parent of", e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed("create", e)),
    }
    durable::write_atomic(&dir.join(MARKER), marker_text(id).as_bytes())
        .map_err(|e| failed("write the marker in", e))?;
    Ok(dir)
}

/// Marks the directory of an existing partition as the broker's: directories made before the
/// marker existed get one. Blocking.
pub fn ensure_marker(dir: &Path, id: Uuid) -> io::Result<()> {
    let wanted = marker_text(id);
    match fs::read_to_string(dir.join(MARKER)) {
        Ok(text) if text == wanted => Ok(()),
        Ok(text) => {
            warn!(dir = %dir.display(), found = %text.trim(), "partition marker names another topic id; keeping the files");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            durable::write_atomic(&dir.join(MARKER), wanted.as_bytes())
        }
        Err(e) => Err(e),
    }
}

/// Removes directories renamed for removal on a blocking thread, off the async workers, and
/// syncs the data directory after. What cannot be removed now is removed at the next start.
pub fn remove_in_background(data_dir: PathBuf, dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    let work = move || {
        for d in &dirs {
            match fs::remove_dir_all(d) {
                Ok(()) => info!(dir = %d.display(), "removed the files of a deleted partition"),
                Err(e) => {
                    warn!(dir = %d.display(), error = %e, "cannot remove a deleted partition's files; retrying at the next start")
                }
            }
        }
        if let Err(e) = durable::sync_dir(&data_dir) {
            warn!(dir = %data_dir.display(), error = %e, "cannot sync the data directory");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(work)),
        Err(_) => work(),
    }
}

/// The start-up sweep. Directories renamed for removal, and partition directories the broker
/// made for no partition it has (`live` says which it has), are its leftovers: they are
/// returned for removal, the latter renamed first. Everything else is left as it is: other
/// programs' files, `lost+found`, and a directory named like a partition but without the
/// broker's marker (reported). Blocking.
pub fn sweep(
    data_dir: &Path,
    live: impl Fn(&str, i32) -> bool,
    report: &mut Vec<String>,
) -> Vec<PathBuf> {
    let mut leftovers = Vec::new();
    let Ok(entries) = fs::read_dir(data_dir) else {
        return leftovers;
    };
    for entry in entries.flatten() {
        // Not followed: a link is never the broker's.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if is_delete_dir(&name) {
            report.push(format!("removing {name}, left by a topic deletion"));
            leftovers.push(path);
            continue;
        }
        let Some((topic, index)) = parse_partition_dir(&name) else {
            continue;
        };
        if live(topic, index) {
            continue;
        }
        if !has_marker(&path) {
            report.push(format!(
                "left {name} alone: named like a partition directory, but this broker did not create it"
            ));
            continue;
        }
        let to = data_dir.join(delete_dir_name(topic, index));
        match fs::rename(&path, &to) {
            Ok(()) => {
                report.push(format!("removing orphaned partition directory {name}"));
                leftovers.push(to);
            }
            Err(e) => report.push(format!(
                "could not remove orphaned partition directory {name}: {e}"
            )),
        }
    }
    if !leftovers.is_empty() {
        if let Err(e) = durable::sync_dir(data_dir) {
            report.push(format!("cannot sync {}: {e}", data_dir.display()));
        }
    }
    leftovers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_partition_dir("a-b-12"), Some(("a-b", 12)));
        assert_eq!(parse_partition_dir("notes"), None);
        assert_eq!(parse_partition_dir("x-+1"), None);
        assert_eq!(parse_partition_dir("-1"), None);
        let d = delete_dir_name("orders", 3);
        assert!(d.starts_with("orders-3.") && d.ends_with("-delete"), "{d}");
        assert_eq!(d.len(), "orders-3.".len() + 32 + "-delete".len());
        assert!(is_delete_dir(&d));
        assert!(!is_delete_dir("notes-delete"));
        assert!(!is_delete_dir("orders-3.abc-delete"));
        let long = delete_dir_name(&"t".repeat(249), 99_999);
        assert_eq!(long.len(), 255);
        assert!(is_delete_dir(&long));
    }

    #[test]
    fn a_new_partition_never_takes_over_files() {
        let data = tempfile::tempdir().unwrap();
        let mut stale = Vec::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let dir = prepare_new(data.path(), "t", 0, a, &mut stale).unwrap();
        fs::write(dir.join("00000000000000000000.log"), b"old").unwrap();
        // The broker's own stale directory is moved aside; the new one starts empty.
        let dir = prepare_new(data.path(), "t", 0, b, &mut stale).unwrap();
        assert_eq!(stale.len(), 1);
        assert!(stale[0].join("00000000000000000000.log").exists());
        let names: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the marker");
        // Someone else's directory is refused and left as it is.
        let foreign = partition_dir(data.path(), "u", 0);
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("notes.txt"), b"mine").unwrap();
        assert!(prepare_new(data.path(), "u", 0, a, &mut stale).is_err());
        assert_eq!(fs::read(foreign.join("notes.txt")).unwrap(), b"mine");
    }
}
