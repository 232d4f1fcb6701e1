//! The body of a model's generated `Network::onnx`: the lowered graph walked in forward
//! order, each plain layer through its [`Primitive::onnx`], the structural layers (blocks,
//! merges, residuals, skips, nested models) here. No fusion: a batch norm that runs inside
//! a depthwise convolution, or a max pool inside a separable convolution, is exported as its
//! own nodes. In the generated code `g` is the graph, `scope` the model's path prefix, and
//! `x` the current value, as `forward_t`'s `x` is the current tensor.

use crate::ir::{Merge, Model, Node, Op, Project};
use crate::layers::tokens::{ox, rt};
use crate::layers::OnnxEmit;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::BTreeSet;
use syn::Ident;

/// The statements of `Network::onnx` for `model`, reading `x` and leaving the output in `x`.
pub fn body(model: &Model) -> TokenStream {
    Walk {
        saved: &model.saved,
    }
    .seq(&model.body, "")
}

struct Walk<'a> {
    /// Save ids of the labelled layers whose output an `@label` uses.
    saved: &'a BTreeSet<usize>,
}

impl Walk<'_> {
    /// A sequence, each step in its own block (as in `forward_t`), saving what a skip reads.
    fn seq(&self, nodes: &[Node], scope: &str) -> TokenStream {
        let mut stmts = Vec::with_capacity(nodes.len());
        for node in nodes {
            let stmt = self.node(node, scope);
            stmts.push(quote!(let x = { let x = x; #stmt x };));
            if let Some(save) = node.save.filter(|s| self.saved.contains(s)) {
                let saved = format_ident!("saved_{}", save);
                stmts.push(quote!(let #saved = ::core::clone::Clone::clone(&x);));
            }
        }
        quote!(#(#stmts)*)
    }

    fn node(&self, node: &Node, scope: &str) -> TokenStream {
        let (rt, ox) = (rt(), ox());
        let path = crate::ir::path(scope, &node.name);
        let layer = quote!(let layer = #rt::onnx::join(scope, #path););
        match &node.op {
            Op::Layer(l) => {
                let stmt = l.onnx(&OnnxEmit { info: &node.info });
                if stmt.is_empty() {
                    stmt
                } else {
                    quote!(#layer #stmt)
                }
            }
            Op::AssertShape(_) | Op::Poison => quote!(),
            Op::Block { body } => self.seq(body, &path),
            Op::Skip { save, .. } => {
                let saved = format_ident!("saved_{}", save);
                quote!(let x = ::core::clone::Clone::clone(&#saved);)
            }
            Op::Nested { path: model, .. } => quote! {
                let x = <#model as #rt::model::Network>::onnx(g, &#rt::onnx::join(scope, #path), x)?;
            },
            Op::Merge { merge, branches } => {
                let names: Vec<Ident> = (0..branches.len())
                    .map(|i| format_ident!("branch{}", i))
                    .collect();
                let code: Vec<TokenStream> = branches.iter().map(|b| self.node(b, &path)).collect();
                let merge = match merge {
                    Merge::Concat => quote!(Concat),
                    Merge::Add => quote!(Add),
                    Merge::Multiply => quote!(Multiply),
                };
                quote! {
                    let x = {
                        let input = x;
                        #(let #names = {
                            let x = ::core::clone::Clone::clone(&input);
                            #code
                            x
                        };)*
                        #layer
                        #ox::merge(g, &layer, #ox::Merge::#merge, &[#(#names),*])
                    };
                }
            }
            Op::Residual { project, body } => {
                let body = self.seq(body, &path);
                let project = match project {
                    Project::Node(p) => self.node(p, &path),
                    Project::Identity | Project::Auto => quote!(),
                };
                quote! {
                    let x = {
                        let skip = ::core::clone::Clone::clone(&x);
                        #body
                        let skip = {
                            let x = skip;
                            #project
                            x
                        };
                        #layer
                        #ox::merge(g, &layer, #ox::Merge::Add, &[x, skip])
                    };
                }
            }
        }
    }
}
