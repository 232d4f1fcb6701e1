//! Gradient recording on or off for the current thread, like PyTorch's `torch.no_grad()`.
//!
//! Candle records the autograd graph of every op with a tracked input (a `Var` or a tensor
//! computed from one); the graph keeps every intermediate activation alive until the output is
//! dropped. Inside [`no_grad`] the layers of this crate use detached parameters and generated
//! models detach their input, so nothing is recorded and each activation is freed as soon as
//! the next layer has consumed it: inference runs in the memory of its two largest
//! activations instead of all of them.

use candle_core::Tensor;
use std::cell::Cell;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with gradient recording off on this thread (restored afterwards, also on panic).
///
/// ```
/// use candle_core::{DType, Device, Var};
/// let w = Var::ones(3, DType::F32, &Device::Cpu)?;
/// let y = convnet_runtime::grad_mode::no_grad(|| {
///     (convnet_runtime::grad_mode::param(w.as_tensor()) * 2.0)
/// })?;
/// assert!(!y.track_op());
/// # candle_core::Result::Ok(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENABLED.with(|e| e.set(self.0));
        }
    }
    let _restore = Restore(ENABLED.with(|e| e.replace(false)));
    f()
}

/// Whether ops on this thread record gradients (false inside [`no_grad`]).
pub fn is_enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// `t` as a layer should use it: itself when recording gradients, else detached (an `Arc`
/// clone without the graph link; no copy).
pub fn param(t: &Tensor) -> Tensor {
    if is_enabled() {
        t.clone()
    } else {
        t.detach()
    }
}
