//! Builders of the plain layers: one op from a call's typed arguments. Defaults come from
//! the catalog through [`Args`]; each builder states only the ranges it accepts.

use super::args::{shape_of, Args};
use crate::catalog::Kind;
use crate::ir::{Activation, Op, Padding, MAX_DIM, MAX_WINDOW};

/// Builds the op of a plain (non-composite) layer of `kind` from its typed arguments;
/// `None` for the composite kinds, which `composite` builds.
pub(super) fn build(kind: Kind, a: &Args) -> Option<Op> {
    let window = |name| a.int(name, 1, MAX_WINDOW);
    let kernel = || a.pair("kernel", MAX_WINDOW);
    let filters = || a.int("filters", 1, MAX_DIM);
    let eps = || a.float("eps", f64::MIN_POSITIVE, 1.0, false);
    let scale = |name| a.float(name, -1e30, 1e30, false);
    let rate = || a.float("rate", 0.0, 1.0, true);
    let activation = |f: Activation| Some(Op::Activation(f));
    Some(match kind {
        Kind::Conv2d => Op::Conv2d {
            filters: filters(),
            kernel: kernel(),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            groups: a.int("groups", 1, MAX_DIM),
            bias: a.boolean("bias"),
        },
        Kind::DepthwiseConv2d => Op::DepthwiseConv2d {
            kernel: kernel(),
            multiplier: window("multiplier"),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            bias: a.boolean("bias"),
        },
        Kind::SeparableConv2d => Op::SeparableConv2d {
            filters: filters(),
            kernel: kernel(),
            multiplier: window("multiplier"),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            bias: a.boolean("bias"),
        },
        Kind::BatchNorm => Op::BatchNorm {
            eps: eps(),
            momentum: a.float("momentum", 0.0, 1.0, false),
            unbiased_variance: a.word("variance", &["biased", "unbiased"]) == Some("unbiased"),
        },
        Kind::Relu => return activation(Activation::Relu),
        Kind::Sigmoid => return activation(Activation::Sigmoid),
        Kind::Tanh => return activation(Activation::Tanh),
        Kind::Gelu => return activation(Activation::Gelu),
        Kind::Silu => return activation(Activation::Silu),
        Kind::Softmax => return activation(Activation::Softmax),
        Kind::Relu6 => return activation(Activation::Relu6),
        Kind::HardSigmoid => return activation(Activation::HardSigmoid),
        Kind::HardSwish => return activation(Activation::HardSwish),
        Kind::LeakyRelu => {
            return activation(Activation::LeakyRelu(a.float("alpha", 0.0, 1e6, false)))
        }
        Kind::MaxPool2d | Kind::AvgPool2d => Op::Pool {
            max: kind == Kind::MaxPool2d,
            // The kernel first: the stride defaults to it.
            kernel: kernel(),
            stride: a.pair("stride", MAX_WINDOW),
            padding: a.padding("padding"),
        },
        Kind::GlobalAvgPool2d | Kind::GlobalMaxPool2d => Op::GlobalPool {
            max: kind == Kind::GlobalMaxPool2d,
            keepdims: a.boolean("keepdims"),
        },
        Kind::Dropout => Op::Dropout(rate()),
        Kind::Flatten => Op::Flatten,
        Kind::Linear => Op::Linear {
            units: a.int("units", 1, MAX_DIM),
            bias: a.boolean("bias"),
        },
        Kind::Rescale => Op::Rescale {
            scale: scale("scale"),
            offset: scale("offset"),
        },
        Kind::ZeroPad2d => match a.padding("padding") {
            Padding::Explicit(p) => Op::ZeroPad(p),
            _ => {
                a.fail(
                    "padding",
                    "`zero_pad2d` takes p, (ph, pw) or (top, bottom, left, right)".into(),
                );
                Op::Poison
            }
        },
        Kind::LayerNorm2d => Op::LayerNorm2d { eps: eps() },
        Kind::GroupNorm => Op::GroupNorm {
            groups: a.int("groups", 1, MAX_DIM),
            eps: eps(),
        },
        Kind::LayerScale => Op::LayerScale {
            init: scale("init"),
        },
        Kind::DropPath => Op::DropPath {
            rate: rate(),
            // Left out, the seed is a hash of the layer's path (`expand`).
            seed: a
                .raw
                .contains_key("seed")
                .then(|| a.int("seed", 0, i64::MAX) as u64),
        },
        Kind::Upsample2d => Op::Upsample {
            scale: a.pair("scale", MAX_WINDOW),
            bilinear: a.word("mode", &["nearest", "bilinear"]) == Some("bilinear"),
        },
        Kind::ConvTranspose2d => Op::ConvTranspose2d {
            filters: filters(),
            kernel: kernel(),
            stride: window("stride"),
            padding: a.int("padding", 0, MAX_WINDOW),
            output_padding: a.int("output_padding", 0, MAX_WINDOW),
            dilation: window("dilation"),
            bias: a.boolean("bias"),
        },
        Kind::Reshape => match a.value("shape") {
            Some(v) => match shape_of(&v) {
                Some(dims) => Op::Reshape(dims),
                None => {
                    a.fail("shape", format!("`shape` of `reshape` is (C, H, W) or (features) with each dim from 1 to {MAX_DIM}, found `{v}`"));
                    Op::Poison
                }
            },
            None => Op::Poison,
        },
        Kind::Crop2d => match a.value("cropping").map(|v| (a.pad4(&v), v)) {
            Some((Some(p), _)) => Op::Crop(p),
            Some((None, v)) => {
                a.fail("cropping", format!("`cropping` of `crop2d` is p, (ph, pw) or (top, bottom, left, right) with 0 <= p <= {MAX_WINDOW}, found `{v}`"));
                Op::Poison
            }
            None => Op::Poison,
        },
        Kind::CenterCrop => Op::CenterCrop {
            height: a.int("height", 1, MAX_DIM),
            width: a.int("width", 1, MAX_DIM),
        },
        Kind::Residual
        | Kind::Concat
        | Kind::Add
        | Kind::Multiply
        | Kind::Identity
        | Kind::Model
        | Kind::AssertShape => return None,
    })
}
