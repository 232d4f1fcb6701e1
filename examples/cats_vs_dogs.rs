//! The main job: trains the DSL's mini-Xception to tell cats from dogs.
//!
//! ```text
//! cargo run --release --example cats_vs_dogs                       # built-in generated data
//! cargo run --release --example cats_vs_dogs -- --data ../shared/data/cats_vs_dogs --epochs 30
//! ```
//!
//! `--data DIR` takes a folder with `train/`, `validation/` and `test/`, each holding one
//! sub-folder per class. Without it, a small two-class image set (circles vs squares) is
//! generated under the output folder so the command runs on any machine. Writes the best
//! checkpoint (`best/`), `history.csv` and `history.png` to the run folder (`--out`, or the
//! first free `runs/cats_vs_dogs[-N]`; an earlier run is never replaced without
//! `--overwrite`), and ends with
//! `test accuracy: 0.xxxx`.

use candle_core::{DType, Device, Result};
use candle_nn::VarMap;
use clap::Parser;
use convnet::checkpoint::load_checkpoint_weights;
use convnet::data::{Augment, Batches, DataLoader, Dataset, ImageFolder, SyntheticShapes};
use convnet::error::Error;
use convnet::init::seeded_var_builder;
use convnet::loss::Loss;
use convnet::optim::{RmsProp, RmsPropConfig};
use convnet::prelude::*;
use convnet::train::{
    evaluate_tta, plot_history, CsvLogger, ModelCheckpoint, ModelInfo, PreciseBn, Trainer,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod models;
mod tuning;

use models::with_mini_xception;

#[derive(Parser, Debug)]
#[command(about = "Train mini-Xception on cats vs dogs (or built-in generated data)")]
struct Args {
    /// Image folder with train/, validation/ and test/ sub-folders (one folder per class in
    /// each). Without it, a generated two-class set is used.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Square input size: 64, 96, 128 or 180 (the model's shapes are checked at compile
    /// time, so each size is compiled in).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Training epochs (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// RMSprop learning rate (a finite number > 0).
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true, value_parser = positive_learning_rate)]
    lr: f64,
    /// Output folder for the checkpoint, history CSV and plot. A folder that already holds a
    /// run's `best/` checkpoint is refused unless `--overwrite` is given. Default: the first
    /// of `runs/cats_vs_dogs`, `runs/cats_vs_dogs-2`, ... without one.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run in `--out` (its `best/` checkpoint, history and plot).
    #[arg(long)]
    overwrite: bool,
    /// Seed of the whole run: initialisation, dropout, shuffling, augmentation and the
    /// generated data (the same seed gives the same history on the same machine).
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Before each validation, recompute the batch-norm moving statistics from this many
    /// un-augmented training batches ("precise BN"; 0: off, the moving averages of training
    /// are used as they are).
    #[arg(long, default_value_t = 0)]
    precise_bn: usize,
    /// Score the test split with horizontal-flip test-time augmentation (each image's
    /// probability averaged with its mirror's).
    #[arg(long)]
    tta: bool,
    /// Print the model summary before training.
    #[arg(long)]
    summary: bool,
    /// Training images per class for the generated data set.
    #[arg(long, default_value_t = 300)]
    synthetic_per_class: usize,
}

/// The run folder: `--out` (refused when it holds an earlier run's checkpoint, unless
/// `--overwrite`), or the first free `runs/cats_vs_dogs[-N]`.
fn run_folder(args: &Args) -> Result<PathBuf> {
    let out = match &args.out {
        Some(out) => {
            let best = out.join("best");
            if best.exists() {
                if !args.overwrite {
                    return Err(Error::invalid(
                        "--out",
                        format!(
                            "{} already holds a run (its checkpoint {}); pass --overwrite to replace it, or choose another --out",
                            out.display(),
                            best.display()
                        ),
                    )
                    .into());
                }
                println!("--overwrite: replacing the run in {}", out.display());
                std::fs::remove_dir_all(&best).map_err(|e| Error::io("remove", &best, e))?;
            }
            out.clone()
        }
        None => (1..)
            .map(|n| match n {
                1 => PathBuf::from("runs/cats_vs_dogs"),
                n => PathBuf::from(format!("runs/cats_vs_dogs-{n}")),
            })
            .find(|dir| !dir.join("best").exists())
            .expect("an unbounded range has a free name"),
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io("create folder", &out, e))?;
    Ok(out)
}

/// Parses `--lr`: a finite number greater than 0 (`nan`, `inf`, `0` and negatives are refused).
fn positive_learning_rate(text: &str) -> std::result::Result<f64, String> {
    let lr: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!(
            "the learning rate must be a finite number > 0, got {lr}"
        ))
    }
}

fn main() -> Result<()> {
    tuning::apply();
    let args = Args::parse();
    let out = run_folder(&args)?;
    println!("run folder: {}", out.display());
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let dir = out.join("synthetic-data");
            let n = args.synthetic_per_class;
            println!("no --data given: generating circles vs squares ({n} training images per class) in {}", dir.display());
            SyntheticShapes::new()
                .image_size(args.image_size, args.image_size)
                .per_class(n, n / 4, n / 4)
                .seed(args.seed)
                .write(&dir)?;
            dir
        }
    };
    with_mini_xception!(args.image_size, train(&args, &data, &out))
}

fn train<M: Network>(args: &Args, data: &Path, out: &Path) -> Result<()> {
    let device = Device::Cpu;
    let (h, w) = (M::INPUT_SHAPE[1], M::INPUT_SHAPE[2]);
    if args.summary {
        println!("{}", M::summary());
    }
    // The three splits share the training split's class folders (checked), the classes fit
    // the loss and the model's output, and every image decodes (into the cache) before the
    // first epoch, so a bad test image fails now rather than after training.
    let [train_set, val_set, test_set] = ImageFolder::builder(data, h, w)
        .cache(true)
        .build_splits(["train", "validation", "test"])?;
    train_set.check_classes_fit(&Loss::BinaryCrossEntropy, M::OUTPUT_SHAPE)?;
    println!(
        "data: classes {:?}, resized to {h}x{w}",
        train_set.class_names()
    );
    for (name, set) in [
        ("train", &train_set),
        ("validation", &val_set),
        ("test", &test_set),
    ] {
        set.verify()?;
        let counts: Vec<String> = set
            .class_names()
            .iter()
            .zip(set.class_counts())
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        println!("  {name}: {} images ({})", set.len(), counts.join(", "));
    }
    // The book's augmentation: random flips, rotations of up to 10% of a turn, 20% zoom.
    let augment = Augment::new().flip_horizontal().rotation(0.1).zoom(0.2);
    let class_names = train_set.class_names().to_vec();
    let train_set: Arc<dyn Dataset> = Arc::new(train_set);
    // Un-augmented batches of the same cached training images, for precise BN.
    let clean_train = DataLoader::from_arc(train_set.clone(), args.batch_size)
        .shuffle(true)
        .seed(args.seed ^ 0x5EED)
        .device(device.clone());
    let mut train_data = DataLoader::from_arc(train_set, args.batch_size)
        .shuffle(true)
        .seed(args.seed)
        .augment(augment)
        .training(true)
        .device(device.clone())
        .prefetch(2);
    let eval_loader =
        |set: ImageFolder| DataLoader::new(set, args.batch_size).device(device.clone());
    let (mut val_data, mut test_data) = (eval_loader(val_set), eval_loader(test_set));

    let varmap = VarMap::new();
    // `--seed` fixes the whole run: initialisation, dropout masks, shuffling, augmentation.
    convnet::seed::set_global_seed(args.seed);
    let model = M::new(seeded_var_builder(&varmap, args.seed, DType::F32, &device))?;
    let optimizer = RmsProp::from_varmap(
        &varmap,
        RmsPropConfig {
            lr: args.lr,
            ..Default::default()
        },
    );
    let best = out.join("best");
    let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, optimizer)
        .with_model_info(ModelInfo::of::<M>(&class_names))
        .with_callback(ModelCheckpoint::best(&best, "val_loss"))
        .with_callback(CsvLogger::new(out.join("history.csv")));
    if args.precise_bn > 0 {
        let batches = train_data.num_batches();
        let precise = PreciseBn::new(&model, clean_train, Some(args.precise_bn), batches);
        trainer.add_callback(Box::new(precise));
    }
    // A NaN or diverging loss (above 100x the first epoch's) fails `fit` before the step is
    // applied, and `main` then exits non-zero; the best checkpoint keeps its last good weights.
    let start = Instant::now();
    let history = trainer.fit(&mut train_data, Some(&mut val_data), args.epochs as usize)?;
    let elapsed = start.elapsed().as_secs_f64();
    plot_history(&history, out.join("history.png"), 1200, 450)?;
    // The best epoch's checkpoint of this run (the run folder held none before it).
    load_checkpoint_weights(&varmap, &best)?;
    let test = match args.tta {
        true => evaluate_tta(&model, Loss::BinaryCrossEntropy, &mut test_data)?,
        false => trainer.evaluate(&mut test_data)?,
    };
    println!(
        "trained {} epochs in {elapsed:.1}s; best checkpoint {}, history {}, plot {}",
        history.len(),
        best.display(),
        out.join("history.csv").display(),
        out.join("history.png").display()
    );
    println!("test loss: {:.4}", test.loss);
    println!("test accuracy: {:.4}", test.accuracy.unwrap_or(f64::NAN));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_must_be_a_finite_positive_number() {
        for bad in ["nan", "NaN", "inf", "-1", "0", "-0", "-1e-3", "abc"] {
            let err = Args::try_parse_from(["cats_vs_dogs", "--lr", bad]).unwrap_err();
            let joined = Args::try_parse_from(["cats_vs_dogs", &format!("--lr={bad}")]);
            assert_eq!(joined.unwrap_err().to_string(), err.to_string());
            let text = err.to_string();
            assert!(text.contains("--lr"), "{bad}: {text}");
            assert!(
                text.contains("finite number > 0") || text.contains("is not a number"),
                "{bad}: {text}"
            );
        }
        let args = Args::try_parse_from(["cats_vs_dogs", "--lr", "3e-4"]).unwrap();
        assert_eq!(args.lr, 3e-4);
        assert_eq!(Args::try_parse_from(["cats_vs_dogs"]).unwrap().lr, 1e-3);
    }

    #[test]
    fn an_earlier_run_is_never_replaced_without_overwrite() {
        let out = std::env::temp_dir().join(format!("convnet-cvd-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(out.join("best")).unwrap();
        std::fs::write(out.join("best/manifest.json"), b"{}").unwrap();
        let path = out.to_str().unwrap();
        let args = Args::try_parse_from(["cats_vs_dogs", "--out", path]).unwrap();
        let err = run_folder(&args).unwrap_err().to_string();
        assert!(err.contains(path) && err.contains("--overwrite"), "{err}");
        assert!(
            out.join("best/manifest.json").exists(),
            "nothing was touched"
        );
        let args = Args::try_parse_from(["cats_vs_dogs", "--out", path, "--overwrite"]).unwrap();
        assert_eq!(run_folder(&args).unwrap(), out);
        assert!(
            !out.join("best").exists(),
            "--overwrite clears the old checkpoint first"
        );
        assert!(Args::try_parse_from(["cats_vs_dogs", "--epochs", "0"]).is_err());
        let _ = std::fs::remove_dir_all(&out);
    }
}
