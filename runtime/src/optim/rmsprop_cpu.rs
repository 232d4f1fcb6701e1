//! The plain RMSprop step (Keras' defaults: no momentum, not centered, epsilon inside the
//! square root, no weight decay) on the CPU in two passes per variable, where the general
//! path in `rmsprop.rs` runs about ten candle ops, each a pass with its own allocation and
//! thread-pool dispatch (about 6 ms of a 64x64 mini-Xception step, for 0.7 M weights).
//!
//! Each pass computes exactly what the candle ops compute, in the same order and in the
//! variable's dtype (candle's scalar ops are `v * mul + add` in that dtype), so the weights
//! and the buffer are the general path's to the bit.

use crate::ops::cpu::{contiguous, with_real_slices};
use candle_core::{
    CpuStorage, CustomOp2, InplaceOp3, Layout, Result, Shape, Tensor, Var, WithDType,
};

/// The element types of the CPU step.
trait Float: WithDType + std::ops::SubAssign {
    fn sqrt(self) -> Self;
}

impl Float for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Float for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// `(s, g) -> s * rho + g² * (1 - rho)`, a new buffer (exported states keep the old one).
struct Squares {
    rho: f64,
}

impl Squares {
    fn run<T: WithDType>(&self, s: &[T], g: &[T]) -> Vec<T> {
        let (rho, keep) = (T::from_f64(self.rho), T::from_f64(1.0 - self.rho));
        let zero = T::zero();
        s.iter()
            .zip(g)
            .map(|(&s, &g)| (s * rho + zero) + ((g * g) * keep + zero))
            .collect()
    }
}

impl CustomOp2 for Squares {
    fn name(&self) -> &'static str {
        "convnet-rmsprop-squares"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = with_real_slices!("rmsprop", s1, l1, s2, l2, |s, g| self.run(s, g));
        Ok((out, l1.shape().clone()))
    }
}

/// `w -= (g * lr) / sqrt(s + eps)`, in place in `w`.
struct Step {
    lr: f64,
    eps: f64,
}

impl Step {
    fn run<T: Float>(&self, w: &mut [T], g: &[T], s: &[T]) {
        let (lr, eps, one, zero) = (
            T::from_f64(self.lr),
            T::from_f64(self.eps),
            T::from_f64(1.0),
            T::zero(),
        );
        for ((w, &g), &s) in w.iter_mut().zip(g).zip(s) {
            *w -= (g * lr + zero) / (s * one + eps).sqrt();
        }
    }
}

impl InplaceOp3 for Step {
    fn name(&self) -> &'static str {
        "convnet-rmsprop-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let Some((start, end)) = l1.contiguous_offsets() else {
            candle_core::bail!("rmsprop: a non-contiguous variable reached the CPU step");
        };
        match (s1, s2, s3) {
            (CpuStorage::F32(w), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                self.run::<f32>(&mut w[start..end], contiguous(s2, l2)?, contiguous(s3, l3)?)
            }
            (CpuStorage::F64(w), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                self.run::<f64>(&mut w[start..end], contiguous(s2, l2)?, contiguous(s3, l3)?)
            }
            _ => candle_core::bail!("rmsprop: the CPU step needs f32 or f64 of one dtype"),
        }
        Ok(())
    }
}

/// The plain step for `var` with gradient `g` and mean square `s` (zeros before the first
/// step): updates `var` in place and returns the new mean square; `None` (nothing done) when
/// the tensors are not contiguous `f32`/`f64` of one dtype on the CPU.
pub(super) fn plain_step(
    var: &Var,
    g: &Tensor,
    s: &Tensor,
    (lr, rho, eps): (f64, f64, f64),
) -> Result<Option<Tensor>> {
    let w = var.as_tensor();
    let fits = |t: &Tensor| {
        t.device().is_cpu()
            && t.dtype() == w.dtype()
            && t.shape() == w.shape()
            && t.is_contiguous()
            && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    };
    if !(fits(w) && fits(g) && fits(s)) {
        return Ok(None);
    }
    let squares = s.apply_op2_no_bwd(g, &Squares { rho })?;
    w.inplace_op3(g, &squares, &Step { lr, eps })?;
    Ok(Some(squares))
}
