#!/usr/bin/env bash
# A real Prometheus server scrapes the demo: its query API must show the
# target up and a counter equal to what the demo recorded.
#
# The demo simulates traffic for 2 s, then freezes its counters and keeps
# serving; it prints "requests recorded N". Prometheus (scripts/services.sh,
# private instance on a loopback port, 1 s scrape interval) must report
# up == 1 and sum(demo_requests_total) == N.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
tmp=$(mktemp -d /tmp/sonde-prom-XXXXXX)
demo_pid=""
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2; exit 1; }

"$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 --simulate 2 \
  >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo_pid=$!
recorded=""
for _ in $(seq 200); do
  recorded=$(sed -n 's/^requests recorded //p' "$tmp/demo.out")
  [ -n "$recorded" ] && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.err" >&2; fail "demo exited"; }
  sleep 0.05
done
[ -n "$recorded" ] || fail "the demo did not report its total"
[ "$recorded" -gt 0 ] || fail "the demo recorded no request"
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")

port=$("$svc" free-port)
"$svc" prometheus start "$tmp/prom" "$port" "$addr" 1s
api="http://127.0.0.1:$port/api/v1"

query() { # promql -> first value or empty
  curl -fsS --get --data-urlencode "query=$1" "$api/query" | jq -r '.data.result[0].value[1] // empty'
}

up="" total=""
for _ in $(seq 300); do
  up=$(query 'up{job="sonde"}' || true)
  total=$(query 'sum(demo_requests_total)' || true)
  [ "$up" = "1" ] && [ "$total" = "$recorded" ] && break
  sleep 0.1
done
[ "$up" = "1" ] || fail "up{job=\"sonde\"} is '$up', expected 1"
[ "$total" = "$recorded" ] || fail "sum(demo_requests_total) is '$total', the demo recorded $recorded"

# The scrapes went through sonde's /metrics handler (a scrape counts itself
# after answering, so the count shows from the second scrape on) and the
# health gauges made it into Prometheus as well.
scrapes="" health=""
for _ in $(seq 100); do
  scrapes=$(query 'sum(sonde_http_requests_total{handler="metrics",code="200"})' || true)
  health=$(query 'sonde_health_status{check="disk"}' || true)
  [ -n "$scrapes" ] && [ "$scrapes" != "0" ] && [ "$health" = "1" ] && break
  sleep 0.1
done
[ -n "$scrapes" ] && [ "$scrapes" != "0" ] || fail "no /metrics request counted ('$scrapes')"
[ "$health" = "1" ] || fail "sonde_health_status{check=\"disk\"} is '$health'"
# Prometheus found no sample it could not parse.
targets=$(curl -fsS "$api/targets" | jq -r '.data.activeTargets[0].lastError')
[ -z "$targets" ] || fail "Prometheus reports a scrape error: $targets"
echo "test_prometheus: up == 1, sum(demo_requests_total) == $recorded"
