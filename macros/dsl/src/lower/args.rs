//! Typed reading of a layer call's arguments against its catalog entry: each argument is
//! matched to a parameter, evaluated, checked against its range and reported once when
//! wrong; a left-out argument reads as the catalog's default.

use crate::ast::{ArgValue, LayerCall};
use crate::catalog::{ArgDefault, LayerSpec};
use crate::error::{did_you_mean, Errors};
use crate::ir::{Pad4, Padding, MAX_DIM, MAX_WINDOW};
use crate::value::{as_f64, eval, Env, Value};
use proc_macro2::Span;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

/// `v` as a shape `(C, H, W)` or `(F)` with each dim from 1 to [`MAX_DIM`].
pub fn shape_of(v: &Value) -> Option<Vec<usize>> {
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

/// Typed access to a layer call's arguments, reporting each bad one once. An argument left
/// out reads as its catalog default ([`ArgDefault`]); the typed readers' own fallbacks are
/// only used after an error, when the layer becomes `Op::Poison` anyway.
pub struct Args<'a> {
    /// The layer's catalog entry.
    pub(super) spec: &'static LayerSpec,
    env: &'a Env,
    errors: &'a Errors,
    /// The written arguments by parameter name.
    pub(super) raw: BTreeMap<&'static str, &'a ArgValue>,
    /// Where each written argument is.
    pub(super) spans: BTreeMap<&'static str, Span>,
    /// Set once any argument was wrong (reported).
    pub(super) bad: Cell<bool>,
    /// Arguments already reported wrong: a default that reads one of them is not checked.
    failed: RefCell<BTreeSet<&'static str>>,
    /// Defaults set by `defaults { ... }` for this layer: argument -> (value, where set).
    pub(super) overrides: Option<BTreeMap<&'static str, (Value, Span)>>,
}

impl<'a> Args<'a> {
    pub(super) fn collect(
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
            failed: RefCell::new(BTreeSet::new()),
            overrides: None,
        };
        let mut args = args;
        let all: Vec<&'static str> = spec.params().map(|p| p.name).collect();
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
                        Some(a) => a.name,
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
        for required in spec.positional[..spec.required()].iter().map(|p| p.name) {
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

    /// Whether the call writes argument `name` (rather than leaving it to its default).
    pub fn is_written(&self, name: &str) -> bool {
        self.raw.contains_key(name)
    }

    /// Reports argument `name` as wrong, on its span.
    pub fn fail(&self, name: &'static str, message: String) {
        self.failed.borrow_mut().insert(name);
        let span = self
            .spans
            .get(name)
            .copied()
            .or_else(|| self.overrides.as_ref()?.get(name).map(|(_, s)| *s))
            .unwrap_or_else(Span::call_site);
        self.errors.push(span, message);
        self.bad.set(true);
    }

    /// The value of argument `name`: as written, else its catalog default; `None` when it
    /// is required or `Absent` and not written, or when evaluating it failed (reported).
    pub fn value(&self, name: &'static str) -> Option<Value> {
        let Some(written) = self.raw.get(name) else {
            return self.default(name);
        };
        match written {
            ArgValue::Expr(e) => match eval(e, self.env) {
                Ok(v) => Some(v),
                Err(err) => {
                    self.errors.push_error(err);
                    self.bad.set(true);
                    None
                }
            },
            // Rule: a layer argument is a value; a call here is a function's (or a typo).
            ArgValue::Layer(l) if l.body.is_none() && l.label.is_none() => {
                let f = l.kind.to_string();
                let message = crate::value::unknown_function(&f, l.args.len());
                self.errors.push(
                    l.kind.span(),
                    message.replacen(
                        &format!("`{f}`"),
                        &format!("`{f}` in `{name}` of `{}`", self.spec.name),
                        1,
                    ),
                );
                self.bad.set(true);
                None
            }
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

    /// Reports argument `name`'s value `v` as wrong. A float where an integer belongs is
    /// reported where it was computed when the argument is a name (a block parameter or a
    /// `let`), with the fix.
    fn wrong(&self, name: &'static str, v: &Value, message: String) {
        let Value::Float(_) = v else {
            return self.fail(name, message);
        };
        let hint = "; `*` or `/` with a float gives a float: use integer arithmetic (`c / 2` rather than `c * 0.5`; `/` of integers rounds toward zero) or `round(...)`, `floor(...)`, `ceil(...)`";
        let var = match self.raw.get(name) {
            Some(ArgValue::Expr(syn::Expr::Path(p))) if p.path.segments.len() == 1 => {
                Some(p.path.segments[0].ident.to_string())
            }
            _ => None,
        };
        match var.as_deref().and_then(|n| Some((n, self.env.origin(n)?))) {
            Some((var, (first, last))) => {
                self.failed.borrow_mut().insert(name);
                self.errors.push_pinned(
                    first,
                    last,
                    format!("{message}: `{var}` is `{v}`, computed here{hint}"),
                );
                self.bad.set(true);
            }
            None => self.fail(name, format!("{message}{hint}")),
        }
    }

    /// The catalog default of argument `name`, as a value.
    fn default(&self, name: &'static str) -> Option<Value> {
        if let Some((v, _)) = self.overrides.as_ref().and_then(|o| o.get(name)) {
            return Some(v.clone());
        }
        match self.spec.param(name)?.default {
            ArgDefault::Required | ArgDefault::Absent => None,
            ArgDefault::Int(n) => Some(Value::Int(n)),
            ArgDefault::Float(x) => Some(Value::Float(x)),
            ArgDefault::Bool(b) => Some(Value::Bool(b)),
            ArgDefault::Word(w) => Some(Value::Word(w.to_string())),
            // The builder reads (and reports) the other argument first.
            ArgDefault::SameAs(other) if self.failed.borrow().contains(other) => None,
            ArgDefault::SameAs(other) => match self.raw.get(other) {
                Some(ArgValue::Expr(e)) => eval(e, self.env).ok(),
                Some(_) => None,
                None => self.default(other),
            },
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, name: &'static str, min: i64, max: i64) -> usize {
        let fallback = min.max(0) as usize;
        match self.value(name) {
            None => fallback,
            Some(Value::Int(n)) if (min..=max).contains(&n) => n as usize,
            Some(v) => {
                self.wrong(
                    name,
                    &v,
                    format!(
                        "`{name}` of `{}` must be an integer from {min} to {max}, found `{v}`",
                        self.spec.name
                    ),
                );
                fallback
            }
        }
    }

    /// `n` or `(h, w)`, each in `1..=max`.
    pub fn pair(&self, name: &'static str, max: i64) -> (usize, usize) {
        let fallback = (1, 1);
        let ok = |v: &Value| matches!(v, Value::Int(n) if (1..=max).contains(n));
        match self.value(name) {
            None => fallback,
            Some(Value::Int(n)) if (1..=max).contains(&n) => (n as usize, n as usize),
            Some(Value::Tuple(t)) if t.len() == 2 && t.iter().all(ok) => match (&t[0], &t[1]) {
                (Value::Int(h), Value::Int(w)) => (*h as usize, *w as usize),
                _ => fallback,
            },
            Some(v) => {
                self.wrong(name, &v, format!("`{name}` of `{}` must be an integer or (height, width) from 1 to {max}, found `{v}`", self.spec.name));
                fallback
            }
        }
    }

    /// A finite float in `[lo, hi]` (or `[lo, hi)` when `open_hi`).
    pub fn float(&self, name: &'static str, lo: f64, hi: f64, open_hi: bool) -> f64 {
        let fallback = lo;
        match self.value(name) {
            None => fallback,
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
                    fallback
                }
            },
        }
    }

    /// One of the bare words `choices`, or `None` when the argument is absent without a
    /// default (or wrong, which is reported).
    pub fn word(&self, name: &'static str, choices: &[&'static str]) -> Option<&'static str> {
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

    /// `true` or `false`.
    pub fn boolean(&self, name: &'static str) -> bool {
        match self.value(name) {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(v) => {
                self.fail(
                    name,
                    format!(
                        "`{name}` of `{}` is `true` or `false`, found `{v}`",
                        self.spec.name
                    ),
                );
                false
            }
        }
    }

    /// `p`, `(ph, pw)` or `(top, bottom, left, right)`, each from 0 to [`MAX_WINDOW`].
    pub fn pad4(&self, v: &Value) -> Option<Pad4> {
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
            _ => None,
        }
    }

    /// `valid`, `same` or explicit padding ([`Args::pad4`]).
    pub fn padding(&self, name: &'static str) -> Padding {
        match self.value(name) {
            None => Padding::Valid,
            Some(Value::Word(w)) if w == "same" => Padding::Same,
            Some(Value::Word(w)) if w == "valid" => Padding::Valid,
            Some(v) => match self.pad4(&v) {
                Some(p) => Padding::Explicit(p),
                None => {
                    self.fail(name, format!("`{name}` of `{}` is `valid`, `same`, p, (ph, pw) or (top, bottom, left, right) with 0 <= p <= {MAX_WINDOW}, found `{v}`", self.spec.name));
                    Padding::Valid
                }
            },
        }
    }
}
