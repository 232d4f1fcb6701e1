//! The layers the DSL knows: their arguments (positional order, which are required) and the
//! prefix of their default names.

/// How a layer is called.
pub struct LayerSpec {
    /// Name as written in a description.
    pub name: &'static str,
    /// Arguments that may be given by position, in order.
    pub positional: &'static [&'static str],
    /// How many leading positional arguments are required.
    pub required: usize,
    /// Arguments that may only be given by name.
    pub named: &'static [&'static str],
    /// Default layer names are this prefix plus a counter (`conv1`, `conv2`).
    pub prefix: &'static str,
    /// The call's signature, shown when arguments are wrong.
    pub usage: &'static str,
}

const CONV_NAMED: &[&str] = &["padding", "dilation", "groups", "bias"];
const DEPTHWISE_NAMED: &[&str] = &["multiplier", "padding", "dilation", "bias"];

/// Every layer kind.
pub const LAYERS: &[LayerSpec] = &[
    LayerSpec {
        name: "conv2d",
        positional: &["filters", "kernel", "stride"],
        required: 2,
        named: CONV_NAMED,
        prefix: "conv",
        usage: "conv2d(filters, kernel, stride = 1, padding = valid | same | p | (ph, pw) | (top, bottom, left, right), dilation = 1, groups = 1, bias = true)",
    },
    LayerSpec {
        name: "depthwise_conv2d",
        positional: &["kernel", "stride"],
        required: 1,
        named: DEPTHWISE_NAMED,
        prefix: "depthwise",
        usage: "depthwise_conv2d(kernel, stride = 1, multiplier = 1, padding = valid, dilation = 1, bias = true)",
    },
    LayerSpec {
        name: "separable_conv2d",
        positional: &["filters", "kernel", "stride"],
        required: 2,
        named: DEPTHWISE_NAMED,
        prefix: "sep",
        usage: "separable_conv2d(filters, kernel, stride = 1, multiplier = 1, padding = valid, dilation = 1, bias = true)",
    },
    LayerSpec {
        name: "batch_norm",
        positional: &[],
        required: 0,
        named: &["eps", "momentum", "variance"],
        prefix: "bn",
        usage: "batch_norm(eps = 1e-3, momentum = 0.01, variance = biased | unbiased)",
    },
    simple("relu"),
    simple("sigmoid"),
    simple("tanh"),
    simple("gelu"),
    simple("silu"),
    simple("softmax"),
    LayerSpec {
        name: "leaky_relu",
        positional: &["alpha"],
        required: 0,
        named: &[],
        prefix: "leaky_relu",
        usage: "leaky_relu(alpha = 0.01)",
    },
    LayerSpec {
        name: "max_pool2d",
        positional: &["kernel", "stride"],
        required: 1,
        named: &["padding"],
        prefix: "maxpool",
        usage: "max_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right))",
    },
    LayerSpec {
        name: "avg_pool2d",
        positional: &["kernel", "stride"],
        required: 1,
        named: &["padding"],
        prefix: "avgpool",
        usage: "avg_pool2d(kernel, stride = kernel, padding = valid | same | p | (ph, pw) | (top, bottom, left, right))",
    },
    LayerSpec {
        name: "global_avg_pool2d",
        positional: &[],
        required: 0,
        named: &["keepdims"],
        prefix: "global_avg_pool",
        usage: "global_avg_pool2d(keepdims = false)",
    },
    LayerSpec {
        name: "global_max_pool2d",
        positional: &[],
        required: 0,
        named: &["keepdims"],
        prefix: "global_max_pool",
        usage: "global_max_pool2d(keepdims = false)",
    },
    LayerSpec {
        name: "dropout",
        positional: &["rate"],
        required: 1,
        named: &[],
        prefix: "dropout",
        usage: "dropout(rate) with 0 <= rate < 1",
    },
    simple("flatten"),
    LayerSpec {
        name: "linear",
        positional: &["units"],
        required: 1,
        named: &["bias"],
        prefix: "linear",
        usage: "linear(units, bias = true)",
    },
    LayerSpec {
        name: "rescale",
        positional: &["scale", "offset"],
        required: 1,
        named: &[],
        prefix: "rescale",
        usage: "rescale(scale, offset = 0.0)",
    },
    LayerSpec {
        name: "zero_pad2d",
        positional: &["padding"],
        required: 1,
        named: &[],
        prefix: "pad",
        usage: "zero_pad2d(p | (ph, pw) | (top, bottom, left, right))",
    },
    simple("relu6"),
    simple("hard_sigmoid"),
    simple("hard_swish"),
    LayerSpec {
        name: "layer_norm2d",
        positional: &[],
        required: 0,
        named: &["eps"],
        prefix: "ln",
        usage: "layer_norm2d(eps = 1e-6)",
    },
    LayerSpec {
        name: "group_norm",
        positional: &["groups"],
        required: 1,
        named: &["eps"],
        prefix: "gn",
        usage: "group_norm(groups, eps = 1e-5) with groups dividing the channels",
    },
    LayerSpec {
        name: "layer_scale",
        positional: &["init"],
        required: 0,
        named: &[],
        prefix: "layer_scale",
        usage: "layer_scale(init = 1e-6)",
    },
    LayerSpec {
        name: "drop_path",
        positional: &["rate"],
        required: 1,
        named: &["seed"],
        prefix: "drop_path",
        usage: "drop_path(rate, seed = <from the layer's path>) with 0 <= rate < 1",
    },
    LayerSpec {
        name: "upsample2d",
        positional: &["scale"],
        required: 0,
        named: &["mode"],
        prefix: "upsample",
        usage: "upsample2d(scale = 2 | (sh, sw), mode = nearest | bilinear)",
    },
    LayerSpec {
        name: "conv_transpose2d",
        positional: &["filters", "kernel", "stride"],
        required: 2,
        named: &["padding", "output_padding", "dilation", "bias"],
        prefix: "conv_transpose",
        usage: "conv_transpose2d(filters, kernel, stride = 1, padding = 0, output_padding = 0, dilation = 1, bias = true)",
    },
    LayerSpec {
        name: "reshape",
        positional: &["shape"],
        required: 1,
        named: &[],
        prefix: "reshape",
        usage: "reshape((C, H, W)) or reshape(features)",
    },
    LayerSpec {
        name: "crop2d",
        positional: &["cropping"],
        required: 1,
        named: &[],
        prefix: "crop",
        usage: "crop2d(p | (ph, pw) | (top, bottom, left, right))",
    },
    LayerSpec {
        name: "center_crop",
        positional: &["height", "width"],
        required: 2,
        named: &[],
        prefix: "center_crop",
        usage: "center_crop(height, width)",
    },
    LayerSpec {
        name: "residual",
        positional: &[],
        required: 0,
        named: &["project"],
        prefix: "block",
        usage: "residual { ... }, residual(project = auto) { ... } or residual(project = conv2d(...) | { layers }) { ... }",
    },
    merge("concat", "concat { { layers }, { layers }, identity, ... }: branches concatenated along channels"),
    merge("add", "add { { layers }, { layers }, identity, ... }: branches summed element-wise"),
    merge("multiply", "multiply { identity, { layers ending in C channels } }: branches multiplied element-wise, H and W of 1 broadcast (a gate)"),
    LayerSpec {
        name: "identity",
        positional: &[],
        required: 0,
        named: &[],
        prefix: "branch",
        usage: "identity: a branch of concat/add/multiply that is the input itself",
    },
    LayerSpec {
        name: "model",
        positional: &["model", "output"],
        required: 1,
        named: &[],
        prefix: "model",
        usage: "model(Name) for a model declared earlier in this convnet!, or model(path::Name, output = (C, H, W)) for one declared elsewhere",
    },
    LayerSpec {
        name: "assert_shape",
        positional: &[],
        required: 0,
        named: &[],
        prefix: "assert_shape",
        usage: "assert_shape(C, H, W) or assert_shape(features)",
    },
];

const fn merge(name: &'static str, usage: &'static str) -> LayerSpec {
    LayerSpec {
        name,
        positional: &[],
        required: 0,
        named: &[],
        prefix: name,
        usage,
    }
}

const fn simple(name: &'static str) -> LayerSpec {
    LayerSpec {
        name,
        positional: &[],
        required: 0,
        named: &[],
        prefix: name,
        usage: name,
    }
}

/// The spec of layer `name`.
pub fn lookup(name: &str) -> Option<&'static LayerSpec> {
    LAYERS.iter().find(|s| s.name == name)
}

/// Every layer name, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    LAYERS.iter().map(|s| s.name)
}
