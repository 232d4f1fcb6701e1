//! A whole torchvision weight file in CI: torchvision's EfficientNet-B0, initialised by
//! torchvision with a fixed seed and saved by `torch.save(model.state_dict())`
//! (`scripts/interop_fixtures.py zoo-fixture`; float16 to keep it at 10.6 MB), loads into
//! the zoo's `EfficientNetB0` by torchvision's names, strictly, and gives torchvision's
//! eval-mode output to 1e-4. The other zoo models are checked against torchvision by the
//! script (`zoo DIR`, figures in docs/interop.md): their files are 22 to 530 MB.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::interop::{load_pytorch, LoadOptions, ParamList};
use convnet::zoo::torchvision::Torchvision;
use convnet::zoo::EfficientNetB0;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

#[test]
fn torchvision_efficientnet_b0_file_loads_and_gives_torchvisions_output() {
    let varmap = VarMap::new();
    let model =
        EfficientNetB0::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<EfficientNetB0>(&varmap).unwrap();
    let report = load_pytorch(
        &varmap,
        &params,
        fixture("efficientnet_b0_f16.pth"),
        &EfficientNetB0::naming().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    let expected =
        convnet::checkpoint::load_tensors(fixture("efficientnet_b0_f16.expected.safetensors"))
            .unwrap();
    let input = expected["input"].to_dtype(DType::F32).unwrap();
    let want: &Tensor = &expected["output"];
    let got = model.forward_t(&input, false).unwrap();
    let gap = max_abs_diff(&got, want);
    println!("max |ours - torchvision| = {gap:.3e}");
    assert!(gap <= 1e-4, "max |ours - torchvision| = {gap}");
}
