//! Fine-tunes a zoo backbone from PyTorch or Keras weights under a new head, on an image folder or on
//! the built-in generated data:
//!
//! ```text
//! cargo run --release --example fine_tune -- --model resnet18 --weights resnet18-f37072fd.pth [--data DIR]
//! ```
//!
//! The backbone is the zoo model without its classifier; torchvision's file loads into it by
//! torchvision's names (`convnet::zoo::torchvision`), its classifier keys ignored; a Keras 3
//! file (`.weights.h5`, `.keras`) loads by pairing layers by class, its `dense` layers
//! ignored. A file for
//! another model is refused with the strict report (every missing, unexpected and mis-shaped
//! tensor) and the run exits with status 1. By default the backbone is frozen (no gradient
//! work, no optimizer state, batch norm on its moving statistics) and only the new head
//! trains; `--unfreeze` trains everything, the backbone at `--backbone-lr-factor` times the
//! head's rate (parameter groups). Without `--data`, circles vs squares are generated into
//! `--out`. It prints the loss of each step, the mean step time (first step excluded) and the
//! validation accuracy.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{ModuleT, VarMap};
use clap::Parser;
use convnet::data::{DataLoader, ImageFolder, SyntheticShapes};
use convnet::freeze::{freezing_var_builder, trainable_vars, InferenceMode, Prefixes};
use convnet::grad_mode::no_grad;
use convnet::interop::{load_keras, load_pytorch, LoadOptions, Naming, ParamList};
use convnet::loss::sparse_categorical_cross_entropy;
use convnet::optim::{split_by_prefix, Adam, AdamConfig, ParamGroups, TrainOptimizer};
use convnet::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// The README's commands and flags, checked against `--help` by the tests.
#[cfg(test)]
#[allow(dead_code)]
mod readme_check;
mod tuning;

convnet! {
    use convnet::zoo::{basic, basic_down, stem};

    /// The zoo's ResNet-18 (`src/zoo/mod.rs`) without its classifier: 512 pooled features.
    pub ResNet18Features(3, 224, 224) -> (512) {
        _: stem(),
        layer1: sequential { basic(64), basic(64) },
        layer2: sequential { basic_down(128), basic(128) },
        layer3: sequential { basic_down(256), basic(256) },
        layer4: sequential { basic_down(512), basic(512) },
        global_avg_pool2d,
    }
}

#[derive(Parser, Debug)]
#[command(about = "Fine-tune a zoo backbone from PyTorch weights under a new head")]
struct Args {
    /// The zoo backbone (only `resnet18` so far).
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

/// ImageNet's normalisation, as torchvision's weights expect: `(x / 255 - mean) / std`.
fn normalise(x: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let mean = Tensor::new(&[0.485f32, 0.456, 0.406], dev)?.reshape((1, 3, 1, 1))?;
    let std = Tensor::new(&[0.229f32, 0.224, 0.225], dev)?.reshape((1, 3, 1, 1))?;
    (x / 255.0)?.broadcast_sub(&mean)?.broadcast_div(&std)
}

fn folders(args: &Args) -> Result<(PathBuf, Option<PathBuf>)> {
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.out.join("synthetic-data");
            println!(
                "no --data given: generating circles vs squares in {}",
                dir.display()
            );
            SyntheticShapes::new()
                .image_size(224, 224)
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

fn run(args: &Args) -> Result<()> {
    if args.model != "resnet18" {
        return Err(convnet::error::Error::invalid(
            "--model",
            format!(
                "`{}`: only `resnet18` has a backbone here so far",
                args.model
            ),
        )
        .into());
    }
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let frozen = if args.unfreeze {
        Prefixes::default()
    } else {
        Prefixes::new(["backbone"])
    };
    let vb = freezing_var_builder(&varmap, 1, frozen.clone(), DType::F32, &dev);
    let backbone = ResNet18Features::new(vb.pp("backbone"))?;

    // torchvision's names for the backbone: ResNet-18's names under `backbone.`, without the
    // classifier.
    let params = ParamList::under(&ResNet18Features::summary(), &varmap, "backbone")?;
    let naming = Naming::by_name()
        .rename(r"^backbone\.", "")?
        .ignore(r"^fc\.")?;
    let ext = args.weights.to_string_lossy().to_lowercase();
    let report = if ext.ends_with(".h5") || ext.ends_with(".keras") {
        // A Keras model: layers pair by class; its classifier (`dense`) is replaced.
        load_keras(
            &varmap,
            &ResNet18Features::summary(),
            "backbone",
            &args.weights,
            &["^layers/dense"],
            &LoadOptions::default(),
        )?
    } else {
        load_pytorch(
            &varmap,
            &params,
            &args.weights,
            &naming,
            &LoadOptions::default(),
        )?
    };
    print!("{report}");

    let (train_dir, val_dir) = folders(args)?;
    let train_set = ImageFolder::builder(&train_dir, 224, 224).build()?;
    let classes = train_set.class_names().to_vec();
    let val_set = match &val_dir {
        Some(dir) => Some(
            ImageFolder::builder(dir, 224, 224)
                .classes_of(&train_set)
                .build()?,
        ),
        None => None,
    };

    let head = candle_nn::linear(512, classes.len(), vb.pp("head"))?;

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
    let backbone: Box<dyn ModuleT> = if args.unfreeze {
        Box::new(backbone)
    } else {
        Box::new(InferenceMode(backbone))
    };
    let features = |x: &Tensor, train: bool| backbone.forward_t(x, train);

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
            let logits = head.forward(&features(&normalise(&batch.inputs)?, true)?)?;
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
            let predicted = no_grad(|| {
                head.forward(&backbone.forward_t(&normalise(&batch.inputs)?, false)?)?
                    .argmax(1)
            })?;
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
    Ok(())
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
                    text.iter().any(|t| t
                        .contains("`backbone.conv1.weight` as `conv1.weight` is missing")),
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
