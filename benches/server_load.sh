#!/usr/bin/env bash
# Referrals accepted per second and latency for POST /fhir/ServiceRequest with a durable SQLite commit,
# against an axum handler that does nothing, both loaded by wrk from a second process in the same run.
# Usage: bash benches/server_load.sh [seconds] [connections]     (needs wrk: apt-get install wrk)
# ONEDOOR_BENCH_DATABASE_URL=postgres://.../empty_db measures PostgreSQL instead of a fresh SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
connections=${2:-16}
# ONEDOOR_BENCH_NO_BUILD=1 measures the binaries already built (to compare two builds in one session).
[ "${ONEDOOR_BENCH_NO_BUILD:-}" = 1 ] || cargo build --release --bin onedoor --example noop_server >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

sed -e "s#^listen = .*#listen = \"127.0.0.1:8097\"#" \
    -e "s#^database_url = .*#database_url = \"${ONEDOOR_BENCH_DATABASE_URL:-sqlite://$work/onedoor.db}\"#" \
    -e "s#^audit_dir = .*#audit_dir = \"$work/audit\"#" config/onedoor.toml > "$work/onedoor.toml"
key=$("$bin/onedoor" partners add riverside-sis --config "$work/onedoor.toml" 2>/dev/null)
"$bin/onedoor" serve --config "$work/onedoor.toml" > "$work/serve.log" 2>&1 &
"$bin/examples/noop_server" 127.0.0.1:8098 > /dev/null &
sleep 2

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"resourceType":"ServiceRequest","status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"3457005"}]},"subject":{"reference":"Patient/bench-patient"},"performer":[{"identifier":{"system":"urn:onedoor:agencies","value":"county-food-bank"}}]}'
LUA

run() { wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "$1/fhir/ServiceRequest"; }
echo "== noop axum handler";                 noop=$(run http://127.0.0.1:8098);    echo "$noop"
echo "== onedoor POST /fhir/ServiceRequest"; real=$(run http://127.0.0.1:8097);    echo "$real"
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
echo "ratio: onedoor accepts $(rps "$real") referrals/s, the noop handler answers $(rps "$noop") requests/s: $(awk -v a="$(rps "$real")" -v b="$(rps "$noop")" 'BEGIN {printf "%.1f", b/a}')x"
codes=$(echo "$real" | awk '/Non-2xx/ {print $0}'); echo "${codes:-all responses 2xx}"
