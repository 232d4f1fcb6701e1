//! Layers that only move or cut elements: reshape and spatial cropping.

use crate::error::Error;
use crate::ops::Pad2d;
use candle_core::{Result, Tensor};

/// Reshapes each example to `dims`, keeping the batch dim (Keras `Reshape`).
///
/// # Shapes
/// `[N, ...]` -> `[N, dims...]`; the element counts per example must agree.
pub fn reshape(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let n = x.dim(0)?;
    let per: usize = x.dims()[1..].iter().product();
    if per != dims.iter().product::<usize>() {
        return Err(Error::invalid(
            "reshape",
            format!("cannot reshape {:?} to [N, {dims:?}]", x.dims()),
        )
        .into());
    }
    let mut shape = Vec::with_capacity(dims.len() + 1);
    shape.push(n);
    shape.extend_from_slice(dims);
    x.reshape(shape)
}

/// Removes `crop.top` rows above, `crop.bottom` below, `crop.left` columns on the left and
/// `crop.right` on the right (Keras `Cropping2D`). Autograd pads the gradient back with zeros.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H - top - bottom, W - left - right]`.
pub fn crop2d(x: &Tensor, crop: Pad2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let Pad2d {
        top,
        bottom,
        left,
        right,
    } = crop;
    if top + bottom >= h || left + right >= w {
        return Err(Error::invalid(
            "crop2d",
            format!("cropping {crop:?} leaves nothing of a {h}x{w} input"),
        )
        .into());
    }
    x.narrow(2, top, h - top - bottom)?
        .narrow(3, left, w - left - right)
}

/// Crops the central `size.0 x size.1` window (Keras `CenterCrop`): when the excess is odd,
/// the extra row/column is removed at the bottom/right (`top = (H - h) / 2`).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, h, w]`, with `h <= H`, `w <= W`.
pub fn center_crop(x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if size.0 == 0 || size.1 == 0 || size.0 > h || size.1 > w {
        return Err(Error::invalid(
            "center_crop",
            format!("cannot crop {size:?} out of a {h}x{w} input"),
        )
        .into());
    }
    let (top, left) = ((h - size.0) / 2, (w - size.1) / 2);
    x.narrow(2, top, size.0)?.narrow(3, left, size.1)
}
