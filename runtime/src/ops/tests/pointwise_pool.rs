//! The fused 1x1 convolution + max pooling op against the two ops in turn (forward and the
//! gradients of both inputs) and against finite differences.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, Pad2d, Window2d};
use candle_core::{DType, Tensor, Var};

/// `(n, c, o, h, w, window)`.
type Case = (usize, usize, usize, usize, usize, Window2d);

fn cases() -> Vec<Case> {
    let same_3x3_2 = |h: usize, w: usize| Window2d {
        kernel: (3, 3),
        stride: (2, 2),
        dilation: (1, 1),
        // TF "same": the extra row and column at the bottom and right on even sizes.
        pad: Pad2d {
            top: 1 - h % 2,
            bottom: 1,
            left: 1 - w % 2,
            right: 1,
        },
    };
    vec![
        (2, 3, 4, 8, 8, same_3x3_2(8, 8)),
        (3, 2, 5, 7, 9, same_3x3_2(7, 9)),
        (1, 4, 2, 6, 6, Window2d::new((2, 2), (2, 2), Pad2d::ZERO)),
        (
            2,
            3,
            3,
            5,
            7,
            Window2d::new((3, 3), (1, 1), Pad2d::uniform(1)),
        ),
        (2, 2, 3, 1, 1, Window2d::new((1, 1), (1, 1), Pad2d::ZERO)),
        // Wide rows (the max pool's row kernels rather than its window table).
        (1, 2, 3, 4, 90, same_3x3_2(4, 90)),
    ]
}

/// `[y, dx, dweight]` of the fused op or of the pair, under `loss = sum(y * r)`.
fn outputs(case: &Case, x: &Var, w: &Var, r: &Tensor, fused: bool) -> Vec<Vec<f64>> {
    let win = &case.5;
    let y = if fused {
        ops::pointwise_max_pool2d(x.as_tensor(), w.as_tensor(), win).unwrap()
    } else {
        let z = ops::pointwise_conv2d(x.as_tensor(), w.as_tensor(), (1, 1)).unwrap();
        ops::max_pool2d(&z, win).unwrap()
    };
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let get = |v: &Var| values(grads.get(v.as_tensor()).expect("gradient"));
    vec![values(&y), get(x), get(w)]
}

fn vars(case: &Case, rng: &mut Rng, dt: DType) -> (Var, Var, Tensor) {
    let &(n, c, o, h, w, win) = case;
    let (oh, ow) = win.output_size(h, w).expect("case fits");
    let var = |dims: &[usize], rng: &mut Rng| {
        let v = rng.vec(dims.iter().product());
        Var::from_tensor(&tensor(&v, dims, dt).unwrap()).unwrap()
    };
    let x = var(&[n, c, h, w], rng);
    let weight = var(&[o, c, 1, 1], rng);
    let r = var(&[n, o, oh, ow], rng).as_tensor().clone();
    (x, weight, r)
}

#[test]
fn fused_op_matches_pointwise_then_max_pool() {
    let mut rng = Rng::new(21);
    for case in cases() {
        for dt in [DType::F64, DType::F32] {
            let (x, w, r) = vars(&case, &mut rng, dt);
            let fused = outputs(&case, &x, &w, &r, true);
            let pair = outputs(&case, &x, &w, &r, false);
            for ((name, a), b) in ["y", "dx", "dweight"].iter().zip(&fused).zip(&pair) {
                assert_close(a, b, 0.0, 0.0, &format!("{case:?} {dt:?}: {name}"));
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = Rng::new(22);
    for case in cases() {
        let (x, w, r) = vars(&case, &mut rng, DType::F64);
        let grads = outputs(&case, &x, &w, &r, true);
        let rv = values(&r);
        let base = [values(x.as_tensor()), values(w.as_tensor())];
        let loss = |input: usize, at: usize, delta: f64| -> f64 {
            let mut data = base.clone();
            data[input][at] += delta;
            let xt = tensor(&data[0], x.dims(), DType::F64).unwrap();
            let wt = tensor(&data[1], w.dims(), DType::F64).unwrap();
            let y = ops::pointwise_max_pool2d(&xt, &wt, &case.5).unwrap();
            values(&y).iter().zip(&rv).map(|(a, b)| a * b).sum()
        };
        let h = 1e-7;
        for (input, name) in ["x", "weight"].iter().enumerate() {
            for _ in 0..6 {
                let at = rng.range(0, base[input].len() - 1);
                let fd = (loss(input, at, h) - loss(input, at, -h)) / (2.0 * h);
                let got = grads[1 + input][at];
                assert!(
                    (fd - got).abs() <= 1e-6 + 1e-5 * fd.abs(),
                    "d{name}[{at}] {case:?}: finite difference {fd}, backward {got}"
                );
            }
        }
    }
}

#[test]
fn without_gradients_and_in_half_precision() {
    let case = cases()[0];
    let mut rng = Rng::new(23);
    let (x, w, _) = vars(&case, &mut rng, DType::F32);
    let (xt, wt) = (x.as_tensor().detach(), w.as_tensor().detach());
    let plain = ops::pointwise_max_pool2d(&xt, &wt, &case.5).unwrap();
    let pair = ops::max_pool2d(&ops::pointwise_conv2d(&xt, &wt, (1, 1)).unwrap(), &case.5);
    assert_close(
        &values(&plain),
        &values(&pair.unwrap()),
        0.0,
        0.0,
        "no grad",
    );
    let half = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let y = ops::pointwise_max_pool2d(&half(&xt), &half(&wt), &case.5).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_close(&values(&y), &values(&plain), 5e-2, 2e-2, "bf16");
}
