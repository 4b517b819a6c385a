#!/usr/bin/env bash
# The exposition formats as real consumers read them: promtool (from the
# Prometheus server package) lints the Prometheus text format, and the official Python
# client parses all of them; parsed values must equal what was recorded.
set -euo pipefail
: "${SONDE_SOURCE_DIR:?}" "${SONDE_TEST_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dump="$SONDE_TEST_DIR/expose_fixture_dump"
check="$SONDE_SOURCE_DIR/tests/integration/check_exposition.py"
expected="$SONDE_SOURCE_DIR/tests/data/expose.expected.json"

"$dump" prometheus >"$tmp/out.prom"
"$dump" openmetrics >"$tmp/out.om"
"$dump" json >"$tmp/out.json"

echo "== promtool check metrics (Prometheus text)"
promtool check metrics <"$tmp/out.prom"
# promtool check metrics reads the 0.0.4 text format only (its parser
# rejects OpenMetrics' escaped quotes in HELP), so OpenMetrics is checked by
# the Python client's strict OpenMetrics parser below and by a real
# Prometheus server negotiating it in the HTTP integration tests.

echo "== Python prometheus_client parsers"
/usr/bin/python3 "$check" prometheus "$tmp/out.prom" "$expected"
/usr/bin/python3 "$check" openmetrics "$tmp/out.om" "$expected"
/usr/bin/python3 "$check" json "$tmp/out.json" "$expected"

echo "== the demo's live output in every format"
for f in prometheus openmetrics json; do
  "$SONDE_BIN_DIR/sonde-demo" --once --format "$f" >"$tmp/demo.$f"
done
promtool check metrics <"$tmp/demo.prometheus"
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
from prometheus_client.parser import text_string_to_metric_families as prom
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
d = sys.argv[1]
p = {f.name: f for f in prom(open(d + "/demo.prometheus").read())}
o = {f.name: f for f in om(open(d + "/demo.openmetrics").read())}
j = {f["name"]: f for f in json.load(open(d + "/demo.json"))["families"]}
# The Python client names counter families without _total.
for need in ("demo_requests", "demo_request_duration_seconds", "process_cpu_seconds"):
    assert need in p, f"{need} missing from Prometheus text: {sorted(p)}"
for need in ("demo_requests_total", "demo_request_duration_seconds", "process_cpu_seconds_total"):
    assert need in j, f"{need} missing from JSON: {sorted(j)}"
assert "demo_requests" in o and o["demo_requests"].type == "counter", sorted(o)
assert o["demo_circuit_breaker_state"].type == "stateset"
assert o["demo_build"].type == "info"
total = sum(s.value for s in p["demo_requests"].samples)
assert total > 0, "the demo recorded no requests"
print(f"demo output parses in all formats; {total:.0f} requests recorded")
PY
echo "ok"
