//! Start-up, configuration and shutdown of the real binary.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use support::client::{encode_batch, record};
use support::{klamm_bin, Conn, Klamm};

fn metadata(k: &Klamm, topic: &str) -> MetadataResponse {
    let mut conn = Conn::connect(k.addr);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(true);
    conn.call(&req, 12)
}

/// Runs klamm to completion (it is expected to fail fast) and returns (success, stderr).
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(klamm_bin());
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_value_stops_startup_naming_key_value_and_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let log_dirs = format!("log.dirs={}", dir.path().display());
    let (ok, err) = run_to_exit(&["-o", &log_dirs, "-o", "num.partitions=zero"], &[]);
    assert!(!ok);
    assert!(
        err.contains("num.partitions") && err.contains("zero") && err.contains("≥ 1"),
        "{err}"
    );
    let (ok, err) = run_to_exit(
        &[
            "-o",
            &log_dirs,
            "-o",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "-o",
            "auto.create.topics.enable=maybe",
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("auto.create.topics.enable") && err.contains("true or false"),
        "{err}"
    );
}

#[test]
fn data_dir_that_cannot_be_created_or_is_locked() {
    let (ok, err) = run_to_exit(
        &[
            "-o",
            "log.dirs=/proc/klamm-cannot-create",
            "-o",
            "listeners=PLAINTEXT://127.0.0.1:0",
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("cannot create data directory"), "{err}");
    let k = Klamm::start(&[]);
    let log_dirs = format!("log.dirs={}", k.data_dir.display());
    let (ok, err) = run_to_exit(
        &["-o", &log_dirs, "-o", "listeners=PLAINTEXT://127.0.0.1:0"],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("in use by another broker"), "{err}");
}

#[test]
fn kafka_properties_file_starts_and_unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("server.properties");
    std::fs::write(
        &props,
        "broker.id=0\nnum.network.threads=3\nzookeeper.connect=localhost:2181\n\
         zookeeper.connection.timeout.ms=18000\nnum.partitions=2\n\
         offsets.topic.replication.factor=1\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let cmd_args = vec![
        "--config".to_string(),
        props.display().to_string(),
        "-o".to_string(),
        format!("log.dirs={}", data.display()),
    ];
    let mut child = Command::new(klamm_bin())
        .args(&cmd_args)
        .args(["-o", "listeners=PLAINTEXT://127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines: Vec<String> = {
        use std::io::BufRead;
        let mut out = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let ready = line.contains("ready to accept connections");
            out.push(line);
            if ready {
                break;
            }
        }
        out
    };
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(all.contains("ready to accept connections"), "{all}");
    assert!(all.contains("node_id=0"), "broker.id is node.id: {all}");
    let warning = lines
        .iter()
        .find(|l| l.contains("ignoring configuration keys"))
        .expect("one warning");
    for key in [
        "num.network.threads",
        "zookeeper.connect",
        "zookeeper.connection.timeout.ms",
        "offsets.topic.replication.factor",
    ] {
        assert!(warning.contains(key), "{key} not named: {warning}");
    }
}

#[test]
fn precedence_defaults_file_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("k.toml");
    std::fs::write(
        &toml,
        "\"num.partitions\" = 3\n\"message.max.bytes\" = 4000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let log_dirs = format!("log.dirs={}", data.display());
    let run = |envs: &[(&str, &str)], extra: &[&str]| -> (i32, String) {
        let mut cmd = Command::new(klamm_bin());
        cmd.args([
            "--config",
            toml.to_str().unwrap(),
            "-o",
            &log_dirs,
            "-o",
            "listeners=PLAINTEXT://127.0.0.1:0",
        ]);
        for e in extra {
            cmd.args(["-o", e]);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut addr = None;
        {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
                {
                    addr = Some(a.parse().unwrap());
                    break;
                }
            }
        }
        let mut conn = Conn::connect(addr.expect("ready"));
        let topic = format!("t{}", envs.len() + extra.len());
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic))))]));
        let n = conn.call(&req, 12).topics[0].partitions.len() as i32;
        let _ = child.kill();
        let _ = child.wait();
        (n, String::new())
    };
    assert_eq!(run(&[], &[]).0, 3, "file beats default");
    assert_eq!(
        run(&[("KLAMM_NUM_PARTITIONS", "5")], &[]).0,
        5,
        "env beats file"
    );
    assert_eq!(
        run(&[("KLAMM_NUM_PARTITIONS", "5")], &["num.partitions=7"]).0,
        7,
        "override beats env"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_state_survives_restart() {
    let mut k = Klamm::start(&[]);
    let before = metadata(&k, "keep");
    let pid = k.pid();
    k.stop();
    assert!(
        k.log_contains("shutdown complete"),
        "clean shutdown is logged"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || !k.alive());
    k.start_again();
    let after = metadata(&k, "keep");
    assert_eq!(
        before.cluster_id, after.cluster_id,
        "cluster id is persisted"
    );
    assert_eq!(
        before.topics[0].topic_id, after.topics[0].topic_id,
        "topic id is persisted"
    );
}

#[test]
fn damaged_tail_and_stray_metadata_are_repaired_at_startup() {
    let mut k = Klamm::start(&[]);
    // Auto-create the topic, then produce five one-record batches with acks=all.
    metadata(&k, "dmg");
    let mut conn = Conn::connect(k.addr);
    for i in 0..5 {
        let records = support_batch(&format!("v{i}"));
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                kafka_protocol::messages::produce_request::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("dmg")))
                    .with_partition_data(vec![
                        kafka_protocol::messages::produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ]);
        assert_eq!(
            conn.call(&req, 9).responses[0].partition_responses[0].error_code,
            0
        );
    }
    drop(conn);
    k.kill();
    let seg = k.data_dir.join("dmg-0").join("00000000000000000000.log");
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 5).unwrap();
    std::fs::write(
        k.data_dir.join("__topics").join("half.tmp"),
        b"name = \"hal",
    )
    .unwrap();
    std::fs::remove_file(k.data_dir.join("dmg-0").join("00000000000000000000.index")).unwrap();
    k.start_again();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        k.log_contains("truncated a damaged log tail"),
        "the repair is logged"
    );
    assert!(
        k.log_contains("half-written metadata"),
        "stray metadata file is reported"
    );
    let mut conn = Conn::connect(k.addr);
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("dmg")))
                .with_partitions(vec![
                    kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    assert_eq!(
        conn.call(&req, 7).topics[0].partitions[0].offset,
        4,
        "everything before the damage is served"
    );
}

fn support_batch(value: &str) -> bytes::Bytes {
    encode_batch(
        &[record(
            0,
            1,
            None,
            Some(bytes::Bytes::from(value.to_string())),
        )],
        kafka_protocol::records::Compression::None,
    )
}

/// Start-up removes what the broker left behind (directories renamed for removal, partition
/// directories it made for no topic it has) and nothing else: folders it did not create stay,
/// even when named like a partition.
#[test]
fn startup_removes_only_the_brokers_own_leftovers() {
    let mut k = Klamm::start(&[]);
    assert_eq!(metadata(&k, "live").topics[0].error_code, 0);
    k.stop();
    let d = k.data_dir.clone();
    let put = |dir: &str, file: &str| {
        std::fs::create_dir_all(d.join(dir)).unwrap();
        std::fs::write(d.join(dir).join(file), b"x").unwrap();
    };
    put("notes", "todo.txt");
    put("backup-1", "00000000000000000000.log");
    put("lost+found", "a");
    put(
        "old-0.0123456789abcdef0123456789abcdef-delete",
        "00000000000000000000.log",
    );
    // What a create interrupted by a crash leaves: the broker's marker, no topic record.
    put("ghost-0", "00000000000000000000.log");
    std::fs::copy(
        d.join("live-0").join("partition.metadata"),
        d.join("ghost-0").join("partition.metadata"),
    )
    .unwrap();
    k.start_again();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while d.join("ghost-0").exists()
        || d.join("old-0.0123456789abcdef0123456789abcdef-delete")
            .exists()
        || std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("-delete"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker's leftovers are removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for kept in [
        "notes/todo.txt",
        "backup-1/00000000000000000000.log",
        "lost+found/a",
    ] {
        assert!(d.join(kept).is_file(), "{kept} is not the broker's: kept");
    }
    assert!(d.join("live-0").is_dir());
    assert!(
        k.log_contains("backup-1"),
        "the partition-like folder left alone is reported"
    );
    assert_eq!(metadata(&k, "live").topics[0].error_code, 0);
    // A partition whose directory is taken by files the broker did not make is refused (as a
    // storage error), not adopted, and the files stay.
    put("taken-0", "mine.txt");
    assert_eq!(metadata(&k, "taken").topics[0].error_code, 56);
    assert_eq!(
        std::fs::read(d.join("taken-0").join("mine.txt")).unwrap(),
        b"x"
    );
    assert!(!d.join("taken-0").join("partition.metadata").exists());
}
