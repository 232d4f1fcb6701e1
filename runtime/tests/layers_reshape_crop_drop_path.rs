//! `reshape`, `crop2d`, `center_crop` and `DropPath` against plain loops, their gradients,
//! and drop path's training-only, per-example, seeded behaviour.

mod common;
mod layers_common;

use candle_core::{Device, Tensor, Var};
use candle_nn::ModuleT;
use common::{assert_close, values};
use convnet_runtime::layers::{center_crop, crop2d, drop_path, reshape, Pad2d};
use layers_common::{check_gradients, random, weighted_sum};

fn naive_crop(x: &[f64], (n, c, h, w): (usize, usize, usize, usize), p: Pad2d) -> Vec<f64> {
    let mut y = Vec::new();
    for plane in 0..n * c {
        for i in p.top..h - p.bottom {
            for j in p.left..w - p.right {
                y.push(x[plane * h * w + i * w + j]);
            }
        }
    }
    y
}

#[test]
fn crop2d_cuts_rows_and_columns_and_pads_the_gradient() {
    let dims = (2, 3, 6, 5);
    let crop = Pad2d {
        top: 1,
        bottom: 2,
        left: 0,
        right: 3,
    };
    let x = Var::from_tensor(&random(&[2, 3, 6, 5], 1)).unwrap();
    let y = crop2d(x.as_tensor(), crop).unwrap();
    assert_eq!(y.dims(), &[2, 3, 3, 2]);
    assert_close(
        &values(&y),
        &naive_crop(&values(x.as_tensor()), dims, crop),
        0.0,
        0.0,
        "crop2d",
    );
    check_gradients(
        &|| weighted_sum(&crop2d(x.as_tensor(), crop)?),
        &[("x", &x)],
        1e-7,
        1e-6,
    );
    let err = crop2d(
        x.as_tensor(),
        Pad2d {
            top: 3,
            bottom: 3,
            left: 0,
            right: 0,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("crop2d"), "{err}");
}

#[test]
fn center_crop_takes_the_middle_extra_at_bottom_right() {
    let x = random(&[1, 2, 7, 6], 2);
    let y = center_crop(&x, (4, 3)).unwrap();
    // 7 - 4 = 3 rows: 1 above, 2 below; 6 - 3 = 3 columns: 1 left, 2 right (Keras CenterCrop).
    let crop = Pad2d {
        top: 1,
        bottom: 2,
        left: 1,
        right: 2,
    };
    assert_close(
        &values(&y),
        &naive_crop(&values(&x), (1, 2, 7, 6), crop),
        0.0,
        0.0,
        "center_crop",
    );
    assert!(center_crop(&x, (8, 3)).is_err());
}

#[test]
fn reshape_keeps_the_batch_dim_and_the_order() {
    let x = random(&[3, 4, 1, 1], 3);
    let y = reshape(&x, &[4]).unwrap();
    assert_eq!(y.dims(), &[3, 4]);
    assert_eq!(values(&y), values(&x));
    let back = reshape(&y, &[2, 2, 1]).unwrap();
    assert_eq!(back.dims(), &[3, 2, 2, 1]);
    let err = reshape(&x, &[5]).unwrap_err().to_string();
    assert!(err.contains("reshape"), "{err}");
}

#[test]
fn drop_path_is_identity_in_eval() {
    let dp = drop_path(0.5, 7).unwrap();
    let x = random(&[8, 2, 3, 3], 4);
    assert_eq!(values(&dp.forward_t(&x, false).unwrap()), values(&x));
}

#[test]
fn drop_path_drops_whole_examples_and_rescales_the_kept() {
    let rate = 0.25;
    let dp = drop_path(rate, 42).unwrap();
    let (n, per) = (4000, 6);
    let x = Var::from_tensor(&(random(&[n, 1, 2, 3], 5) + 2.0).unwrap()).unwrap();
    let y = values(&dp.forward_t(x.as_tensor(), true).unwrap());
    let xs = values(x.as_tensor());
    let mut dropped = 0;
    for e in 0..n {
        let ratios: Vec<f64> = (0..per).map(|k| y[e * per + k] / xs[e * per + k]).collect();
        // Every element of an example shares one factor: 0 or 1 / (1 - rate).
        let factor = ratios[0];
        assert!(
            factor == 0.0 || (factor - 1.0 / (1.0 - rate)).abs() < 1e-12,
            "factor {factor}"
        );
        assert!(
            ratios.iter().all(|r| (r - factor).abs() < 1e-12),
            "example {e} is not scaled as a whole"
        );
        dropped += (factor == 0.0) as usize;
    }
    let frac = dropped as f64 / n as f64;
    assert!(
        (frac - rate).abs() < 0.03,
        "dropped fraction {frac} for rate {rate}"
    );
    // The gradient is the same mask: check it on a small batch with a fresh layer per
    // evaluation, so every evaluation draws the same mask.
    let small = Var::from_tensor(&random(&[6, 2, 2, 2], 6)).unwrap();
    check_gradients(
        &|| weighted_sum(&drop_path(0.5, 9)?.forward_t(small.as_tensor(), true)?),
        &[("x", &small)],
        1e-7,
        1e-6,
    );
}

#[test]
fn drop_path_is_deterministic_given_the_seed() {
    let x = Tensor::ones((64, 1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let masks = |seed| {
        let dp = drop_path(0.5, seed).unwrap();
        let a = values(&dp.forward_t(&x, true).unwrap());
        let b = values(&dp.forward_t(&x, true).unwrap());
        (a, b)
    };
    let (a1, b1) = masks(3);
    let (a2, b2) = masks(3);
    assert_eq!((&a1, &b1), (&a2, &b2), "same seed, same masks");
    assert_ne!(a1, b1, "the RNG advances between batches");
    assert_ne!(masks(4).0, a1, "another seed, other masks");
    assert!(drop_path(1.0, 0).is_err());
}
