//! Durable topic metadata: one TOML file per topic under `<data>/__topics/`, replaced
//! atomically (write new, fsync, rename, fsync directory) so a crash leaves the old or the new
//! state, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::durable::sync_dir;

pub const TOPICS_DIR: &str = "__topics";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

pub fn topics_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TOPICS_DIR)
}

pub use crate::log::durable::write_atomic;

pub fn save(data_dir: &Path, record: &TopicRecord) -> io::Result<()> {
    let dir = topics_dir(data_dir);
    fs::create_dir_all(&dir)?;
    let text =
        toml::to_string(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    write_atomic(&dir.join(format!("{}.toml", record.name)), text.as_bytes())
}

pub fn remove(data_dir: &Path, name: &str) -> io::Result<()> {
    let dir = topics_dir(data_dir);
    fs::remove_file(dir.join(format!("{name}.toml")))?;
    sync_dir(&dir)
}

/// Loads every topic record. Half-written temporary files are removed; unreadable records are
/// returned as errors naming the file, so start-up can report them.
pub fn load_all(data_dir: &Path) -> io::Result<(Vec<TopicRecord>, Vec<String>)> {
    let dir = topics_dir(data_dir);
    fs::create_dir_all(&dir)?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {}
            Some("tmp") => {
                problems.push(format!(
                    "removed half-written metadata file {}",
                    path.display()
                ));
                fs::remove_file(&path)?;
                continue;
            }
            _ => continue,
        }
        let parsed = fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<TopicRecord>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => records.push(r),
            Err(e) => problems.push(format!(
                "ignored unreadable topic metadata {}: {e}",
                path.display()
            )),
        }
    }
    records.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((records, problems))
}
