//! DescribeLogDirs: the one data directory and the size of every partition in it.

use std::collections::HashSet;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::topics::Topic;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let topics = ctx.shared.topics();
    let described: Vec<DescribeLogDirsTopic> = match req.topics {
        // Null asks for every partition; an empty list for none.
        None => topics.list().iter().map(|t| describe(t, None)).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                let t = topics.get(w.topic.0.as_str())?;
                let indexes: HashSet<i32> = w.partitions.iter().copied().collect();
                Some(describe(&t, Some(&indexes)))
            })
            .filter(|t| !t.partitions.is_empty())
            .collect(),
    };
    let dir = ctx.shared.config().data_dir();
    // Clients show this path to operators; an absolute one says where the data really is.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    // Total and usable bytes (v4) stay -1, "unknown": std has no portable way to ask the
    // filesystem for them.
    let result = DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(described);
    DescribeLogDirsResponse::default()
        .with_error_code(0)
        .with_results(vec![result])
}

fn describe(t: &Topic, only: Option<&HashSet<i32>>) -> DescribeLogDirsTopic {
    let partitions = t
        .partitions
        .iter()
        .filter(|p| only.is_none_or(|o| o.contains(&p.index)))
        .map(|p| {
            let size = p.log().size_bytes();
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false)
        })
        .collect();
    DescribeLogDirsTopic::default()
        .with_name(TopicName(StrBytes::from_string(t.name.to_string())))
        .with_partitions(partitions)
}
