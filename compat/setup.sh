#!/usr/bin/env bash
# Installs what the compatibility matrix needs: a Python venv with the pinned
# clients, the pinned Node packages, and (when run as root) kcat.
# Safe to re-run: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")"

# Python clients. A stamp holding the requirements' hash avoids re-running pip.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > .venv/.requirements.sha256
fi

# Node clients. kafkajs-lz4 is optional: if its native part cannot build,
# the matrix reports lz4 as skipped for kafkajs.
if command -v npm >/dev/null; then
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$want" ]; then
        npm ci --no-audit --no-fund --loglevel=error
        echo "$want" > node_modules/.lock.sha256
    fi
else
    echo "setup.sh: npm not found; kafkajs will be reported missing" >&2
fi

# kcat comes from the distribution.
if ! command -v kcat >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq kcat >/dev/null
    else
        echo "setup.sh: kcat not installed (apt-get install kcat); it will be reported missing" >&2
    fi
fi
# The Kafka CLI and Java clients run only with KAFKA_HOME set (see README.md);
# then they need a JDK, which Debian has.
if [ -n "${KAFKA_HOME:-}" ] && ! command -v javac >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    else
        echo "setup.sh: no JDK (apt-get install openjdk-17-jdk-headless); kafka-cli and java will fail" >&2
    fi
fi
bash go/build.sh  # the Go clients, franz-go and sarama
echo "compat setup done"
