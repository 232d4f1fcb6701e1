//! Data feeding: datasets, and loaders that turn them into batches epoch by epoch.
//!
//! - [`ImageFolder`]: images in one sub-folder per class (Keras
//!   `image_dataset_from_directory`), with a seeded train/validation split, parallel
//!   decoding and an optional cache; split folders opened together share checked classes
//!   ([`ImageFolderBuilder::build_splits`]).
//! - [`TensorDataset`]: examples already in tensors.
//! - [`DataLoader`]: batching, seeded per-epoch shuffling, augmentation (training only) and
//!   device transfer over any [`Dataset`]; implements [`Batches`], which the training loop
//!   consumes.
//! - [`Augment`]: random flip, rotation, zoom, translation, crop; rescale and normalize.
//! - [`SyntheticShapes`]: a generated two-class image folder for runs without data.
//! - [`SyntheticSegmentation`]: generated images of shapes with per-pixel masks, in memory.
//!
//! ```no_run
//! use convnet_runtime::data::{Augment, Batches, DataLoader, ImageFolder, Subset};
//! # fn main() -> candle_core::Result<()> {
//! let dir = "data/cats_vs_dogs/train";
//! let train = ImageFolder::builder(dir, 180, 180)
//!     .validation_split(0.2, Subset::Training).seed(1337).cache(true).build()?;
//! let val = ImageFolder::builder(dir, 180, 180)
//!     .validation_split(0.2, Subset::Validation).seed(1337).cache(true).build()?;
//! let mut train = DataLoader::new(train, 32)
//!     .shuffle(true)
//!     .seed(1337)
//!     .augment(Augment::new().flip_horizontal().rotation(0.1).zoom(0.2))
//!     .training(true);
//! let mut val = DataLoader::new(val, 32);
//! for epoch in 0..2 {
//!     for batch in train.epoch(epoch) {
//!         let batch = batch?; // inputs [32, 3, 180, 180] f32 in 0..=255, targets [32] u32
//!     }
//! }
//! # Ok(()) }
//! ```

mod augment;
mod batch;
mod decode;
mod image_folder;
mod loader;
mod segmentation;
mod synthetic;
mod tensor;

pub use augment::{example_rng, Augment, FillMode};
pub use batch::{Batch, Batches};
pub use decode::{check_jpeg_complete, load_image, resize_bilinear_rgb};
pub use image_folder::{
    has_image_extension, ImageFolder, ImageFolderBuilder, LabelMode, Subset, IMAGE_EXTENSIONS,
};
pub use loader::{DataLoader, Dataset};
pub use segmentation::SyntheticSegmentation;
pub use synthetic::{SyntheticShapes, SPLITS};
pub use tensor::TensorDataset;
