"""Runs the real klamm binary for the matrix: start, stop, restart, logs."""

import os
import re
import signal
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
