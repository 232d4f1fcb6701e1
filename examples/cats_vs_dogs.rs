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
use candle_nn::{ModuleT, VarBuilder, VarMap};
use clap::Parser;
use convnet::checkpoint::load_checkpoint_weights;
use convnet::data::{Augment, DataLoader, Dataset, ImageFolder, SyntheticShapes};
use convnet::error::Error;
use convnet::init::seeded_var_builder;
use convnet::loss::Loss;
use convnet::optim::{AdamW, AdamWConfig, RmsProp, RmsPropConfig, Sgd, SgdConfig, TrainOptimizer};
use convnet::prelude::*;
use convnet::schedule::{Schedule, ScheduleUnit};
use convnet::train::{
    evaluate, evaluate_tta, plot_history, CsvLogger, Evaluation, History, ModelCheckpoint,
    ModelInfo, Trainer, WeightEma,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod models;
/// The README's commands and flags, checked against `--help` by the tests.
#[cfg(test)]
#[allow(dead_code)]
mod readme_check;
mod recipe;
mod tuning;

use models::with_mini_xception;
use recipe::{Stage, Stages};

#[derive(Parser, Debug)]
#[command(about = "Train mini-Xception on cats vs dogs (or built-in generated data)")]
struct Args {
    /// Image folder with train/, validation/ and test/ sub-folders (one folder per class in
    /// each). Without it, a generated two-class set is used.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Progressive resizing: `SIZE:EPOCHS` stages trained in order on the same weights, the
    /// last one's size scored. Sizes: 64, 96, 128 or 180 (the model's shapes are checked at
    /// compile time, so each size is compiled in). Default: the recipe `96:30,128:20,180:8`
    /// with `--data`, `64:10` on the generated data.
    #[arg(long, conflicts_with_all = ["image_size", "epochs"])]
    stages: Option<Stages>,
    /// One stage at this square size (shorthand for `--stages SIZE:EPOCHS`).
    #[arg(long)]
    image_size: Option<usize>,
    /// Epochs of the one stage of `--image-size` (at least 1; default 10).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// The optimizer: RMSprop (the book's), AdamW, or SGD with Nesterov momentum 0.9.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Rmsprop)]
    optimizer: OptimizerKind,
    /// Decoupled weight decay of `--optimizer` (`w -= lr * d * w` each step; 0: none).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = non_negative("--weight-decay"))]
    weight_decay: f64,
    /// Evaluate, checkpoint and test an exponential moving average of the weights with this
    /// per-step decay (in [0, 1), e.g. 0.999; off by default).
    #[arg(long, allow_hyphen_values = true, value_parser = fraction("--ema", true))]
    ema: Option<f64>,
    /// Peak learning rate (a finite number > 0): reached by a linear warm-up over the
    /// first 2 epochs from a tenth of it, then cosine decay to 1% of it at the last step.
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
    #[arg(long, default_value_t = 8)]
    precise_bn: usize,
    /// Score the test split without horizontal-flip test-time augmentation (by default each
    /// image's probability is averaged with its mirror's).
    #[arg(long)]
    no_tta: bool,
    /// Random-resized crop instead of the book's 20% zoom: each training image is a random
    /// window of at least this fraction of each side (in (0, 1]), resized back.
    #[arg(long, allow_hyphen_values = true, value_parser = fraction("--crop", false))]
    crop: Option<f64>,
    /// Label smoothing of the binary cross-entropy (in [0, 1); 0: none): the targets become
    /// `y * (1 - s) + 0.5 * s`.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = fraction("--label-smoothing", true))]
    label_smoothing: f64,
    /// Print the model summary before training.
    #[arg(long)]
    summary: bool,
    /// Training images per class for the generated data set.
    #[arg(long, default_value_t = 300)]
    synthetic_per_class: usize,
}

impl Args {
    /// The stages to train: `--stages`, or the one stage of `--image-size`/`--epochs`, or the
    /// default for the data (the recipe for real photos, a short run on generated data).
    fn stages(&self) -> Stages {
        if let Some(stages) = &self.stages {
            return stages.clone();
        }
        let default: Stages = match self.data {
            Some(_) => recipe::RECIPE,
            None => recipe::GENERATED,
        }
        .parse()
        .expect("the built-in stages parse");
        match (self.image_size, self.epochs) {
            (None, None) => default,
            (size, epochs) => Stages(vec![Stage {
                size: size.unwrap_or(default.last().size),
                epochs: epochs.unwrap_or(10) as usize,
            }]),
        }
    }
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

/// A flag's value as a number.
fn number(text: &str) -> std::result::Result<f64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

/// Parses `--lr`: a finite number greater than 0 (`nan`, `inf`, `0` and negatives are refused).
fn positive_learning_rate(text: &str) -> std::result::Result<f64, String> {
    let lr = number(text)?;
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!(
            "the learning rate must be a finite number > 0, got {lr}"
        ))
    }
}

/// A parser of a finite number `>= 0`.
fn non_negative(flag: &'static str) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone {
    move |text| {
        let x = number(text)?;
        (x.is_finite() && x >= 0.0)
            .then_some(x)
            .ok_or_else(|| format!("{flag} must be a finite number >= 0, got {x}"))
    }
}

/// The optimizers `--optimizer` chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OptimizerKind {
    /// Keras 3's RMSprop (rho 0.9, epsilon 1e-7 inside the square root): the book's optimizer.
    Rmsprop,
    /// Keras' AdamW (betas 0.9/0.999, epsilon 1e-7).
    Adamw,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
}

/// The optimizer of `--optimizer` over `varmap`, at `--lr` with `--weight-decay`.
fn optimizer(args: &Args, varmap: &VarMap) -> Box<dyn TrainOptimizer> {
    let (lr, weight_decay) = (args.lr, args.weight_decay);
    match args.optimizer {
        OptimizerKind::Rmsprop => Box::new(RmsProp::from_varmap(
            varmap,
            RmsPropConfig {
                lr,
                weight_decay,
                ..Default::default()
            },
        )),
        OptimizerKind::Adamw => Box::new(AdamW::from_varmap(
            varmap,
            AdamWConfig {
                lr,
                weight_decay,
                ..Default::default()
            },
        )),
        OptimizerKind::Sgd => Box::new(Sgd::from_varmap(
            varmap,
            SgdConfig {
                lr,
                momentum: 0.9,
                nesterov: true,
                weight_decay,
            },
        )),
    }
}

/// A parser of a fraction: in `[0, 1)` when `zero` (`0` allowed, `1` not), else in `(0, 1]`.
fn fraction(
    flag: &'static str,
    zero: bool,
) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone {
    move |text| {
        let x = number(text)?;
        let fits = if zero {
            (0.0..1.0).contains(&x)
        } else {
            x > 0.0 && x <= 1.0
        };
        let range = if zero { "in [0, 1)" } else { "in (0, 1]" };
        fits.then_some(x)
            .ok_or_else(|| format!("{flag} must be a number {range}, got {x}"))
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    tuning::apply();
    let args = Args::parse();
    let stages = args.stages();
    let out = run_folder(&args)?;
    println!("run folder: {}", out.display());
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let dir = out.join("synthetic-data");
            let n = args.synthetic_per_class;
            let size = stages.last().size;
            println!("no --data given: generating circles vs squares ({n} training images per class) in {}", dir.display());
            SyntheticShapes::new()
                .image_size(size, size)
                .per_class(n, n / 4, n / 4)
                .seed(args.seed)
                .write(&dir)?;
            dir
        }
    };
    let report = train(&args, &stages, &data, &out, started)?;
    report.print(&out);
    Ok(())
}

/// What a run produced, for the summary lines and the tests.
struct RunReport {
    history: History,
    /// The epoch (0-based) of the best checkpoint: the lowest validation loss of the last stage.
    best_epoch: usize,
    test: Evaluation,
    /// Seconds from the start of `main` to the end of training, and to the end of the test.
    trained_s: f64,
    total_s: f64,
}

impl RunReport {
    fn print(&self, out: &Path) {
        let best = &self.history.epochs[self.best_epoch];
        println!(
            "trained {} epochs; best checkpoint {} (epoch {}: val_loss {:.4}, val_accuracy {:.4}; highest val_accuracy {:.4}), history {}, plot {}",
            self.history.len(),
            out.join("best").display(),
            self.best_epoch + 1,
            best.val_loss.unwrap_or(f64::NAN),
            best.val_accuracy.unwrap_or(f64::NAN),
            self.history.val_accuracy().into_iter().fold(0.0, f64::max),
            out.join("history.csv").display(),
            out.join("history.png").display()
        );
        println!(
            "wall time: {:.1}s to the end of training, {:.1}s in all (data, training, test)",
            self.trained_s, self.total_s
        );
        println!("test loss: {:.4}", self.test.loss);
        println!(
            "test accuracy: {:.4}",
            self.test.accuracy.unwrap_or(f64::NAN)
        );
    }
}

/// The three splits at `size`x`size`, sharing the training split's class folders (checked).
fn splits(data: &Path, size: usize) -> Result<[ImageFolder; 3]> {
    ImageFolder::builder(data, size, size)
        .cache(true)
        .build_splits(["train", "validation", "test"])
}

/// Mini-Xception at one input size, over the shared `VarMap` of `vb`.
fn stage_model<M: Network + 'static>(vb: VarBuilder) -> Result<Box<dyn ModuleT>> {
    Ok(Box::new(M::new(vb)?))
}

/// The checkpoint's record of the model scored (the last stage's size), its summary, and
/// whether its output fits the classes of the loss.
fn describe<M: Network>(set: &ImageFolder, summary: bool) -> Result<ModelInfo> {
    set.check_classes_fit(&Loss::BinaryCrossEntropy, M::OUTPUT_SHAPE)?;
    if summary {
        println!("{}", M::summary());
    }
    Ok(ModelInfo::of::<M>(set.class_names()))
}

/// Two classes, one logit: binary cross-entropy, smoothed by `--label-smoothing`.
fn loss(args: &Args) -> Loss {
    if args.label_smoothing == 0.0 {
        Loss::BinaryCrossEntropy
    } else {
        Loss::BinaryCrossEntropySmoothed {
            label_smoothing: args.label_smoothing,
        }
    }
}

fn train(
    args: &Args,
    stages: &Stages,
    data: &Path,
    out: &Path,
    started: Instant,
) -> Result<RunReport> {
    let device = Device::Cpu;
    let batch_size = args.batch_size;
    println!("stages (SIZE:EPOCHS): {stages}");
    // Every image of every split decodes (into the cache) before the first epoch, so a bad
    // test image fails now rather than after training; the classes fit the loss and model.
    let first_splits = splits(data, stages.0[0].size)?;
    let train_set = &first_splits[0];
    let info = with_mini_xception!(stages.last().size, describe(train_set, args.summary))?;
    println!("data: classes {:?}", info.class_names);
    for (name, set) in ["train", "validation", "test"].iter().zip(&first_splits) {
        set.verify()?;
        let counts: Vec<String> = set
            .class_names()
            .iter()
            .zip(set.class_counts())
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        println!("  {name}: {} images ({})", set.len(), counts.join(", "));
    }

    // One VarMap; a model per stage size over it (the description gives the same parameter
    // names at every size). `--seed` fixes the whole run: initialisation, dropout masks,
    // shuffling, augmentation.
    let varmap = VarMap::new();
    convnet::seed::set_global_seed(args.seed);
    let vb = seeded_var_builder(&varmap, args.seed, DType::F32, &device);
    let models = stages
        .0
        .iter()
        .map(|stage| with_mini_xception!(stage.size, stage_model(vb.clone())))
        .collect::<Result<Vec<_>>>()?;
    let optimizer = optimizer(args, &varmap);
    let train_len = first_splits[0].len();
    let steps_per_epoch = train_len.div_ceil(batch_size);
    let warmup = 2 * steps_per_epoch;
    let schedule = Schedule::warmup_cosine(
        args.lr / 10.0,
        args.lr,
        warmup,
        stages.epochs() * steps_per_epoch,
        0.01,
    );
    let best = out.join("best");
    let mut trainer = Trainer::new(&*models[0], &varmap, loss(args), optimizer)
        .with_model_info(info.clone())
        .with_schedule(schedule, ScheduleUnit::Step)
        .with_callback(CsvLogger::new(out.join("history.csv")));
    if let Some(decay) = args.ema {
        // Swapped in after each epoch's last step: validation, precise BN, the checkpoint
        // and so the test see the average.
        trainer.add_callback(Box::new(
            WeightEma::new(decay)?.evaluate_with_average(steps_per_epoch),
        ));
    }
    // The book's augmentation: random flips, rotations of up to 10% of a turn, 20% zoom (or
    // a random-resized crop with `--crop`).
    let augment = Augment::new().flip_horizontal().rotation(0.1);
    let augment = match args.crop {
        Some(min_scale) => augment.crop(min_scale as f32),
        None => augment.zoom(0.2),
    };
    // The first stage's splits are the ones verified above; later stages load their own.
    let mut first = Some(first_splits);
    let mut epochs_done = 0;
    let mut test_set = None;
    for (i, (stage, model)) in stages.0.iter().zip(&models).enumerate() {
        let [train_set, val_set, test] = match first.take() {
            Some(sets) => sets,
            None => splits(data, stage.size)?,
        };
        let last_stage = i + 1 == stages.0.len();
        println!(
            "stage {}: {} epochs at {}x{}",
            i + 1,
            stage.epochs,
            stage.size,
            stage.size
        );
        let train_set: Arc<dyn Dataset> = Arc::new(train_set);
        let mut train_data = DataLoader::from_arc(train_set.clone(), batch_size)
            .shuffle(true)
            .seed(args.seed)
            .augment(augment.clone())
            .training(true)
            .device(device.clone())
            .prefetch(2);
        let mut val_data = DataLoader::new(val_set, batch_size).device(device.clone());
        trainer = trainer.with_model(&**model);
        if args.precise_bn > 0 {
            // Un-augmented batches of the same cached training images.
            let clean = DataLoader::from_arc(train_set, batch_size)
                .shuffle(true)
                .seed(args.seed ^ 0x5EED)
                .device(device.clone());
            trainer = trainer.with_precise_bn(clean, Some(args.precise_bn));
        }
        if last_stage {
            // Checkpoints compete at the size they are scored at (a validation loss at 96x96
            // does not compare with one at 180x180).
            trainer.add_callback(Box::new(ModelCheckpoint::best(&best, "val_loss")));
            test_set = Some(test);
        }
        // A NaN or diverging loss (above 100x the first epoch's) fails `fit` before the step
        // is applied, and `main` then exits non-zero; the best checkpoint keeps its last good
        // weights.
        epochs_done += stage.epochs;
        trainer.fit(&mut train_data, Some(&mut val_data), epochs_done)?;
    }
    let history = trainer.history().clone();
    let trained = started.elapsed().as_secs_f64();
    plot_history(&history, out.join("history.png"), 1200, 450)?;
    // The best epoch's checkpoint of this run (the run folder held none before it).
    let model = models.last().expect("at least one stage");
    load_checkpoint_weights(&varmap, &best)?;
    let mut test_data =
        DataLoader::new(test_set.expect("the last stage sets it"), batch_size).device(device);
    let test = match args.no_tta {
        false => evaluate_tta(&**model, loss(args), &mut test_data)?,
        true => evaluate(&**model, loss(args), &mut test_data)?,
    };
    let last_stage_start = history.len() - stages.last().epochs;
    let best_epoch = (last_stage_start..history.len())
        .reduce(|best, e| {
            let loss = |e: usize| history.epochs[e].val_loss.unwrap_or(f64::INFINITY);
            if loss(e) < loss(best) {
                e
            } else {
                best
            }
        })
        .expect("the last stage trained at least one epoch");
    Ok(RunReport {
        history,
        best_epoch,
        test,
        trained_s: trained,
        total_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_the_readme_names_exist() {
        use clap::CommandFactory;
        readme_check::assert_flags_exist("cats_vs_dogs", Args::command());
    }

    #[test]
    fn crop_and_label_smoothing_must_be_fractions() {
        for (flag, bad) in [
            ("--crop", "0"),
            ("--crop", "1.5"),
            ("--crop", "nan"),
            ("--crop", "-0.5"),
            ("--label-smoothing", "1"),
            ("--label-smoothing", "-0.1"),
            ("--label-smoothing", "x"),
        ] {
            let err = Args::try_parse_from(["cats_vs_dogs", flag, bad]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(flag), "{flag} {bad}: {text}");
        }
        let args =
            Args::try_parse_from(["cats_vs_dogs", "--crop", "1", "--label-smoothing", "0.1"])
                .unwrap();
        assert_eq!((args.crop, args.label_smoothing), (Some(1.0), 0.1));
        let defaults = Args::try_parse_from(["cats_vs_dogs"]).unwrap();
        assert_eq!((defaults.crop, defaults.label_smoothing), (None, 0.0));
        assert_eq!(loss(&defaults), Loss::BinaryCrossEntropy);
    }

    #[test]
    fn optimizer_weight_decay_and_ema_are_checked() {
        for (flag, bad, says) in [
            (
                "--optimizer",
                "adam",
                "possible values: rmsprop, adamw, sgd",
            ),
            ("--weight-decay", "-0.1", "finite number >= 0"),
            ("--weight-decay", "inf", "finite number >= 0"),
            ("--ema", "1", "in [0, 1)"),
            ("--ema", "x", "is not a number"),
        ] {
            let text = Args::try_parse_from(["cats_vs_dogs", flag, bad])
                .unwrap_err()
                .to_string();
            assert!(
                text.contains(flag) && text.contains(says),
                "{flag} {bad}: {text}"
            );
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        vb.get(4, "w").unwrap();
        for (name, kind) in [("rmsprop", "rmsprop"), ("adamw", "adamw"), ("sgd", "sgd")] {
            let args = Args::try_parse_from([
                "cats_vs_dogs",
                "--optimizer",
                name,
                "--lr",
                "0.02",
                "--weight-decay",
                "0.1",
                "--ema",
                "0.99",
            ])
            .unwrap();
            assert_eq!((args.weight_decay, args.ema), (0.1, Some(0.99)));
            let opt = optimizer(&args, &varmap);
            assert_eq!((opt.kind(), opt.lr()), (kind, 0.02));
        }
        let defaults = Args::try_parse_from(["cats_vs_dogs"]).unwrap();
        assert_eq!(optimizer(&defaults, &varmap).kind(), "rmsprop");
        assert_eq!((defaults.weight_decay, defaults.ema), (0.0, None));
    }

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

    /// The main job at a small scale on the real photos (set `CONVNET_DATA_DIR`; `.ci/run`
    /// runs it): two progressive-resizing stages with the recipe's schedule, precise BN and
    /// flip TTA. Checks what the recipe guarantees at this scale: the checkpoint comes from
    /// the last stage and records its size, validation in the last stage is stable (precise
    /// BN), and the test score is well above chance.
    #[test]
    #[ignore = "needs the real photos: set CONVNET_DATA_DIR and run with --ignored"]
    fn recipe_at_small_scale_on_real_photos() -> Result<()> {
        let data = std::env::var("CONVNET_DATA_DIR")
            .expect("CONVNET_DATA_DIR must name the cats_vs_dogs folder for this test");
        let out = std::env::temp_dir().join(format!("convnet-cvd-recipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let out_arg = out.to_str().unwrap();
        let args = Args::try_parse_from([
            "cats_vs_dogs",
            "--data",
            &data,
            "--stages",
            "64:3,96:3",
            "--out",
            out_arg,
        ])
        .unwrap();
        let stages = args.stages();
        let out = run_folder(&args)?;
        let report = train(&args, &stages, Path::new(&data), &out, Instant::now())?;
        println!("{}", report.history.to_csv());
        report.print(&out);
        let history = &report.history;
        assert_eq!(history.len(), 6);
        assert!(
            report.best_epoch >= 3,
            "the checkpoint comes from the last stage"
        );
        let info = convnet::train::load_state(out.join("best"))?
            .model
            .expect("the checkpoint records the model");
        assert_eq!(info.input_shape, [3, 96, 96]);
        assert_eq!(info.class_names, ["cats", "dogs"]);
        let val = history.val_accuracy();
        // Stable evaluation: in the last stage (precise BN, the cosine tail) validation may
        // still rise, but never drops by more than 3 points from one epoch to the next (with
        // the moving statistics of training it dropped by up to 25 points at 180x180).
        for pair in val[3..].windows(2) {
            assert!(
                pair[1] >= pair[0] - 0.03,
                "validation accuracy drops in the last stage: {val:?}"
            );
        }
        let test = report.test.accuracy.unwrap();
        assert!(
            test >= 0.66,
            "test accuracy {test:.3}; history:\n{}",
            history.to_csv()
        );
        let _ = std::fs::remove_dir_all(&out);
        Ok(())
    }
}
