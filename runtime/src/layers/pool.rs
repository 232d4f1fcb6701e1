//! Pooling and padding layers.

use crate::ops::{self, Pad2d, Window2d};
use candle_core::{Module, Result, Tensor};

/// Max pooling with explicit padding (padded cells are `-inf`, so they never win); windows
/// may overlap (kernel > stride).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window, stride and padding.
    pub window: Window2d,
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::max_pool2d(x, &self.window)
    }
}

/// Average pooling with explicit padding; each window's sum is divided by the number of its
/// positions inside the input extended by `counted` (`Pad2d::ZERO`: padding left out, Keras
/// semantics; the declared padding: PyTorch's `count_include_pad = True`).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window, stride and padding (with `ceil_mode`, including the extra bottom rows and
    /// right columns of the last windows).
    pub window: Window2d,
    /// The padding counted in each window's divisor (see [`ops::avg_pool2d_counted`]).
    pub counted: Pad2d,
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::avg_pool2d_counted(x, &self.window, self.counted)
    }
}

/// Mean over the spatial dims.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C]`.
pub fn global_avg_pool2d(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.mean(2)
}

/// Maximum over the spatial dims.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C]`.
pub fn global_max_pool2d(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.max(2)
}

/// Pads the spatial dims with zeros.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H + top + bottom, W + left + right]`.
pub fn zero_pad2d(x: &Tensor, pad: Pad2d) -> Result<Tensor> {
    ops::pad2d_with(x, pad, 0.0)
}
