//! Lowering: unrolls `for` loops, inlines blocks, evaluates and types every argument against
//! the layer catalogue, and names every layer. Each rule that rejects input says why in a
//! comment; errors are collected, and a bad layer becomes `Op::Poison` so it causes no
//! follow-on errors.

use crate::ast::{ArgValue, BlockDef, Body, Branch, ForLoop, LayerCall, ModelDef, ShapeSpec, Stmt};
use crate::catalog::{self, LayerSpec};
use crate::error::{did_you_mean, Errors};
use crate::infer;
use crate::ir::{Activation, Info, Merge, Model, Node, Op, Pad4, Padding, Project};
use crate::value::{as_f64, eval, iterate, thousands, Env, Value, MAX_ITERATIONS, UNKNOWN_SHAPE};
use proc_macro2::Span;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

/// Largest channel/feature count or spatial size accepted (keeps every count in range).
pub const MAX_DIM: i64 = 1 << 20;
/// Largest kernel, stride or dilation accepted.
pub const MAX_WINDOW: i64 = 1 << 12;
/// Most layers one model may unroll to (guards against runaway loops and blocks).
pub const MAX_NODES: usize = 100_000;

/// Lowers the models of one description.
pub struct Lowerer<'a> {
    errors: &'a Errors,
    blocks: BTreeMap<String, &'a BlockDef>,
    /// Models declared earlier in this description: name -> (input, output) shapes.
    models: BTreeMap<String, (Vec<usize>, Vec<usize>)>,
    /// Models of this description that had errors: uses of them are not checked again.
    failed: BTreeSet<String>,
    stack: Vec<String>,
    /// Layers of the current model so far (capped at [`MAX_NODES`]).
    nodes: usize,
    /// Loop iterations of the current model so far (capped at [`MAX_ITERATIONS`]).
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
    /// Save ids handed out in the current model.
    saves: usize,
    /// Save ids that an `@label` uses.
    saved: BTreeSet<usize>,
}

/// A labelled layer a skip may use: its save id and output shape (`None` after an error).
type Labelled = (usize, Option<Vec<usize>>);

struct Pending {
    label: Option<Ident>,
    prefix: String,
    node: Node,
}

impl<'a> Lowerer<'a> {
    /// A lowerer that knows `blocks`.
    pub fn new(errors: &'a Errors, blocks: &'a [&'a BlockDef]) -> Self {
        let mut map = BTreeMap::new();
        for b in blocks {
            // Rule: a block name is defined once and does not shadow a built-in layer.
            if catalog::lookup(&b.name.to_string()).is_some() {
                errors.push(
                    b.name.span(),
                    format!(
                        "block `{}` would shadow the built-in layer of that name; rename it",
                        b.name
                    ),
                );
            } else if map.insert(b.name.to_string(), *b).is_some() {
                errors.push(
                    b.name.span(),
                    format!("block `{}` is defined twice", b.name),
                );
            }
        }
        Lowerer {
            errors,
            blocks: map,
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
            saves: 0,
            saved: BTreeSet::new(),
        }
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
        let entry = self.shape.clone();
        let mut pending = Vec::new();
        self.labels.push(BTreeMap::new());
        self.stmts(&body.stmts, env, &mut pending);
        if let Some(scope) = self.labels.pop() {
            self.closed.extend(scope.into_keys());
        }
        self.shape = entry;
        self.name(pending)
    }

    fn stmts(&mut self, stmts: &[Stmt], env: &Env, out: &mut Vec<Pending>) {
        for stmt in stmts {
            if self.halted {
                return;
            }
            match stmt {
                Stmt::For(f) => self.for_loop(f, env, out),
                Stmt::Layer(call) => {
                    let env = env.with_shape(self.shape.as_deref());
                    let (before, known) = (self.errors.len(), self.shape.is_some());
                    let lowered = self.call(call, &env);
                    // A shape name after an earlier error is a follow-on error, not reported.
                    if !known {
                        self.errors.drop_since(before, UNKNOWN_SHAPE);
                    }
                    if let Some(mut p) = lowered {
                        self.shape = self.shape.take().and_then(|s| infer::probe(&p.node, &s));
                        if let Some(label) = &p.label {
                            self.saves += 1;
                            p.node.save = Some(self.saves);
                            if let Some(scope) = self.labels.last_mut() {
                                scope.insert(label.to_string(), (self.saves, self.shape.clone()));
                            }
                        }
                        out.push(p);
                    }
                }
                // Rule: a braced branch only goes inside a merge.
                Stmt::Branch(b) => {
                    self.errors.push(
                        b.body.span,
                        "a `{ ... }` branch goes inside `concat { ... }`, `add { ... }` or `multiply { ... }`; in a chain, write the layers without braces",
                    );
                    out.push(poison(b.body.span, "branch"));
                    self.shape = None;
                }
                Stmt::If(cond) => match eval(&cond.cond, &env.with_shape(self.shape.as_deref())) {
                    // The layers of the chosen body join this body, as a loop's do.
                    Ok(Value::Bool(true)) => self.stmts(&cond.then.stmts, env, out),
                    Ok(Value::Bool(false)) => self.stmts(&cond.otherwise, env, out),
                    // Rule: a condition is `true` or `false`.
                    Ok(v) => {
                        self.errors.push(
                            cond.cond.span(),
                            format!(
                                "an `if` condition is `true` or `false`, found `{v}`; compare it, e.g. `{} == {v}`",
                                quote::ToTokens::to_token_stream(&cond.cond)
                            ),
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

    /// Unrolls one `for` loop. Errors raised inside an iteration name its bindings; the
    /// iteration and layer caps stop the loop itself, not just what it adds.
    fn for_loop(&mut self, f: &ForLoop, env: &Env, out: &mut Vec<Pending>) {
        let values = match iterate(&f.iter, env) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push_error(e);
                out.push(poison(f.span, "for"));
                self.shape = None;
                return;
            }
        };
        for value in values {
            if self.halted {
                return;
            }
            self.iterations += 1;
            // Rule: all loops of a model unroll to at most MAX_ITERATIONS iterations.
            if self.iterations > MAX_ITERATIONS {
                self.errors.push(
                    f.span,
                    format!(
                        "this `for` loop runs the model past {} loop iterations in all; loops are unrolled at compile time, so make them shorter",
                        thousands(MAX_ITERATIONS)
                    ),
                );
                self.halt(f.span, out);
                return;
            }
            let (env, binding) = match (f.tuple, value) {
                (false, v) => (
                    env.with(&f.vars[0].to_string(), v.clone()),
                    format!("{} = {v}", f.vars[0]),
                ),
                (true, Value::Tuple(items)) if items.len() == f.vars.len() => {
                    let binding: Vec<String> = f
                        .vars
                        .iter()
                        .zip(&items)
                        .map(|(var, v)| format!("{var} = {v}"))
                        .collect();
                    let env = f
                        .vars
                        .iter()
                        .zip(items)
                        .fold(env.clone(), |e, (var, v)| e.with(&var.to_string(), v));
                    (env, binding.join(", "))
                }
                // Rule: a tuple pattern binds tuples of exactly its length.
                (true, v) => {
                    self.errors.push(
                        f.iter.span(),
                        format!("the loop pattern binds {} names but the value `{v}` is not a tuple of that length", f.vars.len()),
                    );
                    out.push(poison(f.span, "for"));
                    self.shape = None;
                    return;
                }
            };
            self.iteration.push(binding);
            let note = iteration_note(&self.iteration);
            let saved = self.context.replace(note.clone());
            let before = self.errors.len();
            self.stmts(&f.body.stmts, &env, out);
            self.errors.annotate_since(before, &note);
            self.context = saved;
            self.iteration.pop();
        }
    }

    /// Stops lowering the current model after a cap was hit; the poison node keeps later
    /// checks (such as the declared output) from reporting the truncation again.
    fn halt(&mut self, span: Span, out: &mut Vec<Pending>) {
        self.halted = true;
        out.push(poison(span, "for"));
    }

    /// Assigns names: user labels first, then `prefix{n}` with the smallest free counter.
    fn name(&self, pending: Vec<Pending>) -> Vec<Node> {
        let mut taken = BTreeSet::new();
        for p in &pending {
            if let Some(label) = &p.label {
                // Rule: names within one scope are unique (they become parameter paths).
                if !taken.insert(label.to_string()) {
                    self.errors.push(
                        label.span(),
                        format!("duplicate layer name `{label}` in this scope (a labelled layer inside a `for` loop repeats on every iteration)"),
                    );
                }
            }
        }
        let mut counters: BTreeMap<String, usize> = BTreeMap::new();
        pending
            .into_iter()
            .map(|p| {
                let mut node = p.node;
                node.name = match p.label {
                    Some(label) => label.to_string(),
                    None => {
                        let n = counters.entry(p.prefix.clone()).or_insert(0);
                        loop {
                            *n += 1;
                            let candidate = format!("{}{}", p.prefix, n);
                            if !taken.contains(&candidate) {
                                taken.insert(candidate.clone());
                                break candidate;
                            }
                        }
                    }
                };
                node
            })
            .collect()
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
        if let Some(block) = self.blocks.get(&kind).copied() {
            let node = self.block_call(call, block, env);
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
            known.extend(self.blocks.keys().map(String::as_str));
            known.extend(self.models.keys().map(String::as_str));
            self.errors.push(
                call.kind.span(),
                format!("unknown layer `{kind}`{}", did_you_mean(&kind, known)),
            );
            return Some(Pending {
                label,
                prefix: kind.clone(),
                node: node(&call.kind, &kind, BTreeMap::new(), Op::Poison),
            });
        };
        if kind == "assert_shape" {
            return Some(Pending {
                label,
                prefix: spec.prefix.into(),
                node: self.assert_shape(call, env),
            });
        }
        let args = Args::collect(spec, call, env, self.errors);
        let merge = match kind.as_str() {
            "concat" => Some(Merge::Concat),
            "add" => Some(Merge::Add),
            "multiply" => Some(Merge::Multiply),
            _ => None,
        };
        // Rule: only `residual` and the merges take a `{ ... }` body.
        if kind != "residual" && merge.is_none() {
            if let Some(body) = &call.body {
                self.errors
                    .push(body.span, format!("`{kind}` takes no `{{ ... }}` body"));
                args.bad.set(true);
            }
        }
        let (op, prefix) = match kind.as_str() {
            "model" => {
                let node = self.model_call(call, &args, env);
                let prefix = match &node.op {
                    Op::Nested { path, .. } => {
                        snake_case(&path.segments.last().unwrap().ident.to_string())
                    }
                    _ => "model".into(),
                };
                return Some(Pending {
                    label,
                    prefix,
                    node,
                });
            }
            "residual" => (self.residual(call, &args, env), spec.prefix),
            "concat" | "add" | "multiply" => (
                self.merge(call, merge.unwrap_or(Merge::Concat), env),
                spec.prefix,
            ),
            // Rule: `identity` is a branch; in a chain it would do nothing.
            "identity" => {
                self.errors.push(
                    call.kind.span(),
                    "`identity` is a branch of `concat`, `add` or `multiply` (the input itself); in a chain it does nothing, so remove it",
                );
                (Op::Poison, spec.prefix)
            }
            _ => (simple_op(&kind, &args), spec.prefix),
        };
        let op = if args.bad.get() { Op::Poison } else { op };
        Some(Pending {
            label,
            prefix: prefix.into(),
            node: node(&call.kind, &kind, args.spans, op),
        })
    }

    fn block_call(&mut self, call: &LayerCall, block: &BlockDef, env: &Env) -> Node {
        let name = block.name.to_string();
        let bad = || node(&call.kind, &name, BTreeMap::new(), Op::Poison);
        // Rule: blocks cannot use themselves, directly or through other blocks.
        if self.stack.contains(&name) {
            self.errors.push(
                call.kind.span(),
                format!("block `{name}` uses itself (recursion is not allowed)"),
            );
            return bad();
        }
        if let Some(body) = &call.body {
            self.errors.push(
                body.span,
                format!("block `{name}` takes no `{{ ... }}` body"),
            );
            return bad();
        }
        let params: Vec<String> = block.params.iter().map(|(p, _)| p.to_string()).collect();
        let usage = format!("{name}({})", params.join(", "));
        let mut bound: BTreeMap<String, Value> = BTreeMap::new();
        let mut ok = true;
        // After a misspelt parameter name, a parameter without a value is not reported too.
        let mut misnamed = false;
        let mut positional = 0;
        for arg in &call.args {
            let pname = match &arg.name {
                Some(n) => {
                    let n = n.to_string();
                    // Rule: named arguments of a block are its parameters.
                    if !params.contains(&n) {
                        self.errors.push(
                            arg.name.as_ref().unwrap().span(),
                            format!(
                                "block `{name}` has no parameter `{n}`{} (parameters: {usage})",
                                did_you_mean(&n, params.iter().map(String::as_str))
                            ),
                        );
                        ok = false;
                        misnamed = true;
                        continue;
                    }
                    n
                }
                None => {
                    positional += 1;
                    match params.get(positional - 1) {
                        Some(p) => p.clone(),
                        None => {
                            self.errors.push(
                                arg.value.span(),
                                format!("too many arguments: block `{name}` is {usage}"),
                            );
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            let value = match &arg.value {
                ArgValue::Expr(e) => eval(e, env),
                other => Err(syn::Error::new(
                    other.span(),
                    "block arguments are values, not layers",
                )),
            };
            match value {
                Ok(v) => {
                    if bound.insert(pname.clone(), v).is_some() {
                        self.errors.push(
                            arg.value.span(),
                            format!("parameter `{pname}` of block `{name}` is given twice"),
                        );
                        ok = false;
                    }
                }
                Err(e) => {
                    self.errors.push_error(e);
                    ok = false;
                }
            }
        }
        let mut block_env = Env::default();
        for (p, default) in &block.params {
            let pname = p.to_string();
            let value = match (bound.remove(&pname), default) {
                (Some(v), _) => v,
                (None, Some(d)) => match eval(d, &block_env) {
                    Ok(v) => v,
                    Err(e) => {
                        self.errors.push_error(e);
                        ok = false;
                        continue;
                    }
                },
                (None, None) => {
                    if misnamed {
                        ok = false;
                        continue;
                    }
                    self.errors.push(
                        call.args_span,
                        format!("block `{name}` needs a value for `{pname}`: {usage}"),
                    );
                    ok = false;
                    continue;
                }
            };
            block_env = block_env.with(&pname, value);
        }
        if !ok {
            return bad();
        }
        self.stack.push(name.clone());
        let body = self.body(&block.body, &block_env);
        self.stack.pop();
        node(&call.kind, &name, BTreeMap::new(), Op::Block { body })
    }

    fn model_call(&mut self, call: &LayerCall, args: &Args, env: &Env) -> Node {
        let path = match args.raw.get("model") {
            Some(ArgValue::Expr(Expr::Path(p))) if p.qself.is_none() => Some(p.path.clone()),
            Some(v) => {
                self.errors.push(
                    v.span(),
                    "expected the path of a model struct, such as `Stem` or `crate::nets::Stem`",
                );
                None
            }
            None => None,
        };
        match path {
            Some(path) if !args.bad.get() => self.nested(call, &path, Some(args), env),
            _ => node(&call.kind, "model", BTreeMap::new(), Op::Poison),
        }
    }

    fn nested(
        &mut self,
        call: &LayerCall,
        path: &syn::Path,
        args: Option<&Args>,
        env: &Env,
    ) -> Node {
        let kind = path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let span = path.span();
        let single = path.segments.len() == 1;
        if single && self.failed.contains(&kind) {
            return node_at(span, &kind, BTreeMap::new(), Op::Poison);
        }
        let local = if single {
            self.models.get(&kind).cloned()
        } else {
            None
        };
        let declared = args.and_then(|a| a.raw.get("output").map(|v| (a, v)));
        let declared = match declared {
            Some((a, ArgValue::Expr(e))) => match eval(e, env) {
                Ok(v) => match shape_of(&v) {
                    Some(s) => Some(s),
                    None => {
                        self.errors.push(
                            e.span(),
                            format!("`output` is a shape such as (64, 8, 8) or (10), found `{v}`"),
                        );
                        a.bad.set(true);
                        None
                    }
                },
                Err(err) => {
                    self.errors.push_error(err);
                    return node(&call.kind, &kind, BTreeMap::new(), Op::Poison);
                }
            },
            Some((_, v)) => {
                self.errors
                    .push(v.span(), "`output` is a shape such as (64, 8, 8)");
                return node(&call.kind, &kind, BTreeMap::new(), Op::Poison);
            }
            None => None,
        };
        let op = match (local, declared) {
            (Some((input, output)), None) => Op::Nested {
                path: path.clone(),
                input: Some(input),
                output,
            },
            (Some((input, output)), Some(d)) => {
                // Rule: a declared output of a known model must be its output.
                if d != output {
                    self.errors.push(
                        call.args_span,
                        format!(
                            "`{kind}` outputs {}, not the declared {}",
                            fmt_shape(&output),
                            fmt_shape(&d)
                        ),
                    );
                }
                Op::Nested {
                    path: path.clone(),
                    input: Some(input),
                    output,
                }
            }
            (None, Some(d)) => Op::Nested {
                path: path.clone(),
                input: None,
                output: d,
            },
            // Rule: a model from elsewhere states its output shape (checked by the compiler).
            (None, None) => {
                let shown = path_text(path);
                self.errors.push_error(syn::Error::new_spanned(
                    path,
                    format!("`{shown}` is not declared earlier in this `convnet!`, so its output shape is unknown here; write `model({shown}, output = (C, H, W))` (the compiler checks it)"),
                ));
                Op::Poison
            }
        };
        let mut spans = BTreeMap::new();
        spans.insert("model", span);
        Node {
            name: String::new(),
            kind,
            span,
            arg_spans: spans,
            op,
            info: Info::default(),
            context: None,
            save: None,
        }
    }

    fn assert_shape(&mut self, call: &LayerCall, env: &Env) -> Node {
        let mut dims = Vec::new();
        for arg in &call.args {
            let value = match (&arg.name, &arg.value) {
                (None, ArgValue::Expr(e)) => eval(e, env),
                _ => Err(syn::Error::new(
                    arg.value.span(),
                    "assert_shape takes the expected dims: assert_shape(C, H, W)",
                )),
            };
            match value {
                Ok(Value::Int(n)) if n >= 1 => dims.push(n as usize),
                Ok(v) => {
                    self.errors.push(
                        arg.value.span(),
                        format!("shape dims are positive integers, found `{v}`"),
                    );
                    return node(&call.kind, "assert_shape", BTreeMap::new(), Op::Poison);
                }
                Err(e) => {
                    self.errors.push_error(e);
                    return node(&call.kind, "assert_shape", BTreeMap::new(), Op::Poison);
                }
            }
        }
        if dims.is_empty() {
            self.errors.push(
                call.args_span,
                "assert_shape needs the expected dims: assert_shape(C, H, W)",
            );
            return node(&call.kind, "assert_shape", BTreeMap::new(), Op::Poison);
        }
        let mut spans = BTreeMap::new();
        spans.insert("shape", call.args_span);
        node(&call.kind, "assert_shape", spans, Op::AssertShape(dims))
    }

    /// Lowers `concat { ... }`, `add { ... }` or `multiply { ... }`: each statement of the
    /// body is one branch (`{ layers }`, `label: { layers }`, `identity`, or a single layer),
    /// named `branch{n}` unless labelled.
    fn merge(&mut self, call: &LayerCall, merge: Merge, env: &Env) -> Op {
        let word = merge.keyword();
        // Rule: a merge has a body of branches.
        let Some(body) = &call.body else {
            self.errors.push(
                call.kind.span(),
                format!("`{word}` needs branches: {word} {{ {{ layers }}, {{ layers }} }} (a branch may be `identity`)"),
            );
            return Op::Poison;
        };
        let mut pending = Vec::new();
        let mut bad = false;
        for stmt in &body.stmts {
            if self.halted {
                return Op::Poison;
            }
            let branch = match stmt {
                Stmt::Branch(Branch { label, body }) => {
                    let inner = self.body(body, env);
                    Pending {
                        label: label.clone(),
                        prefix: "branch".into(),
                        node: node_at(
                            body.span,
                            "branch",
                            BTreeMap::new(),
                            Op::Block { body: inner },
                        ),
                    }
                }
                Stmt::Layer(l) if l.kind == "identity" && l.args.is_empty() && l.body.is_none() => {
                    self.nodes += 1;
                    Pending {
                        label: l.label.clone(),
                        prefix: "branch".into(),
                        node: node(
                            &l.kind,
                            "identity",
                            BTreeMap::new(),
                            Op::Block { body: Vec::new() },
                        ),
                    }
                }
                Stmt::Layer(l) => {
                    // A single layer is a branch of one layer; its label names the branch.
                    let Some(mut p) = self.call(l, env) else {
                        continue;
                    };
                    let label = p.label.take();
                    let span = l.kind.span();
                    Pending {
                        label,
                        prefix: "branch".into(),
                        node: node_at(
                            span,
                            "branch",
                            BTreeMap::new(),
                            Op::Block {
                                body: self.name(vec![p]),
                            },
                        ),
                    }
                }
                Stmt::Skip(label) => match self.skip(label) {
                    Some(op) => {
                        self.nodes += 1;
                        Pending {
                            label: None,
                            prefix: "branch".into(),
                            node: node_at(label.span(), &format!("@{label}"), BTreeMap::new(), op),
                        }
                    }
                    None => {
                        bad = true;
                        continue;
                    }
                },
                // Rule: branches are written one by one.
                Stmt::If(cond) => {
                    self.errors.push(
                        cond.cond.span(),
                        format!("`if` cannot choose the branches of `{word}`; put the `if` inside a branch's `{{ layers }}`"),
                    );
                    bad = true;
                    continue;
                }
                // Rule: branches are written one by one (a loop would repeat one label).
                Stmt::For(f) => {
                    self.errors.push(
                        f.span,
                        format!("`for` loops cannot make the branches of `{word}`; write each branch as `{{ layers }}`"),
                    );
                    bad = true;
                    continue;
                }
            };
            let mut branch = branch;
            branch.node.context = self.context.clone();
            pending.push(branch);
        }
        // Rule: a merge combines at least two branches.
        if pending.len() < 2 && !bad {
            self.errors.push(
                body.span,
                format!("`{word}` needs at least two branches, found {}; write `identity` for a branch that is the input itself", pending.len()),
            );
            bad = true;
        }
        let branches = self.name(pending);
        if bad {
            return Op::Poison;
        }
        Op::Merge { merge, branches }
    }

    /// The op of a skip branch `@label`, or `None` after reporting why there is none.
    fn skip(&mut self, label: &Ident) -> Option<Op> {
        let name = label.to_string();
        let found = self
            .labels
            .iter()
            .rev()
            .find_map(|scope| scope.get(&name))
            .cloned();
        match found {
            Some((save, Some(shape))) => {
                self.saved.insert(save);
                Some(Op::Skip {
                    label: name,
                    save,
                    shape,
                })
            }
            // Its shape is unknown after an earlier error: nothing more to report.
            Some((_, None)) => Some(Op::Poison),
            None => {
                // Rule: a skip names an earlier labelled layer of this body or an enclosing one.
                let visible: Vec<&str> = self
                    .labels
                    .iter()
                    .flat_map(|scope| scope.keys().map(String::as_str))
                    .collect();
                let why = if self.closed.contains(&name) {
                    format!("`{name}` labels a layer inside a block or branch that has ended, so its activation is out of scope here; label a layer of this body or an enclosing one")
                } else {
                    match did_you_mean(&name, visible.iter().copied()) {
                        hint if hint.is_empty() => format!("no earlier layer is labelled `{name}`; label one with `{name}: layer` before this point"),
                        hint => format!("no earlier layer is labelled `{name}`{hint}"),
                    }
                };
                let shown = if visible.is_empty() {
                    "none".to_string()
                } else {
                    visible
                        .iter()
                        .map(|v| format!("`@{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                self.errors.push(
                    label.span(),
                    format!("unknown skip `@{name}`: {why} (skips visible here: {shown})"),
                );
                None
            }
        }
    }

    fn residual(&mut self, call: &LayerCall, args: &Args, env: &Env) -> Op {
        // Rule: a residual block has a body to add its input to.
        let Some(body) = &call.body else {
            self.errors.push(call.kind.span(), "`residual` needs a body: residual { layers } or residual(project = auto) { layers }");
            return Op::Poison;
        };
        let project = match args.raw.get("project") {
            None => Project::Identity,
            Some(ArgValue::Expr(e)) => match eval(e, env) {
                Ok(Value::Word(w)) if w == "auto" => Project::Auto,
                Ok(Value::Word(w)) if w == "none" => Project::Identity,
                Ok(v) => {
                    self.errors.push(e.span(), format!("`project` is `auto`, `none`, a layer such as `conv2d(64, 1)` or `{{ layers }}`, found `{v}`"));
                    args.bad.set(true);
                    Project::Identity
                }
                Err(err) => {
                    self.errors.push_error(err);
                    args.bad.set(true);
                    Project::Identity
                }
            },
            Some(ArgValue::Layer(l)) => match self.call(l, env) {
                Some(mut p) => {
                    p.node.name = "project".into();
                    Project::Node(Box::new(p.node))
                }
                None => Project::Identity,
            },
            Some(ArgValue::Layers(b)) => {
                let body = self.body(b, env);
                let mut n = node_at(b.span, "projection", BTreeMap::new(), Op::Block { body });
                n.name = "project".into();
                Project::Node(Box::new(n))
            }
        };
        let body = self.body(body, env);
        Op::Residual { project, body }
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
    }
}

/// "in iteration `size = 64` of the `for` loop", for the bindings of the iterations being
/// unrolled (outermost first).
fn iteration_note(bindings: &[String]) -> Rc<str> {
    let quoted: Vec<String> = bindings.iter().map(|b| format!("`{b}`")).collect();
    let note = match quoted.len() {
        1 => format!("in iteration {} of the `for` loop", quoted[0]),
        _ => format!(
            "in iteration {} of the nested `for` loops",
            quoted.join(", ")
        ),
    };
    note.into()
}

fn poison(span: Span, kind: &str) -> Pending {
    Pending {
        label: None,
        prefix: "invalid".into(),
        node: node_at(span, kind, BTreeMap::new(), Op::Poison),
    }
}

/// `MiniXception` -> `mini_xception`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if i > 0 && (prev_lower || (next_lower && chars[i - 1].is_uppercase())) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// `crate::nets::Stem` as written, without spaces.
pub fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let lead = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{lead}{}", segments.join("::"))
}

/// `(64, 8, 8)`.
pub fn fmt_shape(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("({})", dims.join(", "))
}

fn shape_of(v: &Value) -> Option<Vec<usize>> {
    let dims = match v {
        Value::Int(n) => vec![Value::Int(*n)],
        Value::Tuple(items) => items.clone(),
        _ => return None,
    };
    let dims: Option<Vec<usize>> = dims
        .iter()
        .map(|d| match d {
            Value::Int(n) if (1..=MAX_DIM).contains(n) => Some(*n as usize),
            _ => None,
        })
        .collect();
    dims.filter(|d| d.len() == 1 || d.len() == 3)
}

/// Typed access to a layer call's arguments, reporting each bad one once.
struct Args<'a> {
    spec: &'static LayerSpec,
    env: &'a Env,
    errors: &'a Errors,
    raw: BTreeMap<&'static str, &'a ArgValue>,
    spans: BTreeMap<&'static str, Span>,
    bad: Cell<bool>,
}

impl<'a> Args<'a> {
    fn collect(
        spec: &'static LayerSpec,
        call: &'a LayerCall,
        env: &'a Env,
        errors: &'a Errors,
    ) -> Self {
        let args = Args {
            spec,
            env,
            errors,
            raw: BTreeMap::new(),
            spans: BTreeMap::new(),
            bad: Cell::new(false),
        };
        let mut args = args;
        let all: Vec<&'static str> = spec.positional.iter().chain(spec.named).copied().collect();
        let mut position = 0;
        let mut seen_named = false;
        for arg in &call.args {
            let name: &'static str = match &arg.name {
                Some(n) => {
                    seen_named = true;
                    let s = n.to_string();
                    match all.iter().find(|a| **a == s) {
                        Some(a) => a,
                        // Rule: arguments are the layer's own; suggest the nearest.
                        None => {
                            let hint = did_you_mean(&s, all.iter().copied());
                            errors.push(
                                n.span(),
                                format!(
                                    "`{}` has no argument `{s}`{hint} (arguments: {})",
                                    spec.name, spec.usage
                                ),
                            );
                            args.bad.set(true);
                            continue;
                        }
                    }
                }
                None => {
                    // Rule: positional arguments come first and are at most the layer's positional list.
                    // (It still takes its position, so the required ones are not reported
                    // missing as well.)
                    if seen_named {
                        errors.push(
                            arg.value.span(),
                            format!("positional arguments go before named ones: {}", spec.usage),
                        );
                        args.bad.set(true);
                    }
                    position += 1;
                    match spec.positional.get(position - 1) {
                        Some(a) => a,
                        None => {
                            errors.push(
                                arg.value.span(),
                                format!("too many arguments: {}", spec.usage),
                            );
                            args.bad.set(true);
                            continue;
                        }
                    }
                }
            };
            if args.raw.insert(name, &arg.value).is_some() {
                errors.push(arg.value.span(), format!("`{name}` is given twice"));
                args.bad.set(true);
            }
            args.spans.insert(name, arg.value.span());
        }
        for required in &spec.positional[..spec.required] {
            // Rule: required arguments are present.
            if !args.raw.contains_key(required) {
                errors.push(
                    call.args_span,
                    format!("`{}` needs `{required}`: {}", spec.name, spec.usage),
                );
                args.bad.set(true);
            }
        }
        args
    }

    fn fail(&self, name: &str, message: String) {
        let span = self
            .spans
            .get(name)
            .copied()
            .unwrap_or_else(Span::call_site);
        self.errors.push(span, message);
        self.bad.set(true);
    }

    fn value(&self, name: &'static str) -> Option<Value> {
        match self.raw.get(name)? {
            ArgValue::Expr(e) => match eval(e, self.env) {
                Ok(v) => Some(v),
                Err(err) => {
                    self.errors.push_error(err);
                    self.bad.set(true);
                    None
                }
            },
            other => {
                self.errors.push(
                    other.span(),
                    format!("`{name}` of `{}` is a value, not layers", self.spec.name),
                );
                self.bad.set(true);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn int(&self, name: &'static str, default: usize, min: i64, max: i64) -> usize {
        match self.value(name) {
            None => default,
            Some(Value::Int(n)) if (min..=max).contains(&n) => n as usize,
            Some(v) => {
                self.fail(
                    name,
                    format!(
                        "`{name}` of `{}` must be an integer from {min} to {max}, found `{v}`",
                        self.spec.name
                    ),
                );
                default
            }
        }
    }

    /// `n` or `(h, w)`, each in `1..=max`.
    fn pair(&self, name: &'static str, default: (usize, usize), max: i64) -> (usize, usize) {
        let ok = |v: &Value| matches!(v, Value::Int(n) if (1..=max).contains(n));
        match self.value(name) {
            None => default,
            Some(Value::Int(n)) if (1..=max).contains(&n) => (n as usize, n as usize),
            Some(Value::Tuple(t)) if t.len() == 2 && t.iter().all(ok) => match (&t[0], &t[1]) {
                (Value::Int(h), Value::Int(w)) => (*h as usize, *w as usize),
                _ => default,
            },
            Some(v) => {
                self.fail(name, format!("`{name}` of `{}` must be an integer or (height, width) from 1 to {max}, found `{v}`", self.spec.name));
                default
            }
        }
    }

    /// A finite float in `[lo, hi]` (or `[lo, hi)` when `open_hi`).
    fn float(&self, name: &'static str, default: f64, lo: f64, hi: f64, open_hi: bool) -> f64 {
        match self.value(name) {
            None => default,
            Some(v) => match as_f64(&v) {
                Some(x) if x.is_finite() && x >= lo && (x < hi || (!open_hi && x == hi)) => x,
                _ => {
                    let range = if open_hi {
                        format!("in [{lo}, {hi})")
                    } else {
                        format!("in [{lo}, {hi}]")
                    };
                    self.fail(
                        name,
                        format!(
                            "`{name}` of `{}` must be a number {range}, found `{v}`",
                            self.spec.name
                        ),
                    );
                    default
                }
            },
        }
    }

    /// One of the bare words `choices`, or `None` when the argument is absent (or wrong,
    /// which is reported).
    fn word(&self, name: &'static str, choices: &[&'static str]) -> Option<&'static str> {
        let v = self.value(name)?;
        if let Value::Word(w) = &v {
            if let Some(c) = choices.iter().find(|c| **c == w.as_str()) {
                return Some(c);
            }
        }
        let expected: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
        self.fail(
            name,
            format!(
                "`{name}` of `{}` is {}, found `{v}`",
                self.spec.name,
                expected.join(" or ")
            ),
        );
        None
    }

    fn boolean(&self, name: &'static str, default: bool) -> bool {
        match self.value(name) {
            None => default,
            Some(Value::Bool(b)) => b,
            Some(v) => {
                self.fail(
                    name,
                    format!(
                        "`{name}` of `{}` is `true` or `false`, found `{v}`",
                        self.spec.name
                    ),
                );
                default
            }
        }
    }

    fn pad4(&self, name: &'static str, v: &Value) -> Option<Pad4> {
        let n = |v: &Value| match v {
            Value::Int(n) if (0..=MAX_WINDOW).contains(n) => Some(*n as usize),
            _ => None,
        };
        match v {
            Value::Int(_) => n(v).map(|p| Pad4 {
                top: p,
                bottom: p,
                left: p,
                right: p,
            }),
            Value::Tuple(t) if t.len() == 2 => Some(Pad4 {
                top: n(&t[0])?,
                bottom: n(&t[0])?,
                left: n(&t[1])?,
                right: n(&t[1])?,
            }),
            Value::Tuple(t) if t.len() == 4 => Some(Pad4 {
                top: n(&t[0])?,
                bottom: n(&t[1])?,
                left: n(&t[2])?,
                right: n(&t[3])?,
            }),
            _ => {
                let _ = name;
                None
            }
        }
    }

    fn padding(&self, name: &'static str) -> Padding {
        match self.value(name) {
            None => Padding::Valid,
            Some(Value::Word(w)) if w == "same" => Padding::Same,
            Some(Value::Word(w)) if w == "valid" => Padding::Valid,
            Some(v) => match self.pad4(name, &v) {
                Some(p) => Padding::Explicit(p),
                None => {
                    self.fail(name, format!("`{name}` of `{}` is `valid`, `same`, p, (ph, pw) or (top, bottom, left, right) with 0 <= p <= {MAX_WINDOW}, found `{v}`", self.spec.name));
                    Padding::Valid
                }
            },
        }
    }
}

/// Builds the op of a plain (non-structural) layer from its typed arguments.
fn simple_op(kind: &str, a: &Args) -> Op {
    let window = |name| a.int(name, 1, 1, MAX_WINDOW);
    match kind {
        "conv2d" => Op::Conv2d {
            filters: a.int("filters", 1, 1, MAX_DIM),
            kernel: a.pair("kernel", (1, 1), MAX_WINDOW),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            groups: a.int("groups", 1, 1, MAX_DIM),
            bias: a.boolean("bias", true),
        },
        "depthwise_conv2d" => Op::DepthwiseConv2d {
            kernel: a.pair("kernel", (1, 1), MAX_WINDOW),
            multiplier: a.int("multiplier", 1, 1, MAX_WINDOW),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            bias: a.boolean("bias", true),
        },
        "separable_conv2d" => Op::SeparableConv2d {
            filters: a.int("filters", 1, 1, MAX_DIM),
            kernel: a.pair("kernel", (1, 1), MAX_WINDOW),
            multiplier: a.int("multiplier", 1, 1, MAX_WINDOW),
            stride: window("stride"),
            padding: a.padding("padding"),
            dilation: window("dilation"),
            bias: a.boolean("bias", true),
        },
        "batch_norm" => Op::BatchNorm {
            eps: a.float("eps", 1e-3, f64::MIN_POSITIVE, 1.0, false),
            momentum: a.float("momentum", 0.01, 0.0, 1.0, false),
            unbiased_variance: a.word("variance", &["biased", "unbiased"]) == Some("unbiased"),
        },
        "relu" => Op::Activation(Activation::Relu),
        "sigmoid" => Op::Activation(Activation::Sigmoid),
        "tanh" => Op::Activation(Activation::Tanh),
        "gelu" => Op::Activation(Activation::Gelu),
        "silu" => Op::Activation(Activation::Silu),
        "softmax" => Op::Activation(Activation::Softmax),
        "leaky_relu" => Op::Activation(Activation::LeakyRelu(
            a.float("alpha", 0.01, 0.0, 1e6, false),
        )),
        "max_pool2d" | "avg_pool2d" => {
            let kernel = a.pair("kernel", (1, 1), MAX_WINDOW);
            Op::Pool {
                max: kind == "max_pool2d",
                kernel,
                stride: a.pair("stride", kernel, MAX_WINDOW),
                padding: a.padding("padding"),
            }
        }
        "global_avg_pool2d" => Op::GlobalPool {
            max: false,
            keepdims: a.boolean("keepdims", false),
        },
        "global_max_pool2d" => Op::GlobalPool {
            max: true,
            keepdims: a.boolean("keepdims", false),
        },
        "dropout" => Op::Dropout(a.float("rate", 0.0, 0.0, 1.0, true)),
        "flatten" => Op::Flatten,
        "linear" => Op::Linear {
            units: a.int("units", 1, 1, MAX_DIM),
            bias: a.boolean("bias", true),
        },
        "rescale" => Op::Rescale {
            scale: a.float("scale", 1.0, -1e30, 1e30, false),
            offset: a.float("offset", 0.0, -1e30, 1e30, false),
        },
        "zero_pad2d" => match a.padding("padding") {
            Padding::Explicit(p) => Op::ZeroPad(p),
            _ => {
                a.fail(
                    "padding",
                    "`zero_pad2d` takes p, (ph, pw) or (top, bottom, left, right)".into(),
                );
                Op::Poison
            }
        },
        "relu6" => Op::Activation(Activation::Relu6),
        "hard_sigmoid" => Op::Activation(Activation::HardSigmoid),
        "hard_swish" => Op::Activation(Activation::HardSwish),
        "layer_norm2d" => Op::LayerNorm2d {
            eps: a.float("eps", 1e-6, f64::MIN_POSITIVE, 1.0, false),
        },
        "group_norm" => Op::GroupNorm {
            groups: a.int("groups", 1, 1, MAX_DIM),
            eps: a.float("eps", 1e-5, f64::MIN_POSITIVE, 1.0, false),
        },
        "layer_scale" => Op::LayerScale {
            init: a.float("init", 1e-6, -1e30, 1e30, false),
        },
        "drop_path" => Op::DropPath {
            rate: a.float("rate", 0.0, 0.0, 1.0, true),
            seed: a
                .raw
                .contains_key("seed")
                .then(|| a.int("seed", 0, 0, i64::MAX) as u64),
        },
        "upsample2d" => Op::Upsample {
            scale: a.pair("scale", (2, 2), MAX_WINDOW),
            bilinear: match a.value("mode") {
                None => false,
                Some(Value::Word(w)) if w == "nearest" => false,
                Some(Value::Word(w)) if w == "bilinear" => true,
                Some(v) => {
                    a.fail(
                        "mode",
                        format!("`mode` of `upsample2d` is `nearest` or `bilinear`, found `{v}`"),
                    );
                    false
                }
            },
        },
        "conv_transpose2d" => Op::ConvTranspose2d {
            filters: a.int("filters", 1, 1, MAX_DIM),
            kernel: a.pair("kernel", (1, 1), MAX_WINDOW),
            stride: window("stride"),
            padding: a.int("padding", 0, 0, MAX_WINDOW),
            output_padding: a.int("output_padding", 0, 0, MAX_WINDOW),
            dilation: window("dilation"),
            bias: a.boolean("bias", true),
        },
        "reshape" => match a.value("shape") {
            Some(v) => match shape_of(&v) {
                Some(dims) => Op::Reshape(dims),
                None => {
                    a.fail("shape", format!("`shape` of `reshape` is (C, H, W) or (features) with each dim from 1 to {MAX_DIM}, found `{v}`"));
                    Op::Poison
                }
            },
            None => Op::Poison,
        },
        "crop2d" => match a.value("cropping").map(|v| (a.pad4("cropping", &v), v)) {
            Some((Some(p), _)) => Op::Crop(p),
            Some((None, v)) => {
                a.fail("cropping", format!("`cropping` of `crop2d` is p, (ph, pw) or (top, bottom, left, right) with 0 <= p <= {MAX_WINDOW}, found `{v}`"));
                Op::Poison
            }
            None => Op::Poison,
        },
        "center_crop" => Op::CenterCrop {
            height: a.int("height", 1, 1, MAX_DIM),
            width: a.int("width", 1, 1, MAX_DIM),
        },
        _ => Op::Poison,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_model_names() {
        assert_eq!(snake_case("MiniXception"), "mini_xception");
        assert_eq!(snake_case("VGG16"), "vgg16");
        assert_eq!(snake_case("ResNet18"), "res_net18");
        assert_eq!(snake_case("Stem"), "stem");
    }
}
