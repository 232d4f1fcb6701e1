//! Convolutions: dense or grouped, depthwise, separable and transposed.

use super::check::{checked_params, chw, flops, window, At};
use super::tokens::{ox, pad2d, pad_array, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{Info, Op, Pad4, Padding, MAX_DIM, MAX_WINDOW};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::quote;

fn kernel(a: &Args) -> (usize, usize) {
    a.pair("kernel", MAX_WINDOW)
}

fn filters(a: &Args) -> usize {
    a.int("filters", 1, MAX_DIM)
}

fn window_arg(a: &Args, name: &'static str) -> usize {
    a.int(name, 1, MAX_WINDOW)
}

/// The window arguments the convolutions over a padded input share.
#[derive(Clone, Copy)]
struct ConvWindow {
    kernel: (usize, usize),
    stride: usize,
    padding: Padding,
    dilation: usize,
    bias: bool,
}

impl ConvWindow {
    fn read(a: &Args) -> Self {
        ConvWindow {
            kernel: kernel(a),
            stride: window_arg(a, "stride"),
            padding: a.padding("padding"),
            dilation: window_arg(a, "dilation"),
            bias: a.boolean("bias"),
        }
    }

    /// The output height and width on an `h x w` input, and the resolved padding.
    fn output(&self, at: &At, errors: &Errors, h: usize, w: usize) -> Option<(usize, usize, Pad4)> {
        window(
            at,
            errors,
            (h, w),
            self.kernel,
            (self.stride, self.stride),
            self.dilation,
            &self.padding,
            "kernel",
        )
    }

    /// The runtime's `Conv2dOptions` literal for the resolved padding `pad`.
    fn options(&self, pad: &Pad4, groups: usize) -> TokenStream {
        let rt = rt();
        let pad = pad2d(pad);
        let (stride, dilation, bias) = (self.stride, self.dilation, self.bias);
        quote!(#rt::layers::Conv2dOptions { stride: #stride, dilation: #dilation, padding: #pad, groups: #groups, bias: #bias })
    }

    /// The ONNX `Window` literal for the resolved padding `pad`.
    fn onnx(&self, pad: &Pad4) -> TokenStream {
        let ox = ox();
        let pad = pad_array(pad);
        let ((kh, kw), stride, dilation, bias) =
            (self.kernel, self.stride, self.dilation, self.bias);
        quote!(#ox::Window { kernel: (#kh, #kw), stride: #stride, dilation: #dilation, pad: #pad, bias: #bias })
    }

    /// The bias count of `out` channels.
    fn biases(&self, out: usize) -> usize {
        if self.bias {
            out
        } else {
            0
        }
    }
}

/// `conv2d`: dense or grouped 2-d convolution.
pub struct Conv2d {
    filters: usize,
    groups: usize,
    win: ConvWindow,
}

/// Builds `conv2d`.
pub fn conv2d(a: &Args) -> Op {
    op(Conv2d {
        filters: filters(a),
        groups: a.int("groups", 1, MAX_DIM),
        win: ConvWindow::read(a),
    })
}

impl Conv2d {
    /// The 1x1 convolution with bias that `project = auto` adds to a residual block.
    pub fn projection(filters: usize, stride: usize) -> Self {
        Conv2d {
            filters,
            groups: 1,
            win: ConvWindow {
                kernel: (1, 1),
                stride,
                padding: Padding::Valid,
                dilation: 1,
                bias: true,
            },
        }
    }
}

impl Primitive for Conv2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let Conv2d {
            filters,
            groups,
            win,
        } = *self;
        let (c, h, w) = chw(at, s, errors)?;
        // Rule: grouped convolutions split input and output channels evenly.
        if c % groups != 0 || filters % groups != 0 {
            errors.push(
                at.arg("groups"),
                format!("{}: {c} input and {filters} output channels must both divide into {groups} groups; choose groups dividing both", at.who),
            );
            return None;
        }
        let (oh, ow, pad) = win.output(at, errors, h, w)?;
        let (per, (kh, kw)) = (c / groups, win.kernel);
        let weights = checked_params(at, &[filters, per, kh, kw], errors)?;
        info.params = weights + win.biases(filters);
        info.flops = flops(&[oh, ow, filters, per, kh, kw]);
        info.pad = pad;
        Some(vec![filters, oh, ow])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path) = (emit.in_channels(), emit.path);
        let (filters, (kh, kw)) = (self.filters, self.win.kernel);
        let options = self.win.options(&emit.info.pad, self.groups);
        emit.module(
            quote!(#rt::layers::Conv2d),
            quote!(#rt::layers::conv2d(#in_c, #filters, (#kh, #kw), #options, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, groups) = (ox(), self.groups);
        let w = self.win.onnx(&emit.info.pad);
        quote!(let x = #ox::conv2d(g, &layer, &x, #w, #groups);)
    }
}

/// `depthwise_conv2d`: per-channel 2-d convolution.
pub struct DepthwiseConv2d {
    multiplier: usize,
    win: ConvWindow,
}

/// Builds `depthwise_conv2d`.
pub fn depthwise_conv2d(a: &Args) -> Op {
    op(DepthwiseConv2d {
        multiplier: window_arg(a, "multiplier"),
        win: ConvWindow::read(a),
    })
}

impl Primitive for DepthwiseConv2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let (c, h, w) = chw(at, s, errors)?;
        let (oh, ow, pad) = self.win.output(at, errors, h, w)?;
        let (out, (kh, kw)) = (c * self.multiplier, self.win.kernel);
        let weights = checked_params(at, &[out, kh, kw], errors)?;
        info.params = weights + self.win.biases(out);
        info.flops = flops(&[oh, ow, out, kh, kw]);
        info.pad = pad;
        Some(vec![out, oh, ow])
    }

    fn takes_batch_norm_input(&self) -> bool {
        true
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path) = (emit.in_channels(), emit.path);
        let (multiplier, (kh, kw)) = (self.multiplier, self.win.kernel);
        let options = self.win.options(&emit.info.pad, 1);
        emit.module(
            quote!(#rt::layers::DepthwiseConv2d),
            quote!(#rt::layers::depthwise_conv2d(#in_c, #multiplier, (#kh, #kw), #options, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, in_c) = (ox(), emit.in_channels());
        let w = self.win.onnx(&emit.info.pad);
        quote!(let x = #ox::depthwise_conv2d(g, &layer, &x, #in_c, #w);)
    }
}

/// `separable_conv2d`: depthwise then 1x1 pointwise convolution.
pub struct SeparableConv2d {
    filters: usize,
    multiplier: usize,
    win: ConvWindow,
}

/// Builds `separable_conv2d`.
pub fn separable_conv2d(a: &Args) -> Op {
    op(SeparableConv2d {
        filters: filters(a),
        multiplier: window_arg(a, "multiplier"),
        win: ConvWindow::read(a),
    })
}

impl Primitive for SeparableConv2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let (c, h, w) = chw(at, s, errors)?;
        let (oh, ow, pad) = self.win.output(at, errors, h, w)?;
        let (filters, (kh, kw)) = (self.filters, self.win.kernel);
        let mid = c * self.multiplier;
        let depthwise = checked_params(at, &[mid, kh, kw], errors)?;
        let pointwise = checked_params(at, &[mid, filters], errors)?;
        info.params = depthwise + pointwise + self.win.biases(filters);
        info.flops = flops(&[oh, ow, mid, kh, kw]).saturating_add(flops(&[oh, ow, mid, filters]));
        info.pad = pad;
        Some(vec![filters, oh, ow])
    }

    fn takes_batch_norm_input(&self) -> bool {
        true
    }

    fn takes_pooled_output(&self) -> bool {
        true
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path) = (emit.in_channels(), emit.path);
        let (filters, multiplier, (kh, kw)) = (self.filters, self.multiplier, self.win.kernel);
        let options = self.win.options(&emit.info.pad, 1);
        emit.module(
            quote!(#rt::layers::SeparableConv2d),
            quote!(#rt::layers::separable_conv2d(#in_c, #filters, #multiplier, (#kh, #kw), #options, vb.pp(#path))?),
        )
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, in_c) = (ox(), emit.in_channels());
        let w = self.win.onnx(&emit.info.pad);
        quote!(let x = #ox::separable_conv2d(g, &layer, &x, #in_c, #w);)
    }
}

/// `conv_transpose2d`: transposed convolution with PyTorch's semantics.
pub struct ConvTranspose2d {
    filters: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
    bias: bool,
}

/// Builds `conv_transpose2d`.
pub fn conv_transpose2d(a: &Args) -> Op {
    op(ConvTranspose2d {
        filters: filters(a),
        kernel: kernel(a),
        stride: window_arg(a, "stride"),
        padding: a.int("padding", 0, MAX_WINDOW),
        output_padding: a.int("output_padding", 0, MAX_WINDOW),
        dilation: window_arg(a, "dilation"),
        bias: a.boolean("bias"),
    })
}

impl Primitive for ConvTranspose2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let ConvTranspose2d {
            filters,
            kernel,
            stride,
            padding,
            output_padding,
            dilation,
            bias,
        } = *self;
        let me = &at.who;
        let (c, h, w) = chw(at, s, errors)?;
        // Rule: output padding is smaller than the stride or the dilation (PyTorch's rule),
        // so it only completes a partial stride.
        if output_padding >= stride.max(dilation) {
            errors.push(
                at.arg("output_padding"),
                format!("{me}: output_padding {output_padding} must be smaller than the stride ({stride}) or the dilation ({dilation})"),
            );
            return None;
        }
        let full =
            |input: usize, k: usize| (input - 1) * stride + dilation * (k - 1) + output_padding + 1;
        let (fh, fw) = (full(h, kernel.0), full(w, kernel.1));
        // Rule: outputs stay within the largest size accepted, so counts cannot overflow.
        if fh.max(fw) > MAX_DIM as usize {
            errors.push(
                at.arg("stride"),
                format!("{me} would output {fh}x{fw}, larger than the limit of {MAX_DIM}; use a smaller stride or kernel"),
            );
            return None;
        }
        // Rule: the padding removes less than the whole output.
        if 2 * padding >= fh.min(fw) {
            errors.push(
                at.arg("padding"),
                format!("{me}: padding {padding} on each side removes the whole {fh}x{fw} output of its {}x{} kernel on a {h}x{w} input; use a padding below {}", kernel.0, kernel.1, fh.min(fw).div_ceil(2)),
            );
            return None;
        }
        let (oh, ow) = (fh - 2 * padding, fw - 2 * padding);
        let weights = checked_params(at, &[c, filters, kernel.0, kernel.1], errors)?;
        info.params = weights + if bias { filters } else { 0 };
        info.flops = flops(&[h, w, c, filters, kernel.0, kernel.1]);
        Some(vec![filters, oh, ow])
    }

    fn expand(&self, emit: &mut Emit) -> TokenStream {
        let rt = rt();
        let (in_c, path) = (emit.in_channels(), emit.path);
        let ConvTranspose2d {
            filters,
            kernel: (kh, kw),
            stride,
            padding,
            output_padding,
            dilation,
            bias,
        } = *self;
        emit.module(
            quote!(#rt::layers::ConvTranspose2d),
            quote!(#rt::layers::conv_transpose2d(#in_c, #filters, (#kh, #kw), #rt::layers::ConvTranspose2dOptions { stride: #stride, padding: #padding, output_padding: #output_padding, dilation: #dilation, bias: #bias }, vb.pp(#path))?),
        )
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let ox = ox();
        let ConvTranspose2d {
            kernel: (kh, kw),
            stride,
            padding,
            output_padding,
            dilation,
            bias,
            ..
        } = *self;
        quote!(let x = #ox::conv_transpose2d(g, &layer, &x, (#kh, #kw), #stride, #padding, #output_padding, #dilation, #bias);)
    }
}
