//! Group normalisation (Wu & He 2018), with PyTorch's `nn.GroupNorm` semantics.

use super::layer_norm2d::{check_channels, compute_dtype, per_channel};
use crate::error::Error;
use crate::grad_mode::param;
use candle_core::{Result, Tensor};
use candle_nn::{Init, ModuleT, VarBuilder};

/// Splits the channels into `groups` contiguous groups and normalises each group of each
/// example over its channels and positions to zero mean and unit (biased) variance, then
/// applies a learned per-channel `weight` (init 1) and `bias` (init 0), as
/// `torch.nn.GroupNorm(groups, C, eps, affine=True)`. Half-precision inputs are normalised
/// in `f32`. Built from candle ops, so autograd differentiates it.
///
/// # Shapes
/// `[N, C, ...]` -> `[N, C, ...]`, with `C` divisible by `groups`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

/// Creates a [`GroupNorm`] of `channels` in `groups` groups with `weight` and `bias` under
/// `vb`.
///
/// # Shapes
/// The layer maps `[N, channels, ...]` -> `[N, channels, ...]`.
pub fn group_norm(channels: usize, groups: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    if groups == 0 || channels % groups != 0 {
        return Err(Error::invalid(
            "group_norm groups",
            format!("must divide the {channels} channels, found {groups}"),
        )
        .into());
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::invalid(
            "group_norm eps",
            format!("must be a positive number, found {eps}"),
        )
        .into());
    }
    Ok(GroupNorm {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        groups,
        eps,
    })
}

impl GroupNorm {
    /// The number of channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The per-channel scale, `[C]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The per-channel offset, `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl ModuleT for GroupNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        check_channels("group_norm", x, self.weight.elem_count())?;
        let dtype = x.dtype();
        let n = x.dim(0)?;
        let grouped = x
            .to_dtype(compute_dtype(dtype))?
            .reshape((n, self.groups, ()))?;
        let centred = grouped.broadcast_sub(&grouped.mean_keepdim(2)?)?;
        let var = centred.sqr()?.mean_keepdim(2)?;
        let normed = centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .reshape(x.shape())?
            .to_dtype(dtype)?;
        let rank = x.rank();
        let weight = per_channel(&param(&self.weight), rank)?;
        let bias = per_channel(&param(&self.bias), rank)?;
        normed.broadcast_mul(&weight)?.broadcast_add(&bias)
    }
}
