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
#![doc = include_str!("../docs/grammar.md")]

extern crate self as convnet;

pub mod zoo;

pub use convnet_macros::convnet;
pub use convnet_runtime::{
    checkpoint, data, error, freeze, grad_mode, init, interop, layers, loss, metrics, model, ops,
    optim, schedule, seed, train,
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
