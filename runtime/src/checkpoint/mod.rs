//! Weights I/O: named tensors as safetensors files, snapshots and strictly checked restores
//! of a `VarMap`, and the atomically written checkpoint directory ([`DirWriter`], verified by
//! [`verify`]) that training checkpoints (`crate::train::save_checkpoint`) are made of.
//!
//! Loading checks names and shapes itself: a missing, unexpected or mis-shaped tensor is an
//! [`Error::CheckpointMismatch`] naming every such tensor and both shapes, and nothing is
//! modified when any check fails.

mod atomic_dir;

pub use atomic_dir::process_alive;

pub use atomic_dir::{
    remove_abandoned, replace_dir, verify, DirWriter, FileEntry, Manifest, MANIFEST_FILE,
    MANIFEST_FORMAT,
};

use crate::error::{Error, TensorMismatch};
use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

fn io_err(action: &'static str, path: &Path, e: std::io::Error) -> candle_core::Error {
    Error::io(action, path, e).into()
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> Result<()> {
    let synced = std::fs::File::open(tmp).and_then(|f| f.sync_all());
    let renamed = synced
        .map_err(|e| io_err("fsync", tmp, e))
        .and_then(|_| std::fs::rename(tmp, path).map_err(|e| io_err("rename into", path, e)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    renamed?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("fsync folder", parent, e))
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync of the
/// folder; the temp file is removed when any step fails.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("write", &tmp, e));
    }
    commit(&tmp, path)
}

/// Saves named tensors as a safetensors file, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    if let Err(e) = candle_core::safetensors::save(tensors, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::checkpoint(&tmp, format!("cannot write: {e}")).into());
    }
    commit(&tmp, path)
}

/// Reads every tensor of a safetensors file onto the CPU; errors name the file.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err("read", path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
        Error::checkpoint(path, format!("not a readable safetensors file: {e}")).into()
    })
}

/// Deep copies of all variables of `varmap` (weights and moving statistics), by name.
pub fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap.data().lock().unwrap();
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?.detach())))
        .collect()
}

/// Checks that `tensors` fits `varmap`: every variable has a tensor of its shape and no
/// tensor is left over. `source` names where the tensors came from in the error (an
/// [`Error::CheckpointMismatch`]), which lists every problem with the tensor's name and both
/// shapes.
pub fn check_fits(varmap: &VarMap, tensors: &HashMap<String, Tensor>, source: &str) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    let mut problems = Vec::new();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let expected = Some(data[name].dims().to_vec());
        let found = tensors.get(name).map(|t| t.dims().to_vec());
        if found != expected {
            problems.push(TensorMismatch {
                tensor: name.clone(),
                expected,
                found,
            });
        }
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !data.contains_key(*k)).collect();
    extra.sort();
    for name in extra {
        problems.push(TensorMismatch {
            tensor: name.clone(),
            expected: None,
            found: Some(tensors[name].dims().to_vec()),
        });
    }
    if !problems.is_empty() {
        return Err(Error::CheckpointMismatch {
            source_name: source.to_string(),
            tensors: problems,
        }
        .into());
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

/// Loads the weights of a checkpoint directory (written by [`DirWriter`], e.g. a
/// `ModelCheckpoint`) into `varmap`, after verifying the whole set against its manifest and
/// with the strict checks of [`restore`].
pub fn load_checkpoint_weights(varmap: &VarMap, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let files = verify(dir)?;
    let tensors = tensors_of(&files, dir, WEIGHTS_FILE)?;
    restore(
        varmap,
        &tensors,
        &dir.join(WEIGHTS_FILE).display().to_string(),
    )
}

/// Parses file `name` of a verified checkpoint set as safetensors (onto the CPU).
pub(crate) fn tensors_of(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    dir: &Path,
    name: &str,
) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(name);
    let bytes = files
        .get(name)
        .ok_or_else(|| Error::checkpoint(dir, format!("the set has no {name}")))?;
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
        Error::checkpoint(&path, format!("not a readable safetensors file: {e}")).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{mlp, temp_dir, varmap_with, weights};

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
        match Error::find(&load_weights(&model, &only_a).unwrap_err()) {
            Some(Error::CheckpointMismatch { tensors, .. }) => assert_eq!(
                tensors,
                &[TensorMismatch {
                    tensor: "b".into(),
                    expected: Some(vec![4]),
                    found: None
                }]
            ),
            other => panic!("expected CheckpointMismatch, got {other:?}"),
        }

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

        let _ = std::fs::remove_dir_all(&dir);
    }
}
