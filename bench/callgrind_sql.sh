#!/usr/bin/env bash
# Instructions per scrape with and without ten cached SQL queries, counted
# by callgrind (exact, unlike timings, so it does not depend on a noisy
# machine).
#
#   bench/callgrind_sql.sh [build-dir]      (default: build)
#
# Runs <build-dir>/bin/sonde-bench --quick sql under valgrind
# --tool=callgrind and prints the inclusive instructions of each case's
# scrapes (scrape_case_base, scrape_case_sql10, scrape_case_sql10_busy in
# bench/bench_sql.c; every case makes the same number of scrapes) and
#   sql_scrape_instructions_ratio       sql10 / base
#   sql_scrape_busy_instructions_ratio  sql10_busy / base
set -euo pipefail

build=${1:-build}
bin="$build/bin/sonde-bench"
command -v valgrind >/dev/null || { echo "callgrind_sql: valgrind is not installed" >&2; exit 1; }
command -v callgrind_annotate >/dev/null || { echo "callgrind_sql: callgrind_annotate missing" >&2; exit 1; }
[ -x "$bin" ] || { echo "callgrind_sql: $bin not found; build first (cmake --build $build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$bin" --quick sql >"$tmp/log" 2>&1 || {
  echo "callgrind_sql: the valgrind run failed:" >&2
  cat "$tmp/log" >&2
  exit 1
}
callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg" >"$tmp/annotate" 2>/dev/null || true
ir() { # inclusive Ir of a function, 0 when absent
  awk -v f="$1" '!found && $0 ~ (":" f " ") && $0 !~ /=>/ { gsub(",", "", $1); ir = $1; found = 1 }
                 END { print found ? ir : 0 }' "$tmp/annotate"
}
base=$(ir scrape_case_base)
sql10=$(ir scrape_case_sql10)
busy=$(ir scrape_case_sql10_busy)
[ "$base" -gt 0 ] && [ "$sql10" -gt 0 ] && [ "$busy" -gt 0 ] || {
  echo "callgrind_sql: a case is missing from the profile (base $base, sql10 $sql10, busy $busy)" >&2
  exit 1
}
echo "sql_scrape_base_instructions $base"
echo "sql_scrape_sql10_instructions $sql10"
echo "sql_scrape_sql10_busy_instructions $busy"
awk -v a="$sql10" -v b="$base" 'BEGIN { printf "sql_scrape_instructions_ratio %.4f x\n", a / b }'
awk -v a="$busy" -v b="$base" 'BEGIN { printf "sql_scrape_busy_instructions_ratio %.4f x\n", a / b }'
