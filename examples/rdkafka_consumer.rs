//! Read a topic from Klamm (or any Kafka broker) with the `rdkafka` crate.
//!
//! ```text
//! cargo run --example rdkafka_consumer -- --bootstrap 127.0.0.1:9092 --topic demo_rust
//! ```
//!
//! By default every partition is assigned to this consumer directly and read from the
//! beginning; nothing is committed. With `--group NAME` the consumer instead joins a consumer
//! group, which shares the partitions among its members and remembers their positions (this
//! needs a broker with consumer groups). It stops after `--idle-secs S` seconds without a
//! message (default 5) or after `--max N` messages.

use std::error::Error;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};

struct Args {
    bootstrap: String,
    topic: String,
    group: Option<String>,
    max: Option<usize>,
    idle: Duration,
}

const USAGE: &str = "usage: rdkafka_consumer [--bootstrap HOST:PORT] [--topic NAME] \
                     [--group NAME] [--max N] [--idle-secs S]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: "127.0.0.1:9092".into(),
        topic: "demo_rust".into(),
        group: None,
        max: None,
        idle: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value,
            "--topic" => args.topic = value,
            "--group" => args.group = Some(value),
            "--max" => args.max = Some(number(&value)? as usize),
            "--idle-secs" => args.idle = Duration::from_secs(number(&value)?),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;

    // BaseConsumer is the plain blocking consumer: we call poll() and get one message back.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        // Where to start when there is no committed position: the oldest message.
        .set("auto.offset.reset", "earliest");
    match &args.group {
        // In a group the broker hands out partitions and stores our position, committed
        // automatically every few seconds.
        Some(group) => config
            .set("group.id", group)
            .set("enable.auto.commit", "true"),
        // librdkafka wants a group.id even for direct assignment; with auto-commit off it is
        // never used to talk to a group.
        None => config
            .set("group.id", "rdkafka_consumer_example")
            .set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer = config.create()?;

    match &args.group {
        Some(_) => consumer.subscribe(&[&args.topic])?,
        None => {
            // Ask the broker how many partitions the topic has, then take them all, each
            // starting at its first message.
            let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == args.topic)
                .ok_or("topic missing from metadata")?;
            if let Some(err) = topic.error() {
                return Err(format!("topic {}: {err:?}", args.topic).into());
            }
            let mut assignment = TopicPartitionList::new();
            for p in topic.partitions() {
                assignment.add_partition_offset(&args.topic, p.id(), Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            println!(
                "reading {} partitions of {}",
                topic.partitions().len(),
                args.topic
            );
        }
    }

    let mut received = 0;
    let mut last_message = Instant::now();
    while args.max.is_none_or(|max| received < max) && last_message.elapsed() < args.idle {
        // poll() waits up to the timeout for the next message; the fetching itself happens
        // on librdkafka's threads, which keep a buffer of prefetched messages.
        let message = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                eprintln!("consumer error: {e}");
                continue;
            }
        };
        received += 1;
        last_message = Instant::now();
        // Keys and values are bytes; this example expects text.
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let time = match message.timestamp() {
            Timestamp::CreateTime(t) => format!("created {t}"),
            Timestamp::LogAppendTime(t) => format!("appended {t}"),
            Timestamp::NotAvailable => "no timestamp".into(),
        };
        let headers: Vec<String> = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| format!("{}={}", h.key, text(h.value).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "partition {} offset {} key {:?} value {:?} {time} headers [{}]",
            message.partition(),
            message.offset(),
            text(message.key()),
            text(message.payload()),
            headers.join(", ")
        );
    }
    println!("received {received} messages");
    Ok(())
}
