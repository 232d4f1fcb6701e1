//! Shared plumbing of the CPU kernels: the element trait, storage access, window ranges and
//! the AVX2/FMA multiversioning switch.

use candle_core::{CpuStorage, Layout, Result, WithDType};
use std::mem::MaybeUninit;

/// Float element types the CPU kernels are compiled for (`f32`, `f64`).
pub(crate) trait Real: WithDType + Copy + Send + Sync + PartialOrd {
    const ZERO: Self;
    const NEG_INFINITY: Self;

    /// `a * b + c`, fused when `FMA` (only inside functions compiled with the `fma` feature;
    /// elsewhere `mul_add` would be a slow library call).
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self;
    fn from_count(n: usize) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;

    #[inline(always)]
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    #[inline(always)]
    fn from_count(n: usize) -> Self {
        n as f32
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;

    #[inline(always)]
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    #[inline(always)]
    fn from_count(n: usize) -> Self {
        n as f64
    }
}

/// The contiguous slice of a storage described by `layout`.
pub(crate) fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&T::cpu_storage_as_slice(s)?[a..b]),
        None => candle_core::bail!("convnet cpu kernel: input is not contiguous"),
    }
}

/// True when the running CPU has AVX2 and FMA (checked once).
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Range `[lo, hi)` of output positions `o < n_out` whose tap `o * s + off - p` lands inside
/// `[0, n_in)`.
#[inline]
pub(crate) fn tap_range(
    n_in: usize,
    n_out: usize,
    s: usize,
    off: usize,
    p: usize,
) -> (usize, usize) {
    let lo = if p > off { (p - off).div_ceil(s) } else { 0 };
    let hi = if n_in + p > off {
        ((n_in - 1 + p - off) / s + 1).min(n_out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Input index of output `o`'s tap at offset `off` (`o * s + off - p`), when inside `[0, n)`.
#[inline(always)]
pub(crate) fn tap(o: usize, s: usize, off: usize, p: usize, n: usize) -> Option<usize> {
    let i = o * s + off;
    if i < p || i - p >= n {
        None
    } else {
        Some(i - p)
    }
}

/// Defines `$name<T>(args)` that runs `$body::<T, FMA>` compiled for AVX2+FMA when the CPU
/// has them and for the baseline target otherwise.
macro_rules! multiversion {
    ($vis:vis fn $name:ident<T>($($arg:ident : $ty:ty),* $(,)?) => $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<T: $crate::ops::cpu::Real>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast<T: $crate::ops::cpu::Real>($($arg: $ty),*) {
                    $body::<T, true>($($arg),*)
                }
                if $crate::ops::cpu::has_avx2_fma() {
                    // SAFETY: the CPU supports the features `fast` is compiled for.
                    unsafe { fast::<T>($($arg),*) };
                    return;
                }
            }
            $body::<T, false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Spatial geometry of one plane of a windowed op.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plane {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
}

impl Plane {
    /// Geometry of `win` over an `h` x `w` input; errors when the window does not fit.
    pub fn new(win: &super::Window2d, h: usize, w: usize) -> Result<Plane> {
        if win.kernel.0 == 0 || win.kernel.1 == 0 || win.dilation.0 == 0 || win.dilation.1 == 0 {
            candle_core::bail!("convnet: empty window or zero dilation in {win:?}");
        }
        let Some((oh, ow)) = win.output_size(h, w) else {
            candle_core::bail!("convnet: window {win:?} does not fit a {h}x{w} input");
        };
        Ok(Plane {
            h,
            w,
            oh,
            ow,
            kh: win.kernel.0,
            kw: win.kernel.1,
            sh: win.stride.0,
            sw: win.stride.1,
            dh: win.dilation.0,
            dw: win.dilation.1,
            pt: win.pad.top,
            pl: win.pad.left,
        })
    }

    /// For each horizontal tap `kx`, the outputs `[lo, hi)` whose tap is inside the row.
    pub fn x_tap_ranges(&self) -> Vec<(usize, usize)> {
        (0..self.kw)
            .map(|kx| tap_range(self.w, self.ow, self.sw, kx * self.dw, self.pl))
            .collect()
    }

    /// Output columns `[lo, hi)` whose every horizontal tap is inside the row (`lo >= hi`
    /// when there are none).
    pub fn x_interior(&self) -> (usize, usize) {
        let r = self.x_tap_ranges();
        (
            r.iter().map(|r| r.0).max().unwrap_or(0),
            r.iter().map(|r| r.1).min().unwrap_or(0),
        )
    }

    /// For each output column `ox`, the taps `[lo, hi)` that are inside the row.
    pub fn x_kernel_ranges(&self) -> Vec<(usize, usize)> {
        (0..self.ow)
            .map(|ox| kernel_range(ox, self.sw, self.dw, self.pl, self.w, self.kw))
            .collect()
    }

    /// The taps `[lo, hi)` of output row `oy` that are inside the plane.
    #[inline]
    pub fn y_kernel_range(&self, oy: usize) -> (usize, usize) {
        kernel_range(oy, self.sh, self.dh, self.pt, self.h, self.kh)
    }
}

/// Taps `k < kn` of output `o` with `o * s + k * d - p` inside `[0, n)`: a range `[lo, hi)`.
#[inline]
pub(crate) fn kernel_range(
    o: usize,
    s: usize,
    d: usize,
    p: usize,
    n: usize,
    kn: usize,
) -> (usize, usize) {
    let start = o * s;
    let lo = if p > start {
        (p - start).div_ceil(d)
    } else {
        0
    };
    let hi = if n + p > start {
        (n + p - start).div_ceil(d).min(kn)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Planes per rayon job so that each thread gets one contiguous run: the per-thread scratch
/// (`init`) is then made once per thread, not once per job split (a scratch of im2col
/// columns is megabytes, zero-filled on creation).
pub(crate) fn per_thread(planes: usize) -> usize {
    planes.div_ceil(rayon::current_num_threads()).max(1)
}

/// Allocates `planes * len` elements and runs `f(scratch, i, plane)` on every plane in
/// parallel, each plane zeroed inside its own task (in parallel, and cache-warm for `f`,
/// where `vec![0; n]` would be one serial memset or page-faulting pass). `init` makes the
/// per-thread scratch.
pub(crate) fn par_planes<T: Real, S>(
    planes: usize,
    len: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    // SAFETY: the closure initialises every element before anything reads it.
    unsafe {
        par_planes_uninit(planes, len, init, |s, i, c| {
            for e in c.iter_mut() {
                e.write(T::ZERO);
            }
            // SAFETY: every element of `c` was just initialised, and `MaybeUninit<T>` has
            // the layout of `T`.
            f(s, i, &mut *(c as *mut [MaybeUninit<T>] as *mut [T]))
        })
    }
}

/// [`par_planes`] without the zeroing, for kernels that overwrite their whole plane.
///
/// # Safety
/// `f` must initialise every element of the plane it is given.
pub(crate) unsafe fn par_planes_uninit<T: Real, S>(
    planes: usize,
    len: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    let n = planes * len;
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge_pages(v.as_mut_ptr(), n);
    if len > 0 {
        v.spare_capacity_mut()[..n]
            .par_chunks_mut(len)
            .with_min_len(per_thread(planes))
            .enumerate()
            .for_each_init(&init, |s, (i, c)| f(s, i, c));
    }
    // SAFETY: `f` initialised all `n` elements (the caller's contract; `n == 0` when
    // `len == 0`).
    unsafe { v.set_len(n) };
    v
}

/// [`par_planes`] with a second output of `u32` per element (zeroed likewise).
pub(crate) fn par_planes2<T: Real, S>(
    planes: usize,
    len: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T], &mut [u32]) + Sync + Send,
) -> (Vec<T>, Vec<u32>) {
    use rayon::prelude::*;
    let n = planes * len;
    let mut v: Vec<T> = Vec::with_capacity(n);
    let mut a: Vec<u32> = Vec::with_capacity(n);
    advise_huge_pages(v.as_mut_ptr(), n);
    advise_huge_pages(a.as_mut_ptr(), n);
    if len > 0 {
        v.spare_capacity_mut()[..n]
            .par_chunks_mut(len)
            .zip(a.spare_capacity_mut()[..n].par_chunks_mut(len))
            .with_min_len(per_thread(planes))
            .enumerate()
            .for_each_init(&init, |s, (i, (c, d))| {
                for e in c.iter_mut() {
                    e.write(T::ZERO);
                }
                for e in d.iter_mut() {
                    e.write(0);
                }
                // SAFETY: as in `par_planes`, both chunks were just initialised.
                let c = unsafe { &mut *(c as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
                let d = unsafe { &mut *(d as *mut [std::mem::MaybeUninit<u32>] as *mut [u32]) };
                f(s, i, c, d)
            });
    }
    // SAFETY: both vectors had all `n` elements initialised above.
    unsafe {
        v.set_len(n);
        a.set_len(n);
    }
    (v, a)
}

/// Asks Linux to back the 2 MiB-aligned part of a fresh buffer of `n` elements at `p` with
/// transparent huge pages (where THP is in `madvise` mode): large buffers are usually fresh
/// `mmap`s (glibc maps anything over 32 MiB), and faulting them in 4 KiB pages costs more
/// than the kernels that fill them. Only a hint; errors are ignored.
fn advise_huge_pages<T>(p: *mut T, n: usize) {
    const HUGE: usize = 2 << 20;
    let bytes = n * std::mem::size_of::<T>();
    if bytes < 4 * HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(
                addr: *mut std::ffi::c_void,
                len: usize,
                advice: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        let start = (p as usize).next_multiple_of(HUGE);
        let end = (p as usize + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside an allocation this process owns; MADV_HUGEPAGE
            // changes no contents and no mapping, only how future faults are served.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = p;
}

/// Evaluates `$body` (a `Vec` of the storages' element type) over the contiguous `f32` or
/// `f64` data of two storages of one dtype, as a `CpuStorage`; errors for other dtypes.
macro_rules! with_real_slices {
    ($op:literal, $s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32(_), candle_core::CpuStorage::F32(_)) => {
                let ($a, $b) = (
                    $crate::ops::cpu::contiguous::<f32>($s1, $l1)?,
                    $crate::ops::cpu::contiguous::<f32>($s2, $l2)?,
                );
                candle_core::CpuStorage::F32($body)
            }
            (candle_core::CpuStorage::F64(_), candle_core::CpuStorage::F64(_)) => {
                let ($a, $b) = (
                    $crate::ops::cpu::contiguous::<f64>($s1, $l1)?,
                    $crate::ops::cpu::contiguous::<f64>($s2, $l2)?,
                );
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!(concat!(
                $op,
                ": cpu kernel needs f32 or f64 inputs of one dtype"
            )),
        }
    };
}
pub(crate) use with_real_slices;

/// The backward of a convolution-like op `(x, weight) -> y` from two gradient ops without
/// backward: `(gy, weight) -> dx`, built by `input_op` only when `x` needs a gradient (not for
/// the first layer's data), and `(x, gy) -> dweight` when `weight` needs one.
pub(crate) fn conv_grads<I: candle_core::CustomOp2, W: candle_core::CustomOp2>(
    x: &candle_core::Tensor,
    weight: &candle_core::Tensor,
    gy: &candle_core::Tensor,
    input_op: impl FnOnce() -> Result<I>,
    weight_op: W,
) -> Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)> {
    let gy = gy.contiguous()?;
    let dx = if x.track_op() {
        Some(gy.apply_op2_no_bwd(weight, &input_op()?)?)
    } else {
        None
    };
    let dw = if weight.track_op() {
        Some(x.apply_op2_no_bwd(&gy, &weight_op)?)
    } else {
        None
    };
    Ok((dx, dw))
}
