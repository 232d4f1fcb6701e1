//! Scaling: a fixed affine map of every value, and a learned per-channel multiplier.

use super::check::At;
use super::tokens::{ox, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

fn number(a: &Args, name: &'static str) -> f64 {
    a.float(name, -1e30, 1e30, false)
}

/// `rescale`: `x * scale + offset`.
pub struct Rescale {
    scale: f64,
    offset: f64,
}

/// Builds `rescale`.
pub fn rescale(a: &Args) -> Op {
    op(Rescale {
        scale: number(a, "scale"),
        offset: number(a, "offset"),
    })
}

impl Primitive for Rescale {
    fn infer(&self, _: &At, s: &[usize], _: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        Some(s.to_vec())
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (scale, offset) = (self.scale, self.offset);
        quote!(let x = x.affine(#scale, #offset)?;)
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, scale, offset) = (ox(), self.scale, self.offset);
        quote!(let x = #ox::rescale(g, &layer, &x, #scale, #offset);)
    }
}

/// `layer_scale`: a learned per-channel multiplier initialised to `init`.
pub struct LayerScale {
    init: f64,
}

/// Builds `layer_scale`.
pub fn layer_scale(a: &Args) -> Op {
    op(LayerScale {
        init: number(a, "init"),
    })
}

impl Primitive for LayerScale {
    fn infer(&self, _: &At, s: &[usize], info: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        info.params = s[0];
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path, init) = (emit.in_channels(), emit.path, self.init);
        emit.module(
            quote!(#rt::layers::LayerScale),
            quote!(#rt::layers::layer_scale(#in_c, #init, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, rank) = (ox(), emit.rank());
        quote!(let x = #ox::layer_scale(g, &layer, &x, #rank);)
    }
}
