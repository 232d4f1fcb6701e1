//! The zoo's reusable blocks, importable by any `convnet!` invocation in this crate or
//! another: `use convnet::zoo::squeeze_excitation;` inside the invocation (see the grammar's
//! "Importing blocks"). The ResNet bottlenecks live with ResNeXt-50
//! (`convnet::zoo::{resnext_bottleneck, resnext_bottleneck_down}`), DenseNet's dense layer
//! with DenseNet-121 and EfficientNet's MBConv with EfficientNet-B0.

use crate::convnet;

convnet! {
    /// Squeeze-and-excitation (Hu et al. 2018; torchvision's `SqueezeExcitation`, with its
    /// names): the input times a per-channel gate computed from it, global average pool, 1x1
    /// `fc1` to `squeeze` channels, `act`, 1x1 `fc2` back to `channels` (the input's),
    /// `gate`. The multiplication and the gate's branch open no scope, so a use named `se`
    /// has `se.fc1.weight`, `se.fc2.bias`. EfficientNet uses `act = silu`; MobileNetV3
    /// `gate = hard_sigmoid`.
    pub block squeeze_excitation(squeeze, channels = in_channels, act = relu, gate = sigmoid) {
        _: multiply {
            identity,
            _: {
                global_avg_pool2d(keepdims = true),
                fc1: conv2d(squeeze, 1, bias = true), act, fc2: conv2d(channels, 1, bias = true), gate,
            },
        }
    }

    /// torchvision's `Conv2dNormActivation` (an `nn.Sequential`): a convolution without bias
    /// (`padding` defaults to `(kernel - 1) / 2`, PyTorch's), `norm` and `act` (`none` leaves
    /// either out), numbered `0`, `1`, `2` in the scope of the block's use, as torchvision's.
    pub block conv_norm_act(
        filters,
        kernel = 3,
        stride = 1,
        groups = 1,
        padding = (kernel - 1) / 2,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        act = relu,
    ) {
        _: sequential {
            conv2d(filters, kernel, stride = stride, padding = padding, groups = groups, bias = false),
            norm, act,
        }
    }
}
