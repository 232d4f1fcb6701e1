//! The export entry point: a model's graph (from its generated `Network::onnx`), its
//! parameters from the `VarMap` as initializers, a dynamic batch, written as one ONNX file.

use super::graph::{Graph, Value};
use super::proto::{
    Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, FLOAT,
};
use super::{IR_VERSION, OPSET};
use crate::error::Error;
use crate::model::Network;
use candle_core::{DType, Result};
use candle_nn::VarMap;
use prost::Message;
use std::path::Path;

/// The most parameter bytes one ONNX file holds: protobuf's 2 GiB, less room for the graph.
const MAX_PROTO_BYTES: usize = (1 << 31) - (64 << 20);

/// Choices of an ONNX export.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// A fixed batch size for the input and output; `None` (the default) names the batch dim
    /// `batch`, so any batch size runs.
    pub batch: Option<usize>,
}

/// `name: float32[batch, shape...]`.
fn value_info(name: &str, shape: &[usize], batch: Option<usize>) -> ValueInfoProto {
    let batch = match batch {
        Some(n) => Dimension {
            dim_value: Some(n as i64),
            dim_param: None,
        },
        None => Dimension {
            dim_value: None,
            dim_param: Some("batch".into()),
        },
    };
    let dims = shape.iter().map(|d| Dimension {
        dim_value: Some(*d as i64),
        dim_param: None,
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(dims).collect(),
                }),
            }),
        }),
    }
}

/// The ONNX model of `M` with the parameters in `varmap` (created by `M::new` on it, or
/// loaded into it), as float32.
///
/// # Errors
/// [`Error::InvalidArgument`] naming a parameter the graph reads that `varmap` lacks, or
/// when the parameters take more than the 2 GiB one ONNX file can hold.
pub fn onnx_model<M: Network>(varmap: &VarMap, options: &OnnxOptions) -> Result<ModelProto> {
    let mut g = Graph::new();
    let out = M::onnx(&mut g, "", Graph::input())?;
    let mut initializer = Vec::with_capacity(g.params.len() + g.constants.len());
    {
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| Error::invalid("onnx export", "the VarMap's lock is poisoned"))?;
        for path in &g.params {
            let var = vars.get(path).ok_or_else(|| {
                Error::invalid(
                    "onnx export",
                    format!("{} reads parameter `{path}`, which the VarMap lacks; create the model with `{}::new` on this VarMap", M::NAME, M::NAME),
                )
            })?;
            let t = var.as_tensor().to_dtype(DType::F32)?;
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            initializer.push(TensorProto {
                dims: t.dims().iter().map(|d| *d as i64).collect(),
                data_type: FLOAT,
                name: path.clone(),
                raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            });
        }
    }
    initializer.append(&mut g.constants);
    // A protobuf message is at most 2 GiB; larger models need ONNX's external data files,
    // which this exporter does not write.
    let bytes: usize = initializer.iter().map(|t| t.raw_data.len()).sum();
    if bytes > MAX_PROTO_BYTES {
        return Err(Error::invalid(
            "onnx export",
            format!(
                "{}'s parameters take {:.2} GiB, over the 2 GiB a single ONNX file can hold (external data files are not written)",
                M::NAME,
                bytes as f64 / (1u64 << 30) as f64
            ),
        )
        .into());
    }
    let mut node = std::mem::take(&mut g.nodes);
    node.push(NodeProto {
        input: vec![out.name().into()],
        output: vec!["output".into()],
        name: "output".into(),
        op_type: "Identity".into(),
        attribute: vec![],
    });
    let input = Graph::input();
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "convnet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{}: input {:?} -> output {:?} per example",
            M::NAME,
            M::INPUT_SHAPE,
            M::OUTPUT_SHAPE
        ),
        graph: Some(GraphProto {
            node,
            name: M::NAME.into(),
            initializer,
            input: vec![value_info(input.name(), M::INPUT_SHAPE, options.batch)],
            output: vec![value_info("output", M::OUTPUT_SHAPE, options.batch)],
        }),
    })
}

/// Writes the ONNX model of `M` with the parameters in `varmap` to `path` (see
/// [`onnx_model`]); returns the bytes written. The file is written atomically
/// ([`crate::checkpoint::write_atomic`]: a temporary file beside it, fsynced and renamed), so
/// a failed write leaves no partial model there.
///
/// # Errors
/// Those of [`onnx_model`], and [`Error::Io`] when `path` cannot be written.
pub fn export_onnx<M: Network>(
    varmap: &VarMap,
    path: impl AsRef<Path>,
    options: &OnnxOptions,
) -> Result<usize> {
    let bytes = onnx_model::<M>(varmap, options)?.encode_to_vec();
    // Beside, fsynced and renamed into place: a failed write leaves no partial model.
    crate::checkpoint::write_atomic(path, &bytes)?;
    Ok(bytes.len())
}

/// The graph of `M` alone (no parameters needed): for tests and inspection.
///
/// # Errors
/// None today; a layer with no ONNX form would report here.
pub fn onnx_graph<M: Network>() -> Result<(Graph, Value)> {
    let mut g = Graph::new();
    let out = M::onnx(&mut g, "", Graph::input())?;
    Ok((g, out))
}

/// Reads an ONNX model back (written by [`export_onnx`]), for inspection and tests.
///
/// # Errors
/// [`Error::InvalidArgument`] when `bytes` is not a `ModelProto`.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(bytes)
        .map_err(|e| Error::invalid("onnx model", format!("does not decode: {e}")).into())
}

/// The bytes of `model` (what [`export_onnx`] writes).
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
