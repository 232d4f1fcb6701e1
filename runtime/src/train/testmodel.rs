//! A small conv + batch-norm network for the tests of precise BN, weight averaging and
//! test-time augmentation (runtime layers only, seeded initialisation).

use crate::init::seeded_var_builder;
use crate::layers::{
    batch_norm2d, conv2d, dense, global_avg_pool2d, BatchNorm2d, Conv2d, Conv2dOptions,
};
use crate::ops::Pad2d;
use crate::testutil::{MemBatches, Rng};
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNormConfig, Linear, VarMap};

/// conv(2 -> 4, 3x3 same) -> BN + ReLU -> conv(4 -> 4, 3x3 same) -> BN -> global average
/// pool -> linear(4 -> 1); both batch norms with `momentum`.
///
/// # Shapes
/// `[N, 2, 6, 6]` -> `[N, 1]`.
pub struct BnNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    pub head: Linear,
}

impl BnNet {
    /// A fresh model and its varmap, initialised from `seed`.
    pub fn new(seed: u64, momentum: f64) -> (VarMap, BnNet) {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        let same = Conv2dOptions {
            padding: Pad2d {
                top: 1,
                bottom: 1,
                left: 1,
                right: 1,
            },
            ..Default::default()
        };
        let bn = BatchNormConfig {
            eps: 1e-3,
            remove_mean: true,
            affine: true,
            momentum,
        };
        let model = BnNet {
            conv1: conv2d(2, 4, (3, 3), same, vb.pp("conv1")).unwrap(),
            bn1: batch_norm2d(4, bn, true, vb.pp("bn1")).unwrap(),
            conv2: conv2d(4, 4, (3, 3), same, vb.pp("conv2")).unwrap(),
            bn2: batch_norm2d(4, bn, false, vb.pp("bn2")).unwrap(),
            head: dense(4, 1, true, vb.pp("head")).unwrap(),
        };
        (varmap, model)
    }
}

impl ModuleT for BnNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.bn1.forward_t(&self.conv1.forward(x)?, train)?;
        let h = self.bn2.forward_t(&self.conv2.forward(&h)?, train)?;
        self.head.forward(&global_avg_pool2d(&h)?)
    }
}

/// `n` images `[2, 6, 6]` with values `offset + scale * u`, `u` uniform in [-1, 1), and
/// labels: whether the left half is brighter than the right (mirror-sensitive).
pub fn images(n: usize, seed: u64, offset: f32, scale: f32) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n * 72)
        .map(|_| offset + scale * rng.symmetric())
        .collect();
    let x = Tensor::from_vec(x, (n, 2, 6, 6), &Device::Cpu).unwrap();
    let half_sum = |start| x.narrow(3, start, 3)?.flatten_from(1)?.sum(1);
    let y = half_sum(0)
        .and_then(|l| l.gt(&half_sum(3)?))
        .and_then(|b| b.to_dtype(DType::U32))
        .unwrap();
    (x, y)
}

/// In-order batches of `(x, y)`.
pub fn batches(x: &Tensor, y: &Tensor, batch_size: usize) -> MemBatches {
    MemBatches {
        x: x.clone(),
        y: y.clone(),
        batch_size,
        seed: None,
    }
}
