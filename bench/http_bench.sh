#!/usr/bin/env bash
# HTTP benchmarks with wrk against sonde-bench-http on loopback, bounded in
# time (about 3 x DURATION + 15 s). Prints `name value unit` lines like
# sonde-bench.
#
#   bench/http_bench.sh [build-dir]            (default: build)
#   DURATION=10 SERIES=10000 bench/http_bench.sh
#
# Figures:
#   metrics_<N>_scrapes_per_s   GET /metrics with N series, wrk -t2 -c8
#   metrics_<N>_bytes           size of one such exposition
#   metrics_<N>_gzip_scrapes_per_s  the same with Accept-Encoding: gzip
#   metrics_<N>_gzip_bytes      size of one such compressed exposition
#   live_requests_per_s         GET /health/live, wrk -t2 -c64
#   hot_loop_idle_incs_per_s     one thread incrementing a counter (median of
#                                1 s samples), nothing scraping
#   hot_loop_scraped_incs_per_s  the same while wrk scrapes /metrics
#   hot_loop_control_incs_per_s  the same while wrk scrapes /metrics filtered
#                                to the other series (same CPU load, the hot
#                                counter not read)
#   hot_loop_loss_vs_idle_percent     100 x (1 - scraped / idle)
#   hot_loop_loss_vs_control_percent  100 x (1 - scraped / control): what
#                                reading the hot counter costs its writer
# For the hot-loop figures the loop runs pinned to CPU 0 and the server and
# wrk to the other CPUs, so the loss measures what scrapes cost the hot path
# (cache lines the scraper reads, any lock) rather than two jobs sharing a
# CPU; on a machine whose CPUs are shared with other jobs (or are SMT
# siblings) the idle comparison also includes that, the control one does
# not.
# wrk, server and (except for the hot loop) everything else share the
# machine's CPUs; the load average at start is printed to judge the noise.
set -euo pipefail

build=${1:-build}
dur=${DURATION:-10}
series=${SERIES:-10000}
bin="$build/bin/sonde-bench-http"
[ -x "$bin" ] || { echo "http_bench: build first ($bin missing)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (scripts/deps.sh)" >&2; exit 1; }
ncpu=$(nproc)
tmp=$(mktemp -d /tmp/sonde-httpbench-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start_server() { # args...
  "$bin" "$@" >"$tmp/server.out" 2>"$tmp/server.err" &
  pid=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [ -n "$addr" ] && return 0
    sleep 0.05
  done
  cat "$tmp/server.err" >&2
  exit 1
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

# wrk's "Requests/sec:" figure.
rps() { awk '/^Requests\/sec:/ {print $2}'; }

echo "load_average_at_start $(cut -d' ' -f1 /proc/loadavg) load"
echo "cpus $ncpu cpus"

start_server --series "$series"
bytes=$(curl -s "http://$addr/metrics" | wc -c)
echo "metrics_${series}_bytes $bytes B"
timeout $((dur + 10)) wrk -t2 -c8 -d"${dur}s" "http://$addr/metrics" >"$tmp/wrk.metrics"
echo "metrics_${series}_scrapes_per_s $(rps <"$tmp/wrk.metrics") req/s"
gzbytes=$(curl -s -H 'Accept-Encoding: gzip' "http://$addr/metrics" | wc -c)
echo "metrics_${series}_gzip_bytes $gzbytes B"
timeout $((dur + 10)) wrk -t2 -c8 -d"${dur}s" -H 'Accept-Encoding: gzip' "http://$addr/metrics" >"$tmp/wrk.gzip"
echo "metrics_${series}_gzip_scrapes_per_s $(rps <"$tmp/wrk.gzip") req/s"
timeout $((dur + 10)) wrk -t2 -c64 -d"${dur}s" "http://$addr/health/live" >"$tmp/wrk.live"
echo "live_requests_per_s $(rps <"$tmp/wrk.live") req/s"
stop_server

# Hot loop, in rounds of three 3-second windows so drifts of a shared
# machine hit every case alike: idle (no scrape), scraped (wrk on /metrics,
# which reads the hot counter), and control (wrk on /metrics filtered to the
# 10,000 bench series: the same work for server and wrk, minus reading the
# hot counter). Each window drops its first second.
start_server --series "$series" --hot
others="0"
[ "$ncpu" -gt 1 ] && others="1-$((ncpu - 1))"
rounds=$(( dur / 3 > 1 ? dur / 3 : 1 ))
sleep 1
: >"$tmp/windows"
for _ in $(seq "$rounds"); do
  for kind in idle scraped control; do
    a=$(date +%s%3N)
    case $kind in
      idle) sleep 3 ;;
      scraped) timeout 15 taskset -c "$others" wrk -t1 -c2 -d3s "http://$addr/metrics" >>"$tmp/wrk.hot" ;;
      control) timeout 15 taskset -c "$others" wrk -t1 -c2 -d3s \
                 "http://$addr/metrics?name[]=bench_http_series_total" >>"$tmp/wrk.ctl" ;;
    esac
    b=$(date +%s%3N)
    echo "$kind $a $b" >>"$tmp/windows"
  done
done
sleep 1.2
stop_server
median() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# A sample "hot T R" covers the second before T: keep those whose whole
# second lies inside a window, after the window's first second.
samples() { # kind
  awk -v k="$1" 'NR == FNR { if ($1 == k) { a[n] = $2; b[n] = $3; n++ } next }
    $1 == "hot" { for (i = 0; i < n; i++) if ($2 - 1000 >= a[i] + 1000 && $2 <= b[i]) print $3 }' \
    "$tmp/windows" "$tmp/server.out"
}
idle=$(samples idle | median)
scraped=$(samples scraped | median)
control=$(samples control | median)
echo "hot_loop_idle_incs_per_s $idle inc/s"
echo "hot_loop_scraped_incs_per_s $scraped inc/s"
echo "hot_loop_control_incs_per_s $control inc/s"
echo "hot_loop_scrapes_per_s $(rps <"$tmp/wrk.hot" | median) req/s"
awk -v i="$idle" -v s="$scraped" -v c="$control" 'BEGIN {
  printf "hot_loop_loss_vs_idle_percent %.2f %%\n", (i > 0 ? 100 * (1 - s / i) : 0)
  printf "hot_loop_loss_vs_control_percent %.2f %%\n", (c > 0 ? 100 * (1 - s / c) : 0) }'
