#!/usr/bin/env python3
"""Decode sonde's delimited MetricFamily stream with the official schema and
check it field by field against what test_protobuf.c recorded.

usage: check_protobuf.py metrics.proto out.bin observed.txt
protoc (Debian protobuf-compiler) compiles the .proto into a temp dir;
python3-protobuf decodes. Fails on any unknown field, trailing bytes, or a
value that differs from the expectation."""
import math
import os
import subprocess
import sys
import tempfile

proto, data_path, observed_path = sys.argv[1:4]
tmp = tempfile.mkdtemp()
subprocess.run(["protoc", "-I", os.path.dirname(proto), "--python_out", tmp, proto], check=True)
sys.path.insert(0, tmp)
import metrics_pb2 as pb  # noqa: E402

failures = []


def fail(msg):
    failures.append(msg)


def expect(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def no_unknown(msg, path):
    if len(msg.UnknownFields()):
        fail(f"{path}: unknown fields {[f.field_number for f in msg.UnknownFields()]}")
    for fd, val in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for i, sub in enumerate(val if fd.label == fd.LABEL_REPEATED else [val]):
                no_unknown(sub, f"{path}.{fd.name}[{i}]")


def read_varint(b, i):
    shift = v = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


data = open(data_path, "rb").read()
fams = {}
i = 0
while i < len(data):
    n, i = read_varint(data, i)
    if i + n > len(data):
        sys.exit("message runs past the end of the stream")
    f = pb.MetricFamily()
    f.ParseFromString(data[i:i + n])
    i += n
    no_unknown(f, f.name)
    if f.name in fams:
        fail(f"family {f.name} twice")
    fams[f.name] = f

observed = {"native": [], "mixed": []}
for line in open(observed_path):
    k, v = line.split()
    observed[k].append(float(v))


def labels(m):
    return {l.name: l.value for l in m.label}


def fam(name, typ, help_, unit=""):
    f = fams.get(name)
    if f is None:
        fail(f"family {name} missing")
        return None
    expect(f"{name} type", f.type, typ)
    expect(f"{name} help", f.help, help_)
    expect(f"{name} unit", f.unit, unit)
    return f


f = fam("pb_requests_total", pb.COUNTER, "Requests.")
if f:
    got = {labels(m)["method"]: (labels(m), m.counter.value, m.HasField("gauge")) for m in f.metric}
    expect("requests GET", got.get("GET"), ({"svc": "t", "method": "GET"}, 4.0, False))
    ex = [m.counter.exemplar for m in f.metric if labels(m)["method"] == "GET"][0]
    expect("GET exemplar", (labels(ex), ex.value, ex.timestamp.seconds > 1.7e9),
           ({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, 1.0, True))
    post = [m.counter for m in f.metric if labels(m)["method"] == "POST"][0]
    expect("POST has no exemplar", post.HasField("exemplar"), False)
    expect("requests POST", got.get("POST"), ({"svc": "t", "method": "POST"}, 2.5, False))

f = fam("pb_temperature_celsius", pb.GAUGE, "Temperature.", "celsius")
if f:
    expect("temperature", [(labels(m), m.gauge.value) for m in f.metric], [({}, -1.5)])

f = fam("pb_latency_seconds", pb.HISTOGRAM, "Classic.")
if f:
    h = f.metric[0].histogram
    expect("latency count", h.sample_count, 5)
    expect("latency sum", round(h.sample_sum, 9), 8.05)
    expect("latency buckets", [(b.upper_bound, b.cumulative_count) for b in h.bucket],
           [(0.1, 1), (1.0, 3), (math.inf, 5)])
    expect("latency exemplars", [(labels(b.exemplar), b.exemplar.value) if b.HasField("exemplar")
                                 else None for b in h.bucket],
           [None, ({"trace_id": "t2", "span_id": "s2"}, 0.5), ({"trace_id": "inf"}, 5.0)])
    expect("latency is classic", h.HasField("schema") or len(h.positive_span) > 0, False)


def native_expected(values, schema, limit):
    zero = 0
    pos, neg = {}, {}
    for v in values:
        a = abs(v)
        if a <= 2.0 ** -40:
            zero += 1
            continue
        if schema > 0:
            n = 2 ** schema
            i = math.ceil(math.log2(a) * n)
            while 2.0 ** ((i - 1) / n) >= a:
                i -= 1
            while 2.0 ** (i / n) < a:
                i += 1
        else:
            i = math.ceil(math.log2(a))
            while 2.0 ** (i - 1) >= a:
                i -= 1
            while 2.0 ** i < a:
                i += 1
            i = -((-i) // (2 ** -schema))
        side = pos if v > 0 else neg
        side[i] = side.get(i, 0) + 1
    while len(pos) + len(neg) > limit and schema > -4:
        for side in (pos, neg):
            merged = {}
            for k, c in side.items():
                nk = (k + 1) // 2
                merged[nk] = merged.get(nk, 0) + c
            side.clear()
            side.update(merged)
        schema -= 1
    return schema, zero, sorted(pos.items()), sorted(neg.items())


def decode_side(spans, deltas):
    out = []
    idx = None
    di = 0
    count = 0
    for s in spans:
        idx = s.offset if idx is None else idx + s.offset
        for _ in range(s.length):
            count += deltas[di]
            di += 1
            out.append((idx, count))
            idx += 1
    if di != len(deltas):
        fail(f"{len(deltas)} deltas for {di} span buckets")
    return out


def check_native(name, h, values, schema0, limit, classic):
    schema, zero, pos, neg = native_expected(values, schema0, limit)
    expect(f"{name} schema", h.schema, schema)
    expect(f"{name} zero threshold", h.zero_threshold, 2.0 ** -40)
    expect(f"{name} zero count", h.zero_count, zero)
    expect(f"{name} count", h.sample_count, len(values))
    expect(f"{name} sum", math.isclose(h.sample_sum, math.fsum(values), rel_tol=1e-12), True)
    expect(f"{name} positive", decode_side(h.positive_span, h.positive_delta), pos)
    expect(f"{name} negative", decode_side(h.negative_span, h.negative_delta), neg)
    expect(f"{name} classic buckets", [(b.upper_bound, b.cumulative_count) for b in h.bucket],
           classic)


f = fam("pb_native_seconds", pb.HISTOGRAM, "Native.")
if f:
    check_native("native", f.metric[0].histogram, observed["native"], 3, 160, [])
f = fam("pb_mixed_bytes", pb.HISTOGRAM, "Native and classic.", "bytes")
if f:
    vals = observed["mixed"]
    classic = [(0.1, sum(1 for v in vals if v <= 0.1)), (1.0, sum(1 for v in vals if v <= 1))]
    check_native("mixed", f.metric[0].histogram, vals, 8, 4, classic)

f = fam("pb_size_bytes", pb.SUMMARY, "Summary.")
if f:
    s = f.metric[0].summary
    expect("summary count", s.sample_count, 100)
    expect("summary sum", s.sample_sum, 5050.0)
    expect("summary quantiles", [q.quantile for q in s.quantile], [0.5])
    expect("summary median near 50", 45 <= s.quantile[0].value <= 55, True)

f = fam("pb_state", pb.GAUGE, "State.")
if f:
    expect("stateset", sorted((labels(m)["pb_state"], m.gauge.value) for m in f.metric),
           [("a", 0.0), ("b", 1.0)])
f = fam("pb_build_info", pb.GAUGE, "Build.")
if f:
    expect("info", [(labels(m), m.gauge.value) for m in f.metric], [({"version": "1.2"}, 1.0)])
f = fam("pb_coll_untyped", pb.UNTYPED, "From a collector.")
if f:
    expect("collector untyped", [(labels(m), m.untyped.value) for m in f.metric],
           [({"k": "v"}, 7.0)])
f = fam("pb_coll_hist", pb.HISTOGRAM, "Collector histogram.")
if f:
    h = f.metric[0].histogram
    expect("collector histogram", (h.sample_count, h.sample_sum,
                                   [(b.upper_bound, b.cumulative_count) for b in h.bucket]),
           (4, 9.5, [(1.0, 1), (2.0, 3)]))

for name in fams:
    if not name.startswith(("pb_", "sonde_")):
        fail(f"unexpected family {name}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"{len(fams)} families decoded field by field")
