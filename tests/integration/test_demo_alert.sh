#!/usr/bin/env bash
# The demo raises errors and, within 15 seconds of starting, fires an alert
# that its output shows and that reaches a real Alertmanager (started here
# on a loopback port) named by SONDE_ALERTMANAGER_URL; with SONDE_STORE,
# sonde errors --store lists its error groups after it stopped.
set -euo pipefail
: "${SONDE_BIN_DIR:?}"
tmp=$(mktemp -d /tmp/sonde-demo-alert-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unset SONDE_WEBHOOK_URL SONDE_SLACK_WEBHOOK_URL http_proxy HTTP_PROXY SONDE_STORE

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/am"
cat >"$tmp/am.yml" <<'EOF2'
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
EOF2
/usr/bin/prometheus-alertmanager --config.file="$tmp/am.yml" --storage.path="$tmp/am" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$tmp/am.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null || { cat "$tmp/am.log"; fail "alertmanager not ready"; }

start=$(date +%s%N)
SONDE_STORE="$tmp/demo.db" SONDE_ALERTMANAGER_URL="http://127.0.0.1:$port" "$SONDE_BIN_DIR/sonde-demo" \
  --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo=$!
pids+=($demo)
got=""
for _ in $(seq 150); do
  if grep -q "ALERT DemoBackendErrors firing" "$tmp/demo.err" &&
     curl -sf "http://127.0.0.1:$port/api/v2/alerts" | jq -e \
       'map(select(.labels.alertname == "DemoBackendErrors" and .labels.service == "sonde-demo")) | length == 1' >/dev/null; then
    got=yes
    break
  fi
  sleep 0.1
done
elapsed=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
[ -n "$got" ] || { grep -E "sonde-demo|alerts" "$tmp/demo.err" | tail -20 >&2; fail "no alert after $elapsed s"; }
echo "alert shown by the demo and received by Alertmanager after ${elapsed} s"
awk -v e="$elapsed" 'BEGIN { exit !(e <= 15) }' || fail "took $elapsed s (more than 15)"
grep -E "ALERT DemoBackendErrors firing: [0-9]+ backend errors within 1m \(threshold 5\)" "$tmp/demo.err" >/dev/null \
  || fail "demo output line"
curl -sf "http://127.0.0.1:$port/api/v2/alerts" | jq -e \
  '.[] | select(.labels.alertname == "DemoBackendErrors") | .annotations.description | test("inventory backend")' >/dev/null \
  || fail "alert annotations"
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
curl -sf "http://$addr/errors?severity=high" | jq -e \
  '.groups | map(select(.type == "BackendUnavailable")) | .[0].count >= 5 and (.[0].last.correlation_id | length) > 0' >/dev/null \
  || fail "/errors of the demo"
kill -TERM "$demo"
wait "$demo" || fail "demo exit status"
"$SONDE_BIN_DIR/sonde" errors --store "$tmp/demo.db" >"$tmp/errors.txt" || fail "sonde errors --store"
grep -qE '^high +[0-9]+ .*BackendUnavailable: inventory backend unavailable after <n> attempts$' "$tmp/errors.txt" \
  || { cat "$tmp/errors.txt"; fail "stored groups of the demo"; }
"$SONDE_BIN_DIR/sonde" alerts --store "$tmp/demo.db" >"$tmp/alerts.txt" || fail "sonde alerts --store"
grep -qE '^DemoBackendErrors +firing +high ' "$tmp/alerts.txt" || { cat "$tmp/alerts.txt"; fail "stored alert"; }
echo ok
