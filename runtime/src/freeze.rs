//! Fine-tuning: freezing variables by path prefix, and running a frozen part in inference
//! mode.
//!
//! A model built through [`freezing_var_builder`] holds its frozen weights as constants (the
//! variables' storage, shared, without gradient tracking): backpropagation does no work for
//! them or for anything computed from them alone, and [`trainable_vars`] leaves them out of
//! the optimizer, which so keeps no state for them. Loading weights into the `VarMap` after
//! building (e.g. [`crate::interop::load_pytorch`]) reaches the frozen layers too, since they
//! share the storage. Batch-norm moving statistics are never trainable; wrap a frozen part in
//! [`InferenceMode`] to keep its batch norms on their moving statistics while the rest trains.
//!
//! ```
//! use convnet_runtime::freeze::{is_frozen, Prefixes};
//! let frozen = Prefixes::new(["backbone"]);
//! assert!(is_frozen("backbone.conv1.weight", &frozen));
//! assert!(!is_frozen("backbone2.conv1.weight", &frozen));
//! assert!(!is_frozen("head.linear1.weight", &frozen));
//! ```

use crate::init::SeededInit;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, ModuleT, VarBuilder, VarMap};

/// Path prefixes of frozen variables: `block1` covers `block1.conv.weight` and `block1`, not
/// `block10.conv.weight`; the empty prefix covers everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefixes(Vec<String>);

impl Prefixes {
    /// The prefixes given.
    pub fn new<S: Into<String>>(prefixes: impl IntoIterator<Item = S>) -> Self {
        Self(prefixes.into_iter().map(Into::into).collect())
    }
}

/// Whether variable `name` lies under one of `prefixes`.
pub fn is_frozen(name: &str, prefixes: &Prefixes) -> bool {
    prefixes.0.iter().any(|p| {
        p.is_empty()
            || name == p
            || (name.starts_with(p.as_str()) && name.as_bytes().get(p.len()) == Some(&b'.'))
    })
}

/// A variable backend over a `VarMap` (new variables seeded as [`SeededInit`] does) that
/// hands out the variables under the frozen prefixes as constants sharing their storage.
/// Moving statistics (`running_*`) stay variables, so a batch norm that trains still
/// updates them.
pub struct Freezing {
    inner: SeededInit,
    frozen: Prefixes,
}

impl SimpleBackend for Freezing {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let t = self.inner.get(shape, name, init, dtype, device)?;
        let leaf = name.rsplit('.').next().unwrap_or(name);
        if is_frozen(name, &self.frozen) && !leaf.starts_with("running_") {
            Ok(t.detach())
        } else {
            Ok(t)
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.inner.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// A `VarBuilder` over `varmap` (new variables seeded by `seed`) whose variables under
/// `frozen` are constants: see [`Freezing`].
pub fn freezing_var_builder<'a>(
    varmap: &VarMap,
    seed: u64,
    frozen: Prefixes,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'a> {
    VarBuilder::from_backend(
        Box::new(Freezing {
            inner: SeededInit::new(varmap, seed),
            frozen,
        }),
        dtype,
        device.clone(),
    )
}

/// The floating-point variables of `varmap` not under `frozen`, by name: what an optimizer
/// should be given (see [`crate::optim::named_vars`]).
pub fn trainable_vars(varmap: &VarMap, frozen: &Prefixes) -> Vec<(String, Var)> {
    crate::optim::named_vars(varmap)
        .into_iter()
        .filter(|(name, _)| !is_frozen(name, frozen))
        .collect()
}

/// A module that always runs in inference mode (batch norm on its moving statistics,
/// no dropout), whatever the caller's `train` flag: a frozen backbone.
///
/// # Shapes
/// Those of the wrapped module.
#[derive(Debug, Clone)]
pub struct InferenceMode<M>(pub M);

impl<M: ModuleT> ModuleT for InferenceMode<M> {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.0.forward_t(xs, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_weights_get_no_gradient_and_trainable_ones_do() {
        let varmap = VarMap::new();
        let vb = freezing_var_builder(
            &varmap,
            1,
            Prefixes::new(["body"]),
            DType::F32,
            &Device::Cpu,
        );
        let body = candle_nn::linear(3, 4, vb.pp("body")).unwrap();
        let head = candle_nn::linear(4, 1, vb.pp("head")).unwrap();
        let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        let y = head
            .forward_t(&body.forward_t(&x, true).unwrap(), true)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = y.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        assert!(grads.get(data["body.weight"].as_tensor()).is_none());
        assert!(grads.get(data["head.weight"].as_tensor()).is_some());
        drop(data);
        let names: Vec<String> = trainable_vars(&varmap, &Prefixes::new(["body"]))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["head.bias", "head.weight"]);
    }
}
