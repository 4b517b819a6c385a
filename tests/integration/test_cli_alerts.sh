#!/usr/bin/env bash
# sonde errors and sonde alerts against a service with errors (tables,
# filters, --json), and the agent's alerts section: check-config reports
# rule and notifier errors with line and column; sonde serve fires a health
# rule, delivers it to a loopback webhook receiver, shows it in sonde
# alerts, and resolves it after a SIGHUP reload fixes the check.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_TEST_DIR:?}" "${SONDE_SOURCE_DIR:?}"
SONDE="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-cli-alerts-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
unset SONDE_ALERTMANAGER_URL SONDE_WEBHOOK_URL SONDE_SLACK_WEBHOOK_URL http_proxy HTTP_PROXY

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expected-rc command...
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "$* exited $rc, expected $want"; }
}
contains() { grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$1 lacks: $2"; }; }
lacks() { ! grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$1 has: $2"; }; }
wait_for() { # file text
  for _ in $(seq 400); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "--- $1:" >&2; cat "$1" >&2 || true; fail "timed out waiting for \"$2\" in $1"
}

# --- help ---
for c in errors alerts; do
  expect_rc 0 "$SONDE" "$c" --help
  contains "$tmp/out" "usage: sonde $c"
done
expect_rc 64 "$SONDE" errors --severity urgent
expect_rc 64 "$SONDE" alerts --bogus

# --- a service with errors ---
"$SONDE_TEST_DIR/errors_fixture" >"$tmp/fx.out" 2>"$tmp/fx.err" &
pids+=($!)
wait_for "$tmp/fx.out" "listening on "
url="http://$(sed -n 's/^listening on //p' "$tmp/fx.out")"

expect_rc 0 "$SONDE" errors --url "$url"
contains "$tmp/out" "SEVERITY  "
grep -qE '^critical +4 +[0-9-]+ [0-9:]+ +errors_fixture.c:[0-9]+ +DatabaseError: insert into orders failed for user <n>$' "$tmp/out" \
  || { cat "$tmp/out"; fail "critical DatabaseError row"; }
grep -qE '^low +1 .*CacheMiss: no entry for session <id>$' "$tmp/out" || { cat "$tmp/out"; fail "CacheMiss row"; }
contains "$tmp/out" "2 of 2 groups shown"
expect_rc 0 "$SONDE" errors --url "$url" --severity high --since 1h
contains "$tmp/out" "DatabaseError"
lacks "$tmp/out" "CacheMiss"
expect_rc 0 "$SONDE" errors --url "$url" --type CacheMiss --json
jq -e '.groups | length == 1 and .[0].type == "CacheMiss" and .[0].count == 1' "$tmp/out" >/dev/null \
  || fail "errors --json"
expect_rc 64 "$SONDE" errors --url "$url" --since yesterday
contains "$tmp/err" "--since must be a duration"
expect_rc 1 "$SONDE" errors --url "$url/nothing" --timeout 5
contains "$tmp/err" "answered 404"

expect_rc 0 "$SONDE" alerts --url "$url"
contains "$tmp/out" "FIRING: 1"
grep -qE '^DatabaseErrors +high +[0-9-]+ [0-9:]+ +4 +4 database errors within 1h$' "$tmp/out" \
  || { cat "$tmp/out"; fail "firing row"; }
contains "$tmp/out" "PENDING: none"
contains "$tmp/out" "RECENT: 1"
contains "$tmp/out" "1 rule, 0 notifiers"
expect_rc 0 "$SONDE" alerts --url "$url" --json
jq -e '.firing[0].rule == "DatabaseErrors" and .firing[0].value == 4' "$tmp/out" >/dev/null || fail "alerts --json"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
expect_rc 3 "$SONDE" alerts --url "$url" --timeout 2

# --- the store a previous process wrote (SONDE_STORE) ---
SONDE_STORE="$tmp/history.db" "$SONDE_TEST_DIR/errors_fixture" --exit 2>/dev/null
SONDE_STORE="$tmp/history.db" "$SONDE_TEST_DIR/errors_fixture" --exit 2>/dev/null
expect_rc 0 "$SONDE" errors --store "$tmp/history.db"
grep -qE '^critical +8 .*DatabaseError: insert into orders failed for user <n>$' "$tmp/out" \
  || { cat "$tmp/out"; fail "stored critical row (two processes, 4 + 4)"; }
grep -qE '^low +2 .*CacheMiss' "$tmp/out" || { cat "$tmp/out"; fail "stored CacheMiss row"; }
expect_rc 0 "$SONDE" errors --store "$tmp/history.db" --severity critical --since 1h --json
jq -e '.groups | length == 1 and .[0].count == 8 and .[0].severity == "critical"' "$tmp/out" >/dev/null \
  || fail "errors --store --json"
expect_rc 0 "$SONDE" alerts --store "$tmp/history.db"
contains "$tmp/out" "FIRING: 2"
contains "$tmp/out" "RECENT: 2"
grep -qE '^DatabaseErrors +firing +high ' "$tmp/out" || { cat "$tmp/out"; fail "stored alert row"; }
expect_rc 1 "$SONDE" errors --store "$tmp/none/history.db"
contains "$tmp/err" "cannot read the store"
expect_rc 64 "$SONDE" errors --store "$tmp/history.db" --since tomorrow

# --- check-config: the alerts section ---
cat >"$tmp/bad.yml" <<'EOF2'
alerts:
  rules:
    - name: NoOp
      kind: failure_rate
      percent: 10
    - {name: Oops, kind: errrors}
    - {name: Slow, kind: errors, window: 10y}
  notifiers:
    - {kind: webhook, url: "ftp://nowhere"}
    - {kind: slack, url: "https://example.invalid/x", retries: 3}
EOF2
expect_rc 1 "$SONDE" check-config "$tmp/bad.yml"
contains "$tmp/err" "bad.yml:3:7: error: alert rule NoOp: this kind needs an operation"
contains "$tmp/err" "bad.yml:6:26: error: unknown rule kind \"errrors\""
contains "$tmp/err" "bad.yml:7:42: error: window: unknown unit \"y\""
contains "$tmp/err" "bad.yml:9:7: error: notifier webhook: needs an http:// or https:// URL"
contains "$tmp/err" "bad.yml:10:55: error: unknown key \"retries\" in alerts.notifiers[1]"

# --- the agent: a health rule delivered to a webhook ---
/usr/bin/python3 "$SONDE_SOURCE_DIR/tests/integration/webhook_receiver.py" ok >"$tmp/rx.out" &
pids+=($!)
wait_for "$tmp/rx.out" ""
for _ in $(seq 100); do [ -s "$tmp/rx.out" ] && break; sleep 0.05; done
rx_port=$(head -1 "$tmp/rx.out")
cat >"$tmp/agent.yml" <<EOF2
server: {listen: "127.0.0.1:0"}
service: {name: alerting-agent}
checks:
  - {name: root, type: disk, path: /}
  - {name: db, type: tcp, address: "127.0.0.1:1", timeout: 1s, interval: 1s}
alerts:
  rules:
    - name: AgentDegraded
      kind: health
      percent: 80
      severity: critical
      summary: "health at {value}%"
      labels: {team: ops}
  notifiers:
    - name: hook
      kind: webhook
      url: "http://127.0.0.1:$rx_port/hook"
      headers: {Authorization: "Bearer agent-token"}
      retry_initial: 100ms
EOF2
expect_rc 0 "$SONDE" check-config "$tmp/agent.yml"
contains "$tmp/out" "agent.yml: ok (2 checks, 1 alert rule, 1 notifier)"
"$SONDE" serve --config "$tmp/agent.yml" >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent=$!
pids+=($agent)
wait_for "$tmp/agent.out" "listening on "
aurl="http://$(sed -n 's/^listening on //p' "$tmp/agent.out" | tail -1)"
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$rx_port/requests" >"$tmp/rx.log" || true
  grep -q '"status":"firing"' "$tmp/rx.log" && break
  sleep 0.05
done
contains "$tmp/rx.log" '"name":"AgentDegraded"'
contains "$tmp/rx.log" '"summary":"health at 50.0%"'
contains "$tmp/rx.log" '"team":"ops"'
contains "$tmp/rx.log" '"service":"alerting-agent"'
contains "$tmp/rx.log" 'auth=Bearer_agent-token'
# The receiver has the request; the agent counts it once the answer is in.
for _ in $(seq 100); do
  expect_rc 0 "$SONDE" alerts --url "$aurl"
  grep -qF "hook (webhook: 1 sent, 0 failed)" "$tmp/out" && break
  sleep 0.05
done
grep -qE '^AgentDegraded +critical +.* 50 +health at 50.0%$' "$tmp/out" || { cat "$tmp/out"; fail "agent firing row"; }
contains "$tmp/out" "hook (webhook: 1 sent, 0 failed)"

# fix the check and reload: the alert resolves, unchanged rule and notifier kept
sed -i 's/127.0.0.1:1"/127.0.0.1:'"$rx_port"'"/' "$tmp/agent.yml"
kill -HUP "$agent"
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$rx_port/requests" >"$tmp/rx.log" || true
  grep -q '"status":"resolved"' "$tmp/rx.log" && break
  sleep 0.05
done
contains "$tmp/rx.log" '"status":"resolved"'
[ "$(grep -c '"status":"firing"' "$tmp/rx.log")" -eq 1 ] || fail "the firing was sent more than once"
expect_rc 0 "$SONDE" alerts --url "$aurl"
contains "$tmp/out" "FIRING: none"
grep -qE '^AgentDegraded +resolved +critical ' "$tmp/out" || { cat "$tmp/out"; fail "resolved history row"; }
for _ in $(seq 100); do
  expect_rc 0 "$SONDE" metrics --url "$aurl"
  grep -qF 'sonde_alert_notifications_total{notifier="hook"} 2' "$tmp/out" && break
  sleep 0.05
done
contains "$tmp/out" 'sonde_alert_notifications_total{notifier="hook"} 2'
kill -TERM "$agent"; wait "$agent" || true
echo ok
