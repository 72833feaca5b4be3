"""Decode a delimited protobuf exposition page (stdin) with Python's protobuf
package over tests/proto/metrics.proto, and print it as text-format samples,
one per line: `name{k="v",...} value`, labels sorted, histogram buckets
cumulative with `+Inf` from sample_count (as Prometheus reads them), then a
line `# native NAME{labels} schema zero_threshold zero_count spans deltas` for
each histogram that carries native fields. Module dir: argv[1]."""
import sys

sys.path.insert(0, sys.argv[1])
import metrics_pb2  # noqa: E402
from google.protobuf.internal.decoder import _DecodeVarint32  # noqa: E402

KIND = {0: "counter", 1: "gauge", 2: "summary", 3: "untyped", 4: "histogram"}


def fmt(v):
    if v == float("inf"):
        return "+Inf"
    return repr(float(v))


def esc(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample(name, labels, value, extra=None):
    pairs = dict(labels)
    if extra:
        pairs[extra[0]] = extra[1]
    inner = ",".join('%s="%s"' % (k, esc(pairs[k])) for k in sorted(pairs))
    print("%s{%s} %s" % (name, inner, fmt(value)))


data = sys.stdin.buffer.read()
pos = 0
families = 0
while pos < len(data):
    size, pos = _DecodeVarint32(data, pos)
    fam = metrics_pb2.MetricFamily()
    fam.ParseFromString(data[pos:pos + size])
    pos += size
    families += 1
    kind = KIND[fam.type]
    print("# family %s %s" % (fam.name, kind))
    for m in fam.metric:
        labels = [(l.name, l.value) for l in m.label]
        if kind == "counter":
            sample(fam.name, labels, m.counter.value)
        elif kind == "gauge":
            sample(fam.name, labels, m.gauge.value)
        elif kind == "untyped":
            sample(fam.name, labels, m.untyped.value)
        elif kind == "summary":
            for q in m.summary.quantile:
                sample(fam.name, labels, q.value, ("quantile", fmt(q.quantile)))
            sample(fam.name + "_sum", labels, m.summary.sample_sum)
            sample(fam.name + "_count", labels, m.summary.sample_count)
        else:
            h = m.histogram
            for b in h.bucket:
                sample(fam.name + "_bucket", labels, b.cumulative_count, ("le", fmt(b.upper_bound)))
            sample(fam.name + "_bucket", labels, h.sample_count, ("le", "+Inf"))
            sample(fam.name + "_sum", labels, h.sample_sum)
            sample(fam.name + "_count", labels, h.sample_count)
            if h.HasField("schema") or h.positive_span or h.zero_threshold:
                spans = ";".join("%d:%d" % (s.offset, s.length) for s in h.positive_span)
                deltas = ";".join(str(d) for d in h.positive_delta)
                print("# native %s %d %r %d %s %s" % (
                    fam.name, h.schema, h.zero_threshold, h.zero_count, spans, deltas))
print("# families %d" % families)
