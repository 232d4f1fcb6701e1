//! Training-mode batch normalisation (optionally with ReLU) fused into the depthwise
//! convolution that reads its output, as one candle custom op with CPU kernels for `f32` and
//! `f64`.
//!
//! The normalised tensor is never stored: the forward computes the batch statistics in one
//! pass over `x`, then normalises each input plane into a per-thread buffer right before the
//! depthwise kernel reads it. The backward normalises the planes again for the weight
//! gradient. So a training step keeps only `x` and the convolution's output alive for the
//! backward, where the unfused pair keeps the normalised tensor too (one activation less per
//! fused pair: about 15% of mini-Xception's peak training memory at 180x180), and the forward
//! saves one write and one read of it.
//!
//! The kernels are those of `batch_norm.rs` and `depthwise.rs`; results agree with the
//! unfused pair to the bit in the forward and to rounding in the backward (the weight
//! gradient sums the same products).

use super::batch_norm::{self, Stats};
use super::cpu::{contiguous, Real};
use super::depthwise::{self, DepthwiseBwdInput, DepthwiseBwdWeight, Geom, InputNorm};
use super::{BatchNormTrain, Window2d};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// Training-mode batch norm of `x` (then ReLU when `relu`), fed straight into a depthwise
/// convolution with `weight` over `win`, on CPU with backward for `x`, `gamma`, `beta` and
/// `weight`. `y` of the result is the convolution's output; `mean` and `var` are the batch
/// statistics, as [`super::batch_norm_train`] returns them.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `gamma`, `beta`: `[C]`, `weight`: `[C * multiplier, 1, kh, kw]` ->
/// `y`: `[N, C * multiplier, OH, OW]`, `mean`, `var`: `[C]`.
///
/// # Errors
/// When a tensor is not on the CPU, not `f32`/`f64`, dtypes differ or shapes do not fit.
pub(crate) fn batch_norm_depthwise_train_cpu(
    x: &Tensor,
    (gamma, beta, eps, relu): (&Tensor, &Tensor, f64, bool),
    weight: &Tensor,
    win: &Window2d,
) -> Result<BatchNormTrain> {
    let x = x.contiguous()?;
    // One tensor for both, so the op has three inputs; its gradient splits back through `cat`.
    let params = Tensor::cat(&[gamma.contiguous()?, beta.contiguous()?], 0)?;
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = NormDepthwise {
        eps,
        relu,
        win: *win,
        stats: stats.clone(),
    };
    let y = x.apply_op3(&params, &weight.contiguous()?, op)?;
    batch_norm::train_result(y, &stats, gamma)
}

/// `(x, [gamma..., beta...], weight) -> y`.
struct NormDepthwise {
    eps: f64,
    relu: bool,
    win: Window2d,
    stats: Arc<Mutex<Stats>>,
}

impl NormDepthwise {
    fn fwd<T: Real>(&self, g: &Geom, x: &[T], params: &[T], weight: &[T]) -> Vec<T> {
        let (gamma, beta) = params.split_at(g.c());
        let (s, _, _) = Stats::of(x, gamma, beta, g.planes(), self.eps);
        let y = depthwise::forward(g, x, weight, Some(&self.input_norm(&s)));
        *self.stats.lock().expect("batch-norm stats") = s;
        y
    }

    fn input_norm(&self, s: &Stats) -> InputNorm {
        InputNorm {
            scale: s.scale.clone(),
            shift: s.shift.clone(),
            relu: self.relu,
        }
    }
}

impl CustomOp3 for NormDepthwise {
    fn name(&self) -> &'static str {
        "convnet-batch-norm-depthwise-conv2d"
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
        let (n, c, h, w) = l1.shape().dims4()?;
        if l2.dims() != [2 * c] {
            candle_core::bail!(
                "batch_norm_depthwise: parameters {:?} are not gamma and beta of {c} channels",
                l2.dims()
            );
        }
        let g = Geom::new(
            n,
            c,
            depthwise::weight_dims(l3, &self.win)?,
            h,
            w,
            &self.win,
        )?;
        let y = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.fwd::<f32>(
                    &g,
                    contiguous(s1, l1)?,
                    contiguous(s2, l2)?,
                    contiguous(s3, l3)?,
                ))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.fwd::<f64>(
                    &g,
                    contiguous(s1, l1)?,
                    contiguous(s2, l2)?,
                    contiguous(s3, l3)?,
                ))
            }
            _ => candle_core::bail!("batch_norm_depthwise: cpu kernel needs f32 or f64 inputs"),
        };
        Ok((y, g.y_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _params: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, c, h, w) = x.dims4()?;
        let s = self.stats.lock().expect("batch-norm stats").clone();
        let gy = gy.contiguous()?;
        let win = self.win;
        // The gradient of the normalised input (transient), then the batch norm's backward.
        let g_norm = gy.apply_op2_no_bwd(weight, &DepthwiseBwdInput { win, c, h, w })?;
        let norm = Some(self.input_norm(&s));
        let dweight = x.apply_op2_no_bwd(&gy, &DepthwiseBwdWeight { win, norm })?;
        let (dx, dparams) = batch_norm::train_backward(x, &g_norm, self.relu, s)?;
        Ok((Some(dx), Some(dparams), Some(dweight)))
    }
}
