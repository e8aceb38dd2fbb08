//! Storage behaviour through the protocol, checked against what a consumer reads and what is
//! on disk: DeleteRecords, time and size retention, compaction, and the clean-shutdown marker.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use support::client::{creatable_topic, encode_batch, record};
use support::{Conn, Klamm};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default().with_topics(vec![creatable_topic(topic, 1, configs)]);
    let r = conn.call(&req, 7);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// One batch of records (key, value), timestamped now; `None` value is a tombstone.
fn batch(records: &[(Option<&str>, Option<&str>)], compression: Compression) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            record(
                i,
                now,
                k.map(|k| Bytes::from(k.to_string())),
                v.map(|v| Bytes::from(v.to_string())),
            )
        })
        .collect();
    encode_batch(&records, compression)
}

fn produce(conn: &mut Conn, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    conn.call(&req, 9).responses[0].partition_responses[0].error_code
}

/// A record as a consumer sees it: offset, key, value.
type Read = (i64, Option<String>, Option<String>);

/// Everything a consumer reads from `offset`: (error, records).
fn read_all(conn: &mut Conn, topic: &str, mut offset: i64) -> (i16, Vec<Read>) {
    let mut out = Vec::new();
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = conn.call(&req, 12);
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return (p.error_code, out);
        }
        let mut records = p.records.clone().unwrap_or_default();
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        let before = out.len();
        for r in sets
            .iter()
            .flat_map(|s| s.records.iter())
            .filter(|r| r.offset >= offset)
        {
            let s = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap());
            out.push((r.offset, s(&r.key), s(&r.value)));
        }
        if out.len() == before {
            return (0, out);
        }
        offset = out.last().unwrap().0 + 1;
    }
}

fn list_offset(conn: &mut Conn, topic: &str, ts: i64) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)])]);
    conn.call(&req, 7).topics[0].partitions[0].offset
}

fn delete_records(conn: &mut Conn, topic: &str, offset: i64, version: i16) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let r = conn.call(&req, version);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

fn segment_files(k: &Klamm, topic: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(k.data_dir.join(format!("{topic}-0")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn delete_records_every_version_moves_the_log_start() {
    let mut k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "dr", &[("segment.bytes", "400")]);
    for i in 0..30 {
        let v = format!("v{i}");
        assert_eq!(
            produce(
                &mut conn,
                "dr",
                batch(&[(Some("k"), Some(&v))], Compression::None)
            ),
            0
        );
    }
    for (v, target) in [(0i16, 5i64), (1, 12), (2, 20)] {
        assert_eq!(
            delete_records(&mut conn, "dr", target, v),
            (0, target),
            "DeleteRecords v{v}"
        );
        assert_eq!(list_offset(&mut conn, "dr", -2), target);
        let (err, _) = read_all(&mut conn, "dr", target - 1);
        assert_eq!(
            err, 1,
            "fetching below the log start is OFFSET_OUT_OF_RANGE"
        );
        assert_eq!(
            read_all(&mut conn, "dr", target).1.first().map(|r| r.0),
            Some(target)
        );
    }
    // Past the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    assert_eq!(delete_records(&mut conn, "dr", 31, 2).0, 1);
    assert_eq!(list_offset(&mut conn, "dr", -2), 20);
    assert!(
        segment_files(&k, "dr").len() < 10,
        "segments below the log start are removed: {:?}",
        segment_files(&k, "dr")
    );
    drop(conn);
    k.restart();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(
        list_offset(&mut conn, "dr", -2),
        20,
        "the log start survives a restart"
    );
    // -1 deletes up to the high watermark.
    assert_eq!(delete_records(&mut conn, "dr", -1, 2), (0, 30));
    assert_eq!(read_all(&mut conn, "dr", 30).1.len(), 0);
    assert_eq!(
        produce(
            &mut conn,
            "dr",
            batch(&[(Some("k"), Some("after"))], Compression::None)
        ),
        0
    );
    assert_eq!(
        read_all(&mut conn, "dr", 30).1,
        vec![(30, Some("k".into()), Some("after".into()))]
    );
}

#[test]
fn time_and_size_retention_remove_old_segments() {
    let k = Klamm::start(&["log.retention.check.interval.ms=200"]);
    let mut conn = Conn::connect(k.addr);
    create(
        &mut conn,
        "rt",
        &[("segment.bytes", "300"), ("retention.ms", "1500")],
    );
    create(
        &mut conn,
        "rb",
        &[("segment.bytes", "300"), ("retention.bytes", "1000")],
    );
    for i in 0..20 {
        let v = format!("value-{i:03}");
        assert_eq!(
            produce(
                &mut conn,
                "rt",
                batch(&[(Some("k"), Some(&v))], Compression::None)
            ),
            0
        );
        assert_eq!(
            produce(
                &mut conn,
                "rb",
                batch(&[(Some("k"), Some(&v))], Compression::None)
            ),
            0
        );
    }
    // Size: the log shrinks to at most retention.bytes plus one segment, oldest removed first.
    wait_until("size retention", || list_offset(&mut conn, "rb", -2) > 0);
    let start = list_offset(&mut conn, "rb", -2);
    let (_, records) = read_all(&mut conn, "rb", start);
    assert_eq!(records.last().map(|r| r.0), Some(19));
    let size: u64 = std::fs::read_dir(k.data_dir.join("rb-0"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(size <= 1300, "rb holds {size} bytes");
    assert_eq!(
        read_all(&mut conn, "rb", 0).0,
        1,
        "a consumer behind the log start gets OFFSET_OUT_OF_RANGE"
    );
    // Time: after retention.ms everything goes, the active segment included.
    wait_until("time retention", || list_offset(&mut conn, "rt", -2) == 20);
    assert_eq!(
        segment_files(&k, "rt").len(),
        1,
        "only a fresh empty segment is left"
    );
    assert_eq!(list_offset(&mut conn, "rt", -1), 20, "offsets continue");
    assert_eq!(
        produce(
            &mut conn,
            "rt",
            batch(&[(Some("k"), Some("new"))], Compression::None)
        ),
        0
    );
    assert_eq!(read_all(&mut conn, "rt", 20).1.len(), 1);
}

#[test]
fn compaction_keeps_the_latest_record_per_key() {
    let k = Klamm::start(&["log.cleaner.backoff.ms=100"]);
    let mut conn = Conn::connect(k.addr);
    create(
        &mut conn,
        "cmp",
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "600"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "0"),
        ],
    );
    // Keyless records have no place in a compacted topic.
    assert_eq!(
        produce(
            &mut conn,
            "cmp",
            batch(&[(None, Some("x"))], Compression::None)
        ),
        87
    );
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = std::collections::BTreeMap::new();
    let mut offset = 0i64;
    for round in 0..6 {
        let values: Vec<String> = (0..5).map(|k| format!("k{k}-r{round}")).collect();
        let recs: Vec<(Option<&str>, Option<&str>)> = ["k0", "k1", "k2", "k3", "k4"]
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(*k), Some(v.as_str())))
            .collect();
        assert_eq!(
            produce(&mut conn, "cmp", batch(&recs, codecs[round % 5])),
            0
        );
        for (i, v) in values.iter().enumerate() {
            expected.insert(format!("k{i}"), (offset + i as i64, v.clone()));
        }
        offset += 5;
    }
    // k0 is deleted by a tombstone.
    assert_eq!(
        produce(
            &mut conn,
            "cmp",
            batch(&[(Some("k0"), None)], Compression::None)
        ),
        0
    );
    expected.remove("k0");
    offset += 1;
    // Unique keys push everything above into sealed segments.
    for i in 0..40 {
        let key = format!("u{i:02}");
        assert_eq!(
            produce(
                &mut conn,
                "cmp",
                batch(&[(Some(&key), Some("filler"))], Compression::None)
            ),
            0
        );
        expected.insert(key, (offset, "filler".into()));
        offset += 1;
    }
    let segments_before = segment_files(&k, "cmp").len();
    assert!(segments_before > 3);
    let active_start = segment_files(&k, "cmp")
        .last()
        .unwrap()
        .trim_end_matches(".log")
        .parse::<i64>()
        .unwrap();
    wait_until("compaction", || {
        let (_, records) = read_all(&mut conn, "cmp", 0);
        records
            .iter()
            .filter(|r| r.1.as_deref().is_some_and(|k| k.starts_with('k')))
            .count()
            == 4
    });
    let (err, records) = read_all(&mut conn, "cmp", 0);
    assert_eq!(err, 0);
    for (off, key, value) in &records {
        let key = key.clone().unwrap();
        if *off >= active_start {
            continue;
        }
        let (want_off, want_value) = expected
            .get(&key)
            .unwrap_or_else(|| panic!("{key} should be gone"));
        assert_eq!(
            (off, value.as_deref()),
            (want_off, Some(want_value.as_str())),
            "latest record of {key} with its offset"
        );
    }
    let keys: Vec<&str> = records
        .iter()
        .filter_map(|r| r.1.as_deref())
        .filter(|k| k.starts_with('k'))
        .collect();
    assert_eq!(
        keys,
        ["k1", "k2", "k3", "k4"],
        "one record per key, in offset order, tombstone gone"
    );
    // Offsets are preserved and increasing, with gaps.
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(list_offset(&mut conn, "cmp", -1), offset);
    // Once cleaned, the range stays clean while nothing new is sealed: the cleaner does not
    // rewrite (rename over) its segments again at every pass.
    std::thread::sleep(Duration::from_millis(1000));
    let inodes = || {
        use std::os::unix::fs::MetadataExt;
        segment_files(&k, "cmp")
            .iter()
            .map(|f| {
                std::fs::metadata(k.data_dir.join("cmp-0").join(f))
                    .map(|m| m.ino())
                    .unwrap_or(0)
            })
            .collect::<Vec<_>>()
    };
    let settled = inodes();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        inodes(),
        settled,
        "segments rewritten with nothing new to clean"
    );
}

#[test]
fn clean_shutdown_marker() {
    let mut k = Klamm::start(&[]);
    let marker = k.data_dir.join(".kafka_cleanshutdown");
    assert!(!marker.exists(), "removed while running");
    k.stop();
    assert!(marker.exists(), "written by a clean shutdown");
    k.start_again();
    assert!(!marker.exists());
    assert!(!k.log_contains("last stop was not clean"));
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "m", &[]);
    drop(conn);
    k.kill();
    assert!(!marker.exists());
    k.start_again();
    std::thread::sleep(Duration::from_millis(200));
    assert!(k.log_contains("last stop was not clean"));
}

fn delete_topic(conn: &mut Conn, topic: &str) -> i16 {
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![name(topic)])
        .with_timeout_ms(5000);
    conn.call(&req, 5).responses[0].error_code
}

/// Deleting a topic moves its directories out of the way before it answers (Kafka's
/// `<topic>-<partition>.<id>-delete`) and removes them in the background: a topic created
/// again under the name starts empty at offset 0, and none of the old files are left.
#[test]
fn a_topic_created_again_after_deletion_starts_empty() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "again", &[("segment.bytes", "1048576")]);
    for i in 0..5 {
        let v = format!("old {i}");
        assert_eq!(
            produce(
                &mut conn,
                "again",
                batch(&[(Some("k"), Some(&v))], Compression::None)
            ),
            0
        );
    }
    assert_eq!(delete_topic(&mut conn, "again"), 0);
    assert!(
        !k.data_dir.join("again-0").exists(),
        "the directory leaves its name before the deletion is answered"
    );
    create(&mut conn, "again", &[]);
    let (error, records) = read_all(&mut conn, "again", 0);
    assert_eq!(
        (error, records),
        (0, vec![]),
        "nothing of the old topic is served"
    );
    assert_eq!(
        produce(
            &mut conn,
            "again",
            batch(&[(Some("k"), Some("new"))], Compression::None)
        ),
        0
    );
    let (_, records) = read_all(&mut conn, "again", 0);
    assert_eq!(records, vec![(0, Some("k".into()), Some("new".into()))]);
    wait_until("the deleted directory to be removed", || {
        std::fs::read_dir(&k.data_dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with("-delete"))
    });
    assert_eq!(delete_topic(&mut conn, "again"), 0);
    assert_eq!(
        delete_topic(&mut conn, "again"),
        3,
        "gone: UNKNOWN_TOPIC_OR_PARTITION"
    );
}

/// Names that collide once `.` is read as `_` are refused with INVALID_TOPIC_EXCEPTION, by
/// CreateTopics and by auto-creation alike; the internal `__consumer_offsets` counts as taken
/// before it exists, so no client can keep the broker from making it.
#[test]
fn names_colliding_with_another_or_the_offsets_topic_are_refused() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let create_code = |conn: &mut Conn, topic: &str| {
        let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
        conn.call(&req, 7).topics[0].error_code
    };
    let auto_create_code = |conn: &mut Conn, topic: &str| {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(name(topic))),
            ]))
            .with_allow_auto_topic_creation(true);
        conn.call(&req, 12).topics[0].error_code
    };
    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    assert_eq!(
        create_code(&mut conn, "__consumer.offsets"),
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        auto_create_code(&mut conn, "__consumer.offsets"),
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(create_code(&mut conn, "a.b"), 0);
    assert_eq!(create_code(&mut conn, "a_b"), INVALID_TOPIC_EXCEPTION);
    assert_eq!(auto_create_code(&mut conn, "a_b"), INVALID_TOPIC_EXCEPTION);
    // The offsets topic is still made when first needed, with the broker's settings.
    assert_eq!(auto_create_code(&mut conn, "__consumer_offsets"), 0);
    assert!(!k.data_dir.join("__consumer.offsets-0").exists());
}

// ---------------------------------------------------------------------------------------------
// Descriptors and disk faults.

const KAFKA_STORAGE_ERROR: i16 = 56;

/// Produces one record with the given acks; returns the error code and base offset.
fn produce_acks(conn: &mut Conn, topic: &str, value: &str, acks: i16) -> (i16, i64) {
    let req = support::client::produce_request(
        topic,
        0,
        batch(&[(None, Some(value))], Compression::None),
    )
    .with_acks(acks);
    let r = conn.call(&req, 9);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Produces `<prefix><i>` for each i, each acknowledged, and records (offset, value) in `acked`.
fn produce_each(
    conn: &mut Conn,
    topic: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
    acks: i16,
    acked: &mut Vec<(i64, String)>,
) {
    for i in range {
        let value = format!("{prefix}{i}");
        let (code, offset) = produce_acks(conn, topic, &value, acks);
        assert_eq!(code, 0, "produce {value}");
        acked.push((offset, value));
    }
}

/// A broker whose storage faults the test arms (see `Launch::with_faults`), and a topic.
fn faulty_broker(topic: &str) -> (tempfile::TempDir, Klamm, Conn) {
    let faults = tempfile::tempdir().unwrap();
    let k = Klamm::start_with(&[], support::Launch::default().with_faults(faults.path()));
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, topic, &[]);
    (faults, k, conn)
}

/// DescribeLogDirs' error code for the broker's one directory.
fn log_dir_error(conn: &mut Conn) -> i16 {
    let r = conn.call(&DescribeLogDirsRequest::default().with_topics(None), 2);
    r.results[0].error_code
}

fn values(records: &[Read]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|(o, _, v)| (*o, v.clone().unwrap_or_default()))
        .collect()
}

/// Sealed segments keep no descriptors open beyond a bounded cache (a quarter of the process's
/// limit): 1,500 one-batch segments under a limit of 512 descriptors are written, read back
/// whole, and opened again after a clean stop and after a crash. Holding three descriptors per
/// segment, as a log that keeps every file open does, runs out after about 160.
#[test]
fn sealed_segments_hold_no_descriptors_beyond_a_bounded_cache() {
    const SEGMENTS: usize = 1_500;
    // A quarter of the limit for sealed segments, the rest for everything else.
    const LIMIT: u64 = 512;
    let bound = (LIMIT / 4) as usize + 64;
    let mut k = Klamm::start_with(
        &[],
        support::Launch {
            nofile: Some(LIMIT),
            ..Default::default()
        },
    );
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "many", &[("segment.bytes", "14")]);
    let mut acked = Vec::new();
    produce_each(&mut conn, "many", "v", 0..SEGMENTS, 1, &mut acked);
    assert_eq!(segment_files(&k, "many").len(), SEGMENTS);
    let written = k.open_fds();
    assert!(written <= bound, "{written} descriptors open after writing");
    let (code, read) = read_all(&mut conn, "many", 0);
    assert_eq!(code, 0);
    assert_eq!(values(&read), acked, "a consumer reads every segment");
    let after_read = k.open_fds();
    assert!(
        after_read <= bound,
        "{after_read} descriptors open after reading"
    );
    eprintln!(
        "{SEGMENTS} segments: {written} descriptors open after writing, {after_read} after reading (bound {bound})"
    );
    drop(conn);
    for how in ["clean stop", "crash"] {
        if how == "crash" {
            k.kill();
            k.start_again();
        } else {
            k.restart();
        }
        let opened = k.open_fds();
        assert!(opened <= bound, "{opened} descriptors open after a {how}");
        let mut conn = Conn::connect(k.addr);
        let (code, read) = read_all(&mut conn, "many", 0);
        assert_eq!(code, 0);
        assert_eq!(values(&read), acked, "after a {how}");
        let (code, offset) = produce_acks(&mut conn, "many", "after", 1);
        assert_eq!((code, offset), (0, acked.len() as i64), "after a {how}");
        acked.push((offset, "after".into()));
    }
}

/// With no descriptors left, writes that need one (a segment roll, here every batch) fail with
/// KAFKA_STORAGE_ERROR; nothing is lost or half-written, the directory stays online, and writes
/// succeed again as soon as descriptors are available.
#[test]
fn running_out_of_descriptors_fails_writes_until_they_return() {
    let k = Klamm::start_with(
        &[],
        support::Launch {
            nofile: Some(512),
            ..Default::default()
        },
    );
    let mut conn = Conn::connect(k.addr);
    create(&mut conn, "fds", &[("segment.bytes", "14")]);
    let mut acked = Vec::new();
    produce_each(&mut conn, "fds", "v", 0..5, 1, &mut acked);
    let set_limit = |soft: usize| {
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", k.pid()))
            .arg(format!("--nofile={soft}:512"))
            .status()
            .expect("run prlimit");
        assert!(status.success());
    };
    // No descriptor numbers left (bar holes below the highest, which the first rolls fill).
    set_limit(k.open_fds());
    let mut refused = 0;
    for i in 0..40 {
        let value = format!("w{i}");
        match produce_acks(&mut conn, "fds", &value, 1) {
            (0, offset) => acked.push((offset, value)),
            (KAFKA_STORAGE_ERROR, _) => refused += 1,
            (code, _) => panic!("produce {i}: error {code}"),
        }
    }
    assert!(refused >= 30, "only {refused} of 40 writes were refused");
    assert_eq!(log_dir_error(&mut conn), 0, "the directory stays online");
    set_limit(512);
    // Writes once descriptors are back.
    produce_each(&mut conn, "fds", "x", 0..5, 1, &mut acked);
    let offsets: Vec<i64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..acked.len() as i64).collect::<Vec<_>>());
    let (code, read) = read_all(&mut conn, "fds", 0);
    assert_eq!(code, 0);
    assert_eq!(values(&read), acked, "exactly the acknowledged records");
}

/// A full disk fails writes with KAFKA_STORAGE_ERROR and leaves nothing half-written; once
/// space returns, writes go on at the next offset, and the log survives a crash intact.
#[test]
fn a_full_disk_fails_writes_until_space_returns() {
    let (faults, mut k, mut conn) = faulty_broker("full");
    let mut acked = Vec::new();
    produce_each(&mut conn, "full", "v", 0..3, -1, &mut acked);
    std::fs::write(faults.path().join("enospc"), b"").unwrap();
    for acks in [1, -1] {
        let (code, _) = produce_acks(&mut conn, "full", "lost", acks);
        assert_eq!(code, KAFKA_STORAGE_ERROR, "acks={acks} on a full disk");
    }
    assert_eq!(
        log_dir_error(&mut conn),
        0,
        "a full disk is not a failed one"
    );
    std::fs::remove_file(faults.path().join("enospc")).unwrap();
    // Writes once space is back.
    produce_each(&mut conn, "full", "v", 3..6, -1, &mut acked);
    let (code, read) = read_all(&mut conn, "full", 0);
    assert_eq!(code, 0);
    assert_eq!(values(&read), acked);
    drop(conn);
    k.kill();
    k.start_again();
    let mut conn = Conn::connect(k.addr);
    let (code, read) = read_all(&mut conn, "full", 0);
    assert_eq!(code, 0);
    assert_eq!(values(&read), acked, "after a crash");
}

/// A failed fsync is never retried into a success: the log directory goes offline at once,
/// every partition answers KAFKA_STORAGE_ERROR (produce, fetch, ListOffsets) even after the
/// disk recovers, DescribeLogDirs reports the directory's error, and the broker says so in its
/// log while it keeps answering what needs no disk. A restart recovers what was acknowledged.
#[test]
fn a_failed_fsync_takes_the_log_directory_offline() {
    let (faults, mut k, mut conn) = faulty_broker("synced");
    let mut acked = Vec::new();
    produce_each(&mut conn, "synced", "v", 0..5, -1, &mut acked);
    assert_eq!(log_dir_error(&mut conn), 0);
    std::fs::write(faults.path().join("eio"), b"").unwrap();
    let (code, _) = produce_acks(&mut conn, "synced", "unsynced", -1);
    assert_eq!(code, KAFKA_STORAGE_ERROR, "acks=all whose fsync failed");
    // The disk "recovers"; the directory stays offline all the same.
    std::fs::remove_file(faults.path().join("eio")).unwrap();
    let (code, _) = produce_acks(&mut conn, "synced", "later", 1);
    assert_eq!(code, KAFKA_STORAGE_ERROR, "acks=1 to an offline directory");
    let (code, read) = read_all(&mut conn, "synced", 0);
    assert_eq!((code, read.len()), (KAFKA_STORAGE_ERROR, 0), "fetch");
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("synced"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    assert_eq!(
        conn.call(&req, 7).topics[0].partitions[0].error_code,
        KAFKA_STORAGE_ERROR,
        "ListOffsets"
    );
    assert_eq!(log_dir_error(&mut conn), KAFKA_STORAGE_ERROR);
    assert!(k.log_contains("log directory offline"));
    // What needs no disk is still answered.
    let meta = conn.call(&MetadataRequest::default().with_topics(None), 12);
    assert!(meta.topics.iter().any(|t| t.name == Some(name("synced"))));
    drop(conn);
    k.kill();
    k.start_again();
    let mut conn = Conn::connect(k.addr);
    assert_eq!(log_dir_error(&mut conn), 0, "online again after a restart");
    let (code, read) = read_all(&mut conn, "synced", 0);
    assert_eq!(code, 0);
    // The batch whose fsync failed may or may not have reached the disk; its producer was told
    // it failed. Everything acknowledged is there, in order.
    assert_eq!(values(&read)[..acked.len()], acked[..]);
    let (code, _) = produce_acks(&mut conn, "synced", "again", -1);
    assert_eq!(code, 0, "writes work after the restart");
}

/// A producer's pipelined acks=all requests on one connection share fsyncs: once a Produce
/// request has appended and only waits for durability, the next request is read and appended
/// too. With a disk whose syncs take 300 ms, five requests sent back to back (a Metadata
/// request among them) are answered in order, at consecutive offsets, after at most two syncs
/// of the partition's data rather than one each.
#[test]
fn pipelined_acks_all_requests_share_an_fsync() {
    let (faults, _k, mut conn) = faulty_broker("piped");
    // The first sync of a new partition also covers its directory; warm it up.
    let mut acked = Vec::new();
    produce_each(&mut conn, "piped", "warm", 0..1, -1, &mut acked);
    std::fs::write(faults.path().join("slow-sync"), b"").unwrap();
    let produce = |i: usize| {
        support::client::produce_request(
            "piped",
            0,
            batch(&[(None, Some(&format!("p{i}")))], Compression::None),
        )
        .with_acks(-1)
    };
    let mut sent = Vec::new();
    for i in 0..5 {
        if i == 2 {
            sent.push((
                None,
                conn.send(&MetadataRequest::default().with_topics(None), 12),
            ));
        }
        sent.push((Some(i), conn.send(&produce(i), 9)));
    }
    let mut offsets = Vec::new();
    for (produced, correlation) in sent {
        match produced {
            // receive() checks the correlation id: responses come in request order.
            Some(i) => {
                let r = conn.receive::<ProduceRequest>(correlation, 9);
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "produce p{i}");
                offsets.push(p.base_offset);
            }
            None => {
                conn.receive::<MetadataRequest>(correlation, 12);
            }
        }
    }
    std::fs::remove_file(faults.path().join("slow-sync")).unwrap();
    assert_eq!(offsets, vec![1, 2, 3, 4, 5]);
    let syncs = std::fs::read(faults.path().join("syncs"))
        .map(|b| b.len())
        .unwrap_or(0);
    eprintln!("5 pipelined acks=all requests: {syncs} data syncs");
    assert!(
        (1..=2).contains(&syncs),
        "{syncs} syncs for 5 pipelined acks=all requests"
    );
    let (code, read) = read_all(&mut conn, "piped", 0);
    assert_eq!(code, 0);
    assert_eq!(read.len(), 6);
}

/// A topic's `compression.type` other than `producer` stores every batch in that codec, as
/// Kafka recompresses them: consumers read the same records whatever the producer used, in the
/// topic's codec; a batch already in it is stored as sent. `uncompressed` decompresses.
#[test]
fn a_topics_compression_type_recompresses_what_producers_send() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create(
        &mut conn,
        "as-zstd",
        &[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9"),
        ],
    );
    create(
        &mut conn,
        "as-none",
        &[("compression.type", "uncompressed")],
    );
    let produced = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for (topic, stored) in [
        ("as-zstd", Compression::Zstd),
        ("as-none", Compression::None),
    ] {
        let mut expected = Vec::new();
        for (i, codec) in produced.iter().enumerate() {
            let key = format!("k{i}");
            let value = format!("{codec:?} ").repeat(40);
            assert_eq!(
                produce(
                    &mut conn,
                    topic,
                    batch(&[(Some(key.as_str()), Some(value.as_str()))], *codec)
                ),
                0
            );
            expected.push((i as i64, Some(key), Some(value)));
        }
        let (code, read) = read_all(&mut conn, topic, 0);
        assert_eq!(code, 0);
        assert_eq!(read, expected, "{topic}: the records as produced");
        let req = support::client::fetch_request(topic, &[(0, 0)], 1 << 20, 1 << 20);
        let r = conn.call(&req, 12);
        let mut bytes = r.responses[0].partitions[0].records.clone().unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets.len(), produced.len());
        for (set, codec) in sets.iter().zip(produced) {
            assert_eq!(
                set.compression, stored,
                "{topic}: a batch produced with {codec:?}"
            );
        }
    }
}
