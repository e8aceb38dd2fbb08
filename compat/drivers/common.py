"""Shared plumbing for the Python client drivers.

A driver is run once per operation: it reads one JSON request on stdin and
prints one result line prefixed with RESULT_MARK on stdout. Clients may log to
stdout too, so the runner only trusts the marked line.
"""

import json
import sys
import time
import traceback

RESULT_MARK = "@@RESULT@@ "


class Skip(Exception):
    """The client cannot do what was asked (not a broker failure)."""


def emit(result):
    sys.stdout.write("\n" + RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


def run(handlers):
    """Dispatch the request on stdin to handlers[op] and report the outcome."""
    req = json.load(sys.stdin)
    try:
        handler = handlers[req["op"]]
    except KeyError:
        emit({"skip": "operation %r not implemented by this driver" % req["op"]})
        return 0
    try:
        emit(handler(req) or {})
        return 0
    except Skip as e:
        emit({"skip": str(e)})
        return 0
    except Exception as e:  # report every client error verbatim to the runner
        traceback.print_exc()
        emit({"error": describe(e)})
        return 1


def describe(e):
    """Exception text including what caused it: some client bindings wrap the
    real error (e.g. a broker-reported one) in a vague outer exception."""
    parts = []
    while e is not None and len(parts) < 4:
        parts.append("%s: %s" % (type(e).__name__, str(e) or "(no message; client gave up waiting)"))
        e = e.__cause__ or e.__context__
    return " <- caused by ".join(parts)


def enc(s):
    return None if s is None else s.encode("utf-8")


def dec(b):
    if b is None:
        return None
    if isinstance(b, str):
        return b
    return bytes(b).decode("utf-8", errors="replace")


def headers_out(pairs):
    """Normalise client header pairs to [[name, value-or-None], ...]."""
    return [[dec(k), dec(v)] for k, v in (pairs or [])]


def record_out(partition, offset, key, value, headers, timestamp):
    return {
        "partition": partition,
        "offset": offset,
        "key": dec(key),
        "value": dec(value),
        "headers": headers_out(headers),
        "timestamp": timestamp,
    }


def deadline(req, margin=2.0):
    """Absolute time by which the driver should give up on its own.

    Leaves a margin below the runner's hard kill so clients get to report
    their own error instead of being killed silently.
    """
    return time.monotonic() + max(1.0, req.get("timeout", 30) - margin)


def remaining(until):
    return max(0.1, until - time.monotonic())


def stable_split(assignments, partitions):
    """True when every member owns something and together they own each
    partition exactly once."""
    if not assignments or any(not a for a in assignments):
        return False
    owned = sorted(p for a in assignments for p in a)
    return owned == sorted(partitions)


# Group members in the assignors scenario heartbeat often, so a rebalance
# reaches every member quickly (the clients' defaults are about 3 s).
HEARTBEAT_MS = 300
# How long an assignment must stay unchanged before it counts as settled.
SETTLE_S = 1.0


def balanced_split(assignments, partitions):
    """stable_split, with no member owning more than one partition above another."""
    sizes = [len(a) for a in assignments]
    return stable_split(assignments, partitions) and max(sizes) - min(sizes) <= 1


class Settler:
    """Polled with the members' current assignments; says when they have been
    balanced and unchanged for SETTLE_S."""

    def __init__(self, partitions):
        self.partitions, self.last, self.since = list(partitions), None, None

    def settled(self, assignments):
        now = [sorted(a) for a in assignments]
        if now != self.last or not balanced_split(now, self.partitions):
            self.last, self.since = now, time.monotonic()
            return False
        return time.monotonic() - self.since >= SETTLE_S


def wait_settled(owned, partitions, until, trouble):
    """Block until owned() has settled; trouble() names a failed member."""
    settler = Settler(partitions)
    while not settler.settled(owned()):
        problem = trouble()
        if problem:
            raise RuntimeError(problem)
        if time.monotonic() > until:
            raise RuntimeError("assignment never settled to a balanced split: %s" % owned())
        time.sleep(0.05)
    return [sorted(a) for a in owned()]


def group_phases(req, new_member, produce):
    """The group_assign operation for drivers whose members run by themselves
    (threads or processes). new_member(req) starts one; a member has `owned`
    (partitions), `revoked` and `records` (lists, appended to), `done` (how
    many of its records are committed), `error`, stop() and wait(seconds); `revoked` is None
    for a member that cannot tell what it gave up.

    req["members"] members join; once their split has settled, req["records"]
    are produced and read. With req["more_records"] one more member joins and
    the same follows. Each phase reports per member what it owned once
    settled, and what it read and revoked since the phase began."""
    until = deadline(req)
    parts = range(req["partitions"])
    members = []

    def trouble():
        return "; ".join("member %d: %s" % (i, m.error) for i, m in enumerate(members) if m.error)

    def revoked(m):
        return m.revoked if m.revoked is not None else []

    def phase(records, join):
        marks = [(len(m.records), m.done, len(revoked(m))) for m in members] + [(0, 0, 0)] * join
        members.extend(new_member(req) for _ in range(join))
        owned = wait_settled(lambda: [m.owned for m in members], parts, until, trouble)
        produce(dict(req, records=records, timeout=remaining(until)))
        while sum(m.done - d for m, (_, d, _) in zip(members, marks)) < len(records):
            if trouble() or time.monotonic() > until:
                break
            time.sleep(0.05)
        now = [sorted(m.owned) for m in members]
        if now != owned:
            raise RuntimeError("assignment changed from %s to %s while reading" % (owned, now))
        # A member that cannot see its revocations (revoked None) reports none.
        return {"members": [{"partitions": owned[i], "records": m.records[n:],
                             "revoked": None if m.revoked is None else m.revoked[r:]}
                            for i, (m, (n, _, r)) in enumerate(zip(members, marks))]}

    try:
        phases = [phase(req["records"], req["members"])]
        if req.get("more_records"):
            phases.append(phase(req["more_records"], 1))
    finally:
        # All at once: each leaving member makes the others rebalance.
        for m in members:
            m.stop()
        for m in members:
            m.wait(max(5.0, remaining(until)))
    if trouble():
        raise RuntimeError(trouble())
    return {"phases": phases}
