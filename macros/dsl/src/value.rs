//! Compile-time values and the evaluation of argument expressions (literals, loop variables,
//! block parameters, arithmetic, tuples).

use crate::ast::{ArgValue, FUNCTIONS};
use crate::error::did_you_mean;
use proc_macro2::Span;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use syn::spanned::Spanned;
use syn::{BinOp, Expr, Lit, UnOp};

/// Keywords that evaluate to themselves.
pub const WORDS: &[&str] = &[
    "same", "valid", "auto", "none", "nearest", "bilinear", "biased", "unbiased",
];

/// A value known at expansion time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer literal or integer arithmetic.
    Int(i64),
    /// A float literal or float arithmetic.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A keyword such as `same`.
    Word(String),
    /// `(a, b, ...)`.
    Tuple(Vec<Value>),
    /// A layer, block use or `{ layers }` passed to a block parameter.
    Layer(Rc<LayerValue>),
}

/// A layer given as a block argument: its tokens, with the names they see where written.
pub struct LayerValue {
    /// The layer call or `{ layers }` as written.
    pub value: ArgValue,
    /// The names bound where it was written (its arguments are evaluated there).
    pub env: Env,
    /// The block namespace it was written in (its block names resolve there).
    pub namespace: usize,
    /// As written, for messages.
    pub text: String,
}

impl fmt::Debug for LayerValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)
    }
}

impl PartialEq for LayerValue {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Word(w) => write!(f, "{w}"),
            Value::Tuple(items) => {
                let parts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
                write!(f, "({})", parts.join(", "))
            }
            Value::Layer(l) => write!(f, "{}", l.text),
        }
    }
}

/// Names bound during unrolling: loop variables and block parameters.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, Value>,
    /// Where each block parameter's and `let`'s value was computed (the caller's argument,
    /// the `let`'s expression; first and last token): a value of the wrong type is reported
    /// there.
    origins: BTreeMap<String, (Span, Span)>,
}

impl Env {
    /// A copy of this environment with the [`SHAPE_NAMES`] bound to `shape`'s dims (none
    /// when the shape is unknown after an earlier error).
    pub fn with_shape(&self, shape: Option<&[usize]>) -> Env {
        let mut env = self.clone();
        for name in SHAPE_NAMES {
            env.vars.remove(name);
        }
        let names: &[&str] = match shape {
            Some([_, _, _]) => &SHAPE_NAMES[..3],
            Some([_]) => &SHAPE_NAMES[3..],
            _ => &[],
        };
        for (name, dim) in names.iter().zip(shape.unwrap_or(&[])) {
            env.vars.insert(name.to_string(), Value::Int(*dim as i64));
        }
        env
    }

    /// A copy of this environment with `name` bound to `value`.
    pub fn with(&self, name: &str, value: Value) -> Env {
        let mut env = self.clone();
        env.vars.insert(name.to_string(), value);
        env.origins.remove(name);
        env
    }

    /// A copy with `name` bound to `value`, computed by the expression `origin`.
    pub fn with_origin(&self, name: &str, value: Value, origin: &ArgValue) -> Env {
        let mut env = self.with(name, value);
        let range = match origin {
            ArgValue::Expr(e) => {
                let tokens: Vec<_> = quote::ToTokens::to_token_stream(e).into_iter().collect();
                match (tokens.first(), tokens.last()) {
                    (Some(a), Some(b)) => (a.span(), b.span()),
                    _ => (e.span(), e.span()),
                }
            }
            other => (other.span(), other.span()),
        };
        env.origins.insert(name.to_string(), range);
        env
    }

    /// The value bound to `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    /// Where the value of `name` was computed (first and last token), for a block
    /// parameter or a `let`.
    pub fn origin(&self, name: &str) -> Option<(Span, Span)> {
        self.origins.get(name).copied()
    }
}

fn err(expr: &Expr, message: impl fmt::Display) -> syn::Error {
    syn::Error::new(expr.span(), message)
}

/// Names bound to the current input's dims inside a body: images `(C, H, W)` bind the first
/// three, feature vectors `(F)` the last.
pub const SHAPE_NAMES: [&str; 4] = ["in_channels", "in_height", "in_width", "in_features"];

/// Ends the message of a shape name used where the shape is unknown after an earlier error:
/// lowering drops these follow-on errors.
pub const UNKNOWN_SHAPE: &str = "the input here is unknown after an earlier error";

/// The value of `loop_count` in a loop nest that cannot be counted before it is unrolled.
pub const UNCOUNTED: &str = "<uncounted>";

/// The message of an error that only follows from one already reported (a name whose
/// value failed): it is counted, so the layer fails, but never shown.
pub const FOLLOW_ON: &str = "\u{1}follow-on error";

/// Evaluates `expr` under `env`.
pub fn eval(expr: &Expr, env: &Env) -> syn::Result<Value> {
    match expr {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i
                .base10_parse::<i64>()
                .map(Value::Int)
                .map_err(|_| err(expr, "integer literal out of range")),
            Lit::Float(f) => f.base10_parse::<f64>().map(Value::Float),
            Lit::Bool(b) => Ok(Value::Bool(b.value)),
            _ => Err(err(expr, "expected a number, `true`/`false`, or a keyword such as `same`")),
        },
        Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            let name = p.path.segments[0].ident.to_string();
            if let Some(v) = env.vars.get(&name) {
                match v {
                    Value::Word(w) if w == crate::lower::POISONED => Err(err(expr, FOLLOW_ON)),
                    Value::Word(w) if w == UNCOUNTED => Err(err(expr, "`loop_count` is unknown here: a range or `if` condition of this loop nest depends on the input's shape (or the nest passes the iteration cap), so it cannot be counted before it is unrolled; compute the total from the values the ranges use")),
                    v => Ok(v.clone()),
                }
            } else if WORDS.contains(&name.as_str()) {
                Ok(Value::Word(name))
            } else if SHAPE_NAMES.contains(&name.as_str()) {
                Err(err(expr, format!("`{name}` has no value here: `in_channels`, `in_height` and `in_width` name the dims of an image input (C, H, W) and `in_features` those of a flat input (F), and {}", match (env.vars.contains_key("in_channels"), env.vars.contains_key("in_features")) {
                    (true, _) => "the input here is an image: use `in_channels`, `in_height` or `in_width`",
                    (_, true) => "the input here is a feature vector: use `in_features`",
                    _ => UNKNOWN_SHAPE,
                })))
            } else {
                let known = env
                    .vars
                    .keys()
                    .map(String::as_str)
                    .chain(WORDS.iter().copied())
                    .chain(SHAPE_NAMES);
                Err(err(expr, format!("unknown name `{name}`{}", did_you_mean(&name, known))))
            }
        }
        Expr::Paren(p) => eval(&p.expr, env),
        Expr::Group(g) => eval(&g.expr, env),
        Expr::Tuple(t) => Ok(Value::Tuple(t.elems.iter().map(|e| eval(e, env)).collect::<syn::Result<_>>()?)),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match eval(&u.expr, env)? {
            Value::Int(i) => i
                .checked_neg()
                .map(Value::Int)
                .ok_or_else(|| err(expr, format!("integer overflow: `-({i})` does not fit in 64 bits"))),
            Value::Float(x) => Ok(Value::Float(-x)),
            v => Err(err(expr, format!("cannot negate `{v}`"))),
        },
        Expr::Unary(u) if matches!(u.op, UnOp::Not(_)) => match eval(&u.expr, env)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            v => Err(err(expr, format!("`!` needs `true` or `false`, found `{v}`"))),
        },
        Expr::Binary(b) if matches!(b.op, BinOp::And(_) | BinOp::Or(_)) => {
            let truth = |e: &Expr| match eval(e, env)? {
                Value::Bool(v) => Ok(v),
                v => Err(err(e, format!("`&&` and `||` need `true` or `false`, found `{v}`"))),
            };
            let l = truth(&b.left)?;
            Ok(Value::Bool(match b.op {
                BinOp::And(_) => l && truth(&b.right)?,
                _ => l || truth(&b.right)?,
            }))
        }
        Expr::Binary(b)
            if matches!(
                b.op,
                BinOp::Eq(_) | BinOp::Ne(_) | BinOp::Lt(_) | BinOp::Le(_) | BinOp::Gt(_) | BinOp::Ge(_)
            ) =>
        {
            let (l, r) = (eval(&b.left, env)?, eval(&b.right, env)?);
            compare(expr, &b.op, &l, &r).map(Value::Bool)
        }
        Expr::Binary(b) => {
            let l = eval(&b.left, env)?;
            let r = eval(&b.right, env)?;
            arith(expr, &b.op, l, r)
        }
        Expr::Call(c) => call(expr, c, env),
        Expr::If(i) => {
            let cond = match eval(&i.cond, env)? {
                Value::Bool(b) => b,
                v => return Err(err(&i.cond, format!("an `if` condition is `true` or `false`, found `{v}`"))),
            };
            let Some((_, otherwise)) = &i.else_branch else {
                return Err(err(expr, "a conditional value needs an `else`: `if cond { a } else { b }`"));
            };
            if cond {
                block_value(&i.then_branch, expr, env)
            } else {
                match &**otherwise {
                    Expr::Block(b) => block_value(&b.block, expr, env),
                    other => eval(other, env),
                }
            }
        }
        Expr::Block(b) => block_value(&b.block, expr, env),
        _ => Err(err(
            expr,
            "unsupported expression: use numbers, `true`/`false`, keywords, names, tuples, + - * / %, comparisons, functions (min, max, round, floor, ceil, int, float, make_divisible) and `if c { a } else { b }`",
        )),
    }
}

/// The value of `{ expr }`, the arm of a conditional value.
fn block_value(block: &syn::Block, whole: &Expr, env: &Env) -> syn::Result<Value> {
    match block.stmts.as_slice() {
        [syn::Stmt::Expr(e, None)] => eval(e, env),
        _ => Err(err(
            whole,
            "each arm of a conditional value is one value: `if cond { a } else { b }`",
        )),
    }
}

/// How many arguments each of the [`FUNCTIONS`] takes (least, most).
fn arity(function: &str) -> (usize, usize) {
    match function {
        "min" | "max" => (2, usize::MAX),
        "make_divisible" => (2, 3),
        _ => (1, 1),
    }
}

/// The message for a call of `name`, not a function, with `args` arguments: the nearest
/// function that takes as many (a hint that would compile), and the functions.
pub fn unknown_function(name: &str, args: usize) -> String {
    let fits = FUNCTIONS.iter().copied().filter(|f| {
        let (lo, hi) = arity(f);
        (lo..=hi).contains(&args)
    });
    let mut hint = did_you_mean(name, fits);
    if hint.is_empty()
        && args >= 2
        && (name.contains("round") || name.contains("divisible") || name.contains("multiple"))
    {
        hint = "; to round to a multiple, write `make_divisible(value, divisor)`".to_string();
    }
    format!(
        "unknown function `{name}`{hint} (functions: {})",
        FUNCTIONS.join(", ")
    )
}

/// A call of one of the [`FUNCTIONS`].
fn call(expr: &Expr, c: &syn::ExprCall, env: &Env) -> syn::Result<Value> {
    let name = match &*c.func {
        Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            p.path.segments[0].ident.to_string()
        }
        f => return Err(err(
            f,
            "expected a function name: min, max, round, floor, ceil, int, float or make_divisible",
        )),
    };
    // Rule: only the built-in functions; suggest the nearest.
    if !FUNCTIONS.contains(&name.as_str()) {
        return Err(err(
            &c.func,
            format!(
                "unknown function `{name}`{} (functions: {})",
                did_you_mean(&name, FUNCTIONS.iter().copied()),
                FUNCTIONS.join(", ")
            ),
        ));
    }
    let args: Vec<Value> = c
        .args
        .iter()
        .map(|a| eval(a, env))
        .collect::<syn::Result<_>>()?;
    let number = |i: usize| -> syn::Result<f64> {
        as_f64(&args[i]).ok_or_else(|| {
            err(
                &c.args[i],
                format!("`{name}` takes numbers, found `{}`", args[i]),
            )
        })
    };
    let arity = |lo: usize, hi: usize, usage: &str| -> syn::Result<()> {
        if (lo..=hi).contains(&args.len()) {
            Ok(())
        } else {
            Err(err(
                expr,
                format!(
                    "`{name}` takes {usage}, found {} argument{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                ),
            ))
        }
    };
    // A float made an integer: it must be finite and fit in 64 bits.
    let to_int = |x: f64| -> syn::Result<Value> {
        if x.is_finite() && x.abs() < 9.0e18 {
            Ok(Value::Int(x as i64))
        } else {
            Err(err(
                expr,
                format!("`{name}` gives `{x}`, which is not an integer in 64 bits"),
            ))
        }
    };
    match name.as_str() {
        "min" | "max" => {
            arity(2, usize::MAX, "two or more numbers")?;
            let mut best = args[0].clone();
            number(0)?;
            for (i, v) in args.iter().enumerate().skip(1) {
                let x = number(i)?;
                let b = as_f64(&best).unwrap_or(x);
                let better = if name == "min" { x < b } else { x > b };
                if better {
                    best = v.clone();
                }
            }
            // Integers stay integers; one float makes the result a float.
            if args.iter().any(|v| matches!(v, Value::Float(_))) {
                best = Value::Float(as_f64(&best).unwrap_or(0.0));
            }
            Ok(best)
        }
        "round" | "floor" | "ceil" | "int" => {
            arity(1, 1, "one number")?;
            if let Value::Int(i) = args[0] {
                return Ok(Value::Int(i));
            }
            let x = number(0)?;
            to_int(match name.as_str() {
                "round" => x.round(),
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                _ => x.trunc(),
            })
        }
        "float" => {
            arity(1, 1, "one number")?;
            Ok(Value::Float(number(0)?))
        }
        _ => {
            arity(2, 3, "(value, divisor) or (value, divisor, min_value)")?;
            let (v, d) = (number(0)?, number(1)?);
            let Value::Int(divisor) = args[1] else {
                return Err(err(
                    &c.args[1],
                    format!(
                        "the divisor of `make_divisible` is a positive integer, found `{}`",
                        args[1]
                    ),
                ));
            };
            if divisor < 1 {
                return Err(err(
                    &c.args[1],
                    format!(
                        "the divisor of `make_divisible` is a positive integer, found `{divisor}`"
                    ),
                ));
            }
            let min_value = if args.len() == 3 { number(2)? } else { d };
            // torchvision's `_make_divisible`: the nearest multiple, at least `min_value`,
            // and never more than 10% below `v`.
            let mut new_v = min_value.max(((v + d / 2.0).trunc() / d).floor() * d);
            if new_v < 0.9 * v {
                new_v += d;
            }
            to_int(new_v)
        }
    }
}

/// `l op r` for a comparison operator: numbers by value, words and booleans by equality.
fn compare(expr: &Expr, op: &BinOp, l: &Value, r: &Value) -> syn::Result<bool> {
    let ordering = match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        _ => match (as_f64(l), as_f64(r)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    if let Some(o) = ordering {
        return Ok(match op {
            BinOp::Eq(_) => o.is_eq(),
            BinOp::Ne(_) => o.is_ne(),
            BinOp::Lt(_) => o.is_lt(),
            BinOp::Le(_) => o.is_le(),
            BinOp::Gt(_) => o.is_gt(),
            _ => o.is_ge(),
        });
    }
    match (op, l, r) {
        (BinOp::Eq(_), Value::Word(a), Value::Word(b)) => Ok(a == b),
        (BinOp::Ne(_), Value::Word(a), Value::Word(b)) => Ok(a != b),
        (BinOp::Eq(_), Value::Bool(a), Value::Bool(b)) => Ok(a == b),
        (BinOp::Ne(_), Value::Bool(a), Value::Bool(b)) => Ok(a != b),
        _ => Err(err(expr, format!("cannot compare `{l}` with `{r}` this way: numbers compare with == != < <= > >=, words and booleans with == and !="))),
    }
}

fn arith(expr: &Expr, op: &BinOp, l: Value, r: Value) -> syn::Result<Value> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => {
            let v = match op {
                BinOp::Add(_) => a.checked_add(b),
                BinOp::Sub(_) => a.checked_sub(b),
                BinOp::Mul(_) => a.checked_mul(b),
                BinOp::Div(_) | BinOp::Rem(_) if b == 0 => {
                    return Err(err(expr, "division by zero"))
                }
                BinOp::Div(_) => a.checked_div(b),
                BinOp::Rem(_) => a.checked_rem(b),
                _ => return Err(err(expr, "unsupported operator: use + - * / %")),
            };
            v.map(Value::Int).ok_or_else(|| {
                err(
                    expr,
                    format!(
                        "integer overflow: `{a} {} {b}` does not fit in 64 bits",
                        op_text(op)
                    ),
                )
            })
        }
        (a, b) => {
            let (Some(x), Some(y)) = (as_f64(&a), as_f64(&b)) else {
                return Err(err(expr, format!("cannot compute with `{a}` and `{b}`")));
            };
            Ok(Value::Float(match op {
                BinOp::Add(_) => x + y,
                BinOp::Sub(_) => x - y,
                BinOp::Mul(_) => x * y,
                BinOp::Div(_) => x / y,
                _ => return Err(err(expr, "unsupported operator on floats: use + - * /")),
            }))
        }
    }
}

/// The operator as written, for messages.
fn op_text(op: &BinOp) -> &'static str {
    match op {
        BinOp::Add(_) => "+",
        BinOp::Sub(_) => "-",
        BinOp::Mul(_) => "*",
        BinOp::Div(_) => "/",
        BinOp::Rem(_) => "%",
        _ => "?",
    }
}

/// The value as a float, for integers and floats.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// Most iterations one model's `for` loops may unroll to, all loops together (a single range
/// longer than this is rejected before it is unrolled).
pub const MAX_ITERATIONS: usize = 100_000;

/// The values a `for` loop iterates: an array `[a, b, ...]` or an integer range. A range is
/// empty when its end is not past its start, as in Rust; a range of more than
/// [`MAX_ITERATIONS`] values is an error on the range (its length is computed without
/// overflow, so `0..=i64::MAX` and `-MAX..MAX` are errors too).
pub fn iterate(expr: &Expr, env: &Env) -> syn::Result<Vec<Value>> {
    match expr {
        Expr::Array(a) => a.elems.iter().map(|e| eval(e, env)).collect(),
        Expr::Paren(p) => iterate(&p.expr, env),
        Expr::Group(g) => iterate(&g.expr, env),
        Expr::Range(r) => {
            let bound = |e: &Option<Box<Expr>>| -> syn::Result<i64> {
                match e.as_deref().map(|e| eval(e, env)).transpose()? {
                    Some(Value::Int(i)) => Ok(i),
                    _ => Err(syn::Error::new_spanned(
                        expr,
                        "a loop range needs integer bounds on both sides, e.g. `1..=4`",
                    )),
                }
            };
            let (start, end) = (bound(&r.start)?, bound(&r.end)?);
            let closed = matches!(r.limits, syn::RangeLimits::Closed(_));
            // In i128 nothing here can overflow: |end - start| + 1 < 2^65.
            let len = (i128::from(end) - i128::from(start) + i128::from(closed)).max(0);
            if len > MAX_ITERATIONS as i128 {
                let dots = if closed { "..=" } else { ".." };
                return Err(syn::Error::new_spanned(
                    expr,
                    format!(
                        "the loop range `{start}{dots}{end}` has {len} iterations; a model unrolls at most {} loop iterations in all",
                        thousands(MAX_ITERATIONS)
                    ),
                ));
            }
            // Every value lies between `start` and `end`, so it fits in an i64.
            Ok((0..len)
                .map(|k| Value::Int((i128::from(start) + k) as i64))
                .collect())
        }
        _ => Err(err(
            expr,
            "a loop iterates an array `[a, b, ...]` or a range `a..b` / `a..=b`",
        )),
    }
}

/// `100000` -> `100,000`, for messages.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, env: &Env) -> syn::Result<Value> {
        eval(&syn::parse_str(src).unwrap(), env)
    }

    #[test]
    fn evaluates_arithmetic_and_bindings() {
        let env = Env::default().with("size", Value::Int(64));
        assert_eq!(ev("size * 2 + 1", &env).unwrap(), Value::Int(129));
        assert_eq!(ev("1.0 / 255.0", &env).unwrap(), Value::Float(1.0 / 255.0));
        assert_eq!(
            ev("(size, 3)", &env).unwrap(),
            Value::Tuple(vec![Value::Int(64), Value::Int(3)])
        );
        assert_eq!(ev("same", &env).unwrap(), Value::Word("same".into()));
        assert_eq!(ev("-size", &env).unwrap(), Value::Int(-64));
    }

    #[test]
    fn rejects_unknown_names_with_hint() {
        let env = Env::default().with("size", Value::Int(64));
        let e = ev("sise", &env).unwrap_err().to_string();
        assert!(e.contains("did you mean `size`"), "{e}");
        assert!(ev("1 / 0", &env).is_err());
        assert!(ev("9223372036854775807 + 1", &env).is_err());
    }

    #[test]
    fn arithmetic_overflow_is_an_error_not_a_panic() {
        let env = Env::default().with("min", Value::Int(i64::MIN));
        for src in [
            "-min",
            "min - 1",
            "min * -1",
            "min / -1",
            "min % -1",
            "5 % 0",
            "9223372036854775807 * 2",
            "-9223372036854775807 - 2",
        ] {
            let e = ev(src, &env).unwrap_err().to_string();
            assert!(
                e.contains("overflow") || e.contains("division by zero"),
                "{src}: {e}"
            );
        }
        assert_eq!(
            ev("-9223372036854775807 - 1", &env).unwrap(),
            Value::Int(i64::MIN)
        );
        assert_eq!(ev("1.0 / 0.0", &env).unwrap(), Value::Float(f64::INFINITY));
    }

    fn it(src: &str) -> syn::Result<Vec<Value>> {
        iterate(&syn::parse_str(src).unwrap(), &Env::default())
    }

    #[test]
    fn huge_or_overflowing_ranges_are_errors() {
        for src in [
            "0..=9223372036854775807",
            "-9223372036854775807..9223372036854775807",
            "(-9223372036854775807 - 1)..=9223372036854775807",
            "0..100001",
        ] {
            let e = it(src).unwrap_err().to_string();
            assert!(e.contains("iterations"), "{src}: {e}");
        }
        assert_eq!(it("0..100000").unwrap().len(), MAX_ITERATIONS);
        assert_eq!(
            it("9223372036854775806..=9223372036854775807").unwrap(),
            vec![Value::Int(i64::MAX - 1), Value::Int(i64::MAX)]
        );
        assert!(it("5..2").unwrap().is_empty());
        assert!(it("5..5").unwrap().is_empty());
        assert_eq!(it("5..=5").unwrap(), vec![Value::Int(5)]);
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn iterates_arrays_and_ranges() {
        let env = Env::default();
        let r = iterate(&syn::parse_str("1..=3").unwrap(), &env).unwrap();
        assert_eq!(r, vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
        let a = iterate(&syn::parse_str("[32, 64]").unwrap(), &env).unwrap();
        assert_eq!(a.len(), 2);
    }
}
