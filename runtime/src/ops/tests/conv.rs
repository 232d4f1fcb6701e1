//! The convolution ops against independent references: the dense im2col op against naive
//! loops (forward and both gradients, any stride, dilation and asymmetric padding) and
//! candle's `conv2d`; the 1x1 op against candle's `conv2d` and its composite (candle matmul)
//! version.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, composite, Pad2d, Window2d};
use candle_core::{DType, Tensor, Var};

/// `(y, dy/dx, dy/dw)` of `f` under `loss = sum(y * r)` for a fixed random `r`, and the output dims.
fn run(
    f: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    x: &Var,
    w: &Var,
) -> (Vec<f64>, Vec<usize>, Vec<f64>, Vec<f64>) {
    let y = f(x.as_tensor(), w.as_tensor());
    let r = tensor(&Rng::new(9).vec(y.elem_count()), y.dims(), y.dtype()).unwrap();
    let gs = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    (
        values(&y),
        y.dims().to_vec(),
        values(gs.get(x.as_tensor()).unwrap()),
        values(gs.get(w.as_tensor()).unwrap()),
    )
}

/// Naive convolution: `y`, and the gradients of `sum(y * r)` for `x` and `w`.
fn naive(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    win: &Window2d,
    r: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, wi] = xd;
    let [o, _, kh, kw] = wd;
    let (oh, ow) = win.output_size(h, wi).unwrap();
    let mut y = vec![0.0; n * o * oh * ow];
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((b * o + oc) * oh + oy) * ow + ox;
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * win.stride.0 + ky * win.dilation.0) as isize
                                    - win.pad.top as isize;
                                let ix = (ox * win.stride.1 + kx * win.dilation.1) as isize
                                    - win.pad.left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                    continue;
                                }
                                let xi = ((b * c + ic) * h + iy as usize) * wi + ix as usize;
                                let wj = ((oc * c + ic) * kh + ky) * kw + kx;
                                y[yi] += x[xi] * w[wj];
                                dx[xi] += r[yi] * w[wj];
                                dw[wj] += r[yi] * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

#[test]
fn dense_conv2d_matches_naive_loops_forward_and_gradients() {
    let mut rng = Rng::new(3);
    let pad = |t, b, l, r| Pad2d {
        top: t,
        bottom: b,
        left: l,
        right: r,
    };
    // (n, c, o, (h, w), (kh, kw), stride, dilation, pad)
    let cases = [
        (1, 1, 1, (1, 1), (1, 1), (1, 1), (1, 1), Pad2d::ZERO),
        (2, 3, 4, (7, 6), (3, 3), (1, 1), (1, 1), Pad2d::ZERO),
        (3, 3, 5, (9, 8), (5, 5), (1, 1), (1, 1), Pad2d::uniform(2)),
        (1, 2, 3, (8, 9), (3, 3), (2, 2), (1, 1), pad(0, 1, 0, 1)),
        (2, 2, 3, (7, 7), (3, 2), (2, 3), (1, 1), pad(1, 0, 2, 1)),
        (3, 2, 2, (9, 10), (3, 3), (1, 2), (2, 1), pad(2, 2, 1, 0)),
        (1, 4, 2, (5, 5), (5, 5), (1, 1), (1, 1), Pad2d::ZERO),
        (2, 1, 1, (4, 4), (3, 3), (3, 3), (1, 1), pad(3, 3, 3, 3)),
        (4, 3, 8, (12, 11), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
    ];
    for &(n, c, o, (h, w), k, stride, dilation, pad) in &cases {
        let win = Window2d {
            kernel: k,
            stride,
            dilation,
            pad,
        };
        let (xd, wd) = ([n, c, h, w], [o, c, k.0, k.1]);
        let xv = rng.vec(xd.iter().product());
        let wv = rng.vec(wd.iter().product());
        for dt in [DType::F64, DType::F32] {
            let tol = if dt == DType::F64 { 1e-10 } else { 1e-4 };
            let x = Var::from_tensor(&tensor(&xv, &xd, dt).unwrap()).unwrap();
            let wt = Var::from_tensor(&tensor(&wv, &wd, dt).unwrap()).unwrap();
            let (y, yd, dx, dw) = run(&|x, w| ops::conv2d(x, w, &win).unwrap(), &x, &wt);
            let r = values(&tensor(&Rng::new(9).vec(y.len()), &yd, dt).unwrap());
            let (ny, ndx, ndw) = naive(&xv, xd, &wv, wd, &win, &r);
            let what = format!("{dt:?} {xd:?} {win:?}");
            let (oh, ow) = win.output_size(h, w).unwrap();
            assert_eq!(yd, [n, o, oh, ow], "{what} shape");
            assert_close(&y, &ny, tol, tol, &format!("{what} y"));
            assert_close(&dx, &ndx, tol, tol, &format!("{what} dx"));
            assert_close(&dw, &ndw, tol, tol, &format!("{what} dw"));
        }
    }
}

#[test]
fn dense_conv2d_matches_candle_and_skips_the_input_gradient_of_plain_tensors() {
    let mut rng = Rng::new(4);
    let win = Window2d::new((5, 5), (1, 1), Pad2d::ZERO);
    let x = tensor(&rng.vec(2 * 3 * 12 * 12), &[2, 3, 12, 12], DType::F32).unwrap();
    let w = Var::from_tensor(&tensor(&rng.vec(8 * 3 * 25), &[8, 3, 5, 5], DType::F32).unwrap())
        .unwrap();
    let ours = ops::conv2d(&x, w.as_tensor(), &win).unwrap();
    let theirs = x.conv2d(w.as_tensor(), 0, 1, 1, 1).unwrap();
    assert_close(&values(&ours), &values(&theirs), 1e-4, 1e-4, "y");
    let a = ours.sum_all().unwrap().backward().unwrap();
    let b = theirs.sum_all().unwrap().backward().unwrap();
    assert!(a.get(&x).is_none(), "a plain input gets no gradient");
    assert_close(
        &values(a.get(w.as_tensor()).unwrap()),
        &values(b.get(w.as_tensor()).unwrap()),
        1e-3,
        1e-4,
        "dw",
    );
    // Off the fast path (candle's conv2d) the result is the same.
    let c = composite::conv2d(&x, w.as_tensor(), &win).unwrap();
    assert_close(&values(&ours), &values(&c), 1e-4, 1e-4, "composite y");
}

#[test]
fn pointwise_conv2d_matches_candle_conv2d_forward_and_gradients() {
    let mut rng = Rng::new(5);
    let cases = [
        (1, 1, 1, (1, 1), 1),
        (2, 3, 4, (5, 5), 1),
        (2, 3, 4, (5, 5), 2),
        (3, 8, 5, (11, 7), 2),
        (1, 4, 6, (6, 9), 3),
        (2, 5, 2, (1, 1), 2),
        (2, 16, 32, (12, 12), 2),
        (5, 6, 3, (7, 8), 1),
    ];
    for &(n, c, o, (h, w), s) in &cases {
        for dt in [DType::F64, DType::F32] {
            let tol = if dt == DType::F64 { 1e-10 } else { 1e-4 };
            let xd = [n, c, h, w];
            let x = Var::from_tensor(&tensor(&rng.vec(n * c * h * w), &xd, dt).unwrap()).unwrap();
            let wt =
                Var::from_tensor(&tensor(&rng.vec(o * c), &[o, c, 1, 1], dt).unwrap()).unwrap();
            // Reference: candle conv2d on the input padded to a multiple of the stride (its
            // backward mis-sizes the input gradient otherwise), gradient cropped back.
            let slow = run(
                &|xx, ww| {
                    let (ph, pw) = ((s - h % s) % s, (s - w % s) % s);
                    xx.pad_with_zeros(2, 0, ph)
                        .unwrap()
                        .pad_with_zeros(3, 0, pw)
                        .unwrap()
                        .conv2d(ww, 0, s, 1, 1)
                        .unwrap()
                },
                &x,
                &wt,
            );
            let fast = run(
                &|x, w| ops::pointwise_conv2d(x, w, (s, s)).unwrap(),
                &x,
                &wt,
            );
            let comp = run(
                &|x, w| composite::pointwise_conv2d(x, w, (s, s)).unwrap(),
                &x,
                &wt,
            );
            for (got, name) in [(&fast, "fast"), (&comp, "composite")] {
                let what = format!("{name} {dt:?} {xd:?} -> {o} stride {s}");
                assert_eq!(got.1, slow.1, "{what} shape");
                assert_close(&got.0, &slow.0, tol, tol, &format!("{what} y"));
                assert_close(&got.2, &slow.2, tol, tol, &format!("{what} dx"));
                assert_close(&got.3, &slow.3, tol, tol, &format!("{what} dw"));
            }
        }
    }
}
