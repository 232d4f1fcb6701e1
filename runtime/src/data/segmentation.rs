//! A generated segmentation dataset, in memory, so segmentation examples and tests run
//! without downloading data.
//!
//! [`SyntheticSegmentation`] draws a few filled shapes per image — discs, axis-aligned
//! rectangles and rotated triangles — at random positions and sizes, in random colours, on a
//! random-coloured noisy background. Later shapes cover earlier ones. The mask gives each
//! pixel the class of the shape on top ([`SyntheticSegmentation::CLASS_NAMES`]: 0 background,
//! 1 circle, 2 rectangle, 3 triangle). Colour says nothing about the class, so a model has
//! to learn the shapes. Everything is a function of the seed and the example's index.
//!
//! The loader's augmentation transforms the inputs only, so geometric augmentation (flip,
//! rotation, zoom...) would no longer match the masks: leave it off for this dataset.
//!
//! ```
//! use convnet_runtime::data::{Batches, DataLoader, SyntheticSegmentation};
//! # fn main() -> candle_core::Result<()> {
//! let train = SyntheticSegmentation::new().image_size(32, 32).examples(10).seed(3).build()?;
//! let mut loader = DataLoader::new(train, 4).shuffle(true).seed(1);
//! let batch = loader.epoch(0).next().unwrap()?;
//! assert_eq!(batch.inputs.dims(), [4, 3, 32, 32]); // f32 in 0..=255
//! assert_eq!(batch.targets.dims(), [4, 32, 32]); // u32 classes 0..4
//! # Ok(()) }
//! ```

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::tensor::TensorDataset;
use crate::error::Error;

/// Generator settings for the synthetic segmentation dataset (see the [`data`](crate::data) module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSegmentation {
    height: usize,
    width: usize,
    examples: usize,
    seed: u64,
    min_shapes: usize,
    max_shapes: usize,
}

impl Default for SyntheticSegmentation {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest per-channel noise added to every pixel.
const NOISE: f32 = 24.0;

/// The kind of a drawn shape; its class is its position in `CLASS_NAMES` (1-based).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Geometry {
    /// A disc of `radius` around the centre.
    Circle { radius: f32 },
    /// An axis-aligned rectangle of half-width `half_w` and half-height `half_h`.
    Rectangle { half_w: f32, half_h: f32 },
    /// A triangle with these corners, relative to the centre.
    Triangle { corners: [[f32; 2]; 3] },
}

/// One shape of an image: where it is, what it is and its colour.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    centre: [f32; 2],
    geometry: Geometry,
    colour: [f32; 3],
}

impl Shape {
    /// The mask class (1 circle, 2 rectangle, 3 triangle).
    fn class(&self) -> u32 {
        match self.geometry {
            Geometry::Circle { .. } => 1,
            Geometry::Rectangle { .. } => 2,
            Geometry::Triangle { .. } => 3,
        }
    }

    /// Whether the point `(x, y)` (pixel centres are at `i + 0.5`) lies inside.
    fn contains(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        match self.geometry {
            Geometry::Circle { radius } => dx * dx + dy * dy <= radius * radius,
            Geometry::Rectangle { half_w, half_h } => dx.abs() <= half_w && dy.abs() <= half_h,
            Geometry::Triangle { corners } => {
                // Inside when on the same side of all three edges.
                let side = |a: [f32; 2], b: [f32; 2]| {
                    (b[0] - a[0]) * (dy - a[1]) - (b[1] - a[1]) * (dx - a[0])
                };
                let s = [
                    side(corners[0], corners[1]),
                    side(corners[1], corners[2]),
                    side(corners[2], corners[0]),
                ];
                s.iter().all(|&v| v >= 0.0) || s.iter().all(|&v| v <= 0.0)
            }
        }
    }
}

/// What one image is made of, before pixels.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    background: [f32; 3],
    shapes: Vec<Shape>,
}

impl SyntheticSegmentation {
    /// Mask class names, in class order: 0 background, 1 circle, 2 rectangle, 3 triangle.
    pub const CLASS_NAMES: [&'static str; 4] = ["background", "circle", "rectangle", "triangle"];

    /// 64x64 images, 256 examples, 1 to 3 shapes per image, seed 0.
    pub fn new() -> Self {
        Self {
            height: 64,
            width: 64,
            examples: 256,
            seed: 0,
            min_shapes: 1,
            max_shapes: 3,
        }
    }

    /// Size of the generated images (at least 8x8).
    pub fn image_size(mut self, height: usize, width: usize) -> Self {
        self.height = height;
        self.width = width;
        self
    }

    /// Number of examples.
    pub fn examples(mut self, examples: usize) -> Self {
        self.examples = examples;
        self
    }

    /// Seed of all randomness. Use different seeds for a training and a held-out split.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Number of shapes per image, drawn uniformly in `min..=max` (`min <= max`).
    pub fn shapes_per_image(mut self, min: usize, max: usize) -> Self {
        self.min_shapes = min;
        self.max_shapes = max;
        self
    }

    fn check(&self) -> Result<()> {
        if self.height < 8 || self.width < 8 {
            return Err(Error::invalid(
                "synthetic segmentation image size",
                format!("must be at least 8x8, got {}x{}", self.height, self.width),
            )
            .into());
        }
        if self.min_shapes > self.max_shapes {
            return Err(Error::invalid(
                "synthetic segmentation shapes per image",
                format!(
                    "min must not exceed max, got {}..={}",
                    self.min_shapes, self.max_shapes
                ),
            )
            .into());
        }
        Ok(())
    }

    /// The background and shapes of example `index`.
    fn layout(&self, index: usize) -> Layout {
        let key = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let background: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
        let count = rng.random_range(self.min_shapes..=self.max_shapes.max(self.min_shapes));
        let (h, w) = (self.height as f32, self.width as f32);
        let side = h.min(w);
        let shapes = (0..count)
            .map(|_| {
                // A colour far enough from the background to be visible through the noise.
                let colour: [f32; 3] = loop {
                    let c: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
                    let d: f32 = c.iter().zip(&background).map(|(a, b)| (a - b).abs()).sum();
                    if d > 200.0 {
                        break c;
                    }
                };
                let size = rng.random_range(0.1..0.22) * side;
                let (geometry, extent) = match rng.random_range(0..3) {
                    0 => (Geometry::Circle { radius: size }, [size, size]),
                    1 => {
                        let half_w = size * rng.random_range(0.6..1.2);
                        let half_h = size * rng.random_range(0.6..1.2);
                        (Geometry::Rectangle { half_w, half_h }, [half_w, half_h])
                    }
                    _ => {
                        // An equilateral triangle of circumradius 1.3 * size, rotated.
                        let r = 1.3 * size;
                        let turn = rng.random_range(0.0..std::f32::consts::TAU);
                        let corners = std::array::from_fn(|i| {
                            let a = turn + i as f32 * std::f32::consts::TAU / 3.0;
                            [r * a.cos(), r * a.sin()]
                        });
                        (Geometry::Triangle { corners }, [r, r])
                    }
                };
                let cx = rng.random_range(extent[0]..(w - extent[0]).max(extent[0] + 1e-3));
                let cy = rng.random_range(extent[1]..(h - extent[1]).max(extent[1] + 1e-3));
                Shape {
                    centre: [cx, cy],
                    geometry,
                    colour,
                }
            })
            .collect();
        Layout { background, shapes }
    }

    /// Example `index`: the image and its mask.
    ///
    /// # Shapes
    /// Returns the image as planar RGB `f32` whole numbers in `0..=255`, CHW `[3, H, W]`
    /// flattened, and the mask as `u32` classes, `[H, W]` flattened.
    pub fn example(&self, index: usize) -> (Vec<f32>, Vec<u32>) {
        let (h, w) = (self.height, self.width);
        let layout = self.layout(index);
        let mut noise =
            ChaCha8Rng::seed_from_u64(self.seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ index as u64);
        let mut image = vec![0f32; 3 * h * w];
        let mut mask = vec![0u32; h * w];
        for y in 0..h {
            for x in 0..w {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let top = layout.shapes.iter().rev().find(|s| s.contains(px, py));
                let colour = top.map_or(&layout.background, |s| &s.colour);
                mask[y * w + x] = top.map_or(0, Shape::class);
                for (c, base) in colour.iter().enumerate() {
                    let v = base + noise.random_range(-NOISE..NOISE);
                    image[(c * h + y) * w + x] = v.clamp(0.0, 255.0).round();
                }
            }
        }
        (image, mask)
    }

    /// Generates every example (in parallel) into a dataset a
    /// [`DataLoader`](super::DataLoader) batches; errors on an image size under 8x8 or
    /// `min > max` shapes per image.
    ///
    /// # Shapes
    /// Inputs `[N, 3, H, W]` `f32` in `0..=255`; targets (masks) `[N, H, W]` `u32` classes
    /// `0..4`, on the CPU.
    pub fn build(&self) -> Result<TensorDataset> {
        self.check()?;
        let (n, h, w) = (self.examples, self.height, self.width);
        let examples: Vec<(Vec<f32>, Vec<u32>)> =
            (0..n).into_par_iter().map(|i| self.example(i)).collect();
        let mut images = Vec::with_capacity(n * 3 * h * w);
        let mut masks = Vec::with_capacity(n * h * w);
        for (image, mask) in examples {
            images.extend(image);
            masks.extend(mask);
        }
        TensorDataset::new(
            Tensor::from_vec(images, (n, 3, h, w), &Device::Cpu)?,
            Tensor::from_vec(masks, (n, h, w), &Device::Cpu)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn every_pixel_shows_the_colour_its_mask_names() {
        let data = SyntheticSegmentation::new()
            .image_size(40, 48)
            .shapes_per_image(2, 4);
        let mut seen = [0usize; 4];
        for index in 0..12 {
            let layout = data.layout(index);
            let (image, mask) = data.example(index);
            assert_eq!((image.len(), mask.len()), (3 * 40 * 48, 40 * 48));
            for p in 0..40 * 48 {
                let class = mask[p];
                seen[class as usize] += 1;
                let pixel: [f32; 3] = std::array::from_fn(|c| image[c * 40 * 48 + p]);
                let near = |colour: &[f32; 3]| {
                    pixel
                        .iter()
                        .zip(colour)
                        .all(|(v, c)| (v - c).abs() <= NOISE + 0.5)
                };
                let fits = if class == 0 {
                    near(&layout.background)
                } else {
                    layout
                        .shapes
                        .iter()
                        .any(|s| s.class() == class && near(&s.colour))
                };
                assert!(
                    fits,
                    "example {index} pixel {p}: class {class}, colour {pixel:?}"
                );
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "classes seen: {seen:?}");
    }

    #[test]
    fn a_lone_shape_covers_its_area_around_its_centre() {
        let data = SyntheticSegmentation::new()
            .image_size(64, 64)
            .shapes_per_image(1, 1);
        for index in 0..30 {
            let shape = data.layout(index).shapes[0];
            let (_, mask) = data.example(index);
            let inside: Vec<(f32, f32)> = (0..64 * 64)
                .filter(|&p| mask[p] != 0)
                .map(|p| ((p % 64) as f32 + 0.5, (p / 64) as f32 + 0.5))
                .collect();
            assert!(!inside.is_empty(), "example {index}: empty mask");
            assert!(mask.iter().all(|&c| c == 0 || c == shape.class()));
            let area = match shape.geometry {
                Geometry::Circle { radius } => std::f32::consts::PI * radius * radius,
                Geometry::Rectangle { half_w, half_h } => 4.0 * half_w * half_h,
                Geometry::Triangle { corners: [a, b, c] } => {
                    ((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])).abs() / 2.0
                }
            };
            let counted = inside.len() as f32;
            assert!(
                (counted - area).abs() <= 0.15 * area + 4.0,
                "example {index}: {shape:?} covers {counted} pixels, area {area}"
            );
            // Circles, rectangles and equilateral triangles have their centroid at the centre.
            let mean = |f: fn(&(f32, f32)) -> f32| inside.iter().map(f).sum::<f32>() / counted;
            let (mx, my) = (mean(|p| p.0), mean(|p| p.1));
            assert!(
                (mx - shape.centre[0]).abs() < 1.0 && (my - shape.centre[1]).abs() < 1.0,
                "example {index}: centroid ({mx}, {my}) vs {:?}",
                shape.centre
            );
        }
    }

    #[test]
    fn the_seed_decides_everything() {
        let data = SyntheticSegmentation::new().image_size(16, 16).examples(6);
        let a = data.clone().seed(5).build().unwrap();
        let b = data.clone().seed(5).build().unwrap();
        let c = data.clone().seed(6).build().unwrap();
        let same = |x: &Tensor, y: &Tensor| {
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(same(a.inputs(), b.inputs()));
        assert!(same(
            &a.targets().to_dtype(candle_core::DType::F32).unwrap(),
            &b.targets().to_dtype(candle_core::DType::F32).unwrap()
        ));
        assert!(!same(a.inputs(), c.inputs()));
        // Example i does not depend on how many examples are generated.
        let longer = data.seed(5).examples(9).build().unwrap();
        let batch = longer.gather(&[4]).unwrap();
        assert!(same(&batch.inputs, &a.gather(&[4]).unwrap().inputs));
        assert_eq!(a.example_shape(), [3, 16, 16]);
        assert_eq!(a.targets().dims(), [6, 16, 16]);
        assert_eq!(a.targets().dtype(), candle_core::DType::U32);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = SyntheticSegmentation::new()
            .image_size(4, 64)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("4x64") && err.contains("8x8"), "{err}");
        let err = SyntheticSegmentation::new()
            .shapes_per_image(3, 2)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("3..=2"), "{err}");
    }
}
