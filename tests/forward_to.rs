//! Stopping a forward pass after a top-level layer (`Network::forward_to_t`) and a model's
//! features without its head (`forward_features_t`): the outputs equal the layers run by
//! hand, a layer fused into the next is not a stop, and a wrong name is an error naming the
//! stops.

#[path = "common/max_abs_diff.rs"]
mod max_abs_diff;
use max_abs_diff::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::prelude::*;

convnet! {
    /// A stem, a block, a residual, a merge and a head.
    pub Staged(3, 16, 16) -> (4) {
        stem: { conv2d(8, 3, padding = same), batch_norm, relu },
        pool: max_pool2d(2),
        residual { conv2d(8, 3, padding = same), relu }
        concat { identity, { conv2d(4, 1) } }
        global_avg_pool2d,
        head: linear(4),
    }

    /// The first two stops of `Staged`, with the same layer names.
    pub StemOnly(3, 16, 16) -> (8, 8, 8) {
        stem: { conv2d(8, 3, padding = same), batch_norm, relu },
        pool: max_pool2d(2),
    }

    /// A top-level `_:` residual has no name to stop after, but its features are its output.
    pub Unnamed(3, 8, 8) -> (4) {
        conv2d(4, 1),
        _: residual { conv2d(4, 3, padding = same), relu },
        global_avg_pool2d,
    }

    /// A batch norm that runs inside the depthwise convolution after it.
    pub Fused(3, 8, 8) -> (3) {
        conv2d(3, 1),
        batch_norm,
        depthwise_conv2d(3, padding = same),
        global_avg_pool2d,
    }
}

fn input(shape: &[usize]) -> Tensor {
    let mut dims = vec![2];
    dims.extend_from_slice(shape);
    Tensor::randn(0f32, 1., dims, &Device::Cpu).unwrap()
}

#[test]
fn stops_name_each_top_level_layer_with_its_shape() {
    let names: Vec<&str> = Staged::STOPS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "stem",
            "pool",
            "block1",
            "concat1",
            "global_avg_pool1",
            "head"
        ]
    );
    assert_eq!(Staged::STOPS[3].1, &[12, 8, 8]);
    assert_eq!(Staged::features_shape().unwrap(), &[12]);
    assert_eq!(Staged::head_name(), "head");
}

#[test]
fn a_forward_pass_stopped_early_equals_the_layers_run_alone() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Staged::new(vb.clone()).unwrap();
    // Same names, so the same variables.
    let stem = StemOnly::new(vb).unwrap();
    let x = input(Staged::INPUT_SHAPE);
    for train in [false, true] {
        let ours = model.forward_to_t(&x, "pool", train).unwrap();
        let alone = stem.forward_t(&x, train).unwrap();
        assert_eq!(ours.dims(), &[2, 8, 8, 8]);
        assert_eq!(max_abs_diff(&ours, &alone), 0.0);
    }
    let features = model.forward_features_t(&x, false).unwrap();
    assert_eq!(features.dims(), &[2, 12]);
    // The whole pass is the head applied to the features.
    let head = candle_nn::Linear::new(
        varmap
            .get(
                (4, 12),
                "head.weight",
                candle_nn::Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap(),
        Some(
            varmap
                .get(
                    4,
                    "head.bias",
                    candle_nn::Init::Const(0.),
                    DType::F32,
                    &Device::Cpu,
                )
                .unwrap(),
        ),
    );
    let whole = model.forward_t(&x, false).unwrap();
    let by_hand = candle_core::Module::forward(&head, &features).unwrap();
    assert!(max_abs_diff(&whole, &by_hand) < 1e-6);
}

#[test]
fn a_top_level_layer_without_a_name_is_a_stop_by_index_only() {
    let names: Vec<&str> = Unnamed::STOPS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["conv1", "", "global_avg_pool1"]);
    assert_eq!(Unnamed::features_shape().unwrap(), &[4, 8, 8]);
    let varmap = VarMap::new();
    let model = Unnamed::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let x = input(Unnamed::INPUT_SHAPE);
    let features = model.forward_features_t(&x, false).unwrap();
    let pooled = features
        .mean_keepdim(3)
        .unwrap()
        .mean_keepdim(2)
        .unwrap()
        .flatten_from(1)
        .unwrap();
    assert!(max_abs_diff(&pooled, &model.forward_t(&x, false).unwrap()) < 1e-6);
    let err = model.forward_to_t(&x, "", false).unwrap_err().to_string();
    assert!(err.contains("these are: conv1, global_avg_pool1"), "{err}");
}

#[test]
fn a_layer_fused_into_the_next_is_not_a_stop() {
    let names: Vec<&str> = Fused::STOPS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["conv1", "depthwise1", "global_avg_pool1"]);
    let varmap = VarMap::new();
    let model = Fused::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let err = model
        .forward_to_t(&input(Fused::INPUT_SHAPE), "bn1", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`bn1` is not a top-level layer"), "{err}");
    assert!(err.contains("conv1, depthwise1, global_avg_pool1"), "{err}");
}
