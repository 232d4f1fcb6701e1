//! The fused batch norm + depthwise op against the two ops in turn (forward, batch
//! statistics and the gradients of all four inputs) over the depthwise cases, and against
//! finite differences.

use super::common::{assert_close, tensor, values, Rng};
use super::depthwise::{cases, Case};
use crate::ops::{self, Pad2d};
use candle_core::{DType, Tensor, Var};

const EPS: f64 = 1e-3;

/// `x`, `gamma`, `beta`, `weight` of a case as vars.
struct Inputs([Var; 4]);

impl Inputs {
    fn new(case: &Case, rng: &mut Rng, dt: DType) -> Inputs {
        let var =
            |v: Vec<f64>, dims: &[usize]| Var::from_tensor(&tensor(&v, dims, dt).unwrap()).unwrap();
        let nx = case.x_dims().iter().product();
        let x: Vec<f64> = rng.vec(nx).iter().map(|v| v * 2.0 + 0.3).collect();
        let gamma = rng.vec(case.c).iter().map(|v| 1.0 + 0.5 * v).collect();
        Inputs([
            var(x, &case.x_dims()),
            var(gamma, &[case.c]),
            var(rng.vec(case.c), &[case.c]),
            var(rng.vec(case.w_dims().iter().product()), &case.w_dims()),
        ])
    }

    fn t(&self, i: usize) -> &Tensor {
        self.0[i].as_tensor()
    }
}

/// The fused op, or batch norm then depthwise convolution.
fn run(case: &Case, v: &Inputs, relu: bool, fused: bool) -> ops::BatchNormTrain {
    let (x, gamma, beta, w) = (v.t(0), v.t(1), v.t(2), v.t(3));
    if fused {
        ops::batch_norm_depthwise_train(x, (gamma, beta, EPS, relu), w, &case.win).unwrap()
    } else {
        let r = ops::batch_norm_train(x, gamma, beta, EPS, relu).unwrap();
        ops::BatchNormTrain {
            y: ops::depthwise_conv2d(&r.y, w, &case.win).unwrap(),
            ..r
        }
    }
}

/// `[y, mean, var, dx, dgamma, dbeta, dweight]` under `loss = sum(y * r)`.
fn outputs(case: &Case, v: &Inputs, r: &Tensor, relu: bool, fused: bool) -> Vec<Vec<f64>> {
    let out = run(case, v, relu, fused);
    assert_eq!(out.y.dims(), case.y_dims(), "{case:?}");
    let grads = (&out.y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut all = vec![values(&out.y), values(&out.mean), values(&out.var)];
    for var in &v.0 {
        let g = grads.get(var.as_tensor()).expect("gradient of every input");
        assert_eq!(g.dims(), var.dims());
        all.push(values(g));
    }
    all
}

#[test]
fn fused_op_matches_batch_norm_then_depthwise() {
    let mut rng = Rng::new(11);
    let mut compared = 0;
    for case in cases() {
        if case.n * case.h * case.w < 2 {
            continue;
        }
        for (dt, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            for relu in [false, true] {
                let v = Inputs::new(&case, &mut rng, dt);
                let r =
                    tensor(&rng.vec(case.y_dims().iter().product()), &case.y_dims(), dt).unwrap();
                let fused = outputs(&case, &v, &r, relu, true);
                let pair = outputs(&case, &v, &r, relu, false);
                let names = ["y", "mean", "var", "dx", "dgamma", "dbeta", "dweight"];
                for ((name, a), b) in names.iter().zip(&fused).zip(&pair) {
                    let what = format!("{case:?} {dt:?} relu {relu}: {name}");
                    assert_close(a, b, tol, tol, &what);
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 100, "compared {compared} cases");
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = Rng::new(12);
    let wide = Case::new(2, 2, 1, (3, 70), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1));
    let strided = Case::new(3, 3, 2, (6, 7), (3, 3), (2, 2), (1, 1), Pad2d::uniform(1));
    for case in [wide, strided] {
        for relu in [false, true] {
            let v = Inputs::new(&case, &mut rng, DType::F64);
            let gy = rng.vec(case.y_dims().iter().product());
            let r = tensor(&gy, &case.y_dims(), DType::F64).unwrap();
            let grads = outputs(&case, &v, &r, relu, true);
            let base: Vec<Vec<f64>> = v.0.iter().map(|t| values(t.as_tensor())).collect();
            let loss = |input: usize, at: usize, delta: f64| -> f64 {
                let mut data = base.clone();
                data[input][at] += delta;
                let moved = Inputs(std::array::from_fn(|i| {
                    let t = tensor(&data[i], v.0[i].dims(), DType::F64).unwrap();
                    Var::from_tensor(&t).unwrap()
                }));
                let y = values(&run(&case, &moved, relu, true).y);
                y.iter().zip(&gy).map(|(a, b)| a * b).sum()
            };
            let h = 1e-6;
            for (input, name) in ["x", "gamma", "beta", "weight"].iter().enumerate() {
                for _ in 0..4 {
                    let at = rng.range(0, base[input].len() - 1);
                    let fd = (loss(input, at, h) - loss(input, at, -h)) / (2.0 * h);
                    let got = grads[3 + input][at];
                    assert!(
                        (fd - got).abs() <= 1e-6 + 1e-5 * fd.abs(),
                        "d{name}[{at}] {case:?} relu {relu}: finite difference {fd}, backward {got}"
                    );
                }
            }
        }
    }
}

#[test]
fn half_precision_runs_through_f32() {
    let case = Case::new(2, 3, 1, (5, 6), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1));
    let mut rng = Rng::new(13);
    let v32 = Inputs::new(&case, &mut rng, DType::F32);
    let half = Inputs(std::array::from_fn(|i| {
        Var::from_tensor(&v32.t(i).to_dtype(DType::BF16).unwrap()).unwrap()
    }));
    let out = run(&case, &half, true, true);
    assert_eq!(out.y.dtype(), DType::BF16);
    assert_eq!(out.mean.dtype(), DType::BF16);
    let pair = run(&case, &half, true, false);
    assert_close(&values(&out.y), &values(&pair.y), 1e-2, 1e-2, "bf16 y");
}
