//! convnet facade
extern crate self as convnet;
pub use convnet_macros::convnet;
#[doc(hidden)]
pub mod __private {
    pub use candle_core;
    pub use candle_nn;
    pub use convnet_runtime as runtime;
}
