#!/usr/bin/python3
"""Parse sonde's Prometheus text and OpenMetrics output with the official
Python client parsers and compare every sample with the values the fixture
recorded (tests/data/expose.expected.json: [name, labels, value] triples; le and
quantile labels compare as numbers, since each format writes them in its
canonical form: "1" in 0.0.4, "1.0" in OpenMetrics).

Also checks the JSON format against the same values.

usage: check_exposition.py prometheus|openmetrics FILE EXPECTED
"""
import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as prom_parse


def norm(k, v):
    return repr(float(v)) if k in ("le", "quantile") else v


def key(name, labels):
    return (name, tuple(sorted((k, norm(k, v)) for k, v in labels.items())))


def num(v):
    return float({"+Inf": "inf", "-Inf": "-inf"}.get(v, v)) if isinstance(v, str) else float(v)


def load_expected(path):
    with open(path, encoding="utf-8") as f:
        return {key(n, l): num(v) for n, l, v in json.load(f)}


def parse_json(text):
    """Flatten sonde's JSON format into the same samples."""
    got, types = {}, {}
    for fam in json.loads(text)["families"]:
        types[fam["name"]] = fam["type"]
        for m in fam["metrics"]:
            lab = m["labels"]
            if fam["type"] == "histogram":
                for b in m["buckets"]:
                    got[key(fam["name"] + "_bucket", dict(lab, le=b["le"]))] = num(b["count"])
                got[key(fam["name"] + "_count", lab)] = num(m["count"])
                got[key(fam["name"] + "_sum", lab)] = num(m["sum"])
            elif fam["type"] == "summary":
                for q in m["quantiles"]:
                    got[key(fam["name"], dict(lab, quantile=q["quantile"]))] = num(q["value"])
                got[key(fam["name"] + "_count", lab)] = num(m["count"])
                got[key(fam["name"] + "_sum", lab)] = num(m["sum"])
            elif fam["type"] == "stateset":
                for st, v in m["states"].items():
                    got[key(fam["name"], dict(lab, **{fam["name"]: st}))] = num(v)
            else:
                got[key(fam["name"], lab)] = num(m["value"])
    return got, types


def main():
    fmt, path, expected = sys.argv[1], sys.argv[2], sys.argv[3]
    text = open(path, encoding="utf-8").read()
    if fmt == "json":
        got, types = parse_json(text)
    else:
        parse = om_parse if fmt == "openmetrics" else prom_parse
        got, types = {}, {}
        for fam in parse(text):
            types[fam.name] = fam.type
            for s in fam.samples:
                got[key(s.name, s.labels)] = s.value
    want = load_expected(expected)
    bad = 0
    for k, v in want.items():
        if k not in got:
            print(f"missing sample {k}; parsed: {sorted(got)[:50]}")
            bad += 1
            continue
        g = got[k]
        same = (math.isnan(v) and math.isnan(g)) or g == v
        if not same:
            print(f"value mismatch {k}: parsed {g!r}, recorded {v!r}")
            bad += 1
    if fmt == "openmetrics":
        for fam, t in (("fixture_breaker", "stateset"), ("fixture_build", "info"),
                       ("fixture_requests", "counter"), ("fixture_latency_seconds", "histogram")):
            if types.get(fam) != t:
                print(f"family {fam}: type {types.get(fam)!r}, want {t!r}")
                bad += 1
    print(f"{fmt}: {len(got)} samples parsed, {len(want)} compared, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
