//! DenseNet-121 (Huang et al. 2017), written after torchvision's `densenet121`
//! (`torchvision/models/densenet.py`, `weights=None`): growth rate 32, bottleneck width
//! 4 x 32, blocks of (6, 12, 24, 16) dense layers, 64 initial features, transitions halving
//! the channels. 7,978,856 trainable parameters, as torchvision, and torchvision's parameter
//! paths (`features.denseblock2.denselayer7.conv1.weight`).
//!
//! Deviations from torchvision, none of which changes a parameter count: the batch norms use
//! PyTorch's conventions spelt out (`eps = 1e-5`, `momentum = 0.1`, unbiased moving
//! variance); `memory_efficient` checkpointing and `drop_rate` (0 by default) have no
//! counterpart.

use crate::convnet;

convnet! {
    /// One dense layer (torchvision's `_DenseLayer`): its `growth` new features concatenated
    /// to its input (`norm1`, relu, 1x1 `conv1` to `4 * growth`, `norm2`, relu, 3x3 `conv2`
    /// to `growth`; the concatenation and its branch open no scope).
    pub block dense_layer(growth) {
        _: concat {
            identity,
            _: {
                norm1: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
                conv1: conv2d(4 * growth, 1, bias = false),
                norm2: batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
                conv2: conv2d(growth, 3, padding = 1, bias = false),
            },
        }
    }
}

convnet! {
    // Named `denselayer` where used, so that its uses are torchvision's `denselayer1`, ...
    use self::dense_layer as denselayer;

    defaults { batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), conv2d(bias = false) }

    /// A dense block (torchvision's `_DenseBlock`): `layers` dense layers, `denselayer1`, ...
    block denseblock(layers) {
        for i in 1..=layers { denselayer(32) }
    }

    /// Transition between dense blocks (torchvision's `_Transition`): `norm`, relu, 1x1
    /// `conv` halving the channels, 2x2 average pooling.
    block transition() {
        norm: batch_norm, relu, conv: conv2d(in_channels / 2, 1), pool: avg_pool2d(2),
    }

    /// DenseNet-121 (torchvision layout and parameter paths), 224x224 input, 1000 classes.
    pub DenseNet121(3, 224, 224) -> (1000) {
        features: {
            conv0: conv2d(64, 7, stride = 2, padding = 3), norm0: batch_norm, relu0: relu,
            pool0: max_pool2d(3, stride = 2, padding = 1),                 // (64, 56, 56)
            for (layers, stage) in [(6, 1), (12, 2), (24, 3), (16, 4)] {
                denseblock(layers),                                        // denseblock1, ...
                if stage < 4 { transition() }                              // transition1, ...
            }
            norm5: batch_norm,
        },
        assert_shape(1024, 7, 7),
        relu,
        global_avg_pool2d,
        classifier: linear(1000),
    }
}
