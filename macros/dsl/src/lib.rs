//! Parsing, checking and code generation behind the `convnet!` macro, as a plain library so
//! it can be tested on `proc_macro2` tokens.
//!
//! The pipeline is `ast` (parse) -> `lower` (unroll loops, inline blocks, type arguments,
//! name layers) -> `infer` (shapes and the shape rules) -> `expand` (candle code). Each plain
//! layer's builder, shape rule, counts and code live together in one file of `layers`; the
//! passes reach it through `layers::Primitive`. Errors are collected and reported together,
//! each on the user's token; a model with errors expands to a stub with the same API so the
//! mistake causes no follow-on errors.

pub mod ast;
pub mod catalog;
pub mod error;
pub mod expand;
pub mod import;
pub mod infer;
pub mod ir;
pub mod layers;
pub mod lower;
pub mod value;

use ast::{Description, Item};
use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Expands a `convnet!` invocation's tokens into Rust items (or spanned compile errors).
pub fn expand(input: TokenStream) -> TokenStream {
    let description = match syn::parse2::<Description>(input.clone()) {
        Ok(d) => d,
        Err(e) => return with_stubs(recover_stubs(input), e.to_compile_error()),
    };
    // Imported blocks are fetched one by one, each by a macro call that re-invokes this one.
    if let Some(fetch) = import::fetch_next(&description, &input) {
        return fetch;
    }
    let errors = error::Errors::default();
    let mut lowerer = lower::Lowerer::new(&errors, &description.items);
    let mut out = TokenStream::new();
    let mut stubs = Vec::new();
    for (def, payload) in lowerer.exports(&description.items) {
        out.extend(import::block_macro(def, &payload));
    }
    for item in &description.items {
        let Item::Model(def) = item else { continue };
        let before = errors.len();
        let mut model = lowerer.lower_model(def);
        let inferred = infer::infer_model(&mut model, &errors);
        match (inferred, &model.input) {
            (Some(output), Some(input))
                if errors.len() == before && infer::unique_paths(&model.body, &errors) =>
            {
                lowerer.register_model(&model.name, input.clone(), output.clone());
                out.extend(expand::model(&model, &output));
            }
            _ => {
                lowerer.register_failed(&model.name);
                let input = model.input.clone().unwrap_or_default();
                let output = model
                    .output
                    .as_ref()
                    .map(|o| o.0.clone())
                    .unwrap_or_default();
                stubs.push((model.vis.clone(), model.name.clone(), input, output));
            }
        }
    }
    if let Some(e) = errors.into_combined() {
        out.extend(with_stubs(stubs, e.to_compile_error()));
    }
    out
}

/// A model that failed: its visibility, name, and the input and output shapes written.
type Stub = (syn::Visibility, proc_macro2::Ident, Vec<usize>, Vec<usize>);

/// The errors and the stand-ins of the models that failed, which read the errors so that
/// const evaluations of their consts report nothing more ([`expand::errors_const`]).
fn with_stubs(stubs: Vec<Stub>, errors: TokenStream) -> TokenStream {
    let Some((_, first, _, _)) = stubs.first() else {
        return errors;
    };
    let (ident, mut out) = expand::errors_const(first, errors);
    for (vis, name, input, output) in &stubs {
        out.extend(expand::stub(vis, name, input, output, &ident));
    }
    out
}

/// After a syntax error, finds `vis Name(dims) -> (dims) { ... }` at top level: the models
/// to define stubs for, so code using them reports nothing further.
fn recover_stubs(input: TokenStream) -> Vec<Stub> {
    let tts: Vec<TokenTree> = input.into_iter().collect();
    let mut stubs = Vec::new();
    let is_group = |t: Option<&TokenTree>, d: Delimiter| matches!(t, Some(TokenTree::Group(g)) if g.delimiter() == d);
    for i in 0..tts.len() {
        let TokenTree::Ident(name) = &tts[i] else {
            continue;
        };
        let word = name.to_string();
        if word == "pub"
            || word == "block"
            || word == "crate"
            || !is_group(tts.get(i + 1), Delimiter::Parenthesis)
        {
            continue;
        }
        if i > 0 && matches!(&tts[i - 1], TokenTree::Ident(b) if b == "block") {
            continue;
        }
        let has_body =
            (i + 2..(i + 6).min(tts.len())).any(|j| is_group(tts.get(j), Delimiter::Brace));
        if !has_body || !word.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let vis: syn::Visibility =
            if i > 0 && matches!(&tts[i - 1], TokenTree::Ident(p) if p == "pub") {
                syn::parse_quote!(pub)
            } else {
                syn::Visibility::Inherited
            };
        let shape = |t: Option<&TokenTree>| -> Vec<usize> {
            match t {
                Some(TokenTree::Group(g)) => g
                    .stream()
                    .to_string()
                    .split(',')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        };
        let input = shape(tts.get(i + 1));
        let arrow = matches!((tts.get(i + 2), tts.get(i + 3)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == '-' && b.as_char() == '>');
        let output = if arrow {
            shape(tts.get(i + 4))
        } else {
            Vec::new()
        };
        stubs.push((vis, name.clone(), input, output));
    }
    stubs
}
