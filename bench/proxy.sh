#!/usr/bin/env bash
# bench/proxy.sh — hanode's proxy role against nginx and HAProxy, on this machine, one command.
#
# Each proxy under test runs alone on one core (taskset -c $PROXY_CPU; nginx worker_processes 1,
# HAProxy nbthread 1, hanode GOMAXPROCS=1) in front of the same three backends (bench/backend, a
# minimal Go HTTP/1.1 server), sticky by client address the way each does it:
#   nginx    hash $remote_addr consistent, upstream keepalive
#   HAProxy  balance source, hash-type consistent, hash-balance-factor 125, http-reuse always
#   hanode   --role proxy, standalone: fixed --proxy-upstreams and certificate files, no etcd
# wrk/h2load and the backends share the other core (taskset -c $LOAD_CPU). TLS 1.3 with one
# ECDSA P-256 certificate, logs off. Workloads: 1 KiB and 64 KiB GETs over keep-alive
# (wrk -c64), 1 KiB with "Connection: close" (a TCP and TLS handshake per request), and 1 KiB
# over HTTP/2 (h2load). Reported: requests/s, p50 and p99 latency, and the proxy's CPU seconds
# (utime+stime of its processes from /proc) per 100k requests.
#
# Needs root to apt-get install nginx, haproxy, wrk and nghttp2-client when they are missing.
# Settings (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 2), BENCH_CONNS (64),
# BENCH_STREAMS (h2load streams per connection, 10), BENCH_PROXY_CPU (1), BENCH_LOAD_CPU (0),
# BENCH_ONLY ("nginx haproxy hanode"), BENCH_WORKLOADS ("1k 64k close h2"), BENCH_DIR (work dir; default a fresh /tmp dir),
# BENCH_PPROF=1 (profile hanode: $BENCH_DIR/hanode-<workload>.pprof; see bench/pprof),
# BENCH_BASELINE (another hanode binary, e.g. main's build: measured in the same run as the
# proxy "hanode-base", for before/after figures side by side).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-64}
STREAMS=${BENCH_STREAMS:-10}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
ONLY=${BENCH_ONLY:-nginx haproxy hanode}
WORKLOADS=${BENCH_WORKLOADS:-1k 64k close h2}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/hanode-bench.XXXXXX)}
mkdir -p "$WORK"
TICK=$(getconf CLK_TCK)
declare -A PORT=([nginx]=19443 [haproxy]=19444 [hanode]=19445 [hanode-base]=19446)
if [ -n "${BENCH_BASELINE:-}" ] && [ -z "${BENCH_ONLY:-}" ]; then ONLY="nginx haproxy hanode-base hanode"; fi
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
	if [ "$(id -u)" != 0 ]; then
		log "bench: please install: ${missing[*]} (apt-get install ${missing[*]})"
		exit 1
	fi
	log "bench: installing ${missing[*]}"
	# Keep the packages' services from starting (nginx would take port 80).
	rcd=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && rcd=1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -n "$rcd" ] && rm -f /usr/sbin/policy-rc.d
fi

# --- build and certificate --------------------------------------------------------------
log "bench: building hanode and the backend in $WORK"
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$WORK/hanode" . && CGO_ENABLED=0 go build -trimpath -o "$WORK/backend" ./bench/backend &&
	CGO_ENABLED=0 go build -trimpath -o "$WORK/pprof" ./bench/pprof)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.test \
	-addext "subjectAltName=IP:127.0.0.1,DNS:bench.test" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"

# --- backends ----------------------------------------------------------------------------
UPSTREAMS=()
for i in 1 2 3; do
	GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$WORK/backend" -listen "127.0.0.1:1808$i" -name "b$i" &
	PIDS+=($!)
	UPSTREAMS+=("b$i=http://127.0.0.1:1808$i")
done

# --- proxy configurations ---------------------------------------------------------------
nginx_ver=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
if printf '%s\n1.25.1\n' "$nginx_ver" | sort -V -C; then # older than 1.25.1: http2 on listen
	listen="listen 127.0.0.1:${PORT[nginx]} ssl http2;"
else
	listen="listen 127.0.0.1:${PORT[nginx]} ssl; http2 on;"
fi
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
$(if [ "$(id -u)" = 0 ]; then echo "user root;"; fi)
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log crit;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	upstream be {
		hash \$remote_addr consistent;
		server 127.0.0.1:18081;
		server 127.0.0.1:18082;
		server 127.0.0.1:18083;
		keepalive 256;
	}
	server {
		$listen
		ssl_certificate $WORK/cert.pem;
		ssl_certificate_key $WORK/key.pem;
		ssl_protocols TLSv1.3;
		keepalive_requests 1000000;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffer_size 8k;
			proxy_buffers 16 8k;
			proxy_max_temp_file_size 0;
		}
	}
}
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
	nbthread 1
	ssl-default-bind-options ssl-min-ver TLSv1.3
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	http-reuse always
frontend fe
	bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK/combined.pem alpn h2,http/1.1
	default_backend be
backend be
	balance source
	hash-type consistent
	hash-balance-factor 125
	server b1 127.0.0.1:18081
	server b2 127.0.0.1:18082
	server b3 127.0.0.1:18083
EOF

start_proxy() { # name workload-tag -> sets PID
	case $1 in
	nginx)
		taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
		;;
	haproxy)
		taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg" -db &
		;;
	hanode | hanode-base)
		# A standalone proxy: fixed upstreams and certificate files, no etcd (docs/operations.md).
		[ -d "$WORK/hn/pki" ] || "$WORK/hanode" init --data-dir "$WORK/hn" --name bench --address 127.0.0.1 --cluster-name bench --role proxy >/dev/null
		local cmd=("$WORK/hanode")
		[ "$1" = hanode-base ] && cmd=("$BENCH_BASELINE")
		# BENCH_PPROF=1: the same roles.Run under a CPU profile, one per workload (bench/pprof).
		[ -n "${BENCH_PPROF:-}" ] && [ "$1" = hanode ] && cmd=("$WORK/pprof" -cpuprofile "$WORK/hanode-$2.pprof")
		HANODE_ROLE=proxy HANODE_NAME=bench HANODE_ADDRESS=127.0.0.1 HANODE_CLUSTER_NAME=bench \
			HANODE_DATA_DIR="$WORK/hn" HANODE_LOG_LEVEL=warn \
			HANODE_PROXY_HTTPS_PORT="${PORT[$1]}" HANODE_PROXY_HTTP_PORT=19080 \
			HANODE_PROXY_UPSTREAMS="$(IFS=,; echo "${UPSTREAMS[*]}")" \
			HANODE_PROXY_CERT_FILE="$WORK/cert.pem" HANODE_PROXY_KEY_FILE="$WORK/key.pem" \
			GOMAXPROCS=1 taskset -c "$PROXY_CPU" "${cmd[@]}" >>"$WORK/hanode.log" 2>&1 &
		;;
	esac
	PID=$!
	PIDS+=("$PID")
	for _ in $(seq 100); do
		code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:${PORT[$1]}/1k" || true)
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	log "bench: $1 did not come up"
	exit 1
}

stop_proxy() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$PID" ] || keep+=("$p"); done
	PIDS=("${keep[@]}") # never signal a PID that may have been reused
}

cpu_ticks() { # utime+stime of $PID and its children
	local t=0 p
	for p in $PID $(pgrep -P "$PID" || true); do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
	done
	echo "$t"
}

to_ms() { # wrk latency (123.45us, 1.23ms, 1.02s) -> ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

RESULTS=()
record() { # proxy workload requests req/s p50-ms p99-ms cpu-ticks errors
	local cpu
	cpu=$(awk -v t="$7" -v n="$3" -v hz="$TICK" 'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 100000; else print "-" }')
	RESULTS+=("| $2 | $1 | $(printf '%.0f' "$4") | $5 | $6 | $cpu | $8 |")
	log "bench: $1, $2: $4 req/s, p50 $5 ms, p99 $6 ms, $cpu CPU s/100k requests, errors: $8"
}

run_wrk() { # proxy workload path [wrk args...]
	local name=$1 wl=$2 path=$3
	shift 3
	local url="https://127.0.0.1:${PORT[$name]}$path"
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARM}s" "$@" "$url" >/dev/null
	local c0 c1 out
	c0=$(cpu_ticks)
	out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@" "$url")
	c1=$(cpu_ticks)
	echo "$out" >"$WORK/$name-$wl.txt"
	local n rps p50 p99 errs
	n=$(echo "$out" | awk '/requests in/ { print $1 }')
	rps=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
	p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
	p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
	errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }')
	record "$name" "$wl" "$n" "$rps" "$p50" "$p99" "$((c1 - c0))" "${errs:-none}"
}

run_h2() { # proxy
	local name=$1 url="https://127.0.0.1:${PORT[$1]}/1k"
	taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$WARM" "$url" >/dev/null
	local c0 c1 out
	c0=$(cpu_ticks)
	out=$(taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$DUR" --log-file="$WORK/$name-h2.log" "$url")
	c1=$(cpu_ticks)
	echo "$out" >"$WORK/$name-h2.txt"
	local n rps p50 p99 failed
	n=$(echo "$out" | awk '/^requests:/ { print $8 }')
	rps=$(echo "$out" | awk '/^finished in/ { print $4 }')
	failed=$(echo "$out" | awk '/^requests:/ { print $10 }')
	# The log has one line per request: start (µs), status, duration (µs).
	read -r p50 p99 < <(awk '{ print $3 }' "$WORK/$name-h2.log" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f %.2f\n", a[int(NR*0.5)] / 1000, a[int(NR*0.99)] / 1000 }')
	local errs="none"
	[ "${failed:-0}" != 0 ] && errs="$failed failed"
	record "$name" "HTTP/2 1 KiB (h2load -m$STREAMS)" "$n" "$rps" "$p50" "$p99" "$((c1 - c0))" "$errs"
}

# Every run gets a freshly started proxy.
for name in $ONLY; do
	log "bench: --- $name"
	for wl in $WORKLOADS; do
		start_proxy "$name" "$wl"
		case $wl in
		1k) run_wrk "$name" "1 KiB keep-alive" /1k ;;
		64k) run_wrk "$name" "64 KiB keep-alive" /64k ;;
		close) run_wrk "$name" "1 KiB Connection: close" /1k -H "Connection: close" ;;
		h2) run_h2 "$name" ;;
		esac
		stop_proxy
	done
done

{
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
		"proxy on CPU $PROXY_CPU, load generator and backends on CPU $LOAD_CPU; ${DUR}s per run after ${WARM}s warm-up, $CONNS connections."
	echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 { print $3 }'), $("$WORK/hanode" version | awk '{ print $1, $2 }'), $(go version | awk '{ print $3 }'), $(wrk -v 2>&1 | awk 'NR==1 { print $1, $2 }'), h2load $(h2load --version | awk '{ print $NF }')."
	echo
	echo "| workload | proxy | req/s | p50 ms | p99 ms | CPU s / 100k req | errors | against nginx (req/s, CPU, p99) |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"
	# The ratios of each proxy's figures to nginx's on the same workload of this run.
	printf '%s\n' "${RESULTS[@]}" | sort -t'|' -k2,2 -s >"$WORK/rows"
	awk -F'|' '
		FNR == NR { if ($3 ~ /^ *nginx *$/) { rate[$2] = $4; p99[$2] = $6; cpu[$2] = $7 }; next }
		{
			r = "-"
			if (rate[$2] + 0 > 0 && cpu[$2] + 0 > 0 && p99[$2] + 0 > 0 && $3 !~ /^ *nginx *$/)
				r = sprintf("%.2f×, %.2f×, %.2f×", $4 / rate[$2], $7 / cpu[$2], $6 / p99[$2])
			print $0 " " r " |"
		}' "$WORK/rows" "$WORK/rows"
} | tee "$WORK/results.md"
log "bench: raw outputs in $WORK"
if [ -n "${BENCH_PPROF:-}" ]; then
	log "bench: profiles: go tool pprof -top $WORK/pprof $WORK/hanode-1k.pprof (1k, 64k, close, h2)"
fi
