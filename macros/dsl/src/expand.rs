//! Code generation: a checked model becomes a struct with one typed candle field per
//! parameterised layer, a constructor from a `VarBuilder`, `candle_nn::ModuleT`, consts with
//! the compile-time facts, and a summary. All paths are absolute through `::convnet`, and
//! layers come from the runtime's `layers` tier (never its `ops` kernels).

use crate::ir::{fmt_shape, path_text, Merge, Model, Node, Op, Project};
use crate::layers::tokens::{cc, cn, dims, rt};
use crate::layers::{Emit, Field, Primitive};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Ident, Path};

mod onnx;

/// What walking the layers collects besides the forward statements.
#[derive(Default)]
struct Gen {
    fields: Vec<Field>,
    rows: Vec<TokenStream>,
    checks: Vec<TokenStream>,
    /// Set while generating a `batch_norm` that the following `relu` is fused into.
    fuse_relu: bool,
    /// The batch norm field whose output the layer being generated takes as its input (see
    /// [`Emit::norm_input`]).
    norm_input: Option<Ident>,
    /// The max pool the layer being generated runs on its output (see [`Emit::pooled_by`]).
    pooled_by: Option<TokenStream>,
    /// Save ids of the labelled layers whose output an `@label` uses.
    saved: std::collections::BTreeSet<usize>,
    /// The top-level layers a forward pass can stop after, with their output shapes, in
    /// order (see `Network::forward_to_t`): not a layer that runs fused inside the next.
    stops: Vec<(String, Vec<usize>)>,
    /// How many sequences `seq` is inside (1 for the model's body).
    depth: usize,
}

impl Gen {
    /// Whether an `@label` uses this layer's output.
    fn is_saved(&self, node: &Node) -> bool {
        node.save.is_some_and(|s| self.saved.contains(&s))
    }

    fn row(&mut self, name: &str, kind: &str, output: &[usize], params: TokenStream) {
        let rt = rt();
        let output = dims(output);
        self.rows.push(quote! {
            #rt::model::SummaryRow {
                name: ::std::string::String::from(#name),
                kind: ::std::string::String::from(#kind),
                output_shape: ::std::vec::Vec::from(#output as &[usize]),
                params: #params,
            }
        });
    }

    /// A sequence of nodes; `batch_norm, relu` pairs become one fused batch norm (the relu
    /// keeps its summary row), and a batch norm (with its relu) whose output only feeds a
    /// layer that takes a normalised input (a depthwise or separable convolution) runs inside
    /// that layer's call, so training never stores the normalised tensor; likewise a max
    /// pool right after a layer that can pool its own output (a separable convolution).
    fn seq(&mut self, nodes: &[Node], scope: &str) -> TokenStream {
        self.depth += 1;
        // The model's own body (a `_:` residual's body also has the empty scope).
        let top_level = self.depth == 1;
        let mut stmts = Vec::with_capacity(nodes.len());
        let mut i = 0;
        while i < nodes.len() {
            let layer = |j: usize| nodes.get(j).and_then(primitive);
            let kept = |j: usize| self.is_saved(&nodes[j]);
            let fuse = layer(i).is_some_and(|p| p.fuses_following_relu())
                && !kept(i)
                && layer(i + 1).is_some_and(|p| p.is_relu());
            let next = if fuse { i + 2 } else { i + 1 };
            let into_next = layer(i).is_some_and(|p| p.is_batch_norm())
                && (i..next).all(|j| !kept(j))
                && layer(next).is_some_and(|p| p.takes_batch_norm_input());
            // The layer that may run a following max pool on its output.
            let conv = if into_next { next } else { i };
            let pool = if layer(conv).is_some_and(|p| p.takes_pooled_output()) && !kept(conv) {
                layer(conv + 1).and_then(|p| p.max_pool(&nodes[conv + 1].info))
            } else {
                None
            };
            self.fuse_relu = fuse;
            self.pooled_by = if into_next { None } else { pool.clone() };
            let mut stmt = self.node(&nodes[i], scope);
            // The batch norm's field: the one its expansion just declared.
            let norm_field = into_next
                .then(|| self.fields.last().map(|f| f.ident.clone()))
                .flatten();
            self.fuse_relu = false;
            self.pooled_by = None;
            if fuse {
                // Only the summary row: the relu runs inside the batch norm.
                let _ = self.node(&nodes[i + 1], scope);
            }
            let mut last = next - 1;
            if into_next {
                // The batch norm's statement is dropped; the layer's call runs it.
                self.norm_input = norm_field;
                self.pooled_by = pool.clone();
                stmt = self.node(&nodes[next], scope);
                self.norm_input = None;
                self.pooled_by = None;
                last = next;
            }
            if pool.is_some() {
                // Only the summary row: the pool runs inside the layer before it.
                let _ = self.node(&nodes[conv + 1], scope);
                last = conv + 1;
            }
            // Each step moves the previous activation into its own block, so it is dropped as
            // soon as the step's output exists (shadowing alone would keep it to the end of
            // `forward_t`; only matters when no graph holds it, as inside `no_grad`).
            stmts.push(quote!(let x = { let x = x; #stmt x };));
            if let Some(save) = nodes[last].save.filter(|_| self.is_saved(&nodes[last])) {
                let saved = format_ident!("saved_{}", save);
                stmts.push(quote!(let #saved = x.clone();));
            }
            if top_level && !matches!(nodes[last].op, Op::AssertShape(_)) {
                // A top-level layer: `forward_to_t` may stop after it (`_:` ones have no
                // name, but `forward_features_t` may still stop there).
                let stop = self.stops.len();
                self.stops
                    .push((nodes[last].name.clone(), nodes[last].info.output.clone()));
                stmts.push(quote! {
                    if __convnet_stop == #stop {
                        return ::core::result::Result::Ok(if grad { x } else { x.detach() });
                    }
                });
            }
            i = last + 1;
        }
        self.depth -= 1;
        quote!(#(#stmts)*)
    }

    fn node(&mut self, node: &Node, scope: &str) -> TokenStream {
        let cc = cc();
        let path = crate::ir::path(scope, &node.name);
        let info = &node.info;
        let params = info.params;
        let stmt = match &node.op {
            Op::Layer(layer) => layer.expand(&mut Emit {
                path: &path,
                info,
                fuse_relu: self.fuse_relu,
                norm_input: self.norm_input.clone(),
                pooled_by: self.pooled_by.clone(),
                fields: &mut self.fields,
            }),
            Op::Nested { path: model, .. } => {
                let stmt = Emit {
                    path: &path,
                    info,
                    fuse_relu: false,
                    norm_input: None,
                    pooled_by: None,
                    fields: &mut self.fields,
                }
                .module_t(quote!(#model), quote!(<#model>::new(vb.pp(#path))?));
                self.row(
                    &path,
                    &node.kind,
                    &info.output,
                    quote!(<#model>::TOTAL_PARAMS),
                );
                self.nested_check(node, model);
                return stmt;
            }
            Op::AssertShape(_) | Op::Poison => quote!(),
            Op::Block { body } => return self.seq(body, &path),
            Op::Skip { save, .. } => {
                let saved = format_ident!("saved_{}", save);
                return quote!(let x = #saved.clone(););
            }
            Op::Merge { merge, branches } => {
                let names: Vec<Ident> = (0..branches.len())
                    .map(|i| format_ident!("branch{}", i))
                    .collect();
                let code: Vec<TokenStream> = branches.iter().map(|b| self.node(b, &path)).collect();
                let (first, rest) = (&names[0], &names[1..]);
                let combine = match merge {
                    Merge::Concat => quote!(#cc::Tensor::cat(&[#(&#names),*], 1)?),
                    Merge::Add => quote!(#first #(.add(&#rest)?)*),
                    Merge::Multiply => quote!(#first #(.broadcast_mul(&#rest)?)*),
                };
                self.row(&path, merge.keyword(), &info.output, quote!(0));
                return quote! {
                    let x = {
                        let input = x;
                        #(let #names = {
                            let x = input.clone();
                            #code
                            x
                        };)*
                        #combine
                    };
                };
            }
            Op::Residual { project, body } => {
                let body = self.seq(body, &path);
                let project = match project {
                    Project::Node(p) => self.node(p, &path),
                    Project::Identity | Project::Auto => quote!(),
                };
                self.row(&path, "residual add", &info.output, quote!(0));
                return quote! {
                    let x = {
                        let skip = x.clone();
                        #body
                        let skip = {
                            let x = skip;
                            #project
                            x
                        };
                        #cc::Tensor::add(&x, &skip)?
                    };
                };
            }
        };
        if !matches!(node.op, Op::AssertShape(_) | Op::Poison) {
            self.row(&path, &node.kind, &info.output, quote!(#params));
        }
        stmt
    }

    /// Compile-time checks that a model from another description fits where it is used. Its
    /// shapes are known only to the compiler, so the check is a `const` whose panic message
    /// names both the model's shape and the one expected here, assembled at compile time,
    /// and whose error covers the whole path of the model's use.
    fn nested_check(&mut self, node: &Node, model: &Path) {
        let Op::Nested {
            input: None,
            output,
            ..
        } = &node.op
        else {
            return;
        };
        let rt = rt();
        let tokens: Vec<proc_macro2::TokenTree> = model.to_token_stream().into_iter().collect();
        let first = tokens.first().map_or(node.span, |t| t.span());
        let last = tokens.last().map_or(node.span, |t| t.span());
        // rustc underlines a macro call from its path to its arguments: starting the call at
        // the model path's first token and ending it at its last covers the whole path.
        let panic = |message: TokenStream| {
            let name = quote_spanned!(first=> ::core::panic);
            let args = quote_spanned!(last=> !("{}", #message.as_str()));
            quote!(#name #args)
        };
        let shown = path_text(model);
        let reaching = fmt_shape(&node.info.input);
        let declared = fmt_shape(output);
        let msg = quote!(#rt::model::ConstMessage::new());
        let (takes, receives) = (
            format!("`{shown}` takes input "),
            format!(" (its `INPUT_SHAPE`) but receives {reaching} here; change the layers before it so they output "),
        );
        let in_panic = panic(quote! {
            #msg.str(#takes).shape(<#model>::INPUT_SHAPE).str(#receives).shape(<#model>::INPUT_SHAPE)
        });
        let (outputs, not_declared) = (
            format!("`{shown}` outputs "),
            format!(" (its `OUTPUT_SHAPE`), not the declared {declared}; write `output = "),
        );
        let out_panic = panic(quote! {
            #msg.str(#outputs).shape(<#model>::OUTPUT_SHAPE).str(#not_declared).shape(<#model>::OUTPUT_SHAPE).str("`")
        });
        let (input, output) = (dims(&node.info.input), dims(output));
        self.checks.push(quote_spanned! {node.span=>
            const _: () = {
                if !#rt::model::shape_eq(<#model>::INPUT_SHAPE, #input) {
                    #in_panic;
                }
                if !#rt::model::shape_eq(<#model>::OUTPUT_SHAPE, #output) {
                    #out_panic;
                }
            };
        });
    }
}

/// The plain layer of `node`, if it is one.
fn primitive(node: &Node) -> Option<&dyn Primitive> {
    match &node.op {
        Op::Layer(layer) => Some(layer.as_ref()),
        _ => None,
    }
}

/// Sums a count over the top-level nodes (composites already include their children).
fn total(model: &Model, own: impl Fn(&Node) -> u128, konst: &str) -> TokenStream {
    let known: u128 = model.body.iter().map(&own).sum();
    let konst = format_ident!("{}", konst);
    let nested: Vec<&Path> = model
        .body
        .iter()
        .flat_map(|n| n.info.nested.iter())
        .collect();
    let known = proc_macro2::Literal::u128_unsuffixed(known);
    quote!(#known #(+ <#nested>::#konst)*)
}

/// Generates a checked model.
pub fn model(model: &Model, output: &[usize]) -> TokenStream {
    let (rt, cn, cc) = (rt(), cn(), cc());
    let mut gen = Gen {
        saved: model.saved.clone(),
        ..Gen::default()
    };
    let forward = gen.seq(&model.body, "");
    let onnx = onnx::body(model);
    let Model {
        attrs, vis, name, ..
    } = model;
    let input = model.input.clone().unwrap_or_default();
    let name_str = name.to_string();
    let doc = format!(
        " Input {} -> output {} per example (batch dim first at run time).",
        fmt_shape(&input),
        fmt_shape(output)
    );
    let (input_dims, output_dims) = (dims(&input), dims(output));
    let total_params = total(model, |n| n.info.params as u128, "TOTAL_PARAMS");
    let trainable = total(
        model,
        |n| (n.info.params - n.info.non_trainable) as u128,
        "TRAINABLE_PARAMS",
    );
    let non_trainable = total(
        model,
        |n| n.info.non_trainable as u128,
        "NON_TRAINABLE_PARAMS",
    );
    let flops = total(model, |n| n.info.flops as u128, "FLOPS");
    let field_names: Vec<&Ident> = gen.fields.iter().map(|f| &f.ident).collect();
    let field_types: Vec<&TokenStream> = gen.fields.iter().map(|f| &f.ty).collect();
    let field_inits: Vec<&TokenStream> = gen.fields.iter().map(|f| &f.init).collect();
    let rows = &gen.rows;
    let checks = &gen.checks;
    let stops = gen.stops.iter().map(|(name, shape)| {
        let shape = dims(shape);
        quote!((#name, #shape))
    });
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #vis struct #name {
            #(#field_names: #field_types,)*
            /// The dtype of the parameters, which inputs must have.
            __convnet_dtype: #cc::DType,
        }

        #(#checks)*

        #[allow(clippy::identity_op, clippy::erasing_op, clippy::unreadable_literal)]
        impl #name {
            /// Shape of one input example (no batch dim).
            pub const INPUT_SHAPE: &'static [usize] = #input_dims;
            /// Shape of one output example (no batch dim).
            pub const OUTPUT_SHAPE: &'static [usize] = #output_dims;
            /// All parameters, batch-norm moving statistics included (Keras "Total params").
            pub const TOTAL_PARAMS: usize = #total_params;
            /// Parameters an optimizer updates.
            pub const TRAINABLE_PARAMS: usize = #trainable;
            /// Batch-norm moving statistics.
            pub const NON_TRAINABLE_PARAMS: usize = #non_trainable;
            /// Forward FLOPs per example (a multiply-add counts two).
            pub const FLOPS: u64 = #flops;

            /// Creates the model with its parameters under `vb`.
            pub fn new(vb: #cn::VarBuilder) -> #cc::Result<Self> {
                let __convnet_dtype = vb.dtype();
                #(let #field_names = #field_inits;)*
                ::core::result::Result::Ok(Self { #(#field_names,)* __convnet_dtype })
            }

            /// The Keras-style layer table (`println!("{}", Model::summary())`).
            pub fn summary() -> #rt::model::Summary {
                #rt::model::Summary {
                    model: ::std::string::String::from(#name_str),
                    input_shape: ::std::vec::Vec::from(Self::INPUT_SHAPE),
                    rows: ::std::vec![#(#rows),*],
                    total_params: Self::TOTAL_PARAMS,
                    trainable_params: Self::TRAINABLE_PARAMS,
                    non_trainable_params: Self::NON_TRAINABLE_PARAMS,
                    flops: Self::FLOPS,
                }
            }
        }

        impl #name {
            /// The forward pass up to and including top-level layer number `__convnet_stop`
            /// of `STOPS` (all of it past the last).
            fn __convnet_forward(
                &self,
                xs: &#cc::Tensor,
                train: bool,
                __convnet_stop: usize,
            ) -> #cc::Result<#cc::Tensor> {
                #rt::model::check_input(#name_str, Self::INPUT_SHAPE, xs)?;
                #rt::model::check_input_dtype(#name_str, self.__convnet_dtype, xs)?;
                let _ = train;
                // Outside `no_grad` the input is used as given; inside, detached, so no op
                // records a graph and each activation is dropped once consumed.
                let grad = #rt::grad_mode::is_enabled();
                let x = if grad { xs.clone() } else { xs.detach() };
                #forward
                ::core::result::Result::Ok(if grad { x } else { x.detach() })
            }
        }

        impl #cn::ModuleT for #name {
            fn forward_t(&self, xs: &#cc::Tensor, train: bool) -> #cc::Result<#cc::Tensor> {
                self.__convnet_forward(xs, train, usize::MAX)
            }
        }

        impl #rt::model::Network for #name {
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: &'static [usize] = #name::INPUT_SHAPE;
            const OUTPUT_SHAPE: &'static [usize] = #name::OUTPUT_SHAPE;
            const TOTAL_PARAMS: usize = #name::TOTAL_PARAMS;
            const TRAINABLE_PARAMS: usize = #name::TRAINABLE_PARAMS;
            const NON_TRAINABLE_PARAMS: usize = #name::NON_TRAINABLE_PARAMS;
            const FLOPS: u64 = #name::FLOPS;
            const STOPS: &'static [(&'static str, &'static [usize])] = &[#(#stops),*];
            fn new(vb: #cn::VarBuilder) -> #cc::Result<Self> {
                #name::new(vb)
            }
            fn summary() -> #rt::model::Summary {
                #name::summary()
            }
            fn forward_to_stop_t(
                &self,
                xs: &#cc::Tensor,
                stop: usize,
                train: bool,
            ) -> #cc::Result<#cc::Tensor> {
                #rt::model::check_stop::<Self>(stop)?;
                self.__convnet_forward(xs, train, stop)
            }
            fn onnx(
                g: &mut #rt::onnx::Graph,
                scope: &str,
                x: #rt::onnx::Value,
            ) -> #cc::Result<#rt::onnx::Value> {
                let _ = (&g, scope);
                #onnx
                ::core::result::Result::Ok(x)
            }
        }
    }
}

/// The errors of an invocation, as a hidden `const` of type `()` whose value is the
/// `compile_error!`s (reported once, where they point), named after the invocation's first
/// stub. Stubs' consts read it: rustc reports no further error for a constant that depends
/// on one with errors, so a user's `const _: () = assert!(M::TOTAL_PARAMS == ...)` on a
/// model with an error does not fail as well (E0080).
pub fn errors_const(name: &Ident, errors: TokenStream) -> (Ident, TokenStream) {
    let ident = quote::format_ident!("__CONVNET_ERRORS_{}", name);
    let item = quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const #ident: () = { #errors };
    };
    (ident, item)
}

/// A stand-in with the same API for a model that has errors, so one mistake causes no
/// follow-on errors where the model is used: its consts read `errors` (see
/// [`errors_const`]), so const evaluations that use them report nothing more.
pub fn stub(
    vis: &syn::Visibility,
    name: &Ident,
    input: &[usize],
    output: &[usize],
    errors: &Ident,
) -> TokenStream {
    let (rt, cn, cc) = (rt(), cn(), cc());
    let name_str = name.to_string();
    let (input, output) = (dims(input), dims(output));
    quote! {
        #vis struct #name {}
        impl #name {
            pub const INPUT_SHAPE: &'static [usize] = { let () = #errors; #input };
            pub const OUTPUT_SHAPE: &'static [usize] = { let () = #errors; #output };
            pub const TOTAL_PARAMS: usize = { let () = #errors; 0 };
            pub const TRAINABLE_PARAMS: usize = { let () = #errors; 0 };
            pub const NON_TRAINABLE_PARAMS: usize = { let () = #errors; 0 };
            pub const FLOPS: u64 = { let () = #errors; 0 };
            pub fn new(_vb: #cn::VarBuilder) -> #cc::Result<Self> {
                ::core::unreachable!()
            }
            pub fn summary() -> #rt::model::Summary {
                ::core::unreachable!()
            }
        }
        impl #cn::ModuleT for #name {
            fn forward_t(&self, _xs: &#cc::Tensor, _train: bool) -> #cc::Result<#cc::Tensor> {
                ::core::unreachable!()
            }
        }
        impl #rt::model::Network for #name {
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: &'static [usize] = #name::INPUT_SHAPE;
            const OUTPUT_SHAPE: &'static [usize] = #name::OUTPUT_SHAPE;
            const TOTAL_PARAMS: usize = #name::TOTAL_PARAMS;
            const TRAINABLE_PARAMS: usize = #name::TRAINABLE_PARAMS;
            const NON_TRAINABLE_PARAMS: usize = #name::NON_TRAINABLE_PARAMS;
            const FLOPS: u64 = #name::FLOPS;
            const STOPS: &'static [(&'static str, &'static [usize])] = { let () = #errors; &[] };
            fn new(_vb: #cn::VarBuilder) -> #cc::Result<Self> {
                ::core::unreachable!()
            }
            fn summary() -> #rt::model::Summary {
                ::core::unreachable!()
            }
            fn forward_to_stop_t(
                &self,
                _xs: &#cc::Tensor,
                _stop: usize,
                _train: bool,
            ) -> #cc::Result<#cc::Tensor> {
                ::core::unreachable!()
            }
            fn onnx(
                _g: &mut #rt::onnx::Graph,
                _scope: &str,
                _x: #rt::onnx::Value,
            ) -> #cc::Result<#rt::onnx::Value> {
                ::core::unreachable!()
            }
        }
    }
}
