"""Running the stock command-line tools of an Apache Kafka distribution (KAFKA_HOME):
finding the distribution, its version, and starting its scripts quickly.

Each tool is a JVM start. Two things make that cheap enough to run a few hundred of them:
JVM options for a quick start (unless KAFKA_JVM_PERFORMANCE_OPTS is set), and a class-data
sharing archive per script (`-XX:SharedArchiveFile`), written by the script's first run
(`-XX:ArchiveClassesAtExit`) into the temp directory and used by every later run. That roughly
halves a tool's start-up. The archive is keyed by the distribution's jars and the `java` binary,
so a different Kafka or JDK gets its own.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The tools run briefly; a quick-starting JVM matters more than peak speed.
FAST_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"


def default_kafka_home():
    """KAFKA_HOME, or else the newest distribution compat/kafka/dist.sh laid out under
    target/kafka/, or "" when there is neither."""
    home = os.environ.get("KAFKA_HOME", "")
    if home:
        return home
    base = os.path.join(ROOT, "target", "kafka")
    found = []
    for name in os.listdir(base) if os.path.isdir(base) else []:
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", name)
        if m and os.path.isfile(os.path.join(base, name, "bin", "kafka-topics.sh")):
            found.append((tuple(int(x) for x in m.groups()), os.path.join(base, name)))
    return max(found)[1] if found else ""


def jar_version(home):
    """The distribution's (major, minor), read off its kafka-clients jar's name (no JVM start);
    (0, 0) when there is none."""
    libs = os.path.join(home, "libs")
    for name in os.listdir(libs) if home and os.path.isdir(libs) else []:
        m = re.fullmatch(r"kafka-clients-(\d+)\.(\d+)\..*\.jar", name)
        if m:
            return (int(m.group(1)), int(m.group(2)))
    return (0, 0)


def unavailable_reason(home):
    """Why the tools of `home` cannot run here, or None when they can."""
    if not home:
        return ("KAFKA_HOME is not set and compat/kafka/dist.sh has laid out no distribution "
                "under target/kafka/")
    if not os.path.isfile(os.path.join(home, "bin", "kafka-topics.sh")):
        return "KAFKA_HOME=%s has no bin/kafka-topics.sh (not a Kafka distribution?)" % home
    if jar_version(home) == (0, 0):
        return "KAFKA_HOME=%s has no libs/kafka-clients-*.jar" % home
    if not shutil.which("java"):
        return "no `java` on PATH (apt-get install -y openjdk-17-jdk-headless)"
    return None


class Tools:
    """The scripts in $home/bin, run with quick-start JVM options and class-data sharing."""

    def __init__(self, home):
        self.home = home
        self.version = jar_version(home)
        self.cds_dir = os.path.join(tempfile.gettempdir(), "kafka-tools-cds-" + self._key())
        os.makedirs(self.cds_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._dumping = set()

    def _key(self):
        h = hashlib.sha256(os.path.realpath(self.home).encode())
        libs = os.path.join(self.home, "libs")
        h.update("\n".join(sorted(os.listdir(libs)) if os.path.isdir(libs) else []).encode())
        java = shutil.which("java") or ""
        real = os.path.realpath(java) if java else ""
        h.update(real.encode())
        if real:
            h.update(str(os.stat(real).st_mtime_ns).encode())
        return h.hexdigest()[:16]

    # Flags that changed between Kafka versions.
    @property
    def formatter_flag(self):
        """The console consumer's formatter options (4.1 deprecated --property)."""
        return "--formatter-property" if self.version >= (4, 1) else "--property"

    @property
    def reader_flag(self):
        """The console producer's reader options (4.1 deprecated --property)."""
        return "--reader-property" if self.version >= (4, 1) else "--property"

    @property
    def producer_flag(self):
        """The console producer's client options (4.2 deprecated --producer-property)."""
        return "--command-property" if self.version >= (4, 2) else "--producer-property"

    def script(self, tool):
        return os.path.join(self.home, "bin", tool + ".sh")

    def _env(self, tool):
        """The environment for one run of `tool`, and the archive it is writing (or None)."""
        env = dict(os.environ)
        env.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", FAST_JVM)
        archive = os.path.join(self.cds_dir, tool + ".jsa")
        writing = None
        # -Xlog:disable: a stale archive makes the JVM warn on stdout, which the tools' output
        # must not contain.
        opts = ["-Xlog:disable"]
        if os.path.isfile(archive):
            opts.append("-XX:SharedArchiveFile=" + archive)
        else:
            with self._lock:
                if tool not in self._dumping:
                    self._dumping.add(tool)
                    fd, writing = tempfile.mkstemp(prefix=tool + "-", suffix=".jsa", dir=self.cds_dir)
                    os.close(fd)
                    os.unlink(writing)
                    opts.append("-XX:ArchiveClassesAtExit=" + writing)
        env["KAFKA_OPTS"] = " ".join(opts + [env.get("KAFKA_OPTS", "")]).strip()
        return env, writing

    def _archived(self, tool, writing, returncode):
        if writing is None:
            return
        if returncode == 0 and os.path.isfile(writing):
            os.replace(writing, os.path.join(self.cds_dir, tool + ".jsa"))
        else:
            try:
                os.unlink(writing)
            except OSError:
                pass
        with self._lock:
            self._dumping.discard(tool)

    def run(self, tool, args, input=None, timeout=120):
        """Runs bin/<tool>.sh with args; a CompletedProcess with text stdout and stderr. A run
        that outlives `timeout` is killed and raises subprocess.TimeoutExpired."""
        env, writing = self._env(tool)
        p = subprocess.Popen([self.script(tool)] + list(args), env=env, text=True,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, err = p.communicate()
            self._archived(tool, writing, -9)
            raise subprocess.TimeoutExpired(p.args, timeout, out, err)
        self._archived(tool, writing, p.returncode)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def start(self, tool, args, stdout, stderr):
        """Starts bin/<tool>.sh in the background (its own process group), output to the given
        files; finish() it afterwards."""
        env, writing = self._env(tool)
        p = subprocess.Popen([self.script(tool)] + list(args), env=env, stdin=subprocess.DEVNULL,
                             stdout=stdout, stderr=stderr, start_new_session=True)
        p.archive = (tool, writing)
        return p

    def finish(self, p, timeout=30):
        """Waits for a process from start() (SIGTERM after `timeout`, SIGKILL 10 s later);
        returns its exit code."""
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 15)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        self._archived(*p.archive, p.returncode)
        return p.returncode


def murmur2(data):
    """Kafka's murmur2 hash of a byte string, as a signed 32-bit int (what its default
    partitioner hashes record keys with)."""
    mask = 0xFFFFFFFF
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def key_partition(key, partitions):
    """The partition the Java producer's default partitioner picks for a keyed record."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
