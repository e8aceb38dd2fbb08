//! The golden request frames captured from real clients (`protocol-tests/fixtures/`, see its
//! README): one file per frame, request header and body without the size prefix, named
//! `<api_key>-<ApiName>-v<version>.bin` in a directory per client.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

/// One captured request frame.
pub struct GoldenFrame {
    pub path: PathBuf,
    /// Request header and body, as the client sent them after the size prefix.
    pub frame: Bytes,
    pub key: ApiKey,
    pub version: i16,
}

impl GoldenFrame {
    /// `client/file.bin`, for messages.
    pub fn label(&self) -> String {
        let dir = self.path.parent().and_then(Path::file_name).unwrap();
        let file = self.path.file_name().unwrap();
        format!("{}/{}", dir.to_string_lossy(), file.to_string_lossy())
    }

    /// Client directory name.
    pub fn client(&self) -> String {
        let dir = self.path.parent().and_then(Path::file_name).unwrap();
        dir.to_string_lossy().into_owned()
    }
}

pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/fixtures")
}

/// Every captured frame of every client, by client directory, then file name.
pub fn golden_frames() -> Vec<GoldenFrame> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixture_root())
        .expect("fixture directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(load_golden));
    }
    out
}

/// Reads one frame file; its name must agree with the API key and version in its header.
pub fn load_golden(path: PathBuf) -> GoldenFrame {
    let frame = Bytes::from(std::fs::read(&path).unwrap());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        frame.len() >= 8,
        "{name}: {} bytes is no request",
        frame.len()
    );
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).unwrap_or_else(|_| panic!("{name}: API key {raw_key}"));
    let expected = format!("{raw_key}-{key:?}-v{version}.bin");
    assert_eq!(
        name, expected,
        "file name does not match the frame's header"
    );
    GoldenFrame {
        path,
        frame,
        key,
        version,
    }
}
