//! The layers the DSL knows, each stated once: its typed kind, name, arguments (positional
//! order, defaults), the prefix of its default names, its usage text and its shape rule as
//! documented. Lowering reads defaults from here only (`lower::args`), and a test checks the
//! layer table of `docs/grammar.md` against this catalog, so neither can drift.
//!
//! Adding a plain layer touches four places: a [`Kind`] and its [`LayerSpec`] here (whose
//! `build` names its builder), one file of [`crate::layers`] holding everything else the
//! macro knows about it (its struct and builder, shape rule with its errors, parameter and
//! FLOP counts, and generated code), the one runtime layer that code calls, and a test; the
//! layer's row in `docs/grammar.md`'s table follows from the entry (the test below checks it).
//! `lower`, `infer` and `expand` need no change: they reach the layer through
//! [`crate::layers::Primitive`].

use crate::layers::{activation, conv, linear, norm, pool, regularization, scale, shape, Build};

/// A layer kind of the catalog: lowering matches on this, never on the written name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Conv2d,
    DepthwiseConv2d,
    SeparableConv2d,
    BatchNorm,
    Relu,
    Sigmoid,
    Tanh,
    Gelu,
    Silu,
    Softmax,
    LeakyRelu,
    MaxPool2d,
    AvgPool2d,
    GlobalAvgPool2d,
    GlobalMaxPool2d,
    Dropout,
    Flatten,
    Linear,
    Rescale,
    ZeroPad2d,
    Relu6,
    HardSigmoid,
    HardSwish,
    LayerNorm2d,
    GroupNorm,
    LayerScale,
    DropPath,
    Upsample2d,
    ConvTranspose2d,
    Reshape,
    Crop2d,
    CenterCrop,
    Residual,
    Concat,
    Add,
    Multiply,
    Identity,
    Model,
    AssertShape,
}

/// What an argument is when the call leaves it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgDefault {
    /// The call must give it.
    Required,
    /// This integer.
    Int(i64),
    /// This number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// This keyword (`valid`, `biased`, ...).
    Word(&'static str),
    /// The value of the named earlier argument (a pooling stride defaults to the window).
    SameAs(&'static str),
    /// Left out means something no value writes (a seed from the layer's path, no
    /// projection); the builder handles absence itself.
    Absent,
}

/// One argument of a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    /// Name, as written in `name = value`.
    pub name: &'static str,
    /// Its value when left out.
    pub default: ArgDefault,
}

/// How a layer is called and what it does to shapes.
pub struct LayerSpec {
    /// The typed kind.
    pub kind: Kind,
    /// Builds a plain layer's op from the call's typed arguments (its struct in `layers`);
    /// `None` for the composite layers, which lowering builds itself.
    pub build: Option<Build>,
    /// Name as written in a description.
    pub name: &'static str,
    /// Arguments that may be given by position, in order; the required ones first.
    pub positional: &'static [Param],
    /// Arguments that may only be given by name.
    pub named: &'static [Param],
    /// Default layer names are this prefix plus a counter (`conv1`, `conv2`).
    pub prefix: &'static str,
    /// The call's signature with the accepted forms, shown when arguments are wrong.
    pub usage: &'static str,
    /// The shape rule as `docs/grammar.md`'s layer table states it (`same` keeps the shape);
    /// empty for the composite layers, which have their own sections there.
    pub shape: &'static str,
}

impl LayerSpec {
    /// How many leading positional arguments are required.
    pub fn required(&self) -> usize {
        self.positional
            .iter()
            .take_while(|p| p.default == ArgDefault::Required)
            .count()
    }

    /// Every argument, positional ones first.
    pub fn params(&self) -> impl Iterator<Item = &'static Param> {
        self.positional.iter().chain(self.named)
    }

    /// The argument `name`, if the layer has it.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params().find(|p| p.name == name)
    }

    /// The signature with defaults, as the layer table of `docs/grammar.md` writes it:
    /// `conv2d(filters, kernel, stride = 1, ...)`, or the bare name without arguments.
    pub fn signature(&self) -> String {
        if self.positional.is_empty() && self.named.is_empty() {
            return self.name.to_string();
        }
        let args: Vec<String> = self
            .params()
            .map(|p| match p.default {
                ArgDefault::Required | ArgDefault::Absent => p.name.to_string(),
                ArgDefault::Int(n) => format!("{} = {n}", p.name),
                ArgDefault::Float(x) => format!("{} = {}", p.name, fmt_float(x)),
                ArgDefault::Bool(b) => format!("{} = {b}", p.name),
                ArgDefault::Word(w) | ArgDefault::SameAs(w) => format!("{} = {w}", p.name),
            })
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

/// `1e-3` for small numbers, `0.01` or `0.0` otherwise (as the docs write defaults).
fn fmt_float(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.01 {
        format!("{x:e}")
    } else {
        format!("{x:?}")
    }
}

const fn req(name: &'static str) -> Param {
    Param {
        name,
        default: ArgDefault::Required,
    }
}

const fn int(name: &'static str, n: i64) -> Param {
    Param {
        name,
        default: ArgDefault::Int(n),
    }
}

const fn float(name: &'static str, x: f64) -> Param {
    Param {
        name,
        default: ArgDefault::Float(x),
    }
}

const fn boolean(name: &'static str, b: bool) -> Param {
    Param {
        name,
        default: ArgDefault::Bool(b),
    }
}

const fn word(name: &'static str, w: &'static str) -> Param {
    Param {
        name,
        default: ArgDefault::Word(w),
    }
}

const fn absent(name: &'static str) -> Param {
    Param {
        name,
        default: ArgDefault::Absent,
    }
}

const STRIDE: Param = int("stride", 1);
const PADDING: Param = word("padding", "valid");
const DILATION: Param = int("dilation", 1);
const BIAS: Param = boolean("bias", true);
const CONV_NAMED: &[Param] = &[PADDING, DILATION, int("groups", 1), BIAS];
const DEPTHWISE_NAMED: &[Param] = &[int("multiplier", 1), PADDING, DILATION, BIAS];
const POOL_POSITIONAL: &[Param] = &[
    req("kernel"),
    Param {
        name: "stride",
        default: ArgDefault::SameAs("kernel"),
    },
];

/// Every layer kind.
pub const LAYERS: &[LayerSpec] = &[
    LayerSpec {
        kind: Kind::Conv2d,
        build: Some(conv::conv2d),
        name: "conv2d",
        positional: &[req("filters"), req("kernel"), STRIDE],
        named: CONV_NAMED,
        prefix: "conv",
        usage: "conv2d(filters, kernel, stride = 1, padding = valid | same | p | (ph, pw) | (top, bottom, left, right), dilation = 1, groups = 1, bias = true)",
        shape: "(C, H, W) -> (filters, H', W')",
    },
    LayerSpec {
        kind: Kind::DepthwiseConv2d,
        build: Some(conv::depthwise_conv2d),
        name: "depthwise_conv2d",
        positional: &[req("kernel"), STRIDE],
        named: DEPTHWISE_NAMED,
        prefix: "depthwise",
        usage: "depthwise_conv2d(kernel, stride = 1, multiplier = 1, padding = valid, dilation = 1, bias = true)",
        shape: "(C, H, W) -> (C * multiplier, H', W')",
    },
    LayerSpec {
        kind: Kind::SeparableConv2d,
        build: Some(conv::separable_conv2d),
        name: "separable_conv2d",
        positional: &[req("filters"), req("kernel"), STRIDE],
        named: DEPTHWISE_NAMED,
        prefix: "sep",
        usage: "separable_conv2d(filters, kernel, stride = 1, multiplier = 1, padding = valid, dilation = 1, bias = true)",
        shape: "(C, H, W) -> (filters, H', W')",
    },
    LayerSpec {
        kind: Kind::BatchNorm,
        build: Some(norm::batch_norm),
        name: "batch_norm",
        positional: &[],
        named: &[
            float("eps", 1e-3),
            float("momentum", 0.01),
            word("variance", "biased"),
        ],
        prefix: "bn",
        usage: "batch_norm(eps = 1e-3, momentum = 0.01, variance = biased | unbiased)",
        shape: "same",
    },
    simple(Kind::Relu, "relu", activation::relu),
    simple(Kind::Sigmoid, "sigmoid", activation::sigmoid),
    simple(Kind::Tanh, "tanh", activation::tanh),
    simple(Kind::Gelu, "gelu", activation::gelu),
    simple(Kind::Silu, "silu", activation::silu),
    simple(Kind::Softmax, "softmax", activation::softmax),
    LayerSpec {
        kind: Kind::LeakyRelu,
        build: Some(activation::leaky_relu),
        name: "leaky_relu",
        positional: &[float("alpha", 0.01)],
        named: &[],
        prefix: "leaky_relu",
        usage: "leaky_relu(alpha = 0.01)",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::MaxPool2d,
        build: Some(pool::max_pool2d),
        name: "max_pool2d",
        positional: POOL_POSITIONAL,
        named: &[PADDING],
        prefix: "maxpool",
        usage: "max_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right))",
        shape: "(C, H', W')",
    },
    LayerSpec {
        kind: Kind::AvgPool2d,
        build: Some(pool::avg_pool2d),
        name: "avg_pool2d",
        positional: POOL_POSITIONAL,
        named: &[PADDING],
        prefix: "avgpool",
        usage: "avg_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right))",
        shape: "(C, H', W')",
    },
    LayerSpec {
        kind: Kind::GlobalAvgPool2d,
        build: Some(pool::global_avg_pool2d),
        name: "global_avg_pool2d",
        positional: &[],
        named: &[boolean("keepdims", false)],
        prefix: "global_avg_pool",
        usage: "global_avg_pool2d(keepdims = false)",
        shape: "(C, H, W) -> (C), or (C, 1, 1) with keepdims = true",
    },
    LayerSpec {
        kind: Kind::GlobalMaxPool2d,
        build: Some(pool::global_max_pool2d),
        name: "global_max_pool2d",
        positional: &[],
        named: &[boolean("keepdims", false)],
        prefix: "global_max_pool",
        usage: "global_max_pool2d(keepdims = false)",
        shape: "(C, H, W) -> (C), or (C, 1, 1) with keepdims = true",
    },
    LayerSpec {
        kind: Kind::Dropout,
        build: Some(regularization::dropout),
        name: "dropout",
        positional: &[req("rate")],
        named: &[],
        prefix: "dropout",
        usage: "dropout(rate) with 0 <= rate < 1",
        shape: "same",
    },
    LayerSpec {
        shape: "(C, H, W) -> (C * H * W)",
        ..simple(Kind::Flatten, "flatten", shape::flatten)
    },
    LayerSpec {
        kind: Kind::Linear,
        build: Some(linear::linear),
        name: "linear",
        positional: &[req("units")],
        named: &[BIAS],
        prefix: "linear",
        usage: "linear(units, bias = true)",
        shape: "(F) -> (units)",
    },
    LayerSpec {
        kind: Kind::Rescale,
        build: Some(scale::rescale),
        name: "rescale",
        positional: &[req("scale"), float("offset", 0.0)],
        named: &[],
        prefix: "rescale",
        usage: "rescale(scale, offset = 0.0)",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::ZeroPad2d,
        build: Some(shape::zero_pad2d),
        name: "zero_pad2d",
        positional: &[req("padding")],
        named: &[],
        prefix: "pad",
        usage: "zero_pad2d(p | (ph, pw) | (top, bottom, left, right))",
        shape: "(C, H + top + bottom, W + left + right)",
    },
    simple(Kind::Relu6, "relu6", activation::relu6),
    simple(Kind::HardSigmoid, "hard_sigmoid", activation::hard_sigmoid),
    simple(Kind::HardSwish, "hard_swish", activation::hard_swish),
    LayerSpec {
        kind: Kind::LayerNorm2d,
        build: Some(norm::layer_norm2d),
        name: "layer_norm2d",
        positional: &[],
        named: &[float("eps", 1e-6)],
        prefix: "ln",
        usage: "layer_norm2d(eps = 1e-6)",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::GroupNorm,
        build: Some(norm::group_norm),
        name: "group_norm",
        positional: &[req("groups")],
        named: &[float("eps", 1e-5)],
        prefix: "gn",
        usage: "group_norm(groups, eps = 1e-5) with groups dividing the channels",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::LayerScale,
        build: Some(scale::layer_scale),
        name: "layer_scale",
        positional: &[float("init", 1e-6)],
        named: &[],
        prefix: "layer_scale",
        usage: "layer_scale(init = 1e-6)",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::DropPath,
        build: Some(regularization::drop_path),
        name: "drop_path",
        positional: &[req("rate")],
        named: &[absent("seed")],
        prefix: "drop_path",
        usage: "drop_path(rate, seed = <from the layer's path>) with 0 <= rate < 1",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::Upsample2d,
        build: Some(shape::upsample2d),
        name: "upsample2d",
        positional: &[int("scale", 2)],
        named: &[word("mode", "nearest")],
        prefix: "upsample",
        usage: "upsample2d(scale = 2 | (sh, sw), mode = nearest | bilinear)",
        shape: "(C, H * sh, W * sw)",
    },
    LayerSpec {
        kind: Kind::ConvTranspose2d,
        build: Some(conv::conv_transpose2d),
        name: "conv_transpose2d",
        positional: &[req("filters"), req("kernel"), STRIDE],
        named: &[
            int("padding", 0),
            int("output_padding", 0),
            DILATION,
            BIAS,
        ],
        prefix: "conv_transpose",
        usage: "conv_transpose2d(filters, kernel, stride = 1, padding = 0, output_padding = 0, dilation = 1, bias = true)",
        shape: "(filters, (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1, ...)",
    },
    LayerSpec {
        kind: Kind::Reshape,
        build: Some(shape::reshape),
        name: "reshape",
        positional: &[req("shape")],
        named: &[],
        prefix: "reshape",
        usage: "reshape((C, H, W)) or reshape(features)",
        shape: "shape",
    },
    LayerSpec {
        kind: Kind::Crop2d,
        build: Some(shape::crop2d),
        name: "crop2d",
        positional: &[req("cropping")],
        named: &[],
        prefix: "crop",
        usage: "crop2d(p | (ph, pw) | (top, bottom, left, right))",
        shape: "(C, H - top - bottom, W - left - right)",
    },
    LayerSpec {
        kind: Kind::CenterCrop,
        build: Some(shape::center_crop),
        name: "center_crop",
        positional: &[req("height"), req("width")],
        named: &[],
        prefix: "center_crop",
        usage: "center_crop(height, width)",
        shape: "(C, height, width)",
    },
    LayerSpec {
        kind: Kind::Residual,
        build: None,
        name: "residual",
        positional: &[],
        named: &[absent("project")],
        prefix: "block",
        usage: "residual { ... }, residual(project = auto) { ... } or residual(project = conv2d(...) | { layers }) { ... }",
        shape: "",
    },
    composite(Kind::Concat, "concat", "concat { { layers }, { layers }, identity, ... }: branches concatenated along channels"),
    composite(Kind::Add, "add", "add { { layers }, { layers }, identity, ... }: branches summed element-wise"),
    composite(Kind::Multiply, "multiply", "multiply { identity, { layers ending in C channels } }: branches multiplied element-wise, H and W of 1 broadcast (a gate)"),
    LayerSpec {
        prefix: "branch",
        ..composite(
            Kind::Identity,
            "identity",
            "identity: a branch of concat/add/multiply that is the input itself",
        )
    },
    LayerSpec {
        kind: Kind::Model,
        build: None,
        name: "model",
        positional: &[req("model"), absent("output")],
        named: &[],
        prefix: "model",
        usage: "model(Name) for a model declared earlier in this convnet!, or model(path::Name, output = (C, H, W)) for one declared elsewhere",
        shape: "",
    },
    composite(
        Kind::AssertShape,
        "assert_shape",
        "assert_shape(C, H, W) or assert_shape(features)",
    ),
];

/// A layer whose arguments and shape are its own: the merges, `identity`, `assert_shape`.
const fn composite(kind: Kind, name: &'static str, usage: &'static str) -> LayerSpec {
    LayerSpec {
        kind,
        build: None,
        name,
        positional: &[],
        named: &[],
        prefix: name,
        usage,
        shape: "",
    }
}

/// An element-wise layer without arguments.
const fn simple(kind: Kind, name: &'static str, build: Build) -> LayerSpec {
    LayerSpec {
        kind,
        build: Some(build),
        name,
        positional: &[],
        named: &[],
        prefix: name,
        usage: name,
        shape: "same",
    }
}

/// The spec of layer `name`.
pub fn lookup(name: &str) -> Option<&'static LayerSpec> {
    LAYERS.iter().find(|s| s.name == name)
}

/// The spec of `kind`.
pub fn spec(kind: Kind) -> &'static LayerSpec {
    LAYERS
        .iter()
        .find(|s| s.kind == kind)
        .expect("every kind has a catalog entry (checked by a test)")
}

/// Every layer name, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    LAYERS.iter().map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_and_kinds_are_unique_and_required_arguments_lead() {
        let names: BTreeSet<&str> = names().collect();
        assert_eq!(names.len(), LAYERS.len());
        for (i, a) in LAYERS.iter().enumerate() {
            assert!(
                LAYERS[i + 1..].iter().all(|b| b.kind != a.kind),
                "{} repeats a kind",
                a.name
            );
            assert_eq!(spec(a.kind).name, a.name);
            let params: BTreeSet<&str> = a.params().map(|p| p.name).collect();
            assert_eq!(params.len(), a.params().count(), "{}", a.name);
            assert!(
                a.positional[a.required()..]
                    .iter()
                    .chain(a.named)
                    .all(|p| p.default != ArgDefault::Required),
                "{}: a required argument follows an optional one",
                a.name
            );
            for p in a.params() {
                if let ArgDefault::SameAs(other) = p.default {
                    let at = |n: &str| a.params().position(|q| q.name == n);
                    assert!(
                        at(other) < at(p.name),
                        "{}: {} reads a later argument",
                        a.name,
                        p.name
                    );
                }
            }
        }
    }

    /// The usage text shown in errors states each default as the catalog does.
    #[test]
    fn usage_states_the_catalog_defaults() {
        for s in LAYERS {
            for p in s.params() {
                let written = match p.default {
                    ArgDefault::Required | ArgDefault::Absent => continue,
                    ArgDefault::Int(n) => n.to_string(),
                    ArgDefault::Float(x) => fmt_float(x),
                    ArgDefault::Bool(b) => b.to_string(),
                    ArgDefault::Word(w) | ArgDefault::SameAs(w) => w.to_string(),
                };
                let stated = format!("{} = {written}", p.name);
                assert!(
                    s.usage.contains(&stated),
                    "usage of `{}` does not state `{stated}`: {}",
                    s.name,
                    s.usage
                );
            }
        }
    }

    /// Each layer of the catalog has one row in `docs/grammar.md`'s layer table, whose first
    /// cell writes its signature with the catalog's defaults and whose last cell is its shape
    /// rule; the composite layers are named in the document.
    #[test]
    fn the_grammar_layer_table_matches_the_catalog() {
        let doc = include_str!("../../../docs/grammar.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells[1..cells.len() - 1].to_vec()
            })
            .collect();
        for s in LAYERS {
            if s.shape.is_empty() {
                assert!(
                    doc.contains(&format!("`{}", s.name)),
                    "`{}` is not documented",
                    s.name
                );
                continue;
            }
            let signature = format!("`{}`", s.signature());
            let found: Vec<&Vec<&str>> =
                rows.iter().filter(|r| r[0].contains(&signature)).collect();
            assert_eq!(
                found.len(),
                1,
                "{signature} is not in exactly one row of the layer table"
            );
            let shape = found[0].last().unwrap().replace('`', "");
            assert_eq!(
                shape, s.shape,
                "shape rule of `{}` in the layer table",
                s.name
            );
        }
    }
}
