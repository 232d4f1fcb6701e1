//! The CPU max and average pooling kernels against naive loops, the composite reference
//! (padding + candle pooling) and finite differences: forward and input gradients.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, composite, pool, taps, Pad2d, Window2d};
use candle_core::{DType, Tensor, Var};

#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    win: Window2d,
}

impl Case {
    fn new(
        n: usize,
        c: usize,
        hw: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        pad: Pad2d,
    ) -> Self {
        Case {
            n,
            c,
            h: hw.0,
            w: hw.1,
            win: Window2d::new(k, s, pad),
        }
    }

    fn dilated(mut self, d: (usize, usize)) -> Self {
        self.win.dilation = d;
        self
    }

    fn x_dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    fn y_dims(&self) -> [usize; 4] {
        let (oh, ow) = self.win.output_size(self.h, self.w).expect("case fits");
        [self.n, self.c, oh, ow]
    }

    /// For each output (in order), the input indices inside its window, row-major.
    fn windows(&self) -> Vec<Vec<usize>> {
        let [_, _, oh, ow] = self.y_dims();
        let mut out = Vec::new();
        for p in 0..self.n * self.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut taps = Vec::new();
                    for ky in 0..self.win.kernel.0 {
                        for kx in 0..self.win.kernel.1 {
                            let iy = (oy * self.win.stride.0 + ky * self.win.dilation.0) as isize
                                - self.win.pad.top as isize;
                            let ix = (ox * self.win.stride.1 + kx * self.win.dilation.1) as isize
                                - self.win.pad.left as isize;
                            if iy >= 0 && ix >= 0 && iy < self.h as isize && ix < self.w as isize {
                                taps.push((p * self.h + iy as usize) * self.w + ix as usize);
                            }
                        }
                    }
                    out.push(taps);
                }
            }
        }
        out
    }

    /// Naive max pooling over -inf padding: outputs and input gradient (first maximum wins).
    fn naive_max(&self, x: &[f64], gy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut y = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for (o, taps) in self.windows().iter().enumerate() {
            let mut best: Option<usize> = None;
            for &t in taps {
                if best.is_none_or(|b| x[t] > x[b]) {
                    best = Some(t);
                }
            }
            match best {
                Some(b) => {
                    y.push(x[b]);
                    dx[b] += gy[o];
                }
                None => y.push(f64::NEG_INFINITY),
            }
        }
        (y, dx)
    }

    /// Naive average pooling excluding padding from the count: outputs and input gradient.
    fn naive_avg(&self, x: &[f64], gy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut y = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for (o, taps) in self.windows().iter().enumerate() {
            if taps.is_empty() {
                y.push(0.0);
                continue;
            }
            let k = taps.len() as f64;
            y.push(taps.iter().map(|&t| x[t]).sum::<f64>() / k);
            for &t in taps {
                dx[t] += gy[o] / k;
            }
        }
        (y, dx)
    }
}

fn tf_same(size: usize, k: usize, s: usize) -> (usize, usize) {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(size);
    (total / 2, total - total / 2)
}

fn cases() -> Vec<Case> {
    let (t, b) = tf_same(176, 3, 2);
    assert_eq!((t, b), (0, 1));
    let mut v = vec![
        // 3x3 stride 2 TF "same" on even sizes: pad row/column at the bottom/right only.
        Case::new(
            2,
            3,
            (8, 10),
            (3, 3),
            (2, 2),
            Pad2d {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
        ),
        // ... and on odd sizes: one each side.
        Case::new(1, 2, (9, 7), (3, 3), (2, 2), Pad2d::uniform(1)),
        // 2x2 stride 2 valid (kernel == stride).
        Case::new(2, 2, (6, 8), (2, 2), (2, 2), Pad2d::ZERO),
        // 3x3 stride 1 same (overlapping).
        Case::new(1, 3, (5, 6), (3, 3), (1, 1), Pad2d::uniform(1)),
        // Stride larger than the kernel.
        Case::new(2, 2, (10, 11), (2, 2), (3, 4), Pad2d::ZERO),
        // 1x1 spatial.
        Case::new(3, 2, (1, 1), (1, 1), (1, 1), Pad2d::ZERO),
        Case::new(1, 2, (1, 1), (3, 3), (2, 2), Pad2d::uniform(1)),
        // Asymmetric padding, rectangular kernel and stride.
        Case::new(
            2,
            2,
            (7, 9),
            (2, 3),
            (1, 2),
            Pad2d {
                top: 1,
                bottom: 0,
                left: 2,
                right: 1,
            },
        ),
        // Wide rows.
        Case::new(
            1,
            2,
            (5, 70),
            (3, 3),
            (2, 2),
            Pad2d {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
        ),
        // Global pooling.
        Case::new(2, 3, (5, 4), (5, 4), (1, 1), Pad2d::ZERO),
    ];
    let mut rng = Rng::new(17);
    // Random windows over narrow planes (outputs under 16 wide: the window-table path) and
    // wide ones (the row kernels).
    while v.len() < 50 {
        let wide = v.len() >= 40;
        let k = (rng.range(1, 4), rng.range(1, 4));
        let pad = Pad2d {
            top: rng.range(0, k.0 - 1),
            bottom: rng.range(0, k.0 - 1),
            left: rng.range(0, k.1 - 1),
            right: rng.range(0, k.1 - 1),
        };
        let case = Case::new(
            rng.range(1, 3),
            rng.range(1, 3),
            (
                rng.range(1, 12),
                rng.range(1, 20) + if wide { 50 } else { 0 },
            ),
            k,
            (rng.range(1, 3), rng.range(1, 3)),
            pad,
        );
        if case.win.output_size(case.h, case.w).is_some() {
            v.push(case);
        }
    }
    v
}

fn dilated_cases() -> Vec<Case> {
    vec![
        Case::new(1, 2, (9, 8), (3, 3), (1, 1), Pad2d::uniform(2)).dilated((2, 2)),
        Case::new(
            2,
            1,
            (7, 10),
            (2, 3),
            (2, 1),
            Pad2d {
                top: 1,
                bottom: 0,
                left: 0,
                right: 2,
            },
        )
        .dilated((3, 2)),
    ]
}

type PoolFn = fn(&Tensor, &Window2d) -> candle_core::Result<Tensor>;

/// Runs `pool` with `loss = sum(y * gy)` and returns `(y, dx)`.
fn run_with_grad(
    case: &Case,
    x: &[f64],
    gy: &[f64],
    dtype: DType,
    pool: PoolFn,
) -> (Vec<f64>, Vec<f64>) {
    let xv = Var::from_tensor(&tensor(x, &case.x_dims(), dtype).unwrap()).unwrap();
    let y = pool(xv.as_tensor(), &case.win).unwrap();
    assert_eq!(y.dims(), case.y_dims(), "{case:?}");
    let r = tensor(gy, &case.y_dims(), dtype).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(xv.as_tensor()).expect("input gradient");
    assert_eq!(dx.dims(), case.x_dims());
    (values(&y), values(dx))
}

fn data(case: &Case, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    (
        rng.vec(case.x_dims().iter().product()),
        rng.vec(case.y_dims().iter().product()),
    )
}

#[test]
fn max_pool_forward_and_gradient_match_naive_loops() {
    for (i, case) in cases().iter().chain(&dilated_cases()).enumerate() {
        let (x, gy) = data(case, i as u64);
        let (y, dx) = case.naive_max(&x, &gy);
        for dtype in [DType::F64, DType::F32] {
            let (fy, fdx) = run_with_grad(case, &x, &gy, dtype, pool::max_pool2d_cpu);
            assert_close(
                &fy,
                &y,
                1e-6,
                1e-6,
                &format!("max forward {case:?} {dtype:?}"),
            );
            assert_close(
                &fdx,
                &dx,
                1e-6,
                1e-6,
                &format!("max gradient {case:?} {dtype:?}"),
            );
        }
        let (fy, _) = run_with_grad(case, &x, &gy, DType::F32, ops::max_pool2d);
        assert_close(&fy, &y, 1e-6, 1e-6, &format!("max dispatch {case:?}"));
    }
}

#[test]
fn avg_pool_forward_and_gradient_match_naive_loops() {
    for (i, case) in cases().iter().chain(&dilated_cases()).enumerate() {
        let (x, gy) = data(case, 50 + i as u64);
        let (y, dx) = case.naive_avg(&x, &gy);
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
            let (fy, fdx) = run_with_grad(case, &x, &gy, dtype, pool::avg_pool2d_cpu);
            assert_close(
                &fy,
                &y,
                tol,
                tol,
                &format!("avg forward {case:?} {dtype:?}"),
            );
            assert_close(
                &fdx,
                &dx,
                tol,
                tol,
                &format!("avg gradient {case:?} {dtype:?}"),
            );
        }
        let (fy, _) = run_with_grad(case, &x, &gy, DType::F32, ops::avg_pool2d);
        assert_close(&fy, &y, 1e-6, 1e-6, &format!("avg dispatch {case:?}"));
    }
}

#[test]
fn taps_path_matches_naive_loops() {
    // The path off the CPU (one candle op per window tap), run here on the CPU.
    for (i, case) in cases().iter().chain(&dilated_cases()).enumerate() {
        let (x, gy) = data(case, 50 + i as u64);
        let (y, dx) = case.naive_max(&x, &gy);
        let (ty, tdx) = run_with_grad(case, &x, &gy, DType::F64, taps::max_pool2d);
        assert_close(&ty, &y, 0.0, 0.0, &format!("max forward {case:?}"));
        assert_close(&tdx, &dx, 1e-12, 1e-12, &format!("max gradient {case:?}"));
        let (y, dx) = case.naive_avg(&x, &gy);
        let (ty, tdx) = run_with_grad(case, &x, &gy, DType::F64, taps::avg_pool2d);
        assert_close(&ty, &y, 1e-12, 1e-12, &format!("avg forward {case:?}"));
        assert_close(&tdx, &dx, 1e-12, 1e-12, &format!("avg gradient {case:?}"));
    }
}

#[test]
fn forward_matches_composite_reference() {
    for (i, case) in cases().iter().enumerate() {
        let (x, _) = data(case, 100 + i as u64);
        let xt = tensor(&x, &case.x_dims(), DType::F64).unwrap();
        let ours = values(&pool::max_pool2d_cpu(&xt, &case.win).unwrap());
        let reference = values(&composite::max_pool2d(&xt, &case.win).unwrap());
        assert_close(&ours, &reference, 0.0, 0.0, &format!("max {case:?}"));
        let ours = values(&pool::avg_pool2d_cpu(&xt, &case.win).unwrap());
        let reference = values(&composite::avg_pool2d(&xt, &case.win).unwrap());
        assert_close(&ours, &reference, 1e-12, 1e-12, &format!("avg {case:?}"));
    }
}

#[test]
fn gradients_match_candle_where_candle_has_a_backward() {
    let mut compared = 0;
    for (i, case) in cases().iter().enumerate() {
        // candle's pooling backward needs kernel == stride, and upsamples the gradient to the
        // padded input size, which is only right when the windows tile it exactly.
        let (ph, pw) = (
            case.h + case.win.pad.top + case.win.pad.bottom,
            case.w + case.win.pad.left + case.win.pad.right,
        );
        if case.win.kernel != case.win.stride
            || ph % case.win.kernel.0 != 0
            || pw % case.win.kernel.1 != 0
        {
            continue;
        }
        let (x, gy) = data(case, 150 + i as u64);
        let (_, rdx) = run_with_grad(case, &x, &gy, DType::F64, composite::avg_pool2d);
        let (_, fdx) = run_with_grad(case, &x, &gy, DType::F64, pool::avg_pool2d_cpu);
        assert_close(&fdx, &rdx, 1e-12, 1e-12, &format!("avg gradient {case:?}"));
        if case.win.pad.is_zero() {
            let (_, rdx) = run_with_grad(case, &x, &gy, DType::F64, composite::max_pool2d);
            let (_, fdx) = run_with_grad(case, &x, &gy, DType::F64, pool::max_pool2d_cpu);
            // candle 0.11.1's max-pool backward multiplies the gradient by the average of
            // the "is max" mask over the window (1 / kernel area with a single maximum)
            // where it means to divide by the number of maxima: its gradient is ours scaled
            // by 1 / (kh * kw). Ours agrees with naive loops and finite differences.
            let area = (case.win.kernel.0 * case.win.kernel.1) as f64;
            let rdx: Vec<f64> = rdx.iter().map(|v| v * area).collect();
            assert_close(&fdx, &rdx, 1e-12, 1e-12, &format!("max gradient {case:?}"));
        }
        compared += 1;
    }
    assert!(compared >= 2, "only {compared} cases compared");
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = Rng::new(5);
    for (i, case) in cases()
        .iter()
        .chain(&dilated_cases())
        .enumerate()
        .step_by(2)
    {
        let (x, gy) = data(case, 200 + i as u64);
        for p in [ops::max_pool2d as PoolFn, ops::avg_pool2d] {
            let (_, dx) = run_with_grad(case, &x, &gy, DType::F64, p);
            let loss = |x: &[f64]| -> f64 {
                let y = p(&tensor(x, &case.x_dims(), DType::F64).unwrap(), &case.win).unwrap();
                values(&y)
                    .iter()
                    .zip(&gy)
                    .filter(|(a, _)| a.is_finite())
                    .map(|(a, b)| a * b)
                    .sum()
            };
            // Max pooling: the step must not change which element wins; with values drawn
            // uniformly from [-1, 1] a step of 1e-7 almost surely does not.
            let eps = 1e-7;
            for _ in 0..8 {
                let j = rng.range(0, x.len() - 1);
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[j] += eps;
                xm[j] -= eps;
                let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps);
                assert!(
                    (fd - dx[j]).abs() <= 1e-6,
                    "dx[{j}] {case:?}: fd {fd}, backprop {}",
                    dx[j]
                );
            }
        }
    }
}

#[test]
fn windows_entirely_in_padding() {
    // 1x1 input, 2x2 window, 3 rows/columns of padding: the corner windows see no input.
    let case = Case::new(1, 1, (1, 1), (2, 2), (1, 1), Pad2d::uniform(3));
    let x = [2.5];
    let gy: Vec<f64> = (0..36).map(|i| i as f64).collect();
    let (y, dx) = run_with_grad(&case, &x, &gy, DType::F32, ops::max_pool2d);
    let (ny, ndx) = case.naive_max(&x, &gy);
    assert_eq!(y.iter().filter(|v| **v == 2.5).count(), 4);
    assert_eq!(y.iter().filter(|v| **v == f64::NEG_INFINITY).count(), 32);
    assert_close(&y, &ny, 0.0, 0.0, "max forward");
    assert_close(&dx, &ndx, 0.0, 0.0, "max gradient");
    let (y, dx) = run_with_grad(&case, &x, &gy, DType::F32, ops::avg_pool2d);
    let (ny, ndx) = case.naive_avg(&x, &gy);
    assert_close(&y, &ny, 0.0, 0.0, "avg forward");
    assert_close(&dx, &ndx, 1e-6, 1e-6, "avg gradient");
    // The taps path agrees: -inf and 0 where a window sees no input.
    let (y, _) = run_with_grad(&case, &x, &gy, DType::F32, taps::max_pool2d);
    assert_close(&y, &case.naive_max(&x, &gy).0, 0.0, 0.0, "taps max forward");
    let (y, dx) = run_with_grad(&case, &x, &gy, DType::F32, taps::avg_pool2d);
    assert_close(&y, &ny, 0.0, 0.0, "taps avg forward");
    assert_close(&dx, &ndx, 1e-6, 1e-6, "taps avg gradient");
}

#[test]
fn ties_send_the_gradient_to_the_first_maximum_only() {
    // Every window is all ones: the whole gradient goes to each window's top-left element.
    let case = Case::new(1, 1, (4, 4), (2, 2), (2, 2), Pad2d::ZERO);
    let x = [1.0; 16];
    let gy = [1.0, 2.0, 3.0, 4.0];
    let (_, dx) = run_with_grad(&case, &x, &gy, DType::F32, ops::max_pool2d);
    let mut expected = [0.0; 16];
    expected[0] = 1.0;
    expected[2] = 2.0;
    expected[8] = 3.0;
    expected[10] = 4.0;
    assert_close(&dx, &expected, 0.0, 0.0, "ties");
    // Wide rows (the vectorised interior path), overlapping windows, values in {0, 1} so
    // that most windows hold ties: the gradient matches the naive first-maximum rule.
    for (k, s) in [(3, 2), (3, 1), (2, 2)] {
        let case = Case::new(
            2,
            2,
            (9, 41),
            (k, k),
            (s, s),
            Pad2d {
                top: 0,
                bottom: 1,
                left: 1,
                right: 1,
            },
        );
        let mut rng = Rng::new(k as u64 * 10 + s as u64);
        let x: Vec<f64> = (0..2 * 2 * 9 * 41)
            .map(|_| (rng.uniform() > 0.3) as u8 as f64)
            .collect();
        let gy = rng.vec(case.y_dims().iter().product());
        let (y, dx) = run_with_grad(&case, &x, &gy, DType::F32, ops::max_pool2d);
        let (ny, ndx) = case.naive_max(&x, &gy);
        assert_close(&y, &ny, 0.0, 0.0, &format!("ties forward {case:?}"));
        assert_close(&dx, &ndx, 1e-6, 1e-6, &format!("ties gradient {case:?}"));
    }
}

#[test]
fn inference_without_tracking_and_half_precision() {
    let case = cases()[0];
    let (x, gy) = data(&case, 9);
    let (y, _) = case.naive_max(&x, &gy);
    let xt = tensor(&x, &case.x_dims(), DType::F32).unwrap();
    assert_close(
        &values(&ops::max_pool2d(&xt, &case.win).unwrap()),
        &y,
        1e-6,
        1e-6,
        "untracked",
    );
    let yh = ops::max_pool2d(&xt.to_dtype(DType::BF16).unwrap(), &case.win).unwrap();
    assert_eq!(yh.dtype(), DType::BF16);
    assert_close(&values(&yh), &y, 1e-2, 1e-2, "bf16");
    let (ya, _) = case.naive_avg(&x, &gy);
    let ya16 = ops::avg_pool2d(&xt.to_dtype(DType::F16).unwrap(), &case.win).unwrap();
    assert_close(&values(&ya16), &ya, 2e-3, 2e-3, "f16");
}
