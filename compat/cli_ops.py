#!/usr/bin/env python3
"""The operations Kafka users run day to day, with Apache Kafka's own command-line tools, against
Klamm and against Apache Kafka itself, checked for what they print.

One Klamm broker (target/release/klamm) and one Apache Kafka broker (a single KRaft node from
KAFKA_HOME) are started with the same settings, and every case below runs the same sequence of
tool commands against each. A case passes on a broker when

- every command exits as expected and prints what the case asserts it must print (the lines
  themselves, not only exit codes), and
- for Klamm: every command printed the same as it did against Kafka, once what must differ is
  normalised (ports, topic ids, member ids, timestamps, durations, data directories). A line
  Kafka prints and Klamm does not (or the other way round) fails the case unless KEPT lists it
  with its reason.

A case that fails against Kafka is a bug in the case. Cases run concurrently (each uses its own
topics and groups); every command is logged with its output under the work directory.

    compat/.venv/bin/python compat/cli_ops.py [--cases a,b] [--jobs N] [--keep-data] [--show]

KAFKA_HOME defaults to the newest distribution compat/kafka/dist.sh laid out in target/kafka/.
Without one (or without java) every case is SKIPPED, and with CI=true that is a failure.
"""

import argparse
import concurrent.futures
import datetime
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness.broker import Broker, BrokerError, KafkaBroker  # noqa: E402
from harness.kafka_tools import (Tools, default_kafka_home, jar_version, key_partition,  # noqa: E402
                                 unavailable_reason)

ROOT = os.path.dirname(HERE)
# The tools' options and output changed in 4.0 (and again in 4.1 and 4.2, which Tools handles).
MIN_KAFKA = (4, 0)

# The same settings for both brokers. node.id is Kafka's in its server.properties; saying it for
# Klamm too makes both report it as a static config. One __consumer_offsets partition lets
# Kafka's group coordinator start in a moment.
OVERRIDES = ["num.partitions=2", "auto.create.topics.enable=true",
             "group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=1", "node.id=1"]
# Kafka 4.x turns on eligible leader replicas (KIP-966) at format time, and with them writes
# min.insync.replicas=1 as a cluster-wide dynamic default that cannot be removed: every topic
# then shows it as an override (`kafka-topics --describe` Configs:, --topics-with-overrides lists
# every topic). ELR is about replication, which a single node does not have; without it Kafka's
# answers are comparable with Klamm's.
KAFKA_FEATURES = ["eligible.leader.replicas.version=0"]

# Differences between Klamm's and Kafka's output that are kept on purpose:
# (case regex, difference regex, reason[, SOMETIMES]). A difference reads
# "<step>: only Kafka prints: <line>", "<step>: only Klamm prints: <line>", or a step's own
# wording (see the cases); the regexes are searched in it.
SOMETIMES = "sometimes"  # a difference that depends on timing: not seeing it is no news

KEPT = [
    (r"", r"only Kafka prints: stderr: WARN \[\w+ clientId=[^\]]+\] The metadata response from the cluster "
          r"reported a recoverable issue with correlation id N : \{[^}]*=UNKNOWN_TOPIC_OR_PARTITION\}",
     "Kafka's controller creates an auto-created topic after answering the Metadata request that "
     "asked for it, so its first answer is UNKNOWN_TOPIC_OR_PARTITION and the client warns and "
     "retries; Klamm creates the topic before it answers", SOMETIMES),
    (r"", r"only Kafka prints: stderr: WARN .*(NOT_LEADER_OR_FOLLOWER|NotLeaderOrFollowerException)",
     "for a moment after Kafka auto-creates a topic its broker does not know the new partitions' "
     "leader yet, and the producer retries; a topic Klamm creates is ready at once", SOMETIMES),
    (r"api-versions", r"Kafka serves (SaslHandshake|SaslAuthenticate|DescribeAcls|CreateAcls|DeleteAcls"
                      r"|CreateDelegationToken|RenewDelegationToken|ExpireDelegationToken"
                      r"|DescribeDelegationToken|DescribeUserScramCredentials"
                      r"|AlterUserScramCredentials)\(",
     "no authentication or authorisation: Klamm serves PLAINTEXT listeners only"),
    (r"api-versions", r"Kafka serves (AddPartitionsToTxn|AddOffsetsToTxn|EndTxn|WriteTxnMarkers"
                      r"|TxnOffsetCommit|DescribeTransactions|ListTransactions|DescribeProducers)\(",
     "no transactions yet (the idempotent producer is served)"),
    (r"api-versions", r"Kafka serves (OffsetForLeaderEpoch|AlterReplicaLogDirs"
                      r"|AlterPartitionReassignments|ListPartitionReassignments)\(",
     "one node, no replication: no replicas to move or leader epochs to reconcile"),
    (r"api-versions", r"Kafka serves (DescribeQuorum|UpdateFeatures|UnregisterBroker|AddRaftVoter"
                      r"|RemoveRaftVoter|UnregisterController)\(",
     "KRaft controller and feature-level APIs: Klamm has no controller quorum"),
    (r"api-versions", r"Kafka serves (DescribeClientQuotas|AlterClientQuotas)\(", "no client quotas"),
    (r"api-versions", r"Kafka serves (ConsumerGroupHeartbeat|ConsumerGroupDescribe)\(",
     "the KIP-848 consumer group protocol is not served; clients use the classic protocol, which "
     "is their default"),
    (r"api-versions", r"Kafka serves (ShareGroupHeartbeat|ShareGroupDescribe|ShareFetch|ShareAcknowledge"
                      r"|InitializeShareGroupState|ReadShareGroupState|WriteShareGroupState"
                      r"|DeleteShareGroupState|ReadShareGroupStateSummary|DescribeShareGroupOffsets"
                      r"|AlterShareGroupOffsets|DeleteShareGroupOffsets)\(",
     "no share groups (KIP-932)"),
    (r"api-versions", r"Kafka serves (StreamsGroupHeartbeat|StreamsGroupDescribe"
                      r"|StreamsGroupTopologyDescriptionUpdate)\(",
     "no streams groups (KIP-1071); Kafka Streams uses the classic protocol by default"),
    (r"api-versions", r"Kafka serves ListConfigResources\(",
     "ListConfigResources (KIP-1142) is not served; kafka-configs falls back to the older requests"),
    (r"api-versions", r"(ListOffsets|OffsetCommit|OffsetFetch|ApiVersions|DescribeLogDirs|DeleteGroups)"
                      r"\(\d+\): Kafka serves up to v\d+, Klamm up to v\d+",
     "the kafka-protocol crate Klamm is built on (0.18) has these APIs only up to the version Klamm "
     "serves; clients use the highest version both sides have"),
    (r"configs-topic-all", r"only Klamm prints: +(message\.downconversion\.enable|message\.format\.version"
                           r"|message\.timestamp\.difference\.max\.ms)=",
     "topic keys Kafka 4.0 removed; Klamm still accepts them so that configurations written for 3.x "
     "keep working (src/topics/config.rs)"),
    (r"configs-topic-all", r"only Kafka prints: +(remote\.log\.copy\.disable|remote\.log\.delete\.on\.disable"
                           r"|remote\.copy\.lag\.bytes|remote\.copy\.lag\.ms)=",
     "tiered-storage settings added after Kafka 3.8; Klamm has no remote storage"),
    (r"configs-topic-all", r"only Kafka prints: +(max\.decompressed\.message\.bytes"
                           r"|errors\.deadletterqueue\.group\.enable)=",
     "topic keys Klamm does not have yet (the decompression limit, KIP-1034's dead-letter queue); "
     "also listed in protocol-tests/differences.txt"),
    (r"configs-broker$", r"describe-all: only Kafka has \d+ keys",
     "Klamm has a subset of Kafka's broker configs: no replication, security, quotas, KRaft, "
     "remote storage or transaction settings"),
    (r"configs-broker$", r"describe-all: (max\.connections|queued\.max\.request\.bytes): ",
     "Klamm bounds connections and queued request bytes by default (Kafka: unbounded)"),
    (r"configs-broker$", r"describe-all: log\.dir: ",
     "Klamm's default data directory is ./data (Kafka: /tmp/kafka-logs)"),
    (r"configs-broker$", r"describe-all: node\.id: Kafka prints `node\.id=1 sensitive=false "
                         r"synonyms=\{STATIC_BROKER_CONFIG:node\.id=1\}`, Klamm `node\.id=1 sensitive=false "
                         r"synonyms=\{STATIC_BROKER_CONFIG:node\.id=1, DEFAULT_CONFIG:node\.id=1\}`",
     "node.id defaults to 1 in Klamm, so that a broker starts without any configuration; Kafka "
     "has no default and requires it"),
    (r"configs-broker$", r"describe-all: (controller\.listener\.names|advertised\.listeners|listeners"
                         r"|listener\.security\.protocol\.map): ",
     "Kafka's configuration here names a KRaft controller listener (CONTROLLER) and advertised "
     "listeners, which Klamm has no need for; Klamm's default listener is PLAINTEXT://127.0.0.1:9092 "
     "(Kafka: all interfaces)"),
]


# ------------------------------------------------------------------------------------------------
# Running commands and recording what they print

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOTABLE_STDERR = re.compile(r"\b(WARN|ERROR|FATAL)\b|Exception|^Error|^Warning")
NORMALISE = [
    (re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] "), ""),  # log line time
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"TopicId: \S+"), "TopicId: ID"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
    (re.compile(r"CreateTime:\d+"), "CreateTime:TS"),
    (re.compile(r'"timestamp":\d+'), '"timestamp":TS'),
    (re.compile(r"correlation id \d+"), "correlation id N"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"), "DATETIME"),
    (re.compile(r"\b(console-consumer|perf-consumer|test-group)-\d+\b"), r"\1-N"),
    (re.compile(r"[ \t]+$"), ""),
    (re.compile(r" {2,}"), " "),  # table columns are as wide as their longest value
]


class Out:
    """What one command printed."""

    def __init__(self, rc, stdout, stderr, seconds):
        self.rc = rc
        self.stdout = ANSI.sub("", stdout or "")
        self.stderr = ANSI.sub("", stderr or "")
        self.seconds = seconds
        self.lines = [l.rstrip() for l in self.stdout.splitlines()]
        self.nonblank = [l for l in self.lines if l.strip()]
        self.err_lines = [l.rstrip() for l in self.stderr.splitlines()
                          if NOTABLE_STDERR.search(l) and not l.startswith("\tat ")]


class Step:
    def __init__(self, name, out, view, compare):
        self.name, self.out, self.view, self.compare = name, out, view, compare


class CaseFailed(Exception):
    """Stops a case whose later steps depend on one that failed."""


class Ctx:
    """One case running against one broker: runs tools, records their output, and collects the
    case's failed expectations."""

    def __init__(self, case, side, broker, tools, workdir):
        self.case, self.side, self.broker, self.tools = case, side, broker, tools
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.steps = []
        self.failures = []
        self.log = open(os.path.join(workdir, "commands.log"), "w")
        self.background = []

    @property
    def bootstrap(self):
        return self.broker.bootstrap

    def normalise(self, line):
        line = line.replace(self.broker.data_dir, "DATADIR")
        for pattern, repl in NORMALISE:
            line = pattern.sub(repl, line)
        return line

    def fail(self, step, message):
        self.failures.append("%s: %s" % (step, message))

    def check(self, step, ok, message):
        if not ok:
            self.fail(step, message)
        return ok

    def require(self, step, ok, message):
        """check(), but the case cannot go on without it."""
        if not self.check(step, ok, message):
            raise CaseFailed()

    def _record(self, step, tool, argv, out, view, compare):
        self.log.write("$ %s.sh %s\n# exit %s after %.1fs\n%s%s\n" % (
            tool, " ".join(argv), out.rc, out.seconds,
            "".join("| " + l + "\n" for l in out.stdout.splitlines()),
            "".join("! " + l + "\n" for l in out.stderr.splitlines())))
        self.log.flush()
        self.steps.append(Step(step, out, view or default_view, compare or default_compare))

    def run(self, step, tool, *args, input=None, timeout=60, rc=0, view=None, compare=None,
            bootstrap=True):
        """Runs bin/<tool>.sh against the broker. `rc` is the exit code it must end with (None:
        any). `view` turns the output into the lines compared with Kafka's (default: normalised
        stdout and notable stderr lines), `compare` compares two Steps itself."""
        argv = (["--bootstrap-server", self.bootstrap] if bootstrap else []) + [str(a) for a in args]
        t0 = time.monotonic()
        try:
            p = self.tools.run(tool, argv, input=input, timeout=timeout)
            out = Out(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
        except subprocess.TimeoutExpired as e:
            out = Out(None, e.stdout, e.stderr, timeout)
            self.fail(step, "%s timed out after %ds%s" % (tool, timeout, last_words(out)))
        else:
            if rc is not None and out.rc != rc:
                self.fail(step, "%s exited %s, expected %s%s" % (tool, out.rc, rc, last_words(out)))
        self._record(step, tool, argv, out, view, compare)
        return out

    def start(self, step, tool, *args):
        """Starts a tool in the background (stop() collects it)."""
        argv = ["--bootstrap-server", self.bootstrap] + [str(a) for a in args]
        base = os.path.join(self.workdir, "%s-%d" % (step, len(self.background)))
        h = {"step": step, "tool": tool, "argv": argv, "out": base + ".out", "err": base + ".err",
             "t0": time.monotonic()}
        with open(h["out"], "w") as o, open(h["err"], "w") as e:
            h["proc"] = self.tools.start(tool, argv, o, e)
        self.background.append(h)
        return h

    def output_so_far(self, h):
        with open(h["out"], errors="replace") as f:
            return f.read()

    def wait_for(self, h, predicate, timeout):
        """Waits until predicate(stdout so far) holds; False if the tool exited or time ran out."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if predicate(self.output_so_far(h)):
                return True
            if h["proc"].poll() is not None:
                return predicate(self.output_so_far(h))
            time.sleep(0.1)
        return False

    def stop(self, h, view=None, compare=None, sig=signal.SIGTERM, rc=None):
        """Stops a background tool (sig, as a user's Ctrl-C) and records its output as a step."""
        p = h["proc"]
        if p.poll() is None:
            os.killpg(p.pid, sig)
        code = self.tools.finish(p, timeout=30)
        with open(h["out"], errors="replace") as o, open(h["err"], errors="replace") as e:
            out = Out(code, o.read(), e.read(), time.monotonic() - h["t0"])
        if rc is not None and code != rc:
            self.fail(h["step"], "%s exited %s, expected %s%s" % (h["tool"], code, rc, last_words(out)))
        self._record(h["step"], h["tool"], h["argv"], out, view, compare)
        self.background.remove(h)
        return out

    def close(self):
        for h in list(self.background):
            p = h["proc"]
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            self.tools.finish(p, timeout=10)
        self.log.close()


def last_words(out):
    tail = (out.err_lines or out.nonblank)[-2:]
    return (": " + " | ".join(tail))[:400] if tail else ""


def default_view(ctx, out):
    return [ctx.normalise(l) for l in out.lines] + ["stderr: " + ctx.normalise(l) for l in out.err_lines]


def default_compare(case, kafka, klamm):
    """The lines one side printed and the other did not, in order."""
    a = kafka.view(kafka.ctx, kafka.out)
    b = klamm.view(klamm.ctx, klamm.out)
    diffs = []
    for d in difflib.ndiff(a, b):
        if d.startswith("- "):
            diffs.append("%s: only Kafka prints: %s" % (kafka.name, d[2:]))
        elif d.startswith("+ "):
            diffs.append("%s: only Klamm prints: %s" % (kafka.name, d[2:]))
    return diffs


def views(*filters):
    """A view keeping only the stdout lines that match one of the regexes (the tool's output
    about this case's topics or groups, when others run at the same time)."""
    pats = [re.compile(f) for f in filters]

    def view(ctx, out):
        return [l for l in default_view(ctx, out) if any(p.search(l) for p in pats)]
    return view


def offsets_masked(ctx, out):
    """kafka-get-offsets output with the offsets left out."""
    return [re.sub(r":\d+$", ":N", l) for l in default_view(ctx, out)]


def sorted_view(ctx, out):
    """Records from several partitions arrive in no set order."""
    return sorted(default_view(ctx, out))


def shape_view(ctx, out):
    """Throughput and latency figures differ from run to run: numbers become N."""
    return [re.sub(r"-?\d+(\.\d+)?(E-?\d+)?", "N", l) for l in default_view(ctx, out)]


def perf_view(ctx, out):
    """The producer's final figures, without its progress lines: it prints one per 5 s window,
    so how many depends on how fast the broker is."""
    return [l for l in shape_view(ctx, out) if not re.fullmatch(r"N records sent, .* N ms max latency\.", l)]


# ------------------------------------------------------------------------------------------------
# Helpers for the cases

def utc_iso(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def table(lines, first="GROUP"):
    """The rows of the consumer-groups tables (header line starting with `first`) as dicts."""
    rows, header = [], None
    for l in lines:
        cols = l.split()
        if not cols:
            header = None
            continue
        if cols[0] == first and (len(cols) > 1 and cols[1].isupper()):
            header = cols
            continue
        if header and len(cols) == len(header):
            rows.append(dict(zip(header, cols)))
    return rows


def records(n, tag, partitions=2):
    """n keyed records with headers: (headers, key, value, partition)."""
    out = []
    for i in range(n):
        key = "key-%d" % i
        out.append(("source:%s,seq:%d" % (tag, i), key, "value-%d-%s-%s" % (i, tag, "abcdef" * 20),
                    key_partition(key, partitions)))
    return out


def producer_input(recs):
    return "".join("%s\t%s\t%s\n" % (h, k, v) for h, k, v, _ in recs)


def by_partition(recs):
    """{partition: [(offset, headers, key, value)]} in the order the records were sent."""
    out = {}
    for h, k, v, p in recs:
        lst = out.setdefault(p, [])
        lst.append((len(lst), h, k, v))
    return out


def produce(ctx, step, topic, recs, *props):
    t = ctx.tools
    args = ["--topic", topic, t.reader_flag, "parse.key=true", t.reader_flag, "parse.headers=true"]
    for p in props:
        args += [t.producer_flag, p]
    out = ctx.run(step, "kafka-console-producer", *args, input=producer_input(recs))
    ctx.check(step, out.nonblank == [], "the producer printed %r" % out.nonblank[:3])
    return out


def print_all(t):
    return [a for p in ("print.timestamp=true", "print.partition=true", "print.offset=true",
                        "print.headers=true", "print.key=true") for a in (t.formatter_flag, p)]


CONSUMED = re.compile(r"^CreateTime:(\d+)\tPartition:(\d+)\tOffset:(\d+)\t(.*)\t(.*)\t(.*)$")


def consumed(out):
    """(timestamp, partition, offset, headers, key, value) of each record the console consumer
    printed with print_all()."""
    got = []
    for l in out.lines:
        m = CONSUMED.match(l)
        if m:
            got.append((int(m.group(1)), int(m.group(2)), int(m.group(3))) + m.groups()[3:])
    return got


def check_consumed(ctx, step, out, expected):
    """expected: [(partition, offset, headers, key, value)] in order."""
    got = [g[1:] for g in consumed(out)]
    if ctx.check(step, len(got) == len(expected),
                 "read %d records, expected %d (%s)" % (len(got), len(expected), last_words(out))):
        for g, e in zip(got, expected):
            if not ctx.check(step, g == tuple(e), "read %r, expected %r" % (g, tuple(e))):
                break
    ctx.check(step, out.err_lines == [] or all("Processed a total" in l or "KIP-848" in l
                                               for l in out.err_lines),
              "stderr: %s" % out.err_lines[:2])


def create_topic(ctx, step, topic, partitions=2, *configs):
    args = ["--create", "--topic", topic, "--partitions", partitions, "--replication-factor", 1]
    for c in configs:
        args += ["--config", c]
    out = ctx.run(step, "kafka-topics", *args)
    ctx.require(step, out.nonblank == ["Created topic %s." % topic],
                "expected 'Created topic %s.', got %r" % (topic, out.nonblank[:3]))


def get_offsets(ctx, step, topic, time_arg, expected):
    """kafka-get-offsets --time: expected {partition: offset}."""
    out = ctx.run(step, "kafka-get-offsets", "--topic", topic, "--time", time_arg)
    want = ["%s:%d:%d" % (topic, p, o) for p, o in sorted(expected.items())]
    ctx.check(step, sorted(out.nonblank) == want, "printed %r, expected %r" % (out.nonblank, want))
    return out


def check_reset_table(ctx, step, out, group, topic, expected):
    """The NEW-OFFSET table of --reset-offsets."""
    rows = table(out.lines)
    got = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in rows
           if r.get("GROUP") == group and r.get("TOPIC") == topic and r.get("NEW-OFFSET", "").isdigit()}
    ctx.check(step, got == expected, "NEW-OFFSET %r, expected %r (%s)" % (got, expected, last_words(out)))


def check_committed(ctx, step, group, topic, expected, ends=None):
    """kafka-consumer-groups --describe: CURRENT-OFFSET per partition, and LOG-END-OFFSET and LAG
    agreeing with it."""
    out = ctx.run(step, "kafka-consumer-groups", "--describe", "--group", group)
    rows = [r for r in table(out.lines) if r.get("TOPIC") == topic]
    got = {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in rows if r["CURRENT-OFFSET"].isdigit()}
    ctx.check(step, got == expected, "CURRENT-OFFSET %r, expected %r" % (got, expected))
    for r in rows:
        p = int(r["PARTITION"])
        if ends is not None and p in ends:
            ctx.check(step, r["LOG-END-OFFSET"] == str(ends[p]),
                      "partition %d LOG-END-OFFSET %s, expected %s" % (p, r["LOG-END-OFFSET"], ends[p]))
        if r["CURRENT-OFFSET"].isdigit() and r["LOG-END-OFFSET"].isdigit():
            lag = int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"])
            ctx.check(step, r["LAG"] == str(lag), "partition %d LAG %s, expected %d" % (p, r["LAG"], lag))
    return out


def consume_group(ctx, step, topic, group, n):
    """Reads n records with a group from the beginning; closing commits."""
    out = ctx.run(step, "kafka-console-consumer", "--topic", topic, "--group", group,
                  "--from-beginning", "--max-messages", n, "--timeout-ms", 20000,
                  *print_all(ctx.tools), view=sorted_view)
    ctx.require(step, len(consumed(out)) == n, "read %d records, expected %d%s"
                % (len(consumed(out)), n, last_words(out)))
    return out


# ------------------------------------------------------------------------------------------------
# The cases. Each is a function of a Ctx; the registry keeps their order and a rough weight
# (JVM starts) so the longest start first.

CASES = []


def case(name, weight, after=None):
    """Registers a case; `after`: a case it must run after, against the same broker."""
    def register(fn):
        CASES.append((name, weight, fn, after))
        return fn
    return register


@case("topics", 13)
def topics_case(ctx):
    a, b = "ops-topics-a", "ops-topics-b"
    mine = r"ops-topics-"
    create_topic(ctx, "create", a, 3, "retention.ms=3600000", "max.message.bytes=200000")
    create_topic(ctx, "create-1", b, 1)
    out = ctx.run("create-again", "kafka-topics", "--create", "--topic", a, "--partitions", 3,
                  "--replication-factor", 1, rc=1)
    ctx.check("create-again", "Error while executing topic command : Topic '%s' already exists." % a
              in out.lines, "no 'already exists' error: %r" % out.nonblank[:2])

    out = ctx.run("list", "kafka-topics", "--list", view=views("^" + mine))
    ctx.check("list", [l for l in out.lines if l.startswith(mine)] == [a, b],
              "listed %r" % [l for l in out.lines if l.startswith(mine)])

    def check_describe(step, out, topic, count, configs):
        head = [l for l in out.lines if l.startswith("Topic: %s\t" % topic)]
        ok = ctx.check(step, len(head) == 1, "no 'Topic: %s' line: %r" % (topic, out.nonblank[:2]))
        if ok:
            m = re.match(r"Topic: (\S+)\tTopicId: (\S+)\tPartitionCount: (\d+)\tReplicationFactor: (\d+)"
                         r"\tConfigs: ?(.*)$", head[0])
            if ctx.check(step, m is not None, "malformed: %r" % head[0]):
                ctx.check(step, m.group(3) == str(count) and m.group(4) == "1",
                          "PartitionCount %s ReplicationFactor %s" % (m.group(3), m.group(4)))
                got = sorted(c for c in m.group(5).split(",") if c)
                ctx.check(step, got == sorted(configs), "Configs: %r, expected %r" % (got, sorted(configs)))
        parts = [l for l in out.lines if l.startswith("\tTopic: %s\t" % topic)]
        ctx.check(step, len(parts) == count, "%d partition lines, expected %d" % (len(parts), count))
        for i, l in enumerate(parts):
            ctx.check(step, re.match(r"\tTopic: %s\tPartition: %d\tLeader: 1\tReplicas: 1\tIsr: 1(\t|$)"
                                     % (re.escape(topic), i), l), "partition line %r" % l)

    configs_a = ["max.message.bytes=200000", "retention.ms=3600000"]
    out = ctx.run("describe", "kafka-topics", "--describe", "--topic", a)
    check_describe("describe", out, a, 3, configs_a)
    out = ctx.run("describe-all", "kafka-topics", "--describe", view=views(r"Topic: " + mine))
    check_describe("describe-all", out, a, 3, configs_a)
    check_describe("describe-all", out, b, 1, [])

    out = ctx.run("alter-partitions", "kafka-topics", "--alter", "--topic", a, "--partitions", 4)
    ctx.check("alter-partitions", out.nonblank == [], "printed %r" % out.nonblank[:2])
    out = ctx.run("describe-altered", "kafka-topics", "--describe", "--topic", a)
    check_describe("describe-altered", out, a, 4, configs_a)
    out = ctx.run("alter-fewer", "kafka-topics", "--alter", "--topic", a, "--partitions", 2, rc=1)
    ctx.check("alter-fewer", any("The topic %s currently has 4 partition(s); 2 would not be an increase." % a
                                 in l for l in out.lines), "printed %r" % out.nonblank[:2])

    out = ctx.run("under-replicated", "kafka-topics", "--describe", "--under-replicated-partitions")
    ctx.check("under-replicated", out.nonblank == [], "printed %r" % out.nonblank[:3])
    out = ctx.run("with-overrides", "kafka-topics", "--describe", "--topics-with-overrides",
                  view=views(mine))
    named = [l.split("\t")[0] for l in out.lines if l.startswith("Topic: " + mine)]
    ctx.check("with-overrides", named == ["Topic: " + a], "listed %r, expected only %s" % (named, a))
    ctx.check("with-overrides", not any(l.startswith("\t") for l in out.lines),
              "partition lines printed: %r" % [l for l in out.lines if l.startswith("\t")][:2])

    out = ctx.run("delete", "kafka-topics", "--delete", "--topic", b)
    ctx.check("delete", out.nonblank == [], "printed %r" % out.nonblank[:2])
    out = ctx.run("list-after-delete", "kafka-topics", "--list", view=views("^" + mine))
    ctx.check("list-after-delete", [l for l in out.lines if l.startswith(mine)] == [a],
              "listed %r" % [l for l in out.lines if l.startswith(mine)])
    out = ctx.run("describe-deleted", "kafka-topics", "--describe", "--topic", b, rc=1)
    ctx.check("describe-deleted", "Error while executing topic command : Topic '%s' does not exist as "
              "expected" % b in out.lines, "printed %r" % out.nonblank[:2])


def dynamic_lines(out, header):
    """The config lines under a kafka-configs --describe header."""
    lines, inside = [], False
    for l in out.lines:
        if l == header:
            inside = True
        elif inside and l.startswith("  "):
            lines.append(l.strip())
        elif inside:
            inside = False
    return lines


@case("configs-topic", 7)
def configs_topic_case(ctx):
    t = "ops-configs-t"
    create_topic(ctx, "create", t, 2, "retention.ms=3600000")
    head = "Dynamic configs for topic %s are:" % t

    def describe(step, expected):
        out = ctx.run(step, "kafka-configs", "--describe", "--entity-type", "topics", "--entity-name", t)
        ctx.check(step, out.nonblank[:1] == [head], "printed %r" % out.nonblank[:1])
        got = dynamic_lines(out, head)
        keys = [l.split("=", 1)[0] for l in got]
        ctx.check(step, keys == sorted(expected), "overrides %r, expected %r" % (keys, sorted(expected)))
        for l in got:
            k = l.split("=", 1)[0]
            if k in expected:
                ctx.check(step, l.startswith("%s=%s sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:%s=%s"
                                             % (k, expected[k], k, expected[k])), "line %r" % l)

    describe("describe", {"retention.ms": "3600000"})
    out = ctx.run("add-config", "kafka-configs", "--alter", "--entity-type", "topics", "--entity-name", t,
                  "--add-config", "max.message.bytes=200000,segment.ms=7200000")
    ctx.check("add-config", out.nonblank == ["Completed updating config for topic %s." % t],
              "printed %r" % out.nonblank[:2])
    describe("describe-added", {"retention.ms": "3600000", "max.message.bytes": "200000",
                                "segment.ms": "7200000"})
    out = ctx.run("delete-config", "kafka-configs", "--alter", "--entity-type", "topics", "--entity-name", t,
                  "--delete-config", "segment.ms")
    ctx.check("delete-config", out.nonblank == ["Completed updating config for topic %s." % t],
              "printed %r" % out.nonblank[:2])
    describe("describe-deleted", {"retention.ms": "3600000", "max.message.bytes": "200000"})

    # Every topic: this case's block (other cases' topics come and go meanwhile).
    out = ctx.run("describe-topics", "kafka-configs", "--describe", "--entity-type", "topics",
                  view=lambda c, o: [head] + dynamic_lines(o, head))
    ctx.check("describe-topics", head in out.lines, "no %r" % head)
    ctx.check("describe-topics", [l.split("=")[0] for l in dynamic_lines(out, head)]
              == ["max.message.bytes", "retention.ms"], "%r" % dynamic_lines(out, head))


@case("configs-topic-all", 2)
def configs_topic_all_case(ctx):
    """--describe --all: every topic key with its value and synonyms."""
    t = "ops-configs-all"
    create_topic(ctx, "create", t, 2, "retention.ms=3600000", "cleanup.policy=compact")
    out = ctx.run("describe-all", "kafka-configs", "--describe", "--all", "--entity-type", "topics",
                  "--entity-name", t)
    ctx.check("describe-all", out.nonblank[:1] == ["All configs for topic %s are:" % t],
              "printed %r" % out.nonblank[:1])
    values = dict(l.strip().split(" ")[0].split("=", 1) for l in out.lines if l.startswith("  "))
    for k, v in (("retention.ms", "3600000"), ("cleanup.policy", "compact"), ("segment.ms", "604800000"),
                 ("max.message.bytes", "1048588"), ("min.insync.replicas", "1"),
                 ("compression.type", "producer"), ("segment.bytes", "1073741824")):
        ctx.check("describe-all", values.get(k) == v, "%s=%s, expected %s" % (k, values.get(k), v))


def compare_broker_all(case, kafka, klamm):
    """--describe --all for a broker: Klamm has a subset of Kafka's keys. Every key Klamm prints
    must be one of Kafka's, with the same line; the keys only Kafka has are summed up."""
    def entries(step):
        out = {}
        for l in step.view(step.ctx, step.out):
            m = re.match(r" ?(\S+?)=\S* sensitive=", l)
            if m:
                out[m.group(1)] = l
        return out
    a, b = entries(kafka), entries(klamm)
    diffs = []
    for k in sorted(b):
        if k not in a:
            diffs.append("%s: only Klamm has %s" % (kafka.name, b[k].strip()))
        elif a[k] != b[k]:
            diffs.append("%s: %s: Kafka prints `%s`, Klamm `%s`" % (kafka.name, k, a[k].strip(), b[k].strip()))
    only = sorted(set(a) - set(b))
    if only:
        diffs.append("%s: only Kafka has %d keys (%s, ...)" % (kafka.name, len(only), ", ".join(only[:5])))
    return diffs


BROKER_ONE = "Dynamic configs for broker 1 are:"
BROKER_DEFAULT = "Default configs for brokers in the cluster are:"


def describe_broker(ctx, step, name_args, header, expected):
    out = ctx.run(step, "kafka-configs", "--describe", "--entity-type", "brokers", *name_args)
    ctx.check(step, out.nonblank[:1] == [header], "printed %r" % out.nonblank[:1])
    got = dynamic_lines(out, header)
    ctx.check(step, len(got) == len(expected) and all(g.startswith(e) for g, e in zip(got, expected)),
              "printed %r, expected %r" % (got, expected))


def broker_values(out):
    values = {}
    for l in out.lines:
        m = re.match(r"  (\S+?)=(\S*) sensitive=", l)
        if m:
            values[m.group(1)] = m.group(2)
    return values


@case("configs-broker", 3)
def configs_broker_case(ctx):
    describe_broker(ctx, "describe", ["--entity-name", 1], BROKER_ONE, [])
    describe_broker(ctx, "describe-default", ["--entity-default"], BROKER_DEFAULT, [])
    out = ctx.run("describe-all", "kafka-configs", "--describe", "--all", "--entity-type", "brokers",
                  "--entity-name", 1, compare=compare_broker_all)
    ctx.check("describe-all", out.nonblank[:1] == ["All configs for broker 1 are:"], "printed %r" % out.nonblank[:1])
    values = broker_values(out)
    for k, v in (("num.partitions", "2"), ("auto.create.topics.enable", "true"), ("node.id", "1"),
                 ("group.initial.rebalance.delay.ms", "0"), ("message.max.bytes", "1048588"),
                 ("log.retention.hours", "168"), ("log.cleaner.backoff.ms", "15000")):
        ctx.check("describe-all", values.get(k) == v, "%s=%s, expected %s" % (k, values.get(k), v))


@case("configs-broker-dynamic", 9, after="configs-broker")
def configs_broker_dynamic_case(ctx):
    """Dynamic broker configs, for this broker and as the cluster-wide default. Runs after
    configs-broker, which must not see them."""
    out = ctx.run("alter", "kafka-configs", "--alter", "--entity-type", "brokers", "--entity-name", 1,
                  "--add-config", "log.cleaner.threads=2")
    ctx.check("alter", out.nonblank == ["Completed updating config for broker 1."],
              "printed %r" % (out.nonblank[:1] + out.err_lines[:1]))
    # The cluster-wide default: a key no topic config takes its default from, so that the other
    # cases' topics do not see it.
    out = ctx.run("alter-default", "kafka-configs", "--alter", "--entity-type", "brokers",
                  "--entity-default", "--add-config", "log.cleaner.backoff.ms=20000")
    ctx.check("alter-default", out.nonblank == ["Completed updating default config for brokers in the cluster."],
              "printed %r" % (out.nonblank[:1] + out.err_lines[:1]))
    describe_broker(ctx, "describe-altered", ["--entity-name", 1], BROKER_ONE,
                    ["log.cleaner.threads=2 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.cleaner.threads=2, "
                     "DEFAULT_CONFIG:log.cleaner.threads=1}"])
    describe_broker(ctx, "describe-default-altered", ["--entity-default"], BROKER_DEFAULT,
                    ["log.cleaner.backoff.ms=20000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
                     "log.cleaner.backoff.ms=20000}"])
    keys = ("log.cleaner.threads", "log.cleaner.backoff.ms")
    out = ctx.run("describe-all", "kafka-configs", "--describe", "--all", "--entity-type", "brokers",
                  "--entity-name", 1, view=views(r"^ (%s)=" % "|".join(re.escape(k) for k in keys)))
    values = broker_values(out)
    for k, v in zip(keys, ("2", "20000")):
        ctx.check("describe-all", values.get(k) == v, "%s=%s, expected %s" % (k, values.get(k), v))
    out = ctx.run("delete", "kafka-configs", "--alter", "--entity-type", "brokers", "--entity-name", 1,
                  "--delete-config", "log.cleaner.threads")
    ctx.check("delete", out.nonblank == ["Completed updating config for broker 1."], "printed %r" % out.nonblank[:1])
    out = ctx.run("delete-default", "kafka-configs", "--alter", "--entity-type", "brokers", "--entity-default",
                  "--delete-config", "log.cleaner.backoff.ms")
    ctx.check("delete-default", out.nonblank == ["Completed updating default config for brokers in the cluster."],
              "printed %r" % out.nonblank[:1])
    describe_broker(ctx, "describe-deleted", ["--entity-name", 1], BROKER_ONE, [])
    describe_broker(ctx, "describe-default-deleted", ["--entity-default"], BROKER_DEFAULT, [])


@case("groups-describe", 11)
def groups_describe_case(ctx):
    t, g = "ops-groups-t", "ops-groups-g"
    create_topic(ctx, "create", t)
    recs = records(10, "groups")
    produce(ctx, "produce", t, recs)
    ends = {p: len(v) for p, v in by_partition(recs).items()}
    h = ctx.start("consume", "kafka-console-consumer", "--topic", t, "--group", g, "--from-beginning",
                  "--consumer-property", "auto.commit.interval.ms=100", *print_all(ctx.tools))
    ctx.require("consume", ctx.wait_for(h, lambda s: len(s.splitlines()) >= 10, 40),
                "the console consumer read %d of 10 records" % len(ctx.output_so_far(h).splitlines()))
    time.sleep(1.0)  # an auto-commit or two

    out = ctx.run("list", "kafka-consumer-groups", "--list", view=views("^ops-groups-"))
    ctx.check("list", g in out.lines, "%s not listed: %r" % (g, out.nonblank[:5]))
    out = ctx.run("describe", "kafka-consumer-groups", "--describe", "--group", g)
    rows = [r for r in table(out.lines) if r.get("TOPIC") == t]
    ctx.check("describe", sorted(int(r["PARTITION"]) for r in rows) == [0, 1], "rows %r" % rows)
    for r in rows:
        ctx.check("describe", r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"] == str(ends[int(r["PARTITION"])])
                  and r["LAG"] == "0", "row %r" % r)
        ctx.check("describe", r["CONSUMER-ID"].startswith("console-consumer-") and r["HOST"] == "/127.0.0.1"
                  and r["CLIENT-ID"] == "console-consumer", "member columns %r" % r)
    out = ctx.run("describe-members", "kafka-consumer-groups", "--describe", "--group", g, "--members",
                  "--verbose")
    rows = table(out.lines)
    ctx.check("describe-members", len(rows) == 1, "%d members: %r" % (len(rows), out.nonblank[:4]))
    for r in rows:
        ctx.check("describe-members", r.get("#PARTITIONS") == "2" and r.get("CURRENT-ASSIGNMENT") == "%s:0,1" % t,
                  "member %r" % r)
    out = ctx.run("describe-state", "kafka-consumer-groups", "--describe", "--group", g, "--state")
    rows = table(out.lines)
    ctx.check("describe-state", len(rows) == 1 and rows[0].get("STATE") == "Stable"
              and rows[0].get("#MEMBERS") == "1" and rows[0].get("ASSIGNMENT-STRATEGY") == "range",
              "state %r" % out.nonblank[:3])
    ctx.check("describe-state", any(re.search(r"\s127\.0\.0\.1:%d\s+\(1\)\s" % ctx.broker.port, l)
                                    for l in out.lines), "no coordinator 127.0.0.1:%d (1)" % ctx.broker.port)
    out = ctx.run("describe-offsets", "kafka-consumer-groups", "--describe", "--group", g, "--offsets")
    ctx.check("describe-offsets", len([r for r in table(out.lines) if r.get("TOPIC") == t]) == 2,
              "printed %r" % out.nonblank[:4])
    out = ctx.run("delete-active", "kafka-consumer-groups", "--delete", "--group", g, rc=None)
    ctx.check("delete-active", any("GroupNotEmptyException" in l for l in out.lines),
              "printed %r" % out.nonblank[:3])

    out = ctx.stop(h, view=sorted_view)
    ctx.check("consume", "Processed a total of 10 messages" in out.stderr, "stderr %r" % out.err_lines[-2:])
    check_committed(ctx, "describe-stopped", g, t, ends, ends)
    out = ctx.run("describe-state-stopped", "kafka-consumer-groups", "--describe", "--group", g, "--state")
    rows = table(out.lines)
    ctx.check("describe-state-stopped", len(rows) == 1 and rows[0].get("STATE") == "Empty"
              and rows[0].get("#MEMBERS") == "0", "state %r" % out.nonblank[:3])


@case("groups-delete", 9)
def groups_delete_case(ctx):
    t, g = "ops-gdelete-t", "ops-gdelete-g"
    create_topic(ctx, "create", t)
    recs = records(6, "gdelete")
    produce(ctx, "produce", t, recs)
    ends = {p: len(v) for p, v in by_partition(recs).items()}
    consume_group(ctx, "consume", t, g, 6)
    out = ctx.run("delete-offsets", "kafka-consumer-groups", "--delete-offsets", "--group", g, "--topic",
                  "%s:1" % t)
    ctx.check("delete-offsets", "Request succeeded for deleting offsets from group %s." % g in out.lines,
              "printed %r" % out.nonblank[:2])
    rows = table(out.lines, "TOPIC")
    ctx.check("delete-offsets", [(r["TOPIC"], r["PARTITION"], r["STATUS"]) for r in rows]
              == [(t, "1", "Successful")], "rows %r" % rows)
    check_committed(ctx, "describe", g, t, {0: ends[0]}, ends)
    out = ctx.run("delete-offsets-unknown", "kafka-consumer-groups", "--delete-offsets", "--group", g,
                  "--topic", "ops-gdelete-nosuch", rc=None)
    ctx.check("delete-offsets-unknown", any("UnknownTopicOrPartitionException" in l for l in out.lines),
              "printed %r" % out.nonblank[:4])
    out = ctx.run("delete", "kafka-consumer-groups", "--delete", "--group", g)
    ctx.check("delete", "Deletion of requested consumer groups ('%s') was successful." % g in out.lines,
              "printed %r" % out.nonblank[:2])
    out = ctx.run("list", "kafka-consumer-groups", "--list", view=views("^ops-gdelete-"))
    ctx.check("list", g not in out.lines, "%s still listed" % g)
    out = ctx.run("delete-again", "kafka-consumer-groups", "--delete", "--group", g, rc=None)
    ctx.check("delete-again", any("Group '%s' could not be deleted due to: org.apache.kafka.common.errors."
                                  "GroupIdNotFoundException" % g in l for l in out.lines),
              "printed %r" % out.nonblank[:3])
    out = ctx.run("describe-deleted", "kafka-consumer-groups", "--describe", "--group", g, rc=None)
    ctx.check("describe-deleted", any("GroupIdNotFoundException: Group %s not found." % g in l
                                      for l in out.lines), "printed %r" % out.nonblank[:3])


def reset(ctx, step, group, topic, mode_args, expected, ends, committed=None):
    """--reset-offsets with --dry-run, then --execute: both print NEW-OFFSET (`expected`, for
    the partitions reset); --describe then shows `committed` (default: `expected`)."""
    for how in ("dry-run", "execute"):
        out = ctx.run("%s-%s" % (step, how), "kafka-consumer-groups", "--reset-offsets", "--group", group,
                      *mode_args, "--" + how)
        check_reset_table(ctx, "%s-%s" % (step, how), out, group, topic, expected)
    check_committed(ctx, "%s-describe" % step, group, topic, committed or expected, ends)


@case("reset-offsets", 20)
def reset_offsets_case(ctx):
    t, g = "ops-reset-t", "ops-reset-g"
    create_topic(ctx, "create", t)
    recs = records(10, "reset")
    produce(ctx, "produce", t, recs)
    ends = {p: len(v) for p, v in by_partition(recs).items()}
    consume_group(ctx, "consume", t, g, 10)
    check_committed(ctx, "describe", g, t, ends, ends)
    reset(ctx, "to-earliest", g, t, ["--topic", t, "--to-earliest"], {0: 0, 1: 0}, ends)
    reset(ctx, "to-offset", g, t, ["--topic", t, "--to-offset", 3], {p: min(3, e) for p, e in ends.items()},
          ends)
    # Partition 0 only; past the end it stops at the end (the tool warns).
    reset(ctx, "shift-by", g, t, ["--topic", "%s:0" % t, "--shift-by", 2], {0: min(5, ends[0])}, ends,
          {0: min(5, ends[0]), 1: min(3, ends[1])})
    reset(ctx, "to-latest", g, t, ["--all-topics", "--to-latest"], ends, ends)
    reset(ctx, "shift-back", g, t, ["--topic", t, "--shift-by", -2], {p: e - 2 for p, e in ends.items()}, ends)
    path = os.path.join(ctx.workdir, "offsets.csv")
    with open(path, "w") as f:
        f.write("%s,0,1\n%s,1,2\n" % (t, t))
    reset(ctx, "from-file", g, t, ["--from-file", path], {0: 1, 1: 2}, ends)


@case("reset-by-time", 16)
def reset_by_time_case(ctx):
    """--to-datetime and --by-duration need records on both sides of a moment; then the same
    after kafka-delete-records moved the log start."""
    t, g = "ops-resettime-t", "ops-resettime-g"
    create_topic(ctx, "create", t, 1)
    first, second = records(5, "early", 1), records(5, "late", 1)
    produce(ctx, "produce-early", t, first)
    time.sleep(4.0)
    middle = int(time.time() * 1000)
    time.sleep(4.0)
    produce(ctx, "produce-late", t, second)
    consume_group(ctx, "consume", t, g, 10)
    ends = {0: 10}
    reset(ctx, "to-datetime", g, t, ["--topic", t, "--to-datetime", utc_iso(middle)], {0: 5}, ends)
    reset(ctx, "to-datetime-past", g, t, ["--topic", t, "--to-datetime", "2000-01-01T00:00:00.000"], {0: 0}, ends)
    # now - duration must land between the halves: a second before the middle, plus the
    # tool's start-up (well under the four seconds either side).
    duration = (time.time() * 1000 - middle) / 1000.0 + 1.0
    reset(ctx, "by-duration", g, t, ["--topic", t, "--by-duration", "PT%.3fS" % duration], {0: 5}, ends)
    path = os.path.join(ctx.workdir, "delete.json")
    with open(path, "w") as f:
        json.dump({"partitions": [{"topic": t, "partition": 0, "offset": 4}], "version": 1}, f)
    out = ctx.run("delete-records", "kafka-delete-records", "--offset-json-file", path)
    ctx.check("delete-records", "partition: %s-0\tlow_watermark: 4" % t in out.lines, "printed %r" % out.nonblank)
    # Kafka answers a timestamp before every record with the log start offset.
    reset(ctx, "to-datetime-after-delete", g, t, ["--topic", t, "--to-datetime", "2000-01-01T00:00:00.000"],
          {0: 4}, ends)
    reset(ctx, "to-earliest-after-delete", g, t, ["--topic", t, "--to-earliest"], {0: 4}, ends)


@case("offsets", 10)
def offsets_case(ctx):
    """kafka-get-offsets, kafka-delete-records and kafka-log-dirs on one topic."""
    t = "ops-offsets-t"
    create_topic(ctx, "create", t)
    recs = records(12, "offsets")
    produce(ctx, "produce", t, recs)
    ends = {p: len(v) for p, v in by_partition(recs).items()}
    # The records' timestamps, to know what the time lookups must answer.
    stamps = {}
    for p in sorted(ends):
        out = ctx.run("read-%d" % p, "kafka-console-consumer", "--topic", t, "--partition", p, "--offset", 0,
                      "--max-messages", ends[p], "--timeout-ms", 15000, *print_all(ctx.tools))
        stamps[p] = [c[0] for c in consumed(out)]
        ctx.require("read-%d" % p, len(stamps[p]) == ends[p], "read %d of %d records" % (len(stamps[p]), ends[p]))
    get_offsets(ctx, "latest", t, -1, ends)
    get_offsets(ctx, "earliest", t, -2, {0: 0, 1: 0})
    # Where the latest record is depends on the run's timestamps: the assertion checks it.
    out = get_offsets(ctx, "max-timestamp", t, -3, {p: s.index(max(s)) for p, s in stamps.items()})
    ctx.steps[-1].view = offsets_masked
    # The first record at or after the third record's time, in each partition.
    target = stamps[0][2]
    at = {p: next((i for i, ts in enumerate(s) if ts >= target), None) for p, s in stamps.items()}
    out = ctx.run("by-timestamp", "kafka-get-offsets", "--topic", t, "--time", target, view=lambda c, o: [])
    want = sorted("%s:%d:%d" % (t, p, o) for p, o in at.items() if o is not None)
    ctx.check("by-timestamp", sorted(l for l in out.nonblank if l.split(":")[-1] != "") == want
              or sorted(out.nonblank) == want, "printed %r, expected %r" % (out.nonblank, want))

    path = os.path.join(ctx.workdir, "delete.json")
    with open(path, "w") as f:
        json.dump({"partitions": [{"topic": t, "partition": 0, "offset": 4}], "version": 1}, f)
    out = ctx.run("delete-records", "kafka-delete-records", "--offset-json-file", path)
    ctx.check("delete-records", out.nonblank == ["Executing records delete operation",
                                                 "Records delete operation completed:",
                                                 "partition: %s-0\tlow_watermark: 4" % t],
              "printed %r" % out.nonblank)
    get_offsets(ctx, "earliest-after-delete", t, -2, {0: 4, 1: 0})
    get_offsets(ctx, "latest-after-delete", t, -1, ends)
    get_offsets(ctx, "timestamp-0-after-delete", t, 0, {0: 4, 1: 0})

    def log_dirs_view(c, o):
        # Sizes depend on timestamps and batching; the rest is compared.
        return [re.sub(r'"size":\d+', '"size":N', l) for l in default_view(c, o)]
    out = ctx.run("log-dirs", "kafka-log-dirs", "--describe", "--topic-list", t, view=log_dirs_view)
    ctx.check("log-dirs", out.nonblank[:2] == ["Querying brokers for log directories information",
                                               "Received log directory information from brokers 1"],
              "printed %r" % out.nonblank[:2])
    doc = None
    try:
        doc = json.loads(out.nonblank[-1])
    except (ValueError, IndexError):
        ctx.fail("log-dirs", "no JSON: %r" % out.nonblank[-1:])
    if doc is not None:
        brokers = doc.get("brokers", [])
        ctx.check("log-dirs", doc.get("version") == 1 and [b.get("broker") for b in brokers] == [1],
                  "brokers %r" % [b.get("broker") for b in brokers])
        dirs = [d for b in brokers for d in b.get("logDirs", [])]
        ctx.check("log-dirs", len(dirs) == 1 and dirs[0].get("error") is None
                  and dirs[0].get("logDir") == ctx.broker.data_dir, "log dirs %r" % dirs)
        parts = {p.get("partition"): p for d in dirs for p in d.get("partitions", [])}
        ctx.check("log-dirs", sorted(parts) == ["%s-0" % t, "%s-1" % t], "partitions %r" % sorted(parts))
        for name, p in parts.items():
            ctx.check("log-dirs", isinstance(p.get("size"), int) and p["size"] > 0 and p.get("offsetLag") == 0
                      and p.get("isFuture") is False, "partition %r" % p)


API_LINE = re.compile(r"^\t(\w+)\((\d+)\): (UNSUPPORTED|(\d+)( to (\d+))? \[usable: (\d+)\])(,)?$")


def api_versions(out):
    """{name(key): (min, max)} for each API served, None for UNSUPPORTED."""
    got = {}
    for l in out.lines[1:]:
        m = API_LINE.match(l)
        if m:
            name = "%s(%s)" % (m.group(1), m.group(2))
            got[name] = None if m.group(3) == "UNSUPPORTED" else (int(m.group(4)), int(m.group(6) or m.group(4)))
    return got


def compare_api_versions(case, kafka, klamm):
    a, b = api_versions(kafka.out), api_versions(klamm.out)
    diffs = []
    for name in sorted(set(a) | set(b), key=lambda n: int(n.split("(")[1][:-1])):
        ra, rb = a.get(name), b.get(name)
        if ra == rb:
            continue
        if rb is None and ra is not None:
            diffs.append("Kafka serves %s %d to %d, Klamm does not" % ((name,) + ra))
        elif ra is None:
            diffs.append("Klamm serves %s %s, Kafka does not" % (name, rb))
        elif ra[0] == rb[0] and ra[1] > rb[1]:
            diffs.append("%s: Kafka serves up to v%d, Klamm up to v%d" % (name, ra[1], rb[1]))
        else:
            diffs.append("%s: Kafka serves %d to %d, Klamm %d to %d" % ((name,) + ra + rb))
    return diffs


@case("api-versions", 1)
def api_versions_case(ctx):
    out = ctx.run("api-versions", "kafka-broker-api-versions", compare=compare_api_versions)
    ctx.check("api-versions", out.nonblank[:1] == ["127.0.0.1:%d (id: 1 rack: null isFenced: false) -> ("
                                                   % ctx.broker.port], "first line %r" % out.nonblank[:1])
    body = out.nonblank[1:]
    ctx.check("api-versions", body[-1:] == [")"], "last line %r" % body[-1:])
    bad = [l for l in body[:-1] if not API_LINE.match(l)]
    ctx.check("api-versions", not bad, "malformed lines %r" % bad[:3])
    served = {k: v for k, v in api_versions(out).items() if v}
    for api in ("Produce(0)", "Fetch(1)", "ListOffsets(2)", "Metadata(3)", "ApiVersions(18)"):
        ctx.check("api-versions", api in served, "%s not served" % api)
    ctx.check("api-versions", all("usable: %d" % v[1] in l for l in body for k, v in served.items()
                                  if l.startswith("\t%s: " % k)), "a usable version is not the broker's highest")


CODECS = [("none", "acks=all"), ("gzip", "acks=1"), ("snappy", "acks=0"), ("lz4", "acks=all"), ("zstd", "acks=1")]


def console_case(codec, acks):
    def run_case(ctx):
        t = "ops-console-%s" % codec
        recs = records(8, codec)
        # acks=0 has no answer to wait for: the topic must exist first, or the first records go
        # before it does. The others auto-create it.
        if acks == "acks=0":
            create_topic(ctx, "create", t)
        produce(ctx, "produce", t, recs, acks, "compression.type=" + codec, "linger.ms=50")
        parts = by_partition(recs)
        for p in sorted(parts):
            out = ctx.run("read-%d" % p, "kafka-console-consumer", "--topic", t, "--partition", p, "--offset", 0,
                          "--max-messages", len(parts[p]), "--timeout-ms", 15000, *print_all(ctx.tools))
            check_consumed(ctx, "read-%d" % p, out, [(p,) + r for r in parts[p]])
        if codec == "zstd":
            # The consumer's other ways in, on the last codec's records.
            g = "ops-console-g"
            out = consume_group(ctx, "read-group", t, g, len(recs))
            got = sorted(c[1:] for c in consumed(out))
            ctx.check("read-group", got == sorted((p,) + r for p in parts for r in parts[p]),
                      "read %r" % got[:2])
            check_committed(ctx, "group-committed", g, t, {p: len(v) for p, v in parts.items()})
            for level in ("read_committed", "read_uncommitted"):
                out = ctx.run("read-" + level, "kafka-console-consumer", "--topic", t, "--partition", 0,
                              "--offset", 0, "--max-messages", len(parts[0]), "--timeout-ms", 15000,
                              "--isolation-level", level, *print_all(ctx.tools))
                check_consumed(ctx, "read-" + level, out, [(0,) + r for r in parts[0]])
            out = ctx.run("read-latest", "kafka-console-consumer", "--topic", t, "--partition", 1, "--offset",
                          "latest", "--timeout-ms", 3000, *print_all(ctx.tools), rc=None)
            ctx.check("read-latest", consumed(out) == [], "read %r" % consumed(out)[:1])
    return run_case


for _codec, _acks in CODECS:
    case("console-%s-%s" % (_codec, _acks.replace("=", "")), 8 if _codec == "zstd" else 3)(
        console_case(_codec, _acks))


def events(out):
    got = []
    for l in out.lines:
        try:
            got.append(json.loads(l))
        except ValueError:
            pass
    return got


def event_names_view(ctx, out):
    """Which events the tool reported (how many records_consumed events there are depends on
    fetch sizes)."""
    return sorted({e.get("name", "?") for e in events(out)})


@case("verifiable", 4)
def verifiable_case(ctx):
    t, g, n = "ops-verifiable-t", "ops-verifiable-g", 500
    create_topic(ctx, "create", t)
    out = ctx.run("producer", "kafka-verifiable-producer", "--topic", t, "--max-messages", n, "--acks", -1,
                  view=event_names_view)
    ev = events(out)
    acked = [e for e in ev if e.get("name") == "producer_send_success"]
    ctx.check("producer", sorted(int(e["value"]) for e in acked) == list(range(n)),
              "%d acked sends, expected values 0..%d" % (len(acked), n - 1))
    data = [e for e in ev if e.get("name") == "tool_data"]
    ctx.check("producer", len(data) == 1 and data[0].get("sent") == n and data[0].get("acked") == n,
              "tool_data %r" % data)
    ends = {}
    for e in acked:
        ends[e["partition"]] = max(ends.get(e["partition"], 0), e["offset"] + 1)
    per = {}
    for e in acked:
        per.setdefault(e["partition"], set()).add(e["offset"])
    ctx.check("producer", all(per[p] == set(range(ends[p])) for p in per), "acked offsets have gaps")

    out = ctx.run("consumer", "kafka-verifiable-consumer", "--topic", t, "--group-id", g, "--max-messages", n,
                  "--reset-policy", "earliest", timeout=90, view=event_names_view)
    ev = events(out)
    consumed_n = sum(e.get("count", 0) for e in ev if e.get("name") == "records_consumed")
    ctx.check("consumer", consumed_n == n, "consumed %d records, expected %d" % (consumed_n, n))
    ranges = {}
    for e in ev:
        if e.get("name") == "records_consumed":
            for p in e.get("partitions", []):
                lo, hi = ranges.get(p["partition"], (None, -1))
                ranges[p["partition"]] = (p["minOffset"] if lo is None else min(lo, p["minOffset"]),
                                          max(hi, p["maxOffset"]))
    ctx.check("consumer", {p: (lo, hi + 1) for p, (lo, hi) in ranges.items()} == {p: (0, e) for p, e in ends.items()},
              "consumed offset ranges %r, acked ends %r" % (ranges, ends))
    commits = [e for e in ev if e.get("name") == "offsets_committed"]
    ctx.check("consumer", commits and all(c.get("success") for c in commits), "commits %r" % commits[:2])
    last = {}
    for c in commits:
        for o in c.get("offsets", []):
            last[o["partition"]] = max(last.get(o["partition"], 0), o["offset"])
    ctx.check("consumer", last == ends, "committed %r, expected %r" % (last, ends))
    # Keyless records: which partition took them differs from run to run.
    out = check_committed(ctx, "describe", g, t, ends, ends)
    ctx.steps[-1].view = shape_view


@case("perf", 3)
def perf_case(ctx):
    t, n = "ops-perf-t", 20000
    out = ctx.run("producer-perf", "kafka-producer-perf-test", "--topic", t, "--num-records", n,
                  "--record-size", 100, "--throughput", -1, view=perf_view, timeout=120)
    ctx.check("producer-perf", any(l.startswith("%d records sent, " % n) for l in out.lines),
              "printed %r" % out.nonblank[-1:])
    out = ctx.run("consumer-perf", "kafka-consumer-perf-test", "--topic", t, "--num-records", n, "--timeout", 30000,
                  view=shape_view, timeout=120)
    header = [i for i, l in enumerate(out.lines) if l.startswith("start.time, end.time")]
    ok = ctx.check("consumer-perf", len(header) == 1 and header[0] + 1 < len(out.lines),
                   "printed %r" % out.nonblank[-2:])
    if ok:
        names = [c.strip() for c in out.lines[header[0]].split(",")]
        values = [c.strip() for c in out.lines[header[0] + 1].split(",")]
        row = dict(zip(names, values))
        ctx.check("consumer-perf", row.get("data.consumed.in.nMsg") == str(n),
                  "data.consumed.in.nMsg %s, expected %d" % (row.get("data.consumed.in.nMsg"), n))
    # Keyless records: how they spread over the partitions differs from run to run.
    out = ctx.run("latest", "kafka-get-offsets", "--topic", t, "--time", -1, view=offsets_masked)
    total = sum(int(l.rsplit(":", 1)[1]) for l in out.nonblank if re.match(r"^%s:\d+:\d+$" % t, l))
    ctx.check("latest", total == n, "the partitions hold %d records, expected %d" % (total, n))


@case("e2e-latency", 1)
def e2e_case(ctx):
    t, n = "ops-e2e-t", 300
    out = ctx.run("e2e-latency", "kafka-e2e-latency", "--topic", t, "--num-records", n, "--producer-acks", 1,
                  "--record-size", 100, view=shape_view, timeout=120)
    ctx.check("e2e-latency", any(re.match(r"^Avg latency: \d+\.\d+ ms$", l) for l in out.lines),
              "no 'Avg latency': %r" % out.nonblank[-3:])
    ctx.check("e2e-latency", any(re.match(r"^Percentiles: 50th = \d+, 99th = \d+, 99\.9th = \d+$", l)
                                 for l in out.lines), "no percentiles: %r" % out.nonblank[-3:])


# ------------------------------------------------------------------------------------------------
# Running it all

def run_case(name, fn, side, broker, tools, workdir):
    ctx = Ctx(name, side, broker, tools, os.path.join(workdir, side, name))
    t0 = time.monotonic()
    try:
        fn(ctx)
    except CaseFailed:
        pass
    except Exception:  # a bug in the case itself: report it, keep going
        ctx.fail("case", "raised %s" % traceback.format_exc().strip().splitlines()[-1])
        with open(os.path.join(ctx.workdir, "traceback.txt"), "w") as f:
            f.write(traceback.format_exc())
    finally:
        ctx.close()
    ctx.seconds = time.monotonic() - t0
    for s in ctx.steps:
        s.ctx = ctx
    return ctx


def compare(name, kafka, klamm):
    """Klamm's differences from Kafka in one case: (unexpected, kept as [(diff, reason)])."""
    unexpected, kept = [], []
    ka = {s.name: s for s in kafka.steps}
    for s in klamm.steps:
        other = ka.get(s.name)
        if other is None:
            continue
        for d in s.compare(name, other, s):
            reason = None
            for i, (case_re, diff_re, why) in enumerate(k[:3] for k in KEPT):
                if re.search(case_re, name) and re.search(diff_re, d):
                    reason = why
                    KEPT_USED.add(i)
                    break
            (kept.append((d, reason)) if reason else unexpected.append(d))
    kl = {s.name for s in klamm.steps}
    for s in kafka.steps:
        if s.name not in kl:
            unexpected.append("%s: run against Kafka but not against Klamm" % s.name)
    return unexpected, kept


KEPT_USED = set()

# Cases that need a broker feature Klamm does not have yet: run against Kafka (where they must
# pass), reported SKIPPED for Klamm with the feature named.
PENDING = {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--jobs", type=int, default=6, help="commands running at once (default 6)")
    ap.add_argument("--keep-data", action="store_true", help="keep the work directory even when all passed")
    ap.add_argument("--show", action="store_true", help="print every difference and kept difference")
    args = ap.parse_args()
    started = time.monotonic()
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")

    cases = [c for c in CASES if not args.cases or c[0] in args.cases.split(",")]
    unknown = set(args.cases.split(",")) - {c[0] for c in CASES} if args.cases else set()
    if unknown:
        ap.error("unknown cases: %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(c[0] for c in CASES)))

    home = default_kafka_home()
    missing = unavailable_reason(home)
    if missing is None and jar_version(home) < MIN_KAFKA:
        missing = ("the cases are written for the Kafka %d.x tools (their options and output); "
                   "KAFKA_HOME=%s is %d.%d" % ((MIN_KAFKA[0], home) + jar_version(home)))
    binary = os.environ.get("KLAMM_BIN", os.path.join(ROOT, "target", "release", "klamm"))
    results = {}  # (case, side) -> (status, reason)
    notes = []
    if missing is None and not os.path.isfile(binary):
        missing = "no Klamm binary at %s (cargo build --release)" % binary
    if missing:
        status = "FAILED" if ci else "SKIPPED"
        for name, _, _, _ in cases:
            for side in ("klamm", "kafka"):
                results[(name, side)] = (status, missing)
        return report(cases, results, notes, started, None, args)

    tools = Tools(home)
    workdir = tempfile.mkdtemp(prefix="klamm-cli-ops-")
    print("Kafka %d.%d tools from %s; work directory %s" % (tools.version + (home, workdir)), flush=True)
    brokers = {"klamm": Broker(binary, os.path.join(workdir, "klamm-broker"), OVERRIDES)}
    brokers["kafka"] = KafkaBroker(home, os.path.join(workdir, "kafka-broker"), OVERRIDES, features=KAFKA_FEATURES)
    failed_start = {}

    def start(side):
        try:
            brokers[side].start()
        except (BrokerError, OSError, subprocess.SubprocessError) as e:
            failed_start[side] = str(e).splitlines()[0]
    threads = [threading.Thread(target=start, args=(s,)) for s in brokers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print("brokers: %s" % ", ".join("%s %s" % (s, "failed to start" if s in failed_start else b.bootstrap)
                                    for s, b in brokers.items()), flush=True)

    # Chains of cases: a case named by another's `after` runs after it, in the same task.
    selected = {c[0] for c in cases}
    chains = []
    for name, weight, fn, after in cases:
        if after in selected:
            continue
        chain = [(name, fn)]
        weight_sum = weight
        for n2, w2, f2, a2 in cases:
            if a2 == name:
                chain.append((n2, f2))
                weight_sum += w2
        chains.append((weight_sum, chain))
    chains.sort(key=lambda c: -c[0])

    def run_chain(chain, side):
        return [run_case(name, fn, side, brokers[side], tools, workdir) for name, fn in chain]

    ctxs = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {}
            for _, chain in chains:
                for side in ("klamm", "kafka"):
                    if side not in failed_start:
                        futures[pool.submit(run_chain, chain, side)] = side
            for f in concurrent.futures.as_completed(futures):
                side = futures[f]
                for c in f.result():
                    ctxs[(c.case, side)] = c
                    print("  %-28s %-6s %s (%.0fs)" % (c.case, side, "ok" if not c.failures else "FAILED",
                                                       c.seconds), flush=True)
    finally:
        for side, b in brokers.items():
            try:
                b.stop()
            except BrokerError as e:
                notes.append("%s broker: %s" % (side, e))

    for name, _, _, _ in cases:
        for side in ("klamm", "kafka"):
            if side in failed_start:
                results[(name, side)] = ("FAILED", "broker did not start: " + failed_start[side])
                continue
            if side == "klamm" and name in PENDING:
                results[(name, side)] = ("SKIPPED", "pending: " + PENDING[name])
                continue
            c = ctxs[(name, side)]
            problems = list(c.failures)
            if side == "klamm" and (name, "kafka") in ctxs:
                unexpected, kept = compare(name, ctxs[(name, "kafka")], c)
                problems += ["differs from Kafka: " + d for d in unexpected]
                if args.show:
                    notes += ["%s: kept difference: %s (%s)" % (name, d, why) for d, why in kept]
            elif side == "klamm":
                problems.append("not compared: Kafka did not run")
            if problems:
                results[(name, side)] = ("FAILED", problems[0])
                notes.append("%s on %s:\n%s" % (name, side, "\n".join("    " + p for p in problems)))
            else:
                results[(name, side)] = ("passed", "")
    unused = [k[:3] for i, k in enumerate(KEPT) if i not in KEPT_USED and SOMETIMES not in k[3:]]
    if unused and not args.cases:
        notes += ["kept difference seen nowhere this run (remove it when it is gone for good): %s / %s"
                  % (c, d) for c, d, _ in unused]
    all_passed = all(s != "FAILED" for s, _ in results.values())
    if all_passed and not args.keep_data:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir = None
    return report(cases, results, notes, started, workdir, args)


def report(cases, results, notes, started, workdir, args):
    width = max([len(c[0]) for c in cases] + [4])
    print()
    print("%-*s  %-40s  %s" % (width, "case", "klamm", "kafka"))
    print("%s  %s  %s" % ("-" * width, "-" * 40, "-" * 40))

    def cell(r):
        status, reason = r
        return status if not reason else "%s (%s)" % (status, reason[:120])
    for name, _, _, _ in cases:
        a, b = cell(results[(name, "klamm")]), cell(results[(name, "kafka")])
        print("%-*s  %-40s  %s" % (width, name, a, b))
    if notes:
        print()
        for i, n in enumerate(notes, 1):
            print("%d. %s" % (i, n))
    counts = {s: sum(1 for v in results.values() if v[0] == s) for s in ("passed", "FAILED", "SKIPPED")}
    if workdir:
        print("\ncommands and their output: %s/{klamm,kafka}/<case>/commands.log" % workdir)
    print("\ntook %.0fs" % (time.monotonic() - started))
    print("%d passed, %d failed, %d skipped" % (counts["passed"], counts["FAILED"], counts["SKIPPED"]))
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
