#!/usr/bin/env bash
# The SQLite store survives kill -9 in the middle of writing: after each
# kill the file passes PRAGMA integrity_check, a reader program reads the
# history, what it reads matches the rows in the file, and history only
# grows across restarts.
set -euo pipefail

bin_dir="${SONDE_TEST_DIR:?run through ctest}"
: "${SONDE_BIN_DIR:?run through ctest}"
writer="$bin_dir/trace_store_writer"
[ -x "$writer" ] || { echo "missing $writer"; exit 1; }
command -v sqlite3 >/dev/null || { echo "sqlite3 command missing (scripts/deps.sh installs it)"; exit 1; }

tmp=$(mktemp -d /tmp/sonde-kill9-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
db="$tmp/history.db"

prev=0
for round in 1 2 3 4 5 6; do
  "$writer" write "$db" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 200); do
    grep -q ready "$tmp/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "writer died:"; cat "$tmp/err"; exit 1; }
    sleep 0.05
  done
  grep -q ready "$tmp/out" || { echo "writer never became ready"; cat "$tmp/err"; exit 1; }
  # Let it write for a random while (commits every few milliseconds), then
  # kill it without warning.
  sleep "0.$(( (RANDOM % 9) + 1 ))$(( RANDOM % 10 ))"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""

  check=$(sqlite3 "$db" 'PRAGMA integrity_check')
  [ "$check" = "ok" ] || { echo "round $round: integrity_check: $check"; exit 1; }

  read -r word count errors < <("$writer" read "$db" | head -1)
  [ "$word" = "total" ] || { echo "round $round: reader failed"; exit 1; }
  sql=$(sqlite3 "$db" 'SELECT sum(count) || " " || sum(errors) FROM op_minutes')
  [ "$count $errors" = "$sql" ] ||
    { echo "round $round: reader says $count $errors, rows say $sql"; exit 1; }
  [ "$count" -gt "$prev" ] ||
    { echo "round $round: history did not grow ($prev -> $count)"; exit 1; }
  ops=$("$writer" read "$db" | grep -c '^op ')
  [ "$ops" -eq 3 ] || { echo "round $round: $ops operations"; exit 1; }
  # The sonde command reads the same history.
  cli=$("$SONDE_BIN_DIR/sonde" performance --store "$db" --hours 200 --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(o["count"] for o in d["operations"]))')
  [ "$cli" = "$count" ] || { echo "round $round: sonde performance says $cli, reader $count"; exit 1; }
  echo "round $round: integrity ok, $count operations readable ($errors failed)"
  prev=$count
done
echo "kill -9: store intact after 6 kills"
