//! Data feeding: batches of tensors and sources that yield them epoch by epoch.

mod batch;

pub use batch::{Batch, Batches};
