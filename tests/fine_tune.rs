//! Fine-tuning mechanics: a frozen backbone (built through `freeze::freezing_var_builder`,
//! run in `InferenceMode`) under a replaced head. Pins that frozen weights and moving
//! statistics stay bit for bit, that the optimizer holds state for the head only, that the
//! head trains and the loss falls, and that parameter groups train a partly frozen model.

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use convnet::freeze::{freezing_var_builder, trainable_vars, InferenceMode, Prefixes};
use convnet::loss::sparse_categorical_cross_entropy;
use convnet::optim::{split_by_prefix, Adam, AdamConfig, ParamGroups, TrainOptimizer};
use convnet::prelude::*;

convnet! {
    /// A small backbone; its batch norm has moving statistics to keep.
    pub Backbone(3, 16, 16) -> (8) {
        conv2d(8, 3, padding = 1, bias = false),
        batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), relu,
        conv2d(8, 3, padding = 1),
        global_avg_pool2d,
    }

    /// The new head: two classes.
    pub Head(8) -> (2) {
        linear(2),
    }
}

/// Bright images are class 1, dark ones class 0 (a task the backbone's features can tell).
fn data() -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let n = 32;
    // Deterministic noise in [0, 0.5).
    let noise: Vec<f32> = (0..n * 3 * 16 * 16)
        .map(|i| ((i as u64 * 7919 + 13) % 1000) as f32 / 2000.0)
        .collect();
    let noise = Tensor::from_vec(noise, (n, 3, 16, 16), &dev).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    let level: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let level = Tensor::from_vec(level, (n, 1, 1, 1), &dev).unwrap();
    let x = noise.broadcast_add(&level).unwrap();
    (x, Tensor::from_vec(labels, n, &dev).unwrap())
}

fn snapshot(varmap: &VarMap, prefix: &str) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| {
            let bits = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect();
            (k.clone(), bits)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_frozen_backbone_stays_bit_for_bit_while_the_new_head_trains() {
    let varmap = VarMap::new();
    let frozen = Prefixes::new(["backbone"]);
    let vb = freezing_var_builder(&varmap, 7, frozen.clone(), DType::F32, &Device::Cpu);
    let backbone = InferenceMode(Backbone::new(vb.pp("backbone")).unwrap());
    let head = Head::new(vb.pp("head")).unwrap();
    let trainable = trainable_vars(&varmap, &frozen);
    assert!(
        trainable.iter().all(|(n, _)| n.starts_with("head.")),
        "{trainable:?}"
    );
    let mut opt = Adam::new_named(
        trainable,
        AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        },
    );
    let (x, y) = data();
    let backbone_before = snapshot(&varmap, "backbone.");
    let head_before = snapshot(&varmap, "head.");
    let mut losses = Vec::new();
    for _ in 0..30 {
        let logits = head
            .forward_t(&backbone.forward_t(&x, true).unwrap(), true)
            .unwrap();
        let loss = sparse_categorical_cross_entropy(&logits, &y).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.apply(&loss.backward().unwrap()).unwrap();
    }
    assert_eq!(
        snapshot(&varmap, "backbone."),
        backbone_before,
        "frozen weights and moving statistics unchanged"
    );
    assert_ne!(snapshot(&varmap, "head."), head_before, "the head trains");
    let state = opt.export_state().unwrap();
    assert!(
        state.tensors.keys().all(|k| k.contains("/head.")),
        "optimizer state for the head only: {:?}",
        state.tensors.keys()
    );
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.7 * first, "the loss falls: {losses:?}");
}

#[test]
fn parameter_groups_train_the_unfrozen_part_of_a_backbone_slower() {
    let varmap = VarMap::new();
    // Freeze the first convolution only; the rest of the backbone trains at a tenth of the
    // head's rate.
    let frozen = Prefixes::new(["backbone.conv1"]);
    let vb = freezing_var_builder(&varmap, 7, frozen.clone(), DType::F32, &Device::Cpu);
    let backbone = Backbone::new(vb.pp("backbone")).unwrap();
    let head = Head::new(vb.pp("head")).unwrap();
    let (body, head_vars) = split_by_prefix(
        trainable_vars(&varmap, &frozen),
        &Prefixes::new(["backbone"]),
    );
    let adam = |vars, lr| {
        Adam::new_named(
            vars,
            AdamConfig {
                lr,
                ..AdamConfig::default()
            },
        )
    };
    let mut opt = ParamGroups::new(0.05)
        .unwrap()
        .add(head_vars, 1.0, adam)
        .unwrap()
        .add(body, 0.1, adam)
        .unwrap();
    let conv1_before = snapshot(&varmap, "backbone.conv1.");
    let conv2_before = snapshot(&varmap, "backbone.conv2.");
    let (x, y) = data();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let logits = head
            .forward_t(&backbone.forward_t(&x, true).unwrap(), true)
            .unwrap();
        let loss = sparse_categorical_cross_entropy(&logits, &y).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.apply(&loss.backward().unwrap()).unwrap();
    }
    assert_eq!(snapshot(&varmap, "backbone.conv1."), conv1_before);
    assert_ne!(snapshot(&varmap, "backbone.conv2."), conv2_before);
    assert!(!opt
        .export_state()
        .unwrap()
        .tensors
        .keys()
        .any(|k| k.contains("backbone.conv1")));
    assert!(*losses.last().unwrap() < 0.7 * losses[0], "{losses:?}");
}
