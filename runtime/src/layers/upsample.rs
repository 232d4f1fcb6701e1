//! Spatial upsampling by integer factors, nearest or bilinear (`torch.nn.Upsample`,
//! Keras `UpSampling2D`).

use crate::error::Error;
use candle_core::{Result, Tensor};

/// How [`upsample2d`] fills the new pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Each input pixel repeated `scale` times along each axis.
    Nearest,
    /// Bilinear interpolation with `align_corners = False` (PyTorch's default, and Keras'
    /// `UpSampling2D(interpolation="bilinear")`): output pixel `o` samples the input at
    /// `(o + 0.5) / scale - 0.5`, clamped at 0, from its two neighbours (the last pixel
    /// repeats at the far edge).
    Bilinear,
}

/// Upsamples the spatial dims by `(scale_h, scale_w)`.
///
/// Both modes are built from candle ops (broadcast for nearest, two matmuls with fixed
/// interpolation matrices for bilinear), so autograd differentiates them on any device.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, H * scale_h, W * scale_w]`.
pub fn upsample2d(x: &Tensor, scale: (usize, usize), mode: UpsampleMode) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (sh, sw) = scale;
    if sh == 0 || sw == 0 {
        return Err(Error::invalid(
            "upsample2d scale",
            format!("must be at least 1, found {scale:?}"),
        )
        .into());
    }
    match mode {
        UpsampleMode::Nearest => x
            .reshape((n, c, h, 1, w, 1))?
            .broadcast_as((n, c, h, sh, w, sw))?
            .reshape((n, c, h * sh, w * sw)),
        UpsampleMode::Bilinear => {
            let (oh, ow) = (h * sh, w * sw);
            let along_w = bilinear_matrix(w, sw, x)?; // [W, OW]
            let along_h = bilinear_matrix(h, sh, x)?; // [H, OH]
                                                      // Rows: [N*C*H, W] x [W, OW].
            let y = x.reshape((n * c * h, w))?.matmul(&along_w)?;
            // Columns: [N*C*OW, H] x [H, OH].
            let y = y.reshape((n * c, h, ow))?.transpose(1, 2)?.contiguous()?;
            let y = y.reshape((n * c * ow, h))?.matmul(&along_h)?;
            y.reshape((n * c, ow, oh))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((n, c, oh, ow))
        }
    }
}

/// The weights `m[i, o]` of input `i` in output `o` along an axis of `size` upsampled by
/// `scale` (`align_corners = False`), on `like`'s device and dtype.
fn bilinear_matrix(size: usize, scale: usize, like: &Tensor) -> Result<Tensor> {
    let out = size * scale;
    let mut m = vec![0f64; size * out];
    for o in 0..out {
        let (i0, i1, frac) = bilinear_source(o, size, scale);
        m[i0 * out + o] += 1.0 - frac;
        m[i1 * out + o] += frac;
    }
    Tensor::from_vec(m, (size, out), like.device())?.to_dtype(like.dtype())
}

/// The two input indices output `o` interpolates between and the weight of the second.
fn bilinear_source(o: usize, size: usize, scale: usize) -> (usize, usize, f64) {
    let src = ((o as f64 + 0.5) / scale as f64 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(size - 1);
    let i1 = (i0 + 1).min(size - 1);
    (i0, i1, src - i0 as f64)
}
