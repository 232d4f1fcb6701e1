//! Graph models (`concat`, `add`, `multiply` branches): hand-counted parameters, output
//! shapes, FLOPs and summaries, and forward passes against hand-written candle on the same
//! weights.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::prelude::*;

convnet! {
    /// An Inception-style module: 1x1, 1x1 then 3x3, and pool then 1x1, concatenated.
    pub Inception(8, 12, 12) -> (28, 12, 12) {
        mixed: concat {
            { conv2d(8, 1) },
            { conv2d(4, 1), conv2d(12, 3, padding = same) },
            pool: { max_pool2d(3, stride = 1, padding = same), conv2d(8, 1) },
        }
    }

    /// The Inception module's branches as separate chains, for their FLOPs.
    pub InceptionBranch1(8, 12, 12) { conv2d(8, 1) }
    /// See `InceptionBranch1`.
    pub InceptionBranch2(8, 12, 12) { conv2d(4, 1), conv2d(12, 3, padding = same) }
    /// See `InceptionBranch1`.
    pub InceptionBranch3(8, 12, 12) { max_pool2d(3, stride = 1, padding = same), conv2d(8, 1) }

    /// A DenseNet layer: its input concatenated with new features.
    block dense_layer(growth) {
        concat { identity, { batch_norm, relu, conv2d(growth, 3, padding = same, bias = false) } }
    }

    /// Two DenseNet layers with growth 4.
    pub Dense(4, 8, 8) -> (12, 8, 8) {
        dense_layer(4),
        dense_layer(4),
    }

    /// A squeeze-and-excitation gate, then a residual-style `add` of a 3x3 convolution.
    pub Gated(8, 6, 6) -> (8, 6, 6) {
        se: multiply {
            identity,
            gate: { global_avg_pool2d(keepdims = true), conv2d(2, 1), relu, conv2d(8, 1), sigmoid },
        }
        add { identity, conv2d(8, 3, padding = same) }
    }

    /// A U-Net step: skips from the encoder concatenated after upsampling; the labelled batch
    /// norm is saved before the relu that follows it.
    pub TinyUNet(2, 8, 8) -> (4, 8, 8) {
        enc: conv2d(4, 3, padding = same),
        normed: batch_norm, relu,
        max_pool2d(2),
        conv2d(4, 3, padding = same),
        upsample2d(2),
        concat { identity, @enc, @normed }
        conv2d(4, 1),
    }

    /// A MobileNetV2 inverted residual whose widths follow its input's channel count.
    block inverted(expand) {
        residual {
            conv2d(in_channels * expand, 1), relu6,
            depthwise_conv2d(3, padding = same), relu6,
            conv2d(in_channels / expand, 1),
        }
    }

    /// Inverted residuals on 8 channels, then a head sized from the flattened features.
    pub Inverted(8, 6, 6) -> (144) {
        inverted(6),
        conv2d(in_channels / 2, 3, stride = 2, padding = same),  // (4, 3, 3)
        inverted(2),
        flatten, linear(in_features * 4),
    }
}

fn var(varmap: &VarMap, name: &str) -> Tensor {
    let data = varmap.data().lock().unwrap();
    match data.get(name) {
        Some(v) => v.as_tensor().clone(),
        None => panic!(
            "no variable `{name}`; have {:?}",
            data.keys().collect::<Vec<_>>()
        ),
    }
}

/// A convolution with bias from the VarMap (`prefix.weight`, `prefix.bias`).
fn conv(varmap: &VarMap, prefix: &str, x: &Tensor, padding: usize) -> Result<Tensor> {
    let w = var(varmap, &format!("{prefix}.weight"));
    let b = var(varmap, &format!("{prefix}.bias"));
    let c = b.dims1()?;
    x.conv2d(&w, padding, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, c, 1, 1))?)
}

fn model<M>(build: impl Fn(VarBuilder) -> Result<M>) -> Result<(M, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Ok((build(vb)?, varmap))
}

#[test]
fn inception_counts_branch_parameters_and_flops() {
    // 8*8+8, then 8*4+4 and 4*9*12+12, then 8*8+8 (the pooling has none).
    assert_eq!(Inception::TOTAL_PARAMS, 72 + 36 + 444 + 72);
    assert_eq!(Inception::OUTPUT_SHAPE, &[8 + 12 + 8, 12, 12]);
    // Concatenation adds no FLOPs: the module costs what its branches cost.
    assert_eq!(
        Inception::FLOPS,
        InceptionBranch1::FLOPS + InceptionBranch2::FLOPS + InceptionBranch3::FLOPS
    );
    const { assert!(Inception::FLOPS > 0) };
    let summary = Inception::summary();
    let rows: Vec<(&str, &str)> = summary
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str()))
        .collect();
    for expected in [
        ("mixed.branch1.conv1", "conv2d"),
        ("mixed.branch2.conv1", "conv2d"),
        ("mixed.branch2.conv2", "conv2d"),
        ("mixed.pool.maxpool1", "max_pool2d"),
        ("mixed.pool.conv1", "conv2d"),
        ("mixed", "concat"),
    ] {
        assert!(rows.contains(&expected), "{expected:?} not in {rows:?}");
    }
}

#[test]
fn inception_matches_hand_written_candle() -> Result<()> {
    let (net, vm) = model(Inception::new)?;
    let x = Tensor::randn(0f32, 1f32, (2, 8, 12, 12), &Device::Cpu)?;
    let got = net.forward_t(&x, false)?;
    assert_eq!(got.dims(), &[2, 28, 12, 12]);
    let b1 = conv(&vm, "mixed.branch1.conv1", &x, 0)?;
    let b2 = conv(&vm, "mixed.branch2.conv1", &x, 0)?;
    let b2 = conv(&vm, "mixed.branch2.conv2", &b2, 1)?;
    // Max pooling with -inf padding equals max pooling over edge-replicated padding.
    let pooled = x
        .pad_with_same(2, 1, 1)?
        .pad_with_same(3, 1, 1)?
        .max_pool2d_with_stride(3, 1)?;
    let b3 = conv(&vm, "mixed.pool.conv1", &pooled, 0)?;
    let want = Tensor::cat(&[&b1, &b2, &b3], 1)?;
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max abs difference {d}");
    Ok(())
}

#[test]
fn densenet_layers_grow_channels_and_match_hand_written_candle() -> Result<()> {
    // Batch norm on 4 then 8 channels (2C trainable, 2C moving statistics), and bias-free
    // 3x3 convolutions 4 -> 4 and 8 -> 4.
    assert_eq!(Dense::TRAINABLE_PARAMS, 8 + 4 * 9 * 4 + 16 + 8 * 9 * 4);
    assert_eq!(Dense::NON_TRAINABLE_PARAMS, 8 + 16);
    assert_eq!(Dense::OUTPUT_SHAPE, &[12, 8, 8]);
    let (net, vm) = model(Dense::new)?;
    let x = Tensor::randn(0f32, 1f32, (2, 4, 8, 8), &Device::Cpu)?;
    let got = net.forward_t(&x, false)?;
    let mut want = x.clone();
    for layer in ["dense_layer1", "dense_layer2"] {
        let bn = format!("{layer}.concat1.branch2.bn1");
        let c = want.dim(1)?;
        let shape = (1, c, 1, 1);
        let mean = var(&vm, &format!("{bn}.running_mean")).reshape(shape)?;
        let variance = var(&vm, &format!("{bn}.running_var")).reshape(shape)?;
        let gamma = var(&vm, &format!("{bn}.weight")).reshape(shape)?;
        let beta = var(&vm, &format!("{bn}.bias")).reshape(shape)?;
        let normed = want
            .broadcast_sub(&mean)?
            .broadcast_div(&(variance + 1e-3)?.sqrt()?)?
            .broadcast_mul(&gamma)?
            .broadcast_add(&beta)?
            .relu()?;
        let w = var(&vm, &format!("{layer}.concat1.branch2.conv1.weight"));
        let new = normed.conv2d(&w, 1, 1, 1, 1)?;
        want = Tensor::cat(&[&want, &new], 1)?;
    }
    assert_eq!(got.dims(), &[2, 12, 8, 8]);
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max abs difference {d}");
    Ok(())
}

#[test]
fn shape_names_size_layers_from_their_input() {
    // 8 -> 48 (1x1), depthwise 3x3 on 48, 48 -> 8 (1x1).
    let first = (8 * 48 + 48) + (48 * 9 + 48) + (48 * 8 + 8);
    // 8 -> 4 (3x3, stride 2).
    let reduce = 8 * 9 * 4 + 4;
    // 4 -> 8, depthwise on 8, 8 -> 4.
    let second = (4 * 8 + 8) + (8 * 9 + 8) + (8 * 4 + 4);
    // 4 * 3 * 3 = 36 features -> 144 units.
    let head = 36 * 144 + 144;
    assert_eq!(Inverted::TOTAL_PARAMS, first + reduce + second + head);
    assert_eq!(Inverted::OUTPUT_SHAPE, &[144]);
}

#[test]
fn squeeze_excitation_gate_matches_hand_written_candle() -> Result<()> {
    // Gate: 8*2+2 and 2*8+8; then the added 3x3 convolution 8*9*8+8.
    assert_eq!(Gated::TOTAL_PARAMS, 18 + 24 + 584);
    let rows: Vec<String> = Gated::summary().rows.into_iter().map(|r| r.name).collect();
    for name in [
        "se.gate.conv1",
        "se.gate.conv2",
        "se",
        "add1.branch2",
        "add1",
    ] {
        assert!(rows.iter().any(|r| r == name), "{name} not in {rows:?}");
    }
    let (net, vm) = model(Gated::new)?;
    let x = Tensor::randn(0f32, 1f32, (3, 8, 6, 6), &Device::Cpu)?;
    let got = net.forward_t(&x, true)?;
    let squeezed = x.mean_keepdim(3)?.mean_keepdim(2)?;
    let gate = conv(&vm, "se.gate.conv1", &squeezed, 0)?.relu()?;
    let gate = candle_nn::ops::sigmoid(&conv(&vm, "se.gate.conv2", &gate, 0)?)?;
    let gated = x.broadcast_mul(&gate)?;
    let want = (&gated + conv(&vm, "add1.branch2", &gated, 1)?)?;
    assert_eq!(got.dims(), &[3, 8, 6, 6]);
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max abs difference {d}");
    Ok(())
}

#[test]
fn unet_skips_match_hand_written_candle() -> Result<()> {
    // Encoder 2*9*4+4, batch norm 2*4 (+ 2*4 moving statistics), bottleneck 4*9*4+4, and the
    // 1x1 convolution over 4 + 4 + 4 concatenated channels.
    assert_eq!(TinyUNet::TOTAL_PARAMS, 76 + 8 + 8 + 148 + (12 * 4 + 4));
    let (net, vm) = model(TinyUNet::new)?;
    let x = Tensor::randn(0f32, 1f32, (2, 2, 8, 8), &Device::Cpu)?;
    let got = net.forward_t(&x, false)?;
    let enc = conv(&vm, "enc", &x, 1)?;
    let shape = (1, 4, 1, 1);
    let normed = enc
        .broadcast_sub(&var(&vm, "normed.running_mean").reshape(shape)?)?
        .broadcast_div(&(var(&vm, "normed.running_var").reshape(shape)? + 1e-3)?.sqrt()?)?
        .broadcast_mul(&var(&vm, "normed.weight").reshape(shape)?)?
        .broadcast_add(&var(&vm, "normed.bias").reshape(shape)?)?;
    let down = normed.relu()?.max_pool2d(2)?;
    let up = conv(&vm, "conv1", &down, 1)?.upsample_nearest2d(8, 8)?;
    let want = conv(&vm, "conv2", &Tensor::cat(&[&up, &enc, &normed], 1)?, 0)?;
    assert_eq!(got.dims(), &[2, 4, 8, 8]);
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max abs difference {d}");
    Ok(())
}
