//! 1x1 convolution (any stride) as candle custom ops whose CPU kernels are per-image matrix
//! multiplies in NCHW: with `x[n]` read as a `[C, H * W]` matrix, `y[n] = W · x[n]`,
//! `dx[n] = Wᵀ · dy[n]` and `dW = Σₙ dy[n] · x[n]ᵀ`. No activation is transposed or copied
//! (a strided input is gathered once per image), and the whole layer is one node of the
//! autograd graph, where candle's reshape / broadcast / matmul chain was five, each with its
//! own zero-initialised gradient buffer in the backward pass.
//!
//! [`pointwise_conv2d_cpu`] is the entry point; [`super::pointwise_conv2d`] dispatches to it
//! on CPU in `f32` / `f64`.

use super::cpu::{conv_grads, par_planes, par_planes_uninit, with_real_slices, Real};
use super::gemm::{matmul, matmul_uninit, sum_over_images, Mat, Threads};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// 1x1 convolution without bias on CPU through the custom ops of this module, with backward.
///
/// Output pixel `(oy, ox)` reads input pixel `(oy * sh, ox * sw)`; the output is
/// `ceil(H / sh) x ceil(W / sw)` (TF "same" padding of a 1x1 kernel, which never pads).
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, ceil(H / sh), ceil(W / sw)]`.
///
/// # Errors
/// When the tensors are not `f32`/`f64` on the CPU, their dtypes differ, or the shapes or
/// stride do not fit.
pub(crate) fn pointwise_conv2d_cpu(
    x: &Tensor,
    weight: &Tensor,
    stride: (usize, usize),
) -> Result<Tensor> {
    Geom::new(x.dims(), weight.dims(), stride)?;
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, PointwiseFwd { stride })
}

/// Geometry of one 1x1 convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    pub n: usize,
    c: usize,
    pub o: usize,
    pub h: usize,
    pub w: usize,
    sh: usize,
    sw: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    pub(super) fn new(x: &[usize], weight: &[usize], (sh, sw): (usize, usize)) -> Result<Geom> {
        let (&[n, c, h, w], &[o, ci, 1, 1]) = (x, weight) else {
            candle_core::bail!(
                "pointwise_conv2d: weight {weight:?} is not [O, C, 1, 1] or input {x:?} is not [N, C, H, W]"
            );
        };
        if ci != c || sh == 0 || sw == 0 {
            candle_core::bail!(
                "pointwise_conv2d: weight {weight:?} / stride {:?} do not fit input {x:?}",
                (sh, sw)
            );
        }
        Ok(Geom {
            n,
            c,
            o,
            h,
            w,
            sh,
            sw,
            oh: h.div_ceil(sh),
            ow: w.div_ceil(sw),
        })
    }

    /// Output pixels per channel.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    fn strided(&self) -> bool {
        self.sh != 1 || self.sw != 1
    }

    /// Parallel over images when there are enough of them, else inside each multiply.
    fn threads(&self) -> Threads {
        Threads::for_images(self.n)
    }

    /// Image `i` of `x` as the `[C, P]` matrix of the pixels the kernel reads: `x[i]` itself
    /// at stride 1, else gathered into `buf`.
    fn input<'a, T: Real>(&self, x: &'a [T], i: usize, buf: &'a mut Vec<T>) -> Mat<'a, T> {
        let (hw, p) = (self.h * self.w, self.p());
        let xi = &x[i * self.c * hw..(i + 1) * self.c * hw];
        if !self.strided() {
            return Mat::row_major(xi, self.c, hw);
        }
        buf.clear();
        for plane in xi.chunks_exact(hw) {
            for oy in 0..self.oh {
                let row = &plane[oy * self.sh * self.w..][..self.w];
                buf.extend(row.iter().step_by(self.sw));
            }
        }
        Mat::row_major(&buf[..self.c * p], self.c, p)
    }
}

/// `(x, weight) -> y`.
struct PointwiseFwd {
    stride: (usize, usize),
}

/// `(gy, weight) -> dx`, for an input of `h` x `w`.
pub(super) struct PointwiseBwdInput {
    pub g: Geom,
}

/// `(x, gy) -> dweight`.
pub(super) struct PointwiseBwdWeight {
    pub stride: (usize, usize),
}

/// `y[n] = W · x[n]` for every image.
pub(super) fn forward<T: Real>(g: &Geom, x: &[T], weight: &[T]) -> Vec<T> {
    let wm = Mat::row_major(weight, g.o, g.c);
    let t = g.threads();
    // SAFETY: each multiply writes its whole `[O, P]` plane.
    unsafe {
        par_planes_uninit(g.n, g.o * g.p(), Vec::new, |buf, i, out| {
            matmul_uninit(out, wm, g.input(x, i, buf), t)
        })
    }
}

fn backward_input<T: Real>(g: &Geom, gy: &[T], weight: &[T]) -> Vec<T> {
    let wt = Mat::row_major(weight, g.o, g.c).t();
    let (p, hw) = (g.p(), g.h * g.w);
    let t = g.threads();
    let gy_of = |i: usize| Mat::row_major(&gy[i * g.o * p..(i + 1) * g.o * p], g.o, p);
    if !g.strided() {
        // SAFETY: each multiply writes its whole `[C, H * W]` plane.
        return unsafe {
            par_planes_uninit(
                g.n,
                g.c * hw,
                || (),
                |_, i, out| matmul_uninit(out, wt, gy_of(i), t),
            )
        };
    }
    par_planes(g.n, g.c * hw, Vec::new, |buf: &mut Vec<T>, i, out| {
        let gyi = gy_of(i);
        buf.resize(g.c * p, T::ZERO);
        matmul(buf, wt, gyi, false, t);
        // Scatter into the (zeroed) pixels the kernel read.
        for (plane, src) in out.chunks_exact_mut(hw).zip(buf.chunks_exact(p)) {
            for (oy, srow) in src.chunks_exact(g.ow).enumerate() {
                let row = &mut plane[oy * g.sh * g.w..][..g.w];
                for (d, &s) in row.iter_mut().step_by(g.sw).zip(srow) {
                    *d = s;
                }
            }
        }
    })
}

fn backward_weight<T: Real>(g: &Geom, x: &[T], gy: &[T]) -> Vec<T> {
    let p = g.p();
    sum_over_images(g.n, g.o * g.c, g.threads(), |acc, buf, i, t| {
        let gyi = Mat::row_major(&gy[i * g.o * p..(i + 1) * g.o * p], g.o, p);
        matmul(acc, gyi, g.input(x, i, buf).t(), true, t);
    })
}

impl CustomOp2 for PointwiseFwd {
    fn name(&self) -> &'static str {
        "convnet-pointwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.stride)?;
        let y = with_real_slices!("pointwise_conv2d", s1, l1, s2, l2, |x, w| forward(&g, x, w));
        Ok((y, Shape::from((g.n, g.o, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let stride = self.stride;
        let input_op = || {
            Ok(PointwiseBwdInput {
                g: Geom::new(x.dims(), weight.dims(), stride)?,
            })
        };
        conv_grads(x, weight, gy, input_op, PointwiseBwdWeight { stride })
    }
}

impl CustomOp2 for PointwiseBwdInput {
    fn name(&self) -> &'static str {
        "convnet-pointwise-conv2d-bwd-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        if l1.dims() != [g.n, g.o, g.oh, g.ow] {
            candle_core::bail!("pointwise_conv2d backward: gradient {:?}", l1.dims());
        }
        let dx = with_real_slices!("pointwise_conv2d", s1, l1, s2, l2, |gy, w| {
            backward_input(&g, gy, w)
        });
        Ok((dx, Shape::from((g.n, g.c, g.h, g.w))))
    }
}

impl CustomOp2 for PointwiseBwdWeight {
    fn name(&self) -> &'static str {
        "convnet-pointwise-conv2d-bwd-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[n, c, _, _], &[_, o, _, _]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!(
                "pointwise_conv2d backward: shapes {:?} {:?}",
                l1.dims(),
                l2.dims()
            );
        };
        let g = Geom::new(l1.dims(), &[o, c, 1, 1], self.stride)?;
        if l2.dims() != [n, o, g.oh, g.ow] {
            candle_core::bail!("pointwise_conv2d backward: gradient {:?}", l2.dims());
        }
        let dw = with_real_slices!("pointwise_conv2d", s1, l1, s2, l2, |x, gy| {
            backward_weight(&g, x, gy)
        });
        Ok((dw, Shape::from((o, c, 1, 1))))
    }
}
