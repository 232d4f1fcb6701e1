//! The zoo and torchvision's weight files: every zoo model's variables are torchvision's keys
//! and shapes, name for name (`tests/fixtures/torchvision/*.keys`; always run), and, with `CONVNET_TORCHVISION_DIR` (written by `scripts/interop_fixtures.py
//! zoo DIR`, which then runs this test), loads torchvision's `torch.save` file of each model,
//! reproduces torchvision's eval-mode output to 1e-4 and exports the weights back with
//! torchvision's names for the script to load with `strict=True`.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use convnet::interop::{export_pytorch, load_pytorch, LoadOptions, ParamList};
use convnet::prelude::*;
use convnet::zoo::torchvision::Torchvision;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MobileNetV3Large, ResNeXt50, ResNet18, ResNet50, Vgg16,
};
use std::path::Path;

convnet! {
    use convnet::zoo::{basic, basic_down, stem, squeeze_excitation};

    // Defaults of the importing invocation that the zoo's blocks must not pick up.
    defaults { conv2d(bias = false), batch_norm(eps = 1e-3) }

    /// ResNet-18 rebuilt from the zoo's exported blocks in another invocation.
    pub ResNet18FromBlocks(3, 224, 224) -> (1000) {
        _: stem(),
        layer1: sequential { basic(64), basic(64) },
        layer2: sequential { basic_down(128), basic(128) },
        layer3: sequential { basic_down(256), basic(256) },
        layer4: sequential { basic_down(512), basic(512) },
        global_avg_pool2d,
        fc: linear(1000),
    }

    /// The zoo's squeeze-excitation keeps its biases under a caller's `conv2d(bias = false)`.
    pub Se(16, 4, 4) -> (16, 4, 4) { se: squeeze_excitation(4) }
}

fn build<M: Torchvision>() -> (VarMap, M, ParamList) {
    let varmap = VarMap::new();
    let model = M::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<M>(&varmap).unwrap();
    (varmap, model, params)
}

/// torchvision's keys and shapes of `M`'s counterpart (`tests/fixtures/torchvision/`).
fn torchvision_keys<M: Torchvision>() -> ParamList {
    let path = format!(
        "{}/tests/fixtures/torchvision/{}.keys",
        env!("CARGO_MANIFEST_DIR"),
        M::TORCHVISION
    );
    ParamList::parse_keys(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The zoo model's variables are torchvision's keys with torchvision's shapes, name for
/// name, and pair with them by name (no key left over on either side).
fn names_are_torchvision_keys<M: Torchvision>() {
    let (_, _, params) = build::<M>();
    let name = M::TORCHVISION;
    let sorted = |p: &ParamList| {
        let mut e = p.entries.clone();
        e.sort();
        e
    };
    let (ours, theirs) = (sorted(&params), sorted(&torchvision_keys::<M>()));
    let missing: Vec<_> = theirs
        .iter()
        .filter(|k| !ours.contains(k))
        .take(5)
        .collect();
    let extra: Vec<_> = ours
        .iter()
        .filter(|k| !theirs.contains(k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: torchvision's keys we lack (first 5): {missing:?}; ours torchvision lacks: {extra:?}"
    );
    assert_eq!(ours, theirs, "{name}");
    let names = M::naming().unwrap().their_names(&params).unwrap();
    for ((ours, _), (theirs, _)) in params.entries.iter().zip(&names) {
        assert_eq!(
            ours, theirs,
            "{name}: by name, every variable keeps its name"
        );
    }
}

#[test]
fn every_zoo_model_names_its_variables_as_torchvision() {
    names_are_torchvision_keys::<ResNet18>();
    names_are_torchvision_keys::<ResNet50>();
    names_are_torchvision_keys::<ResNeXt50>();
    names_are_torchvision_keys::<DenseNet121>();
    names_are_torchvision_keys::<GoogLeNet>();
    names_are_torchvision_keys::<EfficientNetB0>();
    names_are_torchvision_keys::<MobileNetV3Large>();
    names_are_torchvision_keys::<Vgg16>();
}

#[test]
fn resnet18_names_are_torchvision_names() {
    let (_, _, params) = build::<ResNet18>();
    let names = convnet::interop::pytorch_names(&params, &ResNet18::naming().unwrap()).unwrap();
    let has = |key: &str| names.iter().any(|(o, t)| o == key && t == key);
    assert!(has("conv1.weight"));
    assert!(has("layer2.0.downsample.0.weight"));
    assert!(has("layer4.1.bn2.running_var"));
    assert!(has("fc.bias"));
}

/// The zoo's exported blocks carry torchvision's names and arguments into any invocation.
#[test]
fn the_zoos_blocks_keep_torchvision_names_in_another_invocation() {
    let varmap = VarMap::new();
    ResNet18FromBlocks::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let mut ours = ParamList::of::<ResNet18FromBlocks>(&varmap)
        .unwrap()
        .entries;
    ours.sort();
    let mut theirs = torchvision_keys::<ResNet18>().entries;
    theirs.sort();
    assert_eq!(ours, theirs);
    assert_eq!(ResNet18FromBlocks::TOTAL_PARAMS, ResNet18::TOTAL_PARAMS);
    let varmap = VarMap::new();
    Se::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let names = varmap.data().lock().unwrap();
    assert!(names.contains_key("se.fc1.bias") && names.contains_key("se.fc2.bias"));
}

fn check<M: Torchvision>(dir: &Path) {
    let name = M::TORCHVISION;
    let (varmap, model, params) = build::<M>();
    let report = load_pytorch(
        &varmap,
        &params,
        dir.join(format!("{name}.pth")),
        &M::naming().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let expected =
        convnet::checkpoint::load_tensors(dir.join(format!("{name}.expected.safetensors")))
            .unwrap();
    let got = model.forward_t(&expected["input"], false).unwrap();
    let want: &Tensor = &expected["output"];
    let gap = max_abs_diff(&got, want);
    let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    println!(
        "{name}: {} tensors ({} reshaped, {} ignored), max |ours - torchvision| {gap:.3e} (max |y| {scale:.3})",
        report.matched.len(),
        report.reshaped(),
        report.ignored.len()
    );
    assert!(gap <= 1e-4 * scale.max(1.0), "{name}: {gap:e}");
    export_pytorch(
        &varmap,
        &params,
        &M::naming().unwrap(),
        dir.join(format!("{name}.export.safetensors")),
    )
    .unwrap();
}

#[test]
#[ignore = "needs torchvision's files: run scripts/interop_fixtures.py zoo DIR (torch, torchvision)"]
fn zoo_models_load_torchvision_files_and_match_torchvision() {
    let dir = std::env::var("CONVNET_TORCHVISION_DIR")
        .expect("CONVNET_TORCHVISION_DIR: the folder scripts/interop_fixtures.py zoo wrote");
    let dir = Path::new(&dir);
    check::<ResNet18>(dir);
    check::<ResNet50>(dir);
    check::<ResNeXt50>(dir);
    check::<DenseNet121>(dir);
    check::<GoogLeNet>(dir);
    check::<EfficientNetB0>(dir);
    check::<MobileNetV3Large>(dir);
    check::<Vgg16>(dir);
}
