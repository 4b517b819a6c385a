#!/usr/bin/env bash
# Instructions per sonde_counter_inc, counted by callgrind (exact, unlike
# timings, so it does not depend on a noisy machine).
#
#   bench/callgrind_counter.sh [build-dir]      (default: build)
#   N=1000000 bench/callgrind_counter.sh build-bench
#
# Runs <build-dir>/bin/sonde-bench-inc with N increments and with 0 under
# valgrind --tool=callgrind and prints:
#   counter_inc_instructions       (total Ir with N - total Ir with 0) / N:
#                                  the call as the caller pays for it
#                                  (argument move, call, body, ret, and
#                                  a tenth of the unrolled loop's own step)
#   counter_inc_self_instructions  the self Ir of sonde_counter_inc from
#                                  callgrind_annotate, (N run - 0 run) / N
set -euo pipefail

build=${1:-build}
n=${N:-1000000}
bin="$build/bin/sonde-bench-inc"

command -v valgrind >/dev/null || { echo "callgrind_counter: valgrind is not installed" >&2; exit 1; }
command -v callgrind_annotate >/dev/null || { echo "callgrind_counter: callgrind_annotate missing" >&2; exit 1; }
[ -x "$bin" ] || { echo "callgrind_counter: $bin not found; build first (cmake --build $build)" >&2; exit 1; }
case "$n" in ''|*[!0-9]*|0) echo "callgrind_counter: N must be a positive integer" >&2; exit 1 ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # run <count> <outfile>
  valgrind --tool=callgrind --callgrind-out-file="$2" "$bin" "$1" >"$tmp/log.$1" 2>&1 || {
    echo "callgrind_counter: valgrind run with $1 increments failed:" >&2
    cat "$tmp/log.$1" >&2
    exit 1
  }
}
total_ir() { awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$1"; }
self_ir() { # self Ir of sonde_counter_inc, 0 when absent
  # --threshold=100 lists every function; awk reads to the end so the
  # annotator never dies of SIGPIPE (pipefail would end the script).
  callgrind_annotate --threshold=100 "$1" 2>/dev/null |
    awk '!found && /:sonde_counter_inc( |$)/ { gsub(",", "", $1); ir = $1; found = 1 }
         END { print found ? ir : 0 }'
}

run "$n" "$tmp/cg.n"
run 0 "$tmp/cg.0"

tn=$(total_ir "$tmp/cg.n"); t0=$(total_ir "$tmp/cg.0")
sn=$(self_ir "$tmp/cg.n"); s0=$(self_ir "$tmp/cg.0")
[ -n "$tn" ] && [ -n "$t0" ] || { echo "callgrind_counter: no Ir totals in callgrind output" >&2; exit 1; }

awk -v tn="$tn" -v t0="$t0" -v sn="$sn" -v s0="$s0" -v n="$n" 'BEGIN {
  printf "counter_inc_instructions %.2f instr/op\n", (tn - t0) / n
  printf "counter_inc_self_instructions %.2f instr/op\n", (sn - s0) / n
}'
