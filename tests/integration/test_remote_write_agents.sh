#!/usr/bin/env bash
# Remote write configured without code, against a real VictoriaMetrics
# started here on loopback:
#  - the demo with SONDE_REMOTE_WRITE_URL: once its simulated traffic stops,
#    every demo_requests_total and demo_cache_operations_total series has
#    in VictoriaMetrics exactly the value the demo's /metrics shows, with
#    the external labels of SONDE_REMOTE_WRITE_EXTERNAL_LABELS;
#  - `sonde serve --config` with a remote_write section: the agent's host
#    metrics arrive (constant ones with exactly the served value), its keep
#    and drop filters hold, and a bad entry is refused as FILE:LINE:COLUMN.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
tmp=$(mktemp -d /tmp/sonde-rw-agents-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.err "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
unset SONDE_WEBHOOK_URL SONDE_SLACK_WEBHOOK_URL SONDE_ALERTMANAGER_URL http_proxy HTTP_PROXY \
  SONDE_STORE SONDE_API_KEY SONDE_REMOTE_WRITE_URL SONDE_REMOTE_WRITE_INTERVAL \
  SONDE_REMOTE_WRITE_EXTERNAL_LABELS SONDE_REMOTE_WRITE_QUEUE_DIR SONDE_REMOTE_WRITE_BEARER_TOKEN_FILE

vmport=$("$SONDE_SOURCE_DIR/scripts/services.sh" free-port)
vm="http://127.0.0.1:$vmport"
victoria-metrics -httpListenAddr="127.0.0.1:$vmport" -storageDataPath="$tmp/vm" \
  -search.latencyOffset=0s -search.disableCache -retentionPeriod=100y >"$tmp/vm.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -fs "$vm/health" >/dev/null && break; sleep 0.1; done
curl -fs "$vm/health" >/dev/null || fail "VictoriaMetrics did not start"

# Wait for "listening on ADDR" in file $1; prints ADDR.
listening() {
  local a=""
  for _ in $(seq 200); do
    a=$(sed -n 's/^listening on //p' "$1")
    [ -n "$a" ] && break
    sleep 0.1
  done
  [ -n "$a" ] || return 1
  echo "$a"
}

# Compare, for the metric names given, every series of the text exposition
# in $1 (a file) with the last value VictoriaMetrics holds for the same
# label set plus the labels in $2 (JSON object). Exit 0 when all are equal
# (at least one series each), else print the differences.
compare() {
  local text=$1 extra=$2
  shift 2
  python3 - "$vm" "$text" "$extra" "$@" <<'EOF'
import json, re, sys, urllib.parse, urllib.request
vm, text, extra, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
lab_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
want = {}
for ln in open(text):
    m = line_re.match(ln.strip())
    if not m or m.group(1) not in names:
        continue
    labels = dict(lab_re.findall(m.group(3) or ''))
    labels.update(extra)
    labels['__name__'] = m.group(1)
    want[tuple(sorted(labels.items()))] = float(m.group(4))
got = {}
for n in names:
    sel = '{__name__="%s",%s}' % (n, ','.join('%s="%s"' % kv for kv in extra.items()))
    url = vm + '/api/v1/export?' + urllib.parse.urlencode({'match[]': sel})
    for ln in urllib.request.urlopen(url).read().decode().splitlines():
        if not ln.strip():
            continue
        d = json.loads(ln)
        last = max(zip(d['timestamps'], d['values']))[1]
        got[tuple(sorted(d['metric'].items()))] = float(last)
bad = []
for n in names:
    if not any(dict(k)['__name__'] == n for k in want):
        bad.append('no %s series in the exposition' % n)
for k, v in want.items():
    if got.get(k) != v:
        bad.append('%s: served %r, VictoriaMetrics %r' % (dict(k), v, got.get(k)))
if bad:
    print('\n'.join(bad[:10]))
    sys.exit(1)
print('%d series equal' % len(want))
EOF
}

# Retry compare until equal (samples become searchable within seconds).
compare_eventually() {
  local out=""
  for _ in $(seq 40); do
    curl -fs "$vm/internal/force_flush" >/dev/null || true
    if out=$(compare "$@"); then
      echo "$out"
      return 0
    fi
    sleep 0.5
  done
  echo "$out"
  return 1
}

# ---- the demo, configured by the environment only ----
SONDE_REMOTE_WRITE_URL="$vm/api/v1/write" SONDE_REMOTE_WRITE_INTERVAL=500ms \
  SONDE_REMOTE_WRITE_EXTERNAL_LABELS="instance=demo-rw,site=lab" \
  "$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 --simulate 2 \
  >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo=$!
pids+=($demo)
addr=$(listening "$tmp/demo.out") || fail "demo did not start"
# Traffic stops after 2 s; wait until two scrapes a second apart agree.
prev=""
for _ in $(seq 30); do
  sleep 1
  cur=$(curl -fs "http://$addr/metrics" | grep -E '^demo_(requests|cache_operations)_total' || true)
  [ -n "$cur" ] && [ "$cur" = "$prev" ] && break
  prev=$cur
done
[ -n "$cur" ] && [ "$cur" = "$prev" ] || fail "demo traffic did not stop"
curl -fs "http://$addr/metrics" >"$tmp/demo.prom"
res=$(compare_eventually "$tmp/demo.prom" '{"instance":"demo-rw","site":"lab"}' \
  demo_requests_total demo_cache_operations_total) || fail "demo series in VictoriaMetrics: $res"
echo "demo: $res"
# The samples are in VictoriaMetrics, so the demo has sent them; its counter
# is read again (demo.prom was taken before they were shipped) until it
# shows them, for at most 10 s.
sent=""
for _ in $(seq 20); do
  sent=$(curl -fs "http://$addr/metrics" |
    grep -E '^sonde_remote_write_samples_sent_total\{remote="http://127\.0\.0\.1:[0-9]+/api/v1/write"\} [1-9]' || true)
  [ -n "$sent" ] && break
  sleep 0.5
done
[ -n "$sent" ] || fail "demo: no samples counted as sent"
grep -E '^sonde_remote_write_samples_dropped_total\{.*\} [1-9]' "$tmp/demo.prom" &&
  fail "demo: samples dropped"
kill -TERM "$demo"
wait "$demo" || fail "demo exited with $?"

# ---- sonde serve --config with a remote_write section ----
printf 't0ken-not-checked-by-vm\n' >"$tmp/token"
cat >"$tmp/agent.yml" <<EOF
server:
  listen: 127.0.0.1:0
service:
  name: rw-agent
remote_write:
  - url: $vm/api/v1/write
    interval: 500ms
    bearer_token_file: $tmp/token
    external_labels:
      agent: rw-agent
    keep: ["sonde_host_.*", "sonde_config_.*"]
    drop: ["sonde_host_cpu_seconds_total", "sonde_config_reloads_total"]
    queue:
      memory: 4MiB
      batch_deadline: 200ms
EOF
"$SONDE_BIN_DIR/sonde" check-config "$tmp/agent.yml" >"$tmp/check.out" ||
  fail "check-config refused the agent configuration: $(cat "$tmp/check.out")"
grep -q "remote write to $vm/api/v1/write" "$tmp/check.out" || fail "check-config: $(cat "$tmp/check.out")"
"$SONDE_BIN_DIR/sonde" serve --config "$tmp/agent.yml" >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent=$!
pids+=($agent)
aaddr=$(listening "$tmp/agent.out") || fail "agent did not start"
grep -q "remote write to $vm/api/v1/write every 0.5s" "$tmp/agent.err" || fail "agent did not announce its writer"
sleep 1.5
curl -fs "http://$aaddr/metrics" >"$tmp/agent.prom"
res=$(compare_eventually "$tmp/agent.prom" '{"agent":"rw-agent"}' sonde_host_memory_total_bytes \
  sonde_host_cpus sonde_host_boot_time_seconds sonde_host_filesystem_size_bytes \
  sonde_config_last_reload_successful) || fail "agent series in VictoriaMetrics: $res"
echo "agent: $res"
# Filters: dropped and not kept families never arrive.
for n in sonde_host_cpu_seconds_total sonde_config_reloads_total sonde_http_requests_total \
  sonde_remote_write_samples_sent_total; do
  out=$(curl -fs "$vm/api/v1/export" --data-urlencode "match[]={__name__=\"$n\",agent=\"rw-agent\"}")
  [ -z "$out" ] || fail "$n arrived despite the filters: ${out:0:200}"
done
# /info names the writer without credentials; the token is shown nowhere.
info=$(curl -fs "http://$aaddr/info")
echo "$info" | grep -q "remote_write_1" || fail "/info does not list the writer: $info"
grep -rq "t0ken" "$tmp/agent.out" "$tmp/agent.err" && fail "token printed"
echo "$info" | grep -q "t0ken" && fail "token in /info"
kill -TERM "$agent"
wait "$agent" || fail "agent exited with $?"

# A bad entry: refused at its line and column, nothing started.
cat >"$tmp/bad.yml" <<EOF
remote_write:
  - url: $vm/api/v1/write
    queue:
      memroy: 4MiB
EOF
if "$SONDE_BIN_DIR/sonde" serve --config "$tmp/bad.yml" >"$tmp/bad.out" 2>"$tmp/bad.err"; then
  fail "serve accepted a bad remote_write entry"
fi
grep -q "^$tmp/bad.yml:4:7: error: unknown key \"memroy\" in remote_write queue (did you mean \"memory\"?)" \
  "$tmp/bad.err" || fail "bad entry: $(cat "$tmp/bad.err")"
echo "remote write from the environment (demo) and from sonde serve --config: ok"
