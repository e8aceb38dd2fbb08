#!/usr/bin/env python3
"""Demo consumer: reads topic demo_1 as member of group consumer.group.id.demo.1.

    python consumer.py [--bootstrap HOST:PORT] [--max N] [--timeout SECONDS]

The group commits its position, so a second run continues where the first
stopped; a brand-new group starts at the earliest record. Stops after --max
records, or after --timeout seconds without a record, or on Ctrl-C.
"""

import argparse
import json
import os

from kafka import KafkaConsumer

TOPIC = "demo_1"
GROUP = "consumer.group.id.demo.1"


def main():
    ap = argparse.ArgumentParser(description="Read %s as group %s." % (TOPIC, GROUP))
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--max", type=int, default=None, help="stop after N records")
    ap.add_argument("--timeout", type=float, default=None,
                    help="stop after S idle seconds (joining the group alone takes a few)")
    args = ap.parse_args()

    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=args.bootstrap,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        consumer_timeout_ms=int(args.timeout * 1000) if args.timeout else float("inf"),
    )
    seen = 0
    try:
        for msg in consumer:
            value = json.loads(msg.value)
            print("partition %d offset %d key %s value %s"
                  % (msg.partition, msg.offset, msg.key and msg.key.decode(), json.dumps(value)), flush=True)
            seen += 1
            if args.max is not None and seen >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        # With auto-commit on, close() commits what was read, so the next run
        # resumes right after it.
        consumer.close()
    print("read %d records" % seen)


if __name__ == "__main__":
    main()
