//! Batch normalisation over NCHW tensors with fused ReLU and fast CPU kernels.

use crate::error::Error;
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
/// eval mode one pass of [`ops::batch_norm_eval`] from the running statistics. Training mode
/// needs at least 2 values per channel (`N * H * W >= 2`) for the unbiased variance; fewer
/// is an [`Error::InvalidArgument`] naming the layer (by its variable prefix), where
/// the running variance would otherwise turn NaN.
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
    name: String,
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
        name: vb.prefix(),
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

    /// The layer's name: the prefix of its variables, e.g. `block1.bn`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl BatchNorm2d {
    /// Checks `x` against the layer, runs `op(x, gamma, beta)` (a training-mode batch norm,
    /// possibly fused with what follows it) and updates the running statistics from the
    /// batch statistics it returns; returns its `y`.
    pub(crate) fn train_with(
        &self,
        x: &Tensor,
        op: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Result<ops::BatchNormTrain>,
    ) -> Result<Tensor> {
        let c = self.check_input(x)?;
        let count = x.elem_count() / c;
        if count < 2 {
            return Err(Error::invalid(
                format!("input of batch norm `{}`", self.name),
                format!(
                    "training mode needs at least 2 values per channel (N*H*W), got \
                     {count} from input {:?}: use batches of 2 or more (drop a last \
                     batch of 1) or larger feature maps",
                    x.dims()
                ),
            )
            .into());
        }
        let (gamma, beta) = (param(&self.weight), param(&self.bias));
        let r = op(x, &gamma, &beta)?;
        let m = match MOMENTUM_OVERRIDE.with(Cell::get) {
            Some(m) => {
                OVERRIDE_USES.with(|u| u.set(u.get() + 1));
                m
            }
            None => self.momentum,
        };
        let count = count as f64;
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
    }

    /// The epsilon added to the variance.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    /// The channel count, after checking that `x` is `[N, C, ...]` with the layer's `C`.
    fn check_input(&self, x: &Tensor) -> Result<usize> {
        let c = self.weight.elem_count();
        if x.rank() < 2 || x.dim(1)? != c {
            candle_core::bail!(
                "batch_norm2d: input {:?} does not have {c} channels",
                x.dims()
            );
        }
        Ok(c)
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            self.train_with(x, |x, gamma, beta| {
                ops::batch_norm_train(x, gamma, beta, self.eps, self.relu)
            })
        } else {
            self.check_input(x)?;
            let rm = self.running_mean.as_detached_tensor();
            let rv = self.running_var.as_detached_tensor();
            let std = (rv + self.eps)?.sqrt()?;
            let (gamma, beta) = (param(&self.weight), param(&self.bias));
            ops::batch_norm_eval(x, &rm, &std, &gamma, &beta, self.relu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn layer(varmap: &VarMap) -> BatchNorm2d {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
        batch_norm2d(
            3,
            BatchNormConfig::default(),
            true,
            vb.pp("block1").pp("bn"),
        )
        .unwrap()
    }

    #[test]
    fn one_value_per_channel_in_training_is_an_error_naming_the_layer() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        assert_eq!(bn.name(), "block1.bn");
        for dims in [(1, 3, 1, 1), (0, 3, 4, 4)] {
            let x = Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap();
            let err = bn.forward_t(&x, true).unwrap_err();
            assert!(
                matches!(
                    crate::error::Error::find(&err),
                    Some(Error::InvalidArgument { name, .. }) if name.contains("`block1.bn`")
                ),
                "{err}"
            );
            assert!(
                err.to_string().contains("at least 2 values per channel"),
                "{err}"
            );
        }
        let running_var: Vec<f32> = bn.running_var().to_vec1().unwrap();
        assert_eq!(running_var, [1.0; 3], "running statistics untouched");
        // Two values per channel (a batch of 2 on 1x1 maps, or 1 image of 2 pixels) train;
        // one value per channel is fine in eval mode.
        for dims in [(2, 3, 1, 1), (1, 3, 1, 2)] {
            let x = Tensor::randn(0f32, 1., dims, &Device::Cpu).unwrap();
            bn.forward_t(&x, true).unwrap();
        }
        let running_var: Vec<f32> = bn.running_var().to_vec1().unwrap();
        assert!(running_var.iter().all(|v| v.is_finite()), "{running_var:?}");
        let one = Tensor::ones((1, 3, 1, 1), DType::F32, &Device::Cpu).unwrap();
        bn.forward_t(&one, false).unwrap();
    }
}
