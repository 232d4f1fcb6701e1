//! Adam and AdamW (Keras `Adam` / `AdamW`).

use super::{decayed, named_vars, OptimizerState, Slots, TrainOptimizer};
use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::VarMap;

/// Settings of [`Adam`]; `Default` is Keras' (`lr 1e-3`, betas `0.9`/`0.999`, `eps 1e-7`,
/// no weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment estimate.
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Keras' "epsilon hat", added to `sqrt(v)`.
    pub eps: f64,
    /// Decoupled weight decay: `w -= lr * weight_decay * w` before each update.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        }
    }
}

/// Settings of [`AdamW`]; `Default` is Keras' `AdamW` (as [`AdamConfig`] but
/// `weight_decay 0.004`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment estimate.
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Added to `sqrt(v)`.
    pub eps: f64,
    /// Decoupled weight decay: `w -= lr * weight_decay * w` before each update.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.004,
        }
    }
}

impl From<AdamWConfig> for AdamConfig {
    fn from(c: AdamWConfig) -> Self {
        Self {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
        }
    }
}

/// Adam as in Keras: at step `t` (from 1), `lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)`,
/// `m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`, `w -= lr_t m / (sqrt(v) + eps)`.
#[derive(Debug)]
pub struct Adam {
    slots: Slots,
    config: AdamConfig,
    step: u64,
    kind: &'static str,
}

impl Adam {
    /// Adam over the float variables of `varmap`, with state named after them.
    pub fn from_varmap(varmap: &VarMap, config: AdamConfig) -> Self {
        Self::new_named(named_vars(varmap), config)
    }

    /// Adam over explicitly named variables.
    pub fn new_named(vars: Vec<(String, Var)>, config: AdamConfig) -> Self {
        Self {
            slots: Slots::new(vars, &["m", "v"]),
            config,
            step: 0,
            kind: "adam",
        }
    }

    /// The settings in use (learning rate included).
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The learning rate, writable without the check of `set_lr` (for
    /// `candle_nn::Optimizer::set_learning_rate`; `apply` checks it).
    pub(crate) fn lr_mut(&mut self) -> &mut f64 {
        &mut self.config.lr
    }
}

impl TrainOptimizer for Adam {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        super::validate_lr(self.kind, self.config.lr)?;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = (self.step + 1) as i32;
        let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
        for slot in self.slots.slots.iter_mut() {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = g.detach();
            let m = match &slot.buffers[0] {
                Some(m) => m.clone(),
                None => super::zeros_like(&slot.var)?,
            };
            let v = match &slot.buffers[1] {
                Some(v) => v.clone(),
                None => super::zeros_like(&slot.var)?,
            };
            let m = ((m * beta1)? + (&g * (1.0 - beta1))?)?.detach();
            let v = ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?.detach();
            let w = decayed(slot.var.as_tensor(), lr, weight_decay)?;
            let update = (m.broadcast_div(&(v.sqrt()? + eps)?)? * lr_t)?;
            slot.var.set(&(w - update)?)?;
            slot.buffers[0] = Some(m);
            slot.buffers[1] = Some(v);
        }
        self.step += 1;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        super::validate_lr(self.kind, lr)?;
        self.config.lr = lr;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.step
    }

    fn export_state(&self) -> Result<OptimizerState> {
        Ok(self.slots.export(self.kind, self.step, self.config.lr))
    }

    fn import_state(&mut self, state: &OptimizerState) -> Result<()> {
        super::validate_lr(self.kind, state.learning_rate)?;
        self.slots.import(self.kind, state)?;
        self.step = state.step;
        self.config.lr = state.learning_rate;
        Ok(())
    }
}

super::impl_candle_optimizer!(Adam, AdamConfig);

/// AdamW: [`Adam`] with decoupled weight decay on by default (Keras `AdamW`).
#[derive(Debug)]
pub struct AdamW(Adam);

impl AdamW {
    /// AdamW over the float variables of `varmap`, with state named after them.
    pub fn from_varmap(varmap: &VarMap, config: AdamWConfig) -> Self {
        Self::new_named(named_vars(varmap), config)
    }

    /// AdamW over explicitly named variables.
    pub fn new_named(vars: Vec<(String, Var)>, config: AdamWConfig) -> Self {
        let mut inner = Adam::new_named(vars, config.into());
        inner.kind = "adamw";
        Self(inner)
    }

    /// The settings in use (learning rate included).
    pub fn config(&self) -> &AdamConfig {
        &self.0.config
    }

    /// The learning rate, writable without the check of `set_lr` (for
    /// `candle_nn::Optimizer::set_learning_rate`; `apply` checks it).
    pub(crate) fn lr_mut(&mut self) -> &mut f64 {
        &mut self.0.config.lr
    }
}

impl TrainOptimizer for AdamW {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        self.0.apply(grads)
    }
    fn lr(&self) -> f64 {
        self.0.lr()
    }
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.0.set_lr(lr)
    }
    fn iterations(&self) -> u64 {
        self.0.iterations()
    }
    fn export_state(&self) -> Result<OptimizerState> {
        self.0.export_state()
    }
    fn import_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.0.import_state(state)
    }
}

super::impl_candle_optimizer!(AdamW, AdamWConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_problem::{assert_close, run, var};

    // Reference values: plain Python, double precision, Keras' Adam update rule.
    //
    //   import math
    //   def adam(lr, b1, b2, eps, wd, steps):
    //       w = [1.0, -2.0, 0.5]; t = [0.5, 1.0, -1.0]; m = [0.0]*3; v = [0.0]*3; out = []
    //       for s in range(1, steps + 1):
    //           lr_t = lr * math.sqrt(1 - b2**s) / (1 - b1**s)
    //           for i in range(3):
    //               g = 2 * (w[i] - t[i])
    //               w[i] -= lr * wd * w[i]
    //               m[i] += (g - m[i]) * (1 - b1)
    //               v[i] += (g * g - v[i]) * (1 - b2)
    //               w[i] -= lr_t * m[i] / (math.sqrt(v[i]) + eps)
    //           out.append(list(w))
    //       return out

    #[test]
    fn adam_matches_reference() {
        let w = var();
        let mut opt = Adam::new_named(
            vec![("w".into(), w.clone())],
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        // adam(0.1, 0.9, 0.999, 1e-7, 0.0, 3)
        assert_close(
            &run(&mut opt, &w, 3),
            &[
                [0.900000316226766, -1.9000000527046, 0.4000001054091442],
                [0.8011879736307703, -1.8001027975857649, 0.3002392435964603],
                [0.704871999501114, -1.700381644695592, 0.20090311535324185],
            ],
        );
    }

    #[test]
    fn adamw_matches_reference() {
        let w = var();
        let mut opt = AdamW::new_named(
            vec![("w".into(), w.clone())],
            AdamWConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        assert_eq!(opt.config().weight_decay, 0.004);
        // adam(0.1, 0.9, 0.999, 1e-7, 0.004, 3)
        assert_close(
            &run(&mut opt, &w, 3),
            &[
                [0.8996003162267661, -1.8992000527046, 0.39980010540914424],
                [0.8004360639194886, -1.7985440708138924, 0.2998799407143363],
                [0.7038260163237525, -1.6981060698362527, 0.20042546403525263],
            ],
        );
    }

    #[test]
    fn state_round_trip_continues_identically() {
        // 3 steps straight vs 2 steps, export, import into a fresh optimizer, 1 step.
        let w1 = var();
        let mut a = Adam::new_named(vec![("w".into(), w1.clone())], AdamConfig::default());
        run(&mut a, &w1, 3);
        let w2 = var();
        let mut b = Adam::new_named(vec![("w".into(), w2.clone())], AdamConfig::default());
        run(&mut b, &w2, 2);
        let state = b.export_state().unwrap();
        assert_eq!(state.step, 2);
        assert!(state.tensors.contains_key("m/w") && state.tensors.contains_key("v/w"));
        let mut c = Adam::new_named(vec![("w".into(), w2.clone())], AdamConfig::default());
        c.import_state(&state).unwrap();
        run(&mut c, &w2, 1);
        assert_eq!(
            w1.as_tensor().to_vec1::<f64>().unwrap(),
            w2.as_tensor().to_vec1::<f64>().unwrap()
        );
        // Wrong kind and unknown variables are errors.
        let mut sgd = crate::optim::Sgd::new_named(vec![("w".into(), var())], Default::default());
        assert!(sgd.import_state(&state).is_err());
        let mut other = Adam::new_named(vec![("x".into(), var())], AdamConfig::default());
        let err = other.import_state(&state).unwrap_err().to_string();
        assert!(err.contains("m/w"), "{err}");
    }
}
