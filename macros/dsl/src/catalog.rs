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

use crate::layers::{
    activation, channels, conv, linear, norm, pool, regularization, scale, shape, Build,
};

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
    ChannelSlice,
    ChannelShuffle,
    ChannelLinear,
    Residual,
    Sequential,
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

/// PyTorch's rounding up of a pooling's output size.
const CEIL_MODE: Param = boolean("ceil_mode", false);

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
        named: &[PADDING, CEIL_MODE],
        prefix: "maxpool",
        usage: "max_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right), ceil_mode = false)",
        shape: "(C, H', W')",
    },
    LayerSpec {
        kind: Kind::AvgPool2d,
        build: Some(pool::avg_pool2d),
        name: "avg_pool2d",
        positional: POOL_POSITIONAL,
        named: &[PADDING, CEIL_MODE, boolean("count_include_pad", false)],
        prefix: "avgpool",
        usage: "avg_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right), ceil_mode = false, count_include_pad = false)",
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
        kind: Kind::ChannelSlice,
        build: Some(channels::channel_slice),
        name: "channel_slice",
        positional: &[req("start"), absent("end")],
        named: &[],
        prefix: "channel_slice",
        usage: "channel_slice(start, end = <all channels>) with 0 <= start < end <= channels",
        shape: "(C, H, W) -> (end - start, H, W)",
    },
    LayerSpec {
        kind: Kind::ChannelShuffle,
        build: Some(channels::channel_shuffle),
        name: "channel_shuffle",
        positional: &[req("groups")],
        named: &[],
        prefix: "channel_shuffle",
        usage: "channel_shuffle(groups) with groups dividing the channels",
        shape: "same",
    },
    LayerSpec {
        kind: Kind::ChannelLinear,
        build: Some(channels::channel_linear),
        name: "channel_linear",
        positional: &[req("units")],
        named: &[BIAS],
        prefix: "channel_linear",
        usage: "channel_linear(units, bias = true)",
        shape: "(C, H, W) -> (units, H, W)",
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
    composite(Kind::Sequential, "sequential", "sequential { layers }: layers in order, those without a label named 0, 1, 2, ... by position (PyTorch's `nn.Sequential`)"),
    composite(Kind::Concat, "concat", "concat { { layers }, { layers }, identity, ... }: branches concatenated along channels"),
    composite(Kind::Add, "add", "add { { layers }, { layers }, identity, ... }: branches summed element-wise"),
    composite(Kind::Multiply, "multiply", "multiply { identity, { layers ending in C or 1 channels } }: branches multiplied element-wise, a C, H or W of 1 broadcast (a gate)"),
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

/// Layer names of PyTorch (`torch.nn`) and Keras that this catalog writes differently:
/// `(names, what to write instead, a note)`; an empty "write" means the note says it all.
/// The "unknown layer" error reads this table (see [`foreign_name_hint`]); a name that
/// differs from a catalog name only in case and underscores (`Conv2d`, `MaxPool2d`, `ReLU`,
/// `Hardswish`, `GroupNorm`, `Linear`) needs no entry.
pub const ALIASES: &[(&[&str], &str, &str)] = &[
    (&["Dense"], "linear(units)", "on a feature vector"),
    (
        &["BatchNorm2d", "BatchNorm1d", "BatchNormalization"],
        "batch_norm",
        "PyTorch's defaults are `batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased)`",
    ),
    (
        &["AdaptiveAvgPool2d", "GlobalAveragePooling2D", "GlobalAvgPool2D"],
        "global_avg_pool2d(keepdims = true)",
        "for an output of 1 x 1; plain `global_avg_pool2d` gives (C) for a `linear` after it",
    ),
    (
        &["AdaptiveMaxPool2d", "GlobalMaxPooling2D", "GlobalMaxPool2D"],
        "global_max_pool2d(keepdims = true)",
        "for an output of 1 x 1; plain `global_max_pool2d` gives (C) for a `linear` after it",
    ),
    (&["MaxPooling2D"], "max_pool2d(kernel)", ""),
    (&["AveragePooling2D", "AvgPooling2D"], "avg_pool2d(kernel)", ""),
    (&["Conv2DTranspose"], "conv_transpose2d(filters, kernel)", ""),
    (&["ZeroPadding2D"], "zero_pad2d(padding)", ""),
    (&["Cropping2D"], "crop2d(cropping)", ""),
    (
        &["UpSampling2D", "Upsample", "UpsamplingNearest2d"],
        "upsample2d(scale)",
        "",
    ),
    (
        &["UpsamplingBilinear2d"],
        "upsample2d(scale, mode = bilinear)",
        "which does not align corners, as PyTorch's `Upsample(mode='bilinear')`",
    ),
    (
        &["LayerNorm", "LayerNormalization"],
        "layer_norm2d",
        "over each pixel's channels, or the features of a vector",
    ),
    (&["Rescaling"], "rescale(scale, offset = 0.0)", ""),
    (&["Swish"], "silu", ""),
    (&["HardSiLU"], "hard_swish", ""),
    (&["StochasticDepth"], "drop_path(rate)", ""),
    (
        &["Concatenate", "cat"],
        "concat { { layers }, { layers } }",
        "branches that all see the same input",
    ),
    (
        &["Identity"],
        "",
        "`nn.Identity` does nothing in a sequence: leave it out (`identity` is only a branch of a merge)",
    ),
    (
        &["Sequential"],
        "",
        "write its layers in order, or a `block` for a group used more than once",
    ),
    (
        &["Activation"],
        "",
        "write the activation itself: `relu`, `silu`, `sigmoid`, ...",
    ),
];

/// Lower case without underscores: `MaxPool2d`, `max_pool2d` and `maxpool2d` compare equal.
fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// What to write for a name this catalog does not know, when it is a PyTorch or Keras name
/// ([`ALIASES`]) or a catalog name in other case or underscores: a hint to append to the
/// "unknown layer" error, `None` otherwise (then an edit-distance suggestion applies).
pub fn foreign_name_hint(name: &str) -> Option<String> {
    let key = normalized(name);
    for (names, write, note) in ALIASES {
        if names.iter().any(|n| normalized(n) == key) {
            return Some(match (*write, *note) {
                ("", note) => format!("; {note}"),
                (write, "") => format!("; write `{write}` here"),
                (write, note) => format!("; write `{write}` here ({note})"),
            });
        }
    }
    LAYERS
        .iter()
        .find(|s| normalized(s.name) == key)
        .map(|s| format!("; write `{}` (layer names are snake_case)", s.name))
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

    /// Every alias names a layer that exists (or, for `concat`, a merge) and is no catalog
    /// name itself; PyTorch's and Keras' common names all get a hint.
    #[test]
    fn foreign_names_get_the_catalog_name() {
        for (names, write, _) in ALIASES {
            for n in *names {
                assert!(lookup(n).is_none(), "{n} is a catalog name");
                assert!(foreign_name_hint(n).is_some(), "{n}");
            }
            let head: String = write
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                write.is_empty() || lookup(&head).is_some(),
                "alias target `{write}` is not a layer"
            );
        }
        let hint = |n: &str| foreign_name_hint(n).unwrap_or_else(|| panic!("no hint for {n}"));
        for (name, want) in [
            ("Conv2d", "`conv2d`"),
            ("Conv2D", "`conv2d`"),
            ("Dense", "`linear(units)`"),
            ("Linear", "`linear`"),
            ("BatchNorm2d", "`batch_norm`"),
            ("BatchNormalization", "`batch_norm`"),
            (
                "adaptive_avg_pool2d",
                "`global_avg_pool2d(keepdims = true)`",
            ),
            ("AdaptiveAvgPool2d", "`global_avg_pool2d(keepdims = true)`"),
            ("MaxPool2d", "`max_pool2d`"),
            ("MaxPooling2D", "`max_pool2d(kernel)`"),
            ("ReLU", "`relu`"),
            ("ReLU6", "`relu6`"),
            ("Hardswish", "`hard_swish`"),
            ("SiLU", "`silu`"),
            ("Flatten", "`flatten`"),
            ("Dropout", "`dropout`"),
            ("GroupNorm", "`group_norm`"),
            ("ConvTranspose2d", "`conv_transpose2d`"),
            ("DepthwiseConv2D", "`depthwise_conv2d`"),
            ("UpSampling2D", "`upsample2d(scale)`"),
            ("Identity", "leave it out"),
        ] {
            assert!(hint(name).contains(want), "{name}: {}", hint(name));
        }
        assert_eq!(foreign_name_hint("conv3d"), None);
        assert_eq!(foreign_name_hint("my_block"), None);
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
