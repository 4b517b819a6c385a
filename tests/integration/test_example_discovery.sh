#!/usr/bin/env bash
# sonde-example-discovery (seed 000) scraped by a real Prometheus.
#
# The example runs its simulated workload for a few seconds (--simulate),
# then freezes it and keeps serving. Through Prometheus' query API every
# skillmeat_ metric the seed lists must be there with its label values, and
# its totals must equal the simple statistics of
# /api/v1/artifacts/metrics/discovery (exact JSON keys, derived hit rate,
# last scan). The API key, the seed's environment variables, the performance
# log lines and SIGTERM are exercised too.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
bin="$SONDE_BIN_DIR/sonde-example-discovery"
tmp=$(mktemp -d /tmp/sonde-ex-disc-XXXXXX)
pid="" pid2=""
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$pid2" ] && kill "$pid2" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$tmp/ex.err" ] && tail -5 "$tmp/ex.err" >&2
  [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2
  exit 1
}
wait_line() { # file pattern pid -> waits until the file has a line matching
  for _ in $(seq 300); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || fail "the example exited before printing '$2'"
    sleep 0.05
  done
  fail "no '$2' in $1"
}

# A bad setting is refused with a message naming the variable.
if SKILLMEAT_DISCOVERY_CACHE_TTL=soon "$bin" --web.listen-address 127.0.0.1:0 --duration 1 \
  >/dev/null 2>"$tmp/bad.err"; then
  fail "SKILLMEAT_DISCOVERY_CACHE_TTL=soon was accepted"
fi
grep -q 'SKILLMEAT_DISCOVERY_CACHE_TTL="soon"' "$tmp/bad.err" || fail "no clear error: $(cat "$tmp/bad.err")"
help=$("$bin" --help)
grep -q ':8000' <<<"$help" || fail "--help does not name the default port 8000"

key=k3y-$$
SONDE_API_KEY=$key SKILLMEAT_GITHUB_TOKEN=ghp_example SKILLMEAT_ENABLE_AUTO_POPULATION=true \
  "$bin" --web.listen-address 127.0.0.1:0 --simulate 4 --duration 120 \
  >"$tmp/ex.out" 2>"$tmp/ex.err" &
pid=$!
wait_line "$tmp/ex.out" '^listening on ' "$pid"
addr=$(sed -n 's/^listening on //p' "$tmp/ex.out")
port=$("$svc" free-port)
"$svc" prometheus start "$tmp/prom" "$port" "$addr" 1s
api="http://127.0.0.1:$port/api/v1"
wait_line "$tmp/ex.out" '^workload stopped' "$pid"

# ---- the JSON endpoints: API key, exact keys, derived values ----
base="http://$addr/api/v1/artifacts"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics/discovery")
[ "$code" = 401 ] || fail "metrics/discovery without the key answered $code, expected 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "$base/health/discovery")
[ "$code" = 401 ] || [ "$code" = 403 ] || fail "health/discovery with a wrong key answered $code"
auth=(-H "Authorization: Bearer $key")
stats=$(curl -fsS "${auth[@]}" "$base/metrics/discovery") || fail "metrics/discovery with the key failed"
health=$(curl -fsS "${auth[@]}" "$base/health/discovery") || fail "health/discovery with the key failed"

keys() { jq -c "$1 | keys_unsorted" <<<"$2"; }
want_stats='["total_scans","total_artifacts_discovered","total_imports","total_metadata_fetches","cache_hits","cache_misses","cache_hit_rate","errors","last_scan"]'
[ "$(keys . "$stats")" = "$want_stats" ] || fail "stats keys: $(keys . "$stats")"
[ "$(keys .last_scan "$stats")" = '["timestamp","duration_ms","artifact_count"]' ] ||
  fail "last_scan keys: $(keys .last_scan "$stats")"
[ "$(keys . "$health")" = '["status","timestamp","features","configuration","metrics"]' ] ||
  fail "health keys: $(keys . "$health")"
[ "$(keys .features "$health")" = '["discovery_enabled","auto_population_enabled","github_token_configured"]' ] ||
  fail "features keys: $(keys .features "$health")"
[ "$(keys .configuration "$health")" = '["cache_ttl_seconds"]' ] || fail "configuration keys"
[ "$(jq -c .features <<<"$health")" = '{"discovery_enabled":true,"auto_population_enabled":true,"github_token_configured":true}' ] ||
  fail "features: $(jq -c .features <<<"$health")"
[ "$(jq .configuration.cache_ttl_seconds <<<"$health")" = 3600 ] || fail "default cache TTL"
[ "$(jq -r .status <<<"$health")" = healthy ] || fail "status: $(jq -r .status <<<"$health")"
# The workload is frozen: the health document's metrics are the same figures.
[ "$(jq -c .metrics <<<"$health")" = "$(jq -c . <<<"$stats")" ] || fail "health .metrics differs from metrics/discovery"
iso='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
[[ $(jq -r .timestamp <<<"$health") =~ $iso ]] || fail "health timestamp: $(jq -r .timestamp <<<"$health")"
[[ $(jq -r .last_scan.timestamp <<<"$stats") =~ $iso ]] || fail "last_scan timestamp"
j() { jq -r "$1" <<<"$stats"; }
scans=$(j .total_scans) hits=$(j .cache_hits) misses=$(j .cache_misses)
fetches=$(j .total_metadata_fetches) imports=$(j .total_imports) errors=$(j .errors)
[ "$scans" -ge 2 ] || fail "only $scans scans in 4 s"
[ "$imports" -ge 3 ] || fail "only $imports imports in 4 s"
[ "$hits" -gt 0 ] && [ "$misses" -gt 0 ] || fail "cache hits $hits, misses $misses"
[ $((hits + misses)) = "$fetches" ] || fail "hits + misses != total_metadata_fetches"
rate=$(jq -r '((.cache_hits / (.cache_hits + .cache_misses)) * 1000 | round) / 1000' <<<"$stats")
[ "$(j .cache_hit_rate)" = "$rate" ] || fail "cache_hit_rate $(j .cache_hit_rate), expected $rate"
[ "$(j .total_artifacts_discovered)" -ge "$(j .last_scan.artifact_count)" ] || fail "artifacts discovered"
awk -v d="$(j .last_scan.duration_ms)" 'BEGIN { exit !(d > 0 && d < 1000) }' || fail "last scan duration_ms $(j .last_scan.duration_ms)"

# ---- Prometheus: every family and label set, totals equal to the JSON ----
query() { curl -fsS --get --data-urlencode "query=$1" "$api/query"; }
value() { query "$1" | jq -r '.data.result[0].value[1] // empty'; }
got=""
for _ in $(seq 150); do
  got=$(value 'sum(skillmeat_discovery_scans_total)' || true)
  [ "$got" = "$scans" ] && break
  sleep 0.2
done
[ "$got" = "$scans" ] || fail "sum(skillmeat_discovery_scans_total) is '$got', the JSON says $scans"
[ "$(value 'up{job="sonde"}')" = 1 ] || fail "target not up"

expect() { # promql expected-value
  local v; v=$(value "$1")
  [ "$v" = "$2" ] || fail "$1 is '$v', expected $2"
}
labels() { # promql label -> sorted comma-separated values
  query "$1" | jq -r "[.data.result[].metric.$2] | sort | join(\",\")"
}
expect 'skillmeat_discovery_scan_duration_count' "$scans"
expect 'skillmeat_discovery_artifacts_found' "$(j .last_scan.artifact_count)"
expect 'sum(skillmeat_github_metadata_requests_total)' "$fetches"
expect 'skillmeat_github_metadata_requests_total{cache_hit="true"}' "$hits"
expect 'skillmeat_github_metadata_requests_total{cache_hit="false"}' "$misses"
expect 'skillmeat_github_metadata_fetch_duration_count' "$fetches"
expect 'skillmeat_discovery_cache_hits_total' "$hits"
expect 'skillmeat_discovery_cache_misses_total' "$misses"
expect 'sum(skillmeat_bulk_import_requests_total)' "$imports"
expect 'sum(skillmeat_bulk_import_duration_count)' "$imports"
expect 'sum(skillmeat_discovery_errors_total)' "$errors"

[ "$(labels skillmeat_discovery_scans_total status)" = "no_artifacts_dir,partial_success,success" ] ||
  fail "scan statuses: $(labels skillmeat_discovery_scans_total status)"
[ "$(labels skillmeat_bulk_import_requests_total status)" = "failed,partial_success,success" ] ||
  fail "import statuses: $(labels skillmeat_bulk_import_requests_total status)"
[ "$(labels skillmeat_bulk_import_artifacts_total result)" = "failed,success" ] ||
  fail "import results: $(labels skillmeat_bulk_import_artifacts_total result)"
[ "$(labels skillmeat_bulk_import_duration_count batch_size)" = "1-10,11-50,51+" ] ||
  fail "batch size ranges: $(labels skillmeat_bulk_import_duration_count batch_size)"
[ "$(labels skillmeat_github_metadata_requests_total cache_hit)" = "false,true" ] ||
  fail "cache_hit values"
[ "$(labels skillmeat_discovery_errors_total error_type)" = "HTTPError,PermissionError,ValueError" ] ||
  fail "error types: $(labels skillmeat_discovery_errors_total error_type)"
# Histograms carry the Prometheus default buckets (seconds).
les=$(query 'skillmeat_discovery_scan_duration_bucket' | jq -r '[.data.result[].metric.le | tonumber? // "+Inf"] | length')
[ "$les" = 12 ] || fail "skillmeat_discovery_scan_duration has $les buckets, expected 12"
for h in skillmeat_bulk_import_duration skillmeat_github_metadata_fetch_duration; do
  n=$(query "count(${h}_bucket)" | jq -r '.data.result[0].value[1]')
  [ "$n" -ge 12 ] || fail "$h has $n bucket series"
done
# Plausible values: scans mostly find the directory, most artifacts import,
# a scan takes 1-200 ms on average.
v=$(value 'skillmeat_discovery_scans_total{status="success"}')
[ "${v:-0}" -gt 0 ] || fail "no successful scan"
v=$(value 'sum(skillmeat_discovery_scans_total{status="no_artifacts_dir"}) / sum(skillmeat_discovery_scans_total)')
awk -v v="$v" 'BEGIN { exit !(v < 0.5) }' || fail "share of scans without artifacts directory $v"
v=$(value 'skillmeat_bulk_import_artifacts_total{result="success"}')
[ "${v:-0}" -gt "$imports" ] || fail "imported artifacts $v"
v=$(value 'skillmeat_discovery_scan_duration_sum / skillmeat_discovery_scan_duration_count')
awk -v v="$v" 'BEGIN { exit !(v > 0.001 && v < 0.2) }' || fail "mean scan duration $v s"
lastErr=$(curl -fsS "$api/targets" | jq -r '.data.activeTargets[0].lastError')
[ -z "$lastErr" ] || fail "Prometheus reports a scrape error: $lastErr"

# ---- the performance log lines of the decorator ----
grep -q '"operation":"discovery_scan".*"duration_ms":[0-9.]*,"status":"success"' "$tmp/ex.err" ||
  fail "no discovery_scan line with duration_ms and status"
grep -q '"operation":"bulk_import".*"duration_ms"' "$tmp/ex.err" || fail "no bulk_import line"
grep -q '"operation":"metadata_fetch"' "$tmp/ex.err" || fail "no metadata_fetch line"
if grep -q ghp_example "$tmp/ex.err"; then fail "the GitHub token was logged"; fi

# ---- SIGTERM stops it cleanly ----
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"

# ---- the feature flags: discovery off, TTL from the environment ----
SKILLMEAT_ENABLE_AUTO_DISCOVERY=false SKILLMEAT_DISCOVERY_CACHE_TTL=60 \
  "$bin" --web.listen-address 127.0.0.1:0 --duration 30 >"$tmp/ex2.out" 2>"$tmp/ex2.err" &
pid2=$!
wait_line "$tmp/ex2.out" '^listening on ' "$pid2"
addr2=$(sed -n 's/^listening on //p' "$tmp/ex2.out")
sleep 1.5
# No key configured: loopback clients are served.
h2=$(curl -fsS "http://$addr2/api/v1/artifacts/health/discovery") || fail "health without key (loopback)"
[ "$(jq -c .features <<<"$h2")" = '{"discovery_enabled":false,"auto_population_enabled":false,"github_token_configured":false}' ] ||
  fail "features with discovery off: $(jq -c .features <<<"$h2")"
[ "$(jq .configuration.cache_ttl_seconds <<<"$h2")" = 60 ] || fail "TTL from the environment"
[ "$(jq .metrics.total_scans <<<"$h2")" = 0 ] || fail "scans while discovery is off"
[ "$(jq .metrics.last_scan <<<"$h2")" = null ] || fail "last_scan before any scan"
[ "$(jq '.metrics.total_imports > 0' <<<"$h2")" = true ] || fail "imports stopped with discovery off"
m2=$(curl -fsS "http://$addr2/metrics") || fail "/metrics"
grep -q '^skillmeat_discovery_scans_total{status="success"} 0$' <<<"$m2" ||
  fail "/metrics without the zero scan series"
kill -INT "$pid2"
rc=0; wait "$pid2" || rc=$?
pid2=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGINT"
echo "test_example_discovery: $scans scans, $imports imports, $fetches metadata fetches ($hits hits), $errors errors: Prometheus and the JSON agree"
