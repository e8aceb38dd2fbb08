"""kcat driver: one operation per process, see common.py.

kcat is a command-line tool, so each operation runs it as a subprocess.
Limits of kcat itself (not of the broker) are reported as skips.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

from common import HEARTBEAT_MS, Skip, deadline, group_phases, remaining, run, stable_split

KCAT = os.environ.get("KCAT_BIN", "kcat")
KEY_DELIM = "\x1f"  # unit separator: never part of test data


def kcat(req, args, stdin=None, timeout=None):
    cmd = [KCAT, "-b", req["bootstrap"], "-m", "10", "-X", "client.id=klamm-compat-kcat"] + args
    p = subprocess.run(cmd, input=stdin, capture_output=True,
                       timeout=timeout or remaining(deadline(req)))
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (shlex.join(["kcat"] + args), p.returncode,
                                                  p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode("utf-8", errors="replace")


def probe(req):
    out = subprocess.run([KCAT, "-V"], capture_output=True, check=True).stdout.decode()
    m = re.search(r"Version (\S+).*librdkafka (\S+)", out)
    return {"version": m.group(1) if m else out.strip(), "librdkafka": m.group(2) if m else None}


def list_topics(req, topic=None):
    md = json.loads(kcat(req, ["-L", "-J"] + (["-t", topic] if topic else [])))
    brokers = []
    for b in md["brokers"]:
        host, _, port = b["name"].rpartition(":")
        brokers.append({"id": b["id"], "host": host, "port": int(port)})
    topics = {t["topic"]: {"partitions": len(t["partitions"]), "error": t.get("error")}
              for t in md["topics"]}
    return {"brokers": brokers, "topics": topics}


def topic_metadata(req):
    # kcat -L uses a producer handle, so asking for one topic may auto-create it.
    until = deadline(req)
    last = None
    while time.monotonic() < until:
        t = list_topics(req, req["topic"])["topics"].get(req["topic"])
        if t and not t["error"] and t["partitions"]:
            return {"partitions": t["partitions"]}
        last = t
        time.sleep(0.2)
    raise RuntimeError("no usable metadata for %s: %s" % (req["topic"], last))


def no_admin(req):
    raise Skip("kcat has no admin API (cannot create or delete topics)")


def produce_args(req):
    args = ["-P", "-t", req["topic"], "-D", "\n", "-K", KEY_DELIM]
    codec = req.get("codec") or "none"
    if codec != "none":
        args += ["-X", "compression.codec=" + codec]
    args += ["-X", "acks=all", "-X", "linger.ms=20"]
    if req.get("idempotent"):
        args += ["-X", "enable.idempotence=true"]
    return args


def produce(req):
    """kcat applies -p and -H to a whole run, so consecutive records that share
    them go out in one run. kcat does not print the offsets it got, so they are
    derived from the partition's end offset after each run (each scenario
    writes to a topic of its own). Partitioner-chosen records get no offset."""
    until = deadline(req)
    out = []
    groups = []
    for r in req["records"]:
        if "\n" in r["value"] or KEY_DELIM in r["value"] or (r["key"] and "\n" in r["key"]):
            raise Skip("kcat cannot send values containing its delimiters")
        shape = (r.get("partition"), tuple(map(tuple, r["headers"])))
        if groups and groups[-1][0] == shape:
            groups[-1][1].append(r)
        else:
            groups.append((shape, [r]))
    for (partition, headers), recs in groups:
        args = produce_args(req)
        if partition is not None:
            args += ["-p", str(partition)]
        for k, v in headers:
            args += ["-H", k if v is None else "%s=%s" % (k, v)]
        lines = "".join((r["value"] if r["key"] is None else r["key"] + KEY_DELIM + r["value"]) + "\n"
                        for r in recs)
        kcat(req, args, stdin=lines.encode("utf-8"), timeout=remaining(until))
        if partition is None:
            out.extend(None for _ in recs)
        else:
            end = list_offsets(dict(req, partition=partition))["latest"]
            out.extend([partition, end - len(recs) + i] for i in range(len(recs)))
    return {"offsets": out, "timestamps_set": False}


def headers_from_json(h):
    if h is None:
        return []
    if isinstance(h, dict):
        return [[k, v] for k, v in h.items()]
    return [[h[i], h[i + 1]] for i in range(0, len(h), 2)]


def message_out(m):
    return {"partition": m["partition"], "offset": m["offset"], "key": m.get("key"),
            "value": m.get("payload"), "headers": headers_from_json(m.get("headers")),
            "timestamp": m.get("ts")}


def consume(req):
    if req["count"] == 0:
        return {"records": []}
    text = kcat(req, ["-C", "-J", "-e", "-t", req["topic"], "-p", str(req["partition"]),
                      "-o", str(req["offset"]), "-c", str(req["count"])])
    return {"records": [message_out(json.loads(l)) for l in text.splitlines() if l.strip()]}


def list_offsets(req):
    def query(ts):
        text = kcat(req, ["-Q", "-t", "%s:%d:%d" % (req["topic"], req["partition"], ts)])
        m = re.search(r"offset (-?\d+)", text)
        if not m:
            raise RuntimeError("unexpected kcat -Q output: %r" % text)
        return int(m.group(1))
    # -2 / -1 are the protocol's "earliest" / "latest" timestamps.
    return {"earliest": query(-2), "latest": query(-1)}


def group_cmd(req, extra):
    return [KCAT, "-b", req["bootstrap"], "-G", req["group"], "-J", "-u", "-X", "auto.offset.reset=earliest",
            "-X", "client.id=klamm-compat-kcat"] + extra + [req["topic"]]


class Member:
    """A kcat -G process; its assignment is read from what it logs to stderr:
    the whole assignment under the eager protocol, the partitions that change
    under the cooperative one."""

    def __init__(self, req, extra=()):
        self.proc = subprocess.Popen(group_cmd(req, list(extra)), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.records, self.owned, self.revoked, self.log = [], [], [], []
        self.stopped = False
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for line in self.proc.stdout:
            if line.strip():
                self.records.append(message_out(json.loads(line)))

    def _read_err(self):
        for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            self.log.append(text)
            m = re.search(r"(?:incremental (assignment|revoke) of \d+ partition\(s\) .*?\)|(assigned|revoked)):(.*)",
                          text)
            if not m:
                continue
            parts = {int(p) for p in re.findall(r"\[(\d+)\]", m.group(3))}
            if m.group(1) == "assignment":
                self.owned = sorted(set(self.owned) | parts)
            elif m.group(1) == "revoke":
                self.revoked.extend(sorted(parts))
                self.owned = sorted(set(self.owned) - parts)
            elif m.group(2) == "assigned":
                self.owned = sorted(parts)
            else:
                self.revoked.extend(sorted(parts))
                self.owned = []

    @property
    def done(self):
        # kcat does not say when it commits; under the cooperative protocol it
        # commits what it read from a partition when giving it up.
        return len(self.records)

    @property
    def error(self):
        if self.stopped or self.proc.poll() is None:
            return None
        return "kcat -G exited with code %s; log: %s" % (self.proc.returncode, self.log[-3:])

    def terminate(self):
        # SIGTERM makes kcat close the consumer, which commits consumed offsets.
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    stop = terminate

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise RuntimeError("kcat -G did not exit within %.0fs of SIGTERM; log: %s"
                               % (timeout, self.log[-3:]))


def stop_all(members, until):
    # Signal every member first: closing one makes the group rebalance,
    # which the others would otherwise have to sit through one by one.
    for m in members:
        m.terminate()
    for m in members:
        m.wait(max(5.0, remaining(until)))


def group_split(req):
    until = deadline(req)
    members = [Member(req) for _ in range(2)]
    try:
        parts = list(range(req["partitions"]))
        stable_since = None
        while True:
            owned = [m.owned for m in members]
            if stable_split(owned, parts):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since > 1.0:
                    break
            else:
                stable_since = None
            if time.monotonic() > until or any(m.proc.poll() is not None for m in members):
                raise RuntimeError("members never split the partitions: %s; log: %s" % (
                    owned, [m.log[-3:] for m in members]))
            time.sleep(0.1)
        produce(dict(req, op="produce", timeout=remaining(until)))
        want = len(req["records"])
        while sum(len(m.records) for m in members) < want and time.monotonic() < until:
            time.sleep(0.1)
        owned = [list(m.owned) for m in members]
    finally:
        stop_all(members, until)
    return {"members": [{"partitions": owned[i], "records": members[i].records} for i in range(2)]}


def group_resume(req):
    until = deadline(req)
    m = Member(req)
    try:
        quiet_until = None
        while time.monotonic() < until and m.proc.poll() is None:
            if len(m.records) >= req["count"]:
                # keep consuming briefly so redelivered old records would show up
                quiet_until = quiet_until or time.monotonic() + req.get("linger", 2)
                if time.monotonic() > quiet_until:
                    break
            time.sleep(0.1)
        if m.proc.poll() is not None:
            raise RuntimeError("kcat -G exited early with code %s; log: %s" % (m.proc.returncode, m.log[-3:]))
    finally:
        stop_all([m], until)
    return {"records": m.records}


# librdkafka's built-in assignors, chosen with -X partition.assignment.strategy.
STRATEGIES = ["range", "roundrobin", "cooperative-sticky"]


def group_strategies(req):
    return {"strategies": STRATEGIES}


def group_assign(req):
    extra = ["-X", "partition.assignment.strategy=" + req["strategy"],
             "-X", "heartbeat.interval.ms=%d" % HEARTBEAT_MS, "-X", "auto.commit.interval.ms=100"]
    return group_phases(req, lambda r: Member(r, extra), produce)


if __name__ == "__main__":
    sys.exit(run({
        "probe": probe, "list_topics": lambda req: list_topics(req), "topic_metadata": topic_metadata,
        "create_topic": no_admin, "delete_topic": no_admin, "produce": produce,
        "consume": consume, "list_offsets": list_offsets,
        "group_split": group_split, "group_resume": group_resume,
        "group_strategies": group_strategies, "group_assign": group_assign,
    }))
