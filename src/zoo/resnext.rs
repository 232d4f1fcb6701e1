//! ResNeXt-50 32x4d in the DSL, with torchvision's batch norm (eps 1e-5, momentum 0.1, unbiased
//! running variance).

use crate::convnet;

convnet! {
    /// torchvision's `Bottleneck` (v1.5) keeping the shape (identity shortcut): 1x1 to
    /// `width`, 3x3 in `groups` groups, 1x1 to `planes * 4`, each followed by `norm`.
    /// ResNet-50 uses it as is; ResNeXt-50 32x4d with `width = planes * 2, groups = 32`.
    pub block resnext_bottleneck(
        planes,
        width = planes,
        groups = 1,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
    ) {
        residual {
            conv2d(width, 1, bias = false), norm, relu,
            conv2d(width, 3, padding = 1, groups = groups, bias = false), norm, relu,
            conv2d(planes * 4, 1, bias = false), norm,
        }
        relu,
    }

    /// First bottleneck of a stage: the 3x3 strided by `stride` and a projected shortcut.
    pub block resnext_bottleneck_down(
        planes,
        stride = 1,
        width = planes,
        groups = 1,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
    ) {
        residual(project = { conv2d(planes * 4, 1, stride = stride, bias = false), norm }) {
            conv2d(width, 1, bias = false), norm, relu,
            conv2d(width, 3, stride = stride, padding = 1, groups = groups, bias = false), norm, relu,
            conv2d(planes * 4, 1, bias = false), norm,
        }
        relu,
    }

    /// ResNeXt-50 32x4d, torchvision's `resnext50_32x4d` (`torchvision/models/resnet.py`:
    /// `ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4)`), 224x224 input,
    /// 1000 classes. Bottleneck width `planes * 4 / 64 * 32 = planes * 2`, stride on the
    /// grouped 3x3 (v1.5). Deviations: batch norm uses this crate's defaults (eps 1e-3,
    /// Keras-style momentum) instead of PyTorch's eps 1e-5 and momentum 0.1; counts are equal.
    pub ResNeXt50(3, 224, 224) -> (1000) {
        conv2d(64, 7, stride = 2, padding = 3, bias = false), batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        max_pool2d(3, stride = 2, padding = 1),
        for (planes, stride, blocks) in [(64, 1, 3), (128, 2, 4), (256, 2, 6), (512, 2, 3)] {
            resnext_bottleneck_down(planes, stride, width = planes * 2, groups = 32),
            for i in 2..=blocks { resnext_bottleneck(planes, width = planes * 2, groups = 32) }
        }
        global_avg_pool2d,
        linear(1000),
    }
}
