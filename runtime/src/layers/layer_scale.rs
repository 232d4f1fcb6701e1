//! Layer scale (CaiT, ConvNeXt): a learned per-channel multiplier.

use super::layer_norm2d::{check_channels, per_channel};
use crate::grad_mode::param;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Multiplies each channel by a learned factor `gamma[c]`, initialised to a small constant
/// (ConvNeXt uses `1e-6`) so a residual branch starts close to the identity. The parameter is
/// named `gamma` as in timm's `LayerScale` and Keras' ConvNeXt (torchvision's ConvNeXt holds
/// the same tensor as `layer_scale`, shaped `[C, 1, 1]`).
///
/// # Shapes
/// `[N, C, ...]` -> `[N, C, ...]`.
#[derive(Debug, Clone)]
pub struct LayerScale {
    gamma: Tensor,
}

/// Creates a [`LayerScale`] over `channels` with `gamma` (all `init`) under `vb`.
pub fn layer_scale(channels: usize, init: f64, vb: VarBuilder) -> Result<LayerScale> {
    Ok(LayerScale {
        gamma: vb.get_with_hints(channels, "gamma", Init::Const(init))?,
    })
}

impl LayerScale {
    /// The per-channel factors, `[C]`.
    pub fn gamma(&self) -> &Tensor {
        &self.gamma
    }
}

impl Module for LayerScale {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_channels("layer_scale", x, self.gamma.elem_count())?;
        x.broadcast_mul(&per_channel(&param(&self.gamma), x.rank())?)
    }
}
