//! The mini-Xception input sizes the examples compile in (the size is part of a model's
//! type), and [`with_mini_xception!`] to call a generic function with the one of a given size.
//!
//! Batch-norm moving statistics weigh each batch 0.1 (PyTorch's default) rather than Keras'
//! 0.01: with Keras' setting they lag the weights for the first dozen epochs, and evaluation
//! in a short run predicts a single class (measured: validation accuracy 0.50 through 6
//! epochs at 64x64).

convnet::mini_xception!(MiniXception64, 64, bn_momentum = 0.1);
convnet::mini_xception!(MiniXception96, 96, bn_momentum = 0.1);
convnet::mini_xception!(MiniXception128, 128, bn_momentum = 0.1);
convnet::mini_xception!(MiniXception180, 180, bn_momentum = 0.1);

/// The square input sizes compiled in.
pub const SIZES: [usize; 4] = [64, 96, 128, 180];

/// `with_mini_xception!(size, f(args...))` calls `f::<MiniXception{size}>(args...)`, or
/// returns an error naming the compiled-in sizes.
macro_rules! with_mini_xception {
    ($size:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $size {
            64 => $f::<models::MiniXception64>($($arg),*),
            96 => $f::<models::MiniXception96>($($arg),*),
            128 => $f::<models::MiniXception128>($($arg),*),
            180 => $f::<models::MiniXception180>($($arg),*),
            other => Err(convnet::error::Error::invalid(
                "image size",
                format!("{other} is not compiled in; choose one of {:?}", models::SIZES),
            )
            .into()),
        }
    };
}
pub(crate) use with_mini_xception;
