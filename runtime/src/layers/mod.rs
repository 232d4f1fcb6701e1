//! Typed layers the generated models hold as fields, for what candle-nn lacks: convolutions
//! with explicit (asymmetric) padding, depthwise and separable convolutions, and padded,
//! overlapping pooling, and batch norm with fused ReLU. Linear and dropout are candle-nn's own.

mod conv;
mod norm;
mod pool;

pub use crate::ops::{Pad2d, Window2d};
pub use conv::{
    conv2d, depthwise_conv2d, glorot_uniform, linear, separable_conv2d, Conv2d, Conv2dConfig,
    DepthwiseConv2d, SeparableConv2d,
};
pub use norm::{batch_norm2d, BatchNorm2d};
pub use pool::{global_avg_pool2d, global_max_pool2d, zero_pad2d, AvgPool2d, MaxPool2d};
