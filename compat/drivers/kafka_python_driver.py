"""kafka-python driver: one operation per process, see common.py."""

import sys
import threading
import time

from common import (HEARTBEAT_MS, Skip, deadline, enc, group_phases, record_out, remaining, run,
                    stable_split)

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

CODECS = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


def common_conf(req):
    return {"bootstrap_servers": req["bootstrap"], "request_timeout_ms": 10000,
            "client_id": "klamm-compat-kafka-python"}


def probe(req):
    return {"version": kafka.__version__}


def admin(req):
    return KafkaAdminClient(**common_conf(req))


def list_topics(req):
    a = admin(req)
    try:
        cluster = a.describe_cluster()
        brokers = [{"id": b.get("broker_id", b.get("node_id")), "host": b["host"], "port": b["port"]}
                   for b in cluster["brokers"]]
        topics = {}
        for t in a.describe_topics():
            topics[t["name"]] = {"partitions": len(t["partitions"]), "error": t.get("error_code") or None}
        return {"brokers": brokers, "topics": topics}
    finally:
        a.close()


def topic_metadata(req):
    # The producer asks for this topic only, which lets the broker auto-create it.
    p = KafkaProducer(max_block_ms=int(remaining(deadline(req)) * 1000), enable_idempotence=False,
                      **common_conf(req))
    try:
        return {"partitions": len(p.partitions_for(req["topic"]))}
    finally:
        p.close(timeout=5)


def create_topic(req):
    a = admin(req)
    try:
        a.create_topics({req["topic"]: {"num_partitions": req["partitions"], "replication_factor": 1}})
        return {}
    finally:
        a.close()


def create_partitions(req):
    a = admin(req)
    try:
        a.create_partitions({req["topic"]: NewPartitions(total_count=req["count"])})
        return {}
    finally:
        a.close()


def delete_topic(req):
    a = admin(req)
    try:
        a.delete_topics([req["topic"]])
        return {}
    finally:
        a.close()


def producer(req):
    codec = req.get("codec") or "none"
    if codec != "none" and not CODECS[codec]():
        raise Skip("kafka-python has no %s library installed" % codec)
    conf = dict(common_conf(req), linger_ms=20, acks="all",
                compression_type=None if codec == "none" else codec,
                enable_idempotence=bool(req.get("idempotent")))
    if req.get("idempotent"):
        conf.pop("acks")  # explicit acks would conflict with idempotence checks
    return KafkaProducer(**conf)


def produce(req):
    until = deadline(req)
    p = producer(req)
    try:
        futures = []
        for r in req["records"]:
            futures.append(p.send(
                req["topic"], value=enc(r["value"]), key=enc(r["key"]),
                headers=[(k, enc(v)) for k, v in r["headers"]],
                partition=r.get("partition"), timestamp_ms=r.get("timestamp")))
        p.flush(timeout=remaining(until))
        out = []
        for f in futures:
            md = f.get(timeout=remaining(until))
            out.append([md.partition, md.offset])
        return {"offsets": out, "timestamps_set": True}
    finally:
        p.close(timeout=5)


def plain_consumer(req, **extra):
    return KafkaConsumer(group_id=None, enable_auto_commit=False, **common_conf(req), **extra)


def consume(req):
    until = deadline(req)
    c = plain_consumer(req)
    try:
        tp = TopicPartition(req["topic"], req["partition"])
        c.assign([tp])
        c.seek(tp, req["offset"])
        out = []
        while len(out) < req["count"] and time.monotonic() < until:
            for recs in c.poll(timeout_ms=500).values():
                for m in recs:
                    out.append(record_out(m.partition, m.offset, m.key, m.value, m.headers, m.timestamp))
        return {"records": out[:req["count"]]}
    finally:
        c.close()


def list_offsets(req):
    c = plain_consumer(req)
    try:
        tp = TopicPartition(req["topic"], req["partition"])
        return {"earliest": c.beginning_offsets([tp])[tp], "latest": c.end_offsets([tp])[tp]}
    finally:
        c.close()


def group_member(req):
    return KafkaConsumer(group_id=req["group"], enable_auto_commit=False, auto_offset_reset="earliest",
                         **common_conf(req))


def group_split(req):
    """Two members share the topic; records are produced once both hold a
    disjoint part of it; every record must arrive exactly once; offsets are
    committed before leaving."""
    until = deadline(req)
    topic, want = req["topic"], len(req["records"])
    members = [group_member(req) for _ in range(2)]
    got = [[] for _ in members]
    stop = threading.Event()
    errors = []

    def loop(i, c):
        try:
            c.subscribe([topic])
            while not stop.is_set():
                for recs in c.poll(timeout_ms=200).values():
                    for m in recs:
                        got[i].append(record_out(m.partition, m.offset, m.key, m.value, m.headers, m.timestamp))
            c.commit()
        except Exception as e:
            errors.append("member %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=loop, args=(i, c), daemon=True) for i, c in enumerate(members)]
    for t in threads:
        t.start()
    try:
        parts = list(range(req["partitions"]))
        stable_since = None
        while time.monotonic() < until and not errors:
            split = [sorted(tp.partition for tp in c.assignment()) for c in members]
            if stable_split(split, parts):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 1.0:
                    break
            else:
                stable_since = None
            time.sleep(0.1)
        else:
            raise RuntimeError("members never split the partitions: %s %s" % (
                [sorted(tp.partition for tp in c.assignment()) for c in members], errors))
        produce(dict(req, op="produce", timeout=remaining(until)))
        while sum(len(g) for g in got) < want and time.monotonic() < until and not errors:
            time.sleep(0.1)
        split = [sorted(tp.partition for tp in c.assignment()) for c in members]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=remaining(until))
        for c in members:
            c.close(autocommit=False)
    if errors:
        raise RuntimeError("; ".join(errors))
    return {"members": [{"partitions": split[i], "records": got[i]} for i in range(2)]}


def group_resume(req):
    """A fresh member of the group must start at the committed offsets."""
    until = deadline(req)
    c = group_member(req)
    try:
        c.subscribe([req["topic"]])
        out = []
        quiet_until = None
        while time.monotonic() < until:
            for recs in c.poll(timeout_ms=200).values():
                for m in recs:
                    out.append(record_out(m.partition, m.offset, m.key, m.value, m.headers, m.timestamp))
            if len(out) >= req["count"]:
                # keep polling briefly so redelivered old records would show up
                quiet_until = quiet_until or time.monotonic() + req.get("linger", 2)
                if time.monotonic() > quiet_until:
                    break
        c.commit()
        return {"records": out}
    finally:
        c.close(autocommit=False)


ASSIGNORS = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
             "sticky": StickyPartitionAssignor, "cooperative-sticky": CooperativeStickyAssignor}


def group_strategies(req):
    return {"strategies": list(ASSIGNORS)}


class Member(threading.Thread, ConsumerRebalanceListener):
    """One group member polling in its own thread. It commits after every
    batch, and tracks what it owns through the rebalance listener."""

    def __init__(self, req):
        super().__init__(daemon=True)
        self.topic = req["topic"]
        self.consumer = KafkaConsumer(
            group_id=req["group"], enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=[ASSIGNORS[req["strategy"]]], heartbeat_interval_ms=HEARTBEAT_MS,
            **common_conf(req))
        self.owned, self.revoked, self.records = frozenset(), [], []
        self.done, self.error = 0, None
        self.stopping = threading.Event()
        self.start()

    def on_partitions_revoked(self, revoked):
        self.revoked.extend(tp.partition for tp in revoked)
        self.owned = self.owned - {tp.partition for tp in revoked}

    def on_partitions_assigned(self, assigned):
        self.owned = self.owned | {tp.partition for tp in assigned}

    def run(self):
        c = self.consumer
        try:
            c.subscribe([self.topic], listener=self)
            while not self.stopping.is_set():
                # A long poll: when a join is still in flight as poll() returns,
                # kafka-python 3.0.12 may never apply its result (the leader
                # rejoining for new metadata then sits with no partitions).
                batch = [m for recs in c.poll(timeout_ms=1000).values() for m in recs]
                if batch:
                    self.records.extend(record_out(m.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
                                        for m in batch)
                    c.commit()
                    self.done = len(self.records)
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            c.close(autocommit=False)

    def stop(self):
        self.stopping.set()

    def wait(self, seconds):
        self.join(timeout=seconds)


def group_assign(req):
    return group_phases(req, Member, produce)


if __name__ == "__main__":
    sys.exit(run({
        "probe": probe, "list_topics": list_topics, "topic_metadata": topic_metadata,
        "create_topic": create_topic, "create_partitions": create_partitions, "delete_topic": delete_topic,
        "produce": produce,
        "consume": consume, "list_offsets": list_offsets,
        "group_split": group_split, "group_resume": group_resume,
        "group_strategies": group_strategies, "group_assign": group_assign,
    }))
