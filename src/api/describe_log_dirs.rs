//! DescribeLogDirs: the one data directory and the size of every partition in it.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

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
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()));
    // As Kafka reports a failed directory: its error, no partitions, no sizes.
    let result = if topics.offline() {
        result
            .with_error_code(ResponseError::KafkaStorageError.code())
            .with_total_bytes(-1)
            .with_usable_bytes(-1)
    } else {
        let (total, usable) = space(&dir).unwrap_or((-1, -1));
        result
            .with_error_code(0)
            .with_topics(described)
            .with_total_bytes(total)
            .with_usable_bytes(usable)
    };
    DescribeLogDirsResponse::default()
        .with_error_code(0)
        .with_results(vec![result])
}

/// The filesystem's size and the bytes an unprivileged writer may still use (v4), as Kafka
/// takes them from the file store.
fn space(dir: &Path) -> Option<(i64, i64)> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct it is given; the path is NUL-terminated.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let block = st.f_frsize as u64;
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(block)).unwrap_or(i64::MAX);
    Some((bytes(st.f_blocks as u64), bytes(st.f_bavail as u64)))
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
