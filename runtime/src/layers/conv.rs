//! Convolution layers: dense/grouped, depthwise, and depthwise-separable.

use crate::grad_mode::param;
use crate::ops::{self, Pad2d, Window2d};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

/// Hyper-parameters of a 2-d convolution beyond its channel counts and kernel (not
/// `candle_nn::Conv2dConfig`: the padding is per side, and the bias is chosen here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows (same vertically and horizontally).
    pub stride: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Explicit padding (TF "same" is resolved to this by the macro).
    pub padding: Pad2d,
    /// Channel groups: `in_channels` and `out_channels` must both divide by it.
    pub groups: usize,
    /// Whether the layer adds a learned bias per output channel.
    pub bias: bool,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: 1,
            dilation: 1,
            padding: Pad2d::ZERO,
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2dOptions {
    fn window(&self, kernel: (usize, usize)) -> Window2d {
        Window2d {
            kernel,
            stride: (self.stride, self.stride),
            dilation: (self.dilation, self.dilation),
            pad: self.padding,
        }
    }
}

/// Keras' default kernel initialiser, Glorot (Xavier) uniform: `U(-b, b)` with
/// `b = sqrt(6 / (fan_in + fan_out))`. Unlike Kaiming initialisation it does not amplify
/// the un-activated residual path of models such as mini-Xception.
pub fn glorot_uniform(fan_in: usize, fan_out: usize) -> Init {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Biases start at zero, as in Keras.
const BIAS_INIT: Init = Init::Const(0.0);

/// A 2-d convolution over NCHW tensors with explicit, possibly asymmetric padding.
///
/// Parameters: `weight` `[out, in / groups, kh, kw]` and, with bias, `bias` `[out]` (the
/// names and initialisation of `candle_nn::conv2d`).
///
/// # Shapes
/// `[N, in, H, W]` -> `[N, out, OH, OW]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dOptions,
}

/// Creates a [`Conv2d`] with parameters under `vb`.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dOptions,
    vb: VarBuilder,
) -> Result<Conv2d> {
    if config.groups == 0 || in_channels % config.groups != 0 || out_channels % config.groups != 0 {
        candle_core::bail!(
            "conv2d: {in_channels} input and {out_channels} output channels do not divide into {} groups",
            config.groups
        );
    }
    let area = kernel.0 * kernel.1;
    let weight = vb.get_with_hints(
        (
            out_channels,
            in_channels / config.groups,
            kernel.0,
            kernel.1,
        ),
        "weight",
        glorot_uniform(in_channels / config.groups * area, out_channels * area),
    )?;
    let bias = if config.bias {
        Some(vb.get_with_hints(out_channels, "bias", BIAS_INIT)?)
    } else {
        None
    };
    Ok(Conv2d {
        weight,
        bias,
        config,
    })
}

impl Conv2d {
    /// The kernel, `[out, in / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, when the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The layer's hyper-parameters.
    pub fn config(&self) -> &Conv2dOptions {
        &self.config
    }
}

pub(super) fn add_channel_bias(x: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => Ok(x),
        Some(b) => x.broadcast_add(&param(b).reshape((1, (), 1, 1))?),
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (_, _, kh, kw) = self.weight.dims4()?;
        let in_channels = x.dim(1)?;
        let weight = param(&self.weight);
        let y = if c.groups > 1 && c.groups == in_channels && weight.dim(1)? == 1 {
            ops::depthwise_conv2d(x, &weight, &c.window((kh, kw)))?
        } else if (kh, kw) == (1, 1) && c.groups == 1 && c.padding.is_zero() {
            ops::pointwise_conv2d(x, &weight, (c.stride, c.stride))?
        } else if c.groups == 1 {
            ops::conv2d(x, &weight, &c.window((kh, kw)))?
        } else {
            let (x, p) = match c.padding.as_uniform() {
                Some(p) => (x.clone(), p),
                None => (ops::pad2d_with(x, c.padding, 0.0)?, 0),
            };
            x.conv2d(&weight, p, c.stride, c.dilation, c.groups)?
        };
        add_channel_bias(y, self.bias.as_ref())
    }
}

/// A depthwise 2-d convolution: each input channel is convolved with its own `multiplier`
/// kernels (Keras `DepthwiseConv2D`).
///
/// Parameters: `weight` `[in * multiplier, 1, kh, kw]` and, with bias, `bias`
/// `[in * multiplier]`.
///
/// # Shapes
/// `[N, in, H, W]` -> `[N, in * multiplier, OH, OW]`.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    window: Window2d,
}

/// Creates a [`DepthwiseConv2d`] with parameters under `vb`; `config.groups` is ignored.
pub fn depthwise_conv2d(
    in_channels: usize,
    multiplier: usize,
    kernel: (usize, usize),
    config: Conv2dOptions,
    vb: VarBuilder,
) -> Result<DepthwiseConv2d> {
    let out = in_channels * multiplier;
    // Keras computes the fans of a depthwise kernel (kh, kw, in, multiplier) as
    // kh * kw * in and kh * kw * multiplier.
    let area = kernel.0 * kernel.1;
    let weight = vb.get_with_hints(
        (out, 1, kernel.0, kernel.1),
        "weight",
        glorot_uniform(area * in_channels, area * multiplier),
    )?;
    let bias = if config.bias {
        Some(vb.get_with_hints(out, "bias", BIAS_INIT)?)
    } else {
        None
    };
    Ok(DepthwiseConv2d {
        weight,
        bias,
        window: config.window(kernel),
    })
}

impl DepthwiseConv2d {
    /// The kernels, `[in * multiplier, 1, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, when the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The window: kernel, stride, dilation and padding.
    pub fn window(&self) -> &Window2d {
        &self.window
    }
}

impl Module for DepthwiseConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::depthwise_conv2d(x, &param(&self.weight), &self.window)?;
        add_channel_bias(y, self.bias.as_ref())
    }
}

/// A depthwise-separable convolution (Keras `SeparableConv2D`): a depthwise convolution
/// without bias (`depthwise.weight`) followed by a 1x1 convolution (`pointwise.weight`,
/// `pointwise.bias`).
///
/// # Shapes
/// `[N, in, H, W]` -> `[N, out, OH, OW]`.
#[derive(Debug, Clone)]
pub struct SeparableConv2d {
    /// The per-channel spatial convolution.
    pub depthwise: DepthwiseConv2d,
    /// The 1x1 channel-mixing convolution.
    pub pointwise: Conv2d,
}

/// Creates a [`SeparableConv2d`]; `config.bias` applies to the pointwise convolution.
pub fn separable_conv2d(
    in_channels: usize,
    out_channels: usize,
    multiplier: usize,
    kernel: (usize, usize),
    config: Conv2dOptions,
    vb: VarBuilder,
) -> Result<SeparableConv2d> {
    let depthwise = depthwise_conv2d(
        in_channels,
        multiplier,
        kernel,
        Conv2dOptions {
            bias: false,
            ..config
        },
        vb.pp("depthwise"),
    )?;
    let pointwise = conv2d(
        in_channels * multiplier,
        out_channels,
        (1, 1),
        Conv2dOptions {
            bias: config.bias,
            ..Conv2dOptions::default()
        },
        vb.pp("pointwise"),
    )?;
    Ok(SeparableConv2d {
        depthwise,
        pointwise,
    })
}

impl Module for SeparableConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.pointwise.forward(&self.depthwise.forward(x)?)
    }
}

/// A fully connected layer (`candle_nn::Linear`, parameters `weight` `[out, in]` and `bias`
/// `[out]`) initialised like Keras' `Dense`: Glorot-uniform weights, zero bias. (Not
/// `candle_nn::linear`, which initialises differently and always has a bias.)
///
/// # Shapes
/// `[N, in]` -> `[N, out]`.
pub fn dense(
    in_features: usize,
    out_features: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<Linear> {
    let weight = vb.get_with_hints(
        (out_features, in_features),
        "weight",
        glorot_uniform(in_features, out_features),
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(out_features, "bias", BIAS_INIT)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn weights_are_glorot_uniform_and_biases_zero() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let conv = conv2d(64, 128, (3, 3), Conv2dOptions::default(), vb.pp("c"))?;
        let bound = (6.0f32 / (64.0 * 9.0 + 128.0 * 9.0)).sqrt();
        let m = max_abs(conv.weight());
        assert!(
            m <= bound && m > 0.8 * bound,
            "max |w| {m} vs bound {bound}"
        );
        assert_eq!(max_abs(conv.bias().unwrap()), 0.0);
        let dw = depthwise_conv2d(256, 1, (3, 3), Conv2dOptions::default(), vb.pp("d"))?;
        let bound = (6.0f32 / (9.0 * 256.0 + 9.0)).sqrt();
        let m = max_abs(dw.weight());
        assert!(
            m <= bound && m > 0.8 * bound,
            "max |w| {m} vs bound {bound}"
        );
        let fc = dense(512, 10, true, vb.pp("l"))?;
        let bound = (6.0f32 / 522.0).sqrt();
        let m = max_abs(fc.weight());
        assert!(
            m <= bound && m > 0.8 * bound,
            "max |w| {m} vs bound {bound}"
        );
        Ok(())
    }
}
