//! Matching a file's tensors to a model's variables, the strict report, and the load.

use super::layout::{adapt, compatible};
use super::names::{leaves_differ, Naming};
use super::params::ParamList;
use super::pytorch::{read_pytorch, SourceTensors};
use crate::error::{Error, TensorMismatch};
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Load the tensors that fit even when others are missing, unexpected or mis-shaped
    /// (the report lists them); without it such a load is an error and changes nothing.
    pub partial: bool,
    /// The key of a `torch.save` file's top-level dict that holds the state dict (found among
    /// [`super::STATE_DICT_KEYS`] when `None`).
    pub key: Option<String>,
}

/// One of our variables and the file's tensor paired with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Our variable's name.
    pub ours: String,
    /// The file's key (as written in the file).
    pub theirs: String,
    /// Our variable's shape.
    pub expected: Vec<usize>,
    /// The file's shape.
    pub found: Vec<usize>,
}

/// What a load found: every pairing, and every tensor that does not fit, by both names.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The file (and the key of its nested state dict).
    pub source: String,
    /// Pairs with compatible shapes (equal, or reshaped: see [`super::adapt`]).
    pub matched: Vec<Matched>,
    /// Our variables with no tensor: `(our name, the file key looked for, shape)`.
    pub missing: Vec<(String, String, Vec<usize>)>,
    /// The file's tensors no variable took: `(key, shape)`.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Pairs whose shapes (or leaf kinds: `weight` against `bias`) do not fit.
    pub misshaped: Vec<Matched>,
    /// The file's keys ignored (`num_batches_tracked`, [`Naming::ignore`] rules).
    pub ignored: Vec<String>,
    /// Whether the loaded tensors were written into the model.
    pub applied: bool,
}

impl LoadReport {
    /// Whether every variable got a tensor of its shape and no tensor was left over.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.misshaped.is_empty()
    }

    /// How many pairs needed a reshape.
    pub fn reshaped(&self) -> usize {
        self.matched
            .iter()
            .filter(|m| m.expected != m.found)
            .count()
    }

    /// Every problem as the checkpoint module's [`TensorMismatch`] (a name `ours` paired with
    /// another key `theirs` is written `` ours` as `theirs `` so the message shows both).
    pub fn mismatches(&self) -> Vec<TensorMismatch> {
        let both = |ours: &str, theirs: &str| {
            if ours == theirs {
                ours.to_string()
            } else {
                format!("{ours}` as `{theirs}")
            }
        };
        let mut out = Vec::new();
        for (ours, theirs, shape) in &self.missing {
            out.push(TensorMismatch {
                tensor: both(ours, theirs),
                expected: Some(shape.clone()),
                found: None,
            });
        }
        for m in &self.misshaped {
            out.push(TensorMismatch {
                tensor: both(&m.ours, &m.theirs),
                expected: Some(m.expected.clone()),
                found: Some(m.found.clone()),
            });
        }
        for (key, shape) in &self.unexpected {
            out.push(TensorMismatch {
                tensor: key.clone(),
                expected: None,
                found: Some(shape.clone()),
            });
        }
        out
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} tensors matched ({} reshaped), {} ignored, {} missing, {} unexpected, {} mis-shaped{}",
            self.source,
            self.matched.len(),
            self.reshaped(),
            self.ignored.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.misshaped.len(),
            if self.applied { "" } else { "; nothing loaded" },
        )?;
        for m in self.mismatches() {
            writeln!(f, "  {m}")?;
        }
        Ok(())
    }
}

/// Reads `path` ([`read_pytorch`]) and loads it into `varmap`'s variables `params`
/// ([`load_tensors`]).
pub fn load_pytorch(
    varmap: &VarMap,
    params: &ParamList,
    path: impl AsRef<Path>,
    naming: &Naming,
    options: &LoadOptions,
) -> Result<LoadReport> {
    let source = read_pytorch(path, options.key.as_deref())?;
    load_tensors(varmap, params, &source, naming, options)
}

/// Matches `source`'s tensors to `params` (variables of `varmap`) by `naming`, and sets the
/// variables from them, converted to each variable's dtype and device. Unless
/// `options.partial`, any missing, unexpected or mis-shaped tensor makes it an
/// [`Error::CheckpointMismatch`] listing all of them, and nothing is modified.
pub fn load_tensors(
    varmap: &VarMap,
    params: &ParamList,
    source: &SourceTensors,
    naming: &Naming,
    options: &LoadOptions,
) -> Result<LoadReport> {
    let mut report = LoadReport {
        source: match &source.key {
            Some(k) => format!("{} (state dict under `{k}`)", source.path.display()),
            None => source.path.display().to_string(),
        },
        ..LoadReport::default()
    };
    // The file's tensors by their key after the source rules, in file order.
    let mut available: Vec<(String, &str, &Tensor)> = Vec::new();
    for (key, t) in &source.tensors {
        let renamed = naming.source_key(key);
        if naming.is_ignored(&renamed) {
            report.ignored.push(key.clone());
        } else {
            available.push((renamed, key.as_str(), t));
        }
    }
    let index: HashMap<&str, usize> = available
        .iter()
        .enumerate()
        .map(|(i, (k, _, _))| (k.as_str(), i))
        .collect();
    let wanted = naming.their_names(params)?;
    let mut taken = vec![false; available.len()];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut unmatched: Vec<usize> = Vec::new();
    for (i, (theirs, _)) in wanted.iter().enumerate() {
        match index.get(theirs.as_str()) {
            Some(&j) if !taken[j] => {
                taken[j] = true;
                pairs.push((i, j));
            }
            _ => unmatched.push(i),
        }
    }
    let mut left: Vec<usize> = (0..available.len()).filter(|&j| !taken[j]).collect();
    if naming.pairs_by_order() && source.ordered {
        let n = unmatched.len().min(left.len());
        for (&i, &j) in unmatched.iter().zip(&left).take(n) {
            pairs.push((i, j));
        }
        unmatched.drain(..n);
        left.drain(..n);
    }
    for i in unmatched {
        let (ours, shape) = &params.entries[i];
        report
            .missing
            .push((ours.clone(), wanted[i].0.clone(), shape.clone()));
    }
    for j in left {
        let (_, key, t) = available[j];
        report.unexpected.push((key.to_string(), t.dims().to_vec()));
    }
    pairs.sort();
    let mut values = Vec::with_capacity(pairs.len());
    for (i, j) in pairs {
        let (ours, expected) = &params.entries[i];
        let (_, key, t) = available[j];
        let m = Matched {
            ours: ours.clone(),
            theirs: key.to_string(),
            expected: expected.clone(),
            found: t.dims().to_vec(),
        };
        if compatible(&m.found, expected) && !leaves_differ(ours, key) {
            values.push((ours.clone(), t));
            report.matched.push(m);
        } else {
            report.misshaped.push(m);
        }
    }
    if !report.is_complete() && !options.partial {
        return Err(Error::CheckpointMismatch {
            source_name: report.source.clone(),
            tensors: report.mismatches(),
        }
        .into());
    }
    // Convert everything before setting anything.
    let data = varmap.data().lock().unwrap();
    let mut ready = Vec::with_capacity(values.len());
    for (ours, t) in values {
        let var = data.get(&ours).ok_or_else(|| {
            Error::invalid(
                "parameter list",
                format!("`{ours}` is not a variable of the model"),
            )
        })?;
        let t = adapt(t, var.dims())?
            .expect("checked compatible")
            .to_dtype(var.dtype())?
            .to_device(var.device())?;
        ready.push((var.clone(), t));
    }
    drop(data);
    for (var, t) in ready {
        var.set(&t)?;
    }
    report.applied = true;
    Ok(report)
}
