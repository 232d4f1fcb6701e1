//! Inverted dropout with a reproducible mask stream (candle's `ops::dropout` draws from the
//! device RNG, which cannot be seeded on the CPU).

use crate::seed::{derive_seed, global_seed, splitmix64, training_step};
use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// Keras-style inverted dropout: in training mode each element is zeroed with probability
/// `rate` and the rest are scaled by `1 / (1 - rate)`; in inference mode the input passes
/// through unchanged.
///
/// The mask of a training-mode call is drawn from a ChaCha8 generator seeded from
/// `(seed, name, step, k)`: inside [`crate::train::Trainer::fit`], `step` is the run's
/// optimizer step ([`crate::seed::training_step`]) and `k` counts the layer's calls within
/// that step, so a model built with the same seed and trained on the same batches sees the
/// same masks, and a run resumed from a checkpoint continues the uninterrupted run's mask
/// stream. Outside a training loop, `k` counts the layer's calls since it was built or last
/// used inside one.
///
/// # Shapes
/// Any shape -> the same shape.
#[derive(Debug)]
pub struct Dropout {
    rate: f64,
    seed: u64,
    /// The training step of the last call and the calls made within it.
    calls: Mutex<(Option<u64>, u64)>,
}

impl Clone for Dropout {
    fn clone(&self) -> Self {
        Self {
            rate: self.rate,
            seed: self.seed,
            calls: Mutex::new(*self.calls.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

impl Dropout {
    /// Dropout with `rate` in `[0, 1)`, named `name` (its hierarchical layer name, which
    /// separates the mask streams of different layers), seeded from `seed`.
    pub fn new(rate: f64, name: &str, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&rate) {
            return Err(crate::error::Error::invalid(
                format!("dropout `{name}` rate"),
                format!("must be in [0, 1), got {rate}"),
            )
            .into());
        }
        Ok(Self {
            rate,
            seed: derive_seed(seed, name),
            calls: Mutex::new((None, 0)),
        })
    }

    /// Dropout with `rate` named `name`, seeded from the process-wide seed
    /// ([`crate::seed::set_global_seed`]) at the time of the call; what generated models use.
    pub fn from_global_seed(rate: f64, name: &str) -> Result<Self> {
        Self::new(rate, name, global_seed())
    }

    /// The drop probability.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The keep mask of the next training-mode call, already scaled by `1 / (1 - rate)`
    /// (advances the call counter).
    ///
    /// # Shapes
    /// Returns a tensor shaped like `x`, in `x`'s dtype and on its device.
    pub fn next_mask(&self, x: &Tensor) -> Result<Tensor> {
        let step = training_step();
        let call = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            if calls.0 != step {
                *calls = (step, 0);
            }
            calls.1 += 1;
            calls.1 - 1
        };
        let key = match step {
            None => splitmix64(call),
            Some(step) => splitmix64(splitmix64(step ^ 0xD80F_D80F) ^ call),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ key));
        let keep = (1.0 - self.rate) as f32;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.rate == 0.0 {
            return Ok(x.clone());
        }
        if !x.dtype().is_float() {
            candle_core::bail!("dropout: expected a float input, got {:?}", x.dtype());
        }
        x * self.next_mask(x)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn ones(n: usize) -> Tensor {
        Tensor::ones(n, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn inverted_dropout_in_training_identity_in_inference() {
        let d = Dropout::new(0.25, "head.dropout", 1).unwrap();
        let x = ones(20_000);
        assert_eq!(
            d.forward_t(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            x.to_vec1::<f32>().unwrap()
        );
        let y = d.forward_t(&x, true).unwrap().to_vec1::<f32>().unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    }

    #[test]
    fn masks_are_reproducible_per_seed_name_and_call() {
        let x = ones(256);
        let run = |seed, name| {
            let d = Dropout::new(0.5, name, seed).unwrap();
            (0..3)
                .map(|_| d.forward_t(&x, true).unwrap().to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(1, "d1");
        assert_eq!(a, run(1, "d1"));
        assert_ne!(a[0], a[1], "each call draws a new mask");
        assert_ne!(a, run(2, "d1"));
        assert_ne!(a, run(1, "d2"));
    }

    #[test]
    fn inside_training_masks_depend_on_the_step_not_on_the_instance() {
        let x = ones(256);
        let mask = |d: &Dropout| d.forward_t(&x, true).unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (
            Dropout::new(0.5, "d", 1).unwrap(),
            Dropout::new(0.5, "d", 1).unwrap(),
        );
        // `a` trains steps 0 to 2; a fresh `b` (a resumed run) starts at step 2.
        crate::seed::set_training_step(Some(0));
        let first = mask(&a);
        crate::seed::set_training_step(Some(1));
        mask(&a);
        crate::seed::set_training_step(Some(2));
        let (a2, a2_again) = (mask(&a), mask(&a));
        crate::seed::set_training_step(Some(2));
        assert_eq!(mask(&b), a2, "a resumed layer draws the uninterrupted mask");
        assert_eq!(mask(&b), a2_again, "calls within a step are counted");
        assert_ne!(first, a2);
        crate::seed::set_training_step(None);
    }

    #[test]
    fn rate_out_of_range_is_an_error_naming_the_layer() {
        let err = Dropout::new(1.0, "head.dropout", 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("head.dropout") && err.contains("[0, 1)"),
            "{err}"
        );
    }
}
