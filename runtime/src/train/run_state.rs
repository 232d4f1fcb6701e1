//! Training checkpoints: the weights, the optimizer's buffers and the run's state (epoch,
//! step, history) written as one set into a checkpoint directory, and read back only when the
//! whole set is intact.
//!
//! Layout of a checkpoint directory (written by [`crate::checkpoint::DirWriter`]: a fresh
//! folder swapped in as a unit, so a killed writer leaves the previous checkpoint whole):
//! - `weights.safetensors`: every variable of the `VarMap` (batch-norm moving statistics
//!   included), by its hierarchical name;
//! - `optimizer.safetensors`: the optimizer buffers (`"{slot}/{variable}"`), when saved with
//!   an optimizer;
//! - `state.json`: [`TrainingState`];
//! - `manifest.json`: each file's size and CRC-32, verified before anything is read.

use super::ema::{EmaMeta, WeightEma};
use super::History;
use crate::checkpoint::{self, verify, DirWriter, WEIGHTS_FILE};
use crate::error::Error;
use crate::model::Network;
use crate::optim::{OptimizerState, TrainOptimizer};
use candle_core::Result;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the optimizer buffers inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the weight average ([`WeightEma`]) inside a checkpoint directory, when
/// saved with one.
pub const EMA_FILE: &str = "ema.safetensors";
/// File name of the [`TrainingState`] inside a checkpoint directory.
pub const STATE_FILE: &str = "state.json";
/// Format version of [`TrainingState`] this runtime writes and reads (2: checkpoint
/// directories with a manifest).
pub const STATE_FORMAT: u32 = 2;

/// Scalar optimizer state stored in `state.json` (the buffers go to
/// `optimizer.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// Optimizer kind, e.g. `adam`.
    pub kind: String,
    /// Update steps taken.
    pub step: u64,
    /// Learning rate at save time.
    pub learning_rate: f64,
}

/// What a checkpoint records about its model, so that it can be scored or used for
/// predictions without repeating the model, its input size or its class names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name ([`Network::NAME`]).
    pub name: String,
    /// One example's input shape, e.g. `[3, 180, 180]`.
    pub input_shape: Vec<usize>,
    /// One example's output shape, e.g. `[1]`.
    pub output_shape: Vec<usize>,
    /// The class names, in label order (empty when the model is not a classifier of named
    /// classes).
    pub class_names: Vec<String>,
}

impl ModelInfo {
    /// The record of model type `M` with the given class names.
    pub fn of<M: Network>(class_names: &[String]) -> Self {
        Self {
            name: M::NAME.to_string(),
            input_shape: M::INPUT_SHAPE.to_vec(),
            output_shape: M::OUTPUT_SHAPE.to_vec(),
            class_names: class_names.to_vec(),
        }
    }

    /// Whether this is the record of model type `M` (name, input and output shapes).
    pub fn is<M: Network>(&self) -> bool {
        self.name == M::NAME
            && self.input_shape == M::INPUT_SHAPE
            && self.output_shape == M::OUTPUT_SHAPE
    }

    /// `Ok` when this is the record of model type `M`, else an error naming both models and
    /// shapes (`dir`: the checkpoint, for the message).
    pub fn check<M: Network>(&self, dir: &Path) -> Result<()> {
        if self.is::<M>() {
            return Ok(());
        }
        Err(Error::checkpoint(
            dir,
            format!(
                "holds model {} with input {:?} and output {:?}, not {} with input {:?} and output {:?}",
                self.name, self.input_shape, self.output_shape, M::NAME, M::INPUT_SHAPE, M::OUTPUT_SHAPE
            ),
        )
        .into())
    }
}

/// Everything besides tensors needed to resume training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Format version of this file ([`STATE_FORMAT`]).
    pub format: u32,
    /// Number of completed epochs: training resumes at this 0-based epoch.
    pub epoch: usize,
    /// Optimizer steps taken over the whole run (drives per-step schedules).
    pub global_step: u64,
    /// The optimizer's scalar state, when an optimizer was saved.
    pub optimizer: Option<OptimizerMeta>,
    /// History of the completed epochs.
    pub history: History,
    /// The model the weights belong to, when the trainer was told
    /// ([`super::Trainer::with_model_info`]).
    #[serde(default)]
    pub model: Option<ModelInfo>,
    /// The weight average's scalar state, when saved with one (its tensors: [`EMA_FILE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<EmaMeta>,
    /// The run's first batch loss, a reference of the divergence guard
    /// ([`super::DivergenceGuard`]), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_batch_loss: Option<f64>,
}

/// What a training checkpoint keeps besides weights, optimizer state and history, so that a
/// resumed run continues exactly (see [`save_checkpoint_with`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointExtras<'a> {
    /// The weight average, when training keeps one ([`EMA_FILE`], read by [`load_ema`]).
    pub ema: Option<&'a WeightEma>,
    /// The run's first batch loss, the divergence guard's reference
    /// ([`super::Trainer::resume`] restores it).
    pub first_batch_loss: Option<f64>,
}

/// Writes a checkpoint directory as one set (see the module docs): weights, optimizer
/// buffers (when `optimizer` is given) and `state.json` with `epoch` completed epochs,
/// `global_step`, `history` and the `model` record. On any failure the previous checkpoint
/// in `dir` stays as it was and no temporary files are left.
pub fn save_checkpoint(
    dir: impl AsRef<Path>,
    varmap: &VarMap,
    optimizer: Option<&dyn TrainOptimizer>,
    epoch: usize,
    global_step: u64,
    history: &History,
    model: Option<&ModelInfo>,
) -> Result<()> {
    let extras = CheckpointExtras::default();
    save_checkpoint_with(
        dir,
        varmap,
        optimizer,
        epoch,
        global_step,
        history,
        model,
        extras,
    )
}

/// [`save_checkpoint`] with [`CheckpointExtras`]: the state of a weight average
/// ([`EMA_FILE`] and [`TrainingState::ema`]) and the first batch loss.
#[allow(clippy::too_many_arguments)]
pub fn save_checkpoint_with(
    dir: impl AsRef<Path>,
    varmap: &VarMap,
    optimizer: Option<&dyn TrainOptimizer>,
    epoch: usize,
    global_step: u64,
    history: &History,
    model: Option<&ModelInfo>,
    extras: CheckpointExtras,
) -> Result<()> {
    let mut writer = DirWriter::begin(dir)?;
    checkpoint::save_tensors(
        &checkpoint::snapshot(varmap)?,
        writer.temp_path(WEIGHTS_FILE),
    )?;
    writer.add(WEIGHTS_FILE)?;
    let meta = match optimizer {
        Some(opt) => {
            let state = opt.export_state()?;
            checkpoint::save_tensors(&state.tensors, writer.temp_path(OPTIMIZER_FILE))?;
            writer.add(OPTIMIZER_FILE)?;
            Some(OptimizerMeta {
                kind: state.kind,
                step: state.step,
                learning_rate: state.learning_rate,
            })
        }
        None => None,
    };
    let ema = match extras.ema {
        Some(ema) => {
            let (kept, meta) = ema.export_state()?;
            checkpoint::save_tensors(&kept, writer.temp_path(EMA_FILE))?;
            writer.add(EMA_FILE)?;
            Some(meta)
        }
        None => None,
    };
    let state = TrainingState {
        format: STATE_FORMAT,
        epoch,
        global_step,
        optimizer: meta,
        history: history.clone(),
        model: model.cloned(),
        ema,
        first_batch_loss: extras.first_batch_loss,
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| {
        candle_core::Error::msg(format!("cannot serialize the training state: {e}"))
    })?;
    writer.write(STATE_FILE, &json)?;
    writer.commit()
}

fn parse_state(files: &BTreeMap<String, Vec<u8>>, dir: &Path) -> Result<TrainingState> {
    let path = dir.join(STATE_FILE);
    let bytes = files
        .get(STATE_FILE)
        .ok_or_else(|| Error::checkpoint(dir, format!("the set has no {STATE_FILE}")))?;
    let state: TrainingState = serde_json::from_slice(bytes)
        .map_err(|e| Error::checkpoint(&path, format!("invalid training state: {e}")))?;
    if state.format != STATE_FORMAT {
        return Err(Error::checkpoint(
            &path,
            format!(
                "training-state format {} is not the supported {STATE_FORMAT}",
                state.format
            ),
        )
        .into());
    }
    Ok(state)
}

/// Reads a checkpoint's [`TrainingState`], after verifying the whole set.
pub fn load_state(dir: impl AsRef<Path>) -> Result<TrainingState> {
    let dir = dir.as_ref();
    parse_state(&verify(dir)?, dir)
}

/// Puts the weight average of a checkpoint saved with one ([`save_checkpoint_with`])
/// into `ema`, over `varmap`'s variables (load the checkpoint's weights into `varmap` too,
/// e.g. with [`super::Trainer::resume`]); an error if it holds none.
pub fn load_ema(dir: impl AsRef<Path>, varmap: &VarMap, ema: &WeightEma) -> Result<()> {
    let dir = dir.as_ref();
    let files = verify(dir)?;
    let meta = parse_state(&files, dir)?.ema.ok_or_else(|| {
        Error::checkpoint(dir, "holds no weight average (it was saved without --ema)")
    })?;
    let kept = checkpoint::tensors_of(&files, dir, EMA_FILE)?;
    ema.import_state(varmap, &kept, meta)
}

/// Loads a checkpoint directory: weights into `varmap` (strictly checked), the optimizer
/// state into `optimizer` when given (an error if the checkpoint has none or of another
/// kind), and returns the [`TrainingState`]. The set is verified against its manifest (a
/// damaged or mixed set is refused) and every part validated before anything is modified.
pub fn load_checkpoint(
    dir: impl AsRef<Path>,
    varmap: &VarMap,
    optimizer: Option<&mut dyn TrainOptimizer>,
) -> Result<TrainingState> {
    let dir = dir.as_ref();
    let files = verify(dir)?;
    let state = parse_state(&files, dir)?;
    let weights = checkpoint::tensors_of(&files, dir, WEIGHTS_FILE)?;
    let opt_state = match &optimizer {
        Some(_) => {
            let meta = state.optimizer.clone().ok_or_else(|| {
                Error::checkpoint(
                    dir,
                    "holds no optimizer state, so it cannot resume training",
                )
            })?;
            Some(OptimizerState {
                kind: meta.kind,
                step: meta.step,
                learning_rate: meta.learning_rate,
                tensors: checkpoint::tensors_of(&files, dir, OPTIMIZER_FILE)?,
            })
        }
        None => None,
    };
    // Check the weights, then import the optimizer state (which validates before
    // mutating), then set the weights: a failure leaves model and optimizer untouched.
    let source = dir.join(WEIGHTS_FILE).display().to_string();
    checkpoint::check_fits(varmap, &weights, &source)?;
    if let (Some(opt), Some(s)) = (optimizer, opt_state.as_ref()) {
        opt.import_state(s)?;
    }
    checkpoint::restore(varmap, &weights, &source)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, AdamConfig};
    use crate::testutil::{temp_dir, varmap_with, weights};

    fn stepped_adam(vm: &VarMap) -> Adam {
        let mut opt = Adam::from_varmap(vm, AdamConfig::default());
        let loss = vm.all_vars()[0]
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        opt.apply(&loss.backward().unwrap()).unwrap();
        opt
    }

    #[test]
    fn a_checkpoint_without_optimizer_state_cannot_resume_an_optimizer() {
        let dir = temp_dir("ckpt-no-opt");
        let model = varmap_with(&[("a", &[2, 3]), ("b", &[4])]);
        save_checkpoint(&dir, &model, None, 3, 30, &Default::default(), None).unwrap();
        let mut opt = Adam::from_varmap(&model, AdamConfig::default());
        let err = load_checkpoint(&dir, &model, Some(&mut opt))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no optimizer state"), "{err}");
        let state = load_checkpoint(&dir, &model, None).unwrap();
        assert_eq!((state.epoch, state.global_step), (3, 30));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_mixed_and_foreign_format_checkpoints_are_refused() {
        let root = temp_dir("ckpt-refused");
        let model = varmap_with(&[("a", &[2])]);
        let opt = stepped_adam(&model);
        let (first, second) = (root.join("first"), root.join("second"));
        save_checkpoint(&first, &model, Some(&opt), 1, 1, &Default::default(), None).unwrap();
        model.all_vars()[0]
            .set(&candle_core::Tensor::new(&[5f32, 6.], &candle_core::Device::Cpu).unwrap())
            .unwrap();
        save_checkpoint(&second, &model, Some(&opt), 2, 2, &Default::default(), None).unwrap();
        let before = weights(&model);

        // A mixed set: the second save's weights with the first save's state.
        std::fs::copy(second.join(WEIGHTS_FILE), first.join(WEIGHTS_FILE)).unwrap();
        let mut opt2 = Adam::from_varmap(&model, AdamConfig::default());
        let err = load_checkpoint(&first, &model, Some(&mut opt2)).unwrap_err();
        assert!(
            matches!(Error::find(&err), Some(Error::Checkpoint { .. })),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("weights.safetensors` does not match the manifest"),
            "{err}"
        );
        assert_eq!(
            opt2.iterations(),
            0,
            "a refused load leaves the optimizer untouched"
        );

        // A damaged state.json.
        std::fs::write(second.join(STATE_FILE), b"{ \"format\": ").unwrap();
        let err = load_state(&second).unwrap_err().to_string();
        assert!(
            err.contains("state.json` does not match the manifest"),
            "{err}"
        );

        // A complete set whose state has another format.
        let third = root.join("third");
        let mut w = DirWriter::begin(&third).unwrap();
        checkpoint::save_tensors(
            &checkpoint::snapshot(&model).unwrap(),
            w.temp_path(WEIGHTS_FILE),
        )
        .unwrap();
        w.add(WEIGHTS_FILE).unwrap();
        w.write(STATE_FILE, br#"{"format": 1, "epoch": 1, "global_step": 1, "optimizer": null, "history": {"epochs": []}}"#).unwrap();
        w.commit().unwrap();
        let err = load_checkpoint(&third, &model, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("training-state format 1 is not the supported 2"),
            "{err}"
        );
        assert_eq!(
            weights(&model),
            before,
            "refused loads leave the model untouched"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn optimizer_state_with_wrong_shape_is_rejected() {
        let dir = temp_dir("ckpt-opt");
        let small = varmap_with(&[("a", &[2])]);
        let opt = stepped_adam(&small);
        // A complete set whose weights fit a 3-element model but whose optimizer moments
        // are the 2-element model's.
        let big = varmap_with(&[("a", &[3])]);
        let state = opt.export_state().unwrap();
        let mut w = DirWriter::begin(&dir).unwrap();
        checkpoint::save_tensors(
            &checkpoint::snapshot(&big).unwrap(),
            w.temp_path(WEIGHTS_FILE),
        )
        .unwrap();
        w.add(WEIGHTS_FILE).unwrap();
        checkpoint::save_tensors(&state.tensors, w.temp_path(OPTIMIZER_FILE)).unwrap();
        w.add(OPTIMIZER_FILE).unwrap();
        let meta = TrainingState {
            format: STATE_FORMAT,
            epoch: 1,
            global_step: 1,
            optimizer: Some(OptimizerMeta {
                kind: state.kind.clone(),
                step: state.step,
                learning_rate: state.learning_rate,
            }),
            history: Default::default(),
            model: None,
            ema: None,
            first_batch_loss: None,
        };
        w.write(STATE_FILE, &serde_json::to_vec(&meta).unwrap())
            .unwrap();
        w.commit().unwrap();
        let mut opt_big = Adam::from_varmap(&big, AdamConfig::default());
        let err = load_checkpoint(&dir, &big, Some(&mut opt_big))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`m/a` has shape [2]") && err.contains("[3]"),
            "{err}"
        );
        assert_eq!(opt_big.iterations(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
