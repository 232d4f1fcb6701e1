//! What each layer becomes in ONNX: one function per layer of the catalog (or family), which
//! the code `convnet!` generates for `Network::onnx` calls with the layer's path (its
//! parameters' prefix) and its compile-time facts (resolved padding, shapes). Everything is
//! written from the lowered graph, not from the runtime's fused calls, so a batch norm run
//! inside a depthwise convolution or a max pool inside a separable convolution is exported as
//! its own nodes.
//!
//! Padding arrays are `[top, bottom, left, right]`; every shape here is one example's (no
//! batch dim), as `convnet!` infers them.

use super::graph::{float, int, ints, string, Graph, Value};

/// A convolution's window: what `conv2d`, `depthwise_conv2d` and `separable_conv2d` share.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride (both axes).
    pub stride: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// The padding shape inference resolved (`same` made explicit, asymmetric included).
    pub pad: [usize; 4],
    /// Whether the (last) convolution has a bias.
    pub bias: bool,
}

/// ONNX's `pads`: `[top, left, bottom, right]` from `[top, bottom, left, right]`.
fn pads(p: [usize; 4]) -> Vec<usize> {
    vec![p[0], p[2], p[1], p[3]]
}

fn conv(g: &mut Graph, layer: &str, x: &Value, w: Window, groups: usize) -> Value {
    let weight = g.param(layer, "weight");
    let bias = w.bias.then(|| g.param(layer, "bias"));
    let attrs = vec![
        ints("kernel_shape", &[w.kernel.0, w.kernel.1]),
        ints("strides", &[w.stride, w.stride]),
        ints("dilations", &[w.dilation, w.dilation]),
        ints("pads", &pads(w.pad)),
        int("group", groups as i64),
    ];
    g.node(
        layer,
        "Conv",
        &[Some(x), Some(&weight), bias.as_ref()],
        attrs,
    )
}

/// `conv2d`: `Conv` with `weight` `[out, in / groups, kh, kw]` and `bias`.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, filters, H', W']`.
pub fn conv2d(g: &mut Graph, layer: &str, x: &Value, w: Window, groups: usize) -> Value {
    conv(g, layer, x, w, groups)
}

/// `depthwise_conv2d`: `Conv` with one group per input channel.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C * multiplier, H', W']`.
pub fn depthwise_conv2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    in_channels: usize,
    w: Window,
) -> Value {
    conv(g, layer, x, w, in_channels)
}

/// `separable_conv2d`: the depthwise `Conv` (`layer.depthwise`, no bias) then the 1x1 `Conv`
/// (`layer.pointwise`, with the bias).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, filters, H', W']`.
pub fn separable_conv2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    in_channels: usize,
    w: Window,
) -> Value {
    let depthwise = format!("{layer}.depthwise");
    let mid = conv(g, &depthwise, x, Window { bias: false, ..w }, in_channels);
    let pointwise = Window {
        kernel: (1, 1),
        stride: 1,
        dilation: 1,
        pad: [0; 4],
        bias: w.bias,
    };
    conv(g, &format!("{layer}.pointwise"), &mid, pointwise, 1)
}

/// `conv_transpose2d`: `ConvTranspose` (PyTorch's semantics: symmetric `padding` removed
/// from the full output, `output_padding` added at the bottom/right), `weight`
/// `[in, out, kh, kw]`.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, filters, H', W']`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    kernel: (usize, usize),
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
    bias: bool,
) -> Value {
    let weight = g.param(layer, "weight");
    let bias = bias.then(|| g.param(layer, "bias"));
    let attrs = vec![
        ints("kernel_shape", &[kernel.0, kernel.1]),
        ints("strides", &[stride, stride]),
        ints("dilations", &[dilation, dilation]),
        ints("pads", &[padding; 4]),
        ints("output_padding", &[output_padding, output_padding]),
    ];
    g.node(
        layer,
        "ConvTranspose",
        &[Some(x), Some(&weight), bias.as_ref()],
        attrs,
    )
}

/// `linear`: `Gemm` with `weight` `[out, in]` transposed and `bias`.
///
/// # Shapes
/// `[N, in]` -> `[N, units]`.
pub fn linear(g: &mut Graph, layer: &str, x: &Value, bias: bool) -> Value {
    let weight = g.param(layer, "weight");
    let bias = bias.then(|| g.param(layer, "bias"));
    g.node(
        layer,
        "Gemm",
        &[Some(x), Some(&weight), bias.as_ref()],
        vec![int("transB", 1)],
    )
}

/// `channel_linear`: a 1x1 `Conv` whose kernel is the `[out, in]` weight unsqueezed.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, units, H, W]`.
pub fn channel_linear(g: &mut Graph, layer: &str, x: &Value, bias: bool) -> Value {
    let weight = g.param(layer, "weight");
    let axes = g.ints(layer, &[2, 3]);
    let kernel = g.op(layer, "Unsqueeze", &[&weight, &axes], vec![]);
    let bias = bias.then(|| g.param(layer, "bias"));
    g.node(
        layer,
        "Conv",
        &[Some(x), Some(&kernel), bias.as_ref()],
        vec![ints("kernel_shape", &[1, 1])],
    )
}

/// A per-channel parameter `[C]` shaped to broadcast over a rank-`rank` input `[N, C, ...]`.
fn per_channel(g: &mut Graph, layer: &str, name: &str, rank: usize) -> Value {
    let p = g.param(layer, name);
    if rank <= 2 {
        return p;
    }
    let axes: Vec<i64> = (1..rank as i64 - 1).collect();
    let axes = g.ints(layer, &axes);
    g.op(layer, "Unsqueeze", &[&p, &axes], vec![])
}

/// `batch_norm` at inference: `BatchNormalization` with the running statistics and our
/// epsilon (a fused relu is the following `relu` layer's own node).
///
/// # Shapes
/// `[N, C, ...]` -> the same.
pub fn batch_norm(g: &mut Graph, layer: &str, x: &Value, eps: f64) -> Value {
    let names = ["weight", "bias", "running_mean", "running_var"];
    let [w, b, m, v] = names.map(|n| g.param(layer, n));
    g.op(
        layer,
        "BatchNormalization",
        &[x, &w, &b, &m, &v],
        vec![float("epsilon", eps)],
    )
}

/// `(x - mean) / sqrt(var + eps)` over `axes` (kept), the variance biased: the runtime's
/// layer and group norms.
fn normalize(g: &mut Graph, layer: &str, x: &Value, axes: &[usize], eps: f64) -> Value {
    let mean = g.op(
        layer,
        "ReduceMean",
        &[x],
        vec![ints("axes", axes), int("keepdims", 1)],
    );
    let centred = g.op(layer, "Sub", &[x, &mean], vec![]);
    let square = g.op(layer, "Mul", &[&centred, &centred], vec![]);
    let var = g.op(
        layer,
        "ReduceMean",
        &[&square],
        vec![ints("axes", axes), int("keepdims", 1)],
    );
    let eps = g.scalar(layer, eps);
    let var = g.op(layer, "Add", &[&var, &eps], vec![]);
    let std = g.op(layer, "Sqrt", &[&var], vec![]);
    g.op(layer, "Div", &[&centred, &std], vec![])
}

fn affine(g: &mut Graph, layer: &str, x: &Value, rank: usize) -> Value {
    let w = per_channel(g, layer, "weight", rank);
    let b = per_channel(g, layer, "bias", rank);
    let y = g.op(layer, "Mul", &[x, &w], vec![]);
    g.op(layer, "Add", &[&y, &b], vec![])
}

/// `layer_norm2d`: normalisation over the channels of each position (decomposed:
/// `ReduceMean` over axis 1, since ONNX's `LayerNormalization` normalises trailing axes),
/// then the per-channel `weight` and `bias`.
///
/// # Shapes
/// `[N, C, ...]` (`rank` dims) -> the same.
pub fn layer_norm2d(g: &mut Graph, layer: &str, x: &Value, rank: usize, eps: f64) -> Value {
    let y = normalize(g, layer, x, &[1], eps);
    affine(g, layer, &y, rank)
}

/// `group_norm`: `Reshape` to `[N, groups, -1]`, normalisation over the last axis,
/// `Reshape` back, then the per-channel `weight` and `bias` (decomposed: ONNX's
/// `GroupNormalization` is opset 18 and changed meaning in 21).
///
/// # Shapes
/// `[N, C, ...]` (`input` without N) -> the same.
pub fn group_norm(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    input: &[usize],
    groups: usize,
    eps: f64,
) -> Value {
    let grouped = g.ints(layer, &[0, groups as i64, -1]);
    let y = g.op(layer, "Reshape", &[x, &grouped], vec![]);
    let y = normalize(g, layer, &y, &[2], eps);
    let back = batch_shape(g, layer, input);
    let y = g.op(layer, "Reshape", &[&y, &back], vec![]);
    affine(g, layer, &y, input.len() + 1)
}

/// `layer_scale`: `Mul` by the per-channel `gamma`.
///
/// # Shapes
/// `[N, C, ...]` (`rank` dims) -> the same.
pub fn layer_scale(g: &mut Graph, layer: &str, x: &Value, rank: usize) -> Value {
    let gamma = per_channel(g, layer, "gamma", rank);
    g.op(layer, "Mul", &[x, &gamma], vec![])
}

/// `rescale`: `x * scale + offset` (`Mul`, `Add`).
///
/// # Shapes
/// Any -> the same.
pub fn rescale(g: &mut Graph, layer: &str, x: &Value, scale: f64, offset: f64) -> Value {
    let s = g.scalar(layer, scale);
    let y = g.op(layer, "Mul", &[x, &s], vec![]);
    let o = g.scalar(layer, offset);
    g.op(layer, "Add", &[&y, &o], vec![])
}

/// The element-wise activations, as the runtime computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `Relu`.
    Relu,
    /// `Sigmoid`.
    Sigmoid,
    /// `Tanh`.
    Tanh,
    /// The exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (`Erf`; ONNX's `Gelu` is opset 20).
    Gelu,
    /// `x * Sigmoid(x)`.
    Silu,
    /// `LeakyRelu` with this slope.
    LeakyRelu(f64),
    /// `Softmax` over axis 1 (channels or features).
    Softmax,
    /// `Clip(x, 0, 6)`.
    Relu6,
    /// `relu6(x + 3) / 6`: `HardSigmoid` with alpha 1/6 and beta 1/2 (PyTorch's constants,
    /// not Keras' 0.2).
    HardSigmoid,
    /// `x * hard_sigmoid(x)`.
    HardSwish,
}

/// An activation layer.
///
/// # Shapes
/// Any -> the same.
pub fn activation(g: &mut Graph, layer: &str, x: &Value, a: Activation) -> Value {
    let hard_sigmoid = |g: &mut Graph| {
        g.op(
            layer,
            "HardSigmoid",
            &[x],
            vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
        )
    };
    match a {
        Activation::Relu => g.op(layer, "Relu", &[x], vec![]),
        Activation::Sigmoid => g.op(layer, "Sigmoid", &[x], vec![]),
        Activation::Tanh => g.op(layer, "Tanh", &[x], vec![]),
        Activation::Gelu => {
            let root2 = g.scalar(layer, std::f64::consts::SQRT_2);
            let y = g.op(layer, "Div", &[x, &root2], vec![]);
            let y = g.op(layer, "Erf", &[&y], vec![]);
            let one = g.scalar(layer, 1.0);
            let y = g.op(layer, "Add", &[&y, &one], vec![]);
            let y = g.op(layer, "Mul", &[x, &y], vec![]);
            let half = g.scalar(layer, 0.5);
            g.op(layer, "Mul", &[&y, &half], vec![])
        }
        Activation::Silu => {
            let s = g.op(layer, "Sigmoid", &[x], vec![]);
            g.op(layer, "Mul", &[x, &s], vec![])
        }
        Activation::LeakyRelu(alpha) => g.op(layer, "LeakyRelu", &[x], vec![float("alpha", alpha)]),
        Activation::Softmax => g.op(layer, "Softmax", &[x], vec![int("axis", 1)]),
        Activation::Relu6 => {
            let (lo, hi) = (g.scalar(layer, 0.0), g.scalar(layer, 6.0));
            g.op(layer, "Clip", &[x, &lo, &hi], vec![])
        }
        Activation::HardSigmoid => hard_sigmoid(g),
        Activation::HardSwish => {
            let s = hard_sigmoid(g);
            g.op(layer, "Mul", &[x, &s], vec![])
        }
    }
}

/// `max_pool2d`: `MaxPool` with explicit `pads` that include `ceil_mode`'s overhang at the
/// bottom/right (`window_pad`), so `ceil_mode` stays 0.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H', W']`.
pub fn max_pool2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    kernel: (usize, usize),
    stride: (usize, usize),
    window_pad: [usize; 4],
) -> Value {
    let attrs = vec![
        ints("kernel_shape", &[kernel.0, kernel.1]),
        ints("strides", &[stride.0, stride.1]),
        ints("pads", &pads(window_pad)),
    ];
    g.op(layer, "MaxPool", &[x], attrs)
}

/// `avg_pool2d`: `AveragePool` with `count_include_pad = 0` over explicit `pads`
/// (`window_pad`: the declared padding plus `ceil_mode`'s overhang). With
/// `count_include_pad`, the declared padding (`counted`) is a `Pad` of zeros first, so it
/// counts in each divisor and the overhang does not (PyTorch's rule).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H', W']`.
pub fn avg_pool2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    kernel: (usize, usize),
    stride: (usize, usize),
    window_pad: [usize; 4],
    counted: [usize; 4],
) -> Value {
    let mut x = x.clone();
    let mut window_pad = window_pad;
    if counted != [0; 4] {
        x = zero_pad2d(g, layer, &x, counted);
        for (p, c) in window_pad.iter_mut().zip(counted) {
            *p -= c;
        }
    }
    let attrs = vec![
        ints("kernel_shape", &[kernel.0, kernel.1]),
        ints("strides", &[stride.0, stride.1]),
        ints("pads", &pads(window_pad)),
        int("count_include_pad", 0),
    ];
    g.op(layer, "AveragePool", &[&x], attrs)
}

/// `global_avg_pool2d` / `global_max_pool2d`: `GlobalAveragePool` / `GlobalMaxPool`, then
/// `Flatten` unless `keepdims`.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C]` (`[N, C, 1, 1]` with `keepdims`).
pub fn global_pool2d(g: &mut Graph, layer: &str, x: &Value, max: bool, keepdims: bool) -> Value {
    let op = if max {
        "GlobalMaxPool"
    } else {
        "GlobalAveragePool"
    };
    let y = g.op(layer, op, &[x], vec![]);
    if keepdims {
        return y;
    }
    g.op(layer, "Flatten", &[&y], vec![int("axis", 1)])
}

/// `flatten`: `Flatten` from axis 1 (the batch stays dynamic).
///
/// # Shapes
/// `[N, ...]` -> `[N, product]`.
pub fn flatten(g: &mut Graph, layer: &str, x: &Value) -> Value {
    g.op(layer, "Flatten", &[x], vec![int("axis", 1)])
}

/// `[0, dims...]`: a `Reshape` target that keeps the (dynamic) batch dim.
fn batch_shape(g: &mut Graph, layer: &str, dims: &[usize]) -> Value {
    let shape: Vec<i64> = std::iter::once(0)
        .chain(dims.iter().map(|d| *d as i64))
        .collect();
    g.ints(layer, &shape)
}

/// `reshape`: `Reshape` to `[0, shape...]`.
///
/// # Shapes
/// `[N, ...]` -> `[N, shape...]`.
pub fn reshape(g: &mut Graph, layer: &str, x: &Value, shape: &[usize]) -> Value {
    let to = batch_shape(g, layer, shape);
    g.op(layer, "Reshape", &[x, &to], vec![])
}

/// `zero_pad2d`: `Pad` with zeros.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H + top + bottom, W + left + right]`.
pub fn zero_pad2d(g: &mut Graph, layer: &str, x: &Value, pad: [usize; 4]) -> Value {
    let [t, b, l, r] = pad.map(|p| p as i64);
    let pads = g.ints(layer, &[0, 0, t, l, 0, 0, b, r]);
    g.op(layer, "Pad", &[x, &pads], vec![string("mode", "constant")])
}

/// `Slice` of `axes` from `starts` to `ends`.
fn slice(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    axes: &[i64],
    starts: &[i64],
    ends: &[i64],
) -> Value {
    let (s, e, a) = (
        g.ints(layer, starts),
        g.ints(layer, ends),
        g.ints(layer, axes),
    );
    g.op(layer, "Slice", &[x, &s, &e, &a], vec![])
}

/// `crop2d` (`crop` as `[top, bottom, left, right]`) on an `hw` input: `Slice` of H and W.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H - top - bottom, W - left - right]`.
pub fn crop2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    hw: (usize, usize),
    crop: [usize; 4],
) -> Value {
    let [t, b, l, r] = crop;
    let (h, w) = hw;
    slice(
        g,
        layer,
        x,
        &[2, 3],
        &[t as i64, l as i64],
        &[(h - b) as i64, (w - r) as i64],
    )
}

/// `center_crop` to `size` on an `hw` input: `Slice` from `((H - h) / 2, (W - w) / 2)`.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, h, w]`.
pub fn center_crop(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    hw: (usize, usize),
    size: (usize, usize),
) -> Value {
    let (top, left) = ((hw.0 - size.0) / 2, (hw.1 - size.1) / 2);
    crop2d(
        g,
        layer,
        x,
        hw,
        [top, hw.0 - size.0 - top, left, hw.1 - size.1 - left],
    )
}

/// `channel_slice`: `Slice` of axis 1 from `start` to `end`.
///
/// # Shapes
/// `[N, C, ...]` -> `[N, end - start, ...]`.
pub fn channel_slice(g: &mut Graph, layer: &str, x: &Value, start: usize, end: usize) -> Value {
    slice(g, layer, x, &[1], &[start as i64], &[end as i64])
}

/// `channel_shuffle`: `Reshape` to `[N, groups, C / groups, ...]`, `Transpose` of the two,
/// `Reshape` back (PyTorch's formulation).
///
/// # Shapes
/// `[N, C, ...]` (`input` without N) -> the same.
pub fn channel_shuffle(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    input: &[usize],
    groups: usize,
) -> Value {
    let c = input[0];
    let mut split = vec![groups, c / groups];
    split.extend_from_slice(&input[1..]);
    let to = batch_shape(g, layer, &split);
    let y = g.op(layer, "Reshape", &[x, &to], vec![]);
    let mut perm = vec![0, 2, 1];
    perm.extend(3..split.len() + 1);
    let y = g.op(layer, "Transpose", &[&y], vec![ints("perm", &perm)]);
    let back = batch_shape(g, layer, input);
    g.op(layer, "Reshape", &[&y, &back], vec![])
}

/// `upsample2d`: `Resize` by `scale`; nearest (`asymmetric`, `floor`: each output pixel
/// copies pixel `floor(o / scale)`) or bilinear with `half_pixel` (PyTorch's
/// `align_corners = False`).
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H * sh, W * sw]`.
pub fn upsample2d(
    g: &mut Graph,
    layer: &str,
    x: &Value,
    scale: (usize, usize),
    bilinear: bool,
) -> Value {
    let scales = g.floats(layer, &[1.0, 1.0, scale.0 as f32, scale.1 as f32]);
    let attrs = if bilinear {
        vec![
            string("mode", "linear"),
            string("coordinate_transformation_mode", "half_pixel"),
        ]
    } else {
        vec![
            string("mode", "nearest"),
            string("coordinate_transformation_mode", "asymmetric"),
            string("nearest_mode", "floor"),
        ]
    };
    g.node(layer, "Resize", &[Some(x), None, Some(&scales)], attrs)
}

/// How a merge combines its branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `Concat` on axis 1.
    Concat,
    /// `Sum`.
    Add,
    /// `Mul`, in turn (broadcasting gates of H = W = 1).
    Multiply,
}

/// A merge of `branches` (a residual's sum is an `Add` merge of two).
///
/// # Shapes
/// Each branch `[N, C_i, ...]` -> `[N, sum C_i, ...]` (concat) or the common shape.
pub fn merge(g: &mut Graph, layer: &str, merge: Merge, branches: &[Value]) -> Value {
    let inputs: Vec<&Value> = branches.iter().collect();
    match merge {
        Merge::Concat => g.op(layer, "Concat", &inputs, vec![int("axis", 1)]),
        Merge::Add => g.op(layer, "Sum", &inputs, vec![]),
        Merge::Multiply => {
            let mut y = branches[0].clone();
            for b in &branches[1..] {
                y = g.op(layer, "Mul", &[&y, b], vec![]);
            }
            y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(g: &'a Graph, op: &str, name: &str) -> &'a [i64] {
        let node = g.nodes.iter().find(|n| n.op_type == op).unwrap();
        &node.attribute.iter().find(|a| a.name == name).unwrap().ints
    }

    /// TensorFlow's asymmetric `same` (1 row at the bottom, none at the top) reaches ONNX's
    /// `[top, left, bottom, right]` order, and a separable convolution reads its two
    /// parameter groups under the layer's path.
    #[test]
    fn asymmetric_padding_and_separable_parameters() {
        let mut g = Graph::new();
        let w = Window {
            kernel: (3, 2),
            stride: 2,
            dilation: 1,
            pad: [0, 1, 2, 3],
            bias: true,
        };
        separable_conv2d(&mut g, "b.sep1", &Graph::input(), 4, w);
        assert_eq!(attr(&g, "Conv", "pads"), &[0, 2, 1, 3]);
        assert_eq!(
            g.nodes[0]
                .attribute
                .iter()
                .find(|a| a.name == "group")
                .unwrap()
                .i,
            4
        );
        assert_eq!(
            g.params(),
            [
                "b.sep1.depthwise.weight",
                "b.sep1.pointwise.weight",
                "b.sep1.pointwise.bias"
            ]
        );
    }

    /// `count_include_pad`: the declared padding becomes a `Pad` of zeros and only the
    /// overhang stays in the pool's pads.
    #[test]
    fn counted_padding_is_a_pad_node() {
        let mut g = Graph::new();
        avg_pool2d(
            &mut g,
            "p",
            &Graph::input(),
            (3, 3),
            (2, 2),
            [1, 2, 1, 1],
            [1, 1, 1, 1],
        );
        assert_eq!(g.op_types(), ["Pad", "AveragePool"]);
        assert_eq!(attr(&g, "AveragePool", "pads"), &[0, 0, 1, 0]);
    }

    /// A parameter read twice is one initializer.
    #[test]
    fn parameters_are_listed_once() {
        let mut g = Graph::new();
        let x = Graph::input();
        layer_scale(&mut g, "s", &x, 4);
        layer_scale(&mut g, "s", &x, 4);
        assert_eq!(g.params(), ["s.gamma"]);
    }
}
