//! A user's own network, not in the zoo, loads PyTorch's weights **by name**: `UserNet` of
//! `scripts/interop_fixtures.py user` (a `Conv2dNormActivation` stem, inverted residuals with
//! squeeze-excitation in an `nn.Sequential`, a ResNet basic block with its `downsample`, an
//! inception-style concatenation, a classifier), written below in the DSL with PyTorch's
//! module paths as its names (labels, `sequential`, `_:`), loads `user_net.pth` strictly with
//! `Naming::by_name()` (no rule, no order, no key list) and reproduces PyTorch's eval-mode
//! output. The fixture needs no torch here.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::interop::{load_pytorch, read_pytorch, LoadOptions, Naming, ParamList};
use convnet::prelude::*;
use std::path::PathBuf;

convnet! {
    defaults { batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased) }

    /// torchvision's `Conv2dNormActivation`: `0` convolution, `1` batch norm, `2` activation.
    block conv_norm_act(c, kernel = 3, stride = 1, act = relu6) {
        _: sequential {
            conv2d(c, kernel, stride = stride, padding = (kernel - 1) / 2, bias = false),
            batch_norm, act,
        }
    }

    /// The depthwise `Conv2dNormActivation`.
    block depthwise_norm_act(stride) {
        _: sequential { depthwise_conv2d(3, stride = stride, padding = 1, bias = false), batch_norm, relu6 }
    }

    /// torchvision's `SqueezeExcitation` with a hard-sigmoid gate: `fc1`, `fc2`.
    block squeeze_excitation(squeeze, channels = in_channels) {
        _: multiply {
            identity,
            _: { global_avg_pool2d(keepdims = true), fc1: conv2d(squeeze, 1), relu, fc2: conv2d(channels, 1), hard_sigmoid },
        }
    }

    /// MobileNetV2's block body: `conv`, an `nn.Sequential`.
    block inverted_layers(out, stride, expand, se) {
        let hidden = in_channels * expand,
        conv: sequential {
            if expand != 1 { conv_norm_act(hidden, 1) }
            depthwise_norm_act(stride),
            if se { squeeze_excitation(hidden / 4) }
            conv2d(out, 1, bias = false), batch_norm,
        }
    }

    /// MobileNetV2's inverted residual: the residual opens no scope.
    block inverted(out, stride = 1, expand = 1, se = false) {
        if stride == 1 && in_channels == out {
            _: residual { _: inverted_layers(out, stride, expand, se) }
        } else {
            _: inverted_layers(out, stride, expand, se)
        }
    }

    /// torchvision's `BasicBlock` with its `downsample`.
    block basic(c, stride) {
        _: residual(project = downsample: sequential { conv2d(c, 1, stride = stride, bias = false), batch_norm }) {
            conv1: conv2d(c, 3, stride = stride, padding = 1, bias = false), bn1: batch_norm, relu,
            conv2: conv2d(c, 3, padding = 1, bias = false), bn2: batch_norm,
        }
        relu,
    }

    /// `UserNet` of scripts/interop_fixtures.py, with its names.
    pub UserNet(3, 32, 32) -> (10) {
        stem: conv_norm_act(16, stride = 2),
        blocks: sequential {
            inverted(16),
            inverted(24, stride = 2, expand = 3, se = true),
            inverted(24, expand = 2, se = true),
        },
        res: basic(12, 2),
        mixed: concat {
            branch1: conv2d(8, 1),
            branch2: sequential { conv2d(8, 1), relu, conv2d(8, 3, padding = 1) },
            pool: sequential { max_pool2d(3, stride = 1, padding = 1), conv2d(8, 1) },
        },
        global_avg_pool2d,
        classifier: sequential { dropout(0.2), linear(10) },
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(name)
}

#[test]
fn the_description_names_are_the_pytorch_modules_keys() {
    let varmap = VarMap::new();
    UserNet::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<UserNet>(&varmap).unwrap();
    let mut ours: Vec<(String, Vec<usize>)> = params.entries.clone();
    ours.sort();
    let file = read_pytorch(fixture("user_net.pth"), None).unwrap();
    let mut theirs: Vec<(String, Vec<usize>)> = file
        .tensors
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn a_user_network_loads_pytorch_weights_by_name_and_matches_pytorch() {
    let varmap = VarMap::new();
    let model = UserNet::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let params = ParamList::of::<UserNet>(&varmap).unwrap();
    // Strict (the default): every tensor of the file is a variable of the model and back.
    let report = load_pytorch(
        &varmap,
        &params,
        fixture("user_net.pth"),
        &Naming::by_name(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(report.matched.len(), params.entries.len());
    assert_eq!(report.reshaped(), 0);
    let expected =
        convnet::checkpoint::load_tensors(fixture("user_net.expected.safetensors")).unwrap();
    let got = model.forward_t(&expected["input"], false).unwrap();
    let want: &Tensor = &expected["output"];
    let gap = max_abs_diff(&got, want);
    println!("user_net: max |ours - torch| {gap:.3e}");
    assert!(gap <= 1e-4, "max |ours - torch| = {gap:e}");
}
