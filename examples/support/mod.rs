//! What the benchmark and soak programs share: the broker they start and measure, its log and
//! resident memory, their numeric command-line options, latency quantiles, and (in `wire`) raw
//! protocol requests.

#![allow(dead_code)] // each program uses its own part

pub mod wire;

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

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
        if let Some(a) = field(&line, "address") {
            break a.to_string();
        }
    };
    (child, addr, lines)
}

/// The value of `key=value` in a broker log line, if the line has it.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A started broker that is killed and reaped when this is dropped, so a program that panics
/// half-way leaves no broker behind.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
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

/// CPU time a process has used (user and system), in seconds; 0 once it is gone. Assumes
/// Linux's USER_HZ of 100.
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised name, which may itself hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .map(|ticks| ticks as f64 / 100.0)
        .unwrap_or(0.0)
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

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The value at quantile `q` of sorted, non-empty `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}
