#!/usr/bin/env bash
# A real Prometheus with --enable-feature=native-histograms,exemplar-storage
# scrapes the demo. It then negotiates the protobuf format, so it reads the
# demo's native histogram (demo_request_duration_seconds, schema 3) and the
# exemplars the demo attaches from each request's correlation ID.
#
# The demo simulates traffic for 2 s, then freezes its metrics and keeps
# serving; its log file holds one "request handled" line per observation,
# with the observed duration and the request's correlation ID. Checks:
#  - histogram_quantile(q, sum(demo_request_duration_seconds)) for q in
#    0.5, 0.9, 0.99 lies within one schema-3 bucket (a factor 2^(1/8)) of
#    the true quantile of the logged durations;
#  - the scrape used protobuf (Prometheus sees the native histogram at all:
#    the text formats carry only classic buckets);
#  - query_exemplars returns exemplars, and every trace_id among them is a
#    correlation ID in the demo's log.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
tmp=$(mktemp -d /tmp/sonde-promnh-XXXXXX)
demo_pid=""
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2; exit 1; }

"$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 --simulate 2 \
  --log-file "$tmp/demo.log" >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo_pid=$!
recorded=""
for _ in $(seq 200); do
  recorded=$(sed -n 's/^requests recorded //p' "$tmp/demo.out")
  [ -n "$recorded" ] && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.err" >&2; fail "demo exited"; }
  sleep 0.05
done
[ -n "$recorded" ] && [ "$recorded" -gt 0 ] || fail "the demo recorded no request"
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")

port=$("$svc" free-port)
SONDE_PROMETHEUS_FLAGS="--enable-feature=native-histograms,exemplar-storage" \
  "$svc" prometheus start "$tmp/prom" "$port" "$addr" 1s

/usr/bin/python3 - "$port" "$tmp/demo.log" "$recorded" <<'PY' || fail "native histogram / exemplar checks"
import json, math, sys, time, urllib.parse, urllib.request

port, log_path, recorded = sys.argv[1], sys.argv[2], int(sys.argv[3])
api = f"http://127.0.0.1:{port}/api/v1"

def get(path, **params):
    url = f"{api}/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{path}: {body}")
    return body["data"]

durations, ids = [], set()
for line in open(log_path):
    rec = json.loads(line)
    if rec.get("message") == "request handled":
        durations.append(rec["fields"]["duration_seconds"])
        ids.add(rec["correlation"]["correlation_id"])
if len(durations) != recorded:
    raise SystemExit(f"log has {len(durations)} observations, the demo recorded {recorded}")
durations.sort()

# Wait until Prometheus holds the final state: the native histogram's count.
count = None
for _ in range(300):
    res = get("query", query="histogram_count(sum(demo_request_duration_seconds))")["result"]
    if res:
        count = float(res[0]["value"][1])
        if count == recorded:
            break
    time.sleep(0.1)
if count != recorded:
    raise SystemExit(f"native histogram count {count}, demo recorded {recorded} "
                     "(was protobuf negotiated?)")

growth = 2 ** (2 ** -3)
for q in (0.5, 0.9, 0.99):
    res = get("query", query=f"histogram_quantile({q}, sum(demo_request_duration_seconds))")
    est = float(res["result"][0]["value"][1])
    true = durations[max(0, math.ceil(q * len(durations)) - 1)]
    ratio = est / true
    print(f"q={q}: Prometheus {est:.6g}, observed {true:.6g}, ratio {ratio:.4f}")
    if not (1 / growth <= ratio <= growth):
        raise SystemExit(f"q={q}: estimate {est} not within a factor {growth:.4f} of {true}")

now = time.time()
ex = []
for _ in range(100):
    ex = get("query_exemplars", query="demo_requests_total", start=now - 600, end=now + 60)
    if ex:
        break
    time.sleep(0.1)
got = [e["labels"]["trace_id"] for s in ex for e in s["exemplars"]]
if not got:
    raise SystemExit("query_exemplars returned no exemplar for demo_requests_total")
missing = [t for t in got if t not in ids]
if missing:
    raise SystemExit(f"exemplar IDs not in the demo's log: {missing[:5]}")
hx = get("query_exemplars", query="demo_request_duration_seconds", start=now - 600, end=now + 60)
hgot = [e["labels"]["trace_id"] for s in hx for e in s["exemplars"]]
if not hgot or any(t not in ids for t in hgot):
    raise SystemExit(f"histogram exemplars missing or unknown: {hgot[:5]}")
print(f"{len(got)} counter and {len(hgot)} histogram exemplars, all from the demo's log")
PY
targets=$(curl -fsS "http://127.0.0.1:$port/api/v1/targets" | jq -r '.data.activeTargets[0].lastError')
[ -z "$targets" ] || fail "Prometheus reports a scrape error: $targets"
echo "test_prometheus_native: native histogram quantiles and exemplars check out"
