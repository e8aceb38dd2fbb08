//! What the benchmark and soak programs share: the broker they start and measure, its resident
//! memory, and their numeric command-line options.

#![allow(dead_code)] // each program uses its own part

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::str::FromStr;

/// `target/release/klamm`, or `$KLAMM_BIN`.
pub fn klamm_bin() -> PathBuf {
    std::env::var_os("KLAMM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/klamm"))
}

/// Starts a broker on a free port with its data under `dir` and these `-o` overrides. Returns
/// the process, its address, and the rest of its log: the caller keeps reading it (or hands it
/// to `drain`), so the broker never blocks on a full pipe.
pub fn start(dir: &Path, overrides: &[&str]) -> (Child, String, Lines<BufReader<ChildStderr>>) {
    let mut cmd = Command::new(klamm_bin());
    cmd.args(["-o", "listeners=PLAINTEXT://127.0.0.1:0", "-o"])
        .arg(format!("log.dirs={}", dir.display()));
    for o in overrides {
        cmd.args(["-o", o]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start klamm: build it first with `cargo build --release`");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("klamm exited before it was ready")
            .expect("read log");
        if let Some(a) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
        {
            break a.to_string();
        }
    };
    (child, addr, lines)
}

/// Reads and drops the rest of a broker's log in the background.
pub fn drain(lines: Lines<BufReader<ChildStderr>>) {
    std::thread::spawn(move || for _ in lines {});
}

/// A process's resident memory (`VmRSS`) in KiB; 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The value after `name` on the command line, or `default`.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
