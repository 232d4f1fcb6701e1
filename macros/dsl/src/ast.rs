//! Syntax of a `convnet!` description, parsed with `syn`. Nothing here knows about layers or
//! shapes: that is `lower` and `infer`.
//!
//! ```text
//! description := item*
//! item        := attr* vis "block" IDENT "(" (IDENT ("=" (expr | layer | body))?),* ")" body
//!              | attr* vis IDENT shape ("->" shape)? body
//!              | "use" use-tree ";"                          (blocks of other invocations)
//!              | "@" "import" IDENT "[" path "]" IDENT "{" item* "}"  (an import, expanded)
//! shape       := "(" expr,* ")"
//! body        := "{" (stmt ","?)* "}"
//! stmt        := "for" (IDENT | "(" IDENT,* ")") "in" expr body
//!              | label? IDENT ("(" arg,* ")")? body?
//!              | label? body                (a group; a branch inside concat/add/multiply)
//!              | "@" IDENT                  (an earlier labelled activation, as a branch)
//!              | "if" expr body ("else" (body | if-stmt))?
//!              | "let" IDENT "=" expr
//! arg         := (IDENT "=")? (expr | label? layer | label? body)
//! label       := (IDENT | INTEGER | "_") ":"
//! ```

use proc_macro2::{Span, TokenStream};
use syn::buffer::Cursor;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{braced, parenthesized, token, Attribute, Expr, Ident, Token, Visibility};

/// A whole macro input.
pub struct Description {
    /// Block definitions and models, in source order.
    pub items: Vec<Item>,
}

/// One top-level definition.
pub enum Item {
    /// `block name(params) { ... }`: a reusable, parameterised group of layers.
    Block(BlockDef),
    /// `pub Name(C, H, W) -> (out) { ... }`: a model struct.
    Model(ModelDef),
    /// `use path::to::block;`: blocks defined by other invocations.
    Use(UseItem),
    /// `@import local [path] entry { items }`: an imported block's definitions, spliced in
    /// by the block's hidden macro (see `crate::import`).
    Import(Import),
    /// `defaults { ... }`: argument defaults for every model of the invocation.
    Defaults(Defaults),
}

/// `vis block name(p1, p2 = default) { ... }`.
#[derive(Clone)]
pub struct BlockDef {
    /// Outer attributes (doc comments), carried to the block's hidden macro.
    pub attrs: Vec<Attribute>,
    /// Who may import the block from other invocations (private by default).
    pub vis: Visibility,
    /// The block's name, used as `name(args)` inside bodies.
    pub name: Ident,
    /// Parameter names with optional default values (a value, a layer or `{ layers }`).
    pub params: Vec<(Ident, Option<ArgValue>)>,
    /// The layers.
    pub body: Body,
    /// The definition's tokens, as written: what an importing invocation receives.
    pub tokens: TokenStream,
}

/// `use a::b::{c, d as e};` inside an invocation.
pub struct UseItem {
    /// The imported paths and the names they are used under: (path tokens, local name).
    pub leaves: Vec<(TokenStream, Ident)>,
}

/// An imported block as spliced in by its hidden macro: `@import local [path] entry { items }`.
pub struct Import {
    /// The name the importing invocation uses (the `as` name, or the block's own).
    pub local: Ident,
    /// The import path as written in the `use`, for messages.
    pub path: String,
    /// The block's name where it is defined.
    pub entry: Ident,
    /// The block and the blocks it uses (themselves blocks or imports).
    pub items: Vec<Item>,
    /// The item's tokens, as received: re-exported blocks pass them on.
    pub tokens: TokenStream,
}

/// `#[attrs] vis Name(input) -> (output) { ... }`.
#[derive(Clone)]
pub struct ModelDef {
    /// Outer attributes, doc comments included; they carry over to the struct.
    pub attrs: Vec<Attribute>,
    /// Visibility of the generated struct.
    pub vis: Visibility,
    /// Struct name.
    pub name: Ident,
    /// Input shape of one example.
    pub input: ShapeSpec,
    /// Declared output shape, checked against the inferred one.
    pub output: Option<ShapeSpec>,
    /// The layers.
    pub body: Body,
}

/// `(d1, d2, ...)`: a shape written by the user.
#[derive(Clone)]
pub struct ShapeSpec {
    /// Span of the parentheses.
    pub span: Span,
    /// Dimension expressions.
    pub dims: Vec<Expr>,
}

/// `{ stmt, stmt, ... }`.
#[derive(Clone)]
pub struct Body {
    /// Span of the braces.
    pub span: Span,
    /// Statements in order.
    pub stmts: Vec<Stmt>,
}

/// One statement of a body.
#[derive(Clone)]
pub enum Stmt {
    /// A layer, a block use, a residual or a nested model.
    Layer(LayerCall),
    /// A compile-time loop.
    For(ForLoop),
    /// `label: { ... }`: one branch of a `concat`, `add` or `multiply`.
    Branch(Branch),
    /// `@label`: the output of an earlier labelled layer, as a branch.
    Skip(Ident),
    /// A compile-time conditional.
    If(IfStmt),
    /// `let name = value`: a name for the statements after it in this body.
    Let(LetStmt),
    /// `defaults { layer(arg = value), ... }`: argument defaults for the rest of this body.
    Defaults(Defaults),
}

/// `defaults { batch_norm(eps = 1e-5), conv2d(bias = false) }`: new defaults for layer
/// arguments, as an item (the whole invocation) or a statement (the rest of its body).
#[derive(Clone)]
pub struct Defaults {
    /// The `defaults` keyword.
    pub span: Span,
    /// One call per layer, with named arguments only.
    pub layers: Vec<LayerCall>,
}

impl Parse for Defaults {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kw: Ident = input.parse()?;
        if kw != "defaults" {
            return Err(syn::Error::new(
                kw.span(),
                format!("expected a model `Name(C, H, W) -> (out) {{ ... }}`, a block or `defaults {{ ... }}`, found `{kw} {{`"),
            ));
        }
        let content;
        braced!(content in input);
        let mut layers = Vec::new();
        while !content.is_empty() {
            layers.push(content.parse()?);
            if !content.is_empty() {
                content.parse::<Token![,]>()?;
            }
        }
        Ok(Defaults {
            span: kw.span(),
            layers,
        })
    }
}

/// `let name = value`.
#[derive(Clone)]
pub struct LetStmt {
    /// The name bound.
    pub name: Ident,
    /// Its value, evaluated where the `let` is.
    pub value: Expr,
}

/// `if cond { ... } else { ... }`; `else if` nests another `IfStmt` as the else body.
#[derive(Clone)]
pub struct IfStmt {
    /// The condition, evaluated at compile time.
    pub cond: Expr,
    /// Layers when the condition holds.
    pub then: Body,
    /// Layers otherwise (empty when there is no `else`).
    pub otherwise: Vec<Stmt>,
}

/// `label: { layers }` inside a merge.
#[derive(Clone)]
pub struct Branch {
    /// User-chosen branch name.
    pub label: Option<Ident>,
    /// The branch's layers.
    pub body: Body,
}

/// `label: kind(args) { body }`.
#[derive(Clone)]
pub struct LayerCall {
    /// User-chosen layer name.
    pub label: Option<Ident>,
    /// Layer kind (or block name).
    pub kind: Ident,
    /// Arguments in order.
    pub args: Vec<Arg>,
    /// Span of the argument parentheses (the kind's span when there are none).
    pub args_span: Span,
    /// Nested layers (`residual { ... }`).
    pub body: Option<Body>,
}

/// `name = value` or a positional `value`.
#[derive(Clone)]
pub struct Arg {
    /// The argument's name, for named arguments.
    pub name: Option<Ident>,
    /// The value.
    pub value: ArgValue,
}

/// An argument value: an expression, or layers (for `project = ...`).
#[derive(Clone)]
pub enum ArgValue {
    /// A compile-time expression.
    Expr(Expr),
    /// A single layer call such as `conv2d(64, 1)`.
    Layer(Box<LayerCall>),
    /// A braced sequence of layers, with its label if written (`downsample: { ... }`).
    Layers(Option<Ident>, Body),
}

impl ArgValue {
    /// Where the value is written.
    pub fn span(&self) -> Span {
        match self {
            ArgValue::Expr(e) => e.span(),
            ArgValue::Layer(l) => l.kind.span(),
            ArgValue::Layers(_, b) => b.span,
        }
    }
}

/// `for pattern in iter { body }`.
#[derive(Clone)]
pub struct ForLoop {
    /// Span of `for`.
    pub span: Span,
    /// Loop variables: one, or several for a tuple pattern.
    pub vars: Vec<Ident>,
    /// Whether the pattern was a tuple.
    pub tuple: bool,
    /// What to iterate: an array or a range.
    pub iter: Expr,
    /// The unrolled body.
    pub body: Body,
}

impl Parse for Description {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(Description { items })
    }
}

/// Prefix of the identifier that stands for a numeric label (`3: { ... }`), so that paths
/// can mirror PyTorch's `features.3.0.weight`; [`label_name`] gives the label as written.
pub const NUMERIC_LABEL: &str = "__convnet_index_";

/// The identifier that stands for the label `_` (`_: residual { ... }`): a layer without a
/// scope of its own, whose layers are named in the enclosing scope; [`label_name`] gives `""`.
pub const UNNAMED_LABEL: &str = "__convnet_unnamed";

/// A label as written: `stem`, or `3` for a numeric one; `""` for `_`.
pub fn label_name(label: &Ident) -> String {
    let text = label.to_string();
    if text == UNNAMED_LABEL {
        return String::new();
    }
    match text.strip_prefix(NUMERIC_LABEL) {
        Some(n) => n.to_string(),
        None => text,
    }
}

/// `label:` (an identifier, an integer or `_`, then one colon), if next.
pub(crate) fn parse_label(input: ParseStream) -> syn::Result<Option<Ident>> {
    if input.peek(Token![_]) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        let underscore: Token![_] = input.parse()?;
        input.parse::<Token![:]>()?;
        return Ok(Some(Ident::new(UNNAMED_LABEL, underscore.span)));
    }
    if input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        let label: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        return Ok(Some(label));
    }
    if input.peek(syn::LitInt) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        let lit: syn::LitInt = input.parse()?;
        let n: u64 = lit.base10_parse().map_err(|_| {
            syn::Error::new(
                lit.span(),
                "a numeric label is a plain non-negative integer, such as `3`",
            )
        })?;
        if !lit.suffix().is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                "a numeric label is a plain non-negative integer, such as `3`",
            ));
        }
        input.parse::<Token![:]>()?;
        return Ok(Some(Ident::new(&format!("{NUMERIC_LABEL}{n}"), lit.span())));
    }
    Ok(None)
}

/// The tokens from `begin` up to (not including) `end`.
fn tokens_between(begin: Cursor, end: Cursor) -> TokenStream {
    let mut tokens = TokenStream::new();
    let mut cursor = begin;
    while cursor < end {
        let Some((tt, next)) = cursor.token_tree() else {
            break;
        };
        tokens.extend([tt]);
        cursor = next;
    }
    tokens
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let begin = input.cursor();
        if input.peek(Token![@]) {
            return parse_import(input, begin).map(Item::Import);
        }
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if input.peek(Ident) && input.peek2(token::Brace) {
            return Ok(Item::Defaults(input.parse()?));
        }
        if input.peek(Token![use]) {
            // Rule: an import inside the macro only imports; re-export with a Rust `pub use`.
            if !matches!(vis, Visibility::Inherited) {
                return Err(syn::Error::new(
                    vis.span(),
                    "a `use` inside `convnet!` imports blocks for this invocation only; to re-export a block, write `pub use path::to::block;` outside the macro",
                ));
            }
            let item: syn::ItemUse = input.parse()?;
            let mut leaves = Vec::new();
            use_leaves(&item.tree, &TokenStream::new(), &mut leaves)?;
            return Ok(Item::Use(UseItem { leaves }));
        }
        if input.peek(Ident) && input.peek2(Ident) {
            let kw: Ident = input.parse()?;
            if kw != "block" {
                return Err(syn::Error::new(
                    kw.span(),
                    format!("expected a model `Name(C, H, W) -> (out) {{ ... }}` or `block name(params) {{ ... }}`, found `{kw}`"),
                ));
            }
            let name: Ident = input.parse()?;
            let content;
            parenthesized!(content in input);
            let mut params = Vec::new();
            while !content.is_empty() {
                let p: Ident = content.parse()?;
                let default = if content.peek(Token![=]) {
                    content.parse::<Token![=]>()?;
                    Some(content.parse::<ArgValue>()?)
                } else {
                    None
                };
                params.push((p, default));
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
            let body = input.parse()?;
            let tokens = tokens_between(begin, input.cursor());
            return Ok(Item::Block(BlockDef {
                attrs,
                vis,
                name,
                params,
                body,
                tokens,
            }));
        }
        let name: Ident = input.parse()?;
        let input_shape: ShapeSpec = input.parse()?;
        let output = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        let body = input.parse()?;
        Ok(Item::Model(ModelDef {
            attrs,
            vis,
            name,
            input: input_shape,
            output,
            body,
        }))
    }
}

/// `@import local [path] entry { items }`, after `begin`.
fn parse_import(input: ParseStream, begin: Cursor) -> syn::Result<Import> {
    input.parse::<Token![@]>()?;
    let kw: Ident = input.parse()?;
    if kw != "import" {
        return Err(syn::Error::new(kw.span(), "expected `@import`"));
    }
    let local: Ident = input.parse()?;
    let path;
    syn::bracketed!(path in input);
    let path: TokenStream = path.parse()?;
    let entry: Ident = input.parse()?;
    let content;
    braced!(content in input);
    let mut items = Vec::new();
    while !content.is_empty() {
        items.push(content.parse()?);
    }
    Ok(Import {
        local,
        path: path.to_string().replace(' ', ""),
        entry,
        items,
        tokens: tokens_between(begin, input.cursor()),
    })
}

/// The (path, local name) pairs a `use` tree imports; `prefix` is the path so far.
fn use_leaves(
    tree: &syn::UseTree,
    prefix: &TokenStream,
    out: &mut Vec<(TokenStream, Ident)>,
) -> syn::Result<()> {
    let join = |ident: &Ident| {
        let mut path = prefix.clone();
        if !path.is_empty() {
            path.extend(quote::quote!(::));
        }
        path.extend(quote::quote!(#ident));
        path
    };
    match tree {
        syn::UseTree::Path(p) => use_leaves(&p.tree, &join(&p.ident), out),
        syn::UseTree::Name(n) => {
            out.push((join(&n.ident), n.ident.clone()));
            Ok(())
        }
        syn::UseTree::Rename(r) => {
            out.push((join(&r.ident), r.rename.clone()));
            Ok(())
        }
        syn::UseTree::Group(g) => g.items.iter().try_for_each(|t| use_leaves(t, prefix, out)),
        // Rule: blocks are imported by name (the macro must know which to fetch).
        syn::UseTree::Glob(g) => Err(syn::Error::new(
            g.star_token.span,
            "import blocks by name (`use path::{a, b};`): `convnet!` fetches each imported block's definition, so it must know which",
        )),
    }
}

impl Parse for ShapeSpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        let paren = parenthesized!(content in input);
        let dims = content.parse_terminated(Expr::parse, Token![,])?;
        Ok(ShapeSpec {
            span: paren.span.join(),
            dims: dims.into_iter().collect(),
        })
    }
}

impl Parse for Body {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let content;
        let brace = braced!(content in input);
        let mut stmts = Vec::new();
        while !content.is_empty() {
            let stmt: Stmt = content.parse()?;
            let ends_in_brace = match &stmt {
                Stmt::For(_) | Stmt::Branch(_) | Stmt::If(_) => true,
                Stmt::Layer(l) => l.body.is_some(),
                Stmt::Skip(_) | Stmt::Let(_) => false,
                Stmt::Defaults(_) => true,
            };
            stmts.push(stmt);
            if content.is_empty() {
                break;
            }
            if ends_in_brace && !content.peek(Token![,]) {
                continue;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(Body {
            span: brace.span.join(),
            stmts,
        })
    }
}

impl Parse for Stmt {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![for]) {
            let for_token: Token![for] = input.parse()?;
            let (vars, tuple) = if input.peek(token::Paren) {
                let content;
                parenthesized!(content in input);
                let vars = content.parse_terminated(Ident::parse, Token![,])?;
                (vars.into_iter().collect(), true)
            } else {
                (vec![input.parse::<Ident>()?], false)
            };
            input.parse::<Token![in]>()?;
            let iter = Expr::parse_without_eager_brace(input)?;
            let body = input.parse()?;
            return Ok(Stmt::For(ForLoop {
                span: for_token.span,
                vars,
                tuple,
                iter,
                body,
            }));
        }
        if input.peek(Token![if]) {
            input.parse::<Token![if]>()?;
            let cond = Expr::parse_without_eager_brace(input)?;
            let then: Body = input.parse()?;
            let otherwise = if input.peek(Token![else]) {
                input.parse::<Token![else]>()?;
                if input.peek(Token![if]) {
                    vec![input.parse::<Stmt>()?]
                } else {
                    input.parse::<Body>()?.stmts
                }
            } else {
                Vec::new()
            };
            return Ok(Stmt::If(IfStmt {
                cond,
                then,
                otherwise,
            }));
        }
        if input.peek(Token![let]) {
            input.parse::<Token![let]>()?;
            let name: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value = input.parse()?;
            return Ok(Stmt::Let(LetStmt { name, value }));
        }
        if input.peek(Token![@]) {
            input.parse::<Token![@]>()?;
            return Ok(Stmt::Skip(input.parse()?));
        }
        if input.peek(token::Brace) {
            return Ok(Stmt::Branch(Branch {
                label: None,
                body: input.parse()?,
            }));
        }
        if input.peek(Ident) && input.peek2(token::Brace) {
            let fork = input.fork();
            if fork.parse::<Ident>()? == "defaults" {
                return Ok(Stmt::Defaults(input.parse()?));
            }
        }
        let fork = input.fork();
        if parse_label(&fork)?.is_some() && fork.peek(token::Brace) {
            let label = parse_label(input)?;
            return Ok(Stmt::Branch(Branch {
                label,
                body: input.parse()?,
            }));
        }
        Ok(Stmt::Layer(input.parse()?))
    }
}

impl Parse for LayerCall {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let label = parse_label(input)?;
        let kind: Ident = input.parse()?;
        let mut args = Vec::new();
        let mut args_span = kind.span();
        if input.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            args_span = paren.span.join();
            while !content.is_empty() {
                args.push(content.parse()?);
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
        }
        let body = if input.peek(token::Brace) {
            Some(input.parse()?)
        } else {
            None
        };
        Ok(LayerCall {
            label,
            kind,
            args,
            args_span,
            body,
        })
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let name: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            Some(name)
        } else {
            None
        };
        let value = input.parse()?;
        Ok(Arg { name, value })
    }
}

/// The functions a value may call (`max(a, b)`): a call of one of these is a value, any
/// other `name(...)` a layer.
pub const FUNCTIONS: &[&str] = &[
    "min",
    "max",
    "round",
    "floor",
    "ceil",
    "make_divisible",
    "int",
    "float",
];

impl Parse for ArgValue {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let function = input
            .fork()
            .parse::<Ident>()
            .is_ok_and(|i| FUNCTIONS.contains(&i.to_string().as_str()));
        // A labelled layer or sequence: `downsample: { ... }`, `fc: conv2d(8, 1)`.
        let fork = input.fork();
        if parse_label(&fork)?.is_some() {
            if fork.peek(token::Brace) {
                let label = parse_label(input)?;
                return Ok(ArgValue::Layers(label, input.parse()?));
            }
            if fork.peek(Ident) && !fork.peek2(Token![::]) {
                return Ok(ArgValue::Layer(Box::new(input.parse()?)));
            }
        }
        Ok(if input.peek(token::Brace) {
            ArgValue::Layers(None, input.parse()?)
        } else if input.peek(Ident) && input.peek2(token::Paren) && !function {
            ArgValue::Layer(Box::new(input.parse()?))
        } else {
            ArgValue::Expr(input.parse()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn parses_models_blocks_loops_and_labels() {
        let d: Description = syn::parse2(quote! {
            block unit(size, stride = 1) { conv2d(size, 3, stride = stride), relu }
            /// Docs.
            pub Net(3, 32, 32) -> (10) {
                stem: conv2d(16, 3, padding = same),
                for (size, stride) in [(16, 1), (32, 2)] { unit(size, stride) }
                residual(project = conv2d(32, 1)) { relu }
                global_avg_pool2d, linear(10),
            }
        })
        .unwrap();
        assert_eq!(d.items.len(), 2);
        let Item::Model(m) = &d.items[1] else {
            panic!("expected a model")
        };
        assert_eq!(m.name, "Net");
        assert_eq!(m.input.dims.len(), 3);
        assert_eq!(m.body.stmts.len(), 5);
        let Stmt::Layer(stem) = &m.body.stmts[0] else {
            panic!()
        };
        assert_eq!(stem.label.as_ref().unwrap(), "stem");
        assert_eq!(stem.args.len(), 3);
        let Stmt::For(f) = &m.body.stmts[1] else {
            panic!()
        };
        assert!(f.tuple && f.vars.len() == 2);
        let Stmt::Layer(res) = &m.body.stmts[2] else {
            panic!()
        };
        assert!(matches!(res.args[0].value, ArgValue::Layer(_)));
        assert!(res.body.is_some());
    }

    #[test]
    fn parses_branches_with_and_without_labels() {
        let d: Description = syn::parse2(quote! {
            Net(3, 8, 8) {
                mixed: concat { identity, { conv2d(4, 1) } wide: { conv2d(4, 3, padding = same) } },
                relu,
            }
        })
        .unwrap();
        let Item::Model(m) = &d.items[0] else {
            panic!("expected a model")
        };
        assert_eq!(m.body.stmts.len(), 2);
        let Stmt::Layer(merge) = &m.body.stmts[0] else {
            panic!()
        };
        let branches = &merge.body.as_ref().unwrap().stmts;
        assert_eq!(branches.len(), 3);
        assert!(matches!(&branches[0], Stmt::Layer(l) if l.kind == "identity"));
        assert!(
            matches!(&branches[1], Stmt::Branch(b) if b.label.is_none() && b.body.stmts.len() == 1)
        );
        assert!(matches!(&branches[2], Stmt::Branch(b) if b.label.as_ref().unwrap() == "wide"));
    }

    #[test]
    fn reports_syntax_errors() {
        assert!(syn::parse2::<Description>(quote! { Net(3, 8, 8) { conv2d(4, 3) relu } }).is_err());
        assert!(syn::parse2::<Description>(quote! { Net(3, 8, 8) -> { relu } }).is_err());
        assert!(syn::parse2::<Description>(quote! { struct Net {} }).is_err());
    }
}
