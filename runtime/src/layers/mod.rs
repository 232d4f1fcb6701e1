//! Typed layers the generated models hold as fields, for what candle-nn lacks: convolutions
//! with explicit (asymmetric) padding, depthwise and separable convolutions, and padded,
//! overlapping pooling, batch norm with fused ReLU, and dropout with a seeded mask stream.
//! Linear is candle-nn's own.

mod conv;
mod dropout;
mod norm;
mod pool;

pub use crate::ops::{Pad2d, Window2d};
pub use conv::{
    conv2d, depthwise_conv2d, glorot_uniform, linear, separable_conv2d, Conv2d, Conv2dConfig,
    DepthwiseConv2d, SeparableConv2d,
};
pub use dropout::Dropout;
pub use norm::{batch_norm2d, with_batch_norm_momentum, BatchNorm2d, RunningVariance};
pub use pool::{global_avg_pool2d, global_max_pool2d, zero_pad2d, AvgPool2d, MaxPool2d};
