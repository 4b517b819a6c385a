#!/usr/bin/env bash
# sonde performance against a running service (--url) and against the
# history a previous process left in its store (--store): the demo traces
# its simulated requests into a SQLite file, stops, and a later `sonde
# performance` reads the same figures back.
set -euo pipefail

bin="${SONDE_BIN_DIR:?run through ctest}"
sonde="$bin/sonde"
demo="$bin/sonde-demo"
for p in "$sonde" "$demo"; do [ -x "$p" ] || { echo "missing $p"; exit 1; }; done

tmp=$(mktemp -d /tmp/sonde-perfcli-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
db="$tmp/history.db"

# A service: traffic for 3 s, then it keeps serving (until we stop it).
SONDE_STORE="$db" "$demo" --web.listen-address 127.0.0.1:0 --simulate 3 \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 200); do
  grep -q '^requests recorded' "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "demo died:"; cat "$tmp/err"; exit 1; }
  sleep 0.05
done
requests=$(sed -n 's/^requests recorded \([0-9]*\)$/\1/p' "$tmp/out")
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || { echo "no request count"; cat "$tmp/out"; exit 1; }
[ -n "$port" ] || { echo "no port"; cat "$tmp/out"; exit 1; }
url="http://127.0.0.1:$port"

# The running service: a table, and JSON.
"$sonde" performance --url "$url" --minutes 10 >"$tmp/table"
cat "$tmp/table"
grep -q '^Operations over the last 10 min' "$tmp/table" || { echo "no title"; exit 1; }
grep -Eq '^OPERATION +COUNT +SUCCESS +AVG +P50 +P95 +P99 +ANOMALY$' "$tmp/table" ||
  { echo "no header"; exit 1; }
count=$(awk '$1 == "request" {print $2}' "$tmp/table")
[ "$count" = "$requests" ] || { echo "url table: request count $count, demo recorded $requests"; exit 1; }
grep -Eq '^backend_call .* (no|YES)$' "$tmp/table" || { echo "backend_call has no baseline verdict"; exit 1; }
"$sonde" performance --url "$url" --operation request --minutes 10 --json >"$tmp/json"
python3 - "$tmp/json" "$requests" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ops = doc["operations"]
assert doc["window_minutes"] == 10, doc
assert len(ops) == 1 and ops[0]["operation"] == "request", ops
o = ops[0]
assert o["count"] == int(sys.argv[2]), (o["count"], sys.argv[2])
d = o["duration_seconds"]
assert 0 < d["min"] <= d["p50"] <= d["p95"] <= d["p99"] <= d["max"] * 1.0101, d
assert 0.9 < o["success_rate"] <= 1, o
PY
set +e
"$sonde" performance --url "$url" --operation no_such_thing >/dev/null 2>&1
[ $? -eq 1 ] || { echo "unknown operation over --url: want exit 1"; exit 1; }
set -e

# Stop the service: its last minute is written. A later reader sees it all.
kill "$pid"
wait "$pid" || true
pid=""
"$sonde" performance --store "$db" --minutes 10 >"$tmp/table2"
cat "$tmp/table2"
count=$(awk '$1 == "request" {print $2}' "$tmp/table2")
[ "$count" = "$requests" ] || { echo "store table: request count $count, demo recorded $requests"; exit 1; }
# The same figures as the service answered (same sketches, same merge).
diff <(awk '$1 ~ /^(request|cache_lookup|backend_call)$/' "$tmp/table") \
     <(awk '$1 ~ /^(request|cache_lookup|backend_call)$/' "$tmp/table2") ||
  { echo "the store's figures differ from the service's"; exit 1; }
SONDE_STORE="$db" "$sonde" performance --hours 1 --operation backend_call --json >"$tmp/json2"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); o=d["operations"][0]; assert o["operation"]=="backend_call" and o["baseline"]["p95"]==0.15, o' "$tmp/json2"

set +e
"$sonde" performance --store "$db" --operation no_such_thing >/dev/null 2>&1
[ $? -eq 1 ] || { echo "unknown operation in the store: want exit 1"; exit 1; }
"$sonde" performance --store "$tmp/missing/x.db" >/dev/null 2>&1
[ $? -eq 3 ] || { echo "missing store: want exit 3"; exit 1; }
"$sonde" performance --hours 0 >/dev/null 2>&1
[ $? -eq 64 ] || { echo "--hours 0: want exit 64"; exit 1; }
"$sonde" performance --url "$url" >/dev/null 2>&1
[ $? -eq 3 ] || { echo "stopped service: want exit 3"; exit 1; }
set -e
echo "sonde performance: service and store agree ($requests requests)"
