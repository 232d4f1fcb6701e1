//! ResNeXt-50 32x4d in the DSL, with torchvision's batch norm (eps 1e-5, momentum 0.1, unbiased
//! running variance) and torchvision's parameter paths.

use crate::convnet;

convnet! {
    /// torchvision's `Bottleneck` (v1.5) keeping the shape (identity shortcut): 1x1 to
    /// `width`, 3x3 in `groups` groups, 1x1 to `planes * 4`, each followed by `norm`; its
    /// layers are torchvision's `conv1`, `bn1`, ..., `bn3` (the residual opens no scope).
    /// ResNet-50 uses it as is; ResNeXt-50 32x4d with `width = planes * 2, groups = 32`.
    pub block resnext_bottleneck(
        planes,
        width = planes,
        groups = 1,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
    ) {
        _: residual {
            conv1: conv2d(width, 1, bias = false), bn1: norm, relu,
            conv2: conv2d(width, 3, padding = 1, groups = groups, bias = false), bn2: norm, relu,
            conv3: conv2d(planes * 4, 1, bias = false), bn3: norm,
        }
        relu,
    }

    /// First bottleneck of a stage: the 3x3 strided by `stride` and a projected shortcut
    /// (torchvision's `downsample.0`, `downsample.1`).
    pub block resnext_bottleneck_down(
        planes,
        stride = 1,
        width = planes,
        groups = 1,
        norm = batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
    ) {
        _: residual(project = downsample: sequential { conv2d(planes * 4, 1, stride = stride, bias = false), norm }) {
            conv1: conv2d(width, 1, bias = false), bn1: norm, relu,
            conv2: conv2d(width, 3, stride = stride, padding = 1, groups = groups, bias = false), bn2: norm, relu,
            conv3: conv2d(planes * 4, 1, bias = false), bn3: norm,
        }
        relu,
    }

    /// ResNeXt-50 32x4d, torchvision's `resnext50_32x4d` (`torchvision/models/resnet.py`:
    /// `ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4)`), 224x224 input,
    /// 1000 classes, with torchvision's parameter paths. Bottleneck width
    /// `planes * 4 / 64 * 32 = planes * 2`, stride on the grouped 3x3 (v1.5).
    pub ResNeXt50(3, 224, 224) -> (1000) {
        conv1: conv2d(64, 7, stride = 2, padding = 3, bias = false),
        bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        max_pool2d(3, stride = 2, padding = 1),
        layer1: sequential {
            resnext_bottleneck_down(64, 1, width = 128, groups = 32),
            for i in 2..=3 { resnext_bottleneck(64, width = 128, groups = 32) }
        },
        layer2: sequential {
            resnext_bottleneck_down(128, 2, width = 256, groups = 32),
            for i in 2..=4 { resnext_bottleneck(128, width = 256, groups = 32) }
        },
        layer3: sequential {
            resnext_bottleneck_down(256, 2, width = 512, groups = 32),
            for i in 2..=6 { resnext_bottleneck(256, width = 512, groups = 32) }
        },
        layer4: sequential {
            resnext_bottleneck_down(512, 2, width = 1024, groups = 32),
            for i in 2..=3 { resnext_bottleneck(512, width = 1024, groups = 32) }
        },
        global_avg_pool2d,
        fc: linear(1000),
    }
}
