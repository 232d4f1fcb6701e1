//! Batching, seeded per-epoch shuffling, augmentation and device transfer over any
//! [`Dataset`].
//!
//! The order of epoch `e` is a function of `(seed, e)` only, so training resumed at epoch
//! `e` sees the same batches as an uninterrupted run. Augmentation draws from an RNG per
//! example derived from `(seed, epoch, example index)`, so results do not depend on the
//! batch size, the number of threads or the order batches are decoded in.
//!
//! ```no_run
//! use candle_core::Device;
//! use convnet_runtime::data::{Augment, Batches, DataLoader, ImageFolder};
//! # fn main() -> candle_core::Result<()> {
//! let images = ImageFolder::open("data/train", 180, 180)?;
//! let mut train = DataLoader::new(images, 32)
//!     .shuffle(true)
//!     .seed(42)
//!     .augment(Augment::new().flip_horizontal().rotation(0.1).zoom(0.2))
//!     .training(true)
//!     .device(Device::Cpu);
//! for batch in train.epoch(0) {
//!     let batch = batch?; // inputs [32, 3, 180, 180] f32, targets [32] u32
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;

use candle_core::{bail, DType, Device, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::augment::Augment;
use super::batch::{Batch, Batches};

/// A finite, indexable set of examples that a [`DataLoader`] batches.
///
/// Implementations must be cheap to call from several threads (`Sync`); decoding in
/// parallel inside [`gather`](Dataset::gather) is encouraged.
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one input example, e.g. `[3, H, W]`.
    fn example_shape(&self) -> Vec<usize>;

    /// The examples at `indices`, in that order, stacked into one batch on any device
    /// (the loader moves it).
    ///
    /// # Shapes
    /// `inputs` is `[indices.len(), ...example_shape]`, `targets` `[indices.len(), ...]`.
    fn gather(&self, indices: &[usize]) -> Result<Batch>;
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn example_shape(&self) -> Vec<usize> {
        (**self).example_shape()
    }
    fn gather(&self, indices: &[usize]) -> Result<Batch> {
        (**self).gather(indices)
    }
}

/// Batches a [`Dataset`] epoch by epoch: implements [`Batches`] for the training loop.
///
/// Defaults: no shuffling (dataset order), seed 0, last partial batch kept, CPU, no
/// preprocessing or augmentation, not training, no prefetching.
///
/// # Shapes
/// Each [`Batch`] has `inputs [B, ...example_shape]` (for images `[B, 3, H, W]` `f32`)
/// and `targets [B]` (`u32` class indices for image folders), with `B = batch_size` except
/// possibly the last batch.
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    device: Device,
    preprocess: Option<Augment>,
    augment: Option<Augment>,
    training: bool,
    prefetch: usize,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("drop_last", &self.drop_last)
            .field("device", &self.device)
            .field("preprocess", &self.preprocess)
            .field("augment", &self.augment)
            .field("training", &self.training)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

impl DataLoader {
    /// A loader over `dataset` with batches of `batch_size` examples (must be positive;
    /// a zero batch size is reported by [`Batches::epoch`] as an error).
    pub fn new(dataset: impl Dataset + 'static, batch_size: usize) -> Self {
        Self::from_arc(Arc::new(dataset), batch_size)
    }

    /// A loader over a shared dataset (e.g. the same cached images for two loaders).
    pub fn from_arc(dataset: Arc<dyn Dataset>, batch_size: usize) -> Self {
        Self {
            dataset,
            batch_size,
            shuffle: false,
            seed: 0,
            drop_last: false,
            device: Device::Cpu,
            preprocess: None,
            augment: None,
            training: false,
            prefetch: 0,
        }
    }

    /// Reshuffle every epoch (the order of epoch `e` depends only on `seed` and `e`).
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Seed for shuffling and augmentation.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drop the last batch when it is smaller than `batch_size`.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Device the batches are put on.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Transforms applied to the inputs whether training or not, before any augmentation
    /// (e.g. `Augment::new().normalize(&mean, &std)`). Inputs must be `[B, C, H, W]` `f32`.
    pub fn preprocess(mut self, preprocess: Augment) -> Self {
        self.preprocess = Some(preprocess);
        self
    }

    /// Augmentation applied to the inputs, only when the loader is [`training`](Self::training).
    /// Inputs must be `[B, C, H, W]` `f32`.
    pub fn augment(mut self, augment: Augment) -> Self {
        self.augment = Some(augment);
        self
    }

    /// Mark this loader as feeding training (augmentation on) or evaluation (off).
    pub fn training(mut self, training: bool) -> Self {
        self.training = training;
        self
    }

    /// Prepare up to `batches` batches ahead on a background thread (decoding, augmentation),
    /// overlapping data work with the training step; 0 (the default) loads each batch when
    /// it is asked for. Results are identical either way. The device transfer happens on the
    /// consuming thread.
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether augmentation applies (an augmentation is set and the loader is training).
    pub fn augments(&self) -> bool {
        self.training && self.augment.is_some()
    }

    /// The dataset indices of epoch `epoch`, in visiting order (before dropping a partial
    /// last batch): a permutation of `0..len` under the seed when shuffling, else identity.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(epoch as u64);
            shuffle_in_place(&mut order, &mut rng);
        }
        order
    }

    /// Loads the examples at `indices` as one batch of epoch `epoch` (augmented when
    /// training) on the loader's device.
    ///
    /// # Shapes
    /// `inputs [indices.len(), ...]`, `targets [indices.len(), ...]`.
    pub fn load(&self, epoch: usize, indices: &[usize]) -> Result<Batch> {
        let batch = self.transforms().load_cpu(epoch, indices)?;
        Ok(Batch {
            inputs: batch.inputs.to_device(&self.device)?,
            targets: batch.targets.to_device(&self.device)?,
        })
    }

    fn transforms(&self) -> Transforms {
        Transforms {
            dataset: self.dataset.clone(),
            preprocess: self.preprocess.clone(),
            augment: self.augment.clone().filter(|_| self.training),
            seed: self.seed,
        }
    }
}

/// What a batch goes through before the device transfer; owned, so a prefetch thread can
/// run it.
struct Transforms {
    dataset: Arc<dyn Dataset>,
    preprocess: Option<Augment>,
    augment: Option<Augment>,
    seed: u64,
}

impl Transforms {
    fn load_cpu(&self, epoch: usize, indices: &[usize]) -> Result<Batch> {
        let batch = self.dataset.gather(indices)?;
        let mut inputs = batch.inputs;
        for transform in [self.preprocess.as_ref(), self.augment.as_ref()]
            .into_iter()
            .flatten()
        {
            if inputs.dtype() != DType::F32 || inputs.rank() != 4 {
                bail!(
                    "DataLoader: preprocessing/augmentation needs image inputs [B, C, H, W] f32, got {:?} {:?}",
                    inputs.dims(),
                    inputs.dtype()
                );
            }
            inputs = transform.apply_batch(&inputs, self.seed, epoch, indices)?;
        }
        Ok(Batch {
            inputs,
            targets: batch.targets,
        })
    }
}

impl Batches for DataLoader {
    fn epoch(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        if self.batch_size == 0 {
            return Box::new(std::iter::once(Err(candle_core::Error::Msg(
                "DataLoader: batch_size must be positive, got 0".into(),
            ))));
        }
        let order = self.order(epoch);
        let num_batches = self.num_batches();
        let batch_size = self.batch_size;
        let transforms = self.transforms();
        // Batch `b` of the epoch, on the CPU.
        let load = move |b: usize| {
            let start = b * batch_size;
            let end = (start + batch_size).min(order.len());
            transforms.load_cpu(epoch, &order[start..end])
        };
        let device = self.device.clone();
        let to_device = move |batch: Result<Batch>| -> Result<Batch> {
            let batch = batch?;
            Ok(Batch {
                inputs: batch.inputs.to_device(&device)?,
                targets: batch.targets.to_device(&device)?,
            })
        };
        if self.prefetch == 0 {
            return Box::new((0..num_batches).map(move |b| to_device(load(b))));
        }
        // A worker thread prepares up to `prefetch` batches ahead; it stops after an error
        // or when the iterator is dropped (its next send fails).
        let (sender, receiver) = std::sync::mpsc::sync_channel(self.prefetch);
        std::thread::spawn(move || {
            for b in 0..num_batches {
                let batch = load(b);
                let failed = batch.is_err();
                if sender.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        Box::new(receiver.into_iter().map(to_device))
    }

    fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        match self.batch_size {
            0 => 0,
            b if self.drop_last => n / b,
            b => n.div_ceil(b),
        }
    }

    fn num_examples(&self) -> usize {
        let n = self.dataset.len();
        match self.batch_size {
            0 => 0,
            b if self.drop_last => n / b * b,
            _ => n,
        }
    }
}

/// Fisher-Yates shuffle driven by `rng` (kept here so the result never depends on a
/// library's choice of algorithm).
pub(crate) fn shuffle_in_place<T>(items: &mut [T], rng: &mut impl Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}
