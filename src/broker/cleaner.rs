//! The compaction cleaner's task: every `log.cleaner.backoff.ms` it compacts the partitions of
//! compacted topics, `log.cleaner.threads` at a time. Its settings are dynamic broker configs,
//! so they are read again before every pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::Shared;
use crate::config::BrokerConfig;
use crate::log::cleaner::{Compacted, BYTES_PER_ENTRY};
use crate::topics::partition::CleanerLimits;

/// How many partitions a pass compacts at once, and the limits each one gets: as in Kafka,
/// the dedupe buffer and the I/O rate are shared among the threads.
fn pass_settings(config: &BrokerConfig) -> (usize, CleanerLimits) {
    let threads = config.int("log.cleaner.threads").max(0) as usize;
    let shares = threads.max(1);
    let limits = CleanerLimits {
        max_keys: (config.int("log.cleaner.dedupe.buffer.size").max(0) as usize
            / BYTES_PER_ENTRY
            / shares)
            .max(1),
        io_bytes_per_sec: (config.double("log.cleaner.io.max.bytes.per.second") / shares as f64)
            .max(1.0),
    };
    (threads, limits)
}

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    // Read-only: whether the cleaner runs at all is fixed at start-up, as in Kafka.
    if !shared.config().bool("log.cleaner.enable") {
        return;
    }
    loop {
        let backoff = shared.config().int("log.cleaner.backoff.ms").max(10) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(backoff)) => {}
            _ = stop.changed() => return,
        }
        let (threads, limits) = pass_settings(&shared.config());
        // Nothing is compacted in a directory that failed.
        if threads == 0 || shared.topics().offline() {
            continue;
        }
        let mut running = JoinSet::new();
        for topic in shared.topics().list() {
            if !topic.settings.compact {
                continue;
            }
            for p in &topic.partitions {
                if *stop.borrow() {
                    // A compaction already running cannot be cancelled; shutdown syncs the
                    // logs once this task has returned, so let it finish first.
                    drain(&mut running).await;
                    return;
                }
                while running.len() >= threads {
                    report(running.join_next().await);
                }
                let (p, settings, name) = (p.clone(), topic.settings.clone(), topic.name.clone());
                running.spawn_blocking(move || {
                    let done = p.compact(&settings, limits, crate::clock::now_ms());
                    (name, done)
                });
            }
        }
        drain(&mut running).await;
    }
}

type Done = Result<(Arc<str>, std::io::Result<Compacted>), tokio::task::JoinError>;

async fn drain(running: &mut JoinSet<(Arc<str>, std::io::Result<Compacted>)>) {
    while let Some(done) = running.join_next().await {
        report(Some(done));
    }
}

fn report(done: Option<Done>) {
    match done {
        Some(Ok((topic, Ok(c)))) if c.records_removed > 0 => info!(
            topic = %topic,
            removed = c.records_removed,
            kept = c.records_kept,
            bytes_before = c.bytes_before,
            bytes_after = c.bytes_after,
            "compacted"
        ),
        Some(Ok((_, Ok(_)))) | None => {}
        Some(Ok((topic, Err(e)))) => warn!(topic = %topic, error = %e, "compaction failed"),
        Some(Err(e)) => warn!(error = %e, "compaction task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn threads_share_the_buffer_and_the_rate() {
        let pairs = BTreeMap::from([
            ("log.cleaner.threads".to_string(), "2".to_string()),
            (
                "log.cleaner.io.max.bytes.per.second".to_string(),
                "1000".to_string(),
            ),
        ]);
        let c = BrokerConfig::from_pairs(pairs).unwrap();
        let (threads, limits) = pass_settings(&c);
        assert_eq!(threads, 2);
        assert_eq!(limits.io_bytes_per_sec, 500.0);
        let one = pass_settings(&BrokerConfig::from_pairs(BTreeMap::new()).unwrap()).1;
        assert_eq!(limits.max_keys, one.max_keys / 2);
    }
}
