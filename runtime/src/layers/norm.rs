//! Batch normalisation over NCHW tensors with fused ReLU and fast CPU kernels.

use crate::grad_mode::param;
use crate::ops;
use candle_core::{Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Init, ModuleT, VarBuilder};
use std::cell::Cell;

thread_local! {
    static MOMENTUM_OVERRIDE: Cell<Option<f64>> = const { Cell::new(None) };
    static OVERRIDE_USES: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with every [`BatchNorm2d`] on this thread updating its running statistics with
/// `momentum` instead of its own (`1.0` makes them the statistics of the last batch); used to
/// re-estimate the statistics ([`crate::train::recompute_batch_norm_statistics`]). Returns
/// `f`'s result and how many running-statistics updates used `momentum` (other batch-norm
/// implementations, such as `candle_nn::BatchNorm`, ignore it). The previous setting is
/// restored when `f` returns or panics.
pub fn with_batch_norm_momentum<R>(momentum: f64, f: impl FnOnce() -> R) -> (R, usize) {
    struct Restore(Option<f64>, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            MOMENTUM_OVERRIDE.with(|m| m.set(self.0));
            OVERRIDE_USES.with(|u| u.set(self.1));
        }
    }
    let _restore = Restore(
        MOMENTUM_OVERRIDE.with(|m| m.replace(Some(momentum))),
        OVERRIDE_USES.with(|u| u.replace(0)),
    );
    let result = f();
    (result, OVERRIDE_USES.with(Cell::get))
}

/// Which batch variance updates the running variance (normalisation always uses the biased
/// one, `mean((x - mean)^2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunningVariance {
    /// The biased batch variance (divide by `n`), as Keras 3 and TensorFlow do.
    #[default]
    Biased,
    /// The unbiased batch variance (divide by `n - 1`), as PyTorch and `candle_nn` do.
    Unbiased,
}

/// Batch normalisation over the channel dim (dim 1), optionally fused with the ReLU that
/// follows it, a drop-in for `candle_nn::BatchNorm` with affine parameters: the same
/// parameter names (`weight`, `bias`, `running_mean`, `running_var`), initialisation and
/// running-statistics update (`running = running * (1 - momentum) + batch * momentum`).
/// The running variance follows Keras by default (the biased batch variance, see
/// [`RunningVariance`]); `with_running_variance(RunningVariance::Unbiased)` gives candle's
/// and PyTorch's convention.
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
    running_variance: RunningVariance,
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
        running_variance: RunningVariance::default(),
    })
}

impl BatchNorm2d {
    /// Selects which batch variance updates the running variance (default
    /// [`RunningVariance::Biased`], Keras').
    pub fn with_running_variance(mut self, running_variance: RunningVariance) -> Self {
        self.running_variance = running_variance;
        self
    }

    /// Which batch variance updates the running variance.
    pub fn running_variance_convention(&self) -> RunningVariance {
        self.running_variance
    }

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

    /// The running variance, `[C]` (see [`RunningVariance`]).
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
            let m = match MOMENTUM_OVERRIDE.with(Cell::get) {
                Some(m) => {
                    OVERRIDE_USES.with(|u| u.set(u.get() + 1));
                    m
                }
                None => self.momentum,
            };
            let count = (x.elem_count() / c) as f64;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (r.mean * m)?)?;
            let correction = match self.running_variance {
                RunningVariance::Biased => 1.0,
                RunningVariance::Unbiased => count / (count - 1.0),
            };
            let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (r.var * (m * correction))?)?;
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
