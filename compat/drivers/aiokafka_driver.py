"""aiokafka driver: one operation per process, see common.py."""

import asyncio
import sys
import threading
import time

from common import HEARTBEAT_MS, Skip, deadline, enc, group_phases, record_out, remaining, run, stable_split

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from aiokafka.errors import for_code

CODECS = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


def conf(req):
    return {"bootstrap_servers": req["bootstrap"], "request_timeout_ms": 10000,
            "client_id": "klamm-compat-aiokafka"}


def raise_response_errors(obj):
    """aiokafka's admin returns raw responses; surface any non-zero error_code."""
    if isinstance(obj, dict):
        code = obj.get("error_code")
        if code:
            raise for_code(code)("%s" % obj)
        for v in obj.values():
            raise_response_errors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            raise_response_errors(v)


async def with_admin(req, fn):
    a = AIOKafkaAdminClient(**conf(req))
    await a.start()
    try:
        return await fn(a)
    finally:
        await a.close()


async def probe(req):
    return {"version": aiokafka.__version__}


async def list_topics(req):
    async def go(a):
        cluster = await a.describe_cluster()
        brokers = [{"id": b["node_id"], "host": b["host"], "port": b["port"]} for b in cluster["brokers"]]
        topics = {t["topic"]: {"partitions": len(t["partitions"]), "error": t["error_code"] or None}
                  for t in await a.describe_topics()}
        return {"brokers": brokers, "topics": topics}
    return await with_admin(req, go)


async def topic_metadata(req):
    # The producer asks for this topic only, which lets the broker auto-create it.
    p = AIOKafkaProducer(**conf(req))
    await p.start()
    try:
        parts = await asyncio.wait_for(p.partitions_for(req["topic"]), remaining(deadline(req)))
        return {"partitions": len(parts)}
    finally:
        await p.stop()


async def create_topic(req):
    async def go(a):
        resp = await a.create_topics([NewTopic(req["topic"], req["partitions"], 1)])
        raise_response_errors(resp.to_object())
        return {}
    return await with_admin(req, go)


async def create_partitions(req):
    async def go(a):
        resp = await a.create_partitions({req["topic"]: NewPartitions(req["count"])})
        raise_response_errors(resp.to_object())
        return {}
    return await with_admin(req, go)


async def delete_topic(req):
    async def go(a):
        resp = await a.delete_topics([req["topic"]])
        raise_response_errors(resp.to_object())
        return {}
    return await with_admin(req, go)


async def produce(req):
    until = deadline(req)
    codec = req.get("codec") or "none"
    if codec != "none" and not CODECS[codec]():
        raise Skip("aiokafka has no %s library installed" % codec)
    p = AIOKafkaProducer(compression_type=None if codec == "none" else codec, linger_ms=20,
                         acks="all", enable_idempotence=bool(req.get("idempotent")), **conf(req))
    await p.start()
    try:
        futures = []
        for r in req["records"]:
            futures.append(await p.send(
                req["topic"], value=enc(r["value"]), key=enc(r["key"]),
                headers=[(k, enc(v)) for k, v in r["headers"]],
                partition=r.get("partition"), timestamp_ms=r.get("timestamp")))
        done = await asyncio.wait_for(asyncio.gather(*futures), remaining(until))
        return {"offsets": [[md.partition, md.offset] for md in done], "timestamps_set": True}
    finally:
        await p.stop()


def message_out(m):
    return record_out(m.partition, m.offset, m.key, m.value, m.headers, m.timestamp)


async def consume(req):
    until = deadline(req)
    c = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **conf(req))
    await c.start()
    try:
        tp = TopicPartition(req["topic"], req["partition"])
        c.assign([tp])
        c.seek(tp, req["offset"])
        out = []
        while len(out) < req["count"] and time.monotonic() < until:
            for recs in (await c.getmany(timeout_ms=500)).values():
                out.extend(message_out(m) for m in recs)
        return {"records": out[:req["count"]]}
    finally:
        await c.stop()


async def list_offsets(req):
    c = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **conf(req))
    await c.start()
    try:
        tp = TopicPartition(req["topic"], req["partition"])
        return {"earliest": (await c.beginning_offsets([tp]))[tp],
                "latest": (await c.end_offsets([tp]))[tp]}
    finally:
        await c.stop()


def group_member(req):
    return AIOKafkaConsumer(req["topic"], group_id=req["group"], enable_auto_commit=False,
                            auto_offset_reset="earliest", **conf(req))


async def group_split(req):
    """Two members share the topic; records are produced once both hold a
    disjoint part of it; every record must arrive exactly once; offsets are
    committed before leaving."""
    until = deadline(req)
    want = len(req["records"])
    members = [group_member(req) for _ in range(2)]
    got = [[] for _ in members]
    stop = asyncio.Event()

    async def loop(i, c):
        while not stop.is_set():
            for recs in (await c.getmany(timeout_ms=200)).values():
                got[i].extend(message_out(m) for m in recs)
        await c.commit()

    for c in members:
        await c.start()
    tasks = [asyncio.create_task(loop(i, c)) for i, c in enumerate(members)]
    try:
        parts = list(range(req["partitions"]))
        stable_since = None
        while True:
            owned = [sorted(tp.partition for tp in c.assignment()) for c in members]
            if stable_split(owned, parts):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 1.0:
                    break
            else:
                stable_since = None
            if time.monotonic() > until or any(t.done() for t in tasks):
                raise RuntimeError("members never split the partitions: %s" % owned)
            await asyncio.sleep(0.1)
        await produce(dict(req, op="produce", timeout=remaining(until)))
        while sum(len(g) for g in got) < want and time.monotonic() < until:
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.1)
        owned = [sorted(tp.partition for tp in c.assignment()) for c in members]
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), remaining(until))  # commits
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        for c in members:
            await bounded(c.stop())
    return {"members": [{"partitions": owned[i], "records": got[i]} for i in range(2)]}


async def group_resume(req):
    """A fresh member of the group must start at the committed offsets."""
    until = deadline(req)
    c = group_member(req)
    await c.start()
    try:
        out = []
        quiet_until = None
        while time.monotonic() < until:
            for recs in (await c.getmany(timeout_ms=200)).values():
                out.extend(message_out(m) for m in recs)
            if len(out) >= req["count"]:
                # keep polling briefly so redelivered old records would show up
                quiet_until = quiet_until or time.monotonic() + req.get("linger", 2)
                if time.monotonic() > quiet_until:
                    break
        await c.commit()
        return {"records": out}
    finally:
        await c.stop()


async def bounded(coro, seconds=5):
    """Cleanup must not outlive the driver's deadline; errors here are moot."""
    try:
        await asyncio.wait_for(coro, seconds)
    except Exception:
        pass


ASSIGNORS = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
             "sticky": StickyPartitionAssignor}


async def group_strategies(req):
    return {"strategies": list(ASSIGNORS)}


class Member(threading.Thread, ConsumerRebalanceListener):
    """One group member on its own event loop in its own thread. It commits
    after every batch and tracks what it owns through the rebalance listener."""

    def __init__(self, req):
        super().__init__(daemon=True)
        self.req = req
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
        asyncio.run(self.consume())

    async def consume(self):
        req = self.req
        assignor = ASSIGNORS[req["strategy"]]
        if assignor is StickyPartitionAssignor:
            # It keeps the member's last assignment on the class, and the
            # members here share one process: each gets a class of its own.
            assignor = type(assignor.__name__, (assignor,), {})
        c = AIOKafkaConsumer(group_id=req["group"], enable_auto_commit=False, auto_offset_reset="earliest",
                             partition_assignment_strategy=(assignor,), heartbeat_interval_ms=HEARTBEAT_MS,
                             **conf(req))
        try:
            await c.start()
            c.subscribe([req["topic"]], listener=self)
            while not self.stopping.is_set():
                batch = [m for recs in (await c.getmany(timeout_ms=100)).values() for m in recs]
                if batch:
                    self.records.extend(message_out(m) for m in batch)
                    await c.commit()
                    self.done = len(self.records)
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            await bounded(c.stop())

    def stop(self):
        self.stopping.set()

    def wait(self, seconds):
        self.join(timeout=seconds)


def group_assign(req):
    return group_phases(req, Member, lambda r: asyncio.run(produce(r)))


def sync(fn):
    return lambda req: asyncio.run(fn(req))


if __name__ == "__main__":
    sys.exit(run({**{name: sync(fn) for name, fn in {
        "probe": probe, "list_topics": list_topics, "topic_metadata": topic_metadata,
        "create_topic": create_topic, "create_partitions": create_partitions, "delete_topic": delete_topic,
        "produce": produce,
        "consume": consume, "list_offsets": list_offsets,
        "group_split": group_split, "group_resume": group_resume,
        "group_strategies": group_strategies,
    }.items()}, "group_assign": group_assign}))
