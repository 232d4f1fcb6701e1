//! MobileNetV3-Large in the DSL, with torchvision's batch norm (eps 1e-3, momentum 0.01,
//! unbiased running variance) and parameter paths (`features.4.block.2.fc1.weight`).

use crate::convnet;

convnet! {
    // MobileNetV3's squeeze-and-excitation is the zoo's with a hard-sigmoid gate.
    use super::blocks::squeeze_excitation as mobilenet_v3_se;

    /// The activation of a layer: hard-swish (`HS`) or ReLU (`RE`).
    block mobilenet_v3_act(hs) {
        if hs { hard_swish } else { relu }
    }

    /// torchvision's `Conv2dNormActivation` with MobileNetV3's batch norm, numbered `0`,
    /// `1`, `2`: a 1x1 convolution (or a depthwise `kernel` one when `depthwise`), batch
    /// norm, `act`.
    block mobilenet_v3_cna(filters, kernel = 1, stride = 1, depthwise = false, act = none) {
        _: sequential {
            if depthwise {
                depthwise_conv2d(kernel, stride = stride, padding = kernel / 2, bias = false),
            } else {
                conv2d(filters, kernel, stride = stride, padding = (kernel - 1) / 2, bias = false),
            }
            batch_norm(eps = 1e-3, momentum = 0.01, variance = unbiased), act,
        }
    }

    /// Inverted residual layers, torchvision's `block` (an `nn.Sequential`): 1x1 expansion
    /// to `expanded` (left out when it equals the input's channels), depthwise `kernel`, SE
    /// to `squeeze` channels when `squeeze > 0`, 1x1 projection to `out`.
    block mobilenet_v3_layers(kernel, expanded, out, squeeze, hs, stride) {
        block: sequential {
            if expanded != in_channels { mobilenet_v3_cna(expanded, act = mobilenet_v3_act(hs)) }
            mobilenet_v3_cna(expanded, kernel, stride, depthwise = true, act = mobilenet_v3_act(hs)),
            if squeeze > 0 { mobilenet_v3_se(squeeze, expanded, gate = hard_sigmoid) }
            mobilenet_v3_cna(out),
        }
    }

    /// Inverted residual: residual when the stride is 1 and the channels are kept.
    block mobilenet_v3_block(kernel, expanded, out, squeeze, hs, stride) {
        if stride == 1 && in_channels == out {
            _: residual { _: mobilenet_v3_layers(kernel, expanded, out, squeeze, hs, stride) }
        } else {
            _: mobilenet_v3_layers(kernel, expanded, out, squeeze, hs, stride)
        }
    }

    /// MobileNetV3-Large, torchvision's `mobilenet_v3_large` (`torchvision/models/mobilenetv3.py`:
    /// `_mobilenet_v3_conf("mobilenet_v3_large")`), 224x224 input, 1000 classes, with
    /// torchvision's parameter paths. The table is torchvision's (kernel, expanded, out, SE,
    /// activation, stride), with the SE squeeze width `make_divisible(expanded // 4, 8)`
    /// written out (0: no SE).
    pub MobileNetV3Large(3, 224, 224) -> (1000) {
        features: sequential {
            mobilenet_v3_cna(16, 3, stride = 2, act = hard_swish),          // features.0
            for (kernel, expanded, out, squeeze, hs, stride) in [
                (3, 16, 16, 0, false, 1),
                (3, 64, 24, 0, false, 2),
                (3, 72, 24, 0, false, 1),
                (5, 72, 40, 24, false, 2),
                (5, 120, 40, 32, false, 1),
                (5, 120, 40, 32, false, 1),
                (3, 240, 80, 0, true, 2),
                (3, 200, 80, 0, true, 1),
                (3, 184, 80, 0, true, 1),
                (3, 184, 80, 0, true, 1),
                (3, 480, 112, 120, true, 1),
                (3, 672, 112, 168, true, 1),
                (5, 672, 160, 168, true, 2),
                (5, 960, 160, 240, true, 1),
                (5, 960, 160, 240, true, 1),
            ] {
                mobilenet_v3_block(kernel, expanded, out, squeeze, hs, stride),  // features.1 to 15
            }
            mobilenet_v3_cna(960, act = hard_swish),                         // features.16
        },
        global_avg_pool2d,
        classifier: sequential { linear(1280), hard_swish, dropout(0.2), linear(1000) },
    }
}
