//! Pooling: max and average over windows, and global pooling over all of H x W.

use super::check::{chw, window, At};
use super::tokens::{cc, ox, pad2d, pad_array, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op, Pad4, Padding, MAX_WINDOW};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

/// `max_pool2d` (`max`) or `avg_pool2d`.
pub struct Pool2d {
    max: bool,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    /// PyTorch's `ceil_mode`: the output size rounds up, the last window overhanging the
    /// bottom/right (but starting inside the input or its top/left padding).
    ceil_mode: bool,
    /// PyTorch's `count_include_pad` (average pooling): the declared padding counts in each
    /// window's divisor (the overhang of `ceil_mode` never does).
    count_include_pad: bool,
}

fn pool2d(a: &Args, max: bool) -> Op {
    op(Pool2d {
        max,
        // The kernel first: the stride defaults to it.
        kernel: a.pair("kernel", MAX_WINDOW),
        stride: a.pair("stride", MAX_WINDOW),
        padding: a.padding("padding"),
        ceil_mode: a.boolean("ceil_mode"),
        count_include_pad: !max && a.boolean("count_include_pad"),
    })
}

/// PyTorch's output size in `ceil_mode` along one axis of `size` with `before`/`after`
/// padding (the window fits the padded input): windows are counted rounding up, except
/// that the last must start inside the input or the `before` padding.
fn ceil_out(size: usize, k: usize, s: usize, before: usize, after: usize) -> usize {
    let out = (size + before + after - k).div_ceil(s) + 1;
    if (out - 1) * s >= size + before {
        out - 1
    } else {
        out
    }
}

/// Rows (columns) the last of `out` windows overhangs the padded input of `padded`.
fn overhang(out: usize, k: usize, s: usize, padded: usize) -> usize {
    ((out - 1) * s + k).saturating_sub(padded)
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
        // Rule: `ceil_mode` (PyTorch's) rounds an explicit or valid padding's output up;
        // TensorFlow's `same` already outputs ceil(H / stride).
        if self.ceil_mode && self.padding == Padding::Same {
            errors.push(
                at.arg("ceil_mode"),
                format!("{}: `ceil_mode = true` cannot combine with `padding = same`, which already outputs ceil(size / stride); remove `ceil_mode`, or write PyTorch's padding as `padding = p`", at.who),
            );
            return None;
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
        // The declared padding; `expand` adds the overhang of `ceil_mode` from the output.
        info.pad = pad;
        if self.ceil_mode {
            let (sh, sw) = self.stride;
            return Some(vec![
                c,
                ceil_out(h, kernel.0, sh, pad.top, pad.bottom),
                ceil_out(w, kernel.1, sw, pad.left, pad.right),
            ]);
        }
        Some(vec![c, oh, ow])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let cc = cc();
        let layer = self.layer(emit.info);
        quote!(let x = #cc::Module::forward(&#layer, &x)?;)
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let ox = ox();
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let window = pad_array(&self.window_pad(emit.info));
        if self.max {
            return quote!(let x = #ox::max_pool2d(g, &layer, &x, (#kh, #kw), (#sh, #sw), #window););
        }
        let counted = pad_array(&if self.count_include_pad {
            emit.info.pad
        } else {
            Pad4::default()
        });
        quote!(let x = #ox::avg_pool2d(g, &layer, &x, (#kh, #kw), (#sh, #sw), #window, #counted);)
    }

    fn max_pool(&self, info: &Info) -> Option<TokenStream> {
        self.max.then(|| self.layer(info))
    }
}

impl Pool2d {
    /// The windows' padding: the padding that inference resolved into `info` and, in
    /// `ceil_mode`, the last windows' overhang added at the bottom and right.
    fn window_pad(&self, info: &Info) -> Pad4 {
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let declared = info.pad;
        let mut window_pad = declared;
        if let ([_, h, w], [_, oh, ow]) = (info.input.as_slice(), info.output.as_slice()) {
            window_pad.bottom += overhang(*oh, kh, sh, h + declared.top + declared.bottom);
            window_pad.right += overhang(*ow, kw, sw, w + declared.left + declared.right);
        }
        window_pad
    }

    /// The runtime layer, with the padding that inference resolved into `info` and, in
    /// `ceil_mode`, the last windows' overhang added at the bottom and right.
    fn layer(&self, info: &Info) -> TokenStream {
        let rt = rt();
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let declared = info.pad;
        let window = pad2d(&self.window_pad(info));
        let window = quote!(#rt::layers::Window2d::new((#kh, #kw), (#sh, #sw), #window));
        if self.max {
            return quote!(#rt::layers::MaxPool2d { window: #window });
        }
        let counted = pad2d(&if self.count_include_pad {
            declared
        } else {
            Pad4::default()
        });
        quote!(#rt::layers::AvgPool2d { window: #window, counted: #counted })
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

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, max, keepdims) = (ox(), self.max, self.keepdims);
        quote!(let x = #ox::global_pool2d(g, &layer, &x, #max, #keepdims);)
    }
}
