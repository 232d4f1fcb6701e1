//! Keras 3 weights into any `convnet!` model: `.weights.h5` (`model.save_weights`) and
//! `.keras` (`model.save`) files, read with a pure-Rust HDF5 reader.
//!
//! The pairing needs no name map: the model's summary lists its layers in forward order, and
//! the file lists Keras' layers in model order (`.keras`: its `config.json`; `.weights.h5`:
//! Keras' automatic names, `conv2d`, `conv2d_1`, ...). The n-th `conv2d` of the model takes the
//! n-th `Conv2D` of the file, and so on for every class (see [`KerasClass::ALL`]); layers
//! without weights (activations, pooling, `add`, dropout, rescaling) play no part. A layer
//! pair the order does not give, e.g. branches created by Keras in another order than the
//! description writes them, is named with [`KerasImport::pair`]. Every variable is converted
//! to convnet's layout (see [Layouts](#layouts)), then the whole set is checked
//! against the model before anything is set: a missing, unexpected or mis-shaped variable is
//! an [`Error::CheckpointMismatch`] listing each, and
//! the model is left as it was.
//!
//! Inputs differ too: a Keras image model takes `(N, H, W, C)`, a convnet one `(N, C, H, W)`
//! (`x.permute((0, 3, 1, 2))`), and Keras' final activation (`Dense(1,
//! activation="sigmoid")`) is a separate layer in a description, or applied to the logits.
//!
//! # Layouts
//! See the table in the `layout` module's source (`runtime/src/keras/layout.rs`): kernels
//! `(kh, kw, in, out)` become `[out, in, kh, kw]`, depthwise kernels `(kh, kw, in, m)` become
//! `[in * m, 1, kh, kw]`, `Dense` kernels are transposed (and reordered after a `flatten` of
//! an image, which Keras flattens as `(H, W, C)`), batch-norm `gamma`, `beta`, moving mean
//! and moving variance become `weight`, `bias`, `running_mean`, `running_var`.
//!
//! ```no_run
//! use convnet_runtime::keras::load_keras_weights;
//! use convnet_runtime::model::Network;
//!
//! /// Loads a Keras 3 file into any generated model `M`, built on `varmap` by `M::new`.
//! fn from_keras<M: Network>(varmap: &candle_nn::VarMap) -> candle_core::Result<()> {
//!     load_keras_weights::<M>(varmap, "mini_xception.keras")
//! }
//! ```
//!
//! `convnet::guide::keras` (`docs/keras.md`) has the whole example with the zoo's
//! mini-Xception.

mod file;
mod layout;

pub use file::{read_layers, weights_of_archive, KerasClass, KerasLayer};
pub use layout::{convert, DenseInput};

use crate::checkpoint::restore;
use crate::error::Error;
use crate::model::{Network, SummaryRow};
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Loads a Keras 3 `.weights.h5` or `.keras` file into the variables of a model `M`, with
/// the layers paired by order ([`KerasImport`] with no explicit pairs).
///
/// Errors: as [`KerasImport::load`].
pub fn load_keras_weights<M: Network>(varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    KerasImport::new().load::<M>(varmap, path)
}

/// Settings of a Keras import: explicit layer pairs on top of the pairing by order.
#[derive(Debug, Clone, Default)]
pub struct KerasImport {
    pairs: Vec<(String, String)>,
}

/// One of the model's layers that takes Keras weights.
#[derive(Debug, Clone)]
pub struct ModelLayer {
    /// Its name in the model, e.g. `block1.sep1` (no prefix).
    pub name: String,
    /// Its kind, e.g. `separable_conv2d`.
    pub kind: String,
    /// What a `linear` reads (a `flatten`ed image or features).
    pub dense_input: DenseInput,
}

impl KerasImport {
    /// Pairing by order alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the Keras layer `keras_layer` (its name in the file, e.g. `conv2d_7`) into the
    /// model's layer `model_layer` (e.g. `block3.project`); the remaining layers are paired
    /// by order.
    pub fn pair(mut self, keras_layer: &str, model_layer: &str) -> Self {
        self.pairs
            .push((keras_layer.to_string(), model_layer.to_string()));
        self
    }

    /// The model's variables, by convnet name, converted from the file, without touching
    /// any model.
    ///
    /// Errors: as [`read_layers`]; [`Error::InvalidArgument`] when the model and the file
    /// have different numbers of layers of one kind (naming both lists) or a pair names a
    /// layer that does not exist, or a Keras layer has the wrong number of variables.
    pub fn tensors<M: Network>(&self, path: impl AsRef<Path>) -> Result<HashMap<String, Tensor>> {
        let path = path.as_ref();
        let pairing = self.pairing(path, read_layers(path)?, &M::summary().rows, M::NAME)?;
        if !pairing.unpaired_keras.is_empty() || !pairing.unpaired_model.is_empty() {
            return Err(Error::invalid(
                format!("Keras weights {}", path.display()),
                format!("the layers do not pair up: {}", pairing.mismatch(M::NAME)),
            )
            .into());
        }
        let mut out = HashMap::new();
        for (k, m) in &pairing.pairs {
            for (suffix, tensor) in layout::convert(k, &m.dense_input)? {
                out.insert(format!("{}.{suffix}", m.name), tensor);
            }
        }
        Ok(out)
    }

    /// Converts the file's weights and sets `varmap` (built by `M::new`) from them, after
    /// checking the whole set against it.
    ///
    /// Errors: as [`tensors`](Self::tensors); [`Error::CheckpointMismatch`] listing every
    /// missing, unexpected and mis-shaped variable with both shapes. Nothing is modified when
    /// any check fails.
    pub fn load<M: Network>(&self, varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tensors = self.tensors::<M>(path)?;
        restore(varmap, &tensors, &path.display().to_string())
    }

    /// Pairs the file's layers with the layers of a model whose summary rows are `rows`:
    /// the explicit pairs first, then per kind in order; what is left on either side is
    /// returned, not an error ([`tensors`](Self::tensors) refuses it,
    /// `interop::load_keras` reports it).
    ///
    /// Errors: [`Error::InvalidArgument`] when an explicit pair names a layer that does
    /// not exist.
    pub fn pairing(
        &self,
        path: &Path,
        mut keras: Vec<KerasLayer>,
        rows: &[SummaryRow],
        model_name: &str,
    ) -> Result<Pairing> {
        let mut model = model_layers(rows);
        let mut pairs = Vec::new();
        for (k_name, m_name) in &self.pairs {
            let k = keras
                .iter()
                .position(|k| &k.name == k_name)
                .ok_or_else(|| {
                    Error::invalid(
                        "KerasImport::pair",
                        format!("{} has no weighted layer `{k_name}`", path.display()),
                    )
                })?;
            let m = model
                .iter()
                .position(|m| &m.name == m_name)
                .ok_or_else(|| {
                    Error::invalid(
                        "KerasImport::pair",
                        format!("{model_name} has no layer `{m_name}` that takes Keras weights"),
                    )
                })?;
            pairs.push((keras.remove(k), model.remove(m)));
        }
        let mut by_kind: BTreeMap<&'static str, (Vec<KerasLayer>, Vec<ModelLayer>)> =
            BTreeMap::new();
        for k in keras {
            by_kind.entry(k.class.convnet_kind()).or_default().0.push(k);
        }
        for m in model {
            let kind = KerasClass::ALL
                .into_iter()
                .map(|r| r.3)
                .find(|kind| *kind == m.kind)
                .expect("model_layers keeps the kinds of the table");
            by_kind.entry(kind).or_default().1.push(m);
        }
        let mut out = Pairing {
            pairs,
            unpaired_keras: Vec::new(),
            unpaired_model: Vec::new(),
        };
        for (_, (k, m)) in by_kind {
            let n = k.len().min(m.len());
            let mut k = k.into_iter();
            let mut m = m.into_iter();
            out.pairs.extend(k.by_ref().zip(m.by_ref()).take(n));
            out.unpaired_keras.extend(k);
            out.unpaired_model.extend(m);
        }
        Ok(out)
    }
}

/// Keras layers paired with a model's layers ([`KerasImport::pairing`]).
pub struct Pairing {
    /// Each Keras layer with the model layer it loads into.
    pub pairs: Vec<(KerasLayer, ModelLayer)>,
    /// The file's layers no model layer took.
    pub unpaired_keras: Vec<KerasLayer>,
    /// The model's layers no Keras layer went to.
    pub unpaired_model: Vec<ModelLayer>,
}

impl Pairing {
    /// What does not pair, per kind: "M has 5 `conv2d` layer(s) [...] but the file has 6
    /// `Conv2D` layer(s) [...]".
    fn mismatch(&self, model_name: &str) -> String {
        let mut kinds: Vec<&str> = self
            .unpaired_keras
            .iter()
            .map(|k| k.class.convnet_kind())
            .chain(self.unpaired_model.iter().map(|m| m.kind.as_str()))
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
            .into_iter()
            .map(|kind| {
                let class = KerasClass::ALL
                    .into_iter()
                    .find(|r| r.3 == kind)
                    .map_or("?", |r| r.1);
                let ours: Vec<&str> = self
                    .pairs
                    .iter()
                    .map(|(_, m)| m)
                    .chain(&self.unpaired_model)
                    .filter(|m| m.kind == kind)
                    .map(|m| m.name.as_str())
                    .collect();
                let theirs: Vec<&str> = self
                    .pairs
                    .iter()
                    .map(|(k, _)| k)
                    .chain(&self.unpaired_keras)
                    .filter(|k| k.class.convnet_kind() == kind)
                    .map(|k| k.name.as_str())
                    .collect();
                format!(
                    "{model_name} has {} `{kind}` layer(s) [{}] but the file has {} `{class}` \
                     layer(s) [{}]",
                    ours.len(),
                    ours.join(", "),
                    theirs.len(),
                    theirs.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The model's layers that take Keras weights, in forward order, each with what its input
/// is when it is a `linear` after a `flatten`.
fn model_layers(rows: &[SummaryRow]) -> Vec<ModelLayer> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.params > 0 && KerasClass::ALL.iter().any(|c| c.3 == r.kind))
        .map(|(i, r)| {
            let dense_input = match (i.checked_sub(1).map(|j| &rows[j]), i.checked_sub(2)) {
                (Some(prev), Some(j)) if r.kind == "linear" && prev.kind == "flatten" => {
                    match rows[j].output_shape[..] {
                        [c, h, w] => DenseInput::FlattenedImage(c, h, w),
                        _ => DenseInput::Features,
                    }
                }
                _ => DenseInput::Features,
            };
            ModelLayer {
                name: r.name.clone(),
                kind: r.kind.clone(),
                dense_input,
            }
        })
        .collect()
}
