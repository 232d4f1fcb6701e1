//! EfficientNet-B0 in the DSL.

use crate::convnet;

convnet! {
    // torchvision's `SqueezeExcitation` with SiLU (the zoo's shared block, named as before).
    use super::blocks::squeeze_excitation as efficientnet_se;

    /// MBConv's layers: 1x1 expansion of `block_in` channels (skipped at ratio 1), depthwise
    /// `kernel`, SE squeezing to a quarter of `block_in`, 1x1 projection to `out`.
    block mbconv_layers(expand, kernel, stride, block_in, out) {
        if expand != 1 {
            conv2d(block_in * expand, 1, bias = false),
            batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), silu,
        }
        depthwise_conv2d(kernel, stride = stride, padding = kernel / 2, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), silu,
        efficientnet_se(block_in / 4, block_in * expand, act = silu),
        conv2d(out, 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
    }

    /// MBConv: residual when the stride is 1 and the channels are kept.
    pub block mbconv(expand, kernel, stride, block_in, out) {
        if stride == 1 && block_in == out {
            residual { mbconv_layers(expand, kernel, stride, block_in, out) }
        } else {
            mbconv_layers(expand, kernel, stride, block_in, out)
        }
    }

    /// EfficientNet-B0, torchvision's `efficientnet_b0` (`torchvision/models/efficientnet.py`:
    /// `_efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=1.0)`), 224x224
    /// input, 1000 classes. Batch norm is PyTorch's default `nn.BatchNorm2d` (eps 1e-5,
    /// momentum 0.1, unbiased running variance), which torchvision's B0 uses (only B5-B7 and
    /// the V2 models pass eps 1e-3). Deviation: no stochastic depth (torchvision drops each
    /// block's residual branch with a rate rising linearly to 0.2 in training; it has no
    /// parameters). The SE squeeze width `max(1, block_in // 4)` is `block_in / 4` here (every
    /// block has at least 16 inputs). Checked against torchvision, same weights, eval mode:
    /// `tests/pytorch_parity.rs`.
    pub EfficientNetB0(3, 224, 224) -> (1000) {
        conv2d(32, 3, stride = 2, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), silu,
        for (expand, kernel, stride, block_in, out, layers) in [
            (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
        ] {
            mbconv(expand, kernel, stride, block_in, out),
            for i in 2..=layers { mbconv(expand, kernel, 1, out, out) }
        }
        conv2d(1280, 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), silu,
        global_avg_pool2d,
        dropout(0.2),
        linear(1000),
    }
}
