//! Tensor operations candle lacks or does slowly: depthwise convolution and padded,
//! overlapping pooling.
//!
//! Every op takes and returns NCHW candle tensors. Padding is explicit (top, bottom, left,
//! right) so TensorFlow's asymmetric "same" padding is expressible.
//!
//! # Which path runs where
//!
//! | op | CPU, `f32`/`f64` | CPU, `f16`/`bf16` | CUDA / Metal, other dtypes |
//! |---|---|---|---|
//! | [`depthwise_conv2d`] | fast custom op ([`depthwise`]) | converted to `f32`, fast op, converted back | [`composite`] (candle grouped conv) |
//! | [`max_pool2d`] | fast custom op ([`pool`]) | converted to `f32`, fast op | [`composite`] (no backward when kernel != stride) |
//! | [`avg_pool2d`] | fast custom op ([`pool`]) | converted to `f32`, fast op | [`composite`] |
//! | [`batch_norm_train`], [`batch_norm_eval`], [`channel_affine`] | fast custom op ([`batch_norm`]) | converted to `f32`, fast op | [`composite`] |
//! | [`conv2d_mm_grad`] | candle's conv2d forward, matrix-multiply weight gradient | | CPU only |
//! | [`pointwise_conv2d`], [`conv2d_im2col`] | candle matrix multiplies everywhere (forward and both gradients) | | |
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

pub mod batch_norm;
pub mod composite;
mod cpu;
pub mod depthwise;
pub mod pool;

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
/// On CPU this is the fast custom op of [`depthwise`] (forward and backward); elsewhere the
/// [`composite`] reference, which needs equal vertical and horizontal stride and dilation.
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
        Path::Composite => composite::depthwise_conv2d(x, weight, win),
    }
}

/// Max pooling over `-inf` padding; any window, stride (overlapping windows included) and
/// dilation.
///
/// On CPU this is the fast custom op of [`pool`], with a backward for every window; elsewhere
/// the [`composite`] reference (no dilation; candle has no backward when kernel != stride).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn max_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x]) {
        Path::Native => pool::max_pool2d_cpu(x, win),
        Path::ViaF32 => pool::max_pool2d_cpu(&x.to_dtype(DType::F32)?, win)?.to_dtype(x.dtype()),
        Path::Composite => composite::max_pool2d(x, win),
    }
}

/// Average pooling that leaves the padding out of each window's count (Keras semantics).
///
/// On CPU this is the fast custom op of [`pool`] (forward and backward); elsewhere the
/// [`composite`] reference (no dilation).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, with `(OH, OW) = win.output_size(H, W)`.
pub fn avg_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    match path(&[x]) {
        Path::Native => pool::avg_pool2d_cpu(x, win),
        Path::ViaF32 => pool::avg_pool2d_cpu(&x.to_dtype(DType::F32)?, win)?.to_dtype(x.dtype()),
        Path::Composite => composite::avg_pool2d(x, win),
    }
}

/// Training-mode batch normalisation over every dim but 1 (batch statistics, biased
/// variance), then ReLU when `relu`, with backward for `x`, `gamma` and `beta`; also returns
/// the batch mean and biased variance (without gradient) for running averages.
///
/// On CPU this is the fused custom op of [`batch_norm`] (two passes forward, two backward);
/// elsewhere the [`composite`] reference.
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
            let r = batch_norm::batch_norm_train_cpu(&f(x)?, &f(gamma)?, &f(beta)?, eps, relu)?;
            Ok(BatchNormTrain {
                y: r.y.to_dtype(x.dtype())?,
                mean: r.mean.to_dtype(x.dtype())?,
                var: r.var.to_dtype(x.dtype())?,
            })
        }
        Path::Composite => composite::batch_norm_train(x, gamma, beta, eps, relu),
    }
}

/// Eval-mode batch normalisation from given statistics (no gradient to `mean` and `std`):
/// `y = (x - mean[c]) / std[c] * gamma[c] + beta[c]`, then ReLU when `relu`, in that order
/// (candle_nn's, so the result matches `candle_nn::BatchNorm` in eval mode to rounding), with
/// backward for `x`, `gamma` and `beta`. `std` is `sqrt(running_var + eps)`.
///
/// On CPU one pass of the custom op of [`batch_norm`]; elsewhere the [`composite`] reference.
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
/// On CPU one pass of the custom op of [`batch_norm`]; elsewhere the [`composite`] reference.
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

/// 1x1 convolution with stride `stride` and no padding as a batched matrix multiply
/// `weight [O, C] x x [N, C, OH*OW]` (the input subsampled first when strided), so the
/// forward and both gradients (input: `weight^T x dy`, weight: `sum_n dy x^T`) are matrix
/// multiplies. Candle ops only: runs on every device.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, ceil(H / sh), ceil(W / sw)]`.
pub fn pointwise_conv2d(x: &Tensor, weight: &Tensor, stride: (usize, usize)) -> Result<Tensor> {
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

/// Dense 2-d convolution (stride 1, no dilation, no padding: pad first) as an explicit
/// im2col from `kh * kw` shifted views of `x` followed by a batched matrix multiply, so the
/// backward is matrix multiplies too and no input gradient is computed when `x` does not
/// need one (candle's own conv2d backward always runs a direct `conv_transpose2d` for the
/// input and an im2col with the whole output as kernel for the weight). Candle ops only: runs
/// on every device. The columns, `[N, OH * OW, C * kh * kw]`, stay alive for the backward.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, kh, kw]` -> `[N, O, H - kh + 1, W - kw + 1]`.
pub fn conv2d_im2col(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (o, ci, kh, kw) = weight.dims4()?;
    if ci != c || kh == 0 || kw == 0 || kh > h || kw > w {
        candle_core::bail!(
            "conv2d_im2col: weight {:?} does not fit input {:?}",
            weight.dims(),
            x.dims()
        );
    }
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    let k = c * kh * kw;
    // Columns `[N, OH * OW, C * kh * kw]` and the multiply `cols x weight^T`, laid out as in
    // candle's own im2col convolution.
    let cols = im2col_cols(x, kh, kw)?;
    let wt = weight
        .reshape((1, o, k))?
        .transpose(1, 2)?
        .broadcast_as((n, k, o))?;
    cols.matmul(&wt)?
        .reshape((n, oh, ow, o))?
        .permute((0, 3, 1, 2))
}

/// `[N, OH * OW, C * kh * kw]` columns of a stride-1 window (candle's im2col layout).
fn im2col_cols(x: &Tensor, kh: usize, kw: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h + 1 - kh, w + 1 - kw);
    let xt = x.permute((0, 2, 3, 1))?;
    let mut taps = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        let rows = xt.narrow(1, ky, oh)?;
        for kx in 0..kw {
            taps.push(rows.narrow(2, kx, ow)?);
        }
    }
    Tensor::stack(&taps, 4)?.reshape((n, oh * ow, c * kh * kw))
}

/// Dense 2-d convolution (stride 1, no dilation, no padding: pad first) on the CPU in `f32`
/// or `f64` whose
/// forward is candle's own `conv2d` (same values to the bit) and whose backward computes the
/// weight gradient as one batched matrix multiply over im2col columns and the input gradient
/// (candle's `conv_transpose2d`) only when `x` needs one: candle's conv2d backward always
/// computes the input gradient and gets the weight gradient from a convolution with the
/// whole output as its kernel. Costs one copy of the output.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, kh, kw]` -> `[N, O, H - kh + 1, W - kw + 1]`.
pub fn conv2d_mm_grad(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let y0 = x
        .detach()
        .conv2d(&weight.detach(), 0, 1, 1, 1)?
        .contiguous()?;
    x.apply_op3(weight, &y0, ConvMmGrad)
}

/// Identity on the precomputed output, with the convolution's backward.
struct ConvMmGrad;

impl candle_core::CustomOp3 for ConvMmGrad {
    fn name(&self) -> &'static str {
        "convnet-conv2d-mm-grad"
    }

    fn cpu_fwd(
        &self,
        _s1: &candle_core::CpuStorage,
        _l1: &candle_core::Layout,
        _s2: &candle_core::CpuStorage,
        _l2: &candle_core::Layout,
        s3: &candle_core::CpuStorage,
        l3: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let y = match s3 {
            S::F32(_) => S::F32(cpu::contiguous::<f32>(s3, l3)?.to_vec()),
            S::F64(_) => S::F64(cpu::contiguous::<f64>(s3, l3)?.to_vec()),
            _ => candle_core::bail!("conv2d_mm_grad: f32 or f64 only"),
        };
        Ok((y, l3.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y0: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, _, _, _) = x.dims4()?;
        let (o, c, kh, kw) = weight.dims4()?;
        let gy = gy.contiguous()?;
        let dx = if x.track_op() {
            Some(gy.conv_transpose2d(weight, 0, 0, 1, 1)?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            let cols = im2col_cols(&x.detach(), kh, kw)?;
            let l = cols.dim(1)?;
            let dw = gy.reshape((n, o, l))?.matmul(&cols)?.sum(0)?;
            Some(dw.reshape((o, c, kh, kw))?)
        } else {
            None
        };
        Ok((dx, dw, None))
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
