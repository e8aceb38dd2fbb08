#!/usr/bin/env bash
# Runs franz-go's own test suite for its client package (pkg/kgo, at the
# version go.mod pins) against a real klamm broker: the unit tests and the
# integration tests, which create topics, produce, consume and run consumer
# group chains against the broker named by KGO_SEEDS.
#
# Tests listed in kgo-excluded.txt (features Klamm does not have yet) are not
# run. The script fails if any other test fails, and ends with the line
# "N passed, N failed, N skipped" (top-level tests; skipped = excluded + the
# tests that skipped themselves, each listed with its reason).
#
# Environment:
#   KLAMM_BIN          broker binary (default target/release/klamm)
#   KGO_TEST_RECORDS   records per group-chain test (default 100000; franz-go's
#                      own default is 500000, far too slow on 2 cores)
#   KGO_TEST_TIMEOUT   go test -timeout (default 10m)
#   KGO_TEST_RUN       only the tests matching this go test -run pattern
#   KGO_LOG_LEVEL      the tests' client logging: info (default), debug, none
#   CI=true            a missing go toolchain is a failure, not a skip
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ./env.sh
status=0
require_go kgo-tests.sh || status=$?
case $status in
    1) echo "0 passed, 0 failed, 1 skipped"; exit 0 ;;
    2) echo "0 passed, 1 failed, 0 skipped"; exit 1 ;;
esac

klamm=${KLAMM_BIN:-$repo/target/release/klamm}
if [ ! -x "$klamm" ]; then
    echo "klamm binary not found or not executable: $klamm (cargo build --release --bin klamm)"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
records=${KGO_TEST_RECORDS:-100000}
timeout=${KGO_TEST_TIMEOUT:-10m}

# NAME  CATEGORY: reason  ->  a -skip pattern of the names.
names=$(sed -e 's/#.*//' kgo-excluded.txt | awk 'NF {print $1}')
skip="^($(echo $names | tr ' ' '|'))\$"

work=$(mktemp -d "${TMPDIR:-/tmp}/kgo-tests.XXXXXX")
broker_log=$work/broker.log
test_log=$work/kgo-test.log
pid=
stop_broker() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    pid=
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

# Compile first, so the broker is not left waiting (the test binary is
# cached under target/go after the first build).
if ! go test -count=1 -run '^$' github.com/twmb/franz-go/pkg/kgo >"$test_log" 2>&1; then
    cat "$test_log"
    echo "could not build the kgo tests"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi

# No initial rebalance delay, as in the images Kafka clients test against:
# the group chains in these tests create many short-lived groups. The broker
# reads KLAMM_* variables as configuration; KLAMM_BIN is not meant for it.
env -u KLAMM_BIN NO_COLOR=1 "$klamm" -o listeners=PLAINTEXT://127.0.0.1:0 -o "log.dirs=$work/data" \
    -o group.initial.rebalance.delay.ms=0 </dev/null >"$broker_log" 2>&1 &
pid=$!
addr=
for _ in $(seq 300); do
    addr=$(grep -m1 'ready to accept connections' "$broker_log" | grep -o 'address=[0-9.]*:[0-9]*' | cut -d= -f2)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    cat "$broker_log"
    echo "klamm did not start (log above)"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
version=$(go list -m -f '{{.Version}}' github.com/twmb/franz-go)
echo "franz-go $version pkg/kgo tests against klamm on $addr (KGO_TEST_RECORDS=$records, timeout $timeout)"
echo "full output: $test_log"

start=$(date +%s)
run_args=()
if [ -n "${KGO_TEST_RUN:-}" ]; then
    run_args=(-run "$KGO_TEST_RUN")
fi
KGO_SEEDS=$addr KGO_TEST_RF=1 KGO_TEST_RECORDS=$records \
    go test -count=1 -v -timeout "$timeout" -skip "$skip" "${run_args[@]}" github.com/twmb/franz-go/pkg/kgo \
    >"$test_log" 2>&1 &
test_pid=$!
# Show each top-level result as it comes.
tail -n +1 -f --pid=$test_pid "$test_log" | grep --line-buffered -E '^--- (FAIL|SKIP)|^(panic:|FAIL|ok) '
wait $test_pid
code=$?
took=$(( $(date +%s) - start ))
stop_broker

passed=$(grep -cE '^--- PASS: ' "$test_log")
failed=$(grep -cE '^--- FAIL: ' "$test_log")
self_skipped=$(grep -cE '^--- SKIP: ' "$test_log")
excluded=$(echo $names | wc -w)
if [ "$code" -ne 0 ] && [ "$failed" -eq 0 ]; then
    # The test binary died (panic, timeout) without reporting a test failure.
    grep -E -A30 '^panic: ' "$test_log" | head -60
    failed=1
fi

echo
echo "franz-go pkg/kgo: $passed passed, $failed failed in ${took}s"
if [ "$failed" -gt 0 ]; then
    echo "failed:"
    grep -E '^--- FAIL: ' "$test_log" | sed 's/^--- FAIL: /  /'
fi
echo "excluded (kgo-excluded.txt):"
sed -e 's/#.*//' kgo-excluded.txt | awk 'NF {print "  " $0}'
if grep -qE '^ *--- SKIP: ' "$test_log"; then
    echo "skipped by the tests themselves (subtests indented):"
    # A test's reason is its first log line (lines follow "=== RUN/CONT/NAME
    # test"), leaving out the topic clean-up the helpers log.
    awk '/^=== (RUN|CONT|NAME) / {cur = $3; next}
         /^ +[A-Za-z_0-9]+\.go:[0-9]+: / {
             if (!(cur in why) && $0 !~ /deleting topic|completed in/) { l = $0; sub(/^ +/, "", l); why[cur] = l }
             next }
         /^ *--- SKIP: / { ind = $0; sub(/--- SKIP:.*/, "", ind); print "  " ind $3 "  " why[$3] }' "$test_log"
fi
if [ "$failed" -eq 0 ]; then
    rm -rf "$work"
else
    echo "broker log and test output kept in $work"
fi
echo "$passed passed, $failed failed, $((self_skipped + excluded)) skipped"
[ "$failed" -eq 0 ]
