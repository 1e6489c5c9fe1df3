#!/bin/sh
# S3 compatibility, measured by a peer's suite: runs ceph/s3-tests (s3tests/functional/test_s3.py,
# unmodified) against the single-machine appliance (what `make run` starts) and prints passed,
# failed and skipped cases by area. docs/benchmarks.md records the figure.
#
# Usage (from the repository root):
#   bench/s3-tests.sh SUITE_DIR [PYTEST_ARGS...]
# SUITE_DIR is a checkout of https://github.com/ceph/s3-tests, or its bare git directory (the
# suite is then exported to the work directory, never into this repository). PYTEST_ARGS
# select cases, e.g. -k 'multipart'. Environment: WORK (default /tmp/hanode-s3-tests) holds the
# appliance's data, the suite's config and results; ADDRESS (default 127.0.55.10) is the
# loopback address the appliance serves on; HANODE, when set, is the binary to run instead of
# the one `make build` makes.
#
# The suite's Python dependencies come from Debian (installed with apt-get when missing).
set -eu
[ $# -ge 1 ] || { echo "usage: $0 SUITE_DIR [PYTEST_ARGS...]" >&2; exit 2; }
suite=$(cd "$1" && pwd); shift
work=${WORK:-/tmp/hanode-s3-tests}
addr=${ADDRESS:-127.0.55.10}
repo=$(pwd)

py=/usr/bin/python3 # Debian's, with the packages below (not a python3 earlier on PATH)
pkgs="python3-boto3 python3-botocore python3-pytest python3-munch python3-gevent python3-isodate python3-lxml python3-tz python3-yaml python3-httplib2 python3-requests"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else echo "$0: please install:$missing" >&2; exit 1; fi
fi

if [ -z "${HANODE:-}" ]; then make build >/dev/null; HANODE=$repo/hanode; fi
if [ -f "$work/hanode.pid" ]; then kill "$(cat "$work/hanode.pid")" 2>/dev/null || true; fi
rm -rf "$work"
mkdir -p "$work/app"

# The suite: a checkout as is, or exported from a bare git directory.
if [ -f "$suite/s3tests/functional/test_s3.py" ]; then
  tests=$suite
  rev=$(git -C "$suite" rev-parse --short HEAD 2>/dev/null || echo unknown)
else
  tests=$work/s3-tests
  mkdir -p "$tests"
  git --git-dir="$suite" archive HEAD | tar -x -C "$tests"
  rev=$(git --git-dir="$suite" rev-parse --short HEAD)
fi

# The appliance: no arguments but the address (from the environment), so that it is exactly
# the single-machine appliance (one replica, every role).
(cd "$work/app" && HANODE_ADDRESS=$addr exec "$HANODE" >"$work/hanode.log" 2>&1) &
echo $! >"$work/hanode.pid"
trap 'kill "$(cat "$work/hanode.pid")" 2>/dev/null || true' EXIT INT TERM
ca=$work/app/hanode-data/pki/ca.crt
i=0
until [ -f "$ca" ] && curl -sf --cacert "$ca" "https://$addr:9000/readyz" >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 120 ] || { echo "$0: the appliance did not get ready; see $work/hanode.log" >&2; exit 1; }
  sleep 0.5
done

# The users the suite's config names (main, alt, tenant, iam, and the two IAM account roots,
# which only the IAM cases use).
user() {
  (cd "$work/app" && HANODE_ADDRESS=$addr "$HANODE" user add --json --description "ceph/s3-tests $1" \
    --data-dir ./hanode-data --controllers "https://$addr:8900") |
    "$py" -c 'import json,sys; u=json.load(sys.stdin); print(u["access_key"], u["secret_key"])'
}
# The built-in KMS's keys the SSE-KMS cases name (kms_keyid and kms_keyid2 of [s3 main]).
kmskey() {
  (cd "$work/app" && HANODE_ADDRESS=$addr "$HANODE" kms create "$1" \
    --data-dir ./hanode-data --controllers "https://$addr:8900") >/dev/null
}
kmskey testkey-1
kmskey testkey-2
section() { # name, email
  # hanode names a user by its access key: that is the canonical user id and display name
  # its ACLs and listings show, so the suite's user_id and display_name are the access key.
  set -- "$1" "$2" $(user "$1")
  printf '[%s]\ndisplay_name = %s\nuser_id = %s\nemail = %s\naccess_key = %s\nsecret_key = %s\n' "$1" "$3" "$3" "$2" "$3" "$4"
}
{
  printf '[DEFAULT]\nhost = %s\nport = 9000\nis_secure = True\nssl_verify = False\n\n' "$addr"
  printf '[fixtures]\nbucket prefix = hanode-{random}-\n\n'
  section "s3 main" "main@example.com"
  printf 'api_name = us-east-1\nkms_keyid = testkey-1\nkms_keyid2 = testkey-2\n\n'
  section "s3 alt" "alt@example.com"; echo
  section "s3 tenant" "tenant@example.com"; printf 'tenant = testx\n\n'
  section "iam" "iam@example.com"; echo
  section "iam root" "iamroot@example.com"; echo
  section "iam alt root" "iamaltroot@example.com"
} >"$work/s3tests.conf"

echo "ceph/s3-tests $rev, s3tests/functional/test_s3.py, against the appliance at https://$addr:9000 ($("$HANODE" version | head -n 1))"
# SSL_CERT_FILE and REQUESTS_CA_BUNDLE: the cases that open their own TLS connections
# (100-continue; a POST upload sent with requests without verify=False) trust the CA.
(cd "$tests" && SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca S3TEST_CONF="$work/s3tests.conf" "$py" -m pytest -q -p no:cacheprovider --junitxml="$work/junit.xml" \
  s3tests/functional/test_s3.py "$@" >"$work/pytest.log" 2>&1) || true
tail -n 1 "$work/pytest.log"

# By area: a case's area is the first rule its name matches.
"$py" - "$work/junit.xml" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
areas = [
    ("versioning", r"version|delete_marker"), ("object lock", r"object_lock|retention|legal_hold"),
    ("lifecycle", r"lifecycle|_lc_"), ("tagging", r"tagging|_tags?_|_tag$"), ("CORS", r"cors"),
    ("policies", r"policy"), ("ACLs", r"acl|grant|ownership|_perm"), ("encryption", r"encrypt|sse|_kms|_enc$"),
    ("checksums", r"checksum|crc"), ("POST uploads", r"post_object"), ("conditionals", r"if_?match|if_?none|ifmodified|ifunmodified|conditional|precondition"),
    ("ranges", r"range"), ("multipart", r"multipart|upload_part|_part_"), ("copy", r"copy"),
    ("listings", r"list|prefix|delimiter|marker|max_keys|encoding"), ("metadata", r"meta"),
    ("presign/auth", r"presign|expires|auth|raw_|anonymous|signature|_v2_"),
    ("bucket ops", r"^test_bucket|buckets"), ("object CRUD", r"^test_object|^test_get|^test_put|^test_delete|atomic"),
]
stats = {}
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    name = tc.get("name").split("[")[0]
    area = next((a for a, rx in areas if re.search(rx, name)), "other")
    if tc.find("skipped") is not None: r = 2
    elif tc.find("failure") is not None or tc.find("error") is not None: r = 1
    else: r = 0
    stats.setdefault(area, [0, 0, 0])[r] += 1
tot = [sum(s[i] for s in stats.values()) for i in range(3)]
print(f"{'area':<14} {'passed':>6} {'failed':>6} {'skipped':>7}")
for a, _ in areas + [("other", "")]:
    if a in stats:
        p, f, s = stats[a]
        print(f"{a:<14} {p:>6} {f:>6} {s:>7}")
print(f"{'total':<14} {tot[0]:>6} {tot[1]:>6} {tot[2]:>7}   ({sum(tot)} cases)")
EOF
echo "details: $work/pytest.log, $work/junit.xml"
