#!/usr/bin/env bash
# The training workload of the PGO build (scripts/pgo/build.sh): what a deployment runs, on data this script
# makes, so that it needs nothing outside the repository. Each step is a separate `onedoor` process; an
# instrumented binary writes its counts when it exits (LLVM_PROFILE_FILE, set by build.sh).
#   1. a district's roster (OneRoster 1.2 CSV) and a referral export of as many students, made here;
#   2. `convert --mapping student-referrals` on one thread and on the default threads, then `validate`;
#   3. the roster alone through the `oneroster` mapping;
#   4. every conformance case (every adapter and mapping the project ships);
#   5. the gateway server: referrals posted by concurrent clients, each committed before its answer.
# Code no step runs is laid out as rarely run: the steps cover every adapter, not one alone.
#
# Usage: bash scripts/pgo/train.sh ONEDOOR_BINARY WORK_FOLDER [STUDENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1
work=$2
students=${3:-4000}
posts=${ONEDOOR_PGO_POSTS:-2000}
port=${ONEDOOR_PGO_PORT:-18097}
roster="$work/roster"
mkdir -p "$roster"

echo "-- a roster and referrals of $students students"
cp examples/district-export/manifest.csv "$roster/"
awk -v n="$students" -v dir="$roster" -v referrals="$work/referrals.csv" -f scripts/pgo/export.awk /dev/null

echo "-- student-referrals, one thread and the default threads; validate"
ONEDOOR_THREADS=1 "$bin" convert --mapping student-referrals --input "$work/referrals.csv" --roster "$roster" \
  --format bundle --output "$work/one.ndjson" --report "$work/one.json"
"$bin" convert --mapping student-referrals --input "$work/referrals.csv" --roster "$roster" \
  --output "$work/all.ndjson" --report "$work/all.json"
"$bin" validate --quiet "$work/one.ndjson"
"$bin" validate --quiet "$work/all.ndjson"

echo "-- the roster alone"
"$bin" convert --mapping oneroster --input "$roster" --output "$work/roster.ndjson" --report "$work/roster.json"

echo "-- every conformance case"
"$bin" conformance conformance >/dev/null

echo "-- the gateway server: $posts referrals posted by 8 clients at once, then read back"
server="$work/server"
mkdir -p "$server"
sed -e "s#^listen = .*#listen = \"127.0.0.1:$port\"#" \
    -e "s#^database_url = .*#database_url = \"sqlite://$server/onedoor.db\"#" \
    -e "s#^audit_dir = .*#audit_dir = \"$server/audit\"#" config/onedoor.toml > "$server/onedoor.toml"
key=$("$bin" partners add riverside-sis --config "$server/onedoor.toml" 2>/dev/null)
"$bin" serve --config "$server/onedoor.toml" > "$server/serve.log" 2>&1 &
serving=$!
trap 'kill $serving 2>/dev/null || true' EXIT
ready=no
for _ in $(seq 1 50); do
  if curl -sf "http://127.0.0.1:$port/fhir/metadata" >/dev/null; then ready=yes; break; fi
  sleep 0.2
done
[ "$ready" = yes ] || { echo "the server did not answer on port $port (ONEDOOR_PGO_PORT); its log:" >&2; cat "$server/serve.log" >&2; exit 1; }
request='{"resourceType":"ServiceRequest","status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"3457005"}]},"subject":{"reference":"Patient/training-patient"},"performer":[{"identifier":{"system":"urn:onedoor:agencies","value":"county-food-bank"}}]}'
quoted=$(printf '%s' "$request" | sed 's/["\\]/\\&/g; s/.*/"&"/')
for i in $(seq 1 "$posts"); do
  [ "$i" = 1 ] || echo next
  printf 'url = "http://127.0.0.1:%s/fhir/ServiceRequest"\nrequest = "POST"\nheader = "Content-Type: application/fhir+json"\nheader = "Authorization: Bearer %s"\ndata = %s\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$port" "$key" "$quoted"
done > "$server/posts.curl"
created=$(curl --no-progress-meter --parallel --parallel-max 8 --config "$server/posts.curl" | grep -c '^201$' || true)
echo "$created of $posts answered 201 Created"
[ "$created" = "$posts" ] || { echo "a training post was not accepted; the server's log:" >&2; tail -20 "$server/serve.log" >&2; exit 1; }
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/fhir/ServiceRequest?_count=50" >/dev/null
kill -TERM "$serving"
wait "$serving" || true
trap - EXIT
