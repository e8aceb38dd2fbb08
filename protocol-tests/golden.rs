//! Golden request frames captured from real clients (see `fixtures/README.md`).
//!
//! Codecs tested only against themselves can agree on a wrong layout; these bytes come from
//! librdkafka and kafka-python. Each frame must name an API and version we serve, decode
//! through the same header and body codecs the server uses without leftover bytes, re-encode
//! to the identical bytes, and be answered by a running broker without it closing the
//! connection.

mod support;

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use klamm::api;
use klamm::codec::{length_sites, precheck, LengthKind, PrecheckError};
use klamm::topics::config::TopicSettings;
use klamm::topics::validate::validate_records;
use klamm::BrokerConfig;
use support::fixtures::{fixture_root, golden_frames, GoldenFrame as Fixture};

/// Client directories that must exist and hold at least one frame each.
const CLIENTS: &[&str] = &["kcat", "kafka-python", "confluent-kafka"];

/// Binds `$r` to the request type of `$key` for `$body`; every API in the table must be here.
macro_rules! with_request {
    ($key:expr, $r:ident => $body:expr) => {
        match $key {
            ApiKey::Produce => {
                type $r = ProduceRequest;
                $body
            }
            ApiKey::Fetch => {
                type $r = FetchRequest;
                $body
            }
            ApiKey::ListOffsets => {
                type $r = ListOffsetsRequest;
                $body
            }
            ApiKey::Metadata => {
                type $r = MetadataRequest;
                $body
            }
            ApiKey::ApiVersions => {
                type $r = ApiVersionsRequest;
                $body
            }
            ApiKey::CreateTopics => {
                type $r = CreateTopicsRequest;
                $body
            }
            ApiKey::DeleteTopics => {
                type $r = DeleteTopicsRequest;
                $body
            }
            other => panic!("{other:?} is served but has no request type in golden.rs"),
        }
    };
}

/// All fixtures by client directory, in file name order.
fn fixtures() -> BTreeMap<String, Vec<Fixture>> {
    let mut out: BTreeMap<String, Vec<Fixture>> = BTreeMap::new();
    for f in golden_frames() {
        out.entry(f.client()).or_default().push(f);
    }
    out
}

#[test]
fn every_client_has_fixtures() {
    let all = fixtures();
    for client in CLIENTS {
        let n = all.get(*client).map_or(0, Vec::len);
        assert!(n > 0, "no fixtures for {client} under {:?}", fixture_root());
    }
    for (client, files) in &all {
        assert!(!files.is_empty(), "fixture directory {client} is empty");
    }
}

#[test]
fn fixtures_are_served_versions() {
    for fixture in fixtures().values().flatten() {
        let spec = api::spec(fixture.key)
            .unwrap_or_else(|| panic!("{}: {:?} is not served", fixture.label(), fixture.key));
        assert!(
            spec.serves(fixture.version),
            "{}: v{} is outside the served range {}..={}",
            fixture.label(),
            fixture.version,
            spec.served_min,
            spec.max
        );
    }
}

/// Decodes the frame as the server does (header at the API's header version, then the body),
/// requires every byte consumed, and re-encodes both parts at the same versions.
fn roundtrip<R: Request>(fixture: &Fixture) {
    let label = fixture.label();
    let header_version = fixture.key.request_header_version(fixture.version);
    let mut buf = fixture.frame.clone();
    let header = RequestHeader::decode(&mut buf, header_version)
        .unwrap_or_else(|e| panic!("{label}: header v{header_version}: {e}"));
    let body =
        R::decode(&mut buf, fixture.version).unwrap_or_else(|e| panic!("{label}: body: {e}"));
    assert_eq!(buf.remaining(), 0, "{label}: trailing bytes after the body");

    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).unwrap();
    body.encode(&mut out, fixture.version)
        .unwrap_or_else(|e| panic!("{label}: re-encode: {e}"));
    assert!(
        out[..] == fixture.frame[..],
        "{label}: re-encoded bytes differ\n fixture: {:02x?}\n encoded: {:02x?}",
        &fixture.frame[..],
        &out[..]
    );
}

#[test]
fn fixtures_decode_and_reencode_identically() {
    let config = BrokerConfig::from_pairs(BTreeMap::new()).unwrap();
    let settings = TopicSettings::resolve(&BTreeMap::new(), &config);
    for fixture in fixtures().values().flatten() {
        with_request!(fixture.key, R => {
            roundtrip::<R>(fixture);
        });
        if fixture.key == ApiKey::Produce {
            check_batches(fixture, &settings);
        }
    }
}

/// The server walks every body against its own layout before kafka-protocol decodes it
/// (`klamm::codec`). Real clients' bodies must pass and be walked to their last byte (the
/// round trip above shows the crate consumes exactly that), and inflating any array count in
/// them must be refused before anything is decoded.
#[test]
fn fixtures_pass_the_precheck_and_inflated_counts_do_not() {
    let mut inflated = 0;
    for fixture in fixtures().values().flatten() {
        let label = fixture.label();
        let (key, version) = (fixture.key, fixture.version);
        let mut body = fixture.frame.clone();
        RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        assert_eq!(precheck(key, version, &body), Ok(body.len()), "{label}");
        let sites = length_sites(key, version, &body).unwrap();
        for site in sites.iter().filter(|s| s.kind == LengthKind::Array) {
            let after = (body.len() - site.at - site.width) as u64;
            for count in [after + 1, u32::MAX as u64 - 1] {
                let bad = site.with_length(&body, count);
                match precheck(key, version, &bad) {
                    Err(PrecheckError::CountTooLarge { at, .. }) if at == site.at => {}
                    other => panic!("{label}: count at {} set to {count}: {other:?}", site.at),
                }
                inflated += 1;
            }
        }
    }
    assert!(inflated > 20, "only {inflated} counts inflated");
}

/// The codec leaves produce records opaque; the server validates them itself, so do that too.
fn check_batches(fixture: &Fixture, settings: &TopicSettings) {
    let mut body = fixture.frame.clone();
    RequestHeader::decode(
        &mut body,
        fixture.key.request_header_version(fixture.version),
    )
    .unwrap();
    let produce = ProduceRequest::decode(&mut body, fixture.version).unwrap();
    let mut batches = 0;
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            let records = partition.records.as_ref().expect("records");
            let batch = validate_records(records, settings, klamm::clock::now_ms())
                .unwrap_or_else(|e| panic!("{}: record batch rejected: {e:?}", fixture.label()));
            // The capture scenarios ask for compression; a plain batch means the client judged
            // from our ApiVersions that the broker cannot take the codec.
            assert_ne!(
                batch.compression_codec(),
                0,
                "{}: uncompressed batch",
                fixture.label()
            );
            batches += 1;
        }
    }
    assert!(batches > 0, "{}: produce without records", fixture.label());
}

/// Replays each client's frames on one connection to a real broker, in the order a client
/// would send them, and decodes every response at the request's version.
#[test]
fn broker_answers_every_fixture() {
    const ORDER: &[ApiKey] = &[
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::Produce,
        ApiKey::ListOffsets,
        ApiKey::Fetch,
        ApiKey::DeleteTopics,
    ];
    let fixtures = fixtures();
    assert!(
        fixtures
            .values()
            .flat_map(|f| f.iter())
            .all(|f| ORDER.contains(&f.key)),
        "a fixture's API has no place in the replay order"
    );
    let broker = support::Klamm::start(&[]);
    for (client, mut frames) in fixtures {
        frames.sort_by_key(|f| ORDER.iter().position(|k| *k == f.key));
        let mut conn = support::Conn::connect(broker.addr);
        for fixture in &frames {
            conn.send_raw(&fixture.frame);
            with_request!(fixture.key, R => expect_response::<R>(&mut conn, fixture));
        }
        // A fresh ApiVersions answered last shows the connection survived every frame.
        let versions = conn.call(
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
            3,
        );
        assert_eq!(versions.error_code, 0, "{client}: ApiVersions after replay");
    }
    let log = broker.log.lock().unwrap();
    let closed: Vec<_> = log
        .iter()
        .filter(|l| l.contains("closing connection"))
        .collect();
    assert!(closed.is_empty(), "broker closed connections: {closed:#?}");
}

fn expect_response<R: Request>(conn: &mut support::Conn, fixture: &Fixture) {
    let label = fixture.label();
    let mut body = fixture.frame.clone();
    let header = RequestHeader::decode(
        &mut body,
        fixture.key.request_header_version(fixture.version),
    )
    .unwrap();
    if fixture.key == ApiKey::Produce {
        let produce = ProduceRequest::decode(&mut body, fixture.version).unwrap();
        if produce.acks == 0 {
            return;
        }
    }
    let mut frame = conn
        .read_frame()
        .unwrap_or_else(|| panic!("{label}: connection closed instead of a response"));
    let response_header = ResponseHeader::decode(
        &mut frame,
        fixture.key.response_header_version(fixture.version),
    )
    .unwrap();
    assert_eq!(
        response_header.correlation_id, header.correlation_id,
        "{label}: response to another request"
    );
    R::Response::decode(&mut frame, fixture.version)
        .unwrap_or_else(|e| panic!("{label}: response does not decode: {e}"));
    assert_eq!(frame.remaining(), 0, "{label}: trailing bytes in response");
}
