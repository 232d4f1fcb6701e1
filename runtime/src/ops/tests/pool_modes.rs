//! PyTorch's pooling modes on the CPU kernels and the per-tap path: `count_include_pad`
//! (the divisor counts the declared padding) and `ceil_mode` (written as extra bottom/right
//! padding that is never counted), against a transcription of ATen's loops, and the
//! gradients against finite differences.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, pool, taps, Pad2d, Window2d};
use candle_core::{DType, Tensor, Var};

/// One `nn.MaxPool2d` / `nn.AvgPool2d` configuration (symmetric padding, as PyTorch has).
#[derive(Debug, Clone, Copy)]
struct Torch {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    ceil: bool,
}

/// ATen's `pooling_output_shape`: with `ceil_mode` the last window may overhang, but must
/// start inside the input or the left padding.
fn torch_out(size: usize, k: usize, p: usize, s: usize, ceil: bool) -> usize {
    let span = size + 2 * p - k + if ceil { s - 1 } else { 0 };
    let mut out = span / s + 1;
    if ceil && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

impl Torch {
    fn out(&self) -> (usize, usize) {
        (
            torch_out(self.h, self.k.0, self.p.0, self.s.0, self.ceil),
            torch_out(self.w, self.k.1, self.p.1, self.s.1, self.ceil),
        )
    }

    fn x_dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    fn y_dims(&self) -> [usize; 4] {
        let (oh, ow) = self.out();
        [self.n, self.c, oh, ow]
    }

    /// The window this project runs: the declared padding on every side, plus the overhang
    /// of the last window at the bottom and right in ceil mode.
    fn window(&self) -> Window2d {
        let (oh, ow) = self.out();
        let extra = |o: usize, k: usize, s: usize, size: usize, p: usize| {
            ((o - 1) * s + k).saturating_sub(size + 2 * p)
        };
        Window2d::new(
            self.k,
            self.s,
            Pad2d {
                top: self.p.0,
                bottom: self.p.0 + extra(oh, self.k.0, self.s.0, self.h, self.p.0),
                left: self.p.1,
                right: self.p.1 + extra(ow, self.k.1, self.s.1, self.w, self.p.1),
            },
        )
    }

    /// ATen's `avg_pool2d` forward loop (`count_include_pad` chooses the divisor) and the
    /// matching input gradient of `sum(y * gy)`.
    fn naive_avg(&self, x: &[f64], gy: &[f64], include_pad: bool) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = self.out();
        let (h, w) = (self.h as isize, self.w as isize);
        let (ph, pw) = (self.p.0 as isize, self.p.1 as isize);
        let mut y = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for plane in 0..self.n * self.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * self.s.0) as isize - ph;
                    let ws = (ox * self.s.1) as isize - pw;
                    let he = (hs + self.k.0 as isize).min(h + ph);
                    let we = (ws + self.k.1 as isize).min(w + pw);
                    let pool_size = (he - hs) * (we - ws);
                    let (hs, ws, he, we) = (hs.max(0), ws.max(0), he.min(h), we.min(w));
                    let div = if include_pad {
                        pool_size
                    } else {
                        (he - hs) * (we - ws)
                    } as f64;
                    let at = |iy: isize, ix: isize| {
                        (plane * self.h + iy as usize) * self.w + ix as usize
                    };
                    let mut sum = 0.0;
                    for iy in hs..he {
                        for ix in ws..we {
                            sum += x[at(iy, ix)];
                        }
                    }
                    let o = y.len();
                    y.push(sum / div);
                    for iy in hs..he {
                        for ix in ws..we {
                            dx[at(iy, ix)] += gy[o] / div;
                        }
                    }
                }
            }
        }
        (y, dx)
    }

    /// ATen's `max_pool2d` forward (first maximum wins) and its input gradient.
    fn naive_max(&self, x: &[f64], gy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = self.out();
        let (h, w) = (self.h as isize, self.w as isize);
        let mut y = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for plane in 0..self.n * self.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * self.s.0) as isize - self.p.0 as isize;
                    let ws = (ox * self.s.1) as isize - self.p.1 as isize;
                    let mut best: Option<usize> = None;
                    for iy in hs.max(0)..(hs + self.k.0 as isize).min(h) {
                        for ix in ws.max(0)..(ws + self.k.1 as isize).min(w) {
                            let i = (plane * self.h + iy as usize) * self.w + ix as usize;
                            if best.is_none_or(|b| x[i] > x[b]) {
                                best = Some(i);
                            }
                        }
                    }
                    let b = best.expect("every PyTorch window holds an input position");
                    dx[b] += gy[y.len()];
                    y.push(x[b]);
                }
            }
        }
        (y, dx)
    }
}

fn cases() -> Vec<Torch> {
    let t = |hw: (usize, usize), k, s, p, ceil| Torch {
        n: 2,
        c: 2,
        h: hw.0,
        w: hw.1,
        k: (k, k),
        s: (s, s),
        p: (p, p),
        ceil,
    };
    let mut v = vec![
        // GoogLeNet's `MaxPool2d(3, 2, ceil_mode=True)` on 112 and 56 (both gain a window).
        t((112, 56), 3, 2, 0, true),
        // ResNet's stem pool and a `padding = 1` average pool that counts the padding.
        t((16, 15), 3, 2, 1, false),
        t((7, 8), 3, 2, 1, true),
        // DenseNet/ResNet-D style 2x2 average pools on odd sizes with ceil_mode.
        t((7, 9), 2, 2, 0, true),
        // The last window would start in the right padding: PyTorch drops it.
        t((5, 6), 2, 2, 1, true),
        t((4, 4), 3, 3, 1, true),
    ];
    let mut rng = Rng::new(23);
    while v.len() < 40 {
        let k = (rng.range(1, 4), rng.range(1, 4));
        let c = Torch {
            n: rng.range(1, 2),
            c: rng.range(1, 3),
            h: rng.range(1, 12),
            w: rng.range(1, 30),
            k,
            s: (rng.range(1, 3), rng.range(1, 3)),
            p: (rng.range(0, k.0 / 2), rng.range(0, k.1 / 2)),
            ceil: rng.range(0, 1) == 1,
        };
        if c.h + 2 * c.p.0 >= k.0 && c.w + 2 * c.p.1 >= k.1 {
            v.push(c);
        }
    }
    v
}

type Run = dyn Fn(&Tensor) -> candle_core::Result<Tensor>;

/// Runs `f` with `loss = sum(y * gy)` and returns `(y, dx)`.
fn with_grad(case: &Torch, x: &[f64], gy: &[f64], dtype: DType, f: &Run) -> (Vec<f64>, Vec<f64>) {
    let xv = Var::from_tensor(&tensor(x, &case.x_dims(), dtype).unwrap()).unwrap();
    let y = f(xv.as_tensor()).unwrap();
    assert_eq!(y.dims(), case.y_dims(), "{case:?}");
    let r = tensor(gy, &case.y_dims(), dtype).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    (values(&y), values(grads.get(xv.as_tensor()).unwrap()))
}

#[test]
fn ceil_mode_is_extra_bottom_right_padding() {
    for case in cases() {
        let win = case.window();
        assert_eq!(
            win.output_size(case.h, case.w),
            Some(case.out()),
            "{case:?}"
        );
    }
    // GoogLeNet: 112 -> 56 -> 28 with MaxPool2d(3, 2, ceil_mode=True).
    assert_eq!(torch_out(112, 3, 0, 2, true), 56);
    assert_eq!(torch_out(112, 3, 0, 2, false), 55);
    // The rule that drops a window starting in the right padding.
    assert_eq!(torch_out(5, 2, 1, 2, true), 3);
}

#[test]
fn avg_pool_counts_match_aten_with_and_without_the_padding() {
    for (i, case) in cases().iter().enumerate() {
        let mut rng = Rng::new(300 + i as u64);
        let x = rng.vec(case.x_dims().iter().product());
        let gy = rng.vec(case.y_dims().iter().product());
        let win = case.window();
        for include in [false, true] {
            let counted = if include {
                Pad2d::symmetric(case.p.0, case.p.1)
            } else {
                Pad2d::ZERO
            };
            let (y, dx) = case.naive_avg(&x, &gy, include);
            let cpu = move |t: &Tensor| pool::avg_pool2d_counted_cpu(t, &win, counted);
            let tap = move |t: &Tensor| taps::avg_pool2d_counted(t, &win, counted);
            let public = move |t: &Tensor| ops::avg_pool2d_counted(t, &win, counted);
            for (name, f, dtype, tol) in [
                ("cpu f64", &cpu as &Run, DType::F64, 1e-12),
                ("cpu f32", &cpu, DType::F32, 1e-6),
                ("taps", &tap, DType::F64, 1e-12),
                ("dispatch", &public, DType::F32, 1e-6),
            ] {
                let (fy, fdx) = with_grad(case, &x, &gy, dtype, f);
                let what = format!("{name} include_pad={include} {case:?}");
                assert_close(&fy, &y, tol, tol, &format!("forward {what}"));
                assert_close(&fdx, &dx, tol, tol, &format!("gradient {what}"));
            }
        }
    }
}

#[test]
fn max_pool_in_ceil_mode_matches_aten() {
    for (i, case) in cases().iter().enumerate() {
        let mut rng = Rng::new(400 + i as u64);
        let x = rng.vec(case.x_dims().iter().product());
        let gy = rng.vec(case.y_dims().iter().product());
        let win = case.window();
        let (y, dx) = case.naive_max(&x, &gy);
        let cpu = move |t: &Tensor| ops::max_pool2d(t, &win);
        let tap = move |t: &Tensor| taps::max_pool2d(t, &win);
        for (name, f) in [("cpu", &cpu as &Run), ("taps", &tap)] {
            let (fy, fdx) = with_grad(case, &x, &gy, DType::F64, f);
            assert_close(&fy, &y, 0.0, 0.0, &format!("{name} forward {case:?}"));
            assert_close(
                &fdx,
                &dx,
                1e-12,
                1e-12,
                &format!("{name} gradient {case:?}"),
            );
        }
    }
}

#[test]
fn counted_average_gradient_matches_finite_differences() {
    let mut rng = Rng::new(31);
    for (i, case) in cases().iter().enumerate().step_by(3) {
        let x = rng.vec(case.x_dims().iter().product());
        let gy = rng.vec(case.y_dims().iter().product());
        let (win, counted) = (case.window(), Pad2d::symmetric(case.p.0, case.p.1));
        let f = move |t: &Tensor| ops::avg_pool2d_counted(t, &win, counted);
        let (_, dx) = with_grad(case, &x, &gy, DType::F64, &f);
        let loss = |x: &[f64]| -> f64 {
            let y = f(&tensor(x, &case.x_dims(), DType::F64).unwrap()).unwrap();
            values(&y).iter().zip(&gy).map(|(a, b)| a * b).sum()
        };
        let eps = 1e-6;
        for _ in 0..6 {
            let j = rng.range(0, x.len() - 1);
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += eps;
            xm[j] -= eps;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps);
            assert!(
                (fd - dx[j]).abs() <= 1e-7,
                "case {i} dx[{j}] {case:?}: fd {fd}, backprop {}",
                dx[j]
            );
        }
    }
}
