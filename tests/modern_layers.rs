//! Every layer added for modern architectures, written in one `convnet!` description: the
//! compile-time shapes, parameter counts (by hand) and FLOPs, the parameter names, and a few
//! SGD steps that lower the loss (so every new layer's backward reaches its parameters).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap, SGD};
use convnet::prelude::*;

convnet! {
    /// One of every new layer.
    pub Modern(3, 16, 16) -> (10) {
        stem: conv2d(8, 3, padding = same), relu6,    // (8, 16, 16): 3*9*8 + 8 = 224
        gn: group_norm(4),                            // 2*8 = 16
        residual {                                    // a ConvNeXt-style block
            depthwise_conv2d(7, padding = same),      // 8*49 + 8 = 400
            ln: layer_norm2d,                         // 2*8 = 16
            conv2d(32, 1), hard_swish,                // 8*32 + 32 = 288
            conv2d(8, 1),                             // 32*8 + 8 = 264
            ls: layer_scale(1e-6),                    // 8
            drop_path(0.1),
        }
        down: conv2d(16, 2, stride = 2),              // (16, 8, 8): 8*4*16 + 16 = 528
        up: conv_transpose2d(8, 2, stride = 2),       // (8, 16, 16): 16*8*4 + 8 = 520
        upsample2d(2, mode = bilinear),               // (8, 32, 32)
        crop2d((1, 1, 2, 2)),                         // (8, 30, 28)
        center_crop(24, 25),                          // (8, 24, 25)
        upsample2d((1, 2)),                           // (8, 24, 50), nearest
        global_avg_pool2d(keepdims = true),           // (8, 1, 1)
        hard_sigmoid,
        assert_shape(8, 1, 1),
        reshape(8),                                   // (8)
        head: linear(10),                             // 8*10 + 10 = 90
    }

    /// A transposed convolution alone, for its FLOPs and PyTorch output size.
    pub Deconv(16, 7, 9) {
        conv_transpose2d(4, (3, 2), stride = 2, padding = 1, output_padding = 1, bias = false),
    }
}

#[test]
fn shapes_and_counts_are_known_at_compile_time() {
    const HAND: usize = 224 + 16 + 400 + 16 + 288 + 264 + 8 + 528 + 520 + 90;
    const _: () = assert!(Modern::TOTAL_PARAMS == HAND);
    assert_eq!(Modern::TOTAL_PARAMS, 2_354);
    assert_eq!(Modern::TRAINABLE_PARAMS, 2_354);
    assert_eq!(Modern::NON_TRAINABLE_PARAMS, 0);
    // PyTorch: (H - 1) * 2 - 2 * 1 + (k - 1) + 1 + 1 = 14 for H = 7, k = 3; 17 for W = 9, k = 2.
    assert_eq!(Deconv::OUTPUT_SHAPE, &[4, 14, 17]);
    assert_eq!(Deconv::TOTAL_PARAMS, 16 * 4 * 3 * 2);
    // Every input pixel meets every kernel tap of every (in, out) channel pair once.
    assert_eq!(Deconv::FLOPS, 2 * 7 * 9 * 16 * 4 * 3 * 2);
}

#[test]
fn parameters_follow_candle_nn_names() {
    let varmap = VarMap::new();
    Modern::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let data = varmap.data().lock().unwrap();
    let dims = |name: &str| {
        data.get(name)
            .unwrap_or_else(|| panic!("no `{name}`"))
            .dims()
            .to_vec()
    };
    assert_eq!(dims("gn.weight"), vec![8]);
    assert_eq!(dims("gn.bias"), vec![8]);
    assert_eq!(dims("block1.ln.weight"), vec![8]);
    assert_eq!(dims("block1.ls.gamma"), vec![8]);
    assert_eq!(dims("up.weight"), vec![16, 8, 2, 2]);
    assert_eq!(dims("up.bias"), vec![8]);
    let total: usize = data.values().map(|v| v.elem_count()).sum();
    assert_eq!(total, Modern::TOTAL_PARAMS);
}

#[test]
fn every_new_layer_trains() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    // Seeded weights, dropout/drop-path masks and formula inputs: the same run every time
    // (with candle's unseedable generator the loss fell by under 10% on some runs).
    convnet::seed::set_global_seed(7);
    let model = Modern::new(convnet::init::seeded_var_builder(
        &varmap,
        7,
        DType::F32,
        &dev,
    ))
    .unwrap();
    let wave = |n: usize, f: f32| {
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * f).sin()).collect();
        v
    };
    let x = Tensor::from_vec(wave(4 * 3 * 16 * 16, 0.37), (4, 3, 16, 16), &dev).unwrap();
    let target = Tensor::from_vec(wave(4 * 10, 1.3), (4, 10), &dev).unwrap();
    let loss = |train: bool| {
        let y = model.forward_t(&x, train).unwrap();
        assert_eq!(y.dims(), &[4, 10]);
        (y - &target).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let before = loss(false).to_scalar::<f32>().unwrap();
    let grads = loss(true).backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for name in [
        "gn.weight",
        "block1.ln.weight",
        "block1.ls.gamma",
        "up.weight",
        "stem.weight",
    ] {
        let g = grads
            .get(data[name].as_tensor())
            .unwrap_or_else(|| panic!("no gradient for `{name}`"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "`{name}` gradient norm {norm}"
        );
    }
    let vars: Vec<_> = data.values().cloned().collect();
    drop(data);
    let mut sgd = SGD::new(vars, 0.05).unwrap();
    for _ in 0..20 {
        sgd.backward_step(&loss(true)).unwrap();
    }
    let after = loss(false).to_scalar::<f32>().unwrap();
    assert!(after < before * 0.9, "loss {before} -> {after}");
}
