//! Builders of the layers that hold other layers or models: `residual`, the merges
//! (`concat`, `add`, `multiply`) and their branches, `model(...)`, and `assert_shape`.

use super::args::{shape_of, Args};
use super::{node, node_at, Lowerer, Pending};
use crate::ast::{ArgValue, Branch, LayerCall, Stmt};
use crate::catalog::{self, Kind};
use crate::ir::{fmt_shape, path_text, Info, Merge, Node, Op, Project};
use crate::value::{eval, Env, Value};
use std::collections::BTreeMap;
use syn::spanned::Spanned;
use syn::Expr;

impl Lowerer<'_> {
    pub(super) fn model_call(&mut self, call: &LayerCall, args: &Args, env: &Env) -> Node {
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

    pub(super) fn nested(
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
            auto: None,
        }
    }

    pub(super) fn assert_shape(&mut self, call: &LayerCall, env: &Env) -> Node {
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
    pub(super) fn merge(&mut self, call: &LayerCall, merge: Merge, env: &Env) -> Op {
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
                Stmt::Layer(l)
                    if catalog::lookup(&l.kind.to_string()).map(|s| s.kind)
                        == Some(Kind::Identity)
                        && l.args.is_empty()
                        && l.body.is_none() =>
                {
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
                    // A single layer is the branch itself, named by its label or `branch{n}`
                    // (PyTorch's `self.branch1 = BasicConv2d(...)`).
                    let Some(mut p) = self.call(l, env) else {
                        continue;
                    };
                    p.prefix = "branch".into();
                    p
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
                // Rule: a merge's body holds branches only.
                Stmt::Defaults(d) => {
                    self.errors.push(
                        d.span,
                        format!("`defaults` cannot stand among the branches of `{word}`; write it before the `{word}` or inside a branch's `{{ layers }}`"),
                    );
                    bad = true;
                    continue;
                }
                Stmt::Let(l) => {
                    self.errors.push(
                        l.name.span(),
                        format!("`let` cannot stand among the branches of `{word}`; write it before the `{word}` or inside a branch's `{{ layers }}`"),
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
        let branches = self.name(pending, false);
        if bad {
            return Op::Poison;
        }
        Op::Merge { merge, branches }
    }

    /// Lowers `sequential { layers }`: a scope whose layers without a label are named by
    /// their position (`0`, `1`, ...), as PyTorch's `nn.Sequential` names its children.
    pub(super) fn sequential(&mut self, call: &LayerCall, env: &Env) -> Op {
        // Rule: a sequential has a body of layers.
        let Some(body) = &call.body else {
            self.errors.push(
                call.kind.span(),
                "`sequential` needs a body: sequential { layers }",
            );
            return Op::Poison;
        };
        Op::Block {
            body: self.body_named(body, env, true),
        }
    }

    pub(super) fn residual(&mut self, call: &LayerCall, args: &Args, env: &Env) -> Op {
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
            // The projection is named `project` unless labelled (`downsample: { ... }`).
            Some(ArgValue::Layer(l)) => match self.call(l, env) {
                Some(mut p) => {
                    if p.label.is_none() {
                        p.label = Some(syn::Ident::new("project", l.kind.span()));
                    }
                    match self.name(vec![p], false).pop() {
                        Some(n) => Project::Node(Box::new(n)),
                        None => Project::Identity,
                    }
                }
                None => Project::Identity,
            },
            Some(ArgValue::Layers(label, b)) => {
                let body = self.body(b, env);
                let mut n = node_at(b.span, "projection", BTreeMap::new(), Op::Block { body });
                n.name = label
                    .as_ref()
                    .map_or_else(|| "project".into(), crate::ast::label_name);
                Project::Node(Box::new(n))
            }
        };
        let body = self.body(body, env);
        Op::Residual { project, body }
    }
}
