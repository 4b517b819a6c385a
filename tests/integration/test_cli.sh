#!/usr/bin/env bash
# The sonde command end to end: help and version, check-config errors with
# line and column, serve with health checks from YAML, health exit statuses
# 0/1/2/3, metrics in every format, SIGHUP reload (good, bad, new address),
# SIGTERM and SIGINT stops.
set -euo pipefail
: "${SONDE_BIN_DIR:?}"
SONDE="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-cli-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expected-rc command...
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "$* exited $rc, expected $want"; }
}
contains() { grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$1 lacks: $2"; }; }

# --- help and version ---
expect_rc 0 "$SONDE" --help
contains "$tmp/out" "check-config"
for c in serve check-config health metrics version; do
  expect_rc 0 "$SONDE" "$c" --help
  contains "$tmp/out" "usage: sonde $c"
done
expect_rc 64 "$SONDE"
expect_rc 64 "$SONDE" frobnicate
contains "$tmp/err" 'unknown command "frobnicate"'
expect_rc 64 "$SONDE" health --bogus
expect_rc 0 "$SONDE" version
contains "$tmp/out" "sonde 0.1.0"
contains "$tmp/out" "libcurl "

# --- check-config ---
cat >"$tmp/good.yml" <<'EOF'
server:
  listen: "127.0.0.1:0"
service: {name: cli-test}
checks:
  - {name: root, type: disk, path: /}
  - {name: tmp, type: writable, path: /tmp}
EOF
expect_rc 0 "$SONDE" check-config "$tmp/good.yml"
contains "$tmp/out" "good.yml: ok (2 checks)"

cat >"$tmp/bad.yml" <<'EOF'
server:
  listn: ":9464"
checks:
  - name: root
    type: disk
    path: /
    warning_free_percent: lots
  - name: web
    type: http
    url: ftp://example
  - name: web
    type: tcp
EOF
expect_rc 1 "$SONDE" check-config "$tmp/bad.yml"
contains "$tmp/err" "bad.yml:2:3: error: unknown key \"listn\" in server (did you mean \"listen\"?)"
contains "$tmp/err" "bad.yml:7:27: error: warning_free_percent must be a number, not \"lots\""
contains "$tmp/err" "bad.yml:10:10: error: url must start with http:// or https://"
contains "$tmp/err" "bad.yml:11:5: error: duplicate check name \"web\""
contains "$tmp/err" "bad.yml:11:5: error: check \"web\" (type tcp) needs address"
contains "$tmp/err" "bad.yml: 5 errors"
printf 'checks: [\n  {name: a, type: load\n' >"$tmp/syntax.yml"
expect_rc 1 "$SONDE" check-config "$tmp/syntax.yml"
contains "$tmp/err" "syntax.yml:3:1: error: YAML syntax error"
expect_rc 1 "$SONDE" check-config "$tmp/missing.yml"
contains "$tmp/err" "cannot read $tmp/missing.yml"

# --- serve ---
start_agent() { # config -> sets agent_pid, addr
  "$SONDE" serve --config "$1" "${@:2}" >"$tmp/agent.out" 2>"$tmp/agent.err" &
  agent_pid=$!
  pids+=("$agent_pid")
  for _ in $(seq 300); do
    addr=$(sed -n 's/^listening on //p' "$tmp/agent.out" | tail -1)
    [ -n "$addr" ] && return 0
    kill -0 "$agent_pid" 2>/dev/null || { cat "$tmp/agent.err" >&2; fail "agent exited"; }
    sleep 0.05
  done
  fail "agent did not print its address"
}
wait_health() { # expected-rc url
  for _ in $(seq 300); do
    set +e; "$SONDE" health --url "$2" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
    [ "$rc" -eq "$1" ] && return 0
    sleep 0.05
  done
  cat "$tmp/out" "$tmp/err" >&2
  fail "health never exited $1 (last $rc)"
}

start_agent "$tmp/good.yml"
url="http://$addr"
wait_health 0 "$url"
contains "$tmp/out" "STATUS     healthy (100%), ready"
contains "$tmp/out" "SERVICE    cli-test"
grep -qE '^root +healthy +yes' "$tmp/out" || fail "table row for root"
expect_rc 0 "$SONDE" health --url "$url" --detailed
contains "$tmp/out" "HOST       "
contains "$tmp/out" "% free ("
contains "$tmp/out" "/tmp is writable"
expect_rc 0 "$SONDE" health --url "$url" --json
jq -e '.status == "healthy" and .checks.root.status == "healthy"' "$tmp/out" >/dev/null || fail "health --json"

# metrics in every format
expect_rc 0 "$SONDE" metrics --url "$url"
contains "$tmp/out" "# TYPE sonde_host_cpu_seconds_total counter"
contains "$tmp/out" "sonde_health_status{check=\"root\"} 1"
contains "$tmp/out" "process_resident_memory_bytes"
expect_rc 0 "$SONDE" metrics --url "$url" --format openmetrics
[ "$(tail -1 "$tmp/out")" = "# EOF" ] || fail "openmetrics must end with # EOF"
expect_rc 0 "$SONDE" metrics --url "$url" --format json --output "$tmp/m.json"
jq -e 'type == "object" or type == "array"' "$tmp/m.json" >/dev/null || fail "json output"
expect_rc 64 "$SONDE" metrics --url "$url" --format xml
expect_rc 1 "$SONDE" metrics --url "$url" --output /nonexistent-dir/x

# degraded (informational failure) then unhealthy (critical failure) via SIGHUP reload
cat >"$tmp/degraded.yml" <<'EOF'
server:
  listen: "127.0.0.1:0"
service: {name: cli-test}
checks:
  - {name: root, type: disk, path: /}
  - {name: tmp, type: writable, path: /tmp}
  - {name: optional, type: file_fresh, path: /nonexistent/marker, max_age: 1m, critical: false}
EOF
cp "$tmp/degraded.yml" "$tmp/good.yml"
kill -HUP "$agent_pid"
wait_health 1 "$url"
contains "$tmp/out" "STATUS     degraded"
grep -qE '^optional +unhealthy +no' "$tmp/out" || fail "optional row"
cat >>"$tmp/good.yml" <<'EOF'
  - {name: db, type: tcp, address: "127.0.0.1:1", timeout: 1s}
EOF
kill -HUP "$agent_pid"
wait_health 2 "$url"
contains "$tmp/out" "STATUS     unhealthy"
expect_rc 2 "$SONDE" health --url "$url" --detailed
contains "$tmp/out" "cannot connect to 127.0.0.1:1"

# a bad configuration is rejected and the running one kept
cp "$tmp/good.yml" "$tmp/keep.yml"
cp "$tmp/bad.yml" "$tmp/good.yml"
kill -HUP "$agent_pid"
for _ in $(seq 300); do grep -q "reload rejected" "$tmp/agent.err" && break; sleep 0.05; done
contains "$tmp/agent.err" "good.yml:2:3: error: unknown key \"listn\""
contains "$tmp/agent.err" "reload rejected (5 errors); keeping the running configuration"
expect_rc 2 "$SONDE" health --url "$url"
expect_rc 0 "$SONDE" metrics --url "$url"
contains "$tmp/out" 'sonde_config_reloads_total{result="failure"} 1'
contains "$tmp/out" 'sonde_config_reloads_total{result="success"} 2'
contains "$tmp/out" 'sonde_config_last_reload_successful 0'

# new server settings: the server restarts with them
sed -e 's/name: cli-test/name: cli-test-2/' "$tmp/keep.yml" >"$tmp/good.yml"
old_addr=$addr
kill -HUP "$agent_pid"
for _ in $(seq 300); do
  addr=$(sed -n 's/^listening on //p' "$tmp/agent.out" | tail -1)
  [ "$addr" != "$old_addr" ] && break
  sleep 0.05
done
[ "$addr" != "$old_addr" ] || fail "server not restarted on reload"
url="http://$addr"
expect_rc 2 "$SONDE" health --url "$url"
contains "$tmp/out" "SERVICE    cli-test-2"

# SIGTERM stops cleanly
kill -TERM "$agent_pid"
set +e; wait "$agent_pid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "serve exited $rc after SIGTERM"
contains "$tmp/agent.err" "SIGTERM received, stopping"

# unreachable: exit 3
expect_rc 3 "$SONDE" health --url "$url" --timeout 2
contains "$tmp/err" "unreachable"
expect_rc 3 "$SONDE" metrics --url "$url" --timeout 2

# --web.listen-address overrides, SIGINT stops, a busy port is an error
cp "$tmp/keep.yml" "$tmp/good.yml"
start_agent "$tmp/good.yml" --web.listen-address 127.0.0.1:0
busy=$addr
kill -INT "$agent_pid"
set +e; wait "$agent_pid"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "serve exited $rc after SIGINT"
start_agent "$tmp/good.yml"
set +e; "$SONDE" serve --config "$tmp/good.yml" --web.listen-address "$addr" >"$tmp/out" 2>"$tmp/err"; rc=$?; set -e
[ "$rc" -eq 1 ] || fail "serve on a busy port exited $rc"
contains "$tmp/err" "cannot start: cannot bind listening address"
kill -TERM "$agent_pid"; wait "$agent_pid" || true
: "$busy"
echo "test_cli: all passed"
