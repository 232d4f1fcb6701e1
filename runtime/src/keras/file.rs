//! Reading a Keras 3 weights file: the layers that hold weights, in model order, with their
//! class and their variables as Keras stores them.
//!
//! - `.weights.h5` (`model.save_weights`): HDF5 with one group per layer,
//!   `layers/<name>/vars/<i>` (a nested model adds `layers/<model>/layers/<name>/...`). Keras'
//!   saver names each group after the layer's class, numbered per class in layer order
//!   (`conv2d`, `conv2d_1`, `batch_normalization_3`), whatever the layer's own name, so the
//!   names give both class and order.
//! - `.keras` (`model.save`): a zip of `config.json` (every layer's class, in layer order,
//!   and the norms' `scale`/`center`) and `model.weights.h5` named as above.

use crate::error::Error;
use candle_core::{Device, Result, Tensor};
use hdf5_pure::File as H5File;
use std::io::Read;
use std::path::Path;

/// A Keras layer class whose weights map onto a convnet layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KerasClass {
    /// `Conv2D` -> `conv2d`.
    Conv2d,
    /// `DepthwiseConv2D` -> `depthwise_conv2d`.
    DepthwiseConv2d,
    /// `SeparableConv2D` -> `separable_conv2d`.
    SeparableConv2d,
    /// `Conv2DTranspose` -> `conv_transpose2d`.
    Conv2dTranspose,
    /// `BatchNormalization` -> `batch_norm`.
    BatchNormalization,
    /// `Dense` -> `linear`.
    Dense,
    /// `LayerNormalization` (over channels) -> `layer_norm2d`.
    LayerNormalization,
    /// `GroupNormalization` -> `group_norm`.
    GroupNormalization,
}

impl KerasClass {
    /// Every class, with its Keras class name, its automatic-name prefix and the convnet
    /// layer kind it becomes: the one table of the correspondence.
    pub const ALL: [(KerasClass, &'static str, &'static str, &'static str); 8] = [
        (KerasClass::Conv2d, "Conv2D", "conv2d", "conv2d"),
        (
            KerasClass::DepthwiseConv2d,
            "DepthwiseConv2D",
            "depthwise_conv2d",
            "depthwise_conv2d",
        ),
        (
            KerasClass::SeparableConv2d,
            "SeparableConv2D",
            "separable_conv2d",
            "separable_conv2d",
        ),
        (
            KerasClass::Conv2dTranspose,
            "Conv2DTranspose",
            "conv2d_transpose",
            "conv_transpose2d",
        ),
        (
            KerasClass::BatchNormalization,
            "BatchNormalization",
            "batch_normalization",
            "batch_norm",
        ),
        (KerasClass::Dense, "Dense", "dense", "linear"),
        (
            KerasClass::LayerNormalization,
            "LayerNormalization",
            "layer_normalization",
            "layer_norm2d",
        ),
        (
            KerasClass::GroupNormalization,
            "GroupNormalization",
            "group_normalization",
            "group_norm",
        ),
    ];

    fn row(self) -> (KerasClass, &'static str, &'static str, &'static str) {
        Self::ALL
            .into_iter()
            .find(|r| r.0 == self)
            .expect("every class has a row")
    }

    /// The Keras class name, e.g. `SeparableConv2D`.
    pub fn keras_name(self) -> &'static str {
        self.row().1
    }

    /// The convnet layer kind it loads into, e.g. `separable_conv2d`.
    pub fn convnet_kind(self) -> &'static str {
        self.row().3
    }

    /// The class of a Keras class name.
    pub fn from_class_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.1 == name).map(|r| r.0)
    }

    /// The class and creation index of an automatic layer name (`conv2d_3` -> `(Conv2d,
    /// 3)`, `dense` -> `(Dense, 0)`).
    pub fn from_auto_name(name: &str) -> Option<(Self, u64)> {
        let (prefix, index) = match name.rsplit_once('_') {
            Some((p, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                (p, n.parse().ok()?)
            }
            _ => (name, 0),
        };
        Self::ALL
            .into_iter()
            .find(|r| r.2 == prefix)
            .map(|r| (r.0, index))
    }
}

/// One Keras layer that holds weights.
#[derive(Debug, Clone)]
pub struct KerasLayer {
    /// The layer's name in the file, e.g. `separable_conv2d_3`.
    pub name: String,
    /// Its class.
    pub class: KerasClass,
    /// Its variables in Keras' order and layout (`vars/0`, `vars/1`, ...), f32 on the CPU.
    pub vars: Vec<Tensor>,
    /// For `BatchNormalization`, `LayerNormalization` and `GroupNormalization`: whether it
    /// has `gamma` (`scale`) and `beta` (`center`), when the file says (`.keras` only).
    pub scale_center: Option<(bool, bool)>,
}

/// Reads every weight-holding layer of a `.weights.h5` or `.keras` file, in model order.
///
/// Errors: [`Error::Io`] when the file cannot be read; [`Error::Checkpoint`] naming the file
/// when it is not HDF5 (or a zip holding `model.weights.h5` and `config.json`), when a layer
/// with weights has a class convnet has no layer for, or (for `.weights.h5`) a name that
/// is not Keras' automatic one.
pub fn read_layers(path: &Path) -> Result<Vec<KerasLayer>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if bytes.starts_with(b"PK") {
        read_keras_archive(path, &bytes)
    } else {
        let h5 = open_h5(path, bytes)?;
        read_weights_h5(path, &h5)
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> candle_core::Error {
    Error::checkpoint(path, reason).into()
}

fn open_h5(path: &Path, bytes: Vec<u8>) -> Result<H5File> {
    H5File::from_bytes(bytes).map_err(|e| {
        bad(
            path,
            format!("not a Keras weights file: cannot read it as HDF5 ({e})"),
        )
    })
}

/// The variables under `<group>/vars`, in index order.
fn read_vars(path: &Path, h5: &H5File, group: &str) -> Result<Vec<Tensor>> {
    let vars_path = format!("{group}/vars");
    let Ok(vars) = h5.group(&vars_path) else {
        return Ok(Vec::new());
    };
    let mut names = vars
        .datasets()
        .map_err(|e| bad(path, format!("`{vars_path}`: {e}")))?;
    names.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    names
        .iter()
        .map(|n| {
            let ds_path = format!("{vars_path}/{n}");
            let ds = h5
                .dataset(&ds_path)
                .map_err(|e| bad(path, format!("`{ds_path}`: {e}")))?;
            let shape: Vec<usize> = ds
                .shape()
                .map_err(|e| bad(path, format!("`{ds_path}`: {e}")))?
                .into_iter()
                .map(|d| d as usize)
                .collect();
            let data = ds
                .read_f32()
                .map_err(|e| bad(path, format!("`{ds_path}`: not float data ({e})")))?;
            Tensor::from_vec(data, shape, &Device::Cpu)
        })
        .collect()
}

/// `.weights.h5`: layers found under `layers/` (recursively through nested models), placed
/// by their automatic names.
fn read_weights_h5(path: &Path, h5: &H5File) -> Result<Vec<KerasLayer>> {
    let mut found: Vec<(KerasClass, Vec<u64>, KerasLayer)> = Vec::new();
    collect_h5_layers(path, h5, "layers", &mut Vec::new(), &mut found)?;
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(found.into_iter().map(|(_, _, layer)| layer).collect())
}

fn collect_h5_layers(
    path: &Path,
    h5: &H5File,
    group: &str,
    order: &mut Vec<u64>,
    found: &mut Vec<(KerasClass, Vec<u64>, KerasLayer)>,
) -> Result<()> {
    let Ok(layers) = h5.group(group) else {
        return Ok(());
    };
    let names = layers
        .groups()
        .map_err(|e| bad(path, format!("`{group}`: {e}")))?;
    for name in names {
        let layer_group = format!("{group}/{name}");
        let vars = read_vars(path, h5, &layer_group)?;
        let auto = KerasClass::from_auto_name(&name);
        if !vars.is_empty() {
            let Some((class, index)) = auto else {
                return Err(bad(
                    path,
                    format!(
                        "layer `{name}` holds weights but is of a class convnet has no layer \
                         for (loadable: {})",
                        KerasClass::ALL.map(|r| r.1).join(", ")
                    ),
                ));
            };
            let mut key = order.clone();
            key.push(index);
            found.push((
                class,
                key,
                KerasLayer {
                    name: name.clone(),
                    class,
                    vars,
                    scale_center: None,
                },
            ));
        }
        // A nested model's own layers (functional or sequential sub-models).
        order.push(auto.map_or(0, |a| a.1));
        collect_h5_layers(path, h5, &format!("{layer_group}/layers"), order, found)?;
        order.pop();
    }
    Ok(())
}

/// `.keras`: the archive's `config.json` gives every layer's class, its place, and the
/// `scale`/`center` of norms; `model.weights.h5` the values, under the names Keras' saver
/// gives (the snake-cased class, numbered per class in layer order: `conv2d`, `conv2d_1`).
fn read_keras_archive(path: &Path, bytes: &[u8]) -> Result<Vec<KerasLayer>> {
    let config: serde_json::Value =
        serde_json::from_slice(&archive_member(path, bytes, "config.json")?)
            .map_err(|e| bad(path, format!("`config.json` in the archive: {e}")))?;
    let h5 = open_h5(path, archive_member(path, bytes, "model.weights.h5")?)?;
    let mut out = Vec::new();
    collect_config_layers(path, &h5, &config, "layers", &mut out)?;
    Ok(out)
}

/// The `model.weights.h5` a `.keras` archive holds: the same format `model.save_weights`
/// writes, so it can be saved as a `.weights.h5` file.
///
/// Errors: [`Error::Io`] when the file cannot be read; [`Error::Checkpoint`] naming it when
/// it is not a zip holding `model.weights.h5`.
pub fn weights_of_archive(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    archive_member(path, &bytes, "model.weights.h5")
}

/// One member of a `.keras` archive (a zip), read whole.
fn archive_member(path: &Path, bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(path, format!("not a `.keras` archive: {e}")))?;
    let mut file = zip.by_name(name).map_err(|_| {
        bad(
            path,
            format!("not a `.keras` archive: it holds no `{name}`"),
        )
    })?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .map_err(|e| bad(path, format!("`{name}` in the archive: {e}")))?;
    Ok(out)
}

/// Keras' `to_snake_case` of a class name (`SeparableConv2D` -> `separable_conv2d`), the
/// stem of the names its saver gives.
fn snake_case(class_name: &str) -> String {
    let chars: Vec<char> = class_name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_lower = chars[i - 1].is_ascii_lowercase();
            if next_lower || prev_lower {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn collect_config_layers(
    path: &Path,
    h5: &H5File,
    model: &serde_json::Value,
    group: &str,
    out: &mut Vec<KerasLayer>,
) -> Result<()> {
    let layers = model
        .pointer("/config/layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| bad(path, "`config.json` lists no layers"))?;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for layer in layers {
        let class_name = layer["class_name"].as_str().unwrap_or("");
        let stem = snake_case(class_name);
        let count = counts.entry(stem.clone()).or_default();
        let name = match *count {
            0 => stem,
            n => format!("{stem}_{n}"),
        };
        *count += 1;
        let layer_group = format!("{group}/{name}");
        if layer.pointer("/config/layers").is_some() {
            collect_config_layers(path, h5, layer, &format!("{layer_group}/layers"), out)?;
            continue;
        }
        let vars = read_vars(path, h5, &layer_group)?;
        if vars.is_empty() {
            continue;
        }
        let own_name = layer
            .pointer("/config/name")
            .and_then(|n| n.as_str())
            .unwrap_or("?");
        let class = KerasClass::from_class_name(class_name).ok_or_else(|| {
            bad(
                path,
                format!(
                    "layer `{own_name}` is a `{class_name}`, which has no convnet counterpart \
                     (loadable: {})",
                    KerasClass::ALL.map(|r| r.1).join(", ")
                ),
            )
        })?;
        let flag = |key: &str| {
            layer
                .pointer(&format!("/config/{key}"))
                .and_then(|v| v.as_bool())
        };
        let scale_center = match (flag("scale"), flag("center")) {
            (Some(s), Some(c)) => Some((s, c)),
            _ => None,
        };
        out.push(KerasLayer {
            name,
            class,
            vars,
            scale_center,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_is_keras() {
        for (class, snake) in [
            ("Conv2D", "conv2d"),
            ("SeparableConv2D", "separable_conv2d"),
            ("DepthwiseConv2D", "depthwise_conv2d"),
            ("Conv2DTranspose", "conv2d_transpose"),
            ("BatchNormalization", "batch_normalization"),
            ("Dense", "dense"),
            ("InputLayer", "input_layer"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
        ] {
            assert_eq!(snake_case(class), snake);
        }
        for (_, class, prefix, _) in KerasClass::ALL {
            assert_eq!(snake_case(class), prefix);
        }
    }

    #[test]
    fn automatic_names_give_class_and_index() {
        assert_eq!(
            KerasClass::from_auto_name("conv2d"),
            Some((KerasClass::Conv2d, 0))
        );
        assert_eq!(
            KerasClass::from_auto_name("conv2d_transpose_12"),
            Some((KerasClass::Conv2dTranspose, 12))
        );
        assert_eq!(KerasClass::from_auto_name("activation_3"), None);
    }
}
