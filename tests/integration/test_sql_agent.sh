#!/usr/bin/env bash
# SQL queries from the agent's YAML: check-config reports every mistake as
# FILE:LINE:COLUMN and shows DSNs masked; `sonde serve --config` runs the
# queries against an SQLite file and serves their series on /metrics; the
# password of a PostgreSQL DSN shows nowhere (output, log, /metrics, /info).
set -euo pipefail
: "${SONDE_BIN_DIR:?}"
SONDE="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-sqlagent-XXXXXX)
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
lacks() { if grep -qF -- "$2" "$1"; then echo "--- $1:" >&2; cat "$1" >&2; fail "$1 shows: $2"; fi; }

# --- bad configurations: every error with its position ---
cat >"$tmp/bad.yml" <<'EOF'
sql:
  databases:
    - name: app
      dsn: /tmp/x.db
      timeout: 5s
  queries:
    - name: runs
      database: app
      interval: soon
      sql: SELECT 1 AS v
      metrics:
        - name: 1bad
          value: v
    - name: other
      database: nope
      sql: SELECT 1 AS v
      metrics:
        - {name: ok_metric, value: v, type: histogram}
    - name: third
      sql: SELECT 1
      metrics:
        - {name: third_value}
EOF
expect_rc 1 "$SONDE" check-config "$tmp/bad.yml"
contains "$tmp/err" "bad.yml:5:7: error: unknown key \"timeout\" in an sql database"
contains "$tmp/err" "bad.yml:9:17: error: interval must be a duration"
contains "$tmp/err" "bad.yml:18:45: error: type must be gauge or counter"
contains "$tmp/err" "bad.yml:22:11: error: sql metric \"third_value\" needs value"

# Semantic errors (names, databases, secrets) point at their item.
cat >"$tmp/bad2.yml" <<'EOF'
sql:
  databases:
    - {name: app, dsn_env: SONDE_TEST_UNSET_DSN_VARIABLE}
    - {name: lite, dsn: /tmp/x.db}
  queries:
    - name: runs
      database: lite
      sql: SELECT 1 AS v
      metrics:
        - {name: 1bad, value: v}
    - name: other
      database: nope
      sql: SELECT 1 AS v
      metrics:
        - {name: ok_metric, value: v}
EOF
expect_rc 1 "$SONDE" check-config "$tmp/bad2.yml"
contains "$tmp/err" "bad2.yml:3:7: error: sql: database \"app\": dsn: environment variable SONDE_TEST_UNSET_DSN_VARIABLE is not set"
contains "$tmp/err" "bad2.yml:6:7: error: sql: query \"runs\": metric 1: invalid metric name \"1bad\""
contains "$tmp/err" "bad2.yml:11:7: error: sql: query \"other\": no database named \"nope\""

# --- a good configuration, run by the agent ---
sqlite3 "$tmp/pipeline.db" "CREATE TABLE scrape_runs(roaster TEXT, status TEXT, secs REAL);
  INSERT INTO scrape_runs VALUES ('blue','ok',30),('blue','ok',10),('blue','fail',60),('red','ok',5);"
printf 'hunter2secret\n' >"$tmp/pgpass"
cat >"$tmp/good.yml" <<EOF
server:
  listen: "127.0.0.1:0"
sql:
  databases:
    - name: pipeline
      dsn: $tmp/pipeline.db
    - name: remote
      dsn: "postgresql://app:hunter2secret@127.0.0.1:1/app?sslmode=disable"
      backoff: 100ms
  queries:
    - name: runs
      database: pipeline
      interval: 1s
      timeout: 2s
      sql: |
        SELECT roaster, status, COUNT(*) AS n, AVG(secs) AS avg_secs
        FROM scrape_runs GROUP BY roaster, status
      metrics:
        - name: pipeline_runs
          help: Scrape runs by roaster and status
          value: n
          labels: [roaster, status]
          const_labels: {source: scrape_runs}
        - name: pipeline_run_avg_duration_seconds
          value: avg_secs
          labels: [roaster, status]
    - name: remote_count
      database: remote
      interval: 1s
      sql: SELECT 1 AS v
      metrics:
        - {name: remote_value, value: v}
EOF
expect_rc 0 "$SONDE" check-config "$tmp/good.yml"
contains "$tmp/out" "good.yml: 2 sql queries"
contains "$tmp/out" "sql database remote: postgresql://app:***@127.0.0.1:1/app?sslmode=disable"
lacks "$tmp/out" "hunter2secret"

"$SONDE" serve --config "$tmp/good.yml" >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
addr=""
for _ in $(seq 300); do
  addr=$(sed -n 's/^listening on //p' "$tmp/agent.out" | tail -1)
  [ -n "$addr" ] && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$tmp/agent.err" >&2; fail "agent exited"; }
  sleep 0.05
done
[ -n "$addr" ] || fail "agent did not print its address"
for _ in $(seq 100); do
  curl -fsS "http://$addr/metrics" >"$tmp/metrics" || true
  grep -q '^pipeline_runs{' "$tmp/metrics" && grep -q 'remote_count",reason="connect"' "$tmp/metrics" && break
  sleep 0.1
done
contains "$tmp/metrics" 'pipeline_runs{roaster="blue",status="fail",source="scrape_runs"} 1'
contains "$tmp/metrics" 'pipeline_runs{roaster="blue",status="ok",source="scrape_runs"} 2'
contains "$tmp/metrics" 'pipeline_runs{roaster="red",status="ok",source="scrape_runs"} 1'
contains "$tmp/metrics" 'pipeline_run_avg_duration_seconds{roaster="blue",status="ok"} 20'
contains "$tmp/metrics" 'sonde_sql_query_success{query="runs"} 1'
contains "$tmp/metrics" 'sonde_sql_query_success{query="remote_count"} 0'
contains "$tmp/metrics" 'sonde_sql_database_up{database="remote"} 0'
lacks "$tmp/metrics" "hunter2secret"
curl -fsS "http://$addr/info" >"$tmp/info"
contains "$tmp/info" "postgresql://app:***@127.0.0.1:1/app?sslmode=disable"
lacks "$tmp/info" "hunter2secret"
kill -TERM "$agent_pid"
wait "$agent_pid" || true
contains "$tmp/agent.err" "2 sql queries"
lacks "$tmp/agent.err" "hunter2secret"
lacks "$tmp/agent.out" "hunter2secret"
echo "test_sql_agent: ok"
