//! Regularisation that acts in training only: dropout and stochastic depth (drop path).

use super::check::At;
use super::tokens::rt;
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

fn rate(a: &Args) -> f64 {
    a.float("rate", 0.0, 1.0, true)
}

/// `dropout`: dropout with this rate, in training only.
pub struct Dropout {
    rate: f64,
}

/// Builds `dropout`.
pub fn dropout(a: &Args) -> Op {
    op(Dropout { rate: rate(a) })
}

impl Primitive for Dropout {
    fn infer(&self, _: &At, s: &[usize], _: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let (rt, rate, path) = (rt(), self.rate, emit.path);
        // A zero rate does nothing, so it needs neither a field nor a statement.
        if rate <= 0.0 {
            return quote!();
        }
        emit.module_t(
            quote!(#rt::layers::Dropout),
            quote!(#rt::layers::Dropout::from_global_seed(#rate, &vb.pp(#path).prefix())?),
        )
    }

    /// Inference: the identity, no node.
    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        quote!()
    }
}

/// `drop_path`: per-example stochastic depth in training; `seed` defaults to a hash of the
/// layer's path.
pub struct DropPath {
    rate: f64,
    seed: Option<u64>,
}

/// Builds `drop_path`.
pub fn drop_path(a: &Args) -> Op {
    op(DropPath {
        rate: rate(a),
        // Left out, the seed is a hash of the layer's path (`expand`).
        seed: a
            .is_written("seed")
            .then(|| a.int("seed", 0, i64::MAX) as u64),
    })
}

impl Primitive for DropPath {
    fn infer(&self, _: &At, s: &[usize], _: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let (rt, rate) = (rt(), self.rate);
        let seed = self.seed.unwrap_or_else(|| path_seed(emit.path));
        emit.module_t(
            quote!(#rt::layers::DropPath),
            quote!(#rt::layers::drop_path(#rate, #seed)?),
        )
    }

    /// Inference: the identity, no node.
    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        quote!()
    }
}

/// The default seed of a `drop_path` layer: FNV-1a of its path, so each such layer of a
/// model draws its own, reproducible masks.
fn path_seed(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
