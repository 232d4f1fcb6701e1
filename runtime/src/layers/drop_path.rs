//! Stochastic depth / drop path (Huang et al. 2016; timm's `DropPath`, torchvision's
//! `StochasticDepth(mode="row")`).

use crate::error::Error;
use crate::seed::{splitmix64, training_step};
use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};

/// In training, zeroes each example's whole input with probability `rate` and scales the
/// kept examples by `1 / (1 - rate)` (timm's `scale_by_keep`), so the expectation is
/// unchanged; in eval it is the identity. Placed at the end of a residual body it drops the
/// branch for that example.
///
/// Inside [`crate::train::Trainer::fit`] the per-example draws come from a ChaCha8 RNG
/// seeded from `(seed, step, k)`, `step` being the run's optimizer step
/// ([`crate::seed::training_step`]) and `k` the layer's calls within it, so a run resumed from
/// a checkpoint draws the uninterrupted run's masks. Outside a training loop they come from
/// one RNG seeded with `seed` and advanced by every training forward. Either way a run is
/// reproducible given the seed and the sequence of batches. Clones share the RNG.
///
/// # Shapes
/// `[N, ...]` -> `[N, ...]`.
#[derive(Clone)]
pub struct DropPath {
    rate: f64,
    seed: u64,
    draws: Arc<Mutex<Draws>>,
}

/// The RNG outside a training loop, and the step of the last call inside one with the calls
/// made within it.
struct Draws {
    rng: ChaCha8Rng,
    step: Option<u64>,
    calls: u64,
}

impl std::fmt::Debug for DropPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropPath")
            .field("rate", &self.rate)
            .finish()
    }
}

/// Creates a [`DropPath`] dropping with probability `rate` (`0 <= rate < 1`), its RNG
/// seeded with `seed`.
pub fn drop_path(rate: f64, seed: u64) -> Result<DropPath> {
    if !(0.0..1.0).contains(&rate) {
        return Err(
            Error::invalid("drop_path rate", format!("must be in [0, 1), found {rate}")).into(),
        );
    }
    Ok(DropPath {
        rate,
        seed,
        draws: Arc::new(Mutex::new(Draws {
            rng: ChaCha8Rng::seed_from_u64(seed),
            step: None,
            calls: 0,
        })),
    })
}

impl DropPath {
    /// The drop probability.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The `[n]` keep mask for the next training batch: `1 / (1 - rate)` for kept examples,
    /// 0 for dropped ones.
    pub fn next_mask(&self, n: usize) -> Vec<f64> {
        let keep = 1.0 - self.rate;
        let mut draws = self.draws.lock().unwrap_or_else(|e| e.into_inner());
        let mut stepped;
        let rng = match training_step() {
            None => &mut draws.rng,
            Some(step) => {
                if draws.step != Some(step) {
                    (draws.step, draws.calls) = (Some(step), 0);
                }
                draws.calls += 1;
                let key = splitmix64(splitmix64(step ^ 0xD209_D209) ^ (draws.calls - 1));
                stepped = ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ key));
                &mut stepped
            }
        };
        (0..n)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect()
    }
}

impl ModuleT for DropPath {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let n = x.dim(0)?;
        let mut dims = vec![1; x.rank()];
        dims[0] = n;
        let mask = Tensor::from_vec(self.next_mask(n), dims, x.device())?.to_dtype(x.dtype())?;
        x.broadcast_mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_training_masks_depend_on_the_step_not_on_the_instance() {
        let (a, b) = (drop_path(0.5, 3).unwrap(), drop_path(0.5, 3).unwrap());
        let outside = drop_path(0.5, 3).unwrap().next_mask(64);
        // `a` trains steps 0 to 2; a fresh `b` (a resumed run) starts at step 2.
        crate::seed::set_training_step(Some(0));
        a.next_mask(64);
        crate::seed::set_training_step(Some(1));
        a.next_mask(64);
        crate::seed::set_training_step(Some(2));
        let (a2, a2_again) = (a.next_mask(64), a.next_mask(64));
        assert_eq!(
            b.next_mask(64),
            a2,
            "a resumed layer draws the uninterrupted mask"
        );
        assert_eq!(b.next_mask(64), a2_again, "calls within a step are counted");
        assert_ne!(a2, a2_again);
        crate::seed::set_training_step(None);
        // Outside a training loop the layer's own RNG goes on as before.
        assert_eq!(a.next_mask(64), outside);
    }
}
