//! Keras 3 weights through `interop::load_keras`, the path `examples/fine_tune.rs` takes: a
//! backbone under a prefix with the file's classifier ignored, and the strict report for a
//! file of another model. The conversions themselves are checked against Keras' predictions
//! in `tests/keras_import.rs`, on the same fixture.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::error::Error;
use convnet::interop::{load_keras, LoadOptions};
use convnet::prelude::*;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras")
        .join(name)
}

convnet! {
    /// Mini-Xception without its head: what a fine-tuning run puts under `backbone.`.
    pub Backbone(3, 180, 180) -> (512) {
        rescale(1.0 / 255.0),
        conv2d(32, 5, bias = false),
        for size in [32, 64, 128, 256, 512] {
            residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                max_pool2d(3, stride = 2, padding = same),
            }
        }
        global_avg_pool2d,
    }

    /// Not mini-Xception: one separable convolution too wide, no dense layer.
    pub NotMiniXception(3, 32, 32) -> (64) {
        conv2d(32, 5, bias = false),
        batch_norm, relu,
        separable_conv2d(64, 3, padding = same, bias = false),
        global_avg_pool2d,
    }
}

#[test]
fn a_backbone_loads_under_a_prefix_with_the_classifier_ignored() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let backbone = Backbone::new(vb.pp("backbone")).unwrap();
    let report = load_keras(
        &varmap,
        &Backbone::summary(),
        "backbone",
        fixture("mini_xception.keras"),
        &["^layers/dense"],
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    // 6 conv2d, 10 separable (2 parts each), 10 batch norms (4 each).
    assert_eq!(report.matched.len(), 6 + 20 + 40, "{report}");
    // The loaded backbone's features, times the file's dense kernel, are Keras' logits.
    let io = candle_core::safetensors::load(fixture("mini_xception_io.safetensors"), &Device::Cpu)
        .unwrap();
    let x = io["input"]
        .to_dtype(DType::F32)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap();
    let features = backbone.forward_t(&x, false).unwrap();
    assert_eq!(features.dims(), &[2, 512]);
    let dense = convnet::keras::read_layers(&fixture("mini_xception.keras"))
        .unwrap()
        .into_iter()
        .find(|l| l.name == "dense")
        .expect("the file's classifier");
    let logits = features
        .matmul(&dense.vars[0])
        .unwrap()
        .broadcast_add(&dense.vars[1])
        .unwrap();
    let gap = max_abs_diff(&logits, &io["logits"]);
    assert!(gap <= 1e-4, "max |ours - keras| = {gap:e}");
}

#[test]
fn a_keras_file_for_another_model_gets_the_strict_report() {
    let varmap = VarMap::new();
    NotMiniXception::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let before: Vec<f32> = varmap.data().lock().unwrap()["sep1.pointwise.weight"]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let err = load_keras(
        &varmap,
        &NotMiniXception::summary(),
        "",
        fixture("mini_xception.keras"),
        &[],
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("tensor `sep1.pointwise.weight` has shape [32, 32, 1, 1] in the checkpoint but the model expects [64, 32, 1, 1]"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected tensor `layers/dense/vars/0` of shape [512, 1]"),
        "{msg}"
    );
    assert!(matches!(
        Error::find(&err),
        Some(Error::CheckpointMismatch { .. })
    ));
    let after: Vec<f32> = varmap.data().lock().unwrap()["sep1.pointwise.weight"]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(before, after, "a refused load changes nothing");
}
