//! An image-folder dataset with Keras `image_dataset_from_directory` semantics.
//!
//! ```text
//! root/
//!   cats/  cat.0.jpg  cat.1.jpg ...      -> label 0
//!   dogs/  dog.0.jpg  dog.1.png ...      -> label 1
//! ```
//!
//! - Class names are the sorted names of the sub-folders of `root`; an example's label is its
//!   class's index (`u32`). Files directly in `root` are ignored, as in Keras. Hidden entries
//!   (names starting with `.`, such as `.ipynb_checkpoints/` or macOS `._x.jpg` files) are
//!   ignored everywhere, as Keras ignores hidden class folders. Folder names are handled as
//!   `OsStr`, so a name that is not UTF-8 works ([`ImageFolder::class_names`] shows it
//!   lossily, [`ImageFolder::class_folders`] exactly).
//! - Every class folder must hold at least one image: an empty one is an error naming it.
//! - Files are found recursively under each class folder (sorted by path; linked sub-folders
//!   inside a class folder are not entered, as Keras' `follow_links=False`) and kept when
//!   their extension is `jpg`, `jpeg` or `png` (any case); other files are ignored. Only
//!   regular files (or links to them) are read: a FIFO or device with an image extension is an
//!   error naming it (or skipped with [`skip_invalid`](ImageFolderBuilder::skip_invalid)).
//!   The content decides the decoder, so a PNG named `.jpg` still decodes.
//! - Each image is decoded to RGB (grey is replicated, alpha dropped), resized to the model's
//!   input `(H, W)` with bilinear interpolation (half-pixel centres, no antialiasing: exactly
//!   TensorFlow's `tf.image.resize(..., "bilinear")`, which Keras uses), and laid out CHW as
//!   `f32` values in `0..=255` (the model rescales). A truncated or header-only JPEG is an
//!   error naming the file, not a grey-filled picture (see [`check_jpeg_complete`](super::check_jpeg_complete)).
//! - An optional validation split shuffles the whole file list with the seed, then keeps the
//!   last `floor(fraction * n)` files for [`Subset::Validation`] and the rest for
//!   [`Subset::Training`], so the two subsets built with the same seed are disjoint and
//!   together cover every file.
//! - Splits kept in separate folders (`train/`, `validation/`, `test/`) are opened together
//!   with [`ImageFolderBuilder::build_splits`], which checks that each has the first split's
//!   class folders, in the same order (else one split's label 0 is another's label 1). A
//!   split built alone can be checked with [`ImageFolderBuilder::classes_of`].
//! - [`ImageFolder::verify`] decodes every image up front, so a bad file fails before
//!   training rather than at the first epoch that reaches it;
//!   [`ImageFolder::check_classes_fit`] checks the class count against the loss and the
//!   model's output.
//!
//! ```no_run
//! use convnet_runtime::data::{DataLoader, ImageFolder};
//! use convnet_runtime::loss::Loss;
//! # fn main() -> candle_core::Result<()> {
//! let [train, validation, test] = ImageFolder::builder("data/cats_vs_dogs", 180, 180)
//!     .cache(true)
//!     .build_splits(["train", "validation", "test"])?;
//! train.check_classes_fit(&Loss::BinaryCrossEntropy, &[1])?;
//! for split in [&train, &validation, &test] {
//!     split.verify()?; // decodes (and caches) every image now
//!     println!("{}: {:?} {:?}", split.root().display(), split.class_names(), split.class_counts());
//! }
//! let loader = DataLoader::new(train, 32).shuffle(true).seed(1337);
//! # Ok(()) }
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::batch::Batch;
use super::decode::{decode_file, not_regular};
use super::loader::{shuffle_in_place, Dataset};
use crate::error::Error;
use crate::loss::Loss;

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

/// The class folders another split was built with, which this one must match.
#[derive(Debug, Clone)]
struct ClassReference {
    root: PathBuf,
    classes: Vec<OsString>,
}

/// Options for [`ImageFolder`]; create with [`ImageFolder::builder`], finish with
/// [`ImageFolderBuilder::build`] (one folder) or [`ImageFolderBuilder::build_splits`]
/// (several split folders with the same classes).
#[derive(Debug, Clone)]
pub struct ImageFolderBuilder {
    root: PathBuf,
    height: usize,
    width: usize,
    split: Option<(f64, Subset)>,
    seed: u64,
    cache: bool,
    skip_invalid: bool,
    class_names: Option<Vec<OsString>>,
    label_mode: LabelMode,
    reference: Option<ClassReference>,
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

    /// Skip images that cannot be read or decoded (corrupt, truncated, not a regular file)
    /// instead of failing (default off: such an image is an error naming the file). Skipping
    /// decodes every image once while building (in parallel; kept in memory when
    /// [`cache`](Self::cache) is on), so that the dataset's size is known up front; see
    /// [`ImageFolder::num_skipped`] and [`ImageFolder::skipped`].
    pub fn skip_invalid(mut self, skip: bool) -> Self {
        self.skip_invalid = skip;
        self
    }

    /// Use these classes, in this order, instead of all sub-folders sorted by name (Keras
    /// `class_names`). Each must be a sub-folder of the root.
    pub fn class_names<S: AsRef<OsStr>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.class_names = Some(
            names
                .into_iter()
                .map(|n| n.as_ref().to_os_string())
                .collect(),
        );
        self
    }

    /// Require the class folders of `reference` (typically the training split), in its
    /// order: building fails, naming both folders and both class lists, when this folder's
    /// classes differ. Classes chosen with [`class_names`](Self::class_names) on the
    /// reference carry over unless set here.
    pub fn classes_of(mut self, reference: &ImageFolder) -> Self {
        if self.class_names.is_none() && reference.explicit_classes {
            self.class_names = Some(reference.class_folders.clone());
        }
        self.reference = Some(ClassReference {
            root: reference.root.clone(),
            classes: reference.class_folders.clone(),
        });
        self
    }

    /// Builds one dataset per split folder under the root (e.g. `["train", "validation",
    /// "test"]`), each with these options. The first split's class folders are the reference:
    /// every other split must have the same ones in the same order (see
    /// [`classes_of`](Self::classes_of)), so that a label means the same class in all of them.
    ///
    /// Errors: as [`build`](Self::build) for each split; a split whose classes differ from the
    /// first's; no split names; a [`validation_split`](Self::validation_split) (the splits
    /// are folders here).
    pub fn build_splits<const N: usize>(
        self,
        splits: [impl AsRef<Path>; N],
    ) -> Result<[ImageFolder; N]> {
        if N == 0 {
            return Err(Error::invalid("splits", "name at least one split folder").into());
        }
        if self.split.is_some() {
            return Err(Error::invalid(
                "validation_split",
                format!(
                    "build_splits opens split folders under {}; a validation_split does not combine with it",
                    self.root.display()
                ),
            )
            .into());
        }
        let mut built: Vec<ImageFolder> = Vec::with_capacity(N);
        for split in splits {
            let mut builder = self.clone();
            builder.root = self.root.join(split);
            if let Some(first) = built.first() {
                builder = builder.classes_of(first);
            }
            built.push(builder.build()?);
        }
        Ok(built
            .try_into()
            .unwrap_or_else(|_| unreachable!("one folder per split")))
    }

    /// Lists the files, applies the split and (when skipping invalid images) validates them.
    ///
    /// Errors ([`Error::Data`] naming the folder or file, unless noted): the root is missing
    /// or not a folder; it has no class sub-folders; a named class folder is missing; the
    /// classes differ from those required by [`classes_of`](Self::classes_of); no image files
    /// are found; a class folder holds no images (or, when skipping, none that decode); an
    /// image file is not a regular file (unless skipping); the split fraction is not in
    /// `(0, 1)` or leaves a subset empty; the image size is zero
    /// ([`Error::InvalidArgument`]); [`LabelMode::Binary`] without exactly two classes.
    pub fn build(self) -> Result<ImageFolder> {
        let root = &self.root;
        if self.height == 0 || self.width == 0 {
            return Err(Error::invalid(
                "image size",
                format!(
                    "must be positive, got {}x{} for image folder {}",
                    self.height,
                    self.width,
                    root.display()
                ),
            )
            .into());
        }
        let metadata = std::fs::metadata(root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::data(root, "no such folder"),
            _ => Error::io("open image folder", root, e),
        })?;
        if !metadata.is_dir() {
            return Err(Error::data(
                root,
                "not a folder (expected a folder of class sub-folders)",
            )
            .into());
        }
        let class_folders = match &self.class_names {
            Some(names) => {
                for name in names {
                    if !root.join(name).is_dir() {
                        return Err(Error::data(
                            root,
                            format!(
                                "class `{}` has no sub-folder (found: {:?})",
                                name.to_string_lossy(),
                                display_names(&list_class_folders(root)?)
                            ),
                        )
                        .into());
                    }
                }
                names.clone()
            }
            None => list_class_folders(root)?,
        };
        if class_folders.is_empty() {
            return Err(Error::data(
                root,
                format!(
                    "no class sub-folders (expected one sub-folder of images per class, e.g. {}/cats/*.jpg)",
                    root.display()
                ),
            )
            .into());
        }
        if let Some(reference) = &self.reference {
            check_same_classes(root, &class_folders, &reference.root, &reference.classes)?;
        }
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let mut per_class = Vec::with_capacity(class_folders.len());
        for (label, class) in class_folders.iter().enumerate() {
            let mut found = Vec::new();
            let mut special = Vec::new();
            collect_images(&root.join(class), &mut found, &mut special)?;
            if let Some((path, reason)) = special.first() {
                if !self.skip_invalid {
                    return Err(Error::data(path, reason.clone()).into());
                }
            }
            skipped.extend(special);
            found.sort();
            per_class.push(found.len());
            files.extend(found.into_iter().map(|p| (p, label as u32)));
        }
        let names = display_names(&class_folders);
        if files.is_empty() {
            return Err(Error::data(
                root,
                format!(
                    "no images (expected .jpg, .jpeg or .png files in the class sub-folders {names:?})"
                ),
            )
            .into());
        }
        if let Some(empty) = per_class.iter().position(|&n| n == 0) {
            return Err(Error::data(
                root.join(&class_folders[empty]),
                format!(
                    "class folder `{}` has no images (expected .jpg, .jpeg or .png files; classes: {names:?}); remove it or add its images",
                    names[empty]
                ),
            )
            .into());
        }
        if let Some((fraction, subset)) = self.split {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(Error::invalid(
                    "validation_split",
                    format!(
                        "must be in (0, 1), got {fraction} for image folder {}",
                        root.display()
                    ),
                )
                .into());
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
                return Err(Error::data(
                    root,
                    format!("validation_split {fraction} leaves the {subset:?} subset empty"),
                )
                .into());
            }
        }
        if self.label_mode == LabelMode::Binary && class_folders.len() != 2 {
            return Err(Error::data(
                root,
                format!(
                    "label_mode Binary needs exactly 2 classes, found {}: {names:?}",
                    class_folders.len()
                ),
            )
            .into());
        }
        let (paths, labels): (Vec<PathBuf>, Vec<u32>) = files.into_iter().unzip();
        let mut folder = ImageFolder {
            root: self.root.clone(),
            class_names: names,
            class_folders,
            explicit_classes: self.class_names.is_some(),
            cache: (0..paths.len()).map(|_| OnceLock::new()).collect(),
            paths,
            labels,
            height: self.height,
            width: self.width,
            caching: self.cache,
            skipped,
            label_mode: self.label_mode,
        };
        if self.skip_invalid {
            folder.drop_invalid()?;
            if self.split.is_none() {
                folder.check_no_class_emptied()?;
            }
        }
        Ok(folder)
    }
}

/// A labelled image dataset read from one sub-folder per class (see the [`data`](crate::data)
/// module docs for the exact semantics). Implements [`Dataset`], so a
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
    class_folders: Vec<OsString>,
    explicit_classes: bool,
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
            reference: None,
        }
    }

    /// All images under `root`, resized to `height x width`, with default options.
    pub fn open(root: impl AsRef<Path>, height: usize, width: usize) -> Result<Self> {
        Self::builder(root, height, width).build()
    }

    /// The split folders `root/<split>` with default options, their classes checked against
    /// the first split's (see [`ImageFolderBuilder::build_splits`]).
    pub fn splits<const N: usize>(
        root: impl AsRef<Path>,
        splits: [impl AsRef<Path>; N],
        height: usize,
        width: usize,
    ) -> Result<[Self; N]> {
        Self::builder(root, height, width).build_splits(splits)
    }

    /// The folder this dataset was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names; label `i` is `class_names()[i]` (a folder name that is not UTF-8 is
    /// shown lossily; [`class_folders`](Self::class_folders) has it exactly).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The class folders' names exactly as on disk; label `i` is `class_folders()[i]`.
    pub fn class_folders(&self) -> &[OsString] {
        &self.class_folders
    }

    /// Number of images per class (after the split and after skipping invalid ones);
    /// `class_counts()[i]` counts label `i`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_folders.len()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Checks that `other` (e.g. a validation split built on its own) has this dataset's
    /// class folders in the same order; the error names both folders and both lists.
    pub fn check_same_classes(&self, other: &ImageFolder) -> Result<()> {
        check_same_classes(
            &other.root,
            &other.class_folders,
            &self.root,
            &self.class_folders,
        )
        .map_err(Into::into)
    }

    /// Checks that the classes fit `loss` and a model whose output shape (per example) is
    /// `outputs` (e.g. `M::OUTPUT_SHAPE`):
    /// - [`Loss::BinaryCrossEntropy`]: exactly 2 classes, one output, labels as
    ///   [`LabelMode::Int`] or [`LabelMode::Binary`];
    /// - [`Loss::SparseCategoricalCrossEntropy`]: at least 2 classes, one output per class,
    ///   labels as [`LabelMode::Int`];
    /// - [`Loss::CategoricalCrossEntropy`]: at least 2 classes, one output per class, labels
    ///   as [`LabelMode::Categorical`] (one-hot);
    /// - [`Loss::MeanSquaredError`]: one output per class with [`LabelMode::Categorical`],
    ///   one output otherwise.
    ///
    /// The error ([`Error::Data`] naming this folder) lists the classes found.
    pub fn check_classes_fit(&self, loss: &Loss, outputs: &[usize]) -> Result<()> {
        let classes = self.class_folders.len();
        let out: usize = outputs.iter().product();
        let mode = self.label_mode;
        let problem = match loss {
            Loss::BinaryCrossEntropy if classes != 2 => Some(format!(
                "binary cross-entropy needs exactly 2 classes, found {classes}"
            )),
            Loss::BinaryCrossEntropy if out != 1 => Some(format!(
                "binary cross-entropy needs a model with 1 output, this one has {outputs:?}"
            )),
            Loss::BinaryCrossEntropy if mode == LabelMode::Categorical => Some(
                "binary cross-entropy takes Int or Binary labels, not Categorical (one-hot)".into(),
            ),
            Loss::SparseCategoricalCrossEntropy | Loss::CategoricalCrossEntropy
                if classes < 2 =>
            {
                Some(format!(
                    "categorical cross-entropy needs at least 2 classes, found {classes}"
                ))
            }
            Loss::SparseCategoricalCrossEntropy | Loss::CategoricalCrossEntropy
                if out != classes =>
            {
                Some(format!(
                    "categorical cross-entropy needs one model output per class ({classes}), the model has {outputs:?}"
                ))
            }
            Loss::SparseCategoricalCrossEntropy if mode != LabelMode::Int => Some(format!(
                "sparse categorical cross-entropy takes Int labels (class indices), not {mode:?}"
            )),
            Loss::CategoricalCrossEntropy if mode != LabelMode::Categorical => Some(format!(
                "categorical cross-entropy takes Categorical labels (one-hot), not {mode:?}; use sparse categorical cross-entropy for Int labels"
            )),
            Loss::MeanSquaredError if mode == LabelMode::Categorical && out != classes => {
                Some(format!(
                    "mean squared error on one-hot labels needs one model output per class ({classes}), the model has {outputs:?}"
                ))
            }
            Loss::MeanSquaredError if mode != LabelMode::Categorical && out != 1 => Some(format!(
                "mean squared error on {mode:?} labels needs a model with 1 output, this one has {outputs:?}"
            )),
            _ => None,
        };
        match problem {
            Some(problem) => Err(Error::data(
                &self.root,
                format!("{problem} (classes: {:?})", self.class_names),
            )
            .into()),
            None => Ok(()),
        }
    }

    /// Decodes every image once, in parallel, so that an unreadable, corrupt or truncated
    /// file fails now rather than when an epoch reaches it; decoded images stay in the cache
    /// when [`cache`](ImageFolderBuilder::cache) is on (so this is the cache build).
    ///
    /// Errors: [`Error::Data`] (or [`Error::Io`]) naming the first bad file in dataset order,
    /// with how many others failed.
    pub fn verify(&self) -> Result<()> {
        let mut failures: Vec<(usize, Error)> = (0..self.paths.len())
            .into_par_iter()
            .filter_map(|i| self.decode_into_cache(i).err().map(|e| (i, e)))
            .collect();
        failures.sort_by_key(|(i, _)| *i);
        let more = failures.len().saturating_sub(1);
        let Some((first, err)) = failures.into_iter().next() else {
            return Ok(());
        };
        if more == 0 {
            return Err(err.into());
        }
        Err(Error::data(
            &self.paths[first],
            format!(
                "{} (and {more} more unreadable images under {}; skip them with skip_invalid)",
                reason_of(&err),
                self.root.display()
            ),
        )
        .into())
    }

    /// Decodes example `index` unless it is cached, keeping it when caching is on.
    fn decode_into_cache(&self, index: usize) -> std::result::Result<(), Error> {
        if self.cache[index].get().is_some() {
            return Ok(());
        }
        let data = decode_file(&self.paths[index], self.height, self.width)?;
        if self.caching {
            let _ = self.cache[index].set(data);
        }
        Ok(())
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
        let data = decode_file(&self.paths[index], self.height, self.width)?;
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
            .map(|p| decode_file(p, height, width).map_err(|e| reason_of(&e)))
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
            return Err(Error::data(
                &self.root,
                format!(
                    "every one of the {} images failed to decode (first: {}: {})",
                    self.skipped.len(),
                    self.skipped[0].0.display(),
                    self.skipped[0].1
                ),
            )
            .into());
        }
        self.paths = paths;
        self.labels = labels;
        self.cache = cache;
        Ok(())
    }

    /// After skipping invalid images: a class left without images is an error naming it.
    fn check_no_class_emptied(&self) -> Result<()> {
        let Some(empty) = self.class_counts().iter().position(|&n| n == 0) else {
            return Ok(());
        };
        let folder = self.root.join(&self.class_folders[empty]);
        let failed: Vec<&(PathBuf, String)> = self
            .skipped
            .iter()
            .filter(|(p, _)| p.starts_with(&folder))
            .collect();
        let first = failed
            .first()
            .map(|(p, why)| format!(" (first: {}: {why})", p.display()))
            .unwrap_or_default();
        Err(Error::data(
            &folder,
            format!(
                "every one of the {} images of class `{}` was skipped as invalid{first}",
                failed.len(),
                self.class_names[empty]
            ),
        )
        .into())
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
                let image = decode_file(&self.paths[i], self.height, self.width)?;
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

/// The non-hidden sub-folders of `root` (links to folders included), sorted by name.
fn list_class_folders(root: &Path) -> std::result::Result<Vec<OsString>, Error> {
    let mut folders = Vec::new();
    for (path, name) in read_dir(root)? {
        if !is_hidden(&name) && path.is_dir() {
            folders.push(name);
        }
    }
    folders.sort();
    Ok(folders)
}

/// Class folder names for messages (lossy where not UTF-8).
fn display_names(folders: &[OsString]) -> Vec<String> {
    folders
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect()
}

/// The error when split `root`'s classes differ from the reference split's.
fn check_same_classes(
    root: &Path,
    classes: &[OsString],
    reference_root: &Path,
    reference: &[OsString],
) -> std::result::Result<(), Error> {
    if classes == reference {
        return Ok(());
    }
    let (ours, theirs) = (display_names(classes), display_names(reference));
    let how = if classes.len() == reference.len() && classes.iter().all(|c| reference.contains(c)) {
        "the same classes in another order"
    } else {
        "different classes"
    };
    Err(Error::data(
        root,
        format!(
            "class folders {ours:?} differ from {theirs:?} of {} ({how}): every split must have the training split's class folders, in its order, or a label would mean different classes in different splits",
            reference_root.display()
        ),
    ))
}

/// Whether a file or folder name starts with `.` (hidden, ignored as in Keras).
fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// The entries of `dir` as `(path, name)`.
fn read_dir(dir: &Path) -> std::result::Result<Vec<(PathBuf, OsString)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list image folder", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list image folder", dir, e))?;
        out.push((entry.path(), entry.file_name()));
    }
    Ok(out)
}

/// Image files under `dir` (recursively, hidden entries and linked folders skipped) into
/// `out`; image-named entries that are not regular files into `special` with the reason.
fn collect_images(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    special: &mut Vec<(PathBuf, String)>,
) -> std::result::Result<(), Error> {
    for (path, name) in read_dir(dir)? {
        if is_hidden(&name) {
            continue;
        }
        let own_type = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io("inspect", &path, e))?
            .file_type();
        if own_type.is_dir() {
            collect_images(&path, out, special)?;
            continue;
        }
        // A link is followed to see what it points at; links to folders are not entered
        // (Keras' `follow_links=False`: no cycles).
        let target = if own_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) => m.file_type(),
                Err(e) => {
                    if has_image_extension(&path) {
                        special.push((path, format!("cannot read the linked file: {e}")));
                    }
                    continue;
                }
            }
        } else {
            own_type
        };
        if !has_image_extension(&path) {
            continue;
        }
        match not_regular(&target) {
            None => out.push(path),
            Some(kind) => special.push((
                path,
                format!("not a regular file ({kind}); only regular image files are read"),
            )),
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

/// Why decoding a file failed, without the file's path (kept beside it).
fn reason_of(err: &Error) -> String {
    match err {
        Error::Data { reason, .. } => reason.clone(),
        Error::Io { action, source, .. } => format!("cannot {action}: {source}"),
        other => other.to_string(),
    }
}
