//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay (Keras
//! `SGD`).

use super::{decayed, named_vars, OptimizerState, Slots, TrainOptimizer};
use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::VarMap;

/// Settings of [`Sgd`]; `Default` is Keras' (`lr 0.01`, no momentum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the velocity buffer).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Decoupled weight decay: `w -= lr * weight_decay * w` before each update.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD as in Keras: with momentum `m`, `v = m v - lr g`, then `w += v` (or, Nesterov,
/// `w += m v - lr g`); without, `w -= lr g`.
#[derive(Debug)]
pub struct Sgd {
    slots: Slots,
    config: SgdConfig,
    step: u64,
}

impl Sgd {
    /// SGD over the float variables of `varmap`, with state named after them.
    pub fn from_varmap(varmap: &VarMap, config: SgdConfig) -> Self {
        Self::new_named(named_vars(varmap), config)
    }

    /// SGD over explicitly named variables.
    pub fn new_named(vars: Vec<(String, Var)>, config: SgdConfig) -> Self {
        Self {
            slots: Slots::new(vars, &["velocity"]),
            config,
            step: 0,
        }
    }

    /// The settings in use (learning rate included).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The learning rate, writable without the check of `set_lr` (for
    /// `candle_nn::Optimizer::set_learning_rate`; `apply` checks it).
    pub(crate) fn lr_mut(&mut self) -> &mut f64 {
        &mut self.config.lr
    }
}

impl TrainOptimizer for Sgd {
    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        super::validate_lr(self.kind(), self.config.lr)?;
        let SgdConfig {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } = self.config;
        for slot in self.slots.slots.iter_mut() {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = g.detach();
            let w = decayed(slot.var.as_tensor(), lr, weight_decay)?;
            let new_w = if momentum != 0.0 {
                let v = match &slot.buffers[0] {
                    Some(v) => v.clone(),
                    None => super::zeros_like(&slot.var)?,
                };
                let v = ((v * momentum)? - (&g * lr)?)?.detach();
                let w = if nesterov {
                    ((w + (&v * momentum)?)? - (&g * lr)?)?
                } else {
                    (w + &v)?
                };
                slot.buffers[0] = Some(v);
                w
            } else {
                (w - (&g * lr)?)?
            };
            slot.var.set(&new_w)?;
        }
        self.step += 1;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        super::validate_lr(self.kind(), lr)?;
        self.config.lr = lr;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.step
    }

    fn export_state(&self) -> Result<OptimizerState> {
        Ok(self.slots.export(self.kind(), self.step, self.config.lr))
    }

    fn import_state(&mut self, state: &OptimizerState) -> Result<()> {
        super::validate_lr(self.kind(), state.learning_rate)?;
        self.slots.import(self.kind(), state)?;
        self.step = state.step;
        self.config.lr = state.learning_rate;
        Ok(())
    }
}

super::impl_candle_optimizer!(Sgd, SgdConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_problem::{assert_close, run, var};

    // Reference values: plain Python, double precision, Keras' SGD update rule.
    //
    //   def sgd(lr, mom, nest, wd, steps):
    //       w = [1.0, -2.0, 0.5]; t = [0.5, 1.0, -1.0]; v = [0.0] * 3; out = []
    //       for _ in range(steps):
    //           for i in range(3):
    //               g = 2 * (w[i] - t[i])
    //               w[i] -= lr * wd * w[i]
    //               if mom:
    //                   v[i] = mom * v[i] - lr * g
    //                   w[i] = w[i] + mom * v[i] - lr * g if nest else w[i] + v[i]
    //               else:
    //                   w[i] -= lr * g
    //           out.append(list(w))
    //       return out

    #[test]
    fn plain_sgd_matches_reference() {
        let w = var();
        let mut opt = Sgd::new_named(
            vec![("w".into(), w.clone())],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        let got = run(&mut opt, &w, 3);
        // sgd(0.1, 0, False, 0, 3)
        assert_close(
            &got,
            &[
                [0.9, -1.4, 0.19999999999999996],
                [
                    0.8200000000000001,
                    -0.9199999999999999,
                    -0.040000000000000036,
                ],
                [0.756, -0.5359999999999999, -0.23200000000000004],
            ],
        );
        assert_eq!(opt.iterations(), 3);
    }

    #[test]
    fn momentum_sgd_matches_reference() {
        let w = var();
        let mut opt = Sgd::new_named(
            vec![("w".into(), w.clone())],
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        );
        // sgd(0.1, 0.9, False, 0, 3)
        assert_close(&run(&mut opt, &w, 3), &MOMENTUM);
    }

    #[test]
    fn nesterov_with_weight_decay_matches_reference() {
        let w = var();
        let mut opt = Sgd::new_named(
            vec![("w".into(), w.clone())],
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.01,
            },
        );
        // sgd(0.1, 0.9, True, 0.01, 3)
        assert_close(&run(&mut opt, &w, 3), &NESTEROV_WD);
    }

    // Output of the script above.
    const MOMENTUM: [[f64; 3]; 3] = [
        [0.9, -1.4, 0.19999999999999996],
        [0.73, -0.3799999999999999, -0.31000000000000005],
        [0.5309999999999999, 0.8140000000000001, -0.907],
    ];
    const NESTEROV_WD: [[f64; 3]; 3] = [
        [0.809, -0.8579999999999997, -0.07050000000000012],
        [0.6097710000000002, 0.33489800000000036, -0.6666395000000002],
        [0.44449024900000006, 1.3256978620000002, -1.1619288505],
    ];
}
