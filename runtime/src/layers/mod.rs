//! Typed layers the generated models hold as fields, for what candle-nn lacks: convolutions
//! with explicit (asymmetric) padding, depthwise and separable convolutions, and padded,
//! overlapping pooling, batch norm with fused ReLU, and dropout with a seeded mask stream.
//! Linear is candle-nn's own. Also the layers of modern architectures: hard activations,
//! layer and group norm, layer scale, drop path, upsampling, transposed convolution, reshape
//! and cropping.

mod activation;
mod channels;
mod conv;
mod conv_transpose;
mod drop_path;
mod dropout;
mod fused;
mod group_norm;
mod layer_norm2d;
mod layer_scale;
mod norm;
mod pool;
mod reshape;
mod upsample;

pub use crate::ops::{Pad2d, Window2d};
pub use activation::{hard_sigmoid, hard_swish, relu6};
pub use channels::{channel_linear, channel_shuffle, channel_slice, ChannelLinear};
pub use conv::{
    conv2d, dense, depthwise_conv2d, glorot_uniform, separable_conv2d, Conv2d, Conv2dOptions,
    DepthwiseConv2d, SeparableConv2d,
};
pub use conv_transpose::{conv_transpose2d, ConvTranspose2d, ConvTranspose2dOptions};
pub use drop_path::{drop_path, DropPath};
pub use dropout::Dropout;
pub use fused::{NormalizedInput, PooledOutput};
pub use group_norm::{group_norm, GroupNorm};
pub use layer_norm2d::{layer_norm2d, LayerNorm2d};
pub use layer_scale::{layer_scale, LayerScale};
pub use norm::{batch_norm2d, with_batch_norm_momentum, BatchNorm2d, RunningVariance};
pub use pool::{global_avg_pool2d, global_max_pool2d, zero_pad2d, AvgPool2d, MaxPool2d};
pub use reshape::{center_crop, crop2d, reshape};
pub use upsample::{upsample2d, UpsampleMode};
