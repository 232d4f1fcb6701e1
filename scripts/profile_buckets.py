#!/usr/bin/env python3
"""Shares of a training step by kind of work, from `perf record` files (README, "Where the
time went"). Each symbol of `perf report --no-children --sort symbol` goes to one bucket;
the columns are the files given, in order.

    perf record -D 4000 -o after.data target/release/examples/bench_train \
        --child train 180 16 --iters 12 --warmup 2 --budget-s 60
    python3 scripts/profile_buckets.py before.data after.data
"""
import re, subprocess, sys
def buckets(data):
    """{bucket: percent of samples} of one perf file."""
    out = subprocess.run(["perf","report","-i",data,"--no-children","--sort","symbol","--stdio"],capture_output=True,text=True).stdout
    b = {}
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if not m: continue
        pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
        if kind == 'k': k = "kernel (scheduling, page faults)"
        elif "gemm" in sym: k = "matrix multiplies (gemm)"
        elif "ops::depthwise" in sym: k = "depthwise convolution"
        elif "ops::batch_norm" in sym: k = "batch norm"
        elif "ops::pool" in sym: k = "max pooling"
        elif "ops::dense" in sym or "im2col" in sym: k = "dense convolution (im2col)"
        elif "memmove" in sym or "memset" in sym or "memcpy" in sym: k = "libc copies and fills"
        elif "candle_core" in sym: k = "candle elementwise and graph"
        else: k = "other (rayon, closures, allocator)"
        b[k] = b.get(k, 0) + pct
    return b
rows = {}
names = sys.argv[1:]
for d in names:
    rows[d] = buckets(d)
keys = sorted({k for r in rows.values() for k in r}, key=lambda k: -rows[names[0]].get(k,0))
for k in keys:
    print(k, *["%.1f" % rows[d].get(k,0) for d in names], sep=" | ")
