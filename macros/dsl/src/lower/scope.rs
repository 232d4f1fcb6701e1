//! Scopes: `for` loops unrolled, user blocks inlined with their parameters bound, and the
//! labels that `@label` skips read.

use super::{node, poison, Lowerer, Pending};
use crate::ast::{ArgValue, BlockDef, ForLoop, LayerCall};
use crate::error::did_you_mean;
use crate::ir::{Node, Op};
use crate::value::{eval, iterate, thousands, Env, Value, MAX_ITERATIONS};
use proc_macro2::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use syn::spanned::Spanned;
use syn::Ident;

impl Lowerer<'_> {
    /// Unrolls one `for` loop. Errors raised inside an iteration name its bindings; the
    /// iteration and layer caps stop the loop itself, not just what it adds.
    pub(super) fn for_loop(&mut self, f: &ForLoop, env: &Env, out: &mut Vec<Pending>) {
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
    pub(super) fn halt(&mut self, span: Span, out: &mut Vec<Pending>) {
        self.halted = true;
        out.push(poison(span, "for"));
    }

    pub(super) fn block_call(&mut self, call: &LayerCall, block: &BlockDef, env: &Env) -> Node {
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
                    unevaluated.insert(pname);
                    ok = false;
                }
            }
        }
        let mut block_env = Env::default();
        for (p, default) in &block.params {
            let pname = p.to_string();
            if unevaluated.contains(&pname) {
                continue;
            }
            let value = match (bound.remove(&pname), default) {
                (Some(v), _) => v,
                // A default sees the earlier parameters and the block's input shape names.
                (None, Some(d)) => match eval(d, &block_env.with_shape(self.shape.as_deref())) {
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
