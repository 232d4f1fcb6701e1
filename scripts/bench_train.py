"""PyTorch counterpart of examples/bench_train.rs: mini-Xception (the same layers as
`convnet::zoo::MiniXception`), one case per invocation, 2 threads.

usage: bench_train.py MODE SIZE BATCH PEER ITERS WARMUP BUDGET_S [DEVICE]
  MODE train|infer, DEVICE cpu (default) or cuda, PEER one of
  nchw     eager, NCHW (contiguous) tensors;
  cl       eager, channels-last model and input;
  compile  `torch.compile(model)` (inductor, default mode), channels-last; the first step
           compiles (on the CPU inductor needs a C++ compiler) and is timed on its own;
  bf16     eager, channels-last, forward and loss under
           `torch.autocast(DEVICE, dtype=torch.bfloat16)`: fp32 master weights, optimizer
           step and gradients in fp32 as in ordinary autocast training.

Train: forward in training mode, BCE with logits, backward, RMSprop step.
Infer: eval mode under torch.no_grad().
Prints `RESULT\t<img/s>\t<peak RSS KiB>\t<samples>\t<compile s>` (median step time; peak
RSS of this process, which includes the interpreter and libtorch; for `compile` the peak is
reset after compilation (`/proc/self/clear_refs`), so it is the compiled model's, not the
compiler's; 0 on cuda, where a step ends with torch.cuda.synchronize(); compile s is 0 for
the eager peers), or `UNAVAILABLE\t<reason>` when the peer cannot run here (no inductor, no
C++ compiler, compilation failed).
Install: `python -m venv venv && venv/bin/pip install torch torchvision`.
"""

import contextlib
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)


class SepConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class Block(nn.Module):
    def __init__(self, cin, size):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-3, momentum=0.01)
        self.sep1 = SepConv(cin, size)
        self.bn2 = nn.BatchNorm2d(size, eps=1e-3, momentum=0.01)
        self.sep2 = SepConv(size, size)
        # TF "same" for 3x3/2 pads (0, 1) on even sizes; padding=1 gives the same output size.
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.project = nn.Conv2d(cin, size, 1, stride=2, bias=False)

    def forward(self, x):
        skip = self.project(x)
        x = self.sep1(F.relu(self.bn1(x)))
        x = self.sep2(F.relu(self.bn2(x)))
        return self.pool(x) + skip


class MiniXception(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 5, bias=False)
        blocks, cin = [], 32
        for size in [32, 64, 128, 256, 512]:
            blocks.append(Block(cin, size))
            cin = size
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(512, 1)

    def forward(self, x):
        x = self.stem(x * (1.0 / 255.0))
        x = self.blocks(x)
        x = x.mean((2, 3))
        return self.head(self.dropout(x))


PEERS = ("nchw", "cl", "compile", "bf16")


def vm_hwm_kib():
    """Peak resident set of this process (KiB): VmHWM, else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak():
    """Resets VmHWM to the current resident set (Linux: `5` into clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def unavailable(reason):
    reason = " ".join(str(reason).split())
    print(f"UNAVAILABLE\t{reason[:200]}")
    sys.exit(0)


def main():
    mode, size, batch, peer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    iters, warmup, budget = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    device = sys.argv[8] if len(sys.argv) > 8 else "cpu"
    if peer not in PEERS:
        sys.exit(f"bench_train.py: PEER `{peer}` is not one of {', '.join(PEERS)}")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    mf = torch.contiguous_format if peer == "nchw" else torch.channels_last
    model = MiniXception(0.5).to(device=device, memory_format=mf)
    x = (torch.rand(batch, 3, size, size, device=device) * 255).to(memory_format=mf)
    y = (torch.rand(batch, 1, device=device) > 0.5).float()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    net = model
    if peer == "compile":
        if not hasattr(torch, "compile"):
            unavailable(f"torch {torch.__version__} has no torch.compile")
        net = torch.compile(model)
    if peer == "bf16":
        autocast = lambda: torch.autocast(device, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.binary_cross_entropy_with_logits(net(x), y)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad(), autocast():
            net(x)

    def step():
        (train if mode == "train" else infer)()
        sync()

    compile_s = 0.0
    if peer == "compile":
        # The first call compiles (forward, and backward when training): timed on its own,
        # then the usual warm-up; a failure makes this peer unavailable, not the run.
        t = time.perf_counter()
        try:
            step()
        except Exception as e:  # noqa: BLE001 (inductor raises many kinds)
            unavailable(f"torch.compile failed: {type(e).__name__}: {e}")
        compile_s = time.perf_counter() - t
        reset_peak()
    for _ in range(warmup):
        step()
    samples, start = [], time.perf_counter()
    for _ in range(iters):
        t = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget:
            break
    med = statistics.median(samples)
    rss = vm_hwm_kib() if device == "cpu" else 0
    print(f"RESULT\t{batch / med:.4f}\t{rss}\t{len(samples)}\t{compile_s:.1f}")


if __name__ == "__main__":
    main()
