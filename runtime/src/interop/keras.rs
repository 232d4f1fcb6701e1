//! Keras 3 weights through the interop load: the layers of a `.weights.h5` or `.keras` file
//! ([`crate::keras`] reads, pairs and converts them) under a prefix of a larger model, with
//! [`super::load_tensors`]'s strict report, ignore patterns and partial loads, so a backbone
//! loads under `backbone.` while its old classifier is ignored.

use super::params::ParamList;
use super::report::{load_tensors, LoadOptions, LoadReport};
use super::{Naming, SourceTensors};
use crate::keras::{convert, read_layers, KerasImport};
use crate::model::Summary;
use candle_core::Result;
use candle_nn::VarMap;
use std::path::Path;

/// Loads a Keras 3 `.weights.h5` or `.keras` file into the variables of a model built under
/// `prefix` (`""` for the whole `varmap`) whose summary is `summary`, its layers paired with
/// the file's by class and order ([`KerasImport::pairing`]), with
/// [`super::load_tensors`]'s strict report: a Keras layer left over is reported as its
/// variables' paths (`layers/dense_1/vars/0`), one of ours as missing. `ignore` is matched
/// against those paths (e.g. `^layers/dense` for a classifier being replaced).
///
/// Errors: as [`read_layers`] and [`load_tensors`].
pub fn load_keras(
    varmap: &VarMap,
    summary: &Summary,
    prefix: &str,
    path: impl AsRef<Path>,
    ignore: &[&str],
    options: &LoadOptions,
) -> Result<LoadReport> {
    let path = path.as_ref();
    let params = ParamList::under(summary, varmap, prefix)?;
    let scope = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    };
    let pairing =
        KerasImport::new().pairing(path, read_layers(path)?, &summary.rows, &summary.model)?;
    let mut tensors = Vec::new();
    for (keras, ours) in &pairing.pairs {
        for (leaf, t) in convert(keras, &ours.dense_input)? {
            tensors.push((format!("{scope}{}.{leaf}", ours.name), t));
        }
    }
    for keras in pairing.unpaired_keras {
        for (j, t) in keras.vars.into_iter().enumerate() {
            tensors.push((format!("layers/{}/vars/{j}", keras.name), t));
        }
    }
    let source = SourceTensors {
        path: path.to_path_buf(),
        key: None,
        tensors,
        ordered: false,
    };
    let naming = ignore
        .iter()
        .try_fold(Naming::by_name(), |n, pattern| n.ignore(pattern))?;
    load_tensors(varmap, &params, &source, &naming, options)
}
