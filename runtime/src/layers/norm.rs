//! Batch normalisation over NCHW tensors with fused ReLU and fast CPU kernels.

use crate::grad_mode::param;
use crate::ops;
use candle_core::{Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Init, ModuleT, VarBuilder};

/// Batch normalisation over the channel dim (dim 1), optionally fused with the ReLU that
/// follows it, a drop-in for `candle_nn::BatchNorm` with affine parameters: the same
/// parameter names (`weight`, `bias`, `running_mean`, `running_var`), initialisation and
/// running-statistics update (`running = running * (1 - momentum) + batch * momentum`, the
/// running variance from the unbiased batch variance; normalisation by the biased one).
///
/// Training mode runs [`ops::batch_norm_train`] (batch statistics, closed-form backward);
/// eval mode one pass of [`ops::batch_norm_eval`] from the running statistics.
///
/// # Shapes
/// `[N, C, ...]` -> `[N, C, ...]`.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
    relu: bool,
}

/// Creates a [`BatchNorm2d`] over `num_features` channels with parameters under `vb`, with the
/// ReLU fused when `relu`; `config.remove_mean` and `config.affine` must be true.
///
/// # Shapes
/// The layer maps `[N, num_features, ...]` -> `[N, num_features, ...]`.
pub fn batch_norm2d(
    num_features: usize,
    config: BatchNormConfig,
    relu: bool,
    vb: VarBuilder,
) -> Result<BatchNorm2d> {
    if config.eps < 0. {
        candle_core::bail!("batch-norm eps cannot be negative {}", config.eps)
    }
    if !config.remove_mean || !config.affine {
        candle_core::bail!("batch_norm2d: only remove_mean = true, affine = true are supported");
    }
    let running_mean = vb.get_with_hints(num_features, "running_mean", Init::Const(0.))?;
    let running_var = vb.get_with_hints(num_features, "running_var", Init::Const(1.))?;
    let weight = vb.get_with_hints(num_features, "weight", Init::Const(1.))?;
    let bias = vb.get_with_hints(num_features, "bias", Init::Const(0.))?;
    Ok(BatchNorm2d {
        weight,
        bias,
        running_mean: Var::from_tensor(&running_mean)?,
        running_var: Var::from_tensor(&running_var)?,
        eps: config.eps,
        momentum: config.momentum,
        relu,
    })
}

impl BatchNorm2d {
    /// The scale `gamma`, `[C]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The offset `beta`, `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The running mean, `[C]`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running (unbiased) variance, `[C]`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Whether a ReLU is fused after the normalisation.
    pub fn fused_relu(&self) -> bool {
        self.relu
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.weight.elem_count();
        if x.rank() < 2 || x.dim(1)? != c {
            candle_core::bail!(
                "batch_norm2d: input {:?} does not have {c} channels",
                x.dims()
            );
        }
        if train {
            let (gamma, beta) = (param(&self.weight), param(&self.bias));
            let r = ops::batch_norm_train(x, &gamma, &beta, self.eps, self.relu)?;
            let m = self.momentum;
            let count = (x.elem_count() / c) as f64;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (r.mean * m)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - m))?
                + (r.var * (m * count / (count - 1.0)))?)?;
            self.running_mean
                .set(&rm.to_dtype(self.running_mean.dtype())?)?;
            self.running_var
                .set(&rv.to_dtype(self.running_var.dtype())?)?;
            Ok(r.y)
        } else {
            let rm = self.running_mean.as_detached_tensor();
            let rv = self.running_var.as_detached_tensor();
            let std = (rv + self.eps)?.sqrt()?;
            let (gamma, beta) = (param(&self.weight), param(&self.bias));
            ops::batch_norm_eval(x, &rm, &std, &gamma, &beta, self.relu)
        }
    }
}
