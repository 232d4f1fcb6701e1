//! Stochastic depth / drop path (Huang et al. 2016; timm's `DropPath`, torchvision's
//! `StochasticDepth(mode="row")`).

use crate::error::Error;
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
/// The per-example draws come from a ChaCha8 RNG seeded with `seed` and advanced by every
/// training forward, so a run is reproducible given the seed and the sequence of batches.
/// Clones share the RNG.
///
/// # Shapes
/// `[N, ...]` -> `[N, ...]`.
#[derive(Clone)]
pub struct DropPath {
    rate: f64,
    rng: Arc<Mutex<ChaCha8Rng>>,
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
        rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
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
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
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
