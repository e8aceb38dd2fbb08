"""Runs the real klamm binary for the matrix: start, stop, restart, logs."""

import os
import re
import signal
import socket
import subprocess
import time

READY = "ready to accept connections"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ADDRESS = re.compile(r"address=\"?[^\s\"]*:(\d+)")


class BrokerError(Exception):
    pass


class Broker:
    def __init__(self, binary, workdir, overrides=(), start_timeout=30.0):
        self.binary = binary
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "broker.log")
        self.overrides = list(overrides)
        self.start_timeout = start_timeout
        self.proc = None
        self.port = 0
        self.starts = 0

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        """Start on self.port (0 the first time: the broker picks one) and wait
        for its readiness line, which tells the port it listens on."""
        os.makedirs(self.data_dir, exist_ok=True)
        self.starts += 1
        args = [self.binary,
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                "--override", "log.dirs=" + self.data_dir]
        for o in self.overrides:
            args += ["--override", o]
        with open(self.log_path, "a") as log:
            log.write("\n===== start #%d: %s\n" % (self.starts, " ".join(args)))
            offset = log.tell()
        log = open(self.log_path, "a")
        # The broker reads KLAMM_* variables as configuration; the matrix's own
        # KLAMM_BIN is not meant for it.
        env = {k: v for k, v in os.environ.items() if k != "KLAMM_BIN"}
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        log.close()
        until = time.monotonic() + self.start_timeout
        while time.monotonic() < until:
            line = self._find_ready(offset)
            if line:
                m = ADDRESS.search(line)
                if not m:
                    raise BrokerError("readiness line has no address=HOST:PORT: %r" % line)
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise BrokerError("broker exited with code %s before it was ready\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            time.sleep(0.05)
        self.kill()
        raise BrokerError("broker not ready after %.0fs\n%s" % (self.start_timeout, self.log_tail()))

    def _find_ready(self, offset):
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            for line in f:
                line = ANSI.sub("", line)
                if READY in line:
                    return line
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Send sig and wait. Returns the exit code; raises if a SIGTERM was
        not honoured in time (the broker is then killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise BrokerError("broker did not exit within %.0fs of %s" % (timeout, sig.name))
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            return ""
        return "".join("    | " + ANSI.sub("", l) for l in tail).rstrip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KafkaBroker(Broker):
    """Apache Kafka itself (a single KRaft node, broker and controller in one JVM) from the
    distribution KAFKA_HOME points at, with the same interface as Broker: the reference the
    matrix runs the same scenarios against."""

    READY = "Kafka Server started"

    def __init__(self, kafka_home, workdir, overrides=(), start_timeout=90.0, features=()):
        super().__init__(os.path.join(kafka_home, "bin", "kafka-server-start.sh"), workdir, overrides,
                         start_timeout)
        self.kafka_home = kafka_home
        self.workdir = workdir
        # Feature levels for `kafka-storage.sh format --feature`, e.g. "eligible.leader.replicas.version=0".
        self.features = list(features)
        self.properties = os.path.join(workdir, "server.properties")
        self.controller_port = 0

    def _write_properties(self):
        with open(os.path.join(self.kafka_home, "config", "server.properties")) as f:
            base = [l for l in f.read().splitlines()
                    if not re.match(r"(listeners|advertised\.listeners|controller\.quorum\.voters|log\.dirs)=", l)]
        base += ["listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, self.controller_port),
                 "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                 "controller.quorum.voters=1@127.0.0.1:%d" % self.controller_port,
                 "log.dirs=" + self.data_dir] + list(self.overrides)
        with open(self.properties, "w") as f:
            f.write("\n".join(base) + "\n")

    def start(self):
        first = self.port == 0
        if first:
            self.port, self.controller_port = free_port(), free_port()
            os.makedirs(self.workdir, exist_ok=True)
            self._write_properties()
            storage = os.path.join(self.kafka_home, "bin", "kafka-storage.sh")
            cluster_id = subprocess.run([storage, "random-uuid"], capture_output=True, text=True,
                                        check=True).stdout.strip()
            features = [a for f in self.features for a in ("--feature", f)]
            fmt = subprocess.run([storage, "format", "-t", cluster_id, "-c", self.properties] + features,
                                 capture_output=True, text=True)
            if fmt.returncode != 0:
                raise BrokerError("kafka-storage.sh format failed: %s" % (fmt.stdout + fmt.stderr)[-2000:])
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write("\n===== start #%d: Apache Kafka on port %d\n" % (self.starts, self.port))
            offset = log.tell()
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, self.properties], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        until = time.monotonic() + self.start_timeout
        while time.monotonic() < until:
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                if self.READY in f.read():
                    return
            if self.proc.poll() is not None:
                raise BrokerError("Kafka exited with code %s before it was ready\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            time.sleep(0.1)
        self.kill()
        raise BrokerError("Kafka not ready after %.0fs\n%s" % (self.start_timeout, self.log_tail()))

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        code = super().stop(sig, timeout)
        # The JVM reports a SIGTERM it shut down cleanly for as 143 (128 + 15).
        return 0 if sig == signal.SIGTERM and code == 143 else code
