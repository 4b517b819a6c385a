#!/usr/bin/env bash
# /dashboard in headless Chromium against the running demo: the page loads
# with no console message at all (uncaught exceptions and failed requests
# show there), its charts have points, and the health, error and alert
# sections list what /health/detailed, /errors and /alerts say. With an API
# key set, /dashboard/history needs it and the page asks for it.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
tmp=$(mktemp -d /tmp/sonde-dash-XXXXXX)
demo_pid=""
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

start_demo() { # extra env assignments...
  env "$@" SONDE_DASHBOARD_INTERVAL=0.5 "$SONDE_BIN_DIR/sonde-demo" \
    --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
  demo_pid=$!
  addr=""
  for _ in $(seq 1200); do
    addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
    [ -n "$addr" ] && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.err" >&2; fail "demo exited"; }
    sleep 0.05
  done
  [ -n "$addr" ] || fail "the demo did not print its address"
}

browse() { # url dom-out log-out
  local profile; profile=$(mktemp -d "$tmp/profile-XXXXXX")
  timeout 240 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --enable-logging=stderr --v=0 --virtual-time-budget=15000 \
    --dump-dom "$1" >"$2.full" 2>"$3" || fail "chromium failed: $(tail -5 "$3")"
  # The page's own script is in the DOM too: keep only what it rendered.
  sed '/<script>/,$d' "$2.full" >"$2"
}

wait_until() { # what seconds command...: poll the command until it succeeds
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}
alert_firing() { [ "$(curl -fsS "$base/alerts" | jq '.firing | length')" -gt 0 ]; }
# Every chart's series has points: request and operation rates need two
# samples of their counters, so wait for four history points.
history_ready() {
  curl -fsS "$base/dashboard/history" |
    jq -e '(.timestamps | length) >= 4 and (.series | length) > 0' >/dev/null
}

start_demo
base="http://$addr"
# The data the page shows: the demo's alert firing and a few history points.
wait_until "the demo's alert to fire" 120 alert_firing
wait_until "four history points" 120 history_ready

curl -fsS "$base/dashboard" -o "$tmp/page.html"
size=$(stat -c %s "$tmp/page.html")
[ "$size" -lt 204800 ] || fail "the page is $size bytes, not well under 200 KB"
if grep -Eo '(src|href)="(https?:)?//[^"]*' "$tmp/page.html"; then fail "the page loads something from elsewhere"; fi

# The page and the JSON endpoints are read at slightly different times: an
# alert that fires or resolves in between makes them differ honestly, so
# the page is loaded again (at most three times) until /alerts said the
# same before and after it.
for attempt in 1 2 3; do
  curl -fsS "$base/alerts" | jq -r '.firing[].rule' | sort | tr '\n' ' ' >"$tmp/firing.before"
  browse "$base/dashboard" "$tmp/dom.html" "$tmp/chromium.log"
  curl -fsS "$base/alerts" | jq -r '.firing[].rule' | sort | tr '\n' ' ' >"$tmp/firing.after"
  cmp -s "$tmp/firing.before" "$tmp/firing.after" && break
  echo "alerts changed while the page loaded (attempt $attempt); loading it again"
done
if grep -F 'CONSOLE' "$tmp/chromium.log"; then fail "the page wrote to the console"; fi
grep -q 'data-refreshed="[1-9]' "$tmp/dom.html" || fail "the page never finished a refresh"

for chart in c-req c-ops c-lat c-any; do
  pts=$(grep -o "id=\"$chart\" data-points=\"[0-9]*\"" "$tmp/dom.html" | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$pts" ] && [ "$pts" -gt 0 ] || fail "chart $chart has no points ('$pts')"
  echo "chart $chart: $pts points"
done

# Health: exactly the checks of /health/detailed.
want=$(curl -fsS "$base/health/detailed" | jq -r '.checks | keys[]' | sort | tr '\n' ' ')
got=$(grep -o 'data-check="[^"]*"' "$tmp/dom.html" | sed 's/.*="//; s/"$//' | sort | tr '\n' ' ')
[ -n "$want" ] && [ "$got" = "$want" ] || fail "health checks on the page '$got', /health/detailed '$want'"
echo "health checks: $got"

# Error groups: every group on the page is in /errors, and the groups
# /errors had before the page loaded are on it.
curl -fsS "$base/errors" | jq -r '.groups[].fingerprint' | sort >"$tmp/errors.json.txt"
grep -o 'data-fingerprint="[^"]*"' "$tmp/dom.html" | sed 's/.*="//; s/"$//' | sort >"$tmp/errors.page.txt"
[ -s "$tmp/errors.page.txt" ] || fail "no error group on the page"
comm -23 "$tmp/errors.page.txt" "$tmp/errors.json.txt" | grep . && fail "groups on the page that /errors does not list"
echo "error groups: $(tr '\n' ' ' <"$tmp/errors.page.txt")"

# Alerts: the page lists the firing alerts of /alerts.
firing=$(cat "$tmp/firing.after")
shown=$(grep -o 'data-rule="[^"]*"' "$tmp/dom.html" | sed 's/.*="//; s/"$//' | sort | tr '\n' ' ')
[ -n "$firing" ] || fail "the demo has no firing alert"
[ "$shown" = "$firing" ] || fail "alerts on the page '$shown', firing in /alerts '$firing'"
echo "alerts: $shown"

# The history endpoint: JSON, bounded, filtered by match and since.
h=$(curl -fsS "$base/dashboard/history?match=demo_requests_total")
echo "$h" | jq -e '.series | length > 0 and all(.name == "demo_requests_total")' >/dev/null ||
  fail "match did not filter the history"
last=$(echo "$h" | jq '.timestamps[-1]')
echo "$h" | jq -e '.capacity == 180 and (.timestamps | length) <= 180' >/dev/null || fail "history not bounded"
# since: only the points after that time, whatever the history gained
# meanwhile: since= the last point read gives only newer ones; since= the
# point before it gives the last one again and nothing older.
prev=$(echo "$h" | jq '.timestamps[-2]')
curl -fsS "$base/dashboard/history?since=$last" >"$tmp/since.json"
jq -e --argjson last "$last" 'all(.timestamps[]; . > $last)' \
  "$tmp/since.json" >/dev/null || fail "since=$last returned $(jq -c .timestamps "$tmp/since.json")"
curl -fsS "$base/dashboard/history?since=$prev" >"$tmp/since.json"
jq -e --argjson last "$last" --argjson prev "$prev" \
  '(.timestamps | index($last) != null) and all(.timestamps[]; . > $prev)' \
  "$tmp/since.json" >/dev/null || fail "since=$prev returned $(jq -c .timestamps "$tmp/since.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/dashboard/history?since=abc")
[ "$code" = 400 ] || fail "since=abc answered $code"

# With an API key: the history needs it, the page asks for it.
kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=""
start_demo SONDE_API_KEY=dash-secret-key
base="http://$addr"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/dashboard/history")
[ "$code" = 401 ] || fail "history without the key answered $code"
curl -fsS -H 'Authorization: Bearer dash-secret-key' "$base/dashboard/history" | jq -e '.series' >/dev/null ||
  fail "history with the key failed"
browse "$base/dashboard" "$tmp/dom2.html" "$tmp/chromium2.log"
grep -q 'id="auth" style="display: flex' "$tmp/dom2.html" || fail "the page did not ask for the API key"
echo "PASS"
