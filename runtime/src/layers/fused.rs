//! Layers run together with their neighbours, so that a training step holds fewer
//! activations: the generated code runs `batch_norm [, relu], depthwise_conv2d |
//! separable_conv2d` as one call (the normalised tensor is never stored, see
//! [`crate::ops::batch_norm_depthwise_train`]), and `separable_conv2d, max_pool2d` as one
//! call (the convolution's output is pooled at once and not kept for the backward, see
//! [`crate::ops::pointwise_max_pool2d`]). The results are those of the layers in turn.

use super::conv::add_channel_bias;
use super::{BatchNorm2d, DepthwiseConv2d, MaxPool2d, SeparableConv2d};
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

/// A layer that runs a following [`MaxPool2d`] on its output as part of its own forward,
/// and optionally a [`BatchNorm2d`] on its input. The result is the same as the layers in
/// turn, running statistics included; only the memory a training step holds differs.
///
/// # Shapes
/// `x`: the layer's input, `[N, C, H, W]` -> the layer's output pooled by `pool.window`.
pub trait PooledOutput {
    /// `pool` applied to this layer's output on `norm`'s output on `x` (on `x` itself without
    /// `norm`), in training mode when `train`.
    fn forward_pooled(
        &self,
        norm: Option<&BatchNorm2d>,
        pool: &MaxPool2d,
        x: &Tensor,
        train: bool,
    ) -> Result<Tensor>;
}

impl PooledOutput for SeparableConv2d {
    /// The bias is added after pooling (a per-channel constant commutes with a maximum).
    fn forward_pooled(
        &self,
        norm: Option<&BatchNorm2d>,
        pool: &MaxPool2d,
        x: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let y = match norm {
            Some(norm) => self.depthwise.forward_normalized(norm, x, train)?,
            None => self.depthwise.forward(x)?,
        };
        let pw = &self.pointwise;
        let c = pw.config();
        if (c.stride, c.dilation, c.groups) != (1, 1, 1) || !c.padding.is_zero() {
            return pool.forward(&pw.forward(&y)?);
        }
        let z = ops::pointwise_max_pool2d(&y, &param(pw.weight()), &pool.window)?;
        add_channel_bias(z, pw.bias())
    }
}
