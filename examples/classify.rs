//! Uses a checkpoint of the main job (`cats_vs_dogs`) on any photos: scores it on an image
//! folder, or prints each image's class probabilities. The checkpoint records its model,
//! input size and class names, so neither command repeats them.
//!
//! ```text
//! cargo run --release --example classify -- score runs/cats_vs_dogs/best ../shared/data/cats_vs_dogs/test
//! cargo run --release --example classify -- predict runs/cats_vs_dogs/best photo.jpg more_photos/
//! ```
//!
//! `score` prints the loss, accuracy, per-class recall, the confusion matrix and a line
//! `balanced accuracy: 0.xxxx`; the folder must hold one sub-folder per class, with the
//! checkpoint's class names (compared exactly: a class folder whose name is not UTF-8 is
//! refused). `score --tta` averages each image's probabilities with its mirror's, as the
//! main job's test score does, so `classify score --tta RUN/best DATA/test` gives the
//! main job's `test loss` and `test accuracy` again.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::{Parser, Subcommand};
use convnet::checkpoint::load_checkpoint_weights;
use convnet::data::{has_image_extension, load_image, DataLoader, ImageFolder};
use convnet::error::Error;
use convnet::loss::Loss;
use convnet::metrics::ConfusionMatrix;
use convnet::metrics::MetricAccumulator;
use convnet::prelude::*;
use convnet::train::{flip_averaged_logits, load_state, predict, ModelInfo};
use std::path::{Path, PathBuf};

mod models;
/// The README's commands and flags, checked against `--help` by the tests.
#[cfg(test)]
#[allow(dead_code)]
mod readme_check;
mod tuning;

use models::with_mini_xception;

#[derive(Parser, Debug)]
#[command(about = "Score a cats_vs_dogs checkpoint on an image folder, or classify photos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluates CHECKPOINT_DIR on FOLDER (one sub-folder per class): accuracy, per-class
    /// recall, confusion matrix, balanced accuracy.
    Score {
        /// A checkpoint folder written by the main job (e.g. `runs/cats_vs_dogs/best`).
        checkpoint: PathBuf,
        /// An image folder with the checkpoint's class sub-folders.
        folder: PathBuf,
        /// Images per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Test-time augmentation: average each image's probabilities with those of its
        /// mirror image (as the main job scores its test split).
        #[arg(long)]
        tta: bool,
    },
    /// Prints the class probabilities of each image (folders are searched for .jpg, .jpeg
    /// and .png files).
    Predict {
        /// A checkpoint folder written by the main job.
        checkpoint: PathBuf,
        /// Image files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

impl Command {
    fn checkpoint(&self) -> &Path {
        match self {
            Command::Score { checkpoint, .. } | Command::Predict { checkpoint, .. } => checkpoint,
        }
    }
}

fn main() -> Result<()> {
    tuning::apply();
    let cli = Cli::parse();
    let dir = cli.command.checkpoint();
    let info = load_state(dir)?.model.ok_or_else(|| {
        Error::checkpoint(
            dir,
            "records no model (it was written by a trainer without `with_model_info`)",
        )
    })?;
    let size = match info.input_shape[..] {
        [3, h, w] if h == w => h,
        _ => 0,
    };
    if !info.name.starts_with("MiniXception") || !models::SIZES.contains(&size) {
        return Err(Error::checkpoint(
            dir,
            format!(
                "holds model {} with input {:?}; this program knows mini-Xception at {:?} pixels",
                info.name,
                info.input_shape,
                models::SIZES
            ),
        )
        .into());
    }
    with_mini_xception!(size, run(&cli.command, &info))
}

fn run<M: Network>(command: &Command, info: &ModelInfo) -> Result<()> {
    let dir = command.checkpoint();
    info.check::<M>(dir)?;
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = M::new(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    load_checkpoint_weights(&varmap, dir)?;
    println!(
        "{}: {} ({}x{}), classes {:?}",
        dir.display(),
        info.name,
        M::INPUT_SHAPE[1],
        M::INPUT_SHAPE[2],
        info.class_names
    );
    match command {
        Command::Score {
            folder,
            batch_size,
            tta,
            ..
        } => score(&model, info, folder, *batch_size, *tta),
        Command::Predict { inputs, .. } => classify(&model, info, inputs),
    }
}

/// Refuses class folders that are not exactly the checkpoint's classes (a name that is not
/// UTF-8 cannot be: the checkpoint records names as text, and a lossy comparison would
/// match distinct folders).
fn check_classes(set: &ImageFolder, info: &ModelInfo, folder: &Path) -> Result<()> {
    if let Some(odd) = set.class_folders().iter().find(|f| f.to_str().is_none()) {
        return Err(Error::data(
            folder.join(odd),
            "class folder name is not UTF-8, so it cannot be matched exactly with the checkpoint's class names",
        )
        .into());
    }
    if set.class_names() != info.class_names {
        return Err(Error::data(
            folder,
            format!(
                "its class folders {:?} are not the checkpoint's classes {:?} (same names, same order)",
                set.class_names(),
                info.class_names
            ),
        )
        .into());
    }
    Ok(())
}

fn score<M: Network>(
    model: &M,
    info: &ModelInfo,
    folder: &Path,
    batch_size: usize,
    tta: bool,
) -> Result<()> {
    let (h, w) = (M::INPUT_SHAPE[1], M::INPUT_SHAPE[2]);
    let set = ImageFolder::open(folder, h, w)?;
    check_classes(&set, info, folder)?;
    let classes = info.class_names.len();
    let loss = match M::OUTPUT_SHAPE {
        [1] => Loss::BinaryCrossEntropy,
        _ => Loss::SparseCategoricalCrossEntropy,
    };
    let mut matrix = ConfusionMatrix::new(classes);
    let mut mean = MetricAccumulator::new();
    let batch_size = batch_size.max(1);
    let mut loader = DataLoader::new(set, batch_size);
    for batch in convnet::data::Batches::epoch(&mut loader, 0) {
        let batch = batch?;
        let logits = match tta {
            true => flip_averaged_logits(model, loss, &batch.inputs)?,
            false => predict(model, &batch.inputs, batch_size)?,
        };
        matrix.update(&logits, &batch.targets)?;
        let l = loss.compute(&logits, &batch.targets)?.to_scalar::<f32>()?;
        mean.update(f64::from(l), batch.inputs.dim(0)?, None);
    }
    let how = if tta { ", flip-averaged" } else { "" };
    println!("{} images in {}{how}", matrix.total(), folder.display());
    println!("loss: {:.4}", mean.loss());
    println!("accuracy: {:.4}", matrix.accuracy());
    for (name, recall) in info.class_names.iter().zip(matrix.recalls()) {
        match recall {
            Some(r) => println!("recall {name}: {r:.4}"),
            None => println!("recall {name}: n/a (no images)"),
        }
    }
    let width = info
        .class_names
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(6);
    println!("confusion matrix (rows: actual, columns: predicted):");
    print!("{:width$}", "");
    for name in &info.class_names {
        print!(" {name:>width$}");
    }
    println!();
    for (name, row) in info.class_names.iter().zip(matrix.counts()) {
        print!("{name:width$}");
        for n in row {
            print!(" {n:>width$}");
        }
        println!();
    }
    println!("balanced accuracy: {:.4}", matrix.balanced_accuracy());
    Ok(())
}

/// Image files of `inputs`: files as given, folders searched recursively, in sorted order.
fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("read folder", dir, e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("read folder", dir, e))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.is_file() && has_image_extension(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files)?;
        } else if std::fs::symlink_metadata(input).is_ok() && !input.is_dir() {
            // A file, or something else that exists (a FIFO, a device): `load_image` says
            // what it is rather than "no such file".
            files.push(input.clone());
        } else {
            return Err(Error::data(input, "no such image file or folder").into());
        }
    }
    if files.is_empty() {
        return Err(Error::invalid("inputs", "no .jpg, .jpeg or .png files found").into());
    }
    Ok(files)
}

fn classify<M: Network>(model: &M, info: &ModelInfo, inputs: &[PathBuf]) -> Result<()> {
    let (h, w) = (M::INPUT_SHAPE[1], M::INPUT_SHAPE[2]);
    for path in image_files(inputs)? {
        let pixels = load_image(&path, h, w)?;
        let x = Tensor::from_vec(pixels, (1, 3, h, w), &Device::Cpu)?;
        let logits = predict(model, &x, 1)?.flatten_all()?;
        let probs: Vec<f32> = if logits.elem_count() == 1 {
            let p = candle_nn::ops::sigmoid(&logits)?.to_vec1::<f32>()?[0];
            vec![1.0 - p, p]
        } else {
            candle_nn::ops::softmax(&logits, 0)?.to_vec1::<f32>()?
        };
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap_or(0);
        let listed: Vec<String> = info
            .class_names
            .iter()
            .zip(&probs)
            .map(|(name, p)| format!("{name} {p:.4}"))
            .collect();
        let label = info
            .class_names
            .get(best)
            .map(String::as_str)
            .unwrap_or("?");
        println!("{}: {} -> {label}", path.display(), listed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_the_readme_names_exist() {
        readme_check::assert_flags_exist("classify", Cli::command());
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("convnet-classify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_fifo_is_named_as_a_fifo() {
        let dir = temp("fifo");
        let fifo = dir.join("photo.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo is not available: nothing to check");
            return;
        }
        let files = image_files(std::slice::from_ref(&fifo)).unwrap();
        assert_eq!(files, std::slice::from_ref(&fifo));
        let err = load_image(&fifo, 8, 8).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a FIFO)"), "{err}");
        assert!(!err.contains("no such"), "{err}");
        let missing = image_files(&[dir.join("absent.jpg")])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("no such image file"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn class_folders_that_are_not_utf8_are_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = temp("utf8");
        convnet::data::SyntheticShapes::new()
            .image_size(8, 8)
            .per_class(2, 1, 1)
            .write(&dir)
            .unwrap();
        let test = dir.join("test");
        let mut classes: Vec<PathBuf> = std::fs::read_dir(&test)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        classes.sort();
        // Two names that read the same when decoded lossily (both `\u{FFFD}`).
        for (class, byte) in classes.iter().zip([0xFFu8, 0xFE]) {
            std::fs::rename(class, test.join(OsStr::from_bytes(&[byte]))).unwrap();
        }
        let set = ImageFolder::open(&test, 8, 8).unwrap();
        let info = ModelInfo {
            name: "m".into(),
            input_shape: vec![3, 8, 8],
            output_shape: vec![1],
            class_names: set.class_names().to_vec(),
        };
        let err = check_classes(&set, &info, &test).unwrap_err().to_string();
        assert!(err.contains("is not UTF-8"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
