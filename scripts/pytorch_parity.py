"""PyTorch reference for `tests/pytorch_parity.rs`: EfficientNet-B0 and the U-Net, eval mode.

Writes `tests/fixtures/pytorch_parity.safetensors`, which holds outputs only (no weights), so
the Rust test runs without torch. Regenerate with (CPU only; a few minutes, the U-Net forward
in float64 being most of it):

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch torchvision numpy
    /tmp/venv-torch/bin/python scripts/pytorch_parity.py

Weights. Every parameter and batch-norm statistic is set from a formula keyed by the
variable's name *in the convnet model* (`to_convnet_name_*` below map torch's state-dict
names to ours; EfficientNet-B0's are torchvision's own) and the element's row-major index `i`, which `tests/common/formula_weights.rs`
implements identically:

    h = fnv1a64(utf8(name));  z = splitmix64(h ^ i);  u = (z >> 11) * 2**-52 - 1   # [-1, 1)
    running_mean      0.1 u
    running_var       1 + 0.5 |u|
    bias              0.1 u            (batch-norm beta and conv/linear biases)
    weight, rank 1    1 + 0.1 u        (batch-norm gamma)
    weight, rank >= 2 u sqrt(6 / fan_in), fan_in = elements / shape[0]

computed in float64 and rounded once to float32, so both sides hold bit-identical weights.
The input is `u` keyed by the name `input` over the input tensor's elements.

Models.
- `efficientnet_b0`: torchvision's `efficientnet_b0(weights=None)`; if torchvision is not
  installed, `EfficientNetB0` below, written after `torchvision/models/efficientnet.py`
  (same state-dict names). With torchvision both exist and must agree on names and shapes.
- `unet`: milesial's Pytorch-UNet (`unet/unet_parts.py`, `unet/unet_model.py` at commit
  21d7850), `UNet(n_channels=3, n_classes=2, bilinear=False)`, transcribed below.

The reference forward runs in float64 (the float32 weights widened exactly), batch 2 at
3x224x224 for EfficientNet-B0 and batch 1 at 3x256x256 for the U-Net. The fixture holds:
- `efficientnet_b0.logits` [2, 1000] (f64);
- `unet.index` [4096] (u32, flat indices into the [1, 2, 256, 256] output, drawn with the
  same generator keyed by `unet.sample`) and `unet.values` [4096] (f64) at them;
  `unet.stats` [3] (f64): mean, mean of |y| and max |y| over the whole output;
- `<model>.names`: the convnet variable names the script filled, UTF-8, one per line (u8),
  so the Rust test can tell a renamed variable from a numerical mismatch;
- `counts.<torchvision name>` [1] (i64): trainable parameters of the PyTorch definitions
  (torchvision's, when installed, and the U-Net above), pinned against the DSL's counts.

It also prints the float32-vs-float64 difference of torch itself (the noise floor).
"""

import math
import os
import struct
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

FIXTURE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "pytorch_parity.safetensors"
)

# ---------------------------------------------------------------------------------------------
# The weight formula (mirrored by tests/common/formula_weights.rs).

MASK64 = (1 << 64) - 1


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit(name: str, count: int) -> np.ndarray:
    """`count` values in [-1, 1) keyed by `name`, float64."""
    z = splitmix64(np.uint64(fnv1a64(name)) ^ np.arange(count, dtype=np.uint64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def formula(name: str, shape) -> np.ndarray:
    """The float32 value of convnet variable `name` of `shape`."""
    n = int(np.prod(shape)) if len(shape) else 1
    u = unit(name, n)
    last = name.rsplit(".", 1)[-1]
    if last == "running_mean":
        v = 0.1 * u
    elif last == "running_var":
        v = 1.0 + 0.5 * np.abs(u)
    elif last == "bias":
        v = 0.1 * u
    elif last == "weight" and len(shape) == 1:
        v = 1.0 + 0.1 * u
    elif last == "weight":
        v = u * math.sqrt(6.0 / (n // shape[0]))
    else:
        raise ValueError(f"no formula for variable `{name}` of shape {list(shape)}")
    return v.astype(np.float32).reshape(shape)


def fill(model: nn.Module, to_convnet_name) -> list:
    """Sets every parameter and batch-norm statistic of `model` from the formula; returns the
    convnet names filled."""
    names = []
    state = model.state_dict()
    with torch.no_grad():
        for torch_name, tensor in state.items():
            if torch_name.endswith("num_batches_tracked"):
                continue
            ours = to_convnet_name(torch_name)
            value = formula(ours, tuple(tensor.shape))
            tensor.copy_(torch.from_numpy(value))
            names.append(ours)
    if len(set(names)) != len(names):
        raise ValueError("two torch variables map to one convnet name")
    return names


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# milesial's U-Net (Pytorch-UNet, unet/unet_parts.py and unet/unet_model.py, as published).


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv"""

    def __init__(self, in_channels, out_channels, bilinear=True):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels, n_classes, bilinear=False):
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear
        self.inc = DoubleConv(n_channels, 64)
        self.down1 = Down(64, 128)
        self.down2 = Down(128, 256)
        self.down3 = Down(256, 512)
        factor = 2 if bilinear else 1
        self.down4 = Down(512, 1024 // factor)
        self.up1 = Up(1024, 512 // factor, bilinear)
        self.up2 = Up(512, 256 // factor, bilinear)
        self.up3 = Up(256, 128 // factor, bilinear)
        self.up4 = Up(128, 64, bilinear)
        self.outc = OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# ---------------------------------------------------------------------------------------------
# EfficientNet-B0 after torchvision/models/efficientnet.py (used when torchvision is missing;
# cross-checked against it when present). Same module tree, so the same state-dict names.


class ConvNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: conv (no bias), BatchNorm2d, SiLU. B0 passes no
    `norm_layer`, so `EfficientNet` uses `nn.BatchNorm2d`'s defaults (eps 1e-5, momentum 0.1);
    only B5-B7 and the V2 models pass eps 1e-3."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, activation=True):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if activation:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation with SiLU inside and a sigmoid gate."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


class MBConv(nn.Module):
    def __init__(self, expand, kernel, stride, cin, cout):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = cin * expand
        layers = []
        if expanded != cin:
            layers.append(ConvNormActivation(cin, expanded, 1))
        layers.append(ConvNormActivation(expanded, expanded, kernel, stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4)))
        layers.append(ConvNormActivation(expanded, cout, 1, activation=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res_connect else y  # stochastic depth is the identity in eval


B0_STAGES = [  # expand, kernel, stride, in, out, layers
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


class EfficientNetB0(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [ConvNormActivation(3, 32, 3, stride=2)]
        for expand, kernel, stride, cin, cout, n in B0_STAGES:
            stage = [MBConv(expand, kernel, stride, cin, cout)]
            stage += [MBConv(expand, kernel, 1, cout, cout) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
        layers.append(ConvNormActivation(320, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---------------------------------------------------------------------------------------------
# torch state-dict names -> convnet variable names.


# A `DoubleConv`'s layers (`double_conv.{0,1,3,4}`) in src/zoo/unet.rs's `double_conv` block.
DOUBLE_CONV = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}
# milesial's modules -> the labelled or numbered `double_conv` uses of `UNet`.
UNET_DOUBLE_CONVS = {
    "inc": "x1",
    "down1": "x2",
    "down2": "x3",
    "down3": "x4",
    "down4": "double_conv1",
    "up1": "double_conv2",
    "up2": "double_conv3",
    "up3": "double_conv4",
    "up4": "double_conv5",
}


def to_convnet_name_unet(name: str) -> str:
    """`down2.maxpool_conv.1.double_conv.3.weight` -> `x3.conv2.weight`, `up1.up.bias` ->
    `conv_transpose1.bias`, `outc.conv.weight` -> `conv1.weight`."""
    parts = name.split(".")
    module, leaf = parts[0], parts[-1]
    if module == "outc":
        return f"conv1.{leaf}"
    if module.startswith("up") and parts[1] == "up":
        return f"conv_transpose{module[2:]}.{leaf}"
    layer = DOUBLE_CONV[parts[parts.index("double_conv") + 1]]
    return f"{UNET_DOUBLE_CONVS[module]}.{layer}.{leaf}"


def to_convnet_name_efficientnet(name: str) -> str:
    """The zoo's EfficientNet-B0 names its variables as torchvision's state dict does
    (src/zoo/efficientnet.rs): `features.2.1.block.2.fc1.weight` is its name too."""
    return name


# ---------------------------------------------------------------------------------------------
# The fixture (safetensors, written by hand: no dependency beyond numpy).

DTYPES = {np.float64: "F64", np.float32: "F32", np.uint32: "U32", np.int64: "I64", np.uint8: "U8"}


def write_safetensors(path: str, tensors: dict, metadata: dict) -> None:
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key])
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": DTYPES[a.dtype.type], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def forward64(model: nn.Module, x32: torch.Tensor):
    """Float64 output of `model` on `x32`, and the max |float32 - float64| of torch itself."""
    model.eval()
    with torch.no_grad():
        y32 = model.float()(x32)
        y64 = model.double()(x32.double())
    return y64, float((y32.double() - y64).abs().max())


def names_tensor(names) -> np.ndarray:
    return np.frombuffer("\n".join(sorted(names)).encode("utf-8"), dtype=np.uint8)


def main() -> None:
    tensors, metadata = {}, {"torch": torch.__version__, "script": "scripts/pytorch_parity.py"}

    # EfficientNet-B0.
    hand = EfficientNetB0()
    try:
        import torchvision

        eff = torchvision.models.efficientnet_b0(weights=None)
        tv = {k: tuple(v.shape) for k, v in eff.state_dict().items()}
        mine = {k: tuple(v.shape) for k, v in hand.state_dict().items()}
        if tv != mine:
            sys.exit("the hand-written EfficientNet-B0 differs from torchvision's")
        metadata["efficientnet_b0"] = f"torchvision {torchvision.__version__} efficientnet_b0"
        counts = {
            "densenet121": torchvision.models.densenet121(weights=None),
            "efficientnet_b0": eff,
            "googlenet": torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False),
            "mobilenet_v3_large": torchvision.models.mobilenet_v3_large(weights=None),
            "resnet18": torchvision.models.resnet18(weights=None),
            "resnet50": torchvision.models.resnet50(weights=None),
            "resnext50_32x4d": torchvision.models.resnext50_32x4d(weights=None),
            "vgg16": torchvision.models.vgg16(weights=None),
        }
    except ImportError:
        eff = hand
        metadata["efficientnet_b0"] = "hand-written after torchvision/models/efficientnet.py"
        counts = {"efficientnet_b0": eff}
    names = fill(eff, to_convnet_name_efficientnet)
    x = torch.from_numpy(unit("input", 2 * 3 * 224 * 224).astype(np.float32).reshape(2, 3, 224, 224))
    logits, noise = forward64(eff, x)
    if eff is not hand:  # the transcription computes what torchvision computes
        fill(hand, to_convnet_name_efficientnet)
        hand_logits, _ = forward64(hand, x)
        gap = float((hand_logits - logits).abs().max())
        print(f"efficientnet_b0: hand-written vs torchvision {gap:.3e}")
        if gap > 1e-12:
            sys.exit("the hand-written EfficientNet-B0 computes something else than torchvision's")
    print(f"efficientnet_b0: max |logit| {logits.abs().max():.4f}, torch f32 vs f64 {noise:.3e}")
    tensors["efficientnet_b0.logits"] = logits.numpy()
    tensors["efficientnet_b0.names"] = names_tensor(names)
    metadata["efficientnet_b0.torch_f32_vs_f64"] = f"{noise:.3e}"

    # U-Net.
    unet = UNet(3, 2, bilinear=False)
    counts["unet"] = unet
    names = fill(unet, to_convnet_name_unet)
    x = torch.from_numpy(unit("input", 3 * 256 * 256).astype(np.float32).reshape(1, 3, 256, 256))
    y, noise = forward64(unet, x)
    flat = y.reshape(-1).numpy()
    index = (splitmix64(np.uint64(fnv1a64("unet.sample")) ^ np.arange(4096, dtype=np.uint64)) % np.uint64(flat.size)).astype(np.uint32)
    stats = np.array([flat.mean(), np.abs(flat).mean(), np.abs(flat).max()])
    print(f"unet: mean {stats[0]:.5f}, mean |y| {stats[1]:.5f}, max |y| {stats[2]:.4f}, torch f32 vs f64 {noise:.3e}")
    tensors["unet.index"] = index
    tensors["unet.values"] = flat[index]
    tensors["unet.stats"] = stats
    tensors["unet.names"] = names_tensor(names)
    metadata["unet"] = "milesial Pytorch-UNet 21d7850, UNet(3, 2, bilinear=False)"
    metadata["unet.torch_f32_vs_f64"] = f"{noise:.3e}"

    for name, model in counts.items():
        tensors[f"counts.{name}"] = np.array([trainable(model)], dtype=np.int64)
        print(f"{name}: {trainable(model):,} trainable parameters")

    write_safetensors(FIXTURE, tensors, metadata)
    print(f"wrote {os.path.normpath(FIXTURE)} ({os.path.getsize(FIXTURE):,} bytes)")


if __name__ == "__main__":
    main()
