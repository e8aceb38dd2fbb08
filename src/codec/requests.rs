//! The layout of every request body the broker serves, one constant per API, nested structs
//! after the request that holds them. Field names and version ranges follow Kafka's message
//! schemas; the versions are those kafka-protocol decodes (a layout may start later than
//! Kafka's schema where the crate dropped old versions).
//!
//! Tagged fields appear where Kafka's schema puts them; kafka-protocol reads a known tag's
//! value straight from the body, so the pre-check walks them like any other field.
//!
//! This table is trusted by nothing: `codec::tests` generates bodies from it and requires
//! kafka-protocol to decode every one of them to exactly the same bytes, and encodes the
//! crate's own values and requires the table to walk them exactly.

use kafka_protocol::messages::ApiKey;

use super::layout::Ty::{self, Bool, Bytes, Str, Uuid, I16, I32, I64, I8};
use super::layout::{
    array, f, from, span, tagged, Field, Layout, ALL, INT32_ARRAY, NEVER, STRING_ARRAY,
};

/// Every request layout. `codec::tests` checks that each API the broker serves has one
/// covering all its served versions.
pub const LAYOUTS: &[Layout] = &[
    PRODUCE,
    FETCH,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    FIND_COORDINATOR,
    JOIN_GROUP,
    HEARTBEAT,
    LEAVE_GROUP,
    SYNC_GROUP,
    DESCRIBE_GROUPS,
    LIST_GROUPS,
    API_VERSIONS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    INIT_PRODUCER_ID,
    DELETE_RECORDS,
    DELETE_GROUPS,
    OFFSET_DELETE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    DESCRIBE_LOG_DIRS,
    CREATE_PARTITIONS,
    ELECT_LEADERS,
    INCREMENTAL_ALTER_CONFIGS,
    DESCRIBE_CLUSTER,
    DESCRIBE_TOPIC_PARTITIONS,
];

/// The layout of `key`'s request body, if we have one.
pub fn for_api(key: ApiKey) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| l.key == key)
}

// ProduceRequest
const PRODUCE: Layout = Layout {
    key: ApiKey::Produce,
    versions: span(3, 13),
    flexible: from(9),
    body: PRODUCE_BODY,
};
const PRODUCE_BODY: &[Field] = &[
    f("transactional_id", ALL, Str).nullable(),
    f("acks", ALL, I16),
    f("timeout_ms", ALL, I32),
    f("topic_data", ALL, array(PRODUCE_TOPIC_PRODUCE_DATA)),
];
const PRODUCE_TOPIC_PRODUCE_DATA: &[Field] = &[
    f("name", span(3, 12), Str),
    f("topic_id", from(13), Uuid),
    f("partition_data", ALL, array(PRODUCE_PARTITION_PRODUCE_DATA)),
];
const PRODUCE_PARTITION_PRODUCE_DATA: &[Field] =
    &[f("index", ALL, I32), f("records", ALL, Bytes).nullable()];

// FetchRequest
const FETCH: Layout = Layout {
    key: ApiKey::Fetch,
    versions: span(4, 18),
    flexible: from(12),
    body: FETCH_BODY,
};
const FETCH_BODY: &[Field] = &[
    tagged(0, "cluster_id", from(12), Str).nullable(),
    f("replica_id", span(4, 14), I32),
    tagged(
        1,
        "replica_state",
        from(15),
        Ty::Struct(FETCH_REPLICA_STATE),
    ),
    f("max_wait_ms", ALL, I32),
    f("min_bytes", ALL, I32),
    f("max_bytes", ALL, I32),
    f("isolation_level", ALL, I8),
    f("session_id", from(7), I32),
    f("session_epoch", from(7), I32),
    f("topics", ALL, array(FETCH_TOPIC)),
    f(
        "forgotten_topics_data",
        from(7),
        array(FETCH_FORGOTTEN_TOPIC),
    ),
    f("rack_id", from(11), Str),
];
const FETCH_REPLICA_STATE: &[Field] = &[
    f("replica_id", from(15), I32),
    f("replica_epoch", from(15), I64),
];
const FETCH_TOPIC: &[Field] = &[
    f("topic", span(4, 12), Str),
    f("topic_id", from(13), Uuid),
    f("partitions", ALL, array(FETCH_PARTITION)),
];
const FETCH_PARTITION: &[Field] = &[
    f("partition", ALL, I32),
    f("current_leader_epoch", from(9), I32),
    f("fetch_offset", ALL, I64),
    f("last_fetched_epoch", from(12), I32),
    f("log_start_offset", from(5), I64),
    f("partition_max_bytes", ALL, I32),
    tagged(0, "replica_directory_id", from(17), Uuid),
    tagged(1, "high_watermark", from(18), I64),
];
const FETCH_FORGOTTEN_TOPIC: &[Field] = &[
    f("topic", span(7, 12), Str),
    f("topic_id", from(13), Uuid),
    f("partitions", from(7), INT32_ARRAY),
];

// ListOffsetsRequest
const LIST_OFFSETS: Layout = Layout {
    key: ApiKey::ListOffsets,
    versions: span(1, 10),
    flexible: from(6),
    body: LIST_OFFSETS_BODY,
};
const LIST_OFFSETS_BODY: &[Field] = &[
    f("replica_id", ALL, I32),
    f("isolation_level", from(2), I8),
    f("topics", ALL, array(LIST_OFFSETS_TOPIC)),
    f("timeout_ms", from(10), I32),
];
const LIST_OFFSETS_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("partitions", ALL, array(LIST_OFFSETS_PARTITION)),
];
const LIST_OFFSETS_PARTITION: &[Field] = &[
    f("partition_index", ALL, I32),
    f("current_leader_epoch", from(4), I32),
    f("timestamp", ALL, I64),
];

// MetadataRequest
const METADATA: Layout = Layout {
    key: ApiKey::Metadata,
    versions: span(0, 13),
    flexible: from(9),
    body: METADATA_BODY,
};
const METADATA_BODY: &[Field] = &[
    f("topics", ALL, array(METADATA_TOPIC)).nullable(),
    f("allow_auto_topic_creation", from(4), Bool),
    f("include_cluster_authorized_operations", span(8, 10), Bool),
    f("include_topic_authorized_operations", from(8), Bool),
];
const METADATA_TOPIC: &[Field] = &[
    f("topic_id", from(10), Uuid),
    f("name", ALL, Str).nullable(),
];

// OffsetCommitRequest
const OFFSET_COMMIT: Layout = Layout {
    key: ApiKey::OffsetCommit,
    versions: span(2, 9),
    flexible: from(8),
    body: OFFSET_COMMIT_BODY,
};
const OFFSET_COMMIT_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("generation_id_or_member_epoch", ALL, I32),
    f("member_id", ALL, Str),
    f("group_instance_id", from(7), Str).nullable(),
    f("retention_time_ms", span(2, 4), I64),
    f("topics", ALL, array(OFFSET_COMMIT_TOPIC)),
];
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("partitions", ALL, array(OFFSET_COMMIT_PARTITION)),
];
const OFFSET_COMMIT_PARTITION: &[Field] = &[
    f("partition_index", ALL, I32),
    f("committed_offset", ALL, I64),
    f("committed_leader_epoch", from(6), I32),
    f("committed_metadata", ALL, Str).nullable(),
];

// OffsetFetchRequest
const OFFSET_FETCH: Layout = Layout {
    key: ApiKey::OffsetFetch,
    versions: span(1, 9),
    flexible: from(6),
    body: OFFSET_FETCH_BODY,
};
const OFFSET_FETCH_BODY: &[Field] = &[
    f("group_id", span(1, 7), Str),
    f("topics", span(1, 7), array(OFFSET_FETCH_TOPIC)).nullable(),
    f("groups", from(8), array(OFFSET_FETCH_GROUP)),
    f("require_stable", from(7), Bool),
];
const OFFSET_FETCH_TOPIC: &[Field] = &[
    f("name", span(1, 7), Str),
    f("partition_indexes", span(1, 7), INT32_ARRAY),
];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f("group_id", from(8), Str),
    f("member_id", from(9), Str).nullable(),
    f("member_epoch", from(9), I32),
    f("topics", from(8), array(OFFSET_FETCH_TOPICS)).nullable(),
];
const OFFSET_FETCH_TOPICS: &[Field] = &[
    f("name", from(8), Str),
    f("partition_indexes", from(8), INT32_ARRAY),
];

// FindCoordinatorRequest
const FIND_COORDINATOR: Layout = Layout {
    key: ApiKey::FindCoordinator,
    versions: span(0, 6),
    flexible: from(3),
    body: FIND_COORDINATOR_BODY,
};
const FIND_COORDINATOR_BODY: &[Field] = &[
    f("key", span(0, 3), Str),
    f("key_type", from(1), I8),
    f("coordinator_keys", from(4), STRING_ARRAY),
];

// JoinGroupRequest
const JOIN_GROUP: Layout = Layout {
    key: ApiKey::JoinGroup,
    versions: span(0, 9),
    flexible: from(6),
    body: JOIN_GROUP_BODY,
};
const JOIN_GROUP_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("session_timeout_ms", ALL, I32),
    f("rebalance_timeout_ms", from(1), I32),
    f("member_id", ALL, Str),
    f("group_instance_id", from(5), Str).nullable(),
    f("protocol_type", ALL, Str),
    f("protocols", ALL, array(JOIN_GROUP_PROTOCOL)),
    f("reason", from(8), Str).nullable(),
];
const JOIN_GROUP_PROTOCOL: &[Field] = &[f("name", ALL, Str), f("metadata", ALL, Bytes)];

// HeartbeatRequest
const HEARTBEAT: Layout = Layout {
    key: ApiKey::Heartbeat,
    versions: span(0, 4),
    flexible: from(4),
    body: HEARTBEAT_BODY,
};
const HEARTBEAT_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("generation_id", ALL, I32),
    f("member_id", ALL, Str),
    f("group_instance_id", from(3), Str).nullable(),
];

// LeaveGroupRequest
const LEAVE_GROUP: Layout = Layout {
    key: ApiKey::LeaveGroup,
    versions: span(0, 5),
    flexible: from(4),
    body: LEAVE_GROUP_BODY,
};
const LEAVE_GROUP_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("member_id", span(0, 2), Str),
    f("members", from(3), array(LEAVE_GROUP_MEMBER_IDENTITY)),
];
const LEAVE_GROUP_MEMBER_IDENTITY: &[Field] = &[
    f("member_id", from(3), Str),
    f("group_instance_id", from(3), Str).nullable(),
    f("reason", from(5), Str).nullable(),
];

// SyncGroupRequest
const SYNC_GROUP: Layout = Layout {
    key: ApiKey::SyncGroup,
    versions: span(0, 5),
    flexible: from(4),
    body: SYNC_GROUP_BODY,
};
const SYNC_GROUP_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("generation_id", ALL, I32),
    f("member_id", ALL, Str),
    f("group_instance_id", from(3), Str).nullable(),
    f("protocol_type", from(5), Str).nullable(),
    f("protocol_name", from(5), Str).nullable(),
    f("assignments", ALL, array(SYNC_GROUP_ASSIGNMENT)),
];
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[f("member_id", ALL, Str), f("assignment", ALL, Bytes)];

// DescribeGroupsRequest
const DESCRIBE_GROUPS: Layout = Layout {
    key: ApiKey::DescribeGroups,
    versions: span(0, 6),
    flexible: from(5),
    body: DESCRIBE_GROUPS_BODY,
};
const DESCRIBE_GROUPS_BODY: &[Field] = &[
    f("groups", ALL, STRING_ARRAY),
    f("include_authorized_operations", from(3), Bool),
];

// ListGroupsRequest
const LIST_GROUPS: Layout = Layout {
    key: ApiKey::ListGroups,
    versions: span(0, 5),
    flexible: from(3),
    body: LIST_GROUPS_BODY,
};
const LIST_GROUPS_BODY: &[Field] = &[
    f("states_filter", from(4), STRING_ARRAY),
    f("types_filter", from(5), STRING_ARRAY),
];

// ApiVersionsRequest. A version newer than ours is answered (KIP-511) before its body is
// read, so only the versions we serve need a layout.
const API_VERSIONS: Layout = Layout {
    key: ApiKey::ApiVersions,
    versions: span(0, 4),
    flexible: from(3),
    body: API_VERSIONS_BODY,
};
const API_VERSIONS_BODY: &[Field] = &[
    f("client_software_name", from(3), Str),
    f("client_software_version", from(3), Str),
];

// CreateTopicsRequest
const CREATE_TOPICS: Layout = Layout {
    key: ApiKey::CreateTopics,
    versions: span(2, 7),
    flexible: from(5),
    body: CREATE_TOPICS_BODY,
};
const CREATE_TOPICS_BODY: &[Field] = &[
    f("topics", ALL, array(CREATE_TOPICS_CREATABLE_TOPIC)),
    f("timeout_ms", ALL, I32),
    f("validate_only", ALL, Bool),
];
const CREATE_TOPICS_CREATABLE_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("num_partitions", ALL, I32),
    f("replication_factor", ALL, I16),
    f(
        "assignments",
        ALL,
        array(CREATE_TOPICS_CREATABLE_REPLICA_ASSIGNMENT),
    ),
    f("configs", ALL, array(CREATE_TOPICS_CREATABLE_TOPIC_CONFIG)),
];
const CREATE_TOPICS_CREATABLE_REPLICA_ASSIGNMENT: &[Field] = &[
    f("partition_index", ALL, I32),
    f("broker_ids", ALL, INT32_ARRAY),
];
const CREATE_TOPICS_CREATABLE_TOPIC_CONFIG: &[Field] =
    &[f("name", ALL, Str), f("value", ALL, Str).nullable()];

// DeleteTopicsRequest
const DELETE_TOPICS: Layout = Layout {
    key: ApiKey::DeleteTopics,
    versions: span(1, 6),
    flexible: from(4),
    body: DELETE_TOPICS_BODY,
};
const DELETE_TOPICS_BODY: &[Field] = &[
    f("topics", from(6), array(DELETE_TOPICS_DELETE_TOPIC_STATE)),
    f("topic_names", span(1, 5), STRING_ARRAY),
    f("timeout_ms", ALL, I32),
];
const DELETE_TOPICS_DELETE_TOPIC_STATE: &[Field] = &[
    f("name", from(6), Str).nullable(),
    f("topic_id", from(6), Uuid),
];

// InitProducerIdRequest
const INIT_PRODUCER_ID: Layout = Layout {
    key: ApiKey::InitProducerId,
    versions: span(0, 5),
    flexible: from(2),
    body: INIT_PRODUCER_ID_BODY,
};
const INIT_PRODUCER_ID_BODY: &[Field] = &[
    f("transactional_id", ALL, Str).nullable(),
    f("transaction_timeout_ms", ALL, I32),
    f("producer_id", from(3), I64),
    f("producer_epoch", from(3), I16),
];

// DeleteRecordsRequest
const DELETE_RECORDS: Layout = Layout {
    key: ApiKey::DeleteRecords,
    versions: span(0, 2),
    flexible: from(2),
    body: DELETE_RECORDS_BODY,
};
const DELETE_RECORDS_BODY: &[Field] = &[
    f("topics", ALL, array(DELETE_RECORDS_TOPIC)),
    f("timeout_ms", ALL, I32),
];
const DELETE_RECORDS_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("partitions", ALL, array(DELETE_RECORDS_PARTITION)),
];
const DELETE_RECORDS_PARTITION: &[Field] = &[f("partition_index", ALL, I32), f("offset", ALL, I64)];

// DeleteGroupsRequest
const DELETE_GROUPS: Layout = Layout {
    key: ApiKey::DeleteGroups,
    versions: span(0, 2),
    flexible: from(2),
    body: DELETE_GROUPS_BODY,
};
const DELETE_GROUPS_BODY: &[Field] = &[f("groups_names", ALL, STRING_ARRAY)];

// OffsetDeleteRequest
const OFFSET_DELETE: Layout = Layout {
    key: ApiKey::OffsetDelete,
    versions: span(0, 0),
    flexible: NEVER,
    body: OFFSET_DELETE_BODY,
};
const OFFSET_DELETE_BODY: &[Field] = &[
    f("group_id", ALL, Str),
    f("topics", ALL, array(OFFSET_DELETE_TOPIC)),
];
const OFFSET_DELETE_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("partitions", ALL, array(OFFSET_DELETE_PARTITION)),
];
const OFFSET_DELETE_PARTITION: &[Field] = &[f("partition_index", ALL, I32)];

// DescribeConfigsRequest
const DESCRIBE_CONFIGS: Layout = Layout {
    key: ApiKey::DescribeConfigs,
    versions: span(1, 4),
    flexible: from(4),
    body: DESCRIBE_CONFIGS_BODY,
};
const DESCRIBE_CONFIGS_BODY: &[Field] = &[
    f("resources", ALL, array(DESCRIBE_CONFIGS_RESOURCE)),
    f("include_synonyms", ALL, Bool),
    f("include_documentation", from(3), Bool),
];
const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", ALL, I8),
    f("resource_name", ALL, Str),
    f("configuration_keys", ALL, STRING_ARRAY).nullable(),
];

// AlterConfigsRequest
const ALTER_CONFIGS: Layout = Layout {
    key: ApiKey::AlterConfigs,
    versions: span(0, 2),
    flexible: from(2),
    body: ALTER_CONFIGS_BODY,
};
const ALTER_CONFIGS_BODY: &[Field] = &[
    f("resources", ALL, array(ALTER_CONFIGS_RESOURCE)),
    f("validate_only", ALL, Bool),
];
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", ALL, I8),
    f("resource_name", ALL, Str),
    f("configs", ALL, array(ALTER_CONFIGS_ALTERABLE_CONFIG)),
];
const ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] =
    &[f("name", ALL, Str), f("value", ALL, Str).nullable()];

// DescribeLogDirsRequest
const DESCRIBE_LOG_DIRS: Layout = Layout {
    key: ApiKey::DescribeLogDirs,
    versions: span(1, 4),
    flexible: from(2),
    body: DESCRIBE_LOG_DIRS_BODY,
};
const DESCRIBE_LOG_DIRS_BODY: &[Field] = &[f(
    "topics",
    ALL,
    array(DESCRIBE_LOG_DIRS_DESCRIBABLE_LOG_DIR_TOPIC),
)
.nullable()];
const DESCRIBE_LOG_DIRS_DESCRIBABLE_LOG_DIR_TOPIC: &[Field] =
    &[f("topic", ALL, Str), f("partitions", ALL, INT32_ARRAY)];

// CreatePartitionsRequest
const CREATE_PARTITIONS: Layout = Layout {
    key: ApiKey::CreatePartitions,
    versions: span(0, 3),
    flexible: from(2),
    body: CREATE_PARTITIONS_BODY,
};
const CREATE_PARTITIONS_BODY: &[Field] = &[
    f("topics", ALL, array(CREATE_PARTITIONS_TOPIC)),
    f("timeout_ms", ALL, I32),
    f("validate_only", ALL, Bool),
];
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    f("name", ALL, Str),
    f("count", ALL, I32),
    f("assignments", ALL, array(CREATE_PARTITIONS_ASSIGNMENT)).nullable(),
];
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[f("broker_ids", ALL, INT32_ARRAY)];

// ElectLeadersRequest
const ELECT_LEADERS: Layout = Layout {
    key: ApiKey::ElectLeaders,
    versions: span(0, 2),
    flexible: from(2),
    body: ELECT_LEADERS_BODY,
};
const ELECT_LEADERS_BODY: &[Field] = &[
    f("election_type", from(1), I8),
    f(
        "topic_partitions",
        ALL,
        array(ELECT_LEADERS_TOPIC_PARTITIONS),
    )
    .nullable(),
    f("timeout_ms", ALL, I32),
];
const ELECT_LEADERS_TOPIC_PARTITIONS: &[Field] =
    &[f("topic", ALL, Str), f("partitions", ALL, INT32_ARRAY)];

// IncrementalAlterConfigsRequest
const INCREMENTAL_ALTER_CONFIGS: Layout = Layout {
    key: ApiKey::IncrementalAlterConfigs,
    versions: span(0, 1),
    flexible: from(1),
    body: INCREMENTAL_ALTER_CONFIGS_BODY,
};
const INCREMENTAL_ALTER_CONFIGS_BODY: &[Field] = &[
    f(
        "resources",
        ALL,
        array(INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE),
    ),
    f("validate_only", ALL, Bool),
];
const INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", ALL, I8),
    f("resource_name", ALL, Str),
    f(
        "configs",
        ALL,
        array(INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG),
    ),
];
const INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] = &[
    f("name", ALL, Str),
    f("config_operation", ALL, I8),
    f("value", ALL, Str).nullable(),
];

// DescribeClusterRequest
const DESCRIBE_CLUSTER: Layout = Layout {
    key: ApiKey::DescribeCluster,
    versions: span(0, 2),
    flexible: from(0),
    body: DESCRIBE_CLUSTER_BODY,
};
const DESCRIBE_CLUSTER_BODY: &[Field] = &[
    f("include_cluster_authorized_operations", ALL, Bool),
    f("endpoint_type", from(1), I8),
    f("include_fenced_brokers", from(2), Bool),
];

// DescribeTopicPartitionsRequest
const DESCRIBE_TOPIC_PARTITIONS: Layout = Layout {
    key: ApiKey::DescribeTopicPartitions,
    versions: span(0, 0),
    flexible: from(0),
    body: DESCRIBE_TOPIC_PARTITIONS_BODY,
};
const DESCRIBE_TOPIC_PARTITIONS_BODY: &[Field] = &[
    f(
        "topics",
        ALL,
        array(DESCRIBE_TOPIC_PARTITIONS_TOPIC_REQUEST),
    ),
    f("response_partition_limit", ALL, I32),
    f(
        "cursor",
        ALL,
        Ty::OptStruct(DESCRIBE_TOPIC_PARTITIONS_CURSOR),
    ),
];
const DESCRIBE_TOPIC_PARTITIONS_TOPIC_REQUEST: &[Field] = &[f("name", ALL, Str)];
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: &[Field] =
    &[f("topic_name", ALL, Str), f("partition_index", ALL, I32)];
