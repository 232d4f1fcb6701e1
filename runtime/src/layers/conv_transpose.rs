//! Transposed 2-d convolution ("deconvolution"), PyTorch's `nn.ConvTranspose2d`.

use super::conv::glorot_uniform;
use crate::error::Error;
use crate::grad_mode::param;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Hyper-parameters of a [`ConvTranspose2d`], as in PyTorch (the same along both axes; unlike
/// `candle_nn::ConvTranspose2dConfig`, the bias is chosen here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dOptions {
    /// Spacing of the input pixels in the output.
    pub stride: usize,
    /// Rows/columns removed from each side of the full output (`dilation * (k - 1) - padding`
    /// of implicit zero padding in the equivalent convolution).
    pub padding: usize,
    /// Rows/columns added at the bottom/right; smaller than `stride` or `dilation`.
    pub output_padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Whether the layer adds a learned bias per output channel.
    pub bias: bool,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            bias: true,
        }
    }
}

impl ConvTranspose2dOptions {
    /// Output size along an axis of `input` pixels with a kernel of `kernel` taps:
    /// `(input - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`,
    /// or `None` when that is below 1.
    pub fn output_size(&self, input: usize, kernel: usize) -> Option<usize> {
        let full = (input.checked_sub(1)?) * self.stride
            + self.dilation * (kernel.checked_sub(1)?)
            + self.output_padding
            + 1;
        full.checked_sub(2 * self.padding).filter(|s| *s >= 1)
    }
}

/// A transposed 2-d convolution over NCHW tensors: each input pixel scatters its channels
/// times the kernel into the output, as `torch.nn.ConvTranspose2d` (groups = 1).
///
/// Parameters: `weight` `[in, out, kh, kw]` (PyTorch's layout, Glorot-uniform initialised like
/// the other convolutions here) and, with bias, `bias` `[out]` (zeros). Forward and backward
/// are candle's `conv_transpose2d` and its autograd rule (checked against a naive loop and
/// finite differences in `runtime/tests/layers_conv_transpose.rs`).
///
/// # Shapes
/// `[N, in, H, W]` -> `[N, out, OH, OW]`, with `OH = config.output_size(H, kh)`, likewise
/// `OW`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvTranspose2dOptions,
}

/// Creates a [`ConvTranspose2d`] with parameters under `vb`.
pub fn conv_transpose2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: ConvTranspose2dOptions,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let c = &config;
    if c.stride == 0 || c.dilation == 0 || c.output_padding >= c.stride.max(c.dilation) {
        return Err(Error::invalid(
            "conv_transpose2d config",
            format!("stride and dilation must be at least 1 and output_padding smaller than one of them, found {config:?}"),
        )
        .into());
    }
    let area = kernel.0 * kernel.1;
    let weight = vb.get_with_hints(
        (in_channels, out_channels, kernel.0, kernel.1),
        "weight",
        glorot_uniform(in_channels * area, out_channels * area),
    )?;
    let bias = if config.bias {
        Some(vb.get_with_hints(out_channels, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(ConvTranspose2d {
        weight,
        bias,
        config,
    })
}

impl ConvTranspose2d {
    /// The kernel, `[in, out, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, when the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The layer's hyper-parameters.
    pub fn config(&self) -> &ConvTranspose2dOptions {
        &self.config
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (_, in_channels, h, w) = x.dims4()?;
        let (wi, _, kh, kw) = self.weight.dims4()?;
        if in_channels != wi {
            return Err(Error::invalid(
                "conv_transpose2d input",
                format!("expected {wi} channels, found {:?}", x.dims()),
            )
            .into());
        }
        if c.output_size(h, kh).is_none() || c.output_size(w, kw).is_none() {
            return Err(Error::invalid(
                "conv_transpose2d input",
                format!("{h}x{w} gives an empty output with {kh}x{kw} kernel and {c:?}"),
            )
            .into());
        }
        let y = x.conv_transpose2d(
            &param(&self.weight),
            c.padding,
            c.output_padding,
            c.stride,
            c.dilation,
        )?;
        match &self.bias {
            None => Ok(y),
            Some(b) => y.broadcast_add(&param(b).reshape((1, (), 1, 1))?),
        }
    }
}
