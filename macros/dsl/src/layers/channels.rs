//! Layers over channels: a slice of the channels and ShuffleNet's channel shuffle (each one
//! pass of the runtime's channel gather), and a linear layer over each pixel's channels.

use super::check::{checked_params, chw, flops, At};
use super::tokens::{ox, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{fmt_shape, Info, Op, MAX_DIM};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

/// `channel_slice`: channels `start..end` (to the last when `end` is left out).
pub struct ChannelSlice {
    start: usize,
    end: Option<usize>,
}

/// Builds `channel_slice`.
pub fn channel_slice(a: &Args) -> Op {
    op(ChannelSlice {
        start: a.int("start", 0, MAX_DIM - 1),
        end: a.is_written("end").then(|| a.int("end", 1, MAX_DIM)),
    })
}

/// Channels or features of `s`, the first dim of an image or a feature vector.
fn channels(s: &[usize]) -> usize {
    s[0]
}

impl Primitive for ChannelSlice {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let c = channels(s);
        let end = self.end.unwrap_or(c);
        // Rule: a channel slice keeps at least one channel, all of them inside the input.
        if end > c || self.start >= end {
            let (arg, fix) = if end > c {
                (
                    "end",
                    format!("use an `end` of at most {c} (`in_channels`)"),
                )
            } else if self.start >= c {
                ("start", format!("use a `start` below {c}"))
            } else {
                ("end", format!("use an `end` above {}", self.start))
            };
            errors.push(
                at.arg(arg),
                format!(
                    "{} takes channels {}..{end} of its {} input, which has {c}; {fix}",
                    at.who,
                    self.start,
                    fmt_shape(s)
                ),
            );
            return None;
        }
        let mut out = s.to_vec();
        out[0] = end - self.start;
        Some(out)
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let start = self.start;
        let end = self.end.unwrap_or(emit.in_channels());
        quote!(let x = #rt::layers::channel_slice(&x, #start, #end)?;)
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let ox = ox();
        let start = self.start;
        let end = self.end.unwrap_or(emit.in_channels());
        quote!(let x = #ox::channel_slice(g, &layer, &x, #start, #end);)
    }
}

/// `channel_shuffle`: ShuffleNet's interleaving of `groups` channel groups.
pub struct ChannelShuffle {
    groups: usize,
}

/// Builds `channel_shuffle`.
pub fn channel_shuffle(a: &Args) -> Op {
    op(ChannelShuffle {
        groups: a.int("groups", 1, MAX_DIM),
    })
}

impl Primitive for ChannelShuffle {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let (c, groups) = (channels(s), self.groups);
        // Rule: the channels split into equal groups.
        if c % groups != 0 {
            errors.push(
                at.arg("groups"),
                format!("{}: {c} channels do not divide into {groups} groups; choose groups dividing {c}", at.who),
            );
            return None;
        }
        Some(s.to_vec())
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, groups) = (rt(), self.groups);
        quote!(let x = #rt::layers::channel_shuffle(&x, #groups)?;)
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, groups) = (ox(), self.groups);
        let input = super::tokens::dims(&emit.info.input);
        quote!(let x = #ox::channel_shuffle(g, &layer, &x, #input, #groups);)
    }
}

/// `channel_linear`: a linear layer over each pixel's channels (PyTorch's `nn.Linear` on a
/// channels-last image), weight `[units, C]`.
pub struct ChannelLinear {
    units: usize,
    bias: bool,
}

/// Builds `channel_linear`.
pub fn channel_linear(a: &Args) -> Op {
    op(ChannelLinear {
        units: a.int("units", 1, MAX_DIM),
        bias: a.boolean("bias"),
    })
}

impl Primitive for ChannelLinear {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        // Rule: `channel_linear` maps the channels of an image; a feature vector takes `linear`.
        if s.len() == 1 {
            errors.push(
                at.span,
                format!(
                    "{} maps the channels of each pixel of an image, but receives the feature vector {}; use `linear({})` on features",
                    at.who,
                    fmt_shape(s),
                    self.units
                ),
            );
            return None;
        }
        let (c, h, w) = chw(at, s, errors)?;
        let weights = checked_params(at, &[c, self.units], errors)?;
        info.params = weights + if self.bias { self.units } else { 0 };
        info.flops = flops(&[c, self.units, h, w]);
        Some(vec![self.units, h, w])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path, units, bias) = (emit.in_channels(), emit.path, self.units, self.bias);
        emit.module(
            quote!(#rt::layers::ChannelLinear),
            quote!(#rt::layers::channel_linear(#in_c, #units, #bias, vb.pp(#path))?),
        )
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, bias) = (ox(), self.bias);
        quote!(let x = #ox::channel_linear(g, &layer, &x, #bias);)
    }
}
