//! GoogLeNet (Szegedy et al. 2015, Inception v1), written after torchvision's `googlenet`
//! (`torchvision/models/googlenet.py`) with `aux_logits = False`, `init_weights = True`:
//! 6,624,904 trainable parameters, as torchvision, and torchvision's parameter paths
//! (`inception4a.branch2.1.conv.weight`).
//!
//! torchvision's `BasicConv2d` is a convolution without bias, batch norm (`eps = 0.001`)
//! and ReLU; its inception "5x5" branch uses a 3x3 convolution (a known torchvision quirk,
//! kept here). Its max pools use `ceil_mode = True`; here the strided ones pad one row and
//! column at the bottom and right instead (`padding = (0, 1, 0, 1)`, `-inf`), which gives
//! the same windows and sizes, 224 -> 112 -> 56 -> 28 -> 14 -> 7. The 2x2 pool before
//! inception 5 divides 14 evenly, so it needs no padding. Deviations that change no count:
//! batch-norm momentum 0.1 with unbiased moving variance spelt out (PyTorch's), no
//! `transform_input`, this crate's initialisation.

use crate::convnet;

convnet! {
    /// torchvision's `BasicConv2d`: convolution `conv` without bias, batch norm `bn`
    /// (eps 0.001), ReLU.
    block basic_conv(filters, kernel, stride = 1, padding = 0) {
        conv: conv2d(filters, kernel, stride = stride, padding = padding, bias = false),
        bn: batch_norm(eps = 1e-3, momentum = 0.1, variance = unbiased), relu,
    }

    /// An inception module: 1x1; 1x1 then 3x3; 1x1 then 3x3 (torchvision's "5x5");
    /// 3x3 max pool then 1x1, concatenated (`branch1` to `branch4`, the concatenation
    /// opening no scope).
    block inception(c1, c3_reduce, c3, c5_reduce, c5, pool_proj) {
        _: concat {
            basic_conv(c1, 1),
            sequential { basic_conv(c3_reduce, 1), basic_conv(c3, 3, padding = 1) },
            sequential { basic_conv(c5_reduce, 1), basic_conv(c5, 3, padding = 1) },
            sequential { max_pool2d(3, stride = 1, padding = 1), basic_conv(pool_proj, 1) },
        }
    }

    /// A 3x3 stride-2 max pool with PyTorch's `ceil_mode = True` on an even size.
    block ceil_pool() {
        max_pool2d(3, stride = 2, padding = (0, 1, 0, 1)),
    }

    /// GoogLeNet without auxiliary heads (torchvision layout and parameter paths), 224x224
    /// input, 1000 classes.
    pub GoogLeNet(3, 224, 224) -> (1000) {
        conv1: basic_conv(64, 7, stride = 2, padding = 3),       // (64, 112, 112)
        ceil_pool(),                                             // (64, 56, 56)
        conv2: basic_conv(64, 1),
        conv3: basic_conv(192, 3, padding = 1),
        ceil_pool(),                                             // (192, 28, 28)
        inception3a: inception(64, 96, 128, 16, 32, 32),
        inception3b: inception(128, 128, 192, 32, 96, 64),
        ceil_pool(),                                             // (480, 14, 14)
        inception4a: inception(192, 96, 208, 16, 48, 64),
        inception4b: inception(160, 112, 224, 24, 64, 64),
        inception4c: inception(128, 128, 256, 24, 64, 64),
        inception4d: inception(112, 144, 288, 32, 64, 64),
        inception4e: inception(256, 160, 320, 32, 128, 128),
        max_pool2d(2, stride = 2),                               // (832, 7, 7)
        inception5a: inception(256, 160, 320, 32, 128, 128),
        inception5b: inception(384, 192, 384, 48, 128, 128),
        assert_shape(1024, 7, 7),
        global_avg_pool2d,
        dropout(0.2),
        fc: linear(1000),
    }
}
