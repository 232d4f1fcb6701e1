//! Blocks shared across invocations, modules and crates. A block definition also expands to
//! a hidden `macro_rules!` that holds its tokens (and those of the blocks it uses), imported
//! under the block's name with the block's visibility (`pub block` exports it from the crate
//! with `#[macro_export]` and a `pub use`). An invocation that writes `use path::block;`
//! expands first to a call of that macro, which calls `convnet!` again with the block's
//! definition spliced in as an `@import` item; once every import is there, the invocation
//! is checked and expanded as usual.

use crate::ast::{BlockDef, Description, Item};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// The call that fetches the first import of `description` not spliced in yet, or `None`
/// when all are there. `input` is the whole invocation, passed on unchanged.
pub fn fetch_next(description: &Description, input: &TokenStream) -> Option<TokenStream> {
    let spliced: BTreeSet<String> = description
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Import(m) => Some(m.local.to_string()),
            _ => None,
        })
        .collect();
    let (path, local) = description
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Use(u) => Some(&u.leaves),
            _ => None,
        })
        .flatten()
        .find(|(_, local)| !spliced.contains(&local.to_string()))?;
    Some(quote! { #path ! { @convnet_import #local [#path] #input } })
}

/// Every name a block's tokens mention (its layers, blocks, arguments): the blocks among
/// them go with it when it is imported. Pushed onto `out`.
pub fn uses(def: &BlockDef, out: &mut Vec<String>) {
    fn walk(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => out.push(i.to_string()),
                TokenTree::Group(g) => walk(g.stream(), out),
                _ => {}
            }
        }
    }
    walk(def.tokens.clone(), out);
}

/// The hidden macro of block `def` and its import under the block's name. `payload` is the
/// tokens of the block and of the blocks and imports it uses.
pub fn block_macro(def: &BlockDef, payload: &[TokenStream]) -> TokenStream {
    let name = &def.name;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.to_string().hash(&mut hasher);
    def.tokens.to_string().hash(&mut hasher);
    format!("{:?}", name.span()).hash(&mut hasher);
    // Unique in the crate: `#[macro_export]` macros share its root.
    let hidden = format_ident!(
        "__convnet_block_{}_{:016x}",
        name,
        hasher.finish(),
        span = Span::call_site()
    );
    let rules = quote! {
        (@convnet_import $local:ident [$($path:tt)*] $($rest:tt)*) => {
            ::convnet::convnet! { @import $local [$($path)*] #name { #(#payload)* } $($rest)* }
        };
    };
    match &def.vis {
        syn::Visibility::Public(_) => quote! {
            #[doc(hidden)]
            #[macro_export]
            macro_rules! #hidden { #rules }
            #[doc(hidden)]
            pub use #hidden as #name;
        },
        syn::Visibility::Inherited => quote! {
            #[allow(unused_macros)]
            macro_rules! #hidden { #rules }
            #[allow(unused_imports)]
            use #hidden as #name;
        },
        vis => quote! {
            #[allow(unused_macros)]
            macro_rules! #hidden { #rules }
            #[allow(unused_imports)]
            #vis use #hidden as #name;
        },
    }
}
