#!/bin/sh
# The data-path benchmark of docs/benchmarks.md: a three-machine process lab, the two ceilings
# (disk write with fsync, loopback TCP copy) and `hanode bench` at c=16 for 4 KiB, 1 MiB and
# 64 MiB objects, PUT then GET. Usage: bench/s3.sh [LAB_DIR]   (from the repository root)
set -eu
dir=${1:-/tmp/hanode-bench-lab}
make build >/dev/null
./hanode lab down --dir "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
./hanode lab up --dir "$dir" --address-prefix 127.0.38 >/dev/null
trap './hanode lab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
set -a; . "$dir/env"; set +a
s3=https://127.0.38.1:9000
echo "== ceilings"
echo "disk, 8 MiB writes, one fdatasync at the end (dd conv=fdatasync):"
dd if=/dev/zero of="$dir/dd.test" bs=8M count=64 conv=fdatasync 2>&1 | tail -1
echo "disk, 4 KiB writes each synced (dd oflag=dsync):"
dd if=/dev/zero of="$dir/dd.test" bs=4k count=2000 oflag=dsync 2>&1 | tail -1
rm -f "$dir/dd.test"
echo "disk, a datanode's durable create (4 KiB, fsync, rename, fsync dir):"
go run ./bench/fsync "$dir"
go run ./bench/loopback -bytes 4294967296
echo "== hanode bench (3 machines, R=2, c=16, coordinator $s3)"
for size in 4KiB 1MiB 64MiB; do
  case $size in 64MiB) n=48 keys=16;; 1MiB) n=1500 keys=64;; *) n=6000 keys=256;; esac
  ./hanode bench --endpoint "$s3" --size $size --count $n --keys $keys --concurrency 16 --op put --bucket "bench-$(echo $size | tr A-Z a-z)" | tail -n +2
  ./hanode bench --endpoint "$s3" --size $size --count $n --keys $keys --concurrency 16 --op get --bucket "bench-$(echo $size | tr A-Z a-z)" | tail -n +3
done
