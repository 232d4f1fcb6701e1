//! Layers over the channels of an image: slices and shuffles of channels (ShuffleNet), and a
//! linear layer applied to every pixel's channel vector (ConvNeXt's `nn.Linear` on
//! channels-last tensors).

use super::conv::{add_channel_bias, glorot_uniform};
use crate::grad_mode::param;
use crate::ops;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

pub use crate::ops::{channel_shuffle, channel_slice};

/// A linear layer over the channels of each pixel: `y[n, :, i, j] = W x[n, :, i, j] + b`,
/// what PyTorch writes as `nn.Linear(in, out)` on a channels-last tensor (ConvNeXt's
/// pointwise layers). The same function as a 1x1 convolution, with the weight stored as
/// PyTorch's `Linear` stores it, so those weights load unchanged.
///
/// Parameters: `weight` `[out, in]` and, with bias, `bias` `[out]`, named and initialised
/// as [`dense`](super::dense)'s.
///
/// # Shapes
/// `[N, in, H, W]` -> `[N, out, H, W]`.
#[derive(Debug, Clone)]
pub struct ChannelLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Creates a [`ChannelLinear`] with parameters under `vb`.
pub fn channel_linear(
    in_channels: usize,
    out_channels: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<ChannelLinear> {
    let weight = vb.get_with_hints(
        (out_channels, in_channels),
        "weight",
        glorot_uniform(in_channels, out_channels),
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(out_channels, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(ChannelLinear { weight, bias })
}

impl ChannelLinear {
    /// The weight, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, when the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for ChannelLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out, inp) = self.weight.dims2()?;
        // A view of the `[out, in]` weight as a 1x1 kernel: its gradient reaches the weight.
        let kernel = param(&self.weight).reshape((out, inp, 1, 1))?;
        let y = ops::pointwise_conv2d(x, &kernel, (1, 1))?;
        add_channel_bias(y, self.bias.as_ref())
    }
}
