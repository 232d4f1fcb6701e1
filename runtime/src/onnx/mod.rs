//! ONNX export of any `convnet!` model (`docs/onnx.md`).
//!
//! The graph comes from the compile-time graph: `convnet!` generates each model's
//! [`Network::onnx`](crate::model::Network::onnx), which calls one function of [`ops`] per
//! layer with its path and resolved facts (padding, shapes), so fused layers come out as their
//! parts and skips, merges and nested models as the values they read. The parameters are
//! initializers named by their variable paths (`block1.conv2.weight`), filled from the
//! `VarMap` by [`export_onnx`]; the batch dim is symbolic (`batch`).
//!
//! - `proto.rs`: the ONNX protobuf messages (hand-declared for `prost`);
//! - `graph.rs`: the graph builder ([`Graph`], [`Value`]);
//! - `ops.rs`: what each layer becomes;
//! - `export.rs`: the model file.
//!
//! Opset 17 (IR version 8): every op used exists there in its current form (`Softmax` over one
//! axis and `Pad`, `Slice`, `Unsqueeze`, `Resize` with inputs since 13; `ReduceMean`'s axes
//! still an attribute, as until 18), and onnxruntime 1.12+ (2022) and other runtimes run it.

pub mod export;
pub mod graph;
pub mod ops;
pub mod proto;

pub use export::{decode_model, encode_model, export_onnx, onnx_graph, onnx_model, OnnxOptions};
pub use graph::{join, Graph, Value};

/// The opset of the default domain the exporter writes.
pub const OPSET: i64 = 17;
/// The IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;
