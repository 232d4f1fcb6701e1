//! DenseNet-121 (Huang et al. 2017), written after torchvision's `densenet121`
//! (`torchvision/models/densenet.py`, `weights=None`): growth rate 32, bottleneck width
//! 4 x 32, blocks of (6, 12, 24, 16) dense layers, 64 initial features, transitions halving
//! the channels. 7,978,856 trainable parameters, as torchvision.
//!
//! Deviations from torchvision, none of which changes a parameter count: the batch norms use
//! PyTorch's conventions spelt out (`eps = 1e-5`, `momentum = 0.1`, unbiased moving
//! variance); parameter paths follow this crate's naming, not torchvision's state-dict keys;
//! `memory_efficient` checkpointing and `drop_rate` (0 by default) have no counterpart.

use crate::convnet;

convnet! {
    /// PyTorch's batch norm (`BatchNorm2d` defaults) followed by ReLU.
    block bn_relu() {
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
    }

    /// One dense layer: its `growth` new features concatenated to its input
    /// (bn, relu, 1x1 conv to `4 * growth`, bn, relu, 3x3 conv to `growth`).
    pub block dense_layer(growth) {
        concat {
            identity,
            new: {
                bn_relu(), conv2d(4 * growth, 1, bias = false),
                bn_relu(), conv2d(growth, 3, padding = 1, bias = false),
            },
        }
    }

    /// Transition between dense blocks: bn, relu, 1x1 conv halving the channels, 2x2
    /// average pooling.
    block transition() {
        bn_relu(), conv2d(in_channels / 2, 1, bias = false), avg_pool2d(2),
    }

    /// DenseNet-121 (torchvision layout), 224x224 input, 1000 classes.
    pub DenseNet121(3, 224, 224) -> (1000) {
        conv2d(64, 7, stride = 2, padding = 3, bias = false), bn_relu(),
        max_pool2d(3, stride = 2, padding = 1),                  // (64, 56, 56)
        for (layers, stage) in [(6, 1), (12, 2), (24, 3), (16, 4)] {
            for i in 1..=layers { dense_layer(32) }
            if stage < 4 { transition() }
        }
        assert_shape(1024, 7, 7),
        bn_relu(),
        global_avg_pool2d,
        linear(1000),
    }
}
