//! The `BatchNorm2d` layer against `candle_nn::BatchNorm` (outputs and running statistics) and
//! its running-variance conventions against a naive per-channel loop.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder, VarMap};
use common::{assert_close, tensor, values, Rng};
use convnet_runtime::layers::{batch_norm2d, RunningVariance};

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
