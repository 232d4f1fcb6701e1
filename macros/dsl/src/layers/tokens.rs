//! Paths and token snippets that generated code shares. Every path is absolute through
//! `::convnet`, and layers come from the runtime's `layers` tier (never its `ops` kernels).

use crate::ir::Pad4;
use proc_macro2::TokenStream;
use quote::quote;

/// The runtime crate.
pub fn rt() -> TokenStream {
    quote!(::convnet::__private::runtime)
}

/// `candle_nn`.
pub fn cn() -> TokenStream {
    quote!(::convnet::__private::candle_nn)
}

/// `candle_core`.
pub fn cc() -> TokenStream {
    quote!(::convnet::__private::candle_core)
}

/// The runtime's ONNX layer functions, `convnet::onnx::ops`.
pub fn ox() -> TokenStream {
    quote!(::convnet::__private::runtime::onnx::ops)
}

/// A `[top, bottom, left, right]` literal.
pub fn pad_array(p: &Pad4) -> TokenStream {
    let (t, b, l, r) = (p.top, p.bottom, p.left, p.right);
    quote!([#t, #b, #l, #r])
}

/// A runtime `Pad2d` literal.
pub fn pad2d(p: &Pad4) -> TokenStream {
    let rt = rt();
    let (t, b, l, r) = (p.top, p.bottom, p.left, p.right);
    quote!(#rt::layers::Pad2d { top: #t, bottom: #b, left: #l, right: #r })
}

/// A `&[usize]` literal of a shape.
pub fn dims(s: &[usize]) -> TokenStream {
    quote!(&[#(#s),*])
}
