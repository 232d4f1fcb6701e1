//! `relu6`, `hard_sigmoid` and `hard_swish` against their PyTorch definitions written as plain
//! loops, and their autograd gradients against finite differences (away from the kinks).

mod common;
mod layers_common;

use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, values};
use convnet_runtime::layers::{hard_sigmoid, hard_swish, relu6};
use layers_common::{check_gradients, weighted_sum};

/// Inputs spread over [-8, 8], none within 0.01 of a kink (-3, 0, 3, 6).
fn inputs() -> Vec<f64> {
    (0..64)
        .map(|i| -8.0 + 16.0 * (i as f64 + 0.37) / 64.0)
        .filter(|x: &f64| [-3.0, 0.0, 3.0, 6.0].iter().all(|k| (x - k).abs() > 0.01))
        .collect()
}

fn naive_relu6(x: f64) -> f64 {
    x.clamp(0.0, 6.0)
}

fn naive_hard_sigmoid(x: f64) -> f64 {
    naive_relu6(x + 3.0) / 6.0
}

type Layer = fn(&Tensor) -> candle_core::Result<Tensor>;

fn check(layer: Layer, reference: fn(f64) -> f64, what: &str) {
    let xs = inputs();
    let expected: Vec<f64> = xs.iter().map(|&x| reference(x)).collect();
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::from_slice(&xs, xs.len(), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let y = layer(&x).unwrap();
        assert_eq!(y.dtype(), dtype);
        assert_close(&values(&y), &expected, 1e-6, 1e-6, what);
    }
    let x = Var::from_tensor(&Tensor::from_slice(&xs, xs.len(), &Device::Cpu).unwrap()).unwrap();
    check_gradients(
        &|| weighted_sum(&layer(x.as_tensor())?),
        &[("x", &x)],
        1e-7,
        1e-6,
    );
}

#[test]
fn relu6_matches_pytorch_definition_and_gradient() {
    check(relu6, naive_relu6, "relu6");
}

#[test]
fn hard_sigmoid_is_relu6_of_x_plus_3_over_6() {
    check(hard_sigmoid, naive_hard_sigmoid, "hard_sigmoid");
    // Fixed points of the definition: 0 at -3, 1/2 at 0, 1 at 3 (Keras 2's 0.2x + 0.5 would
    // give 0.1 at -2 where this gives 1/6).
    let x = Tensor::new(&[-3.0f64, 0.0, 3.0, -2.0], &Device::Cpu).unwrap();
    assert_close(
        &values(&hard_sigmoid(&x).unwrap()),
        &[0.0, 0.5, 1.0, 1.0 / 6.0],
        1e-12,
        0.0,
        "points",
    );
}

#[test]
fn hard_swish_is_x_times_hard_sigmoid() {
    check(hard_swish, |x| x * naive_hard_sigmoid(x), "hard_swish");
}
