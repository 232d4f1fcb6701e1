//! The graph a model's generated `Network::onnx` builds: nodes in order, the parameters they
//! read (by variable path, filled from the `VarMap` at export), and the constants they need.

use super::proto::{AttributeProto, NodeProto, TensorProto, FLOAT, INT64};
use std::collections::BTreeSet;

/// A value of the graph (a node's output, the input, a parameter or a constant), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(pub(crate) String);

impl Value {
    /// The value's name in the graph.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// An ONNX graph being built; see [`super::ops`] for what each layer appends.
#[derive(Debug, Default)]
pub struct Graph {
    pub(crate) nodes: Vec<NodeProto>,
    /// Parameter paths the nodes read, in first-use order (and as a set, for lookups).
    pub(crate) params: Vec<String>,
    seen: BTreeSet<String>,
    pub(crate) constants: Vec<TensorProto>,
    next: usize,
}

/// The parameter path `path` inside `scope` (a nested model's path, or empty at the top):
/// `block1.conv2` in `stem` is `stem.block1.conv2`.
pub fn join(scope: &str, path: &str) -> String {
    if scope.is_empty() {
        path.to_string()
    } else {
        format!("{scope}.{path}")
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The graph input's value: `input`.
    pub fn input() -> Value {
        Value("input".into())
    }

    /// The parameter `name` of the layer at `layer` (`block1.conv2` + `weight`), an
    /// initializer filled from the `VarMap` at export.
    pub fn param(&mut self, layer: &str, name: &str) -> Value {
        let path = join(layer, name);
        if self.seen.insert(path.clone()) {
            self.params.push(path.clone());
        }
        Value(path)
    }

    /// The parameter paths read so far, in first-use order.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// Appends node `op` of the layer at `layer` on `inputs` (`None`: an omitted optional
    /// input) with `attrs`; returns its one output.
    pub fn node(
        &mut self,
        layer: &str,
        op: &str,
        inputs: &[Option<&Value>],
        attrs: Vec<AttributeProto>,
    ) -> Value {
        self.next += 1;
        let name = format!("{layer}/{op}_{}", self.next);
        self.nodes.push(NodeProto {
            input: inputs
                .iter()
                .map(|v| v.map_or_else(String::new, |v| v.0.clone()))
                .collect(),
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.into(),
            attribute: attrs,
        });
        Value(name)
    }

    /// [`Graph::node`] with every input given.
    pub fn op(
        &mut self,
        layer: &str,
        op: &str,
        inputs: &[&Value],
        attrs: Vec<AttributeProto>,
    ) -> Value {
        let inputs: Vec<Option<&Value>> = inputs.iter().map(|v| Some(*v)).collect();
        self.node(layer, op, &inputs, attrs)
    }

    fn constant(&mut self, layer: &str, dims: Vec<i64>, data_type: i32, raw: Vec<u8>) -> Value {
        self.next += 1;
        let name = format!("{layer}/const_{}", self.next);
        self.constants.push(TensorProto {
            dims,
            data_type,
            name: name.clone(),
            raw_data: raw,
        });
        Value(name)
    }

    /// A constant 1-d int64 tensor (shapes, axes, pads).
    pub fn ints(&mut self, layer: &str, values: &[i64]) -> Value {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(layer, vec![values.len() as i64], INT64, raw)
    }

    /// A constant float32 scalar.
    pub fn scalar(&mut self, layer: &str, value: f64) -> Value {
        self.constant(layer, vec![], FLOAT, (value as f32).to_le_bytes().to_vec())
    }

    /// A constant 1-d float32 tensor.
    pub fn floats(&mut self, layer: &str, values: &[f32]) -> Value {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(layer, vec![values.len() as i64], FLOAT, raw)
    }

    /// The operators used so far, in first-use order.
    pub fn op_types(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.nodes
            .iter()
            .map(|n| n.op_type.as_str())
            .filter(|op| seen.insert(*op))
            .collect()
    }
}

/// An int attribute.
pub fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: value,
        r#type: 2,
        ..Default::default()
    }
}

/// A float attribute.
pub fn float(name: &str, value: f64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: value as f32,
        r#type: 1,
        ..Default::default()
    }
}

/// A string attribute.
pub fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: value.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    }
}

/// An ints attribute.
pub fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.iter().map(|v| *v as i64).collect(),
        r#type: 7,
        ..Default::default()
    }
}
