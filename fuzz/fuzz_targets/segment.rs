//! A partition directory after a crash, or damaged on disk: the input becomes the segment
//! files, indexes, producer snapshot and checkpoints of one log (the layout is described at
//! `klamm_fuzz::SegmentInput`), which is then opened as after a clean shutdown (indexes
//! trusted) and as after a crash (recovery: every batch verified, the tail truncated, indexes
//! rebuilt), and read as Fetch and ListOffsets read it. After recovery a batch is appended and
//! the log is opened once more as after a clean shutdown. Errors are fine; panics are not.

#![no_main]

use klamm::log::batch::{BatchHeader, HEADER_LEN};
use klamm::log::{Log, LogConfig};
use klamm_fuzz::SegmentInput;
use libfuzzer_sys::fuzz_target;

const NOW_MS: i64 = 1_700_000_000_000;

/// Reads the log as a consumer would, batch by batch from its start, and by timestamp.
fn read(log: &Log) {
    let mut from = log.log_start_offset();
    for _ in 0..64 {
        let Ok(Some(slice)) = log.slice_from(from) else {
            break;
        };
        let Ok(Some((pos, h))) = slice.find_offset(from) else {
            break;
        };
        let _ = slice.read(pos, h.total_size() as u64);
        let next = h.last_offset().saturating_add(1);
        if next <= from {
            break;
        }
        from = next;
    }
    let _ = log.max_timestamp();
    let _ = log.size_bytes();
    for ts in [i64::MIN, -1, 0, NOW_MS, i64::MAX] {
        if let Ok(Some(slice)) = log.slice_for_time(ts) {
            if let Ok(Some((pos, h))) = slice.find_timestamp(ts) {
                let _ = slice.read(pos, h.total_size() as u64);
            }
        }
    }
}

/// One uncompressed batch of one record, as a producer sends it.
fn batch() -> Vec<u8> {
    // A record: length 8, attributes, timestamp delta 0, offset delta 0, key -1 (null),
    // value of 1 byte, no headers (varints, zigzag).
    let record = [0x10u8, 0, 0, 0, 1, 2, b'x', 0];
    let mut b = vec![0u8; HEADER_LEN];
    let length = (HEADER_LEN - 12 + record.len()) as i32;
    b[8..12].copy_from_slice(&length.to_be_bytes());
    b[16] = 2; // magic
    b[27..35].copy_from_slice(&NOW_MS.to_be_bytes()); // base timestamp
    b[35..43].copy_from_slice(&NOW_MS.to_be_bytes()); // max timestamp
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b[57..61].copy_from_slice(&1i32.to_be_bytes()); // record count
    b.extend_from_slice(&record);
    klamm_fuzz::fix_crc(&mut b);
    b
}

fn append(log: &mut Log) {
    let b = batch();
    let header = BatchHeader::parse(&b).expect("the appended batch is valid");
    let _ = log.append(&b, &header, None, 0, NOW_MS);
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = SegmentInput::parse(data) else {
        return;
    };
    let dir = klamm_fuzz::scratch_dir("segment").join("topic-0");
    let config = LogConfig {
        index_interval_bytes: input.index_interval(),
        ..LogConfig::default()
    };

    // After a clean shutdown: segments and indexes are trusted as they are.
    klamm_fuzz::reset_dir(dir.parent().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    input.write(&dir);
    if let Ok(log) = Log::open_with(&dir, config, NOW_MS, true) {
        read(&log);
    }

    // After a crash: recovery from the recovery point on, then an append, then a restart.
    klamm_fuzz::reset_dir(dir.parent().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    input.write(&dir);
    if let Ok(mut log) = Log::open_with(&dir, config, NOW_MS, false) {
        read(&log);
        append(&mut log);
        read(&log);
        // A clean shutdown: everything synced, producer snapshot and recovery point written.
        let _ = log.sync_all();
        drop(log);
        if let Ok(log) = Log::open_with(&dir, config, NOW_MS, true) {
            read(&log);
        }
    }
});
