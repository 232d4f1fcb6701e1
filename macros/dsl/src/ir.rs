//! The lowered description: loops unrolled, blocks inlined, arguments evaluated and typed,
//! every layer named. Shape inference (`infer`) fills in each node's [`Info`]. Also the limits
//! and the naming and formatting helpers that lowering, inference and code generation share,
//! so `infer` and `expand` depend on this module and on `layers` (the plain layers, which they
//! call through [`Primitive`]), not on each other or on `lower`.

use crate::layers::Primitive;
use proc_macro2::Span;
use std::collections::BTreeMap;
use std::rc::Rc;
use syn::{Attribute, Ident, Path, Visibility};

/// Explicit padding in rows/columns: top, bottom, left, right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad4 {
    /// Rows above.
    pub top: usize,
    /// Rows below.
    pub bottom: usize,
    /// Columns on the left.
    pub left: usize,
    /// Columns on the right.
    pub right: usize,
}

/// How a convolution or pooling layer pads its input, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Padding {
    /// No padding.
    Valid,
    /// TensorFlow "same": output = ceil(input / stride), extra row/column at bottom/right.
    Same,
    /// Explicit rows and columns.
    Explicit(Pad4),
}

/// What a residual block adds to its body's output.
#[derive(Clone)]
pub enum Project {
    /// The input itself.
    Identity,
    /// A 1x1 convolution chosen by shape inference (becomes `Node` or `Identity`).
    Auto,
    /// A user-given layer or sequence.
    Node(Box<Node>),
}

/// How a merge combines its branches' outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Concatenation along channels (or features); other dims must agree.
    Concat,
    /// Element-wise sum; shapes must be equal.
    Add,
    /// Element-wise product, broadcasting H and W of size 1 (gates); channels must agree.
    Multiply,
}

impl Merge {
    /// The keyword that writes this merge.
    pub fn keyword(self) -> &'static str {
        match self {
            Merge::Concat => "concat",
            Merge::Add => "add",
            Merge::Multiply => "multiply",
        }
    }
}

/// One lowered layer.
#[derive(Clone)]
pub enum Op {
    /// A plain layer (convolution, norm, activation, pooling, ...): everything about it is
    /// in its [`Primitive`] (`crate::layers`).
    Layer(Rc<dyn Primitive>),
    /// A compile-time check that the shape here is this.
    AssertShape(Vec<usize>),
    /// `body(x) + project(x)`.
    Residual { project: Project, body: Vec<Node> },
    /// Parallel branches that all see the input, combined by `merge`; each branch is an
    /// `Op::Block` (empty for `identity`).
    Merge { merge: Merge, branches: Vec<Node> },
    /// `@label`: the saved output (`save` id) of an earlier labelled layer, of this shape.
    Skip {
        label: String,
        save: usize,
        shape: Vec<usize>,
    },
    /// A named scope: an instance of a user block, or a projection sequence.
    Block { body: Vec<Node> },
    /// A model from another description (or earlier in this one) used as a layer.
    Nested {
        path: Path,
        input: Option<Vec<usize>>,
        output: Vec<usize>,
    },
    /// A layer whose arguments were wrong: an error is already reported, and shapes after
    /// it are unknown (so one mistake gives one error).
    Poison,
}

/// Facts computed by shape inference.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// Input shape (no batch dim).
    pub input: Vec<usize>,
    /// Output shape (no batch dim).
    pub output: Vec<usize>,
    /// Resolved padding for convolutions and pooling.
    pub pad: Pad4,
    /// Parameters including children, excluding nested models.
    pub params: usize,
    /// Non-trainable parameters (batch-norm moving statistics).
    pub non_trainable: usize,
    /// Forward FLOPs per example, excluding nested models.
    pub flops: u64,
    /// Nested models inside (their consts are added in generated code).
    pub nested: Vec<Path>,
}

/// A lowered, named layer.
#[derive(Clone)]
pub struct Node {
    /// Name within its scope (`conv1`, `block2`, or the user's label).
    pub name: String,
    /// Kind as written (`separable_conv2d`, a block's name, a model's path).
    pub kind: String,
    /// The kind token, where errors about the layer point.
    pub span: Span,
    /// Spans of the written arguments by parameter name.
    pub arg_spans: BTreeMap<&'static str, Span>,
    /// What the layer does.
    pub op: Op,
    /// Filled in by shape inference.
    pub info: Info,
    /// The `for` loop iteration the layer was unrolled in, as a note for its errors
    /// ("in iteration `size = 64` of the `for` loop"); `None` outside loops.
    pub context: Option<std::rc::Rc<str>>,
    /// For a labelled layer: the id its output is saved under when an `@label` uses it.
    pub save: Option<usize>,
    /// For a layer without a label: the prefix of its default name (`conv` for `conv1`), so
    /// that the scope it is finally named in (past `_:` layers) can number it.
    pub auto: Option<String>,
}

impl Node {
    /// The span of argument `name` if written, else the layer's.
    pub fn arg_span(&self, name: &str) -> Span {
        self.arg_spans.get(name).copied().unwrap_or(self.span)
    }
}

/// A lowered model.
pub struct Model {
    /// Attributes and doc comments for the struct.
    pub attrs: Vec<Attribute>,
    /// Struct visibility.
    pub vis: Visibility,
    /// Struct name.
    pub name: Ident,
    /// Input shape, or `None` when it was invalid.
    pub input: Option<Vec<usize>>,
    /// Where the input shape is written.
    pub input_span: Span,
    /// Declared output shape and where it is written.
    pub output: Option<(Vec<usize>, Span)>,
    /// The layers, in order.
    pub body: Vec<Node>,
    /// Save ids of the labelled layers that an `@label` uses.
    pub saved: std::collections::BTreeSet<usize>,
}

/// Largest channel/feature count or spatial size accepted (keeps every count in range).
pub const MAX_DIM: i64 = 1 << 20;
/// Largest kernel, stride or dilation accepted.
pub const MAX_WINDOW: i64 = 1 << 12;
/// Most layers one model may unroll to (guards against runaway loops and blocks).
pub const MAX_NODES: usize = 100_000;

/// The hierarchical name of `name` inside `scope`: `block1.conv2` (also its parameter path).
/// An empty `name` (a layer labelled `_`, which opens no scope) is the scope itself.
pub fn path(scope: &str, name: &str) -> String {
    if name.is_empty() {
        scope.to_string()
    } else if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

/// `MiniXception` -> `mini_xception`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if i > 0 && (prev_lower || (next_lower && chars[i - 1].is_uppercase())) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// `crate::nets::Stem` as written, without spaces.
pub fn path_text(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let lead = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{lead}{}", segments.join("::"))
}

/// `(64, 8, 8)`.
pub fn fmt_shape(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("({})", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_model_names() {
        assert_eq!(snake_case("MiniXception"), "mini_xception");
        assert_eq!(snake_case("VGG16"), "vgg16");
        assert_eq!(snake_case("ResNet18"), "res_net18");
        assert_eq!(snake_case("Stem"), "stem");
    }
}
