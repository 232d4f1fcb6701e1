//! Test helpers: deterministic in-memory batches, a synthetic separable problem and a small
//! linear + batch-norm model.

use crate::data::{Batch, Batches};
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Linear, VarBuilder, VarMap};
use std::path::PathBuf;

/// SplitMix64: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// In-memory batches whose order depends only on `seed` and the epoch.
pub struct MemBatches {
    pub x: Tensor,
    pub y: Tensor,
    pub batch_size: usize,
    pub seed: Option<u64>,
}

impl Batches for MemBatches {
    fn epoch(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let n = self.x.dim(0).unwrap();
        let mut order: Vec<u32> = (0..n as u32).collect();
        if let Some(seed) = self.seed {
            let mut rng = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
            for i in (1..n).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        let bs = self.batch_size;
        Box::new(
            order
                .chunks(bs)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
                .into_iter()
                .map(move |idx| {
                    let idx = Tensor::new(idx.as_slice(), self.x.device())?;
                    Ok(Batch {
                        inputs: self.x.index_select(&idx, 0)?,
                        targets: self.y.index_select(&idx, 0)?,
                    })
                }),
        )
    }

    fn num_batches(&self) -> usize {
        self.x.dim(0).unwrap().div_ceil(self.batch_size)
    }

    fn num_examples(&self) -> usize {
        self.x.dim(0).unwrap()
    }
}

/// Two Gaussian-ish blobs around (-1.5, -1.5) (class 0) and (1.5, 1.5) (class 1); labels
/// flipped when `flip`.
pub fn blobs(n: usize, seed: u64, flip: bool) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        let c = if label == 1 { 1.5 } else { -1.5 };
        xs.push(c + rng.symmetric() * 1.2);
        xs.push(c + rng.symmetric() * 1.2);
        ys.push(if flip { 1 - label } else { label });
    }
    (
        Tensor::from_vec(xs, (n, 2), &Device::Cpu).unwrap(),
        Tensor::from_vec(ys, n, &Device::Cpu).unwrap(),
    )
}

/// Batches over [`blobs`].
pub fn blob_batches(n: usize, seed: u64, flip: bool, batch_size: usize) -> MemBatches {
    let (x, y) = blobs(n, seed, flip);
    MemBatches {
        x,
        y,
        batch_size,
        seed: Some(seed),
    }
}

/// Linear(2 -> 8) -> batch norm -> ReLU -> Linear(8 -> 1).
pub struct Mlp {
    l1: Linear,
    bn: BatchNorm,
    l2: Linear,
}

impl Mlp {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            l1: candle_nn::linear(2, 8, vb.pp("l1"))?,
            bn: candle_nn::batch_norm(8, 1e-3, vb.pp("bn"))?,
            l2: candle_nn::linear(8, 1, vb.pp("l2"))?,
        })
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.l1.forward(x)?;
        let h = self.bn.forward_t(&h, train)?.relu()?;
        self.l2.forward(&h)
    }
}

/// A fresh varmap and model (random init).
pub fn mlp() -> (VarMap, Mlp) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Mlp::new(vb).unwrap();
    (varmap, model)
}

/// All variables as flat f32 vectors, sorted by name.
pub fn weights(varmap: &VarMap) -> Vec<(String, Vec<f32>)> {
    let data = varmap.data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// An empty scratch directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convnet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `VarMap` with one variable of each given name and shape, every element 1.
pub fn varmap_with(shapes: &[(&str, &[usize])]) -> VarMap {
    let vm = VarMap::new();
    for (name, shape) in shapes {
        vm.get(
            *shape,
            name,
            candle_nn::Init::Const(1.0),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    }
    vm
}
