//! Batch normalisation (optionally fused with the following ReLU) as candle custom ops with
//! CPU kernels for `f32` and `f64`.
//!
//! Training mode ([`batch_norm_train_cpu`]): two reading passes compute the per-channel batch
//! mean and biased variance (two-pass, so no cancellation on offset data) in the element type
//! and in candle's summation order, so results match `candle_nn::BatchNorm` to the bit; a
//! third writes `y = relu?((x - mean) / sqrt(var + eps) * gamma + beta)`.
//! The backward is closed-form: one pass sums `g = dy * [y > 0]` and `g * xhat` per channel
//! (the gradients of `beta` and `gamma`), one writes
//! `dx = gamma / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat))`.
//!
//! Eval mode ([`batch_norm_eval_cpu`]): one pass `y = relu?((x - mean) / std * gamma + beta)`
//! in the element type, in candle_nn's order of operations (so results match it to the last
//! bit), with backward; [`channel_affine_cpu`]: one pass `y = relu?(x * scale + shift)`.
//!
//! Work is parallel over channels (statistics, sums) and over batch x channel planes (the
//! elementwise passes) with rayon.

use super::cpu::contiguous;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

/// Per-channel statistics of one training-mode forward: batch mean, biased variance and
/// `1 / sqrt(var + eps)`.
#[derive(Debug, Clone, Default)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    inv_std: Vec<f64>,
}

/// Output of [`batch_norm_train_cpu`] (and of `ops::batch_norm_train`).
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

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
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
pub fn batch_norm_train_cpu(
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
    let s = stats.lock().expect("batch-norm stats").clone();
    let dev = x.device();
    let mean = Tensor::from_vec(s.mean, gamma.dims(), dev)?.to_dtype(x.dtype())?;
    let var = Tensor::from_vec(s.var, gamma.dims(), dev)?.to_dtype(x.dtype())?;
    Ok(BatchNormTrain { y, mean, var })
}

/// `y = x * scale[c] + shift[c]`, then ReLU when `relu`, on CPU with backward for all three
/// inputs (eval-mode batch norm with folded statistics).
///
/// # Shapes
/// `x`: `[N, C, ...]`, `scale`, `shift`: `[C]` -> `[N, C, ...]`.
///
/// # Errors
/// As [`batch_norm_train_cpu`].
pub fn channel_affine_cpu(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.apply_op3(&scale.contiguous()?, &shift.contiguous()?, Affine { relu })
}

/// Eval-mode batch normalisation on CPU from given statistics (no gradient to them):
/// `y = relu?((x - mean[c]) / std[c] * gamma[c] + beta[c])`, computed in `x`'s dtype in that
/// order, with backward for `x`, `gamma` and `beta`.
///
/// # Shapes
/// `x`: `[N, C, ...]`, `mean`, `std`, `gamma`, `beta`: `[C]` -> `[N, C, ...]`.
///
/// # Errors
/// As [`batch_norm_train_cpu`].
pub fn batch_norm_eval_cpu(
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
// Training forward.

/// A sum over one channel's values (batch-major, as candle_nn's batch norm lays them out)
/// in exactly candle's CPU order, so the statistics match `candle_nn::BatchNorm` bit for bit:
/// for `f32` on AVX2 machines 32 interleaved lanes over the whole 32-element chunks reduced
/// pairwise as candle's AVX `vec_sum` does, then the tail added in order; otherwise in order.
fn candle_sum<T: WithDType>(
    planes: impl Iterator<Item = impl Iterator<Item = T>>,
    len: usize,
) -> T {
    let lanes = T::DTYPE == candle_core::DType::F32 && avx2();
    if !lanes {
        let mut s = T::zero();
        for p in planes {
            for v in p {
                s += v;
            }
        }
        return s;
    }
    let np = len & !31;
    let mut acc = [T::zero(); 32];
    let mut tail = [T::zero(); 32];
    let mut g = 0usize;
    for p in planes {
        for v in p {
            if g < np {
                acc[g & 31] += v;
            } else {
                tail[g - np] = v;
            }
            g += 1;
        }
    }
    // x[0] += x[1], x[2] += x[3], x[0] += x[2] (8-lane registers), then the 128-bit halves,
    // then two horizontal adds.
    let mut r = [T::zero(); 8];
    for l in 0..8 {
        r[l] = (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]);
    }
    let t0 = [r[0] + r[4], r[1] + r[5], r[2] + r[6], r[3] + r[7]];
    let mut s = (t0[0] + t0[1]) + (t0[2] + t0[3]);
    for &v in &tail[..len - np] {
        s += v;
    }
    s
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Batch mean and biased variance per channel, computed as candle_nn's batch norm does (in
/// `T`: `mean = sum(x) * (1 / M)`, `var = sum((x - mean)^2) * (1 / M)`), in parallel over
/// channels.
fn stats<T: WithDType + Sync>(x: &[T], n: usize, c: usize, hw: usize, eps: f64) -> Stats {
    let m = n * hw;
    let inv_m = T::from_f64(1f64 / m as f64);
    let per: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            if m == 0 {
                return (0.0, 0.0);
            }
            let plane = |b: usize| x[(b * c + ch) * hw..][..hw].iter().copied();
            let mean = candle_sum((0..n).map(plane), m) * inv_m;
            let sq = candle_sum(
                (0..n).map(|b| {
                    plane(b).map(move |v| {
                        let d = v - mean;
                        d * d
                    })
                }),
                m,
            );
            (mean.to_f64(), (sq * inv_m).to_f64())
        })
        .collect();
    let mean: Vec<f64> = per.iter().map(|p| p.0).collect();
    let var: Vec<f64> = per.iter().map(|p| p.1).collect();
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    Stats { mean, var, inv_std }
}

/// `y = relu?(x * a[c] + b[c])` plane by plane.
fn affine<T: WithDType + Sync + Send>(
    x: &[T],
    a: &[f64],
    b: &[f64],
    hw: usize,
    relu: bool,
) -> Vec<T> {
    let c = a.len();
    par_new(x.len(), 0, c, hw, |ch, i, out| {
        let inp = &x[i * hw..][..hw];
        let (a, b) = (T::from_f64(a[ch]), T::from_f64(b[ch]));
        if relu {
            let z = T::zero();
            for (o, &v) in out.iter_mut().zip(inp) {
                let t = v * a + b;
                o.write(if t > z { t } else { z });
            }
        } else {
            for (o, &v) in out.iter_mut().zip(inp) {
                o.write(v * a + b);
            }
        }
    })
}

/// `y = relu?((x - mean[c]) / std[c] * g[c] + b[c])` plane by plane, in `T` and in that
/// order (candle_nn's).
#[allow(clippy::too_many_arguments)]
fn normalize<T: WithDType + Sync + Send>(
    x: &[T],
    mean: &[f64],
    std: &[f64],
    g: &[T],
    b: &[T],
    c: usize,
    hw: usize,
    relu: bool,
) -> Vec<T> {
    par_new(x.len(), 0, c, hw, |ch, i, out| {
        let inp = &x[i * hw..][..hw];
        let (m, s) = (T::from_f64(mean[ch]), T::from_f64(std[ch]));
        let (g, b, z) = (g[ch], b[ch], T::zero());
        for (o, &v) in out.iter_mut().zip(inp) {
            let t = (v - m) / s * g + b;
            o.write(if relu && t <= z { z } else { t });
        }
    })
}

fn to_f64<T: WithDType>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

struct BnTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Stats>>,
}

impl BnTrain {
    fn fwd<T: WithDType + Sync + Send>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        (n, c, hw): (usize, usize, usize),
    ) -> Vec<T> {
        let mut s = stats(x, n, c, hw, self.eps);
        // The standard deviation as candle_nn computes it: `sqrt(var + eps)` in `T`.
        let std: Vec<f64> = s
            .var
            .iter()
            .map(|&v| T::from_f64((T::from_f64(v) + T::from_f64(self.eps)).to_f64().sqrt()))
            .map(|v| v.to_f64())
            .collect();
        s.inv_std = std.iter().map(|v| 1.0 / v).collect();
        let y = normalize(x, &s.mean, &std, gamma, beta, c, hw, self.relu);
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
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.stats.lock().expect("batch-norm stats").clone();
        let gy = gy.contiguous()?;
        let op = BnTrainBwd {
            relu: self.relu,
            stats: s,
            gamma: gamma
                .to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?,
        };
        // Packed result: dx, then dgamma, then dbeta.
        let packed = x.apply_op3_no_bwd(&gy, y, &op)?;
        let (numel, c) = (x.elem_count(), gamma.elem_count());
        let dx = packed.narrow(0, 0, numel)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, numel, c)?.reshape(gamma.shape())?;
        let dbeta = packed.narrow(0, numel + c, c)?.reshape(gamma.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Backward of [`BnTrain`]: `(x, gy, y) -> [dx..., dgamma..., dbeta...]` (flat), where `dx`
/// with the forward's statistics and `gamma`.
struct BnTrainBwd {
    relu: bool,
    stats: Stats,
    gamma: Vec<f64>,
}

impl BnTrainBwd {
    fn run<T: WithDType + Sync + Send>(
        &self,
        x: &[T],
        gy: &[T],
        y: &[T],
        n: usize,
        c: usize,
        hw: usize,
    ) -> Vec<T> {
        let s = &self.stats;
        let relu = self.relu;
        let m = (n * hw) as f64;
        let zero = T::zero();
        // Per channel: sum(g), sum(g * xhat).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mean, is) = (s.mean[ch], s.inv_std[ch]);
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for b in 0..n {
                    let o = (b * c + ch) * hw;
                    let (xp, gp, yp) = (&x[o..][..hw], &gy[o..][..hw], &y[o..][..hw]);
                    for i in 0..hw {
                        let g = if relu && yp[i] <= zero {
                            0.0
                        } else {
                            gp[i].to_f64()
                        };
                        sg += g;
                        sgx += g * (xp[i].to_f64() - mean);
                    }
                }
                (sg, sgx * is)
            })
            .collect();
        let numel = x.len();
        let mut out = par_new(numel, 2 * c, c, hw, |ch, i, dxp| {
            let o = i * hw;
            let (xp, gp, yp) = (&x[o..][..hw], &gy[o..][..hw], &y[o..][..hw]);
            let (mean, is) = (s.mean[ch], s.inv_std[ch]);
            let k = self.gamma[ch] * is;
            let mg = sums[ch].0 / m;
            let mgx = sums[ch].1 / m;
            // dx = k * (g - mg - xhat * mgx), xhat = (x - mean) * is.
            let a = T::from_f64(k);
            let b = T::from_f64(-k * (mg - mean * is * mgx));
            let cx = T::from_f64(-k * is * mgx);
            for j in 0..hw {
                let g = if relu && yp[j] <= zero { zero } else { gp[j] };
                dxp[j].write(a * g + cx * xp[j] + b);
            }
        });
        let rest = &mut out[numel..];
        for ch in 0..c {
            rest[ch] = T::from_f64(sums[ch].1);
            rest[c + ch] = T::from_f64(sums[ch].0);
        }
        out
    }
}

impl CustomOp3 for BnTrainBwd {
    fn name(&self) -> &'static str {
        "convnet-batch-norm-train-bwd"
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
        let (n, c, hw) = dims(l1)?;
        if l2.dims() != l1.dims() || l3.dims() != l1.dims() {
            candle_core::bail!("batch_norm backward: shapes differ");
        }
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.run::<f32>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                n,
                c,
                hw,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(self.run::<f64>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                n,
                c,
                hw,
            )),
            _ => candle_core::bail!("batch_norm backward: cpu kernel needs f32 or f64"),
        };
        Ok((out, Shape::from(n * c * hw + 2 * c)))
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
        fn run<T: WithDType + Sync + Send>(
            x: &[T],
            a: &[T],
            b: &[T],
            hw: usize,
            relu: bool,
        ) -> Vec<T> {
            affine(x, &to_f64(a), &to_f64(b), hw, relu)
        }
        let y = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(run::<f32>(
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                contiguous(s3, l3)?,
                hw,
                self.relu,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(run::<f64>(
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
    fn run<T: WithDType + Sync + Send>(
        &self,
        x: &[T],
        g: &[T],
        b: &[T],
        c: usize,
        hw: usize,
    ) -> Vec<T> {
        normalize(x, &self.mean, &self.std, g, b, c, hw, self.relu)
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
