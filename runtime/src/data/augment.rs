//! Image augmentation on CHW `f32` images, deterministic under a seed.
//!
//! An [`Augment`] is a pipeline of steps applied in the order they were added, like a Keras
//! `Sequential` of preprocessing layers:
//!
//! | step | Keras equivalent | what it does |
//! |------|------------------|--------------|
//! | [`flip_horizontal`](Augment::flip_horizontal) | `RandomFlip("horizontal")` | mirrors left-right with probability 1/2 |
//! | [`flip_vertical`](Augment::flip_vertical) | `RandomFlip("vertical")` | mirrors top-bottom with probability 1/2 |
//! | [`rotation`](Augment::rotation) | `RandomRotation(factor)` | rotates by an angle uniform in `[-factor * 2π, factor * 2π]` about the centre |
//! | [`zoom`](Augment::zoom) | `RandomZoom(factor)` | zooms by `1 + U(-factor, factor)` on both axes (positive = out, negative = in) |
//! | [`translation`](Augment::translation) | `RandomTranslation(h, w)` | shifts by `U(-h, h) * H` rows and `U(-w, w) * W` columns |
//! | [`crop`](Augment::crop) | (torchvision `RandomResizedCrop`, fixed aspect) | crops a random square-scaled window of side fraction `U(min_scale, 1)` at a random position and resizes it back to `H x W` |
//! | [`rescale`](Augment::rescale) | `Rescaling(scale, offset)` | `x * scale + offset` |
//! | [`normalize`](Augment::normalize) | `Normalization(mean, variance)` | `(x - mean[c]) / std[c]` per channel |
//!
//! Geometric steps sample with bilinear interpolation (Keras' default) and fill the area
//! that comes from outside the image according to [`FillMode`]; the default is
//! [`FillMode::Reflect`], Keras' default (`d c b a | a b c d | d c b a`, TensorFlow's
//! coordinate mapping).
//!
//! Randomness comes from an RNG per example, [`example_rng`]`(seed, epoch, index)`, so the
//! result for an example depends only on the seed, the epoch and the example's index in its
//! dataset — not on batch size, thread count or order of decoding.
//!
//! ```
//! use convnet_runtime::data::{example_rng, Augment};
//! let augment = Augment::new().flip_horizontal().rotation(0.1).zoom(0.2);
//! let mut image = vec![0.5f32; 3 * 8 * 8];
//! augment.apply(&mut image, (3, 8, 8), &mut example_rng(42, 0, 7));
//! ```

use candle_core::{bail, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// How geometric steps fill pixels that map from outside the input image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FillMode {
    /// Reflect about the edge of the last pixel: `d c b a | a b c d | d c b a` (Keras default).
    Reflect,
    /// Repeat the edge pixel: `a a a a | a b c d | d d d d`.
    Nearest,
    /// Fill with a constant value: `k k k k | a b c d | k k k k`.
    Constant(f32),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    FlipHorizontal,
    FlipVertical,
    Rotation(f32),
    Zoom(f32, f32),
    Translation(f32, f32),
    Crop(f32),
    Rescale(f32, f32),
    Normalize(Vec<f32>, Vec<f32>),
}

/// A pipeline of image transforms; see the [`data`](crate::data) module.
///
/// # Shapes
/// Works on one image `[C, H, W]` ([`apply`](Self::apply)) or a batch `[B, C, H, W]`
/// ([`apply_batch`](Self::apply_batch)), `f32`; shapes are preserved.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    steps: Vec<Step>,
    fill: FillMode,
}

impl Default for Augment {
    fn default() -> Self {
        Self::new()
    }
}

impl Augment {
    /// An empty pipeline (identity), filling with [`FillMode::Reflect`].
    pub fn new() -> Self {
        Self {
            steps: Vec::new(),
            fill: FillMode::Reflect,
        }
    }

    /// Fill mode for the geometric steps (default [`FillMode::Reflect`]).
    pub fn fill(mut self, fill: FillMode) -> Self {
        self.fill = fill;
        self
    }

    /// Random left-right mirror with probability 1/2.
    pub fn flip_horizontal(mut self) -> Self {
        self.steps.push(Step::FlipHorizontal);
        self
    }

    /// Random top-bottom mirror with probability 1/2.
    pub fn flip_vertical(mut self) -> Self {
        self.steps.push(Step::FlipVertical);
        self
    }

    /// Random rotation about the image centre by an angle uniform in
    /// `[-factor * 2π, factor * 2π]` (Keras `RandomRotation(factor)`; 0.1 is ±36°).
    pub fn rotation(mut self, factor: f32) -> Self {
        self.steps.push(Step::Rotation(factor.abs()));
        self
    }

    /// Random zoom, Keras `RandomZoom(height_factor=factor)` with the width following the
    /// height: both axes scale by `1 + U(-factor, factor)`; above 1 zooms out, below 1 in.
    /// `factor` is clamped below 1.
    pub fn zoom(self, factor: f32) -> Self {
        let f = factor.abs();
        self.zoom_range(-f, f)
    }

    /// Random zoom by `1 + U(lower, upper)` (Keras `RandomZoom(height_factor=(lower, upper))`);
    /// e.g. `(-0.3, -0.2)` zooms in by 20-30%. Bounds are clamped above -1.
    pub fn zoom_range(mut self, lower: f32, upper: f32) -> Self {
        let (lo, hi) = (lower.min(upper).max(-0.99), upper.max(lower).max(-0.99));
        self.steps.push(Step::Zoom(lo, hi));
        self
    }

    /// Random shift by `U(-height_factor, height_factor) * H` rows and
    /// `U(-width_factor, width_factor) * W` columns (Keras `RandomTranslation`).
    pub fn translation(mut self, height_factor: f32, width_factor: f32) -> Self {
        self.steps
            .push(Step::Translation(height_factor.abs(), width_factor.abs()));
        self
    }

    /// Random crop resized back to the input size: a window of `s * H` by `s * W`,
    /// `s ~ U(min_scale, 1)`, at a uniformly random position inside the image, resized
    /// bilinearly to `H x W` (so the output shape never changes). `min_scale` is clamped to
    /// `(0, 1]`.
    pub fn crop(mut self, min_scale: f32) -> Self {
        self.steps.push(Step::Crop(min_scale.clamp(1e-3, 1.0)));
        self
    }

    /// `x * scale + offset` (deterministic).
    pub fn rescale(mut self, scale: f32, offset: f32) -> Self {
        self.steps.push(Step::Rescale(scale, offset));
        self
    }

    /// `(x - mean[c]) / std[c]` for channel `c` (deterministic). `mean` and `std` need one
    /// value per channel (or one value for all).
    pub fn normalize(mut self, mean: &[f32], std: &[f32]) -> Self {
        self.steps
            .push(Step::Normalize(mean.to_vec(), std.to_vec()));
        self
    }

    /// Whether the pipeline has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies the pipeline in place to one image.
    ///
    /// # Shapes
    /// `image` holds `[C, H, W]` = `shape` flattened.
    ///
    /// # Panics
    /// If `image.len() != C * H * W`, or `normalize` was given neither 1 nor `C` values.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        image: &mut [f32],
        shape: (usize, usize, usize),
        rng: &mut R,
    ) {
        let (c, h, w) = shape;
        assert_eq!(
            image.len(),
            c * h * w,
            "Augment::apply: image length does not match shape {shape:?}"
        );
        if h == 0 || w == 0 {
            return;
        }
        let (hf, wf) = (h as f32, w as f32);
        // Centre of the pixel grid, as Keras/TensorFlow transforms use.
        let (cy, cx) = ((hf - 1.0) / 2.0, (wf - 1.0) / 2.0);
        for step in &self.steps {
            match step {
                Step::FlipHorizontal => {
                    if rng.random_bool(0.5) {
                        for row in image.chunks_mut(w) {
                            row.reverse();
                        }
                    }
                }
                Step::FlipVertical => {
                    if rng.random_bool(0.5) {
                        for plane in image.chunks_mut(h * w) {
                            for y in 0..h / 2 {
                                let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                                top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
                            }
                        }
                    }
                }
                Step::Rotation(factor) => {
                    let angle = uniform(rng, -factor, *factor) * 2.0 * std::f32::consts::PI;
                    let (sin, cos) = angle.sin_cos();
                    self.warp(image, shape, |x, y| {
                        let (dx, dy) = (x - cx, y - cy);
                        (cos * dx - sin * dy + cx, sin * dx + cos * dy + cy)
                    });
                }
                Step::Zoom(lo, hi) => {
                    let z = 1.0 + uniform(rng, *lo, *hi);
                    self.warp(image, shape, |x, y| (z * (x - cx) + cx, z * (y - cy) + cy));
                }
                Step::Translation(fh, fw) => {
                    let dy = uniform(rng, -fh, *fh) * hf;
                    let dx = uniform(rng, -fw, *fw) * wf;
                    self.warp(image, shape, |x, y| (x - dx, y - dy));
                }
                Step::Crop(min_scale) => {
                    let s = uniform(rng, *min_scale, 1.0);
                    let (ch, cw) = (s * hf, s * wf);
                    let top = uniform(rng, 0.0, hf - ch);
                    let left = uniform(rng, 0.0, wf - cw);
                    let (sy, sx) = (ch / hf, cw / wf);
                    self.warp(image, shape, |x, y| {
                        (left + (x + 0.5) * sx - 0.5, top + (y + 0.5) * sy - 0.5)
                    });
                }
                Step::Rescale(scale, offset) => {
                    for v in image.iter_mut() {
                        *v = *v * scale + offset;
                    }
                }
                Step::Normalize(mean, std) => {
                    assert!(
                        (mean.len() == 1 || mean.len() == c) && (std.len() == 1 || std.len() == c),
                        "Augment::normalize: need 1 or {c} mean/std values, got {} and {}",
                        mean.len(),
                        std.len()
                    );
                    for (ch, plane) in image.chunks_mut(h * w).enumerate() {
                        let m = mean[ch.min(mean.len() - 1)];
                        let s = std[ch.min(std.len() - 1)];
                        for v in plane {
                            *v = (*v - m) / s;
                        }
                    }
                }
            }
        }
    }

    /// Applies the pipeline to every image of a batch in parallel, example `k` drawing from
    /// [`example_rng`]`(seed, epoch, indices[k])`.
    ///
    /// # Shapes
    /// `images [B, C, H, W]` `f32` (any device) -> `[B, C, H, W]` `f32` on the CPU;
    /// `indices.len() == B`.
    pub fn apply_batch(
        &self,
        images: &Tensor,
        seed: u64,
        epoch: usize,
        indices: &[usize],
    ) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        if indices.len() != b {
            bail!(
                "Augment::apply_batch: {} indices for a batch of {b}",
                indices.len()
            );
        }
        for step in &self.steps {
            if let Step::Normalize(mean, std) = step {
                if !(mean.len() == 1 || mean.len() == c) || !(std.len() == 1 || std.len() == c) {
                    bail!(
                        "Augment::normalize: need 1 or {c} mean/std values for {c} channels, got {} and {}",
                        mean.len(),
                        std.len()
                    );
                }
            }
        }
        let mut data = images
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if c * h * w > 0 {
            data.par_chunks_mut(c * h * w)
                .zip(indices.par_iter())
                .for_each(|(image, &index)| {
                    self.apply(image, (c, h, w), &mut example_rng(seed, epoch, index));
                });
        }
        Tensor::from_vec(data, (b, c, h, w), &Device::Cpu)
    }

    /// Resamples every channel: output pixel `(x, y)` takes the input at `map(x, y)`.
    fn warp(
        &self,
        image: &mut [f32],
        (c, h, w): (usize, usize, usize),
        map: impl Fn(f32, f32) -> (f32, f32),
    ) {
        let coords: Vec<(f32, f32)> = (0..h * w)
            .map(|i| map((i % w) as f32, (i / w) as f32))
            .collect();
        let mut out = vec![0f32; h * w];
        for plane in image.chunks_mut(h * w).take(c) {
            for (o, &(sx, sy)) in out.iter_mut().zip(&coords) {
                *o = sample(plane, h, w, sx, sy, self.fill);
            }
            plane.copy_from_slice(&out);
        }
    }
}

fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// TensorFlow's `map_coord` for the non-constant fill modes.
fn map_coord(x: f32, len: usize, fill: FillMode) -> f32 {
    let n = len as f32;
    match fill {
        FillMode::Constant(_) => x,
        FillMode::Nearest => x.clamp(0.0, n - 1.0),
        FillMode::Reflect => {
            if len <= 1 {
                return 0.0;
            }
            let sz2 = 2.0 * n;
            let mut x = x;
            if x < 0.0 {
                if x < -sz2 {
                    x += sz2 * ((-x / sz2).trunc());
                }
                x = if x < -n { x + sz2 } else { -x - 1.0 };
            } else if x > n - 1.0 {
                x -= sz2 * (x / sz2).trunc();
                if x >= n {
                    x = sz2 - x - 1.0;
                }
            }
            x.clamp(0.0, n - 1.0)
        }
    }
}

/// Bilinear sample of one `h x w` plane at `(x, y)` under `fill`.
fn sample(plane: &[f32], h: usize, w: usize, x: f32, y: f32, fill: FillMode) -> f32 {
    let (x, y) = (map_coord(x, w, fill), map_coord(y, h, fill));
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let read = |xi: f32, yi: f32| -> f32 {
        if xi >= 0.0 && yi >= 0.0 && (xi as usize) < w && (yi as usize) < h {
            plane[yi as usize * w + xi as usize]
        } else {
            match fill {
                FillMode::Constant(k) => k,
                // Only reachable through float rounding at the border.
                _ => {
                    plane[(yi.clamp(0.0, h as f32 - 1.0) as usize) * w
                        + xi.clamp(0.0, w as f32 - 1.0) as usize]
                }
            }
        }
    };
    let top = read(x0, y0) * (1.0 - fx) + read(x0 + 1.0, y0) * fx;
    let bottom = read(x0, y0 + 1.0) * (1.0 - fx) + read(x0 + 1.0, y0 + 1.0) * fx;
    if fy == 0.0 && fx == 0.0 {
        return read(x0, y0);
    }
    top * (1.0 - fy) + bottom * fy
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG that augments example `index` (its index in its dataset) in epoch `epoch`
/// under `seed`: independent of batch size, thread count and visiting order.
pub fn example_rng(seed: u64, epoch: usize, index: usize) -> ChaCha8Rng {
    let mut h = splitmix64(seed ^ 0xA076_1D64_78BD_642F);
    h = splitmix64(h ^ epoch as u64);
    h = splitmix64(h ^ index as u64);
    ChaCha8Rng::seed_from_u64(h)
}
