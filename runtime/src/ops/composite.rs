//! Reference implementations built from stock candle ops: correct on every device and dtype,
//! slow. They are the fallback off the CPU (the window ops there go through [`super::taps`])
//! and the reference the fast kernels are tested against; the window ops through candle's
//! grouped convolution and pooling exist for those tests only.

use super::{Pad2d, Window2d};
use candle_core::{Result, Tensor};

/// Pads the two trailing (spatial) dims of an NCHW tensor with `value`.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H + top + bottom, W + left + right]`.
pub fn pad2d_with(x: &Tensor, pad: Pad2d, value: f64) -> Result<Tensor> {
    if pad.is_zero() {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return x
            .pad_with_zeros(2, pad.top, pad.bottom)?
            .pad_with_zeros(3, pad.left, pad.right);
    }
    let (n, c, h, w) = x.dims4()?;
    let (device, dtype) = (x.device().clone(), x.dtype());
    let mut rows = Vec::with_capacity(3);
    if pad.top > 0 {
        rows.push(Tensor::full(value, (n, c, pad.top, w), &device)?.to_dtype(dtype)?);
    }
    rows.push(x.clone());
    if pad.bottom > 0 {
        rows.push(Tensor::full(value, (n, c, pad.bottom, w), &device)?.to_dtype(dtype)?);
    }
    let x = Tensor::cat(&rows, 2)?;
    let hp = h + pad.top + pad.bottom;
    let mut cols = Vec::with_capacity(3);
    if pad.left > 0 {
        cols.push(Tensor::full(value, (n, c, hp, pad.left), &device)?.to_dtype(dtype)?);
    }
    cols.push(x);
    if pad.right > 0 {
        cols.push(Tensor::full(value, (n, c, hp, pad.right), &device)?.to_dtype(dtype)?);
    }
    Tensor::cat(&cols, 3)
}

/// Depthwise convolution through candle's grouped convolution.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[C * multiplier, 1, kh, kw]` -> `[N, C * multiplier, OH, OW]`.
#[cfg(test)]
pub(crate) fn depthwise_conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    let c = x.dim(1)?;
    if win.stride.0 != win.stride.1 || win.dilation.0 != win.dilation.1 {
        candle_core::bail!(
            "depthwise_conv2d: candle needs equal vertical and horizontal stride and dilation"
        );
    }
    let (x, p) = match win.pad.as_uniform() {
        Some(p) => (x.clone(), p),
        None => (pad2d_with(x, win.pad, 0.0)?, 0),
    };
    x.conv2d(weight, p, win.stride.0, win.dilation.0, c)
}

/// Max pooling over `-inf` padding; any window and stride (overlapping windows included).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
#[cfg(test)]
pub(crate) fn max_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    no_dilation(win)?;
    let x = pad2d_with(x, win.pad, f64::NEG_INFINITY)?;
    x.max_pool2d_with_stride(win.kernel, win.stride)
}

/// Average pooling that leaves the padding out of each window's count (Keras semantics).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
#[cfg(test)]
pub(crate) fn avg_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    no_dilation(win)?;
    let (n, c, h, w) = x.dims4()?;
    let sum = (pad2d_with(x, win.pad, 0.0)?.avg_pool2d_with_stride(win.kernel, win.stride)?
        * (win.kernel.0 * win.kernel.1) as f64)?;
    if win.pad.is_zero() {
        return sum / (win.kernel.0 * win.kernel.1) as f64;
    }
    let ones = Tensor::ones((1, 1, h, w), x.dtype(), x.device())?;
    let count = (pad2d_with(&ones, win.pad, 0.0)?
        .avg_pool2d_with_stride(win.kernel, win.stride)?
        * (win.kernel.0 * win.kernel.1) as f64)?;
    let _ = (n, c);
    sum.broadcast_div(&count)
}

#[cfg(test)]
fn no_dilation(win: &Window2d) -> Result<()> {
    if win.dilation != (1, 1) {
        candle_core::bail!(
            "composite pooling does not support dilation {:?}",
            win.dilation
        );
    }
    Ok(())
}

/// Reference of [`super::batch_norm_train`] from candle ops.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `gamma`, `beta`: `[C]` -> `y`: `[N, C, ...]`, `mean`, `var`: `[C]`.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<super::BatchNormTrain> {
    let c = x.dim(1)?;
    let mut bshape = vec![1usize; x.rank()];
    bshape[1] = c;
    let reduce: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    let mean = x.mean_keepdim(reduce.as_slice())?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(reduce.as_slice())?;
    let y = xc
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape(bshape.as_slice())?)?
        .broadcast_add(&beta.reshape(bshape.as_slice())?)?;
    let y = if relu { y.relu()? } else { y };
    Ok(super::BatchNormTrain {
        y,
        mean: mean.flatten_all()?.detach(),
        var: var.flatten_all()?.detach(),
    })
}

/// Reference of [`super::channel_affine`] from candle ops.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `scale`, `shift`: `[C]` -> `[N, C, ...]`.
pub(crate) fn channel_affine(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let mut bshape = vec![1usize; x.rank()];
    bshape[1] = x.dim(1)?;
    let y = x
        .broadcast_mul(&scale.reshape(bshape.as_slice())?)?
        .broadcast_add(&shift.reshape(bshape.as_slice())?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// Reference of [`super::batch_norm_eval`] from candle ops (`mean` and `std` detached).
///
/// # Shapes
/// `x`: `[N, C, ...]`, `mean`, `std`, `gamma`, `beta`: `[C]` -> `[N, C, ...]`.
pub(crate) fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let mut bshape = vec![1usize; x.rank()];
    bshape[1] = x.dim(1)?;
    let r = |t: &Tensor| t.reshape(bshape.as_slice());
    let y = x
        .broadcast_sub(&r(&mean.detach())?)?
        .broadcast_div(&r(&std.detach())?)?
        .broadcast_mul(&r(gamma)?)?
        .broadcast_add(&r(beta)?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// 1x1 convolution with stride `stride` and no padding as a batched matrix multiply
/// `weight [O, C] x x [N, C, OH*OW]` (the input subsampled first when strided), so the
/// forward and both gradients (input: `weight^T x dy`, weight: `sum_n dy x^T`) are matrix
/// multiplies of candle ops.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, ceil(H / sh), ceil(W / sw)]`.
pub(crate) fn pointwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: (usize, usize),
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (o, ci, kh, kw) = weight.dims4()?;
    if ci != c || kh != 1 || kw != 1 || stride.0 == 0 || stride.1 == 0 {
        candle_core::bail!(
            "pointwise_conv2d: weight {:?} / stride {stride:?} do not fit input {:?}",
            weight.dims(),
            x.dims()
        );
    }
    let (sh, sw) = stride;
    let (oh, ow) = (h.div_ceil(sh), w.div_ceil(sw));
    let x = if sh == 1 && sw == 1 {
        x.clone()
    } else {
        x.pad_with_zeros(2, 0, oh * sh - h)?
            .pad_with_zeros(3, 0, ow * sw - w)?
            .reshape((n, c, oh, sh, ow, sw))?
            .narrow(3, 0, 1)?
            .narrow(5, 0, 1)?
    };
    let x = x.reshape((n, c, oh * ow))?;
    let wt = weight.reshape((1, o, c))?.broadcast_as((n, o, c))?;
    wt.matmul(&x)?.reshape((n, o, oh, ow))
}

/// Dense 2-d convolution through candle's `conv2d` (the input padded first when the padding
/// is not the same on every side).
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, kh, kw]` -> `[N, O, OH, OW]`, with
/// `(OH, OW) = win.output_size(H, W)`.
///
/// # Errors
/// When the stride or dilation differ between the two axes (candle takes one of each).
pub(crate) fn conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    if win.stride.0 != win.stride.1 || win.dilation.0 != win.dilation.1 {
        candle_core::bail!("conv2d: candle needs equal strides and dilations, got {win:?}");
    }
    let (x, p) = match win.pad.as_uniform() {
        Some(p) => (x.clone(), p),
        None => (pad2d_with(x, win.pad, 0.0)?, 0),
    };
    x.conv2d(weight, p, win.stride.0, win.dilation.0, 1)
}
