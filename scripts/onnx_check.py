#!/usr/bin/env python3
"""Compares convnet's ONNX exports with onnxruntime (docs/onnx.md).

    cargo run --release --example onnx_check -- --out DIR [MODEL...]
    python scripts/onnx_check.py DIR [--expect MODEL,...]

For each DIR/NAME.onnx, runs onnxruntime (CPU, 2 threads) on NAME.input.npy and compares
with NAME.output.npy (convnet's forward): max |ours - onnxruntime| must be at most
1e-4 * max(1, max |onnxruntime|). Also checks that the batch dim is symbolic and that the
first example alone (batch 1) gives the same output, and runs onnx's checker with full shape
inference on each file first. Prints a Markdown table; exits 1 on any failure, or when a
model named by --expect has no files. Needs onnxruntime, onnx and numpy.
"""
import argparse
import pathlib
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--expect", default="", help="comma-separated models that must be there")
    args = ap.parse_args()
    models = sorted(p.name[: -len(".onnx")] for p in args.dir.glob("*.onnx"))
    expected = [m for m in args.expect.split(",") if m]
    failures = [f"{m}: no {m}.onnx in {args.dir}" for m in expected if m not in models]
    if not models:
        failures.append(f"no .onnx files in {args.dir}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    print()
    print("| model | input | output | max abs(ours - onnxruntime) | max abs(onnxruntime) | bound | batch 1 | onnxruntime s |")
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        try:
            onnx.checker.check_model(str(args.dir / f"{m}.onnx"), full_check=True)
        except Exception as e:  # the checker's own error types vary by version
            failures.append(f"{m}: onnx.checker: {e}")
        x = np.load(args.dir / f"{m}.input.npy")
        ours = np.load(args.dir / f"{m}.output.npy")
        sess = ort.InferenceSession(
            str(args.dir / f"{m}.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        for v in (inp, out):
            if not isinstance(v.shape[0], str):
                failures.append(f"{m}: {v.name}'s batch dim is {v.shape[0]!r}, not symbolic")
        start = time.perf_counter()
        theirs = sess.run([out.name], {inp.name: x})[0]
        seconds = time.perf_counter() - start
        one = sess.run([out.name], {inp.name: x[:1]})[0]
        if theirs.shape != ours.shape:
            failures.append(f"{m}: onnxruntime outputs {theirs.shape}, ours {ours.shape}")
            continue
        err = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
        scale = float(np.max(np.abs(theirs)))
        bound = TOL * max(1.0, scale)
        err1 = float(np.max(np.abs(one - theirs[:1])))
        ok = err <= bound and err1 <= bound and np.isfinite(theirs).all()
        if not ok:
            failures.append(f"{m}: max |ours - onnxruntime| = {err:.3g} (batch 1: {err1:.3g}) > {bound:.3g}")
        print(
            f"| {m} | {tuple(x.shape)} | {tuple(ours.shape)} | {err:.2e} | {scale:.3g} | {bound:.0e} "
            f"| {err1:.1e} | {seconds:.2f} |{'' if ok else ' **FAIL**'}"
        )
    print()
    if failures:
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        sys.exit(1)
    print(f"all {len(models)} models within {TOL:g} * max(1, max |onnxruntime|)")


if __name__ == "__main__":
    main()
