//! Shape inference and the shape rules: walks each model's layers from its input shape,
//! records every layer's output shape, padding, parameter count and FLOPs, and reports each
//! mistake once on the token that caused it (after an error the shape is unknown, so later
//! layers are not checked against it: no cascade). The rules of the structural layers
//! (residual blocks, merges, skips, blocks, nested models, shape assertions) are here; each
//! plain layer's own rule is in its file of `layers`, called through `Primitive::infer`.

use crate::error::Errors;
use crate::ir::{fmt_shape, path, Info, Merge, Model, Node, Op, Project};
use crate::layers::conv::Conv2d;
use crate::layers::{self, At};
use std::collections::BTreeMap;

/// Infers `model`'s shapes; returns its output shape when everything checked out.
pub fn infer_model(model: &mut Model, errors: &Errors) -> Option<Vec<usize>> {
    let before = errors.len();
    let input = model.input.clone();
    let output = seq(&mut model.body, input, "", errors);
    if let (Some(out), Some((declared, span))) = (&output, &model.output) {
        // Rule: the declared output is what the layers produce.
        if out != declared {
            errors.push(
                *span,
                format!(
                    "`{}` produces {} but declares {}; change the declaration to -> {} or the last layers",
                    model.name,
                    fmt_shape(out),
                    fmt_shape(declared),
                    fmt_shape(out)
                ),
            );
        }
    }
    let params = model
        .body
        .iter()
        .try_fold(0usize, |acc, n| acc.checked_add(n.info.params));
    // Rule: a model's parameter count fits the generated constants.
    if params.is_none_or(|p| p > MAX_VALUES) {
        errors.push(
            model.name.span(),
            format!("`{}` has more than 2^40 parameters", model.name),
        );
    }
    if errors.len() == before {
        output
    } else {
        None
    }
}

/// Reports layers whose paths (so parameter paths and field names) are equal: layers labelled
/// `_` name their layers in the enclosing scope, where two may meet. Run on a model without
/// other errors (a duplicate label is reported once, by lowering). Returns whether all
/// paths differ.
pub fn unique_paths(body: &[Node], errors: &Errors) -> bool {
    let before = errors.len();
    fn walk<'n>(
        nodes: &'n [Node],
        scope: &str,
        seen: &mut BTreeMap<String, &'n Node>,
        errors: &Errors,
    ) {
        for n in nodes {
            let at = path(scope, &n.name);
            match &n.op {
                Op::Layer(_) | Op::Nested { .. } => {
                    // Rule: no two layers of a model have the same path.
                    if let Some(first) = seen.get(&at) {
                        errors.push(
                            n.span,
                            format!(
                                "`{}` has the path `{at}` of an earlier `{}`, so their parameters would have the same names (`{at}.weight`, ...); label one of them differently (layers of a `_:` layer are named in the enclosing scope)",
                                n.kind, first.kind
                            ),
                        );
                    } else {
                        seen.insert(at, n);
                    }
                }
                Op::Block { body } => walk(body, &at, seen, errors),
                Op::Residual { project, body } => {
                    walk(body, &at, seen, errors);
                    if let Project::Node(p) = project {
                        walk(std::slice::from_ref(&**p), &at, seen, errors);
                    }
                }
                Op::Merge { branches, .. } => walk(branches, &at, seen, errors),
                Op::Poison | Op::AssertShape(_) | Op::Skip { .. } => {}
            }
        }
    }
    walk(body, "", &mut BTreeMap::new(), errors);
    errors.len() == before
}

/// Sums children's costs into a composite node's info.
fn add_cost(info: &mut Info, child: &Info) {
    info.params = info.params.saturating_add(child.params);
    info.non_trainable = info.non_trainable.saturating_add(child.non_trainable);
    info.flops = info.flops.saturating_add(child.flops);
    info.nested.extend(child.nested.iter().cloned());
}

fn seq(
    nodes: &mut [Node],
    mut shape: Option<Vec<usize>>,
    scope: &str,
    errors: &Errors,
) -> Option<Vec<usize>> {
    for node in nodes.iter_mut() {
        shape = match shape {
            Some(s) => {
                node.info.input = s.clone();
                let before = errors.len();
                let out = layer(node, &s, scope, errors).filter(|o| fits(node, o, errors));
                if let Some(o) = &out {
                    node.info.output = o.clone();
                }
                if let Some(note) = &node.context {
                    errors.annotate_since(before, note);
                }
                out
            }
            // Unknown after an earlier error: later layers are not checked against it.
            None => None,
        };
    }
    shape
}

/// Most values one example's activation may have after any layer: keeps every later shape
/// computation (channels times multipliers, flattening, parameter counts) far from overflow.
pub const MAX_VALUES: usize = 1 << 40;

/// Whether `shape`, the output of `node`, stays within [`MAX_VALUES`]; reports it otherwise.
fn fits(node: &Node, shape: &[usize], errors: &Errors) -> bool {
    let values = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    // Rule: an activation has at most MAX_VALUES values per example.
    if values.is_some_and(|v| v <= MAX_VALUES) {
        return true;
    }
    errors.push(
        node.span,
        format!(
            "`{}` outputs {}, more than 2^40 values per example; use fewer channels or a smaller input",
            node.kind,
            fmt_shape(shape)
        ),
    );
    false
}

/// The output shape of `node` on input `s`, without reporting errors or changing `node`:
/// lowering uses it to bind the shape names (`in_channels`, ...) for the next layer.
pub fn probe(node: &Node, s: &[usize]) -> Option<Vec<usize>> {
    let mut copy = node.clone();
    let out = layer(&mut copy, s, "", &Errors::default())?;
    let values = out.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    values.is_some_and(|v| v <= MAX_VALUES).then_some(out)
}

fn layer(node: &mut Node, s: &[usize], scope: &str, errors: &Errors) -> Option<Vec<usize>> {
    let Node {
        name,
        kind,
        span,
        arg_spans,
        op,
        info,
        ..
    } = node;
    let at = At {
        who: format!("`{kind}` (`{}`)", path(scope, name)),
        span: *span,
        arg_spans,
    };
    let me = &at.who;
    match op {
        Op::Poison => None,
        Op::Layer(primitive) => primitive.infer(&at, s, info, errors),
        Op::AssertShape(expected) => {
            // Rule: a shape assertion holds.
            if expected.as_slice() != s {
                errors.push(
                    at.arg("shape"),
                    format!(
                        "shape assertion failed: the shape here is {}, not {}",
                        fmt_shape(s),
                        fmt_shape(expected)
                    ),
                );
                return None;
            }
            Some(s.to_vec())
        }
        Op::Block { body } => {
            let inner = path(scope, name);
            let out = seq(body, Some(s.to_vec()), &inner, errors);
            for child in body.iter() {
                add_cost(info, &child.info);
            }
            out
        }
        Op::Nested {
            path: model_path,
            input,
            output,
        } => {
            if let Some(input) = input {
                // Rule: a nested model receives the shape it was declared for.
                if input.as_slice() != s {
                    errors.push(
                        at.span,
                        format!(
                            "{me} expects input {} but receives {} here",
                            fmt_shape(input),
                            fmt_shape(s)
                        ),
                    );
                    return None;
                }
            }
            info.nested = vec![model_path.clone()];
            Some(output.clone())
        }
        Op::Skip { shape, .. } => Some(shape.clone()),
        Op::Merge { merge, branches } => {
            let inner = path(scope, name);
            let mut outs = Vec::with_capacity(branches.len());
            for branch in branches.iter_mut() {
                branch.info.input = s.to_vec();
                let before = errors.len();
                let out = layer(branch, s, &inner, errors);
                if let Some(note) = &branch.context {
                    errors.annotate_since(before, note);
                }
                if let Some(o) = &out {
                    branch.info.output = o.clone();
                }
                add_cost(info, &branch.info);
                outs.push(out);
            }
            if outs.iter().any(Option::is_none) {
                return None;
            }
            let outs: Vec<Vec<usize>> = outs.into_iter().flatten().collect();
            merged(*merge, &inner, s, branches, &outs, errors)
        }
        Op::Residual { project, body } => {
            let inner = path(scope, name);
            let body_out = seq(body, Some(s.to_vec()), &inner, errors)?;
            for child in body.iter() {
                add_cost(info, &child.info);
            }
            let ok = match project {
                Project::Identity => {
                    // Rule: without a projection, the body keeps the shape.
                    if body_out != s {
                        errors.push(
                            at.span,
                            format!("residual block `{inner}`: {}", mismatch_hint(s, &body_out)),
                        );
                        false
                    } else {
                        true
                    }
                }
                Project::Auto => match auto_projection(s, &body_out) {
                    None => {
                        *project = Project::Identity;
                        true
                    }
                    Some(Ok(conv)) => {
                        let mut n = Node {
                            name: "project".into(),
                            kind: "conv2d".into(),
                            span: at.span,
                            arg_spans: BTreeMap::new(),
                            op: conv,
                            info: Info::default(),
                            context: None,
                            save: None,
                            auto: None,
                        };
                        n.info.input = s.to_vec();
                        let out = layer(&mut n, s, &inner, errors);
                        n.info.output = out.unwrap_or_default();
                        add_cost(info, &n.info);
                        *project = Project::Node(Box::new(n));
                        true
                    }
                    // Rule: `project = auto` needs a strided 1x1 convolution to exist.
                    Some(Err(())) => {
                        errors.push(
                            at.span,
                            format!(
                                "residual block `{inner}`: `project = auto` cannot map {} to {} with a strided 1x1 convolution; write the projection explicitly",
                                fmt_shape(s),
                                fmt_shape(&body_out)
                            ),
                        );
                        false
                    }
                },
                Project::Node(p) => {
                    p.info.input = s.to_vec();
                    match layer(p, s, &inner, errors) {
                        Some(pout) => {
                            p.info.output = pout.clone();
                            add_cost(info, &p.info);
                            // Rule: the projection produces the body's output shape.
                            if pout != body_out {
                                let hint = match suggest_projection(s, &body_out) {
                                    Some(h) => format!("; use `{h}`"),
                                    None => String::new(),
                                };
                                errors.push(
                                    p.span,
                                    format!(
                                        "residual block `{inner}`: the projection outputs {} but the body outputs {}, so they cannot be added{hint}",
                                        fmt_shape(&pout),
                                        fmt_shape(&body_out)
                                    ),
                                );
                                false
                            } else {
                                true
                            }
                        }
                        None => false,
                    }
                }
            };
            ok.then_some(body_out)
        }
    }
}

/// The smallest stride of a strided 1x1 convolution that maps `input` onto `output`, if any
/// (at most the larger input side).
fn projection_stride(input: &[usize], output: &[usize]) -> Option<usize> {
    // The strides `s` with `(n - 1) / s + 1 == out` form the interval `lo..=hi`.
    let strides = |n: usize, out: usize| -> Option<(usize, usize)> {
        if n == 0 || out == 0 {
            return None;
        }
        let lo = (n - 1) / out + 1;
        let hi = if out == 1 {
            usize::MAX
        } else {
            (n - 1) / (out - 1)
        };
        (lo <= hi).then_some((lo, hi))
    };
    match (input, output) {
        ([_, h, w], [_, oh, ow]) => {
            let (lo_h, hi_h) = strides(*h, *oh)?;
            let (lo_w, hi_w) = strides(*w, *ow)?;
            let s = lo_h.max(lo_w);
            (s <= hi_h.min(hi_w) && s <= (*h).max(*w)).then_some(s)
        }
        _ => None,
    }
}

fn suggest_projection(input: &[usize], output: &[usize]) -> Option<String> {
    let s = projection_stride(input, output)?;
    Some(if s == 1 {
        format!("conv2d({}, 1)", output[0])
    } else {
        format!("conv2d({}, 1, stride = {s})", output[0])
    })
}

/// `None` when no projection is needed; `Some(Err)` when no 1x1 convolution fits.
fn auto_projection(input: &[usize], output: &[usize]) -> Option<Result<Op, ()>> {
    if input == output {
        return None;
    }
    let Some(stride) = projection_stride(input, output) else {
        return Some(Err(()));
    };
    Some(Ok(layers::op(Conv2d::projection(output[0], stride))))
}

/// The output of merge `me` (a path, on input `input`) given its branches' outputs, or
/// errors on each branch that does not fit the ones before it.
fn merged(
    merge: Merge,
    me: &str,
    input: &[usize],
    branches: &[Node],
    outs: &[Vec<usize>],
    errors: &Errors,
) -> Option<Vec<usize>> {
    let word = merge.keyword();
    // A skip branch is shown as written (`@down1`).
    let shown = |n: &Node| match &n.op {
        Op::Skip { .. } => n.kind.clone(),
        _ if n.name.is_empty() => "_".into(),
        _ => n.name.clone(),
    };
    let (first, first_out) = (&shown(&branches[0]), &outs[0]);
    let mut acc = first_out.clone();
    let mut ok = true;
    for (i, (branch, out)) in branches.iter().zip(outs).enumerate().skip(1) {
        let b = &shown(branch);
        // An `identity` before this branch: the merge's input, which a projection can replace.
        let identity_before = branches[..i].iter().any(is_identity);
        let problem = match merge {
            // Rule: concatenated branches agree on every dim but channels (features).
            Merge::Concat => {
                if out.len() != acc.len() {
                    let fix = if out.len() == 3 {
                        flatten_fix(branch, b, out)
                    } else {
                        flatten_fix(&branches[0], first, first_out)
                    };
                    let fix = fix.map(|f| format!(", so {f}")).unwrap_or_default();
                    Some(format!("branch `{b}` outputs {} but branch `{first}` outputs {}; concatenated branches must both be images (C, H, W) or both feature vectors{fix}", fmt_shape(out), fmt_shape(first_out)))
                } else if out.get(1..) != acc.get(1..) {
                    let size = |s: &[usize]| {
                        s[1..].iter().map(usize::to_string).collect::<Vec<_>>().join(" x ")
                    };
                    let fix = if is_identity(branch) {
                        format!(
                            "and `identity` is the merge's input, which keeps {}, so make the branches before it keep {} (stride 1, `padding = same`)",
                            size(out),
                            size(out)
                        )
                    } else {
                        match branch.op {
                            Op::Skip { .. } => format!(
                                "so make the branches before it output {} (e.g. with `upsample2d`) to match `{b}`",
                                size(out)
                            ),
                            _ if identity_before => format!(
                                "so make `{b}` keep {} (stride 1, `padding = same`), as `identity` cannot be resized",
                                size(&acc)
                            ),
                            _ => format!(
                                "so make `{b}` keep {} (stride 1, `padding = same`) or resize the other branches",
                                size(&acc)
                            ),
                        }
                    };
                    Some(format!(
                        "branch `{b}` outputs {} but branch `{first}` outputs {}; concatenation along channels needs the same height and width, {fix}",
                        fmt_shape(out),
                        fmt_shape(first_out),
                    ))
                } else {
                    acc[0] = acc[0].saturating_add(out[0]);
                    None
                }
            }
            // Rule: added branches have equal shapes.
            Merge::Add => (out != &acc).then(|| {
                let fix = add_fix(input, branch, b, out, &acc, identity_before);
                format!(
                    "branch `{b}` outputs {} but branch `{first}` outputs {} ({}); added branches need the same shape, so {fix}",
                    fmt_shape(out),
                    fmt_shape(first_out),
                    differences(out, &acc)
                )
            }),
            // Rule: multiplied branches have C, H and W each equal or 1 (a per-channel gate
            // (C, 1, 1), a spatial gate (1, H, W), as PyTorch broadcasts them).
            Merge::Multiply => {
                let earlier = if acc == *first_out {
                    format!("branch `{first}` outputs {}", fmt_shape(first_out))
                } else {
                    format!("the branches before it combine to {}", fmt_shape(&acc))
                };
                if out.len() != acc.len() {
                    Some(format!("branch `{b}` outputs {} but {earlier}; multiplied branches must both be images (C, H, W) or both feature vectors", fmt_shape(out)))
                } else if out[0] != acc[0] && out[0] != 1 && acc[0] != 1 {
                    Some(format!(
                        "branch `{b}` outputs {} but {earlier}; a gate multiplies channel by channel, so it needs {} channels (or 1, a spatial gate): {}",
                        fmt_shape(out),
                        acc[0],
                        end_with(branch, b, acc[0], out[0])
                    ))
                } else if out.iter().zip(&acc).skip(1).any(|(o, a)| o != a && *o != 1 && *a != 1) {
                    Some(format!(
                        "branch `{b}` outputs {} but {earlier}; height and width must be equal or 1 to broadcast, so pool the gate to 1 x 1 with `global_avg_pool2d(keepdims = true)`",
                        fmt_shape(out)
                    ))
                } else {
                    for (a, o) in acc.iter_mut().zip(out) {
                        *a = (*a).max(*o);
                    }
                    None
                }
            }
        };
        if let Some(problem) = problem {
            errors.push(branch.span, format!("{word} `{me}`: {problem}"));
            ok = false;
        }
    }
    ok.then_some(acc)
}

/// Whether `branch` is `identity`: the merge's input itself, which nothing inside the merge
/// can change.
fn is_identity(branch: &Node) -> bool {
    branch.kind == "identity" && matches!(&branch.op, Op::Block { body } if body.is_empty())
}

/// How the dims of `out` differ from `want`'s: "channels 64 vs 32, 4 x 4 vs 8 x 8".
fn differences(out: &[usize], want: &[usize]) -> String {
    let mut what = Vec::new();
    if out.len() != want.len() {
        return "an image and a feature vector".into();
    }
    if out[0] != want[0] {
        let dim = if out.len() == 1 {
            "features"
        } else {
            "channels"
        };
        what.push(format!("{dim} {} vs {}", out[0], want[0]));
    }
    if out.get(1..) != want.get(1..) {
        let size = |s: &[usize]| {
            s[1..]
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" x ")
        };
        what.push(format!("size {} vs {}", size(out), size(want)));
    }
    what.join(", ")
}

/// The fix of an `add` whose branch `shown` outputs `out` where the branches before it
/// output `acc`, on merge input `input`. An `identity` cannot change, so the fix replaces
/// it with a projection (ResNet's downsample) or changes the other branches.
fn add_fix(
    input: &[usize],
    branch: &Node,
    shown: &str,
    out: &[usize],
    acc: &[usize],
    identity_before: bool,
) -> String {
    let same_rank = out.len() == acc.len();
    if is_identity(branch) {
        return match same_rank.then(|| suggest_projection(input, acc)).flatten() {
            Some(p) => format!(
                "replace `identity` (the merge's input, which cannot change) with the projection `{{ {p} }}`, or make the branches before it output {}",
                fmt_shape(input)
            ),
            None => format!(
                "make the branches before it output {} (`identity` is the merge's input, which cannot change)",
                fmt_shape(input)
            ),
        };
    }
    let mut fix = if same_rank && out.get(1..) == acc.get(1..) {
        end_with(branch, shown, acc[0], out[0])
    } else {
        match branch.op {
            Op::Skip { .. } => format!("make the branches before it output {}", fmt_shape(out)),
            _ if same_rank && out[0] != acc[0] => format!(
                "make `{shown}` output {}: keep the size (stride 1, `padding = same`) and end it with {} channels",
                fmt_shape(acc),
                acc[0]
            ),
            _ => format!(
                "make `{shown}` keep the spatial size (stride 1, `padding = same`)"
            ),
        }
    };
    if identity_before && *acc == *input {
        if let Some(p) = suggest_projection(input, out) {
            fix.push_str(&format!(
                ", or replace `identity` with the projection `{{ {p} }}`"
            ));
        }
    }
    fix
}

/// How image branch `shown` becomes a feature vector to concatenate with flat ones:
/// `flatten` or global pooling at its end (replacing it, for `identity`); `None` for a skip,
/// whose activation is fixed.
fn flatten_fix(branch: &Node, shown: &str, out: &[usize]) -> Option<String> {
    let (c, all) = (out[0], out.iter().product::<usize>());
    let with = format!("`flatten` ({all} features) or `global_avg_pool2d` ({c} features)");
    match branch.op {
        Op::Skip { .. } => None,
        _ if is_identity(branch) => Some(format!("replace `identity` with {with}")),
        _ => Some(format!("end `{shown}` with {with}")),
    }
}

/// How branch `shown` gets `want` channels: a 1x1 convolution at its end, or, for a skip
/// or `identity` (whose activation is fixed), the branches before it matching its `has`
/// channels.
fn end_with(branch: &Node, shown: &str, want: usize, has: usize) -> String {
    match branch.op {
        Op::Skip { .. } => format!("make the branches before it output {has} channels"),
        _ if is_identity(branch) => format!(
            "make the branches before it output {has} channels (`identity` is the merge's input, which cannot change)"
        ),
        _ => format!("end `{shown}` with `conv2d({want}, 1)`"),
    }
}

fn mismatch_hint(input: &[usize], out: &[usize]) -> String {
    let mut what = Vec::new();
    if input.first() != out.first() {
        what.push(format!(
            "channels {} vs {}",
            out.first().unwrap_or(&0),
            input.first().unwrap_or(&0)
        ));
    }
    if input.get(1..) != out.get(1..) {
        what.push("spatial size differs".to_string());
    }
    let fix = match suggest_projection(input, out) {
        Some(h) => format!("add `project = auto` or `project = {h}`"),
        None => "make the body keep the shape, or give an explicit projection".to_string(),
    };
    format!(
        "the body outputs {} but the block's input is {} ({}), so they cannot be added; {fix}",
        fmt_shape(out),
        fmt_shape(input),
        what.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition the closed form replaces: a search over every stride.
    fn searched(input: &[usize], output: &[usize]) -> Option<usize> {
        match (input, output) {
            ([_, h, w], [_, oh, ow]) => {
                (1..=(*h).max(*w)).find(|s| (h - 1) / s + 1 == *oh && (w - 1) / s + 1 == *ow)
            }
            _ => None,
        }
    }

    #[test]
    fn projection_stride_matches_the_search() {
        for h in 1..40 {
            for w in [1, 2, 7, h, 33] {
                for oh in 0..h + 2 {
                    for ow in 0..w + 2 {
                        let (i, o) = ([4, h, w], [8, oh, ow]);
                        assert_eq!(
                            projection_stride(&i, &o),
                            searched(&i, &o),
                            "{i:?} -> {o:?}"
                        );
                    }
                }
            }
        }
        // Huge sides are answered at once, without a search.
        assert_eq!(
            projection_stride(&[1, 1 << 39, 1], &[1, 1, 1]),
            Some(1 << 39)
        );
    }
}
