//! Generated models against hand-written candle on the same weights, in training and
//! inference mode; input-shape errors; readable parameter names.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2dConfig, ModuleT, VarBuilder, VarMap};
use convnet::prelude::*;

convnet! {
    /// Mini-Xception at 64x64 (dropout left out: its mask is random in training mode).
    pub SmallXception(3, 64, 64) -> (1) {
        rescale(1.0 / 255.0),
        conv2d(32, 5, bias = false),
        for size in [32, 64, 128, 256, 512] {
            residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                max_pool2d(3, stride = 2, padding = same),
            }
        }
        global_avg_pool2d,
        linear(1),
    }

    /// A ResNet basic block with a strided projection, then ReLU.
    pub BasicBlock(16, 12, 12) -> (32, 6, 6) {
        residual(project = { conv2d(32, 1, stride = 2, bias = false), batch_norm }) {
            conv2d(32, 3, stride = 2, padding = 1, bias = false), batch_norm, relu,
            conv2d(32, 3, padding = 1, bias = false), batch_norm,
        }
        relu,
    }
}

const BN: BatchNormConfig = BatchNormConfig { eps: 1e-3, remove_mean: true, affine: true, momentum: 0.01 };

fn pad_neg_inf(x: &Tensor, top: usize, bottom: usize, left: usize, right: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let fill = |rows, cols| Tensor::full(f32::NEG_INFINITY, (n, c, rows, cols), x.device());
    let x = Tensor::cat(&[fill(top, w)?, x.clone(), fill(bottom, w)?], 2)?;
    Tensor::cat(&[fill(h + top + bottom, left)?, x, fill(h + top + bottom, right)?], 3)
}

/// TF "same" padding of a 3x3 stride-2 window: total = max((ceil(n/2)-1)*2 + 3 - n, 0).
fn same_pad_3s2(n: usize) -> (usize, usize) {
    let out = n.div_ceil(2);
    let total = ((out - 1) * 2 + 3).saturating_sub(n);
    (total / 2, total - total / 2)
}

struct HandBlock {
    bn1: BatchNorm,
    dw1: Tensor,
    pw1: candle_nn::Conv2d,
    bn2: BatchNorm,
    dw2: Tensor,
    pw2: candle_nn::Conv2d,
    project: candle_nn::Conv2d,
}

/// Mini-Xception in plain candle: grouped conv for depthwise, -inf padding for pooling.
struct HandXception {
    conv1: candle_nn::Conv2d,
    blocks: Vec<HandBlock>,
    linear: candle_nn::Linear,
}

impl HandXception {
    fn new(vb: VarBuilder) -> Result<Self> {
        let conv1 = candle_nn::conv2d_no_bias(3, 32, 5, Conv2dConfig::default(), vb.pp("conv1"))?;
        let mut blocks = Vec::new();
        let mut c = 32;
        for (i, size) in [32, 64, 128, 256, 512].into_iter().enumerate() {
            let b = vb.pp(format!("block{}", i + 1));
            let dw = |vb: VarBuilder, ch: usize| vb.get((ch, 1, 3, 3), "weight");
            blocks.push(HandBlock {
                bn1: candle_nn::batch_norm(c, BN, b.pp("bn1"))?,
                dw1: dw(b.pp("sep1.depthwise"), c)?,
                pw1: candle_nn::conv2d_no_bias(c, size, 1, Conv2dConfig::default(), b.pp("sep1.pointwise"))?,
                bn2: candle_nn::batch_norm(size, BN, b.pp("bn2"))?,
                dw2: dw(b.pp("sep2.depthwise"), size)?,
                pw2: candle_nn::conv2d_no_bias(size, size, 1, Conv2dConfig::default(), b.pp("sep2.pointwise"))?,
                project: candle_nn::conv2d_no_bias(
                    c,
                    size,
                    1,
                    Conv2dConfig { stride: 2, ..Default::default() },
                    b.pp("project"),
                )?,
            });
            c = size;
        }
        let linear = candle_nn::linear(512, 1, vb.pp("linear1"))?;
        Ok(HandXception { conv1, blocks, linear })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.conv1.forward(&x.affine(1.0 / 255.0, 0.0)?)?;
        for b in &self.blocks {
            let skip = x.clone();
            let c = x.dim(1)?;
            let y = b.bn1.forward_t(&x, train)?.relu()?;
            let y = b.pw1.forward(&y.conv2d(&b.dw1, 1, 1, 1, c)?)?;
            let c2 = y.dim(1)?;
            let y = b.bn2.forward_t(&y, train)?.relu()?;
            let y = b.pw2.forward(&y.conv2d(&b.dw2, 1, 1, 1, c2)?)?;
            let (h, w) = (y.dim(2)?, y.dim(3)?);
            let (t, bo) = same_pad_3s2(h);
            let (l, r) = same_pad_3s2(w);
            let y = pad_neg_inf(&y, t, bo, l, r)?.max_pool2d_with_stride(3, 2)?;
            x = (y + b.project.forward(&skip)?)?;
        }
        let x = x.flatten_from(2)?.mean(2)?;
        self.linear.forward(&x)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn mini_xception_matches_hand_written_candle() -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let generated = SmallXception::new(vb.clone())?;
    let hand = HandXception::new(vb)?;
    assert_eq!(varmap.all_vars().len(), 1 + 5 * 13 + 2, "the hand-written model must reuse every generated parameter");
    let x = (Tensor::rand(0f32, 255f32, (4, 3, 64, 64), &dev)?).contiguous()?;
    for train in [true, false] {
        let a = generated.forward_t(&x, train)?;
        let b = hand.forward_t(&x, train)?;
        assert_eq!(a.dims(), &[4, 1]);
        let d = max_abs_diff(&a, &b);
        assert!(d <= 1e-5, "train={train}: max abs difference {d}");
    }
    Ok(())
}

#[test]
fn resnet_basic_block_matches_hand_written_candle() -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let generated = BasicBlock::new(vb.clone())?;
    let b = vb.pp("block1");
    let strided = Conv2dConfig { stride: 2, padding: 1, ..Default::default() };
    let same = Conv2dConfig { padding: 1, ..Default::default() };
    let conv1 = candle_nn::conv2d_no_bias(16, 32, 3, strided, b.pp("conv1"))?;
    let bn1 = candle_nn::batch_norm(32, BN, b.pp("bn1"))?;
    let conv2 = candle_nn::conv2d_no_bias(32, 32, 3, same, b.pp("conv2"))?;
    let bn2 = candle_nn::batch_norm(32, BN, b.pp("bn2"))?;
    let proj = candle_nn::conv2d_no_bias(32 / 2, 32, 1, Conv2dConfig { stride: 2, ..Default::default() }, b.pp("project.conv1"))?;
    let proj_bn = candle_nn::batch_norm(32, BN, b.pp("project.bn1"))?;
    let x = Tensor::randn(0f32, 1f32, (3, 16, 12, 12), &dev)?;
    for train in [true, false] {
        let y = bn1.forward_t(&conv1.forward(&x)?, train)?.relu()?;
        let y = bn2.forward_t(&conv2.forward(&y)?, train)?;
        let skip = proj_bn.forward_t(&proj.forward(&x)?, train)?;
        let hand = (y + skip)?.relu()?;
        let d = max_abs_diff(&generated.forward_t(&x, train)?, &hand);
        assert!(d <= 1e-5, "train={train}: max abs difference {d}");
    }
    Ok(())
}

#[test]
fn wrong_input_shape_is_an_error_naming_both_shapes() -> Result<()> {
    let varmap = VarMap::new();
    let model = BasicBlock::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let x = Tensor::zeros((2, 3, 12, 12), DType::F32, &Device::Cpu)?;
    let err = model.forward_t(&x, false).unwrap_err().to_string();
    assert!(err.contains("BasicBlock"), "{err}");
    assert!(err.contains("[batch, 16, 12, 12]"), "{err}");
    assert!(err.contains("[2, 3, 12, 12]"), "{err}");
    Ok(())
}

#[test]
fn parameter_names_are_hierarchical_and_readable() -> Result<()> {
    let varmap = VarMap::new();
    BasicBlock::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    let expected = [
        "block1.bn1.bias",
        "block1.bn1.running_mean",
        "block1.bn1.running_var",
        "block1.bn1.weight",
        "block1.bn2.bias",
        "block1.bn2.running_mean",
        "block1.bn2.running_var",
        "block1.bn2.weight",
        "block1.conv1.weight",
        "block1.conv2.weight",
        "block1.project.bn1.bias",
        "block1.project.bn1.running_mean",
        "block1.project.bn1.running_var",
        "block1.project.bn1.weight",
        "block1.project.conv1.weight",
    ];
    assert_eq!(names, expected);
    let total: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(total, BasicBlock::TOTAL_PARAMS);
    Ok(())
}

#[test]
fn mini_xception_parameter_names_and_count() -> Result<()> {
    let varmap = VarMap::new();
    convnet::zoo::MiniXception::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let data = varmap.data().lock().unwrap();
    for name in ["conv1.weight", "block2.sep1.pointwise.weight", "block2.sep1.depthwise.weight", "block5.project.weight", "linear1.bias"] {
        assert!(data.contains_key(name), "missing {name}");
    }
    let total: usize = data.values().map(|v| v.elem_count()).sum();
    assert_eq!(total, convnet::zoo::MiniXception::TOTAL_PARAMS);
    Ok(())
}
