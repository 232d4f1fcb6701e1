//! Reference models written in the DSL: the seed text's two residual examples,
//! mini-Xception, VGG16, ResNet-18 and ResNet-50 (here), ResNeXt-50 32x4d, DenseNet-121,
//! GoogLeNet, EfficientNet-B0, MobileNetV3-Large and a U-Net (one file each). Their parameter
//! counts match Keras and torchvision (the tests pin them).

use crate::convnet;

convnet! {
    /// Seed example: a residual block whose 1x1 projection widens 32 to 64 channels.
    pub ResidualProjection(3, 32, 32) -> (64, 30, 30) {
        conv2d(32, 3), relu,
        residual(project = conv2d(64, 1)) {
            conv2d(64, 3, padding = same), relu,
        }
    }

    /// Seed example: a residual block that ends in max pooling, with a strided 1x1
    /// projection so the shortcut is downsampled too.
    pub ResidualPooling(3, 32, 32) -> (64, 15, 15) {
        conv2d(32, 3), relu,
        residual(project = conv2d(64, 1, stride = 2)) {
            conv2d(64, 3, padding = same), relu,
            max_pool2d(2, padding = same),
        }
    }
}

/// Defines mini-Xception (the seed's cats-vs-dogs classifier: residual blocks of separable
/// convolutions with strided projections, ending in one logit) at a square input size.
/// The size is part of the model's type, so each size is its own struct. An optional
/// `bn_momentum = m` sets the weight of each batch in the moving statistics (default 0.01,
/// Keras' 0.99).
///
/// ```
/// convnet::mini_xception!(
///     /// Mini-Xception at 64x64.
///     MiniXception64, 64
/// );
/// assert_eq!(MiniXception64::OUTPUT_SHAPE, &[1]);
/// ```
#[macro_export]
macro_rules! mini_xception {
    ($(#[$attr:meta])* $name:ident, $size:literal) => {
        $crate::mini_xception!($(#[$attr])* $name, $size, bn_momentum = 0.01);
    };
    ($(#[$attr:meta])* $name:ident, $size:literal, bn_momentum = $momentum:literal) => {
        $crate::convnet! {
            $(#[$attr])*
            pub $name(3, $size, $size) -> (1) {
                rescale(1.0 / 255.0),
                conv2d(32, 5, bias = false),
                for size in [32, 64, 128, 256, 512] {
                    residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                        batch_norm(momentum = $momentum), relu,
                        separable_conv2d(size, 3, padding = same, bias = false),
                        batch_norm(momentum = $momentum), relu,
                        separable_conv2d(size, 3, padding = same, bias = false),
                        max_pool2d(3, stride = 2, padding = same),
                    }
                }
                global_avg_pool2d,
                dropout(0.5),
                linear(1),
            }
        }
    };
}

mini_xception!(
    /// Mini-Xception at the seed's 180x180 input.
    MiniXception, 180
);

convnet! {
    /// VGG's stage: `convs` 3x3 convolutions with ReLU, then a 2x2 max pool. Used as
    /// `_: vgg_stage(...)` in a `sequential`, its layers are numbered there (torchvision's
    /// `features.0`, `features.2`, ...).
    block vgg_stage(filters, convs) {
        for i in 1..=convs { conv2d(filters, 3, padding = same), relu }
        max_pool2d(2),
    }

    /// VGG16 with its classifier (`include_top`), 224x224 input, 1000 classes; parameter
    /// paths are torchvision's `vgg16` state-dict keys (`features.0.weight`,
    /// `classifier.6.bias`).
    pub Vgg16(3, 224, 224) -> (1000) {
        features: sequential {
            for (filters, convs) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
                _: vgg_stage(filters, convs)
            }
        },
        assert_shape(512, 7, 7),
        flatten,
        classifier: sequential {
            linear(4096), relu, dropout(0.5),
            linear(4096), relu, dropout(0.5),
            linear(1000),
        },
    }
}

convnet! {
    // The ResNet-50 bottlenecks are ResNeXt's with one group of width `planes`.
    use self::resnext::{resnext_bottleneck as bottleneck, resnext_bottleneck_down as bottleneck_down};

    // The exported blocks spell out their arguments: an invocation's `defaults` do not travel
    // with its blocks (where a block is used, that invocation's defaults apply).

    /// ResNet basic block keeping the shape (identity shortcut), torchvision's `BasicBlock`
    /// and its names (`conv1`, `bn1`, `conv2`, `bn2`) and batch norm.
    pub block basic(filters) {
        _: residual {
            conv1: conv2d(filters, 3, padding = 1, bias = false),
            bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
            conv2: conv2d(filters, 3, padding = 1, bias = false),
            bn2: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        }
        relu,
    }

    /// ResNet basic block halving the size (strided, projected shortcut: torchvision's
    /// `downsample.0`, `downsample.1`).
    pub block basic_down(filters) {
        _: residual(project = downsample: sequential {
            conv2d(filters, 1, stride = 2, bias = false),
            batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        }) {
            conv1: conv2d(filters, 3, stride = 2, padding = 1, bias = false),
            bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
            conv2: conv2d(filters, 3, padding = 1, bias = false),
            bn2: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        }
        relu,
    }

    /// ResNet stem: 7x7/2 convolution `conv1`, batch norm `bn1`, ReLU, 3x3/2 max pool; used
    /// as `_: stem()`, its layers have torchvision's top-level names. (The zoo's ResNets write
    /// it out, so that `forward_to_t` can stop after each of its layers by name.)
    pub block stem() {
        conv1: conv2d(64, 7, stride = 2, padding = 3, bias = false),
        bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        max_pool2d(3, stride = 2, padding = 1),
    }

    /// ResNet-18 (torchvision layout and batch norm: eps 1e-5, momentum 0.1, unbiased running
    /// variance), 224x224 input, 1000 classes; parameter paths are torchvision's `resnet18`
    /// state-dict keys (`layer2.0.downsample.0.weight`, `fc.bias`).
    pub ResNet18(3, 224, 224) -> (1000) {
        conv1: conv2d(64, 7, stride = 2, padding = 3, bias = false),
        bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        max_pool2d(3, stride = 2, padding = 1),
        layer1: sequential { basic(64), basic(64) },
        layer2: sequential { basic_down(128), basic(128) },
        layer3: sequential { basic_down(256), basic(256) },
        layer4: sequential { basic_down(512), basic(512) },
        global_avg_pool2d,
        fc: linear(1000),
    }

    /// ResNet-50 (torchvision v1.5 layout: stride on the 3x3 convolution; torchvision's batch
    /// norm), 224x224 input; parameter paths are torchvision's `resnet50` state-dict keys.
    pub ResNet50(3, 224, 224) -> (1000) {
        conv1: conv2d(64, 7, stride = 2, padding = 3, bias = false),
        bn1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        max_pool2d(3, stride = 2, padding = 1),
        layer1: sequential { bottleneck_down(64, 1), for i in 2..=3 { bottleneck(64) } },
        layer2: sequential { bottleneck_down(128, 2), for i in 2..=4 { bottleneck(128) } },
        layer3: sequential { bottleneck_down(256, 2), for i in 2..=6 { bottleneck(256) } },
        layer4: sequential { bottleneck_down(512, 2), for i in 2..=3 { bottleneck(512) } },
        global_avg_pool2d,
        fc: linear(1000),
    }
}

mod blocks;
mod densenet;
mod efficientnet;
mod googlenet;
mod mobilenet_v3;
mod resnext;
pub mod torchvision;
mod unet;

pub use blocks::{conv_norm_act, squeeze_excitation};
pub use densenet::{dense_layer, DenseNet121};
pub use efficientnet::{mbconv, EfficientNetB0};
pub use googlenet::GoogLeNet;
pub use mobilenet_v3::MobileNetV3Large;
pub use resnext::{resnext_bottleneck, resnext_bottleneck_down, ResNeXt50};
pub use unet::UNet;
