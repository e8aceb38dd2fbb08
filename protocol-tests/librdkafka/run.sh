#!/usr/bin/env bash
# Runs librdkafka's own regression suite (the copy shipped in the rdkafka-sys
# crate pinned by Cargo.lock) against a single klamm broker.
#
# Build needs a C/C++ toolchain, make, python3 and these Debian packages:
#   build-essential zlib1g-dev libzstd-dev rapidjson-dev
# (lz4 is the copy bundled with librdkafka; SSL, SASL and curl are disabled;
# without rapidjson-dev 0110_batch_size skips itself.)
#
# Usage: run.sh [--all-candidates] [--build-only] [--timeout SECS] [TEST...]
# See README.md in this directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/runner.py" "$@"
