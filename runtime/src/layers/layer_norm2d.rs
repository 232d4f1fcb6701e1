//! Layer normalisation over the channel dim at each position (ConvNeXt's `channels_first`
//! LayerNorm, timm's `LayerNorm2d`).

use crate::error::Error;
use crate::grad_mode::param;
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, ModuleT, VarBuilder};

/// Normalises each position's channel vector to zero mean and unit (biased) variance, then
/// applies a learned per-channel `weight` (init 1) and `bias` (init 0):
/// `y[n, c, h, w] = (x[n, c, h, w] - mean_c) / sqrt(var_c + eps) * weight[c] + bias[c]`,
/// with the mean and variance taken over `c` at each `(n, h, w)`. On `[N, C]` it is the usual
/// layer norm over features. Half-precision inputs are normalised in `f32`. Built from candle
/// ops, so autograd differentiates it.
///
/// # Shapes
/// `[N, C, ...]` -> `[N, C, ...]`.
#[derive(Debug, Clone)]
pub struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

/// Creates a [`LayerNorm2d`] over `channels` with `weight` and `bias` under `vb`.
///
/// # Shapes
/// The layer maps `[N, channels, ...]` -> `[N, channels, ...]`.
pub fn layer_norm2d(channels: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm2d> {
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::invalid(
            "layer_norm2d eps",
            format!("must be a positive number, found {eps}"),
        )
        .into());
    }
    Ok(LayerNorm2d {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        eps,
    })
}

/// `[C]` reshaped to broadcast over `[N, C, ...]` of rank `rank`.
pub(crate) fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut dims = vec![1; rank];
    dims[1] = t.elem_count();
    t.reshape(dims)
}

/// Checks that `x` is `[N, channels, ...]`.
pub(crate) fn check_channels(layer: &str, x: &Tensor, channels: usize) -> Result<()> {
    if x.rank() < 2 || x.dim(1)? != channels {
        return Err(Error::invalid(
            format!("{layer} input"),
            format!("expected [N, {channels}, ...], found {:?}", x.dims()),
        )
        .into());
    }
    Ok(())
}

/// The dtype normalisation statistics are computed in: `f32` for half types.
pub(crate) fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

impl LayerNorm2d {
    /// The per-channel scale, `[C]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The per-channel offset, `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl ModuleT for LayerNorm2d {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        check_channels("layer_norm2d", x, self.weight.elem_count())?;
        let dtype = x.dtype();
        let xf = x.to_dtype(compute_dtype(dtype))?;
        let centred = xf.broadcast_sub(&xf.mean_keepdim(1)?)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let normed = centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dtype)?;
        let rank = x.rank();
        let weight = per_channel(&param(&self.weight), rank)?;
        let bias = per_channel(&param(&self.bias), rank)?;
        normed.broadcast_mul(&weight)?.broadcast_add(&bias)
    }
}
