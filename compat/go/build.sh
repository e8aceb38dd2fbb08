#!/usr/bin/env bash
# Builds the Go client drivers of the compatibility matrix (franz-go and
# sarama, pinned in go.mod/go.sum) into target/compat-go/. Module downloads
# and the build cache stay under target/go, so re-running is quick.
set -euo pipefail
cd "$(dirname "$0")"
. ./env.sh
status=0
require_go build.sh || status=$?
case $status in 1) exit 0 ;; 2) exit 1 ;; esac
mkdir -p "$GO_DRIVERS"
go build -o "$GO_DRIVERS/franz-go" ./franz
go build -o "$GO_DRIVERS/sarama" ./sarama
echo "go drivers built in $GO_DRIVERS ($(go version | cut -d' ' -f3))"
