"""PyTorch counterpart of examples/bench_train.rs: mini-Xception (the same layers as
`convnet::zoo::MiniXception`), one case per invocation, 2 threads.

usage: bench_train.py MODE SIZE BATCH FORMAT ITERS WARMUP BUDGET_S [DEVICE]
  MODE train|infer, FORMAT nchw|cl (channels_last), DEVICE cpu (default) or cuda.

Train: forward in training mode, BCE with logits, backward, RMSprop step.
Infer: eval mode under torch.no_grad().
Prints `RESULT\t<img/s>\t<peak RSS KiB>\t<samples>` (median step time; peak RSS of this
process, ru_maxrss, which includes the interpreter and libtorch; 0 on cuda, where a step
ends with torch.cuda.synchronize()).
"""

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


def main():
    mode, size, batch, fmt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    iters, warmup, budget = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    device = sys.argv[8] if len(sys.argv) > 8 else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    mf = torch.channels_last if fmt == "cl" else torch.contiguous_format
    model = MiniXception(0.5).to(device=device, memory_format=mf)
    x = (torch.rand(batch, 3, size, size, device=device) * 255).to(memory_format=mf)
    y = (torch.rand(batch, 1, device=device) > 0.5).float()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    def step():
        (train if mode == "train" else infer)()
        sync()

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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if device == "cpu" else 0
    print(f"RESULT\t{batch / med:.4f}\t{rss}\t{len(samples)}")


if __name__ == "__main__":
    main()
