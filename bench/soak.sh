#!/usr/bin/env bash
# Soak test: the demo under scrape and request load for MINUTES minutes.
#
#   bench/soak.sh MINUTES [build-dir]        (default build dir: build)
#   RATE=20 WARMUP=60 bench/soak.sh 30
#
# The demo runs its simulated workload (worker threads, errors, alerts,
# tracing); a load generator on loopback sends RATE requests per second
# (default 20) spread over /metrics (gzip, as Prometheus asks),
# /metrics?format=openmetrics, /health, /health/detailed, /errors, /alerts,
# /performance and /demo/stats, and counts the answers.
#
# Printed: RSS, open file descriptors and threads after the warm-up (WARMUP
# seconds, default 60) and then once a minute; at the end the exact totals
# (requests sent by status vs. the per-handler counts the demo exposes) and
#   soak_rss_growth_percent   100 x (RSS at end / RSS after warm-up - 1)
#   soak_fd_growth            open fds at end - after warm-up
#   soak_thread_growth        threads at end - after warm-up
# Exit status 1 when the RSS grew by 5% or more, fds or threads grew, or a
# total does not match; 0 otherwise.
set -euo pipefail

minutes=${1:?usage: bench/soak.sh MINUTES [build-dir]}
build=${2:-build}
rate=${RATE:-20}
warmup=${WARMUP:-60}
demo="$build/bin/sonde-demo"
[ -x "$demo" ] || { echo "soak: build first ($demo missing; run make)" >&2; exit 1; }
case $minutes in '' | *[!0-9]*) echo "soak: MINUTES must be a whole number, got '$minutes'" >&2; exit 2 ;; esac

tmp=$(mktemp -d /tmp/sonde-soak-XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$demo" --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
pid=$!
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$tmp/demo.out" | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "${addr:-}" ] || { echo "soak: the demo did not print its address" >&2; cat "$tmp/demo.err" >&2; exit 1; }

sample() { # rss_kib fds threads
    local rss thr fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    echo "$rss $fds $thr"
}

echo "soak: demo pid $pid on $addr, $minutes min, $rate req/s, warm-up ${warmup}s, load $(cut -d' ' -f1-3 /proc/loadavg)"

# The load generator: python3's standard library only, one keep-alive
# connection, a fixed schedule; it writes the counts as JSON when it ends.
python3 - "$addr" "$rate" "$((warmup + minutes * 60))" "$tmp/counts.json" <<'EOF' &
import http.client, json, sys, time
addr, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
paths = [("/metrics", "metrics", {"Accept-Encoding": "gzip"}),
         ("/metrics?format=openmetrics", "metrics", {}),
         ("/health", "health", {}), ("/health/detailed", "detailed", {}),
         ("/errors", "errors", {}), ("/alerts", "alerts", {}),
         ("/performance", "performance", {}), ("/demo/stats", "demo_stats", {})]
counts, status, failures = {}, {}, 0
conn = None
start = time.monotonic()
n = 0
while True:
    due = start + n / rate
    now = time.monotonic()
    if now - start >= seconds:
        break
    if due > now:
        time.sleep(due - now)
    path, handler, headers = paths[n % len(paths)]
    n += 1
    try:
        if conn is None:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        counts[handler] = counts.get(handler, 0) + 1
        status[str(resp.status)] = status.get(str(resp.status), 0) + 1
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
    except Exception as e:
        failures += 1
        print("soak: request failed: %s %r" % (path, e), file=sys.stderr)
        conn = None
json.dump({"counts": counts, "status": status, "failures": failures}, open(out, "w"))
EOF
gen=$!

sleep "$warmup"
read -r rss0 fds0 thr0 < <(sample)
echo "after warm-up: rss ${rss0} KiB, fds $fds0, threads $thr0"
for m in $(seq "$minutes"); do
    sleep 60
    kill -0 "$pid" 2>/dev/null || { echo "soak: the demo died" >&2; cat "$tmp/demo.err" >&2; exit 1; }
    read -r rss fds thr < <(sample)
    echo "minute $m: rss ${rss} KiB, fds $fds, threads $thr"
done
wait "$gen"
read -r rss1 fds1 thr1 < <(sample)

# The demo's own counts, read once (a request is counted after it is
# answered, so this read is not in them).
curl -sf "http://$addr/metrics" >"$tmp/final.prom"
fail=0
python3 - "$tmp/counts.json" "$tmp/final.prom" <<'EOF' || fail=1
import json, re, sys
gen = json.load(open(sys.argv[1]))
seen = {}
for line in open(sys.argv[2]):
    m = re.match(r'sonde_http_request_duration_seconds_count\{handler="([^"]+)"\} (\S+)', line)
    if m:
        seen[m.group(1)] = int(float(m.group(2)))
print("requests sent by status:", json.dumps(gen["status"], sort_keys=True),
      "transport failures:", gen["failures"])
ok = gen["failures"] == 0 and set(gen["status"]) <= {"200"}
for handler, sent in sorted(gen["counts"].items()):
    if handler == "demo_stats":
        continue  # an application route: counted by the demo's own metrics
    match = seen.get(handler) == sent
    ok = ok and match
    print("  %-12s sent %7d  demo counted %7s  %s" % (handler, sent, seen.get(handler), "ok" if match else "MISMATCH"))
sys.exit(0 if ok else 1)
EOF

growth=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { printf "%.2f", 100 * (b / a - 1) }')
echo "soak_minutes $minutes"
echo "soak_requests_per_s $rate"
echo "soak_rss_start_kib $rss0"
echo "soak_rss_end_kib $rss1"
echo "soak_rss_growth_percent $growth"
echo "soak_fd_growth $((fds1 - fds0))"
echo "soak_thread_growth $((thr1 - thr0))"
awk -v g="$growth" 'BEGIN { exit !(g >= 5) }' && { echo "soak: RSS grew ${growth}% (limit 5%)"; fail=1; }
[ "$fds1" -gt "$fds0" ] && { echo "soak: open fds grew from $fds0 to $fds1"; fail=1; }
[ "$thr1" -gt "$thr0" ] && { echo "soak: threads grew from $thr0 to $thr1"; fail=1; }
[ "$fail" = 0 ] && echo "soak: passed" || echo "soak: FAILED"
exit "$fail"
