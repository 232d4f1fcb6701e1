//! The zoo and torchvision's weight files: every zoo model pairs with torchvision's key list
//! (always run), and, with `CONVNET_TORCHVISION_DIR` (written by `scripts/interop_fixtures.py
//! zoo DIR`, which then runs this test), loads torchvision's `torch.save` file of each model,
//! reproduces torchvision's eval-mode output to 1e-4 and exports the weights back with
//! torchvision's names for the script to load with `strict=True`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use convnet::interop::{export_pytorch, load_pytorch, LoadOptions, ParamList};
use convnet::zoo::torchvision::Torchvision;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MobileNetV3Large, ResNeXt50, ResNet18, ResNet50, Vgg16,
};
use std::path::Path;

fn build<M: Torchvision>() -> (VarMap, M, ParamList) {
    let varmap = VarMap::new();
    let model = M::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<M>(&varmap).unwrap();
    (varmap, model, params)
}

/// Every variable pairs with a torchvision key of a fitting shape, and the names are distinct.
fn pairs<M: Torchvision>() {
    let (_, _, params) = build::<M>();
    let names = M::naming().unwrap().their_names(&params).unwrap();
    assert_eq!(names.len(), params.entries.len(), "{}", M::TORCHVISION);
    let mut distinct: Vec<&String> = names.iter().map(|(n, _)| n).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "{}", M::TORCHVISION);
}

#[test]
fn every_zoo_model_pairs_with_torchvision_keys() {
    pairs::<ResNet18>();
    pairs::<ResNet50>();
    pairs::<ResNeXt50>();
    pairs::<DenseNet121>();
    pairs::<GoogLeNet>();
    pairs::<EfficientNetB0>();
    pairs::<MobileNetV3Large>();
    pairs::<Vgg16>();
}

#[test]
fn resnet18_names_are_torchvision_names() {
    let (_, _, params) = build::<ResNet18>();
    let names = convnet::interop::pytorch_names(&params, &ResNet18::naming().unwrap()).unwrap();
    let find = |ours: &str| {
        names
            .iter()
            .find(|(o, _)| o == ours)
            .map(|(_, t)| t.as_str())
    };
    assert_eq!(find("stem1.conv1.weight"), Some("conv1.weight"));
    assert_eq!(
        find("basic_down1.block1.project.conv1.weight"),
        Some("layer2.0.downsample.0.weight")
    );
    assert_eq!(find("linear1.bias"), Some("fc.bias"));
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
    let gap: f32 = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
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
