//! What "precise BN" is worth for a main-job checkpoint: scores it on the validation and test
//! splits with the batch-norm statistics it was saved with (recomputed over clean training
//! images, the recipe's default), then with the moving averages that training leaves when the
//! statistics are not recomputed: one epoch of training-mode passes over augmented training
//! batches (the recipe's augmentation, weights unchanged), each moving the statistics by the
//! model's momentum.
//!
//! ```text
//! cargo run --release --example bn_statistics -- runs/cats_vs_dogs/best ../shared/data/cats_vs_dogs
//! ```

use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use convnet::checkpoint::load_checkpoint_weights;
use convnet::data::{Augment, Batches, DataLoader, ImageFolder};
use convnet::grad_mode::no_grad;
use convnet::loss::Loss;
use convnet::prelude::*;
use convnet::train::{evaluate, load_state};
use std::path::PathBuf;

mod models;
mod tuning;

use models::with_mini_xception;

#[derive(Parser, Debug)]
struct Args {
    /// A checkpoint folder written by the main job (e.g. `runs/cats_vs_dogs/best`).
    checkpoint: PathBuf,
    /// The data folder with train/, validation/ and test/.
    data: PathBuf,
    /// Seed of the augmented batches.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<()> {
    tuning::apply();
    let args = Args::parse();
    let info = load_state(&args.checkpoint)?
        .model
        .ok_or_else(|| candle_core::Error::Msg("the checkpoint records no model".into()))?;
    with_mini_xception!(info.input_shape[1], run(&args))
}

fn run<M: Network>(args: &Args) -> Result<()> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = M::new(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    load_checkpoint_weights(&varmap, &args.checkpoint)?;
    let size = M::INPUT_SHAPE[1];
    let [train, validation, test] = ImageFolder::builder(&args.data, size, size)
        .cache(true)
        .build_splits(["train", "validation", "test"])?;
    let mut validation = DataLoader::new(validation, 32).device(device.clone());
    let mut test = DataLoader::new(test, 32).device(device.clone());
    let mut score = |label: &str| -> Result<()> {
        let v = evaluate(&model, Loss::BinaryCrossEntropy, &mut validation)?;
        let t = evaluate(&model, Loss::BinaryCrossEntropy, &mut test)?;
        println!(
            "{label}: validation accuracy {:.4} (loss {:.4}), test accuracy {:.4} (loss {:.4})",
            v.accuracy.unwrap_or(f64::NAN),
            v.loss,
            t.accuracy.unwrap_or(f64::NAN),
            t.loss
        );
        Ok(())
    };
    score("saved (precise) statistics")?;
    let mut augmented = DataLoader::new(train, 32)
        .shuffle(true)
        .seed(args.seed)
        .augment(Augment::new().flip_horizontal().rotation(0.1).zoom(0.2))
        .training(true)
        .device(device.clone());
    for batch in augmented.epoch(0) {
        no_grad(|| model.forward_t(&batch?.inputs, true))?;
    }
    score("moving averages after one epoch of training-mode passes")
}
