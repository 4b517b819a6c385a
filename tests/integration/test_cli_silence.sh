#!/usr/bin/env bash
# sonde silence add/list/expire against the running demo (API key set,
# SQLite store) with a real webhook receiver on loopback: 401 without the
# key; the demo's DemoBackendErrors alert fires while silenced, /alerts
# shows it silenced and the receiver gets nothing for it; after
# `sonde silence expire` the firing notification arrives. The silences
# survive a restart of the demo (same store): the active one still holds,
# the expired one is listed as expired. Bad input is refused by the
# command (64) or the server (400 naming the problem, shown by the command).
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
SONDE="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-cli-silence-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
unset SONDE_ALERTMANAGER_URL SONDE_SLACK_WEBHOOK_URL http_proxy HTTP_PROXY SONDE_URL SONDE_STORE

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expected-rc command...
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "$* exited $rc, expected $want"; }
}
contains() { grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$1 lacks: $2"; }; }
wait_for() { # file text
  for _ in $(seq 400); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "--- $1:" >&2; cat "$1" >&2 || true; fail "timed out waiting for \"$2\" in $1"
}

expect_rc 0 "$SONDE" silence --help
contains "$tmp/out" "usage: sonde silence add --matcher"
expect_rc 64 "$SONDE" silence
expect_rc 64 "$SONDE" silence frobnicate
expect_rc 64 "$SONDE" silence add --duration 2h
contains "$tmp/err" "add needs at least one --matcher"
expect_rc 64 "$SONDE" silence add --matcher alertname=X
contains "$tmp/err" "--duration or --end"
expect_rc 64 "$SONDE" silence add --matcher alertname=X --duration 1h --bogus
expect_rc 64 "$SONDE" silence expire

# --- the webhook receiver and the demo ---
python3 "$SONDE_SOURCE_DIR/tests/integration/webhook_receiver.py" ok >"$tmp/hook.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/hook.port" ] && break; sleep 0.05; done
hook="http://127.0.0.1:$(cat "$tmp/hook.port")"

start_demo() {
  SONDE_API_KEY=s3cret SONDE_STORE="$tmp/demo.db" SONDE_WEBHOOK_URL="$hook/hook" \
    "$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
  demo=$!
  pids+=($demo)
  wait_for "$tmp/demo.out" "listening on "
  url="http://$(sed -n 's/^listening on //p' "$tmp/demo.out")"
}
: >"$tmp/demo.out"
start_demo

# Without the key: 401, and the command says how to pass it.
expect_rc 1 "$SONDE" silence add --url "$url" --matcher alertname=DemoBackendErrors --duration 2h
contains "$tmp/err" "answered 401"
contains "$tmp/err" "--api-key"
expect_rc 1 "$SONDE" silence list --url "$url"
contains "$tmp/err" "answered 401"
expect_rc 1 "$SONDE" silence expire 0123456789abcdef --url "$url" --api-key wrong
contains "$tmp/err" "answered 401"

# Bad input reaches the server and comes back named.
expect_rc 1 "$SONDE" silence add --url "$url" --api-key s3cret --matcher 'alertname=~(' --duration 2h
contains "$tmp/err" "answered 400"
contains "$tmp/err" "bad regular expression"
expect_rc 1 "$SONDE" silence add --url "$url" --api-key s3cret --matcher 'alertname=X' --duration soon
contains "$tmp/err" "duration: expected a positive duration"

# Silence the demo's alert before it fires (it fires within ~15 s).
expect_rc 0 "$SONDE" silence add --url "$url" --api-key s3cret --matcher alertname=DemoBackendErrors \
  --matcher 'service=~sonde-.*' --duration 2h --comment "backend maintenance" --author alice
id=$(cat "$tmp/out")
[[ "$id" =~ ^[0-9a-f]{16}$ ]] || fail "add printed \"$id\", not an ID"
# A second silence that matches nothing of the demo, expired right away.
expect_rc 0 "$SONDE" silence add --url "$url" --api-key s3cret --matcher alertname=Nothing --duration 1h
other=$(cat "$tmp/out")
expect_rc 0 "$SONDE" silence expire "$other" --url "$url" --api-key s3cret
contains "$tmp/out" "expired $other"

export SONDE_API_KEY=s3cret # the commands read it from the environment too
expect_rc 0 "$SONDE" silence list --url "$url"
grep -qE "^$id +active +[0-9-]+ [0-9:]+ +[0-9-]+ [0-9:]+ +alice +alertname=DemoBackendErrors service=~sonde-\.\* +backend maintenance$" "$tmp/out" \
  || { cat "$tmp/out"; fail "list row of the active silence"; }
grep -qE "^$other +expired " "$tmp/out" || { cat "$tmp/out"; fail "list row of the expired silence"; }
expect_rc 0 "$SONDE" silence list --url "$url" --json
jq -e --arg id "$id" 'map(select(.id == $id)) | .[0] | .status.state == "active" and .createdBy == "alice"
  and (.matchers | length == 2) and .matchers[1].isRegex == true' "$tmp/out" >/dev/null || fail "list --json"

# The alert fires, silenced: shown so in /alerts, nothing at the receiver.
fired=""
for _ in $(seq 300); do
  if curl -sf -H "Authorization: Bearer s3cret" "$url/alerts" |
     jq -e '.firing | map(select(.rule == "DemoBackendErrors" and .silenced == true)) | length == 1' >/dev/null; then
    fired=yes; break
  fi
  sleep 0.1
done
[ -n "$fired" ] || fail "DemoBackendErrors never fired silenced"
sleep 1 # a notification, if one were sent, would be on its way by now
curl -sf "$hook/requests" >"$tmp/hook1"
if grep -q "DemoBackendErrors" "$tmp/hook1"; then cat "$tmp/hook1" >&2; fail "a silenced alert was notified"; fi

# Restart: the silences come back from the store; the alert stays silenced.
kill -TERM "$demo"; wait "$demo" || fail "demo exit status"
start_demo
listed=""
for _ in $(seq 100); do
  "$SONDE" silence list --url "$url" --json >"$tmp/out" 2>/dev/null || true
  if jq -e --arg id "$id" --arg o "$other" \
       '(map(select(.id == $id and .status.state == "active")) | length == 1) and
        (map(select(.id == $o and .status.state == "expired")) | length == 1)' "$tmp/out" >/dev/null; then
    listed=yes; break
  fi
  sleep 0.1
done
[ -n "$listed" ] || { cat "$tmp/out" >&2; fail "silences not back after a restart"; }
fired=""
for _ in $(seq 300); do
  if curl -sf -H "Authorization: Bearer s3cret" "$url/alerts" |
     jq -e '.firing | map(select(.rule == "DemoBackendErrors" and .silenced == true)) | length == 1' >/dev/null; then
    fired=yes; break
  fi
  sleep 0.1
done
[ -n "$fired" ] || fail "DemoBackendErrors not firing silenced after the restart"
curl -sf "$hook/requests" >"$tmp/hook2"
if grep -q "DemoBackendErrors" "$tmp/hook2"; then cat "$tmp/hook2" >&2; fail "notified after the restart"; fi

# Expire it: the firing alert is sent to the receiver.
expect_rc 0 "$SONDE" silence expire "$id" --url "$url"
contains "$tmp/out" "expired $id"
got=""
for _ in $(seq 200); do
  curl -sf "$hook/requests" >"$tmp/hook3"
  if grep -q '"name":"DemoBackendErrors","status":"firing"' "$tmp/hook3"; then got=yes; break; fi
  sleep 0.05
done
[ -n "$got" ] || { cat "$tmp/hook3" >&2; fail "no notification after the silence expired"; }
curl -sf -H "Authorization: Bearer s3cret" "$url/alerts" |
  jq -e '.firing | map(select(.rule == "DemoBackendErrors" and .silenced == false)) | length == 1' >/dev/null \
  || fail "/alerts still shows it silenced"
expect_rc 0 "$SONDE" silence list --url "$url"
grep -qE "^$id +expired " "$tmp/out" || { cat "$tmp/out"; fail "expired row"; }
expect_rc 1 "$SONDE" silence expire 0123456789abcdef --url "$url"
contains "$tmp/err" "answered 404"
expect_rc 1 "$SONDE" silence expire not-an-id --url "$url"
contains "$tmp/err" "not a silence ID"
kill -TERM "$demo"; wait "$demo" || fail "demo exit status"
expect_rc 3 "$SONDE" silence list --url "$url" --timeout 2
echo ok
