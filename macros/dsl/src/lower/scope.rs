//! Scopes: `for` loops unrolled, user blocks inlined with their parameters bound, and the
//! labels that `@label` skips read.

use super::{node, poison, BlockRef, Lowerer, Pending, POISONED};
use crate::ast::{ArgValue, ForLoop, LayerCall};
use crate::catalog;
use crate::error::did_you_mean;
use crate::ir::{Node, Op, Project};
use crate::value::{eval, iterate, thousands, Env, LayerValue, Value, MAX_ITERATIONS};
use proc_macro2::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use syn::spanned::Spanned;
use syn::Expr;
use syn::Ident;

impl Lowerer<'_> {
    /// Unrolls one `for` loop. Errors raised inside an iteration name its bindings; the
    /// iteration and layer caps stop the loop itself, not just what it adds.
    pub(super) fn for_loop(&mut self, f: &ForLoop, env: &Env, out: &mut Vec<Pending>) {
        // The outermost loop of a nest counts the nest's innermost iterations first.
        let outermost = self.nest.is_none();
        if outermost {
            let budget = std::cell::Cell::new(MAX_ITERATIONS);
            self.nest = Some((0, nest_count(&f.body.stmts, Some(f), env, &budget)));
        }
        self.for_loop_inner(f, env, out);
        if outermost {
            self.nest = None;
        }
    }

    fn for_loop_inner(&mut self, f: &ForLoop, env: &Env, out: &mut Vec<Pending>) {
        let innermost = !has_loop(&f.body.stmts);
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
            // `loop_index` and `loop_count` (the latter only when the nest was counted).
            let (index, count) = self.nest.unwrap_or((0, None));
            let mut env = env.with("loop_index", Value::Int(index as i64));
            match count {
                Some(c) => env = env.with("loop_count", Value::Int(c as i64)),
                None => env = env.with("loop_count", Value::Word(crate::value::UNCOUNTED.into())),
            }
            self.iteration.push(binding);
            let note = iteration_note(&self.iteration);
            let saved = self.context.replace(note.clone());
            let before = self.errors.len();
            self.stmts(&f.body.stmts, &env, out);
            self.errors.annotate_since(before, &note);
            self.context = saved;
            self.iteration.pop();
            if innermost {
                if let Some((index, _)) = &mut self.nest {
                    *index += 1;
                }
            }
        }
    }

    /// Stops lowering the current model after a cap was hit; the poison node keeps later
    /// checks (such as the declared output) from reporting the truncation again.
    pub(super) fn halt(&mut self, span: Span, out: &mut Vec<Pending>) {
        self.halted = true;
        out.push(poison(span, "for"));
    }

    pub(super) fn block_call(&mut self, call: &LayerCall, block: &BlockRef, env: &Env) -> Node {
        let def = block.def;
        let name = call.kind.to_string();
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
        let params: Vec<String> = def.params.iter().map(|(p, _)| p.to_string()).collect();
        let usage = format!("{name}({})", params.join(", "));
        let mut bound: BTreeMap<String, (Value, &ArgValue)> = BTreeMap::new();
        let mut ok = true;
        // After a misspelt parameter name, a parameter without a value is not reported too.
        let mut misnamed = false;
        // Parameters whose argument failed to evaluate (reported): they are given, so not
        // reported missing too (after an earlier error, a shape name fails this way).
        let mut unevaluated: BTreeSet<String> = BTreeSet::new();
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
            match self.argument(&arg.value, env) {
                Ok(v) => {
                    if bound.insert(pname.clone(), (v, &arg.value)).is_some() {
                        self.errors.push(
                            arg.value.span(),
                            format!("parameter `{pname}` of block `{name}` is given twice"),
                        );
                        ok = false;
                    }
                }
                Err(e) => {
                    self.errors.push_error(e);
                    unevaluated.insert(pname);
                    ok = false;
                }
            }
        }
        // Errors from here on arise inside the block's definition.
        let inside = self.errors.len();
        let saved_namespace = std::mem::replace(&mut self.namespace, block.namespace);
        let mut block_env = Env::default();
        for (p, default) in &def.params {
            let pname = p.to_string();
            if unevaluated.contains(&pname) {
                continue;
            }
            let value = match (bound.remove(&pname), default) {
                (Some((v, written)), _) => {
                    block_env = block_env.with_origin(&pname, v, written);
                    continue;
                }
                // A default sees the earlier parameters and the block's input shape names.
                (None, Some(d)) => {
                    match self.argument(d, &block_env.with_shape(self.shape.as_deref())) {
                        Ok(v) => v,
                        Err(e) => {
                            self.errors.push_error(e);
                            ok = false;
                            continue;
                        }
                    }
                }
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
        let mut body = Vec::new();
        if ok {
            self.stack.push(name.clone());
            body = self.body(&def.body, &block_env);
            self.stack.pop();
        }
        self.namespace = saved_namespace;
        if let Some(imported) = &block.imported {
            // Errors inside an imported block are the caller's: at its token, with where
            // in the block they arose.
            let note = format!("in block `{name}` imported from `{}`", imported.path);
            self.errors.relocate_since(inside, call.kind.span(), &note);
            relocate(&mut body, call.kind.span(), &note, "");
        }
        if !ok {
            return bad();
        }
        node(&call.kind, &name, BTreeMap::new(), Op::Block { body })
    }

    /// A block argument's value: a value, or a layer (`relu`, `batch_norm(eps = 1e-5)`, a
    /// block's name or use, `{ layers }`) kept with the names it sees here.
    pub(super) fn argument(&self, value: &ArgValue, env: &Env) -> syn::Result<Value> {
        let text = match value {
            ArgValue::Expr(Expr::Path(p)) if p.qself.is_none() && p.path.segments.len() == 1 => {
                let word = p.path.segments[0].ident.to_string();
                let layer = env.get(&word).is_none()
                    && (catalog::lookup(&word).is_some() || self.block(&word).is_some());
                if !layer {
                    return eval(&Expr::Path(p.clone()), env);
                }
                word
            }
            ArgValue::Expr(e) => return eval(e, env),
            ArgValue::Layer(l) => format!("{}(...)", l.kind),
            ArgValue::Layers(..) => "{ ... }".to_string(),
        };
        Ok(Value::Layer(Rc::new(LayerValue {
            value: value.clone(),
            env: env.clone(),
            namespace: self.namespace,
            text,
        })))
    }

    /// A use of a block parameter that holds a layer: lowers the layer passed, with the names
    /// and blocks of where it was written and the input here; `none` is no layer.
    pub(super) fn passed_layer(
        &mut self,
        call: &LayerCall,
        value: Value,
        env: &Env,
    ) -> Option<Pending> {
        let kind = call.kind.to_string();
        let layer = match value {
            Value::Layer(l) => l,
            Value::Word(w) if w == "none" && call.args.is_empty() && call.body.is_none() => {
                return None
            }
            Value::Word(w) if w == POISONED => return Some(poison(call.kind.span(), "invalid")),
            // Rule: a name used as a layer holds a layer.
            other => {
                self.errors.push(
                    call.kind.span(),
                    format!("`{kind}` is the value `{other}` here, not a layer; a block parameter used as a layer takes a layer such as `relu`, `batch_norm(eps = 1e-5)`, a block, `{{ layers }}` or `none`"),
                );
                return Some(poison(call.kind.span(), "invalid"));
            }
        };
        // Rule: a layer passed as an argument comes with its own arguments.
        if !call.args.is_empty() || call.body.is_some() {
            self.errors.push(
                call.args_span,
                format!("`{kind}` is the layer `{}` passed to the block, complete with its arguments; write them where the block is used: `{kind} = layer(args)`", layer.text),
            );
            return Some(poison(call.kind.span(), "invalid"));
        }
        let _ = env;
        let saved = std::mem::replace(&mut self.namespace, layer.namespace);
        let here = layer.env.with_shape(self.shape.as_deref());
        let pending = match &layer.value {
            ArgValue::Layer(l) => {
                let mut l = (**l).clone();
                l.label = call.label.clone().or(l.label);
                self.layer_call(&l, &here)
            }
            ArgValue::Expr(Expr::Path(p)) => {
                let l = LayerCall {
                    label: call.label.clone(),
                    kind: p.path.segments[0].ident.clone(),
                    args: Vec::new(),
                    args_span: p.span(),
                    body: None,
                };
                self.layer_call(&l, &here)
            }
            ArgValue::Expr(e) => {
                self.errors.push(e.span(), "expected a layer");
                Some(poison(e.span(), "invalid"))
            }
            ArgValue::Layers(written, b) => {
                let body = self.body(b, &here);
                Some(Pending {
                    label: call.label.clone().or_else(|| written.clone()),
                    prefix: kind.clone(),
                    node: node(&call.kind, &kind, BTreeMap::new(), Op::Block { body }),
                })
            }
        };
        self.namespace = saved;
        pending
    }

    /// The op of a skip branch `@label`, or `None` after reporting why there is none.
    pub(super) fn skip(&mut self, label: &Ident) -> Option<Op> {
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
                let later = self.ahead.iter().any(|scope| scope.contains(&name));
                let why = if later {
                    // No "did you mean": an earlier label is another activation, most likely
                    // of another shape; the fix is the order.
                    format!("`{name}` labels a later layer, and a skip reads the output of an earlier one; move this merge after `{name}: ...`")
                } else if self.closed.contains(&name) {
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
}

/// Whether a body has a `for` loop of its own (in it or its conditionals' bodies).
fn has_loop(stmts: &[crate::ast::Stmt]) -> bool {
    use crate::ast::Stmt;
    stmts.iter().any(|s| match s {
        Stmt::For(_) => true,
        Stmt::If(i) => has_loop(&i.then.stmts) || has_loop(&i.otherwise),
        _ => false,
    })
}

/// The innermost iterations of loop `f` (with body `stmts`) under `env`, or of the loops of
/// `stmts` when `f` is `None`: `None` when a range or condition cannot be evaluated before
/// unrolling (a shape name in it). Conditionals count the body they choose.
/// `budget` caps the values evaluated (a nest past the iteration cap is not counted).
fn nest_count(
    stmts: &[crate::ast::Stmt],
    f: Option<&ForLoop>,
    env: &Env,
    budget: &std::cell::Cell<usize>,
) -> Option<usize> {
    use crate::ast::Stmt;
    let Some(f) = f else {
        let mut env = env.clone();
        let mut total = 0usize;
        for s in stmts {
            match s {
                Stmt::For(inner) => {
                    total = total.checked_add(nest_count(
                        &inner.body.stmts,
                        Some(inner),
                        &env,
                        budget,
                    )?)?
                }
                Stmt::If(i) if has_loop(&i.then.stmts) || has_loop(&i.otherwise) => {
                    let chosen = match eval(&i.cond, &env).ok()? {
                        Value::Bool(true) => &i.then.stmts[..],
                        Value::Bool(false) => &i.otherwise[..],
                        _ => return None,
                    };
                    total = total.checked_add(nest_count(chosen, None, &env, budget)?)?;
                }
                Stmt::Let(l) => {
                    if let Ok(v) = eval(&l.value, &env) {
                        env = env.with(&l.name.to_string(), v);
                    }
                }
                _ => {}
            }
        }
        return Some(total);
    };
    let values = iterate(&f.iter, env).ok()?;
    budget.set(budget.get().checked_sub(values.len())?);
    if !has_loop(stmts) {
        return Some(values.len());
    }
    let mut total = 0usize;
    for value in values {
        let env = match (f.tuple, value) {
            (false, v) => env.with(&f.vars[0].to_string(), v),
            (true, Value::Tuple(items)) if items.len() == f.vars.len() => f
                .vars
                .iter()
                .zip(items)
                .fold(env.clone(), |e, (var, v)| e.with(&var.to_string(), v)),
            _ => return None,
        };
        total = total.checked_add(nest_count(stmts, None, &env, budget)?)?;
    }
    Some(total)
}

/// Moves the nodes of an imported block's body onto `span` (the caller's token); their
/// errors note the block and the layer's path in it (`scope`).
fn relocate(nodes: &mut [Node], span: Span, note: &str, scope: &str) {
    for n in nodes {
        let at = crate::ir::path(scope, &n.name);
        n.span = span;
        for s in n.arg_spans.values_mut() {
            *s = span;
        }
        let here = format!("{note}, layer `{at}`");
        n.context = Some(match &n.context {
            Some(c) => format!("{c}, {here}").into(),
            None => here.into(),
        });
        match &mut n.op {
            Op::Block { body } => relocate(body, span, note, &at),
            Op::Residual { project, body } => {
                if let Project::Node(p) = project {
                    relocate(std::slice::from_mut(p), span, note, &at);
                }
                relocate(body, span, note, &at);
            }
            Op::Merge { branches, .. } => relocate(branches, span, note, &at),
            _ => {}
        }
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
