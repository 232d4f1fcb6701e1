//! An in-memory dataset of tensors, batched by the same [`DataLoader`](super::DataLoader)
//! machinery as image folders.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use convnet_runtime::data::{Batches, DataLoader, TensorDataset};
//! # fn main() -> candle_core::Result<()> {
//! let x = Tensor::zeros((10, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
//! let y = Tensor::arange(0u32, 10, &Device::Cpu)?;
//! let mut loader = DataLoader::new(TensorDataset::new(x, y)?, 4).shuffle(true).seed(1);
//! assert_eq!(loader.num_batches(), 3);
//! # Ok(()) }
//! ```

use candle_core::{bail, Result, Tensor};

use super::batch::Batch;
use super::loader::Dataset;

/// Examples held as two tensors whose first dimension indexes the example.
///
/// # Shapes
/// `inputs [N, ...]` (any dtype; `[N, C, H, W]` `f32` if it is to be augmented) and
/// `targets [N]` or `[N, K]` (any dtype, e.g. `u32` class indices or `f32` values), on any
/// device (batches are gathered there, then moved to the loader's device).
#[derive(Debug, Clone)]
pub struct TensorDataset {
    inputs: Tensor,
    targets: Tensor,
}

impl TensorDataset {
    /// Pairs `inputs` with `targets`; errors when either is a scalar or their first
    /// dimensions differ.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<Self> {
        if inputs.rank() == 0 || targets.rank() == 0 {
            bail!(
                "TensorDataset: inputs and targets need a leading example dimension, got {:?} and {:?}",
                inputs.dims(),
                targets.dims()
            );
        }
        if inputs.dim(0)? != targets.dim(0)? {
            bail!(
                "TensorDataset: inputs {:?} and targets {:?} disagree on the number of examples",
                inputs.dims(),
                targets.dims()
            );
        }
        Ok(Self { inputs, targets })
    }

    /// The inputs `[N, ...]`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The targets `[N, ...]`.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    fn example_shape(&self) -> Vec<usize> {
        self.inputs.dims()[1..].to_vec()
    }

    fn gather(&self, indices: &[usize]) -> Result<Batch> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            bail!("TensorDataset: index {bad} out of range for {n} examples");
        }
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids.as_slice(), self.inputs.device())?;
        let inputs = self.inputs.index_select(&ids, 0)?;
        let ids = ids.to_device(self.targets.device())?;
        let targets = self.targets.index_select(&ids, 0)?;
        Ok(Batch { inputs, targets })
    }
}
