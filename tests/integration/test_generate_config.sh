#!/usr/bin/env bash
# sonde generate-config against the running demo, checked with the real
# tools: promtool (config and rules), amtool (Alertmanager config), a real
# Prometheus running the generated prometheus.yml and rules.yml against the
# demo (every PromQL expression of the dashboard and the rules evaluates
# without error, the dashboard's expressions over the demo's own families
# return data, every rule evaluates with health "ok"), and the compose and
# Kubernetes files parsed with python3-yaml, with their kinds' fields.
set -euo pipefail
: "${SONDE_BIN_DIR:?}" "${SONDE_SOURCE_DIR:?}"
svc="$SONDE_SOURCE_DIR/scripts/services.sh"
sonde="$SONDE_BIN_DIR/sonde"
tmp=$(mktemp -d /tmp/sonde-gen-XXXXXX)
demo_pid=""
cleanup() {
  "$svc" prometheus stop "$tmp/prom" || true
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/prom/prometheus.log" ] && tail -20 "$tmp/prom/prometheus.log" >&2; exit 1; }

"$SONDE_BIN_DIR/sonde-demo" --web.listen-address 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo_pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
  [ -n "$addr" ] && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$tmp/demo.err" >&2; fail "demo exited"; }
  sleep 0.05
done
[ -n "$addr" ] || fail "the demo did not print its address"
out="$tmp/out"

"$sonde" generate-config --url "http://$addr" --output "$out" --scrape-interval 1s \
  --namespace monitoring || fail "generate-config failed"
# Refuses to overwrite; --force does; --only limits; bad options are named.
if "$sonde" generate-config --url "http://$addr" --output "$out" 2>"$tmp/err"; then
  fail "overwrote without --force"
fi
grep -q "exists (use --force" "$tmp/err" || fail "unclear refusal: $(cat "$tmp/err")"
"$sonde" generate-config --url "http://$addr" --output "$out" --scrape-interval 1s \
  --namespace monitoring --force >/dev/null || fail "--force failed"
"$sonde" generate-config --url "http://$addr" --output "$tmp/only" --only grafana,k8s >/dev/null
[ -f "$tmp/only/grafana/dashboard.json" ] && [ -f "$tmp/only/k8s/deployment.yaml" ] &&
  [ ! -e "$tmp/only/prometheus" ] || fail "--only grafana,k8s wrote other files"
if "$sonde" generate-config --url "http://$addr" --output "$tmp/x" --only grafana,nope 2>"$tmp/err"; then
  fail "--only nope accepted"
fi
grep -q -- "--only" "$tmp/err" || fail "unclear --only error"
if "$sonde" generate-config --url "http://$addr" --output "$tmp/x" --scrape-interval 5 2>"$tmp/err"; then
  fail "--scrape-interval 5 accepted"
fi
grep -q "scrape interval" "$tmp/err" || fail "unclear interval error: $(cat "$tmp/err")"

promtool check config "$out/prometheus/prometheus.yml" || fail "promtool check config"
promtool check rules "$out/prometheus/rules.yml" || fail "promtool check rules"
amtool check-config "$out/alertmanager/alertmanager.yml" || fail "amtool check-config"

# With an API key: bearer credentials from a 0600 file; the Secret exists.
"$sonde" generate-config --url "http://$addr" --output "$tmp/key" --api-key gen-test-key >/dev/null
grep -q "credentials_file: sonde_api_key" "$tmp/key/prometheus/prometheus.yml" || fail "no bearer file"
[ "$(stat -c %a "$tmp/key/prometheus/sonde_api_key")" = 600 ] || fail "key file not 0600"
[ "$(cat "$tmp/key/prometheus/sonde_api_key")" = gen-test-key ] || fail "key file content"
promtool check config "$tmp/key/prometheus/prometheus.yml" || fail "promtool check config (key)"
[ -f "$tmp/key/k8s/secret.yaml" ] || fail "no Secret with --api-key"

# A real Prometheus runs the generated files against the demo.
port=$("$svc" free-port)
# The run sends alerts to a closed loopback port, not to the compose host
# name "alertmanager" (no name lookups leave this machine).
am_port=$("$svc" free-port)
sed "s/alertmanager:9093/127.0.0.1:$am_port/" "$out/prometheus/prometheus.yml" >"$out/prometheus/run.yml"
grep -q "127.0.0.1:$am_port" "$out/prometheus/run.yml" || fail "no alertmanager target to replace"
"$svc" prometheus start "$tmp/prom" "$port" --config "$out/prometheus/run.yml"
api="http://127.0.0.1:$port/api/v1"
scrapes=0
for _ in $(seq 300); do
  scrapes=$(curl -fsS --get --data-urlencode 'query=count_over_time(up{job="sonde-demo"}[1m])' \
    "$api/query" | jq -r '.data.result[0].value[1] // 0')
  [ "$scrapes" -ge 6 ] && break
  sleep 0.1
done
[ "$scrapes" -ge 6 ] || fail "Prometheus scraped the demo $scrapes times"
sleep 2 # one more rule evaluation with several points in every range

# The demo's families that have series (a family without any has no data).
curl -fsS "http://$addr/metrics/json" |
  jq -r '.families[] | select(.name | startswith("demo_")) | select(.metrics | length > 0) | .name' \
  >"$tmp/live.txt"
python3 - "$out" "$api" "$tmp/live.txt" <<'PY' || fail "expressions or manifests"
import json, sys, urllib.parse, urllib.request, yaml, os
out, api = sys.argv[1], sys.argv[2]
live = set(open(sys.argv[3]).read().split())
assert live, "the demo has no family with series"
bad = []

def needs_data(expr):
    return any(f in expr.replace("_bucket", "").replace("_count", "") for f in live)

def query(expr):
    u = api + "/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(u, timeout=10) as r:
            d = json.load(r)
    except urllib.error.HTTPError as e:
        d = json.load(e)
    return d

dash = json.load(open(os.path.join(out, "grafana/dashboard.json")))
assert dash["schemaVersion"] >= 36 and dash["uid"].startswith("sonde-"), "dashboard header"
names = [v["name"] for v in dash["templating"]["list"]]
assert "job" in names and "instance" in names, names
rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
assert "demo" in rows and "Overview" in rows, rows
kinds = {p["type"] for p in dash["panels"]}
assert "state-timeline" in kinds, kinds
n = withdata = 0
for p in dash["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "1m").replace("$job", "sonde-demo").replace("$instance", ".*")
        d = query(e)
        n += 1
        if d.get("status") != "success":
            bad.append("dashboard %r: %s" % (e, d.get("error")))
        elif needs_data(e) and not d["data"]["result"]:
            bad.append("dashboard %r: no data" % e)
        elif d["data"]["result"]:
            withdata += 1
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
alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
assert "DemoBackendErrors" in alerts and "DemoHealthDegraded" in alerts, alerts
slow = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DemoSlowRoute"]
assert slow and slow[0]["expr"].startswith("histogram_quantile(0.99, sum by (route, le) (rate(demo_http_request_duration_seconds_bucket"), slow
be = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DemoBackendErrors"][0]
assert be["labels"]["severity"] == "high" and be["labels"]["service"] == "sonde-demo", be
assert "description" in be["annotations"], be
print("rules: %d expressions" % nr)
with urllib.request.urlopen(api + "/rules", timeout=10) as r:
    rr = json.load(r)
ev = [(x["name"], x["health"], x.get("lastError", "")) for g in rr["data"]["groups"] for x in g["rules"]]
assert len(ev) == nr, (len(ev), nr)
bad += ["rule %s evaluated with health %s: %s" % e for e in ev if e[1] != "ok"]

# Compose: every service has an image; mounted files exist.
c = yaml.safe_load(open(os.path.join(out, "docker-compose.yml")))
assert {"prometheus", "alertmanager", "grafana", "sonde-demo"} <= set(c["services"]), c["services"].keys()
for name, s in c["services"].items():
    assert s.get("image"), name
    for v in s.get("volumes", []):
        host = v.split(":")[0]
        assert os.path.exists(os.path.join(out, host)), (name, host)

# Kubernetes: the fields each kind needs.
def load(f):
    d = yaml.safe_load(open(os.path.join(out, "k8s", f)))
    for k in ("apiVersion", "kind", "metadata", "spec"):
        assert k in d, (f, k)
    assert d["metadata"]["name"] and d["metadata"]["namespace"] == "monitoring", f
    return d
dep = load("deployment.yaml")
assert dep["kind"] == "Deployment" and dep["apiVersion"] == "apps/v1"
assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
ctr = dep["spec"]["template"]["spec"]["containers"][0]
assert ctr["name"] and ctr["image"]
assert ctr["livenessProbe"]["httpGet"]["path"] == "/health/live"
assert ctr["readinessProbe"]["httpGet"]["path"] == "/health/ready"
sv = load("service.yaml")
assert sv["kind"] == "Service" and sv["spec"]["ports"][0]["port"] and sv["spec"]["selector"]
sm = load("servicemonitor.yaml")
assert sm["kind"] == "ServiceMonitor" and sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["selector"]
pm = load("podmonitor.yaml")
assert pm["kind"] == "PodMonitor" and pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
pr = load("prometheusrule.yaml")
assert pr["kind"] == "PrometheusRule" and pr["spec"]["groups"] == rules["groups"], "PrometheusRule differs from rules.yml"
key = yaml.safe_load(open(os.path.join(out, "..", "key", "k8s", "deployment.yaml")))
env = key["spec"]["template"]["spec"]["containers"][0]["env"]
assert any(e.get("valueFrom", {}).get("secretKeyRef") for e in env), env
sec = yaml.safe_load(open(os.path.join(out, "..", "key", "k8s", "secret.yaml")))
assert sec["kind"] == "Secret" and "api-key" in sec["stringData"]
smk = yaml.safe_load(open(os.path.join(out, "..", "key", "k8s", "servicemonitor.yaml")))
assert smk["spec"]["endpoints"][0]["bearerTokenSecret"]["name"] == sec["metadata"]["name"]

for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "PASS"
