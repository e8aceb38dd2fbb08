//! Malformed input over a raw socket closes only the offending connection: a client on another
//! connection keeps producing and consuming throughout, and nothing stored changes.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use std::io::Write;
use support::client::{create_topic, encode_batch, record};
use support::{Conn, Klamm};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A valid single-record batch, uncompressed, without producer id.
fn one_record_batch(value: &[u8]) -> Bytes {
    let r = Record {
        sequence: -1,
        ..record(0, 1, None, Some(Bytes::copy_from_slice(value)))
    };
    encode_batch(&[r], Compression::None)
}

fn produce(conn: &mut Conn, records: Bytes) -> i16 {
    produce_at(conn, records).0
}

/// Produces to partition 0 of "good" and returns the error code and base offset.
fn produce_at(conn: &mut Conn, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("good"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = conn.call(&req, 9);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_all(conn: &mut Conn) -> (i64, Bytes) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name("good"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = conn.call(&req, 12);
    let p = &resp.responses[0].partitions[0];
    (p.high_watermark, p.records.clone().unwrap_or_default())
}

/// A batch built like `one_record_batch` whose header claims `count` records (and the matching
/// lastOffsetDelta), with its CRC fixed so that only the records give the lie away.
fn claiming(batch: Bytes, count: i32) -> Bytes {
    let mut b = batch.to_vec();
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes()); // lastOffsetDelta
    b[57..61].copy_from_slice(&count.to_be_bytes()); // recordCount
    let crc = crc32c::crc32c(&b[21..]); // attributes to the end
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn header(key: i16, version: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&42i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let k = Klamm::start(&["socket.request.max.bytes=1048576"]);
    let mut good = Conn::connect(k.addr);
    create_topic(&mut good, "good", 1);
    assert_eq!(produce(&mut good, one_record_batch(b"before")), 0);

    let size = |n: i32| n.to_be_bytes().to_vec();
    let mut garbage_header = size(10);
    garbage_header.extend_from_slice(&[0, 3, 0, 9, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]);
    let mut unknown_key = size(10);
    unknown_key.extend_from_slice(&header(999, 0));
    let mut unsupported = size(10);
    unsupported.extend_from_slice(&header(3, 99));
    let mut old_produce = size(10);
    old_produce.extend_from_slice(&header(0, 1));
    let mut truncated_body = size(12);
    truncated_body.extend_from_slice(&header(3, 1));
    truncated_body.extend_from_slice(&[0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("giant size", size(1 << 30)),
        ("negative size", size(-5)),
        ("garbage header", garbage_header),
        ("unknown api key", unknown_key),
        ("unsupported version", unsupported),
        ("produce v1", old_produce),
        ("truncated body", truncated_body),
        ("too short for a header", [size(3), vec![0, 1, 2]].concat()),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let mut bad = Conn::connect(k.addr);
        bad.stream.write_all(&bytes).unwrap();
        assert!(bad.is_closed(), "{what}: connection should be closed");
        // The other connection is unaffected and keeps working.
        assert_eq!(
            produce(
                &mut good,
                one_record_batch(format!("during {i}").as_bytes())
            ),
            0,
            "{what}"
        );
    }
    // A frame cut off mid-way: the client goes away before sending the rest.
    {
        let mut cut = Conn::connect(k.addr);
        cut.stream.write_all(&size(100)).unwrap();
        cut.stream.write_all(&[0, 3, 0, 1]).unwrap();
    }
    let (hw, records) = fetch_all(&mut good);
    assert_eq!(hw, 9);
    let mut records = records;
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    let values: Vec<String> = sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values[0], "before");
    assert_eq!(values.len(), 9);
    assert!(k.log_contains("closing connection"));
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("good"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("max.message.bytes"))
                .with_value(Some(StrBytes::from_static_str("200"))),
        ])]);
    assert_eq!(conn.call(&req, 7).topics[0].error_code, 0);
    // Flipped byte in the records: CRC mismatch → CORRUPT_MESSAGE (2).
    let mut corrupt = one_record_batch(b"x").to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(produce(&mut conn, Bytes::from(corrupt)), 2);
    // Magic 1 (old message format) → UNSUPPORTED_FOR_MESSAGE_FORMAT (43).
    let mut old = one_record_batch(b"x").to_vec();
    old[16] = 1;
    assert_eq!(produce(&mut conn, Bytes::from(old)), 43);
    // Over max.message.bytes → MESSAGE_TOO_LARGE (10).
    assert_eq!(produce(&mut conn, one_record_batch(&[7u8; 500])), 10);
    // Two batches in one partition's records → INVALID_RECORD (87).
    let two = [one_record_batch(b"a"), one_record_batch(b"b")].concat();
    assert_eq!(produce(&mut conn, Bytes::from(two)), 87);
    // Truncated batch → CORRUPT_MESSAGE.
    let whole = one_record_batch(b"abc");
    assert_eq!(produce(&mut conn, whole.slice(..whole.len() - 2)), 2);
    // Nothing was stored, and a good batch still works.
    assert_eq!(fetch_all(&mut conn).0, 0);
    assert_eq!(produce(&mut conn, one_record_batch(b"ok")), 0);
    assert_eq!(fetch_all(&mut conn).0, 1);
}

/// A frame: size, request header (v1, or v2 with its empty tag section for flexible versions),
/// body.
fn frame(key: i16, version: i16, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut request = header(key, version);
    if flexible {
        request.push(0);
    }
    request.extend_from_slice(body);
    [(request.len() as i32).to_be_bytes().to_vec(), request].concat()
}

/// A request whose array count claims far more elements than its bytes hold, and the same
/// request with a count that fits, hand-encoded so this test shares nothing with the broker.
struct Inflated {
    what: &'static str,
    attack: Vec<u8>,
    twin: Vec<u8>,
}

/// Compact (flexible) count of 2^32-2 elements, and of none.
const HUGE_COMPACT: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f];
const EMPTY_COMPACT: &[u8] = &[0x01];
/// Classic count of 2^31-1 elements, and of none.
const HUGE: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
const EMPTY: &[u8] = &[0, 0, 0, 0];

fn inflated_requests() -> Vec<Inflated> {
    // The exact 40 bytes that aborted the broker: Metadata v12, client id
    // "metadata-attacker", topics claiming 2^32-2 entries.
    let mut metadata = vec![0, 0, 0, 36, 0, 3, 0, 12, 0, 0, 0, 1, 0, 17];
    metadata.extend_from_slice(b"metadata-attacker");
    metadata.push(0); // header tags
    metadata.extend_from_slice(HUGE_COMPACT);
    metadata.extend_from_slice(&[1, 0, 0]); // auto-create, topic authorized ops, tags
    assert_eq!(metadata.len(), 40);
    let mut metadata_twin = metadata[4..32].to_vec(); // the request header
    metadata_twin.extend_from_slice(EMPTY_COMPACT);
    metadata_twin.extend_from_slice(&[1, 0, 0]);
    let metadata_twin = [
        (metadata_twin.len() as i32).to_be_bytes().to_vec(),
        metadata_twin,
    ]
    .concat();

    // Each body is written out field by field around its count.
    type Body = fn(&[u8]) -> Vec<u8>;
    let cases: Vec<(&'static str, i16, i16, bool, Body)> = vec![
        ("Produce v9 topic_data", 0, 9, true, |count| {
            [&[0][..], &[0, 1, 0, 0, 0x13, 0x88], count, &[0]].concat()
        }),
        ("Produce v9 partition_data", 0, 9, true, |count| {
            [
                &[0][..],
                &[0, 1, 0, 0, 0x13, 0x88],
                &[2, 5],
                b"good",
                count,
                &[0, 0],
            ]
            .concat()
        }),
        ("Produce v7 topic_data", 0, 7, false, |count| {
            [&[0xff, 0xff][..], &[0, 1, 0, 0, 0x13, 0x88], count].concat()
        }),
        ("JoinGroup v5 protocols", 11, 5, false, |count| {
            [
                &[0, 1, b'g'][..],
                &[0, 0, 0x27, 0x10, 0, 0, 0x75, 0x30],
                &[0, 0, 0xff, 0xff, 0, 8],
                b"consumer",
                count,
            ]
            .concat()
        }),
        ("JoinGroup v9 protocols", 11, 9, true, |count| {
            [
                &[2, b'g'][..],
                &[0, 0, 0x27, 0x10, 0, 0, 0x75, 0x30],
                &[1, 0, 9],
                b"consumer",
                count,
                &[0, 0],
            ]
            .concat()
        }),
        ("OffsetCommit v7 topics", 8, 7, false, |count| {
            [&[0, 1, b'g'][..], &[0xff; 4], &[0, 0, 0xff, 0xff], count].concat()
        }),
        ("OffsetCommit v9 topics", 8, 9, true, |count| {
            [&[2, b'g'][..], &[0xff; 4], &[1, 0], count, &[0]].concat()
        }),
    ];
    let mut out = vec![Inflated {
        what: "Metadata v12 topics (the 40-byte request)",
        attack: metadata,
        twin: metadata_twin,
    }];
    for (what, key, version, flexible, body) in cases {
        let (huge, empty) = if flexible {
            (HUGE_COMPACT, EMPTY_COMPACT)
        } else {
            (HUGE, EMPTY)
        };
        out.push(Inflated {
            what,
            attack: frame(key, version, flexible, &body(huge)),
            twin: frame(key, version, flexible, &body(empty)),
        });
    }
    out
}

/// Array counts that claim more elements than the request holds once made the broker try to
/// reserve room for all of them and abort. Now such a request closes its own connection with
/// the reason logged, as any undecodable request does, and nothing else notices.
#[test]
fn inflated_counts_close_only_their_connection() {
    let mut k = Klamm::start(&[]);
    let mut good = Conn::connect(k.addr);
    create_topic(&mut good, "good", 1);
    assert_eq!(produce(&mut good, one_record_batch(b"before")), 0);

    let cases = inflated_requests();
    for (i, case) in cases.iter().enumerate() {
        // The same bytes with a count that fits are answered: the framing is right and only
        // the count is wrong.
        let mut twin = Conn::connect(k.addr);
        twin.stream.write_all(&case.twin).unwrap();
        let answer = twin.read_frame();
        assert!(
            answer.is_some(),
            "{}: the well-formed twin got no answer",
            case.what
        );

        let mut bad = Conn::connect(k.addr);
        bad.stream.write_all(&case.attack).unwrap();
        assert!(
            bad.is_closed(),
            "{}: connection should be closed",
            case.what
        );
        assert!(k.alive(), "{}: the broker died", case.what);
        // Another connection, old or new, produces and fetches as before.
        assert_eq!(
            produce(&mut good, one_record_batch(format!("after {i}").as_bytes())),
            0,
            "{}",
            case.what
        );
        let mut fresh = Conn::connect(k.addr);
        assert_eq!(fetch_all(&mut fresh).0, i as i64 + 2, "{}", case.what);
    }
    assert!(k.alive());
    assert!(
        k.log_contains("cannot decode Metadata v12 request: topics: 4294967294 elements"),
        "the reason names the API, version and field"
    );
    assert!(
        k.log_contains("peer=127.0.0.1:"),
        "the reason names the client"
    );
}

/// A batch claiming 2^31-1 records but holding one was stored, and the next batch landed at
/// offset 2147483648. Now the records are counted before anything is stored.
#[test]
fn a_batch_must_hold_the_records_it_claims() {
    let k = Klamm::start(&[]);
    let mut conn = Conn::connect(k.addr);
    create_topic(&mut conn, "good", 1);
    assert_eq!(produce_at(&mut conn, one_record_batch(b"first")), (0, 0));

    // INVALID_RECORD (87), as Kafka's validator answers a count the records do not match.
    let lie = claiming(one_record_batch(b"one"), i32::MAX);
    assert_eq!(produce_at(&mut conn, lie).0, 87);
    let two_claimed = claiming(one_record_batch(b"one"), 2);
    assert_eq!(produce_at(&mut conn, two_claimed).0, 87);

    // Nothing moved: the next good batch gets the next offset.
    assert_eq!(produce_at(&mut conn, one_record_batch(b"second")), (0, 1));
    let (hw, mut records) = fetch_all(&mut conn);
    assert_eq!(hw, 2);
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
    let offsets: Vec<i64> = sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, [0, 1]);
}

// ---------------------------------------------------------------------------------------------
// Mutated real-client frames over the wire
// ---------------------------------------------------------------------------------------------

mod wire_fuzz {
    use std::collections::VecDeque;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, DeleteTopicsRequest, MetadataRequest, RequestHeader,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use kafka_protocol::records::RecordBatchDecoder;
    use klamm::api::{self, RequestBody, APIS};
    use klamm::codec::{length_sites, LengthSite};

    use crate::support::client::{batch, create_topic, fetch_request, produce_request};
    use crate::support::fixtures::golden_frames;
    use crate::support::{Conn, Klamm};

    /// Mutated frames sent in all (`BAD_INPUT_FRAMES` overrides).
    const FRAMES: usize = 50_000;
    /// Attacker connections, each on its own thread, sharing the frames.
    const ATTACKERS: usize = 4;
    /// The default seed (`BAD_INPUT_SEED` overrides).
    const SEED: u64 = 0x6b6c_616d_6d5f_6675;
    /// How long an attacker waits for the first byte of a response before it gives up on the
    /// connection (a long-polling Fetch, an acks=0 Produce, a JoinGroup waiting for members).
    const ANSWER_WAIT: Duration = Duration::from_millis(50);
    /// Frames kept for the report when something fails.
    const RECENT: usize = 24;
    /// Resident memory the broker may gain over the run.
    const RSS_SLACK_KIB: u64 = 64 * 1024;
    /// Partitions a well-formed CreateTopics or CreatePartitions that a mutation produced may
    /// ask for; more, and the frame is drawn again. Asking for 65,537 partitions is a valid
    /// request (a quota question, not malformed input), and thousands of partitions' files
    /// and memory would drown what this test looks for.
    const MAX_ASKED_PARTITIONS: i32 = 64;
    const VICTIM: &str = "victim";
    /// Topics the captured frames name, created up front so that their Produce, Fetch and
    /// ListOffsets reach a partition.
    const GOLDEN_TOPICS: &[&str] = &[
        "golden-kcat",
        "golden-kafka-python",
        "golden-confluent-kafka",
    ];

    /// SplitMix64: small, and the same sequence on every platform.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[self.below(from.len())]
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// A captured frame, ready to be mutated.
    struct Seed {
        label: String,
        key: i16,
        version: i16,
        /// Header and body, without the size prefix.
        frame: Vec<u8>,
        header_len: usize,
        /// Length prefixes of the body (offsets relative to the body).
        sites: Vec<LengthSite>,
    }

    fn seeds() -> Vec<Seed> {
        golden_frames()
            .into_iter()
            .map(|g| {
                let mut rest = g.frame.clone();
                RequestHeader::decode(&mut rest, g.key.request_header_version(g.version))
                    .unwrap_or_else(|e| panic!("{}: header: {e}", g.label()));
                let header_len = g.frame.len() - rest.remaining();
                let sites = length_sites(g.key, g.version, &rest)
                    .unwrap_or_else(|e| panic!("{}: length sites: {e:?}", g.label()));
                Seed {
                    label: g.label(),
                    key: g.key as i16,
                    version: g.version,
                    frame: g.frame.to_vec(),
                    header_len,
                    sites,
                }
            })
            .collect()
    }

    /// What goes on the wire for one mutated frame.
    #[derive(Clone)]
    struct Attack {
        kind: String,
        source: String,
        wire: Vec<u8>,
        /// Close the connection right after sending (the frame promises more than is sent).
        close_after: bool,
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        [(body.len() as i32).to_be_bytes().to_vec(), body.to_vec()].concat()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Unsigned varints that overflow a length: 2^32-1, 2^32-2, 2^31, and more than five bytes.
    const HUGE_VARINTS: &[&[u8]] = &[
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0xfe, 0xff, 0xff, 0xff, 0x0f],
        &[0x80, 0x80, 0x80, 0x80, 0x08],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ];
    const HUGE_I32: &[i32] = &[i32::MAX, -1, -2, i32::MIN, 0x4000_0000, 0x0100_0000, 65_536];
    const HUGE_I16: &[i16] = &[i16::MAX, -1, -2, i16::MIN, 0x4000];

    /// `bytes` written over `frame` at `at`, growing it when they run past its end.
    fn overwrite(frame: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        let end = at + bytes.len();
        if frame.len() < end {
            frame.resize(end, 0);
        }
        frame[at..end].copy_from_slice(bytes);
    }

    /// A served (key, version) at random.
    fn served(rng: &mut Rng) -> (i16, i16) {
        let spec = rng.pick(APIS);
        let version = spec.served_min + rng.below((spec.max - spec.served_min + 1) as usize) as i16;
        (spec.key as i16, version)
    }

    fn mutate(rng: &mut Rng, seeds: &[Seed]) -> Attack {
        let seed = &seeds[rng.below(seeds.len())];
        let mut f = seed.frame.clone();
        let len = f.len();
        let mut close_after = false;
        let roll = rng.below(100);
        let kind = match roll {
            0..=23 => {
                let n = 1 + rng.below(8);
                let bits: Vec<usize> = (0..n).map(|_| rng.below(len * 8)).collect();
                for b in &bits {
                    f[b / 8] ^= 1 << (b % 8);
                }
                format!("bit flips at {bits:?}")
            }
            24..=35 => {
                let cut = rng.below(len);
                f.truncate(cut);
                format!("truncated to {cut} of {len} bytes")
            }
            36..=43 => {
                // The size prefix promises more than is sent, then the connection closes.
                close_after = true;
                let claim = match rng.below(4) {
                    0 => len,
                    1 => len + 1 + rng.below(1000),
                    2 => (1 << 20) + rng.below(99 << 20),
                    _ => rng.below(len),
                };
                let sent = if rng.below(8) == 0 {
                    let wire = (claim as i32).to_be_bytes()[..1 + rng.below(3)].to_vec();
                    return Attack {
                        kind: format!("{} bytes of a size prefix, then close", wire.len()),
                        source: seed.label.clone(),
                        wire,
                        close_after,
                    };
                } else {
                    rng.below(claim.min(len).max(1))
                };
                let mut wire = (claim as i32).to_be_bytes().to_vec();
                wire.extend_from_slice(&f[..sent]);
                return Attack {
                    kind: format!("size {claim}, {sent} bytes sent, then close"),
                    source: seed.label.clone(),
                    wire,
                    close_after,
                };
            }
            44..=63 => {
                if !seed.sites.is_empty() && rng.below(2) == 0 {
                    // A real length prefix of the body.
                    let site = seed.sites[rng.below(seed.sites.len())];
                    let at = seed.header_len + site.at;
                    let new: Vec<u8> = if site.compact {
                        rng.pick(HUGE_VARINTS).to_vec()
                    } else if site.width == 2 {
                        rng.pick(HUGE_I16).to_be_bytes().to_vec()
                    } else {
                        rng.pick(HUGE_I32).to_be_bytes().to_vec()
                    };
                    f.splice(at..at + site.width, new.iter().copied());
                    format!("{:?} length at {at} set to {}", site.kind, hex(&new))
                } else {
                    let at = rng.below(len);
                    let new: Vec<u8> = match rng.below(3) {
                        0 => rng.pick(HUGE_I32).to_be_bytes().to_vec(),
                        1 => rng.pick(HUGE_I16).to_be_bytes().to_vec(),
                        _ => rng.pick(HUGE_VARINTS).to_vec(),
                    };
                    overwrite(&mut f, at, &new);
                    format!("{} written at {at}", hex(&new))
                }
            }
            64..=75 => {
                let key = ApiKey::try_from(seed.key).unwrap();
                let spec = api::spec(key).unwrap();
                let version = match rng.below(6) {
                    // Another served version: the body read in a layout it was not written in.
                    0 | 1 => {
                        spec.served_min
                            + rng.below((spec.max - spec.served_min + 1) as usize) as i16
                    }
                    2 => spec.max + 1 + rng.below(3) as i16,
                    3 => rng.below(spec.served_min as usize + 1) as i16 - 1,
                    4 => rng.pick(&[-1, -2, i16::MIN, i16::MAX]),
                    _ => rng.next() as i16,
                };
                let version = if version == seed.version {
                    spec.max + 1
                } else {
                    version
                };
                f[2..4].copy_from_slice(&version.to_be_bytes());
                format!("version {} -> {version}", seed.version)
            }
            76..=85 => {
                let (key, version) = match rng.below(10) {
                    0..=3 => (rng.pick(APIS).key as i16, seed.version),
                    4..=6 => served(rng),
                    7 => (rng.pick(&[-1, -2, i16::MIN, i16::MAX]), seed.version),
                    _ => (100 + rng.below(900) as i16, seed.version),
                };
                let key = if key == seed.key { -1 } else { key };
                f[0..2].copy_from_slice(&key.to_be_bytes());
                f[2..4].copy_from_slice(&version.to_be_bytes());
                format!("API {} v{} -> {key} v{version}", seed.key, seed.version)
            }
            86..=95 => {
                let n = if rng.below(2) == 0 {
                    rng.below(64)
                } else {
                    rng.below(4096)
                };
                f = rng.bytes(n);
                if rng.below(2) == 0 && n >= 8 {
                    let (key, version) = served(rng);
                    f[0..2].copy_from_slice(&key.to_be_bytes());
                    f[2..4].copy_from_slice(&version.to_be_bytes());
                    format!("{n} random bytes after API {key} v{version}")
                } else if rng.below(8) == 0 {
                    // A random size prefix too: it may promise anything, so close after.
                    close_after = true;
                    let mut wire = rng.bytes(4);
                    wire.extend_from_slice(&f);
                    return Attack {
                        kind: format!(
                            "random size prefix {} and {n} random bytes",
                            hex(&wire[..4])
                        ),
                        source: "garbage".into(),
                        wire,
                        close_after,
                    };
                } else {
                    format!("{n} random bytes")
                }
            }
            _ => "unchanged".into(),
        };
        Attack {
            kind,
            source: if (86..=95).contains(&roll) {
                "garbage".into()
            } else {
                seed.label.clone()
            },
            wire: framed(&f),
            close_after,
        }
    }

    /// Is `frame` (header and body) a CreateTopics or CreatePartitions the broker would decode
    /// and that asks for more than [`MAX_ASKED_PARTITIONS`]? Decoded as the broker decodes it.
    fn asks_for_many_partitions(frame: &[u8]) -> bool {
        if frame.len() < 8 {
            return false;
        }
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let key = match ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])) {
            Ok(key @ (ApiKey::CreateTopics | ApiKey::CreatePartitions)) => key,
            _ => return false,
        };
        if !api::spec(key).is_some_and(|s| s.serves(version)) {
            return false;
        }
        let mut body = Bytes::copy_from_slice(frame);
        if RequestHeader::decode(&mut body, key.request_header_version(version)).is_err() {
            return false;
        }
        let many = |n: i32| n > MAX_ASKED_PARTITIONS;
        match api::decode_body(key, version, body) {
            Ok(RequestBody::CreateTopics(r)) => r
                .topics
                .iter()
                .any(|t| many(t.num_partitions) || t.assignments.len() > 64),
            Ok(RequestBody::CreatePartitions(r)) => r.topics.iter().any(|t| many(t.count)),
            _ => false,
        }
    }

    /// The last frames sent, across attackers, for the report.
    #[derive(Default)]
    struct Recent(Mutex<VecDeque<(usize, usize, Attack)>>);

    impl Recent {
        fn push(&self, attacker: usize, n: usize, a: &Attack) {
            let mut q = self.0.lock().unwrap();
            if q.len() == RECENT {
                q.pop_front();
            }
            q.push_back((attacker, n, a.clone()));
        }
        fn dump(&self) {
            let q = self.0.lock().unwrap();
            eprintln!(
                "--- the last {} mutated frames sent, oldest first ---",
                q.len()
            );
            for (attacker, n, a) in q.iter() {
                eprintln!(
                    "attacker {attacker} frame {n}: {} ({}){}\n  {}",
                    a.kind,
                    a.source,
                    if a.close_after { ", closed after" } else { "" },
                    hex(&a.wire)
                );
            }
        }
    }

    /// Prints the recent frames when the test thread panics (a failed assertion).
    struct DumpOnPanic(Arc<Run>);

    impl Drop for DumpOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.recent.dump();
            }
        }
    }

    /// State shared by the threads.
    #[derive(Default)]
    struct Run {
        recent: Recent,
        /// Set on the first failure: everyone stops.
        stop: AtomicBool,
        failures: Mutex<Vec<String>>,
        attack_done: AtomicBool,
        producer_done: AtomicBool,
        /// One past the last acked offset of the victim topic.
        acked: AtomicI64,
        answered: AtomicU64,
        closed: AtomicU64,
        silent: AtomicU64,
        cut: AtomicU64,
        write_failed: AtomicU64,
        /// Frames drawn again because they asked for many partitions.
        redrawn: AtomicU64,
    }

    impl Run {
        fn fail(&self, what: String) {
            eprintln!("FAILURE: {what}");
            self.failures.lock().unwrap().push(what);
            self.stop.store(true, Ordering::SeqCst);
        }

        /// Runs `body` on a thread; a panic in it is a failure like any other.
        fn spawn(
            self: &Arc<Self>,
            name: &str,
            body: impl FnOnce(&Run) -> Result<(), String> + Send + 'static,
        ) -> std::thread::JoinHandle<()> {
            let run = self.clone();
            let name = name.to_string();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(
                    move || match catch_unwind(AssertUnwindSafe(|| body(&run))) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => run.fail(format!("{name}: {e}")),
                        Err(p) => {
                            let msg = p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            run.fail(format!("{name} panicked: {msg}"))
                        }
                    },
                )
                .unwrap()
        }
    }

    enum Answer {
        Response,
        Closed,
        Silent,
    }

    /// Waits briefly for one response and reads it whole, without looking into it.
    fn read_answer(s: &mut TcpStream) -> Result<Answer, String> {
        s.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
        let mut size = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match s.read(&mut size[got..]) {
                Ok(0) => return Ok(Answer::Closed),
                Ok(n) => {
                    got += n;
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if got == 0 {
                        return Ok(Answer::Silent);
                    }
                    return Err("a response's size prefix stopped half-way".into());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Ok(Answer::Closed),
            }
        }
        let size = i32::from_be_bytes(size);
        if !(4..=256 << 20).contains(&size) {
            return Err(format!("response with size prefix {size}"));
        }
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut body = vec![0u8; size as usize];
        match s.read_exact(&mut body) {
            Ok(()) => Ok(Answer::Response),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("a response of {size} bytes stopped half-way"))
            }
            Err(_) => Ok(Answer::Closed),
        }
    }

    fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_nodelay(true).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                    return Ok(s);
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("cannot connect for 10 s: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn attacker(
        run: &Run,
        addr: SocketAddr,
        id: usize,
        seed: u64,
        frames: usize,
        seeds: &[Seed],
    ) -> Result<(), String> {
        let mut rng = Rng(seed ^ (id as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let mut conn: Option<TcpStream> = None;
        for n in 0..frames {
            if run.stop.load(Ordering::Relaxed) {
                break;
            }
            let attack = loop {
                let attack = mutate(&mut rng, seeds);
                if attack.close_after || !asks_for_many_partitions(&attack.wire[4..]) {
                    break attack;
                }
                run.redrawn.fetch_add(1, Ordering::Relaxed);
            };
            run.recent.push(id, n, &attack);
            let mut s = match conn.take() {
                Some(s) => s,
                None => connect(addr)?,
            };
            if s.write_all(&attack.wire).is_err() {
                run.write_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if attack.close_after {
                let _ = s.shutdown(Shutdown::Both);
                run.cut.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match read_answer(&mut s)? {
                Answer::Response => {
                    run.answered.fetch_add(1, Ordering::Relaxed);
                    conn = Some(s);
                }
                Answer::Closed => {
                    run.closed.fetch_add(1, Ordering::Relaxed);
                }
                // Whatever it waits for, the next frame goes on a new connection.
                Answer::Silent => {
                    run.silent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Produces numbered values to the victim topic until the attack is over: the value at
    /// offset `n` is `v<n>`, and every batch must be stored where the offsets so far say.
    fn producer(run: &Run, addr: SocketAddr) -> Result<(), String> {
        let mut conn = Conn::connect(addr);
        let mut next = 0i64;
        let mut slowest = Duration::ZERO;
        let mut i = 0u64;
        while !run.attack_done.load(Ordering::SeqCst) && !run.stop.load(Ordering::Relaxed) {
            let count = 1 + (i % 4) as i64;
            let values: Vec<String> = (next..next + count).map(|o| format!("v{o}")).collect();
            let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            let acks = if i % 5 == 4 { -1 } else { 1 };
            let req = produce_request(VICTIM, 0, batch(&values)).with_acks(acks);
            let started = Instant::now();
            let resp = conn.try_call(&req, 9).ok_or_else(|| {
                format!("no answer to produce {i} (acks={acks}) at offset {next}")
            })?;
            slowest = slowest.max(started.elapsed());
            let p = &resp.responses[0].partition_responses[0];
            if p.error_code != 0 || p.base_offset != next {
                return Err(format!(
                    "produce {i} (acks={acks}): error {} base offset {}, expected 0 and {next}",
                    p.error_code, p.base_offset
                ));
            }
            next += count;
            run.acked.store(next, Ordering::SeqCst);
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        eprintln!("producer: {i} batches, {next} records acked, slowest answer {slowest:?}");
        run.producer_done.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Fetches the victim topic from offset 0 until it has read every acked record: each
    /// offset once, in order, with its own value.
    fn consumer(run: &Run, addr: SocketAddr) -> Result<(), String> {
        let mut conn = Conn::connect(addr);
        let mut next = 0i64;
        let mut fetches = 0u64;
        let mut drained_since: Option<Instant> = None;
        loop {
            if run.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if run.producer_done.load(Ordering::SeqCst) {
                let acked = run.acked.load(Ordering::SeqCst);
                if next == acked {
                    break;
                }
                let since = *drained_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(20) {
                    return Err(format!("stuck at offset {next} of {acked} acked"));
                }
            }
            let req = fetch_request(VICTIM, &[(0, next)], 1 << 20, 1 << 20)
                .with_max_wait_ms(50)
                .with_min_bytes(1);
            let resp = conn
                .try_call(&req, 12)
                .ok_or_else(|| format!("no answer to fetch from {next}"))?;
            fetches += 1;
            let p = &resp.responses[0].partitions[0];
            if p.error_code != 0 {
                return Err(format!("fetch from {next}: error {}", p.error_code));
            }
            let mut records = p.records.clone().unwrap_or_default();
            let sets = RecordBatchDecoder::decode_all(&mut records)
                .map_err(|e| format!("fetch from {next}: batches do not decode: {e}"))?;
            for r in sets.iter().flat_map(|s| s.records.iter()) {
                if r.offset < next {
                    continue; // the start of a batch the fetch offset points into
                }
                let value = r.value.as_deref().unwrap_or_default();
                let want = format!("v{next}");
                if r.offset != next || value != want.as_bytes() {
                    return Err(format!(
                        "expected offset {next} value {want}, read offset {} value {:?}",
                        r.offset,
                        String::from_utf8_lossy(value)
                    ));
                }
                next += 1;
            }
            if next > run.acked.load(Ordering::SeqCst) && run.producer_done.load(Ordering::SeqCst) {
                return Err(format!(
                    "read up to {next}, past the {} acked",
                    run.acked.load(Ordering::SeqCst)
                ));
            }
        }
        eprintln!("consumer: {fetches} fetches, {next} records read");
        Ok(())
    }

    /// Deletes every topic but `keep` and the internal ones; returns how many it deleted.
    fn delete_all_but(conn: &mut Conn, keep: &str) -> usize {
        let metadata = conn.call(&MetadataRequest::default().with_topics(None), 12);
        let names: Vec<_> = metadata
            .topics
            .iter()
            .filter_map(|t| t.name.clone())
            .filter(|n| n.0.as_str() != keep && !n.0.starts_with("__"))
            .collect();
        for chunk in names.chunks(100) {
            let req = DeleteTopicsRequest::default()
                .with_topic_names(chunk.to_vec())
                .with_timeout_ms(30_000);
            for r in conn.call(&req, 4).responses {
                assert_eq!(r.error_code, 0, "delete topic {:?}", r.name);
            }
        }
        names.len()
    }

    /// Sockets `pid` holds open (its listener among them).
    fn open_sockets(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| l.to_string_lossy().starts_with("socket:"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// How the broker's reasons for closing connections spread (numbers masked), and how many
    /// topics the attack created: what the mutations reached.
    fn print_close_reasons(log: &[String]) {
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        for line in log {
            if let Some((_, reason)) = line.split_once("reason=") {
                let mut masked = String::new();
                for c in reason.chars().take(90) {
                    if !c.is_ascii_digit() {
                        masked.push(c);
                    } else if !masked.ends_with('#') {
                        masked.push('#');
                    }
                }
                *reasons.entry(masked).or_default() += 1;
            }
        }
        let mut reasons: Vec<(String, usize)> = reasons.into_iter().collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        eprintln!(
            "broker's reasons for closing connections ({} kinds):",
            reasons.len()
        );
        for (reason, n) in reasons.iter().take(20) {
            eprintln!("{n:>7}  {reason}");
        }
        let created = log.iter().filter(|l| l.contains("created topic")).count();
        eprintln!("topics created during the run: {created}");
    }

    /// Captured frames of real clients (every API and version in `fixtures/`), mutated —
    /// bit flips, truncation, frames cut off by a close, inflated lengths and counts, wrong
    /// versions and API keys, garbage — and sent over several connections, while a producer
    /// and a consumer on their own connections go on as if nothing happened: every acked
    /// record is read back once, in order, and the broker is alive, answering, has logged no
    /// panic and holds no memory the attack left behind.
    #[test]
    fn mutated_frames_from_real_clients_never_hurt_other_clients() {
        let seed = std::env::var("BAD_INPUT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(SEED);
        let frames = std::env::var("BAD_INPUT_FRAMES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(FRAMES);
        let seeds = Arc::new(seeds());
        eprintln!(
            "BAD_INPUT_SEED={seed} BAD_INPUT_FRAMES={frames}: {} captured frames from {} (API, version) pairs",
            seeds.len(),
            {
                let mut pairs: Vec<(i16, i16)> = seeds.iter().map(|s| (s.key, s.version)).collect();
                pairs.sort();
                pairs.dedup();
                pairs.len()
            }
        );

        let mut k = Klamm::start(&[]);
        let run = Arc::new(Run::default());
        let _dump = DumpOnPanic(run.clone());
        let mut admin = Conn::connect(k.addr);
        create_topic(&mut admin, VICTIM, 1);
        for t in GOLDEN_TOPICS {
            create_topic(&mut admin, t, 1);
        }
        drop(admin);
        let rss_before = k.rss_kib();
        let fds_before = k.open_fds();

        let started = Instant::now();
        let producer = run.spawn("producer", {
            let addr = k.addr;
            move |run| producer(run, addr)
        });
        let consumer = run.spawn("consumer", {
            let addr = k.addr;
            move |run| consumer(run, addr)
        });
        let attackers: Vec<_> = (0..ATTACKERS)
            .map(|id| {
                let (addr, seeds) = (k.addr, seeds.clone());
                let share = frames / ATTACKERS + usize::from(id < frames % ATTACKERS);
                run.spawn(&format!("attacker {id}"), move |run| {
                    attacker(run, addr, id, seed, share, &seeds)
                })
            })
            .collect();
        while !attackers.iter().all(|a| a.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if !run.stop.load(Ordering::Relaxed) && !k.alive() {
                run.fail("the broker exited".into());
            }
        }
        let attack_time = started.elapsed();
        for a in attackers {
            a.join().unwrap();
        }
        run.attack_done.store(true, Ordering::SeqCst);
        producer.join().unwrap();
        consumer.join().unwrap();

        let sent = run.answered.load(Ordering::Relaxed)
            + run.closed.load(Ordering::Relaxed)
            + run.silent.load(Ordering::Relaxed)
            + run.cut.load(Ordering::Relaxed)
            + run.write_failed.load(Ordering::Relaxed);
        eprintln!(
            "{sent} mutated frames in {attack_time:.1?}: {} answered, {} closed by the broker, \
             {} unanswered within {ANSWER_WAIT:?}, {} cut off by us, {} not writable; \
             {} drawn again for asking for more than {MAX_ASKED_PARTITIONS} partitions",
            run.answered.load(Ordering::Relaxed),
            run.closed.load(Ordering::Relaxed),
            run.silent.load(Ordering::Relaxed),
            run.cut.load(Ordering::Relaxed),
            run.write_failed.load(Ordering::Relaxed),
            run.redrawn.load(Ordering::Relaxed),
        );
        let failures = run.failures.lock().unwrap().clone();
        if !failures.is_empty() {
            let log = k.log.lock().unwrap();
            eprintln!("--- the broker's last log lines ---");
            for line in &log[log.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
            panic!("BAD_INPUT_SEED={seed}: {failures:#?}");
        }
        assert_eq!(sent as usize, frames, "every frame was sent");

        assert!(k.alive(), "the broker exited");
        let mut fresh = Conn::connect(k.addr);
        let versions = fresh.call(
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
            3,
        );
        assert_eq!(versions.error_code, 0, "ApiVersions on a fresh connection");
        // Nothing but the producer wrote to the victim topic.
        let resp = fresh.call(&fetch_request(VICTIM, &[(0, 0)], 1, 1), 12);
        assert_eq!(
            resp.responses[0].partitions[0].high_watermark,
            run.acked.load(Ordering::SeqCst),
            "the victim topic holds exactly the acked records"
        );

        // The topics the attack created (and the golden ones) go, so that what is left is what
        // the connections left behind.
        let deleted = delete_all_but(&mut fresh, VICTIM);
        drop(fresh);
        std::thread::sleep(Duration::from_millis(1000));
        let rss_after = k.rss_kib();
        eprintln!(
            "{deleted} topics deleted; broker sockets still open: {}",
            open_sockets(k.pid())
        );
        eprintln!(
            "broker RSS {rss_before} KiB before, {rss_after} KiB after (anonymous {} KiB, files {} KiB); \
             {fds_before} descriptors open before, {} after; {} log lines",
            k.status_kib("RssAnon"),
            k.status_kib("RssFile"),
            k.open_fds(),
            k.log.lock().unwrap().len()
        );
        {
            let log = k.log.lock().unwrap();
            print_close_reasons(&log);
            if let Ok(path) = std::env::var("BAD_INPUT_LOG") {
                std::fs::write(&path, log.join("\n")).expect("write BAD_INPUT_LOG");
            }
            let bad: Vec<&String> = log
                .iter()
                .filter(|l| {
                    l.contains("panicked") || l.contains("abort") || l.contains("memory allocation")
                })
                .take(20)
                .collect();
            assert!(bad.is_empty(), "the broker logged:\n{bad:#?}");
        }
        assert!(
            rss_after < rss_before + RSS_SLACK_KIB,
            "broker RSS grew from {rss_before} KiB to {rss_after} KiB"
        );
        eprintln!("total {:.1?}", started.elapsed());
    }
}
