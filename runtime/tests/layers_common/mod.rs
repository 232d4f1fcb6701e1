//! Helpers for the layer tests: a finite-difference gradient check over `Var`s and a fixed
//! random weighting of outputs (the loss is `sum(y * r)`, so every output element matters).
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};

/// A deterministic `f64` tensor with entries uniform in `[-1, 1)`.
pub fn random(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let data = super::common::Rng::new(seed).vec(n);
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

/// `sum(y * r)` for the fixed random `r` of `y`'s shape.
pub fn weighted_sum(y: &Tensor) -> Result<Tensor> {
    let r = random(y.dims(), 7777).to_dtype(y.dtype())?;
    (y * r)?.sum_all()
}

/// Asserts that the autograd gradients of `loss()` for each `(name, var)` agree with central
/// finite differences (step `1e-5`, in `f64`) to `atol + rtol * |numeric|`.
#[track_caller]
pub fn check_gradients(
    loss: &dyn Fn() -> Result<Tensor>,
    vars: &[(&str, &Var)],
    atol: f64,
    rtol: f64,
) {
    let grads = loss().unwrap().backward().unwrap();
    let step = 1e-5;
    let eval = || {
        loss()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for (name, var) in vars {
        let analytic = super::common::values(
            grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}")),
        );
        let dims = var.dims().to_vec();
        let base = super::common::values(var.as_tensor());
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] = base[i] + step;
            var.set(&Tensor::from_vec(v.clone(), dims.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            let plus = eval();
            v[i] = base[i] - step;
            var.set(&Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            let minus = eval();
            let numeric = (plus - minus) / (2.0 * step);
            assert!(
                (analytic[i] - numeric).abs() <= atol + rtol * numeric.abs(),
                "{name}[{i}]: autograd {} vs finite difference {numeric}",
                analytic[i]
            );
        }
        var.set(&Tensor::from_vec(base, dims.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    }
}
