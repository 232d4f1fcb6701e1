//! Tensor operations candle lacks or does slowly: depthwise convolution, padded,
//! overlapping pooling (with PyTorch's and Keras' counts for averages), and channel slices
//! and shuffles.
//!
//! Every op takes and returns NCHW candle tensors. Padding is explicit (top, bottom, left,
//! right) so TensorFlow's asymmetric "same" padding is expressible.
//!
//! # Which path runs where
//!
//! | op | CPU, `f32`/`f64` | CPU, `f16`/`bf16` | CUDA / Metal, other dtypes |
//! |---|---|---|---|
//! | [`depthwise_conv2d`] | fast custom op (`depthwise.rs`) | converted to `f32`, fast op, converted back | one candle op per window tap (`taps.rs`) |
//! | [`max_pool2d`] | fast custom op (`pool.rs`) | converted to `f32`, fast op | `taps.rs` |
//! | [`avg_pool2d`], [`avg_pool2d_counted`] | fast custom op (`pool.rs`) | converted to `f32`, fast op | `taps.rs` |
//! | [`batch_norm_train`], [`batch_norm_eval`], [`channel_affine`] | fast custom op (`batch_norm.rs`) | converted to `f32`, fast op | candle ops (`composite.rs`) |
//! | [`batch_norm_depthwise_train`] | fused custom op (`norm_depthwise.rs`) | converted to `f32`, fused op | [`batch_norm_train`] then [`depthwise_conv2d`] |
//! | [`pointwise_max_pool2d`] | fused custom op (`pointwise_pool.rs`) | converted to `f32`, fused op | [`pointwise_conv2d`] then [`max_pool2d`] |
//! | [`conv2d`] | fast custom op (`dense.rs`) | converted to `f32`, fast op | candle `conv2d` (`composite.rs`) |
//! | [`pointwise_conv2d`] | fast custom op (`pointwise.rs`) | converted to `f32`, fast op | candle matmuls (`composite.rs`) |
//! | [`channel_slice`], [`channel_shuffle`] | one-pass custom op (`channels.rs`) | candle `narrow` / `index_select` | candle `narrow` / `index_select` |
//! | [`pad2d_with`] | candle ops everywhere | | |
//!
//! The fast ops have CPU forward and backward kernels (parallel over batch x channel planes
//! with rayon); their backward ops are themselves custom ops without a backward, so second
//! derivatives are not available through them. Non-contiguous inputs are made contiguous.
//! Inner loops are compiled for the baseline target and for AVX2+FMA, chosen at run time.
//!
//! # Allocation
//!
//! The kernels zero their outputs plane by plane inside the parallel tasks and ask Linux for
//! transparent huge pages on large outputs. Fresh `mmap`ed buffers still dominate a candle
//! training step with glibc malloc (it maps every buffer over 32 MiB anew); the
//! `bench_kernels` example measures glibc, glibc with `GLIBC_TUNABLES` and mimalloc, and
//! mimalloc as the global allocator removes nearly all of those page faults.
//!
//! # Public surface
//!
//! The dispatching ops above, [`pad2d_with`], [`BatchNormTrain`] (what [`batch_norm_train`]
//! returns) and the geometry types [`Pad2d`] and [`Window2d`] are the whole public API; the
//! kernels behind them (the CPU custom ops, the per-tap and candle-op references) are private
//! to the crate and tested there, so they can change without breaking users:
//!
//! ```compile_fail,E0603
//! use convnet_runtime::ops::taps;
//! ```
//!
//! ```compile_fail,E0603
//! use convnet_runtime::ops::pool::max_pool2d_cpu;
//! ```
//!
//! ```compile_fail,E0603
//! use convnet_runtime::ops::depthwise::depthwise_conv2d_cpu;
//! ```
//!
//! ```compile_fail,E0603
//! use convnet_runtime::ops::composite::batch_norm_train;
//! ```
//!
//! ```compile_fail,E0603
//! use convnet_runtime::ops::channels::gather_channels_cpu;
//! ```
//!
//! ```
//! use convnet_runtime::ops::{
//!     avg_pool2d, avg_pool2d_counted, channel_shuffle, channel_slice, depthwise_conv2d, max_pool2d,
//!     pad2d_with, Window2d,
//! };
//! ```

mod batch_norm;
mod channels;
mod composite;
pub(crate) mod cpu;
mod dense;
mod depthwise;
mod gemm;
mod norm_depthwise;
mod pointwise;
mod pointwise_pool;
mod pool;
mod taps;
#[cfg(test)]
mod tests;

use candle_core::{DType, Result, Tensor};

pub use batch_norm::BatchNormTrain;
pub use composite::pad2d_with;

/// How an op runs its arguments: natively, through `f32`, or on the composite path.
enum Path {
    Native,
    ViaF32,
    Composite,
}

fn path(ts: &[&Tensor]) -> Path {
    let dt = ts[0].dtype();
    if ts.iter().any(|t| !t.device().is_cpu() || t.dtype() != dt) {
        return Path::Composite;
    }
    match dt {
        DType::F32 | DType::F64 => Path::Native,
        DType::F16 | DType::BF16 => Path::ViaF32,
        _ => Path::Composite,
    }
}

/// Depthwise 2-d convolution: output channel `c * multiplier + j` convolves input channel
/// `c` with `weight[c * multiplier + j, 0]` (candle/PyTorch grouped convolution with
/// `groups = C`), over zero padding `win.pad`, with `win.stride` and `win.dilation`.
///
/// On CPU this is a fast custom op (forward and backward); elsewhere one candle op per window
/// tap.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[C * multiplier, 1, kh, kw]` -> `[N, C * multiplier, OH,
/// OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn depthwise_conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x, weight]) {
        Path::Native => depthwise::depthwise_conv2d_cpu(x, weight, win),
        Path::ViaF32 => depthwise::depthwise_conv2d_cpu(
            &x.to_dtype(DType::F32)?,
            &weight.to_dtype(DType::F32)?,
            win,
        )?
        .to_dtype(x.dtype()),
        Path::Composite => taps::depthwise_conv2d(x, weight, win),
    }
}

/// Max pooling over `-inf` padding; any window, stride (overlapping windows included) and
/// dilation.
///
/// On CPU this is a fast custom op; elsewhere one candle op per window tap. Both have a
/// backward for every window.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn max_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x]) {
        Path::Native => pool::max_pool2d_cpu(x, win),
        Path::ViaF32 => pool::max_pool2d_cpu(&x.to_dtype(DType::F32)?, win)?.to_dtype(x.dtype()),
        Path::Composite => taps::max_pool2d(x, win),
    }
}

/// Average pooling that leaves the padding out of each window's count (Keras semantics,
/// PyTorch's `count_include_pad = False`): [`avg_pool2d_counted`] with `Pad2d::ZERO`.
///
/// On CPU this is a fast custom op (forward and backward); elsewhere one candle op per window
/// tap.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn avg_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    avg_pool2d_counted(x, win, Pad2d::ZERO)
}

/// Average pooling that divides each window's sum by the number of its positions inside the
/// input extended by `counted` on each side (clamped to `win.pad`): `Pad2d::ZERO` leaves
/// the padding out (Keras), the declared padding counts it (PyTorch's default
/// `count_include_pad = True`). With PyTorch's `ceil_mode`, `win.pad` also holds the extra
/// rows and columns of the last windows, which PyTorch never counts: pass the declared
/// padding as `counted`, not `win.pad`.
///
/// On CPU this is a fast custom op (forward and backward); elsewhere one candle op per window
/// tap.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn avg_pool2d_counted(x: &Tensor, win: &Window2d, counted: Pad2d) -> Result<Tensor> {
    match path(&[x]) {
        Path::Native => pool::avg_pool2d_counted_cpu(x, win, counted),
        Path::ViaF32 => pool::avg_pool2d_counted_cpu(&x.to_dtype(DType::F32)?, win, counted)?
            .to_dtype(x.dtype()),
        Path::Composite => taps::avg_pool2d_counted(x, win, counted),
    }
}

/// Training-mode batch normalisation over every dim but 1 (batch statistics, biased
/// variance), then ReLU when `relu`, with backward for `x`, `gamma` and `beta`; also returns
/// the batch mean and biased variance (without gradient) for running averages.
///
/// On CPU this is the fused custom op of `batch_norm` (two passes forward, two backward);
/// elsewhere the `composite` reference.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `gamma`, `beta`: `[C]` -> `y`: `[N, C, ...]`, `mean`, `var`: `[C]`.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<BatchNormTrain> {
    match path(&[x, gamma, beta]) {
        Path::Native => batch_norm::batch_norm_train_cpu(x, gamma, beta, eps, relu),
        Path::ViaF32 => {
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            batch_norm::batch_norm_train_cpu(&f(x)?, &f(gamma)?, &f(beta)?, eps, relu)?
                .to_dtype(x.dtype())
        }
        Path::Composite => composite::batch_norm_train(x, gamma, beta, eps, relu),
    }
}

/// [`batch_norm_train`] (then ReLU when `relu`) with its output fed straight into
/// [`depthwise_conv2d`] with `weight` over `win`; `y` of the result is the convolution's
/// output, `mean` and `var` the batch statistics. The same values as the two ops in turn,
/// with backward for `x`, `gamma`, `beta` and `weight`.
///
/// On CPU one fused custom op that never stores the normalised tensor (each plane is
/// normalised into a per-thread buffer as the convolution reads it, and again in the
/// backward), so a training step holds one activation less; elsewhere the two ops in turn.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `gamma`, `beta`: `[C]`, `weight`: `[C * multiplier, 1, kh, kw]` ->
/// `y`: `[N, C * multiplier, OH, OW]`, `mean`, `var`: `[C]`.
pub fn batch_norm_depthwise_train(
    x: &Tensor,
    (gamma, beta, eps, relu): (&Tensor, &Tensor, f64, bool),
    weight: &Tensor,
    win: &Window2d,
) -> Result<BatchNormTrain> {
    match path(&[x, gamma, beta, weight]) {
        Path::Native => {
            norm_depthwise::batch_norm_depthwise_train_cpu(x, (gamma, beta, eps, relu), weight, win)
        }
        Path::ViaF32 => {
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            let norm = (&f(gamma)?, &f(beta)?, eps, relu);
            norm_depthwise::batch_norm_depthwise_train_cpu(&f(x)?, norm, &f(weight)?, win)?
                .to_dtype(x.dtype())
        }
        Path::Composite => {
            let r = composite::batch_norm_train(x, gamma, beta, eps, relu)?;
            Ok(BatchNormTrain {
                y: taps::depthwise_conv2d(&r.y, weight, win)?,
                ..r
            })
        }
    }
}

/// Eval-mode batch normalisation from given statistics (no gradient to `mean` and `std`):
/// `y = (x - mean[c]) / std[c] * gamma[c] + beta[c]`, then ReLU when `relu` (on CPU computed
/// as `x * scale + shift` with the per-channel factors folded first; the result matches
/// `candle_nn::BatchNorm` in eval mode to rounding), with backward for `x`, `gamma` and
/// `beta`. `std` is `sqrt(running_var + eps)`.
///
/// On CPU one pass of the custom op of `batch_norm`; elsewhere the `composite` reference.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `mean`, `std`, `gamma`, `beta`: `[C]` -> `[N, C, ...]`.
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    match path(&[x, gamma, beta]) {
        Path::Native => batch_norm::batch_norm_eval_cpu(x, mean, std, gamma, beta, relu),
        Path::ViaF32 => {
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            batch_norm::batch_norm_eval_cpu(&f(x)?, mean, std, &f(gamma)?, &f(beta)?, relu)?
                .to_dtype(x.dtype())
        }
        Path::Composite => composite::batch_norm_eval(x, mean, std, gamma, beta, relu),
    }
}

/// Per-channel affine map `x * scale[c] + shift[c]`, then ReLU when `relu` (eval-mode batch
/// norm with its statistics folded into `scale` and `shift`), with backward for all inputs.
///
/// On CPU one pass of the custom op of `batch_norm`; elsewhere the `composite` reference.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `scale`, `shift`: `[C]` -> `[N, C, ...]`.
pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor, relu: bool) -> Result<Tensor> {
    match path(&[x, scale, shift]) {
        Path::Native => batch_norm::channel_affine_cpu(x, scale, shift, relu),
        Path::ViaF32 => {
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            batch_norm::channel_affine_cpu(&f(x)?, &f(scale)?, &f(shift)?, relu)?
                .to_dtype(x.dtype())
        }
        Path::Composite => composite::channel_affine(x, scale, shift, relu),
    }
}

/// 1x1 convolution with stride `stride` and no padding (output pixel `(oy, ox)` reads input
/// pixel `(oy * sh, ox * sw)`), forward and both gradients as matrix multiplies.
///
/// On CPU in `f32`/`f64` this is the custom op of `pointwise` (one autograd node, per-image
/// multiplies in NCHW); elsewhere the `composite` batched matmul of candle ops.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, ceil(H / sh), ceil(W / sw)]`.
pub fn pointwise_conv2d(x: &Tensor, weight: &Tensor, stride: (usize, usize)) -> Result<Tensor> {
    match path(&[x, weight]) {
        Path::Native => pointwise::pointwise_conv2d_cpu(x, weight, stride),
        Path::ViaF32 => pointwise::pointwise_conv2d_cpu(
            &x.to_dtype(DType::F32)?,
            &weight.to_dtype(DType::F32)?,
            stride,
        )?
        .to_dtype(x.dtype()),
        Path::Composite => composite::pointwise_conv2d(x, weight, stride),
    }
}

/// [`max_pool2d`] over `win` of the stride-1 [`pointwise_conv2d`] of `x` with `weight`: the
/// same values as the two ops in turn, with backward for `x` and `weight`.
///
/// On CPU one fused custom op that pools the convolution's output as soon as it exists and
/// keeps only the winners for the backward, so a training step does not hold the
/// convolution's output; elsewhere the two ops in turn.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, OH, OW]`, with
/// `(OH, OW) = win.output_size(H, W)`.
pub fn pointwise_max_pool2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x, weight]) {
        Path::Native => pointwise_pool::pointwise_max_pool2d_cpu(x, weight, win),
        Path::ViaF32 => {
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            pointwise_pool::pointwise_max_pool2d_cpu(&f(x)?, &f(weight)?, win)?.to_dtype(x.dtype())
        }
        Path::Composite => taps::max_pool2d(&composite::pointwise_conv2d(x, weight, (1, 1))?, win),
    }
}

/// Dense (ungrouped) 2-d convolution without bias over zero padding `win.pad`, with
/// `win.stride` and `win.dilation`.
///
/// On CPU in `f32`/`f64` this is the custom op of `dense` (per-image im2col and matrix
/// multiplies both ways, no input gradient when the input needs none); elsewhere candle's
/// `conv2d` through `composite::conv2d`, which needs equal vertical and horizontal stride
/// and dilation.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, kh, kw]` -> `[N, O, OH, OW]`, with
/// `(OH, OW) = win.output_size(H, W)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x, weight]) {
        Path::Native => dense::conv2d_cpu(x, weight, win),
        Path::ViaF32 => {
            dense::conv2d_cpu(&x.to_dtype(DType::F32)?, &weight.to_dtype(DType::F32)?, win)?
                .to_dtype(x.dtype())
        }
        Path::Composite => composite::conv2d(x, weight, win),
    }
}

/// Channels `start..end` of `x` (PyTorch's `x[:, start:end]`; `x.chunk(2, dim=1)` is the
/// slices `0..C/2` and `C/2..C`), as a new tensor, with backward (the gradient of the
/// channels left out is zero).
///
/// On CPU in `f32`/`f64` one custom op that copies each output plane once (backward: one
/// pass writing the input gradient); elsewhere candle's `narrow`.
///
/// # Shapes
/// `x`: `[N, C, ...]` -> `[N, end - start, ...]`.
///
/// # Errors
/// When `start >= end` or `end > C`.
pub fn channel_slice(x: &Tensor, start: usize, end: usize) -> Result<Tensor> {
    let c = x.dim(1)?;
    if start >= end || end > c {
        candle_core::bail!("channel_slice: channels {start}..{end} of a {c}-channel input");
    }
    gather_channels(x, (start..end).collect())
}

/// ShuffleNet's channel shuffle with `groups` groups: PyTorch's
/// `x.view(N, g, C / g, H, W).transpose(1, 2).reshape(N, C, H, W)` (output channel `j` is
/// input channel `(j % g) * (C / g) + j / g`), with backward (the inverse permutation).
///
/// On CPU in `f32`/`f64` one custom op that copies each output plane once (backward: one
/// pass); elsewhere candle's `index_select`.
///
/// # Shapes
/// `x`: `[N, C, ...]` -> `[N, C, ...]`.
///
/// # Errors
/// When `groups` is 0 or does not divide `C`.
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Result<Tensor> {
    let c = x.dim(1)?;
    if groups == 0 || c % groups != 0 {
        candle_core::bail!("channel_shuffle: {groups} groups do not divide {c} channels");
    }
    gather_channels(x, channels::shuffle_sources(c, groups))
}

/// Output channel `j` of `x` is its channel `src[j]`: the custom op on the CPU in `f32`/`f64`,
/// candle ops elsewhere (a copy gains nothing from converting to `f32`).
fn gather_channels(x: &Tensor, src: Vec<usize>) -> Result<Tensor> {
    match path(&[x]) {
        Path::Native => channels::gather_channels_cpu(x, std::sync::Arc::new(src)),
        Path::ViaF32 | Path::Composite => channels::gather_channels_composite(x, &src),
    }
}

/// Explicit spatial padding of a 2-d op: rows added at the top and bottom, columns at the left
/// and right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Pad2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad2d {
    /// No padding.
    pub const ZERO: Pad2d = Pad2d {
        top: 0,
        bottom: 0,
        left: 0,
        right: 0,
    };

    /// The same padding on every side.
    pub const fn uniform(p: usize) -> Self {
        Pad2d {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// `ph` rows above and below, `pw` columns left and right.
    pub const fn symmetric(ph: usize, pw: usize) -> Self {
        Pad2d {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }

    /// True when no side is padded.
    pub const fn is_zero(&self) -> bool {
        self.top == 0 && self.bottom == 0 && self.left == 0 && self.right == 0
    }

    /// `Some(p)` when all four sides are padded by the same `p`.
    pub const fn as_uniform(&self) -> Option<usize> {
        if self.top == self.bottom && self.top == self.left && self.top == self.right {
            Some(self.top)
        } else {
            None
        }
    }
}

/// Window geometry of a 2-d sliding-window op (convolution or pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Window height and width.
    pub kernel: (usize, usize),
    /// Step between windows, vertical and horizontal.
    pub stride: (usize, usize),
    /// Spacing between window taps (1 = dense).
    pub dilation: (usize, usize),
    /// Explicit padding.
    pub pad: Pad2d,
}

impl Window2d {
    /// A dense window of `kernel` with `stride` and `pad`.
    pub const fn new(kernel: (usize, usize), stride: (usize, usize), pad: Pad2d) -> Self {
        Window2d {
            kernel,
            stride,
            dilation: (1, 1),
            pad,
        }
    }

    /// Output height and width for an input of `h` x `w`, or `None` when the (dilated)
    /// window does not fit the padded input.
    pub const fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let eh = self.dilation.0 * (self.kernel.0 - 1) + 1;
        let ew = self.dilation.1 * (self.kernel.1 - 1) + 1;
        let ph = h + self.pad.top + self.pad.bottom;
        let pw = w + self.pad.left + self.pad.right;
        if eh > ph || ew > pw || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some(((ph - eh) / self.stride.0 + 1, (pw - ew) / self.stride.1 + 1))
    }
}
