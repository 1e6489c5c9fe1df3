#!/bin/sh
# The frozen-datanode benchmark of docs/benchmarks.md: a three-machine process lab (R = 2), and
# `hanode bench` with 1 MiB objects, 16 workers, against machine 1's coordinator: PUT, then GET
# of the keys the PUTs wrote (every byte verified), first healthy, then with machine 2's
# datanode frozen (SIGSTOP) FREEZE_AFTER into the run and kept frozen to its end (so the run
# covers the freeze itself, the seconds before its lease expires, and after), then resumed.
# A failed operation is counted in the ERRORS column (the bench exits non-zero; the script
# carries on).
# Usage: bench/frozen.sh [LAB_DIR [ADDRESS_PREFIX [DURATION [FREEZE_AFTER]]]]  (repository root)
# HANODE_BIN=path runs the lab with that binary (an older build, say); the bench client is
# always ./hanode, built here.
set -eu
dir=${1:-/tmp/hanode-frozen-lab}
prefix=${2:-127.0.39}
dur=${3:-30s}
after=${4:-3}
make build >/dev/null
bin=${HANODE_BIN:-./hanode}
"$bin" lab down --dir "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
"$bin" lab up --dir "$dir" --address-prefix "$prefix" >/dev/null
trap '"$bin" lab resume --dir "$dir" m2/datanode >/dev/null 2>&1 || true; "$bin" lab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
set -a; . "$dir/env"; set +a
s3=https://$prefix.1:9000
bench() { # op phase [extra flags]
  op=$1 phase=$2; shift 2
  ./hanode bench --endpoint "$s3" --size 1MiB --duration "$dur" --keys 64 --concurrency 16 --op "$op" \
    --bucket frozen "$@" 2>&1 | grep -v '^hanode: bench: ' | sed "s/^/$phase: /" || true
}
frozen() { # op [extra flags]
  op=$1; shift
  bench "$op" frozen "$@" &
  sleep "$after"
  "$bin" lab pause --dir "$dir" m2/datanode >/dev/null
  wait
  "$bin" lab resume --dir "$dir" m2/datanode >/dev/null
  # Until m2's datanode is registered again (its lease expired while it was frozen).
  until "$bin" lab status --dir "$dir" 2>/dev/null | grep -Eq '^m2 +[0-9.]+ +datanode +[0-9]+ +running +yes'; do sleep 0.5; done
}
echo "== 3 machines, R=2, 1 MiB objects, 16 workers, $dur per run, coordinator $s3"
bench put healthy
bench get healthy --prepared
echo "== m2/datanode frozen (SIGSTOP) ${after}s into each run, to its end"
frozen put
frozen get --prepared
