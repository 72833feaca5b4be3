#!/usr/bin/env python3
"""Write seeds/push_protobuf/: delimited protobuf push bodies of each metric
type, encoded by hand from metrics.proto's field numbers (no protobuf package
needed), plain and gzipped. The first byte of each seed is the fuzz target's
control byte (bit 0 POST, bits 1-2 the second group, bit 3 gzip). Inputs that
once crashed the target sit beside them (help_leading_space)."""
import gzip
import os
import struct

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def field(num, wire, payload):
    return varint(num << 3 | wire) + payload

def msg(num, body):
    return field(num, 2, varint(len(body)) + body)

def string(num, s):
    return msg(num, s.encode())

def double(num, v):
    return field(num, 1, struct.pack("<d", v))

def uint(num, v):
    return field(num, 0, varint(v))

def label(name, value):
    return msg(1, string(1, name) + string(2, value))

def family(name, kind, metrics):
    body = string(1, name) + string(2, name + " help") + uint(3, kind)
    for m in metrics:
        body += msg(4, m)
    return varint(len(body)) + body

COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = 0, 1, 2, 3, 4

seeds = {
    "gauge_and_counter": family("g", GAUGE, [label("k", "v") + msg(2, double(1, 2.5))])
    + family("c_total", COUNTER, [msg(3, double(1, 3.0))]),
    "summary": family(
        "s",
        SUMMARY,
        [label("k", "v") + msg(4, uint(1, 4) + double(2, 10.0)
                               + msg(3, double(1, 0.5) + double(2, 2.0)))],
    ),
    "histogram": family(
        "h",
        HISTOGRAM,
        [msg(7, uint(1, 3) + double(2, 4.5)
             + msg(3, uint(1, 1) + double(2, 1.0))
             + msg(3, uint(1, 3) + double(2, float("inf"))))],
    ),
    "untyped_two_series": family(
        "u", UNTYPED, [label("a", "1") + msg(5, double(1, 1.0)), label("a", "2") + msg(5, double(1, 2.0))]
    ),
}

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "push_protobuf")
os.makedirs(here, exist_ok=True)
for name, body in seeds.items():
    for control, tag in ((b"\x00", "put"), (b"\x01", "post"), (b"\x04", "put_le_group")):
        with open(os.path.join(here, f"{name}_{tag}"), "wb") as f:
            f.write(control + body)
    with open(os.path.join(here, f"{name}_put_gzip"), "wb") as f:
        f.write(b"\x08" + gzip.compress(body, mtime=0))
