//! Keras 3 weights into the zoo's mini-Xception: `tests/fixtures/interop/mini_xception.keras`
//! (written by `scripts/interop_fixtures.py keras`: the book's model built and saved by Keras 3
//! with the JAX backend), read as `.keras` and as the `.weights.h5` inside it, reproduces
//! Keras' predictions.

use candle_core::{DType, Device};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::error::Error;
use convnet::interop::{load_keras, read_keras, weights_h5_of_keras, LoadOptions};
use convnet::prelude::*;
use std::path::PathBuf;

convnet::mini_xception!(
    /// The zoo's mini-Xception at the fixture's 32x32 (the weights do not depend on the size).
    MiniXception32, 32
);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(name)
}

fn loaded(path: &std::path::Path) -> MiniXception32 {
    let varmap = VarMap::new();
    let model =
        MiniXception32::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let report = load_keras(
        &varmap,
        &MiniXception32::summary(),
        "",
        path,
        &[],
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    // 1 + 5 conv2d, 10 separable (2 parts each), 10 batch norms (4 each), 1 dense (2).
    assert_eq!(report.matched.len(), 6 + 20 + 40 + 2, "{report}");
    model
}

/// max |sigmoid(ours) - keras|, asserted within 1e-4.
fn assert_matches_keras(model: &MiniXception32) -> f32 {
    let t =
        convnet::checkpoint::load_tensors(fixture("mini_xception.expected.safetensors")).unwrap();
    let logits = model.forward_t(&t["input"], false).unwrap();
    let ours = candle_nn::ops::sigmoid(&logits).unwrap();
    let gap: f32 = (ours - &t["output"])
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(gap <= 1e-4, "max |ours - keras| = {gap:e}");
    gap
}

#[test]
fn a_keras_archive_loads_and_reproduces_keras_predictions() {
    let gap = assert_matches_keras(&loaded(&fixture("mini_xception.keras")));
    println!("mini_xception.keras: max |ours - keras| = {gap:e}");
}

#[test]
fn a_weights_h5_file_loads_and_reproduces_keras_predictions() {
    let dir = std::env::temp_dir().join(format!("interop-keras-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mini_xception.weights.h5");
    std::fs::write(
        &path,
        weights_h5_of_keras(fixture("mini_xception.keras")).unwrap(),
    )
    .unwrap();
    let layers = read_keras(&path).unwrap();
    assert!(layers
        .iter()
        .any(|l| l.name == "separable_conv2d_9" && l.vars.len() == 2));
    assert_matches_keras(&loaded(&path));
    let _ = std::fs::remove_dir_all(&dir);
}

convnet! {
    /// Not mini-Xception: one separable convolution too wide, no dense layer.
    pub NotMiniXception(3, 32, 32) -> (64) {
        conv2d(32, 5, bias = false),
        batch_norm, relu,
        separable_conv2d(64, 3, padding = same, bias = false),
        global_avg_pool2d,
    }
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
