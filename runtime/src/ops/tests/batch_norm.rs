//! The fused batch-norm (+ReLU) ops and the per-channel affine op against their candle-op
//! references: forward values, batch statistics and the gradients of every input, over random
//! shapes including edge cases.

use super::common::{assert_close, tensor, values, Rng};
use crate::ops::{self, composite};
use candle_core::{DType, Tensor, Var};

/// Vars from random data (`offset` added to `x`).
fn vars(rng: &mut Rng, xd: &[usize], c: usize, dt: DType, offset: f64) -> (Var, Var, Var) {
    let n: usize = xd.iter().product();
    let x: Vec<f64> = rng.vec(n).iter().map(|v| v * 2.0 + offset).collect();
    let g: Vec<f64> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
    let b = rng.vec(c);
    (
        Var::from_tensor(&tensor(&x, xd, dt).unwrap()).unwrap(),
        Var::from_tensor(&tensor(&g, &[c], dt).unwrap()).unwrap(),
        Var::from_tensor(&tensor(&b, &[c], dt).unwrap()).unwrap(),
    )
}

/// `(y, dx, dg, db)` of `f` under `loss = sum(y * r)`.
fn grads(
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    (x, g, b): &(Var, Var, Var),
    r: &Tensor,
) -> [Vec<f64>; 4] {
    let y = f(x.as_tensor(), g.as_tensor(), b.as_tensor());
    let gs = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let get = |v: &Var| values(gs.get(v.as_tensor()).expect("gradient"));
    [values(&y), get(x), get(g), get(b)]
}

fn shapes() -> Vec<Vec<usize>> {
    let mut rng = Rng::new(7);
    let mut v = vec![
        vec![1, 1, 1, 2],  // two elements per channel
        vec![2, 3, 1, 1],  // 1x1 planes
        vec![1, 5, 7, 3],  // batch 1
        vec![4, 16, 9, 9], // larger
        vec![3, 4, 5],     // rank 3
        vec![2, 6],        // rank 2 (no spatial dims)
    ];
    for _ in 0..6 {
        v.push(vec![
            rng.range(1, 4),
            rng.range(1, 9),
            rng.range(1, 11),
            rng.range(1, 11),
        ]);
    }
    v
}

#[test]
fn batch_norm_train_matches_composite_forward_stats_and_gradients() {
    let mut rng = Rng::new(1);
    for (dt, tol) in [(DType::F64, 1e-9), (DType::F32, 2e-4)] {
        for xd in shapes() {
            let c = xd[1];
            if xd.iter().product::<usize>() / c < 2 {
                continue;
            }
            for relu in [false, true] {
                for offset in [0.0, 50.0] {
                    let v = vars(&mut rng, &xd, c, dt, offset);
                    let r = tensor(&rng.vec(xd.iter().product()), &xd, dt).unwrap();
                    let what = format!("{dt:?} {xd:?} relu {relu} offset {offset}");
                    let fast = grads(
                        |x, g, b| ops::batch_norm_train(x, g, b, 1e-3, relu).unwrap().y,
                        &v,
                        &r,
                    );
                    let slow = grads(
                        |x, g, b| composite::batch_norm_train(x, g, b, 1e-3, relu).unwrap().y,
                        &v,
                        &r,
                    );
                    for (i, name) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
                        let scale = if offset > 0.0 && dt == DType::F32 {
                            10.0
                        } else {
                            1.0
                        };
                        assert_close(
                            &fast[i],
                            &slow[i],
                            tol * scale,
                            tol * scale,
                            &format!("{what} {name}"),
                        );
                    }
                    let a = ops::batch_norm_train(
                        v.0.as_tensor(),
                        v.1.as_tensor(),
                        v.2.as_tensor(),
                        1e-3,
                        relu,
                    )
                    .unwrap();
                    let b = composite::batch_norm_train(
                        v.0.as_tensor(),
                        v.1.as_tensor(),
                        v.2.as_tensor(),
                        1e-3,
                        relu,
                    )
                    .unwrap();
                    assert_close(
                        &values(&a.mean),
                        &values(&b.mean),
                        tol * 100.0,
                        tol,
                        &format!("{what} mean"),
                    );
                    assert_close(
                        &values(&a.var),
                        &values(&b.var),
                        tol * 100.0,
                        tol * 10.0,
                        &format!("{what} var"),
                    );
                }
            }
        }
    }
}

#[test]
fn channel_affine_matches_composite_forward_and_gradients() {
    let mut rng = Rng::new(2);
    for (dt, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        for xd in shapes() {
            for relu in [false, true] {
                let c = xd[1];
                let v = vars(&mut rng, &xd, c, dt, 0.0);
                let r = tensor(&rng.vec(xd.iter().product()), &xd, dt).unwrap();
                let fast = grads(
                    |x, s, b| ops::channel_affine(x, s, b, relu).unwrap(),
                    &v,
                    &r,
                );
                let slow = grads(
                    |x, s, b| composite::channel_affine(x, s, b, relu).unwrap(),
                    &v,
                    &r,
                );
                for (i, name) in ["y", "dx", "dscale", "dshift"].iter().enumerate() {
                    assert_close(
                        &fast[i],
                        &slow[i],
                        tol,
                        tol,
                        &format!("{dt:?} {xd:?} relu {relu} {name}"),
                    );
                }
            }
        }
    }
}

#[test]
fn batch_norm_eval_matches_composite_forward_and_gradients() {
    let mut rng = Rng::new(6);
    for (dt, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
        for xd in shapes() {
            for relu in [false, true] {
                let c = xd[1];
                let v = vars(&mut rng, &xd, c, dt, 0.0);
                let mean = tensor(&rng.vec(c), &[c], dt).unwrap();
                let std: Vec<f64> = rng.vec(c).iter().map(|s| 1.5 + s).collect();
                let std = tensor(&std, &[c], dt).unwrap();
                let r = tensor(&rng.vec(xd.iter().product()), &xd, dt).unwrap();
                let fast = grads(
                    |x, g, b| ops::batch_norm_eval(x, &mean, &std, g, b, relu).unwrap(),
                    &v,
                    &r,
                );
                let slow = grads(
                    |x, g, b| composite::batch_norm_eval(x, &mean, &std, g, b, relu).unwrap(),
                    &v,
                    &r,
                );
                for (i, name) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
                    assert_close(
                        &fast[i],
                        &slow[i],
                        tol,
                        tol,
                        &format!("{dt:?} {xd:?} relu {relu} {name}"),
                    );
                }
            }
        }
    }
}

#[test]
fn half_precision_and_non_contiguous_inputs() {
    let mut rng = Rng::new(3);
    let (x, g, b) = vars(&mut rng, &[2, 3, 4, 5], 3, DType::F32, 0.0);
    let xt = x.as_tensor().transpose(2, 3).unwrap();
    let fast = ops::batch_norm_train(&xt, g.as_tensor(), b.as_tensor(), 1e-5, true).unwrap();
    let slow = composite::batch_norm_train(&xt, g.as_tensor(), b.as_tensor(), 1e-5, true).unwrap();
    assert_close(
        &values(&fast.y),
        &values(&slow.y),
        1e-5,
        1e-5,
        "transposed y",
    );
    let h = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let fast = ops::batch_norm_train(
        &h(x.as_tensor()),
        &h(g.as_tensor()),
        &h(b.as_tensor()),
        1e-5,
        false,
    )
    .unwrap();
    assert_eq!(fast.y.dtype(), DType::BF16);
    let slow =
        composite::batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5, false)
            .unwrap();
    assert_close(&values(&fast.y), &values(&slow.y), 0.05, 0.02, "bf16 y");
}
