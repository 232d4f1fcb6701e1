//! Pooling: max and average over windows, and global pooling over all of H x W.

use super::check::{chw, window, At};
use super::tokens::{cc, pad2d, rt};
use super::{op, Emit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op, Padding, MAX_WINDOW};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

/// `max_pool2d` (`max`) or `avg_pool2d`.
pub struct Pool2d {
    max: bool,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
}

fn pool2d(a: &Args, max: bool) -> Op {
    op(Pool2d {
        max,
        // The kernel first: the stride defaults to it.
        kernel: a.pair("kernel", MAX_WINDOW),
        stride: a.pair("stride", MAX_WINDOW),
        padding: a.padding("padding"),
    })
}

/// Builds `max_pool2d`.
pub fn max_pool2d(a: &Args) -> Op {
    pool2d(a, true)
}

/// Builds `avg_pool2d`.
pub fn avg_pool2d(a: &Args) -> Op {
    pool2d(a, false)
}

impl Primitive for Pool2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let kernel = self.kernel;
        let (c, h, w) = chw(at, s, errors)?;
        if let Padding::Explicit(p) = self.padding {
            // Rule: explicit pooling padding is at most half the window (PyTorch's rule),
            // so no window sees only padding.
            if p.top.max(p.bottom) > kernel.0 / 2 || p.left.max(p.right) > kernel.1 / 2 {
                errors.push(
                    at.arg("padding"),
                    format!("{}: padding may be at most half the {}x{} window, so no window covers only padding", at.who, kernel.0, kernel.1),
                );
                return None;
            }
        }
        let (oh, ow, pad) = window(
            at,
            errors,
            (h, w),
            kernel,
            self.stride,
            1,
            &self.padding,
            "window",
        )?;
        info.pad = pad;
        Some(vec![c, oh, ow])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let cc = cc();
        let layer = self.layer(emit.info);
        quote!(let x = #cc::Module::forward(&#layer, &x)?;)
    }

    fn max_pool(&self, info: &Info) -> Option<TokenStream> {
        self.max.then(|| self.layer(info))
    }
}

impl Pool2d {
    /// The runtime layer, with the padding that inference resolved into `info`.
    fn layer(&self, info: &Info) -> TokenStream {
        let rt = rt();
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let pad = pad2d(&info.pad);
        let layer = if self.max {
            quote!(MaxPool2d)
        } else {
            quote!(AvgPool2d)
        };
        quote!(#rt::layers::#layer { window: #rt::layers::Window2d::new((#kh, #kw), (#sh, #sw), #pad) })
    }
}

/// `global_max_pool2d` (`max`) or `global_avg_pool2d`: pooling over all of H x W;
/// `keepdims` gives `(C, 1, 1)` instead of `(C)`.
pub struct GlobalPool2d {
    max: bool,
    keepdims: bool,
}

/// Builds `global_avg_pool2d`.
pub fn global_avg_pool2d(a: &Args) -> Op {
    op(GlobalPool2d {
        max: false,
        keepdims: a.boolean("keepdims"),
    })
}

/// Builds `global_max_pool2d`.
pub fn global_max_pool2d(a: &Args) -> Op {
    op(GlobalPool2d {
        max: true,
        keepdims: a.boolean("keepdims"),
    })
}

impl Primitive for GlobalPool2d {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let (c, _, _) = chw(at, s, errors)?;
        Some(if self.keepdims {
            vec![c, 1, 1]
        } else {
            vec![c]
        })
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let in_c = emit.in_channels();
        let op = if self.max {
            quote!(global_max_pool2d)
        } else {
            quote!(global_avg_pool2d)
        };
        if self.keepdims {
            quote!(let x = #rt::layers::reshape(&#rt::layers::#op(&x)?, &[#in_c, 1, 1])?;)
        } else {
            quote!(let x = #rt::layers::#op(&x)?;)
        }
    }
}
