//! A generated two-class image dataset, so examples and tests run without downloading data.
//!
//! [`SyntheticShapes`] draws one filled shape per image — a disc (`circles`, label 0) or an
//! axis-aligned square (`squares`, label 1) — of the same area distribution, at a random
//! position and size, in a random colour, on a random-coloured noisy background. Size says
//! nothing about the class; the shape does, and so, weakly, does the shape's colour (discs
//! lean red, squares blue), so that even a short run from scratch learns something (with
//! shape alone, mini-Xception stayed at chance for 10 epochs of 600 images). Everything is a
//! function of the seed.
//!
//! [`SyntheticShapes::write`] lays the images out as an image folder, half PNG, half JPEG,
//! so that the real [`ImageFolder`](super::ImageFolder) code path (listing, both decoders,
//! resizing) is exercised:
//!
//! ```text
//! dir/SYNTHETIC.txt                           (the generator's settings)
//! dir/{train,validation,test}/circles/circle.{i}.{png|jpg}
//! dir/{train,validation,test}/squares/square.{i}.{png|jpg}
//! ```
//!
//! ```no_run
//! use convnet_runtime::data::{ImageFolder, SyntheticShapes};
//! # fn main() -> candle_core::Result<()> {
//! let dir = std::env::temp_dir().join("convnet-shapes");
//! SyntheticShapes::new().image_size(64, 64).per_class(100, 25, 25).seed(7).write(&dir)?;
//! let train = ImageFolder::open(dir.join("train"), 64, 64)?;
//! assert_eq!(train.class_names(), ["circles", "squares"]);
//! # Ok(()) }
//! ```

use std::path::Path;

use candle_core::{bail, Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The split folders [`SyntheticShapes::write`] creates.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];

const MARKER: &str = "SYNTHETIC.txt";

/// Generator settings for the synthetic shapes dataset (see the [`data`](crate::data) module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticShapes {
    height: usize,
    width: usize,
    per_class: [usize; 3],
    seed: u64,
}

impl Default for SyntheticShapes {
    fn default() -> Self {
        Self::new()
    }
}

impl SyntheticShapes {
    /// Class folder names, in label order.
    pub const CLASS_NAMES: [&'static str; 2] = ["circles", "squares"];

    /// 64x64 images; 200 train, 50 validation and 50 test images per class; seed 0.
    pub fn new() -> Self {
        Self {
            height: 64,
            width: 64,
            per_class: [200, 50, 50],
            seed: 0,
        }
    }

    /// Size of the generated images (at least 8x8).
    pub fn image_size(mut self, height: usize, width: usize) -> Self {
        self.height = height;
        self.width = width;
        self
    }

    /// Images per class in the train, validation and test splits.
    pub fn per_class(mut self, train: usize, validation: usize, test: usize) -> Self {
        self.per_class = [train, validation, test];
        self
    }

    /// Seed of all randomness.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Images per class in `split` (`"train"`, `"validation"` or `"test"`).
    pub fn count(&self, split: &str) -> usize {
        SPLITS
            .iter()
            .position(|s| *s == split)
            .map_or(0, |i| self.per_class[i])
    }

    fn describe(&self) -> String {
        format!(
            "convnet synthetic shapes v2\nsize {}x{}\nper_class train {} validation {} test {}\nseed {}\n",
            self.height, self.width, self.per_class[0], self.per_class[1], self.per_class[2], self.seed
        )
    }

    /// Image `index` of class `label` (0 = circle, 1 = square) in split `split` (0 = train,
    /// 1 = validation, 2 = test).
    ///
    /// # Shapes
    /// Returns interleaved RGB `u8` pixels, HWC `[height, width, 3]` flattened.
    pub fn image(&self, split: usize, label: usize, index: usize) -> Vec<u8> {
        let (h, w) = (self.height.max(8), self.width.max(8));
        let key = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ ((split as u64) << 56)
            ^ ((label as u64) << 48)
            ^ index as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let background: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
        // A shape colour far enough from the background to be visible.
        let colour: [f32; 3] = loop {
            let c: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
            let d: f32 = c.iter().zip(&background).map(|(a, b)| (a - b).abs()).sum();
            // Discs lean red, squares blue.
            let lean = if label == 0 { c[0] - c[2] } else { c[2] - c[0] };
            if d > 200.0 && lean > 40.0 {
                break c;
            }
        };
        let side = h.min(w) as f32;
        // Disc radius r; square half-side r * sqrt(pi) / 2 has the same area.
        let radius = rng.random_range(0.15..0.3) * side;
        let extent = if label == 0 {
            radius
        } else {
            radius * std::f32::consts::PI.sqrt() / 2.0
        };
        let cx = rng.random_range(extent..(w as f32 - extent));
        let cy = rng.random_range(extent..(h as f32 - extent));
        let noise = 24.0;
        let mut pixels = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let inside = if label == 0 {
                    dx * dx + dy * dy <= radius * radius
                } else {
                    dx.abs() <= extent && dy.abs() <= extent
                };
                let base = if inside { &colour } else { &background };
                for b in base {
                    let v = b + rng.random_range(-noise..noise);
                    pixels.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
        pixels
    }

    /// Writes the dataset under `dir` (created if needed). Even-numbered images are PNG,
    /// odd-numbered JPEG (quality 90).
    ///
    /// If `dir` already holds a dataset written with the same settings, nothing is done;
    /// with other settings, its split folders are removed and written anew. A non-empty
    /// `dir` without the `SYNTHETIC.txt` marker is an error (nothing is deleted).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if self.height < 8 || self.width < 8 {
            bail!(
                "synthetic shapes: image size must be at least 8x8, got {}x{}",
                self.height,
                self.width
            );
        }
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::Msg(format!(
                "synthetic shapes: cannot {what} {}: {e}",
                path.display()
            ))
        };
        let marker = dir.join(MARKER);
        let description = self.describe();
        if dir.exists() {
            match std::fs::read_to_string(&marker) {
                Ok(existing) if existing == description => return Ok(()),
                Ok(_) => {
                    for split in SPLITS {
                        let path = dir.join(split);
                        if path.exists() {
                            std::fs::remove_dir_all(&path).map_err(|e| io("remove", &path, e))?;
                        }
                    }
                    std::fs::remove_file(&marker).map_err(|e| io("remove", &marker, e))?;
                }
                Err(_) => {
                    let non_empty = std::fs::read_dir(dir)
                        .map_err(|e| io("list", dir, e))?
                        .next()
                        .is_some();
                    if non_empty {
                        bail!(
                            "synthetic shapes: {} is not empty and has no {MARKER}; refusing to write into it",
                            dir.display()
                        );
                    }
                }
            }
        }
        let mut jobs = Vec::new();
        for (s, split) in SPLITS.iter().enumerate() {
            for (label, class) in Self::CLASS_NAMES.iter().enumerate() {
                let folder = dir.join(split).join(class);
                std::fs::create_dir_all(&folder).map_err(|e| io("create", &folder, e))?;
                jobs.extend((0..self.per_class[s]).map(|i| (s, label, i)));
            }
        }
        jobs.par_iter()
            .try_for_each(|&(s, label, i)| -> Result<()> {
                let class = Self::CLASS_NAMES[label];
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                let path = dir
                    .join(SPLITS[s])
                    .join(class)
                    .join(format!("{}.{i}.{ext}", &class[..class.len() - 1]));
                let pixels = self.image(s, label, i);
                let image =
                    image::RgbImage::from_raw(self.width as u32, self.height as u32, pixels)
                        .ok_or_else(|| {
                            Error::Msg("synthetic shapes: pixel buffer has the wrong size".into())
                        })?;
                let mut file = std::io::BufWriter::new(
                    std::fs::File::create(&path).map_err(|e| io("create", &path, e))?,
                );
                let written = if ext == "png" {
                    image.write_to(&mut file, image::ImageFormat::Png)
                } else {
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 90)
                        .encode_image(&image)
                };
                written.map_err(|e| {
                    Error::Msg(format!(
                        "synthetic shapes: cannot encode {}: {e}",
                        path.display()
                    ))
                })?;
                Ok(())
            })?;
        std::fs::write(&marker, description).map_err(|e| io("write", &marker, e))?;
        Ok(())
    }
}
