"""The scenarios every client goes through, written once against the driver
operations (see drivers/common.py)."""

import re
import signal
import time

from harness import clients
from harness.records import bulk_records, compare, json_lines, mixed_records, now_ms, record

# Auto-created topics get this many partitions (the runner sets num.partitions).
AUTO_PARTITIONS = 2
# Longest a single driver operation may take unless the scenario has less left.
OP_TIMEOUT = 30.0
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


class Fail(Exception):
    pass


class Skip(Exception):
    pass


class Ctx:
    """One client inside one scenario: runs operations within the scenario's
    time budget and remembers what that client wrote, for later re-reads."""

    def __init__(self, client, scenario, broker, memory, budget, attempt=0):
        self.client, self.scenario, self.broker = client, scenario, broker
        self.written = memory.setdefault(client, {})  # topic -> partition -> [records]
        self.scale = clients.TIME_SCALE.get(client, 1)
        self.until = time.monotonic() + budget * self.scale
        # A second attempt works on topics and groups of its own.
        self.attempt = attempt

    def topic(self, suffix=""):
        again = "-again%d" % self.attempt if self.attempt else ""
        name = "%s-%s%s%s" % (self.scenario, self.client, again, suffix)
        return re.sub(r"[^A-Za-z0-9-]", "-", name)

    def op(self, name, timeout=OP_TIMEOUT, **req):
        left = self.until - time.monotonic()
        if left < 1:
            raise Fail("scenario timed out before %s" % name)
        req["bootstrap"] = self.broker.bootstrap
        try:
            return clients.call(self.client, name, req, timeout=min(timeout * self.scale, left))
        except clients.OpSkip as e:
            raise Skip(str(e))
        except clients.OpError as e:
            raise Fail(str(e))


def check(cond, msg):
    if not cond:
        raise Fail(msg)


# ---- building blocks --------------------------------------------------------

def produce(ctx, topic, records, codec="none", idempotent=False):
    """Produce and return the records annotated with where they landed.
    Offsets the client reports must continue the partition's log exactly: no gap, no
    duplicate. An idempotent producer keeps the order too; one without idempotence may
    reorder batches it retries (Kafka allows that with several requests in flight, and a
    just-created topic's partitions do not all lead at once), so only its offsets count."""
    # A client that cannot choose partitions reports where its partitioner
    # put each record; that placement is then what gets checked.
    chosen = ctx.client not in clients.NO_PARTITION_CHOICE
    t0 = now_ms()
    res = ctx.op("produce", topic=topic, records=records, codec=codec, idempotent=idempotent)
    t1 = now_ms()
    offsets = res["offsets"]
    check(len(offsets) == len(records), "produce returned %d offsets for %d records" % (len(offsets), len(records)))
    log = ctx.written.setdefault(topic, {})
    placed, acked = [], {}
    for r, where in zip(records, offsets):
        r = dict(r)
        if not res.get("timestamps_set") or r["timestamp"] is None:
            r["ts_window"] = [t0, t1]
        if where is not None:
            partition, offset = where
            check(not chosen or r["partition"] in (None, partition),
                  "record for partition %s was acknowledged on partition %s" % (r["partition"], partition))
            r["partition"], r["offset"] = partition, offset
            acked.setdefault(partition, []).append(r)
        placed.append(r)
    for partition, recs in sorted(acked.items()):
        start = len(log.get(partition, []))
        got = [r["offset"] for r in recs]
        want = list(range(start, start + len(recs)))
        if idempotent:
            check(got == want, "partition %d: acknowledged offsets %s, expected %s (continuing the log end, "
                  "in order)" % (partition, got, want))
        else:
            check(sorted(got) == want, "partition %d: acknowledged offsets %s, expected %s in any order "
                  "(continuing the log end)" % (partition, got, want))
        log.setdefault(partition, []).extend(sorted(recs, key=lambda r: r["offset"]))
    return placed


def verify(ctx, topic, label=None):
    """Read every partition this client wrote to `topic` from offset 0 and
    compare with what was acknowledged."""
    problems = []
    for partition, expected in sorted(ctx.written.get(topic, {}).items()):
        got = ctx.op("consume", topic=topic, partition=partition, offset=0, count=len(expected))["records"]
        problems += compare(expected, got, "%s[%d]" % (label or topic, partition))
    if problems:
        raise Fail("\n".join(problems))


def read_all(ctx, topic, partitions):
    """Everything in the topic, per partition, bounded by ListOffsets."""
    out = {}
    for p in range(partitions):
        offs = ctx.op("list_offsets", topic=topic, partition=p)
        out[p] = ctx.op("consume", topic=topic, partition=p, offset=offs["earliest"],
                        count=offs["latest"] - offs["earliest"])["records"] if offs["latest"] else []
    return out


# ---- scenarios --------------------------------------------------------------

def metadata(ctx):
    md = ctx.op("list_topics")
    brokers = [(b["host"], b["port"]) for b in md["brokers"]]
    check(brokers == [("127.0.0.1", ctx.broker.port)],
          "brokers in metadata: %s, expected exactly [('127.0.0.1', %d)]" % (brokers, ctx.broker.port))
    topic = ctx.topic()
    parts = ctx.op("topic_metadata", topic=topic)["partitions"]
    check(parts == AUTO_PARTITIONS, "auto-created %s has %d partitions, expected %d (num.partitions)"
          % (topic, parts, AUTO_PARTITIONS))
    listed = ctx.op("list_topics")["topics"].get(topic)
    check(listed is not None, "auto-created %s missing from the topic list" % topic)
    check(listed["partitions"] == AUTO_PARTITIONS and not listed["error"],
          "topic list entry for %s: %s" % (topic, listed))


def create(ctx):
    topic = ctx.topic()
    ctx.op("create_topic", topic=topic, partitions=3)
    listed = ctx.op("list_topics")["topics"].get(topic)
    check(listed is not None and listed["partitions"] == 3, "created %s listed as %s, expected 3 partitions"
          % (topic, listed))
    try:
        ctx.op("create_topic", topic=topic, partitions=3)
    except Fail as e:
        check(re.search(r"already.?exist", str(e), re.I),
              "creating an existing topic failed with an unexpected error: %s" % e)
    else:
        raise Fail("creating %s a second time succeeded; expected TOPIC_ALREADY_EXISTS" % topic)
    produce(ctx, topic, mixed_records("create", partitions=3)[:6])
    verify(ctx, topic)


def produce_with(codec):
    def scenario(ctx):
        topic = ctx.topic()
        produce(ctx, topic, mixed_records(codec, AUTO_PARTITIONS), codec=codec)
        verify(ctx, topic)
    scenario.__name__ = "produce_" + codec
    return scenario


def offset(ctx):
    topic = ctx.topic()
    recs = [dict(r, partition=0) for r in mixed_records("offset")[:10]]
    if ctx.client in clients.NO_PARTITION_CHOICE:
        # One key for all records keeps them on one partition, the other empty.
        recs = [dict(r, key="offset-key") for r in recs]
    placed = produce(ctx, topic, recs)
    p = placed[0]["partition"]
    check(all(r["partition"] == p for r in placed), "records spread over partitions %s, expected one"
          % sorted({r["partition"] for r in placed}))
    offs = ctx.op("list_offsets", topic=topic, partition=p)
    check(offs == {"earliest": 0, "latest": 10}, "ListOffsets on [%d]: %s, expected earliest 0, latest 10"
          % (p, offs))
    got = ctx.op("consume", topic=topic, partition=p, offset=6, count=4)["records"]
    problems = compare(sorted(placed, key=lambda r: r["offset"])[6:], got, "%s[%d] from offset 6" % (topic, p))
    if problems:
        raise Fail("\n".join(problems))
    empty = 1 - p  # the topic has AUTO_PARTITIONS == 2 partitions
    offs = ctx.op("list_offsets", topic=topic, partition=empty)
    check(offs == {"earliest": 0, "latest": 0}, "ListOffsets on empty [%d]: %s, expected 0/0" % (empty, offs))


def bulk(ctx):
    topic = ctx.topic()
    produce(ctx, topic, bulk_records())
    verify(ctx, topic)


def quickstart(ctx):
    """Produce a few JSON lines the way the Kafka quick-start does (no key,
    no partition, client-chosen timestamps) and read the topic from the start."""
    topic = ctx.topic().replace("quickstart", "MyFirstKafkaTopic")
    sent = produce(ctx, topic, json_lines(5, ctx.client))
    parts = ctx.op("topic_metadata", topic=topic)["partitions"]
    got = read_all(ctx, topic, parts)
    values = [r["value"] for p in sorted(got) for r in got[p]]
    check(sorted(values) == sorted(r["value"] for r in sent),
          "read back %s, expected %s" % (values, [r["value"] for r in sent]))
    # Produce order, or where the client reported offsets, their order (a producer without
    # idempotence may reorder a batch it retried).
    acked = all("offset" in r for r in sent)
    order = [r["value"] for r in (sorted(sent, key=lambda r: r["offset"]) if acked else sent)]
    for p, recs in got.items():
        vals = [r["value"] for r in recs]
        check(vals == sorted(vals, key=order.index), "partition %d out of produce order: %s" % (p, vals))
        for r in recs:
            check(r["key"] is None and r["headers"] == [], "unexpected key/headers: %s" % r)
            lo, hi = sent[0]["ts_window"]
            check(abs(r["timestamp"] - (lo + hi) / 2) < 60_000, "implausible timestamp %s" % r["timestamp"])
    # Remember where records landed so the restart scenarios re-read them too.
    ctx.written[topic] = {p: [dict(r, ts_window=sent[0]["ts_window"]) for r in recs]
                          for p, recs in got.items() if recs}


def delete(ctx):
    topic = ctx.topic()
    ctx.op("create_topic", topic=topic, partitions=1)
    produce(ctx, topic, mixed_records("delete", partitions=1)[:3])
    ctx.op("delete_topic", topic=topic)
    ctx.written.pop(topic, None)
    deadline = time.monotonic() + 10
    while topic in ctx.op("list_topics")["topics"]:
        check(time.monotonic() < deadline, "%s still listed 10s after DeleteTopics" % topic)
        time.sleep(0.5)


# Restart scenarios run in two phases: `before` for every client, then one
# broker restart, then `after` for every client.

def restart_before(ctx):
    topic = ctx.topic()
    produce(ctx, topic, mixed_records("restart", AUTO_PARTITIONS), codec="gzip")
    verify(ctx, topic)


def restart_after(ctx):
    """Everything this client wrote in earlier scenarios reads back the same,
    and appends continue the logs where they ended."""
    for topic in sorted(ctx.written):
        verify(ctx, topic, label=topic + " after restart")
    topic = ctx.topic()
    produce(ctx, topic, mixed_records("after restart", AUTO_PARTITIONS)[:4])
    verify(ctx, topic)


def group_before(ctx):
    """Two members of one group split the partitions, each record is consumed
    exactly once by the member owning its partition, and offsets are committed."""
    topic, group = ctx.topic(), ctx.topic("-group")
    ctx.op("topic_metadata", topic=topic)
    recs = mixed_records("group", AUTO_PARTITIONS)[:8]
    res = ctx.op("group_split", timeout=90, topic=topic, group=group, partitions=AUTO_PARTITIONS,
                 records=recs)
    members = res["members"]
    owned = [sorted(m["partitions"]) for m in members]
    check(all(owned) and sorted(owned[0] + owned[1]) == list(range(AUTO_PARTITIONS)),
          "partitions not split between the two members: %s" % owned)
    for i, m in enumerate(members):
        stray = [r for r in m["records"] if r["partition"] not in m["partitions"]]
        check(not stray, "member %d got records of partitions it does not own: %s" % (i, stray[:2]))
    values = sorted(r["value"] for m in members for r in m["records"])
    check(values == sorted(r["value"] for r in recs),
          "group consumed %d records, expected each of %d exactly once" % (len(values), len(recs)))


def group_after(ctx):
    """After the restart a new member resumes at the committed offsets."""
    topic, group = ctx.topic(), ctx.topic("-group")
    new = mixed_records("resumed", AUTO_PARTITIONS)[8:12]
    ctx.op("produce", topic=topic, records=new, codec="none", idempotent=False)
    got = ctx.op("group_resume", timeout=60, topic=topic, group=group, count=len(new))["records"]
    check(sorted(r["value"] for r in got) == sorted(r["value"] for r in new),
          "resumed member read %s, expected only the %d records produced after the commit"
          % ([r["value"] for r in got], len(new)))


def add_partitions(ctx):
    """CreatePartitions: a 3-partition topic holding records grows to 4; the
    old records stay where they were and the new partition takes records."""
    topic = ctx.topic()
    ctx.op("create_topic", topic=topic, partitions=3)
    produce(ctx, topic, mixed_records("before growing", partitions=3)[:6])
    ctx.op("create_partitions", topic=topic, count=4)
    listed = ctx.op("list_topics")["topics"].get(topic)
    check(listed is not None and listed["partitions"] == 4, "%s listed as %s after growing to 4 partitions"
          % (topic, listed))
    produce(ctx, topic, [dict(r, partition=3) for r in mixed_records("after growing", partitions=1)[:4]])
    verify(ctx, topic)


def group_reset(ctx):
    """A group reads a topic and commits; its offsets are described, reset
    in each way kafka-consumer-groups.sh offers and described again; then
    the group is deleted."""
    topic, group = ctx.topic(), ctx.topic("-group")
    ctx.op("create_topic", topic=topic, partitions=1)
    # No timestamps of our own: the client stamps records when it sends them,
    # so everything sent after `cut` has a later timestamp.
    recs = [dict(r, partition=0, timestamp=None) for r in mixed_records("reset")[:10]]
    produce(ctx, topic, recs[:5])
    cut = now_ms()
    time.sleep(0.2)
    produce(ctx, topic, recs[5:])

    def committed(want, after):
        got = ctx.op("group_offsets", topic=topic, group=group)["partitions"]
        check(got == {"0": {"committed": want, "end": 10}},
              "after %s the group's offsets are %s, expected committed %d, log end 10" % (after, got, want))

    got = ctx.op("group_commit", topic=topic, group=group, count=10)["records"]
    check(len(got) == 10, "the group consumed %d records, expected 10" % len(got))
    committed(10, "consuming everything")
    check(group in ctx.op("list_groups")["groups"], "%s missing from the group list" % group)
    resets = [
        ({"to": "earliest"}, 0),
        ({"to": "offset", "offset": 3}, 3),
        ({"to": "shift", "by": -1}, 2),
        ({"to": "datetime", "timestamp": cut + 1}, 5),
        ({"to": "latest"}, 10),
    ]
    for how, want in resets:
        got = ctx.op("group_reset", topic=topic, group=group, **how)["offsets"]
        check(got == {"0": want}, "reset %s set %s, expected {'0': %d}" % (how, got, want))
        committed(want, "reset %s" % how)
    ctx.op("delete_group", group=group)
    deadline = time.monotonic() + 10
    while group in ctx.op("list_groups")["groups"]:
        check(time.monotonic() < deadline, "%s still listed 10s after it was deleted" % group)
        time.sleep(0.5)


def admin_configs(ctx):
    """Topic config overrides through the admin API: set two, read them
    back, delete one."""
    topic = ctx.topic()
    ctx.op("create_topic", topic=topic, partitions=1)

    def overrides():
        return ctx.op("describe_configs", topic=topic)["dynamic"]

    now = overrides()
    check(now == {}, "new topic %s has overrides already: %s" % (topic, now))
    want = {"retention.ms": "1000", "max.message.bytes": "2000000"}
    ctx.op("alter_configs", topic=topic, set=want, delete=[])
    now = overrides()
    check(now == want, "after setting %s the topic's overrides are %s" % (want, now))
    ctx.op("alter_configs", topic=topic, set={}, delete=["retention.ms"])
    now = overrides()
    check(now == {"max.message.bytes": "2000000"},
          "after deleting retention.ms the topic's overrides are %s" % now)


def idempotent(ctx):
    topic = ctx.topic()
    produce(ctx, topic, mixed_records("idempotent", AUTO_PARTITIONS), codec="none", idempotent=True)
    verify(ctx, topic)


# ---- assignors --------------------------------------------------------------

ASSIGN_PARTITIONS, ASSIGN_MEMBERS = 6, 3
# Range and round-robin place partitions by the members' sorted ids, so the
# sets of partitions owned together are known in advance.
ASSIGN_SHAPES = {"range": [[0, 1], [2, 3], [4, 5]], "roundrobin": [[0, 3], [1, 4], [2, 5]]}
STICKY = ("sticky", "cooperative-sticky")


def assignors(ctx):
    """For each partition-assignment strategy the client offers: a group of 3
    members splits a 6-partition topic 2/2/2 and reads every record exactly
    once. Sticky strategies then get a 4th member: the first three keep a
    subset of what they owned, and a cooperative rebalance revokes only the
    partitions that move."""
    strategies = ctx.op("group_strategies")["strategies"]
    check(strategies, "the client reports no assignment strategy")
    for strategy in strategies:
        check_assignor(ctx, strategy)


def assignor_records(tag, n=12):
    return [record("k-%d" % i, "%s %d" % (tag, i), partition=i * ASSIGN_PARTITIONS // n) for i in range(n)]


def make_topic(ctx, topic, partitions):
    try:
        ctx.op("create_topic", topic=topic, partitions=partitions)
    except Skip:
        # No admin API in this client (kcat): librdkafka's Python binding
        # creates the topic, the client under test does everything else.
        try:
            clients.call("confluent-kafka", "create_topic", {"bootstrap": ctx.broker.bootstrap, "topic": topic,
                                                            "partitions": partitions}, timeout=OP_TIMEOUT)
        except (clients.OpError, clients.OpSkip) as e:
            raise Skip("%s has no admin API and confluent-kafka could not create %s: %s"
                       % (ctx.client, topic, e))


def check_assignor(ctx, strategy):
    topic = ctx.topic("-" + strategy)
    make_topic(ctx, topic, ASSIGN_PARTITIONS)
    first = assignor_records(strategy + " first")
    grow = strategy in STICKY
    second = assignor_records(strategy + " second") if grow else None
    try:
        phases = ctx.op("group_assign", timeout=90, topic=topic, group=topic + "-group", strategy=strategy,
                        partitions=ASSIGN_PARTITIONS, members=ASSIGN_MEMBERS, records=first,
                        more_records=second)["phases"]
    except Fail as e:
        raise Fail("%s: %s" % (strategy, e))
    check(len(phases) == (2 if grow else 1), "%s: driver reported %d phases" % (strategy, len(phases)))
    before = check_phase("%s, %d members" % (strategy, ASSIGN_MEMBERS), phases[0], first, [2, 2, 2])
    if strategy in ASSIGN_SHAPES:
        check(sorted(before) == ASSIGN_SHAPES[strategy], "%s: members own %s, expected the sets %s"
              % (strategy, before, ASSIGN_SHAPES[strategy]))
    if not grow:
        return
    label = "%s, after a 4th member joined" % strategy
    after = check_phase(label, phases[1], second, [1, 1, 2, 2])
    for i, (old, new) in enumerate(zip(before, after)):
        check(set(new) <= set(old), "%s: member %d owned %s and then %s, not a subset of what it had"
              % (label, i, old, new))
        revoked = phases[1]["members"][i].get("revoked")
        if strategy == "cooperative-sticky" and revoked is not None:
            moved = sorted(set(old) - set(new))
            check(sorted(revoked) == moved, "%s: member %d gave up %s, expected only the moving %s "
                  "(not an incremental rebalance)" % (label, i, sorted(revoked), moved))


def check_phase(label, phase, records, sizes):
    """Each partition owned exactly once, in shares of the given sizes; every
    record read exactly once, by its partition's owner. Returns the owned
    partitions in member order."""
    members = phase["members"]
    owned = [sorted(m["partitions"]) for m in members]
    check(len(owned) == len(sizes), "%s: %d members reported, expected %d" % (label, len(owned), len(sizes)))
    check(sorted(p for o in owned for p in o) == list(range(ASSIGN_PARTITIONS)),
          "%s: partitions not owned exactly once: %s" % (label, owned))
    check(sorted(map(len, owned)) == sizes, "%s: members own %s, expected shares of %s" % (label, owned, sizes))
    for i, m in enumerate(members):
        stray = [r for r in m["records"] if r["partition"] not in owned[i]]
        check(not stray, "%s: member %d (owning %s) read records of other partitions: %s"
              % (label, i, owned[i], stray[:2]))
    values = sorted(r["value"] for m in members for r in m["records"])
    check(values == sorted(r["value"] for r in records),
          "%s: the group read %d records (%s...), expected each of %d exactly once"
          % (label, len(values), values[:4], len(records)))
    return owned


def self_checked(sc, fn):
    """Phase `fn` of scenario `sc` as one "scenario" operation, for clients
    that check scenarios themselves (clients.SELF_CHECKING)."""
    phase = "run" if fn is sc.run else "before" if fn is sc.before else "after"

    def run(ctx):
        ctx.op("scenario", timeout=sc.budget, scenario=sc.name, phase=phase, topic=ctx.topic(),
               group=ctx.topic("-group"), auto_partitions=AUTO_PARTITIONS)
    return run


class Scenario:
    def __init__(self, name, run=None, before=None, after=None, restart=None, budget=120):
        self.name, self.run, self.before, self.after = name, run, before, after
        self.restart = restart  # signal for the broker restart between phases
        self.budget = budget


SCENARIOS = [
    Scenario("metadata", metadata),
    Scenario("create", create),
    *[Scenario("produce-" + c, produce_with(c)) for c in CODECS],
    Scenario("offset", offset),
    Scenario("bulk", bulk),
    Scenario("quickstart", quickstart),
    Scenario("restart", before=restart_before, after=restart_after, restart=signal.SIGTERM, budget=240),
    Scenario("crash", before=restart_before, after=restart_after, restart=signal.SIGKILL, budget=240),
    Scenario("delete", delete),
    Scenario("add-partitions", add_partitions),
    Scenario("admin-configs", admin_configs),
    Scenario("group", before=group_before, after=group_after, restart=signal.SIGTERM, budget=180),
    Scenario("group-reset", group_reset, budget=180),
    Scenario("idempotent", idempotent),
    Scenario("assignors", assignors, budget=240),
]
