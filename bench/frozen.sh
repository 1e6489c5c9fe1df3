#!/bin/sh
# The frozen-datanode benchmark of docs/benchmarks.md: a three-machine process lab, `hanode bench`
# 1 MiB PUT and GET at c=16 against machine 1's coordinator, first healthy, then with machine 2's
# datanode frozen (SIGSTOP) for the whole run, then resumed. Every GET byte is verified; any
# failed operation is counted (the bench exits non-zero, the script carries on).
# Usage: bench/frozen.sh [LAB_DIR [ADDRESS_PREFIX [DURATION]]]   (from the repository root)
set -eu
dir=${1:-/tmp/hanode-frozen-lab}
prefix=${2:-127.0.39}
dur=${3:-30s}
bin=${HANODE_BIN:-./hanode}
[ -n "${HANODE_BIN:-}" ] || make build >/dev/null
"$bin" lab down --dir "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
"$bin" lab up --dir "$dir" --address-prefix "$prefix" >/dev/null
trap '"$bin" lab resume --dir "$dir" m2/datanode >/dev/null 2>&1 || true; "$bin" lab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
set -a; . "$dir/env"; set +a
s3=https://$prefix.1:9000
run() { # op phase
  # --count 0 and a duration: a fixed time window, so a stalled run shows as few ops, not a hang.
  "$bin" bench --endpoint "$s3" --size 1MiB --duration "$dur" --keys 64 --concurrency 16 --op "$1" --bucket frozen \
    | sed "s/^/$2: /" || echo "$2: $1 had failures (see above)"
}
echo "== 3 machines, R=2, 1 MiB objects, 16 workers, $dur per run, coordinator $s3"
run put healthy
run get healthy
"$bin" lab pause --dir "$dir" m2/datanode >/dev/null
echo "== m2/datanode frozen (SIGSTOP)"
run put frozen
run get frozen
"$bin" lab resume --dir "$dir" m2/datanode >/dev/null
echo "== m2/datanode resumed"
run put resumed
run get resumed
