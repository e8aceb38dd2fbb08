//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`. Run once, when a
//! format changes or a target is added (fuzz/README.md); its output is kept in the repository.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --release --example gen_seeds -- .
//!
//! The argument is the repository root. Seeds:
//! - request: the golden frames of real clients (protocol-tests/fixtures/*), and for every API
//!   and version the broker serves, a frame holding that request's default body;
//! - batch: batches under every codec, with keys, headers and producer ids, and the produce
//!   batches of the golden frames;
//! - segment: partition directories written by `klamm::log::Log` (several segments, indexes,
//!   producer snapshot, checkpoints), packed as the target reads them, and damaged variants;
//! - offsets_records: keys and values as the coordinator writes them;
//! - config: config/server.toml and config/server.properties, and a Kafka-style file.
//!
//! It also writes the libFuzzer dictionaries in `fuzz/dict/`: without a sanitizer runtime
//! libFuzzer cannot see string comparisons, so the config keys, their choices and the segment
//! separator are given to it.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use klamm::group::records::{GroupValue, Key, MemberValue, OffsetValue};
use klamm::log::batch::BatchHeader;
use klamm::log::{Log, LogConfig};
use klamm_fuzz::{FLAG_DENSE_INDEX, FLAG_FIX_CRC, SEGMENT_SEP};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let corpus = root.join("fuzz/corpus");
    request(&root, &corpus.join("request"));
    batch(&root, &corpus.join("batch"));
    segment(&corpus.join("segment"));
    offsets_records(&corpus.join("offsets_records"));
    config(&root, &corpus.join("config"));
    dictionaries(&root.join("fuzz/dict"));
}

/// Makes the corpus directory. Files already there stay: inputs merged in from fuzzing runs
/// and regression inputs are kept; the generator's own files are overwritten.
fn fresh(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The golden frames: (client, file name, bytes).
fn golden(root: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let fixtures = root.join("protocol-tests/fixtures");
    let mut clients: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    clients.sort_by_key(|e| e.file_name());
    for client in clients {
        let mut files: Vec<_> = std::fs::read_dir(client.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
            .collect();
        files.sort_by_key(|e| e.file_name());
        for f in files {
            out.push((
                client.file_name().to_string_lossy().into_owned(),
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read(f.path()).unwrap(),
            ));
        }
    }
    out
}

fn default_body(key: ApiKey, version: i16) -> Option<Vec<u8>> {
    macro_rules! encode_default {
        ($($k:ident => $t:ty),* $(,)?) => {
            match key {
                $( ApiKey::$k => {
                    let mut b = BytesMut::new();
                    <$t>::default().encode(&mut b, version).ok()?;
                    Some(b.to_vec())
                } )*
                _ => None,
            }
        };
    }
    encode_default!(
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        InitProducerId => InitProducerIdRequest,
        DeleteRecords => DeleteRecordsRequest,
        DeleteGroups => DeleteGroupsRequest,
        OffsetDelete => OffsetDeleteRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        DescribeLogDirs => DescribeLogDirsRequest,
        CreatePartitions => CreatePartitionsRequest,
        ElectLeaders => ElectLeadersRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DescribeCluster => DescribeClusterRequest,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest,
    )
}

fn request(root: &Path, dir: &Path) {
    fresh(dir);
    for (client, name, bytes) in golden(root) {
        write(dir, &format!("golden-{client}-{name}"), &bytes);
    }
    let mut missing = Vec::new();
    for spec in klamm::api::APIS {
        for version in spec.served_min..=spec.max {
            let header = RequestHeader::default()
                .with_request_api_key(spec.key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("fuzz")));
            let mut frame = BytesMut::new();
            header
                .encode(&mut frame, spec.key.request_header_version(version))
                .unwrap();
            match default_body(spec.key, version) {
                Some(body) => {
                    frame.extend_from_slice(&body);
                    write(
                        dir,
                        &format!("default-{}-{:?}-v{version}", spec.key as i16, spec.key),
                        &frame,
                    );
                }
                None => missing.push(format!("{:?} v{version}", spec.key)),
            }
        }
    }
    assert!(missing.is_empty(), "no default body for {missing:?}");
}

fn record(
    i: i64,
    key: Option<&'static [u8]>,
    value: &[u8],
    producer: Option<(i64, i16, i32)>,
) -> Record {
    let mut r = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: producer.map_or(-1, |p| p.0),
        producer_epoch: producer.map_or(-1, |p| p.1),
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: producer.map_or(-1, |p| p.2 + i as i32),
        timestamp: 1_700_000_000_000 + i,
        key: key.map(Bytes::from_static),
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    if i % 2 == 1 {
        r.headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from_static(b"v")),
        );
        r.headers.insert(StrBytes::from_static_str("null"), None);
    }
    r
}

fn encode_batch(compression: Compression, records: &[Record]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

const CODECS: [(Compression, &str); 5] = [
    (Compression::None, "none"),
    (Compression::Gzip, "gzip"),
    (Compression::Snappy, "snappy"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

fn sample_records(producer: Option<(i64, i16, i32)>) -> Vec<Record> {
    vec![
        record(0, Some(b"k0"), b"first value", producer),
        record(1, None, b"second value, without a key", producer),
        record(2, Some(b"k2"), &[0u8; 40], producer),
    ]
}

fn batch(root: &Path, dir: &Path) {
    fresh(dir);
    for (codec, name) in CODECS {
        write(
            dir,
            &format!("{name}-3"),
            &encode_batch(codec, &sample_records(None)),
        );
        write(
            dir,
            &format!("{name}-1-idempotent"),
            &encode_batch(codec, &[record(0, Some(b"k"), b"v", Some((1000, 0, 0)))]),
        );
    }
    let empty_value = Record {
        value: None,
        ..record(0, Some(b"tombstone"), b"", None)
    };
    write(
        dir,
        "none-tombstone",
        &encode_batch(Compression::None, &[empty_value]),
    );
    // The batches of the golden Produce frames (zstd, gzip, snappy from real clients).
    for (client, name, bytes) in golden(root) {
        if !name.starts_with("0-Produce") {
            continue;
        }
        let mut frame = Bytes::from(bytes);
        let version: i16 = name
            .trim_end_matches(".bin")
            .rsplit("-v")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let key = ApiKey::Produce;
        RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let produce = ProduceRequest::decode(&mut frame, version).unwrap();
        for (t, topic) in produce.topic_data.iter().enumerate() {
            for (p, partition) in topic.partition_data.iter().enumerate() {
                if let Some(records) = &partition.records {
                    write(dir, &format!("golden-{client}-{t}-{p}"), records);
                }
            }
        }
    }
}

/// Packs the files of a partition directory as the `segment` target reads them.
fn pack(dir: &Path, flags: u8, damage: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let bases: Vec<i64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .collect();
    let snapshot = names
        .iter()
        .find_map(|n| Some((n.strip_suffix(".snapshot")?.parse::<i64>().ok()?, n.clone())));
    let seg = |base: i64, suffix: &str| read(&klamm::log::segment::file_name(base, suffix));
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let first = bases[0];
    assert_eq!(first, 0, "the first segment of a seed starts at 0");
    let mut log0 = seg(first, "log").unwrap();
    damage(&mut log0);
    parts.push(log0);
    parts.push(seg(first, "index").unwrap_or_default());
    parts.push(seg(first, "timeindex").unwrap_or_default());
    parts.push(match &snapshot {
        Some((offset, name)) => {
            let mut p = offset.to_be_bytes().to_vec();
            p.extend(read(name).unwrap());
            p
        }
        None => Vec::new(),
    });
    for name in [
        "recovery-point",
        "log-start-offset",
        "cleaner-offset-checkpoint",
    ] {
        parts.push(read(name).unwrap_or_default());
    }
    for &base in &bases[1..] {
        parts.push(seg(base, "log").unwrap());
        parts.push(seg(base, "index").unwrap_or_default());
        parts.push(seg(base, "timeindex").unwrap_or_default());
    }
    let mut out = vec![flags];
    out.extend(parts.join(SEGMENT_SEP));
    out
}

fn append(log: &mut Log, batch: &[u8]) {
    let header = BatchHeader::parse(batch).unwrap();
    log.append(batch, &header, None, 0, 1_700_000_000_000)
        .unwrap();
}

fn segment(dir: &Path) {
    fresh(dir);
    let tmp = std::env::temp_dir().join(format!("klamm-gen-seeds-{}", std::process::id()));
    let config = LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: i64::MAX,
        index_interval_bytes: 100,
    };
    let scenarios: [(&str, usize, Compression, bool); 4] = [
        ("one-segment", 0, Compression::None, false),
        ("two-segments", 1, Compression::None, true),
        ("three-segments-zstd", 2, Compression::Zstd, true),
        ("gzip-idempotent", 0, Compression::Gzip, true),
    ];
    for (name, rolls, codec, idempotent) in scenarios {
        let _ = std::fs::remove_dir_all(&tmp);
        let ldir = tmp.join("t-0");
        let mut log = Log::open_with(&ldir, config, 1_700_000_000_000, false).unwrap();
        let mut seq = 0;
        for round in 0..=rolls {
            for _ in 0..3 {
                let producer = idempotent.then_some((4242, 0, seq));
                let recs = sample_records(producer);
                seq += recs.len() as i32;
                append(&mut log, &encode_batch(codec, &recs));
            }
            if round < rolls {
                log.roll(1_700_000_000_000).unwrap();
            }
        }
        log.sync_all().unwrap();
        if name == "two-segments" {
            log.set_cleaned_upto(3).unwrap();
        }
        drop(log);
        let flags = if name == "gzip-idempotent" {
            FLAG_DENSE_INDEX
        } else {
            0
        };
        write(dir, name, &pack(&ldir, flags, |_| {}));
        // The same directory with a torn tail, and with a flipped byte (CRCs fixed or not).
        write(
            dir,
            &format!("{name}-torn"),
            &pack(&ldir, flags, |l| l.truncate(l.len() - 7)),
        );
        write(
            dir,
            &format!("{name}-flipped"),
            &pack(&ldir, flags | FLAG_FIX_CRC, |l| {
                let at = l.len() / 2;
                l[at] ^= 0x5a;
            }),
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn offsets_records(dir: &Path) {
    fresh(dir);
    let keys = [
        Key::Offset {
            group: "group-1".into(),
            topic: "orders".into(),
            partition: 3,
        },
        Key::Group {
            group: "group-1".into(),
        },
    ];
    for (i, k) in keys.iter().enumerate() {
        write(dir, &format!("key-{i}"), &k.encode());
    }
    let offset = OffsetValue {
        offset: 42,
        leader_epoch: 0,
        metadata: "meta".into(),
        commit_timestamp: 1_700_000_000_000,
    };
    write(dir, "offset-value", &offset.encode());
    let member = |n: usize, instance: Option<&str>| {
        MemberValue {
        member_id: format!("consumer-{n}-0a1b"),
        instance_id: instance.map(String::from),
        client_id: format!("consumer-{n}"),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 300_000,
        session_timeout_ms: 45_000,
        subscription: Bytes::from_static(b"\x00\x03\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff"),
        assignment: Bytes::from_static(b"\x00\x03\x00\x00\x00\x01\x00\x06orders\x00\x00\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff"),
    }
    };
    let group = GroupValue {
        protocol_type: "consumer".into(),
        generation: 5,
        protocol: Some("range".into()),
        leader: Some("consumer-1-0a1b".into()),
        state_timestamp: 1_700_000_000_000,
        members: vec![member(1, None), member(2, Some("static-2"))],
    };
    write(dir, "group-value", &group.encode());
    let empty = GroupValue {
        protocol_type: "".into(),
        generation: 0,
        protocol: None,
        leader: None,
        state_timestamp: -1,
        members: Vec::new(),
    };
    write(dir, "group-value-empty", &empty.encode());
}

fn config(root: &Path, dir: &Path) {
    fresh(dir);
    for name in ["server.toml", "server.properties"] {
        std::fs::copy(root.join("config").join(name), dir.join(name)).unwrap();
    }
    // Kafka's own KRaft server.properties, as an operator would bring it.
    write(
        dir,
        "kafka-kraft.properties",
        b"# Kafka KRaft single node\n\
process.roles=broker,controller\n\
node.id=1\n\
controller.quorum.voters=1@localhost:9093\n\
listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
inter.broker.listener.name=PLAINTEXT\n\
advertised.listeners=PLAINTEXT://localhost:9092\n\
controller.listener.names=CONTROLLER\n\
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL\n\
num.network.threads=3\n\
num.io.threads=8\n\
socket.send.buffer.bytes=102400\n\
socket.receive.buffer.bytes=102400\n\
socket.request.max.bytes=104857600\n\
log.dirs=/tmp/kraft-combined-logs\n\
num.partitions=1\n\
offsets.topic.replication.factor=1\n\
log.retention.hours=168\n\
log.segment.bytes=1073741824\n\
log.retention.check.interval.ms=300000\n\
log.cleaner.enable = true\n\
message.max.bytes : 1048588\n\
weird\\ key\\=x = multi \\\n    line \\u00e9\n",
    );
    write(
        dir,
        "nested.toml",
        b"listeners = \"PLAINTEXT://127.0.0.1:9092\"\n\"num.partitions\" = 3\n\n\
[log]\ndirs = \"/var/lib/klamm\"\nretention.ms = 604800000\n\n\
[group.initial.rebalance.delay]\nms = 0\n\n\
[auto.create.topics]\nenable = false\n",
    );
}

/// A libFuzzer dictionary entry: the bytes quoted, with `\`, `"` and non-printables escaped.
fn dict_entry(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'\\' | b'"' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02X}")),
        }
    }
    s.push('"');
    s
}

fn dictionaries(dir: &Path) {
    use klamm::config::defs::Kind;
    std::fs::create_dir_all(dir).unwrap();
    let mut tokens: Vec<String> = Vec::new();
    for def in klamm::config::BROKER_DEFS {
        tokens.push(def.name.to_string());
        if let Kind::Choice(values) | Kind::ListOf(values) = def.kind {
            tokens.extend(values.iter().map(|v| v.to_string()));
        }
    }
    tokens.extend(
        [
            "broker.id",
            "PLAINTEXT://",
            "CONTROLLER",
            "PLAINTEXT",
            "SSL",
            "SASL_PLAINTEXT",
            "://",
            "0.0.0.0",
            "127.0.0.1",
            "[::1]",
            "localhost",
            "true",
            "false",
            "-1",
            "9223372036854775807",
            "2147483647",
            "1e308",
            "NaN",
            "\\u00e9",
            "\\\n",
            "[",
            "]",
            "[[",
            "]]",
            "\"\"\"",
            "'''",
            " = ",
            "=",
            ":",
            "#",
            "!",
        ]
        .map(String::from),
    );
    tokens.sort();
    tokens.dedup();
    let mut config = String::from(
        "# Generated by fuzz/examples/gen_seeds.rs: broker config keys and choices.\n",
    );
    for t in tokens {
        config.push_str(&dict_entry(t.as_bytes()));
        config.push('\n');
    }
    std::fs::write(dir.join("config.dict"), config).unwrap();
    std::fs::write(
        dir.join("segment.dict"),
        format!(
            "# Generated by fuzz/examples/gen_seeds.rs: the separator of the parts of an input.\n{}\n",
            dict_entry(SEGMENT_SEP)
        ),
    )
    .unwrap();
}
