"""Apache Kafka's own command-line tools as a client: one operation per
process, see common.py. Needs KAFKA_HOME (an unpacked Kafka 3.2+ download).

Each operation runs the stock scripts from $KAFKA_HOME/bin with
--bootstrap-server and reads what they print, so the tools' output formats
are checked as much as the broker's answers:

- kafka-topics.sh --create/--list/--describe/--alter --partitions/--delete
- kafka-console-producer.sh, keys and headers parsed from each input line
- kafka-console-consumer.sh by partition and offset, and with --group
- kafka-get-offsets.sh for earliest/latest offsets
- kafka-consumer-groups.sh --list/--describe/--reset-offsets/--delete
- kafka-configs.sh --describe/--alter for topic overrides
- kafka-broker-api-versions.sh for the broker list

The console producer cannot choose a partition: records go where the default
partitioner puts them, and the driver finds out where by reading the new part
of every partition back (harness/clients.py NO_PARTITION_CHOICE).
"""

import collections
import datetime
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

from common import HEARTBEAT_MS, Skip, deadline, group_phases, remaining, run, stable_split

KAFKA_HOME = os.environ.get("KAFKA_HOME", "")
MIN_VERSION = (3, 2)  # parse.headers and null.marker in the console producer

# Console producer input: "<headers>\t<key>:<value>", headers "k:v,k:v".
KEY_SEP = ":"
HEADERS_DELIM = "\t"
# Stands for null (key, value, header value, or "no headers") both ways.
NULL = "@@NULL@@"
# Console consumer output: control characters that test data never holds,
# so values with tabs or colons still parse.
COL = "\x1f"
HEADER_SEP = "\x1e"
EOL = "\x1d\n"

FORMAT = ["print.timestamp=true", "print.partition=true", "print.offset=true", "print.headers=true",
          "print.key=true", "key.separator=" + COL, "headers.separator=" + HEADER_SEP,
          "line.separator=" + EOL, "null.literal=" + NULL]


def jar_version():
    """The distribution's version, read off its kafka-clients jar's name (no JVM start)."""
    for name in os.listdir(os.path.join(KAFKA_HOME, "libs")) if KAFKA_HOME else []:
        m = re.fullmatch(r"kafka-clients-(\d+)\.(\d+)\..*\.jar", name)
        if m:
            return (int(m.group(1)), int(m.group(2)))
    return (0, 0)


# Kafka 4.1 renamed the console tools' --property (deprecated since, with a notice on stdout).
NEW_PROPERTY_FLAGS = jar_version() >= (4, 1)
FORMATTER_FLAG = "--formatter-property" if NEW_PROPERTY_FLAGS else "--property"
READER_FLAG = "--reader-property" if NEW_PROPERTY_FLAGS else "--property"
FORMAT_ARGS = [a for p in FORMAT for a in (FORMATTER_FLAG, p)]

# The tools run briefly; a quick-starting JVM matters more than peak speed.
FAST_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"


def tool_env():
    env = dict(os.environ)
    env.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", FAST_JVM)
    return env


def tool_cmd(req, name, args):
    cmd = [os.path.join(KAFKA_HOME, "bin", name)]
    if req is not None:
        cmd += ["--bootstrap-server", req["bootstrap"]]
    return cmd + list(args)


def shown(name, args):
    """A command line for messages, its separator characters escaped."""
    return re.sub(r"[\x00-\x1f]", lambda m: "\\x%02x" % ord(m.group()), shlex.join([name] + list(args)))


def tool(req, name, args, stdin=None, until=None, check=True):
    """Run one tool to completion; returns (stdout, stderr, exit code)."""
    until = until or deadline(req)
    try:
        p = subprocess.run(tool_cmd(req, name, args), input=stdin, capture_output=True, env=tool_env(),
                           timeout=remaining(until))
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("%s timed out%s" % (shown(name, args), tail(e.stdout, e.stderr)))
    out = p.stdout.decode("utf-8", errors="replace")
    err = p.stderr.decode("utf-8", errors="replace")
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d%s" % (shown(name, args), p.returncode, tail(out, err)))
    return out, err, p.returncode


def tail(out, err, lines=8):
    text = []
    for part in (out, err):
        if isinstance(part, bytes):
            part = part.decode("utf-8", errors="replace")
        text += [l for l in (part or "").splitlines() if l.strip()]
    return (":\n" + "\n".join(text[-lines:])) if text else ""


def probe(req):
    out, err, _ = tool(None, "kafka-topics.sh", ["--version"], until=deadline(req))
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise RuntimeError("kafka-topics.sh --version printed no version%s" % tail(out, err))
    if tuple(int(x) for x in m.groups()[:2]) < MIN_VERSION:
        raise RuntimeError("Kafka %s is too old for this driver; it needs %d.%d or newer"
                           % ((m.group(0),) + MIN_VERSION))
    return {"version": m.group(0)}


# ---- topics -----------------------------------------------------------------

def describe_topics(req, topic=None):
    """kafka-topics.sh --describe, parsed: {name: {"partitions": count,
    "leaders": {partition: leader}, "replicas": ..., "isr": ...}}, or None
    when the one topic asked for does not exist."""
    args = ["--describe"] + (["--topic", topic] if topic else [])
    out, err, code = tool(req, "kafka-topics.sh", args, check=False)
    if code != 0:
        if topic and re.search(r"does not exist", out + err):
            return None
        raise RuntimeError("kafka-topics.sh %s exited %d%s" % (" ".join(args), code, tail(out, err)))
    topics = {}
    for line in out.splitlines():
        head = re.match(r"Topic: (\S+)\s.*PartitionCount: (\d+)", line)
        if head:
            topics[head.group(1)] = {"partitions": int(head.group(2)), "leaders": {}, "replicas": {}, "isr": {}}
            continue
        part = re.search(r"Topic: (\S+)\s+Partition: (\d+)\s+Leader: (\S+)\s+Replicas: (\S*)\s+Isr: (\S*)", line)
        if part and part.group(1) in topics:
            t, p = topics[part.group(1)], int(part.group(2))
            t["leaders"][p] = part.group(3)
            t["replicas"][p] = part.group(4)
            t["isr"][p] = part.group(5)
    for name, t in topics.items():
        if sorted(t["leaders"]) != list(range(t["partitions"])):
            raise RuntimeError("--describe of %s shows PartitionCount: %d but partition lines %s%s"
                               % (name, t["partitions"], sorted(t["leaders"]), tail(out, "")))
    return topics


def check_leaders(name, t, broker_id=None):
    """Every partition led by the one broker, which is its only replica and in sync."""
    for p, leader in sorted(t["leaders"].items()):
        want = str(broker_id) if broker_id is not None else leader
        if not leader.isdigit() or leader != want or t["replicas"][p] != leader or t["isr"][p] != leader:
            raise RuntimeError("%s partition %d: Leader: %s Replicas: %s Isr: %s, expected all %s"
                               % (name, p, leader, t["replicas"][p], t["isr"][p], want))


def brokers(req):
    out, err, _ = tool(req, "kafka-broker-api-versions.sh", [])
    found = [{"id": int(m.group(3)), "host": m.group(1), "port": int(m.group(2))}
             for m in re.finditer(r"^(\S+):(\d+) \(id: (-?\d+) rack: ", out, re.M)]
    if not found:
        raise RuntimeError("kafka-broker-api-versions.sh listed no broker%s" % tail(out, err))
    return found


def list_topics(req):
    out, _, _ = tool(req, "kafka-topics.sh", ["--list"])
    names = [l.strip() for l in out.splitlines() if re.fullmatch(r"[A-Za-z0-9._-]+", l.strip())]
    described = describe_topics(req)
    nodes = brokers(req)
    topics = {}
    for name in names:
        if name not in described:
            raise RuntimeError("%s is in --list but not in --describe" % name)
        if len(nodes) == 1:
            check_leaders(name, described[name], nodes[0]["id"])
        topics[name] = {"partitions": described[name]["partitions"], "error": None}
    return {"brokers": nodes, "topics": topics}


def topic_metadata(req):
    """Partition count from --describe. A topic that does not exist yet is
    auto-created the way a client does it: a consumer asks for it."""
    until = deadline(req)
    topic = req["topic"]
    t = describe_topics(req, topic)
    if t is None:
        # Assigning partition 0 makes the consumer fetch the topic's metadata,
        # which asks the broker to auto-create it; nothing is there to read.
        tool(req, "kafka-console-consumer.sh", ["--topic", topic, "--partition", "0", "--offset", "0",
                                                "--max-messages", "1", "--timeout-ms", "2000"],
             until=until, check=False)
    while t is None or not t.get(topic) or not all(l.isdigit() for l in t[topic]["leaders"].values()):
        if time.monotonic() > until:
            raise RuntimeError("%s has no usable --describe output: %s" % (topic, t))
        time.sleep(0.5)
        t = describe_topics(req, topic)
    check_leaders(topic, t[topic])
    return {"partitions": t[topic]["partitions"]}


def create_topic(req):
    out, _, _ = tool(req, "kafka-topics.sh", ["--create", "--topic", req["topic"], "--partitions",
                                              str(req["partitions"]), "--replication-factor", "1"])
    if "Created topic %s." % req["topic"] not in out:
        raise RuntimeError("kafka-topics.sh --create did not confirm%s" % tail(out, ""))
    return {}


def create_partitions(req):
    tool(req, "kafka-topics.sh", ["--alter", "--topic", req["topic"], "--partitions", str(req["count"])])
    return {}


def delete_topic(req):
    tool(req, "kafka-topics.sh", ["--delete", "--topic", req["topic"]])
    return {}


# ---- records ----------------------------------------------------------------

def producer_line(r):
    """One record as a console producer input line (parse.key, parse.headers,
    null.marker). Raises Skip for data that form cannot carry."""
    def ok(s, banned, what):
        if s is None:
            return NULL
        bad = [c for c in banned + ["\n", "\r", EOL, COL, HEADER_SEP] if c in s]
        if bad or s == NULL:
            raise Skip("the console producer's line format cannot carry this %s: %r" % (what, s[:40]))
        return s
    headers = ",".join("%s:%s" % (ok(k, [",", ":", "\t"], "header name"), ok(v, [",", "\t"], "header value"))
                       for k, v in r["headers"])
    return "%s%s%s%s%s" % (headers or NULL, HEADERS_DELIM, ok(r["key"], [KEY_SEP, "\t"], "key"), KEY_SEP,
                           ok(r["value"], [], "value"))


def parse_records(text):
    """Records from console consumer output in the FORMAT above; a trailing
    incomplete record (a consumer still writing) is left out."""
    out = []
    for chunk in text.split(EOL)[:-1]:
        # A tool's notice (such as a deprecation warning) may precede the first record's line.
        head, sep, rest = chunk.partition(COL)
        chunk = head.rsplit("\n", 1)[-1] + sep + rest
        cols = chunk.split(COL, 5)
        if len(cols) != 6:
            raise RuntimeError("unexpected console consumer output: %r" % chunk[:200])
        ts, part, off, headers, key, value = cols
        m = re.fullmatch(r"(?:CreateTime|LogAppendTime):(-?\d+)", ts)
        hs = []
        if headers != "NO_HEADERS":
            for h in headers.split(HEADER_SEP):
                name, _, v = h.partition(":")
                hs.append([name, None if v == NULL else v])
        out.append({
            "partition": int(part.split(":", 1)[1]),
            "offset": int(off.split(":", 1)[1]),
            "key": None if key == NULL else key,
            "value": None if value == NULL else value,
            "headers": hs,
            "timestamp": int(m.group(1)) if m else None,
        })
    return out


def end_offsets(req, time_spec="-1", until=None):
    """kafka-get-offsets.sh for every partition of the topic: {partition: offset};
    {} when the topic does not exist (yet)."""
    out, err, code = tool(req, "kafka-get-offsets.sh", ["--topic", req["topic"], "--time", time_spec],
                          until=until, check=False)
    if code != 0 and not re.search(r"Could not match any|does not exist|UnknownTopicOrPartition", out + err):
        raise RuntimeError("kafka-get-offsets.sh exited %d%s" % (code, tail(out, err)))
    found = {}
    for line in out.splitlines():
        topic, _, rest = line.strip().rpartition(":")
        name, _, part = topic.rpartition(":")
        if name == req["topic"] and part.isdigit() and re.fullmatch(r"-?\d+", rest):
            found[int(part)] = int(rest)
    return found


def list_offsets(req):
    until = deadline(req)
    earliest = end_offsets(req, "-2", until).get(req["partition"])
    latest = end_offsets(req, "-1", until).get(req["partition"])
    if earliest is None or latest is None:
        raise RuntimeError("kafka-get-offsets.sh printed nothing for %s:%d" % (req["topic"], req["partition"]))
    return {"earliest": earliest, "latest": latest}


def read_partition(req, partition, offset, count, until):
    if count <= 0:
        return []
    # --timeout-ms bounds the wait for each next record, not the whole read.
    wait_ms = int(max(1.0, min(15.0, remaining(until) - 3)) * 1000)
    out, err, _ = tool(req, "kafka-console-consumer.sh",
                       ["--topic", req["topic"], "--partition", str(partition), "--offset", str(offset),
                        "--max-messages", str(count), "--timeout-ms", str(wait_ms)] + FORMAT_ARGS, until=until)
    got = parse_records(out)
    if len(got) < count and "ERROR" in err:
        raise RuntimeError("console consumer read %d of %d records%s" % (len(got), count, tail("", err)))
    return got


def consume(req):
    until = deadline(req)
    return {"records": read_partition(req, req["partition"], req["offset"], req["count"], until)}


def produce(req):
    """Feed the records to kafka-console-producer.sh, then read the new part
    of each partition back to learn where each record went."""
    until = deadline(req)
    recs = req["records"]
    # Records without keys or headers go in the plain quick-start form.
    plain = all(r["key"] is None and not r["headers"] for r in recs)
    if plain:
        lines = []
        for r in recs:
            if r["value"] is None or any(c in r["value"] for c in ("\n", "\r")):
                raise Skip("the console producer cannot send this value: %r" % (r["value"],))
            lines.append(r["value"])
    else:
        lines = [producer_line(r) for r in recs]
    args = ["--topic", req["topic"]]
    if not plain:
        args += [READER_FLAG, "parse.key=true", READER_FLAG, "key.separator=" + KEY_SEP,
                 READER_FLAG, "parse.headers=true", READER_FLAG, "null.marker=" + NULL]
    codec = req.get("codec") or "none"
    if codec != "none":
        args += ["--compression-codec", codec]
    if req.get("idempotent"):
        # Already the default since Kafka 3.0; explicit so it cannot silently change.
        args += ["--producer-property", "enable.idempotence=true"]

    before = end_offsets(req, until=until)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    out, err, _ = tool(req, "kafka-console-producer.sh", args, stdin=data, until=until)
    # Send errors are only logged (the producer still exits 0).
    if re.search(r"Error when sending message|ERROR", err):
        raise RuntimeError("console producer reported errors%s" % tail("", err))

    after = end_offsets(req, until=until)
    grown = {p: (before.get(p, 0), end) for p, end in after.items() if end > before.get(p, 0)}
    added = sum(end - start for start, end in grown.values())
    if added != len(recs):
        raise RuntimeError("sent %d records but the partitions grew by %d: %s" % (len(recs), added, grown))
    queues = {p: collections.deque(read_partition(req, p, start, end - start, until))
              for p, (start, end) in sorted(grown.items())}
    offsets = []
    for i, r in enumerate(recs):
        want = (r["key"], r["value"], [list(h) for h in r["headers"]])
        hit = [p for p, q in queues.items() if q and (q[0]["key"], q[0]["value"], q[0]["headers"]) == want]
        if not hit:
            heads = {p: (q[0]["key"], (q[0]["value"] or "")[:40]) if q else None for p, q in queues.items()}
            raise RuntimeError("record %d (key %r) is not where it should be next in any partition; "
                               "next unmatched: %s" % (i, r["key"], heads))
        got = queues[hit[0]].popleft()
        offsets.append([got["partition"], got["offset"]])
    return {"offsets": offsets, "timestamps_set": False}


# ---- consumer groups --------------------------------------------------------

def groups_tool(req, args, until=None):
    return tool(req, "kafka-consumer-groups.sh", args, until=until)


COLUMN_NAME = re.compile(r"#?[A-Z][A-Z0-9-]*|\(ID\)")


def table(out, first_column):
    """Rows (as token lists) of a kafka-consumer-groups.sh table whose header
    starts with first_column, keyed by the header's column names."""
    rows, header, glued = [], None, None
    for line in out.splitlines():
        tokens = line.split()
        if tokens and tokens[0] == first_column:
            names = 0
            while names < len(tokens) and COLUMN_NAME.fullmatch(tokens[names]):
                names += 1
            header, glued = tokens[:names], (tokens[names:] if names < len(tokens) else None)
        elif glued is not None:
            glued += tokens
        elif header and tokens:
            rows.append(dict(zip(header, tokens), _tokens=tokens))
    if glued:
        # Kafka 3.9's --reset-offsets prints its header and rows without line
        # breaks between them: cut the token stream by the header's width.
        for i in range(0, len(glued) - len(header) + 1, len(header)):
            tokens = glued[i:i + len(header)]
            rows.append(dict(zip(header, tokens), _tokens=tokens))
    return header, rows


def describe_offsets(req, until=None):
    """--describe --group: {partition: (current offset or None, log end offset)}
    for the request's topic."""
    out, err, _ = groups_tool(req, ["--describe", "--group", req["group"]], until)
    header, rows = table(out, "GROUP")
    want = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    if not header or header[:6] != want:
        raise RuntimeError("--describe --group printed no %s table%s" % (" ".join(want), tail(out, err)))
    found = {}
    for r in rows:
        if r["GROUP"] == req["group"] and r.get("TOPIC") == req["topic"]:
            cur, end, lag = r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]
            cur = int(cur) if cur.isdigit() else None
            end = int(end)
            if cur is not None and lag != str(end - cur):
                raise RuntimeError("partition %s: LAG %s but CURRENT-OFFSET %d and LOG-END-OFFSET %d"
                                   % (r["PARTITION"], lag, cur, end))
            found[int(r["PARTITION"])] = (cur, end)
    return found


def member_assignments(req, until):
    """--describe --members --verbose: {client id: partitions} of the members,
    or {} while the group has none (or does not exist yet)."""
    out, _, code = tool(req, "kafka-consumer-groups.sh",
                        ["--describe", "--group", req["group"], "--members", "--verbose"], until=until, check=False)
    header, rows = table(out, "GROUP")
    if code != 0 or not header or "#PARTITIONS" not in header or "CLIENT-ID" not in header:
        return {}
    owned = {}
    for r in rows:
        tokens = r["_tokens"]
        if tokens[0] != req["group"]:
            continue
        # The assignment reads "topic(0,1)" or "(0,1)" (3.x), "topic:0,1" in a
        # CURRENT-ASSIGNMENT column (4.x), "-" when empty; take its own column
        # when the row lines up with the header, else the first list after
        # #PARTITIONS.
        column = next((c for c in ("ASSIGNMENT", "CURRENT-ASSIGNMENT") if c in header), None)
        if column and len(tokens) == len(header):
            spec = tokens[header.index(column)]
        else:
            m = re.search(r"\([\d,]*\)|\S+:[\d,]+", " ".join(tokens[header.index("#PARTITIONS") + 1:]))
            spec = m.group(0) if m else "-"
        spec = spec.rpartition("(")[2] if "(" in spec else spec.rpartition(":")[2]
        owned[r["CLIENT-ID"]] = sorted(int(p) for p in re.findall(r"\d+", spec))
    return owned


class Member:
    """A kafka-console-consumer.sh --group process and what it printed."""

    def __init__(self, req, extra=()):
        cmd = tool_cmd(req, "kafka-console-consumer.sh",
                       ["--topic", req["topic"], "--group", req["group"], "--from-beginning"]
                       + list(extra) + FORMAT_ARGS)
        # Same process group as the driver, so a runner timeout takes it down too.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env())
        self.out, self.log = bytearray(), []
        self.threads = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_out(self):
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self.out += chunk

    def _read_err(self):
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def records(self):
        return parse_records(bytes(self.out).decode("utf-8", errors="replace"))

    def stop(self, until):
        """SIGTERM: the consumer closes, which commits what it consumed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.wait(until)

    def wait(self, until):
        try:
            self.proc.wait(timeout=max(5.0, remaining(until)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError("console consumer did not exit; log: %s" % self.log[-3:])
        for t in self.threads:
            t.join(timeout=5)


def group_split(req):
    until = deadline(req)
    # Distinct client ids tell the members apart in --describe --members.
    ids = ["compat-member-%d" % i for i in range(2)]
    members = [Member(req, ["--consumer-property", "client.id=" + i]) for i in ids]
    try:
        parts = list(range(req["partitions"]))
        seen = None
        while True:
            if any(m.proc.poll() is not None for m in members):
                raise RuntimeError("a console consumer exited early; logs: %s" % [m.log[-3:] for m in members])
            by_id = member_assignments(req, until)
            owned = [by_id.get(i, []) for i in ids]
            # Two describes in a row showing the same split: the group has settled.
            if len(by_id) == 2 and stable_split(owned, parts) and owned == seen:
                break
            seen = owned
            if time.monotonic() > until:
                raise RuntimeError("members never split the partitions: %s" % owned)
            time.sleep(0.5)
        placed = produce(dict(req, timeout=remaining(until)))["offsets"]
        want = len(req["records"])
        while sum(len(m.records()) for m in members) < want and time.monotonic() < until:
            time.sleep(0.2)
    finally:
        # One at a time: a member still in the group commits before the
        # rebalance the other's leaving starts, so no commit meets it.
        for m in members:
            m.stop(until)
    got = [m.records() for m in members]
    # Closing committed what each member read: describe shows no lag.
    committed = describe_offsets(req, until)
    produced = collections.Counter(p for p, _ in placed)
    for p in parts:
        cur, end = committed.get(p, (None, None))
        if produced[p] == 0 and cur in (None, 0):
            continue
        if cur is None or cur != end:
            raise RuntimeError("after the members closed, partition %d shows CURRENT-OFFSET %s, LOG-END-OFFSET %s "
                               "(%d records produced there)" % (p, cur, end, produced[p]))
    return {"members": [{"partitions": owned[i], "records": got[i]} for i in range(2)]}


def group_resume(req):
    until = deadline(req)
    wait_ms = int(max(1.0, min(20.0, remaining(until) - 5)) * 1000)
    m = Member(req, ["--max-messages", str(req["count"]), "--timeout-ms", str(wait_ms)])
    m.wait(until)
    return {"records": m.records()}


def group_commit(req):
    """Read `count` records as a group member; closing commits them."""
    return group_resume(req)


def group_offsets(req):
    return {"partitions": {str(p): {"committed": cur, "end": end}
                           for p, (cur, end) in describe_offsets(req).items()}}


def datetime_arg(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def group_reset(req):
    how = {
        "earliest": lambda: ["--to-earliest"],
        "latest": lambda: ["--to-latest"],
        "offset": lambda: ["--to-offset", str(req["offset"])],
        "shift": lambda: ["--shift-by", str(req["by"])],
        "datetime": lambda: ["--to-datetime", datetime_arg(req["timestamp"])],
    }[req["to"]]()
    out, err, _ = groups_tool(req, ["--reset-offsets", "--group", req["group"], "--topic", req["topic"]]
                              + how + ["--execute"])
    header, rows = table(out, "GROUP")
    offsets = {r["PARTITION"]: int(r["NEW-OFFSET"]) for r in rows
               if r["GROUP"] == req["group"] and r.get("TOPIC") == req["topic"]}
    if not header or "NEW-OFFSET" not in header or not offsets:
        raise RuntimeError("--reset-offsets %s printed no new offsets%s" % (" ".join(how), tail(out, err)))
    return {"offsets": offsets}


def list_groups(req):
    out, _, _ = groups_tool(req, ["--list"])
    return {"groups": sorted(l.strip() for l in out.splitlines() if l.strip())}


def delete_group(req):
    out, err, _ = groups_tool(req, ["--delete", "--group", req["group"]])
    if "was successful" not in out:
        raise RuntimeError("--delete --group did not confirm%s" % tail(out, err))
    return {}


# ---- topic configs ----------------------------------------------------------

def describe_configs(req):
    """kafka-configs.sh --describe prints only a topic's own overrides, each
    with its synonyms; the first synonym must be the override itself."""
    topic = req["topic"]
    out, err, _ = tool(req, "kafka-configs.sh", ["--describe", "--entity-type", "topics", "--entity-name", topic])
    if "Dynamic configs for topic %s are:" % topic not in out:
        raise RuntimeError("kafka-configs.sh --describe printed no header for %s%s" % (topic, tail(out, err)))
    found = {}
    for line in out.splitlines():
        m = re.fullmatch(r"\s+([^=\s]+)=(.*) sensitive=(?:true|false) synonyms=\{(.*)\}", line)
        if not m:
            continue
        name, value, synonyms = m.groups()
        own = "DYNAMIC_TOPIC_CONFIG:%s=%s" % (name, value)
        if not synonyms.startswith(own):
            raise RuntimeError("%s=%s has synonyms {%s}, expected them to start with %s"
                               % (name, value, synonyms, own))
        found[name] = value
    return {"dynamic": found}


def alter_configs(req):
    args = ["--alter", "--entity-type", "topics", "--entity-name", req["topic"]]
    if req["set"]:
        args += ["--add-config", ",".join("%s=%s" % kv for kv in sorted(req["set"].items()))]
    if req["delete"]:
        args += ["--delete-config", ",".join(req["delete"])]
    tool(req, "kafka-configs.sh", args)
    return {}


# The Java client's assignors, by the names the scenarios use.
ASSIGNORS = {
    "range": "org.apache.kafka.clients.consumer.RangeAssignor",
    "roundrobin": "org.apache.kafka.clients.consumer.RoundRobinAssignor",
    "sticky": "org.apache.kafka.clients.consumer.StickyAssignor",
    "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
}


def group_strategies(req):
    return {"strategies": list(ASSIGNORS)}


class Watcher(threading.Thread):
    """Polls kafka-consumer-groups.sh --describe --members --verbose for the group's
    assignment, since console consumers do not print theirs."""

    def __init__(self, req, until):
        super().__init__(daemon=True)
        self.req, self.until = req, until
        self.by_id = {}
        self.stopping = threading.Event()
        self.start()

    def run(self):
        while not self.stopping.is_set() and time.monotonic() < self.until:
            try:
                self.by_id = member_assignments(self.req, self.until)
            except RuntimeError:
                pass
            # Each poll is a JVM start: leave the members some of the machine.
            self.stopping.wait(0.5)


class AssignMember:
    """A console consumer in the group with the requested assignor, as group_phases wants a
    member. It auto-commits every 100 ms, and the Java consumer commits before it gives up
    partitions in a rebalance, so what it printed counts as done. It cannot tell what it gave
    up (revoked is None)."""

    count = 0

    def __init__(self, req, watcher):
        AssignMember.count += 1
        self.client_id = "compat-assign-%d" % AssignMember.count
        self.watcher, self.revoked, self.stopped = watcher, None, False
        self.member = Member(req, [
            "--consumer-property", "client.id=" + self.client_id,
            "--consumer-property", "partition.assignment.strategy=" + ASSIGNORS[req["strategy"]],
            "--consumer-property", "heartbeat.interval.ms=%d" % HEARTBEAT_MS,
            "--consumer-property", "auto.commit.interval.ms=100"])

    @property
    def owned(self):
        return self.watcher.by_id.get(self.client_id, [])

    @property
    def records(self):
        return self.member.records()

    @property
    def done(self):
        return len(self.records)

    @property
    def error(self):
        p = self.member.proc
        if p.poll() is not None and not self.stopped:
            return "console consumer exited with %s: %s" % (p.returncode, self.member.log[-3:])
        return None

    def stop(self):
        self.stopped = True
        if self.member.proc.poll() is None:
            self.member.proc.send_signal(signal.SIGTERM)

    def wait(self, seconds):
        try:
            self.member.wait(time.monotonic() + seconds)
        except RuntimeError:
            pass


def group_assign(req):
    until = deadline(req)
    watcher = Watcher(req, until)
    try:
        return group_phases(req, lambda r: AssignMember(r, watcher), produce)
    finally:
        watcher.stopping.set()


if __name__ == "__main__":
    sys.exit(run({
        "probe": probe, "list_topics": list_topics, "topic_metadata": topic_metadata,
        "create_topic": create_topic, "create_partitions": create_partitions, "delete_topic": delete_topic,
        "produce": produce, "consume": consume, "list_offsets": list_offsets,
        "group_split": group_split, "group_resume": group_resume,
        "group_commit": group_commit, "group_offsets": group_offsets, "group_reset": group_reset,
        "list_groups": list_groups, "delete_group": delete_group,
        "describe_configs": describe_configs, "alter_configs": alter_configs,
        "group_strategies": group_strategies, "group_assign": group_assign,
    }))
