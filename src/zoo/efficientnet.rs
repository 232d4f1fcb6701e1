//! EfficientNet-B0 in the DSL, with torchvision's parameter paths
//! (`features.2.0.block.1.0.weight`).

use crate::convnet;

convnet! {
    // torchvision's `SqueezeExcitation` with SiLU (the zoo's shared block).
    use super::blocks::squeeze_excitation as efficientnet_se;
    use super::blocks::conv_norm_act;

    /// A depthwise `Conv2dNormActivation` with SiLU: depthwise `kernel` convolution, batch
    /// norm, SiLU, numbered `0`, `1`, `2`.
    block depthwise_norm_silu(kernel, stride) {
        _: sequential {
            depthwise_conv2d(kernel, stride = stride, padding = kernel / 2, bias = false),
            batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), silu,
        }
    }

    /// MBConv's layers, torchvision's `block` (an `nn.Sequential`): 1x1 expansion of
    /// `block_in` channels (left out at ratio 1), depthwise `kernel`, SE squeezing to a
    /// quarter of `block_in`, 1x1 projection to `out`.
    block mbconv_layers(expand, kernel, stride, block_in, out) {
        block: sequential {
            if expand != 1 { conv_norm_act(block_in * expand, 1, act = silu) }
            depthwise_norm_silu(kernel, stride),
            efficientnet_se(block_in / 4, block_in * expand, act = silu),
            conv_norm_act(out, 1, act = none),
        }
    }

    /// MBConv (torchvision's `MBConv`): residual when the stride is 1 and the channels are
    /// kept; its layers are `block.0.0.weight`, ... in the scope of its use.
    pub block mbconv(expand, kernel, stride, block_in, out) {
        if stride == 1 && block_in == out {
            _: residual { _: mbconv_layers(expand, kernel, stride, block_in, out) }
        } else {
            _: mbconv_layers(expand, kernel, stride, block_in, out)
        }
    }

    /// EfficientNet-B0, torchvision's `efficientnet_b0` (`torchvision/models/efficientnet.py`:
    /// `_efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=1.0)`), 224x224
    /// input, 1000 classes, with torchvision's parameter paths. Batch norm is PyTorch's
    /// default `nn.BatchNorm2d` (eps 1e-5, momentum 0.1, unbiased running variance), which
    /// torchvision's B0 uses (only B5-B7 and the V2 models pass eps 1e-3). Deviation: no
    /// stochastic depth (torchvision drops each block's residual branch with a rate rising
    /// linearly to 0.2 in training; it has no parameters). The SE squeeze width
    /// `max(1, block_in // 4)` is `block_in / 4` here (every block has at least 16 inputs).
    /// Checked against torchvision, same weights, eval mode: `tests/pytorch_parity.rs`.
    pub EfficientNetB0(3, 224, 224) -> (1000) {
        features: sequential {
            conv_norm_act(32, 3, stride = 2, act = silu),                  // features.0
            for (expand, kernel, stride, block_in, out, layers) in [
                (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
            ] {
                sequential {                                               // features.1 to 7
                    mbconv(expand, kernel, stride, block_in, out),
                    for i in 2..=layers { mbconv(expand, kernel, 1, out, out) }
                }
            }
            conv_norm_act(1280, 1, act = silu),                            // features.8
        },
        global_avg_pool2d,
        classifier: sequential { dropout(0.2), linear(1000) },
    }
}
