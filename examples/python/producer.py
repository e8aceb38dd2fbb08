#!/usr/bin/env python3
"""Demo producer: sends one JSON record per second to topic demo_1.

    python producer.py [--bootstrap HOST:PORT] [--count N]

The bootstrap address comes from --bootstrap, else $KAFKA_BOOTSTRAP, else
127.0.0.1:9092. Without --count it runs until interrupted.
"""

import argparse
import json
import os
import time
from datetime import datetime, timezone

from kafka import KafkaProducer

TOPIC = "demo_1"


def main():
    ap = argparse.ArgumentParser(description="Send one JSON record per second to %s." % TOPIC)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--count", type=int, default=None, help="stop after N records")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between records")
    args = ap.parse_args()

    producer = KafkaProducer(bootstrap_servers=args.bootstrap)
    n = 0
    try:
        while args.count is None or n < args.count:
            record = {"number": n, "sent_at": datetime.now(timezone.utc).isoformat()}
            # Waiting for the acknowledgement keeps the demo's output honest.
            meta = producer.send(TOPIC, key=str(n).encode(), value=json.dumps(record).encode()).get(timeout=30)
            print("sent %s -> partition %d offset %d" % (json.dumps(record), meta.partition, meta.offset),
                  flush=True)
            n += 1
            if args.count is None or n < args.count:
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
        producer.close()


if __name__ == "__main__":
    main()
