//! Window ops as one candle op per window tap: the path for CUDA, Metal and dtypes the CPU
//! kernels do not take.
//!
//! A `kh x kw` window op reads, for tap `(ky, kx)`, the input rows `ky * dilation.0 + i *
//! stride.0` and columns `kx * dilation.1 + j * stride.1` of the padded input for every output
//! position `(i, j)`: one strided view per tap (`narrow` at stride 1, `index_select`
//! otherwise). Depthwise convolution sums the taps scaled by their per-channel weight, max
//! pooling takes their elementwise maximum, average pooling their sum over the window's
//! count. Autograd then runs through candle's own ops, so every window, stride, dilation and
//! padding has a backward on every device, with a number of graph nodes that grows with the
//! window area, not with the channel count (candle's grouped convolution runs one
//! convolution per channel; its pooling backward needs `kernel == stride`).
//!
//! Max pooling's gradient goes to the maximum of each window; where several taps tie, candle's
//! `maximum` splits it between them (the CPU op gives it all to the first).

use super::composite::pad2d_with;
use super::{Pad2d, Window2d};
use candle_core::{Result, Tensor};

/// The `count` elements `start, start + step, ...` of dimension `dim`.
fn strided(t: &Tensor, dim: usize, start: usize, step: usize, count: usize) -> Result<Tensor> {
    if step == 1 {
        return t.narrow(dim, start, count);
    }
    let index: Vec<u32> = (0..count).map(|i| (start + i * step) as u32).collect();
    // candle's CPU index_select reads contiguous sources only.
    t.contiguous()?
        .index_select(&Tensor::new(index, t.device())?, dim)
}

/// Pads `x` with `pad_value`, then folds `f(acc, tap, (ky, kx))` over the window's taps in
/// row-major order (`acc` is `None` for the first), each tap `[N, C, OH, OW]`.
fn fold_taps(
    x: &Tensor,
    win: &Window2d,
    pad_value: f64,
    mut f: impl FnMut(Option<Tensor>, Tensor, (usize, usize)) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let Some((oh, ow)) = win.output_size(h, w) else {
        candle_core::bail!("window {win:?} does not fit a {h}x{w} input");
    };
    let xp = pad2d_with(x, win.pad, pad_value)?;
    let mut acc = None;
    for ky in 0..win.kernel.0 {
        let rows = strided(&xp, 2, ky * win.dilation.0, win.stride.0, oh)?;
        // Strided columns are gathered from a contiguous source: copy these rows once,
        // not once per column tap.
        let rows = if win.stride.1 == 1 {
            rows
        } else {
            rows.contiguous()?
        };
        for kx in 0..win.kernel.1 {
            let tap = strided(&rows, 3, kx * win.dilation.1, win.stride.1, ow)?;
            acc = Some(f(acc, tap, (ky, kx))?);
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg(format!("empty window {win:?}")))
}

/// Depthwise 2-d convolution (output channel `c * multiplier + j` reads input channel `c`),
/// any stride, dilation and padding.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[C * multiplier, 1, kh, kw]` -> `[N, C * multiplier, OH,
/// OW]`.
pub(crate) fn depthwise_conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    let c = x.dim(1)?;
    let (co, _, kh, kw) = weight.dims4()?;
    if co % c != 0 || (kh, kw) != win.kernel {
        candle_core::bail!(
            "depthwise_conv2d: weight {:?} does not fit {c} channels and window {:?}",
            weight.dims(),
            win.kernel
        );
    }
    let x = if co == c {
        x.clone()
    } else {
        let m = co / c;
        let source: Vec<u32> = (0..co).map(|o| (o / m) as u32).collect();
        x.index_select(&Tensor::new(source, x.device())?, 1)?
    };
    fold_taps(&x, win, 0.0, |acc, tap, (ky, kx)| {
        let w = weight
            .narrow(2, ky, 1)?
            .narrow(3, kx, 1)?
            .reshape((1, co, 1, 1))?;
        let term = tap.broadcast_mul(&w)?;
        match acc {
            None => Ok(term),
            Some(acc) => acc + term,
        }
    })
}

/// Max pooling over `-inf` padding; any window, stride and dilation.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
pub(crate) fn max_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    fold_taps(x, win, f64::NEG_INFINITY, |acc, tap, _| match acc {
        None => Ok(tap),
        Some(acc) => acc.maximum(&tap),
    })
}

/// Average pooling that leaves the padding out of each window's count (Keras semantics);
/// any window, stride and dilation.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
#[cfg(test)]
pub(crate) fn avg_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    avg_pool2d_counted(x, win, Pad2d::ZERO)
}

/// Average pooling whose divisor counts the window's taps inside the input extended by
/// `counted` (at most `win.pad` on each side; `Pad2d::ZERO` is Keras' count); any window,
/// stride and dilation.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
pub(crate) fn avg_pool2d_counted(x: &Tensor, win: &Window2d, counted: Pad2d) -> Result<Tensor> {
    let counted = super::pool::clamp_counted(win, counted);
    let (_, _, h, w) = x.dims4()?;
    let sum = fold_taps(x, win, 0.0, |acc, tap, _| match acc {
        None => Ok(tap),
        Some(acc) => acc + tap,
    })?;
    // How many taps of each output position's window land inside the input: a product of
    // a row count and a column count (at least 1: a window entirely in padding averages to 0).
    let inside = |len: usize, out: usize, k: usize, s: usize, d: usize, before: usize| {
        (0..out)
            .map(|i| {
                (0..k)
                    .filter(|&t| (i * s + t * d).checked_sub(before).is_some_and(|p| p < len))
                    .count()
                    .max(1) as f64
            })
            .collect::<Vec<_>>()
    };
    let (oh, ow) = (sum.dim(2)?, sum.dim(3)?);
    let rows = inside(
        h + counted.top + counted.bottom,
        oh,
        win.kernel.0,
        win.stride.0,
        win.dilation.0,
        win.pad.top - counted.top,
    );
    let cols = inside(
        w + counted.left + counted.right,
        ow,
        win.kernel.1,
        win.stride.1,
        win.dilation.1,
        win.pad.left - counted.left,
    );
    let count: Vec<f64> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |c| r * c))
        .collect();
    let count = Tensor::from_vec(count, (1, 1, oh, ow), x.device())?.to_dtype(sum.dtype())?;
    sum.broadcast_div(&count)
}
