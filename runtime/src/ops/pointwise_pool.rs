//! A 1x1 convolution (stride 1) fused with the max pooling that reads its output, as one
//! candle custom op with CPU kernels for `f32` and `f64`.
//!
//! The convolution's output is pooled as soon as it exists and then dropped, and the backward
//! needs only the pooling's winners: a training step keeps the pooled tensor and the winners
//! (a quarter of the convolution's output each, for a 3x3 window of stride 2) where the
//! unfused pair keeps the whole convolution output alive for the max pool's backward.
//!
//! The kernels are those of `pointwise.rs` and `pool.rs`; the results are the unfused pair's
//! to the bit.

use super::cpu::{conv_grads, with_real_slices, Plane, Real};
use super::pointwise::{self, Geom, PointwiseBwdInput, PointwiseBwdWeight};
use super::pool::{self, MaxPoolBwd};
use super::Window2d;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// Max pooling over `win` of the 1x1 convolution of `x` with `weight` (stride 1, no bias), on
/// CPU with backward for `x` and `weight`.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[O, C, 1, 1]` -> `[N, O, OH, OW]`, where
/// `(OH, OW) = win.output_size(H, W)`.
///
/// # Errors
/// When the tensors are not `f32`/`f64` on the CPU, their dtypes differ, the shapes do not
/// fit, or a plane has more than `u32::MAX - 1` elements.
pub(crate) fn pointwise_max_pool2d_cpu(
    x: &Tensor,
    weight: &Tensor,
    win: &Window2d,
) -> Result<Tensor> {
    let g = Geom::new(x.dims(), weight.dims(), (1, 1))?;
    Plane::new(win, g.h, g.w)?;
    if g.h * g.w >= pool::NONE as usize {
        candle_core::bail!("max_pool2d: plane of {}x{} is too large", g.h, g.w);
    }
    let op = PointwisePool {
        win: *win,
        save_argmax: x.track_op() || weight.track_op(),
        argmax: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&weight.contiguous()?, op)
}

/// `(x, weight) -> max_pool(weight · x)`; keeps the winners for the backward when
/// `save_argmax`.
struct PointwisePool {
    win: Window2d,
    save_argmax: bool,
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

impl PointwisePool {
    fn fwd<T: Real>(&self, g: &Geom, p: &Plane, x: &[T], weight: &[T]) -> Vec<T> {
        let y = pointwise::forward(g, x, weight);
        let (pooled, argmax) = pool::max_forward(g.n * g.o, p, &y, self.save_argmax);
        if let Some(a) = argmax {
            *self.argmax.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(a));
        }
        pooled
    }
}

impl CustomOp2 for PointwisePool {
    fn name(&self) -> &'static str {
        "convnet-pointwise-conv2d-max-pool2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), (1, 1))?;
        let p = Plane::new(&self.win, g.h, g.w)?;
        let y = with_real_slices!("pointwise_max_pool2d", s1, l1, s2, l2, |x, w| {
            self.fwd(&g, &p, x, w)
        });
        Ok((y, Shape::from((g.n, g.o, p.oh, p.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let argmax = self
            .argmax
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(argmax) = argmax else {
            candle_core::bail!("pointwise_max_pool2d: backward of a forward that kept no winners")
        };
        let g = Geom::new(x.dims(), weight.dims(), (1, 1))?;
        // The gradient of the convolution's output: each pooled gradient at its winner.
        let unpool = MaxPoolBwd {
            argmax,
            x_shape: (g.n, g.o, g.h, g.w),
        };
        let g_conv = gy.contiguous()?.apply_op1_no_bwd(&unpool)?;
        let input_op = || Ok(PointwiseBwdInput { g });
        conv_grads(
            x,
            weight,
            &g_conv,
            input_op,
            PointwiseBwdWeight { stride: (1, 1) },
        )
    }
}
