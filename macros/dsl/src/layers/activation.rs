//! Element-wise activations: one layer, [`Activation`], for each of them.

use super::check::At;
use super::tokens::{cn, ox, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

/// Element-wise activations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Exact (erf) GELU.
    Gelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `x` if positive, else `alpha * x`.
    LeakyRelu(f64),
    /// Softmax over dim 1 (channels or features).
    Softmax,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `x * hard_sigmoid(x)`.
    HardSwish,
}

/// Builds `relu`.
pub fn relu(_: &Args) -> Op {
    op(Activation::Relu)
}

/// Builds `sigmoid`.
pub fn sigmoid(_: &Args) -> Op {
    op(Activation::Sigmoid)
}

/// Builds `tanh`.
pub fn tanh(_: &Args) -> Op {
    op(Activation::Tanh)
}

/// Builds `gelu`.
pub fn gelu(_: &Args) -> Op {
    op(Activation::Gelu)
}

/// Builds `silu`.
pub fn silu(_: &Args) -> Op {
    op(Activation::Silu)
}

/// Builds `softmax`.
pub fn softmax(_: &Args) -> Op {
    op(Activation::Softmax)
}

/// Builds `relu6`.
pub fn relu6(_: &Args) -> Op {
    op(Activation::Relu6)
}

/// Builds `hard_sigmoid`.
pub fn hard_sigmoid(_: &Args) -> Op {
    op(Activation::HardSigmoid)
}

/// Builds `hard_swish`.
pub fn hard_swish(_: &Args) -> Op {
    op(Activation::HardSwish)
}

/// Builds `leaky_relu`.
pub fn leaky_relu(a: &Args) -> Op {
    op(Activation::LeakyRelu(a.float("alpha", 0.0, 1e6, false)))
}

impl Primitive for Activation {
    fn infer(&self, _: &At, s: &[usize], _: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        Some(s.to_vec())
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, cn) = (rt(), cn());
        match self {
            Activation::Relu => quote!(let x = x.relu()?;),
            Activation::Sigmoid => quote!(let x = #cn::ops::sigmoid(&x)?;),
            Activation::Tanh => quote!(let x = x.tanh()?;),
            Activation::Gelu => quote!(let x = x.gelu_erf()?;),
            Activation::Silu => quote!(let x = x.silu()?;),
            Activation::LeakyRelu(alpha) => quote!(let x = #cn::ops::leaky_relu(&x, #alpha)?;),
            Activation::Softmax => quote!(let x = #cn::ops::softmax(&x, 1)?;),
            Activation::Relu6 => quote!(let x = #rt::layers::relu6(&x)?;),
            Activation::HardSigmoid => quote!(let x = #rt::layers::hard_sigmoid(&x)?;),
            Activation::HardSwish => quote!(let x = #rt::layers::hard_swish(&x)?;),
        }
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let ox = ox();
        let a = match self {
            Activation::Relu => quote!(Relu),
            Activation::Sigmoid => quote!(Sigmoid),
            Activation::Tanh => quote!(Tanh),
            Activation::Gelu => quote!(Gelu),
            Activation::Silu => quote!(Silu),
            Activation::LeakyRelu(alpha) => quote!(LeakyRelu(#alpha)),
            Activation::Softmax => quote!(Softmax),
            Activation::Relu6 => quote!(Relu6),
            Activation::HardSigmoid => quote!(HardSigmoid),
            Activation::HardSwish => quote!(HardSwish),
        };
        quote!(let x = #ox::activation(g, &layer, &x, #ox::Activation::#a);)
    }

    fn is_relu(&self) -> bool {
        *self == Activation::Relu
    }
}
