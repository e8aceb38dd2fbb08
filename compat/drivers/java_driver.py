"""Kafka's Java client: runs compat/java/KlammCompat.java, one process per
operation (see common.py). Needs KAFKA_HOME, whose libs/ holds the client
jars, and a JDK.

The Java program checks each scenario phase by itself (harness/clients.py
SELF_CHECKING), so besides `probe` there is one operation, `scenario`. It is
compiled with javac against $KAFKA_HOME/libs/* on first use and cached in the
temp dir, keyed by the source and the jars it was built against.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from common import Skip, deadline, remaining, run

KAFKA_HOME = os.environ.get("KAFKA_HOME", "")
SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "java", "KlammCompat.java")
MAIN = "KlammCompat"
# The program's exit code for a scenario it has no check for (0 passed, 1 failed).
EXIT_SKIP = 2


def libs():
    return os.path.join(KAFKA_HOME, "libs", "*")


def build_dir(until):
    """Directory holding the compiled program, compiling it if needed."""
    key = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        key.update(f.read())
    lib_dir = os.path.join(KAFKA_HOME, "libs")
    key.update("\n".join(sorted(os.listdir(lib_dir))).encode())
    out = os.path.join(tempfile.gettempdir(), "compat-java-" + key.hexdigest()[:16])
    if os.path.isfile(os.path.join(out, MAIN + ".class")):
        return out
    tmp = tempfile.mkdtemp(prefix="compat-java-build-")
    p = subprocess.run(["javac", "-encoding", "UTF-8", "-d", tmp, "-cp", libs(), SOURCE],
                       capture_output=True, timeout=remaining(until))
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError("javac failed for %s:\n%s" % (SOURCE, (p.stdout + p.stderr).decode(errors="replace")))
    try:
        os.rename(tmp, out)
    except OSError:  # built meanwhile by another run
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def java(args, until):
    cmd = ["java", "-cp", build_dir(until) + os.pathsep + libs()]
    # The distribution's tool logging config: warnings and errors to stderr.
    log4j1 = os.path.join(KAFKA_HOME, "config", "tools-log4j.properties")
    log4j2 = os.path.join(KAFKA_HOME, "config", "tools-log4j2.yaml")
    if os.path.isfile(log4j2):
        cmd.append("-Dlog4j2.configurationFile=" + log4j2)
    elif os.path.isfile(log4j1):
        cmd.append("-Dlog4j.configuration=file:" + log4j1)
    cmd += [MAIN] + list(args)
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
    if code == 0:
        return {}
    if code == EXIT_SKIP:
        raise Skip(verdict(out, "SKIP") or "skipped without a reason")
    reason = verdict(out, "FAIL")
    if reason:
        # Client warnings and stack traces go to stderr; the last lines help.
        raise RuntimeError(reason + tail("", err, lines=6))
    raise RuntimeError("%s %s exited %d%s" % (MAIN, " ".join(args), code, tail(out, err)))


if __name__ == "__main__":
    sys.exit(run({"probe": probe, "scenario": scenario}))
