#!/bin/bash
# The partition figures of docs/benchmarks.md: a three-machine Docker lab, the active master's
# machine cut off the network (`hanode lab partition`), and the commands a user runs with only
# what `source DIR/env` sets, timed. First `hanode cp` uploads back to back from the moment of
# the partition for SETTLE seconds (default 10; 0: none), what the data path does while the
# cluster reacts; then, once a controller names a new active master, `hanode leader` x5,
# `status` x3, `cp` up x3, `cp` down x3 and `ls`.
# Usage: bench/partition.sh [DEB] [LAB_DIR]   (from the repository root; DEB defaults to the
# newest dist/hanode_*_ARCH.deb of `make packages`; the hanode binary is ./hanode, or $HANODE_BIN)
set -u
deb=${1:-$(ls -t dist/hanode_*_"$(dpkg --print-architecture)".deb | head -1)}
dir=${2:-/tmp/hanode-partition-lab}
settle=${SETTLE:-10}
bin=${HANODE_BIN:-$(pwd)/hanode}
work=$(mktemp -d)
"$bin" lab down --dir "$dir" >/dev/null 2>&1 || true
"$bin" lab up --driver docker --machines 3 --dir "$dir" --package "$deb" | tail -1 || exit 1
trap '"$bin" lab heal --dir "$dir" >/dev/null 2>&1; "$bin" lab down --dir "$dir" >/dev/null 2>&1; rm -rf "$work"' EXIT
set -a; . "$dir/env"; set +a
now() { date +%s.%N; }
# timed CMD...: one line with the exit code, the duration and the start of the output.
timed() {
	local s e rc
	s=$(now); "$bin" "$@" >"$work/out" 2>&1; rc=$?; e=$(now)
	printf '%-44s rc=%d %6.2f s  %s\n' "hanode $*" $rc "$(echo "$e - $s" | bc)" "$(head -c 90 "$work/out" | tr '\n' ' ')"
}
head -c 1048576 /dev/urandom >"$work/obj"
"$bin" mb s3://partition >/dev/null && "$bin" cp -q "$work/obj" s3://partition/before || exit 1
echo "== healthy"
timed leader; timed status; timed cp -q "$work/obj" s3://partition/healthy; timed cp -q s3://partition/before "$work/got"
old=$("$bin" leader --json | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')
"$bin" lab partition "$old" --dir "$dir"
p=$(now)
echo "== uploads back to back from the partition of $old (t = seconds since the partition)"
i=0
while [ "$(echo "$(now) - $p < $settle" | bc)" = 1 ]; do
	printf 't=%5.2f  ' "$(echo "$(now) - $p" | bc)"; timed cp -q "$work/obj" "s3://partition/settle$i"; i=$((i + 1))
done
while :; do
	n=$("$bin" leader --json 2>/dev/null | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')
	[ -n "$n" ] && [ "$n" != "$old" ] && break
	sleep 0.1
done
echo "== $n named active master at t=$(printf '%.1f' "$(echo "$(now) - $p" | bc)") s; then"
for i in 1 2 3 4 5; do timed leader; done
for i in 1 2 3; do timed status; done
for i in 1 2 3; do timed cp -q "$work/obj" "s3://partition/after$i"; done
for i in 1 2 3; do rm -f "$work/got"; timed cp -q s3://partition/before "$work/got"; if [ -f "$work/got" ] && ! cmp -s "$work/obj" "$work/got"; then echo "  the downloaded object differs"; fi; done
timed ls s3://partition
