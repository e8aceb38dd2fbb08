#!/usr/bin/env python3
"""Build librdkafka's regression suite and run it against a klamm broker (or, with
--broker kafka, against Apache Kafka itself, to tell a test's own timing from a klamm bug).

Invoked through run.sh; see README.md for usage and the list formats.
Python standard library only.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import queue

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
# compat/harness/broker.py runs Apache Kafka as a single KRaft node (--broker kafka).
sys.path.insert(0, os.path.join(REPO, "compat"))
ALLOWLIST = os.path.join(HERE, "allowlist.txt")
EXCLUDED = os.path.join(HERE, "excluded.txt")

# Only what the suite needs against a PLAINTEXT broker. Bundled lz4 avoids a
# liblz4-dev dependency; zstd and zlib come from Debian -dev packages.
CONFIGURE_ARGS = [
    "--disable-ssl",
    "--disable-gssapi",
    "--disable-curl",
    "--disable-lz4-ext",
    "--enable-zstd",
    "--enable-zlib",
]

# Broker version the suite is told it talks to. Tests use it to pick code
# paths (e.g. >= 4.0 stops exercising the pre-0.11 message formats).
DEFAULT_KAFKA_VERSION = "4.0.0"

# Categories in excluded.txt that --all-candidates tries: "pending" waits for
# a klamm feature, "flaky" fails on timing alone. The rest can never run here.
CANDIDATE_CATEGORIES = ("pending", "flaky")

# Mirrors the suite's own scenario definitions (tests/scenarios/*.json):
# four partitions per auto-created topic; replication is moot on one broker.
# The group tests count on Kafka's default initial rebalance delay (3 s): consumers that
# subscribe together must land in one generation (0102, 0113 wait for it), so it is set
# here rather than left to either broker's defaults.
# 0052_msg_timestamps stamps its records in January 1970 (it adds milliseconds to seconds), so
# the periodic retention check removes them as soon as it runs, on Kafka as on klamm; with the
# check's five-minute default it sometimes runs between the produce and the consume. No test
# here exercises retention, so the check runs hourly.
COMMON_OVERRIDES = {"group.initial.rebalance.delay.ms": "3000",
                    "log.retention.check.interval.ms": "3600000"}
SCENARIO_OVERRIDES = {
    "default": dict(COMMON_OVERRIDES, **{"auto.create.topics.enable": "true",
                                         "num.partitions": "4"}),
    "noautocreate": dict(COMMON_OVERRIDES, **{"auto.create.topics.enable": "false",
                                              "num.partitions": "4"}),
}

# Tests that take minutes against any broker (seconds measured against Apache Kafka 4.4 and
# klamm alike): they start first, so --parallel spreads the others around them, and unless
# --timeout is given they may run twice this long.
SLOW_TESTS = {
    # 34 sub-tests; u_multiple_subscription_changes alone is 6 x 47-67 s of session timeouts.
    "0113_cooperative_rebalance": 640,
}
DEFAULT_TIMEOUT = 600

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- build


def rdkafka_sys_version():
    lock = open(os.path.join(REPO, "Cargo.lock")).read()
    m = re.search(r'name = "rdkafka-sys"\nversion = "([^"]+)"', lock)
    if not m:
        sys.exit("rdkafka-sys not found in Cargo.lock")
    return m.group(1)


def find_source(ver):
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    pattern = os.path.join(cargo_home, "registry", "src", "*",
                           "rdkafka-sys-" + ver, "librdkafka")
    hits = sorted(glob.glob(pattern))
    if not hits:
        log("librdkafka source not in the cargo registry; running cargo fetch")
        subprocess.run(["cargo", "fetch"], cwd=REPO, check=True)
        hits = sorted(glob.glob(pattern))
    if not hits:
        sys.exit("cannot find %s" % pattern)
    return hits[0]


def build(ver, jobs):
    """Copy and build librdkafka + test-runner once per version."""
    src = find_source(ver)
    root = os.path.join(REPO, "target", "librdkafka-" + ver)
    stamp = os.path.join(root, ".klamm-build-ok")
    # Optional headers change what configure enables (rapidjson turns on the
    # stats-schema checks in 0053/0110), so they are part of the cache key.
    want = "%s\nrapidjson=%s\n" % (" ".join(CONFIGURE_ARGS),
                                   os.path.exists("/usr/include/rapidjson/document.h"))
    if os.path.exists(stamp) and open(stamp).read() == want:
        return root

    if os.path.exists(root):
        shutil.rmtree(root)
    shutil.copytree(src, root, symlinks=True)
    build_log = os.path.join(root, "klamm-build.log")
    log("building librdkafka %s in %s (log: %s)" % (ver, root, build_log))
    t0 = time.monotonic()
    steps = [
        ["./configure"] + CONFIGURE_ARGS,
        ["make", "-j%d" % jobs, "libs"],
        ["make", "-j%d" % jobs, "-C", "tests", "build"],
        ["make", "-C", "examples", "rdkafka_performance"],
    ]
    with open(build_log, "w") as out:
        for cmd in steps:
            out.write("$ %s\n" % " ".join(cmd))
            out.flush()
            r = subprocess.run(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                out.close()
                tail = open(build_log).read().splitlines()[-40:]
                log("\n".join(tail))
                sys.exit("build step failed: %s" % " ".join(cmd))
    log("librdkafka build took %.0fs" % (time.monotonic() - t0))
    with open(stamp, "w") as f:
        f.write(want)
    return root


# ---------------------------------------------------------------- catalog


def parse_catalog(root):
    """Read the registered tests from tests/test.c's tests[] array.

    Returns {name: {"num", "local", "manual", "scenario"}} in suite order.
    """
    text = open(os.path.join(root, "tests", "test.c")).read()
    start = text.index("struct test tests[] = {")
    body = text[start:]
    catalog = {}
    pos = 0
    while True:
        i = body.find("_TEST(", pos)
        if i < 0:
            break
        # Balanced-paren scan for the macro call.
        depth, j = 0, i + len("_TEST")
        while True:
            c = body[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        call = body[i + len("_TEST("):j]
        pos = j
        name, _, rest = call.partition(",")
        name = name.strip()
        flags_s = rest.split(",")[0]
        scen = re.search(r'\.scenario\s*=\s*"([^"]+)"', rest)
        catalog[name] = {
            "num": name.split("_")[0],
            "local": "TEST_F_LOCAL" in flags_s,
            "manual": "TEST_F_MANUAL" in flags_s,
            # "default,ak23" means either; run such tests in the default one.
            "scenario": scen.group(1).split(",")[0] if scen else "default",
        }
    return catalog


def read_lists():
    allow = []
    for line in open(ALLOWLIST):
        line = line.split("#", 1)[0].strip()
        if line:
            allow.append(line)
    excluded = {}
    for line in open(EXCLUDED):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.strip().partition(" ")
        reason = reason.strip()
        category = reason.split(":", 1)[0].strip()
        excluded[name] = (category, reason)
    return allow, excluded


# ---------------------------------------------------------------- broker


def broker_settings(scenario, extra):
    """The scenario's settings, then the command line's --override KEY=VALUE ones."""
    settings = dict(SCENARIO_OVERRIDES[scenario])
    for kv in extra:
        k, _, v = kv.partition("=")
        settings[k.strip()] = v.strip()
    return settings


class Broker:
    def __init__(self, binary, scenario, workdir, extra=()):
        self.binary = binary
        self.scenario = scenario
        self.workdir = workdir
        self.settings = broker_settings(scenario, extra)
        self.proc = None
        self.address = None
        self.starts = 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        self.starts += 1
        data = os.path.join(self.workdir, "data-%s-%d" % (self.scenario, self.starts))
        os.makedirs(data)
        self.log_path = os.path.join(self.workdir, "klamm-%s-%d.log" % (self.scenario, self.starts))
        args = [self.binary,
                "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                "--override", "log.dirs=" + data]
        for k, v in self.settings.items():
            args += ["--override", "%s=%s" % (k, v)]
        self.logf = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        pat = re.compile(rb"ready to accept connections.*?address=(127\.0\.0\.1:\d+)")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with open(self.log_path, "rb") as f:
                m = pat.search(ANSI.sub("", f.read().decode("utf-8", "replace")).encode())
            if m:
                self.address = m.group(1).decode()
                return
            time.sleep(0.1)
        self.stop()
        sys.exit("klamm (%s) did not become ready; see %s" % (self.scenario, self.log_path))

    def last_log_line(self):
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return ANSI.sub("", lines[-1]).strip() if lines else "(empty)"

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def kafka_call(sock, api_key, version, body):
    """One request with a v1 header (non-flexible versions only); returns the response body."""
    msg = struct.pack(">hhih", api_key, version, 1, 6) + b"runner" + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exactly(sock, 4))[0]
    return recv_exactly(sock, size)[4:]


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class KafkaAdapter:
    """Apache Kafka (compat/harness/broker.KafkaBroker) behind the interface of Broker above,
    with the same scenario settings."""

    def __init__(self, kafka_home, scenario, workdir, extra=()):
        from harness.broker import KafkaBroker
        self.scenario = scenario
        overrides = ["%s=%s" % kv for kv in broker_settings(scenario, extra).items()]
        self.kafka = KafkaBroker(kafka_home, os.path.join(workdir, "kafka-" + scenario), overrides)

    @property
    def address(self):
        return self.kafka.bootstrap

    @property
    def starts(self):
        return self.kafka.starts

    @property
    def log_path(self):
        return self.kafka.log_path

    @property
    def proc(self):
        return self.kafka.proc

    def alive(self):
        return self.kafka.alive()

    def start(self):
        from harness.broker import BrokerError
        try:
            self.kafka.start()
            self.await_coordinator()
        except (BrokerError, OSError) as e:
            self.kafka.kill()
            sys.exit("Kafka (%s) did not start: %s" % (self.scenario, e))

    def await_coordinator(self, timeout=60.0):
        """Kafka creates __consumer_offsets on the first FindCoordinator and answers
        COORDINATOR_NOT_AVAILABLE, then NOT_COORDINATOR while it loads the partitions; the first
        group test would see that start-up as errors of its own. Wait until a group's committed
        offsets can be read (FindCoordinator v1, then OffsetFetch v2 for all topics)."""
        group = b"klamm-runner-warm-up"
        find = struct.pack(">h", len(group)) + group + b"\x00"
        fetch = struct.pack(">h", len(group)) + group + struct.pack(">i", -1)
        host, port = self.address.rsplit(":", 1)
        until = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=10) as sock:
                    # FindCoordinator v1: throttle_time_ms, then error_code.
                    ok = kafka_call(sock, 10, 1, find)[4:6] == b"\x00\x00"
                    # OffsetFetch v2 for a group without offsets: an empty array, then
                    # error_code.
                    ok = ok and kafka_call(sock, 9, 2, fetch)[:6] == b"\x00" * 6
                if ok:
                    return
            except OSError:
                pass
            if time.monotonic() > until:
                raise OSError("group coordinator not ready after %.0fs" % timeout)
            time.sleep(0.2)

    def last_log_line(self):
        return self.kafka.log_tail(1).strip(" |") or "(empty)"

    def stop(self):
        from harness.broker import BrokerError
        try:
            self.kafka.stop()
        except BrokerError as e:
            log("Kafka (%s): %s" % (self.scenario, e))


# ---------------------------------------------------------------- run

SUB_SKIP = re.compile(r"^\[(\d{4}_\S+)\s*/[^]]*\]\s*\[ (.*?): SKIP: (.*) \]$")
PASSED_BANNER = re.compile(r"^\[[^/]*/\s*([\d.]+)s\]\s*=+ Test (\d{4}_\S+) PASSED =+$")
SUMMARY_ROW = re.compile(r"^\|\s*(\d{4}_\S+)\s*\|\s*([A-Z]+)\s*\|\s*([\d.]+)s\s*\|(.*)$")


def write_test_conf(path, broker):
    with open(path, "w") as f:
        f.write("bootstrap.servers=%s\n" % broker.address)
        # Both brokers listen on IPv4 loopback only.
        f.write("broker.address.family=v4\n")


def time_limit(args, names):
    """--timeout when given, else the default or twice a slow test's usual time."""
    if args.timeout:
        return args.timeout
    return max([DEFAULT_TIMEOUT] + [2 * SLOW_TESTS.get(n, 0) for n in names])


def run_group(root, num, scenario, names, broker, args, logdir, local, worker=0):
    """Run test number `num` in `scenario`; returns {name: (state, secs, why)}."""
    limit = time_limit(args, names)
    tests_dir = os.path.join(root, "tests")
    conf = os.path.join(logdir, "test-%s-w%d.conf" % (scenario, worker))
    write_test_conf(conf, broker)
    env = dict(os.environ)
    env.update({
        "TESTS": num,
        "TEST_SCENARIO": scenario,
        "TEST_KAFKA_VERSION": args.kafka_version,
        "RDKAFKA_TEST_CONF": conf,
        # Tests that shell out to kafka-topics.sh (and kafka-acls.sh) run Kafka's own tools.
        "KAFKA_PATH": args.kafka_home,
        "BROKERS": broker.address,
        "LD_LIBRARY_PATH": os.pathsep.join(
            [os.path.join(root, "src"), os.path.join(root, "src-cpp")]
            + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else [])),
        "RDKAFKA_GITVER": "librdkafka-" + os.path.basename(root),
    })
    # -L: leave out the suite's broker-less tests unless asked for by name.
    cmd = ["./test-runner", "-p1"] + ([] if local else ["-L"])
    logpath = os.path.join(logdir, "%s-%s.log" % (num, scenario))
    t0 = time.monotonic()
    timed_out = False
    with open(logpath, "wb") as out:
        p = subprocess.Popen(cmd, cwd=tests_dir, env=env, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    elapsed = time.monotonic() - t0
    text = ANSI.sub("", open(logpath, "rb").read().decode("utf-8", "replace"))

    rows = {}
    for line in text.splitlines():
        # A test-runner that aborts (e.g. after a failure leaves client
        # threads behind) prints no summary; each test's own PASSED banner
        # still tells which ones got through.
        m = PASSED_BANNER.match(line.strip())
        if m:
            rows[m.group(2)] = ("PASSED", float(m.group(1)), "")
    for line in text.splitlines():
        m = SUMMARY_ROW.match(line.strip())
        if m:
            rows[m.group(1)] = (m.group(2), float(m.group(3)), m.group(4).strip())

    # Sub-tests the suite skipped (the test still PASSes); make them visible.
    sub_skips = {}
    for line in text.splitlines():
        m = SUB_SKIP.match(line.strip())
        if m:
            sub_skips.setdefault(m.group(1), []).append(
                "%s: %s" % (m.group(2), m.group(3)))

    results = {}
    broker_died = not broker.alive()
    for name in names:
        if name in rows:
            state, secs, why = rows[name]
        elif timed_out:
            state, secs, why = "FAILED", elapsed, "timed out after %ds" % limit
        else:
            state, secs, why = "FAILED", elapsed, \
                "no result in summary (exit code %d)" % p.returncode
        if state == "FAILED":
            why = failure_detail(text, name, why)
            if broker_died:
                why += " [%s exited with %s; last log line: %s; see %s]" % (
                    args.broker, broker.proc.returncode, broker.last_log_line(), broker.log_path)
            why += " (log: %s)" % logpath
        elif state == "PASSED" and name in sub_skips:
            why = "%d sub-test(s) skipped: %s" % (len(sub_skips[name]), sub_skips[name][0])
        results[name] = (state, secs, why)
    return results


FAIL_HEADER = re.compile(r'^### Test "([^"]+)" failed at (\S+?)(?::\(\))? at ')


def failure_detail(text, name, summary_why):
    """The suite's own failure messages for this test (first few)."""
    own, others = [], []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = FAIL_HEADER.match(line.strip())
        if not m or i + 1 >= len(lines):
            continue
        # The header names "TEST" or "TEST (subtest:line)".
        test, _, sub = m.group(1).partition(" ")
        where = "%s %s" % (sub, m.group(2)) if sub else m.group(2)
        msg = "%s (%s)" % (lines[i + 1].strip(), where)
        if test == name:
            if msg not in own:
                own.append(msg)
        elif not others:
            others.append("first failure in this run, %s: %s" % (m.group(1), msg))
    if not own:
        return " | ".join([summary_why] + others)
    parts = own[:3]
    if len(own) > 3:
        parts.append("... %d more" % (len(own) - 3))
    return " | ".join(parts)


def select(args, catalog, allow, excluded):
    """Returns [(name, in_allowlist)] in suite order."""
    listed = set(allow) | set(excluded)
    if args.tests:
        # A full name selects that test; a number selects the tests with that
        # number that talk to a broker (broker-less ones only by full name).
        chosen = []
        for name in catalog:
            info = catalog[name]
            if name in args.tests or (
                    info["num"] in args.tests and not info["local"] and not info["manual"]):
                chosen.append((name, name in allow))
        return chosen
    chosen = []
    for name in catalog:
        if name in allow:
            chosen.append((name, True))
        elif args.all_candidates and (
                name not in listed or excluded[name][0] in CANDIDATE_CATEGORIES):
            chosen.append((name, False))
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("tests", nargs="*",
                    help="test numbers or names to run (default: allowlist.txt)")
    ap.add_argument("--all-candidates", action="store_true",
                    help="also run excluded tests marked pending or flaky, and unlisted ones")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("KLAMM_TEST_TIMEOUT", "0")),
                    help="per-test wall-clock limit in seconds (default %d, twice as long "
                         "as usual for the slow tests)" % DEFAULT_TIMEOUT)
    ap.add_argument("--kafka-version", default=os.environ.get("KLAMM_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
                    help="broker version reported to the suite (default %s)" % DEFAULT_KAFKA_VERSION)
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--broker", choices=("klamm", "kafka"),
                    default=os.environ.get("KLAMM_TEST_BROKER", "klamm"),
                    help="broker to run the tests against: klamm (default) or Apache Kafka "
                         "from KAFKA_HOME, as the reference")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="a broker setting on top of the scenario's (repeatable), for either broker")
    ap.add_argument("--parallel", type=int, default=int(os.environ.get("KLAMM_TEST_PARALLEL", "1")),
                    help="test-runners at once, each against brokers of its own (default 1)")
    args = ap.parse_args()

    ver = rdkafka_sys_version()
    root = build(ver, args.jobs)
    if args.build_only:
        return 0

    catalog = parse_catalog(root)
    allow, excluded = read_lists()
    for name in list(allow) + list(excluded):
        if name not in catalog:
            log("warning: %s is listed but not in this librdkafka's suite" % name)
    for name in catalog:
        if name not in allow and name not in excluded:
            log("warning: %s is in neither allowlist.txt nor excluded.txt" % name)

    args.kafka_home = os.environ.get("KAFKA_HOME", "")
    if not os.path.isfile(os.path.join(args.kafka_home, "bin", "kafka-topics.sh")):
        sys.exit("KAFKA_HOME must be a Kafka distribution (compat/kafka/dist.sh lays one out): "
                 "the suite runs its kafka-topics.sh")
    binary = os.environ.get("KLAMM_BIN", os.path.join(REPO, "target", "release", "klamm"))
    if args.broker == "klamm" and not os.access(binary, os.X_OK):
        sys.exit("klamm binary not found: %s (set KLAMM_BIN)" % binary)

    chosen = select(args, catalog, allow, excluded)
    if not chosen:
        sys.exit("no tests selected")

    runs = os.path.join(root, "runs")
    os.makedirs(runs, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs)
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir)
    log("work dir: %s (broker: %s)" % (workdir, args.broker))

    # The suite filters by test number only, so tests sharing a number and scenario run in one
    # test-runner invocation.
    groups = []
    for name, allowed in chosen:
        info = catalog[name]
        key = (info["num"], info["scenario"])
        for g in groups:
            if g[0] == key:
                g[1].append((name, allowed))
                break
        else:
            groups.append((key, [(name, allowed)]))

    # Workers pull groups from one queue, each with brokers of its own, so the slowest tests
    # spread themselves over the workers.
    pending = queue.Queue()
    slow = lambda g: -max(SLOW_TESTS.get(n, 0) for n, _ in g[1])
    for g in sorted(groups, key=slow):
        pending.put(g)
    lock = threading.Lock()
    counts = {"PASSED": 0, "FAILED": 0, "SKIPPED": 0}
    failed_allowlisted = []
    new_passes = []

    def worker(index):
        wdir = os.path.join(workdir, "w%d" % index)
        os.makedirs(wdir)
        brokers = {}
        try:
            while True:
                try:
                    (num, scenario), members = pending.get_nowait()
                except queue.Empty:
                    return
                names = [n for n, _ in members]
                broker = brokers.get(scenario)
                if broker is None:
                    broker = brokers[scenario] = (
                        KafkaAdapter(args.kafka_home, scenario, wdir, args.override)
                        if args.broker == "kafka"
                        else Broker(binary, scenario, wdir, args.override))
                if not broker.alive():
                    if broker.starts:
                        log("%s (%s) had exited; restarting it" % (args.broker, scenario))
                    broker.start()
                local = any(catalog[n]["local"] for n in names)
                results = run_group(root, num, scenario, names, broker, args, logdir, local, index)
                with lock:
                    report(members, results)
        finally:
            for b in brokers.values():
                b.stop()
            # Logs stay for inspection; broker data can be large (0038 writes 128 MB).
            for d in glob.glob(os.path.join(wdir, "data-*")) + glob.glob(
                    os.path.join(wdir, "kafka-*", "data")):
                shutil.rmtree(d, ignore_errors=True)

    def report(members, results):
        for name, allowed in members:
            state, secs, why = results[name]
            counts[state] = counts.get(state, 0) + 1
            tag = "" if allowed else "  [candidate]"
            if state == "PASSED":
                note = " (%s)" % why if why else ""
                print("PASSED %s %.1fs%s%s" % (name, secs, note, tag), flush=True)
                if not allowed:
                    new_passes.append(name)
            elif state == "SKIPPED":
                print("SKIPPED %s (%s)%s" % (name, why or "skipped by suite", tag), flush=True)
            else:
                print("FAILED %s %.1fs: %s%s" % (name, secs, why, tag), flush=True)
                # Tests named on the command line count as if allow-listed.
                if allowed or args.tests:
                    failed_allowlisted.append(name)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(max(1, args.parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    if new_passes:
        log("passing tests not in allowlist.txt: %s" % " ".join(new_passes))
    print("%d passed, %d failed, %d skipped"
          % (counts["PASSED"], counts["FAILED"], counts["SKIPPED"]), flush=True)
    return 1 if failed_allowlisted else 0


if __name__ == "__main__":
    sys.exit(main())
