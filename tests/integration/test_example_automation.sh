#!/usr/bin/env bash
# sonde-example-automation (seed 001) scraped by a real Prometheus.
#
# Metrics off by default: no socket, no sonde thread. With
# PROMETHEUS_METRICS_ENABLED=true, Prometheus (0.5 s scrapes) must see every
# ancestry_ family of the seed's taxonomy with exactly its label names and
# value sets, the latency buckets [0.5, 1, 2, 4, 8, 16], and the API circuit
# breaker going through closed (0), open (1) and half-open (0.5) with a
# trip counted. METRICS_EXPORT_PORT and METRICS_NAMESPACE are honoured, bad
# values refused; `sonde generate-config` makes the seed's Grafana dashboard
# (a panel on each family) from the running example; SIGTERM ends it.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
bin="$SONDE_BIN_DIR/sonde-example-automation"
tmp=$(mktemp -d /tmp/sonde-ex-auto-XXXXXX)
pids=()
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2
  exit 1
}
start() { # name env... -- args...: runs the example, waits for its first line
  local name=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "$bin" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  last=$!
  for _ in $(seq 200); do
    [ -s "$tmp/$name.out" ] && return 0
    kill -0 "$last" 2>/dev/null || fail "$name exited: $(cat "$tmp/$name.err")"
    sleep 0.05
  done
  fail "$name printed nothing"
}
stop() { # pid: SIGTERM, must exit 0
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
}

# ---- bad settings are refused, naming the variable ----
for bad in "METRICS_NAMESPACE=1bad" "METRICS_EXPORT_PORT=99999" "PROMETHEUS_METRICS_ENABLED=maybe"; do
  if env PROMETHEUS_METRICS_ENABLED=true "$bad" "$bin" --web.listen-address 127.0.0.1:0 --duration 1 \
    >/dev/null 2>"$tmp/bad.err"; then
    fail "$bad was accepted"
  fi
  grep -q "${bad%%=*}" "$tmp/bad.err" || fail "$bad: no clear error: $(cat "$tmp/bad.err")"
done

# ---- metrics off (the default): no socket, no sonde thread ----
start off -- --duration 30
grep -qx 'metrics disabled' "$tmp/off.out" || fail "default run says: $(cat "$tmp/off.out")"
sleep 0.5
sockets=$(find "/proc/$last/fd" -lname 'socket:*' 2>/dev/null | wc -l)
[ "$sockets" = 0 ] || fail "metrics off, yet $sockets sockets are open"
nthreads=$(ls "/proc/$last/task" | wc -l)
[ "$nthreads" = 5 ] || fail "metrics off: $nthreads threads, expected 5 (main and four actions)"
stop "$last"

# ---- METRICS_EXPORT_PORT (no --web.listen-address) ----
eport=$("$svc" free-port)
start port PROMETHEUS_METRICS_ENABLED=true METRICS_EXPORT_PORT="$eport" -- --duration 30
grep -q ":$eport\$" "$tmp/port.out" || fail "METRICS_EXPORT_PORT=$eport: $(cat "$tmp/port.out")"
m=$(curl -fsS "http://127.0.0.1:$eport/metrics") || fail "no /metrics on port $eport"
grep -q '^ancestry_api_requests_total{' <<<"$m" || fail "no ancestry_api_requests_total on port $eport"
stop "$last"

# ---- METRICS_NAMESPACE ----
start ns PROMETHEUS_METRICS_ENABLED=true METRICS_NAMESPACE=genealogy -- --web.listen-address 127.0.0.1:0 --duration 30
addr=$(sed -n 's/^listening on //p' "$tmp/ns.out")
m=$(curl -fsS "http://$addr/metrics") || fail "/metrics with METRICS_NAMESPACE"
grep -q '^genealogy_api_latency_seconds_bucket{' <<<"$m" || fail "no genealogy_api_latency_seconds"
grep -q '^genealogy_circuit_breaker_state{' <<<"$m" || fail "no genealogy_circuit_breaker_state"
if grep -q '^ancestry_' <<<"$m"; then fail "ancestry_ names with METRICS_NAMESPACE=genealogy"; fi
stop "$last"

# ---- metrics on, scraped by Prometheus ----
start on PROMETHEUS_METRICS_ENABLED=true -- --web.listen-address 127.0.0.1:0 --duration 120
main=$last
addr=$(sed -n 's/^listening on //p' "$tmp/on.out")
[ -n "$addr" ] || fail "no address: $(cat "$tmp/on.out")"
port=$("$svc" free-port)
"$svc" prometheus start "$tmp/prom" "$port" "$addr" 500ms
api="http://127.0.0.1:$port/api/v1"
query() { curl -fsS --get --data-urlencode "query=$1" "$api/query"; }
value() { query "$1" | jq -r '.data.result[0].value[1] // empty'; }

# The API breaker's whole cycle: an outage opens it (a trip), the cooldown
# turns it half-open, three good trials close it (the outage comes every 6 s).
seen=""
for _ in $(seq 100); do
  seen=$(query 'max_over_time(ancestry_circuit_breaker_state{breaker="api"}[1m]) == 1 and on() count_over_time((ancestry_circuit_breaker_state{breaker="api"} == 0.5)[1m:250ms]) > 0 and on() ancestry_circuit_breaker_state{breaker="api"} == 0' |
    jq -r '.data.result | length')
  [ "$seen" = 1 ] && break
  sleep 0.5
done
[ "$seen" = 1 ] || fail "Prometheus did not see the API breaker open (1), half-open (0.5) and closed (0) again"
trips=$(value 'ancestry_circuit_breaker_trip_total{breaker="api"}')
[ "${trips:-0}" -ge 1 ] || fail "trips: '$trips'"
vals=$(curl -fsS --get --data-urlencode 'query=ancestry_circuit_breaker_state[1m]' "$api/query" |
  jq -r '[.data.result[].values[][1]] | unique | join(",")')
[[ "$vals" =~ ^(0|0\.5|1)(,(0|0\.5|1))*$ ]] || fail "breaker states other than 0, 0.5, 1: $vals"
[ "$(value 'up{job="sonde"}')" = 1 ] || fail "target not up"

# Every family: its label names (besides job and instance), exactly.
label_names() {
  query "$1" | jq -c '[.data.result[].metric | del(.__name__, .job, .instance) | keys] | unique'
}
check_labels() { # family want-json
  local got; got=$(label_names "$1")
  [ "$got" = "$2" ] || fail "$1: label names $got, expected $2"
}
check_labels ancestry_api_latency_seconds_count '[["endpoint","status_family"]]'
check_labels ancestry_api_requests_total '[["endpoint","method","result"]]'
check_labels ancestry_cache_hit_ratio '[["endpoint","service"]]'
check_labels ancestry_cache_operations_total '[["endpoint","operation","service"]]'
check_labels ancestry_session_uptime_seconds '[[]]'
check_labels ancestry_session_refresh_total '[["reason"]]'
check_labels ancestry_action_processed_total '[["action","result"]]'
check_labels ancestry_circuit_breaker_state '[["breaker"]]'
check_labels ancestry_circuit_breaker_trip_total '[["breaker"]]'
check_labels ancestry_rate_limiter_delay_seconds_count '[[]]'
check_labels ancestry_worker_thread_count '[[]]'

values_of() { # promql label -> sorted comma-separated distinct values
  query "$1" | jq -r "[.data.result[].metric.$2] | unique | join(\",\")"
}
check_values() { # promql label want
  local got; got=$(values_of "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $2 values $got, expected $3"
}
check_values ancestry_api_requests_total result cached,failure,retry,success
check_values ancestry_api_requests_total method GET,POST
check_values ancestry_api_requests_total endpoint badge_details,inbox,match_list,profile_details,send_message,tree_search
check_values ancestry_api_latency_seconds_count status_family 2xx,4xx,5xx
check_values ancestry_cache_operations_total operation expire,get,invalidate,set
check_values ancestry_cache_hit_ratio service api,tree
check_values ancestry_session_refresh_total reason api_forced,browser_error,proactive
check_values ancestry_action_processed_total action action6_gather,action7_inbox,action8_messaging,action9_process_productive
check_values ancestry_action_processed_total result failure,skipped,success
check_values ancestry_circuit_breaker_state breaker api,session
# The seed's buckets, in seconds.
# (Prometheus 3 writes le="1.0": compared as numbers.)
les=$(query 'ancestry_api_latency_seconds_bucket{endpoint="inbox",status_family="2xx"}' |
  jq -r '[.data.result[].metric.le | if . == "+Inf" then . else tonumber end] | sort_by(tostring) | map(tostring) | join(",")')
[ "$les" = "+Inf,0.5,1,16,2,4,8" ] || fail "latency buckets $les, expected 0.5,1,2,4,8,16,+Inf"

# Plausible values.
plausible() { # promql awk-condition-on-v description
  local v; v=$(value "$1")
  awk -v v="$v" "BEGIN { exit !(v != \"\" && ($2)) }" || fail "$3: $1 = '$v'"
}
plausible 'min(ancestry_cache_hit_ratio)' 'v >= 0' "hit ratio below 0"
plausible 'max(ancestry_cache_hit_ratio)' 'v > 0 && v <= 1' "hit ratio"
plausible 'sum(ancestry_api_requests_total{result="cached"}) / sum(ancestry_cache_operations_total{operation="get"})' 'v > 0.2 && v < 1' "cached share of cache gets"
plausible 'ancestry_cache_operations_total{endpoint="inbox",operation="invalidate"}' 'v > 0' "inbox invalidations after sent messages"
plausible 'sum(ancestry_cache_operations_total{operation="expire"})' 'v > 0' "expirations"
plausible 'ancestry_session_uptime_seconds' 'v >= 0 && v < 120' "session uptime"
plausible 'ancestry_session_refresh_total{reason="proactive"}' 'v >= 1' "proactive refreshes"
plausible 'ancestry_session_refresh_total{reason="api_forced"}' 'v >= 1' "forced refreshes (401)"
plausible 'min(ancestry_action_processed_total{result="success"})' 'v > 0' "every action succeeds sometimes"
plausible 'ancestry_rate_limiter_delay_seconds_count' 'v > 10' "rate limiter waits"
plausible 'ancestry_rate_limiter_delay_seconds_sum / ancestry_rate_limiter_delay_seconds_count' 'v > 0 && v <= 2' "mean rate limiter delay (s)"
plausible 'ancestry_worker_thread_count' 'v >= 5 && v < 64' "thread count"
plausible 'histogram_quantile(0.5, sum by (le) (ancestry_api_latency_seconds_bucket))' 'v >= 0.3 && v <= 8' "median API latency (s)"
# A request counted in the latency histogram is a non-cached request.
plausible 'sum(ancestry_api_latency_seconds_count) - sum(ancestry_api_requests_total{result!="cached"})' 'v >= -8 && v <= 8' "latency count vs non-cached requests"
lastErr=$(curl -fsS "$api/targets" | jq -r '.data.activeTargets[0].lastError')
[ -z "$lastErr" ] || fail "Prometheus reports a scrape error: $lastErr"

# ---- the seed's Grafana dashboard, made by sonde generate-config ----
"$SONDE_BIN_DIR/sonde" generate-config --url "http://$addr" --only grafana --output "$tmp/gen" \
  >"$tmp/gen.log" 2>&1 || fail "generate-config: $(cat "$tmp/gen.log")"
dash="$tmp/gen/grafana/dashboard.json"
for f in api_latency_seconds api_requests_total cache_hit_ratio cache_operations_total \
  session_uptime_seconds session_refresh_total action_processed_total circuit_breaker_state \
  circuit_breaker_trip_total rate_limiter_delay_seconds worker_thread_count; do
  f=ancestry_$f
  jq -e --arg f "$f" '[.. | .expr? // empty | select(contains($f))] | length > 0' "$dash" >/dev/null ||
    fail "the dashboard has no panel on $f"
done

stop "$main"
echo "test_example_automation: breaker cycle seen ($trips trips), every family and label set present"
