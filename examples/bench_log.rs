//! Measures the storage engine (`klamm::log`) on its own, against the raw speed of the same disk
//! measured in the same run:
//!
//!     cargo run --release --example bench_log -- [--dir DIR] [--quick] [--big] [--runs N]
//!
//! - append: 1 KiB records in 16 KiB batches, with and without an fsync after each batch,
//!   against plain `write_all` of same-sized buffers to a file in the same directory; prints
//!   append / raw ratios.
//! - read: a whole log read front to back in 1 MiB fetches (find the batch, read whole batches),
//!   warm and cold (after `echo 3 > /proc/sys/vm/drop_caches`, which needs root), against plain
//!   sequential reads of the same segment files.
//! - lookup: finding the batch of a random offset (`slice_from` + `find_offset`) and of a random
//!   timestamp (`slices_for_time` + `find_timestamp`) in logs of 1 thousand, 1 million and 100
//!   million 8-byte records (`--quick` skips 100 million); median and p99 per lookup.
//! - start-up: `Log::open` of a 2 GiB log (`--big`: 10 GiB) in 1 GiB segments after a clean stop,
//!   after a kill with a recovery point at the log end (the active segment is verified), and
//!   after a kill with no recovery point or producer snapshot (every segment is verified).
//!
//! Everything is written under a temporary directory in `--dir` (default: the system temp dir)
//! and removed at the end. Figures are medians over `--runs` rounds; ratios compare figures
//! from the same run, so compare runs made on the same machine.

mod support;

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use klamm::log::batch::{self, BatchHeader, HEADER_LEN};
use klamm::log::{Log, LogConfig};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Timestamps of the lookup logs start here, one millisecond per batch.
const T0: i64 = 1_700_000_000_000;

#[derive(Parser)]
#[command(about = "Benchmarks the klamm storage engine against the raw disk")]
struct Args {
    /// Directory to write in (a temporary directory is made inside it).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Smaller sizes and no 100-million-record log.
    #[arg(long)]
    quick: bool,
    /// A 10 GiB log for the start-up and read figures.
    #[arg(long)]
    big: bool,
    /// Rounds per figure (default 5, 3 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// MiB appended per round without fsync (default 512, 128 with --quick).
    #[arg(long)]
    append_mib: Option<u64>,
    /// Batches appended per round with an fsync after each (default 2048, 512 with --quick).
    #[arg(long)]
    fsync_batches: Option<u64>,
    /// GiB in the start-up and read log (default 2, 10 with --big, 1 with --quick).
    #[arg(long)]
    log_gib: Option<u64>,
    #[arg(long, default_value_t = 1024)]
    segment_mib: u64,
    /// Records per batch in the lookup logs.
    #[arg(long, default_value_t = 100)]
    records_per_batch: u32,
    /// Segment size of the lookup logs, KiB.
    #[arg(long, default_value_t = 1024 * 1024)]
    lookup_segment_kib: u64,
    /// Lookups timed per log.
    #[arg(long, default_value_t = 100_000)]
    lookups: usize,
    /// Skip the cold-cache figures.
    #[arg(long)]
    no_cold: bool,
    /// Run only these parts (comma-separated: append, read, startup, lookup).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let append_bytes = args
        .append_mib
        .unwrap_or(if args.quick { 128 } else { 512 })
        * MIB;
    let fsync_batches = args
        .fsync_batches
        .unwrap_or(if args.quick { 512 } else { 2048 });
    let log_bytes = args.log_gib.unwrap_or(if args.big {
        10
    } else if args.quick {
        1
    } else {
        2
    }) * GIB;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("klamm-bench-log-")
        .tempdir_in(&parent)
        .expect("make a temporary directory");
    let cold = !args.no_cold && drop_caches();
    println!(
        "bench_log: {} rounds in {}; cold cache {}",
        runs,
        root.path().display(),
        if cold {
            "via /proc/sys/vm/drop_caches"
        } else {
            "unavailable"
        }
    );

    let part = |name: &str| args.only.is_empty() || args.only.iter().any(|p| p == name);
    let batch = encode_batch(16, 1024, true);
    if part("append") {
        println!(
            "\n== append: {} records of 1 KiB per batch, {} B per batch ==",
            16,
            batch.len()
        );
        bench_append(root.path(), &batch, append_bytes, fsync_batches, runs);
    }

    let config = LogConfig {
        segment_bytes: args.segment_mib * MIB,
        ..LogConfig::default()
    };
    let big = root.path().join("big");
    if part("read") || part("startup") {
        println!(
            "\n== read and start-up: {:.1} GiB log in {} MiB segments ==",
            log_bytes as f64 / GIB as f64,
            args.segment_mib
        );
        let started = Instant::now();
        let batches = build_log(&big, config, &batch, log_bytes);
        println!(
            "written: {batches} batches, {} segments, in {:.1} s",
            segment_count(&big),
            started.elapsed().as_secs_f64()
        );
        if part("read") {
            bench_read(&big, config, runs, cold);
        }
        if part("startup") {
            bench_startup(&big, config, runs, cold);
        }
        std::fs::remove_dir_all(&big).expect("remove the log");
    }
    if !part("lookup") {
        return;
    }

    let sizes: &[u64] = if args.quick {
        &[1_000, 1_000_000]
    } else {
        &[1_000, 1_000_000, 100_000_000]
    };
    println!(
        "\n== lookup: 8-byte records, {} per batch, {} MiB segments; {} random lookups per log, \
         warm cache ==",
        args.records_per_batch,
        args.lookup_segment_kib as f64 / 1024.0,
        args.lookups
    );
    println!(
        "{:>12} {:>9} {:>10} | {:>14} {:>14} | {:>14} {:>14}",
        "records",
        "batches",
        "build s",
        "offset med µs",
        "offset p99 µs",
        "time med µs",
        "time p99 µs"
    );
    for &records in sizes {
        bench_lookup(
            &root.path().join(format!("lookup-{records}")),
            records,
            args.records_per_batch,
            args.lookups,
            args.lookup_segment_kib * KIB,
        );
    }
}

/// A batch of `count` records with `value_len`-byte values (and short keys when `keys`), as a
/// producer would send it.
fn encode_batch(count: usize, value_len: usize, keys: bool) -> Vec<u8> {
    let records = (0..count).map(|i| {
        let value: Vec<u8> = (0..value_len).map(|j| (i * 31 + j) as u8).collect();
        (
            keys.then(|| Bytes::from(format!("key-{i}"))),
            Bytes::from(value),
        )
    });
    support::wire::record_batch(records, T0).to_vec()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Drops the page cache; false when not permitted.
fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Waits for the kernel to write back everything dirty.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

/// splitmix64: reproducible random lookups without another dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Throughputs of one round, MiB/s: (write phase, write phase + one final fsync).
fn raw_write(path: &Path, buf: &[u8], count: u64) -> (f64, f64) {
    let mut f = File::create(path).expect("create file");
    let started = Instant::now();
    for _ in 0..count {
        f.write_all(buf).expect("write");
    }
    let written = started.elapsed();
    f.sync_data().expect("fsync");
    let total = started.elapsed();
    drop(f);
    std::fs::remove_file(path).expect("remove file");
    let bytes = buf.len() as u64 * count;
    (mib_per_s(bytes, written), mib_per_s(bytes, total))
}

fn log_append(dir: &Path, batch: &[u8], count: u64) -> (f64, f64) {
    let header = batch::validate(batch).expect("valid batch");
    let now = now_ms();
    let mut log = Log::open(dir, LogConfig::default(), now).expect("open log");
    let started = Instant::now();
    for _ in 0..count {
        log.append(batch, &header, None, 0, now).expect("append");
    }
    let written = started.elapsed();
    log.unflushed().run().expect("fsync");
    let total = started.elapsed();
    drop(log);
    std::fs::remove_dir_all(dir).expect("remove log");
    let bytes = batch.len() as u64 * count;
    (mib_per_s(bytes, written), mib_per_s(bytes, total))
}

/// One round with an fsync after every write, MiB/s: (raw, log). The two take turns in chunks
/// of 64 writes, so a slow spell of a shared disk hits both alike.
fn fsync_round(root: &Path, batch: &[u8], count: u64) -> (f64, f64) {
    let header = batch::validate(batch).expect("valid batch");
    let now = now_ms();
    let raw_path = root.join("raw-fsync.bin");
    let log_dir = root.join("append-fsync");
    let mut raw = File::create(&raw_path).expect("create file");
    let mut log = Log::open(&log_dir, LogConfig::default(), now).expect("open log");
    let (mut raw_time, mut log_time) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < count {
        let n = (count - done).min(64);
        let started = Instant::now();
        for _ in 0..n {
            raw.write_all(batch).expect("write");
            raw.sync_data().expect("fsync");
        }
        raw_time += started.elapsed();
        let started = Instant::now();
        for _ in 0..n {
            log.append(batch, &header, None, 0, now).expect("append");
            let job = log.unflushed();
            job.run().expect("fsync");
            log.mark_flushed(&job);
        }
        log_time += started.elapsed();
        done += n;
    }
    drop((raw, log));
    std::fs::remove_file(&raw_path).expect("remove file");
    std::fs::remove_dir_all(&log_dir).expect("remove log");
    let bytes = batch.len() as u64 * count;
    (mib_per_s(bytes, raw_time), mib_per_s(bytes, log_time))
}

fn bench_append(root: &Path, batch: &[u8], append_bytes: u64, fsync_batches: u64, runs: usize) {
    let count = (append_bytes / batch.len() as u64).max(1);
    let raw_path = root.join("raw.bin");
    let log_dir = root.join("append");
    let (mut raw, mut raw_end, mut app, mut app_end) = (vec![], vec![], vec![], vec![]);
    let (mut raw_fs, mut app_fs) = (vec![], vec![]);
    for round in 0..runs {
        // Alternate which goes first, and start each measurement with nothing left to write
        // back, so neither side pays for the other's dirty pages.
        for log_first in [round % 2 == 1, round % 2 == 0] {
            settle();
            let (a, b) = if log_first {
                log_append(&log_dir, batch, count)
            } else {
                raw_write(&raw_path, batch, count)
            };
            let (fast, end) = if log_first {
                (&mut app, &mut app_end)
            } else {
                (&mut raw, &mut raw_end)
            };
            fast.push(a);
            end.push(b);
        }
        settle();
        let (r, a) = fsync_round(root, batch, fsync_batches);
        raw_fs.push(r);
        app_fs.push(a);
    }
    let per_s = |mib: f64| mib * MIB as f64 / batch.len() as f64;
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>8}",
        "", "raw MiB/s", "log MiB/s", "log batch/s", "log/raw"
    );
    let row = |name: String, r: &[f64], a: &[f64]| {
        let (r, a) = (median(r), median(a));
        println!(
            "{:<44} {:>10.0} {:>10.0} {:>12.0} {:>7.0}%",
            name,
            r,
            a,
            per_s(a),
            100.0 * a / r
        );
    };
    row(
        format!(
            "no fsync, {} MiB (page cache)",
            count * batch.len() as u64 / MIB
        ),
        &raw,
        &app,
    );
    row(
        format!(
            "no fsync, {} MiB + one fsync at the end",
            count * batch.len() as u64 / MIB
        ),
        &raw_end,
        &app_end,
    );
    row(
        format!("fsync after each batch, {fsync_batches} batches"),
        &raw_fs,
        &app_fs,
    );
}

/// Appends copies of `batch` until the log holds `bytes`; returns the number of batches.
fn build_log(dir: &Path, config: LogConfig, batch: &[u8], bytes: u64) -> u64 {
    let header = batch::validate(batch).expect("valid batch");
    let now = now_ms();
    let mut log = Log::open(dir, config, now).expect("open log");
    let count = (bytes / batch.len() as u64).max(1);
    for _ in 0..count {
        log.append(batch, &header, None, 0, now).expect("append");
    }
    log.sync_all().expect("sync");
    count
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
}

/// Reads the whole log as consumers fetch it: up to `max_bytes` of whole batches at a time.
/// Returns the bytes read.
fn read_log(log: &Log, max_bytes: u64) -> u64 {
    let mut offset = log.log_start_offset();
    let mut total = 0;
    while let Some(slice) = log.slice_from(offset).expect("slice") {
        let Some((pos, first)) = slice.find_offset(offset).expect("find") else {
            break;
        };
        let len = (slice.end - pos).min(max_bytes.max(first.total_size() as u64));
        let buf = slice.read(pos, len).expect("read");
        let mut at = 0;
        while at + HEADER_LEN <= buf.len() {
            let h = BatchHeader::parse(&buf[at..]).expect("header");
            if at + h.total_size() > buf.len() {
                break;
            }
            offset = h.last_offset() + 1;
            at += h.total_size();
        }
        total += black_box(at) as u64;
    }
    total
}

/// Reads every segment file front to back in `chunk`-byte reads. Returns the bytes read.
fn read_raw(dir: &Path, chunk: usize) -> u64 {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list log")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut buf = vec![0u8; chunk];
    let mut total = 0;
    for path in files {
        let mut f = File::open(path).expect("open segment");
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += black_box(n) as u64;
        }
    }
    total
}

fn bench_read(dir: &Path, config: LogConfig, runs: usize, cold: bool) {
    let log = Log::open_with(dir, config, now_ms(), true).expect("open log");
    let modes: &[bool] = if cold { &[false, true] } else { &[false] };
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>8}",
        "read, 1 MiB fetches", "raw MiB/s", "log MiB/s", "", "log/raw"
    );
    for &is_cold in modes {
        let (mut raw, mut via_log) = (vec![], vec![]);
        // Fewer cold rounds: each one empties the whole machine's page cache.
        let rounds = if is_cold { runs.min(3) } else { runs };
        if !is_cold {
            read_raw(dir, MIB as usize);
        }
        for round in 0..rounds {
            // Alternate which goes first: a shared disk's speed drifts.
            for log_turn in [round % 2 == 1, round % 2 == 0] {
                if is_cold {
                    drop_caches();
                }
                let started = Instant::now();
                if log_turn {
                    let n = read_log(&log, MIB);
                    via_log.push(mib_per_s(n, started.elapsed()));
                } else {
                    let n = read_raw(dir, MIB as usize);
                    raw.push(mib_per_s(n, started.elapsed()));
                }
            }
        }
        let (r, l) = (median(&raw), median(&via_log));
        println!(
            "{:<44} {:>10.0} {:>10.0} {:>12} {:>7.0}%",
            if is_cold { "cold" } else { "warm" },
            r,
            l,
            "",
            100.0 * l / r
        );
    }
    if !cold {
        println!("{:<44} cold unavailable", "cold");
    }
}

fn remove_checkpoints(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list log") {
        let p = entry.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "recovery-point" || name.ends_with(".snapshot") {
            std::fs::remove_file(&p).expect("remove checkpoint");
        }
    }
}

fn bench_startup(dir: &Path, config: LogConfig, runs: usize, cold: bool) {
    let open = |clean: bool, is_cold: bool| -> f64 {
        if is_cold {
            drop_caches();
        }
        let started = Instant::now();
        let log = Log::open_with(dir, config, now_ms(), clean).expect("open log");
        let took = started.elapsed().as_secs_f64() * 1000.0;
        black_box(log.next_offset());
        took
    };
    let modes: &[bool] = if cold { &[false, true] } else { &[false] };
    println!(
        "{:<44} {:>10} {:>10}",
        "start-up (Log::open), ms",
        "warm",
        if cold { "cold" } else { "" }
    );
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    for (name, clean, checkpoint) in [
        ("clean stop (sync_all, open_with clean)", true, true),
        (
            "kill after a checkpoint (verifies active seg.)",
            false,
            true,
        ),
        ("kill before any checkpoint (verifies all)", false, false),
    ] {
        let mut figures = Vec::new();
        for &is_cold in modes {
            let rounds = if is_cold { runs.min(3) } else { runs };
            let mut times = Vec::new();
            for _ in 0..rounds {
                // Leave the files as the stop being simulated would: sync_all writes the recovery
                // point and the producer snapshot; a kill before any checkpoint leaves neither.
                let mut log = Log::open_with(dir, config, now_ms(), true).expect("open log");
                if checkpoint {
                    log.sync_all().expect("sync");
                }
                drop(log);
                if !checkpoint {
                    remove_checkpoints(dir);
                }
                times.push(open(clean, is_cold));
            }
            figures.push(median(&times));
        }
        rows.push((name, figures));
    }
    for (name, figures) in rows {
        let cold = figures
            .get(1)
            .map(|f| format!("{f:.1}"))
            .unwrap_or_default();
        println!("{:<44} {:>10.1} {:>10}", name, figures[0], cold);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn bench_lookup(dir: &Path, records: u64, per_batch: u32, lookups: usize, segment_bytes: u64) {
    let per_batch = (per_batch as u64).min(records).max(1);
    let template = encode_batch(per_batch as usize, 8, false);
    let header = batch::validate(&template).expect("valid batch");
    let batches = records.div_ceil(per_batch);
    let now = now_ms();
    let started = Instant::now();
    let config = LogConfig {
        segment_bytes,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config, now).expect("open log");
    for i in 0..batches {
        // LogAppendTime stamps each batch with its own time from one template.
        log.append(&template, &header, Some(T0 + i as i64), 0, now)
            .expect("append");
    }
    let build = started.elapsed().as_secs_f64();
    let end = log.next_offset() as u64;
    let mut rng = Rng(records);
    let mut by_offset = Vec::with_capacity(lookups);
    let mut by_time = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let offset = rng.below(end) as i64;
        let started = Instant::now();
        let slice = log.slice_from(offset).expect("slice").expect("not the end");
        let found = slice.find_offset(offset).expect("find");
        by_offset.push(started.elapsed().as_secs_f64() * 1e6);
        let (_, h) = found.expect("batch for offset");
        assert!(h.base_offset <= offset && offset <= h.last_offset());

        let i = rng.below(batches) as i64;
        let started = Instant::now();
        let found = log
            .slice_for_time(T0 + i)
            .expect("open segment")
            .and_then(|slice| slice.find_timestamp(T0 + i).expect("find"));
        by_time.push(started.elapsed().as_secs_f64() * 1e6);
        let (_, h) = found.expect("batch for timestamp");
        assert_eq!(h.base_offset, i * per_batch as i64);
    }
    by_offset.sort_by(f64::total_cmp);
    by_time.sort_by(f64::total_cmp);
    println!(
        "{:>12} {:>9} {:>10.1} | {:>14.2} {:>14.2} | {:>14.2} {:>14.2}",
        records,
        batches,
        build,
        median(&by_offset),
        percentile(&by_offset, 0.99),
        median(&by_time),
        percentile(&by_time, 0.99),
    );
    drop(log);
    std::fs::remove_dir_all(dir).expect("remove log");
}
