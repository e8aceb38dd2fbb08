//! The request layouts are proven against kafka-protocol, the decoder they guard, from both
//! sides:
//!
//! - bodies *generated from our layouts* (random counts, strings, nulls, known and unknown
//!   tagged fields) must decode with the crate, consuming exactly the bytes the pre-check walks,
//!   and re-encode to the same bytes — so no field is missing, extra, misplaced or mistyped;
//! - a null where our layout says "not nullable" must be refused by the crate too, so our
//!   nullability is the crate's;
//! - values *built with the crate* (defaults, and populated ones with nested arrays, nulls and
//!   tagged fields) must be walked exactly;
//! - inflating any count in any of these bodies is refused, by a walk that allocates nothing,
//!   and whatever the pre-check accepts out of randomly damaged bodies never makes the crate
//!   ask for an allocation out of proportion to the body.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::layout::{f, Elem, Field, Layout, Ty, ALL, NEVER};
use super::precheck::precheck_layout;
use super::requests::{for_api, LAYOUTS};
use super::*;
use crate::alloc_meter;
use crate::api::{self, RequestCodec, APIS};

/// A small deterministic generator (xorshift64*), so failures reproduce from their seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes request bodies that follow a layout, with random content.
struct Gen {
    rng: Rng,
    out: Vec<u8>,
    version: i16,
    flexible: bool,
    /// Write null for the n-th non-nullable string, bytes or array met (0-based).
    null_at: Option<usize>,
    non_nullable_seen: usize,
}

impl Gen {
    fn body(layout: &Layout, version: i16, seed: u64, null_at: Option<usize>) -> Gen {
        let mut g = Gen {
            rng: Rng::new(seed),
            out: Vec::new(),
            version,
            flexible: layout.flexible.contains(version),
            null_at,
            non_nullable_seen: 0,
        };
        g.fields(layout.body);
        g
    }

    fn fields(&mut self, fields: &[Field]) {
        let version = self.version;
        for field in fields.iter().filter(|f| f.in_body(version)) {
            self.field(field);
        }
        if self.flexible {
            self.tags(fields);
        }
    }

    fn field(&mut self, field: &Field) {
        let can_be_null = matches!(field.ty, Ty::Str | Ty::Bytes | Ty::Array(_));
        if can_be_null && !field.nullable {
            let n = self.non_nullable_seen;
            self.non_nullable_seen += 1;
            if self.null_at == Some(n) {
                return self.null(field.ty);
            }
        }
        // A known tagged field holding its default is left out by the encoder; only untagged
        // fields are made null so that re-encoding gives back the same bytes.
        if field.nullable && field.tag.is_none() && self.rng.below(4) == 0 {
            return self.null(field.ty);
        }
        self.value(field.ty);
    }

    fn null(&mut self, ty: Ty) {
        match (self.flexible, ty) {
            (true, _) => self.out.push(0),
            (false, Ty::Str) => self.out.extend_from_slice(&(-1i16).to_be_bytes()),
            (false, _) => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn length(&mut self, ty: Ty, n: usize) {
        match (self.flexible, ty) {
            (true, _) => put_uvarint(&mut self.out, n as u32 + 1),
            (false, Ty::Str) => self.out.extend_from_slice(&(n as i16).to_be_bytes()),
            (false, _) => self.out.extend_from_slice(&(n as i32).to_be_bytes()),
        }
    }

    fn value(&mut self, ty: Ty) {
        match ty {
            Ty::Bool => {
                let b = self.rng.below(2) as u8;
                self.out.push(b);
            }
            Ty::Uuid => {
                let mut id = self.rng.bytes(16);
                id[0] |= 1; // never the nil id, which encoders treat as "unset"
                self.out.extend_from_slice(&id);
            }
            Ty::Str => {
                let n = self.rng.below(6) as usize;
                self.length(ty, n);
                for _ in 0..n {
                    let c = b'a' + self.rng.below(26) as u8;
                    self.out.push(c);
                }
            }
            Ty::Bytes => {
                let n = self.rng.below(6) as usize;
                self.length(ty, n);
                let b = self.rng.bytes(n);
                self.out.extend_from_slice(&b);
            }
            Ty::Array(elem) => {
                let n = self.rng.below(4) as usize;
                self.length(ty, n);
                for _ in 0..n {
                    self.value(elem.ty());
                }
            }
            Ty::Struct(fields) => self.fields(fields),
            Ty::OptStruct(fields) => {
                if self.rng.below(2) == 0 {
                    self.out.push(0xff);
                } else {
                    self.out.push(1);
                    self.fields(fields);
                }
            }
            fixed => {
                let n = fixed.fixed_size().unwrap_or(0);
                let b = self.rng.bytes(n);
                self.out.extend_from_slice(&b);
            }
        }
    }

    /// Some of the known tagged fields (in tag order), then maybe one the layout does not
    /// know, numbered among or just past the known ones. The crate decodes a tag it knows as a
    /// value, so a tag it knows and our layout misses would change what it consumes or
    /// re-encodes. (The crate writes known tags before unknown ones; so does this.)
    fn tags(&mut self, fields: &[Field]) {
        let mut known: Vec<&Field> = fields
            .iter()
            .filter(|f| f.tag.is_some() && f.versions.contains(self.version))
            .collect();
        known.retain(|_| self.rng.below(2) == 0);
        known.sort_by_key(|f| f.tag);
        let tags: Vec<u32> = fields.iter().filter_map(|f| f.tag).collect();
        let free: Vec<u32> = (0..tags.len() as u32 + 3)
            .filter(|t| !tags.contains(t))
            .collect();
        let unknown = self.rng.below(2) as usize;
        put_uvarint(&mut self.out, (known.len() + unknown) as u32);
        for field in known {
            let outer = std::mem::take(&mut self.out);
            self.value(field.ty);
            let value = std::mem::replace(&mut self.out, outer);
            put_uvarint(&mut self.out, field.tag.unwrap_or(0));
            put_uvarint(&mut self.out, value.len() as u32);
            self.out.extend_from_slice(&value);
        }
        for _ in 0..unknown {
            let tag = free[self.rng.below(free.len() as u64) as usize];
            let size = self.rng.below(4) as usize;
            put_uvarint(&mut self.out, tag);
            put_uvarint(&mut self.out, size as u32);
            let b = self.rng.bytes(size);
            self.out.extend_from_slice(&b);
        }
    }
}

fn codec(key: ApiKey) -> RequestCodec {
    api::request_codecs()
        .into_iter()
        .find(|c| c.key == key)
        .unwrap_or_else(|| panic!("{key:?} has no codec"))
}

/// Every served (API, version) with its layout and the crate's codec.
fn served() -> Vec<(&'static Layout, i16, RequestCodec)> {
    let mut out = Vec::new();
    for spec in APIS {
        let layout = for_api(spec.key).unwrap_or_else(|| panic!("{:?} has no layout", spec.key));
        for version in spec.served_min..=spec.max {
            out.push((layout, version, codec(spec.key)));
        }
    }
    out
}

/// The pre-check walks `body` exactly as far as the crate decodes it.
fn assert_walks_exactly(key: ApiKey, version: i16, body: &[u8], what: &str) {
    let crate_used = match (codec(key).decode)(version, body) {
        Ok((used, _)) => used,
        Err(e) => panic!("{key:?} v{version} {what}: the crate cannot decode it: {e}"),
    };
    assert_eq!(
        precheck(key, version, body),
        Ok(crate_used),
        "{key:?} v{version} {what}: {body:02x?}"
    );
}

#[test]
fn every_served_version_has_a_layout() {
    for spec in APIS {
        let layout = for_api(spec.key).unwrap_or_else(|| panic!("{:?} has no layout", spec.key));
        for version in spec.served_min..=spec.max {
            assert!(
                layout.versions.contains(version),
                "{:?} v{version} is served but its layout covers {:?}",
                spec.key,
                layout.versions
            );
            // Flexible versions are also what decides the header version.
            assert_eq!(
                layout.flexible.contains(version),
                spec.key.request_header_version(version) >= 2,
                "{:?} v{version}: flexible versions disagree with the header version",
                spec.key
            );
        }
    }
    let mut keys: Vec<i16> = LAYOUTS.iter().map(|l| l.key as i16).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), LAYOUTS.len(), "two layouts for one API");
}

#[test]
fn the_40_byte_metadata_request_is_refused() {
    // Metadata v12: topics claims 2^32-2 entries, then allow_auto_topic_creation,
    // include_topic_authorized_operations and an empty tag section.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x00, 0x00];
    let (result, allocations, _) = alloc_meter::measure(|| precheck(ApiKey::Metadata, 12, &body));
    assert!(
        matches!(
            result,
            Err(PrecheckError::CountTooLarge {
                field: "topics",
                count: 4_294_967_294,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(allocations, 0);
}

#[test]
fn crate_defaults_are_walked_exactly() {
    for (layout, version, codec) in served() {
        let body = (codec.encode_default)(version)
            .unwrap_or_else(|e| panic!("{:?} v{version}: encode default: {e}", layout.key));
        assert_walks_exactly(layout.key, version, &body, "default value");
    }
}

#[test]
fn generated_bodies_decode_to_exactly_the_same_bytes() {
    for (layout, version, codec) in served() {
        for seed in 0..300 {
            let body = Gen::body(layout, version, seed, None).out;
            let key = layout.key;
            let (used, again) = (codec.decode)(version, &body).unwrap_or_else(|e| {
                panic!("{key:?} v{version} seed {seed}: crate: {e}\n{body:02x?}")
            });
            assert_eq!(
                used,
                body.len(),
                "{key:?} v{version} seed {seed}: crate consumed"
            );
            assert_eq!(
                again, body,
                "{key:?} v{version} seed {seed}: crate re-encoded"
            );
            assert_eq!(
                precheck(key, version, &body),
                Ok(body.len()),
                "{key:?} v{version} seed {seed}"
            );
        }
    }
}

#[test]
fn nulls_are_refused_where_the_crate_refuses_them() {
    for (layout, version, codec) in served() {
        let key = layout.key;
        // The bodies of a few seeds between them reach every non-nullable field.
        for seed in 0..20 {
            for target in 0.. {
                let g = Gen::body(layout, version, seed, Some(target));
                if g.non_nullable_seen <= target {
                    break;
                }
                assert!(
                    (codec.decode)(version, &g.out).is_err(),
                    "{key:?} v{version} seed {seed}: crate accepts null #{target}"
                );
                assert!(
                    matches!(
                        precheck(key, version, &g.out),
                        Err(PrecheckError::Null { .. })
                    ),
                    "{key:?} v{version} seed {seed}: pre-check accepts null #{target}"
                );
            }
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Requests built with the crate, with nested arrays, nulls and tagged fields. Each is encoded
/// at every served version the crate accepts it at.
fn populated() -> Vec<(ApiKey, Vec<u8>, i16)> {
    use kafka_protocol::messages::create_topics_request::*;
    use kafka_protocol::messages::describe_topic_partitions_request::*;
    use kafka_protocol::messages::fetch_request::*;
    use kafka_protocol::messages::join_group_request::*;
    use kafka_protocol::messages::metadata_request::*;
    use kafka_protocol::messages::offset_commit_request::*;
    use kafka_protocol::messages::offset_fetch_request::*;
    use kafka_protocol::messages::produce_request::*;

    let uuid = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
    /// Encodes a value at a version, `None` where the crate refuses to.
    type Encode = Box<dyn Fn(i16) -> Option<Vec<u8>>>;
    let mut values: Vec<(ApiKey, Encode)> = Vec::new();
    fn enc<T: Encodable + 'static>(value: T) -> Encode {
        Box::new(move |v| {
            let mut out = bytes::BytesMut::new();
            value.encode(&mut out, v).ok().map(|()| out.to_vec())
        })
    }

    values.push((
        ApiKey::Metadata,
        enc(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("orders"))),
            MetadataRequestTopic::default().with_name(None),
        ]))),
    ));
    values.push((
        ApiKey::Metadata,
        enc(MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_topic_id(uuid)
                .with_name(None)]))
            .with_include_topic_authorized_operations(true)),
    ));
    values.push((
        ApiKey::Metadata,
        enc(MetadataRequest::default().with_topics(None)),
    ));
    let batch = Bytes::from_static(b"not a real batch, the codec does not look");
    for topic in [
        TopicProduceData::default().with_name(name("t")),
        TopicProduceData::default().with_topic_id(uuid),
    ] {
        values.push((
            ApiKey::Produce,
            enc(ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(text("tx"))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![
                    topic.with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.clone())),
                        PartitionProduceData::default()
                            .with_index(1)
                            .with_records(None),
                    ]),
                    TopicProduceData::default().with_name(name("")),
                ])),
        ));
    }
    let partitions = || {
        vec![
            FetchPartition::default()
                .with_partition(3)
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20),
            FetchPartition::default().with_partition(4),
        ]
    };
    values.push((
        ApiKey::Fetch,
        enc(FetchRequest::default()
            .with_max_wait_ms(500)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(partitions())])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic(name("gone"))
                .with_partitions(vec![1, 2, 3])])
            .with_rack_id(text("rack-a"))),
    ));
    values.push((
        ApiKey::Fetch,
        enc(FetchRequest::default()
            .with_cluster_id(Some(text("cluster")))
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(partitions())])),
    ));
    values.push((
        ApiKey::Fetch,
        enc(FetchRequest::default()
            .with_cluster_id(Some(text("cluster")))
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(7))
                    .with_replica_epoch(9),
            )
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(uuid)
                .with_partitions(
                    partitions()
                        .into_iter()
                        .map(|p| {
                            p.with_replica_directory_id(uuid)
                                .with_high_watermark(77)
                                .with_unknown_tagged_field(9, Bytes::from_static(b"xyz"))
                        })
                        .collect(),
                )])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic_id(uuid)
                .with_partitions(vec![5])])),
    ));
    for instance in [None, Some(text("static-1"))] {
        values.push((
            ApiKey::JoinGroup,
            enc(JoinGroupRequest::default()
                .with_group_id(GroupId(text("g")))
                .with_member_id(text(""))
                .with_group_instance_id(instance.clone())
                .with_protocol_type(text("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(text("range"))
                        .with_metadata(Bytes::from_static(&[0, 1, 2, 3])),
                    JoinGroupRequestProtocol::default().with_name(text("roundrobin")),
                ])
                .with_reason(instance.as_ref().map(|_| text("because")))),
        ));
    }
    values.push((
        ApiKey::OffsetCommit,
        enc(OffsetCommitRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(10)
                        .with_committed_metadata(Some(text("meta"))),
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_metadata(None),
                ])])),
    ));
    values.push((
        ApiKey::OffsetFetch,
        enc(OffsetFetchRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("t"))
                .with_partition_indexes(vec![0, 1])]))),
    ));
    values.push((
        ApiKey::OffsetFetch,
        enc(OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(text("a")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(text("b")))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![2])])),
        ])),
    ));
    values.push((
        ApiKey::CreateTopics,
        enc(CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name("a"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(text("cleanup.policy"))
                        .with_value(Some(text("compact"))),
                    CreatableTopicConfig::default()
                        .with_name(text("retention.ms"))
                        .with_value(None),
                ]),
            CreatableTopic::default().with_name(name("b")),
        ])),
    ));
    values.push((
        ApiKey::DescribeTopicPartitions,
        enc(DescribeTopicPartitionsRequest::default()
            .with_topics(vec![TopicRequest::default().with_name(name("t"))])
            .with_cursor(Some(
                Cursor::default()
                    .with_topic_name(name("t"))
                    .with_partition_index(3),
            ))),
    ));
    values.push((
        ApiKey::ApiVersions,
        enc(ApiVersionsRequest::default()
            .with_client_software_name(text("klamm-tests"))
            .with_client_software_version(text("1.0"))),
    ));

    let mut out = Vec::new();
    for (key, encode) in values {
        let spec = api::spec(key).unwrap_or_else(|| panic!("{key:?} is not served"));
        let mut encoded = 0;
        for version in spec.served_min..=spec.max {
            if let Some(body) = encode(version) {
                out.push((key, body, version));
                encoded += 1;
            }
        }
        assert!(
            encoded > 0,
            "a populated {key:?} encodes at no served version"
        );
    }
    out
}

#[test]
fn populated_crate_values_are_walked_exactly() {
    for (key, body, version) in populated() {
        assert_walks_exactly(key, version, &body, "populated value");
    }
}

/// Bodies to damage: defaults, populated values and generated ones, at every served version.
fn sample_bodies() -> Vec<(ApiKey, i16, Vec<u8>)> {
    let mut out: Vec<(ApiKey, i16, Vec<u8>)> =
        populated().into_iter().map(|(k, b, v)| (k, v, b)).collect();
    for (layout, version, codec) in served() {
        if let Ok(body) = (codec.encode_default)(version) {
            out.push((layout.key, version, body));
        }
        for seed in 1000..1010 {
            out.push((
                layout.key,
                version,
                Gen::body(layout, version, seed, None).out,
            ));
        }
    }
    out
}

#[test]
fn inflated_counts_are_refused_without_allocating() {
    let mut arrays = 0;
    for (key, version, body) in sample_bodies() {
        let sites =
            length_sites(key, version, &body).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
        for site in sites {
            let after = body.len() - site.at - site.width;
            for count in [after as u64 + 1, u32::MAX as u64 - 1] {
                let bad = site.with_length(&body, count);
                let (result, allocations, _) =
                    alloc_meter::measure(|| precheck(key, version, &bad));
                assert_eq!(
                    allocations, 0,
                    "{key:?} v{version}: the pre-check allocated"
                );
                match (site.kind, result) {
                    (LengthKind::Array, Err(PrecheckError::CountTooLarge { at, .. })) => {
                        assert_eq!(at, site.at, "{key:?} v{version}: refused elsewhere");
                        arrays += 1;
                    }
                    (LengthKind::Str | LengthKind::Bytes, Err(PrecheckError::Truncated { .. })) => {
                    }
                    (_, other) => panic!(
                        "{key:?} v{version}: {site:?} inflated to {count}: {other:?}\n{bad:02x?}"
                    ),
                }
            }
        }
    }
    assert!(arrays > 1000, "only {arrays} inflated arrays were tried");
}

#[test]
fn accepted_damage_never_makes_the_crate_over_allocate() {
    let mut rng = Rng::new(7);
    let mut accepted = 0;
    for (key, version, body) in sample_bodies() {
        let decode = codec(key).decode;
        for _ in 0..40 {
            let mut bad = body.clone();
            match rng.below(4) {
                0 if !bad.is_empty() => {
                    let i = rng.below(bad.len() as u64) as usize;
                    bad[i] = rng.next() as u8;
                }
                1 if !bad.is_empty() => {
                    let i = rng.below(bad.len() as u64) as usize;
                    bad[i] = 0xff;
                }
                2 => {
                    let i = rng.below(bad.len() as u64 + 1) as usize;
                    bad.insert(i, rng.next() as u8);
                }
                _ => bad.truncate(rng.below(bad.len() as u64 + 1) as usize),
            }
            let (checked, allocations, _) = alloc_meter::measure(|| precheck(key, version, &bad));
            assert_eq!(allocations, 0);
            let Ok(walked) = checked else { continue };
            accepted += 1;
            let (decoded, _, largest) = alloc_meter::measure(|| decode(version, &bad));
            // The copy of the body, its re-encoding and vectors of at most one element per
            // remaining byte (each element no bigger than a few hundred bytes in memory).
            let bound = 512 * bad.len() + 4096;
            assert!(
                largest <= bound,
                "{key:?} v{version}: the crate asked for {largest} bytes for a {}-byte body",
                bad.len()
            );
            if let Ok((used, _)) = decoded {
                assert_eq!(used, walked, "{key:?} v{version}: {bad:02x?}");
            }
        }
    }
    assert!(
        accepted > 1000,
        "only {accepted} damaged bodies got past the pre-check"
    );
}

/// Tagged fields are checked, not trusted: a known tag whose size disagrees with its value is
/// refused, unknown tags must fit, and the tag section's count cannot loop past the body.
#[test]
fn tag_sections_are_bounded() {
    // Fetch v12 default body ends with the top-level tag section; swap it for hostile ones.
    let fetch = (codec(ApiKey::Fetch).encode_default)(12).unwrap();
    let head = &fetch[..fetch.len() - 1];
    let with_tags = |tags: &[u8]| [head, tags].concat();
    // cluster_id (tag 0) declared as 2 bytes but holding 3 (length and "ab").
    let lying = with_tags(&[1, 0, 2, 3, b'a', b'b']);
    assert!(matches!(
        precheck(ApiKey::Fetch, 12, &lying),
        Err(PrecheckError::TagSize { tag: 0, .. })
    ));
    // An unknown tag claiming more bytes than remain.
    let long = with_tags(&[1, 40, 0x7f, 1, 2]);
    assert!(matches!(
        precheck(ApiKey::Fetch, 12, &long),
        Err(PrecheckError::Truncated { .. })
    ));
    // 2^32-1 tagged fields announced in a short body.
    let many = with_tags(&[0xff, 0xff, 0xff, 0xff, 0x0f, 9, 0]);
    assert!(precheck(ApiKey::Fetch, 12, &many).is_err());
    // A sixth varint byte.
    let varint = with_tags(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert!(matches!(
        precheck(ApiKey::Fetch, 12, &varint),
        Err(PrecheckError::VarintTooLong { .. })
    ));
    // A well-formed cluster_id passes.
    let good = with_tags(&[1, 0, 3, 3, b'a', b'b']);
    assert_walks_exactly(ApiKey::Fetch, 12, &good, "cluster_id tag");
}

#[test]
fn minimum_sizes_are_lower_bounds() {
    // A default value has every array empty and every string empty: never below the minimum.
    for (layout, version, codec) in served() {
        let body = (codec.encode_default)(version).unwrap();
        let min = min_size(
            Ty::Struct(layout.body),
            version,
            layout.flexible.contains(version),
        );
        assert!(
            min <= body.len(),
            "{:?} v{version}: min {min} > default {}",
            layout.key,
            body.len()
        );
    }
    // An array of structs whose fields are all absent still costs a byte per element.
    const EMPTY: &[Field] = &[];
    const EMPTIES: &[Field] = &[f("empties", ALL, Ty::Array(Elem::Struct(EMPTY)))];
    let layout = Layout {
        key: ApiKey::Metadata,
        versions: ALL,
        flexible: NEVER,
        body: EMPTIES,
    };
    let three_in_two = [0, 0, 0, 3, 0xaa, 0xbb];
    assert!(matches!(
        precheck_layout(&layout, 0, &three_in_two),
        Err(PrecheckError::CountTooLarge { count: 3, .. })
    ));
    assert_eq!(
        precheck_layout(&layout, 0, &[0, 0, 0, 2, 0xaa, 0xbb]),
        Ok(4)
    );
}
