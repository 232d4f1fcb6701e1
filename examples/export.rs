//! Exports a model for PyTorch (a safetensors file with PyTorch's names) or as ONNX.
//!
//! ```text
//! cargo run --release --example export -- runs/cats_vs_dogs/best --pytorch weights.safetensors
//! cargo run --release --example export -- runs/cats_vs_dogs/best --onnx model.onnx
//! cargo run --release --example export -- --zoo resnet18 [--weights FILE] --pytorch weights.safetensors
//! cargo run --release --example export -- --zoo resnet18 [--weights FILE] --onnx model.onnx
//! ```
//!
//! A checkpoint of the main job (mini-Xception, no PyTorch counterpart) is written under the
//! model's own parameter names (`block1.sep1.depthwise.weight`, ...), which a PyTorch port
//! of it names its modules after. A zoo model with a torchvision counterpart is written under
//! torchvision's names (`convnet::zoo::torchvision`), which torchvision's model loads with
//! `load_state_dict(..., strict=True)`; its weights come from `--weights` (a torchvision
//! file) or, without it, from the seeded initialisation. `--onnx` writes the model as ONNX (opset
//! 17, a dynamic batch, parameters named by their variable paths; `docs/onnx.md`), for any
//! zoo model (mini_xception and unet too) or a checkpoint.

use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use convnet::checkpoint::load_checkpoint_weights;
use convnet::error::Error;
use convnet::init::seeded_var_builder;
use convnet::interop::{export_pytorch, load_pytorch, LoadOptions, Naming, ParamList};
use convnet::onnx::{export_onnx, OnnxOptions};
use convnet::prelude::*;
use convnet::train::load_state;
use convnet::zoo::torchvision::Torchvision;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MiniXception, MobileNetV3Large, ResNeXt50, ResNet18,
    ResNet50, UNet, Vgg16,
};
use std::path::{Path, PathBuf};

mod models;
/// The README's commands and flags, checked against `--help` by the tests.
#[cfg(test)]
#[allow(dead_code)]
mod readme_check;
mod tuning;

use models::with_mini_xception;

#[derive(Parser, Debug)]
#[command(about = "Export a checkpoint or a zoo model: weights with PyTorch's names, or ONNX")]
struct Args {
    /// A checkpoint directory of the main job (cats_vs_dogs).
    checkpoint: Option<PathBuf>,
    /// A zoo model instead: resnet18, resnet50, resnext50_32x4d, densenet121, googlenet,
    /// efficientnet_b0, mobilenet_v3_large, vgg16; for --onnx also mini_xception, unet.
    #[arg(long)]
    zoo: Option<String>,
    /// With --zoo: its weights (torchvision's `torch.save` file or safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The safetensors file to write.
    #[arg(long)]
    pytorch: Option<PathBuf>,
    /// The ONNX model to write (opset 17, dynamic batch; `docs/onnx.md`).
    #[arg(long)]
    onnx: Option<PathBuf>,
}

/// Where to write: a safetensors file with PyTorch's names, an ONNX model, or both.
struct Outputs<'a> {
    pytorch: Option<&'a Path>,
    onnx: Option<&'a Path>,
}

/// Writes the ONNX model of `M` with the parameters in `varmap` (dynamic batch).
fn write_onnx<M: Network>(varmap: &VarMap, out: &Path) -> Result<()> {
    let bytes = export_onnx::<M>(varmap, out, &OnnxOptions::default())?;
    println!(
        "{}: ONNX (opset {}, input [batch, {}]) {:.1} MB -> {}",
        M::NAME,
        convnet::onnx::OPSET,
        M::INPUT_SHAPE
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        bytes as f64 / 1e6,
        out.display()
    );
    Ok(())
}

fn export_checkpoint<M: Network>(dir: &Path, out: &Outputs) -> Result<()> {
    let varmap = VarMap::new();
    M::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    load_checkpoint_weights(&varmap, dir)?;
    if let Some(file) = out.pytorch {
        let params = ParamList::of::<M>(&varmap)?;
        export_pytorch(&varmap, &params, &Naming::by_name(), file)?;
        println!(
            "{}: {} tensors -> {}",
            M::NAME,
            params.entries.len(),
            file.display()
        );
    }
    if let Some(file) = out.onnx {
        write_onnx::<M>(&varmap, file)?;
    }
    Ok(())
}

/// A zoo model's variables: the seeded initialisation, or `weights` (by torchvision's names,
/// which are the zoo's own).
fn zoo_varmap<M: Torchvision>(weights: Option<&Path>) -> Result<VarMap> {
    let varmap = VarMap::new();
    M::new(seeded_var_builder(&varmap, 1, DType::F32, &Device::Cpu))?;
    if let Some(file) = weights {
        let params = ParamList::of::<M>(&varmap)?;
        let report = load_pytorch(
            &varmap,
            &params,
            file,
            &M::naming()?,
            &LoadOptions::default(),
        )?;
        print!("{report}");
    }
    Ok(varmap)
}

fn export_zoo<M: Torchvision>(weights: Option<&Path>, out: &Outputs) -> Result<()> {
    let varmap = zoo_varmap::<M>(weights)?;
    if let Some(file) = out.pytorch {
        let params = ParamList::of::<M>(&varmap)?;
        export_pytorch(&varmap, &params, &M::naming()?, file)?;
        println!(
            "{} as torchvision's {}: {} tensors -> {}",
            M::NAME,
            M::TORCHVISION,
            params.entries.len(),
            file.display()
        );
    }
    if let Some(file) = out.onnx {
        write_onnx::<M>(&varmap, file)?;
    }
    Ok(())
}

/// A zoo model without a torchvision counterpart (ONNX only): its own names for `weights`
/// (a safetensors or `torch.save` file), else the seeded initialisation.
fn export_zoo_own<M: Network>(weights: Option<&Path>, out: &Outputs) -> Result<()> {
    if out.pytorch.is_some() {
        return Err(Error::invalid(
            "--pytorch",
            format!("{} has no torchvision counterpart; use --onnx", M::NAME),
        )
        .into());
    }
    let varmap = VarMap::new();
    M::new(seeded_var_builder(&varmap, 1, DType::F32, &Device::Cpu))?;
    if let Some(file) = weights {
        let params = ParamList::of::<M>(&varmap)?;
        let report = load_pytorch(
            &varmap,
            &params,
            file,
            &Naming::by_name(),
            &LoadOptions::default(),
        )?;
        print!("{report}");
    }
    match out.onnx {
        Some(file) => write_onnx::<M>(&varmap, file),
        None => Ok(()),
    }
}

fn run(args: &Args) -> Result<()> {
    let out = Outputs {
        pytorch: args.pytorch.as_deref(),
        onnx: args.onnx.as_deref(),
    };
    if out.pytorch.is_none() && out.onnx.is_none() {
        return Err(Error::invalid(
            "arguments",
            "give --pytorch FILE.safetensors, --onnx FILE.onnx, or both",
        )
        .into());
    }
    match (&args.checkpoint, &args.zoo) {
        (Some(dir), None) => {
            let info = load_state(dir)?
                .model
                .ok_or_else(|| Error::checkpoint(dir, "records no model"))?;
            let size = match info.input_shape[..] {
                [3, h, w] if h == w && info.name.starts_with("MiniXception") => h,
                _ => {
                    return Err(Error::checkpoint(
                        dir,
                        format!(
                            "holds model {}; this program knows mini-Xception",
                            info.name
                        ),
                    )
                    .into())
                }
            };
            with_mini_xception!(size, export_checkpoint(dir, &out))
        }
        (None, Some(name)) => {
            let w = args.weights.as_deref();
            match name.as_str() {
                "resnet18" => export_zoo::<ResNet18>(w, &out),
                "resnet50" => export_zoo::<ResNet50>(w, &out),
                "resnext50_32x4d" => export_zoo::<ResNeXt50>(w, &out),
                "densenet121" => export_zoo::<DenseNet121>(w, &out),
                "googlenet" => export_zoo::<GoogLeNet>(w, &out),
                "efficientnet_b0" => export_zoo::<EfficientNetB0>(w, &out),
                "mobilenet_v3_large" => export_zoo::<MobileNetV3Large>(w, &out),
                "vgg16" => export_zoo::<Vgg16>(w, &out),
                "mini_xception" => export_zoo_own::<MiniXception>(w, &out),
                "unet" => export_zoo_own::<UNet>(w, &out),
                other => Err(Error::invalid("--zoo", format!("no zoo model `{other}`")).into()),
            }
        }
        (None, None) => {
            Err(Error::invalid("arguments", "give a CHECKPOINT_DIR or --zoo NAME").into())
        }
        _ => {
            Err(Error::invalid("arguments", "give a CHECKPOINT_DIR or --zoo NAME, not both").into())
        }
    }
}

fn main() {
    tuning::apply();
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_the_readme_names_exist() {
        readme_check::assert_flags_exist("export", Args::command());
    }
}
