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
