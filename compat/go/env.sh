# Sourced by the scripts in compat/go: keeps every Go download and cache
# under the repository's target/ directory (so CI reuses them and
# `rm -rf target` removes them) and never fetches another Go toolchain.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export GOPATH="$repo/target/go"
export GOMODCACHE="$repo/target/go/mod"
export GOCACHE="$repo/target/go/cache"
export GOFLAGS="-modcacherw"
export GOTOOLCHAIN=local
# Where build.sh puts the driver binaries (compat/harness/clients.py looks there).
GO_DRIVERS="$repo/target/compat-go"

# Whether the go toolchain is there. If not, says so and returns 1, or 2
# with CI=true, where a missing toolchain must fail rather than be skipped.
require_go() {
    if command -v go >/dev/null; then
        return 0
    fi
    if [ "${CI:-}" = true ]; then
        echo "$1: the go toolchain is not installed (CI=true: this is a failure)" >&2
        return 2
    fi
    echo "$1: the go toolchain is not installed; skipping" >&2
    return 1
}
