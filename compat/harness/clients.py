"""The clients under test and how to run one operation through each."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

COMPAT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVERS = os.path.join(COMPAT, "drivers")
# The Go drivers (compat/go) are built there by compat/go/build.sh.
GO_DRIVERS = os.path.join(os.path.dirname(COMPAT), "target", "compat-go")
RESULT_MARK = "@@RESULT@@ "


class OpError(Exception):
    """An operation failed; the message carries the client's own error."""


class OpSkip(Exception):
    """The client cannot perform the operation (a client limitation)."""


def python_driver(name):
    return [sys.executable, os.path.join(DRIVERS, name)]


CLIENTS = {
    "kafka-python": python_driver("kafka_python_driver.py"),
    "confluent-kafka": python_driver("confluent_driver.py"),
    "aiokafka": python_driver("aiokafka_driver.py"),
    "kcat": python_driver("kcat_driver.py"),
    "kafkajs": ["node", os.path.join(DRIVERS, "kafkajs_driver.js")],
    "kafka-cli": python_driver("kafka_cli_driver.py"),
    "java": python_driver("java_driver.py"),
    "franz-go": [os.path.join(GO_DRIVERS, "franz-go")],
    "sarama": [os.path.join(GO_DRIVERS, "sarama")],
}

SETUP_HINT = "run compat/setup.sh"

# Clients that come from an Apache Kafka distribution: compat/kafka/dist.sh
# lays one out from Maven Central, and KAFKA_HOME points at it.
NEEDS_KAFKA_HOME = {"kafka-cli", "java"}

# kafka-console-producer.sh cannot choose a partition: its records go where
# the default partitioner puts them, and scenarios accept that placement.
NO_PARTITION_CHOICE = {"kafka-cli"}

# Clients that start a JVM for every operation get more time per operation
# and per scenario.
TIME_SCALE = {"kafka-cli": 2}

# Clients that check a whole scenario phase themselves in one operation
# ("scenario") instead of going through the scenario's driver operations.
SELF_CHECKING = {"java"}


def missing_reason(client):
    """Why a client cannot run at all here, or None when it is installed."""
    if client == "kcat" and not shutil.which(os.environ.get("KCAT_BIN", "kcat")):
        return "kcat binary not found (apt-get install kcat)"
    if client in NEEDS_KAFKA_HOME:
        home = os.environ.get("KAFKA_HOME", "")
        if not home:
            return "KAFKA_HOME is not set: run compat/kafka/dist.sh and point it at the path it prints"
        if not os.path.isfile(os.path.join(home, "bin", "kafka-topics.sh")):
            return "KAFKA_HOME=%s has no bin/kafka-topics.sh (not a Kafka distribution?)" % home
        if not shutil.which("java"):
            return "java not found (apt-get install -y openjdk-17-jdk-headless)"
        if client == "java" and not shutil.which("javac"):
            return "javac not found (apt-get install -y openjdk-17-jdk-headless)"
        if client == "java" and not glob.glob(os.path.join(home, "libs", "kafka-clients-*.jar")):
            return "KAFKA_HOME=%s has no libs/kafka-clients-*.jar" % home
    if client in ("franz-go", "sarama") and not os.access(CLIENTS[client][0], os.X_OK):
        return "%s driver not built (compat/go/build.sh, which needs the go toolchain; %s)" % (client, SETUP_HINT)
    if client == "kafkajs":
        if not shutil.which("node"):
            return "node not found"
        if not os.path.isdir(os.path.join(COMPAT, "node_modules", "kafkajs")):
            return "kafkajs not installed in compat/node_modules (%s)" % SETUP_HINT
    try:
        # The Java program is compiled on its first probe.
        info = call(client, "probe", {}, timeout=120 if client == "java" else 30)
    except (OpError, OpSkip) as e:
        return "%s cannot start: %s (%s)" % (client, e, SETUP_HINT)
    return None if info else "%s probe returned nothing" % client


def call(client, op, req, timeout):
    """Run one operation in a fresh driver process; return its result dict.

    The driver gets `timeout` to finish by itself and a little more before it
    is killed, so a hung client never stalls the matrix."""
    req = dict(req, op=op, timeout=timeout)
    env = dict(os.environ, PYTHONPATH=DRIVERS, PYTHONUNBUFFERED="1",
               KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.Popen(CLIENTS[client], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=COMPAT, start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(req).encode(), timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise OpError("%s timed out after %.0fs%s" % (op, timeout, stderr_tail(err)))
    result = None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    if result is None:
        raise OpError("%s: driver exited %d without a result%s" % (op, proc.returncode, stderr_tail(err)))
    if "skip" in result:
        raise OpSkip(result["skip"])
    if "error" in result:
        raise OpError("%s: %s" % (op, result["error"]))
    return result


def stderr_tail(err, lines=6):
    text = err.decode(errors="replace").strip().splitlines()[-lines:]
    return ("\n    " + "\n    ".join(text)) if text else ""
