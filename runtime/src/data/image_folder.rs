//! An image-folder dataset with Keras `image_dataset_from_directory` semantics.
//!
//! ```text
//! root/
//!   cats/  cat.0.jpg  cat.1.jpg ...      -> label 0
//!   dogs/  dog.0.jpg  dog.1.png ...      -> label 1
//! ```
//!
//! - Class names are the sorted names of the sub-folders of `root`; an example's label is its
//!   class's index (`u32`). Files directly in `root` are ignored, as in Keras.
//! - Files are found recursively under each class folder (sorted by path; linked sub-folders
//!   inside a class folder are not entered, as Keras' `follow_links=False`) and kept when their extension is `jpg`, `jpeg` or `png` (any case); other files are
//!   ignored. The content decides the decoder, so a PNG named `.jpg` still decodes.
//! - Each image is decoded to RGB (grey is replicated, alpha dropped), resized to the model's
//!   input `(H, W)` with bilinear interpolation (half-pixel centres, no antialiasing: exactly
//!   TensorFlow's `tf.image.resize(..., "bilinear")`, which Keras uses), and laid out CHW as
//!   `f32` values in `0..=255` (the model rescales).
//! - An optional validation split shuffles the whole file list with the seed, then keeps the
//!   last `floor(fraction * n)` files for [`Subset::Validation`] and the rest for
//!   [`Subset::Training`], so the two subsets built with the same seed are disjoint and
//!   together cover every file.
//!
//! ```no_run
//! use convnet_runtime::data::{DataLoader, ImageFolder, Subset};
//! # fn main() -> candle_core::Result<()> {
//! let train = ImageFolder::builder("data/cats_vs_dogs/train", 180, 180)
//!     .validation_split(0.2, Subset::Training)
//!     .seed(1337)
//!     .cache(true)
//!     .build()?;
//! println!("{:?}: {} images", train.class_names(), train.len());
//! let loader = DataLoader::new(train, 32).shuffle(true).seed(1337);
//! # Ok(()) }
//! ```

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{bail, Device, Error, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::batch::Batch;
use super::loader::{shuffle_in_place, Dataset};

/// The file extensions (lower case) an image folder picks up.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Which side of a train/validation split an [`ImageFolder`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subset {
    /// The first `n - floor(fraction * n)` files of the seeded shuffle.
    Training,
    /// The last `floor(fraction * n)` files of the seeded shuffle.
    Validation,
}

/// How labels are encoded in batch targets (Keras `label_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelMode {
    /// Class indices, `[B]` `u32` (for categorical cross-entropy from class indices).
    #[default]
    Int,
    /// `[B, 1]` `f32` of 0.0/1.0 (for binary cross-entropy); needs exactly two classes.
    Binary,
    /// One-hot `[B, num_classes]` `f32`.
    Categorical,
}

/// Options for [`ImageFolder`]; create with [`ImageFolder::builder`], finish with
/// [`ImageFolderBuilder::build`].
#[derive(Debug, Clone)]
pub struct ImageFolderBuilder {
    root: PathBuf,
    height: usize,
    width: usize,
    split: Option<(f64, Subset)>,
    seed: u64,
    cache: bool,
    skip_invalid: bool,
    class_names: Option<Vec<String>>,
    label_mode: LabelMode,
}

impl ImageFolderBuilder {
    /// Encoding of the targets (default [`LabelMode::Int`]: `[B]` `u32`).
    pub fn label_mode(mut self, mode: LabelMode) -> Self {
        self.label_mode = mode;
        self
    }

    /// Keep one side of a seeded train/validation split: `fraction` (in `(0, 1)`) of the files
    /// go to validation. Build both subsets with the same [`seed`](Self::seed).
    pub fn validation_split(mut self, fraction: f64, subset: Subset) -> Self {
        self.split = Some((fraction, subset));
        self
    }

    /// Seed of the split's shuffle (default 0). Only used with
    /// [`validation_split`](Self::validation_split); batch order is the loader's business.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Keep decoded, resized images in memory after their first use, so later epochs do not
    /// decode again (default off). Costs `3 * H * W * 4` bytes per image.
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }

    /// Skip images that cannot be read or decoded instead of failing (default off: such an
    /// image is an error naming the file). Skipping decodes every image once while building
    /// (in parallel; kept in memory when [`cache`](Self::cache) is on), so that the dataset's
    /// size is known up front; see [`ImageFolder::num_skipped`] and [`ImageFolder::skipped`].
    pub fn skip_invalid(mut self, skip: bool) -> Self {
        self.skip_invalid = skip;
        self
    }

    /// Use these classes, in this order, instead of all sub-folders sorted by name (Keras
    /// `class_names`). Each must be a sub-folder of the root.
    pub fn class_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.class_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Lists the files, applies the split and (when skipping invalid images) validates them.
    ///
    /// Errors: the root is missing or not a folder; it has no class sub-folders; no image
    /// files are found; a named class folder is missing; the split fraction is not in `(0, 1)`
    /// or leaves a subset empty; the image size is zero.
    pub fn build(self) -> Result<ImageFolder> {
        let root = &self.root;
        if self.height == 0 || self.width == 0 {
            bail!(
                "image folder {}: image size must be positive, got {}x{}",
                root.display(),
                self.height,
                self.width
            );
        }
        if !root.exists() {
            bail!("image folder {}: no such folder", root.display());
        }
        if !root.is_dir() {
            bail!("image folder {}: not a folder", root.display());
        }
        let mut sub_folders = Vec::new();
        for entry in read_dir(root)? {
            if entry.is_dir() {
                let name = entry
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                sub_folders.push(name);
            }
        }
        sub_folders.sort();
        let class_names = match self.class_names {
            Some(names) => {
                for name in &names {
                    if !sub_folders.contains(name) {
                        bail!(
                            "image folder {}: class `{name}` has no sub-folder (found: {:?})",
                            root.display(),
                            sub_folders
                        );
                    }
                }
                names
            }
            None => sub_folders,
        };
        if class_names.is_empty() {
            bail!(
                "image folder {}: no class sub-folders (expected one sub-folder of images per class, e.g. {0}/cats/*.jpg)",
                root.display()
            );
        }
        let mut files = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let mut found = Vec::new();
            collect_images(&root.join(class), &mut found)?;
            found.sort();
            files.extend(found.into_iter().map(|p| (p, label as u32)));
        }
        if files.is_empty() {
            bail!(
                "image folder {}: no images (expected .jpg, .jpeg or .png files in the class sub-folders {:?})",
                root.display(),
                class_names
            );
        }
        if let Some((fraction, subset)) = self.split {
            if !(fraction > 0.0 && fraction < 1.0) {
                bail!(
                    "image folder {}: validation_split must be in (0, 1), got {fraction}",
                    root.display()
                );
            }
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            shuffle_in_place(&mut files, &mut rng);
            let n_val = (fraction * files.len() as f64) as usize;
            let n_train = files.len() - n_val;
            files = match subset {
                Subset::Training => files[..n_train].to_vec(),
                Subset::Validation => files[n_train..].to_vec(),
            };
            if files.is_empty() {
                bail!(
                    "image folder {}: validation_split {fraction} leaves the {subset:?} subset empty",
                    root.display()
                );
            }
        }
        if self.label_mode == LabelMode::Binary && class_names.len() != 2 {
            bail!(
                "image folder {}: label_mode Binary needs exactly 2 classes, found {}: {:?}",
                root.display(),
                class_names.len(),
                class_names
            );
        }
        let (paths, labels): (Vec<PathBuf>, Vec<u32>) = files.into_iter().unzip();
        let mut folder = ImageFolder {
            root: self.root.clone(),
            class_names,
            cache: (0..paths.len()).map(|_| OnceLock::new()).collect(),
            paths,
            labels,
            height: self.height,
            width: self.width,
            caching: self.cache,
            skipped: Vec::new(),
            label_mode: self.label_mode,
        };
        if self.skip_invalid {
            folder.drop_invalid()?;
        }
        Ok(folder)
    }
}

/// A labelled image dataset read from one sub-folder per class (see the [module
/// docs](self) for the exact semantics). Implements [`Dataset`], so a
/// [`DataLoader`](super::DataLoader) batches it.
///
/// # Shapes
/// One example is `[3, H, W]` `f32` in `0..=255`; its label is a `u32` class index. Batches
/// from [`gather`](Dataset::gather) have targets `[B]` `u32`, or as set by
/// [`label_mode`](ImageFolderBuilder::label_mode).
#[derive(Debug)]
pub struct ImageFolder {
    root: PathBuf,
    class_names: Vec<String>,
    paths: Vec<PathBuf>,
    labels: Vec<u32>,
    height: usize,
    width: usize,
    caching: bool,
    cache: Vec<OnceLock<Vec<f32>>>,
    skipped: Vec<(PathBuf, String)>,
    label_mode: LabelMode,
}

impl ImageFolder {
    /// Starts configuring a dataset read from `root`, resized to `height x width`.
    pub fn builder(root: impl AsRef<Path>, height: usize, width: usize) -> ImageFolderBuilder {
        ImageFolderBuilder {
            root: root.as_ref().to_path_buf(),
            height,
            width,
            split: None,
            seed: 0,
            cache: false,
            skip_invalid: false,
            class_names: None,
            label_mode: LabelMode::Int,
        }
    }

    /// All images under `root`, resized to `height x width`, with default options.
    pub fn open(root: impl AsRef<Path>, height: usize, width: usize) -> Result<Self> {
        Self::builder(root, height, width).build()
    }

    /// The folder this dataset was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names; label `i` is `class_names()[i]`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of images (after the split and after skipping invalid ones).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no images (never true for a successfully built folder).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The output size `(H, W)`.
    pub fn image_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The file of example `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.paths[index]
    }

    /// All files, in example order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// How batch targets encode labels.
    pub fn label_mode(&self) -> LabelMode {
        self.label_mode
    }

    /// All labels (class indices), in example order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of images skipped as unreadable (only with
    /// [`skip_invalid`](ImageFolderBuilder::skip_invalid)).
    pub fn num_skipped(&self) -> usize {
        self.skipped.len()
    }

    /// The skipped files and why each failed.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// Number of images currently held decoded in the cache.
    pub fn num_cached(&self) -> usize {
        self.cache.iter().filter(|c| c.get().is_some()).count()
    }

    /// Decodes (or fetches from the cache) example `index` as CHW `f32` data, length
    /// `3 * H * W`.
    pub fn image_data(&self, index: usize) -> Result<Vec<f32>> {
        if let Some(data) = self.cache[index].get() {
            return Ok(data.clone());
        }
        let data = load_image(&self.paths[index], self.height, self.width)?;
        if self.caching {
            let _ = self.cache[index].set(data.clone());
        }
        Ok(data)
    }

    /// Example `index` as a tensor.
    ///
    /// # Shapes
    /// Returns `[3, H, W]` `f32` on the CPU.
    pub fn image(&self, index: usize) -> Result<Tensor> {
        Tensor::from_vec(
            self.image_data(index)?,
            (3, self.height, self.width),
            &Device::Cpu,
        )
    }

    /// Decodes every image once; drops those that fail, recording why.
    fn drop_invalid(&mut self) -> Result<()> {
        let (height, width, caching) = (self.height, self.width, self.caching);
        let results: Vec<std::result::Result<Vec<f32>, String>> = self
            .paths
            .par_iter()
            .map(|p| load_image(p, height, width).map_err(|e| e.to_string()))
            .collect();
        let mut paths = Vec::with_capacity(self.paths.len());
        let mut labels = Vec::with_capacity(self.paths.len());
        let mut cache = Vec::with_capacity(self.paths.len());
        for ((path, label), result) in self.paths.drain(..).zip(self.labels.drain(..)).zip(results)
        {
            match result {
                Ok(data) => {
                    let cell = OnceLock::new();
                    if caching {
                        let _ = cell.set(data);
                    }
                    paths.push(path);
                    labels.push(label);
                    cache.push(cell);
                }
                Err(why) => self.skipped.push((path, why)),
            }
        }
        if paths.is_empty() {
            bail!(
                "image folder {}: every one of the {} images failed to decode (first: {})",
                self.root.display(),
                self.skipped.len(),
                self.skipped[0].1
            );
        }
        self.paths = paths;
        self.labels = labels;
        self.cache = cache;
        Ok(())
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn example_shape(&self) -> Vec<usize> {
        vec![3, self.height, self.width]
    }

    fn gather(&self, indices: &[usize]) -> Result<Batch> {
        let per = 3 * self.height * self.width;
        let mut data = vec![0f32; indices.len() * per];
        data.par_chunks_mut(per)
            .zip(indices.par_iter())
            .try_for_each(|(out, &i)| -> Result<()> {
                if let Some(cached) = self.cache[i].get() {
                    out.copy_from_slice(cached);
                    return Ok(());
                }
                let image = load_image(&self.paths[i], self.height, self.width)?;
                out.copy_from_slice(&image);
                if self.caching {
                    let _ = self.cache[i].set(image);
                }
                Ok(())
            })?;
        let labels: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
        let n = indices.len();
        let targets = match self.label_mode {
            LabelMode::Int => Tensor::from_vec(labels, n, &Device::Cpu)?,
            LabelMode::Binary => Tensor::from_vec(
                labels.iter().map(|&l| l as f32).collect::<Vec<_>>(),
                (n, 1),
                &Device::Cpu,
            )?,
            LabelMode::Categorical => {
                let k = self.class_names.len();
                let mut one_hot = vec![0f32; n * k];
                for (row, &l) in labels.iter().enumerate() {
                    one_hot[row * k + l as usize] = 1.0;
                }
                Tensor::from_vec(one_hot, (n, k), &Device::Cpu)?
            }
        };
        Ok(Batch {
            inputs: Tensor::from_vec(data, (n, 3, self.height, self.width), &Device::Cpu)?,
            targets,
        })
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Msg(format!("image folder {}: cannot list: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| Error::Msg(format!("image folder {}: cannot list: {e}", dir.display())))?;
        out.push(entry.path());
    }
    Ok(out)
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in read_dir(dir)? {
        if path.is_dir() {
            // Like Keras (`follow_links=False`): no descent into linked folders (no cycles).
            if !path.is_symlink() {
                collect_images(&path, out)?;
            }
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `path` ends in `.jpg`, `.jpeg` or `.png` (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Reads and decodes one image file to RGB, then resizes it to `height x width`.
///
/// # Shapes
/// Returns CHW `f32` data in `0..=255`, length `3 * height * width`.
///
/// Errors name the file: unreadable, unknown format, or corrupt data.
pub fn load_image(path: &Path, height: usize, width: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Msg(format!("cannot read image {}: {e}", path.display())))?;
    let image = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Msg(format!("cannot read image {}: {e}", path.display())))?
        .decode()
        .map_err(|e| Error::Msg(format!("cannot decode image {}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        bail!("cannot decode image {}: it has no pixels", path.display());
    }
    Ok(resize_bilinear_rgb(
        image.as_raw(),
        h as usize,
        w as usize,
        height,
        width,
    ))
}

/// TensorFlow's bilinear resize (half-pixel centres, no antialiasing) of interleaved RGB
/// `u8` pixels to CHW `f32`.
///
/// # Shapes
/// `src` is HWC `[in_h, in_w, 3]`; returns CHW `[3, out_h, out_w]` flattened.
pub fn resize_bilinear_rgb(
    src: &[u8],
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let ys = interpolation_weights(in_h, out_h);
    let xs = interpolation_weights(in_w, out_w);
    let plane = out_h * out_w;
    let mut out = vec![0f32; 3 * plane];
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row0 = &src[y0 * in_w * 3..(y0 + 1) * in_w * 3];
        let row1 = &src[y1 * in_w * 3..(y1 + 1) * in_w * 3];
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let tl = row0[x0 * 3 + c] as f32;
                let tr = row0[x1 * 3 + c] as f32;
                let bl = row1[x0 * 3 + c] as f32;
                let br = row1[x1 * 3 + c] as f32;
                let top = tl + (tr - tl) * fx;
                let bottom = bl + (br - bl) * fx;
                out[c * plane + oy * out_w + ox] = top + (bottom - top) * fy;
            }
        }
    }
    out
}

/// `(lower, upper, lerp)` source indices for each output index, as in TensorFlow's
/// `compute_interpolation_weights` with half-pixel centres.
pub(crate) fn interpolation_weights(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|o| {
            let x = (o as f64 + 0.5) * scale - 0.5;
            let floor = x.floor();
            let lower = (floor.max(0.0) as usize).min(in_size - 1);
            let upper = (x.ceil().max(0.0) as usize).min(in_size - 1);
            (lower, upper, (x - floor) as f32)
        })
        .collect()
}
