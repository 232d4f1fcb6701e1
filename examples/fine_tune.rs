//! Fine-tunes a zoo model from PyTorch or Keras weights under a new head, on an image folder
//! or on the built-in generated data:
//!
//! ```text
//! cargo run --release --example fine_tune -- --model resnet18 --weights resnet18-f37072fd.pth [--data DIR]
//! ```
//!
//! `--model` is any zoo model with a torchvision counterpart (`resnet18`, `resnet50`,
//! `resnext50_32x4d`, `densenet121`, `googlenet`, `efficientnet_b0`, `mobilenet_v3_large`,
//! `vgg16`) or `mini_xception`. The whole zoo model is built and its weights loaded: a
//! torchvision file by torchvision's names (`convnet::zoo::torchvision`), a Keras 3 file
//! (`.weights.h5`, `.keras`) by pairing layers by class and order. A file for another model
//! is refused with the strict report (every missing, unexpected and mis-shaped tensor) and the
//! run exits with status 1. The model's last top-level layer (its classifier) is then left
//! out: `Network::forward_features_t` gives the features a new linear head takes. By
//! default the backbone is frozen (no gradient work, no optimizer state, batch norm on its
//! moving statistics) and only the new head trains; `--unfreeze` trains the backbone too, at
//! `--backbone-lr-factor` times the head's rate (parameter groups). Without `--data`, circles
//! vs squares are generated into `--out`. It prints the loss of each step, the mean step time
//! (first step excluded) and the validation accuracy.

use candle_core::{DType, Device, Module, Result, Tensor};
use clap::Parser;
use convnet::data::{DataLoader, ImageFolder, SyntheticShapes};
use convnet::freeze::{freezing_var_builder, trainable_vars, Prefixes};
use convnet::grad_mode::no_grad;
use convnet::interop::{load_keras, load_pytorch, LoadOptions, LoadReport, Naming, ParamList};
use convnet::loss::sparse_categorical_cross_entropy;
use convnet::model::Network;
use convnet::optim::{split_by_prefix, Adam, AdamConfig, ParamGroups, TrainOptimizer};
use convnet::prelude::*;
use convnet::zoo::torchvision::Torchvision;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MiniXception, MobileNetV3Large, ResNeXt50, ResNet18,
    ResNet50, Vgg16,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The README's commands and flags, checked against `--help` by the tests.
#[cfg(test)]
#[allow(dead_code)]
mod readme_check;
mod tuning;

/// A fine-tuning run of one zoo model: the loss of each step.
type Run = fn(&Args) -> Result<Vec<f32>>;

/// What `--model` can be: each name with the run of its zoo model.
const MODELS: &[(&str, Run)] = &[
    ("resnet18", torchvision::<ResNet18>),
    ("resnet50", torchvision::<ResNet50>),
    ("resnext50_32x4d", torchvision::<ResNeXt50>),
    ("densenet121", torchvision::<DenseNet121>),
    ("googlenet", torchvision::<GoogLeNet>),
    ("efficientnet_b0", torchvision::<EfficientNetB0>),
    ("mobilenet_v3_large", torchvision::<MobileNetV3Large>),
    ("vgg16", torchvision::<Vgg16>),
    ("mini_xception", keras_only::<MiniXception>),
];

#[derive(Parser, Debug)]
#[command(about = "Fine-tune a zoo model from PyTorch or Keras weights under a new head")]
struct Args {
    /// The zoo model: resnet18, resnet50, resnext50_32x4d, densenet121, googlenet,
    /// efficientnet_b0, mobilenet_v3_large, vgg16 or mini_xception.
    #[arg(long, default_value = "resnet18")]
    model: String,
    /// Its weights: torchvision's `torch.save` file (.pth, .pt) or .safetensors, or a Keras 3
    /// model's .weights.h5 or .keras.
    #[arg(long)]
    weights: PathBuf,
    /// An image folder (one sub-folder per class; `DIR/train` and `DIR/validation` when
    /// present); generated circles vs squares when absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the generated data goes.
    #[arg(long, default_value = "runs/fine_tune")]
    out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// The head's learning rate (Adam).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Train the backbone too (its batch norm in training mode).
    #[arg(long)]
    unfreeze: bool,
    /// With `--unfreeze`: the backbone's learning rate as a factor of the head's.
    #[arg(long, default_value_t = 0.1)]
    backbone_lr_factor: f64,
}

/// How a model's input is scaled.
#[derive(Clone, Copy)]
enum Input {
    /// ImageNet's normalisation, as torchvision's weights expect.
    ImageNet,
    /// Pixel values as they are (the model rescales them itself, like mini-Xception).
    Pixels,
}

/// A torchvision zoo model: PyTorch files load by torchvision's names.
fn torchvision<M: Torchvision>(args: &Args) -> Result<Vec<f32>> {
    fine_tune::<M>(args, Some(M::naming()?), Input::ImageNet)
}

/// A zoo model without a PyTorch counterpart: Keras files only.
fn keras_only<M: Network>(args: &Args) -> Result<Vec<f32>> {
    fine_tune::<M>(args, None, Input::Pixels)
}

/// ImageNet's normalisation, as torchvision's weights expect: `(x / 255 - mean) / std`.
fn normalise(x: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let mean = Tensor::new(&[0.485f32, 0.456, 0.406], dev)?.reshape((1, 3, 1, 1))?;
    let std = Tensor::new(&[0.229f32, 0.224, 0.225], dev)?.reshape((1, 3, 1, 1))?;
    (x / 255.0)?.broadcast_sub(&mean)?.broadcast_div(&std)
}

/// The model's input from a batch of pixel values.
fn scale(x: &Tensor, input: Input) -> Result<Tensor> {
    match input {
        Input::ImageNet => normalise(x),
        Input::Pixels => Ok(x.clone()),
    }
}

fn folders(args: &Args, size: (usize, usize)) -> Result<(PathBuf, Option<PathBuf>)> {
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.out.join("synthetic-data");
            println!(
                "no --data given: generating circles vs squares in {}",
                dir.display()
            );
            SyntheticShapes::new()
                .image_size(size.0, size.1)
                .per_class(64, 16, 16)
                .seed(1)
                .write(&dir)?;
            dir
        }
    };
    let train = root.join("train");
    if train.is_dir() {
        let val = root.join("validation");
        Ok((train, val.is_dir().then_some(val)))
    } else {
        Ok((root, None))
    }
}

/// Runs the fine-tuning; the loss of each step.
fn run(args: &Args) -> Result<Vec<f32>> {
    match MODELS.iter().find(|(name, _)| *name == args.model) {
        Some((_, run)) => run(args),
        None => {
            let names: Vec<&str> = MODELS.iter().map(|(name, _)| *name).collect();
            Err(convnet::error::Error::invalid(
                "--model",
                format!("`{}`: choose {}", args.model, names.join(", ")),
            )
            .into())
        }
    }
}

/// Loads `--weights` into the zoo model `M` built under `backbone.`: a Keras file by class
/// pairing, a PyTorch file with `naming`.
fn load<M: Network>(varmap: &VarMap, path: &Path, naming: Option<&Naming>) -> Result<LoadReport> {
    let ext = path.to_string_lossy().to_lowercase();
    if ext.ends_with(".h5") || ext.ends_with(".keras") {
        return load_keras(
            varmap,
            &M::summary(),
            "backbone",
            path,
            &[],
            &LoadOptions::default(),
        );
    }
    let Some(naming) = naming else {
        return Err(convnet::error::Error::invalid(
            "--weights",
            format!(
                "{}: {} has no PyTorch counterpart; give a Keras 3 .weights.h5 or .keras file",
                path.display(),
                M::NAME
            ),
        )
        .into());
    };
    // The file's names are the model's own; the model is built under `backbone.`.
    let naming = naming.clone().rename(r"^backbone\.", "")?;
    // The old classifier is replaced, so its tensors may have any shape (a file fine-tuned to
    // other classes): its variables are left out and the file's tensors for them ignored.
    let all = ParamList::under(&M::summary(), varmap, "backbone")?;
    let head = format!("backbone.{}.", M::head_name());
    let mut naming_without_head = naming.clone();
    for ((ours, _), (theirs, _)) in all.entries.iter().zip(naming.their_names(&all)?) {
        if ours.starts_with(&head) {
            naming_without_head =
                naming_without_head.ignore(&format!("^{}$", theirs.replace('.', "\\.")))?;
        }
    }
    let params = ParamList {
        entries: all
            .entries
            .into_iter()
            .filter(|(name, _)| !name.starts_with(&head))
            .collect(),
    };
    load_pytorch(
        varmap,
        &params,
        path,
        &naming_without_head,
        &LoadOptions::default(),
    )
}

fn fine_tune<M: Network>(args: &Args, naming: Option<Naming>, input: Input) -> Result<Vec<f32>> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    // The model's own classifier never runs: it is frozen, and the new head takes its place.
    let old_head = format!("backbone.{}", M::head_name());
    let frozen = if args.unfreeze {
        Prefixes::new([old_head])
    } else {
        Prefixes::new(["backbone"])
    };
    let vb = freezing_var_builder(&varmap, 1, frozen.clone(), DType::F32, &dev);
    let backbone = M::new(vb.pp("backbone"))?;
    let report = load::<M>(&varmap, &args.weights, naming.as_ref())?;
    print!("{report}");
    let features = match M::features_shape()? {
        [n] => *n,
        shape => {
            return Err(convnet::error::Error::invalid(
                "--model",
                format!(
                    "{}'s features before its last layer are {shape:?}, not a vector a linear \
                     head takes",
                    M::NAME
                ),
            )
            .into())
        }
    };

    let size = (M::INPUT_SHAPE[1], M::INPUT_SHAPE[2]);
    let (train_dir, val_dir) = folders(args, size)?;
    let train_set = ImageFolder::builder(&train_dir, size.0, size.1).build()?;
    let classes = train_set.class_names().to_vec();
    let val_set = match &val_dir {
        Some(dir) => Some(
            ImageFolder::builder(dir, size.0, size.1)
                .classes_of(&train_set)
                .build()?,
        ),
        None => None,
    };

    let head = candle_nn::linear(features, classes.len(), vb.pp("head"))?;

    let (body_vars, head_vars) = split_by_prefix(
        trainable_vars(&varmap, &frozen),
        &Prefixes::new(["backbone"]),
    );
    let adam = |vars, lr| {
        Adam::new_named(
            vars,
            AdamConfig {
                lr,
                ..AdamConfig::default()
            },
        )
    };
    let mut opt = ParamGroups::new(args.lr)?.add(head_vars, 1.0, adam)?;
    if !body_vars.is_empty() {
        opt = opt.add(body_vars, args.backbone_lr_factor, adam)?;
    }
    // A frozen backbone runs in inference mode: batch norm on its moving statistics.
    let features = |x: &Tensor, train: bool| {
        backbone.forward_features_t(&scale(x, input)?, train && args.unfreeze)
    };

    let loader = DataLoader::new(train_set, args.batch)
        .shuffle(true)
        .seed(1)
        .device(dev.clone());
    println!(
        "training {} for {} steps of {} images ({} classes: {:?}), backbone {}",
        args.model,
        args.steps,
        args.batch,
        classes.len(),
        classes,
        if args.unfreeze { "trained" } else { "frozen" }
    );
    let (mut step, mut epoch, mut times, mut losses) = (0, 0, Vec::new(), Vec::new());
    while step < args.steps {
        let order = loader.order(epoch);
        for chunk in order.chunks(args.batch) {
            if step == args.steps || chunk.len() < args.batch {
                break;
            }
            let batch = loader.load(epoch, chunk)?;
            let started = Instant::now();
            let logits = head.forward(&features(&batch.inputs, true)?)?;
            let loss = sparse_categorical_cross_entropy(&logits, &batch.targets)?;
            opt.apply(&loss.backward()?)?;
            let loss = loss.to_scalar::<f32>()?;
            times.push(started.elapsed().as_secs_f64());
            losses.push(loss);
            println!(
                "step {:>3}: loss {loss:.4} ({:.2} s)",
                step + 1,
                times[step]
            );
            step += 1;
        }
        epoch += 1;
    }
    if times.len() > 1 {
        let mean = times[1..].iter().sum::<f64>() / (times.len() - 1) as f64;
        println!(
            "mean step time (batch {}, first step excluded): {mean:.3} s",
            args.batch
        );
    }
    if let Some(val) = val_set {
        let val = DataLoader::new(val, args.batch).device(dev.clone());
        let (mut right, mut total) = (0usize, 0usize);
        let order = val.order(0);
        for chunk in order.chunks(args.batch) {
            let batch = val.load(0, chunk)?;
            let predicted = no_grad(|| head.forward(&features(&batch.inputs, false)?)?.argmax(1))?;
            let same = predicted
                .eq(&batch.targets)?
                .to_dtype(DType::F32)?
                .sum_all()?;
            right += same.to_scalar::<f32>()? as usize;
            total += chunk.len();
        }
        println!(
            "validation accuracy: {:.4} ({right}/{total})",
            right as f64 / total as f64
        );
    }
    Ok(losses)
}

fn main() {
    tuning::apply();
    let args = Args::parse();
    if let Err(e) = run(&args) {
        match convnet::error::Error::find(&e) {
            // The strict report, one tensor a line.
            Some(convnet::error::Error::CheckpointMismatch {
                source_name,
                tensors,
            }) => {
                eprintln!(
                    "error: {source_name} does not fit the model ({} tensors):",
                    tensors.len()
                );
                for t in tensors {
                    eprintln!("  {t}");
                }
            }
            _ => eprintln!("error: {e}"),
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_the_readme_names_exist() {
        use clap::CommandFactory;
        crate::readme_check::assert_flags_exist("fine_tune", Args::command());
    }

    use super::*;

    fn args(weights: &str) -> Args {
        Args::parse_from([
            "fine_tune",
            "--weights",
            &format!("{}/tests/fixtures/{weights}", env!("CARGO_MANIFEST_DIR")),
            "--out",
            "/nonexistent-fine-tune-out",
        ])
    }

    /// A file for another model stops the run with the strict report, before any data is
    /// generated or read.
    #[test]
    fn a_file_for_another_model_is_refused_with_the_strict_report() {
        let err = run(&args("interop/all_kinds.pth")).unwrap_err();
        match convnet::error::Error::find(&err) {
            Some(convnet::error::Error::CheckpointMismatch { tensors, .. }) => {
                let text: Vec<String> = tensors.iter().map(ToString::to_string).collect();
                assert!(
                    text.iter()
                        .any(|t| t.contains("`backbone.") && t.contains("is missing")),
                    "{text:?}"
                );
                assert!(
                    text.iter()
                        .any(|t| t.contains("unexpected tensor `features.0.weight`")),
                    "{text:?}"
                );
            }
            other => panic!("expected the strict report, got {other:?}"),
        }
        assert!(!std::path::Path::new("/nonexistent-fine-tune-out").exists());
    }

    /// Another zoo model than ResNet-18, from a Keras file: mini-Xception loads whole, its
    /// classifier is replaced by a two-class head, and the loss falls while the backbone stays
    /// as loaded.
    #[test]
    fn mini_xception_fine_tunes_from_its_keras_file() {
        let out = std::env::temp_dir().join(format!("fine-tune-test-{}", std::process::id()));
        let mut args = args("keras/mini_xception.keras");
        args.model = "mini_xception".into();
        args.out = out.clone();
        args.steps = 6;
        args.batch = 8;
        args.lr = 1e-2;
        let losses = run(&args).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        assert_eq!(losses.len(), 6);
        let (first, last) = (
            losses[..2].iter().sum::<f32>(),
            losses[4..].iter().sum::<f32>(),
        );
        assert!(last < first, "the loss did not fall: {losses:?}");
    }

    /// A torchvision file (the EfficientNet-B0 fixture, torchvision's own `state_dict`) loads
    /// by torchvision's names under `backbone.`, its classifier's tensors ignored, and a new
    /// head trains on its features.
    #[test]
    fn efficientnet_b0_fine_tunes_from_torchvisions_file() {
        let out = std::env::temp_dir().join(format!("fine-tune-tv-{}", std::process::id()));
        let mut args = args("torchvision/efficientnet_b0_f16.pth");
        args.model = "efficientnet_b0".into();
        args.out = out.clone();
        args.steps = 2;
        args.batch = 4;
        let losses = run(&args).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        assert_eq!(losses.len(), 2);
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    }

    #[test]
    fn an_unknown_model_is_refused_naming_the_choices() {
        let mut args = args("keras/mini_xception.keras");
        args.model = "resnet19".into();
        let err = run(&args).unwrap_err().to_string();
        assert!(
            err.contains("`resnet19`: choose resnet18, resnet50"),
            "{err}"
        );
    }

    #[test]
    fn a_keras_file_for_another_model_is_refused_with_the_strict_report() {
        let err = run(&args("keras/mini_xception.keras")).unwrap_err();
        match convnet::error::Error::find(&err) {
            Some(convnet::error::Error::CheckpointMismatch { tensors, .. }) => {
                let text: Vec<String> = tensors.iter().map(ToString::to_string).collect();
                assert!(
                    text.iter()
                        .any(|t| t.contains("unexpected tensor `layers/separable_conv2d/vars/0`")),
                    "{text:?}"
                );
            }
            other => panic!("expected the strict report, got {other:?}"),
        }
    }
}
