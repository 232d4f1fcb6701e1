//! Convolutional networks written inline, checked at compile time, compiled to candle.
//!
//! ```
//! use convnet::prelude::*;
//!
//! convnet! {
//!     /// A small classifier.
//!     pub Tiny(3, 32, 32) -> (10) {
//!         conv2d(16, 3, padding = same), batch_norm, relu,
//!         max_pool2d(2),
//!         residual(project = auto) {
//!             separable_conv2d(32, 3, padding = same), relu,
//!         }
//!         global_avg_pool2d,
//!         linear(10),
//!     }
//! }
//!
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let model = Tiny::new(vb)?;
//! let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu)?;
//! assert_eq!(model.forward_t(&x, false)?.dims(), &[2, 10]);
//! assert_eq!(Tiny::OUTPUT_SHAPE, &[10]);
//! # Ok(()) }
//! ```
//!
//! # Guide
//!
//! - [`guide::grammar`]: the `convnet!` language, every layer and its shape rule;
//! - [`guide::architecture`]: how a description becomes candle code, and the runtime's parts;
//! - [`guide::recipe`]: the main job's recipe and its measured runs;
//! - [`guide::faults`]: every fault a user meets and what it does;
//! - [`guide::interop`]: PyTorch weights in and out, the zoo and torchvision, fine-tuning;
//! - [`guide::keras`]: loading Keras 3 weights into a `convnet!` model;
//! - [`guide::benchmarks`]: speed and memory against PyTorch and candle.
//!
//! The crates: [`convnet_macros`] (the `convnet!` entry), the runtime re-exported here
//! ([`data`], [`train`], [`checkpoint`], [`layers`], [`ops`], ...), and the model [`zoo`].

extern crate self as convnet;

pub mod zoo;

/// The guide pages of `docs/`, rendered here so that `cargo doc` shows them and their Rust
/// examples run as doc tests.
pub mod guide {
    #[doc = include_str!("../docs/grammar.md")]
    pub mod grammar {}
    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
    #[doc = include_str!("../docs/recipe.md")]
    pub mod recipe {}
    #[doc = include_str!("../docs/faults.md")]
    pub mod faults {}
    #[doc = include_str!("../docs/interop.md")]
    pub mod interop {}
    #[doc = include_str!("../docs/onnx.md")]
    pub mod onnx {}
    #[doc = include_str!("../docs/keras.md")]
    pub mod keras {}
    #[doc = include_str!("../docs/benchmarks.md")]
    pub mod benchmarks {}
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use convnet_macros::convnet;
pub use convnet_runtime::{
    checkpoint, data, error, freeze, grad_mode, init, interop, keras, layers, loss, metrics, model,
    onnx, ops, optim, schedule, seed, train,
};

/// Everything a model file needs: the macro, the model trait, and the candle types the
/// generated code's API uses. Not candle's one-parameter `Result`, which would shadow
/// `std`'s `Result<T, E>` in code that glob-imports the prelude: write
/// `candle_core::Result<T>` (or import it) for the models' `new` and `forward_t`.
pub mod prelude {
    pub use crate::convnet;
    pub use crate::grad_mode::no_grad;
    pub use crate::model::{Network, Summary};
    pub use candle_core::{DType, Device, Module, Tensor};
    pub use candle_nn::{ModuleT, VarBuilder, VarMap};
}

/// Checks a model's input and output shapes at compile time, in user code or tests:
/// `assert_shapes!(Model: (3, 180, 180) -> (1));` fails the build with a message naming the
/// model and the shape when it does not hold.
///
/// ```
/// use convnet::{assert_shapes, zoo::MiniXception};
/// assert_shapes!(MiniXception: (3, 180, 180) -> (1));
/// ```
#[macro_export]
macro_rules! assert_shapes {
    ($model:ty : ($($input:expr),+ $(,)?) -> ($($output:expr),+ $(,)?)) => {
        const _: () = {
            if !$crate::__private::runtime::model::shape_eq(<$model>::INPUT_SHAPE, &[$($input),+]) {
                ::core::panic!(::core::concat!(
                    "assert_shapes!: `", ::core::stringify!($model),
                    "` does not take input (", ::core::stringify!($($input),+), ")"
                ));
            }
            if !$crate::__private::runtime::model::shape_eq(<$model>::OUTPUT_SHAPE, &[$($output),+]) {
                ::core::panic!(::core::concat!(
                    "assert_shapes!: `", ::core::stringify!($model),
                    "` does not output (", ::core::stringify!($($output),+), ")"
                ));
            }
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use candle_core;
    pub use candle_nn;
    pub use convnet_runtime as runtime;
}
