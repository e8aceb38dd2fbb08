#!/usr/bin/env python3
"""Capture the request frames real Kafka clients send, as golden fixtures.

A TCP proxy sits between a client and a klamm broker and writes each request frame the client
sends (size prefix stripped: request header + body) to
`<out>/<api_key>-<ApiName>-v<version>.bin`, keeping the first frame of each key/version seen
in the run. Responses are forwarded untouched.

The broker must advertise the proxy's address, or clients would reconnect straight to the
broker after their first Metadata response. With `--klamm BIN` this script starts a broker
that way itself (listeners on a free port, advertised.listeners on the proxy port); with
`--broker HOST:PORT` the running broker must already be started with
`--override advertised.listeners=PLAINTEXT://127.0.0.1:<proxy port>`.

Usage:
    capture.py --klamm target/release/klamm --out DIR --scenario kcat
    capture.py --klamm target/release/klamm --out DIR --scenario kafka-python --python VENV/bin/python
    capture.py --klamm target/release/klamm --out DIR -- some-client --bootstrap {bootstrap}
    capture.py --broker 127.0.0.1:9092 --listen 19092 --out DIR     # proxy until Ctrl-C

In a command after `--`, `{bootstrap}` is replaced by the proxy address; the same address is
in the environment as KLAMM_BOOTSTRAP. Only the python standard library is used.
"""

import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Kafka API names by key, as in the protocol's JSON message definitions.
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr",
    5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls",
    32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 55: "DescribeQuorum", 57: "UpdateFeatures",
    60: "DescribeCluster", 61: "DescribeProducers", 64: "UnregisterBroker",
    65: "DescribeTransactions", 66: "ListTransactions", 67: "AllocateProducerIds",
    68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe", 71: "GetTelemetrySubscriptions",
    72: "PushTelemetry", 74: "ListClientMetricsResources", 75: "DescribeTopicPartitions",
}


def api_name(key):
    return API_NAMES.get(key, "Unknown")


class Recorder:
    """Writes the first frame of each (key, version); logs every request."""

    def __init__(self, out):
        self.out = out
        self.seen = set()
        self.lock = threading.Lock()
        os.makedirs(out, exist_ok=True)
        # A recapture replaces the set: frames a client no longer sends must not linger.
        for name in os.listdir(out):
            if name.endswith(".bin"):
                os.remove(os.path.join(out, name))

    def record(self, conn_id, frame):
        if len(frame) < 8:
            print(f"capture: conn {conn_id}: short frame of {len(frame)} bytes", flush=True)
            return
        key, version, correlation = struct.unpack(">hhi", frame[:8])
        name = api_name(key)
        with self.lock:
            new = (key, version) not in self.seen
            self.seen.add((key, version))
        mark = "saved" if new else "seen"
        print(f"capture: conn {conn_id}: {key} {name} v{version} corr={correlation} "
              f"{len(frame)} bytes ({mark})", flush=True)
        if new:
            path = os.path.join(self.out, f"{key}-{name}-v{version}.bin")
            with open(path, "wb") as f:
                f.write(frame)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def client_to_broker(conn_id, client, broker, recorder):
    try:
        while True:
            size = recv_exact(client, 4)
            if size is None:
                break
            (n,) = struct.unpack(">i", size)
            if n < 0:
                print(f"capture: conn {conn_id}: negative frame size {n}", flush=True)
                break
            frame = recv_exact(client, n)
            if frame is None:
                break
            recorder.record(conn_id, frame)
            broker.sendall(size + frame)
    except OSError:
        pass
    finally:
        # Half-close so the broker sees end of stream but can still finish its responses.
        try:
            broker.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def broker_to_client(conn_id, broker, client):
    try:
        while True:
            data = broker.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        print(f"capture: conn {conn_id}: closed", flush=True)
        for s in (client, broker):
            try:
                s.close()
            except OSError:
                pass


def serve(listener, broker_addr, recorder):
    conn_id = 0
    while True:
        try:
            client, peer = listener.accept()
        except OSError:
            return
        conn_id += 1
        try:
            broker = socket.create_connection(broker_addr)
        except OSError as e:
            print(f"capture: cannot reach broker {broker_addr}: {e}", flush=True)
            client.close()
            continue
        for s in (client, broker):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print(f"capture: conn {conn_id}: from {peer[0]}:{peer[1]}", flush=True)
        threading.Thread(target=client_to_broker, args=(conn_id, client, broker, recorder),
                         daemon=True).start()
        threading.Thread(target=broker_to_client, args=(conn_id, broker, client),
                         daemon=True).start()


def echo_lines(stream):
    for line in stream:
        sys.stderr.write("klamm: " + line)


def start_klamm(binary, proxy_port):
    """Starts klamm on a free port advertising the proxy; returns (process, port, data dir)."""
    data = tempfile.mkdtemp(prefix="klamm-capture-")
    cmd = [binary,
           "--override", "listeners=PLAINTEXT://127.0.0.1:0",
           "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port}",
           "--override", f"log.dirs={data}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        sys.stderr.write("klamm: " + line)
        m = re.search(r"ready to accept connections.*address=127\.0\.0\.1:(\d+)", line)
        if m:
            # Keep draining stderr so the broker never blocks on a full pipe.
            threading.Thread(target=echo_lines, args=(proc.stderr,), daemon=True).start()
            return proc, int(m.group(1)), data
    proc.kill()
    shutil.rmtree(data, ignore_errors=True)
    sys.exit("capture: klamm did not become ready")


# Client actions per scenario: (command, stdin) steps, run with {bootstrap} and {python}
# substituted. Each scenario uses its own topic and compresses what it produces; values are
# long and repetitive because clients send a batch uncompressed when compression saves nothing.

KCAT = [
    (["kcat", "-b", "{bootstrap}", "-L"], None),
    # The topic is auto-created by the producer's Metadata request.
    (["kcat", "-b", "{bootstrap}", "-P", "-t", "golden-kcat", "-p", "0", "-z", "zstd",
      "-K", ":"], "".join(f"k{i}:{'golden kcat ' * 40}\n" for i in range(3))),
    (["kcat", "-b", "{bootstrap}", "-C", "-t", "golden-kcat", "-o", "beginning", "-e"], None),
    # Offset for a timestamp: ListOffsets.
    (["kcat", "-b", "{bootstrap}", "-Q", "-t", "golden-kcat:0:0"], None),
]

KAFKA_PYTHON = r'''
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
b = sys.argv[1]
t = "golden-kafka-python"
admin = KafkaAdminClient(bootstrap_servers=b, client_id="golden-admin")
admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)])
print(admin.list_topics())
# Idempotence (kafka-python's default) needs InitProducerId, which klamm does not serve yet.
p = KafkaProducer(bootstrap_servers=b, compression_type="gzip", client_id="golden-producer",
                  enable_idempotence=False)
sent = [p.send(t, key=b"k%d" % i, value=b"golden kafka-python " * 40) for i in range(3)]
print([f.get(10).offset for f in sent])
p.close()
tp = TopicPartition(t, 0)
c = KafkaConsumer(bootstrap_servers=b, client_id="golden-consumer", consumer_timeout_ms=3000)
c.assign([tp])
c.seek_to_beginning(tp)
got = [m.value for m in c]
assert len(got) == 3, got
print(c.end_offsets([tp]), c.beginning_offsets([tp]), c.offsets_for_times({tp: 0}))
c.close()
admin.delete_topics([t])
admin.close()
'''

CONFLUENT_KAFKA = r'''
import sys
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
b = sys.argv[1]
t = "golden-confluent-kafka"
admin = AdminClient({"bootstrap.servers": b, "client.id": "golden-admin"})
for f in admin.create_topics([NewTopic(t, 1, 1)]).values():
    f.result(10)
print(admin.list_topics(timeout=10).topics)
# Not lz4: librdkafka sends lz4 batches uncompressed unless the broker lists FindCoordinator.
p = Producer({"bootstrap.servers": b, "compression.type": "snappy", "client.id": "golden-producer"})
for i in range(3):
    p.produce(t, key=b"k%d" % i, value=b"golden confluent-kafka " * 40, partition=0)
p.flush(10)
tp = TopicPartition(t, 0)
for f in admin.list_offsets({tp: OffsetSpec.latest()}).values():
    print(f.result(10).offset)
# The binding insists on a group.id; assign() without commits keeps group traffic out.
c = Consumer({"bootstrap.servers": b, "client.id": "golden-consumer", "group.id": "golden",
              "enable.auto.commit": False})
c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
got = []
while len(got) < 3:
    m = c.poll(10)
    if m is None:
        break
    if not m.error():
        got.append(m.value())
assert len(got) == 3, got
print(len(got), c.get_watermark_offsets(tp, timeout=10))
c.close()
for f in admin.delete_topics([t]).values():
    f.result(10)
'''

SCENARIOS = {
    "kcat": KCAT,
    "kafka-python": [(["{python}", "-c", KAFKA_PYTHON, "{bootstrap}"], None)],
    "confluent-kafka": [(["{python}", "-c", CONFLUENT_KAFKA, "{bootstrap}"], None)],
}


def run_step(step, bootstrap, python):
    command, stdin = step
    args = [a.replace("{bootstrap}", bootstrap).replace("{python}", python) for a in command]
    print("capture: running " + " ".join(a if len(a) < 60 else "<script>" for a in args),
          flush=True)
    env = dict(os.environ, KLAMM_BOOTSTRAP=bootstrap)
    r = subprocess.run(args, input=stdin, text=True, env=env, timeout=120)
    if r.returncode != 0:
        print(f"capture: step exited with {r.returncode}", flush=True)
    return r.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--klamm", help="start this klamm binary behind the proxy")
    src.add_argument("--broker", help="HOST:PORT of a running broker that advertises the proxy")
    ap.add_argument("--listen", type=int, default=0, help="proxy port (default: a free one)")
    ap.add_argument("--out", required=True,
                    help="fixture directory to write (its .bin files are replaced)")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), help="built-in client actions")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with kafka-python / confluent-kafka installed")
    ap.add_argument("command", nargs="*", help="client command to run instead of a scenario")
    args = ap.parse_args()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen))
    listener.listen(64)
    proxy_port = listener.getsockname()[1]
    bootstrap = f"127.0.0.1:{proxy_port}"

    proc = data = None
    if args.klamm:
        proc, broker_port, data = start_klamm(args.klamm, proxy_port)
        broker_addr = ("127.0.0.1", broker_port)
    else:
        host, port = args.broker.rsplit(":", 1)
        broker_addr = (host, int(port))

    recorder = Recorder(args.out)
    threading.Thread(target=serve, args=(listener, broker_addr, recorder), daemon=True).start()
    print(f"capture: proxy {bootstrap} -> {broker_addr[0]}:{broker_addr[1]}, "
          f"writing {args.out}", flush=True)

    status = 0
    try:
        if args.scenario or args.command:
            steps = SCENARIOS[args.scenario] if args.scenario else [(args.command, None)]
            for step in steps:
                status |= run_step(step, bootstrap, args.python)
            time.sleep(0.5)  # let the last frames and closes drain through the proxy
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        if proc:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(data, ignore_errors=True)
    print("capture: saved " + ", ".join(
        f"{k} {api_name(k)} v{v}" for k, v in sorted(recorder.seen)), flush=True)
    sys.exit(1 if status else 0)


if __name__ == "__main__":
    main()
