//! Measures the figures a change should not make worse, in one run on this machine:
//! time from start to ready, idle resident memory, and produce/consume throughput with rdkafka.
//!
//!     cargo build --release && cargo run --release --example bench -- [--messages N] [--size BYTES]
//!
//! It starts `target/release/klamm` (or `$KLAMM_BIN`) itself on a free port with a temporary
//! data directory, and prints medians over several rounds. Absolute numbers on shared machines
//! are noisy: compare runs made on the same machine, one after the other.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use support::arg;

/// Starts a broker; returns it, its address and the time until it logged readiness.
fn start(dir: &std::path::Path) -> (Child, String, Duration) {
    let started = Instant::now();
    let (child, addr, lines) = support::start(dir, &[]);
    let ready = started.elapsed();
    support::drain(lines);
    (child, addr, ready)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn produce(addr: &str, topic: &str, messages: usize, size: usize) -> f64 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let payload = vec![b'x'; size];
    let started = Instant::now();
    let mut sent = 0;
    while sent < messages {
        match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload)) {
            Ok(()) => sent += 1,
            Err(_) => {
                producer.poll(Duration::from_millis(1));
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    (messages * size) as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn consume(addr: &str, topic: &str, messages: usize, size: usize) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut read = 0;
    while read < messages {
        if let Some(Ok(m)) = consumer.poll(Duration::from_secs(5)) {
            assert_eq!(m.payload().map(|p| p.len()), Some(size));
            read += 1;
        }
    }
    (messages * size) as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let messages = arg::<usize>("--messages", 200_000);
    let size = arg::<usize>("--size", 1024);
    let rounds = arg::<usize>("--rounds", 3);

    let mut ready_ms = Vec::new();
    let mut idle_rss = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, _, ready) = start(dir.path());
        ready_ms.push(ready.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(500));
        idle_rss.push(support::rss_kib(child.id()) as f64 / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "start to ready (empty data dir): median {:.1} ms",
        median(ready_ms)
    );
    println!("idle resident memory: median {:.1} MiB", median(idle_rss));

    let mut produce_mb = Vec::new();
    let mut consume_mb = Vec::new();
    let mut loaded_rss = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, addr, _) = start(dir.path());
        let topic = format!("bench-{round}");
        produce_mb.push(produce(&addr, &topic, messages, size));
        consume_mb.push(consume(&addr, &topic, messages, size));
        loaded_rss.push(support::rss_kib(child.id()) as f64 / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "rdkafka, {messages} × {size} B, 1 partition, acks=1, {rounds} rounds:\n  produce median {:.1} MB/s ({:.0} msg/s)\n  consume median {:.1} MB/s ({:.0} msg/s)\n  resident memory after the round: median {:.1} MiB",
        median(produce_mb.clone()),
        median(produce_mb) * 1e6 / size as f64,
        median(consume_mb.clone()),
        median(consume_mb) * 1e6 / size as f64,
        median(loaded_rss)
    );
}
