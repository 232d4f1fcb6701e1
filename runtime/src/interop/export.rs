//! Writing a model's weights with another framework's names.

use super::layout::adapt;
use super::names::Naming;
use super::params::ParamList;
use crate::error::Error;
use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// `(our name, PyTorch's name)` of each of `params`, by `naming` (its rename rules or key
/// list; pairing by a file's order needs a file, so it names nothing here).
pub fn pytorch_names(params: &ParamList, naming: &Naming) -> Result<Vec<(String, String)>> {
    Ok(params
        .entries
        .iter()
        .zip(naming.their_names(params)?)
        .map(|((ours, _), (theirs, _))| (ours.clone(), theirs))
        .collect())
}

/// Writes `params` (variables of `varmap`) to a safetensors file with PyTorch's names
/// (`naming`), float32, atomically: in the key list's shapes where it gives them (a layer
/// scale `(C, 1, 1)`, a 1x1 convolution `[o, i, 1, 1]`), and with a `num_batches_tracked`
/// (int64 zero) beside each batch norm's `running_var`, so PyTorch's
/// `load_state_dict(strict=True)` takes it.
pub fn export_pytorch(
    varmap: &VarMap,
    params: &ParamList,
    naming: &Naming,
    path: impl AsRef<Path>,
) -> Result<()> {
    let names = naming.their_names(params)?;
    let data = varmap.data().lock().unwrap();
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for ((ours, _), (theirs, shape)) in params.entries.iter().zip(names) {
        let var = data.get(ours).ok_or_else(|| {
            Error::invalid(
                "parameter list",
                format!("`{ours}` is not a variable of the model"),
            )
        })?;
        let t = var
            .as_tensor()
            .detach()
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?;
        let t = match shape {
            Some(s) => adapt(&t, &s)?.expect("the key list paired by shape"),
            None => t,
        };
        if let Some(bn) = theirs.strip_suffix(".running_var") {
            out.insert(
                format!("{bn}.num_batches_tracked"),
                Tensor::new(0i64, &Device::Cpu)?,
            );
        }
        if out.insert(theirs.clone(), t).is_some() {
            return Err(Error::invalid(
                "naming",
                format!("two variables are named `{theirs}` in the export"),
            )
            .into());
        }
    }
    drop(data);
    crate::checkpoint::save_tensors(&out, path)
}
