//! Keras' variable layouts turned into convnet's (PyTorch's), one rule per layer class.
//!
//! | Keras variable | Keras layout | convnet variable | convnet layout |
//! |---|---|---|---|
//! | `Conv2D` kernel | `(kh, kw, in / groups, out)` | `weight` | `[out, in / groups, kh, kw]` |
//! | `DepthwiseConv2D` kernel | `(kh, kw, in, m)` | `weight` | `[in * m, 1, kh, kw]` |
//! | `SeparableConv2D` depthwise, pointwise | `(kh, kw, in, m)`, `(1, 1, in * m, out)` | `depthwise.weight`, `pointwise.weight` | `[in * m, 1, kh, kw]`, `[out, in * m, 1, 1]` |
//! | `Conv2DTranspose` kernel | `(kh, kw, out, in)` | `weight` | `[in, out, kh, kw]` |
//! | `Dense` kernel | `(in, out)` | `weight` | `[out, in]` (rows reordered from `(H, W, C)` to `(C, H, W)` after a `flatten` of an image) |
//! | `BatchNormalization` gamma, beta, moving mean, moving variance | `(C)` each | `weight`, `bias`, `running_mean`, `running_var` | `[C]` each |
//! | `LayerNormalization`, `GroupNormalization` gamma, beta | `(C)` | `weight`, `bias` | `[C]` |
//!
//! Biases keep their layout. A norm without `gamma` (`scale = False`) or `beta`
//! (`center = False`) loads ones or zeros there, which is what it computes.

use super::file::{KerasClass, KerasLayer};
use crate::error::Error;
use candle_core::{Result, Tensor};

/// What a `Dense` layer's input was, so its rows can follow convnet's flatten order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenseInput {
    /// A feature vector (or unknown): rows taken as they are.
    Features,
    /// A flattened image of this `(C, H, W)`: Keras flattened it as `(H, W, C)`.
    FlattenedImage(usize, usize, usize),
}

/// The convnet variables (name under the layer, tensor) of one Keras layer.
///
/// Errors: [`Error::InvalidArgument`] naming the Keras layer when its number of variables
/// is not the class's.
pub fn convert(
    layer: &KerasLayer,
    dense_input: &DenseInput,
) -> Result<Vec<(&'static str, Tensor)>> {
    let v = &layer.vars;
    let wrong = |expected: &str| -> candle_core::Error {
        Error::invalid(
            format!("Keras layer `{}`", layer.name),
            format!(
                "a {} holds {expected}, found {} variables of shapes {:?}",
                layer.class.keras_name(),
                v.len(),
                v.iter().map(|t| t.dims().to_vec()).collect::<Vec<_>>()
            ),
        )
        .into()
    };
    let with_bias = |weight: Tensor, expected: &str| -> Result<Vec<(&'static str, Tensor)>> {
        match v.len() {
            1 => Ok(vec![("weight", weight)]),
            2 => Ok(vec![("weight", weight), ("bias", v[1].clone())]),
            _ => Err(wrong(expected)),
        }
    };
    let rank = |t: &Tensor, r: usize, expected: &str| -> Result<()> {
        if t.rank() == r {
            Ok(())
        } else {
            Err(wrong(expected))
        }
    };
    match layer.class {
        KerasClass::Conv2d => {
            let expected = "a kernel (kh, kw, in, out) and an optional bias";
            let k = v.first().ok_or_else(|| wrong(expected))?;
            rank(k, 4, expected)?;
            with_bias(k.permute((3, 2, 0, 1))?.contiguous()?, expected)
        }
        KerasClass::DepthwiseConv2d => {
            let expected = "a kernel (kh, kw, in, multiplier) and an optional bias";
            let k = v.first().ok_or_else(|| wrong(expected))?;
            rank(k, 4, expected)?;
            with_bias(depthwise(k)?, expected)
        }
        KerasClass::SeparableConv2d => {
            let expected = "a depthwise kernel, a pointwise kernel and an optional bias";
            if !(2..=3).contains(&v.len()) {
                return Err(wrong(expected));
            }
            rank(&v[0], 4, expected)?;
            rank(&v[1], 4, expected)?;
            let mut out = vec![
                ("depthwise.weight", depthwise(&v[0])?),
                (
                    "pointwise.weight",
                    v[1].permute((3, 2, 0, 1))?.contiguous()?,
                ),
            ];
            if let Some(bias) = v.get(2) {
                out.push(("pointwise.bias", bias.clone()));
            }
            Ok(out)
        }
        KerasClass::Conv2dTranspose => {
            let expected = "a kernel (kh, kw, out, in) and an optional bias";
            let k = v.first().ok_or_else(|| wrong(expected))?;
            rank(k, 4, expected)?;
            with_bias(k.permute((3, 2, 0, 1))?.contiguous()?, expected)
        }
        KerasClass::Dense => {
            let expected = "a kernel (in, out) and an optional bias";
            let k = v.first().ok_or_else(|| wrong(expected))?;
            rank(k, 2, expected)?;
            let w = match *dense_input {
                DenseInput::Features => k.t()?.contiguous()?,
                DenseInput::FlattenedImage(c, h, w) => {
                    let out = k.dim(1)?;
                    k.reshape((h, w, c, out))?
                        .permute((3, 2, 0, 1))?
                        .reshape((out, c * h * w))?
                        .contiguous()?
                }
            };
            with_bias(w, expected)
        }
        KerasClass::BatchNormalization => {
            let (gamma, beta, rest) =
                scale_center(layer, 2, "gamma, beta, moving mean, moving variance")?;
            if rest.len() != 2 {
                return Err(wrong("gamma, beta, moving mean and moving variance"));
            }
            Ok(vec![
                ("weight", gamma),
                ("bias", beta),
                ("running_mean", rest[0].clone()),
                ("running_var", rest[1].clone()),
            ])
        }
        KerasClass::LayerNormalization | KerasClass::GroupNormalization => {
            let (gamma, beta, rest) = scale_center(layer, 0, "gamma and beta")?;
            if !rest.is_empty() {
                return Err(wrong("gamma and beta"));
            }
            Ok(vec![("weight", gamma), ("bias", beta)])
        }
    }
}

/// `(kh, kw, in, m)` -> `[in * m, 1, kh, kw]`; output channel `c * m + j` in both.
fn depthwise(k: &Tensor) -> Result<Tensor> {
    let (kh, kw, c, m) = k.dims4()?;
    k.reshape((kh, kw, c * m))?
        .permute((2, 0, 1))?
        .reshape((c * m, 1, kh, kw))?
        .contiguous()
}

/// A norm's `gamma` and `beta` (ones and zeros where the layer has none) and the
/// variables after them. Which of the two exist comes from the `.keras` config, or, for a
/// `.weights.h5` file, from the count (`stats` variables follow them).
fn scale_center(
    layer: &KerasLayer,
    stats: usize,
    expected: &str,
) -> Result<(Tensor, Tensor, Vec<Tensor>)> {
    let v = &layer.vars;
    let (scale, center) = match layer.scale_center {
        Some(flags) => flags,
        None if v.len() == stats + 2 => (true, true),
        None => {
            return Err(Error::invalid(
                format!("Keras layer `{}`", layer.name),
                format!(
                    "a {} holds {expected}; this one has {} variables, so it was built \
                     without `scale` or `center`, which a `.weights.h5` file does not record: \
                     load the model's `.keras` file instead",
                    layer.class.keras_name(),
                    v.len()
                ),
            )
            .into())
        }
    };
    let mut it = v.iter().cloned();
    let first = v.first().ok_or_else(|| {
        candle_core::Error::from(Error::invalid(
            format!("Keras layer `{}`", layer.name),
            format!("a {} without variables", layer.class.keras_name()),
        ))
    })?;
    let gamma = if scale {
        it.next().expect("checked non-empty")
    } else {
        first.ones_like()?
    };
    let beta = if center {
        it.next().ok_or_else(|| {
            candle_core::Error::from(Error::invalid(
                format!("Keras layer `{}`", layer.name),
                format!("holds too few variables for {expected}"),
            ))
        })?
    } else {
        first.zeros_like()?
    };
    Ok((gamma, beta, it.collect()))
}
