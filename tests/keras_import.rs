//! Keras 3 weights into `convnet!` models: the book's mini-Xception, built and trained in
//! Keras 3 (`scripts/keras_fixture.py`), loads into `zoo::MiniXception` from both of Keras'
//! files and reproduces Keras' predictions; files that do not fit are refused before
//! anything changes.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::checkpoint::snapshot;
use convnet::error::Error;
use convnet::keras::{
    load_keras_weights, read_layers, weights_of_archive, KerasClass, KerasImport,
};
use convnet::prelude::*;
use convnet::zoo::MiniXception;
use std::path::PathBuf;

/// A fixture file. `mini_xception.weights.h5` is not committed: it is the `model.weights.h5`
/// of `mini_xception.keras` (the format `model.save_weights` writes), written into the target
/// directory once per test process, which keeps 3 MB out of the repository.
fn fixture(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras");
    if name != "mini_xception.weights.h5" {
        return dir.join(name);
    }
    static EXTRACTED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXTRACTED
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
            let bytes = weights_of_archive(&dir.join("mini_xception.keras")).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .clone()
}

/// Keras' input images (NHWC u8) as the model's NCHW f32, and Keras' logits and
/// probabilities.
fn keras_io() -> (Tensor, Tensor, Tensor) {
    let io = candle_core::safetensors::load(fixture("mini_xception_io.safetensors"), &Device::Cpu)
        .unwrap();
    let x = io["input"]
        .to_dtype(DType::F32)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap();
    (x, io["logits"].clone(), io["probabilities"].clone())
}

fn new_model() -> (VarMap, MiniXception) {
    let varmap = VarMap::new();
    let model =
        MiniXception::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    (varmap, model)
}

fn assert_reproduces_keras(file: &str) {
    let (varmap, model) = new_model();
    load_keras_weights::<MiniXception>(&varmap, fixture(file)).unwrap();
    let (x, logits, probabilities) = keras_io();
    let ours = model.forward_t(&x, false).unwrap();
    let d_logits = max_abs_diff(&ours, &logits);
    let d_prob = max_abs_diff(&candle_nn::ops::sigmoid(&ours).unwrap(), &probabilities);
    println!("{file}: max |logit - Keras| = {d_logits:e}, max |p - Keras| = {d_prob:e}");
    assert!(
        d_logits <= 1e-4,
        "{file}: logits differ from Keras' by {d_logits}"
    );
    assert!(
        d_prob <= 1e-4,
        "{file}: probabilities differ from Keras' by {d_prob}"
    );
}

#[test]
fn mini_xception_from_weights_h5_reproduces_keras() {
    assert_reproduces_keras("mini_xception.weights.h5");
}

#[test]
fn mini_xception_from_keras_archive_reproduces_keras() {
    assert_reproduces_keras("mini_xception.keras");
}

#[test]
fn both_files_list_the_same_layers_in_the_same_order() {
    let h5 = read_layers(&fixture("mini_xception.weights.h5")).unwrap();
    let archive = read_layers(&fixture("mini_xception.keras")).unwrap();
    let names = |l: &[convnet::keras::KerasLayer]| -> Vec<(KerasClass, String)> {
        let mut v: Vec<_> = l.iter().map(|l| (l.class, l.name.clone())).collect();
        v.sort_by_key(|(c, _)| *c); // per class, the file's order is kept (stable sort)
        v
    };
    assert_eq!(names(&h5), names(&archive));
    // 6 Conv2D, 10 SeparableConv2D, 10 BatchNormalization, 1 Dense.
    assert_eq!(h5.len(), 27);
}

convnet! {
    /// Mini-Xception with one block fewer: the Keras file has more layers than it.
    pub ShortXception(3, 180, 180) -> (1) {
        rescale(1.0 / 255.0),
        conv2d(32, 5, bias = false),
        for size in [32, 64, 128, 256] {
            residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                max_pool2d(3, stride = 2, padding = same),
            }
        }
        global_avg_pool2d, dropout(0.5), linear(1),
    }

    /// The same layers as mini-Xception, but wider at the stem: every count pairs up, some
    /// shapes do not.
    pub WideXception(3, 180, 180) -> (1) {
        rescale(1.0 / 255.0),
        conv2d(48, 5, bias = false),
        for size in [32, 64, 128, 256, 512] {
            residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                max_pool2d(3, stride = 2, padding = same),
            }
        }
        global_avg_pool2d, dropout(0.5), linear(1),
    }
}

#[test]
fn a_model_with_other_layer_counts_is_refused_naming_them() {
    let varmap = VarMap::new();
    ShortXception::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let before = snapshot(&varmap).unwrap();
    let err = load_keras_weights::<ShortXception>(&varmap, fixture("mini_xception.keras"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ShortXception has 5 `conv2d` layer(s)"),
        "{err}"
    );
    assert!(err.contains("the file has 6 `Conv2D` layer(s)"), "{err}");
    assert!(err.contains("conv2d_5"), "{err}");
    let after = snapshot(&varmap).unwrap();
    for (name, t) in &before {
        assert_eq!(max_abs_diff(t, &after[name]), 0.0, "{name} changed");
    }
}

#[test]
fn mis_shaped_weights_are_listed_with_both_shapes_and_nothing_changes() {
    let varmap = VarMap::new();
    WideXception::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let before = snapshot(&varmap).unwrap();
    let err = load_keras_weights::<WideXception>(&varmap, fixture("mini_xception.weights.h5"))
        .unwrap_err();
    let Some(Error::CheckpointMismatch { tensors, .. }) = Error::find(&err) else {
        panic!("expected a CheckpointMismatch, got {err}");
    };
    let conv1 = tensors
        .iter()
        .find(|t| t.tensor == "conv1.weight")
        .expect("conv1.weight listed");
    assert_eq!(conv1.expected, Some(vec![48, 3, 5, 5]));
    assert_eq!(conv1.found, Some(vec![32, 3, 5, 5]));
    let after = snapshot(&varmap).unwrap();
    for (name, t) in &before {
        assert_eq!(max_abs_diff(t, &after[name]), 0.0, "{name} changed");
    }
}

#[test]
fn an_explicit_pair_overrides_the_order() {
    // Swapping two projections by hand moves their (differently shaped) kernels: the strict
    // check then names both, which shows the pairs were used.
    let (varmap, _model) = new_model();
    let err = KerasImport::new()
        .pair("conv2d_1", "block2.project")
        .pair("conv2d_2", "block1.project")
        .load::<MiniXception>(&varmap, fixture("mini_xception.keras"))
        .unwrap_err();
    let Some(Error::CheckpointMismatch { tensors, .. }) = Error::find(&err) else {
        panic!("expected a CheckpointMismatch, got {err}");
    };
    let names: Vec<&str> = tensors.iter().map(|t| t.tensor.as_str()).collect();
    assert_eq!(names, ["block1.project.weight", "block2.project.weight"]);
}

#[test]
fn a_damaged_file_is_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("convnet-keras-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(fixture("mini_xception.weights.h5")).unwrap();
    for (name, content) in [
        ("truncated.weights.h5", &bytes[..bytes.len() / 3]),
        ("empty.weights.h5", &bytes[..0]),
        ("text.keras", b"PK not really a zip".as_slice()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let (varmap, _model) = new_model();
        let err = load_keras_weights::<MiniXception>(&varmap, &path).unwrap_err();
        assert!(
            matches!(Error::find(&err), Some(Error::Checkpoint { .. })),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

convnet! {
    /// `every_kind()` of `scripts/keras_fixture.py`, layer for layer: every Keras class the
    /// import knows, a `Dense` after a `Flatten` of an image among them.
    pub KerasKinds(3, 16, 16) -> (5) {
        conv2d(8, 3, padding = same),
        batch_norm,
        relu,
        depthwise_conv2d(3, multiplier = 2, padding = same),
        layer_norm2d(eps = 1e-3),
        separable_conv2d(12, 3, stride = 2, padding = same),
        group_norm(4, eps = 1e-3),
        conv_transpose2d(6, 2, stride = 2),
        max_pool2d(4),
        flatten,
        linear(5),
    }
}

#[test]
fn every_loadable_keras_class_reproduces_keras() {
    let io =
        candle_core::safetensors::load(fixture("every_kind_io.safetensors"), &Device::Cpu).unwrap();
    let x = io["input"]
        .permute((0, 3, 1, 2))
        .unwrap()
        .contiguous()
        .unwrap();
    for file in ["every_kind.weights.h5", "every_kind.keras"] {
        let varmap = VarMap::new();
        let model =
            KerasKinds::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        load_keras_weights::<KerasKinds>(&varmap, fixture(file)).unwrap();
        let d = max_abs_diff(&model.forward_t(&x, false).unwrap(), &io["outputs"]);
        println!("{file}: max |ours - Keras| = {d:e}");
        assert!(d <= 1e-4, "{file}: outputs differ from Keras' by {d}");
    }
}
