//! `ConvTranspose2d` (candle's `conv_transpose2d` and its autograd rule) against a naive
//! scatter loop with PyTorch's semantics and output size, and finite-difference gradients.

mod common;
mod layers_common;

use candle_core::{DType, Device, Module, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{assert_close, values};
use convnet_runtime::layers::{conv_transpose2d, ConvTranspose2dOptions};
use layers_common::{check_gradients, random, weighted_sum};

/// `y[n, o, i*s + k*d - p, j*s + l*d - p] += x[n, c, i, j] * w[c, o, k, l]`, plus bias.
fn naive(
    x: &[f64],
    (n, c, h, w): (usize, usize, usize, usize),
    wt: &[f64],
    (out, kh, kw): (usize, usize, usize),
    bias: &[f64],
    cfg: &ConvTranspose2dOptions,
) -> (Vec<f64>, usize, usize) {
    let oh =
        (h - 1) * cfg.stride + cfg.dilation * (kh - 1) + cfg.output_padding + 1 - 2 * cfg.padding;
    let ow =
        (w - 1) * cfg.stride + cfg.dilation * (kw - 1) + cfg.output_padding + 1 - 2 * cfg.padding;
    let mut y = vec![0.0; n * out * oh * ow];
    for e in 0..n {
        for o in 0..out {
            for p in 0..oh * ow {
                y[(e * out + o) * oh * ow + p] = bias[o];
            }
            for ci in 0..c {
                for i in 0..h {
                    for j in 0..w {
                        for k in 0..kh {
                            for l in 0..kw {
                                let r = (i * cfg.stride + k * cfg.dilation) as isize
                                    - cfg.padding as isize;
                                let q = (j * cfg.stride + l * cfg.dilation) as isize
                                    - cfg.padding as isize;
                                if r < 0 || q < 0 || r >= oh as isize || q >= ow as isize {
                                    continue;
                                }
                                y[((e * out + o) * oh + r as usize) * ow + q as usize] += x
                                    [((e * c + ci) * h + i) * w + j]
                                    * wt[((ci * out + o) * kh + k) * kw + l];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, oh, ow)
}

#[test]
fn matches_naive_scatter_and_pytorch_output_size() {
    let cases = [
        // (n, c, h, w), (out, kh, kw), stride, padding, output_padding, dilation
        ((2, 3, 4, 4), (2, 2, 2), 2, 0, 0, 1),
        ((1, 2, 3, 5), (3, 3, 3), 2, 1, 1, 1),
        ((1, 2, 3, 3), (2, 3, 2), 1, 1, 0, 2),
        ((2, 1, 2, 3), (2, 4, 4), 3, 1, 2, 1),
    ];
    for (xd, (out, kh, kw), stride, padding, output_padding, dilation) in cases {
        let cfg = ConvTranspose2dOptions {
            stride,
            padding,
            output_padding,
            dilation,
            bias: true,
        };
        let varmap = VarMap::new();
        let layer = conv_transpose2d(
            xd.1,
            out,
            (kh, kw),
            cfg,
            VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
        )
        .unwrap();
        let (weight, bias) = {
            let data = varmap.data().lock().unwrap();
            (data["weight"].clone(), data["bias"].clone())
        };
        assert_eq!(
            weight.dims(),
            &[xd.1, out, kh, kw],
            "PyTorch's [in, out, kh, kw] layout"
        );
        bias.set(&random(&[out], 11)).unwrap();
        let x = Var::from_tensor(&random(&[xd.0, xd.1, xd.2, xd.3], 12)).unwrap();
        let y = layer.forward(x.as_tensor()).unwrap();
        let (expected, oh, ow) = naive(
            &values(x.as_tensor()),
            xd,
            &values(weight.as_tensor()),
            (out, kh, kw),
            &values(bias.as_tensor()),
            &cfg,
        );
        assert_eq!(y.dims(), &[xd.0, out, oh, ow]);
        assert_eq!(cfg.output_size(xd.2, kh), Some(oh));
        assert_eq!(cfg.output_size(xd.3, kw), Some(ow));
        assert_close(&values(&y), &expected, 1e-10, 1e-10, "conv_transpose2d");
        check_gradients(
            &|| weighted_sum(&layer.forward(x.as_tensor())?),
            &[("x", &x), ("weight", &weight), ("bias", &bias)],
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn rejects_output_padding_not_below_stride() {
    let cfg = ConvTranspose2dOptions {
        stride: 2,
        output_padding: 2,
        ..Default::default()
    };
    let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    let err = conv_transpose2d(2, 2, (3, 3), cfg, vb)
        .unwrap_err()
        .to_string();
    assert!(err.contains("output_padding"), "{err}");
}
