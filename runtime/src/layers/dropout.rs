//! Inverted dropout with a reproducible mask stream (candle's `ops::dropout` draws from the
//! device RNG, which cannot be seeded on the CPU).

use crate::seed::{derive_seed, global_seed, splitmix64};
use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keras-style inverted dropout: in training mode each element is zeroed with probability
/// `rate` and the rest are scaled by `1 / (1 - rate)`; in inference mode the input passes
/// through unchanged.
///
/// The mask of the `k`-th training-mode call is drawn from a ChaCha8 generator seeded from
/// `(seed, name, k)`, so a model built with the same seed and trained on the same batches
/// sees the same masks. The call counter starts at 0 when the layer is built (a resumed run
/// does not continue the mask stream of the saved one).
///
/// # Shapes
/// Any shape -> the same shape.
#[derive(Debug)]
pub struct Dropout {
    rate: f64,
    seed: u64,
    calls: AtomicU64,
}

impl Clone for Dropout {
    fn clone(&self) -> Self {
        Self {
            rate: self.rate,
            seed: self.seed,
            calls: AtomicU64::new(self.calls.load(Ordering::Relaxed)),
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
            calls: AtomicU64::new(0),
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
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ splitmix64(call)));
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
