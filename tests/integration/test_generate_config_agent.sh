#!/usr/bin/env bash
# sonde generate-config --config sonde.yml: the operator files of an agent,
# from its configuration alone, checked like the --url path: promtool
# (config and rules), amtool, the in-process alert rules carried over with
# the same name, labels, for and annotations the running agent reports, and
# a real Prometheus running the generated prometheus.yml (bearer key file)
# and rules.yml against `sonde serve --config` of the same file: every
# PromQL expression of the dashboard and the rules evaluates without error,
# those over families the agent exposes return data, every rule is healthy.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
sonde="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-gen-agent-XXXXXX)
agent_pid=""
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2; exit 1; }

agent_port=$("$svc" free-port)
key=agent-gen-key-5f3a
cat >"$tmp/pipeline.yml" <<EOF
server:
  listen: "127.0.0.1:$agent_port"
  api_key: "$key"
service:
  name: pipeline-agent
checks:
  - {name: root_disk, type: disk, path: /, warning_free_percent: 1, critical_free_percent: 0.5}
  - {name: memory, type: memory, warning_available_percent: 1, critical_available_percent: 0.5}
  - {name: scratch, type: writable, path: $tmp}
alerts:
  rules:
    - name: AgentDegraded
      kind: health
      percent: 80
      for: 1m
      severity: critical
      summary: "health at {value}%"
      description: "see the runbook"
      labels: {team: ops}
    - name: CheckoutErrors
      kind: errors
      min_severity: high
      threshold: 10
      window: 5m
      type: DatabaseError
    - name: AgentOpenFds
      kind: value
      metric: process_open_fds
      op: ">"
      threshold: 100000
      for: 1m
      severity: medium
      summary: "{value} open fds"
    - name: AgentCpuBusy
      kind: rate
      metric: process_cpu_seconds_total
      threshold: 50
      window: 1m
      severity: high
    - name: AgentScrapesStopped
      kind: increase
      metric: sonde_host_cpu_seconds_total
      by: [mode]
      op: "<"
      threshold: 0
      window: 5m
      severity: low
    - name: AgentIdleRatio
      kind: ratio
      metric: 'sonde_host_cpu_seconds_total{mode="idle"}'
      denominator: sonde_host_cpu_seconds_total
      by: [mode]
      threshold: 2
      window: 5m
      for: 2m
      severity: high
EOF
out="$tmp/out"
"$sonde" generate-config --config "$tmp/pipeline.yml" --output "$out" --scrape-interval 1s \
  --namespace monitoring >"$tmp/gen.out" || fail "generate-config --config failed"
grep -q "3 health checks, 6 alert rules (0 without a PromQL equivalent" "$tmp/gen.out" ||
  fail "summary: $(cat "$tmp/gen.out")"
# A config with errors: FILE:LINE:COLUMN, nothing written.
printf 'checks:\n  - {name: x, type: nope}\n' >"$tmp/bad.yml"
if "$sonde" generate-config --config "$tmp/bad.yml" --output "$tmp/badout" 2>"$tmp/err"; then
  fail "a bad config was accepted"
fi
grep -q "bad.yml:2:" "$tmp/err" || fail "no FILE:LINE in: $(cat "$tmp/err")"
[ ! -e "$tmp/badout" ] || fail "files written for a bad config"
if "$sonde" generate-config --config "$tmp/pipeline.yml" --url http://127.0.0.1:1 --output "$tmp/x" 2>"$tmp/err"; then
  fail "--config with --url accepted"
fi

promtool check config "$out/prometheus/prometheus.yml" || fail "promtool check config"
promtool check rules "$out/prometheus/rules.yml" || fail "promtool check rules"
amtool check-config "$out/alertmanager/alertmanager.yml" || fail "amtool check-config"
grep -q 'job_name: "pipeline-agent"' "$out/prometheus/prometheus.yml" || fail "job is not the service name"
grep -q "127.0.0.1:$agent_port" "$out/prometheus/prometheus.yml" || fail "target is not server.listen"
grep -q "credentials_file: sonde_api_key" "$out/prometheus/prometheus.yml" || fail "no bearer file"
[ "$(stat -c %a "$out/prometheus/sonde_api_key")" = 600 ] || fail "key file not 0600"
[ "$(cat "$out/prometheus/sonde_api_key")" = "$key" ] || fail "key file content"
[ -f "$out/k8s/secret.yaml" ] || fail "no Secret for the config's api_key"

# The agent itself, from the same file.
"$sonde" serve --config "$tmp/pipeline.yml" >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent_pid=$!
for _ in $(seq 400); do
  curl -fsS -o /dev/null "http://127.0.0.1:$agent_port/health/live" 2>/dev/null && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$tmp/agent.err" >&2; fail "the agent exited"; }
  sleep 0.05
done
auth=(-H "Authorization: Bearer $key")
curl -fsS "${auth[@]}" "http://127.0.0.1:$agent_port/alerts" >"$tmp/alerts.json" || fail "GET /alerts"

port=$("$svc" free-port)
am_port=$("$svc" free-port)
sed "s/alertmanager:9093/127.0.0.1:$am_port/" "$out/prometheus/prometheus.yml" >"$out/prometheus/run.yml"
grep -q "127.0.0.1:$am_port" "$out/prometheus/run.yml" || fail "no alertmanager target to replace"
"$svc" prometheus start "$tmp/prom" "$port" --config "$out/prometheus/run.yml"
api="http://127.0.0.1:$port/api/v1"
scrapes=0
for _ in $(seq 600); do
  scrapes=$(curl -fsS --get --data-urlencode 'query=sum(count_over_time(up{job="pipeline-agent"}[1m]))' \
    "$api/query" | jq -r '.data.result[0].value[1] // 0')
  ups=$(curl -fsS --get --data-urlencode 'query=sum(up{job="pipeline-agent"})' \
    "$api/query" | jq -r '.data.result[0].value[1] // 0')
  [ "$scrapes" -ge 6 ] && [ "$ups" = 1 ] && break
  sleep 0.1
done
[ "$scrapes" -ge 6 ] && [ "$ups" = 1 ] || fail "Prometheus scraped the agent $scrapes times (up=$ups)"
# Wait until every rule has been evaluated over several points.
for _ in $(seq 300); do
  n=$(curl -fsS "$api/rules" | jq '[.data.groups[].rules[] | select(.lastEvaluation | startswith("0001") | not)] | length')
  total=$(curl -fsS "$api/rules" | jq '[.data.groups[].rules[]] | length')
  [ "$total" -gt 0 ] && [ "$n" = "$total" ] && break
  sleep 0.1
done
sleep 2

curl -fsS "${auth[@]}" "http://127.0.0.1:$agent_port/metrics/json" |
  jq -r '.families[] | select(.metrics | length > 0) | .name' >"$tmp/live.txt"
python3 - "$out" "$api" "$tmp/live.txt" "$tmp/alerts.json" <<'PY' || fail "expressions, rules or manifests"
import json, re, sys, urllib.parse, urllib.request, yaml, os
out, api = sys.argv[1], sys.argv[2]
live = set(open(sys.argv[3]).read().split())
assert "sonde_health_overall" in live and "sonde_host_cpus" in live, sorted(live)
agent_alerts = json.load(open(sys.argv[4]))
bad = []

def families(expr):
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))

def needs_data(expr):
    names = families(expr)
    return any(n in live or re.sub(r"_(bucket|count|sum)$", "", n) in live for n in names)

def query(expr):
    u = api + "/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(u, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

dash = json.load(open(os.path.join(out, "grafana/dashboard.json")))
rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
assert "Overview" in rows, rows
n = withdata = 0
for p in dash["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "1m").replace("$job", "pipeline-agent").replace("$instance", ".*")
        d = query(e)
        n += 1
        if d.get("status") != "success":
            bad.append("dashboard %r: %s" % (e, d.get("error")))
        elif needs_data(e) and not d["data"]["result"]:
            bad.append("dashboard %r: no data" % e)
        elif d["data"]["result"]:
            withdata += 1
health_panels = [e for p in dash["panels"] for t in p.get("targets", []) for e in [t["expr"]]
                 if "sonde_health" in e]
assert health_panels, "no health panel in the dashboard"
print("dashboard: %d expressions, %d with data" % (n, withdata))

rules = yaml.safe_load(open(os.path.join(out, "prometheus/rules.yml")))
nr = 0
for g in rules["groups"]:
    for r in g["rules"]:
        d = query(r["expr"])
        nr += 1
        if d.get("status") != "success":
            bad.append("rule %r: %s" % (r["expr"], d.get("error")))
        elif "record" in r and needs_data(r["expr"]) and not d["data"]["result"]:
            bad.append("recording rule %s: no data" % r["record"])
with urllib.request.urlopen(api + "/rules", timeout=10) as r:
    rr = json.load(r)
ev = [(x["name"], x["health"], x.get("lastError", "")) for g in rr["data"]["groups"] for x in g["rules"]]
assert len(ev) == nr, (len(ev), nr)
bad += ["rule %s evaluated with health %s: %s" % e for e in ev if e[1] != "ok"]

# Every in-process rule the agent runs: same name, labels, for, annotations.
gen = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
for a in agent_alerts["rules"]:
    g = gen.get(a["rule"])
    if g is None:
        bad.append("in-process rule %s missing from rules.yml" % a["rule"])
        continue
    want = {k: v for k, v in a["labels"].items() if k != "alertname"}
    if g.get("labels") != want:
        bad.append("rule %s labels %r, the agent has %r" % (a["rule"], g.get("labels"), want))
    fs = a["definition"].get("for_seconds", 0)
    got = g.get("for", "0s")
    secs = {"s": 1, "m": 60, "h": 3600}[got[-1]] * float(got[:-1])
    if secs != fs:
        bad.append("rule %s for %s, the agent holds %ss" % (a["rule"], got, fs))
    d = a["definition"]
    if d.get("description") and g["annotations"].get("description") != d["description"]:
        bad.append("rule %s description %r" % (a["rule"], g["annotations"].get("description")))
    if "summary" not in g["annotations"]:
        bad.append("rule %s has no summary" % a["rule"])
assert gen["AgentDegraded"]["annotations"]["summary"] == "health at {{ $value | humanize }}%", gen["AgentDegraded"]
print("rules: %d expressions, %d in-process rules compared" % (nr, len(agent_alerts["rules"])))

# The Kubernetes files carry the agent's name, namespace and probes.
dep = yaml.safe_load(open(os.path.join(out, "k8s", "deployment.yaml")))
assert dep["metadata"]["namespace"] == "monitoring" and dep["metadata"]["name"] == "pipeline-agent", dep["metadata"]
ctr = dep["spec"]["template"]["spec"]["containers"][0]
assert ctr["livenessProbe"]["httpGet"]["path"] == "/health/live"
assert any(e.get("valueFrom", {}).get("secretKeyRef") for e in ctr.get("env", [])), ctr
pr = yaml.safe_load(open(os.path.join(out, "k8s", "prometheusrule.yaml")))
assert pr["spec"]["groups"] == rules["groups"], "PrometheusRule differs from rules.yml"
c = yaml.safe_load(open(os.path.join(out, "docker-compose.yml")))
for name, s in c["services"].items():
    assert s.get("image"), name
    for v in s.get("volumes", []):
        assert os.path.exists(os.path.join(out, v.split(":")[0])), (name, v)

for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "PASS"
