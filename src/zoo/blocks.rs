//! The zoo's reusable blocks, importable by any `convnet!` invocation in this crate or
//! another: `use convnet::zoo::squeeze_excitation;` inside the invocation (see the grammar's
//! "Importing blocks"). The ResNet bottlenecks live with ResNeXt-50
//! (`convnet::zoo::{resnext_bottleneck, resnext_bottleneck_down}`), DenseNet's dense layer
//! with DenseNet-121 and EfficientNet's MBConv with EfficientNet-B0.

use crate::convnet;

convnet! {
    /// Squeeze-and-excitation (Hu et al. 2018; torchvision's `SqueezeExcitation`): the input
    /// times a per-channel gate computed from it, global average pool, 1x1 to `squeeze`
    /// channels, `act`, 1x1 back to `channels` (the input's), `gate`. EfficientNet uses
    /// `act = silu`; MobileNetV3 `gate = hard_sigmoid`.
    pub block squeeze_excitation(squeeze, channels = in_channels, act = relu, gate = sigmoid) {
        multiply {
            identity,
            gate: {
                global_avg_pool2d(keepdims = true),
                conv2d(squeeze, 1), act, conv2d(channels, 1), gate,
            },
        }
    }

    /// torchvision's `Conv2dNormActivation`: a convolution without bias (`padding` defaults
    /// to `(kernel - 1) / 2`, PyTorch's), `norm` and `act` (`none` leaves either out).
    pub block conv_norm_act(
        filters,
        kernel = 3,
        stride = 1,
        groups = 1,
        padding = (kernel - 1) / 2,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        act = relu,
    ) {
        conv2d(filters, kernel, stride = stride, padding = padding, groups = groups, bias = false),
        norm, act,
    }
}
