#!/usr/bin/env python3
"""Build librdkafka's regression suite and run it against a klamm broker.

Invoked through run.sh; see README.md for usage and the list formats.
Python standard library only.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
ALLOWLIST = os.path.join(HERE, "allowlist.txt")
EXCLUDED = os.path.join(HERE, "excluded.txt")
KAFKA_STUB = os.path.join(HERE, "kafka-stub")

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
SCENARIO_OVERRIDES = {
    "default": {"auto.create.topics.enable": "true", "num.partitions": "4"},
    "noautocreate": {"auto.create.topics.enable": "false", "num.partitions": "4"},
}

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
        build_topics_tool(root)
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
    build_topics_tool(root)
    return root


def build_topics_tool(root):
    """Compile the kafka-topics.sh stand-in against the built librdkafka."""
    src = os.path.join(HERE, "kafka-topics.c")
    out = os.path.join(root, "klamm-kafka-topics")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    libdir = os.path.join(root, "src")
    subprocess.run(["cc", "-O1", "-Wall", "-I" + libdir, src, "-o", out,
                    "-L" + libdir, "-lrdkafka", "-Wl,-rpath," + libdir],
                   check=True)
    return out


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


class Broker:
    def __init__(self, binary, scenario, workdir):
        self.binary = binary
        self.scenario = scenario
        self.workdir = workdir
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
        for k, v in SCENARIO_OVERRIDES[self.scenario].items():
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


# ---------------------------------------------------------------- run

SUB_SKIP = re.compile(r"^\[(\d{4}_\S+)\s*/[^]]*\]\s*\[ (.*?): SKIP: (.*) \]$")
PASSED_BANNER = re.compile(r"^\[[^/]*/\s*([\d.]+)s\]\s*=+ Test (\d{4}_\S+) PASSED =+$")
SUMMARY_ROW = re.compile(r"^\|\s*(\d{4}_\S+)\s*\|\s*([A-Z]+)\s*\|\s*([\d.]+)s\s*\|(.*)$")


def write_test_conf(path, broker):
    with open(path, "w") as f:
        f.write("bootstrap.servers=%s\n" % broker.address)
        # klamm listens on IPv4 loopback only.
        f.write("broker.address.family=v4\n")


def run_group(root, num, scenario, names, broker, args, logdir, local):
    """Run test number `num` in `scenario`; returns {name: (state, secs, why)}."""
    tests_dir = os.path.join(root, "tests")
    conf = os.path.join(logdir, "test-%s.conf" % scenario)
    write_test_conf(conf, broker)
    env = dict(os.environ)
    env.update({
        "TESTS": num,
        "TEST_SCENARIO": scenario,
        "TEST_KAFKA_VERSION": args.kafka_version,
        "RDKAFKA_TEST_CONF": conf,
        "KAFKA_PATH": KAFKA_STUB,
        "KLAMM_KAFKA_TOPICS": os.path.join(root, "klamm-kafka-topics"),
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
            p.wait(args.timeout)
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
            state, secs, why = "FAILED", elapsed, "timed out after %ds" % args.timeout
        else:
            state, secs, why = "FAILED", elapsed, \
                "no result in summary (exit code %d)" % p.returncode
        if state == "FAILED":
            why = failure_detail(text, name, why)
            if broker_died:
                why += " [klamm exited with %s; last log line: %s; see %s]" % (
                    broker.proc.returncode, broker.last_log_line(), broker.log_path)
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
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("KLAMM_TEST_TIMEOUT", "600")),
                    help="per-test wall-clock limit in seconds (default 600)")
    ap.add_argument("--kafka-version", default=os.environ.get("KLAMM_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
                    help="broker version reported to the suite (default %s)" % DEFAULT_KAFKA_VERSION)
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
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

    binary = os.environ.get("KLAMM_BIN", os.path.join(REPO, "target", "release", "klamm"))
    if not os.access(binary, os.X_OK):
        sys.exit("klamm binary not found: %s (set KLAMM_BIN)" % binary)

    chosen = select(args, catalog, allow, excluded)
    if not chosen:
        sys.exit("no tests selected")

    runs = os.path.join(root, "runs")
    os.makedirs(runs, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs)
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir)
    log("work dir: %s" % workdir)

    brokers = {}
    counts = {"PASSED": 0, "FAILED": 0, "SKIPPED": 0}
    failed_allowlisted = []
    new_passes = []
    try:
        # The suite filters by test number only, so tests sharing a number
        # and scenario run in one test-runner invocation.
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

        for (num, scenario), members in groups:
            names = [n for n, _ in members]
            broker = brokers.get(scenario)
            if broker is None:
                broker = brokers[scenario] = Broker(binary, scenario, workdir)
            if not broker.alive():
                if broker.starts:
                    log("klamm (%s) had exited; restarting it" % scenario)
                broker.start()
            local = any(catalog[n]["local"] for n in names)
            results = run_group(root, num, scenario, names, broker, args, logdir, local)
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
    finally:
        for b in brokers.values():
            b.stop()
        # Logs stay for inspection; broker data can be large (0038 writes 128 MB).
        for d in glob.glob(os.path.join(workdir, "data-*")):
            shutil.rmtree(d, ignore_errors=True)

    if new_passes:
        log("passing tests not in allowlist.txt: %s" % " ".join(new_passes))
    print("%d passed, %d failed, %d skipped"
          % (counts["PASSED"], counts["FAILED"], counts["SKIPPED"]), flush=True)
    return 1 if failed_allowlisted else 0


if __name__ == "__main__":
    sys.exit(main())
