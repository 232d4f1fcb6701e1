//! Checkpoints: weights as safetensors, optimizer state as safetensors, and epoch, step and
//! history as JSON, in one directory, each file written atomically (temp file, fsync,
//! rename).
//!
//! Layout of a checkpoint directory:
//! - `weights.safetensors`: every variable of the `VarMap` (batch-norm moving statistics
//!   included), by its hierarchical name;
//! - `optimizer.safetensors`: the optimizer buffers (`"{slot}/{variable}"`), when saved with
//!   an optimizer;
//! - `state.json`: [`TrainingState`] (written last, so a directory with it is complete).
//!
//! Loading checks names and shapes itself: a missing, unexpected or mis-shaped tensor is an
//! error naming the tensor and both shapes, and nothing is modified when any check fails.

use crate::optim::{OptimizerState, TrainOptimizer};
use crate::train::History;
use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// File name of the optimizer buffers inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the [`TrainingState`] inside a checkpoint directory.
pub const STATE_FILE: &str = "state.json";

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

/// Everything besides tensors needed to resume training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Format version of this file (currently 1).
    pub format: u32,
    /// Number of completed epochs: training resumes at this 0-based epoch.
    pub epoch: usize,
    /// Optimizer steps taken over the whole run (drives per-step schedules).
    pub global_step: u64,
    /// The optimizer's scalar state, when an optimizer was saved.
    pub optimizer: Option<OptimizerMeta>,
    /// History of the completed epochs.
    pub history: History,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::msg(format!("{what} {}: {e}", path.display()))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        io_err("cannot rename into", path, e)
    })
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, then rename.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    drop(f);
    commit(&tmp, path)
}

/// Saves named tensors as a safetensors file, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| io_err("cannot write", &tmp, e))?;
    commit(&tmp, path)
}

/// Reads every tensor of a safetensors file onto the CPU; errors name the file.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(io_err("checkpoint file missing:", path, "not found"));
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| io_err("cannot read safetensors file", path, e))
}

/// Deep copies of all variables of `varmap` (weights and moving statistics), by name.
pub fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap.data().lock().unwrap();
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?.detach())))
        .collect()
}

/// Checks that `tensors` fits `varmap`: every variable has a tensor of its shape and no
/// tensor is left over. `source` names where the tensors came from in the error, which lists
/// every problem with the tensor's name and both shapes.
pub fn check_fits(varmap: &VarMap, tensors: &HashMap<String, Tensor>, source: &str) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    let mut problems = Vec::new();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        match tensors.get(name) {
            None => problems.push(format!(
                "tensor `{name}` is missing (model expects shape {:?})",
                var.dims()
            )),
            Some(t) if t.dims() != var.dims() => problems.push(format!(
                "tensor `{name}` has shape {:?} in the checkpoint but the model expects {:?}",
                t.dims(),
                var.dims()
            )),
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !data.contains_key(*k)).collect();
    extra.sort();
    for name in extra {
        problems.push(format!(
            "unexpected tensor `{name}` of shape {:?} (the model has no such variable)",
            tensors[name].dims()
        ));
    }
    if !problems.is_empty() {
        candle_core::bail!(
            "checkpoint {source} does not fit the model: {}",
            problems.join("; ")
        );
    }
    Ok(())
}

/// Sets every variable of `varmap` from `tensors` after [`check_fits`]; nothing is modified
/// when a check fails.
pub fn restore(varmap: &VarMap, tensors: &HashMap<String, Tensor>, source: &str) -> Result<()> {
    check_fits(varmap, tensors, source)?;
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let t = tensors[name]
            .to_dtype(var.dtype())?
            .to_device(var.device())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Saves all variables of `varmap` to a safetensors file, atomically.
pub fn save_weights(varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    save_tensors(&snapshot(varmap)?, path)
}

/// Loads a safetensors file into `varmap` with the strict checks of [`restore`].
pub fn load_weights(varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let tensors = load_tensors(path)?;
    restore(varmap, &tensors, &path.display().to_string())
}

/// Writes a checkpoint directory (created if needed): weights, optimizer buffers (when
/// `optimizer` is given) and `state.json` with `epoch` completed epochs, `global_step` and
/// `history`.
pub fn save_checkpoint(
    dir: impl AsRef<Path>,
    varmap: &VarMap,
    optimizer: Option<&dyn TrainOptimizer>,
    epoch: usize,
    global_step: u64,
    history: &History,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
    save_weights(varmap, dir.join(WEIGHTS_FILE))?;
    let meta = match optimizer {
        Some(opt) => {
            let state = opt.export_state()?;
            save_tensors(&state.tensors, dir.join(OPTIMIZER_FILE))?;
            Some(OptimizerMeta {
                kind: state.kind,
                step: state.step,
                learning_rate: state.learning_rate,
            })
        }
        None => None,
    };
    let state = TrainingState {
        format: 1,
        epoch,
        global_step,
        optimizer: meta,
        history: history.clone(),
    };
    let json = serde_json::to_string_pretty(&state)
        .map_err(|e| candle_core::Error::msg(format!("cannot serialize state: {e}")))?;
    write_atomic(dir.join(STATE_FILE), json.as_bytes())
}

/// Reads a checkpoint's `state.json`.
pub fn load_state(dir: impl AsRef<Path>) -> Result<TrainingState> {
    let path = dir.as_ref().join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err("cannot read", &path, e))?;
    serde_json::from_str(&text).map_err(|e| io_err("invalid checkpoint state", &path, e))
}

/// Loads a checkpoint directory: weights into `varmap` (strictly checked), the optimizer
/// state into `optimizer` when given (an error if the checkpoint has none or of another
/// kind), and returns the [`TrainingState`]. Everything is read and validated before the
/// weights are set.
pub fn load_checkpoint(
    dir: impl AsRef<Path>,
    varmap: &VarMap,
    optimizer: Option<&mut dyn TrainOptimizer>,
) -> Result<TrainingState> {
    let dir = dir.as_ref();
    let state = load_state(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights = load_tensors(&weights_path)?;
    let opt_state = match &optimizer {
        Some(_) => {
            let meta = state.optimizer.clone().ok_or_else(|| {
                candle_core::Error::msg(format!(
                    "checkpoint {} holds no optimizer state",
                    dir.display()
                ))
            })?;
            let tensors = load_tensors(dir.join(OPTIMIZER_FILE))?;
            Some(OptimizerState {
                kind: meta.kind,
                step: meta.step,
                learning_rate: meta.learning_rate,
                tensors,
            })
        }
        None => None,
    };
    // Check the weights, then import the optimizer state (which validates before
    // mutating), then set the weights: a failure leaves model and optimizer untouched.
    let source = weights_path.display().to_string();
    check_fits(varmap, &weights, &source)?;
    if let (Some(opt), Some(s)) = (optimizer, opt_state.as_ref()) {
        opt.import_state(s)?;
    }
    restore(varmap, &weights, &source)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, AdamConfig};
    use crate::testutil::{mlp, temp_dir, weights};
    use candle_core::{DType, Device};

    fn varmap_with(shapes: &[(&str, &[usize])]) -> VarMap {
        let vm = VarMap::new();
        for (name, shape) in shapes {
            vm.get(
                *shape,
                name,
                candle_nn::Init::Const(1.0),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        }
        vm
    }

    #[test]
    fn weights_round_trip_and_no_temp_files() {
        let dir = temp_dir("ckpt-roundtrip");
        let (vm, _m) = mlp();
        let path = dir.join(WEIGHTS_FILE);
        save_weights(&vm, &path).unwrap();
        let (vm2, _m2) = mlp();
        assert_ne!(weights(&vm2), weights(&vm));
        load_weights(&vm2, &path).unwrap();
        assert_eq!(weights(&vm2), weights(&vm));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [WEIGHTS_FILE]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_damaged_and_misshaped_checkpoints_are_clear_errors() {
        let dir = temp_dir("ckpt-errors");
        let model = varmap_with(&[("a", &[2, 3]), ("b", &[4])]);
        let before = weights(&model);

        // Missing file.
        let err = load_weights(&model, dir.join("nope.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.safetensors"), "{err}");

        // Damaged (not safetensors) and truncated files.
        let garbage = dir.join("garbage.safetensors");
        std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
        let err = load_weights(&model, &garbage).unwrap_err().to_string();
        assert!(err.contains("garbage.safetensors"), "{err}");
        let good = dir.join("good.safetensors");
        save_weights(&model, &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let truncated = dir.join("truncated.safetensors");
        std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
        let err = load_weights(&model, &truncated).unwrap_err().to_string();
        assert!(err.contains("truncated.safetensors"), "{err}");

        // A tensor missing.
        let only_a = dir.join("only_a.safetensors");
        save_weights(&varmap_with(&[("a", &[2, 3])]), &only_a).unwrap();
        let err = load_weights(&model, &only_a).unwrap_err().to_string();
        assert!(
            err.contains("`b` is missing") && err.contains("[4]"),
            "{err}"
        );

        // A tensor mis-shaped, another unexpected.
        let wrong = dir.join("wrong.safetensors");
        save_weights(
            &varmap_with(&[("a", &[3, 2]), ("b", &[4]), ("c", &[1])]),
            &wrong,
        )
        .unwrap();
        let err = load_weights(&model, &wrong).unwrap_err().to_string();
        assert!(
            err.contains("`a` has shape [3, 2] in the checkpoint but the model expects [2, 3]"),
            "{err}"
        );
        assert!(err.contains("unexpected tensor `c`"), "{err}");
        assert_eq!(
            weights(&model),
            before,
            "failed loads leave the model untouched"
        );

        // A checkpoint directory without optimizer state cannot resume an optimizer.
        let ckpt = dir.join("ckpt");
        save_checkpoint(&ckpt, &model, None, 3, 30, &Default::default()).unwrap();
        let mut opt = Adam::from_varmap(&model, AdamConfig::default());
        let err = load_checkpoint(&ckpt, &model, Some(&mut opt))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no optimizer state"), "{err}");
        let state = load_checkpoint(&ckpt, &model, None).unwrap();
        assert_eq!((state.epoch, state.global_step), (3, 30));

        // Damaged state.json.
        std::fs::write(ckpt.join(STATE_FILE), b"{ \"format\": ").unwrap();
        let err = load_checkpoint(&ckpt, &model, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(STATE_FILE), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn optimizer_state_with_wrong_shape_is_rejected() {
        let dir = temp_dir("ckpt-opt");
        let small = varmap_with(&[("a", &[2])]);
        let mut opt = Adam::from_varmap(&small, AdamConfig::default());
        let loss = small.all_vars()[0]
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        opt.apply(&loss.backward().unwrap()).unwrap();
        save_checkpoint(&dir, &small, Some(&opt), 1, 1, &Default::default()).unwrap();
        // Weights of the right shape but optimizer moments of the wrong one.
        let big = varmap_with(&[("a", &[3])]);
        let tensors = load_tensors(dir.join(WEIGHTS_FILE)).unwrap();
        assert_eq!(tensors["a"].dims(), &[2]);
        save_weights(&big, dir.join(WEIGHTS_FILE)).unwrap();
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
