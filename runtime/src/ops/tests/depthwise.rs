//! The CPU depthwise convolution kernels against naive loops, candle's grouped convolution
//! (the composite reference) and finite differences: forward, input and weight gradients.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, composite, depthwise, taps, Pad2d, Window2d};
use candle_core::{DType, Tensor, Var};

#[derive(Debug, Clone, Copy)]
pub(super) struct Case {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub h: usize,
    pub w: usize,
    pub win: Window2d,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        n: usize,
        c: usize,
        m: usize,
        hw: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
        pad: Pad2d,
    ) -> Self {
        Case {
            n,
            c,
            m,
            h: hw.0,
            w: hw.1,
            win: Window2d {
                kernel: k,
                stride: s,
                dilation: d,
                pad,
            },
        }
    }

    fn out(&self) -> (usize, usize) {
        self.win.output_size(self.h, self.w).expect("case fits")
    }

    pub(super) fn x_dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    pub(super) fn w_dims(&self) -> [usize; 4] {
        [self.c * self.m, 1, self.win.kernel.0, self.win.kernel.1]
    }

    pub(super) fn y_dims(&self) -> [usize; 4] {
        let (oh, ow) = self.out();
        [self.n, self.c * self.m, oh, ow]
    }

    /// Calls `f(x index, weight index, y index)` for every tap of the convolution.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = self.out();
        let (kh, kw) = self.win.kernel;
        let cm = self.c * self.m;
        for n in 0..self.n {
            for co in 0..cm {
                let ci = co / self.m;
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * self.win.stride.0 + ky * self.win.dilation.0)
                                    as isize
                                    - self.win.pad.top as isize;
                                let ix = (ox * self.win.stride.1 + kx * self.win.dilation.1)
                                    as isize
                                    - self.win.pad.left as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= self.h as isize
                                    || ix >= self.w as isize
                                {
                                    continue;
                                }
                                let xi = ((n * self.c + ci) * self.h + iy as usize) * self.w
                                    + ix as usize;
                                let wi = (co * kh + ky) * kw + kx;
                                let yi = ((n * cm + co) * oh + oy) * ow + ox;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }

    fn naive_forward(&self, x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.y_dims().iter().product()];
        self.for_each_tap(|xi, wi, yi| y[yi] += x[xi] * w[wi]);
        y
    }

    fn naive_backward(&self, x: &[f64], w: &[f64], gy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        self.for_each_tap(|xi, wi, yi| {
            dx[xi] += gy[yi] * w[wi];
            dw[wi] += gy[yi] * x[xi];
        });
        (dx, dw)
    }
}

/// Hand-picked edge cases plus random ones.
pub(super) fn cases() -> Vec<Case> {
    let z = Pad2d::ZERO;
    let mut v = vec![
        // 3x3 "same", stride 1.
        Case::new(2, 3, 1, (7, 6), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
        // TF "same" stride 2 on even size: the extra row/column at the bottom/right.
        Case::new(
            1,
            4,
            1,
            (8, 8),
            (3, 3),
            (2, 2),
            (1, 1),
            Pad2d {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
        ),
        // 1x1 spatial input.
        Case::new(3, 2, 1, (1, 1), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
        Case::new(2, 2, 2, (1, 1), (1, 1), (1, 1), (1, 1), z),
        // Stride larger than the kernel.
        Case::new(2, 3, 1, (9, 10), (2, 2), (3, 3), (1, 1), z),
        // Channel multiplier 2.
        Case::new(2, 3, 2, (6, 5), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
        // Dilation 2.
        Case::new(1, 2, 1, (9, 8), (3, 3), (1, 1), (2, 2), Pad2d::uniform(2)),
        // Asymmetric padding and kernel, unequal strides and dilations.
        Case::new(
            2,
            2,
            3,
            (7, 9),
            (2, 3),
            (2, 1),
            (1, 2),
            Pad2d {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            },
        ),
        // 5x5 kernel, odd size, batch 1, padding wider than the input.
        Case::new(1, 3, 1, (3, 5), (5, 5), (1, 1), (1, 1), Pad2d::uniform(3)),
        // Wide rows (exercise the vectorised row loops and their remainders).
        Case::new(1, 2, 1, (5, 67), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
        // Rows wider than the flat path's limit: 64- and 32-wide register blocks.
        Case::new(1, 2, 1, (4, 150), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1)),
        Case::new(
            2,
            2,
            2,
            (4, 40),
            (3, 7),
            (1, 2),
            (1, 1),
            Pad2d::symmetric(1, 3),
        ),
    ];
    let mut rng = Rng::new(7);
    while v.len() < 40 {
        let k = (rng.range(1, 5), rng.range(1, 5));
        let d = (rng.range(1, 2), rng.range(1, 2));
        let pad = Pad2d {
            top: rng.range(0, 2),
            bottom: rng.range(0, 2),
            left: rng.range(0, 2),
            right: rng.range(0, 2),
        };
        let case = Case::new(
            rng.range(1, 3),
            rng.range(1, 4),
            rng.range(1, 2),
            (rng.range(1, 12), rng.range(1, 20)),
            k,
            (rng.range(1, 3), rng.range(1, 3)),
            d,
            pad,
        );
        if case.win.output_size(case.h, case.w).is_some() {
            v.push(case);
        }
    }
    v
}

fn inputs(case: &Case, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(case.x_dims().iter().product());
    let w = rng.vec(case.w_dims().iter().product());
    let gy = rng.vec(case.y_dims().iter().product());
    (x, w, gy)
}

/// Runs `conv` forward and backward with `loss = sum(y * gy)`, returning `(y, dx, dw)`.
fn run_with_grads(
    case: &Case,
    (x, w, gy): &(Vec<f64>, Vec<f64>, Vec<f64>),
    dtype: DType,
    conv: impl Fn(&Tensor, &Tensor, &Window2d) -> candle_core::Result<Tensor>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let xv = Var::from_tensor(&tensor(x, &case.x_dims(), dtype).unwrap()).unwrap();
    let wv = Var::from_tensor(&tensor(w, &case.w_dims(), dtype).unwrap()).unwrap();
    let r = tensor(gy, &case.y_dims(), dtype).unwrap();
    let y = conv(xv.as_tensor(), wv.as_tensor(), &case.win).unwrap();
    assert_eq!(y.dims(), case.y_dims(), "{case:?}");
    assert_eq!(y.dtype(), dtype);
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(xv.as_tensor()).expect("input gradient");
    let dw = grads.get(wv.as_tensor()).expect("weight gradient");
    assert_eq!(dx.dims(), case.x_dims());
    assert_eq!(dw.dims(), case.w_dims());
    (values(&y), values(dx), values(dw))
}

#[test]
fn forward_and_gradients_match_naive_loops_f32_and_f64() {
    for (i, case) in cases().iter().enumerate() {
        let data = inputs(case, i as u64);
        let y = case.naive_forward(&data.0, &data.1);
        let (dx, dw) = case.naive_backward(&data.0, &data.1, &data.2);
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
            let (fy, fdx, fdw) =
                run_with_grads(case, &data, dtype, depthwise::depthwise_conv2d_cpu);
            let what = format!("{case:?} {dtype:?}");
            assert_close(&fy, &y, tol, tol, &format!("forward {what}"));
            assert_close(&fdx, &dx, tol, tol, &format!("input gradient {what}"));
            assert_close(
                &fdw,
                &dw,
                tol * 10.0,
                tol,
                &format!("weight gradient {what}"),
            );
        }
        // The public dispatching op takes the same path on CPU.
        let (fy, _, _) = run_with_grads(case, &data, DType::F32, ops::depthwise_conv2d);
        assert_close(&fy, &y, 2e-5, 2e-5, &format!("dispatch {case:?}"));
    }
}

#[test]
fn taps_path_matches_naive_loops() {
    // The path off the CPU (one candle op per window tap), run here on the CPU.
    for (i, case) in cases().iter().enumerate() {
        let data = inputs(case, 50 + i as u64);
        let y = case.naive_forward(&data.0, &data.1);
        let (dx, dw) = case.naive_backward(&data.0, &data.1, &data.2);
        let (ty, tdx, tdw) = run_with_grads(case, &data, DType::F64, taps::depthwise_conv2d);
        assert_close(&ty, &y, 1e-12, 1e-12, &format!("forward {case:?}"));
        assert_close(&tdx, &dx, 1e-12, 1e-12, &format!("input gradient {case:?}"));
        assert_close(
            &tdw,
            &dw,
            1e-11,
            1e-12,
            &format!("weight gradient {case:?}"),
        );
    }
}

#[test]
fn forward_and_gradients_match_candle_grouped_conv() {
    let (mut forwards, mut gradients) = (0, 0);
    for (i, case) in cases().iter().enumerate() {
        // candle's conv2d takes one stride and one dilation.
        if case.win.stride.0 != case.win.stride.1 || case.win.dilation.0 != case.win.dilation.1 {
            continue;
        }
        let data = inputs(case, 100 + i as u64);
        let xt = tensor(&data.0, &case.x_dims(), DType::F64).unwrap();
        let wt = tensor(&data.1, &case.w_dims(), DType::F64).unwrap();
        let ry = values(&composite::depthwise_conv2d(&xt, &wt, &case.win).unwrap());
        let fy = values(&depthwise::depthwise_conv2d_cpu(&xt, &wt, &case.win).unwrap());
        assert_close(&fy, &ry, 1e-12, 1e-12, &format!("forward {case:?}"));
        forwards += 1;
        // candle's conv2d backward mis-sizes the input gradient when stride > 1 leaves
        // input rows unused, and does not support dilation: compare stride 1 only.
        if case.win.stride != (1, 1) || case.win.dilation != (1, 1) {
            continue;
        }
        let (_, rdx, rdw) = run_with_grads(case, &data, DType::F64, composite::depthwise_conv2d);
        let (_, fdx, fdw) =
            run_with_grads(case, &data, DType::F64, depthwise::depthwise_conv2d_cpu);
        assert_close(
            &fdx,
            &rdx,
            1e-12,
            1e-12,
            &format!("input gradient {case:?}"),
        );
        assert_close(
            &fdw,
            &rdw,
            1e-11,
            1e-12,
            &format!("weight gradient {case:?}"),
        );
        gradients += 1;
    }
    assert!(
        forwards >= 10 && gradients >= 5,
        "compared {forwards} forwards, {gradients} gradients"
    );
}

#[test]
fn gradients_match_finite_differences_f64() {
    let mut rng = Rng::new(99);
    for (i, case) in cases().iter().enumerate().step_by(3) {
        let (x, w, gy) = inputs(case, 200 + i as u64);
        let (_, dx, dw) = run_with_grads(
            case,
            &(x.clone(), w.clone(), gy.clone()),
            DType::F64,
            ops::depthwise_conv2d,
        );
        let loss = |x: &[f64], w: &[f64]| -> f64 {
            let xt = tensor(x, &case.x_dims(), DType::F64).unwrap();
            let wt = tensor(w, &case.w_dims(), DType::F64).unwrap();
            let y = ops::depthwise_conv2d(&xt, &wt, &case.win).unwrap();
            values(&y).iter().zip(&gy).map(|(a, b)| a * b).sum()
        };
        let eps = 1e-6;
        for _ in 0..6 {
            let j = rng.range(0, x.len() - 1);
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += eps;
            xm[j] -= eps;
            let fd = (loss(&xp, &w) - loss(&xm, &w)) / (2.0 * eps);
            assert!(
                (fd - dx[j]).abs() <= 1e-7 + 1e-6 * fd.abs(),
                "dx[{j}] {case:?}: fd {fd}, backprop {}",
                dx[j]
            );
            let j = rng.range(0, w.len() - 1);
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[j] += eps;
            wm[j] -= eps;
            let fd = (loss(&x, &wp) - loss(&x, &wm)) / (2.0 * eps);
            assert!(
                (fd - dw[j]).abs() <= 1e-7 + 1e-6 * fd.abs(),
                "dw[{j}] {case:?}: fd {fd}, backprop {}",
                dw[j]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_f32() {
    // f32 loss in f64 accumulation; eps 1e-2 keeps rounding error well below the tolerance
    // (the loss is linear in each input, so the central difference has no truncation error).
    let case = Case::new(
        2,
        3,
        2,
        (9, 11),
        (3, 3),
        (2, 1),
        (1, 1),
        Pad2d {
            top: 1,
            bottom: 0,
            left: 1,
            right: 2,
        },
    );
    let (x, w, gy) = inputs(&case, 5);
    let (_, dx, dw) = run_with_grads(
        &case,
        &(x.clone(), w.clone(), gy.clone()),
        DType::F32,
        ops::depthwise_conv2d,
    );
    let loss = |x: &[f64], w: &[f64]| -> f64 {
        let xt = tensor(x, &case.x_dims(), DType::F32).unwrap();
        let wt = tensor(w, &case.w_dims(), DType::F32).unwrap();
        let y = ops::depthwise_conv2d(&xt, &wt, &case.win).unwrap();
        values(&y).iter().zip(&gy).map(|(a, b)| a * b).sum()
    };
    let eps = 1e-2;
    for j in (0..x.len()).step_by(17) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[j] += eps;
        xm[j] -= eps;
        let fd = (loss(&xp, &w) - loss(&xm, &w)) / (2.0 * eps);
        assert!(
            (fd - dx[j]).abs() <= 1e-3,
            "dx[{j}]: fd {fd}, backprop {}",
            dx[j]
        );
    }
    for j in 0..w.len() {
        let (mut wp, mut wm) = (w.clone(), w.clone());
        wp[j] += eps;
        wm[j] -= eps;
        let fd = (loss(&x, &wp) - loss(&x, &wm)) / (2.0 * eps);
        assert!(
            (fd - dw[j]).abs() <= 2e-3,
            "dw[{j}]: fd {fd}, backprop {}",
            dw[j]
        );
    }
}

#[test]
fn non_contiguous_and_half_precision_inputs() {
    let case = Case::new(2, 3, 2, (6, 7), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1));
    let (x, w, _) = inputs(&case, 11);
    let expected = case.naive_forward(&x, &w);
    // x stored as [N, C, W, H] and transposed back: a non-contiguous view.
    let xt = tensor(&x, &case.x_dims(), DType::F32)
        .unwrap()
        .transpose(2, 3)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(2, 3)
        .unwrap();
    assert!(!xt.is_contiguous());
    let wt = tensor(&w, &case.w_dims(), DType::F32).unwrap();
    let y = ops::depthwise_conv2d(&xt, &wt, &case.win).unwrap();
    assert_close(&values(&y), &expected, 1e-5, 1e-5, "non-contiguous");
    for dtype in [DType::F16, DType::BF16] {
        let y = ops::depthwise_conv2d(
            &xt.to_dtype(dtype).unwrap(),
            &wt.to_dtype(dtype).unwrap(),
            &case.win,
        )
        .unwrap();
        assert_eq!(y.dtype(), dtype);
        assert_close(&values(&y), &expected, 0.1, 0.02, &format!("{dtype:?}"));
    }
}

#[test]
fn frozen_input_gets_no_gradient_and_weight_still_does() {
    let case = Case::new(1, 2, 1, (5, 5), (3, 3), (1, 1), (1, 1), Pad2d::uniform(1));
    let (x, w, gy) = inputs(&case, 3);
    let xt = tensor(&x, &case.x_dims(), DType::F32).unwrap();
    let wv = Var::from_tensor(&tensor(&w, &case.w_dims(), DType::F32).unwrap()).unwrap();
    let r = tensor(&gy, &case.y_dims(), DType::F32).unwrap();
    let y = ops::depthwise_conv2d(&xt, wv.as_tensor(), &case.win).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&xt).is_none());
    let (_, dw) = case.naive_backward(&x, &w, &gy);
    assert_close(
        &values(grads.get(wv.as_tensor()).unwrap()),
        &dw,
        1e-4,
        1e-5,
        "dw",
    );
}

#[test]
fn rejects_bad_shapes() {
    let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &candle_core::Device::Cpu).unwrap();
    let win = Window2d::new((3, 3), (1, 1), Pad2d::uniform(1));
    // 4 output channels is not a multiple of 3 input channels.
    let w = Tensor::zeros((4, 1, 3, 3), DType::F32, &candle_core::Device::Cpu).unwrap();
    assert!(ops::depthwise_conv2d(&x, &w, &win).is_err());
    // Kernel of the weight differs from the window's.
    let w = Tensor::zeros((3, 1, 5, 5), DType::F32, &candle_core::Device::Cpu).unwrap();
    assert!(ops::depthwise_conv2d(&x, &w, &win).is_err());
    // Window larger than the padded input.
    let w = Tensor::zeros((3, 1, 9, 9), DType::F32, &candle_core::Device::Cpu).unwrap();
    let big = Window2d::new((9, 9), (1, 1), Pad2d::ZERO);
    assert!(ops::depthwise_conv2d(&x, &w, &big).is_err());
}
