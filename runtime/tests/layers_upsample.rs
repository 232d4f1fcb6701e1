//! `upsample2d` (nearest and bilinear with `align_corners = False`) against plain loops of
//! PyTorch's definition, hand-computed values, and finite-difference gradients.

mod common;
mod layers_common;

use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, values};
use convnet_runtime::layers::{upsample2d, UpsampleMode};
use layers_common::{check_gradients, random, weighted_sum};

fn naive(
    x: &[f64],
    (n, c, h, w): (usize, usize, usize, usize),
    (sh, sw): (usize, usize),
    bilinear: bool,
) -> Vec<f64> {
    let (oh, ow) = (h * sh, w * sw);
    let mut y = Vec::with_capacity(n * c * oh * ow);
    // PyTorch's area_pixel_compute_source_index with align_corners = False.
    let source = |o: usize, scale: usize, size: usize| {
        let s = ((o as f64 + 0.5) / scale as f64 - 0.5).max(0.0);
        let i0 = s.floor() as usize;
        let i1 = if i0 + 1 < size { i0 + 1 } else { i0 };
        (i0, i1, s - i0 as f64)
    };
    for plane in 0..n * c {
        let at = |i: usize, j: usize| x[plane * h * w + i * w + j];
        for oy in 0..oh {
            for ox in 0..ow {
                y.push(if bilinear {
                    let (y0, y1, ly) = source(oy, sh, h);
                    let (x0, x1, lx) = source(ox, sw, w);
                    (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1))
                        + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1))
                } else {
                    at(oy / sh, ox / sw)
                });
            }
        }
    }
    y
}

fn check(mode: UpsampleMode) {
    let bilinear = mode == UpsampleMode::Bilinear;
    for (dims, scale) in [
        ((2, 3, 4, 5), (2, 2)),
        ((1, 2, 3, 2), (3, 1)),
        ((1, 1, 1, 3), (2, 4)),
    ] {
        let (n, c, h, w) = dims;
        let x = random(&[n, c, h, w], 5);
        let y = upsample2d(&x, scale, mode).unwrap();
        assert_eq!(y.dims(), &[n, c, h * scale.0, w * scale.1]);
        assert_close(
            &values(&y),
            &naive(&values(&x), dims, scale, bilinear),
            1e-12,
            1e-12,
            "upsample2d",
        );
        let y32 = upsample2d(&x.to_dtype(DType::F32).unwrap(), scale, mode).unwrap();
        assert_close(&values(&y32), &values(&y), 1e-6, 1e-6, "upsample2d f32");
        let x = Var::from_tensor(&x).unwrap();
        check_gradients(
            &|| weighted_sum(&upsample2d(x.as_tensor(), scale, mode)?),
            &[("x", &x)],
            1e-7,
            1e-6,
        );
    }
}

#[test]
fn nearest_repeats_pixels_and_sums_gradients() {
    check(UpsampleMode::Nearest);
}

#[test]
fn bilinear_matches_pytorch_align_corners_false() {
    check(UpsampleMode::Bilinear);
    // torch.nn.functional.interpolate(tensor([[[[0., 1.]]]]), scale_factor=2, mode="bilinear")
    // is [[0, 0.25, 0.75, 1], [0, 0.25, 0.75, 1]].
    let x = Tensor::new(&[[[[0f32, 1.0]]]], &Device::Cpu).unwrap();
    let y = upsample2d(&x, (2, 2), UpsampleMode::Bilinear).unwrap();
    assert_close(
        &values(&y),
        &[0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0],
        1e-7,
        0.0,
        "hand values",
    );
}

#[test]
fn zero_scale_is_an_error() {
    let x = random(&[1, 1, 2, 2], 1);
    let err = upsample2d(&x, (0, 2), UpsampleMode::Nearest)
        .unwrap_err()
        .to_string();
    assert!(err.contains("upsample2d scale"), "{err}");
}
