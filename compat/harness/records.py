"""Test records and the checks applied to what comes back."""

import hashlib
import json
import time

# Slack for timestamps a client assigns itself (kcat cannot set them).
CLOCK_SLACK_MS = 5000


def now_ms():
    return int(time.time() * 1000)


def record(key, value, headers=(), partition=None, timestamp=None):
    return {"key": key, "value": value, "headers": [list(h) for h in headers],
            "partition": partition, "timestamp": timestamp}


def mixed_records(tag, partitions=2):
    """Keyed and unkeyed records with and without headers, edge cases included
    (empty value, empty key, empty header value, non-ASCII, a large
    compressible value), spread over `partitions` explicit partitions."""
    base = now_ms() - 60_000
    big = " ".join("lorem ipsum dolor sit amet %d" % i for i in range(700))  # ~20 KB
    specs = [
        ("key-0", "first %s" % tag, [("trace-id", "t-0"), ("source", "compat")]),
        (None, "unkeyed %s" % tag, [("only", "header")]),
        ("key-2", "", []),
        ("", "empty key", [("empty-value", "")]),
        ("key-4", big, []),
        ("ключ-5", "unicode ✓ ü 日本 %s" % tag, [("ünï", "✓")]),
        (None, "unkeyed without headers", []),
        ("key-7", "{\"json\": true, \"n\": 7}", [("content-type", "application/json")]),
    ]
    specs += [("key-%d" % i, "value-%d %s" % (i, tag), [("i", str(i))]) for i in range(8, 16)]
    return [record(k, v, h, partition=i % partitions, timestamp=base + i)
            for i, (k, v, h) in enumerate(specs)]


def bulk_records(count=4000):
    """Enough data that reading it back takes several fetches: `count` small
    records on partition 0 (over 1 MB, a common per-partition fetch limit)
    and a single 900 KB record among small ones on partition 1."""
    base = now_ms() - 60_000
    filler = hashlib.sha256(b"klamm").hexdigest() * 4  # 256 chars
    recs = [record("k-%d" % i, "v-%d-%s" % (i, filler), [("bulk", "yes")], partition=0, timestamp=base + i)
            for i in range(count)]
    blob = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(900_000 // 64))
    for i in range(10):
        value = blob if i == 5 else "small-%d" % i
        recs.append(record("p1-%d" % i, value, [], partition=1, timestamp=base + i))
    return recs


def json_lines(n, tag):
    """The classic quick-start payload: a few JSON documents, no key."""
    return [record(None, json.dumps({"id": i, "message": "hello from %s" % tag}, sort_keys=True))
            for i in range(n)]


def describe(r):
    v = r.get("value")
    if isinstance(v, str) and len(v) > 40:
        v = v[:37] + "..."
    return "key=%r value=%r" % (r.get("key"), v)


def compare(expected, got, label):
    """Problems found comparing consumed records with the expected ones, in
    order. Each expected record carries partition, offset and either an exact
    timestamp or a [low, high] window."""
    problems = []
    if len(got) != len(expected):
        problems.append("%s: expected %d records, consumed %d" % (label, len(expected), len(got)))
    for e, g in zip(expected, got):
        where = "%s offset %s" % (label, e["offset"])
        for field in ("partition", "offset", "key", "value", "headers"):
            if e[field] != g.get(field):
                problems.append("%s: %s differs: expected %r, got %r"
                                % (where, field, short(e[field]), short(g.get(field))))
        ts = g.get("timestamp")
        if "ts_window" in e:
            lo, hi = e["ts_window"]
            if not isinstance(ts, int) or not lo - CLOCK_SLACK_MS <= ts <= hi + CLOCK_SLACK_MS:
                problems.append("%s: timestamp %r outside produce window [%d, %d]" % (where, ts, lo, hi))
        elif ts != e["timestamp"]:
            problems.append("%s: timestamp differs: expected %r, got %r" % (where, e["timestamp"], ts))
        if len(problems) > 8:
            problems.append("... (more differences not shown)")
            break
    return problems


def short(v):
    if isinstance(v, str) and len(v) > 60:
        return v[:57] + "..."
    return v
