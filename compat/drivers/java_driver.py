"""Kafka's Java client: runs compat/java/KlammCompat.java, one process per
operation (see common.py). Needs KAFKA_HOME, whose libs/ holds the client
jars, and a JDK.

The Java program checks each scenario phase by itself (harness/clients.py
SELF_CHECKING), so besides `probe` there is one operation, `scenario`. It is
compiled with javac against $KAFKA_HOME/libs/* on first use and cached in the
temp dir, keyed by the source and the jars it was built against.

The clients' own log lines are part of the verdict: a phase whose program
passed still fails if the Java client logged a WARN or ERROR (see jvm.py for
how they are captured, and for the short allow-list with the reason for each line).
"""

import os
import subprocess
import sys

import jvm
from common import Skip, deadline, remaining, run

SOURCE = os.path.join(jvm.JAVA_DIR, "KlammCompat.java")
MAIN = "KlammCompat"
# The program's exit code for a scenario it has no check for (0 passed, 1 failed).
EXIT_SKIP = 2


def java(args, until):
    cmd = jvm.command(jvm.compiled(SOURCE, MAIN, remaining(until)), MAIN, args)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=remaining(until))
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("%s %s timed out%s" % (MAIN, " ".join(args), tail(e.stdout, e.stderr)))
    return p.returncode, p.stdout.decode("utf-8", errors="replace"), p.stderr.decode("utf-8", errors="replace")


def tail(out, err, lines=10):
    text = []
    for part in (out, err):
        if isinstance(part, bytes):
            part = part.decode("utf-8", errors="replace")
        text += [l for l in (part or "").splitlines() if l.strip()]
    return (":\n" + "\n".join(text[-lines:])) if text else ""


def verdict(out, word):
    """The program's own last "WORD: reason" line."""
    lines = [l for l in out.splitlines() if l.startswith(word + ": ")]
    return lines[-1][len(word) + 2:] if lines else None


def probe(req):
    code, out, err = java(["version"], deadline(req))
    if code != 0 or not out.strip():
        raise RuntimeError("%s version exited %d%s" % (MAIN, code, tail(out, err)))
    return {"version": out.strip().splitlines()[-1]}


def scenario(req):
    args = [req["scenario"], req["phase"], req["bootstrap"], req["topic"], req["group"],
            str(req["auto_partitions"])]
    code, out, err = java(args, deadline(req, margin=1.0))
    complaints = jvm.broker_complaints(err)
    logged = ("\nthe Java client logged:\n" + "\n".join(complaints)) if complaints else ""
    if code == 0:
        if complaints:
            raise RuntimeError("passed its checks, but the Java client logged warnings or errors:\n"
                               + "\n".join(complaints))
        return {}
    if code == EXIT_SKIP:
        raise Skip(verdict(out, "SKIP") or "skipped without a reason")
    reason = verdict(out, "FAIL")
    if reason:
        # Client warnings and stack traces go to stderr; the last lines help.
        raise RuntimeError(reason + (logged or tail("", err, lines=6)))
    raise RuntimeError("%s %s exited %d%s" % (MAIN, " ".join(args), code, tail(out, err)))


if __name__ == "__main__":
    sys.exit(run({"probe": probe, "scenario": scenario}))
