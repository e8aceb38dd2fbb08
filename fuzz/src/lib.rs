//! What the fuzz targets share: an allocator that refuses oversized allocations, a scratch
//! directory per process, the CRC fix-up that lets mutated batches past the checksum, and the
//! input layout of the `segment` target (also used by `examples/gen_seeds.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The largest single allocation a target may make. Inputs are a few kilobytes; a bigger
/// allocation is memory a peer (or a damaged file) could make the broker reserve for nothing.
/// libFuzzer's own `-malloc_limit_mb` needs a sanitizer runtime, which stable builds
/// (`-s none`) lack: this allocator does the same job everywhere.
pub const MALLOC_LIMIT: usize = 256 << 20;

/// The system allocator, failing allocations above [`MALLOC_LIMIT`]. A failed allocation makes
/// Rust abort with "memory allocation of N bytes failed", which libFuzzer reports as a crash
/// (code that copes with failure, through `try_reserve`, sees an ordinary error).
pub struct LimitedAlloc;

unsafe impl GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: LimitedAlloc = LimitedAlloc;

/// Where the `crc` field of a v2 batch header sits, and where the bytes it covers start.
const CRC_AT: usize = 17;

/// Rewrites the CRC of the batch at the start of `batch` (if its header is whole) so that it
/// matches the bytes after it, up to the batch's length or the end of the buffer. Returns
/// whether it changed anything. Mutations almost never keep a CRC32C right; targets run the
/// input as it is and, fixed up, once more, so that the checks behind the CRC get fuzzed too.
pub fn fix_crc(batch: &mut [u8]) -> bool {
    let Ok(h) = klamm::log::batch::BatchHeader::parse(batch) else {
        return false;
    };
    let end = h.total_size().min(batch.len());
    let crc = klamm::log::batch::compute_crc(&batch[..end]).to_be_bytes();
    if batch[CRC_AT..CRC_AT + 4] == crc {
        return false;
    }
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc);
    true
}

/// Fixes the CRC of every batch in a segment's bytes, following the batch lengths from the
/// start for as long as whole headers parse.
pub fn fix_segment_crcs(log: &mut [u8]) {
    let mut pos = 0usize;
    while pos < log.len() {
        let Ok(h) = klamm::log::batch::BatchHeader::parse(&log[pos..]) else {
            return;
        };
        fix_crc(&mut log[pos..]);
        match pos.checked_add(h.total_size()) {
            Some(next) if next > pos => pos = next,
            _ => return,
        }
    }
}

/// A directory of this process's own, created once (on tmpfs when there is one, so that the
/// fsyncs of log recovery cost nothing) and emptied by [`reset_dir`] before every run.
/// Directories left by processes that are gone are removed when the first one is made.
pub fn scratch_dir(target: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = match std::env::var_os("KLAMM_FUZZ_TMPDIR") {
            Some(d) => PathBuf::from(d),
            None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        remove_stale(&base);
        let dir = base.join(format!("klamm-fuzz-{target}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create the fuzz scratch directory");
        dir
    })
}

fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("klamm-fuzz-") {
            continue;
        }
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Empties `dir` (files and subdirectories), keeping the directory itself.
pub fn reset_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Separates the parts of a `segment` input. See [`SegmentInput`].
pub const SEGMENT_SEP: &[u8] = b"@@KLAMM@@";

/// How many segments after the first one an input may describe.
pub const MAX_EXTRA_SEGMENTS: usize = 3;

/// The files of one partition directory, as the `segment` target lays them out from its input:
///
/// ```text
/// flags (1 byte)
/// part 0  00000000000000000000.log
/// part 1  00000000000000000000.index
/// part 2  00000000000000000000.timeindex
/// part 3  producer snapshot: 8 bytes big-endian offset (its file name), then the file
/// part 4  recovery-point
/// part 5  log-start-offset
/// part 6  cleaner-offset-checkpoint
/// parts 7, 8, 9 (and 10-12, 13-15): a further segment's .log, .index and .timeindex, named
///         after the base offset in the first 8 bytes of its .log
/// ```
///
/// Parts are separated by [`SEGMENT_SEP`]; a part that is not there is a file that is not
/// there, an empty part an empty file. Flags: bit 0 fixes the CRCs of the batches in every
/// `.log`, bit 1 indexes every batch (`index.interval.bytes` 1 instead of 4096).
pub struct SegmentInput {
    pub flags: u8,
    /// File name and contents, in the order they are written (a later file of the same name
    /// replaces an earlier one).
    pub files: Vec<(String, Vec<u8>)>,
}

pub const FLAG_FIX_CRC: u8 = 1;
pub const FLAG_DENSE_INDEX: u8 = 2;

fn segment_name(base: i64, suffix: &str) -> String {
    klamm::log::segment::file_name(base, suffix)
}

impl SegmentInput {
    pub fn parse(data: &[u8]) -> Option<SegmentInput> {
        let (&flags, rest) = data.split_first()?;
        let parts = split(rest, SEGMENT_SEP);
        let mut files = Vec::new();
        let fix = flags & FLAG_FIX_CRC != 0;
        let log = |bytes: &[u8]| {
            let mut v = bytes.to_vec();
            if fix {
                fix_segment_crcs(&mut v);
            }
            v
        };
        files.push((segment_name(0, "log"), log(parts[0])));
        for (i, suffix) in [(1, "index"), (2, "timeindex")] {
            if let Some(p) = parts.get(i) {
                files.push((segment_name(0, suffix), p.to_vec()));
            }
        }
        if let Some(p) = parts.get(3) {
            let (offset, body) = match p.get(..8) {
                Some(o) => (i64::from_be_bytes(o.try_into().unwrap()), &p[8..]),
                None => (0, &p[..]),
            };
            files.push((klamm::log::producers::snapshot_name(offset), body.to_vec()));
        }
        for (i, name) in [
            (4, "recovery-point"),
            (5, "log-start-offset"),
            (6, "cleaner-offset-checkpoint"),
        ] {
            if let Some(p) = parts.get(i) {
                files.push((name.to_string(), p.to_vec()));
            }
        }
        for k in 0..MAX_EXTRA_SEGMENTS {
            let at = 7 + 3 * k;
            let Some(seg) = parts.get(at) else { break };
            let base = seg
                .get(..8)
                .map(|b| i64::from_be_bytes(b.try_into().unwrap()))
                .unwrap_or(1);
            files.push((segment_name(base, "log"), log(seg)));
            for (i, suffix) in [(1, "index"), (2, "timeindex")] {
                if let Some(p) = parts.get(at + i) {
                    files.push((segment_name(base, suffix), p.to_vec()));
                }
            }
        }
        Some(SegmentInput { flags, files })
    }

    pub fn index_interval(&self) -> u64 {
        if self.flags & FLAG_DENSE_INDEX != 0 {
            1
        } else {
            4096
        }
    }

    /// Writes the files into `dir`, which should be empty.
    pub fn write(&self, dir: &Path) {
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes).expect("cannot write to the scratch directory");
        }
    }
}

/// Splits `data` at every `sep` (like `str::split`: always at least one part).
pub fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            parts.push(&data[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}

/// The broker's clock for the targets that validate batches: fixed, so a run replays.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// A topic's settings under the default broker configuration, with `overrides` as the topic's
/// own configuration.
pub fn topic_settings(overrides: &[(&str, &str)]) -> klamm::topics::config::TopicSettings {
    let broker = klamm::BrokerConfig::from_pairs(Default::default())
        .expect("the default broker configuration is valid");
    let overrides = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    klamm::topics::config::TopicSettings::resolve(&overrides, &broker)
}

/// [`topic_settings`] without overrides, made once.
pub fn default_topic_settings() -> &'static klamm::topics::config::TopicSettings {
    static S: OnceLock<klamm::topics::config::TopicSettings> = OnceLock::new();
    S.get_or_init(|| topic_settings(&[]))
}
