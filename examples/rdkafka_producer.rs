//! Produce keyed messages to Klamm (or any Kafka broker) with the `rdkafka` crate.
//!
//! ```text
//! cargo run --example rdkafka_producer -- --bootstrap 127.0.0.1:9092 --topic demo_rust --count 10
//! ```
//!
//! Other options: `--partitions N` (used only when the topic is created, default 3),
//! `--acks 0|1|all` (default all), `--compression none|gzip|snappy|lz4|zstd` (default none).

use std::error::Error;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

struct Args {
    bootstrap: String,
    topic: String,
    count: usize,
    partitions: i32,
    acks: String,
    compression: String,
}

const USAGE: &str = "usage: rdkafka_producer [--bootstrap HOST:PORT] [--topic NAME] [--count N] \
                     [--partitions N] [--acks 0|1|all] [--compression CODEC]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: "127.0.0.1:9092".into(),
        topic: "demo_rust".into(),
        count: 10,
        partitions: 3,
        acks: "all".into(),
        compression: "none".into(),
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
            v.parse::<u32>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value,
            "--topic" => args.topic = value,
            "--count" => args.count = number(&value)? as usize,
            "--partitions" => {
                args.partitions =
                    i32::try_from(number(&value)?).map_err(|_| "too many partitions")?
            }
            "--acks" => args.acks = value,
            "--compression" => args.compression = value,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Creates the topic unless it already exists. (Klamm would also create it on first use with
/// the broker's default partition count; creating it explicitly lets us choose.)
async fn ensure_topic(args: &Args) -> Result<(), Box<dyn Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()?;
    // Klamm is a single broker, so each partition has exactly one replica.
    let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // One result per requested topic; the request itself can fail too (broker unreachable).
    for result in admin.create_topics([&topic], &opts).await? {
        match result {
            Ok(name) => println!("created topic {name} with {} partitions", args.partitions),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                println!("topic {name} already exists")
            }
            Err((name, code)) => return Err(format!("cannot create {name}: {code}").into()),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    ensure_topic(&args).await?;

    // The producer batches messages per partition in the background and sends them from its
    // own threads; FutureProducer hands back a future per message that resolves when the
    // broker has acknowledged it (or when it failed for good).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        // "all": the broker answers once the batch is written and synced.
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        // Wait up to 5 ms for more messages so that they travel in one batch.
        .set("linger.ms", "5")
        // Idempotence needs InitProducerId, which Klamm does not implement yet.
        .set("enable.idempotence", "false")
        // Give up on a message after 10 s instead of retrying for the default 5 minutes.
        .set("message.timeout.ms", "10000")
        .create()?;

    // Enqueue everything first, then wait: awaiting each send before the next would send
    // one message per request.
    let mut deliveries = Vec::with_capacity(args.count);
    for i in 0..args.count {
        // Messages with the same key always go to the same partition, in order.
        let key = format!("key-{}", i % 3);
        let value = format!("message {i} from rdkafka_producer");
        // Headers are optional key/value pairs carried next to the message.
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("rdkafka_producer"),
        });
        let mut record = FutureRecord::to(&args.topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        // send_result only enqueues; it fails at once when the local queue is full, in which
        // case we wait a moment for batches to drain and try again.
        let delivery = loop {
            match producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        };
        deliveries.push((key, delivery));
    }

    let mut failed = 0;
    for (key, delivery) in deliveries {
        match delivery.await {
            // With acks=0 the broker does not answer, so there is no offset to report.
            Ok(Ok(d)) if d.offset < 0 => println!("sent {key} to partition {}", d.partition),
            Ok(Ok(d)) => println!(
                "delivered {key} to partition {} at offset {}",
                d.partition, d.offset
            ),
            Ok(Err((e, _))) => {
                failed += 1;
                eprintln!("delivery of {key} failed: {e}");
            }
            // The producer was dropped before reporting; cannot happen while it lives here.
            Err(_) => {
                failed += 1;
                eprintln!("delivery of {key} was cancelled");
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} messages failed", args.count).into());
    }
    Ok(())
}
