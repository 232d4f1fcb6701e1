//! Channel gathers: output channel `j` is a copy of input channel `src[j]` (a slice of
//! channels, ShuffleNet's channel shuffle). On the CPU one custom op copies each output plane
//! once (parallel over batch x channel planes); its backward is another custom op that writes
//! each input channel's gradient once: a copy of its reader's (the sum of its readers'), or
//! zero for a channel nobody reads. Elsewhere, candle's `narrow` and `index_select` (which have backward ops on
//! every device).

use super::cpu::{contiguous, par_planes_uninit, Real};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;
use std::sync::Arc;

/// The input channel each output channel of `channel_shuffle` reads: PyTorch's
/// `x.view(N, g, C / g, H, W).transpose(1, 2)`, so output `j` reads `(j % g) * (C / g) + j / g`.
pub(super) fn shuffle_sources(channels: usize, groups: usize) -> Vec<usize> {
    let per = channels / groups;
    (0..channels)
        .map(|j| (j % groups) * per + j / groups)
        .collect()
}

/// Output channel `j` of `x` is its channel `src[j]`, on the CPU through the custom ops of
/// this module (forward and backward), for `f32` and `f64`.
///
/// # Shapes
/// `x`: `[N, C, ...]` -> `[N, src.len(), ...]`.
///
/// # Errors
/// When `x` has fewer than 2 dims, is not `f32`/`f64` on the CPU, or a source is not below
/// `C`.
pub(crate) fn gather_channels_cpu(x: &Tensor, src: Arc<Vec<usize>>) -> Result<Tensor> {
    let c = check(x, &src)?;
    x.contiguous()?.apply_op1(Gather { src, channels: c })
}

/// The same as [`gather_channels_cpu`] with candle ops (the path off the CPU and for other
/// dtypes): `narrow` for a run of consecutive channels, else `index_select`.
///
/// # Shapes
/// `x`: `[N, C, ...]` -> `[N, src.len(), ...]`.
pub(crate) fn gather_channels_composite(x: &Tensor, src: &[usize]) -> Result<Tensor> {
    check(x, src)?;
    let consecutive = src.windows(2).all(|p| p[1] == p[0] + 1);
    if consecutive && !src.is_empty() {
        return x.narrow(1, src[0], src.len());
    }
    let index: Vec<u32> = src.iter().map(|&s| s as u32).collect();
    x.contiguous()?
        .index_select(&Tensor::new(index, x.device())?, 1)
}

/// `C` of `x`, after checking the sources against it.
fn check(x: &Tensor, src: &[usize]) -> Result<usize> {
    if x.rank() < 2 {
        candle_core::bail!("channel gather: needs [N, C, ...], got {:?}", x.dims());
    }
    let c = x.dim(1)?;
    if let Some(bad) = src.iter().find(|&&s| s >= c) {
        candle_core::bail!("channel gather: channel {bad} of a {c}-channel input");
    }
    Ok(c)
}

/// `(N, plane length)` of an `[N, C, ...]` layout.
fn batch_and_plane(l: &Layout) -> (usize, usize) {
    let d = l.dims();
    (d[0], d[2..].iter().product())
}

/// Writes `src` into the uninitialised `dst` of the same length (one `memcpy`).
fn copy_plane<T: Real>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both slices hold `src.len()` elements, `MaybeUninit<T>` has the layout of `T`,
    // and an output buffer never overlaps its input.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) };
}

fn gather_forward<T: Real>(x: &[T], n: usize, c: usize, hw: usize, src: &[usize]) -> Vec<T> {
    let co = src.len();
    // SAFETY: every plane is overwritten by one copy of an input plane of the same length.
    unsafe {
        par_planes_uninit(
            n * co,
            hw,
            || (),
            |_, i, out| {
                let (b, j) = (i / co, i % co);
                copy_plane(out, &x[(b * c + src[j]) * hw..][..hw]);
            },
        )
    }
}

/// For each input channel, the output channels that read it.
fn readers(c: usize, src: &[usize]) -> Vec<Vec<usize>> {
    let mut r = vec![Vec::new(); c];
    for (j, &s) in src.iter().enumerate() {
        r[s].push(j);
    }
    r
}

fn gather_backward<T: Real>(gy: &[T], n: usize, c: usize, hw: usize, src: &[usize]) -> Vec<T> {
    let co = src.len();
    let readers = readers(c, src);
    let plane = |b: usize, j: usize| &gy[(b * co + j) * hw..][..hw];
    // SAFETY: every plane is written whole: zeros, one reader's copy, or a sum.
    unsafe {
        par_planes_uninit(
            n * c,
            hw,
            || (),
            |_, i, dx| {
                let (b, ch) = (i / c, i % c);
                match readers[ch].as_slice() {
                    // A permutation or a slice: each channel read at most once.
                    [] => {
                        for d in dx.iter_mut() {
                            d.write(T::ZERO);
                        }
                    }
                    [j] => copy_plane(dx, plane(b, *j)),
                    [first, rest @ ..] => {
                        copy_plane(dx, plane(b, *first));
                        // SAFETY: initialised by the copy just above.
                        let dx = &mut *(dx as *mut [MaybeUninit<T>] as *mut [T]);
                        for &j in rest {
                            for (d, &v) in dx.iter_mut().zip(plane(b, j)) {
                                *d += v;
                            }
                        }
                    }
                }
            },
        )
    }
}

/// The forward op: output channel `j` copies input channel `src[j]` of `channels`.
struct Gather {
    src: Arc<Vec<usize>>,
    channels: usize,
}

impl CustomOp1 for Gather {
    fn name(&self) -> &'static str {
        "convnet-channel-gather"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, hw) = batch_and_plane(l);
        let (c, src) = (self.channels, self.src.as_slice());
        let y = match s {
            CpuStorage::F32(_) => {
                CpuStorage::F32(gather_forward::<f32>(contiguous(s, l)?, n, c, hw, src))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(gather_forward::<f64>(contiguous(s, l)?, n, c, hw, src))
            }
            _ => candle_core::bail!("channel gather: cpu kernel needs f32 or f64 input"),
        };
        let mut dims = l.dims().to_vec();
        dims[1] = src.len();
        Ok((y, Shape::from(dims)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        let op = GatherBwd {
            src: self.src.clone(),
            x_dims: x.dims().to_vec(),
        };
        Ok(Some(gy.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// The backward op: `gy -> dx`, each input channel the sum of its readers' gradients.
struct GatherBwd {
    src: Arc<Vec<usize>>,
    x_dims: Vec<usize>,
}

impl CustomOp1 for GatherBwd {
    fn name(&self) -> &'static str {
        "convnet-channel-gather-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, hw) = batch_and_plane(l);
        let (c, src) = (self.x_dims[1], self.src.as_slice());
        let mut want = self.x_dims.clone();
        want[1] = src.len();
        if l.dims() != want.as_slice() {
            candle_core::bail!("channel gather backward: gradient shape {:?}", l.dims());
        }
        let dx = match s {
            CpuStorage::F32(_) => {
                CpuStorage::F32(gather_backward::<f32>(contiguous(s, l)?, n, c, hw, src))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(gather_backward::<f64>(contiguous(s, l)?, n, c, hw, src))
            }
            _ => candle_core::bail!("channel gather: cpu kernel needs f32 or f64 gradient"),
        };
        Ok((dx, Shape::from(self.x_dims.clone())))
    }
}
