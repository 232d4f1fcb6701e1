//! The PyTorch conventions of the layer catalog, each generated model against a reference
//! written here on the same weights: pooling's `ceil_mode` and `count_include_pad` (a
//! transcription of ATen's loops), symmetric integer padding (candle's own `conv2d`), channel
//! slices and shuffles in a ShuffleNet v2 unit (candle's `chunk`, `cat` and PyTorch's
//! reshape-transpose shuffle), the per-pixel `channel_linear` (a `Linear` on channels-last
//! pixels) and a 1-channel spatial gate in `multiply` (candle's broadcasting).

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::prelude::*;

convnet! {
    /// GoogLeNet's pools: 16 -> 8 -> 5 -> 5 (ceil mode keeps the last, overhanging window
    /// of each strided pool: 7 and 4 without it).
    pub Pools(2, 16, 16) -> (2, 5, 5) {
        max_pool2d(3, stride = 2, ceil_mode = true),
        avg_pool2d(3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = true),
        avg_pool2d(3, stride = 1, padding = 1, count_include_pad = true),
    }

    /// The same average pool, Keras' count (padding left out).
    pub KerasAvg(2, 8, 8) -> (2, 5, 5) {
        avg_pool2d(3, stride = 2, padding = 1, ceil_mode = true),
    }

    /// A ceil-mode max pool run inside the separable convolution before it, and the
    /// convolution alone (the same parameter names, so the same weights in one `VarMap`).
    pub SepPool(4, 9, 9) -> (8, 5, 5) {
        separable_conv2d(8, 3, padding = 1),
        max_pool2d(2, ceil_mode = true),
    }
    pub SepOnly(4, 9, 9) -> (8, 9, 9) { separable_conv2d(8, 3, padding = 1) }

    /// PyTorch's `Conv2d(3, 4, 3, stride=2, padding=1)` and TensorFlow's `same`.
    pub Symmetric(3, 8, 8) -> (4, 4, 4) { conv2d(4, 3, stride = 2, padding = 1) }
    pub TfSame(3, 8, 8) -> (4, 4, 4) { conv2d(4, 3, stride = 2, padding = same) }

    /// ShuffleNet v2's stride-1 unit: `x1, x2 = x.chunk(2, dim=1)`,
    /// `cat(x1, branch2(x2))`, `channel_shuffle(out, 2)`.
    pub ShuffleUnit(8, 6, 6) -> (8, 6, 6) {
        concat {
            channel_slice(0, in_channels / 2),
            {
                channel_slice(in_channels / 2),
                conv2d(4, 1, bias = false), relu,
                depthwise_conv2d(3, padding = 1, bias = false),
                conv2d(4, 1, bias = false), relu,
            },
        }
        channel_shuffle(2),
    }

    /// ConvNeXt's pointwise layers: `nn.Linear(4, 16)`, GELU, `nn.Linear(16, 4)` on pixels.
    pub PixelMlp(4, 5, 3) -> (4, 5, 3) {
        pw1: channel_linear(16), gelu,
        pw2: channel_linear(4, bias = false),
    }

    /// CBAM's spatial attention: the input times a (1, H, W) sigmoid map.
    pub SpatialGate(6, 5, 7) -> (6, 5, 7) {
        multiply {
            identity,
            gate: { conv2d(1, 3, padding = 1), sigmoid },
        }
    }
}

fn input(dims: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let mut state = seed;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

fn var(varmap: &VarMap, name: &str) -> Tensor {
    varmap
        .data()
        .lock()
        .unwrap()
        .get(name)
        .unwrap_or_else(|| panic!("no parameter `{name}`"))
        .as_tensor()
        .clone()
}

/// ATen's pooling on one `[N, C, H, W]` tensor with symmetric padding `p`: output size with
/// `ceil_mode`, the max (padding never wins) or the mean with `count_include_pad`.
fn aten_pool(x: &Tensor, k: usize, s: usize, p: usize, ceil: bool, avg: Option<bool>) -> Tensor {
    let (n, c, h, w) = x.dims4().unwrap();
    let out = |size: usize| {
        let mut o = (size + 2 * p - k + if ceil { s - 1 } else { 0 }) / s + 1;
        if ceil && (o - 1) * s >= size + p {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (out(h), out(w));
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let mut y = Vec::new();
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (hs, ws) = (
                    (oy * s) as isize - p as isize,
                    (ox * s) as isize - p as isize,
                );
                let he = (hs + k as isize).min((h + p) as isize);
                let we = (ws + k as isize).min((w + p) as isize);
                let pool_size = ((he - hs) * (we - ws)) as f32;
                let (hs, ws) = (hs.max(0), ws.max(0));
                let (he, we) = (he.min(h as isize), we.min(w as isize));
                let cells = (hs..he).flat_map(|iy| (ws..we).map(move |ix| (iy, ix)));
                let at = |(iy, ix): (isize, isize)| xs[(plane * h + iy as usize) * w + ix as usize];
                y.push(match avg {
                    None => cells.map(at).fold(f32::NEG_INFINITY, f32::max),
                    Some(include) => {
                        let div = if include {
                            pool_size
                        } else {
                            ((he - hs) * (we - ws)) as f32
                        };
                        cells.map(at).sum::<f32>() / div
                    }
                });
            }
        }
    }
    Tensor::from_vec(y, (n, c, oh, ow), &Device::Cpu).unwrap()
}

#[test]
fn pooling_ceil_mode_and_count_include_pad_match_aten() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let x = input(&[2, 2, 16, 16], 1)?;
    let y = Pools::new(vb.clone())?.forward_t(&x, false)?;
    let r = aten_pool(&x, 3, 2, 0, true, None);
    assert_eq!(r.dims(), &[2, 2, 8, 8]);
    let r = aten_pool(&r, 3, 2, 1, true, Some(true));
    let r = aten_pool(&r, 3, 1, 1, false, Some(true));
    assert!(max_abs_diff(&y, &r) < 1e-6);

    let x = input(&[2, 2, 8, 8], 2)?;
    let keras = KerasAvg::new(vb)?.forward_t(&x, false)?;
    let aten_excluded = aten_pool(&x, 3, 2, 1, true, Some(false));
    assert!(max_abs_diff(&keras, &aten_excluded) < 1e-6);
    // The two counts differ at the borders: the point of the argument.
    let aten_included = aten_pool(&x, 3, 2, 1, true, Some(true));
    assert!(max_abs_diff(&keras, &aten_included) > 1e-3);
    Ok(())
}

#[test]
fn a_ceil_mode_max_pool_fused_into_a_separable_convolution_matches_aten() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let (fused, conv) = (SepPool::new(vb.clone())?, SepOnly::new(vb)?);
    assert_eq!(varmap.all_vars().len(), 3, "one set of weights");
    let x = input(&[2, 4, 9, 9], 7)?;
    for train in [false, true] {
        let reference = aten_pool(&conv.forward_t(&x, train)?, 2, 2, 0, true, None);
        assert_eq!(reference.dims(), &[2, 8, 5, 5]);
        assert!(max_abs_diff(&fused.forward_t(&x, train)?, &reference) < 1e-5);
    }
    Ok(())
}

#[test]
fn integer_padding_is_pytorchs_symmetric_padding_not_same() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let symmetric = Symmetric::new(vb.pp("a"))?;
    let same = TfSame::new(vb.pp("b"))?;
    let (w, b) = (var(&varmap, "a.conv1.weight"), var(&varmap, "a.conv1.bias"));
    varmap.data().lock().unwrap()["b.conv1.weight"].set(&w)?;
    varmap.data().lock().unwrap()["b.conv1.bias"].set(&b)?;
    let x = input(&[2, 3, 8, 8], 3)?;
    // PyTorch's Conv2d(3, 4, 3, stride=2, padding=1): candle's conv2d pads symmetrically too.
    let torch = x
        .conv2d(&w, 1, 2, 1, 1)?
        .broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
    assert!(max_abs_diff(&symmetric.forward_t(&x, false)?, &torch) < 1e-5);
    // TensorFlow's `same` pads 0 above and 1 below on 8 rows: a one-pixel shift.
    let tf = x
        .pad_with_zeros(2, 0, 1)?
        .pad_with_zeros(3, 0, 1)?
        .conv2d(&w, 0, 2, 1, 1)?
        .broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
    let y_same = same.forward_t(&x, false)?;
    assert!(max_abs_diff(&y_same, &tf) < 1e-5);
    assert!(max_abs_diff(&y_same, &torch) > 1e-2);
    Ok(())
}

#[test]
fn shufflenet_unit_matches_chunk_cat_and_reshape_transpose() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let unit = ShuffleUnit::new(vb)?;
    let x = input(&[2, 8, 6, 6], 4)?;
    let w = |n: &str| var(&varmap, &format!("concat1.branch2.{n}.weight"));
    let chunks = x.chunk(2, 1)?;
    let b = chunks[1]
        .conv2d(&w("conv1"), 0, 1, 1, 1)?
        .relu()?
        .conv2d(&w("depthwise1"), 1, 1, 1, 4)?
        .conv2d(&w("conv2"), 0, 1, 1, 1)?
        .relu()?;
    let out = Tensor::cat(&[&chunks[0], &b], 1)?;
    let shuffled = out
        .reshape((2, 2, 4, 6, 6))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((2, 8, 6, 6))?;
    assert!(max_abs_diff(&unit.forward_t(&x, false)?, &shuffled) < 1e-5);
    // Both slices' gradients reach the input: the first half as is, the second through the
    // branch.
    let xv = candle_core::Var::from_tensor(&x)?;
    let grads = unit
        .forward_t(xv.as_tensor(), true)?
        .sum_all()?
        .backward()?;
    let dx = grads.get(xv.as_tensor()).expect("input gradient");
    let ones = dx.narrow(1, 0, 4)?.flatten_all()?.to_vec1::<f32>()?;
    assert!(
        ones.iter().all(|v| *v == 1.0),
        "the sliced-off half passes 1s"
    );
    assert!(dx.narrow(1, 4, 4)?.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
    Ok(())
}

#[test]
fn channel_linear_is_a_linear_layer_on_channels_last_pixels() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mlp = PixelMlp::new(vb)?;
    assert_eq!(var(&varmap, "pw1.weight").dims(), &[16, 4]);
    assert_eq!(var(&varmap, "pw1.bias").dims(), &[16]);
    assert_eq!(var(&varmap, "pw2.weight").dims(), &[4, 16]);
    assert_eq!(PixelMlp::TOTAL_PARAMS, 4 * 16 + 16 + 16 * 4);
    assert_eq!(PixelMlp::FLOPS, 2 * (4 * 16 + 16 * 4) * 5 * 3);
    let x = input(&[2, 4, 5, 3], 5)?;
    // PyTorch: x.permute(0, 2, 3, 1), Linear, GELU, Linear, permute back.
    let pw1 = candle_nn::Linear::new(var(&varmap, "pw1.weight"), Some(var(&varmap, "pw1.bias")));
    let pw2 = candle_nn::Linear::new(var(&varmap, "pw2.weight"), None);
    let last = x.permute((0, 2, 3, 1))?.contiguous()?;
    let torch = pw2
        .forward(&pw1.forward(&last)?.gelu_erf()?)?
        .permute((0, 3, 1, 2))?;
    assert!(max_abs_diff(&mlp.forward_t(&x, false)?, &torch) < 1e-5);
    Ok(())
}

#[test]
fn multiply_broadcasts_a_one_channel_spatial_gate() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = SpatialGate::new(vb)?;
    let x = input(&[2, 6, 5, 7], 6)?;
    let w = var(&varmap, "multiply1.gate.conv1.weight");
    assert_eq!(w.dims(), &[1, 6, 3, 3]);
    let b = var(&varmap, "multiply1.gate.conv1.bias");
    // Non-zero bias so the gate is not a constant 0.5.
    varmap.data().lock().unwrap()["multiply1.gate.conv1.bias"].set(&(b + 0.7)?)?;
    let b = var(&varmap, "multiply1.gate.conv1.bias");
    let gate = candle_nn::ops::sigmoid(
        &x.conv2d(&w, 1, 1, 1, 1)?
            .broadcast_add(&b.reshape((1, 1, 1, 1))?)?,
    )?;
    assert_eq!(gate.dims(), &[2, 1, 5, 7]);
    let torch = x.broadcast_mul(&gate)?;
    let y = model.forward_t(&x, false)?;
    assert!(max_abs_diff(&y, &torch) < 1e-5);
    Ok(())
}
