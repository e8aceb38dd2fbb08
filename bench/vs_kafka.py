#!/usr/bin/env python3
"""Klamm against Apache Kafka on this machine, with Kafka's own load generators.

    cargo build --release && bash compat/kafka/dist.sh
    python3 bench/vs_kafka.py [--rounds 3] [--mib 256] [--only produce-1k-6p-acks1,...]

Each round runs Apache Kafka (the distribution compat/kafka/dist.sh lays out, started as
kafka-server-start.sh starts it, with its default 1 GiB heap) and then Klamm, each on a fresh
temporary data directory, through the same workloads: kafka-producer-perf-test,
kafka-consumer-perf-test, kafka-e2e-latency and, when librdkafka's suite has been built
(protocol-tests/librdkafka/run.sh --build-only), librdkafka's rdkafka_performance. The same
round measures the machine: sequential writes with fdatasync on the data directory's disk and
loopback TCP bandwidth. It prints, for every figure, the median over the rounds for Kafka and
for Klamm and Klamm's ratio (above 1 is better for Klamm, whichever way the figure runs), and
Klamm's throughput as a share of the machine's limits.

Latency at a fixed rate runs at half of the peak Kafka reached in the same round. Resident
memory is read after each workload; CPU seconds per GiB moved are the broker's user + system
time over the bytes its clients produced and consumed. Absolute figures on shared machines are
noisy; the ratios, measured minutes apart on the same machine, are what to compare.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "compat"))

from harness.broker import Broker, KafkaBroker  # noqa: E402
from harness.kafka_tools import default_kafka_home  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


# --- the machine -------------------------------------------------------------------------------

def disk_write_mib_s(directory, total=256 * MIB, block=MIB):
    """Sequential writes of `block` bytes, each followed by fdatasync, as acks=all does at best."""
    path = os.path.join(directory, "disk-probe")
    buf = os.urandom(block)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.monotonic()
        for _ in range(total // block):
            os.write(fd, buf)
            os.fdatasync(fd)
        took = time.monotonic() - started
    finally:
        os.close(fd)
        os.unlink(path)
    return total / MIB / took


def loopback_mib_s(total=4096 * MIB, block=4 * MIB):
    """One TCP stream over loopback, as a consumer's fetches travel."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def sink():
        conn, _ = server.accept()
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                break
            received[0] += n
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    client = socket.create_connection(server.getsockname())
    data = os.urandom(block)
    started = time.monotonic()
    for _ in range(total // block):
        client.sendall(data)
    client.close()
    t.join()
    took = time.monotonic() - started
    server.close()
    return received[0] / MIB / took


# --- a broker's process --------------------------------------------------------------------------

def proc_stats(pid):
    """(resident KiB, CPU seconds) of a process."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return rss, cpu


# --- the load generators -------------------------------------------------------------------------

class Tools:
    def __init__(self, home):
        self.home = home
        self.env = dict(os.environ)
        # The load generators run with the scripts' own JVM options (no quick-start tuning).
        for k in ("KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_OPTS", "KAFKA_HEAP_OPTS"):
            self.env.pop(k, None)
        self.env["KAFKA_HEAP_OPTS"] = "-Xmx1G"
        rdk = sorted(d for d in os.listdir(os.path.join(ROOT, "target"))
                     if d.startswith("librdkafka-")) if os.path.isdir(os.path.join(ROOT, "target")) else []
        self.rdkafka_performance = None
        for d in reversed(rdk):
            p = os.path.join(ROOT, "target", d, "examples", "rdkafka_performance")
            if os.access(p, os.X_OK):
                self.rdkafka_performance = p
                break

    def start(self, tool, *args):
        return subprocess.Popen([os.path.join(self.home, "bin", tool + ".sh")] + [str(a) for a in args],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def run(self, tool, *args, timeout=600):
        p = self.start(tool, *args)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, _ = p.communicate()
            raise RuntimeError("%s timed out:\n%s" % (tool, out[-2000:]))
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s" % (tool, p.returncode, out[-2000:]))
        return out


PRODUCED = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                      r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def producer_perf(tools, bootstrap, topic, records, size, acks, rate=-1):
    out = tools.run("kafka-producer-perf-test", "--topic", topic, "--num-records", records, "--record-size", size,
                    "--throughput", rate, "--producer-props", "bootstrap.servers=" + bootstrap, "acks=" + acks,
                    "linger.ms=5", "batch.size=262144", "max.request.size=1048576", "compression.type=none")
    m = PRODUCED.findall(out)
    if not m:
        raise RuntimeError("no summary from kafka-producer-perf-test:\n" + out[-2000:])
    sent, rps, mbs, _, _, p50, _, p99, p999 = m[-1]
    return {"records/s": float(rps), "MiB/s": float(mbs), "p50 ms": float(p50), "p99 ms": float(p99),
            "p99.9 ms": float(p999), "bytes": int(sent) * size}


def consumer_perf(tools, bootstrap, topic, records, group):
    out = tools.run("kafka-consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", topic,
                    "--messages", records, "--group", group, "--timeout", 60000, "--hide-header")
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    for line in reversed(out.strip().splitlines()):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 6:
            try:
                return {"MiB": float(parts[2]), "MiB/s": float(parts[3]), "records/s": float(parts[5]),
                        "bytes": int(float(parts[2]) * MIB)}
            except ValueError:
                continue
    raise RuntimeError("no summary from kafka-consumer-perf-test:\n" + out[-2000:])


E2E = re.compile(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)")


def e2e_latency(tools, bootstrap, topic, messages, acks, size):
    out = tools.run("kafka-e2e-latency", bootstrap, topic, messages, acks, size)
    m = E2E.search(out)
    if not m:
        raise RuntimeError("no percentiles from kafka-e2e-latency:\n" + out[-2000:])
    return {"p50 ms": float(m.group(1)), "p99 ms": float(m.group(2)), "p99.9 ms": float(m.group(3))}


RDK = re.compile(r"([\d.]+) msgs/s and ([\d.]+) MB/s")


def rdkafka_perf(tools, bootstrap, topic, records, size, acks):
    p = subprocess.run([tools.rdkafka_performance, "-P", "-t", topic, "-b", bootstrap, "-s", str(size),
                        "-c", str(records), "-X", "acks=" + acks, "-X", "linger.ms=5", "-q"],
                       capture_output=True, text=True, timeout=600)
    m = RDK.findall(p.stdout + p.stderr)
    if p.returncode != 0 or not m:
        raise RuntimeError("rdkafka_performance failed:\n" + (p.stdout + p.stderr)[-2000:])
    return {"records/s": float(m[-1][0]), "MiB/s": float(m[-1][1]) * 1e6 / MIB, "bytes": records * size}


def create_topic(tools, bootstrap, topic, partitions):
    tools.run("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
              "--partitions", partitions, "--replication-factor", 1)


# --- one broker through every workload -----------------------------------------------------------

def workloads(args):
    n1k = args.mib * MIB // 1024
    n100 = args.mib * MIB // 100 // 4
    return [
        # name, kind, parameters
        ("produce-1k-6p-acks1", "produce", dict(partitions=6, size=1024, records=n1k, acks="1")),
        ("produce-1k-6p-acksall", "produce", dict(partitions=6, size=1024, records=n1k, acks="all")),
        ("produce-1k-1p-acks1", "produce", dict(partitions=1, size=1024, records=n1k, acks="1")),
        ("produce-100b-6p-acks1", "produce", dict(partitions=6, size=100, records=n100, acks="1")),
        ("produce-1k-6p-acks1-4producers", "produce4", dict(partitions=6, size=1024, records=n1k // 4, acks="1")),
        ("consume-1k-6p-1consumer", "consume", dict(source="produce-1k-6p-acks1", records=n1k, members=1)),
        ("consume-1k-6p-group3", "consume", dict(source="produce-1k-6p-acksall", records=n1k, members=3)),
        ("latency-half-load-acks1", "latency", dict(peak="produce-1k-6p-acks1", partitions=6, size=1024,
                                                    records=n1k // 2, acks="1")),
        ("latency-half-load-acksall", "latency", dict(peak="produce-1k-6p-acksall", partitions=6, size=1024,
                                                      records=n1k // 2, acks="all")),
        ("e2e-latency-acks1", "e2e", dict(messages=5000, acks="1", size=1024)),
        ("rdkafka-produce-1k-6p-acks1", "rdkafka", dict(partitions=6, size=1024, records=n1k, acks="1")),
    ]


def run_broker(kind, args, tools, kafka_peaks, work):
    """Starts one broker, runs every workload, stops it. Returns {workload: {figure: value}}."""
    workdir = tempfile.mkdtemp(prefix="vs-kafka-%s-" % kind, dir=args.dir)
    if kind == "kafka":
        broker = KafkaBroker(tools.home, workdir, overrides=["num.partitions=1"])
    else:
        broker = Broker(args.klamm, workdir)
    broker.start()
    pid = broker.proc.pid
    results = {}
    try:
        for name, what, p in work:
            if args.only and name not in args.only:
                continue
            _, cpu_before = proc_stats(pid)
            topic = name
            try:
                if what == "produce":
                    create_topic(tools, broker.bootstrap, topic, p["partitions"])
                    r = producer_perf(tools, broker.bootstrap, topic, p["records"], p["size"], p["acks"])
                elif what == "produce4":
                    create_topic(tools, broker.bootstrap, topic, p["partitions"])
                    rs = parallel([lambda: producer_perf(tools, broker.bootstrap, topic, p["records"], p["size"],
                                                         p["acks"]) for _ in range(4)])
                    r = {"MiB/s": sum(x["MiB/s"] for x in rs), "records/s": sum(x["records/s"] for x in rs),
                         "p99 ms": max(x["p99 ms"] for x in rs), "bytes": sum(x["bytes"] for x in rs)}
                elif what == "consume":
                    if p["source"] not in results:
                        continue
                    group = "%s-%d" % (name, time.monotonic_ns())
                    share = p["records"] // p["members"]
                    rs = parallel([lambda: consumer_perf(tools, broker.bootstrap, p["source"], share, group)
                                   for _ in range(p["members"])])
                    r = {"MiB/s": sum(x["MiB/s"] for x in rs), "records/s": sum(x["records/s"] for x in rs),
                         "bytes": sum(x["bytes"] for x in rs)}
                elif what == "latency":
                    peak = kafka_peaks.get(p["peak"])
                    if not peak:
                        continue
                    create_topic(tools, broker.bootstrap, topic, p["partitions"])
                    rate = max(1, int(peak / 2))
                    r = producer_perf(tools, broker.bootstrap, topic, p["records"], p["size"], p["acks"], rate)
                    r = {k: r[k] for k in ("p50 ms", "p99 ms", "p99.9 ms", "bytes")}
                    r["rate/s"] = rate
                elif what == "e2e":
                    create_topic(tools, broker.bootstrap, topic, 1)
                    r = e2e_latency(tools, broker.bootstrap, topic, p["messages"], p["acks"], p["size"])
                    r["bytes"] = p["messages"] * p["size"] * 2
                elif what == "rdkafka":
                    if not tools.rdkafka_performance:
                        continue
                    create_topic(tools, broker.bootstrap, topic, p["partitions"])
                    r = rdkafka_perf(tools, broker.bootstrap, topic, p["records"], p["size"], p["acks"])
            except RuntimeError as e:
                print("  %s %s: %s" % (kind, name, str(e).splitlines()[0]), file=sys.stderr)
                continue
            rss, cpu_after = proc_stats(pid)
            r["RSS MiB"] = rss / 1024
            moved = r.pop("bytes", 0)
            if moved:
                r["CPU s/GiB"] = (cpu_after - cpu_before) / (moved / (1 << 30))
            results[name] = r
            if kind == "kafka" and "records/s" in r and what == "produce":
                kafka_peaks[name] = r["records/s"]
            print("  %-6s %-32s %s" % (kind, name, "  ".join("%s=%.4g" % kv for kv in sorted(r.items()))),
                  file=sys.stderr)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def parallel(fns):
    out = [None] * len(fns)
    errors = []

    def run(i, f):
        try:
            out[i] = f()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(str(errors[0]))
    return out


# Figures where smaller is better: the ratio is Kafka's over Klamm's.
SMALLER_BETTER = ("ms", "RSS", "CPU")


def ratio(figure, kafka, klamm):
    if not kafka or not klamm:
        return float("nan")
    if any(s in figure for s in SMALLER_BETTER):
        return kafka / klamm
    return klamm / kafka


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256, help="data per throughput workload (default 256)")
    ap.add_argument("--only", type=lambda s: set(s.split(",")), default=None, help="workload names")
    ap.add_argument("--klamm", default=os.environ.get("KLAMM_BIN", os.path.join(ROOT, "target", "release", "klamm")))
    ap.add_argument("--kafka-home", default=default_kafka_home())
    ap.add_argument("--dir", default=None, help="where the data directories go (default: the temp dir)")
    args = ap.parse_args()
    if not os.access(args.klamm, os.X_OK):
        sys.exit("no Klamm binary at %s (cargo build --release)" % args.klamm)
    if not args.kafka_home:
        sys.exit("no Kafka distribution (bash compat/kafka/dist.sh)")
    tools = Tools(args.kafka_home)
    work = workloads(args)
    samples = {}  # (workload, figure, broker) -> [values]
    machine = {"disk MiB/s (fdatasync per MiB)": [], "loopback MiB/s": []}
    for round_no in range(1, args.rounds + 1):
        print("round %d of %d" % (round_no, args.rounds), file=sys.stderr)
        machine["disk MiB/s (fdatasync per MiB)"].append(disk_write_mib_s(args.dir or tempfile.gettempdir()))
        machine["loopback MiB/s"].append(loopback_mib_s())
        peaks = {}
        for kind in ("kafka", "klamm"):
            for name, figures in run_broker(kind, args, tools, peaks, work).items():
                for figure, value in figures.items():
                    samples.setdefault((name, figure, kind), []).append(value)
    limits = {k: statistics.median(v) for k, v in machine.items()}
    print("\nApache Kafka %s (%s) and Klamm, medians of %d rounds; ratio > 1: Klamm better"
          % (os.path.basename(args.kafka_home), args.kafka_home, args.rounds))
    print("%-32s %-12s %12s %12s %8s" % ("workload", "figure", "Kafka", "Klamm", "ratio"))
    for name, _, _ in work:
        figures = sorted({f for (n, f, _) in samples if n == name})
        for figure in figures:
            ka = samples.get((name, figure, "kafka"))
            kl = samples.get((name, figure, "klamm"))
            a = statistics.median(ka) if ka else None
            b = statistics.median(kl) if kl else None
            fmt = lambda v: "%12.4g" % v if v is not None else "%12s" % "-"  # noqa: E731
            print("%-32s %-12s %s %s %8.2f" % (name, figure, fmt(a), fmt(b), ratio(figure, a, b)))
    print("\nthe machine: " + ", ".join("%s %.0f" % kv for kv in limits.items()))
    for name, figure, limit in (("produce-1k-6p-acksall", "MiB/s", "disk MiB/s (fdatasync per MiB)"),
                                ("consume-1k-6p-1consumer", "MiB/s", "loopback MiB/s")):
        kl = samples.get((name, figure, "klamm"))
        if kl:
            print("Klamm %s: %.0f%% of %s" % (name, 100 * statistics.median(kl) / limits[limit], limit))


if __name__ == "__main__":
    main()
