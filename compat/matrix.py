#!/usr/bin/env python3
"""Client compatibility matrix: runs the same scenarios through several Kafka
clients against a real klamm broker and prints client x scenario results.

Run with the venv made by compat/setup.sh:  compat/.venv/bin/python compat/matrix.py
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from harness import clients
from harness.broker import Broker, BrokerError, KafkaBroker
from harness.scenarios import AUTO_PARTITIONS, SCENARIOS, Ctx, Fail, Skip, self_checked

# Scenarios (harness/scenarios.py) not run by default until the broker has
# the APIs they need. Naming one in --scenarios runs it anyway.
# Example entry: "group": "needs consumer groups".
NOT_YET_ENABLED = {}

DEFAULT_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "target", "release", "klamm")
# No initial rebalance delay: a new group's first rebalance starts at once, so
# group scenarios settle in seconds; they wait for the split they need.
BROKER_OVERRIDES = ["num.partitions=%d" % AUTO_PARTITIONS, "auto.create.topics.enable=true",
                    "group.initial.rebalance.delay.ms=0"]

PASSED, FAILED, SKIPPED = "passed", "FAILED", "SKIPPED"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", help="comma-separated subset of: " + ", ".join(clients.CLIENTS))
    ap.add_argument("--scenarios", help="comma-separated subset of: " + ", ".join(s.name for s in SCENARIOS))
    ap.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=True,
                    help="continue after a failure (default); --no-keep-going stops at the first")
    ap.add_argument("--keep-data", action="store_true", help="keep the broker's temp dir even if all passed")
    ap.add_argument("--broker", choices=["klamm", "kafka"], default="klamm",
                    help="run the scenarios against klamm (default) or against Apache Kafka itself "
                         "from KAFKA_HOME, the reference: what fails on both is a test bug")
    args = ap.parse_args()
    args.explicit_scenarios = bool(args.scenarios)
    args.clients = pick(args.clients, list(clients.CLIENTS), "client")
    args.scenarios = pick(args.scenarios, [s.name for s in SCENARIOS], "scenario")
    return args


def pick(arg, known, what):
    if not arg:
        return known
    chosen = [x.strip() for x in arg.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in known]
    if unknown:
        sys.exit("unknown %s(s): %s (known: %s)" % (what, ", ".join(unknown), ", ".join(known)))
    return [x for x in known if x in chosen]


class Matrix:
    def __init__(self, args, broker, missing):
        self.args, self.broker = args, broker
        self.missing = missing  # client -> why it cannot run here
        self.results = {}  # (scenario, client) -> (status, reason)
        self.memory = {}   # what each client wrote, for the restart scenarios
        self.attempts = {}  # (scenario, client) -> the attempt its last phase ran as
        self.stopped = False

    def record(self, scenario, client, status, reason="", elapsed=None):
        self.results[(scenario, client)] = (status, reason)
        took = "" if elapsed is None else " (%.1fs)" % elapsed
        print("  %-16s %-15s %s%s" % (client, scenario, status, took), flush=True)
        if status != PASSED and reason:
            print("      " + reason.replace("\n", "\n      "), flush=True)
        if status == FAILED and not self.args.keep_going:
            self.stopped = True

    def attempt(self, sc, client, fn, ctx):
        """Run one phase; returns True if it passed. Records anything else."""
        start = time.monotonic()
        ok, status, reason = self.run_phase(sc, client, fn, ctx)
        # Against Apache Kafka, the reference, a failure means a test or client bug, not a
        # broker bug. One that does not repeat is a client's timing (kafka-python's group
        # members, for one, sometimes miss a rebalance against Kafka 4): it is shown, and the
        # phase is run once more on topics and groups of its own (a before-restart phase too,
        # and the after phase then works on what that attempt wrote). Against Klamm nothing is
        # retried.
        if (status == FAILED and self.args.broker == "kafka" and fn is not sc.after
                and ctx.attempt == 0 and not self.stopped):
            print("  %-16s %-15s failed against Kafka, running it once more: %s"
                  % (client, sc.name, reason.replace("\n", " | ")), flush=True)
            ctx = self.ctx(client, sc, attempt=1)
            ok, status, reason = self.run_phase(sc, client, fn, ctx)
        self.attempts[(sc.name, client)] = ctx.attempt
        if not ok or fn is sc.run or fn is sc.after:
            self.record(sc.name, client, status, reason, time.monotonic() - start)
        return ok

    def run_phase(self, sc, client, fn, ctx):
        """One phase: (passed, status, reason)."""
        call = self_checked(sc, fn) if client in clients.SELF_CHECKING else fn
        try:
            call(ctx)
            ok, status, reason = True, PASSED, ""
        except Skip as e:
            ok, status, reason = False, SKIPPED, str(e)
        except Fail as e:
            ok, status, reason = False, FAILED, str(e)
        except Exception as e:  # a bug in the harness still must not stop the run
            ok, status, reason = False, FAILED, "harness error: %s: %s" % (type(e).__name__, e)
        died = self.revive_broker()
        if died:
            ok, status, reason = False, FAILED, (reason + "\n" if reason else "") + died
        return ok, status, reason

    def revive_broker(self):
        """If the broker died, say so (it is a broker bug) and start it again."""
        if self.broker.alive():
            return None
        msg = "broker process exited with code %s during this scenario\n%s" % (
            self.broker.proc.returncode, self.broker.log_tail())
        try:
            self.broker.start()
        except BrokerError as e:
            msg += "\nrestart failed: %s" % e
            self.stopped = True
        return msg

    def run(self):
        for sc in SCENARIOS:
            if sc.name not in self.args.scenarios:
                continue
            print("== %s" % sc.name, flush=True)
            for client in self.args.clients:
                if self.stopped:
                    self.record(sc.name, client, SKIPPED, "not run: stopped after a failure (--no-keep-going)")
                elif sc.name in NOT_YET_ENABLED and not self.args.explicit_scenarios:
                    self.record(sc.name, client, SKIPPED, "not enabled yet: " + NOT_YET_ENABLED[sc.name])
                elif client in self.missing:
                    status = FAILED if os.environ.get("CI") == "true" else SKIPPED
                    self.record(sc.name, client, status, "MISSING CLIENT: " + self.missing[client])
            todo = [c for c in self.args.clients if (sc.name, c) not in self.results]
            if not todo:
                continue
            if sc.run:
                for client in todo:
                    if not self.stopped:
                        self.attempt(sc, client, sc.run, self.ctx(client, sc))
                continue
            # Each client's phase gets the whole budget from its own start: the clients run
            # one after another, and a slow one must not use up the others' time.
            ready = [c for c in todo if not self.stopped and self.attempt(sc, c, sc.before, self.ctx(c, sc))]
            again = self.restart_phase(sc, ready, retry=self.args.broker == "kafka")
            # Against Kafka, a client whose after-restart phase failed goes through the whole
            # scenario once more, on topics of its own and with one more restart.
            again = [c for c in again if not self.stopped
                     and self.attempt(sc, c, sc.before, self.ctx(c, sc, attempt=1))]
            self.restart_phase(sc, again, retry=False)

    def restart_phase(self, sc, ready, retry):
        """Restarts the broker and runs the after phase of the clients in `ready`. With
        `retry`, a failed phase is shown but not recorded: those clients are returned."""
        if not ready:
            return []
        problem = self.restart(sc.restart)
        failed = []
        for client in ready:
            if problem:
                self.record(sc.name, client, FAILED, problem)
            elif not self.stopped:
                ctx = self.ctx(client, sc, self.attempts.get((sc.name, client), 0))
                if not retry or ctx.attempt > 0:
                    self.attempt(sc, client, sc.after, ctx)
                    continue
                start = time.monotonic()
                ok, status, reason = self.run_phase(sc, client, sc.after, ctx)
                if ok or status != FAILED:
                    self.record(sc.name, client, status, reason, time.monotonic() - start)
                else:
                    print("  %-16s %-15s failed against Kafka after the restart, running the scenario "
                          "once more: %s" % (client, sc.name, reason.replace("\n", " | ")), flush=True)
                    failed.append(client)
        return failed

    def ctx(self, client, sc, attempt=0):
        return Ctx(client, sc.name, self.broker, self.memory, sc.budget, attempt)

    def restart(self, sig):
        """Stop the broker with sig and start it again on the same port and
        data dir. Returns a failure message, or None if all went well."""
        try:
            code = self.broker.stop(sig)
        except BrokerError as e:
            problem = str(e)
        else:
            problem = None
            if sig.name == "SIGTERM" and code != 0:
                problem = "broker exited with code %s on SIGTERM (expected a clean 0)\n%s" % (
                    code, self.broker.log_tail())
        try:
            self.broker.start()
        except BrokerError as e:
            self.stopped = True
            return (problem + "\n" if problem else "") + "restart failed: %s" % e
        return problem


def print_table(results, scenarios, client_names):
    notes = []
    rows = []
    for sc in scenarios:
        row = [sc]
        for c in client_names:
            status, reason = results.get((sc, c), (SKIPPED, "not run"))
            cell = status
            if status != PASSED:
                if reason not in notes:
                    notes.append(reason)
                cell += " [%d]" % (notes.index(reason) + 1)
            row.append(cell)
        rows.append(row)
    header = ["scenario"] + client_names
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip()
    print()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    if notes:
        print("\nNotes:")
        for i, n in enumerate(notes, 1):
            first, *rest = n.splitlines() or [""]
            print("[%d] %s" % (i, first))
            for l in rest:
                print("    " + l)


def main():
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="compat-matrix-")
    # Drivers inherit it: some client log lines are expected from one broker only.
    os.environ["COMPAT_BROKER"] = args.broker
    if args.broker == "kafka":
        home = os.environ.get("KAFKA_HOME", "")
        if not os.path.isfile(os.path.join(home, "bin", "kafka-server-start.sh")):
            print("--broker kafka needs KAFKA_HOME to be a Kafka distribution (compat/kafka/dist.sh makes one)")
            print("0 passed, 1 failed, 0 skipped")
            return 2
        binary = "Apache Kafka in " + home
        broker = KafkaBroker(home, workdir, BROKER_OVERRIDES)  # Kafka's own config names
    else:
        binary = os.environ.get("KLAMM_BIN", DEFAULT_BIN)
        if not os.access(binary, os.X_OK):
            print("klamm binary not found or not executable: %s (build it or set KLAMM_BIN)" % binary)
            print("0 passed, 1 failed, 0 skipped")
            return 2
        broker = Broker(binary, workdir, BROKER_OVERRIDES)
    missing = {}
    for c in args.clients:
        reason = clients.missing_reason(c)
        if reason:
            missing[c] = reason
            print("!" * 72 + "\n!!! %s IS MISSING: %s\n" % (c, reason) + "!" * 72, file=sys.stderr)
    matrix = Matrix(args, broker, missing)

    try:
        broker.start()
    except BrokerError as e:
        print("broker failed to start: %s" % e)
        print("0 passed, 1 failed, 0 skipped")
        return 1
    print("broker %s on %s, data in %s" % (binary, broker.bootstrap, workdir), flush=True)
    try:
        matrix.run()
    finally:
        try:
            broker.stop()
        except BrokerError as e:
            print("warning at shutdown: %s" % e)

    print_table(matrix.results, args.scenarios, args.clients)
    counts = {s: sum(1 for st, _ in matrix.results.values() if st == s) for s in (PASSED, FAILED, SKIPPED)}
    if counts[FAILED] or args.keep_data:
        print("\nbroker log and data kept in %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (counts[PASSED], counts[FAILED], counts[SKIPPED]))
    return 1 if counts[FAILED] else 0


if __name__ == "__main__":
    sys.exit(main())
