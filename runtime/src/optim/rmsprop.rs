//! RMSprop (Keras `RMSprop`): plain or centered, with optional momentum.

use super::{decayed, named_vars, OptimizerState, Slots, TrainOptimizer};
use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::VarMap;

/// Where RMSprop adds `eps` to the denominator.
///
/// For tiny gradients the two differ a lot: with `s = g^2 * (1 - rho)` after one step and
/// `g^2 << eps`, inside gives `g / sqrt(eps)`, outside `g / eps` per unit of rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpsilonPlacement {
    /// `g / sqrt(s + eps)`: Keras 3.
    #[default]
    InsideSqrt,
    /// `g / (sqrt(s) + eps)`: TensorFlow 2.x's `tf.keras` (Keras 2) and PyTorch.
    OutsideSqrt,
}

/// Settings of [`RmsProp`]; `Default` is Keras 3's (`lr 1e-3`, `rho 0.9`, `eps 1e-7` inside
/// the square root, `momentum 0`, not centered).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the squared-gradient average.
    pub rho: f64,
    /// Added to the denominator, where [`RmsPropConfig::eps_placement`] says.
    pub eps: f64,
    /// Whether `eps` goes inside the square root (Keras 3) or outside (TF 2.x, PyTorch).
    pub eps_placement: EpsilonPlacement,
    /// Momentum on the increments (0 disables it).
    pub momentum: f64,
    /// Normalise by the gradient's estimated variance instead of its second moment.
    pub centered: bool,
    /// Decoupled weight decay: `w -= lr * weight_decay * w` before each update.
    pub weight_decay: f64,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            rho: 0.9,
            eps: 1e-7,
            eps_placement: EpsilonPlacement::InsideSqrt,
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0,
        }
    }
}

/// RMSprop as in Keras: `s = rho s + (1 - rho) g^2`; centered also tracks
/// `a = rho a + (1 - rho) g` and uses `s - a^2`; increment `lr g / sqrt(denominator + eps)`
/// (or `lr g / (sqrt(denominator) + eps)` with [`EpsilonPlacement::OutsideSqrt`]);
/// with momentum `b = momentum b + increment`, `w -= b`, else `w -= increment`.
#[derive(Debug)]
pub struct RmsProp {
    slots: Slots,
    config: RmsPropConfig,
    step: u64,
}

impl RmsProp {
    /// RMSprop over the float variables of `varmap`, with state named after them.
    pub fn from_varmap(varmap: &VarMap, config: RmsPropConfig) -> Self {
        Self::new_named(named_vars(varmap), config)
    }

    /// RMSprop over explicitly named variables.
    pub fn new_named(vars: Vec<(String, Var)>, config: RmsPropConfig) -> Self {
        Self {
            slots: Slots::new(vars, &["velocity", "average_gradient", "momentum"]),
            config,
            step: 0,
        }
    }

    /// The settings in use (learning rate included).
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    /// The learning rate, writable without the check of `set_lr` (for
    /// `candle_nn::Optimizer::set_learning_rate`; `apply` checks it).
    pub(crate) fn lr_mut(&mut self) -> &mut f64 {
        &mut self.config.lr
    }
}

impl TrainOptimizer for RmsProp {
    fn kind(&self) -> &'static str {
        "rmsprop"
    }

    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        super::validate_lr(self.kind(), self.config.lr)?;
        let RmsPropConfig {
            lr,
            rho,
            eps,
            eps_placement,
            momentum,
            centered,
            weight_decay,
        } = self.config;
        let inside = eps_placement == EpsilonPlacement::InsideSqrt;
        let eps_inside = if inside { eps } else { 0.0 };
        let plain = !centered && momentum == 0.0 && inside && weight_decay == 0.0;
        for slot in self.slots.slots.iter_mut() {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = g.detach();
            let buf = |i: usize, slot: &super::Slot| match &slot.buffers[i] {
                Some(t) => Ok(t.clone()),
                None => super::zeros_like(&slot.var),
            };
            if plain {
                let s = buf(0, slot)?;
                if let Some(s) = super::rmsprop_cpu::plain_step(&slot.var, &g, &s, (lr, rho, eps))?
                {
                    slot.buffers[0] = Some(s);
                    continue;
                }
            }
            let s = ((buf(0, slot)? * rho)? + (g.sqr()? * (1.0 - rho))?)?.detach();
            let denominator = if centered {
                let a = ((buf(1, slot)? * rho)? + (&g * (1.0 - rho))?)?.detach();
                let d = ((&s - a.sqr()?)? + eps_inside)?;
                slot.buffers[1] = Some(a);
                d
            } else {
                (&s + eps_inside)?
            };
            let root = if inside {
                denominator.sqrt()?
            } else {
                (denominator.sqrt()? + eps)?
            };
            let increment = ((&g * lr)? / root)?;
            let w = decayed(slot.var.as_tensor(), lr, weight_decay)?;
            let new_w = if momentum > 0.0 {
                let b = ((buf(2, slot)? * momentum)? + increment)?.detach();
                let w = (w - &b)?;
                slot.buffers[2] = Some(b);
                w
            } else {
                (w - increment)?
            };
            slot.var.set(&new_w)?;
            slot.buffers[0] = Some(s);
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

super::impl_candle_optimizer!(RmsProp, RmsPropConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_problem::{assert_close, run, var};

    // Reference values: plain Python, double precision, Keras' RMSprop update rule.
    //
    //   import math
    //   def rmsprop(lr, rho, eps, mom, centered, steps):
    //       w = [1.0, -2.0, 0.5]; t = [0.5, 1.0, -1.0]
    //       vel = [0.0]*3; avg = [0.0]*3; buf = [0.0]*3; out = []
    //       for _ in range(steps):
    //           for i in range(3):
    //               g = 2 * (w[i] - t[i])
    //               vel[i] = rho * vel[i] + (1 - rho) * g * g
    //               if centered:
    //                   avg[i] = rho * avg[i] + (1 - rho) * g
    //                   den = vel[i] - avg[i] ** 2 + eps
    //               else:
    //                   den = vel[i] + eps
    //               inc = lr * g / math.sqrt(den)   # outside: den without eps,
    //                                               # lr * g / (math.sqrt(den) + eps)
    //               if mom > 0:
    //                   buf[i] = mom * buf[i] + inc
    //                   w[i] -= buf[i]
    //               else:
    //                   w[i] -= inc
    //           out.append(list(w))
    //       return out

    /// The plain configuration takes the CPU step (`rmsprop_cpu.rs`); it must give the
    /// general path's candle ops to the bit, and leave exported states alone.
    #[test]
    fn plain_cpu_step_matches_the_candle_ops_to_the_bit() {
        use candle_core::{DType, Device, Tensor};
        let bits = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        for dtype in [DType::F32, DType::F64] {
            let dev = Device::Cpu;
            let w0 = Tensor::randn(0f32, 1.0, (5, 7), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let w = Var::from_tensor(&w0).unwrap();
            let config = RmsPropConfig {
                lr: 0.003,
                ..RmsPropConfig::default()
            };
            let mut opt = RmsProp::new_named(vec![("w".into(), w.clone())], config);
            let (mut expected_w, mut expected_s) = (w0.clone(), w0.zeros_like().unwrap());
            let mut exported = Vec::new();
            for step in 0..4 {
                let g = Tensor::randn(0f32, 1.0, (5, 7), &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                // The general path's ops, as in `apply`.
                expected_s = ((&expected_s * config.rho).unwrap()
                    + (g.sqr().unwrap() * (1.0 - config.rho)).unwrap())
                .unwrap();
                let root = (&expected_s + config.eps).unwrap().sqrt().unwrap();
                let increment = ((&g * config.lr).unwrap() / root).unwrap();
                expected_w = (&expected_w - increment).unwrap();
                let loss = (w.as_tensor() * &g).unwrap().sum_all().unwrap();
                opt.apply(&loss.backward().unwrap()).unwrap();
                assert_eq!(
                    bits(w.as_tensor()),
                    bits(&expected_w),
                    "{dtype:?} step {step}"
                );
                let state = opt.export_state().unwrap();
                let s = &state.tensors["velocity/w"];
                assert_eq!(bits(s), bits(&expected_s), "{dtype:?} step {step}");
                exported.push((bits(s), s.clone()));
            }
            for (i, (values, tensor)) in exported.iter().enumerate() {
                assert_eq!(
                    &bits(tensor),
                    values,
                    "{dtype:?}: the state exported at step {i} changed"
                );
            }
        }
    }

    #[test]
    fn keras_default_rmsprop_matches_reference() {
        let w = var();
        let mut opt = RmsProp::new_named(vec![("w".into(), w.clone())], RmsPropConfig::default());
        assert_eq!(opt.config().lr, 1e-3);
        opt.set_lr(0.01).unwrap();
        // rmsprop(0.01, 0.9, 1e-7, 0.0, False, 3)
        assert_close(
            &run(&mut opt, &w, 3),
            &[
                [0.9683772392096927, -1.9683772238375215, 0.46837722515513697],
                [0.9461584823005499, -1.945551158230727, 0.4456686071707446],
                [0.9279288976329699, -1.9264965401009624, 0.42677215115521705],
            ],
        );
    }

    #[test]
    fn centered_momentum_rmsprop_matches_reference() {
        let w = var();
        let mut opt = RmsProp::new_named(
            vec![("w".into(), w.clone())],
            RmsPropConfig {
                lr: 0.01,
                momentum: 0.5,
                centered: true,
                ..Default::default()
            },
        );
        // rmsprop(0.01, 0.9, 1e-7, 0.5, True, 3)
        assert_close(
            &run(&mut opt, &w, 3),
            &[
                [0.9666666851851697, -1.96666666718107, 0.46666666872427964],
                [0.9253617309188192, -1.9246448017438011, 0.4247828267900553],
                [0.8840297176230102, -1.881414290489277, 0.3819095351481332],
            ],
        );
    }

    #[test]
    fn epsilon_outside_the_square_root_matches_reference() {
        let w = var();
        let mut opt = RmsProp::new_named(
            vec![("w".into(), w.clone())],
            RmsPropConfig {
                lr: 0.01,
                eps: 0.1,
                eps_placement: EpsilonPlacement::OutsideSqrt,
                ..Default::default()
            },
        );
        // rmsprop(0.01, 0.9, 0.1, 0.0, False, 3) with eps outside the root
        assert_close(
            &run(&mut opt, &w, 3),
            &[
                [0.9759746926647958, -1.9699604468618213, 0.471392697818522],
                [0.9578421512658322, -1.9479736805587051, 0.45029146655714697],
                [0.9424884565443572, -1.9295093964543493, 0.43252792119266015],
            ],
        );
    }
}
