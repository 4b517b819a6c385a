#!/usr/bin/env bash
# sonde push against a real Pushgateway on loopback: push (replace),
# push-add, a grouping value with '/', delete, and a refused push, each
# checked in the gateway's API.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
sonde="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d)
pg=""
cleanup() { [ -n "$pg" ] && kill "$pg" 2>/dev/null && wait "$pg" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$("$SONDE_SOURCE_DIR/scripts/services.sh" free-port)
prometheus-pushgateway --web.listen-address="127.0.0.1:$port" >"$tmp/pg.log" 2>&1 &
pg=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$url/-/ready" >/dev/null && break; sleep 0.1; done
curl -fs "$url/-/ready" >/dev/null

fail() { echo "FAIL: $*" >&2; exit 1; }
# The value of metric $1 in the group whose labels include $2 (a jq filter).
value() {
  curl -fs "$url/api/v1/metrics" |
    jq -r --arg m "$1" ".data[] | select($2) | .[\$m].metrics[0].value // empty"
}

printf '# TYPE backup_files_total counter\nbackup_files_total 120\n# TYPE backup_bytes gauge\nbackup_bytes 4096\n' >"$tmp/a.prom"
"$sonde" push --url "$url" --job nightly --label instance=db1 "$tmp/a.prom"
[ "$(value backup_files_total '.labels.job=="nightly" and .labels.instance=="db1"')" = 120 ] || fail "push"
[ "$(value backup_bytes '.labels.job=="nightly" and .labels.instance=="db1"')" = 4096 ] || fail "push bytes"

# push-add from stdin: replaces backup_bytes only, keeps backup_files_total.
printf '# TYPE backup_bytes gauge\nbackup_bytes 8192\n' |
  "$sonde" push --url "$url" --job nightly --label instance=db1 --add -
[ "$(value backup_bytes '.labels.job=="nightly" and .labels.instance=="db1"')" = 8192 ] || fail "push-add"
[ "$(value backup_files_total '.labels.job=="nightly" and .labels.instance=="db1"')" = 120 ] || fail "push-add kept"

# push (PUT) replaces the whole group: backup_files_total goes away.
printf '# TYPE backup_bytes gauge\nbackup_bytes 1\n' | "$sonde" push --url "$url" --job nightly --label instance=db1 -
[ -z "$(value backup_files_total '.labels.job=="nightly" and .labels.instance=="db1"')" ] || fail "replace"

# A grouping value with '/' travels base64-encoded and comes back intact.
printf 'x_total 3\n' | "$sonde" push --url "$url" --job "etl/daily" --label path=/var/lib/x -
[ "$(value x_total '.labels.job=="etl/daily" and .labels.path=="/var/lib/x"')" = 3 ] || fail "base64 grouping"

# delete removes the group.
"$sonde" push --url "$url" --job nightly --label instance=db1 --delete
[ -z "$(value backup_bytes '.labels.job=="nightly" and .labels.instance=="db1"')" ] || fail "delete"
[ "$(value x_total '.labels.job=="etl/daily"')" = 3 ] || fail "delete touched another group"

# Refusals: bad text is a 400 with the gateway's reason; usage errors exit 64.
if printf 'not a metric line {\n' | "$sonde" push --url "$url" --job bad - 2>"$tmp/err"; then
  fail "bad text accepted"
fi
grep -q "answered 400" "$tmp/err" || fail "no reason: $(cat "$tmp/err")"
set +e
"$sonde" push --url "$url" "$tmp/a.prom" 2>/dev/null; [ $? -eq 64 ] || fail "missing --job"
"$sonde" push --url "$url" --job j --label bad "$tmp/a.prom" 2>/dev/null; [ $? -eq 64 ] || fail "bad --label"
"$sonde" push --url "http://127.0.0.1:1" --job j "$tmp/a.prom" 2>"$tmp/err"; [ $? -eq 1 ] || fail "unreachable"
set -e
grep -q unreachable "$tmp/err" || fail "unreachable message: $(cat "$tmp/err")"
echo ok
