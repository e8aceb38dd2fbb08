"""Running the compat tests' Java programs against the jars of a Kafka
distribution (KAFKA_HOME): compiling a single-file program once, starting it
with our logging configuration, and reading the clients' own log lines.

The programs log through the distribution's log4j (log4j 2, or log4j 1 in
older 3.x downloads) with compat/java/log4j2.properties or log4j.properties:
WARN and above, one line each on stderr, `[HH:MM:SS.mmm] LEVEL logger: message`.
A Java client that warns about the broker (an unsupported request, an
unexpected error code, a connection dropped under it) has met a broker bug even
when its program passed, so `broker_complaints` turns those lines into a failure.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

KAFKA_HOME = os.environ.get("KAFKA_HOME", "")
JAVA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "java")
LOG4J2_CONFIG = os.path.join(JAVA_DIR, "log4j2.properties")
LOG4J1_CONFIG = os.path.join(JAVA_DIR, "log4j.properties")

LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\.\d{3}\] (WARN|ERROR|FATAL) (\S+): (.*)$")

# The client log lines that do not fail a run, each with its reason: lines not
# about the broker, and what Apache Kafka itself makes clients log. Every entry
# was checked against Kafka: the same run against a Kafka broker logs the line.
ALLOWED = [
    # (logger regex, message regex, why it is allowed[, only against this broker])
    #
    # Kafka answers Metadata for a topic created a moment ago (auto-created by
    # that very request, or by CreateTopics from Streams) with this error until
    # the new topic reaches its metadata cache; the client retries. Kafka's own
    # behaviour; Klamm's topics exist at once, so against Klamm it is a bug.
    (r"^org\.apache\.kafka\.clients\.NetworkClient$",
     r"The metadata response from the cluster reported a recoverable issue with correlation id \d+ : "
     r"\{[^=,}]+=UNKNOWN_TOPIC_OR_PARTITION\}$",
     "a topic just created is not yet in Kafka's metadata", "kafka"),
    # A Streams consumer subscribes to its repartition topics before the group
    # leader's assignor creates them, and hears they do not exist yet: the same
    # against any broker.
    (r"^org\.apache\.kafka\.clients\.NetworkClient$",
     r"^\[Consumer clientId=[^\]]*StreamThread[^\]]*\] The metadata response from the cluster reported a "
     r"recoverable issue with correlation id \d+ : \{[^=,}]+-repartition=UNKNOWN_TOPIC_OR_PARTITION\}$",
     "Streams asks for its repartition topic before it creates it"),
    # Streams warns that its state directory is under the OS temp directory:
    # where the test keeps it (on purpose), nothing to do with the broker.
    (r"^org\.apache\.kafka\.streams\.processor\.internals\.StateDirectory$",
     r"^Using an OS temp directory in the state\.dir property",
     "the test's state.dir is a temp dir"),
]


def libs():
    return os.path.join(KAFKA_HOME, "libs", "*")


def compiled(source, main, timeout):
    """Directory holding `source` compiled against $KAFKA_HOME/libs, compiling
    it on first use. Cached in the temp dir, keyed by the source and the names
    of the jars it was built against."""
    key = hashlib.sha256()
    with open(source, "rb") as f:
        key.update(f.read())
    key.update("\n".join(sorted(os.listdir(os.path.join(KAFKA_HOME, "libs")))).encode())
    out = os.path.join(tempfile.gettempdir(), "compat-java-%s-%s" % (main, key.hexdigest()[:16]))
    if os.path.isfile(os.path.join(out, main + ".class")):
        return out
    tmp = tempfile.mkdtemp(prefix="compat-java-build-")
    p = subprocess.run(["javac", "-encoding", "UTF-8", "-d", tmp, "-cp", libs(), source],
                       capture_output=True, timeout=timeout)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError("javac failed for %s:\n%s" % (source, (p.stdout + p.stderr).decode(errors="replace")))
    try:
        os.rename(tmp, out)
    except OSError:  # built meanwhile by another run
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def command(classes, main, args, jvm_options=()):
    """The java command line running `main` with our logging configuration."""
    return (["java", "-cp", classes + os.pathsep + libs(),
             # Each logging framework reads its own property and ignores the other's.
             "-Dlog4j2.configurationFile=" + LOG4J2_CONFIG,
             "-Dlog4j.configuration=file:" + LOG4J1_CONFIG]
            + list(jvm_options) + [main] + list(args))


def log_lines(stderr):
    """The client log lines (level, logger, message) in a program's stderr."""
    out = []
    for line in stderr.splitlines():
        m = LOG_LINE.match(line)
        if m:
            out.append(m.groups())
    return out


def allowed(logger, message):
    # The broker under test, as the matrix and the Streams test announce it.
    broker = os.environ.get("COMPAT_BROKER", "klamm")
    return any(re.search(entry[0], logger) and re.search(entry[1], message)
               and entry[3:] in ((), (broker,)) for entry in ALLOWED)


def broker_complaints(stderr, limit=8):
    """The WARN/ERROR lines of a run that are not on the allow-list, as
    printable lines (at most `limit`, with a count of the rest)."""
    bad = ["%s %s: %s" % (level, logger, message[:400])
           for level, logger, message in log_lines(stderr) if not allowed(logger, message)]
    if len(bad) > limit:
        bad = bad[:limit] + ["... and %d more" % (len(bad) - limit)]
    return bad
