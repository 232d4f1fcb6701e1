//! Max and average pooling as candle custom ops with CPU kernels (forward and backward) for
//! `f32` and `f64`: any kernel, stride (overlapping windows included), dilation and
//! asymmetric padding.
//!
//! Max pooling pools over `-inf` padding: padded positions never win and get no gradient;
//! the forward records each window's winner (first maximum in row-major window order) when
//! the input is tracked for backprop, and the backward scatters the gradient there. A NaN
//! input is not propagated (it never wins). Average pooling divides by the number of window
//! positions inside the input extended by a counted padding (none: padding excluded from
//! the count, Keras semantics; the declared padding: PyTorch's `count_include_pad`); a
//! window entirely in the padding yields 0.
//!
//! Kernels work plane by plane (one NCHW plane per rayon task): a vertical pass over the
//! window's rows into a row buffer, then a horizontal pass over the window's columns. Max
//! pooling over narrow outputs (under 16 wide) instead reads each output's window from a
//! table of input offsets built once per call.

use super::cpu::{contiguous, kernel_range, multiversion, par_planes, par_planes2, Plane, Real};
use super::{Pad2d, Window2d};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// Marks an output whose window holds no input position (all padding).
pub(super) const NONE: u32 = u32::MAX;

/// Max pooling on CPU through the custom ops of this module, with backward.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, where `(OH, OW) = win.output_size(H, W)`.
///
/// # Errors
/// When `x` is not on the CPU or not `f32`/`f64`, the window does not fit, or a plane has
/// more than `u32::MAX - 1` elements.
pub(crate) fn max_pool2d_cpu(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    Plane::new(win, h, w)?;
    if h * w >= NONE as usize {
        candle_core::bail!("max_pool2d: plane of {h}x{w} is too large");
    }
    let x = x.contiguous()?;
    let op = MaxPool {
        win: *win,
        save_argmax: x.track_op(),
        argmax: Mutex::new(None),
    };
    x.apply_op1(op)
}

/// Average pooling on CPU through the custom ops of this module, with backward; padding is
/// left out of each window's count.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, where `(OH, OW) = win.output_size(H, W)`.
///
/// # Errors
/// When `x` is not on the CPU or not `f32`/`f64`, or the window does not fit.
#[cfg(test)]
pub(crate) fn avg_pool2d_cpu(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    avg_pool2d_counted_cpu(x, win, Pad2d::ZERO)
}

/// Average pooling on CPU that divides each window's sum by the number of its positions
/// inside the input extended by `counted` (clamped to `win.pad` on each side), with backward.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`, where `(OH, OW) = win.output_size(H, W)`.
///
/// # Errors
/// When `x` is not on the CPU or not `f32`/`f64`, or the window does not fit.
pub(crate) fn avg_pool2d_counted_cpu(x: &Tensor, win: &Window2d, counted: Pad2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    Plane::new(win, h, w)?;
    x.contiguous()?.apply_op1(AvgPool {
        win: *win,
        counted: clamp_counted(win, counted),
    })
}

/// `counted` with each side at most the window's padding on that side.
pub(super) fn clamp_counted(win: &Window2d, counted: Pad2d) -> Pad2d {
    Pad2d {
        top: counted.top.min(win.pad.top),
        bottom: counted.bottom.min(win.pad.bottom),
        left: counted.left.min(win.pad.left),
        right: counted.right.min(win.pad.right),
    }
}

/// Each output row's and column's divisor: how many of its window's taps fall inside the
/// input extended by `counted` (0 for a window entirely outside it).
///
/// # Shapes
/// Returns `(OH rows, OW columns)`.
pub(super) fn avg_divisors(g: &Plane, counted: Pad2d) -> (Vec<usize>, Vec<usize>) {
    let count = |o: usize, s: usize, d: usize, p: usize, before: usize, n: usize, k: usize| {
        let (lo, hi) = kernel_range(o, s, d, p - before, n, k);
        hi - lo
    };
    let rows = (0..g.oh)
        .map(|oy| {
            let n = g.h + counted.top + counted.bottom;
            count(oy, g.sh, g.dh, g.pt, counted.top, n, g.kh)
        })
        .collect();
    let cols = (0..g.ow)
        .map(|ox| {
            let n = g.w + counted.left + counted.right;
            count(ox, g.sw, g.dw, g.pl, counted.left, n, g.kw)
        })
        .collect();
    (rows, cols)
}

fn planes(l: &Layout, win: &Window2d) -> Result<(usize, Plane)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n * c, Plane::new(win, h, w)?))
}

// ---------------------------------------------------------------------------------------
// Max pooling kernels.

/// Scratch rows of one max-pooling task.
struct MaxScratch<T> {
    /// Per column: the max over the window's rows, and its row.
    colv: Vec<T>,
    coli: Vec<u32>,
    /// The same deinterleaved by horizontal stride phase: `pv[r * pw + j] = colv[j * sw + r]`.
    pv: Vec<T>,
    pi: Vec<u32>,
}

impl<T: Real> MaxScratch<T> {
    fn new(g: &Plane) -> Self {
        let n = g.w.div_ceil(g.sw) * g.sw;
        MaxScratch {
            colv: vec![T::ZERO; g.w],
            coli: vec![0; g.w],
            pv: vec![T::ZERO; n],
            pi: vec![0; n],
        }
    }
}

/// One plane of max pooling with winners: `arg` receives each winner's index in the plane.
#[inline(always)]
fn max_plane_arg_impl<T: Real, const FMA: bool>(
    g: &Plane,
    xk: &[(usize, usize)],
    interior: (usize, usize),
    inp: &[T],
    out: &mut [T],
    arg: &mut [u32],
    s: &mut MaxScratch<T>,
) {
    let (w, ow) = (g.w, g.ow);
    let MaxScratch { colv, coli, pv, pi } = s;
    for oy in 0..g.oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        let arow = &mut arg[oy * ow..(oy + 1) * ow];
        let (klo, khi) = g.y_kernel_range(oy);
        if klo >= khi {
            orow.fill(T::NEG_INFINITY);
            arow.fill(NONE);
            continue;
        }
        // Vertical pass: per column, the max over the window's rows and its first row.
        let iy0 = oy * g.sh + klo * g.dh - g.pt;
        colv.copy_from_slice(&inp[iy0 * w..(iy0 + 1) * w]);
        coli.fill(iy0 as u32);
        for ky in klo + 1..khi {
            let iy = oy * g.sh + ky * g.dh - g.pt;
            let r = &inp[iy * w..(iy + 1) * w];
            let iy = iy as u32;
            for ((cv, ci), &v) in colv.iter_mut().zip(coli.iter_mut()).zip(r) {
                // Branch-free: random data would mispredict half the time.
                let gt = v > *cv;
                *ci = if gt { iy } else { *ci };
                *cv = if gt { v } else { *cv };
            }
        }
        // Horizontal pass; ties go to the smallest plane index (row-major first).
        let (xlo, xhi) = interior;
        let mut ox = xlo;
        if xhi >= xlo + 8 {
            let (pv, pi, pw): (&[T], &[u32], usize) = if g.sw == 1 {
                (colv, coli, w)
            } else {
                // Deinterleave so that every tap reads consecutive outputs contiguously.
                // Phase by phase, plain strided loops: chunk iterators over 2-wide chunks
                // cost more than the pooling itself.
                let pw = w.div_ceil(g.sw);
                for r in 0..g.sw.min(w) {
                    let n = (w - r).div_ceil(g.sw);
                    let (pv, pi) = (&mut pv[r * pw..r * pw + n], &mut pi[r * pw..r * pw + n]);
                    for (j, (v, i)) in pv.iter_mut().zip(pi.iter_mut()).enumerate() {
                        *v = colv[j * g.sw + r];
                        *i = coli[j * g.sw + r];
                    }
                }
                (pv, pi, pw)
            };
            while ox + 8 <= xhi {
                max_block::<T, 8>(g, pv, pi, pw, orow, arow, ox);
                ox += 8;
            }
        }
        let (a, b) = (xlo.min(ow), ox.max(xlo).min(ow));
        for ox in (0..a).chain(b..ow) {
            let (lo, hi) = xk[ox];
            let (mut best, mut bi) = (T::NEG_INFINITY, NONE);
            for kx in lo..hi {
                let ix = ox * g.sw + kx * g.dw - g.pl;
                let v = colv[ix];
                let idx = coli[ix] * w as u32 + ix as u32;
                let take = v > best || (v == best && idx < bi);
                bi = if take { idx } else { bi };
                best = if take { v } else { best };
            }
            orow[ox] = best;
            arow[ox] = bi;
        }
    }
}

/// Horizontal max with winners for interior outputs `ox..ox + L`, reading the column maxima
/// deinterleaved by stride phase (`pw` columns per phase).
#[inline(always)]
fn max_block<T: Real, const L: usize>(
    g: &Plane,
    pv: &[T],
    pi: &[u32],
    pw: usize,
    orow: &mut [T],
    arow: &mut [u32],
    ox: usize,
) {
    let w = g.w as u32;
    let mut best = [T::NEG_INFINITY; L];
    let mut bi = [NONE; L];
    for kx in 0..g.kw {
        let ix0 = ox * g.sw + kx * g.dw - g.pl;
        let at = (ix0 % g.sw) * pw + ix0 / g.sw;
        let vs = &pv[at..at + L];
        let is = &pi[at..at + L];
        for i in 0..L {
            let idx = is[i] * w + (ix0 + i * g.sw) as u32;
            // Non-short-circuit `|`/`&` keep this loop branch-free (and vectorised).
            let take = (vs[i] > best[i]) | ((vs[i] == best[i]) & (idx < bi[i]));
            bi[i] = if take { idx } else { bi[i] };
            best[i] = if take { vs[i] } else { best[i] };
        }
    }
    orow[ox..ox + L].copy_from_slice(&best);
    arow[ox..ox + L].copy_from_slice(&bi);
}

multiversion!(fn max_plane_arg<T>(g: &Plane, xk: &[(usize, usize)], interior: (usize, usize), inp: &[T], out: &mut [T], arg: &mut [u32], s: &mut MaxScratch<T>) => max_plane_arg_impl);

/// One plane of max pooling, values only. `colv`: a scratch row of W.
#[inline(always)]
fn max_plane_impl<T: Real, const FMA: bool>(
    g: &Plane,
    xk: &[(usize, usize)],
    inp: &[T],
    out: &mut [T],
    colv: &mut [T],
) {
    let (w, ow) = (g.w, g.ow);
    for oy in 0..g.oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        let (klo, khi) = g.y_kernel_range(oy);
        if klo >= khi {
            orow.fill(T::NEG_INFINITY);
            continue;
        }
        let iy0 = oy * g.sh + klo * g.dh - g.pt;
        colv.copy_from_slice(&inp[iy0 * w..(iy0 + 1) * w]);
        for ky in klo + 1..khi {
            let iy = oy * g.sh + ky * g.dh - g.pt;
            for (cv, &v) in colv.iter_mut().zip(&inp[iy * w..(iy + 1) * w]) {
                *cv = if v > *cv { v } else { *cv };
            }
        }
        for ox in 0..ow {
            let (lo, hi) = xk[ox];
            let mut best = T::NEG_INFINITY;
            for kx in lo..hi {
                let v = colv[ox * g.sw + kx * g.dw - g.pl];
                best = if v > best { v } else { best };
            }
            orow[ox] = best;
        }
    }
}

multiversion!(fn max_plane<T>(g: &Plane, xk: &[(usize, usize)], inp: &[T], out: &mut [T], colv: &mut [T]) => max_plane_impl);

/// Planes with outputs narrower than this take the window-table path: their rows are too
/// short for the row kernels' vector blocks, whose per-row setup then dominates.
const TABLE_MAX_OW: usize = 16;

/// The largest window table (offsets) built, so that a tall narrow plane stays on the row
/// kernels rather than allocating a table the size of its output times the window.
const TABLE_MAX_LEN: usize = 1 << 20;

/// Every output's window of a small plane as input offsets in row-major window order
/// (padding left out): output `o` reads `off[end[o - 1]..end[o]]`.
struct WindowTable {
    off: Vec<u32>,
    end: Vec<u32>,
}

impl WindowTable {
    fn new(g: &Plane) -> WindowTable {
        let xk = g.x_kernel_ranges();
        let (mut off, mut end) = (Vec::new(), Vec::with_capacity(g.oh * g.ow));
        for oy in 0..g.oh {
            let (klo, khi) = g.y_kernel_range(oy);
            for (ox, &(lo, hi)) in xk.iter().enumerate() {
                for ky in klo..khi {
                    let iy = oy * g.sh + ky * g.dh - g.pt;
                    for kx in lo..hi {
                        off.push((iy * g.w + ox * g.sw + kx * g.dw - g.pl) as u32);
                    }
                }
                end.push(off.len() as u32);
            }
        }
        WindowTable { off, end }
    }
}

/// One small plane of max pooling through its [`WindowTable`]; `arg` (when given) receives
/// each winner's index in the plane. Scanning in row-major window order with a strict `>`
/// keeps the first maximum; a NaN never wins.
fn max_plane_table<T: Real>(
    t: &WindowTable,
    inp: &[T],
    out: &mut [T],
    mut arg: Option<&mut [u32]>,
) {
    let mut start = 0;
    for (o, &end) in t.end.iter().enumerate() {
        let (mut best, mut bi) = (T::NEG_INFINITY, NONE);
        for &off in &t.off[start..end as usize] {
            let v = inp[off as usize];
            let take = v > best;
            bi = if take { off } else { bi };
            best = if take { v } else { best };
        }
        out[o] = best;
        if let Some(arg) = arg.as_deref_mut() {
            arg[o] = bi;
        }
        start = end as usize;
    }
}

/// Max pooling of `nplanes` planes of `x`, with the winners (each one's index in its plane)
/// when `save_argmax`.
pub(super) fn max_forward<T: Real>(
    nplanes: usize,
    g: &Plane,
    x: &[T],
    save_argmax: bool,
) -> (Vec<T>, Option<Vec<u32>>) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    if g.ow < TABLE_MAX_OW && ohw * g.kh * g.kw <= TABLE_MAX_LEN {
        let t = WindowTable::new(g);
        let plane = |i: usize| &x[i * hw..][..hw];
        return if save_argmax {
            let (y, a) = par_planes2(
                nplanes,
                ohw,
                || (),
                |_, i, out, arg| max_plane_table(&t, plane(i), out, Some(arg)),
            );
            (y, Some(a))
        } else {
            let y = par_planes(
                nplanes,
                ohw,
                || (),
                |_, i, out| max_plane_table(&t, plane(i), out, None),
            );
            (y, None)
        };
    }
    let xk = g.x_kernel_ranges();
    let interior = g.x_interior();
    if save_argmax {
        let (y, a) = par_planes2(
            nplanes,
            ohw,
            || MaxScratch::new(g),
            |s, i, out, arg| max_plane_arg(g, &xk, interior, &x[i * hw..][..hw], out, arg, s),
        );
        (y, Some(a))
    } else {
        let y = par_planes(
            nplanes,
            ohw,
            || vec![T::ZERO; g.w],
            |cv, i, out| max_plane(g, &xk, &x[i * hw..][..hw], out, cv),
        );
        (y, None)
    }
}

fn max_backward<T: Real>(
    nplanes: usize,
    hw: usize,
    ohw: usize,
    argmax: &[u32],
    gy: &[T],
) -> Vec<T> {
    par_planes(
        nplanes,
        hw,
        || (),
        |_, i, dxp| {
            let a = &argmax[i * ohw..][..ohw];
            let g = &gy[i * ohw..][..ohw];
            for (&a, &g) in a.iter().zip(g) {
                if a != NONE {
                    dxp[a as usize] += g;
                }
            }
        },
    )
}

/// Max-pool forward op; keeps the winners for its backward when `save_argmax`.
struct MaxPool {
    win: Window2d,
    save_argmax: bool,
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

impl MaxPool {
    fn store(&self, a: Option<Vec<u32>>) {
        if let Some(a) = a {
            *self.argmax.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(a));
        }
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "convnet-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (np, g) = planes(l, &self.win)?;
        let y = match s {
            CpuStorage::F32(_) => {
                let (y, a) = max_forward::<f32>(np, &g, contiguous(s, l)?, self.save_argmax);
                self.store(a);
                CpuStorage::F32(y)
            }
            CpuStorage::F64(_) => {
                let (y, a) = max_forward::<f64>(np, &g, contiguous(s, l)?, self.save_argmax);
                self.store(a);
                CpuStorage::F64(y)
            }
            _ => candle_core::bail!("max_pool2d: cpu kernel needs f32 or f64 input"),
        };
        let (n, c, _, _) = l.shape().dims4()?;
        Ok((y, Shape::from((n, c, g.oh, g.ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        let saved = self
            .argmax
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let argmax = match saved {
            Some(a) => a,
            None => {
                // Not saved at forward time: recompute the winners.
                let (np, g) = {
                    let (n, c, h, w) = x.dims4()?;
                    (n * c, Plane::new(&self.win, h, w)?)
                };
                let x = x.contiguous()?;
                let a = match x.dtype() {
                    candle_core::DType::F32 => {
                        max_forward::<f32>(np, &g, &x.flatten_all()?.to_vec1()?, true).1
                    }
                    candle_core::DType::F64 => {
                        max_forward::<f64>(np, &g, &x.flatten_all()?.to_vec1()?, true).1
                    }
                    dt => candle_core::bail!("max_pool2d: no cpu kernel for {dt:?}"),
                };
                Arc::new(a.unwrap_or_default())
            }
        };
        let (n, c, h, w) = x.dims4()?;
        let op = MaxPoolBwd {
            argmax,
            x_shape: (n, c, h, w),
        };
        Ok(Some(gy.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// Max-pool backward op: `gy -> dx`, scattering into the saved winners.
pub(super) struct MaxPoolBwd {
    pub argmax: Arc<Vec<u32>>,
    pub x_shape: (usize, usize, usize, usize),
}

impl CustomOp1 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "convnet-max-pool2d-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.x_shape;
        let (n2, c2, oh, ow) = l.shape().dims4()?;
        if (n2, c2) != (n, c) || self.argmax.len() != n * c * oh * ow {
            candle_core::bail!("max_pool2d backward: gradient shape {:?}", l.dims());
        }
        let dx = match s {
            CpuStorage::F32(_) => CpuStorage::F32(max_backward::<f32>(
                n * c,
                h * w,
                oh * ow,
                &self.argmax,
                contiguous(s, l)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(max_backward::<f64>(
                n * c,
                h * w,
                oh * ow,
                &self.argmax,
                contiguous(s, l)?,
            )),
            _ => candle_core::bail!("max_pool2d: cpu kernel needs f32 or f64 gradient"),
        };
        Ok((dx, Shape::from(self.x_shape)))
    }
}

// ---------------------------------------------------------------------------------------
// Average pooling kernels.

/// The divisors of [`avg_divisors`]: per output row, per output column.
type Divisors = (Vec<usize>, Vec<usize>);

fn avg_plane<T: Real>(
    g: &Plane,
    xk: &[(usize, usize)],
    div: &Divisors,
    inp: &[T],
    out: &mut [T],
    cols: &mut [T],
) {
    let (w, ow) = (g.w, g.ow);
    for oy in 0..g.oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        let (klo, khi) = g.y_kernel_range(oy);
        if klo >= khi {
            orow.fill(T::ZERO);
            continue;
        }
        cols.fill(T::ZERO);
        for ky in klo..khi {
            let iy = oy * g.sh + ky * g.dh - g.pt;
            for (c, &v) in cols.iter_mut().zip(&inp[iy * w..(iy + 1) * w]) {
                *c += v;
            }
        }
        let rows = div.0[oy];
        for ox in 0..ow {
            let (lo, hi) = xk[ox];
            let mut s = T::ZERO;
            for kx in lo..hi {
                s += cols[ox * g.sw + kx * g.dw - g.pl];
            }
            orow[ox] = if hi > lo {
                s / T::from_count(rows * div.1[ox])
            } else {
                T::ZERO
            };
        }
    }
}

fn avg_bwd_plane<T: Real>(
    g: &Plane,
    xk: &[(usize, usize)],
    div: &Divisors,
    gy: &[T],
    dx: &mut [T],
    t: &mut [T],
) {
    let (w, ow) = (g.w, g.ow);
    for oy in 0..g.oh {
        let grow = &gy[oy * ow..(oy + 1) * ow];
        let (klo, khi) = g.y_kernel_range(oy);
        if klo >= khi {
            continue;
        }
        let rows = div.0[oy];
        t.fill(T::ZERO);
        for ox in 0..ow {
            let (lo, hi) = xk[ox];
            if hi <= lo {
                continue;
            }
            let gv = grow[ox] / T::from_count(rows * div.1[ox]);
            for kx in lo..hi {
                t[ox * g.sw + kx * g.dw - g.pl] += gv;
            }
        }
        for ky in klo..khi {
            let iy = oy * g.sh + ky * g.dh - g.pt;
            for (d, &v) in dx[iy * w..(iy + 1) * w].iter_mut().zip(t.iter()) {
                *d += v;
            }
        }
    }
}

fn avg_forward<T: Real>(nplanes: usize, g: &Plane, counted: Pad2d, x: &[T]) -> Vec<T> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let xk = g.x_kernel_ranges();
    let div = avg_divisors(g, counted);
    par_planes(
        nplanes,
        ohw,
        || vec![T::ZERO; g.w],
        |cols, i, out| avg_plane(g, &xk, &div, &x[i * hw..][..hw], out, cols),
    )
}

fn avg_backward<T: Real>(nplanes: usize, g: &Plane, counted: Pad2d, gy: &[T]) -> Vec<T> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let xk = g.x_kernel_ranges();
    let div = avg_divisors(g, counted);
    par_planes(
        nplanes,
        hw,
        || vec![T::ZERO; g.w],
        |t, i, dxp| avg_bwd_plane(g, &xk, &div, &gy[i * ohw..][..ohw], dxp, t),
    )
}

/// Average-pool forward op; `counted` is the padding counted in each window's divisor.
struct AvgPool {
    win: Window2d,
    counted: Pad2d,
}

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "convnet-avg-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (np, g) = planes(l, &self.win)?;
        let y = match s {
            CpuStorage::F32(_) => {
                CpuStorage::F32(avg_forward::<f32>(np, &g, self.counted, contiguous(s, l)?))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(avg_forward::<f64>(np, &g, self.counted, contiguous(s, l)?))
            }
            _ => candle_core::bail!("avg_pool2d: cpu kernel needs f32 or f64 input"),
        };
        let (n, c, _, _) = l.shape().dims4()?;
        Ok((y, Shape::from((n, c, g.oh, g.ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let op = AvgPoolBwd {
            win: self.win,
            counted: self.counted,
            x_shape: (n, c, h, w),
        };
        Ok(Some(gy.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// Average-pool backward op: `gy -> dx`.
struct AvgPoolBwd {
    win: Window2d,
    counted: Pad2d,
    x_shape: (usize, usize, usize, usize),
}

impl CustomOp1 for AvgPoolBwd {
    fn name(&self) -> &'static str {
        "convnet-avg-pool2d-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.x_shape;
        let g = Plane::new(&self.win, h, w)?;
        if l.dims() != [n, c, g.oh, g.ow] {
            candle_core::bail!("avg_pool2d backward: gradient shape {:?}", l.dims());
        }
        let dx = match s {
            CpuStorage::F32(_) => CpuStorage::F32(avg_backward::<f32>(
                n * c,
                &g,
                self.counted,
                contiguous(s, l)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(avg_backward::<f64>(
                n * c,
                &g,
                self.counted,
                contiguous(s, l)?,
            )),
            _ => candle_core::bail!("avg_pool2d: cpu kernel needs f32 or f64 gradient"),
        };
        Ok((dx, Shape::from(self.x_shape)))
    }
}
