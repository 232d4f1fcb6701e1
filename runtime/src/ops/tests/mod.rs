//! Unit tests of the ops against independent references: naive loops, finite differences,
//! candle's own ops, and the crate-private kernels (the CPU custom ops, the per-tap and
//! candle-op paths) against each other. They live in the crate because those kernels are not
//! public.

// The seeded generator, tensor construction and comparisons the integration tests use too.
#[path = "../../../tests/common/mod.rs"]
mod common;

mod batch_norm;
mod channels;
mod conv;
mod depthwise;
mod norm_depthwise;
mod pointwise_pool;
mod pool;
mod pool_modes;
