//! Layers that can take a batch norm into their input: the generated code runs
//! `batch_norm [, relu], depthwise_conv2d | separable_conv2d` as one call, which in training
//! on the CPU never stores the normalised tensor (see [`crate::ops::batch_norm_depthwise_train`]).

use super::conv::add_channel_bias;
use super::{BatchNorm2d, DepthwiseConv2d, SeparableConv2d};
use crate::grad_mode::param;
use crate::ops;
use candle_core::{Module, Result, Tensor};
use candle_nn::ModuleT;

/// A layer that runs a [`BatchNorm2d`] (with its fused ReLU, if any) on its input as part of
/// its own forward. The result is the same as `self.forward(&norm.forward_t(x, train)?)`,
/// running statistics included; only the memory a training step holds differs.
///
/// # Shapes
/// `x`: the batch norm's input, `[N, C, H, W]` -> the layer's output.
pub trait NormalizedInput {
    /// This layer applied to `norm`'s output on `x`, in training mode when `train`.
    fn forward_normalized(&self, norm: &BatchNorm2d, x: &Tensor, train: bool) -> Result<Tensor>;
}

impl NormalizedInput for DepthwiseConv2d {
    fn forward_normalized(&self, norm: &BatchNorm2d, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return self.forward(&norm.forward_t(x, false)?);
        }
        let y = norm.train_with(x, |x, gamma, beta| {
            let norm = (gamma, beta, norm.eps(), norm.fused_relu());
            ops::batch_norm_depthwise_train(x, norm, &param(self.weight()), self.window())
        })?;
        add_channel_bias(y, self.bias())
    }
}

impl NormalizedInput for SeparableConv2d {
    fn forward_normalized(&self, norm: &BatchNorm2d, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.depthwise.forward_normalized(norm, x, train)?;
        self.pointwise.forward(&y)
    }
}
