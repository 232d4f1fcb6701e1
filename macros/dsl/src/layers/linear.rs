//! The fully connected layer.

use super::check::{checked_params, flops, At};
use super::tokens::{ox, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{fmt_shape, Info, Op, MAX_DIM};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

/// `linear`: a fully connected layer.
pub struct Linear {
    units: usize,
    bias: bool,
}

/// Builds `linear`.
pub fn linear(a: &Args) -> Op {
    op(Linear {
        units: a.int("units", 1, MAX_DIM),
        bias: a.boolean("bias"),
    })
}

impl Primitive for Linear {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let units = self.units;
        // Rule: linear layers take flat feature vectors.
        if s.len() != 1 {
            let flat: usize = s.iter().product();
            errors.push(
                at.span,
                format!(
                    "{} needs a flat (features) input but receives {}; insert `flatten` ({flat} features) or `global_avg_pool2d` ({} features) before it",
                    at.who,
                    fmt_shape(s),
                    s[0]
                ),
            );
            return None;
        }
        let weights = checked_params(at, &[s[0], units], errors)?;
        info.params = weights + if self.bias { units } else { 0 };
        info.flops = flops(&[s[0], units]);
        Some(vec![units])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let (rt, cn) = (rt(), super::tokens::cn());
        let (in_c, path, units, bias) = (emit.in_channels(), emit.path, self.units, self.bias);
        emit.module(
            quote!(#cn::Linear),
            quote!(#rt::layers::dense(#in_c, #units, #bias, vb.pp(#path))?),
        )
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, bias) = (ox(), self.bias);
        quote!(let x = #ox::linear(g, &layer, &x, #bias);)
    }
}
