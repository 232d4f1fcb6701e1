"""Fixtures and checks of the PyTorch interop (`runtime/src/interop`, docs/interop.md).

    python3 -m venv /work/venv-interop
    /work/venv-interop/bin/pip install torch torchvision safetensors numpy
    /work/venv-interop/bin/python scripts/interop_fixtures.py keys       # src/zoo/torchvision/*.keys
    /work/venv-interop/bin/python scripts/interop_fixtures.py fixtures   # tests/fixtures/interop/
    /work/venv-interop/bin/python scripts/interop_fixtures.py zoo DIR    # every zoo model vs torchvision
    /work/venv-interop/bin/python scripts/interop_fixtures.py zoo-fixture  # tests/fixtures/torchvision/

`keys`: torchvision's state-dict keys and shapes of each zoo model, in registration order,
`num_batches_tracked` left out. The zoo derives its torchvision naming from them by pairing
them, in order, with its own parameters in forward order (`convnet::zoo::torchvision`).

`fixtures`: `AllKinds` below, a small module with every parameterised layer kind of the
catalog (conv2d with bias and groups, depthwise, separable as depthwise + pointwise, batch norm
2-d and 1-d, group norm, channels-first layer norm, a `(C, 1, 1)` layer scale, transposed
convolution, a 1x1 convolution on a pooled vector where the DSL has `linear`, linear), seeded,
with random batch-norm statistics, saved by `torch.save` nested under `state_dict` (as a
training checkpoint is), by `torch.save` flat, and as safetensors; with its eval-mode output on
a seeded input. `tests/interop_pytorch.rs` loads them into the same network written in the DSL.

The Keras fixtures are `scripts/keras_fixture.py`'s.

`zoo-fixture`: the one whole torchvision file CI loads (`tests/zoo_torchvision_file.rs`):
torchvision's EfficientNet-B0 (the smallest zoo model, 5.3 M parameters), initialised by
torchvision with seed 0, batch-norm statistics randomised, every tensor rounded to float16 and
saved so by `torch.save(model.state_dict())` (10.6 MB instead of 21), with the eval-mode
output of the float32 model holding the rounded values, on a seeded float16 input.

`zoo DIR`: for each zoo model, torchvision's definition initialised with seed 0 (batch-norm
statistics randomised so they matter), `torch.save(model.state_dict())` as torchvision's
`weights=` files are (GoogLeNet's with its auxiliary heads, as published), one input and the
eval-mode output; then runs `cargo test --release --test interop_torchvision -- --ignored`
(which loads each file into the zoo model, compares outputs and exports the weights back with
torchvision's names), then loads each export into torchvision with `strict=True` and compares
outputs again. Prints the figures recorded in docs/interop.md.
"""

import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(2)
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# zoo name -> torchvision constructor (the keys' order is torchvision's registration order).
ZOO = {
    "resnet18": lambda tv, **kw: tv.models.resnet18(weights=None),
    "resnet50": lambda tv, **kw: tv.models.resnet50(weights=None),
    "resnext50_32x4d": lambda tv, **kw: tv.models.resnext50_32x4d(weights=None),
    "densenet121": lambda tv, **kw: tv.models.densenet121(weights=None),
    "googlenet": lambda tv, aux=False: tv.models.googlenet(weights=None, aux_logits=aux, init_weights=True, transform_input=False),
    "efficientnet_b0": lambda tv, **kw: tv.models.efficientnet_b0(weights=None),
    "mobilenet_v3_large": lambda tv, **kw: tv.models.mobilenet_v3_large(weights=None),
    "vgg16": lambda tv, **kw: tv.models.vgg16(weights=None),
}


def keys() -> None:
    import torchvision as tv

    out = os.path.join(ROOT, "src", "zoo", "torchvision")
    os.makedirs(out, exist_ok=True)
    for name, make in ZOO.items():
        model = make(tv)
        lines = [
            f"{k} {','.join(str(d) for d in v.shape)}"
            for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")
        ]
        with open(os.path.join(out, f"{name}.keys"), "w") as f:
            f.write(f"# torchvision {tv.__version__} {name}: state-dict keys and shapes (scripts/interop_fixtures.py keys)\n")
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} keys")


class LayerNorm2d(nn.LayerNorm):
    """Channels-first layer norm (torchvision's ConvNeXt `LayerNorm2d`)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A `(C, 1, 1)` per-channel factor, as torchvision's ConvNeXt `CNBlock.layer_scale`."""

    def __init__(self, channels):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.rand(channels, 1, 1) + 0.5)

    def forward(self, x):
        return self.layer_scale * x


class AllKinds(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
            nn.Conv2d(8, 16, 1),
            nn.Conv2d(16, 16, 3, padding=1, groups=4),
            nn.GroupNorm(4, 16),
            LayerNorm2d(16, eps=1e-6),
            LayerScale(16),
            nn.ConvTranspose2d(16, 8, 2, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(8, 12, 1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12), nn.Linear(12, 5))

    def forward(self, x):
        return self.head(self.features(x))


def randomize_statistics(model: nn.Module, seed: int) -> None:
    """Non-trivial batch-norm statistics (and affine parameters), seeded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def fixtures() -> None:
    from safetensors.torch import save_file

    out = os.path.join(ROOT, "tests", "fixtures", "interop")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = AllKinds()
    randomize_statistics(model, 1)
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)
    state = model.state_dict()
    torch.save({"epoch": 3, "state_dict": state}, os.path.join(out, "all_kinds.pth"))
    torch.save(state, os.path.join(out, "all_kinds_flat.pth"))
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, "all_kinds.safetensors"))
    save_file({"input": x.contiguous(), "output": y.contiguous()}, os.path.join(out, "all_kinds.expected.safetensors"))
    print(f"all_kinds: {len(state)} tensors, max |y| {y.abs().max():.4f}")
    for f in sorted(os.listdir(out)):
        print(f"  {f}: {os.path.getsize(os.path.join(out, f)):,} bytes")


def zoo(folder: str) -> None:
    import torchvision as tv
    from safetensors.torch import save_file, load_file

    os.makedirs(folder, exist_ok=True)
    refs = {}
    for name, make in ZOO.items():
        torch.manual_seed(0)
        model = make(tv, aux=True) if name == "googlenet" else make(tv)
        randomize_statistics(model, 1)
        model.eval()
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            y = model(x)
        torch.save(model.state_dict(), os.path.join(folder, f"{name}.pth"))
        save_file({"input": x, "output": y.contiguous()}, os.path.join(folder, f"{name}.expected.safetensors"))
        refs[name] = (x, y)
        print(f"{name}: saved, max |y| {y.abs().max():.4f}", flush=True)

    env = dict(os.environ, CONVNET_TORCHVISION_DIR=os.path.abspath(folder))
    cmd = ["cargo", "test", "--release", "--test", "interop_torchvision", "--", "--ignored", "--nocapture"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)

    for name, make in ZOO.items():
        model = make(tv)  # GoogLeNet without auxiliary heads: what the zoo model has
        state = load_file(os.path.join(folder, f"{name}.export.safetensors"))
        model.load_state_dict(state, strict=True)
        model.eval()
        x, y = refs[name]
        with torch.no_grad():
            gap = float((model(x) - y).abs().max())
        print(f"{name}: export loads with strict=True, max |torch(export) - torch(original)| {gap:.3e}")
        if gap > 1e-5:
            sys.exit(f"{name}: the exported weights compute something else")


def zoo_fixture() -> None:
    import torchvision as tv
    from safetensors.torch import save_file

    out = os.path.join(ROOT, "tests", "fixtures", "torchvision")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = ZOO["efficientnet_b0"](tv)
    randomize_statistics(model, 1)
    model = model.half().float().eval()  # the values float16 holds, computed in float32
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2)).half()
    with torch.no_grad():
        y = model(x.float())
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(out, "efficientnet_b0_f16.pth"))
    save_file({"input": x.contiguous(), "output": y.contiguous()}, os.path.join(out, "efficientnet_b0_f16.expected.safetensors"))
    print(f"efficientnet_b0: {len(state)} tensors, max |y| {y.abs().max():.4f}")
    for f in sorted(os.listdir(out)):
        print(f"  {f}: {os.path.getsize(os.path.join(out, f)):,} bytes")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "keys":
        keys()
    elif what == "fixtures":
        fixtures()
    elif what == "zoo-fixture":
        zoo_fixture()
    elif what == "zoo" and len(sys.argv) == 3:
        zoo(sys.argv[2])
    else:
        sys.exit(__doc__)
