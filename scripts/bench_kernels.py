"""PyTorch counterpart of examples/bench_kernels.rs: the same shapes, forward + backward
(loss sum(y^2) / 2, so the output gradient is y), 2 threads, NCHW and channels_last; median
of REPS runs (argv[1], default 5).

Prints a human-readable line per case and a machine-readable one,
`RESULT\t<case>\t<nchw ms>\t<channels_last ms>`, that the Rust example parses.
"""

import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def same(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def timed(fn):
    fn()
    ms = []
    for _ in range(REPS):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def depthwise(dims, memory_format):
    n, c, h, w = dims
    x = torch.randn(dims).to(memory_format=memory_format).requires_grad_()
    wt = torch.randn(c, 1, 3, 3).requires_grad_()

    def step():
        x.grad = None
        wt.grad = None
        y = F.conv2d(x, wt, padding=1, groups=c)
        (y * y).sum().mul(0.5).backward()

    return timed(step)


def max_pool(dims, memory_format):
    n, c, h, w = dims
    t, b = same(h, 3, 2)
    l, r = same(w, 3, 2)
    x = torch.randn(dims).to(memory_format=memory_format).requires_grad_()

    def step():
        x.grad = None
        y = F.max_pool2d(F.pad(x, (l, r, t, b), value=-math.inf), 3, 2)
        (y * y).sum().mul(0.5).backward()

    return timed(step)


def main():
    print(f"PyTorch {torch.__version__}, threads {torch.get_num_threads()}, median of {REPS} runs")
    cases = [
        (f"depthwise 3x3 same [{', '.join(map(str, d))}]", depthwise, d)
        for d in ([16, 32, 176, 176], [16, 256, 45, 45], [16, 512, 11, 11])
    ]
    cases.append(("max pool 3x3/2 same [16, 32, 176, 176]", max_pool, [16, 32, 176, 176]))
    for name, fn, dims in cases:
        nchw = fn(dims, torch.contiguous_format)
        cl = fn(dims, torch.channels_last)
        print(f"RESULT\t{name}\t{nchw:.3f}\t{cl:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
