#!/usr/bin/env bash
# bench/s3.sh — the data-path benchmark of docs/benchmarks.md: SeaweedFS and hanode side by side
# in one run, the same load generator, sizes and concurrency, and the ratios.
#
#   SeaweedFS  3 masters, 3 volume servers, a filer with its S3 gateway, replication 001 (two
#              copies on two volume servers), plain HTTP, default settings (no fsync), on
#              $WEED_PREFIX.1-3. A benchmark anchor, not a dependency: the `weed` binary is built
#              once from the pinned module into $WEED (outside the repository) when missing.
#   hanode     a three-machine process lab (`hanode lab up`, R = 2, mutual TLS on every hop,
#              fsync before acknowledging) on $HANODE_PREFIX.1-3, measured at machine 1's
#              coordinator and through machine 1's proxy.
#
# Load: `hanode bench` (minio-go, every GET byte verified against what the PUT wrote) with
# $BENCH_CONC workers; per size, a warm-up PUT run on each target in the bucket it is measured
# in, then $BENCH_DURATION of PUTs on each target one after the other, then GETs of those keys.
# Prints one table with the ratios hanode / SeaweedFS. Run it under the heavy-work lock when the
# machine is shared: flock /tmp/hanode-heavy.lock bench/s3.sh
#
# Usage: bench/s3.sh [DIR]   (from the repository root; DIR default /tmp/hanode-bench-s3)
# Settings (environment): BENCH_SIZES ("4KiB 1MiB"), BENCH_CONC (16), BENCH_DURATION (15s),
# BENCH_WARMUP (3s), BENCH_ONLY ("seaweedfs coordinator proxy"), HANODE_PREFIX (127.0.115),
# WEED_PREFIX (127.0.116), WEED (~/.cache/hanode-bench/weed), HANODE_BIN (./hanode, built with
# make build when not given), BENCH_PPROF=1 (CPU profiles of the three controllers, machine 1's
# coordinator, datanode and proxy and machine 2's datanode during each hanode run, in DIR/pprof),
# BENCH_WEED_TLS=1 (SeaweedFS's S3 gateway serves HTTPS, with a self-signed ECDSA certificate,
# so that the client pays for TLS on both sides).
#
# Where the CPU went: every run also reads the user+system CPU time of each server process
# (/proc/PID/stat) and the load generator's own (its --json cpu_seconds), and a second table
# gives the cores each used and the servers' CPU per operation. DIR on a tmpfs (/dev/shm/...)
# takes fsync's cost out of both sides: a way to measure how much of a gap the disk is.
set -euo pipefail

dir=${1:-/tmp/hanode-bench-s3}
SIZES=${BENCH_SIZES:-4KiB 1MiB}
CONC=${BENCH_CONC:-16}
DUR=${BENCH_DURATION:-15s}
WARM=${BENCH_WARMUP:-3s}
ONLY=${BENCH_ONLY:-seaweedfs coordinator proxy}
HP=${HANODE_PREFIX:-127.0.115}
WP=${WEED_PREFIX:-127.0.116}
WEED=${WEED:-$HOME/.cache/hanode-bench/weed}
WEED_MODULE=github.com/seaweedfs/seaweedfs@v0.0.0-20261109003541-7506e5f91cd6

log() { printf 'bench: %s\n' "$*" >&2; }

if [ -z "${HANODE_BIN:-}" ]; then
	make build >/dev/null
	HANODE_BIN=./hanode
fi
hn=$(realpath "$HANODE_BIN")

# --- SeaweedFS binary, built once outside the repository ------------------------------------
if [[ " $ONLY " == *" seaweedfs "* ]] && [ ! -x "$WEED" ]; then
	log "building SeaweedFS ($WEED_MODULE) into $WEED; this takes a while"
	src=$(cd /tmp && go mod download -json "$WEED_MODULE" | jq -r .Dir)
	build=$(dirname "$WEED")/seaweedfs-src
	mkdir -p "$(dirname "$WEED")"
	rm -rf "$build" && cp -r "$src" "$build" && chmod -R u+w "$build"
	(cd "$build" && go build -o "$WEED" ./weed)
fi

# --- start both -----------------------------------------------------------------------------
pids=()
declare -A LABEL # pid -> the process's label in the CPU table
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$hn" lab down --dir "$dir/lab" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$hn" lab down --dir "$dir/lab" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/pprof"

wait_http() { # url what
	for _ in $(seq 600); do
		curl -sk -o /dev/null "$1" && return 0
		sleep 0.1
	done
	log "$2 did not answer at $1"
	exit 1
}

weed_url() { if [ -n "${BENCH_WEED_TLS:-}" ]; then echo "https://$WP.1:8333"; else echo "http://$WP.1:8333"; fi; }

if [[ " $ONLY " == *" seaweedfs "* ]]; then
	log "SeaweedFS on $WP.1-3${BENCH_WEED_TLS:+, its S3 gateway on HTTPS}"
	peers="$WP.1:9333,$WP.2:9333,$WP.3:9333"
	for i in 1 2 3; do
		mkdir -p "$dir/weed/m$i" "$dir/weed/v$i"
		"$WEED" master -ip="$WP.$i" -ip.bind="$WP.$i" -port=9333 -mdir="$dir/weed/m$i" -peers="$peers" \
			-defaultReplication=001 -volumeSizeLimitMB=1024 >"$dir/weed/master$i.log" 2>&1 &
		pids+=($!)
		LABEL[$!]=weed-master
	done
	for i in 1 2 3; do wait_http "http://$WP.$i:9333/cluster/status" "SeaweedFS master $i"; done
	for i in 1 2 3; do
		"$WEED" volume -ip="$WP.$i" -ip.bind="$WP.$i" -port=8080 -dir="$dir/weed/v$i" -mserver="$peers" \
			-max=0 >"$dir/weed/volume$i.log" 2>&1 &
		pids+=($!)
		LABEL[$!]=weed-volume
	done
	for i in 1 2 3; do wait_http "http://$WP.$i:8080/status" "SeaweedFS volume $i"; done
	mkdir -p "$dir/weed/filer"
	tlsargs=()
	if [ -n "${BENCH_WEED_TLS:-}" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$WP.1" \
			-addext "subjectAltName=IP:$WP.1" -keyout "$dir/weed/s3.key" -out "$dir/weed/s3.crt" 2>/dev/null
		tlsargs=(-s3.cert.file="$dir/weed/s3.crt" -s3.key.file="$dir/weed/s3.key")
	fi
	"$WEED" filer -ip="$WP.1" -ip.bind="$WP.1" -port=8888 -master="$peers" -defaultStoreDir="$dir/weed/filer" \
		-s3 -s3.port=8333 "${tlsargs[@]}" >"$dir/weed/filer.log" 2>&1 &
	pids+=($!)
	LABEL[$!]=weed-filer+s3
	wait_http "$(weed_url)/" "SeaweedFS S3 gateway"
fi

if [[ " $ONLY " == *" coordinator "* || " $ONLY " == *" proxy "* ]]; then
	log "hanode lab on $HP.1-3"
	"$hn" lab up --dir "$dir/lab" --address-prefix "$HP" >/dev/null
	while read -r pid label; do LABEL[$pid]=$label; done < <(jq -r '.machines[].processes[] | "\(.pid) \(.roles | join("+"))"' "$dir/lab/lab.json")
fi

# --- the load ------------------------------------------------------------------------------
# endpoint and environment per target; SeaweedFS's gateway has no identities configured, so any
# key pair is accepted.
endpoint() {
	case $1 in
	seaweedfs) weed_url ;;
	coordinator) jq -r '.endpoints.s3[0]' "$dir/lab/lab.json" ;;
	proxy) jq -r '.endpoints.proxies[0] // .endpoints.proxy' "$dir/lab/lab.json" ;;
	esac
}
run_bench() { # target op size duration bucket -> JSON on stdout
	local t=$1
	shift
	if [ "$t" = seaweedfs ]; then
		env -i PATH="$PATH" HOME="$dir/weed" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchbenchbench \
			${BENCH_WEED_TLS:+AWS_CA_BUNDLE="$dir/weed/s3.crt"} "$hn" bench --endpoint "$(endpoint "$t")" --json "$@"
	else
		(
			set -a
			. "$dir/lab/env"
			set +a
			exec "$hn" bench --endpoint "$(endpoint "$t")" --json "$@"
		)
	fi
}

# profile_start target tag: CPU profiles of the roles that serve the target while it runs.
prof=()
profile_start() {
	prof=()
	[ -n "${BENCH_PPROF:-}" ] && [ "$1" != seaweedfs ] || return 0
	local secs=${DUR%s}
	secs=$((secs > 4 ? secs - 2 : secs))
	local m1="$dir/lab/m1" lab=$dir/lab/lab.json
	local -a urls=()
	local i
	for i in 0 1 2; do
		urls+=("controller-m$((i + 1))=$(jq -r --argjson i $i '[.machines[$i].processes[] | select(.roles | index("controller"))][0].url' "$lab")")
	done
	urls+=("coordinator-m1=$(jq -r '.endpoints.s3[0]' "$lab")")
	urls+=("datanode-m1=$(jq -r '[.machines[0].processes[] | select(.roles | index("datanode"))][0].url' "$lab")")
	urls+=("datanode-m2=$(jq -r '[.machines[1].processes[] | select(.roles | index("datanode"))][0].url' "$lab")")
	[ "$1" = proxy ] && urls+=("proxy-m1=$(jq -r '.endpoints.proxies[0] // .endpoints.proxy' "$lab")")
	local u
	for u in "${urls[@]}"; do
		# node.pem: machine 1's certificate and key in one file (security/pki).
		curl -sS --fail --cacert "$m1/pki/ca.crt" --cert "$m1/pki/node.pem" \
			-o "$dir/pprof/$2-${u%%=*}.pprof" "${u#*=}/debug/pprof/profile?seconds=$secs" 2>>"$dir/pprof/curl.err" &
		prof+=($!)
	done
}
profile_wait() { for p in "${prof[@]}"; do wait "$p" || true; done; }

# cpu_ticks: "label ticks" per process of either system (user+system time, in clock ticks).
cpu_ticks() {
	local pid st
	for pid in "${!LABEL[@]}"; do
		st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		st=${st##*) } # after the command name, which may hold spaces
		echo "${LABEL[$pid]} $(echo "$st" | awk '{ print $12 + $13 }')"
	done
}
HZ=$(getconf CLK_TCK)

declare -A RES CPU
measure() { # target op size bucket
	local t=$1 op=$2 size=$3 bucket=$4 out tag
	tag="$t-$op-$(echo "$size" | tr A-Z a-z)"
	cpu_ticks >"$dir/$tag.cpu0"
	profile_start "$t" "$tag"
	local args=(--op "$op" --size "$size" --duration "$DUR" --keys "$KEYS" --concurrency "$CONC" --bucket "$bucket")
	[ "$op" = get ] && args+=(--prepared)
	if ! out=$(run_bench "$t" "${args[@]}" 2>"$dir/$tag.err"); then
		log "$tag failed: $(tail -1 "$dir/$tag.err")"
	fi
	cpu_ticks >"$dir/$tag.cpu1"
	profile_wait
	echo "$out" >"$dir/$tag.json"
	# Cores each kind of process used during the run (only the target's side), then the client.
	local secs want
	secs=$(echo "$out" | jq -r '.seconds // 0' 2>/dev/null || echo 0)
	case $t in seaweedfs) want='^weed' ;; *) want='^[^w]' ;; esac
	CPU[$tag]=$(awk -v hz="$HZ" -v secs="$secs" -v want="$want" '
		FNR == NR { before[$1] += $2; next }
		$1 ~ want { after[$1] += $2 }
		END { if (secs <= 0) exit; for (l in after) printf "%s=%.2f ", l, (after[l] - before[l]) / hz / secs }' \
		"$dir/$tag.cpu0" "$dir/$tag.cpu1")
	CPU[$tag]+="client=$(echo "$out" | jq -r --argjson s "${secs:-0}" 'if $s > 0 then (.cpu_seconds / $s * 100 | round / 100) else 0 end' 2>/dev/null || echo 0)"
	local r
	r=$(echo "$out" | jq -r --arg op "$op" '.results[] | select(.op == $op) | "\(.ops_per_sec) \(.mb_per_sec) \(.p50_ms) \(.p99_ms) \(.errors)"' 2>/dev/null || true)
	RES[$tag]=${r:-"0 0 0 0 -"}
	log "$tag: $(echo "${RES[$tag]}" | awk '{ printf "%.1f ops/s, %.1f MB/s, p50 %.1f ms, p99 %.1f ms, %s errors", $1, $2, $3, $4, $5 }')"
}

log "load before the runs: $(uptime)"
for size in $SIZES; do
	case $size in 4KiB | 4kib) KEYS=256 ;; *) KEYS=64 ;; esac
	s=$(echo "$size" | tr A-Z a-z)
	for t in $ONLY; do
		run_bench "$t" --op put --size "$size" --duration "$WARM" --keys "$KEYS" --concurrency "$CONC" --bucket "$t-$s" >/dev/null 2>&1 ||
			log "warm-up $t $size failed"
	done
	for op in put get; do
		for t in $ONLY; do measure "$t" "$op" "$size" "$t-$s"; done
	done
done
load_after=$(uptime)

# --- the table -----------------------------------------------------------------------------
{
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; $CONC workers, ${DUR} per run after a ${WARM} warm-up; load after: ${load_after##*average: }"
	echo
	echo "| size | op | SeaweedFS | hanode coordinator | ratio | hanode proxy | ratio | p99 ms (SW / coord / proxy) |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for size in $SIZES; do
		s=$(echo "$size" | tr A-Z a-z)
		for op in put get; do
			sw=${RES[seaweedfs-$op-$s]:-"0 0 0 0 -"}
			co=${RES[coordinator-$op-$s]:-"0 0 0 0 -"}
			px=${RES[proxy-$op-$s]:-"0 0 0 0 -"}
			awk -v size="$size" -v op="$op" -v sw="$sw" -v co="$co" -v px="$px" 'BEGIN {
				split(sw, a, " "); split(co, b, " "); split(px, c, " ")
				small = size ~ /^4/
				f = small ? 1 : 2; unit = small ? " obj/s" : " MB/s"
				r1 = a[f] > 0 ? sprintf("%.2f×", b[f] / a[f]) : "-"
				r2 = a[f] > 0 ? sprintf("%.2f×", c[f] / a[f]) : "-"
				printf "| %s | %s | %.1f%s | %.1f%s | %s | %.1f%s | %s | %.0f / %.0f / %.0f |\n", size, toupper(op), a[f], unit, b[f], unit, r1, c[f], unit, r2, a[4], b[4], c[4]
			}'
		done
	done
	echo
	echo "Cores used during each run (CPU seconds per second; the servers of the target only, then the load generator) and the servers' CPU per operation:"
	echo
	echo "| size | op | target | rate | servers' cores | client cores | servers' CPU ms per op | by process (cores) |"
	echo "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"
	for size in $SIZES; do
		s=$(echo "$size" | tr A-Z a-z)
		for op in put get; do
			for t in $ONLY; do
				tag="$t-$op-$s"
				[ -n "${CPU[$tag]:-}" ] || continue
				echo "${CPU[$tag]}" | tr ' ' '\n' | sort | awk -F= -v size="$size" -v op="$op" -v t="$t" -v res="${RES[$tag]}" '
					$1 == "" { next }
					$1 == "client" { client = $2; next }
					{ server += $2; parts = parts (parts != "" ? ", " : "") $1 " " $2 }
					END {
						split(res, r, " ")
						small = size ~ /^4/
						rate = small ? sprintf("%.1f obj/s", r[1]) : sprintf("%.1f MB/s", r[2])
						per = (r[1] > 0) ? sprintf("%.2f", server / r[1] * 1000) : "-"
						printf "| %s | %s | %s | %s | %.2f | %.2f | %s | %s |\n", size, toupper(op), t, rate, server, client, per, parts
					}'
			done
		done
	done
} | tee "$dir/results.md"
log "raw outputs in $dir${BENCH_PPROF:+, profiles in $dir/pprof}"
