//! Batch normalisation (optionally fused with the following ReLU) as candle custom ops with
//! CPU kernels for `f32` and `f64`.
//!
//! Training mode ([`batch_norm_train_cpu`]): one reading pass computes the per-channel batch
//! mean and biased variance (sums shifted by the channel's first value, so no cancellation on
//! offset data; 16 lanes of the element type per plane, accumulated in `f64`); the mean and
//! `1 / sqrt(var + eps)` fold with `gamma` and `beta` into a per-channel scale and shift, and
//! a second pass writes `y = relu?(x * scale + shift)`, one FMA per value.
//! The backward is closed-form: one pass sums `g = dy * [x * scale + shift > 0]` (the ReLU
//! mask recomputed from `x` exactly as the forward computed it, so `y` is not read) and
//! `g * (x - mean)` per channel (the gradients of `beta` and `gamma`), one writes
//! `dx = gamma / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat))`.
//!
//! Eval mode ([`batch_norm_eval_cpu`]): one pass `y = relu?(x * scale + shift)` with the scale
//! and shift folded from the given statistics, with backward; [`channel_affine_cpu`]: one
//! pass `y = relu?(x * scale + shift)`.
//!
//! Every pass is compiled for the baseline target and for AVX2+FMA (picked at run time) and
//! runs in parallel over channels (statistics, sums) or over batch x channel planes (the
//! elementwise passes) with rayon. Results agree with `candle_nn::BatchNorm` to rounding (the
//! tests allow 1e-5), not to the bit.

use super::cpu::{contiguous, multiversion, with_real_slices, Real};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

/// Per-channel statistics of one training-mode forward: batch mean, biased variance and
/// `1 / sqrt(var + eps)`.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    inv_std: Vec<f64>,
    /// The folded `gamma * inv_std` and `beta - mean * gamma * inv_std` the forward applied
    /// (values of the element type).
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

impl Stats {
    /// The batch statistics of `x` and the scale and shift they fold into with `gamma` and
    /// `beta`.
    pub(super) fn of<T: Real>(
        x: &[T],
        gamma: &[T],
        beta: &[T],
        d: (usize, usize, usize),
        eps: f64,
    ) -> (Stats, Vec<T>, Vec<T>) {
        let mut s = stats(x, d, eps);
        let (a, b) = fold(&s.mean, &s.inv_std, gamma, beta);
        s.scale = a.iter().map(|v| v.to_f64()).collect();
        s.shift = b.iter().map(|v| v.to_f64()).collect();
        (s, a, b)
    }
}

/// Output of `batch_norm_train_cpu` (and of `ops::batch_norm_train`).
///
/// # Shapes
/// `y`: the input's, `[N, C, ...]`; `mean`, `var`: `[C]`.
#[derive(Debug, Clone)]
pub struct BatchNormTrain {
    /// The normalised (and, when asked, rectified) output.
    pub y: Tensor,
    /// Batch mean per channel (no gradient).
    pub mean: Tensor,
    /// Biased batch variance per channel (no gradient).
    pub var: Tensor,
}

impl BatchNormTrain {
    /// All three tensors converted to `dtype`.
    pub(crate) fn to_dtype(&self, dtype: candle_core::DType) -> Result<BatchNormTrain> {
        Ok(BatchNormTrain {
            y: self.y.to_dtype(dtype)?,
            mean: self.mean.to_dtype(dtype)?,
            var: self.var.to_dtype(dtype)?,
        })
    }
}

/// `(N, C, product of the rest)` of a `[N, C, ...]` input.
pub(super) fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        candle_core::bail!("batch_norm: input needs at least 2 dims, got {d:?}");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Training-mode batch normalisation over dims 0, 2, 3, ... on CPU, fused with a ReLU when
/// `relu`, with backward for `x`, `gamma` and `beta`. Also returns the batch statistics for
/// the caller to update running averages.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `gamma`, `beta`: `[C]` -> `y`: `[N, C, ...]`; `mean`, `var`: `[C]`.
///
/// # Errors
/// When a tensor is not on the CPU, not `f32`/`f64`, dtypes differ or shapes do not fit.
pub(crate) fn batch_norm_train_cpu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<BatchNormTrain> {
    let x = x.contiguous()?;
    let (gamma, beta) = (gamma.contiguous()?, beta.contiguous()?);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BnTrain {
        eps,
        relu,
        stats: stats.clone(),
    };
    let y = x.apply_op3(&gamma, &beta, op)?;
    train_result(y, &stats, &gamma)
}

/// `y` with the batch statistics a training forward left in `stats`, as tensors shaped and
/// typed like `gamma`.
pub(super) fn train_result(
    y: Tensor,
    stats: &Mutex<Stats>,
    gamma: &Tensor,
) -> Result<BatchNormTrain> {
    let s = stats.lock().expect("batch-norm stats").clone();
    let dev = gamma.device();
    let mean = Tensor::from_vec(s.mean, gamma.dims(), dev)?.to_dtype(gamma.dtype())?;
    let var = Tensor::from_vec(s.var, gamma.dims(), dev)?.to_dtype(gamma.dtype())?;
    Ok(BatchNormTrain { y, mean, var })
}

/// The backward of a training-mode batch norm from its input `x`, the gradient `gy` of its
/// output and the forward's `stats`: `dx` and the packed `[dgamma..., dbeta...]`.
///
/// # Shapes
/// `x`, `gy`: `[N, C, ...]` -> `dx`: `[N, C, ...]`, `[2C]`.
pub(super) fn train_backward(
    x: &Tensor,
    gy: &Tensor,
    relu: bool,
    stats: Stats,
) -> Result<(Tensor, Tensor)> {
    let c = stats.mean.len();
    let gy = gy.contiguous()?;
    // Packed result: dx, then dgamma, then dbeta.
    let packed = x.apply_op2_no_bwd(&gy, &BnTrainBwd { relu, stats })?;
    let numel = x.elem_count();
    let dx = packed.narrow(0, 0, numel)?.reshape(x.shape())?;
    Ok((dx, packed.narrow(0, numel, 2 * c)?))
}

/// `y = x * scale[c] + shift[c]`, then ReLU when `relu`, on CPU with backward for all three
/// inputs (eval-mode batch norm with folded statistics).
///
/// # Shapes
/// `x`: `[N, C, ...]`, `scale`, `shift`: `[C]` -> `[N, C, ...]`.
///
/// # Errors
/// As [`batch_norm_train_cpu`].
pub(crate) fn channel_affine_cpu(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.apply_op3(&scale.contiguous()?, &shift.contiguous()?, Affine { relu })
}

/// Eval-mode batch normalisation on CPU from given statistics (no gradient to them):
/// `y = relu?((x - mean[c]) / std[c] * gamma[c] + beta[c])`, computed as `x * scale + shift`
/// with the factors folded per channel, with backward for `x`, `gamma` and `beta`.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `mean`, `std`, `gamma`, `beta`: `[C]` -> `[N, C, ...]`.
///
/// # Errors
/// As [`batch_norm_train_cpu`].
pub(crate) fn batch_norm_eval_cpu(
    x: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let f = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_dtype(candle_core::DType::F64)?
            .flatten_all()?
            .to_vec1()
    };
    let op = BnEval {
        mean: f(mean)?,
        std: f(std)?,
        relu,
    };
    x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

fn check_params(c: usize, l2: &Layout, l3: &Layout) -> Result<()> {
    if l2.dims() != [c] || l3.dims() != [c] {
        candle_core::bail!(
            "batch_norm: parameters {:?}, {:?} do not fit {c} channels",
            l2.dims(),
            l3.dims()
        );
    }
    Ok(())
}

/// A new vector of `planes + extra` elements: `f(channel, plane index, plane)` fills each
/// `hw`-element plane of the first `planes` (in parallel, without zeroing them first: `f`
/// must write every element), the `extra` tail is zeroed.
fn par_new<T: WithDType + Send>(
    planes: usize,
    extra: usize,
    c: usize,
    hw: usize,
    f: impl Fn(usize, usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let total = planes + extra;
    let mut v: Vec<T> = Vec::with_capacity(total);
    let (body, rest) = v.spare_capacity_mut()[..total].split_at_mut(planes);
    if hw > 0 {
        body.par_chunks_mut(hw)
            .enumerate()
            .for_each(|(i, p)| f(i % c, i, p));
    }
    for e in rest {
        e.write(T::zero());
    }
    // SAFETY: every plane was written by `f` (its contract; `planes` is a multiple of `hw`,
    // or 0 when `hw` is 0) and the tail just above.
    unsafe { v.set_len(total) };
    v
}

// ---------------------------------------------------------------------------------------
// Plane kernels: 16 lanes of `T` per step (vectorised by the compiler), compiled for the
// baseline target and for AVX2+FMA.

const LANES: usize = 16;

/// `t = x * a + b` and whether the fused ReLU passes the gradient at `t` (`t > 0`).
#[inline(always)]
fn pre_activation<T: Real, const FMA: bool>(x: T, a: T, b: T) -> T {
    T::madd::<FMA>(x, a, b)
}

/// Adds `Σ (x - k)` and `Σ (x - k)²` over `x` to `out` (shifted sums: no cancellation when
/// `k` is near the mean).
#[inline(always)]
fn moments_impl<T: Real, const FMA: bool>(x: &[T], k: T, out: &mut [f64; 2]) {
    let (mut s1, mut s2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let d = c[l] - k;
            s1[l] += d;
            s2[l] = T::madd::<FMA>(d, d, s2[l]);
        }
    }
    for &v in chunks.remainder() {
        let d = v - k;
        s1[0] += d;
        s2[0] = T::madd::<FMA>(d, d, s2[0]);
    }
    out[0] += s1.iter().map(|v| v.to_f64()).sum::<f64>();
    out[1] += s2.iter().map(|v| v.to_f64()).sum::<f64>();
}

/// `relu?(x * a + b)`.
#[inline(always)]
fn affine_value<T: Real, const FMA: bool>(x: T, a: T, b: T, relu: bool) -> T {
    let t = pre_activation::<T, FMA>(x, a, b);
    if relu && t <= T::ZERO {
        T::ZERO
    } else {
        t
    }
}

/// `out = relu?(x * a + b)`.
#[inline(always)]
fn affine_impl<T: Real, const FMA: bool>(
    x: &[T],
    out: &mut [MaybeUninit<T>],
    a: T,
    b: T,
    relu: bool,
) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(affine_value::<T, FMA>(v, a, b, relu));
    }
}

/// [`affine_impl`] into initialised memory.
#[inline(always)]
fn affine_row_impl<T: Real, const FMA: bool>(x: &[T], out: &mut [T], a: T, b: T, relu: bool) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = affine_value::<T, FMA>(v, a, b, relu);
    }
}

/// Adds `Σ g` and `Σ g (x - m)` to `out`, where `g = dy` masked by the fused ReLU (recomputed
/// from `x * a + b` exactly as the forward computed it).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_sums_impl<T: Real, const FMA: bool>(
    x: &[T],
    dy: &[T],
    a: T,
    b: T,
    m: T,
    relu: bool,
    out: &mut [f64; 2],
) {
    let (mut s1, mut s2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let n = x.len().min(dy.len());
    let (x, dy) = (&x[..n], &dy[..n]);
    let mut xc = x.chunks_exact(LANES);
    let mut gc = dy.chunks_exact(LANES);
    let step = |l: usize, x: T, g: T, s1: &mut [T; LANES], s2: &mut [T; LANES]| {
        let g = if relu && pre_activation::<T, FMA>(x, a, b) <= T::ZERO {
            T::ZERO
        } else {
            g
        };
        s1[l] += g;
        s2[l] = T::madd::<FMA>(g, x - m, s2[l]);
    };
    for (xs, gs) in (&mut xc).zip(&mut gc) {
        for l in 0..LANES {
            step(l, xs[l], gs[l], &mut s1, &mut s2);
        }
    }
    for (&x, &g) in xc.remainder().iter().zip(gc.remainder()) {
        step(0, x, g, &mut s1, &mut s2);
    }
    out[0] += s1.iter().map(|v| v.to_f64()).sum::<f64>();
    out[1] += s2.iter().map(|v| v.to_f64()).sum::<f64>();
}

/// `dx = kg * g + kx * x + k0`, with `g = dy` masked as in [`grad_sums_impl`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_input_impl<T: Real, const FMA: bool>(
    x: &[T],
    dy: &[T],
    out: &mut [MaybeUninit<T>],
    (a, b, relu): (T, T, bool),
    (kg, kx, k0): (T, T, T),
) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(dy) {
        let g = if relu && pre_activation::<T, FMA>(x, a, b) <= T::ZERO {
            T::ZERO
        } else {
            g
        };
        o.write(T::madd::<FMA>(kg, g, T::madd::<FMA>(kx, x, k0)));
    }
}

multiversion!(fn moments<T>(x: &[T], k: T, out: &mut [f64; 2]) => moments_impl);
multiversion!(pub(super) fn affine_plane<T>(x: &[T], out: &mut [MaybeUninit<T>], a: T, b: T, relu: bool) => affine_impl);
multiversion!(pub(super) fn affine_row<T>(x: &[T], out: &mut [T], a: T, b: T, relu: bool) => affine_row_impl);
multiversion!(fn grad_sums<T>(x: &[T], dy: &[T], a: T, b: T, m: T, relu: bool, out: &mut [f64; 2]) => grad_sums_impl);
multiversion!(fn grad_input<T>(x: &[T], dy: &[T], out: &mut [MaybeUninit<T>], act: (T, T, bool), k: (T, T, T)) => grad_input_impl);

/// Per-channel sums `f(plane, acc)` over the `n` planes of each channel, in parallel over
/// channels.
fn per_channel<T: Real>(
    x: &[T],
    (n, c, hw): (usize, usize, usize),
    f: impl Fn(usize, usize, &mut [f64; 2]) + Sync,
) -> Vec<[f64; 2]> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = [0.0; 2];
            if hw > 0 && !x.is_empty() {
                for b in 0..n {
                    f(ch, (b * c + ch) * hw, &mut acc);
                }
            }
            acc
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Training forward.

/// Batch mean and biased variance per channel in one reading pass (sums shifted by the
/// channel's first value, accumulated in `f64` per plane), in parallel over channels.
fn stats<T: Real>(x: &[T], (n, c, hw): (usize, usize, usize), eps: f64) -> Stats {
    let m = (n * hw) as f64;
    let sums = per_channel(x, (n, c, hw), |ch, off, acc| {
        moments(&x[off..off + hw], x[ch * hw], acc)
    });
    let mut s = Stats::default();
    for (ch, [s1, s2]) in sums.into_iter().enumerate() {
        let (d, var) = if m > 0.0 {
            let d = s1 / m;
            (d, (s2 / m - d * d).max(0.0))
        } else {
            (0.0, 0.0)
        };
        let k = if m > 0.0 { x[ch * hw].to_f64() } else { 0.0 };
        s.mean.push(k + d);
        s.var.push(var);
        s.inv_std.push(1.0 / (var + eps).sqrt());
    }
    s
}

/// `y = relu?(x * a[c] + b[c])` plane by plane, in `T`.
fn affine<T: Real>(x: &[T], a: &[T], b: &[T], hw: usize, relu: bool) -> Vec<T> {
    let c = a.len();
    par_new(x.len(), 0, c, hw, |ch, i, out| {
        affine_plane(&x[i * hw..][..hw], out, a[ch], b[ch], relu)
    })
}

/// The per-channel scale and shift of `(x - mean) / std * gamma + beta`, in `T`.
fn fold<T: Real>(mean: &[f64], inv_std: &[f64], gamma: &[T], beta: &[T]) -> (Vec<T>, Vec<T>) {
    mean.iter()
        .zip(inv_std)
        .zip(gamma.iter().zip(beta))
        .map(|((&m, &is), (&g, &b))| {
            let a = g.to_f64() * is;
            (T::from_f64(a), T::from_f64(b.to_f64() - m * a))
        })
        .unzip()
}

struct BnTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Stats>>,
}

impl BnTrain {
    fn fwd<T: Real>(&self, x: &[T], gamma: &[T], beta: &[T], d: (usize, usize, usize)) -> Vec<T> {
        let (s, a, b) = Stats::of(x, gamma, beta, d, self.eps);
        let y = affine(x, &a, &b, d.2, self.relu);
        *self.stats.lock().expect("batch-norm stats") = s;
        y
    }
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "convnet-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        check_params(d.1, l2, l3)?;
        let y = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.fwd::<f32>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                d,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(self.fwd::<f64>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                d,
            )),
            _ => candle_core::bail!("batch_norm: cpu kernel needs f32 or f64"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.stats.lock().expect("batch-norm stats").clone();
        let (dx, dparams) = train_backward(x, gy, self.relu, s)?;
        let c = gamma.elem_count();
        let dgamma = dparams.narrow(0, 0, c)?.reshape(gamma.shape())?;
        let dbeta = dparams.narrow(0, c, c)?.reshape(gamma.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Backward of [`BnTrain`]: `(x, gy) -> [dx..., dgamma..., dbeta...]` (flat), from the
/// forward's statistics, scale and shift (the ReLU mask is recomputed from `x`, so the
/// output is not read).
struct BnTrainBwd {
    relu: bool,
    stats: Stats,
}

impl BnTrainBwd {
    fn run<T: Real>(&self, x: &[T], gy: &[T], (n, c, hw): (usize, usize, usize)) -> Vec<T> {
        let s = &self.stats;
        let relu = self.relu;
        let m = (n * hw) as f64;
        let act = |ch: usize| (T::from_f64(s.scale[ch]), T::from_f64(s.shift[ch]), relu);
        // Per channel: sum(g) and sum(g * (x - mean)), shifted by the mean in `T` and
        // corrected after.
        let sums = per_channel(x, (n, c, hw), |ch, off, acc| {
            let (a, b, _) = act(ch);
            let (xp, gp) = (&x[off..off + hw], &gy[off..off + hw]);
            grad_sums(xp, gp, a, b, T::from_f64(s.mean[ch]), relu, acc)
        });
        // (sum g, sum g * xhat)
        let sums: Vec<(f64, f64)> = sums
            .iter()
            .enumerate()
            .map(|(ch, &[sg, sgx])| {
                let shift = T::from_f64(s.mean[ch]).to_f64() - s.mean[ch];
                (sg, (sgx + shift * sg) * s.inv_std[ch])
            })
            .collect();
        let numel = x.len();
        let mut out = par_new(numel, 2 * c, c, hw, |ch, i, dxp| {
            let o = i * hw;
            let (mean, is) = (s.mean[ch], s.inv_std[ch]);
            let k = s.scale[ch];
            let (mg, mgx) = (sums[ch].0 / m, sums[ch].1 / m);
            // dx = k * (g - mg - xhat * mgx), xhat = (x - mean) * is.
            let kx = -k * is * mgx;
            let coef = (
                T::from_f64(k),
                T::from_f64(kx),
                T::from_f64(-k * mg - kx * mean),
            );
            grad_input(&x[o..][..hw], &gy[o..][..hw], dxp, act(ch), coef)
        });
        let rest = &mut out[numel..];
        for ch in 0..c {
            rest[ch] = T::from_f64(sums[ch].1);
            rest[c + ch] = T::from_f64(sums[ch].0);
        }
        out
    }
}

impl CustomOp2 for BnTrainBwd {
    fn name(&self) -> &'static str {
        "convnet-batch-norm-train-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        if l2.dims() != l1.dims() || self.stats.mean.len() != d.1 {
            candle_core::bail!(
                "batch_norm backward: gradient {:?} for input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let out = with_real_slices!("batch_norm backward", s1, l1, s2, l2, |x, gy| {
            self.run(x, gy, d)
        });
        let len = l1.shape().elem_count() + 2 * d.1;
        Ok((out, Shape::from(len)))
    }
}

// ---------------------------------------------------------------------------------------
// Eval mode: per-channel affine (+ ReLU).

struct Affine {
    relu: bool,
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "convnet-channel-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = dims(l1)?;
        check_params(c, l2, l3)?;
        let y = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(affine::<f32>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                hw,
                self.relu,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(affine::<f64>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                hw,
                self.relu,
            )),
            _ => candle_core::bail!("channel_affine: cpu kernel needs f32 or f64"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = if self.relu {
            (gy * y.gt(0.0)?.to_dtype(gy.dtype())?)?
        } else {
            gy.clone()
        };
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = scale.elem_count();
        let dx = g.broadcast_mul(&scale.reshape(bshape)?)?;
        let reduce: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let dscale = (&g * x)?.sum(reduce.as_slice())?;
        let dshift = g.sum(reduce.as_slice())?;
        Ok((Some(dx), Some(dscale), Some(dshift)))
    }
}

struct BnEval {
    mean: Vec<f64>,
    std: Vec<f64>,
    relu: bool,
}

impl BnEval {
    fn run<T: Real>(&self, x: &[T], g: &[T], b: &[T], _c: usize, hw: usize) -> Vec<T> {
        let inv_std: Vec<f64> = self.std.iter().map(|s| 1.0 / s).collect();
        let (a, b) = fold(&self.mean, &inv_std, g, b);
        affine(x, &a, &b, hw, self.relu)
    }
}

impl CustomOp3 for BnEval {
    fn name(&self) -> &'static str {
        "convnet-batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = dims(l1)?;
        check_params(c, l2, l3)?;
        if self.mean.len() != c || self.std.len() != c {
            candle_core::bail!("batch_norm eval: statistics do not fit {c} channels");
        }
        let y = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.run::<f32>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                c,
                hw,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(self.run::<f64>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                c,
                hw,
            )),
            _ => candle_core::bail!("batch_norm eval: cpu kernel needs f32 or f64"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = if self.relu {
            (gy * y.gt(0.0)?.to_dtype(gy.dtype())?)?
        } else {
            gy.clone()
        };
        let c = gamma.elem_count();
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let t = |v: &[f64]| -> Result<Tensor> {
            Tensor::from_slice(v, bshape.as_slice(), x.device())?.to_dtype(x.dtype())
        };
        let (mean, std) = (t(&self.mean)?, t(&self.std)?);
        let xhat = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
        let dx = g.broadcast_mul(&gamma.reshape(bshape.as_slice())?.broadcast_div(&std)?)?;
        let reduce: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let dgamma = (&g * xhat)?.sum(reduce.as_slice())?;
        let dbeta = g.sum(reduce.as_slice())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}
