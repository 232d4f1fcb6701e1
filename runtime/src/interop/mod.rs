//! Weights in and out of other frameworks: PyTorch's `torch.save` files and safetensors in
//! ([`load_pytorch`]), Keras 3's `.weights.h5` and `.keras` in ([`load_keras`]), safetensors
//! with PyTorch's names out ([`export_pytorch`]).
//!
//! A model's side is a [`ParamList`]: its variables with their shapes, in forward order (from
//! the model's `summary()`). A description written with the PyTorch module's paths as its
//! names (the grammar's "Naming the layers PyTorch's way", as the zoo's torchvision models
//! are) loads by name with [`Naming::by_name`]. A [`Naming`] says how the names relate to the
//! file's keys otherwise:
//! ordered regex [`Remap`] rules from our names to theirs, rules applied to the file's keys
//! first (e.g. strip DataParallel's `module.`), keys to ignore, and, for whatever names leave
//! unmatched, pairing by order (our forward order against the file's order, which `torch.save`
//! keeps) or against a given key list (another framework's keys in its order). Tensors whose
//! layouts differ only by unit dimensions (a linear layer's `[o, i]` against a 1x1
//! convolution's `[o, i, 1, 1]`, a layer scale's `(C)` against `(C, 1, 1)`) are reshaped;
//! `num_batches_tracked` is ignored. Batch-norm moving statistics load as they are: both
//! frameworks store a variance (they differ only in how training updates it, which each
//! `batch_norm`'s `variance =` argument sets).
//!
//! Nothing is modified before the whole file has been matched: the [`LoadReport`] lists every
//! missing, unexpected and mis-shaped tensor with both names and both shapes, and a load with
//! any of them is an [`crate::error::Error::CheckpointMismatch`] unless
//! [`LoadOptions::partial`] asks for a partial load.
//!
//! ```no_run
//! use convnet_runtime::interop::{load_pytorch, LoadOptions, Naming, ParamList, Remap};
//! # fn demo<M: convnet_runtime::model::Network>(varmap: &candle_nn::VarMap) -> candle_core::Result<()> {
//! let params = ParamList::of::<M>(varmap)?;
//! let naming = Naming::by_order().ignore("^fc\\.")?;
//! let report = load_pytorch(varmap, &params, "resnet18.pth", &naming, &LoadOptions::default())?;
//! println!("{report}");
//! # Ok(()) }
//! ```

mod export;
mod keras;
mod layout;
mod names;
mod params;
mod pytorch;
mod report;

pub use export::{export_pytorch, pytorch_names};
pub use keras::load_keras;
pub use layout::adapt;
pub use names::{Naming, Remap};
pub use params::ParamList;
pub use pytorch::{read_pytorch, SourceTensors, STATE_DICT_KEYS};
pub use report::{load_pytorch, load_tensors, LoadOptions, LoadReport, Matched};
