//! Channel slice and channel shuffle: the CPU custom op and the candle-op path against naive
//! loops and PyTorch's reshape-transpose definition, gradients against finite differences.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, channels};
use candle_core::{DType, Tensor, Var};
use std::sync::Arc;

/// `[n, c, h, w]` values and the naive gather `y[b, j] = x[b, src[j]]` with its input gradient
/// of `sum(y * gy)`.
fn naive(dims: [usize; 4], x: &[f64], gy: &[f64], src: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let [n, c, h, w] = dims;
    let hw = h * w;
    let mut y = Vec::new();
    let mut dx = vec![0.0; x.len()];
    for b in 0..n {
        for (j, &s) in src.iter().enumerate() {
            for p in 0..hw {
                y.push(x[(b * c + s) * hw + p]);
                dx[(b * c + s) * hw + p] += gy[(b * src.len() + j) * hw + p];
            }
        }
    }
    (y, dx)
}

type Op = dyn Fn(&Tensor) -> candle_core::Result<Tensor>;

fn with_grad(
    dims: [usize; 4],
    x: &[f64],
    gy: &[f64],
    dtype: DType,
    f: &Op,
) -> (Vec<f64>, Vec<f64>) {
    let xv = Var::from_tensor(&tensor(x, &dims, dtype).unwrap()).unwrap();
    let y = f(xv.as_tensor()).unwrap();
    let r = tensor(gy, y.dims(), dtype).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    (values(&y), values(grads.get(xv.as_tensor()).unwrap()))
}

/// Slices, shuffles and a gather reading one channel twice, on a few shapes.
fn cases() -> Vec<([usize; 4], Vec<usize>)> {
    let mut v = Vec::new();
    for dims in [[2, 8, 5, 3], [1, 6, 1, 1], [3, 12, 4, 7]] {
        let c = dims[1];
        v.push((dims, (0..c / 2).collect()));
        v.push((dims, (c / 2..c).collect()));
        v.push((dims, (1..c - 1).collect()));
        for g in [2, 3] {
            v.push((dims, channels::shuffle_sources(c, g)));
        }
        v.push((dims, vec![c - 1, 0, c - 1]));
    }
    v
}

#[test]
fn gathers_match_naive_loops_on_both_paths() {
    for (i, (dims, src)) in cases().into_iter().enumerate() {
        let mut rng = Rng::new(600 + i as u64);
        let x = rng.vec(dims.iter().product());
        let gy = rng.vec(dims[0] * src.len() * dims[2] * dims[3]);
        let (y, dx) = naive(dims, &x, &gy, &src);
        let s = Arc::new(src.clone());
        let cpu = move |t: &Tensor| channels::gather_channels_cpu(t, s.clone());
        let src2 = src.clone();
        let composite = move |t: &Tensor| channels::gather_channels_composite(t, &src2);
        // A copy is exact; f32 only rounds the data itself.
        for (name, f, dtype, tol) in [
            ("cpu f64", &cpu as &Op, DType::F64, 0.0),
            ("cpu f32", &cpu, DType::F32, 1e-6),
            ("composite", &composite, DType::F64, 0.0),
        ] {
            let (fy, fdx) = with_grad(dims, &x, &gy, dtype, f);
            let what = format!("{name} {dims:?} {src:?}");
            assert_close(&fy, &y, tol, tol, &format!("forward {what}"));
            assert_close(&fdx, &dx, 1e-6, 1e-6, &format!("gradient {what}"));
        }
    }
}

#[test]
fn shuffle_is_pytorchs_reshape_transpose_and_slices_are_chunks() {
    let (n, c, h, w, g) = (2, 12, 3, 4, 3);
    let x = Tensor::arange(0f32, (n * c * h * w) as f32, &candle_core::Device::Cpu)
        .unwrap()
        .reshape((n, c, h, w))
        .unwrap();
    let torch = x
        .reshape((n, g, c / g, h, w))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((n, c, h, w))
        .unwrap();
    assert_close(
        &values(&ops::channel_shuffle(&x, g).unwrap()),
        &values(&torch),
        0.0,
        0.0,
        "shuffle",
    );
    // Shuffling by g then by C / g restores the order.
    let back = ops::channel_shuffle(&ops::channel_shuffle(&x, g).unwrap(), c / g).unwrap();
    assert_close(&values(&back), &values(&x), 0.0, 0.0, "inverse");
    let chunks = x.chunk(2, 1).unwrap();
    for (k, chunk) in chunks.iter().enumerate() {
        let ours = ops::channel_slice(&x, k * c / 2, (k + 1) * c / 2).unwrap();
        assert_close(&values(&ours), &values(chunk), 0.0, 0.0, "chunk");
    }
    // Half precision takes the candle path.
    let half = ops::channel_shuffle(&x.to_dtype(DType::F16).unwrap(), g).unwrap();
    assert_eq!(half.dtype(), DType::F16);
    assert_close(&values(&half), &values(&torch), 0.0, 0.0, "f16 shuffle");
}

#[test]
fn bad_arguments_are_errors() {
    let x = Tensor::zeros((1, 6, 2, 2), DType::F32, &candle_core::Device::Cpu).unwrap();
    assert!(ops::channel_slice(&x, 3, 3).is_err());
    assert!(ops::channel_slice(&x, 2, 7).is_err());
    assert!(ops::channel_shuffle(&x, 4).is_err());
    assert!(ops::channel_shuffle(&x, 0).is_err());
    let msg = ops::channel_shuffle(&x, 4).unwrap_err().to_string();
    assert!(msg.contains("4 groups do not divide 6 channels"), "{msg}");
}

#[test]
fn gradients_match_finite_differences() {
    let dims = [2, 6, 3, 2];
    let mut rng = Rng::new(77);
    let x = rng.vec(dims.iter().product());
    for (name, f) in [
        ("slice", &(|t: &Tensor| ops::channel_slice(t, 1, 4)) as &Op),
        ("shuffle", &|t: &Tensor| ops::channel_shuffle(t, 2)),
    ] {
        let out_c = f(&tensor(&x, &dims, DType::F64).unwrap())
            .unwrap()
            .dim(1)
            .unwrap();
        let gy = rng.vec(dims[0] * out_c * dims[2] * dims[3]);
        let (_, dx) = with_grad(dims, &x, &gy, DType::F64, f);
        let loss = |x: &[f64]| -> f64 {
            let y = f(&tensor(x, &dims, DType::F64).unwrap()).unwrap();
            values(&y).iter().zip(&gy).map(|(a, b)| a * b).sum()
        };
        let eps = 1e-6;
        for j in (0..x.len()).step_by(5) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += eps;
            xm[j] -= eps;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps);
            assert!(
                (fd - dx[j]).abs() <= 1e-7,
                "{name} dx[{j}]: fd {fd}, backprop {}",
                dx[j]
            );
        }
    }
}
