//! The classic 4-level U-Net (Ronneberger et al. 2015) as defined in milesial's
//! Pytorch-UNet (`unet/unet_model.py`, `unet/unet_parts.py`), the common PyTorch version:
//! `UNet(n_channels = 3, n_classes = 2, bilinear = False)`.
//!
//! Variant: `DoubleConv` is (3x3 conv, padding 1, **no bias**, batch norm, ReLU) twice;
//! widths 64-128-256-512-1024; each down step is a 2x2 max pool then a `DoubleConv`; each up
//! step is `ConvTranspose2d(k = 2, s = 2)` (with bias) halving the channels, concatenation
//! `[skip, upsampled]` and a `DoubleConv`; a final 1x1 conv (with bias) to 2 classes. Unlike
//! the paper's valid convolutions, the same-padded ones keep the size, so no crop is needed:
//! (3, 256, 256) -> (2, 256, 256). Deviations that change no count: PyTorch's batch-norm
//! conventions spelt out, and no runtime padding of odd sizes (`Up.forward`'s `F.pad`),
//! which here is unnecessary since the input size is fixed and divisible by 16.

use crate::convnet;

convnet! {
    /// milesial's `DoubleConv`: (3x3 conv without bias, batch norm, ReLU) twice.
    block double_conv(filters) {
        conv2d(filters, 3, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        conv2d(filters, 3, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
    }

    /// U-Net (milesial's, `bilinear = False`), 3x256x256 input, 2 classes per pixel.
    pub UNet(3, 256, 256) -> (2, 256, 256) {
        x1: double_conv(64),                                     // (64, 256, 256)
        max_pool2d(2), x2: double_conv(128),                     // (128, 128, 128)
        max_pool2d(2), x3: double_conv(256),                     // (256, 64, 64)
        max_pool2d(2), x4: double_conv(512),                     // (512, 32, 32)
        max_pool2d(2), double_conv(1024),                        // (1024, 16, 16)
        conv_transpose2d(512, 2, stride = 2), concat { @x4, identity } double_conv(512),
        conv_transpose2d(256, 2, stride = 2), concat { @x3, identity } double_conv(256),
        conv_transpose2d(128, 2, stride = 2), concat { @x2, identity } double_conv(128),
        conv_transpose2d(64, 2, stride = 2), concat { @x1, identity } double_conv(64),
        conv2d(2, 1),
    }
}
