//! Dense (ungrouped) 2-d convolution as candle custom ops whose CPU kernels build the im2col
//! columns of one image at a time in a per-thread buffer and multiply: `y[n] = W · cols(x[n])`,
//! `dW = Σₙ dy[n] · cols(x[n])ᵀ`, `dx[n] = col2im(Wᵀ · dy[n])`.
//!
//! Candle's own conv2d backward always computes the input gradient (a `conv_transpose2d`),
//! and gets the weight gradient from a convolution with the whole output as its kernel; here
//! the input gradient is skipped when the input needs none (the first layer of a network),
//! the columns are never materialised for the whole batch, and any stride, dilation and
//! asymmetric padding run the same kernels.
//!
//! [`conv2d_cpu`] is the entry point; [`super::conv2d`] dispatches to it on CPU in `f32` /
//! `f64`.

use super::cpu::{
    conv_grads, par_planes, par_planes_uninit, tap, tap_range, with_real_slices, Plane, Real,
};
use super::gemm::{matmul, matmul_uninit, sum_over_images, Mat, Threads};
use super::Window2d;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Dense 2-d convolution without bias on CPU through the custom ops of this module, with
/// backward: `y[n, o] = Σ_c x[n, c] ⋆ weight[o, c]` over zero padding `win.pad`, with
/// `win.stride` and `win.dilation`.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, kh, kw]` -> `[N, O, OH, OW]`, where
/// `(OH, OW) = win.output_size(H, W)` and `win.kernel` must be `(kh, kw)`.
///
/// # Errors
/// When the tensors are not `f32`/`f64` on the CPU, their dtypes differ, or the shapes and
/// window do not fit.
pub(crate) fn conv2d_cpu(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    Geom::new(x.dims(), weight.dims(), win)?;
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv2dFwd { win: *win })
}

/// Geometry of one dense convolution.
#[derive(Debug, Clone, Copy)]
struct Geom {
    n: usize,
    c: usize,
    o: usize,
    p: Plane,
}

impl Geom {
    fn new(x: &[usize], weight: &[usize], win: &Window2d) -> Result<Geom> {
        let (&[n, c, h, w], &[o, ci, kh, kw]) = (x, weight) else {
            candle_core::bail!(
                "conv2d: weight {weight:?} is not [O, C, kh, kw] or input {x:?} is not [N, C, H, W]"
            );
        };
        if ci != c || win.kernel != (kh, kw) {
            candle_core::bail!(
                "conv2d: weight {weight:?} does not fit input {x:?} with window {win:?}"
            );
        }
        Ok(Geom {
            n,
            c,
            o,
            p: Plane::new(win, h, w)?,
        })
    }

    /// Rows of the columns matrix: one per input channel and tap.
    fn k(&self) -> usize {
        self.c * self.p.kh * self.p.kw
    }

    /// Output pixels per channel (columns of the columns matrix).
    fn px(&self) -> usize {
        self.p.oh * self.p.ow
    }

    fn hw(&self) -> usize {
        self.p.h * self.p.w
    }

    /// Parallel over images when there are enough of them, else inside each multiply.
    fn threads(&self) -> Threads {
        Threads::for_images(self.n)
    }

    /// Calls `f(c, row, oy, iy, (lo, hi), ix0)` for every row segment of the columns matrix:
    /// `row` indexes the `[K, P]` matrix (input channel `c`, tap), output row `oy` reads input
    /// row `iy` (none in the padding), and outputs `lo..hi` of it read input columns
    /// `ix0 + (ox - lo) * sw` (the others read padding).
    fn for_each_segment(
        &self,
        mut f: impl FnMut(usize, usize, usize, Option<usize>, (usize, usize), usize),
    ) {
        let g = &self.p;
        for c in 0..self.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (c * g.kh + ky) * g.kw + kx;
                    let (lo, hi) = tap_range(g.w, g.ow, g.sw, kx * g.dw, g.pl);
                    let ix0 = (lo * g.sw + kx * g.dw).saturating_sub(g.pl);
                    for oy in 0..g.oh {
                        let iy = tap(oy, g.sh, ky * g.dh, g.pt, g.h);
                        f(c, row, oy, iy, (lo, hi), ix0);
                    }
                }
            }
        }
    }

    /// The `[K, P]` columns of image `x[n]` (one plane set of `C * H * W`) into `cols`.
    fn im2col<T: Real>(&self, xn: &[T], cols: &mut Vec<T>) {
        let (px, ow, hw, w, sw) = (self.px(), self.p.ow, self.hw(), self.p.w, self.p.sw);
        cols.resize(self.k() * px, T::ZERO);
        self.for_each_segment(|c, row, oy, iy, (lo, hi), ix0| {
            let dst = &mut cols[row * px + oy * ow..][..ow];
            let Some(iy) = iy else {
                dst.fill(T::ZERO);
                return;
            };
            let src = &xn[c * hw + iy * w..][..w];
            dst[..lo].fill(T::ZERO);
            dst[hi..].fill(T::ZERO);
            if lo >= hi {
            } else if sw == 1 {
                dst[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
            } else {
                for (d, &s) in dst[lo..hi].iter_mut().zip(src[ix0..].iter().step_by(sw)) {
                    *d = s;
                }
            }
        });
    }

    /// Adds the `[K, P]` columns gradient `cols` back onto image gradient `dxn` (the adjoint
    /// of [`Geom::im2col`]).
    fn col2im<T: Real>(&self, cols: &[T], dxn: &mut [T]) {
        let (px, ow, hw, w, sw) = (self.px(), self.p.ow, self.hw(), self.p.w, self.p.sw);
        self.for_each_segment(|c, row, oy, iy, (lo, hi), ix0| {
            let (Some(iy), true) = (iy, lo < hi) else {
                return;
            };
            let src = &cols[row * px + oy * ow..][lo..hi];
            let dst = &mut dxn[c * hw + iy * w..][..w];
            for (d, &s) in dst[ix0..].iter_mut().step_by(sw).zip(src) {
                *d += s;
            }
        });
    }
}

/// `(x, weight) -> y`.
struct Conv2dFwd {
    win: Window2d,
}

/// `(gy, weight) -> dx`, for an input of `h` x `w`.
struct Conv2dBwdInput {
    g: Geom,
}

/// `(x, gy) -> dweight`.
struct Conv2dBwdWeight {
    win: Window2d,
}

fn forward<T: Real>(g: &Geom, x: &[T], weight: &[T]) -> Vec<T> {
    let wm = Mat::row_major(weight, g.o, g.k());
    let (t, chw) = (g.threads(), g.c * g.hw());
    // SAFETY: each multiply writes its whole `[O, P]` plane.
    unsafe {
        par_planes_uninit(g.n, g.o * g.px(), Vec::new, |cols, i, out| {
            g.im2col(&x[i * chw..(i + 1) * chw], cols);
            matmul_uninit(out, wm, Mat::row_major(cols, g.k(), g.px()), t)
        })
    }
}

fn backward_input<T: Real>(g: &Geom, gy: &[T], weight: &[T]) -> Vec<T> {
    let wt = Mat::row_major(weight, g.o, g.k()).t();
    let (t, opx) = (g.threads(), g.o * g.px());
    par_planes(g.n, g.c * g.hw(), Vec::new, |cols: &mut Vec<T>, i, out| {
        cols.resize(g.k() * g.px(), T::ZERO);
        let gyi = Mat::row_major(&gy[i * opx..(i + 1) * opx], g.o, g.px());
        matmul(cols, wt, gyi, false, t);
        g.col2im(cols, out);
    })
}

fn backward_weight<T: Real>(g: &Geom, x: &[T], gy: &[T]) -> Vec<T> {
    let (chw, opx) = (g.c * g.hw(), g.o * g.px());
    sum_over_images(g.n, g.o * g.k(), g.threads(), |acc, cols, i, t| {
        g.im2col(&x[i * chw..(i + 1) * chw], cols);
        let gyi = Mat::row_major(&gy[i * opx..(i + 1) * opx], g.o, g.px());
        matmul(acc, gyi, Mat::row_major(cols, g.k(), g.px()).t(), true, t);
    })
}

impl CustomOp2 for Conv2dFwd {
    fn name(&self) -> &'static str {
        "convnet-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), &self.win)?;
        let y = with_real_slices!("conv2d", s1, l1, s2, l2, |x, w| forward(&g, x, w));
        Ok((y, Shape::from((g.n, g.o, g.p.oh, g.p.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let win = self.win;
        let input_op = || {
            Ok(Conv2dBwdInput {
                g: Geom::new(x.dims(), weight.dims(), &win)?,
            })
        };
        conv_grads(x, weight, gy, input_op, Conv2dBwdWeight { win })
    }
}

impl CustomOp2 for Conv2dBwdInput {
    fn name(&self) -> &'static str {
        "convnet-conv2d-bwd-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        if l1.dims() != [g.n, g.o, g.p.oh, g.p.ow] {
            candle_core::bail!("conv2d backward: gradient {:?}", l1.dims());
        }
        let dx = with_real_slices!("conv2d", s1, l1, s2, l2, |gy, w| backward_input(&g, gy, w));
        Ok((dx, Shape::from((g.n, g.c, g.p.h, g.p.w))))
    }
}

impl CustomOp2 for Conv2dBwdWeight {
    fn name(&self) -> &'static str {
        "convnet-conv2d-bwd-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[_, c, _, _], &[_, o, _, _]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!("conv2d backward: shapes {:?} {:?}", l1.dims(), l2.dims());
        };
        let (kh, kw) = self.win.kernel;
        let g = Geom::new(l1.dims(), &[o, c, kh, kw], &self.win)?;
        if l2.dims() != [g.n, o, g.p.oh, g.p.ow] {
            candle_core::bail!("conv2d backward: gradient {:?}", l2.dims());
        }
        let dw = with_real_slices!("conv2d", s1, l1, s2, l2, |x, gy| backward_weight(&g, x, gy));
        Ok((dw, Shape::from((o, c, kh, kw))))
    }
}
