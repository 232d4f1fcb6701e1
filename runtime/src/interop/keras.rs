//! Reading Keras 3 weights, `model.save_weights("….weights.h5")` and `model.save("….keras")`
//! (a zip holding `model.weights.h5`), into a model's variables.
//!
//! Keras 3 stores each layer's variables at `layers/<layer name>/vars/<i>`, the layer names
//! being the class's name and a counter in creation order (`conv2d`, `conv2d_1`, ...). The
//! file keeps no order across classes, so layers pair by class: our `conv2d` layers in forward
//! order with Keras' `conv2d` layers in counter order, `batch_norm` with
//! `batch_normalization`, `separable_conv2d`, `depthwise_conv2d`, `linear` with `dense`,
//! `conv_transpose2d` with `conv2d_transpose`. Layouts are converted: Keras' channels-last
//! kernels `(kh, kw, in, out)` to `[out, in, kh, kw]`, depthwise kernels `(kh, kw, in, m)` to
//! `[in * m, 1, kh, kw]`, dense kernels `(in, out)` transposed; a separable convolution's
//! depthwise and pointwise parts go to `depthwise.weight` and `pointwise.weight`, and batch
//! norm's `gamma, beta, moving_mean, moving_variance` to `weight, bias, running_mean,
//! running_var`. Then the load is [`super::load_tensors`]'s: strict report, nothing modified
//! unless everything fits. Layers nested in a sub-model are not read.

use super::params::ParamList;
use super::report::{load_tensors, LoadOptions, LoadReport};
use super::{Naming, SourceTensors};
use crate::error::Error;
use crate::model::Summary;
use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

fn err(path: &Path, reason: impl Into<String>) -> candle_core::Error {
    Error::checkpoint(path, reason).into()
}

/// One Keras layer with variables.
#[derive(Debug, Clone)]
pub struct KerasLayer {
    /// Its name, e.g. `batch_normalization_3`.
    pub name: String,
    /// Its variables in order, in Keras' layouts.
    pub vars: Vec<Tensor>,
}

/// The `model.weights.h5` inside a `.keras` archive.
pub fn weights_h5_of_keras(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(path, format!("not a .keras archive: {e}")))?;
    let mut entry = zip
        .by_name("model.weights.h5")
        .map_err(|e| err(path, format!("no model.weights.h5 in the archive: {e}")))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| err(path, format!("model.weights.h5: {e}")))?;
    Ok(bytes)
}

/// The layers with variables of a `.weights.h5` or `.keras` file (told apart by content).
pub fn read_keras(path: impl AsRef<Path>) -> Result<Vec<KerasLayer>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    let h5 = if bytes.starts_with(b"PK\x03\x04") {
        weights_h5_of_keras(path)?
    } else {
        bytes
    };
    let h5err =
        |e: hdf5_reader::error::Error| err(path, format!("not a readable Keras weights file: {e}"));
    let file = hdf5_reader::Hdf5File::from_vec(h5).map_err(h5err)?;
    let layers = file.group("/layers").map_err(|e| {
        err(
            path,
            format!("no `layers` group (not a Keras 3 weights file): {e}"),
        )
    })?;
    let mut out = Vec::new();
    for group in layers.groups().map_err(h5err)? {
        let name = group.name().rsplit('/').next().unwrap_or("").to_string();
        let Ok(vars) = group.group("vars") else {
            continue;
        };
        let mut datasets: Vec<(usize, hdf5_reader::Dataset)> = vars
            .datasets()
            .map_err(h5err)?
            .into_iter()
            .map(|d| {
                let i = d.name().rsplit('/').next().and_then(|n| n.parse().ok());
                (i.unwrap_or(usize::MAX), d)
            })
            .collect();
        datasets.sort_by_key(|(i, _)| *i);
        let mut tensors = Vec::with_capacity(datasets.len());
        for (_, d) in datasets {
            let array = d.read_array::<f32>().map_err(h5err)?;
            let shape = array.shape().to_vec();
            let data: Vec<f32> = array.iter().copied().collect();
            tensors.push(Tensor::from_vec(data, shape, &Device::Cpu)?);
        }
        if !tensors.is_empty() {
            out.push(KerasLayer {
                name,
                vars: tensors,
            });
        }
    }
    Ok(out)
}

/// `batch_normalization_3` -> (`batch_normalization`, 3); `conv2d` -> (`conv2d`, 0).
fn class_and_counter(name: &str) -> (&str, usize) {
    match name.rsplit_once('_') {
        Some((class, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (class, n.parse().unwrap_or(usize::MAX))
        }
        _ => (name, 0),
    }
}

/// Our layer kind for a Keras class.
fn our_kind(class: &str) -> Option<&'static str> {
    Some(match class {
        "conv2d" => "conv2d",
        "batch_normalization" => "batch_norm",
        "separable_conv2d" => "separable_conv2d",
        "depthwise_conv2d" => "depthwise_conv2d",
        "dense" => "linear",
        "conv2d_transpose" => "conv_transpose2d",
        _ => return None,
    })
}

/// Our variables (leaf paths under the layer) and each Keras variable converted, for a layer
/// of kind `kind`.
fn convert(kind: &str, vars: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
    let spatial = |t: &Tensor| t.permute((3, 2, 0, 1))?.contiguous();
    let depthwise = |t: &Tensor| -> Result<Tensor> {
        let (kh, kw, cin, m) = t.dims4()?;
        t.permute((2, 3, 0, 1))?
            .contiguous()?
            .reshape((cin * m, 1, kh, kw))
    };
    let named = |names: &[&'static str], ts: Vec<Tensor>| names.iter().copied().zip(ts).collect();
    Ok(match (kind, vars) {
        ("conv2d" | "conv_transpose2d", [k, rest @ ..]) => {
            let mut v = vec![spatial(k)?];
            v.extend(rest.iter().cloned());
            named(&["weight", "bias"], v)
        }
        ("depthwise_conv2d", [k, rest @ ..]) => {
            let mut v = vec![depthwise(k)?];
            v.extend(rest.iter().cloned());
            named(&["weight", "bias"], v)
        }
        ("separable_conv2d", [d, p, rest @ ..]) => {
            let mut v = vec![depthwise(d)?, spatial(p)?];
            v.extend(rest.iter().cloned());
            named(
                &["depthwise.weight", "pointwise.weight", "pointwise.bias"],
                v,
            )
        }
        ("linear", [k, rest @ ..]) if k.rank() == 2 => {
            let mut v = vec![k.t()?.contiguous()?];
            v.extend(rest.iter().cloned());
            named(&["weight", "bias"], v)
        }
        ("batch_norm", _) => named(
            &["weight", "bias", "running_mean", "running_var"],
            vars.to_vec(),
        ),
        _ => Vec::new(),
    })
}

/// Loads a Keras 3 `.weights.h5` or `.keras` file into the variables of a model built under
/// `prefix` (`""` for the whole `varmap`) whose summary is `summary`, pairing layers by class
/// (see the module docs), with [`super::load_tensors`]'s strict report: a Keras layer left
/// over is reported as its variables' paths (`layers/dense_1/vars/0`), one of ours as missing.
/// `ignore` is matched against those paths (e.g. `^layers/dense` for a classifier being
/// replaced).
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
    // Our layers with parameters, per kind, in forward order.
    let mut ours: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for row in &summary.rows {
        if row.params > 0 {
            ours.entry(row.kind.as_str())
                .or_default()
                .push(format!("{scope}{}", row.name));
        }
    }
    // Keras layers per class, in counter order.
    let mut keras: BTreeMap<String, Vec<(usize, KerasLayer)>> = BTreeMap::new();
    for layer in read_keras(path)? {
        let (class, n) = class_and_counter(&layer.name);
        keras.entry(class.to_string()).or_default().push((n, layer));
    }
    let mut tensors = Vec::new();
    for (class, mut layers) in keras {
        layers.sort_by_key(|(n, _)| *n);
        let targets = our_kind(&class).and_then(|k| ours.get(k).map(|v| (k, v)));
        for (i, (_, layer)) in layers.into_iter().enumerate() {
            let converted = match targets {
                Some((kind, rows)) if i < rows.len() => convert(kind, &layer.vars)?
                    .into_iter()
                    .map(|(leaf, t)| (format!("{}.{leaf}", rows[i]), t))
                    .collect(),
                _ => Vec::new(),
            };
            let used = converted.len();
            tensors.extend(converted);
            for (j, t) in layer.vars.into_iter().enumerate().skip(used) {
                tensors.push((format!("layers/{}/vars/{j}", layer.name), t));
            }
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
