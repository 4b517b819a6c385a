#!/usr/bin/env bash
# The demo's application pieces: /demo/stats (an application route, public
# JSON even with an API key set) and its simulated requests recorded by the
# request instrumentation, by route template, on /metrics.
set -euo pipefail
: "${SONDE_BIN_DIR:?}"
tmp=$(mktemp -d /tmp/sonde-demo-app-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unset SONDE_WEBHOOK_URL SONDE_SLACK_WEBHOOK_URL SONDE_ALERTMANAGER_URL http_proxy HTTP_PROXY SONDE_STORE

SONDE_API_KEY=demo-key "$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 \
  >"$tmp/demo.out" 2>"$tmp/demo.err" &
pids+=($!)
addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/demo.err" >&2; fail "demo did not start"; }
sleep 1

stats=$(curl -sf "http://$addr/demo/stats") || fail "/demo/stats did not answer"
echo "$stats" | jq -e '(.requests | type) == "number" and .requests > 0 and (.errors | type) == "number"
  and .cache_hit_ratio > 0 and .cache_hit_ratio < 1' >/dev/null || fail "bad /demo/stats: $stats"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$addr/demo/stats")
[ "$code" = 405 ] || fail "POST /demo/stats answered $code, want 405"

metrics=$(curl -sf "http://$addr/metrics")
echo "$metrics" | grep -E '^demo_http_request_duration_seconds_bucket\{method="[A-Z]+",route="/api/[^"]*",le="[^"]+"\} [0-9]+' >/dev/null \
  || fail "no demo_http_request_duration_seconds_bucket with a route label"
echo "$metrics" | grep -E '^demo_http_requests_total\{method="GET",route="/api/items/\{id\}",status="200"\} [0-9]+' >/dev/null \
  || fail "no demo_http_requests_total by route template"
echo "$metrics" | grep -q '/api/items/42' && fail "a raw path leaked into the metrics"
echo "$metrics" | grep -E '^sonde_http_requests_total\{handler="/demo/stats",code="200"\} 1' >/dev/null \
  || fail "access metrics of /demo/stats"
echo "demo: /demo/stats $stats; request metrics by route"
