#!/usr/bin/env bash
# The README's picture of /dashboard: runs the demo, lets it collect about
# 20 s of history (and fire its alert), and screenshots the page with
# Debian's headless chromium.
#
#   scripts/screenshot.sh [build-dir] [out.png]   (default: build docs/dashboard.png)
#   WAIT=30 WIDTH=1280 HEIGHT=1340 scripts/screenshot.sh
set -euo pipefail
build=${1:-build}
out=${2:-docs/dashboard.png}
wait_s=${WAIT:-20}
demo="$build/bin/sonde-demo"
[ -x "$demo" ] || { echo "screenshot: $demo not found; build first (make)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "screenshot: chromium is not installed (scripts/deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sonde-shot-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A history point every second, so 20 s give the charts 20 points.
SONDE_DASHBOARD_INTERVAL=1 "$demo" --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
pid=$!
addr=""
for _ in $(seq 600); do
  addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/demo.err" >&2; echo "screenshot: the demo exited" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "screenshot: the demo did not print its address" >&2; exit 1; }
echo "screenshot: demo on http://$addr, collecting ${wait_s}s of history"
sleep "$wait_s"

mkdir -p "$(dirname "$out")"
timeout 240 chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --virtual-time-budget=10000 \
  --window-size="${WIDTH:-1280},${HEIGHT:-1340}" --screenshot="$out" \
  "http://$addr/dashboard" >"$tmp/chromium.log" 2>&1 || {
  tail -5 "$tmp/chromium.log" >&2
  echo "screenshot: chromium failed" >&2
  exit 1
}
[ -s "$out" ] || { echo "screenshot: chromium wrote no $out" >&2; exit 1; }
echo "screenshot: wrote $out ($(stat -c %s "$out") bytes)"
