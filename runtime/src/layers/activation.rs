//! The piecewise-linear activations of MobileNetV2/V3: `relu6`, `hard_sigmoid`, `hard_swish`.
//!
//! All follow PyTorch's definitions (`torch.nn.ReLU6`, `Hardsigmoid`, `Hardswish`):
//! `hard_sigmoid(x) = relu6(x + 3) / 6`. Keras 3 defines `hard_sigmoid` the same way
//! (`relu6(x + 3) / 6`; Keras 2 used `0.2 x + 0.5` clipped to [0, 1]) and its `hard_swish`
//! / `hard_silu` as `x * hard_sigmoid(x)`. They are built from candle ops, so autograd
//! differentiates them; at the kinks (exactly 0, 6 or ±3) candle's min/max give half of
//! each side's gradient, where PyTorch gives 0.

use candle_core::{Result, Tensor};

/// `min(max(x, 0), 6)`.
///
/// # Shapes
/// Any shape -> the same shape.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.clamp(0f64, 6f64)
}

/// `relu6(x + 3) / 6`: 0 below -3, 1 above 3, linear between.
///
/// # Shapes
/// Any shape -> the same shape.
pub fn hard_sigmoid(x: &Tensor) -> Result<Tensor> {
    (x + 3.0)?.clamp(0f64, 6f64)? / 6.0
}

/// `x * hard_sigmoid(x)` (MobileNetV3's h-swish).
///
/// # Shapes
/// Any shape -> the same shape.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    x * hard_sigmoid(x)?
}
