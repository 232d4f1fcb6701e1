//! `LayerNorm2d`, `GroupNorm` and `LayerScale` against plain-loop references (forward) and
//! finite differences (gradients for the input and every parameter).

mod common;
mod layers_common;

use candle_core::{DType, Device, Module, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use common::{assert_close, values};
use convnet_runtime::layers::{group_norm, layer_norm2d, layer_scale};
use layers_common::{check_gradients, random, weighted_sum};

/// Normalises `x` `[n, c, hw]` over each set of `(channel, position)` indices that
/// `group_of(channel, position)` maps to the same key, per example, then applies
/// `w[c] * . + b[c]`.
#[allow(clippy::too_many_arguments)]
fn naive_norm(
    x: &[f64],
    (n, c, hw): (usize, usize, usize),
    w: &[f64],
    b: &[f64],
    eps: f64,
    group_of: impl Fn(usize, usize) -> usize,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for e in 0..n {
        let at = |ch: usize, p: usize| e * c * hw + ch * hw + p;
        let mut sums: std::collections::BTreeMap<usize, (f64, f64, f64)> = Default::default();
        for ch in 0..c {
            for p in 0..hw {
                let s = sums.entry(group_of(ch, p)).or_default();
                s.0 += x[at(ch, p)];
                s.2 += 1.0;
            }
        }
        for ch in 0..c {
            for p in 0..hw {
                let s = sums.get_mut(&group_of(ch, p)).unwrap();
                let d = x[at(ch, p)] - s.0 / s.2;
                s.1 += d * d;
            }
        }
        for ch in 0..c {
            for p in 0..hw {
                let (sum, sq, count) = sums[&group_of(ch, p)];
                let norm = (x[at(ch, p)] - sum / count) / (sq / count + eps).sqrt();
                y[at(ch, p)] = norm * w[ch] + b[ch];
            }
        }
    }
    y
}

/// Sets the variables of `varmap` to random values (so weight and bias are not 1 and 0).
fn randomise(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap();
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, v)) in vars.iter().enumerate() {
        v.set(&(random(v.dims(), 100 + i as u64) + 1.0).unwrap())
            .unwrap();
    }
    vars
}

fn param(varmap: &VarMap, name: &str) -> Vec<f64> {
    values(varmap.data().lock().unwrap()[name].as_tensor())
}

#[test]
fn layer_norm2d_normalises_over_channels_at_each_pixel() {
    let (n, c, h, w) = (2, 5, 3, 4);
    let varmap = VarMap::new();
    let ln = layer_norm2d(
        c,
        1e-6,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    let vars = randomise(&varmap);
    let x = Var::from_tensor(&(random(&[n, c, h, w], 1) * 3.0).unwrap()).unwrap();
    let y = ln.forward_t(x.as_tensor(), true).unwrap();
    let expected = naive_norm(
        &values(x.as_tensor()),
        (n, c, h * w),
        &param(&varmap, "weight"),
        &param(&varmap, "bias"),
        1e-6,
        |_, p| p,
    );
    assert_close(&values(&y), &expected, 1e-10, 1e-10, "layer_norm2d");
    let mut named: Vec<(&str, &Var)> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
    named.push(("x", &x));
    check_gradients(
        &|| weighted_sum(&ln.forward_t(x.as_tensor(), true)?),
        &named,
        1e-6,
        1e-5,
    );
}

#[test]
fn layer_norm2d_on_features_is_the_usual_layer_norm() {
    let varmap = VarMap::new();
    let ln = layer_norm2d(
        6,
        1e-5,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    randomise(&varmap);
    let x = random(&[3, 6], 2);
    let expected = naive_norm(
        &values(&x),
        (3, 6, 1),
        &param(&varmap, "weight"),
        &param(&varmap, "bias"),
        1e-5,
        |_, _| 0,
    );
    assert_close(
        &values(&ln.forward_t(&x, false).unwrap()),
        &expected,
        1e-10,
        1e-10,
        "layer_norm on (F)",
    );
    assert!(
        ln.forward_t(&random(&[3, 5], 2), false).is_err(),
        "wrong channel count is an error"
    );
}

#[test]
fn group_norm_matches_pytorch_semantics() {
    let (n, c, h, w, groups) = (2, 6, 3, 3, 3);
    let varmap = VarMap::new();
    let gn = group_norm(
        c,
        groups,
        1e-5,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    assert!(group_norm(
        c,
        4,
        1e-5,
        VarBuilder::from_varmap(&VarMap::new(), DType::F64, &Device::Cpu)
    )
    .is_err());
    let vars = randomise(&varmap);
    let x = Var::from_tensor(&random(&[n, c, h, w], 3).affine(2.0, 0.5).unwrap()).unwrap();
    let y = gn.forward_t(x.as_tensor(), true).unwrap();
    let per = c / groups;
    let expected = naive_norm(
        &values(x.as_tensor()),
        (n, c, h * w),
        &param(&varmap, "weight"),
        &param(&varmap, "bias"),
        1e-5,
        |ch, _| ch / per,
    );
    assert_close(&values(&y), &expected, 1e-10, 1e-10, "group_norm");
    let mut named: Vec<(&str, &Var)> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
    named.push(("x", &x));
    check_gradients(
        &|| weighted_sum(&gn.forward_t(x.as_tensor(), true)?),
        &named,
        1e-6,
        1e-5,
    );
    // One group is layer norm over (C, H, W); C groups is instance norm.
    let one = group_norm(
        c,
        1,
        1e-5,
        VarBuilder::from_varmap(&VarMap::new(), DType::F64, &Device::Cpu),
    )
    .unwrap();
    let expected = naive_norm(
        &values(x.as_tensor()),
        (n, c, h * w),
        &[1.0; 6],
        &[0.0; 6],
        1e-5,
        |_, _| 0,
    );
    assert_close(
        &values(&one.forward_t(x.as_tensor(), false).unwrap()),
        &expected,
        1e-10,
        1e-10,
        "group_norm(1)",
    );
}

#[test]
fn layer_scale_multiplies_each_channel_and_starts_at_init() {
    let varmap = VarMap::new();
    let ls = layer_scale(
        3,
        1e-6,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(param(&varmap, "gamma"), vec![1e-6; 3]);
    let vars = randomise(&varmap);
    let gamma = param(&varmap, "gamma");
    let x = Var::from_tensor(&random(&[2, 3, 2, 2], 4)).unwrap();
    let xs = values(x.as_tensor());
    let expected: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| v * gamma[(i / 4) % 3])
        .collect();
    assert_close(
        &values(&ls.forward(x.as_tensor()).unwrap()),
        &expected,
        1e-12,
        0.0,
        "layer_scale",
    );
    let named = [("gamma", &vars[0].1), ("x", &x)];
    check_gradients(
        &|| weighted_sum(&ls.forward(x.as_tensor())?),
        &named,
        1e-7,
        1e-6,
    );
}
