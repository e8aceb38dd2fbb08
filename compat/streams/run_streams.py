#!/usr/bin/env python3
"""A Kafka Streams application against a real broker: compat/streams/WordCount.java
(word count through a repartition topic into a changelog-backed count store),
with Kafka's own jars from KAFKA_HOME.

    compat/.venv/bin/python compat/streams/run_streams.py [--broker klamm|kafka] [--keep-data]

The broker (target/release/klamm, or KLAMM_BIN; with --broker kafka, Apache
Kafka from KAFKA_HOME) runs on a free port with a temporary data directory.
Known lines of text go to the input topic through confluent-kafka, and the
application runs until the output topic's last count per word (its compacted
view) is exactly the expected one. Streams must have created its internal
topics with its own configs, and purged consumed repartition records. The
application is closed, the broker is stopped with SIGTERM and started again on
the same port and data directory, more lines are produced, and a new process
of the same application, with an empty state directory (so it rebuilds its
counts from the changelog), must carry the counts on exactly: at_least_once
allows duplicates only after a crash, and nothing crashed. Neither run may log
a WARN or ERROR about the broker (see drivers/jvm.py).

Ends with the line `N passed, N failed`; exits non-zero if anything failed.
Without KAFKA_HOME, java or javac the test is skipped, unless CI=true, where
that is a failure.
"""

import argparse
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.dirname(HERE)
ROOT = os.path.dirname(COMPAT)
sys.path.insert(0, COMPAT)
sys.path.insert(0, os.path.join(COMPAT, "drivers"))

import jvm  # noqa: E402
from harness.broker import Broker, BrokerError, KafkaBroker  # noqa: E402

SOURCE = os.path.join(HERE, "WordCount.java")
MAIN = "WordCount"
APP_ID = "wordcount"
INPUT, OUTPUT = "text-input", "word-counts"
PARTITIONS = 2
REPARTITION = APP_ID + "-words-repartition"
CHANGELOG = APP_ID + "-counts-changelog"
# Both brokers take Kafka's names: no delay before a new group's first rebalance.
BROKER_OVERRIDES = ["group.initial.rebalance.delay.ms=0"]
# How long the application may take to bring the output to the expected counts
# (a new member may first wait out the previous one's 6 s session).
COUNT_TIMEOUT = 45.0
# The checking clients (confluent-kafka) print errors only: their warnings about
# leaders moving while the broker restarts are expected here.
LIBRDKAFKA_LOG_LEVEL = 3

WORDS = ("kafka stream broker topic record offset partition log segment index leader replica "
         "group member commit fetch produce consume batch header key value count word the a of").split()
NEW_WORDS = "restart resume changelog".split()
SEPARATORS = [" ", "  ", ", ", " - ", "; ", ". ", "! ", "\t"]


def text(seed, lines, extra=()):
    """Deterministic lines of words in mixed case with punctuation."""
    rnd = random.Random(seed)
    vocabulary = list(WORDS) + list(extra)
    out = []
    for _ in range(lines):
        words = [rnd.choice(vocabulary) for _ in range(rnd.randint(1, 10))]
        words = [w.upper() if rnd.random() < 0.1 else w.capitalize() if rnd.random() < 0.2 else w
                 for w in words]
        line = words[0]
        for w in words[1:]:
            line += rnd.choice(SEPARATORS) + w
        out.append(line + rnd.choice(["", ".", "?", " "]))
    return out


def count_words(lines, into=None):
    """What WordCount counts: lowercase runs of [A-Za-z0-9_] (Java's \\W+ split)."""
    counts = dict(into or {})
    for line in lines:
        for w in re.findall(r"[a-z0-9_]+", line.lower()):
            counts[w] = counts.get(w, 0) + 1
    return counts


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.started = time.monotonic()

    def check(self, name, ok, detail=""):
        stamp = "%5.1fs" % (time.monotonic() - self.started)
        if ok:
            self.passed += 1
            print("%s  passed  %s%s" % (stamp, name, (": " + detail) if detail else ""), flush=True)
        else:
            self.failed += 1
            print("%s  FAILED  %s%s" % (stamp, name, (":\n    " + detail.replace("\n", "\n    ")) if detail else ""),
                  flush=True)
        return ok


class App:
    """One WordCount process."""

    def __init__(self, classes, bootstrap, state_dir, log_path):
        self.log_path = log_path
        self.lines = []
        self.cond = threading.Condition()
        self.stderr = open(log_path, "w")
        self.proc = subprocess.Popen(
            jvm.command(classes, MAIN, [bootstrap, APP_ID, INPUT, OUTPUT, state_dir]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.cond.notify_all()

    def failure(self):
        """The program's own FAIL line, if it printed one."""
        with self.cond:
            return next((l for l in self.lines if l.startswith("FAIL: ")), None)

    def stop(self, timeout=40.0):
        """Ask the application to close; returns (exit code, problem or None)."""
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, "did not exit within %.0f s of being asked to stop" % timeout
        self.reader.join(timeout=5)
        self.stderr.close()
        with self.cond:
            closed = "CLOSED" in self.lines
        if code != 0 or not closed:
            return code, self.failure() or ("exited %d%s" % (code, "" if closed else " without closing"))
        return code, None

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    def complaints(self):
        with open(self.log_path, errors="replace") as f:
            return jvm.broker_complaints(f.read())

    def log_tail(self, lines=8):
        with open(self.log_path, errors="replace") as f:
            tail = [l.rstrip() for l in f.readlines() if l.strip()][-lines:]
        return "\n".join("| " + l for l in tail)


class Output:
    """The output topic read from the start, as a compacted view: the last count per word."""

    def __init__(self, bootstrap):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        # librdkafka wants a group.id even for assign(); nothing is committed.
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wordcount-check",
                                  "enable.auto.commit": False, "enable.partition.eof": False,
                                  "log_level": LIBRDKAFKA_LOG_LEVEL})
        self.consumer.assign([TopicPartition(OUTPUT, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.counts = {}
        self.errors = []

    def poll(self, seconds):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            msg = self.consumer.poll(max(0.0, min(0.2, until - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                self.errors.append(str(msg.error()))
                continue
            key = msg.key().decode("utf-8", errors="replace")
            value = msg.value()
            if value is None or len(value) != 8:
                self.errors.append("word %r: value %r is not an 8-byte count" % (key, value))
                continue
            self.counts[key] = struct.unpack(">q", value)[0]

    def close(self):
        self.consumer.close()


def difference(got, want, limit=6):
    diffs = ["%s: %s, expected %s" % (w, got.get(w), want.get(w))
             for w in sorted(set(got) | set(want)) if got.get(w) != want.get(w)]
    more = len(diffs) - limit
    return "; ".join(diffs[:limit]) + ("; ... %d more" % more if more > 0 else "")


def wait_for_counts(res, name, app, output, want):
    """Poll the output until it shows exactly `want`. A count above the
    expected one is a duplicate and fails at once."""
    until = time.monotonic() + COUNT_TIMEOUT
    start = time.monotonic()
    while time.monotonic() < until:
        output.poll(0.5)
        over = {w: c for w, c in output.counts.items() if c > want.get(w, 0)}
        if over:
            return res.check(name, False, "counts above the expected ones (duplicates): "
                             + difference({w: output.counts[w] for w in over}, want))
        if output.counts == want:
            return res.check(name, True, "%d words, %d in all, after %.1f s"
                             % (len(want), sum(want.values()), time.monotonic() - start))
        if app.proc.poll() is not None or app.failure():
            break
    detail = difference(output.counts, want)
    if output.errors:
        detail += "\nconsumer errors: " + "; ".join(output.errors[:3])
    if app.failure() or app.proc.poll() is not None:
        detail += "\napplication: %s (exit %s)\n%s" % (app.failure(), app.proc.poll(), app.log_tail())
    return res.check(name, False, "not the expected counts after %.0f s: %s" % (COUNT_TIMEOUT, detail))


def produce(bootstrap, lines):
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": LIBRDKAFKA_LOG_LEVEL})
    for line in lines:
        p.produce(INPUT, value=line.encode(), on_delivery=lambda err, msg: err and errors.append(str(err)))
    left = p.flush(30)
    if left or errors:
        raise RuntimeError("producing input failed: %d unsent, errors: %s" % (left, errors[:3]))


def create_topics(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": LIBRDKAFKA_LOG_LEVEL})
    futures = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (INPUT, OUTPUT)], operation_timeout=10)
    for f in futures.values():
        f.result(timeout=15)


def check_internal_topics(res, bootstrap):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": LIBRDKAFKA_LOG_LEVEL})
    topics = admin.list_topics(timeout=10).topics
    internal = sorted(t for t in topics if t.startswith(APP_ID + "-"))
    ok = res.check("internal topics created by Streams", set(internal) >= {REPARTITION, CHANGELOG},
                   "found %s" % ", ".join(internal) if internal else "none found")
    if not ok:
        return
    partitions = {t: len(topics[t].partitions) for t in (REPARTITION, CHANGELOG)}
    res.check("internal topics have the input's %d partitions" % PARTITIONS,
              all(n == PARTITIONS for n in partitions.values()), str(partitions))
    # What Streams sets on each (InternalTopicManager): compaction for the changelog;
    # deletion with infinite retention (it purges them itself) for the repartition topic.
    want = {CHANGELOG: {"cleanup.policy": "compact"},
            REPARTITION: {"cleanup.policy": "delete", "retention.ms": "-1"}}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in want])
    for resource, f in futures.items():
        entries = f.result(timeout=15)
        for name, value in want[resource.name].items():
            e = entries.get(name)
            got = None if e is None else (e.value, ConfigSource(e.source).name)
            res.check("%s %s=%s as a topic override" % (resource.name, name, value),
                      got == (value, "DYNAMIC_TOPIC_CONFIG"), "got %s" % (got,))


def check_purged(res, bootstrap, timeout=10.0):
    """Streams deletes repartition records it has committed (DeleteRecords): the
    log start offset of each partition that took records moves past 0."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wordcount-check", "log_level": LIBRDKAFKA_LOG_LEVEL})
    try:
        until = time.monotonic() + timeout
        while True:
            marks = [c.get_watermark_offsets(TopicPartition(REPARTITION, p), timeout=5) for p in range(PARTITIONS)]
            used = [(lo, hi) for lo, hi in marks if hi > 0]
            if used and all(lo > 0 for lo, _ in used):
                return res.check("consumed repartition records purged", True,
                                 "log start/end offsets %s" % marks)
            if time.monotonic() > until:
                return res.check("consumed repartition records purged", False,
                                 "log start/end offsets still %s after %.0f s" % (marks, timeout))
            time.sleep(0.3)
    finally:
        c.close()


def stop_app(res, name, app):
    code, problem = app.stop()
    res.check("%s closed cleanly" % name, problem is None, (problem or "") + ("\n" + app.log_tail() if problem else ""))
    complaints = app.complaints()
    res.check("%s logged no WARN/ERROR" % name, not complaints, "\n".join(complaints))


def prerequisites():
    """Why the test cannot run here, or None."""
    home = os.environ.get("KAFKA_HOME")
    if not home:
        return "KAFKA_HOME is not set (an unpacked Apache Kafka distribution, 3.4 or newer; see compat/README.md)"
    if not os.path.isdir(os.path.join(home, "libs")) or not any(
            n.startswith("kafka-streams-") for n in os.listdir(os.path.join(home, "libs"))):
        return "KAFKA_HOME=%s has no libs/kafka-streams-*.jar" % home
    for tool in ("java", "javac"):
        if not shutil.which(tool):
            return "%s not found (apt-get install -y openjdk-17-jdk-headless)" % tool
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return "confluent-kafka is not installed (run compat/setup.sh and use compat/.venv/bin/python)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=["klamm", "kafka"], default="klamm",
                    help="run against klamm (default) or against Apache Kafka from KAFKA_HOME, the reference")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp dir even if all passed")
    args = ap.parse_args()

    res = Results()
    missing = prerequisites()
    if missing:
        if os.environ.get("CI") == "true":
            res.check("prerequisites", False, missing)
        else:
            print("SKIPPED: " + missing)
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1 if res.failed else 0

    workdir = tempfile.mkdtemp(prefix="compat-streams-")
    home = os.environ["KAFKA_HOME"]
    os.environ["COMPAT_BROKER"] = args.broker  # which client log lines are expected
    if args.broker == "kafka":
        broker = KafkaBroker(home, workdir, BROKER_OVERRIDES)
        what = "Apache Kafka from " + home
    else:
        binary = os.environ.get("KLAMM_BIN", os.path.join(ROOT, "target", "release", "klamm"))
        if not os.access(binary, os.X_OK):
            res.check("klamm binary", False, "%s not found or not executable (build it or set KLAMM_BIN)" % binary)
            print("%d passed, %d failed" % (res.passed, res.failed))
            return 1
        broker = Broker(binary, workdir, BROKER_OVERRIDES)
        what = binary
    apps = []
    output = None
    try:
        classes = jvm.compiled(SOURCE, MAIN, timeout=180)
        version = subprocess.run(jvm.command(classes, MAIN, ["version"]), capture_output=True,
                                 text=True, timeout=60).stdout.strip()
        broker.start()
        print("Kafka Streams %s against %s on %s, data in %s" % (version, what, broker.bootstrap, workdir),
              flush=True)
        bootstrap = broker.bootstrap
        create_topics(bootstrap)

        first, second = text(1, 150), text(2, 100, NEW_WORDS)
        want1 = count_words(first)
        want2 = count_words(second, into=want1)

        produce(bootstrap, first)
        app = App(classes, bootstrap, os.path.join(workdir, "state-1"), os.path.join(workdir, "app-1.log"))
        apps.append(app)
        output = Output(bootstrap)
        if wait_for_counts(res, "first run: counts", app, output, want1):
            check_internal_topics(res, bootstrap)
            check_purged(res, bootstrap)
        stop_app(res, "first run", app)
        output.close()
        output = None

        code = broker.stop(signal.SIGTERM)
        res.check("broker exits 0 on SIGTERM", code == 0,
                  "" if code == 0 else "exit code %s\n%s" % (code, broker.log_tail()))
        broker.start()
        res.check("broker restarted on the same port", broker.bootstrap == bootstrap, broker.bootstrap)

        produce(bootstrap, second)
        # A new process with an empty state directory: its counts come back from the changelog.
        app = App(classes, bootstrap, os.path.join(workdir, "state-2"), os.path.join(workdir, "app-2.log"))
        apps.append(app)
        output = Output(bootstrap)
        wait_for_counts(res, "after the broker restart: counts carried on", app, output, want2)
        stop_app(res, "second run", app)
    except Exception as e:  # broker, JVM or client (confluent_kafka.KafkaException) trouble
        res.check("test ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if output is not None:
            output.close()
        for app in apps:
            app.kill()
        try:
            broker.stop()
        except BrokerError as e:
            print("warning at shutdown: %s" % e)

    print("took %.1f s" % (time.monotonic() - res.started))
    if res.failed or args.keep_data:
        print("broker log, application logs and data kept in %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
