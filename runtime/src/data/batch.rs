//! The contract between data sources and the training loop.

use candle_core::{Result, Tensor};

/// One batch of examples on the training device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Model inputs, e.g. images `[N, C, H, W]` as `f32`.
    pub inputs: Tensor,
    /// Targets: class indices `[N]` as `u32` for classification, masks of class indices
    /// `[N, H, W]` as `u32` for segmentation, or `f32` values for regression (`[N, K]`).
    pub targets: Tensor,
}

/// A source of batches, traversed once per epoch.
///
/// Implementations decide shuffling (seeded by the epoch number so runs are reproducible)
/// and whether augmentation applies (training sources only).
pub trait Batches {
    /// The batches of epoch `epoch` (0-based), in order.
    fn epoch(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;

    /// Number of batches per epoch, for progress reporting.
    fn num_batches(&self) -> usize;

    /// Number of examples per epoch.
    fn num_examples(&self) -> usize;
}
