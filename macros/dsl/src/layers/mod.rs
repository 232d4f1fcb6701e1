//! The plain (non-composite) layers, each stated once: its builder from a call's typed
//! arguments, its shape rule with its errors, its parameter and FLOP counts, and its
//! generated code. Each layer is a small struct implementing [`Primitive`]; lowering wraps
//! it in [`Op::Layer`], and `infer` and `expand` call it without knowing which layer it is.
//! The layers holding other layers (`residual`, the merges, blocks, nested models) are
//! structural and live in `lower::composite`, `infer` and `expand`.
//!
//! Adding a layer touches: its [`Kind`](crate::catalog::Kind) and
//! [`LayerSpec`](crate::catalog::LayerSpec) in `catalog` (name, arguments, defaults, usage,
//! documented shape, and `build` naming its builder), one file of this module (the struct,
//! its builder and its [`Primitive`] impl, calling one runtime layer), the runtime layer
//! itself, and a test (plus its row in `docs/grammar.md`'s layer table, which a catalog test
//! checks). `lower`, `infer`, `expand` and `ir` stay as they are.

use crate::error::Errors;
use crate::ir::{Info, Op};
use crate::lower::Args;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::rc::Rc;
use syn::Ident;

pub mod activation;
pub mod channels;
pub mod check;
pub mod conv;
pub mod linear;
pub mod norm;
pub mod pool;
pub mod regularization;
pub mod scale;
pub mod shape;
pub mod tokens;

pub use check::At;

/// Builds a layer's op from its call's typed arguments (defaults already from the catalog);
/// [`Op::Poison`] when an argument is wrong in a way the typed readers cannot say.
pub type Build = fn(&Args<'_>) -> Op;

/// A plain layer's compile-time behaviour.
pub trait Primitive {
    /// The output shape on input `input` (no batch dim), with the layer's parameter count,
    /// non-trainable count, FLOPs and resolved padding written into `info`; `None` after
    /// reporting, on `at`, why the layer does not fit its input.
    ///
    /// # Shapes
    /// `input` is `(C, H, W)` or `(F)`; the result is the layer's output in the same form.
    fn infer(
        &self,
        at: &At,
        input: &[usize],
        info: &mut Info,
        errors: &Errors,
    ) -> Option<Vec<usize>>;

    /// The forward statements, reading and rebinding `x` (a tensor of `emit.info.input`
    /// with a batch dim); a layer with parameters declares its field through `emit`.
    fn expand(&self, emit: &mut Emit) -> TokenStream;

    /// The ONNX statements: read `x` (a `convnet::onnx::Value` of `emit.info.input`, batch
    /// dim first) and rebind it to this layer's output, appending nodes to `g` (a
    /// `&mut convnet::onnx::Graph`) through one function of `convnet::onnx::ops`; `layer` (a
    /// `String`) is the layer's full path, its parameters' prefix. Written from the lowered
    /// layer, never from a fused call, so fused layers export as their parts.
    fn onnx(&self, emit: &OnnxEmit) -> TokenStream;

    /// Whether a directly following `relu` can run inside this layer (batch norm).
    fn fuses_following_relu(&self) -> bool {
        false
    }

    /// Whether this layer is a plain `relu`, which the layer before may fuse.
    fn is_relu(&self) -> bool {
        false
    }

    /// Whether this layer is a batch norm, which a following layer may take into its input
    /// (see [`Primitive::takes_batch_norm_input`]).
    fn is_batch_norm(&self) -> bool {
        false
    }

    /// Whether this layer can run a directly preceding batch norm (and its fused relu) on its
    /// input itself: its runtime layer implements `NormalizedInput`, and it declares its field
    /// through [`Emit::module`].
    fn takes_batch_norm_input(&self) -> bool {
        false
    }

    /// Whether this layer can run a directly following max pool on its output itself: its
    /// runtime layer implements `PooledOutput`, and it declares its field through
    /// [`Emit::module`].
    fn takes_pooled_output(&self) -> bool {
        false
    }

    /// For a max pool, the expression of its runtime layer (a value of
    /// `layers::MaxPool2d`), with the padding inference resolved into `info`.
    fn max_pool(&self, _info: &Info) -> Option<TokenStream> {
        None
    }
}

/// Wraps a layer into an [`Op`].
pub fn op(layer: impl Primitive + 'static) -> Op {
    Op::Layer(Rc::new(layer))
}

/// One field of the generated model struct: its name, type and initialiser (which may use
/// `vb`, the model's `VarBuilder`, and `?`).
pub struct Field {
    /// The field's name (the layer's path with `_` for `.`).
    pub ident: Ident,
    /// Its type.
    pub ty: TokenStream,
    /// The expression that creates it in `new`.
    pub init: TokenStream,
}

/// What a layer's ONNX generation knows (see [`Primitive::onnx`]).
pub struct OnnxEmit<'a> {
    /// The shapes, padding and counts that inference found.
    pub info: &'a Info,
}

impl OnnxEmit<'_> {
    /// Channels (or features) of the layer's input.
    pub fn in_channels(&self) -> usize {
        self.info.input.first().copied().unwrap_or(0)
    }

    /// The rank of the layer's input with its batch dim.
    pub fn rank(&self) -> usize {
        self.info.input.len() + 1
    }

    /// The input's height and width (`(0, 0)` for a flat input).
    pub fn hw(&self) -> (usize, usize) {
        match self.info.input[..] {
            [_, h, w] => (h, w),
            _ => (0, 0),
        }
    }
}

/// What a layer's code generation knows and where it declares its field.
pub struct Emit<'a> {
    /// The layer's path (`block1.conv2`), also its parameters' prefix.
    pub path: &'a str,
    /// The shapes, padding and counts that inference found.
    pub info: &'a Info,
    /// Set when the `relu` after this layer runs inside it (see
    /// [`Primitive::fuses_following_relu`]).
    pub fuse_relu: bool,
    /// The field of the batch norm that runs inside this layer, on its input (see
    /// [`Primitive::takes_batch_norm_input`]).
    pub norm_input: Option<Ident>,
    /// The max pool that runs inside this layer, on its output (see
    /// [`Primitive::takes_pooled_output`]).
    pub pooled_by: Option<TokenStream>,
    /// The model's fields so far.
    pub(crate) fields: &'a mut Vec<Field>,
}

impl Emit<'_> {
    /// Channels (or features) of the layer's input.
    pub fn in_channels(&self) -> usize {
        self.info.input.first().copied().unwrap_or(0)
    }

    /// Declares this layer's field of type `ty` created by `init`; returns its name.
    pub fn field(&mut self, ty: TokenStream, init: TokenStream) -> Ident {
        // A numeric label (`3: { ... }`) may start the path: a field name cannot.
        let name = self.path.replace('.', "_");
        let base = match name.starts_with(|c: char| c.is_ascii_digit()) {
            true => format_ident!("n{}", name),
            false => format_ident!("{}", name),
        };
        // Distinct paths may give one field name (`a_b.c` and `a.b_c`, `n3` and `3`): the
        // later field takes a number (fields are private; parameter names are the paths).
        let mut ident = base.clone();
        let mut n = 2u32;
        while ident == "__convnet_dtype" || self.fields.iter().any(|f| f.ident == ident) {
            ident = format_ident!("{}_{}", base, n);
            n += 1;
        }
        self.fields.push(Field {
            ident: ident.clone(),
            ty,
            init,
        });
        ident
    }

    /// Declares the field and returns the statement running it as a `candle_core::Module`.
    /// With [`Emit::norm_input`] or [`Emit::pooled_by`], the statement runs the batch norm
    /// before the layer and the max pool after it in the same call.
    pub fn module(&mut self, ty: TokenStream, init: TokenStream) -> TokenStream {
        let f = self.field(ty, init);
        let (cc, rt) = (tokens::cc(), tokens::rt());
        match (&self.norm_input, &self.pooled_by) {
            (None, None) => quote!(let x = #cc::Module::forward(&self.#f, &x)?;),
            (Some(norm), None) => quote! {
                let x = #rt::layers::NormalizedInput::forward_normalized(&self.#f, &self.#norm, &x, train)?;
            },
            (norm, Some(pool)) => {
                let norm = match norm {
                    Some(norm) => quote!(::core::option::Option::Some(&self.#norm)),
                    None => quote!(::core::option::Option::None),
                };
                quote! {
                    let x = #rt::layers::PooledOutput::forward_pooled(&self.#f, #norm, &#pool, &x, train)?;
                }
            }
        }
    }

    /// Declares the field and returns the statement running it as a `candle_nn::ModuleT`
    /// (which sees `train`).
    pub fn module_t(&mut self, ty: TokenStream, init: TokenStream) -> TokenStream {
        let f = self.field(ty, init);
        let cn = tokens::cn();
        quote!(let x = #cn::ModuleT::forward_t(&self.#f, &x, train)?;)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::LAYERS;

    /// The ops that `infer` and `expand` handle themselves: the layers holding other layers,
    /// shape assertions, and the stand-in after an error. Every plain layer is `Op::Layer`.
    const STRUCTURAL_OPS: &[&str] = &[
        "Layer",
        "AssertShape",
        "Residual",
        "Merge",
        "Skip",
        "Block",
        "Nested",
        "Poison",
    ];

    /// Adding a plain layer touches its catalog entry and one file of this module only: the
    /// catalog builds every plain layer (those of the layer table) through `build`, and
    /// `ir::Op` has no per-layer variant for `infer` or `expand` to match on.
    #[test]
    fn plain_layers_have_one_home() {
        for spec in LAYERS {
            assert_eq!(
                spec.build.is_some(),
                !spec.shape.is_empty(),
                "`{}`: each plain layer (a row of the layer table) has a builder, and only they do",
                spec.name
            );
        }
        let ir = syn::parse_file(include_str!("../ir.rs")).expect("ir.rs parses");
        let variants: Vec<String> = ir
            .items
            .iter()
            .find_map(|item| match item {
                syn::Item::Enum(e) if e.ident == "Op" => {
                    Some(e.variants.iter().map(|v| v.ident.to_string()).collect())
                }
                _ => None,
            })
            .expect("ir.rs defines `enum Op`");
        assert_eq!(
            variants, STRUCTURAL_OPS,
            "a plain layer belongs in `layers` as an `Op::Layer`, not in its own `Op` variant"
        );
    }
}
