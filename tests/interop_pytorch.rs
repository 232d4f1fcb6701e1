//! PyTorch weights into a network written in the DSL: `tests/fixtures/interop/all_kinds*`,
//! written by `scripts/interop_fixtures.py fixtures` from a small PyTorch module with every
//! parameterised layer kind of the catalog (see the script), loaded here by order, by name
//! rules, and checked against PyTorch's eval-mode output.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::error::Error;
use convnet::interop::{
    export_pytorch, load_pytorch, read_pytorch, LoadOptions, Naming, ParamList,
};
use convnet::prelude::*;
use std::path::PathBuf;

convnet! {
    /// `AllKinds` of scripts/interop_fixtures.py, layer for layer.
    pub AllKinds(3, 16, 16) -> (5) {
        conv2d(8, 3, padding = 1),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        depthwise_conv2d(3, padding = 1),
        separable_conv2d(16, 3, padding = 1),
        conv2d(16, 3, padding = 1, groups = 4),
        group_norm(4),
        layer_norm2d(eps = 1e-6),
        layer_scale,
        conv_transpose2d(8, 2, stride = 2),
        relu,
        global_avg_pool2d,
        linear(12),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased),
        linear(5),
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(name)
}

fn fresh() -> (VarMap, AllKinds, ParamList) {
    let varmap = VarMap::new();
    let model = AllKinds::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<AllKinds>(&varmap).unwrap();
    (varmap, model, params)
}

/// PyTorch's eval-mode input and output for the fixtures.
fn expected() -> (Tensor, Tensor) {
    let t = convnet::checkpoint::load_tensors(fixture("all_kinds.expected.safetensors")).unwrap();
    (t["input"].clone(), t["output"].clone())
}

/// max |ours - torch|, asserted within 1e-4 (relative to the output's scale when above 1).
fn assert_matches_torch(model: &AllKinds) -> f32 {
    let (x, want) = expected();
    let got = model.forward_t(&x, false).unwrap();
    let gap = max_abs_diff(&got, &want);
    let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(gap <= 1e-4 * scale.max(1.0), "max |ours - torch| = {gap:e}");
    gap
}

fn values(varmap: &VarMap) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Our names to the PyTorch module's, as a user would write them for a safetensors file
/// (which keeps no order).
fn rules() -> Naming {
    let table = [
        (r"^conv1\.", "features.0."),
        (r"^bn1\.", "features.1."),
        (r"^depthwise1\.", "features.3."),
        (r"^sep1\.depthwise\.", "features.4."),
        (r"^sep1\.pointwise\.", "features.5."),
        (r"^conv2\.", "features.6."),
        (r"^gn1\.", "features.7."),
        (r"^ln1\.", "features.8."),
        (r"^layer_scale1\.gamma$", "features.9.layer_scale"),
        (r"^conv_transpose1\.", "features.10."),
        (r"^linear1\.", "features.13."),
        (r"^bn2\.", "head.1."),
        (r"^linear2\.", "head.2."),
    ];
    table
        .iter()
        .try_fold(Naming::by_name(), |n, (p, r)| n.rename(p, r))
        .unwrap()
}

#[test]
fn a_nested_torch_save_checkpoint_loads_by_order_and_matches_torch() {
    let (varmap, model, params) = fresh();
    let report = load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.pth"),
        &Naming::by_order(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.matched.len(), 28, "{report}");
    // The 1x1 convolution into `linear1` and the `(C, 1, 1)` layer scale.
    assert_eq!(report.reshaped(), 2, "{report}");
    assert_eq!(report.ignored.len(), 2, "num_batches_tracked: {report}");
    assert!(
        report.source.contains("state dict under `state_dict`"),
        "{report}"
    );
    let gap = assert_matches_torch(&model);
    println!("{report}max |ours - torch| = {gap:e}");
}

#[test]
fn a_flat_torch_save_file_loads_by_order() {
    let (varmap, model, params) = fresh();
    let path = fixture("all_kinds_flat.pth");
    let source = read_pytorch(&path, None).unwrap();
    assert!(source.ordered && source.key.is_none());
    assert_eq!(
        source.tensors[0].0, "features.0.weight",
        "the file's order is kept"
    );
    load_pytorch(
        &varmap,
        &params,
        &path,
        &Naming::by_order(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_matches_torch(&model);
}

#[test]
fn a_safetensors_file_loads_by_name_rules() {
    let (varmap, model, params) = fresh();
    let report = load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.safetensors"),
        &rules(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_matches_torch(&model);
}

#[test]
fn a_safetensors_file_cannot_be_paired_by_order() {
    let (varmap, _model, params) = fresh();
    let before = values(&varmap);
    let err = load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.safetensors"),
        &Naming::by_order(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("tensor `conv1.weight` is missing"), "{msg}");
    assert!(
        msg.contains("unexpected tensor `features.0.weight`"),
        "{msg}"
    );
    assert_eq!(values(&varmap), before, "a refused load changes nothing");
}

convnet! {
    /// `AllKinds` with one layer wider and one layer fewer: a file for another model.
    pub NotAllKinds(3, 16, 16) -> (5) {
        conv2d(8, 3, padding = 1),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        depthwise_conv2d(3, padding = 1),
        separable_conv2d(32, 3, padding = 1),
        global_avg_pool2d,
        linear(5),
    }
}

#[test]
fn a_file_for_another_model_gets_the_strict_report_and_changes_nothing() {
    let varmap = VarMap::new();
    NotAllKinds::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<NotAllKinds>(&varmap).unwrap();
    let before = values(&varmap);
    let err = load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.pth"),
        &Naming::by_order(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "tensor `sep1.pointwise.weight` as `features.5.weight` has shape [16, 8, 1, 1] \
             in the checkpoint but the model expects [32, 8, 1, 1]"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected tensor `head.2.weight` of shape [5, 12]"),
        "{msg}"
    );
    match Error::find(&err) {
        Some(Error::CheckpointMismatch { tensors, .. }) => {
            assert!(tensors.len() > 10, "every problem is listed: {tensors:?}")
        }
        other => panic!("expected CheckpointMismatch, got {other:?}"),
    }
    assert_eq!(values(&varmap), before, "a refused load changes nothing");

    // Asked for explicitly, a partial load takes what fits.
    let options = LoadOptions {
        partial: true,
        ..LoadOptions::default()
    };
    let report = load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.pth"),
        &Naming::by_order(),
        &options,
    )
    .unwrap();
    assert!(report.applied && !report.is_complete());
    assert!(report
        .matched
        .iter()
        .any(|m| m.ours == "conv1.weight" && m.theirs == "features.0.weight"));
    assert_ne!(values(&varmap), before);
}

#[test]
fn a_missing_key_or_a_damaged_file_is_a_clear_error() {
    let err = read_pytorch(fixture("all_kinds.pth"), Some("ema"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("all_kinds.pth") && err.contains("no state dict under the key `ema`"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("interop-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(fixture("all_kinds.pth")).unwrap();
    let damaged = dir.join("damaged.pth");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_pytorch(&damaged, None).unwrap_err().to_string();
    assert!(err.contains("damaged.pth"), "{err}");
    let err = read_pytorch(dir.join("absent.pth"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.pth"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_export_with_pytorch_names_loads_back_by_those_names() {
    let (varmap, _model, params) = fresh();
    load_pytorch(
        &varmap,
        &params,
        fixture("all_kinds.pth"),
        &Naming::by_order(),
        &LoadOptions::default(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("interop-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("all_kinds.safetensors");
    export_pytorch(&varmap, &params, &rules(), &path).unwrap();
    let written = convnet::checkpoint::load_tensors(&path).unwrap();
    let original = convnet::checkpoint::load_tensors(fixture("all_kinds.safetensors")).unwrap();
    let mut names: Vec<&String> = written.keys().collect();
    names.sort();
    let mut want: Vec<&String> = original.keys().collect();
    want.sort();
    // Every key of the PyTorch module, `num_batches_tracked` included.
    assert_eq!(names, want);
    let (again, model, params) = fresh();
    load_pytorch(&again, &params, &path, &rules(), &LoadOptions::default()).unwrap();
    assert_eq!(values(&again), values(&varmap));
    assert_matches_torch(&model);
    let _ = std::fs::remove_dir_all(&dir);
}
