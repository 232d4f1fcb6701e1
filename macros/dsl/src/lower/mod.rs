//! Lowering: unrolls `for` loops, inlines blocks, evaluates and types every argument against
//! the layer catalogue, and names every layer. Each rule that rejects input says why in a
//! comment; errors are collected, and a bad layer becomes `Op::Poison` so it causes no
//! follow-on errors.
//!
//! This module walks bodies and names layers; `scope` unrolls loops, inlines blocks and
//! resolves `@label` skips; `args` reads a call's arguments against its catalog entry;
//! the catalog's `build` (a function of `crate::layers`) builds each plain layer, and
//! `composite` the ones holding other layers.

use crate::ast::{label_name, BlockDef, Body, Item, LayerCall, ModelDef, ShapeSpec, Stmt};
use crate::catalog::{self, Kind};
use crate::error::{did_you_mean, Errors};
use crate::infer;
use crate::ir::{snake_case, Info, Merge, Model, Node, Op, MAX_DIM, MAX_NODES};
use crate::value::{eval, thousands, Env, Value, UNKNOWN_SHAPE};
use proc_macro2::Span;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use syn::spanned::Spanned;
use syn::Ident;

/// The value a `let` whose expression failed (reported) binds: its uses report nothing more.
pub(crate) const POISONED: &str = "<error>";

mod args;
mod composite;
mod scope;

pub use args::{shape_of, Args};

/// A block a body can use: its definition, the namespace its body's block names resolve
/// in, and where it was imported from (`None` for a block of this invocation).
#[derive(Clone)]
pub(crate) struct BlockRef<'a> {
    def: &'a BlockDef,
    namespace: usize,
    imported: Option<Rc<Imported>>,
}

/// How an imported block was imported: errors inside it are reported at the caller's token
/// with a note naming it.
pub(crate) struct Imported {
    /// The path of the `use`.
    path: String,
}

/// Lowers the models of one description.
pub struct Lowerer<'a> {
    errors: &'a Errors,
    /// Blocks by name, per namespace: 0 is this invocation's (its blocks and imports); each
    /// import has its own (the imported block and the blocks it uses), so the helpers of
    /// two imported blocks never clash.
    namespaces: Vec<BTreeMap<String, BlockRef<'a>>>,
    /// The namespace block names resolve in now.
    namespace: usize,
    /// Argument defaults of the invocation's `defaults { ... }` items.
    base_defaults: Rc<Defaults>,
    /// Argument defaults in force here (the invocation's, then those of `defaults`
    /// statements of the bodies being lowered).
    current_defaults: Rc<Defaults>,
    /// Models declared earlier in this description: name -> (input, output) shapes.
    models: BTreeMap<String, (Vec<usize>, Vec<usize>)>,
    /// Models of this description that had errors: uses of them are not checked again.
    failed: BTreeSet<String>,
    stack: Vec<String>,
    /// Layers of the current model so far (capped at [`MAX_NODES`]).
    nodes: usize,
    /// Loop iterations of the current model so far (capped at
    /// [`MAX_ITERATIONS`](crate::value::MAX_ITERATIONS)).
    iterations: usize,
    /// Set when a cap is hit: lowering of the current model stops at once.
    halted: bool,
    /// Bindings of the `for` loop iterations being unrolled, outermost first (`size = 64`).
    iteration: Vec<String>,
    /// Where those iterations are, as a note for errors (`None` outside loops).
    context: Option<Rc<str>>,
    /// The input shape of the next layer (`None` after an error): binds `in_channels` etc.
    shape: Option<Vec<usize>>,
    /// Labels visible to `@label`, innermost body last: label -> (save id, output shape).
    labels: Vec<BTreeMap<String, Labelled>>,
    /// Labels of bodies that have ended (out of scope now).
    closed: BTreeSet<String>,
    /// In a `for` loop nest: the innermost iterations done so far and the nest's total
    /// (`None` when it cannot be counted before unrolling), bound to `loop_index` and
    /// `loop_count`.
    nest: Option<(usize, Option<usize>)>,
    /// Labels of the bodies being lowered, all of them (earlier and later ones): a skip to a
    /// later one gets no "did you mean" another.
    ahead: Vec<BTreeSet<String>>,
    /// Save ids handed out in the current model.
    saves: usize,
    /// Save ids that an `@label` uses.
    saved: BTreeSet<usize>,
}

/// Argument defaults set by `defaults { ... }`: layer name -> argument -> (value, where set).
pub(crate) type Defaults = BTreeMap<&'static str, BTreeMap<&'static str, (Value, Span)>>;

/// A labelled layer a skip may use: its save id and output shape (`None` after an error).
type Labelled = (usize, Option<Vec<usize>>);

struct Pending {
    label: Option<Ident>,
    prefix: String,
    node: Node,
}

impl<'a> Lowerer<'a> {
    /// A lowerer that knows the blocks and imports among `items`.
    pub fn new(errors: &'a Errors, items: &'a [Item]) -> Self {
        let mut lowerer = Lowerer {
            errors,
            namespaces: vec![BTreeMap::new()],
            namespace: 0,
            base_defaults: Rc::default(),
            current_defaults: Rc::default(),
            models: BTreeMap::new(),
            failed: BTreeSet::new(),
            stack: Vec::new(),
            nodes: 0,
            iterations: 0,
            halted: false,
            iteration: Vec::new(),
            context: None,
            shape: None,
            labels: Vec::new(),
            closed: BTreeSet::new(),
            ahead: Vec::new(),
            nest: None,
            saves: 0,
            saved: BTreeSet::new(),
        };
        lowerer.register(items, 0);
        lowerer
    }

    /// Registers the blocks and imports of `items` in namespace `ns`; only this invocation's
    /// own definitions (namespace 0) are checked, an imported one was where it is defined.
    fn register(&mut self, items: &'a [Item], ns: usize) {
        let own = ns == 0;
        for item in items {
            let (name, block) = match item {
                Item::Block(b) => (
                    &b.name,
                    BlockRef {
                        def: b,
                        namespace: ns,
                        imported: None,
                    },
                ),
                Item::Import(import) => {
                    let inner = self.namespaces.len();
                    self.namespaces.push(BTreeMap::new());
                    self.register(&import.items, inner);
                    let Some(entry) = self.namespaces[inner].get(&import.entry.to_string()) else {
                        continue;
                    };
                    let mut entry = entry.clone();
                    entry.imported = Some(Rc::new(Imported {
                        path: import.path.clone(),
                    }));
                    (&import.local, entry)
                }
                Item::Defaults(d) if own => {
                    let base = self.defaults(&self.base_defaults.clone(), d, &Env::default());
                    self.base_defaults = base;
                    continue;
                }
                Item::Model(_) | Item::Use(_) | Item::Defaults(_) => continue,
            };
            let word = if block.imported.is_some() {
                "imported"
            } else {
                "defined"
            };
            // Rule: a block name is defined once and does not shadow a built-in layer.
            if catalog::lookup(&name.to_string()).is_some() {
                if own {
                    self.errors.push(
                        name.span(),
                        format!(
                            "block `{name}` would shadow the built-in layer of that name; rename it{}",
                            if block.imported.is_some() { " (`use path::block as other_name;`)" } else { "" }
                        ),
                    );
                }
            } else if self.namespaces[ns]
                .insert(name.to_string(), block)
                .is_some()
                && own
            {
                self.errors.push(
                    name.span(),
                    format!(
                        "block `{name}` is {word} twice (blocks and imports share one namespace)"
                    ),
                );
            }
        }
    }

    /// The block `name` as seen from the current namespace.
    fn block(&self, name: &str) -> Option<BlockRef<'a>> {
        self.namespaces[self.namespace].get(name).cloned()
    }

    /// The blocks of this invocation (namespace 0) that their definitions export: each
    /// block's name, with the block definitions and imports it needs, transitively.
    pub fn exports(&self, items: &'a [Item]) -> Vec<(&'a BlockDef, Vec<proc_macro2::TokenStream>)> {
        let mut out = Vec::new();
        for item in items {
            let Item::Block(b) = item else { continue };
            // Only the definition registered under its name (not a duplicate or a shadow).
            match self.namespaces[0].get(&b.name.to_string()) {
                Some(r) if std::ptr::eq(r.def, b) => {}
                _ => continue,
            }
            let mut needed = BTreeSet::new();
            let mut queue = vec![b.name.to_string()];
            while let Some(name) = queue.pop() {
                if !needed.insert(name.clone()) {
                    continue;
                }
                if let Some(r) = self.namespaces[0].get(&name) {
                    if r.imported.is_none() {
                        crate::import::uses(r.def, &mut queue);
                    }
                }
            }
            let tokens = items
                .iter()
                .filter_map(|i| match i {
                    Item::Block(d) if needed.contains(&d.name.to_string()) => {
                        Some(d.tokens.clone())
                    }
                    Item::Import(m) if needed.contains(&m.local.to_string()) => {
                        Some(m.tokens.clone())
                    }
                    _ => None,
                })
                .collect();
            out.push((b, tokens));
        }
        out
    }

    /// Makes an earlier model of this description usable as a layer.
    pub fn register_model(&mut self, name: &Ident, input: Vec<usize>, output: Vec<usize>) {
        self.models.insert(name.to_string(), (input, output));
    }

    /// Marks an earlier model of this description as failed (already reported).
    pub fn register_failed(&mut self, name: &Ident) {
        self.failed.insert(name.to_string());
    }

    /// Lowers one model definition.
    pub fn lower_model(&mut self, def: &ModelDef) -> Model {
        self.nodes = 0;
        self.iterations = 0;
        self.halted = false;
        let env = Env::default();
        let input = self.shape(&def.input, &env, "input");
        let output = def
            .output
            .as_ref()
            .and_then(|o| self.shape(o, &env, "output").map(|s| (s, o.span)));
        self.shape = input.clone();
        self.current_defaults = self.base_defaults.clone();
        self.labels.clear();
        self.closed.clear();
        self.saves = 0;
        self.saved.clear();
        let body = self.body(&def.body, &env);
        Model {
            attrs: def.attrs.clone(),
            vis: def.vis.clone(),
            name: def.name.clone(),
            input,
            input_span: def.input.span,
            output,
            body,
            saved: std::mem::take(&mut self.saved),
        }
    }

    fn shape(&self, spec: &ShapeSpec, env: &Env, what: &str) -> Option<Vec<usize>> {
        // Rule: a shape is (C, H, W) for images or (F) for feature vectors, each dim >= 1.
        if spec.dims.len() != 1 && spec.dims.len() != 3 {
            self.errors.push(
                spec.span,
                format!("the {what} shape must be (channels, height, width) or (features), without the batch dim; found {} dims", spec.dims.len()),
            );
            return None;
        }
        let mut dims = Vec::new();
        for d in &spec.dims {
            match eval(d, env) {
                Ok(Value::Int(n)) if (1..=MAX_DIM).contains(&n) => dims.push(n as usize),
                Ok(v) => {
                    self.errors.push(
                        d.span(),
                        format!("{what} dims must be integers from 1 to {MAX_DIM}, found `{v}`"),
                    );
                    return None;
                }
                Err(e) => {
                    self.errors.push_error(e);
                    return None;
                }
            }
        }
        Some(dims)
    }

    /// Lowers a body that starts at the current shape; the shape is the body's input again
    /// afterwards (the caller moves it past the whole composite layer).
    fn body(&mut self, body: &Body, env: &Env) -> Vec<Node> {
        self.body_named(body, env, false)
    }

    /// [`Lowerer::body`], its layers without a label named by position (`0`, `1`, ...) when
    /// `numbered` (a `sequential`), else `kind{n}`.
    fn body_named(&mut self, body: &Body, env: &Env, numbered: bool) -> Vec<Node> {
        let entry = self.shape.clone();
        let defaults = self.current_defaults.clone();
        let mut pending = Vec::new();
        self.labels.push(BTreeMap::new());
        let mut labels = BTreeSet::new();
        body_labels(&body.stmts, &mut labels);
        self.ahead.push(labels);
        self.stmts(&body.stmts, env, &mut pending);
        self.ahead.pop();
        self.current_defaults = defaults;
        if let Some(scope) = self.labels.pop() {
            self.closed.extend(scope.into_keys());
        }
        self.shape = entry;
        self.name(pending, numbered)
    }

    fn stmts(&mut self, stmts: &[Stmt], env: &Env, out: &mut Vec<Pending>) {
        // `let` rebinds for the statements after it.
        let mut env = Cow::Borrowed(env);
        for stmt in stmts {
            if self.halted {
                return;
            }
            match stmt {
                Stmt::For(f) => self.for_loop(f, &env, out),
                Stmt::Layer(call) => {
                    let env = env.with_shape(self.shape.as_deref());
                    let (before, known) = (self.errors.len(), self.shape.is_some());
                    let lowered = self.call(call, &env);
                    // A shape name after an earlier error is a follow-on error, not reported.
                    if !known {
                        self.errors.drop_since(before, UNKNOWN_SHAPE);
                    }
                    if let Some(p) = lowered {
                        self.push_pending(p, out);
                    }
                }
                // A labelled group in a chain: its layers in a scope named by the label.
                Stmt::Branch(b) if b.label.is_some() => {
                    let body = self.body(&b.body, &env);
                    let p = Pending {
                        label: b.label.clone(),
                        prefix: "group".into(),
                        node: node_at(b.body.span, "group", BTreeMap::new(), Op::Block { body }),
                    };
                    self.push_pending(p, out);
                }
                Stmt::Defaults(d) => {
                    let merged = self.defaults(&self.current_defaults.clone(), d, &env);
                    self.current_defaults = merged;
                }
                // Rule: an unlabelled braced branch only goes inside a merge.
                Stmt::Branch(b) => {
                    self.errors.push(
                        b.body.span,
                        "a `{ ... }` branch goes inside `concat { ... }`, `add { ... }` or `multiply { ... }`; in a chain, write the layers without braces, or label the group (`name: { ... }`) to give its layers a scope",
                    );
                    out.push(poison(b.body.span, "branch"));
                    self.shape = None;
                }
                Stmt::If(cond) => match eval(&cond.cond, &env.with_shape(self.shape.as_deref())) {
                    // The layers of the chosen body join this body, as a loop's do.
                    Ok(Value::Bool(true)) => self.stmts(&cond.then.stmts, &env, out),
                    Ok(Value::Bool(false)) => self.stmts(&cond.otherwise, &env, out),
                    // Rule: a condition is `true` or `false`. The message does not quote the
                    // value, so a loop reports it once; the fix keeps a truth test's intent.
                    Ok(v) => {
                        let text = quote::ToTokens::to_token_stream(&cond.cond).to_string();
                        let fix = match v {
                            Value::Int(_) => {
                                format!("; to test that it is nonzero, write `if {text} != 0`")
                            }
                            Value::Float(_) => {
                                format!("; to test that it is nonzero, write `if {text} != 0.0`")
                            }
                            _ => String::new(),
                        };
                        let what = match v {
                            Value::Int(_) => "an integer".to_string(),
                            Value::Float(_) => "a float".to_string(),
                            Value::Word(_) => "a word".to_string(),
                            Value::Tuple(_) => "a tuple".to_string(),
                            Value::Layer(_) => "a layer".to_string(),
                            Value::Bool(_) => "a boolean".to_string(),
                        };
                        self.errors.push(
                            cond.cond.span(),
                            format!("an `if` condition is `true` or `false`, but `{text}` is {what}{fix}"),
                        );
                        out.push(poison(cond.cond.span(), "if"));
                        self.shape = None;
                    }
                    Err(e) => {
                        // A shape name after an earlier error is a follow-on error.
                        if self.shape.is_some() || !e.to_string().contains(UNKNOWN_SHAPE) {
                            self.errors.push_error(e);
                        }
                        out.push(poison(cond.cond.span(), "if"));
                        self.shape = None;
                    }
                },
                Stmt::Let(l) => match eval(&l.value, &env.with_shape(self.shape.as_deref())) {
                    Ok(v) => {
                        env = Cow::Owned(env.with_origin(
                            &l.name.to_string(),
                            v,
                            &crate::ast::ArgValue::Expr(l.value.clone()),
                        ));
                    }
                    Err(e) => {
                        if self.shape.is_some() || !e.to_string().contains(UNKNOWN_SHAPE) {
                            self.errors.push_error(e);
                        }
                        // Later uses of the name are follow-on errors: bind a poison marker.
                        env =
                            Cow::Owned(env.with(&l.name.to_string(), Value::Word(POISONED.into())));
                    }
                },
                // Rule: a skip is a branch of a merge.
                Stmt::Skip(label) => {
                    self.errors.push(
                        label.span(),
                        format!("`@{label}` is a branch: merge it with the current activation, e.g. `concat {{ identity, @{label} }}` or `add {{ identity, @{label} }}`"),
                    );
                    out.push(poison(label.span(), "skip"));
                    self.shape = None;
                }
            }
        }
    }

    /// Adds a lowered layer to the body: the shape moves past it, and a labelled one is
    /// visible to later skips.
    fn push_pending(&mut self, mut p: Pending, out: &mut Vec<Pending>) {
        self.shape = self.shape.take().and_then(|s| infer::probe(&p.node, &s));
        if let Some(label) = p.label.as_ref().filter(|l| !label_name(l).is_empty()) {
            self.saves += 1;
            p.node.save = Some(self.saves);
            if let Some(scope) = self.labels.last_mut() {
                // A duplicate label is reported (by `name`); a skip to it, which could mean
                // either layer, reports nothing more.
                let shape = match scope.contains_key(&label_name(label)) {
                    true => None,
                    false => self.shape.clone(),
                };
                scope.insert(label_name(label), (self.saves, shape));
            }
        }
        out.push(p);
    }

    /// `base` with the defaults of `d` on top; each is checked: a built-in layer, a named
    /// argument of it, a value.
    fn defaults(&self, base: &Rc<Defaults>, d: &crate::ast::Defaults, env: &Env) -> Rc<Defaults> {
        let mut merged = (**base).clone();
        for call in &d.layers {
            let kind = call.kind.to_string();
            // Rule: defaults are for the arguments of built-in layers.
            let Some(spec) = catalog::lookup(&kind) else {
                let why = if self.block(&kind).is_some() {
                    format!("`{kind}` is a block: give its parameters defaults where it is defined, or pass arguments where it is used")
                } else {
                    format!(
                        "unknown layer `{kind}`{}",
                        did_you_mean(&kind, catalog::names())
                    )
                };
                self.errors.push(
                    call.kind.span(),
                    format!("`defaults` sets arguments of built-in layers; {why}"),
                );
                continue;
            };
            if let Some(body) = &call.body {
                self.errors.push(
                    body.span,
                    "`defaults` sets argument values; a layer's `{ ... }` body has no default",
                );
            }
            let entry = merged.entry(spec.name).or_default();
            for arg in &call.args {
                // Rule: a default names the argument it sets.
                let Some(name) = &arg.name else {
                    self.errors.push(
                        arg.value.span(),
                        format!(
                            "name the argument a default sets: `{}(name = value)` ({})",
                            spec.name, spec.usage
                        ),
                    );
                    continue;
                };
                let text = name.to_string();
                let Some(param) = spec.params().find(|p| p.name == text) else {
                    self.errors.push(
                        name.span(),
                        format!(
                            "`{}` has no argument `{text}`{} (arguments: {})",
                            spec.name,
                            did_you_mean(&text, spec.params().map(|p| p.name)),
                            spec.usage
                        ),
                    );
                    continue;
                };
                match &arg.value {
                    crate::ast::ArgValue::Expr(e) => match eval(e, env) {
                        Ok(v) => {
                            entry.insert(param.name, (v, e.span()));
                        }
                        Err(e) => self.errors.push_error(e),
                    },
                    other => self.errors.push(
                        other.span(),
                        format!(
                            "a default is a value; `{text}` of `{}` takes no layers",
                            spec.name
                        ),
                    ),
                }
            }
        }
        Rc::new(merged)
    }

    /// Assigns names: user labels first, then `prefix{n}` with the smallest free counter,
    /// or the layer's position (`0`, `1`, ...) when `numbered`. The layers of a layer
    /// labelled `_` (no scope of its own) are named here too, as if written in this body
    /// (except a `_: sequential`'s, which it numbers itself).
    fn name(&self, pending: Vec<Pending>, numbered: bool) -> Vec<Node> {
        let mut taken = BTreeSet::new();
        for p in &pending {
            if let Some(label) = &p.label {
                // Rule: names within one scope are unique (they become parameter paths).
                let name = label_name(label);
                if name.is_empty() {
                    // Rule: `_:` is for a layer that holds others (it opens no scope).
                    if matches!(
                        p.node.op,
                        Op::Layer(_) | Op::Nested { .. } | Op::Skip { .. } | Op::AssertShape(_)
                    ) {
                        self.errors.push(
                            label.span(),
                            format!("`_:` is for a layer that holds others (a block, `residual`, `sequential`, a merge, a branch or a group): it opens no scope, and their layers are named in the enclosing one; `{}` holds none, so give it a name or no label", p.node.kind),
                        );
                    }
                    continue;
                }
                if !taken.insert(name.clone()) {
                    // The fix depends on why: a loop repeats one label on every iteration.
                    let fix = match p.node.context {
                        Some(_) => "a labelled layer inside a `for` loop repeats its label on every iteration: move the label out of the loop or remove it",
                        None => "rename one of them (names become parameter paths)",
                    };
                    self.errors.push(
                        label.span(),
                        format!("duplicate layer name `{name}` in this scope; {fix}"),
                    );
                }
            }
        }
        let mut nodes: Vec<Node> = pending
            .into_iter()
            .map(|p| {
                let mut node = p.node;
                match p.label {
                    Some(label) => {
                        node.name = label_name(&label);
                        node.auto = None;
                    }
                    None => node.auto = Some(p.prefix),
                }
                node
            })
            .collect();
        let mut taken = BTreeSet::new();
        scope_labels(&nodes, &mut taken);
        let mut counters = BTreeMap::new();
        let mut position = 0;
        assign_names(
            &mut nodes,
            numbered,
            &mut taken,
            &mut counters,
            &mut position,
        );
        nodes
    }

    /// Lowers one layer call; the node remembers the loop iteration it was unrolled in, so
    /// shape errors found later name it.
    fn call(&mut self, call: &LayerCall, env: &Env) -> Option<Pending> {
        if self.halted {
            return None;
        }
        self.nodes += 1;
        // Rule: a model unrolls to at most MAX_NODES layers.
        if self.nodes > MAX_NODES {
            self.errors.push(
                call.kind.span(),
                format!(
                    "the model unrolls to more than {} layers here; loops and blocks are unrolled at compile time, so make them shorter",
                    thousands(MAX_NODES)
                ),
            );
            self.halted = true;
            return Some(poison(call.kind.span(), "invalid"));
        }
        let mut pending = self.layer_call(call, env)?;
        pending.node.context = self.context.clone();
        Some(pending)
    }

    fn layer_call(&mut self, call: &LayerCall, env: &Env) -> Option<Pending> {
        let kind = call.kind.to_string();
        let label = call.label.clone();
        // A block parameter that holds a layer: the layer passed (or `none`: nothing).
        if let Some(value) = env.get(&kind) {
            return self.passed_layer(call, value.clone(), env);
        }
        if let Some(block) = self.block(&kind) {
            let node = self.block_call(call, &block, env);
            return Some(Pending {
                label,
                prefix: kind,
                node,
            });
        }
        if self.failed.contains(&kind) {
            return Some(Pending {
                label,
                prefix: snake_case(&kind),
                node: node(&call.kind, &kind, BTreeMap::new(), Op::Poison),
            });
        }
        if self.models.contains_key(&kind) {
            let path: syn::Path = call.kind.clone().into();
            let node = self.nested(call, &path, None, env);
            return Some(Pending {
                label,
                prefix: snake_case(&kind),
                node,
            });
        }
        let Some(spec) = catalog::lookup(&kind) else {
            // Rule: only catalogue layers, blocks of this description and earlier models.
            let mut known: Vec<&str> = catalog::names().collect();
            known.extend(self.namespaces[self.namespace].keys().map(String::as_str));
            known.extend(self.models.keys().map(String::as_str));
            self.errors.push(
                call.kind.span(),
                format!(
                    "unknown layer `{kind}`{}",
                    catalog::foreign_name_hint(&kind).unwrap_or_else(|| did_you_mean(&kind, known))
                ),
            );
            return Some(Pending {
                label,
                prefix: kind.clone(),
                node: node(&call.kind, &kind, BTreeMap::new(), Op::Poison),
            });
        };
        if spec.kind == Kind::AssertShape {
            return Some(Pending {
                label,
                prefix: spec.prefix.into(),
                node: self.assert_shape(call, env),
            });
        }
        let mut args = Args::collect(spec, call, env, self.errors);
        args.overrides = self.current_defaults.get(spec.name).cloned();
        let merge = match spec.kind {
            Kind::Concat => Some(Merge::Concat),
            Kind::Add => Some(Merge::Add),
            Kind::Multiply => Some(Merge::Multiply),
            _ => None,
        };
        // Rule: only `residual`, `sequential` and the merges take a `{ ... }` body.
        if !matches!(spec.kind, Kind::Residual | Kind::Sequential) && merge.is_none() {
            if let Some(body) = &call.body {
                self.errors
                    .push(body.span, format!("`{kind}` takes no `{{ ... }}` body"));
                args.bad.set(true);
            }
        }
        let op = match (spec.kind, merge) {
            (Kind::Model, _) => {
                let node = self.model_call(call, &args, env);
                let prefix = match &node.op {
                    Op::Nested { path, .. } => {
                        snake_case(&path.segments.last().unwrap().ident.to_string())
                    }
                    _ => spec.prefix.into(),
                };
                return Some(Pending {
                    label,
                    prefix,
                    node,
                });
            }
            (Kind::Residual, _) => self.residual(call, &args, env),
            (Kind::Sequential, _) => self.sequential(call, env),
            (_, Some(merge)) => self.merge(call, merge, env),
            // Rule: `identity` is a branch; in a chain it would do nothing.
            (Kind::Identity, _) => {
                self.errors.push(
                    call.kind.span(),
                    "`identity` is a branch of `concat`, `add` or `multiply` (the input itself); in a chain it does nothing, so remove it",
                );
                Op::Poison
            }
            (_, None) => spec.build.map_or(Op::Poison, |build| build(&args)),
        };
        let op = if args.bad.get() { Op::Poison } else { op };
        Some(Pending {
            label,
            prefix: spec.prefix.into(),
            node: node(&call.kind, &kind, args.spans, op),
        })
    }
}

/// The labels a body's statements give (those of its loops and conditionals join it).
fn body_labels(stmts: &[Stmt], out: &mut BTreeSet<String>) {
    for stmt in stmts {
        match stmt {
            Stmt::Layer(l) => out.extend(l.label.as_ref().map(label_name)),
            Stmt::Branch(b) => out.extend(b.label.as_ref().map(label_name)),
            Stmt::For(f) => body_labels(&f.body.stmts, out),
            Stmt::If(i) => {
                body_labels(&i.then.stmts, out);
                body_labels(&i.otherwise, out);
            }
            Stmt::Skip(_) | Stmt::Let(_) | Stmt::Defaults(_) => {}
        }
    }
}

fn node(kind_tok: &Ident, kind: &str, arg_spans: BTreeMap<&'static str, Span>, op: Op) -> Node {
    node_at(kind_tok.span(), kind, arg_spans, op)
}

fn node_at(span: Span, kind: &str, arg_spans: BTreeMap<&'static str, Span>, op: Op) -> Node {
    Node {
        name: String::new(),
        kind: kind.to_string(),
        span,
        arg_spans,
        op,
        info: Info::default(),
        context: None,
        save: None,
        auto: None,
    }
}

fn poison(span: Span, kind: &str) -> Pending {
    Pending {
        label: None,
        prefix: "invalid".into(),
        node: node_at(span, kind, BTreeMap::new(), Op::Poison),
    }
}

/// Whether `node` is labelled `_`: it opens no scope, its layers are named in the enclosing one.
fn unnamed(node: &Node) -> bool {
    node.name.is_empty() && node.auto.is_none()
}

/// The layers a layer labelled `_` names in the enclosing scope (its body, branches and
/// projection), in order; none for other layers and for a `_: sequential`, which numbers
/// its own.
fn same_scope(node: &mut Node) -> Vec<&mut Node> {
    if !unnamed(node) || node.kind == "sequential" {
        return Vec::new();
    }
    match &mut node.op {
        Op::Block { body } => body.iter_mut().collect(),
        Op::Residual { project, body } => {
            let mut out: Vec<&mut Node> = body.iter_mut().collect();
            if let crate::ir::Project::Node(p) = project {
                out.push(p);
            }
            out
        }
        Op::Merge { branches, .. } => branches.iter_mut().collect(),
        _ => Vec::new(),
    }
}

/// [`same_scope`], read-only.
fn same_scope_ref(node: &Node) -> Vec<&Node> {
    if !unnamed(node) || node.kind == "sequential" {
        return Vec::new();
    }
    match &node.op {
        Op::Block { body } => body.iter().collect(),
        Op::Residual { project, body } => {
            let mut out: Vec<&Node> = body.iter().collect();
            if let crate::ir::Project::Node(p) = project {
                out.push(p);
            }
            out
        }
        Op::Merge { branches, .. } => branches.iter().collect(),
        _ => Vec::new(),
    }
}

/// The labels given in the scope of `nodes`, past layers labelled `_`.
fn scope_labels<'n>(nodes: impl IntoIterator<Item = &'n Node>, out: &mut BTreeSet<String>) {
    for n in nodes {
        if unnamed(n) {
            scope_labels(same_scope_ref(n), out);
        } else if n.auto.is_none() {
            out.insert(n.name.clone());
        }
    }
}

/// Names the layers without a label of one scope, in order, past layers labelled `_`:
/// `prefix{n}` with the smallest free counter, or the position when `numbered`.
fn assign_names<'n>(
    nodes: impl IntoIterator<Item = &'n mut Node>,
    numbered: bool,
    taken: &mut BTreeSet<String>,
    counters: &mut BTreeMap<String, usize>,
    position: &mut usize,
) {
    for node in nodes {
        if unnamed(node) {
            if node.kind != "sequential" {
                assign_names(same_scope(node), numbered, taken, counters, position);
            }
            continue;
        }
        if let Some(prefix) = &node.auto {
            node.name = if numbered {
                position.to_string()
            } else {
                let n = counters.entry(prefix.clone()).or_insert(0);
                loop {
                    *n += 1;
                    let candidate = format!("{prefix}{n}");
                    if !taken.contains(&candidate) {
                        taken.insert(candidate.clone());
                        break candidate;
                    }
                }
            };
        }
        *position += 1;
    }
}
