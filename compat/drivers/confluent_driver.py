"""confluent-kafka (librdkafka) driver: one operation per process, see common.py."""

import sys
import threading
import time

from common import HEARTBEAT_MS, deadline, enc, group_phases, record_out, remaining, run, stable_split

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourceType)
from confluent_kafka import ConsumerGroupTopicPartitions


def conf(req, **extra):
    c = {"bootstrap.servers": req["bootstrap"], "client.id": "klamm-compat-confluent"}
    c.update(extra)
    return c


def probe(req):
    v = confluent_kafka.version()  # a str in 2.x, a (str, int) tuple in older releases
    return {"version": v if isinstance(v, str) else v[0], "librdkafka": confluent_kafka.libversion()[0]}


def metadata_out(md):
    brokers = [{"id": b.id, "host": b.host, "port": b.port} for b in md.brokers.values()]
    topics = {name: {"partitions": len(t.partitions), "error": str(t.error) if t.error else None}
              for name, t in md.topics.items()}
    return {"brokers": brokers, "topics": topics}


def list_topics(req):
    return metadata_out(AdminClient(conf(req)).list_topics(timeout=remaining(deadline(req))))


def topic_metadata(req):
    # A producer may auto-create the topic; the first answer can still lack leaders.
    until = deadline(req)
    p = Producer(conf(req))
    last = None
    while time.monotonic() < until:
        t = p.list_topics(topic=req["topic"], timeout=remaining(until)).topics.get(req["topic"])
        if t is not None and t.error is None and t.partitions:
            return {"partitions": len(t.partitions)}
        last = t.error if t is not None else "topic missing from metadata"
        time.sleep(0.2)
    raise RuntimeError("no usable metadata for %s: %s" % (req["topic"], last))


def admin_call(req, futures):
    until = deadline(req)
    for f in futures.values():
        f.result(timeout=remaining(until))
    return {}


def create_topic(req):
    a = AdminClient(conf(req))
    return admin_call(req, a.create_topics([NewTopic(req["topic"], num_partitions=req["partitions"],
                                                     replication_factor=1)]))


def create_partitions(req):
    a = AdminClient(conf(req))
    return admin_call(req, a.create_partitions([NewPartitions(req["topic"], req["count"])]))


def delete_topic(req):
    a = AdminClient(conf(req))
    return admin_call(req, a.delete_topics([req["topic"]]))


def produce(req):
    until = deadline(req)
    codec = req.get("codec") or "none"
    p = Producer(conf(req, **{"compression.type": codec, "linger.ms": 20, "acks": "all",
                              "enable.idempotence": bool(req.get("idempotent"))}))
    results = [None] * len(req["records"])

    def done(i):
        def cb(err, msg):
            results[i] = ("error", str(err)) if err else (msg.partition(), msg.offset())
        return cb

    for i, r in enumerate(req["records"]):
        kw = {"headers": [(k, enc(v)) for k, v in r["headers"]], "on_delivery": done(i)}
        if r.get("partition") is not None:
            kw["partition"] = r["partition"]
        if r.get("timestamp") is not None:
            kw["timestamp"] = r["timestamp"]
        p.produce(req["topic"], value=enc(r["value"]), key=enc(r["key"]), **kw)
        p.poll(0)
    left = p.flush(remaining(until))
    if left:
        raise RuntimeError("%d records still undelivered at timeout" % left)
    failed = [r[1] for r in results if r[0] == "error"]
    if failed:
        raise RuntimeError("delivery failed: %s" % failed[0])
    return {"offsets": [list(r) for r in results], "timestamps_set": True}


def message_out(m):
    return record_out(m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1])


def plain_consumer(req):
    # librdkafka wants a group.id even for assign(); nothing is committed.
    return Consumer(conf(req, **{"group.id": "klamm-compat-unused", "enable.auto.commit": False,
                                 "enable.auto.offset.store": False}))


def consume(req):
    until = deadline(req)
    c = plain_consumer(req)
    try:
        c.assign([TopicPartition(req["topic"], req["partition"], req["offset"])])
        out = []
        while len(out) < req["count"] and time.monotonic() < until:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append(message_out(m))
        return {"records": out[:req["count"]]}
    finally:
        c.close()


def list_offsets(req):
    c = plain_consumer(req)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(req["topic"], req["partition"]),
                                         timeout=remaining(deadline(req)))
        return {"earliest": lo, "latest": hi}
    finally:
        c.close()


def group_member(req):
    return Consumer(conf(req, **{"group.id": req["group"], "enable.auto.commit": False,
                                 "auto.offset.reset": "earliest"}))


def group_split(req):
    """Two members share the topic; records are produced once both hold a
    disjoint part of it; every record must arrive exactly once; offsets are
    committed before leaving."""
    until = deadline(req)
    want = len(req["records"])
    members = [group_member(req) for _ in range(2)]
    got = [[] for _ in members]
    owned = [[] for _ in members]
    stop = threading.Event()
    errors = []

    def loop(i, c):
        def on_assign(_c, parts):
            owned[i] = sorted(tp.partition for tp in parts)

        def on_revoke(_c, parts):
            owned[i] = []

        try:
            c.subscribe([req["topic"]], on_assign=on_assign, on_revoke=on_revoke)
            while not stop.is_set():
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    raise KafkaException(m.error())
                got[i].append(message_out(m))
            if got[i]:
                c.commit(asynchronous=False)
        except Exception as e:
            errors.append("member %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=loop, args=(i, c), daemon=True) for i, c in enumerate(members)]
    for t in threads:
        t.start()
    try:
        parts = list(range(req["partitions"]))
        stable_since = None
        while time.monotonic() < until and not errors:
            if stable_split(owned, parts):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 1.0:
                    break
            else:
                stable_since = None
            time.sleep(0.1)
        else:
            raise RuntimeError("members never split the partitions: %s %s" % (owned, errors))
        produce(dict(req, op="produce", timeout=remaining(until)))
        while sum(len(g) for g in got) < want and time.monotonic() < until and not errors:
            time.sleep(0.1)
        split = [list(o) for o in owned]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=remaining(until))
        for c in members:
            c.close()
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
            m = c.poll(0.2)
            if m is not None:
                if m.error():
                    raise KafkaException(m.error())
                out.append(message_out(m))
            if len(out) >= req["count"]:
                # keep polling briefly so redelivered old records would show up
                quiet_until = quiet_until or time.monotonic() + req.get("linger", 2)
                if time.monotonic() > quiet_until:
                    break
        if out:
            c.commit(asynchronous=False)
        return {"records": out}
    finally:
        c.close()


def describe_configs(req):
    res = ConfigResource(ResourceType.TOPIC, req["topic"])
    a = AdminClient(conf(req))  # must outlive the future
    entries = a.describe_configs([res])[res].result(timeout=remaining(deadline(req)))
    return {"dynamic": {name: e.value for name, e in entries.items()
                        if getattr(e.source, "value", e.source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}}


def alter_configs(req):
    ops = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in req["set"].items()]
    ops += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in req["delete"]]
    res = ConfigResource(ResourceType.TOPIC, req["topic"], incremental_configs=ops)
    a = AdminClient(conf(req))
    return admin_call(req, a.incremental_alter_configs([res]))


def group_commit(req):
    """Read `count` records as a member of the group, then commit."""
    until = deadline(req)
    c = group_member(req)
    try:
        c.subscribe([req["topic"]])
        out = []
        while len(out) < req["count"] and time.monotonic() < until:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append(message_out(m))
        if out:
            c.commit(asynchronous=False)
        return {"records": out}
    finally:
        c.close()


def end_offsets(req, partitions):
    c = plain_consumer(req)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(req["topic"], p),
                                           timeout=remaining(deadline(req))) for p in partitions}
    finally:
        c.close()


def committed_offsets(req):
    a = AdminClient(conf(req))
    fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(req["group"])])[req["group"]]
    tps = fut.result(timeout=remaining(deadline(req))).topic_partitions
    return {tp.partition: tp.offset for tp in tps if tp.topic == req["topic"]}


def group_offsets(req):
    committed = committed_offsets(req)
    marks = end_offsets(req, sorted(committed))
    return {"partitions": {str(p): {"committed": off, "end": marks[p][1]} for p, off in committed.items()}}


def group_reset(req):
    """Set the group's offsets the way kafka-consumer-groups.sh --reset-offsets
    does, computing the targets on the client side."""
    committed = committed_offsets(req)
    parts = sorted(committed)
    marks = end_offsets(req, parts)
    to = req["to"]
    if to == "earliest":
        target = {p: marks[p][0] for p in parts}
    elif to == "latest":
        target = {p: marks[p][1] for p in parts}
    elif to == "offset":
        target = {p: min(max(req["offset"], marks[p][0]), marks[p][1]) for p in parts}
    elif to == "shift":
        target = {p: min(max(committed[p] + req["by"], marks[p][0]), marks[p][1]) for p in parts}
    elif to == "datetime":
        c = plain_consumer(req)
        try:
            found = c.offsets_for_times([TopicPartition(req["topic"], p, req["timestamp"]) for p in parts],
                                        timeout=remaining(deadline(req)))
        finally:
            c.close()
        # No record at or after the time: the log end, as the Kafka tool does.
        target = {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1] for tp in found}
    else:
        raise ValueError("unknown reset %r" % to)
    tps = [TopicPartition(req["topic"], p, off) for p, off in target.items()]
    a = AdminClient(conf(req))
    fut = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(req["group"], tps)])[req["group"]]
    fut.result(timeout=remaining(deadline(req)))
    return {"offsets": {str(p): off for p, off in target.items()}}


def list_groups(req):
    a = AdminClient(conf(req))  # must outlive the future
    res = a.list_consumer_groups().result(timeout=remaining(deadline(req)))
    return {"groups": sorted(g.group_id for g in res.valid)}


def delete_group(req):
    a = AdminClient(conf(req))
    return admin_call(req, a.delete_consumer_groups([req["group"]]))


# librdkafka's built-in assignors (it has no eager "sticky").
STRATEGIES = ["range", "roundrobin", "cooperative-sticky"]


def group_strategies(req):
    return {"strategies": STRATEGIES}


class Member(threading.Thread):
    """One group member polling in its own thread. It commits after every
    message and tracks what it owns through the rebalance callbacks, which
    under the cooperative protocol carry only the partitions that change."""

    def __init__(self, req):
        super().__init__(daemon=True)
        self.topic = req["topic"]
        self.consumer = Consumer(conf(req, **{
            "group.id": req["group"], "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": req["strategy"], "heartbeat.interval.ms": HEARTBEAT_MS}))
        self.owned, self.revoked, self.records = frozenset(), [], []
        self.done, self.error = 0, None
        self.stopping = threading.Event()
        self.start()

    def on_assign(self, _c, parts):
        self.owned = self.owned | {tp.partition for tp in parts}

    def on_revoke(self, _c, parts):
        self.revoked.extend(tp.partition for tp in parts)
        self.owned = self.owned - {tp.partition for tp in parts}

    def run(self):
        c = self.consumer
        try:
            c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_revoke)
            while not self.stopping.is_set():
                m = c.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    raise KafkaException(m.error())
                self.records.append(message_out(m))
                c.commit(message=m, asynchronous=False)
                self.done = len(self.records)
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            c.close()

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
        "describe_configs": describe_configs, "alter_configs": alter_configs,
        "group_commit": group_commit, "group_offsets": group_offsets, "group_reset": group_reset,
        "list_groups": list_groups, "delete_group": delete_group,
        "group_strategies": group_strategies, "group_assign": group_assign,
    }))
