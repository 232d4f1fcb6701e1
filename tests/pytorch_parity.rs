//! EfficientNet-B0 and the U-Net against their PyTorch definitions (torchvision's
//! `efficientnet_b0`, milesial's `UNet(3, 2, bilinear=False)`) on the same weights, forward in
//! eval mode, and the zoo's trainable-parameter counts against PyTorch's.
//!
//! The reference outputs and counts come from `scripts/pytorch_parity.py` (run with torch to
//! regenerate `tests/fixtures/pytorch_parity.safetensors`); no weights are stored: both sides
//! set every variable from the formula in `tests/common/formula_weights.rs`, keyed by the
//! convnet variable name. Asserted: `max |ours - torch| <= 1e-4 * max(1, max |torch|)`, where
//! torch's output is computed in float64 and `max |torch|` is over its whole output.

#[path = "common/formula_weights.rs"]
mod formula_weights;

use std::collections::{BTreeSet, HashMap};

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MobileNetV3Large, ResNeXt50, ResNet18, ResNet50, UNet,
    Vgg16,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/pytorch_parity.safetensors"
);

/// Relative tolerance: `max |ours - torch| <= TOLERANCE * max(1, max |torch|)`.
const TOLERANCE: f64 = 1e-4;

struct Fixture(HashMap<String, Tensor>);

impl Fixture {
    fn load() -> Result<Self> {
        Ok(Self(candle_core::safetensors::load(FIXTURE, &Device::Cpu)?))
    }

    fn get(&self, key: &str) -> Result<&Tensor> {
        self.0.get(key).ok_or_else(|| {
            candle_core::Error::msg(format!(
                "{FIXTURE} has no tensor `{key}`; regenerate it with scripts/pytorch_parity.py"
            ))
        })
    }

    /// The convnet variable names the script filled for `model`, sorted.
    fn names(&self, model: &str) -> Result<Vec<String>> {
        let bytes = self.get(&format!("{model}.names"))?.to_vec1::<u8>()?;
        let text = String::from_utf8(bytes).map_err(candle_core::Error::wrap)?;
        Ok(text.lines().map(str::to_owned).collect())
    }
}

/// Builds a model, sets its variables from the formula and checks that they are the ones the
/// script filled in PyTorch (so a renamed variable fails here, not as a numerical mismatch).
fn build<M>(
    new: impl FnOnce(VarBuilder) -> Result<M>,
    fixture: &Fixture,
    model: &str,
) -> Result<M> {
    let varmap = VarMap::new();
    let net = new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let ours: BTreeSet<String> = formula_weights::fill(&varmap)?.into_iter().collect();
    let theirs: BTreeSet<String> = fixture.names(model)?.into_iter().collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{model}: variables not set in PyTorch: {only_ours:?}; set in PyTorch but not in the \
         model: {only_theirs:?}"
    );
    Ok(net)
}

fn max_abs(t: &Tensor) -> Result<f64> {
    t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
}

/// `max |ours - torch|`, asserted within the tolerance relative to `scale` (max |torch|).
fn assert_close(what: &str, ours: &Tensor, torch: &Tensor, scale: f64) -> Result<f64> {
    assert_eq!(ours.dims(), torch.dims(), "{what}: shapes");
    let diff = max_abs(&(ours - torch)?)?;
    let bound = TOLERANCE * scale.max(1.0);
    println!(
        "{what}: max |ours - torch| = {diff:.3e} (bound {bound:.3e}, max |torch| = {scale:.4})"
    );
    assert!(
        diff <= bound,
        "{what}: max |ours - torch| = {diff:e} > {bound:e} (1e-4 * max(1, max |torch| = {scale}))"
    );
    Ok(diff)
}

#[test]
fn efficientnet_b0_matches_torchvision_in_eval_mode() -> Result<()> {
    let fixture = Fixture::load()?;
    let net = build(EfficientNetB0::new, &fixture, "efficientnet_b0")?;
    let x = formula_weights::input(&[2, 3, 224, 224])?;
    let ours = net.forward_t(&x, false)?.to_dtype(DType::F64)?;
    let torch = fixture.get("efficientnet_b0.logits")?;
    assert_close("efficientnet_b0 logits", &ours, torch, max_abs(torch)?)?;
    Ok(())
}

#[test]
fn unet_matches_milesial_pytorch_unet_in_eval_mode() -> Result<()> {
    let fixture = Fixture::load()?;
    let net = build(UNet::new, &fixture, "unet")?;
    let x = formula_weights::input(&[1, 3, 256, 256])?;
    let ours = net
        .forward_t(&x, false)?
        .to_dtype(DType::F64)?
        .flatten_all()?;
    assert_eq!(ours.elem_count(), 2 * 256 * 256);
    // max |torch| over the whole output, then mean and mean |y|.
    let stats = fixture.get("unet.stats")?.to_vec1::<f64>()?;
    let scale = stats[2];
    let index = fixture.get("unet.index")?;
    let sampled = ours.index_select(index, 0)?;
    assert_close(
        "unet output at 4096 positions",
        &sampled,
        fixture.get("unet.values")?,
        scale,
    )?;
    let mean = ours.mean_all()?.reshape(1)?;
    let abs_mean = ours.abs()?.mean_all()?.reshape(1)?;
    let torch_mean = Tensor::new(&[stats[0]], &Device::Cpu)?;
    let torch_abs_mean = Tensor::new(&[stats[1]], &Device::Cpu)?;
    assert_close("unet output mean", &mean, &torch_mean, scale)?;
    assert_close("unet output mean |y|", &abs_mean, &torch_abs_mean, scale)?;
    let our_max = max_abs(&ours)?;
    assert!(
        (our_max - scale).abs() <= TOLERANCE * scale.max(1.0),
        "unet max |y|: ours {our_max}, torch {scale}"
    );
    Ok(())
}

#[test]
fn trainable_counts_match_pytorch_definitions() -> Result<()> {
    let fixture = Fixture::load()?;
    for (name, ours) in [
        ("densenet121", DenseNet121::TRAINABLE_PARAMS),
        ("efficientnet_b0", EfficientNetB0::TRAINABLE_PARAMS),
        ("googlenet", GoogLeNet::TRAINABLE_PARAMS),
        ("mobilenet_v3_large", MobileNetV3Large::TRAINABLE_PARAMS),
        ("resnet18", ResNet18::TRAINABLE_PARAMS),
        ("resnet50", ResNet50::TRAINABLE_PARAMS),
        ("resnext50_32x4d", ResNeXt50::TRAINABLE_PARAMS),
        ("vgg16", Vgg16::TRAINABLE_PARAMS),
        ("unet", UNet::TRAINABLE_PARAMS),
    ] {
        let theirs = fixture.get(&format!("counts.{name}"))?.to_vec1::<i64>()?[0];
        assert_eq!(
            ours as i64, theirs,
            "{name}: trainable parameters, ours vs PyTorch"
        );
    }
    Ok(())
}

#[test]
fn formula_primitives_match_their_published_values() {
    // FNV-1a 64 test vectors, and the first output of splitmix64 seeded with 0.
    assert_eq!(formula_weights::fnv1a64(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(formula_weights::fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(formula_weights::splitmix64(0), 0xe220_a839_7b1d_cdaf);
}

#[test]
fn formula_covers_each_kind_of_variable_and_rejects_others() -> Result<()> {
    let gamma = formula_weights::formula("bn1.weight", &[64])?;
    assert!(gamma.iter().all(|g| (0.9..1.1).contains(g)));
    let var = formula_weights::formula("bn1.running_var", &[64])?;
    assert!(var.iter().all(|v| (1.0..1.5).contains(v)));
    let conv = formula_weights::formula("conv1.weight", &[8, 3, 3, 3])?;
    let bound = (6.0f32 / 27.0).sqrt();
    assert!(conv.iter().all(|w| w.abs() <= bound));
    assert_ne!(
        conv,
        formula_weights::formula("conv2.weight", &[8, 3, 3, 3])?
    );
    let err = formula_weights::formula("layer_scale1.gamma", &[8]).unwrap_err();
    assert!(err.to_string().contains("layer_scale1.gamma"), "{err}");
    Ok(())
}
