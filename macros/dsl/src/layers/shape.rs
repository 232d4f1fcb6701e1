//! Layers that only move, add or drop values: flatten, reshape, zero padding, cropping and
//! upsampling.

use super::check::{chw, At};
use super::tokens::{dims, ox, pad2d, pad_array, rt};
use super::{op, Emit, OnnxEmit, Primitive};
use crate::error::Errors;
use crate::ir::{fmt_shape, Info, Op, Pad4, Padding, MAX_DIM, MAX_WINDOW};
use crate::lower::{shape_of, Args};
use proc_macro2::TokenStream;
use quote::quote;

/// `flatten`: `(C, H, W) -> (C * H * W)`.
pub struct Flatten;

/// Builds `flatten`.
pub fn flatten(_: &Args) -> Op {
    op(Flatten)
}

impl Primitive for Flatten {
    fn infer(&self, _: &At, s: &[usize], _: &mut Info, _: &Errors) -> Option<Vec<usize>> {
        // `infer` keeps every shape's product within its MAX_VALUES, so this cannot overflow.
        Some(vec![s.iter().product()])
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        quote!(let x = x.flatten_from(1)?;)
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let ox = ox();
        quote!(let x = #ox::flatten(g, &layer, &x);)
    }
}

/// `reshape`: reshapes each example to this shape.
pub struct Reshape {
    to: Vec<usize>,
}

/// Builds `reshape`.
pub fn reshape(a: &Args) -> Op {
    match a.value("shape") {
        Some(v) => match shape_of(&v) {
            Some(to) => op(Reshape { to }),
            None => {
                a.fail("shape", format!("`shape` of `reshape` is (C, H, W) or (features) with each dim from 1 to {MAX_DIM}, found `{v}`"));
                Op::Poison
            }
        },
        None => Op::Poison,
    }
}

impl Primitive for Reshape {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let dims = &self.to;
        // Rule: a reshape keeps the number of elements.
        let (have, want) = (s.iter().product::<usize>(), dims.iter().product::<usize>());
        if have != want {
            errors.push(
                at.arg("shape"),
                format!(
                    "{} cannot reshape {} ({have} elements) to {} ({want} elements)",
                    at.who,
                    fmt_shape(s),
                    fmt_shape(dims)
                ),
            );
            return None;
        }
        Some(dims.clone())
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, to) = (rt(), dims(&self.to));
        quote!(let x = #rt::layers::reshape(&x, #to)?;)
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, to) = (ox(), dims(&self.to));
        quote!(let x = #ox::reshape(g, &layer, &x, #to);)
    }
}

/// `zero_pad2d`: zero padding of the spatial dims.
pub struct ZeroPad2d {
    pad: Pad4,
}

/// Builds `zero_pad2d`.
pub fn zero_pad2d(a: &Args) -> Op {
    match a.padding("padding") {
        Padding::Explicit(pad) => op(ZeroPad2d { pad }),
        _ => {
            a.fail(
                "padding",
                "`zero_pad2d` takes p, (ph, pw) or (top, bottom, left, right)".into(),
            );
            Op::Poison
        }
    }
}

impl Primitive for ZeroPad2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let p = self.pad;
        let (c, h, w) = chw(at, s, errors)?;
        info.pad = p;
        Some(vec![c, h + p.top + p.bottom, w + p.left + p.right])
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, pad) = (rt(), pad2d(&self.pad));
        quote!(let x = #rt::layers::zero_pad2d(&x, #pad)?;)
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, pad) = (ox(), pad_array(&self.pad));
        quote!(let x = #ox::zero_pad2d(g, &layer, &x, #pad);)
    }
}

/// `crop2d`: removes rows and columns from the sides.
pub struct Crop2d {
    crop: Pad4,
}

/// Builds `crop2d`.
pub fn crop2d(a: &Args) -> Op {
    match a.value("cropping").map(|v| (a.pad4(&v), v)) {
        Some((Some(crop), _)) => op(Crop2d { crop }),
        Some((None, v)) => {
            a.fail("cropping", format!("`cropping` of `crop2d` is p, (ph, pw) or (top, bottom, left, right) with 0 <= p <= {MAX_WINDOW}, found `{v}`"));
            Op::Poison
        }
        None => Op::Poison,
    }
}

impl Primitive for Crop2d {
    fn infer(&self, at: &At, s: &[usize], info: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let p = self.crop;
        let (c, h, w) = chw(at, s, errors)?;
        // Rule: cropping leaves at least one row and one column.
        if p.top + p.bottom >= h || p.left + p.right >= w {
            errors.push(
                at.arg("cropping"),
                format!("{} removes {} rows and {} columns of a {h}x{w} input, leaving nothing; crop less", at.who, p.top + p.bottom, p.left + p.right),
            );
            return None;
        }
        info.pad = p;
        Some(vec![c, h - p.top - p.bottom, w - p.left - p.right])
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, crop) = (rt(), pad2d(&self.crop));
        quote!(let x = #rt::layers::crop2d(&x, #crop)?;)
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, crop, (h, w)) = (ox(), pad_array(&self.crop), emit.hw());
        quote!(let x = #ox::crop2d(g, &layer, &x, (#h, #w), #crop);)
    }
}

/// `center_crop`: keeps the central `height x width` window.
pub struct CenterCrop {
    height: usize,
    width: usize,
}

/// Builds `center_crop`.
pub fn center_crop(a: &Args) -> Op {
    op(CenterCrop {
        height: a.int("height", 1, MAX_DIM),
        width: a.int("width", 1, MAX_DIM),
    })
}

impl Primitive for CenterCrop {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let (height, width) = (self.height, self.width);
        let (c, h, w) = chw(at, s, errors)?;
        // Rule: a centre crop is no larger than its input.
        if height > h || width > w {
            let arg = if height > h { "height" } else { "width" };
            errors.push(
                at.arg(arg),
                format!("{} cannot crop {height}x{width} out of a {h}x{w} input; use a size of at most {h}x{w}", at.who),
            );
            return None;
        }
        Some(vec![c, height, width])
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let (rt, height, width) = (rt(), self.height, self.width);
        quote!(let x = #rt::layers::center_crop(&x, (#height, #width))?;)
    }

    fn onnx(&self, emit: &OnnxEmit) -> TokenStream {
        let (ox, height, width, (h, w)) = (ox(), self.height, self.width, emit.hw());
        quote!(let x = #ox::center_crop(g, &layer, &x, (#h, #w), (#height, #width));)
    }
}

/// `upsample2d`: upsampling by integer factors, nearest or bilinear.
pub struct Upsample2d {
    scale: (usize, usize),
    bilinear: bool,
}

/// Builds `upsample2d`.
pub fn upsample2d(a: &Args) -> Op {
    op(Upsample2d {
        scale: a.pair("scale", MAX_WINDOW),
        bilinear: a.word("mode", &["nearest", "bilinear"]) == Some("bilinear"),
    })
}

impl Primitive for Upsample2d {
    fn infer(&self, at: &At, s: &[usize], _: &mut Info, errors: &Errors) -> Option<Vec<usize>> {
        let scale = self.scale;
        let (c, h, w) = chw(at, s, errors)?;
        let (oh, ow) = (h.saturating_mul(scale.0), w.saturating_mul(scale.1));
        // Rule: outputs stay within the largest size accepted, so counts cannot overflow.
        if oh.max(ow) > MAX_DIM as usize {
            errors.push(
                at.arg("scale"),
                format!(
                    "{} would output {oh}x{ow}, larger than the limit of {MAX_DIM}; upsample less",
                    at.who
                ),
            );
            return None;
        }
        Some(vec![c, oh, ow])
    }

    fn expand(&self, _: &mut Emit) -> TokenStream {
        let rt = rt();
        let (sh, sw) = self.scale;
        let mode = if self.bilinear {
            quote!(Bilinear)
        } else {
            quote!(Nearest)
        };
        quote!(let x = #rt::layers::upsample2d(&x, (#sh, #sw), #rt::layers::UpsampleMode::#mode)?;)
    }

    fn onnx(&self, _: &OnnxEmit) -> TokenStream {
        let (ox, (sh, sw), bilinear) = (ox(), self.scale, self.bilinear);
        quote!(let x = #ox::upsample2d(g, &layer, &x, (#sh, #sw), #bilinear);)
    }
}
