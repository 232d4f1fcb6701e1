//! Mini-Xception written by hand in plain candle, the reference the generated model is checked
//! against (`tests/generated_vs_candle.rs`) and timed against (`examples/bench_dsl.rs`).
//!
//! Any input size works (64x64, 180x180, ...): every padding is computed from the runtime
//! shape, and the head is a global average pool, so only the 512 channels reach the linear
//! layer. Parameter names match the generated `MiniXception`, so both models can be built from
//! one `VarMap` and share their weights. Depthwise convolutions are candle grouped
//! convolutions; max pooling pads with `-inf` and calls candle's `max_pool2d_with_stride`
//! ([`Pooling::Candle`]), which has no backward for a 3x3 stride-2 window, so training can
//! switch to `convnet_runtime::ops::max_pool2d` ([`Pooling::Runtime`]).

#![allow(dead_code)] // each includer uses its own part of this file

use candle_core::{Module, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2dConfig, ModuleT, VarBuilder};
use convnet_runtime::ops::{Pad2d, Window2d};

/// Keras' batch-norm settings, as the generated code uses them.
pub const BN: BatchNormConfig = BatchNormConfig {
    eps: 1e-3,
    remove_mean: true,
    affine: true,
    momentum: 0.01,
};

/// How the hand-written model max-pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// `-inf` padding by concatenation, then candle's `max_pool2d_with_stride` (forward only
    /// when kernel != stride).
    Candle,
    /// `convnet_runtime::ops::max_pool2d`, the op the generated code calls.
    Runtime,
}

/// Pads the spatial dims of an NCHW tensor with `-inf`.
pub fn pad_neg_inf(
    x: &Tensor,
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let fill = |rows, cols| Tensor::full(f32::NEG_INFINITY, (n, c, rows, cols), x.device());
    let x = Tensor::cat(&[fill(top, w)?, x.clone(), fill(bottom, w)?], 2)?;
    Tensor::cat(
        &[
            fill(h + top + bottom, left)?,
            x,
            fill(h + top + bottom, right)?,
        ],
        3,
    )
}

/// TF "same" padding of a 3x3 stride-2 window: total = max((ceil(n/2)-1)*2 + 3 - n, 0).
pub fn same_pad_3s2(n: usize) -> (usize, usize) {
    let out = n.div_ceil(2);
    let total = ((out - 1) * 2 + 3).saturating_sub(n);
    (total / 2, total - total / 2)
}

struct HandBlock {
    bn1: BatchNorm,
    dw1: Tensor,
    pw1: candle_nn::Conv2d,
    bn2: BatchNorm,
    dw2: Tensor,
    pw2: candle_nn::Conv2d,
    project: candle_nn::Conv2d,
}

/// Mini-Xception in plain candle: grouped conv for depthwise, `-inf` padding for pooling.
pub struct HandXception {
    conv1: candle_nn::Conv2d,
    blocks: Vec<HandBlock>,
    dropout: Option<f32>,
    linear: candle_nn::Linear,
    pooling: Pooling,
}

impl HandXception {
    /// The dropout-free model (global average pool straight into the linear layer), pooling
    /// with candle's own op.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let conv1 = candle_nn::conv2d_no_bias(3, 32, 5, Conv2dConfig::default(), vb.pp("conv1"))?;
        let mut blocks = Vec::new();
        let mut c = 32;
        for (i, size) in [32, 64, 128, 256, 512].into_iter().enumerate() {
            let b = vb.pp(format!("block{}", i + 1));
            let dw = |vb: VarBuilder, ch: usize| vb.get((ch, 1, 3, 3), "weight");
            let pointwise =
                |cin, vb| candle_nn::conv2d_no_bias(cin, size, 1, Conv2dConfig::default(), vb);
            blocks.push(HandBlock {
                bn1: candle_nn::batch_norm(c, BN, b.pp("bn1"))?,
                dw1: dw(b.pp("sep1.depthwise"), c)?,
                pw1: pointwise(c, b.pp("sep1.pointwise"))?,
                bn2: candle_nn::batch_norm(size, BN, b.pp("bn2"))?,
                dw2: dw(b.pp("sep2.depthwise"), size)?,
                pw2: pointwise(size, b.pp("sep2.pointwise"))?,
                project: candle_nn::conv2d_no_bias(
                    c,
                    size,
                    1,
                    Conv2dConfig {
                        stride: 2,
                        ..Default::default()
                    },
                    b.pp("project"),
                )?,
            });
            c = size;
        }
        let linear = candle_nn::linear(512, 1, vb.pp("linear1"))?;
        Ok(HandXception {
            conv1,
            blocks,
            dropout: None,
            linear,
            pooling: Pooling::Candle,
        })
    }

    /// Adds the seed's dropout before the linear layer (as `convnet::zoo::MiniXception`).
    pub fn with_dropout(mut self, rate: f32) -> Self {
        self.dropout = Some(rate);
        self
    }

    /// Chooses the max-pooling implementation.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    fn max_pool_3s2_same(&self, y: &Tensor) -> Result<Tensor> {
        let (t, bo) = same_pad_3s2(y.dim(2)?);
        let (l, r) = same_pad_3s2(y.dim(3)?);
        match self.pooling {
            Pooling::Candle => pad_neg_inf(y, t, bo, l, r)?.max_pool2d_with_stride(3, 2),
            Pooling::Runtime => {
                let pad = Pad2d {
                    top: t,
                    bottom: bo,
                    left: l,
                    right: r,
                };
                convnet_runtime::ops::max_pool2d(y, &Window2d::new((3, 3), (2, 2), pad))
            }
        }
    }

    /// `[N, 3, H, W]` pixels in 0..255 -> `[N, 1]` logits.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.conv1.forward(&x.affine(1.0 / 255.0, 0.0)?)?;
        for b in &self.blocks {
            let skip = x.clone();
            let c = x.dim(1)?;
            let y = b.bn1.forward_t(&x, train)?.relu()?;
            let y = b.pw1.forward(&y.conv2d(&b.dw1, 1, 1, 1, c)?)?;
            let c2 = y.dim(1)?;
            let y = b.bn2.forward_t(&y, train)?.relu()?;
            let y = b.pw2.forward(&y.conv2d(&b.dw2, 1, 1, 1, c2)?)?;
            let y = self.max_pool_3s2_same(&y)?;
            x = (y + b.project.forward(&skip)?)?;
        }
        let x = x.flatten_from(2)?.mean(2)?;
        let x = match self.dropout {
            Some(rate) if train => candle_nn::ops::dropout(&x, rate)?,
            _ => x,
        };
        self.linear.forward(&x)
    }
}
