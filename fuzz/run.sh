#!/usr/bin/env bash
# Coverage-guided fuzzing of Klamm's decoders for a bounded time (cargo-fuzz, libFuzzer).
#
#   fuzz/run.sh [target...]        all targets when none is named
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 90: five targets stay under 10 minutes)
#   FUZZ_SANITIZER  none (default: works on stable Rust) or address (needs a nightly toolchain)
#   CI=true         a tool that cannot be installed is a failure, not a skip
#
# cargo-fuzz is installed into target/tools when missing. The targets are built into
# target/fuzz and each runs against a scratch corpus, target/fuzz-run/corpus/<target>, with
# the committed seeds of fuzz/corpus/<target> as read-only input: what the run discovers never
# lands in the repository. A crash fails the run and prints the input, its path and base64.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
all_targets=(request batch segment offsets_records config)
seconds=${FUZZ_SECONDS:-90}
sanitizer=${FUZZ_SANITIZER:-none}
CI=${CI:-false}
tools="$root/target/tools"
target_dir="$root/target/fuzz"
work="$root/target/fuzz-run"

if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown fuzz target: $t (known: ${all_targets[*]})" >&2; exit 2; }
done

missing() {
    echo "!!! MISSING: $1" >&2
    [ "$CI" = true ] && exit 1
    echo "!!! fuzzing NOT RUN" >&2
    exit 0
}

# cargo-fuzz: on PATH, or installed into target/tools.
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $tools"
    cargo install cargo-fuzz --locked --root "$tools" >"$root/target/cargo-fuzz-install.log" 2>&1 \
        || { tail -20 "$root/target/cargo-fuzz-install.log" >&2; missing "cargo-fuzz (cargo install cargo-fuzz --locked --root target/tools failed)"; }
fi
cargo fuzz --version

# A sanitizer needs nightly; without one (-s none) stable builds, with coverage instrumentation
# and libFuzzer all the same. Klamm itself is built with debug assertions and overflow checks
# (fuzz/Cargo.toml); -O keeps cargo fuzz from turning them on for every dependency too (its
# default), where an overflow that wraps harmlessly in a release build would be reported.
toolchain=()
if [ "$sanitizer" != none ]; then
    rustup toolchain list 2>/dev/null | grep -q '^nightly' || missing "a nightly toolchain for FUZZ_SANITIZER=$sanitizer (rustup toolchain install nightly)"
    toolchain=(+nightly)
fi
build=(cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz --target-dir "$target_dir" -s "$sanitizer" -O)
echo "+ ${build[*]}"
if ! "${build[@]}"; then
    echo "!!! building the fuzz targets failed" >&2
    exit 1
fi
triple=$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')
bindir="$target_dir/$triple/release"

total=0
failed=()
declare -a rows=()
mkdir -p "$work"
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/$t.log"
    mkdir -p "$corpus" "$artifacts"
    extra=()
    [ -f "fuzz/dict/$t.dict" ] && extra+=("-dict=fuzz/dict/$t.dict")
    # A partition directory of several segments needs more than libFuzzer's default 4 KB.
    [ "$t" = segment ] && extra+=(-max_len=16384)
    echo
    echo "--- fuzzing $t for $seconds s (scratch corpus $corpus, seeds fuzz/corpus/$t)"
    start=$SECONDS
    "$bindir/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | sed 's/^/    /'
    if [ $rc -eq 0 ]; then
        rows+=("$(printf '%-16s %12s %6s s  %s' "$t" "$execs" "$((SECONDS - start))" ok)")
        continue
    fi
    failed+=("$t")
    rows+=("$(printf '%-16s %12s %6s s  %s' "$t" "$execs" "$((SECONDS - start))" "FAILED (exit $rc)")")
    echo "!!! $t failed (libFuzzer exit $rc); the end of its log ($log):"
    tail -60 "$log" | sed 's/^/    /'
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ -z "$input" ]; then
        input=$(ls -t "$artifacts"/* 2>/dev/null | head -1)
    fi
    if [ -n "$input" ] && [ -f "$input" ]; then
        echo "!!! crashing input: $input ($(wc -c <"$input") bytes)"
        echo "!!! base64: $(base64 -w0 "$input")"
        echo "!!! reproduce: $bindir/$t $input"
        # libFuzzer prints no stack for a timeout without a sanitizer runtime: show where the
        # reproducer is after a few seconds.
        if [[ $(basename "$input") == timeout-* ]] && command -v gdb >/dev/null; then
            "$bindir/$t" -timeout=120 "$input" >/dev/null 2>&1 &
            pid=$!
            sleep 5
            if kill -0 "$pid" 2>/dev/null; then
                echo "!!! where it is after 5 s (gdb):"
                timeout 60 gdb -p "$pid" -batch -ex "bt 30" 2>/dev/null | grep -E '^#' | sed 's/^/    /'
            fi
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
        echo "!!! once fixed, keep it as a regression input: cp $input fuzz/corpus/$t/regression-$(basename "$input")"
    else
        echo "!!! no crashing input was written; see $log"
    fi
done

echo
echo "--- fuzzing summary (executions per target)"
for r in "${rows[@]}"; do echo "$r"; done
printf '%-16s %12s\n' total "$total"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing FAILED: ${failed[*]}"
    exit 1
fi
