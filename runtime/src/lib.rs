//! The candle-based runtime behind `convnet`: layers and kernels candle lacks, the
//! [`model::Network`] trait every generated model implements, and (in their own modules) the
//! data pipeline, losses, optimizers, training loop and checkpoints.

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod freeze;
pub mod grad_mode;
pub mod init;
pub mod interop;
pub mod keras;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod schedule;
pub mod seed;
pub mod train;

#[cfg(test)]
pub(crate) mod testutil;
