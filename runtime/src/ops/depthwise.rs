//! Depthwise 2-d convolution as candle custom ops with CPU kernels (forward, input gradient,
//! weight gradient) for `f32` and `f64`.
//!
//! Each kernel works on whole NCHW planes, in parallel over batch x channel planes with
//! rayon; the inner loops are row `axpy`s and dot products that the compiler vectorises, and
//! are compiled twice (baseline and AVX2+FMA, picked at run time).
//!
//! [`depthwise_conv2d_cpu`] is the entry point; [`super::depthwise_conv2d`] dispatches to it
//! on CPU and to the composite reference elsewhere.

use super::batch_norm::affine_row;
use super::cpu::{
    contiguous, conv_grads, multiversion, par_planes, par_planes_uninit, per_thread, tap, Plane,
    Real,
};
use super::Window2d;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Depthwise convolution on CPU through the custom ops of this module, with backward.
///
/// Output channel `c * multiplier + j` convolves input channel `c` with kernel
/// `weight[c * multiplier + j, 0]` (candle/PyTorch grouped convolution with `groups = C`).
/// Any kernel size, stride, dilation and (asymmetric) padding. Inputs that are not
/// contiguous are copied first.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[C * multiplier, 1, kh, kw]` -> `[N, C * multiplier, OH,
/// OW]`, where `(OH, OW) = win.output_size(H, W)` and `win.kernel` must be `(kh, kw)`.
///
/// # Errors
/// When `x` or `weight` is not on the CPU, is not `f32`/`f64`, their dtypes differ, or the
/// shapes do not match.
pub(crate) fn depthwise_conv2d_cpu(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (cm, one, kh, kw) = weight.dims4()?;
    if one != 1 || cm == 0 || cm % c != 0 {
        candle_core::bail!(
            "depthwise_conv2d: weight {:?} does not fit {c} input channels",
            weight.dims()
        );
    }
    if win.kernel != (kh, kw) {
        candle_core::bail!(
            "depthwise_conv2d: window kernel {:?} != weight kernel {:?}",
            win.kernel,
            (kh, kw)
        );
    }
    Plane::new(win, h, w)?;
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    x.apply_op2(&weight, DepthwiseFwd { win: *win })
}

/// Full geometry: batch, channels, multiplier and the plane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    n: usize,
    c: usize,
    m: usize,
    p: Plane,
}

impl Geom {
    pub(super) fn new(
        n: usize,
        c: usize,
        cm: usize,
        h: usize,
        w: usize,
        win: &Window2d,
    ) -> Result<Geom> {
        if c == 0 || cm % c != 0 {
            candle_core::bail!("depthwise_conv2d: {cm} output channels for {c} input channels");
        }
        Ok(Geom {
            n,
            c,
            m: cm / c,
            p: Plane::new(win, h, w)?,
        })
    }

    /// Input channels.
    pub(super) fn c(&self) -> usize {
        self.c
    }

    /// `(N, C, H * W)` of the input.
    pub(super) fn planes(&self) -> (usize, usize, usize) {
        (self.n, self.c, self.p.h * self.p.w)
    }

    fn cm(&self) -> usize {
        self.c * self.m
    }

    pub(super) fn y_shape(&self) -> Shape {
        Shape::from((self.n, self.cm(), self.p.oh, self.p.ow))
    }
}

pub(super) fn weight_dims(l: &Layout, win: &Window2d) -> Result<usize> {
    let (cm, one, kh, kw) = l.shape().dims4()?;
    if one != 1 || (kh, kw) != win.kernel {
        candle_core::bail!("depthwise_conv2d: bad weight shape {:?}", l.dims());
    }
    Ok(cm)
}

/// A per-channel `relu?(x * scale[c] + shift[c])` applied to each input plane as a kernel
/// reads it (training-mode batch norm fused into the convolution's input,
/// `norm_depthwise.rs`), so the normalised tensor is never stored. `scale` and `shift` are
/// values of the element type, widened to `f64`.
#[derive(Debug, Clone)]
pub(super) struct InputNorm {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    pub relu: bool,
}

/// Input plane `i` (batch x channel index) of `x` (planes of `hw`, `c` channels): the plane
/// itself, or with `norm`, the plane normalised into `buf`.
fn input_plane<'a, T: Real>(
    x: &'a [T],
    (i, c, hw): (usize, usize, usize),
    norm: Option<&InputNorm>,
    buf: &'a mut Vec<T>,
) -> &'a [T] {
    let plane = &x[i * hw..][..hw];
    let Some(norm) = norm else { return plane };
    let ch = i % c;
    buf.clear();
    buf.reserve(hw);
    let (a, b) = (T::from_f64(norm.scale[ch]), T::from_f64(norm.shift[ch]));
    super::batch_norm::affine_plane(plane, &mut buf.spare_capacity_mut()[..hw], a, b, norm.relu);
    // SAFETY: `affine_plane` wrote all `hw` elements.
    unsafe { buf.set_len(hw) };
    buf
}

/// Channel `ch`'s `(scale, shift, relu)` in `T`, with `norm`.
fn channel_norm<T: Real>(norm: Option<&InputNorm>, ch: usize) -> Option<(T, T, bool)> {
    norm.map(|n| (T::from_f64(n.scale[ch]), T::from_f64(n.shift[ch]), n.relu))
}

// ---------------------------------------------------------------------------------------
// Row primitives.

#[inline(always)]
fn axpy<T: Real, const FMA: bool>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = T::madd::<FMA>(a, x, *y);
    }
}

#[inline(always)]
fn dot<T: Real, const FMA: bool>(a: &[T], b: &[T]) -> T {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::ZERO; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (a, b) in (&mut ca).zip(&mut cb) {
        for i in 0..L {
            acc[i] = T::madd::<FMA>(a[i], b[i], acc[i]);
        }
    }
    let mut s = T::ZERO;
    for (&a, &b) in ca.remainder().iter().zip(cb.remainder()) {
        s = T::madd::<FMA>(a, b, s);
    }
    for v in acc {
        s += v;
    }
    s
}

// ---------------------------------------------------------------------------------------
// Plane kernels.

/// `out` (OH x OW) += conv(`inp` (H x W), `wk` (kh x kw)).
///
/// Interior columns (every horizontal tap inside the row) are computed in blocks of 64, 32
/// and 8 outputs held in registers over all taps; the edge columns tap by tap with bounds checks.
#[inline(always)]
fn fwd_plane_impl<T: Real, const FMA: bool>(
    g: &Plane,
    xr: &[(usize, usize)],
    inp: &[T],
    wk: &[T],
    out: &mut [T],
) {
    let ow = g.ow;
    let xlo = xr.iter().map(|r| r.0).max().unwrap_or(0);
    let xhi = xr.iter().map(|r| r.1).min().unwrap_or(0);
    for oy in 0..g.oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        let (klo, khi) = g.y_kernel_range(oy);
        if klo >= khi {
            continue;
        }
        if xhi > xlo {
            let rows = (klo, khi);
            if g.sw == 1 {
                let mut ox = xlo;
                // Wide blocks keep enough independent accumulators in flight to hide the
                // FMA latency (each accumulator is a chain of kh * kw dependent FMAs).
                while ox + 64 <= xhi {
                    fwd_block::<T, FMA, true, 64>(g, inp, wk, orow, oy, rows, ox, 0);
                    ox += 64;
                }
                while ox + 32 <= xhi {
                    fwd_block::<T, FMA, true, 32>(g, inp, wk, orow, oy, rows, ox, 0);
                    ox += 32;
                }
                while ox + 8 <= xhi {
                    fwd_block::<T, FMA, true, 8>(g, inp, wk, orow, oy, rows, ox, 0);
                    ox += 8;
                }
                if ox < xhi && xhi - xlo >= 8 {
                    // The last few outputs: a block ending at `xhi` that keeps only them.
                    fwd_block::<T, FMA, true, 8>(
                        g,
                        inp,
                        wk,
                        orow,
                        oy,
                        rows,
                        xhi - 8,
                        8 - (xhi - ox),
                    );
                } else {
                    for ox in ox..xhi {
                        fwd_block::<T, FMA, true, 1>(g, inp, wk, orow, oy, rows, ox, 0);
                    }
                }
            } else {
                let mut ox = xlo;
                while ox + 8 <= xhi {
                    fwd_block::<T, FMA, false, 8>(g, inp, wk, orow, oy, rows, ox, 0);
                    ox += 8;
                }
                for ox in ox..xhi {
                    fwd_block::<T, FMA, false, 1>(g, inp, wk, orow, oy, rows, ox, 0);
                }
            }
        }
        // Edge columns.
        let (a, b) = (xlo.min(ow), xhi.max(xlo).min(ow));
        for ox in (0..a).chain(b..ow) {
            let mut acc = orow[ox];
            for ky in klo..khi {
                let iy = oy * g.sh + ky * g.dh - g.pt;
                let irow = &inp[iy * g.w..(iy + 1) * g.w];
                for kx in 0..g.kw {
                    if let Some(ix) = tap(ox, g.sw, kx * g.dw, g.pl, g.w) {
                        acc = T::madd::<FMA>(wk[ky * g.kw + kx], irow[ix], acc);
                    }
                }
            }
            orow[ox] = acc;
        }
    }
}

/// Interior outputs `ox..ox + L` of row `oy` (all taps inside the plane), accumulated in
/// registers over every tap; adds all but the first `skip` to `orow`. `UNIT`: the
/// horizontal stride is 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fwd_block<T: Real, const FMA: bool, const UNIT: bool, const L: usize>(
    g: &Plane,
    inp: &[T],
    wk: &[T],
    orow: &mut [T],
    oy: usize,
    (klo, khi): (usize, usize),
    ox: usize,
    skip: usize,
) {
    let sw = if UNIT { 1 } else { g.sw };
    let mut acc = [T::ZERO; L];
    for ky in klo..khi {
        let iy = oy * g.sh + ky * g.dh - g.pt;
        let irow = &inp[iy * g.w..(iy + 1) * g.w];
        let wrow = &wk[ky * g.kw..(ky + 1) * g.kw];
        for (kx, &wv) in wrow.iter().enumerate() {
            let base = ox * sw + kx * g.dw - g.pl;
            if UNIT {
                let seg = &irow[base..base + L];
                for i in 0..L {
                    acc[i] = T::madd::<FMA>(wv, seg[i], acc[i]);
                }
            } else {
                let seg = &irow[base..=base + (L - 1) * sw];
                for i in 0..L {
                    acc[i] = T::madd::<FMA>(wv, seg[i * sw], acc[i]);
                }
            }
        }
    }
    for (o, a) in orow[ox + skip..ox + L].iter_mut().zip(&acc[skip..]) {
        *o += *a;
    }
}

multiversion!(fn fwd_plane<T>(g: &Plane, xr: &[(usize, usize)], inp: &[T], wk: &[T], out: &mut [T]) => fwd_plane_impl);

/// `dx` (H x W) += transposed conv of `gy` (OH x OW) with `wk`.
#[inline(always)]
fn bwd_input_plane_impl<T: Real, const FMA: bool>(
    g: &Plane,
    xr: &[(usize, usize)],
    gy: &[T],
    wk: &[T],
    dx: &mut [T],
) {
    let (w, ow) = (g.w, g.ow);
    for oy in 0..g.oh {
        let grow = &gy[oy * ow..(oy + 1) * ow];
        for ky in 0..g.kh {
            let Some(iy) = tap(oy, g.sh, ky * g.dh, g.pt, g.h) else {
                continue;
            };
            let drow = &mut dx[iy * w..(iy + 1) * w];
            for (kx, &(lo, hi)) in xr.iter().enumerate() {
                if lo >= hi {
                    continue;
                }
                let wv = wk[ky * g.kw + kx];
                let base = lo * g.sw + kx * g.dw - g.pl;
                if g.sw == 1 {
                    axpy::<T, FMA>(wv, &grow[lo..hi], &mut drow[base..base + (hi - lo)]);
                } else {
                    for (i, &gv) in grow[lo..hi].iter().enumerate() {
                        let d = &mut drow[base + i * g.sw];
                        *d = T::madd::<FMA>(wv, gv, *d);
                    }
                }
            }
        }
    }
}

multiversion!(fn bwd_input_plane<T>(g: &Plane, xr: &[(usize, usize)], gy: &[T], wk: &[T], dx: &mut [T]) => bwd_input_plane_impl);

/// `acc` (kh x kw) += correlation of `inp` (H x W) with `gy` (OH x OW).
#[inline(always)]
fn bwd_weight_plane_impl<T: Real, const FMA: bool>(
    g: &Plane,
    xr: &[(usize, usize)],
    inp: &[T],
    gy: &[T],
    acc: &mut [T],
) {
    let (w, ow) = (g.w, g.ow);
    for oy in 0..g.oh {
        let grow = &gy[oy * ow..(oy + 1) * ow];
        for ky in 0..g.kh {
            let Some(iy) = tap(oy, g.sh, ky * g.dh, g.pt, g.h) else {
                continue;
            };
            let irow = &inp[iy * w..(iy + 1) * w];
            for (kx, &(lo, hi)) in xr.iter().enumerate() {
                if lo >= hi {
                    continue;
                }
                let base = lo * g.sw + kx * g.dw - g.pl;
                let s = if g.sw == 1 {
                    dot::<T, FMA>(&grow[lo..hi], &irow[base..base + (hi - lo)])
                } else {
                    let mut s = T::ZERO;
                    for (i, &gv) in grow[lo..hi].iter().enumerate() {
                        s = T::madd::<FMA>(gv, irow[base + i * g.sw], s);
                    }
                    s
                };
                acc[ky * g.kw + kx] += s;
            }
        }
    }
}

multiversion!(fn bwd_weight_plane<T>(g: &Plane, xr: &[(usize, usize)], inp: &[T], gy: &[T], acc: &mut [T]) => bwd_weight_plane_impl);

// ---------------------------------------------------------------------------------------
// Flat path for small stride-1 planes: the input is copied into a zero-padded buffer of row
// length `pw`, so output `(oy, ox)` with tap `t` reads `buf[oy * pw + ox + off[t]]` and each
// tap is one long `axpy` (forward) or `dot` (weight gradient) over the whole plane: no edge
// cases, full vector width even when rows are 4 or 15 values long.

/// Stride-1 planes up to this output width take the flat path (wider rows keep the
/// register-blocked kernels, which pass over the output once instead of once per tap).
const FLAT_MAX_OW: usize = 64;

/// Geometry of the flat path for one plane shape.
#[derive(Debug, Clone)]
struct Flat {
    /// Row length and row count of the padded buffer.
    pw: usize,
    ph: usize,
    /// Padded-buffer length (rows plus the slack the last taps read past the last row).
    len: usize,
    /// `oh * pw`: the flat output length (columns `ow..pw` of each row are discarded).
    rows: usize,
    /// Buffer offset of each tap.
    off: Vec<usize>,
}

impl Flat {
    fn new(p: &Plane) -> Option<Flat> {
        if p.sh != 1 || p.sw != 1 || p.ow > FLAT_MAX_OW {
            return None;
        }
        let pw = p.ow + (p.kw - 1) * p.dw;
        let ph = p.oh + (p.kh - 1) * p.dh;
        let off = (0..p.kh)
            .flat_map(|ky| (0..p.kw).map(move |kx| (ky * p.dh * pw, kx * p.dw)))
            .map(|(a, b)| a + b)
            .collect();
        Some(Flat {
            pw,
            ph,
            len: ph * pw + (p.kw - 1) * p.dw,
            rows: p.oh * pw,
            off,
        })
    }

    /// Copies plane `inp` (`p.h` x `p.w`) into `s.pad` at `(p.pt, p.pl)`, zeros around. The
    /// buffer is reused from plane to plane: the margins are zeroed when it is first sized for
    /// this plane geometry and stay zero, so each plane costs only its rows' copies.
    /// With `norm`, each row is normalised (`relu?(x * scale + shift)`) as it is copied.
    fn pad<T: Real>(
        &self,
        p: &Plane,
        inp: &[T],
        norm: Option<(T, T, bool)>,
        s: &mut FlatScratch<T>,
    ) {
        let pw = self.pw;
        let key = [self.len, pw, p.pt, p.pl, p.h, p.w];
        if s.pad_key != Some(key) {
            s.pad.clear();
            s.pad.resize(self.len, T::ZERO);
            s.pad_key = Some(key);
        }
        let (left, n) = (p.pl.min(pw), p.w.min(pw.saturating_sub(p.pl)));
        let rows = p.h.min(self.ph.saturating_sub(p.pt));
        let top = p.pt.min(self.ph) * pw;
        for (row, r) in inp
            .chunks_exact(p.w)
            .zip(s.pad[top..top + rows * pw].chunks_exact_mut(pw))
        {
            let dst = &mut r[left..left + n];
            match norm {
                None => dst.copy_from_slice(&row[..n]),
                Some((a, b, relu)) => affine_row(&row[..n], dst, a, b, relu),
            }
        }
    }

    /// The convolution of plane `inp` with `wk`, as `oh` rows of `pw` in `s.out` (columns
    /// `ow..pw` of each row are to be discarded).
    fn conv_flat<T: Real>(
        &self,
        p: &Plane,
        (inp, norm): (&[T], Option<(T, T, bool)>),
        wk: &[T],
        s: &mut FlatScratch<T>,
    ) {
        self.pad(p, inp, norm, s);
        // Sized only: `flat_conv` overwrites it (and the weight gradient's zero columns).
        s.out.resize(self.rows, T::ZERO);
        s.out_zero_pad = false;
        flat_conv(&self.off, &s.pad, wk, &mut s.out);
    }

    /// `out` (`oh` x `ow`, uninitialised) = the convolution of plane `inp` (normalised by
    /// `norm` if given) with `wk`.
    fn conv_into<T: Real>(
        &self,
        p: &Plane,
        (inp, norm): (&[T], Option<(T, T, bool)>),
        wk: &[T],
        s: &mut FlatScratch<T>,
        out: &mut [MaybeUninit<T>],
    ) {
        self.conv_flat(p, (inp, norm), wk, s);
        for (o, a) in out.chunks_exact_mut(p.ow).zip(s.out.chunks_exact(self.pw)) {
            for (o, &a) in o.iter_mut().zip(a) {
                o.write(a);
            }
        }
    }

    /// `out` (`oh` x `ow`) += the convolution of plane `inp` with `wk`.
    fn conv<T: Real>(&self, p: &Plane, inp: &[T], wk: &[T], s: &mut FlatScratch<T>, out: &mut [T]) {
        self.conv_flat(p, (inp, None), wk, s);
        for (o, a) in out.chunks_exact_mut(p.ow).zip(s.out.chunks_exact(self.pw)) {
            for (o, &a) in o.iter_mut().zip(a) {
                *o += a;
            }
        }
    }

    /// `acc` (`kh * kw`) += the correlation of plane `inp` (normalised by `norm` if given)
    /// with output gradient `gy`.
    fn weight_grad<T: Real>(
        &self,
        p: &Plane,
        (inp, norm): (&[T], Option<(T, T, bool)>),
        gy: &[T],
        s: &mut FlatScratch<T>,
        acc: &mut [T],
    ) {
        self.pad(p, inp, norm, s);
        // `gy` laid out as the flat output: rows of `pw`, the last `pw - ow` columns zero
        // (zeroed once, then only the rows' values are copied).
        if !s.out_zero_pad || s.out.len() != self.rows {
            s.out.clear();
            s.out.resize(self.rows, T::ZERO);
            s.out_zero_pad = true;
        }
        for (row, r) in gy.chunks_exact(p.ow).zip(s.out.chunks_exact_mut(self.pw)) {
            r[..p.ow].copy_from_slice(row);
        }
        flat_weight_grad(&self.off, &s.pad, &s.out, acc);
    }
}

/// Per-thread buffers of the flat path: the padded input (with the plane geometry its zero
/// margins were made for) and the flat output or output gradient (whether its padding
/// columns are zero).
struct FlatScratch<T> {
    pad: Vec<T>,
    pad_key: Option<[usize; 6]>,
    out: Vec<T>,
    out_zero_pad: bool,
}

/// Per-thread buffers of a kernel reading (possibly normalised) input planes: the flat
/// path's and the normalised plane.
type NormScratch<T> = (FlatScratch<T>, Vec<T>);

impl<T> Default for FlatScratch<T> {
    fn default() -> Self {
        FlatScratch {
            pad: Vec::new(),
            pad_key: None,
            out: Vec::new(),
            out_zero_pad: false,
        }
    }
}

#[inline(always)]
fn flat_conv_impl<T: Real, const FMA: bool>(off: &[usize], xpad: &[T], wk: &[T], acc: &mut [T]) {
    let i = flat_conv_blocks::<T, FMA, 64>(off, xpad, wk, acc, 0);
    let i = flat_conv_blocks::<T, FMA, 8>(off, xpad, wk, acc, i);
    for (j, a) in acc.iter_mut().enumerate().skip(i) {
        let mut s = T::ZERO;
        for (&o, &w) in off.iter().zip(wk) {
            s = T::madd::<FMA>(w, xpad[j + o], s);
        }
        *a = s;
    }
}

/// [`flat_conv_impl`] on the whole blocks of `L` outputs from `i`; returns where they end.
#[inline(always)]
fn flat_conv_blocks<T: Real, const FMA: bool, const L: usize>(
    off: &[usize],
    xpad: &[T],
    wk: &[T],
    acc: &mut [T],
    mut i: usize,
) -> usize {
    while i + L <= acc.len() {
        let mut r = [T::ZERO; L];
        for (&o, &w) in off.iter().zip(wk) {
            let x = &xpad[i + o..][..L];
            for l in 0..L {
                r[l] = T::madd::<FMA>(w, x[l], r[l]);
            }
        }
        acc[i..i + L].copy_from_slice(&r);
        i += L;
    }
    i
}

/// Taps whose weight-gradient sums [`flat_weight_grad_impl`] keeps in registers at once.
const GRAD_TAPS: usize = 9;

/// `acc[t] += Σ_i gy[i] * xpad[i + off[t]]`, for up to [`GRAD_TAPS`] taps at a time over
/// blocks of 8 values: each block of `gy` is loaded once for all those taps.
#[inline(always)]
fn flat_weight_grad_impl<T: Real, const FMA: bool>(
    off: &[usize],
    xpad: &[T],
    gy: &[T],
    acc: &mut [T],
) {
    const L: usize = 8;
    let n = gy.len();
    let body = n - n % L;
    for (offs, accs) in off.chunks(GRAD_TAPS).zip(acc.chunks_mut(GRAD_TAPS)) {
        let mut r = [[T::ZERO; L]; GRAD_TAPS];
        for i in (0..body).step_by(L) {
            let g = &gy[i..i + L];
            for (rt, &o) in r.iter_mut().zip(offs) {
                let x = &xpad[i + o..][..L];
                for l in 0..L {
                    rt[l] = T::madd::<FMA>(g[l], x[l], rt[l]);
                }
            }
        }
        for ((a, rt), &o) in accs.iter_mut().zip(&r).zip(offs) {
            let mut s = T::ZERO;
            for j in body..n {
                s = T::madd::<FMA>(gy[j], xpad[j + o], s);
            }
            for &v in rt {
                s += v;
            }
            *a += s;
        }
    }
}

multiversion!(fn flat_conv<T>(off: &[usize], xpad: &[T], wk: &[T], acc: &mut [T]) => flat_conv_impl);
multiversion!(fn flat_weight_grad<T>(off: &[usize], xpad: &[T], gy: &[T], acc: &mut [T]) => flat_weight_grad_impl);

// ---------------------------------------------------------------------------------------
// Whole-tensor kernels.

/// The forward pass over input `x`, normalised plane by plane first with `norm`.
pub(super) fn forward<T: Real>(g: &Geom, x: &[T], wt: &[T], norm: Option<&InputNorm>) -> Vec<T> {
    let p = &g.p;
    let (hw, ohw, k, cm) = (p.h * p.w, p.oh * p.ow, p.kh * p.kw, g.cm());
    // Output plane `i` reads input plane `src(i)` with kernel `i % cm`.
    let src = |i: usize| (i / cm * g.c + i % cm / g.m, g.c, hw);
    if let Some(f) = Flat::new(p) {
        // SAFETY: `conv_into` writes the whole plane.
        return unsafe {
            par_planes_uninit(g.n * cm, ohw, FlatScratch::default, |s, i, out| {
                let (plane, c, _) = src(i);
                let inp = (&x[plane * hw..][..hw], channel_norm(norm, plane % c));
                f.conv_into(p, inp, &wt[i % cm * k..][..k], s, out)
            })
        };
    }
    let xr = p.x_tap_ranges();
    par_planes(g.n * cm, ohw, Vec::new, |nb, i, out| {
        let inp = input_plane(x, src(i), norm, nb);
        fwd_plane(p, &xr, inp, &wt[i % cm * k..][..k], out)
    })
}

fn backward_input<T: Real>(g: &Geom, gy: &[T], wt: &[T]) -> Vec<T> {
    let p = &g.p;
    let (hw, ohw, k, cm) = (p.h * p.w, p.oh * p.ow, p.kh * p.kw, g.cm());
    let (eh, ew) = (p.dh * (p.kh - 1) + 1, p.dw * (p.kw - 1) + 1);
    if p.sh == 1 && p.sw == 1 && p.pt < eh && p.pl < ew {
        // Stride 1: the input gradient is the correlation of `gy` with the flipped kernel
        // over the complementary padding, which the forward kernel computes.
        let t = Plane {
            h: p.oh,
            w: p.ow,
            oh: p.h,
            ow: p.w,
            pt: eh - 1 - p.pt,
            pl: ew - 1 - p.pl,
            ..*p
        };
        let (xr, flat) = (t.x_tap_ranges(), Flat::new(&t));
        let flipped: Vec<T> = wt
            .chunks_exact(k)
            .flat_map(|w| w.iter().rev().copied())
            .collect();
        let gy_plane = |i: usize| &gy[i * ohw..][..ohw];
        if let (Some(f), 1) = (&flat, g.m) {
            // One output channel per input channel: each plane is one convolution.
            // SAFETY: `conv_into` writes the whole plane.
            return unsafe {
                par_planes_uninit(g.n * g.c, hw, FlatScratch::default, |s, i, dxp| {
                    f.conv_into(
                        &t,
                        (gy_plane(i), None),
                        &flipped[i % g.c * k..][..k],
                        s,
                        dxp,
                    )
                })
            };
        }
        return par_planes(g.n * g.c, hw, FlatScratch::default, |s, i, dxp| {
            let (ni, ci) = (i / g.c, i % g.c);
            for j in 0..g.m {
                let co = ci * g.m + j;
                let gyp = &gy[(ni * cm + co) * ohw..][..ohw];
                let wk = &flipped[co * k..][..k];
                match &flat {
                    Some(f) => f.conv(&t, gyp, wk, s, dxp),
                    None => fwd_plane(&t, &xr, gyp, wk, dxp),
                }
            }
        });
    }
    let xr = p.x_tap_ranges();
    par_planes(
        g.n * g.c,
        hw,
        || (),
        |_, i, dxp| {
            let (ni, ci) = (i / g.c, i % g.c);
            for j in 0..g.m {
                let co = ci * g.m + j;
                let gyp = &gy[(ni * cm + co) * ohw..][..ohw];
                bwd_input_plane(p, &xr, gyp, &wt[co * k..][..k], dxp);
            }
        },
    )
}

/// The weight gradient, with input `x` normalised plane by plane first with `norm`.
fn backward_weight<T: Real>(g: &Geom, x: &[T], gy: &[T], norm: Option<&InputNorm>) -> Vec<T> {
    let p = &g.p;
    let (hw, ohw, k, cm) = (p.h * p.w, p.oh * p.ow, p.kh * p.kw, g.cm());
    let (xr, flat) = (p.x_tap_ranges(), Flat::new(p));
    let mut partial = vec![T::ZERO; g.n * cm * k];
    partial
        .par_chunks_mut(k)
        .with_min_len(per_thread(g.n * cm))
        .enumerate()
        .for_each_init(NormScratch::default, |(s, nb), (i, acc)| {
            let (ni, co) = (i / cm, i % cm);
            let ci = co / g.m;
            let plane = ni * g.c + ci;
            let gyp = &gy[(ni * cm + co) * ohw..][..ohw];
            match &flat {
                Some(f) => {
                    let inp = (&x[plane * hw..][..hw], channel_norm(norm, ci));
                    f.weight_grad(p, inp, gyp, s, acc)
                }
                None => {
                    let inp = input_plane(x, (plane, g.c, hw), norm, nb);
                    bwd_weight_plane(p, &xr, inp, gyp, acc)
                }
            }
        });
    let mut dw = vec![T::ZERO; cm * k];
    for chunk in partial.chunks_exact(cm * k) {
        for (d, &v) in dw.iter_mut().zip(chunk) {
            *d += v;
        }
    }
    dw
}

// ---------------------------------------------------------------------------------------
// Custom ops.

/// Forward op: `(x, weight) -> y`.
struct DepthwiseFwd {
    win: Window2d,
}

impl CustomOp2 for DepthwiseFwd {
    fn name(&self) -> &'static str {
        "convnet-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let g = Geom::new(n, c, weight_dims(l2, &self.win)?, h, w, &self.win)?;
        let y = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(forward(&g, contiguous(s1, l1)?, contiguous(s2, l2)?, None))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(forward(&g, contiguous(s1, l1)?, contiguous(s2, l2)?, None))
            }
            _ => candle_core::bail!("depthwise_conv2d: cpu kernel needs f32 or f64 inputs"),
        };
        Ok((y, g.y_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, c, h, w) = x.dims4()?;
        let win = self.win;
        let input_op = || Ok(DepthwiseBwdInput { win, c, h, w });
        conv_grads(
            x,
            weight,
            gy,
            input_op,
            DepthwiseBwdWeight { win, norm: None },
        )
    }
}

/// Input-gradient op: `(gy, weight) -> dx`, for an input of `c` channels of `h` x `w`.
pub(super) struct DepthwiseBwdInput {
    pub win: Window2d,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl CustomOp2 for DepthwiseBwdInput {
    fn name(&self) -> &'static str {
        "convnet-depthwise-conv2d-bwd-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, cm, oh, ow) = l1.shape().dims4()?;
        let g = Geom::new(
            n,
            self.c,
            weight_dims(l2, &self.win)?,
            self.h,
            self.w,
            &self.win,
        )?;
        if cm != g.cm() || (oh, ow) != (g.p.oh, g.p.ow) {
            candle_core::bail!("depthwise_conv2d backward: gradient shape {:?}", l1.dims());
        }
        let dx = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(backward_input(&g, contiguous(s1, l1)?, contiguous(s2, l2)?))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(backward_input(&g, contiguous(s1, l1)?, contiguous(s2, l2)?))
            }
            _ => candle_core::bail!("depthwise_conv2d: cpu kernel needs f32 or f64 inputs"),
        };
        Ok((dx, Shape::from((n, self.c, self.h, self.w))))
    }
}

/// Weight-gradient op: `(x, gy) -> dweight`, with `x` normalised by `norm` first when given.
pub(super) struct DepthwiseBwdWeight {
    pub win: Window2d,
    pub norm: Option<InputNorm>,
}

impl CustomOp2 for DepthwiseBwdWeight {
    fn name(&self) -> &'static str {
        "convnet-depthwise-conv2d-bwd-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (n2, cm, oh, ow) = l2.shape().dims4()?;
        let g = Geom::new(n, c, cm, h, w, &self.win)?;
        if n2 != n || (oh, ow) != (g.p.oh, g.p.ow) {
            candle_core::bail!("depthwise_conv2d backward: gradient shape {:?}", l2.dims());
        }
        let dw = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(backward_weight(
                &g,
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                self.norm.as_ref(),
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(backward_weight(
                &g,
                contiguous(s1, l1)?,
                contiguous(s2, l2)?,
                self.norm.as_ref(),
            )),
            _ => candle_core::bail!("depthwise_conv2d: cpu kernel needs f32 or f64 inputs"),
        };
        Ok((dw, Shape::from((cm, 1, g.p.kh, g.p.kw))))
    }
}
