//! Semantic segmentation: a small U-Net trained on generated shapes.
//!
//! The U-Net has the structure of the zoo's (`src/zoo/unet.rs`: four 2x2 max-pool steps
//! down, four transposed-conv steps up, skips concatenated from the down path) at a width
//! that trains on a laptop CPU: base width 8 (8-16-32-64-128 channels) instead of 64. The
//! data is [`SyntheticSegmentation`]: discs, rectangles and triangles in random colours on
//! noisy backgrounds, with a mask of 4 classes (background, circle, rectangle, triangle).
//! Training minimises per-pixel sparse categorical cross-entropy, so `fit` reports pixel
//! accuracy; a held-out split (another seed) is then scored by pixel accuracy and IoU.
//!
//! ```text
//! cargo run --release --example segmentation
//! ```

use candle_core::Result;
use clap::Parser;
use convnet::data::{Batches, DataLoader, SyntheticSegmentation};
use convnet::init::seeded_var_builder;
use convnet::loss::Loss;
use convnet::metrics::ConfusionMatrix;
use convnet::optim::{Adam, AdamConfig};
use convnet::prelude::*;
use convnet::train::{predict, Trainer, Verbosity};
use std::time::Instant;

mod tuning;

convnet! {
    /// milesial's `DoubleConv`, as in the zoo's U-Net: (3x3 conv, batch norm, ReLU) twice.
    block double_conv(filters) {
        conv2d(filters, 3, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        conv2d(filters, 3, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
    }

    /// The zoo's 4-level U-Net at base width `base`, with `classes` logits per pixel.
    block unet(base, classes) {
        x1: double_conv(base),
        max_pool2d(2), x2: double_conv(base * 2),
        max_pool2d(2), x3: double_conv(base * 4),
        max_pool2d(2), x4: double_conv(base * 8),
        max_pool2d(2), double_conv(base * 16),
        conv_transpose2d(base * 8, 2, stride = 2), concat { @x4, identity } double_conv(base * 8),
        conv_transpose2d(base * 4, 2, stride = 2), concat { @x3, identity } double_conv(base * 4),
        conv_transpose2d(base * 2, 2, stride = 2), concat { @x2, identity } double_conv(base * 2),
        conv_transpose2d(base, 2, stride = 2), concat { @x1, identity } double_conv(base),
        conv2d(classes, 1),
    }

    /// U-Net of base width 8 on 64x64 images (pixels in 0..=255), 4 classes per pixel.
    pub UNet64(3, 64, 64) -> (4, 64, 64) { rescale(1.0 / 255.0), unet(8, 4) }

    /// The same U-Net on 32x32 images.
    pub UNet32(3, 32, 32) -> (4, 32, 32) { rescale(1.0 / 255.0), unet(8, 4) }
}

/// The square image sizes compiled in.
const SIZES: [usize; 2] = [32, 64];

/// The loss: per-pixel cross-entropy against the masks' class indices.
const LOSS: Loss = Loss::SparseCategoricalCrossEntropy;

#[derive(Parser, Debug)]
#[command(about = "Train a small U-Net on generated shapes with per-pixel masks")]
struct Args {
    /// Training epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Seed of the data (training split `seed`, held-out split `seed + 1`), the weights and
    /// the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image size (square), one of the compiled-in sizes: 32 or 64.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Generated training images.
    #[arg(long, default_value_t = 512)]
    train_examples: usize,
    /// Generated held-out images.
    #[arg(long, default_value_t = 128)]
    test_examples: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
}

/// Settings of one run, whatever the model size.
#[derive(Debug, Clone)]
struct Run {
    epochs: usize,
    seed: u64,
    train_examples: usize,
    test_examples: usize,
    batch_size: usize,
    lr: f64,
    verbosity: Verbosity,
}

/// What a run measured on the held-out split.
#[derive(Debug, Clone)]
struct Scores {
    /// Per-pixel confusion matrix of the trained model.
    model: ConfusionMatrix,
    /// The same for predicting background everywhere.
    all_background: ConfusionMatrix,
    /// Mean training loss of each epoch.
    losses: Vec<f64>,
}

fn main() -> Result<()> {
    tuning::apply();
    let args = Args::parse();
    let run = Run {
        epochs: args.epochs,
        seed: args.seed,
        train_examples: args.train_examples,
        test_examples: args.test_examples,
        batch_size: args.batch_size,
        lr: args.lr,
        verbosity: Verbosity::Lines,
    };
    let started = Instant::now();
    let scores = match args.size {
        32 => train_and_score::<UNet32>(&run)?,
        64 => train_and_score::<UNet64>(&run)?,
        other => {
            return Err(convnet::error::Error::invalid(
                "image size",
                format!("{other} is not compiled in; choose one of {SIZES:?}"),
            )
            .into())
        }
    };
    if let (Some(first), Some(last)) = (scores.losses.first(), scores.losses.last()) {
        println!("training loss: epoch 1 {first:.4}, last epoch {last:.4}");
    }
    println!("held-out split ({} images):", run.test_examples);
    for (name, matrix) in [
        ("model", &scores.model),
        ("all background", &scores.all_background),
    ] {
        println!(
            "  {name:>14}: pixel accuracy {:.4}, mean IoU {:.4}",
            matrix.accuracy(),
            matrix.mean_iou()
        );
    }
    for (class, iou) in SyntheticSegmentation::CLASS_NAMES
        .iter()
        .zip(scores.model.ious())
    {
        match iou {
            Some(iou) => println!("  IoU {class:>10}: {iou:.4}"),
            None => println!("  IoU {class:>10}: -"),
        }
    }
    println!("total time {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Generates the data, trains `M` with per-pixel cross-entropy and scores the held-out split.
fn train_and_score<M: Network>(run: &Run) -> Result<Scores> {
    let (classes, h, w) = (M::OUTPUT_SHAPE[0], M::INPUT_SHAPE[1], M::INPUT_SHAPE[2]);
    let data = SyntheticSegmentation::new().image_size(h, w);
    let train = data
        .clone()
        .examples(run.train_examples)
        .seed(run.seed)
        .build()?;
    let test = data
        .examples(run.test_examples)
        .seed(run.seed.wrapping_add(1))
        .build()?;
    if run.verbosity != Verbosity::Silent {
        println!(
            "{}: {} trainable parameters, {:.1} MFLOPs per image; {} training images",
            M::NAME,
            M::TRAINABLE_PARAMS,
            M::FLOPS as f64 / 1e6,
            run.train_examples
        );
    }

    convnet::seed::set_global_seed(run.seed);
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = M::new(seeded_var_builder(&varmap, run.seed, DType::F32, &device))?;
    let adam = Adam::from_varmap(
        &varmap,
        AdamConfig {
            lr: run.lr,
            ..AdamConfig::default()
        },
    );
    let mut trainer = Trainer::new(&model, &varmap, LOSS, adam).with_verbosity(run.verbosity);
    let mut train_batches = DataLoader::new(train, run.batch_size)
        .shuffle(true)
        .seed(run.seed);
    let mut test_batches = DataLoader::new(test, run.batch_size);
    let history = trainer.fit(&mut train_batches, Some(&mut test_batches), run.epochs)?;

    let mut scores = Scores {
        model: ConfusionMatrix::new(classes),
        all_background: ConfusionMatrix::new(classes),
        losses: history.epochs.iter().map(|e| e.loss).collect(),
    };
    for batch in test_batches.epoch(0) {
        let batch = batch?;
        let logits = predict(&model, &batch.inputs, run.batch_size)?;
        scores.model.update(&logits, &batch.targets)?;
        scores
            .all_background
            .update(&background_logits(&logits)?, &batch.targets)?;
    }
    Ok(scores)
}

/// Logits of the shape of `like` that predict class 0 (background) at every pixel.
///
/// # Shapes
/// `like`: `[N, K, H, W]`; returns `[N, K, H, W]`.
fn background_logits(like: &Tensor) -> Result<Tensor> {
    let (n, k, h, w) = like.dims4()?;
    let background = Tensor::ones((n, 1, h, w), like.dtype(), like.device())?;
    let others = Tensor::zeros((n, k - 1, h, w), like.dtype(), like.device())?;
    Tensor::cat(&[&background, &others], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few epochs of the 32x32 U-Net on 96 images: the loss falls, and the model beats
    /// predicting background everywhere on held-out images, by pixel accuracy and mean IoU.
    #[test]
    fn a_short_run_beats_predicting_background() -> Result<()> {
        let run = Run {
            epochs: 14,
            seed: 3,
            train_examples: 96,
            test_examples: 16,
            batch_size: 8,
            lr: 3e-3,
            verbosity: Verbosity::Silent,
        };
        let scores = train_and_score::<UNet32>(&run)?;
        let losses = &scores.losses;
        assert!(
            losses.last().unwrap() < &(losses[0] * 0.8),
            "loss did not fall: {losses:?}"
        );
        let (model, baseline) = (&scores.model, &scores.all_background);
        assert_eq!(model.total(), 16 * 32 * 32);
        assert!(
            model.accuracy() > baseline.accuracy() + 0.02,
            "pixel accuracy {} vs all-background {}",
            model.accuracy(),
            baseline.accuracy()
        );
        assert!(
            model.mean_iou() > baseline.mean_iou(),
            "mean IoU {} vs all-background {}",
            model.mean_iou(),
            baseline.mean_iou()
        );
        Ok(())
    }

    #[test]
    fn background_logits_predict_background() -> Result<()> {
        let like = Tensor::zeros((2, 4, 3, 5), DType::F32, &Device::Cpu)?;
        let classes = convnet::metrics::predicted_classes(&background_logits(&like)?)?;
        assert_eq!(classes.dims(), [2, 3, 5]);
        assert_eq!(classes.sum_all()?.to_scalar::<u32>()?, 0);
        Ok(())
    }
}
