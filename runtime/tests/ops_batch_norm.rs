//! The fused batch-norm (+ReLU) ops and the per-channel affine op against their candle-op
//! references: forward values, batch statistics and the gradients of every input, over random
//! shapes including edge cases; and the
//! `BatchNorm2d` layer against `candle_nn::BatchNorm` (outputs and running statistics).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder, VarMap};
use common::{assert_close, tensor, values, Rng};
use convnet_runtime::layers::{batch_norm2d, RunningVariance};
use convnet_runtime::ops::{self, composite};

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

#[test]
fn batch_norm2d_layer_with_unbiased_running_variance_matches_candle_nn_batch_norm() {
    let dev = Device::Cpu;
    let cfg = BatchNormConfig {
        eps: 1e-3,
        remove_mean: true,
        affine: true,
        momentum: 0.01,
    };
    let mut rng = Rng::new(4);
    for relu in [false, true] {
        let vm_a = VarMap::new();
        let vm_b = VarMap::new();
        let ours = batch_norm2d(
            6,
            cfg,
            relu,
            VarBuilder::from_varmap(&vm_a, DType::F32, &dev),
        )
        .unwrap()
        .with_running_variance(RunningVariance::Unbiased);
        let theirs =
            candle_nn::batch_norm(6, cfg, VarBuilder::from_varmap(&vm_b, DType::F32, &dev))
                .unwrap();
        let mut names_a: Vec<String> = vm_a.data().lock().unwrap().keys().cloned().collect();
        let mut names_b: Vec<String> = vm_b.data().lock().unwrap().keys().cloned().collect();
        names_a.sort();
        names_b.sort();
        assert_eq!(names_a, names_b, "parameter names");
        for step in 0..3 {
            let x = tensor(&rng.vec(2 * 6 * 5 * 4), &[2, 6, 5, 4], DType::F32).unwrap();
            let x = x.affine(3.0, step as f64).unwrap();
            let post = |t: Tensor| if relu { t.relu().unwrap() } else { t };
            let a = ours.forward_t(&x, true).unwrap();
            let b = post(theirs.forward_t(&x, true).unwrap());
            assert_close(&values(&a), &values(&b), 1e-5, 1e-5, "train y");
            for name in ["running_mean", "running_var"] {
                let va = values(vm_a.data().lock().unwrap()[name].as_tensor());
                let vb = values(vm_b.data().lock().unwrap()[name].as_tensor());
                assert_close(&va, &vb, 1e-6, 1e-6, name);
            }
            let a = ours.forward_t(&x, false).unwrap();
            let b = post(theirs.forward_t(&x, false).unwrap());
            assert_close(&values(&a), &values(&b), 1e-5, 1e-5, "eval y");
        }
    }
}

/// Keras 3 (the default) updates the moving variance with the biased batch variance:
/// `moving = moving * (1 - m) + var_biased * m`; checked against a naive per-channel loop.
#[test]
fn batch_norm2d_default_running_variance_is_keras_biased() {
    let dev = Device::Cpu;
    let m = 0.1;
    let cfg = BatchNormConfig {
        eps: 1e-3,
        remove_mean: true,
        affine: true,
        momentum: m,
    };
    let (n, c, h, w) = (2, 3, 2, 2);
    let mut rng = Rng::new(5);
    let data = rng.vec(n * c * h * w);
    let x = tensor(&data, &[n, c, h, w], DType::F32).unwrap();
    for (conv, unbiased) in [
        (RunningVariance::Biased, false),
        (RunningVariance::Unbiased, true),
    ] {
        let vm = VarMap::new();
        let layer = batch_norm2d(
            c,
            cfg,
            false,
            VarBuilder::from_varmap(&vm, DType::F32, &dev),
        )
        .unwrap();
        // The default is left alone for `Biased`: that is what this test pins.
        let layer = match conv {
            RunningVariance::Biased => layer,
            RunningVariance::Unbiased => layer.with_running_variance(conv),
        };
        assert_eq!(layer.running_variance_convention(), conv);
        layer.forward_t(&x, true).unwrap();
        let got = values(vm.data().lock().unwrap()["running_var"].as_tensor());
        let count = (n * h * w) as f64;
        for ch in 0..c {
            let xs: Vec<f64> = (0..n)
                .flat_map(|i| (0..h * w).map(move |k| (i, k)))
                .map(|(i, k)| data[(i * c + ch) * h * w + k])
                .collect();
            let mean = xs.iter().sum::<f64>() / count;
            let ss = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
            let batch_var = if unbiased {
                ss / (count - 1.0)
            } else {
                ss / count
            };
            let want = 1.0 * (1.0 - m) + batch_var * m;
            assert!(
                (got[ch] - want).abs() < 1e-5,
                "{conv:?} channel {ch}: {} vs {want}",
                got[ch]
            );
        }
    }
}
