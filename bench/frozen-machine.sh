#!/bin/sh
# The frozen-machine figure of docs/benchmarks.md: a three-machine process lab, every process of
# machine 1 (the active master's, here) frozen with SIGSTOP, then 1 MiB uploads one after
# another through machines 2 and 3's coordinators, each timed; the first one after the freeze is
# the figure. The lab is made without agents (--no-agent), as when the figures were taken.
# Usage: bench/frozen-machine.sh [ADDRESS_PREFIX [UPLOADS]]  (repository root)
# HANODE_BIN=path runs the lab with that binary (an older build, say).
set -eu
prefix=${1:-127.0.38}
n=${2:-6}
make build >/dev/null
bin=${HANODE_BIN:-./hanode}
work=$(mktemp -d /tmp/hanode-frozen-machine.XXXXXX)
dir=$work/lab
obj=$work/object.bin
trap '"$bin" lab resume --dir "$dir" m1 >/dev/null 2>&1 || true; "$bin" lab down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$bin" lab up --dir "$dir" --address-prefix "$prefix" --no-agent >/dev/null
set -a; . "$dir/env"; set +a
HANODE_S3_ENDPOINTS=https://$prefix.2:9000,https://$prefix.3:9000
export HANODE_S3_ENDPOINTS
head -c 1048576 /dev/urandom >"$obj"
./hanode mb s3://frozen >/dev/null
./hanode cp "$obj" s3://frozen/warm >/dev/null
echo "active master: $(./hanode leader | head -1)"
"$bin" lab pause --dir "$dir" m1 >/dev/null
i=1
while [ "$i" -le "$n" ]; do
  s=$(date +%s%N)
  if ./hanode cp "$obj" "s3://frozen/k$i" >/dev/null 2>&1; then r=ok; else r=failed; fi
  e=$(date +%s%N)
  echo "upload $i after the freeze: $r in $(( (e - s) / 1000000 )) ms"
  i=$((i + 1))
done
