//! Normalisations: batch norm, channel layer norm and group norm.

use super::check::At;
use super::tokens::{cn, ox, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op, MAX_DIM};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

fn eps(a: &Args) -> f64 {
    a.float("eps", f64::MIN_POSITIVE, 1.0, false)
}

/// `batch_norm`: batch normalisation (1-d or 2-d by input rank); `unbiased_variance` selects
/// the batch variance that updates the moving variance (Keras' biased one by default).
pub struct BatchNorm {
    eps: f64,
    momentum: f64,
    unbiased_variance: bool,
}

/// Builds `batch_norm`.
pub fn batch_norm(a: &Args) -> Op {
    op(BatchNorm {
        eps: eps(a),
        momentum: a.float("momentum", 0.0, 1.0, false),
        unbiased_variance: a.word("variance", &["biased", "unbiased"]) == Some("unbiased"),
    })
}

impl Primitive for BatchNorm {
    fn infer(&self, _: &At, s: &[usize], info: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        let c = s[0];
        info.params = 4 * c;
        info.non_trainable = 2 * c;
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let (rt, cn) = (rt(), cn());
        let (in_c, path, relu) = (emit.in_channels(), emit.path, emit.fuse_relu);
        let (eps, momentum) = (self.eps, self.momentum);
        let variance = if self.unbiased_variance {
            quote!(Unbiased)
        } else {
            quote!(Biased)
        };
        emit.module_t(
            quote!(#rt::layers::BatchNorm2d),
            quote!(#rt::layers::batch_norm2d(#in_c, #cn::BatchNormConfig { eps: #eps, remove_mean: true, affine: true, momentum: #momentum }, #relu, vb.pp(#path))?.with_running_variance(#rt::layers::RunningVariance::#variance)),
        )
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, eps) = (ox(), self.eps);
        quote!(let x = #ox::batch_norm(g, &layer, &x, #eps);)
    }

    fn fuses_following_relu(&self) -> bool {
        true
    }

    fn is_batch_norm(&self) -> bool {
        true
    }
}

/// `layer_norm2d`: layer norm over the channels at each position (ConvNeXt's channels-first
/// form).
pub struct LayerNorm2d {
    eps: f64,
}

/// Builds `layer_norm2d`.
pub fn layer_norm2d(a: &Args) -> Op {
    op(LayerNorm2d { eps: eps(a) })
}

impl Primitive for LayerNorm2d {
    fn infer(&self, _: &At, s: &[usize], info: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        info.params = 2 * s[0];
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path, eps) = (emit.in_channels(), emit.path, self.eps);
        emit.module_t(
            quote!(#rt::layers::LayerNorm2d),
            quote!(#rt::layers::layer_norm2d(#in_c, #eps, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, rank, eps) = (ox(), emit.rank(), self.eps);
        quote!(let x = #ox::layer_norm2d(g, &layer, &x, #rank, #eps);)
    }
}

/// `group_norm`: group norm with affine parameters.
pub struct GroupNorm {
    groups: usize,
    eps: f64,
}

/// Builds `group_norm`.
pub fn group_norm(a: &Args) -> Op {
    op(GroupNorm {
        groups: a.int("groups", 1, MAX_DIM),
        eps: eps(a),
    })
}

impl Primitive for GroupNorm {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let groups = self.groups;
        // Rule: group norm splits the channels into equal groups.
        if s[0] % groups != 0 {
            errors.push(
                at.arg("groups"),
                format!(
                    "{}: {} channels do not divide into {groups} groups; choose groups dividing {}",
                    at.who, s[0], s[0]
                ),
            );
            return None;
        }
        info.params = 2 * s[0];
        Some(s.to_vec())
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path) = (emit.in_channels(), emit.path);
        let (groups, eps) = (self.groups, self.eps);
        emit.module_t(
            quote!(#rt::layers::GroupNorm),
            quote!(#rt::layers::group_norm(#in_c, #groups, #eps, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, groups, eps) = (ox(), self.groups, self.eps);
        let input = super::tokens::dims(&emit.info.input);
        quote!(let x = #ox::group_norm(g, &layer, &x, #input, #groups, #eps);)
    }
}
