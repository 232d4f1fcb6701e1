//! Optimizers with Keras semantics and defaults: [`Sgd`] (momentum, Nesterov), [`Adam`],
//! [`AdamW`] and [`RmsProp`].
//!
//! Each implements `candle_nn::Optimizer` and [`TrainOptimizer`], the object-safe trait the
//! training loop drives: learning-rate get/set and export/import of the optimizer state
//! (moment tensors and step count) for checkpoints.
//!
//! Learning rates must be finite and `>= 0` ([`validate_lr`]): [`TrainOptimizer::set_lr`]
//! rejects anything else at once with [`crate::error::Error::InvalidArgument`], and `apply`
//! checks the rate of the configuration (or one set through `candle_nn::Optimizer`) before
//! touching any variable. Zero is allowed, as in PyTorch: schedules legitimately end there
//! (a cosine decay with `alpha = 0`), and a zero rate only leaves the weights unchanged. A
//! command line that takes a rate from a user should ask for a positive one.
//!
//! Variables that receive no gradient in a step (batch-norm moving statistics, frozen layers)
//! are skipped entirely: neither updated nor weight-decayed. Weight decay is decoupled, as in
//! Keras 3: before the gradient update, `w -= lr * weight_decay * w`.
//!
//! Optimizer state tensors are named `"{slot}/{variable}"`, e.g. `m/block1.conv.weight`, so a
//! checkpoint resumes into a freshly built model regardless of variable order. Build
//! optimizers with `from_varmap` to get those names; `candle_nn::Optimizer::new` names the
//! variables by position (`param0`, `param1`, ...).

mod adam;
mod groups;
mod rmsprop;
mod rmsprop_cpu;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use groups::{split_by_prefix, ParamGroups};
pub use rmsprop::{EpsilonPlacement, RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// A snapshot of an optimizer's state, enough to resume training exactly.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// Which optimizer produced it, e.g. `adam`.
    pub kind: String,
    /// Number of update steps taken.
    pub step: u64,
    /// Current learning rate.
    pub learning_rate: f64,
    /// Per-variable buffers named `"{slot}/{variable}"`, each shaped like its variable.
    pub tensors: HashMap<String, Tensor>,
}

/// What the training loop needs from an optimizer; object safe, unlike
/// `candle_nn::Optimizer`.
pub trait TrainOptimizer {
    /// Short name such as `sgd`, `adam`, `adamw`, `rmsprop`.
    fn kind(&self) -> &'static str;
    /// Applies one update from the gradients; variables without a gradient are skipped.
    fn apply(&mut self, grads: &GradStore) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate used from the next step on; a rate that is not finite and
    /// `>= 0` is an [`crate::error::Error::InvalidArgument`] and leaves the rate unchanged
    /// (see [`validate_lr`]).
    fn set_lr(&mut self, lr: f64) -> Result<()>;
    /// Number of update steps taken so far.
    fn iterations(&self) -> u64;
    /// Exports the state (buffers, step count, learning rate).
    fn export_state(&self) -> Result<OptimizerState>;
    /// Restores a state exported by the same kind of optimizer over the same variables;
    /// a buffer for an unknown variable, or shaped unlike its variable, is an error naming it.
    fn import_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// A boxed optimizer is one too, so an optimizer chosen at run time (e.g. from a flag) goes
/// to [`crate::train::Trainer::new`] like a concrete one.
impl<T: TrainOptimizer + ?Sized> TrainOptimizer for Box<T> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        (**self).apply(grads)
    }
    fn lr(&self) -> f64 {
        (**self).lr()
    }
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        (**self).set_lr(lr)
    }
    fn iterations(&self) -> u64 {
        (**self).iterations()
    }
    fn export_state(&self) -> Result<OptimizerState> {
        (**self).export_state()
    }
    fn import_state(&mut self, state: &OptimizerState) -> Result<()> {
        (**self).import_state(state)
    }
}

/// The floating-point variables of `varmap`, sorted by name: what an optimizer updates
/// (batch-norm moving statistics included; they are skipped for lack of gradients).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap();
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(_, v)| v.dtype().is_float())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Implements `candle_nn::Optimizer` for an optimizer through its [`TrainOptimizer`]
/// methods, so every optimizer here also works where candle expects one.
macro_rules! impl_candle_optimizer {
    ($ty:ty, $config:ty) => {
        impl candle_nn::Optimizer for $ty {
            type Config = $config;

            fn new(vars: Vec<candle_core::Var>, config: $config) -> candle_core::Result<Self> {
                Ok(Self::new_named($crate::optim::positional(vars), config))
            }

            fn step(
                &mut self,
                grads: &candle_core::backprop::GradStore,
            ) -> candle_core::Result<()> {
                $crate::optim::TrainOptimizer::apply(self, grads)
            }

            fn learning_rate(&self) -> f64 {
                $crate::optim::TrainOptimizer::lr(self)
            }

            /// Stores `lr` unchecked (this trait cannot report an error): the next `step`
            /// rejects a rate that is not finite and `>= 0`.
            fn set_learning_rate(&mut self, lr: f64) {
                *self.lr_mut() = lr;
            }
        }
    };
}
pub(crate) use impl_candle_optimizer;

/// Checks that `lr`, the learning rate of the optimizer `kind`, is finite and `>= 0`
/// (zero allowed: schedules end there); otherwise an
/// [`crate::error::Error::InvalidArgument`] naming the optimizer and the value.
pub fn validate_lr(kind: &str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(crate::error::Error::invalid(
            "learning rate",
            format!("{kind} needs a finite rate >= 0, got {lr}"),
        )
        .into())
    }
}

/// Names positional variables `param0`, `param1`, ...
pub(crate) fn positional(vars: Vec<Var>) -> Vec<(String, Var)> {
    vars.into_iter()
        .filter(|v| v.dtype().is_float())
        .enumerate()
        .map(|(i, v)| (format!("param{i}"), v))
        .collect()
}

/// One variable and its optimizer buffers (created lazily on its first gradient).
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: String,
    pub var: Var,
    pub buffers: Vec<Option<Tensor>>,
}

/// The variables of an optimizer with named per-variable buffers.
#[derive(Debug)]
pub(crate) struct Slots {
    pub slots: Vec<Slot>,
    pub buffer_names: &'static [&'static str],
}

impl Slots {
    pub fn new(vars: Vec<(String, Var)>, buffer_names: &'static [&'static str]) -> Self {
        let slots = vars
            .into_iter()
            .map(|(name, var)| Slot {
                name,
                var,
                buffers: vec![None; buffer_names.len()],
            })
            .collect();
        Self {
            slots,
            buffer_names,
        }
    }

    pub fn export(&self, kind: &str, step: u64, lr: f64) -> OptimizerState {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            for (buf, name) in slot.buffers.iter().zip(self.buffer_names) {
                if let Some(t) = buf {
                    tensors.insert(format!("{name}/{}", slot.name), t.clone());
                }
            }
        }
        OptimizerState {
            kind: kind.to_string(),
            step,
            learning_rate: lr,
            tensors,
        }
    }

    /// Validates everything first, then replaces all buffers.
    pub fn import(&mut self, kind: &str, state: &OptimizerState) -> Result<()> {
        if state.kind != kind {
            candle_core::bail!(
                "optimizer state is for `{}`, cannot load it into `{kind}`",
                state.kind
            );
        }
        let index: HashMap<&str, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut new_buffers: Vec<Vec<Option<Tensor>>> = self
            .slots
            .iter()
            .map(|_| vec![None; self.buffer_names.len()])
            .collect();
        let mut keys: Vec<&String> = state.tensors.keys().collect();
        keys.sort();
        for key in keys {
            let tensor = &state.tensors[key];
            let (buf, var_name) = key.split_once('/').ok_or_else(|| {
                candle_core::Error::msg(format!("optimizer state tensor `{key}` is not slot/var"))
            })?;
            let b = self
                .buffer_names
                .iter()
                .position(|n| *n == buf)
                .ok_or_else(|| {
                    candle_core::Error::msg(format!(
                        "optimizer state tensor `{key}`: `{kind}` has no `{buf}` buffer"
                    ))
                })?;
            let &i = index.get(var_name).ok_or_else(|| {
                candle_core::Error::msg(format!(
                    "optimizer state tensor `{key}` names no variable of this model"
                ))
            })?;
            let var = &self.slots[i].var;
            if tensor.dims() != var.dims() {
                candle_core::bail!(
                    "optimizer state tensor `{key}` has shape {:?}, variable `{var_name}` has shape {:?}",
                    tensor.dims(),
                    var.dims()
                );
            }
            let t = tensor.to_device(var.device())?.to_dtype(var.dtype())?;
            new_buffers[i][b] = Some(t);
        }
        for (slot, bufs) in self.slots.iter_mut().zip(new_buffers) {
            slot.buffers = bufs;
        }
        Ok(())
    }
}

/// Applies Keras' decoupled weight decay `w -= lr * wd * w` and returns the decayed weights.
pub(crate) fn decayed(w: &Tensor, lr: f64, weight_decay: f64) -> Result<Tensor> {
    if weight_decay == 0.0 {
        Ok(w.clone())
    } else {
        w.affine(1.0 - lr * weight_decay, 0.0)
    }
}

/// A zero tensor shaped like `var`.
pub(crate) fn zeros_like(var: &Var) -> Result<Tensor> {
    var.as_tensor().zeros_like()
}

#[cfg(test)]
pub(crate) mod test_problem {
    //! The fixed problem all optimizer reference tests share: `L(w) = sum((w - t)^2)` with
    //! `w0 = [1.0, -2.0, 0.5]`, `t = [0.5, 1.0, -1.0]`, in f64; gradient `2 (w - t)`.
    use super::TrainOptimizer;
    use candle_core::{Device, Tensor, Var};

    pub const W0: [f64; 3] = [1.0, -2.0, 0.5];
    pub const T: [f64; 3] = [0.5, 1.0, -1.0];

    pub fn var() -> Var {
        Var::new(&W0, &Device::Cpu).unwrap()
    }

    /// Runs `steps` steps and returns the weights after each.
    pub fn run(opt: &mut dyn TrainOptimizer, w: &Var, steps: usize) -> Vec<Vec<f64>> {
        let t = Tensor::new(&T, &Device::Cpu).unwrap();
        let mut out = Vec::new();
        for _ in 0..steps {
            let loss = (w.as_tensor() - &t)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            opt.apply(&grads).unwrap();
            out.push(w.as_tensor().to_vec1::<f64>().unwrap());
        }
        out
    }

    pub fn assert_close(got: &[Vec<f64>], want: &[[f64; 3]]) {
        assert_eq!(got.len(), want.len());
        for (s, (g, w)) in got.iter().zip(want).enumerate() {
            for i in 0..3 {
                assert!(
                    (g[i] - w[i]).abs() <= 1e-12 * w[i].abs().max(1.0),
                    "step {}: w[{i}] = {}, want {}",
                    s + 1,
                    g[i],
                    w[i]
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Optimizer;

    #[test]
    fn candle_optimizer_trait_drives_the_same_update() {
        // Plain SGD lr 0.1 on sum((w - t)^2): w1 = w0 - 0.2 (w0 - t).
        let w = test_problem::var();
        let mut opt = <Sgd as Optimizer>::new(
            vec![w.clone()],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        let t = Tensor::new(&test_problem::T, &candle_core::Device::Cpu).unwrap();
        let loss = (w.as_tensor() - &t)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
        assert_eq!(Optimizer::learning_rate(&opt), 0.1);
        assert!(opt.export_state().unwrap().tensors.is_empty());
        test_problem::assert_close(
            &[w.as_tensor().to_vec1::<f64>().unwrap()],
            &[[0.9, -1.4, 0.19999999999999996]],
        );
        let state = Adam::new(vec![w], AdamConfig::default())
            .unwrap()
            .export_state()
            .unwrap();
        assert_eq!(state.kind, "adam");
    }

    #[test]
    fn learning_rates_must_be_finite_and_non_negative() {
        let optimizers: Vec<(Var, Box<dyn TrainOptimizer>)> = {
            let named = |w: &Var| vec![("w".to_string(), w.clone())];
            let (a, b, c, d) = (
                test_problem::var(),
                test_problem::var(),
                test_problem::var(),
                test_problem::var(),
            );
            vec![
                (
                    a.clone(),
                    Box::new(Sgd::new_named(named(&a), SgdConfig::default())),
                ),
                (
                    b.clone(),
                    Box::new(Adam::new_named(named(&b), AdamConfig::default())),
                ),
                (
                    c.clone(),
                    Box::new(AdamW::new_named(named(&c), AdamWConfig::default())),
                ),
                (
                    d.clone(),
                    Box::new(RmsProp::new_named(named(&d), RmsPropConfig::default())),
                ),
            ]
        };
        for (w, mut opt) in optimizers {
            let kind = opt.kind();
            let lr = opt.lr();
            for bad in [f64::NAN, f64::INFINITY, -1.0, -1e-9] {
                let err = opt.set_lr(bad).unwrap_err();
                assert!(
                    matches!(
                        crate::error::Error::find(&err),
                        Some(crate::error::Error::InvalidArgument { name, reason })
                            if name == "learning rate" && reason.contains(kind)
                    ),
                    "{kind} {bad}: {err}"
                );
                assert_eq!(opt.lr(), lr, "{kind}: rate unchanged");
            }
            opt.set_lr(0.0).unwrap();
            let before = w.as_tensor().to_vec1::<f64>().unwrap();
            test_problem::run(opt.as_mut(), &w, 1);
            assert_eq!(
                w.as_tensor().to_vec1::<f64>().unwrap(),
                before,
                "{kind}: lr 0"
            );
            // A state (checkpoint) with a NaN rate is refused.
            let mut state = opt.export_state().unwrap();
            state.learning_rate = f64::NAN;
            assert!(opt.import_state(&state).is_err(), "{kind}");
        }
    }

    #[test]
    fn invalid_configured_or_candle_set_rates_fail_the_step() {
        let w = test_problem::var();
        let mut sgd = Sgd::new_named(
            vec![("w".into(), w.clone())],
            SgdConfig {
                lr: f64::NAN,
                ..Default::default()
            },
        );
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let err = sgd.apply(&grads).unwrap_err();
        assert!(
            err.to_string().contains("invalid learning rate: sgd"),
            "{err}"
        );
        assert_eq!(w.as_tensor().to_vec1::<f64>().unwrap(), test_problem::W0);
        let mut adam = Adam::new(vec![w.clone()], AdamConfig::default()).unwrap();
        Optimizer::set_learning_rate(&mut adam, -0.5);
        assert!(adam.backward_step(&loss).is_err());
        assert_eq!(w.as_tensor().to_vec1::<f64>().unwrap(), test_problem::W0);
    }
}
