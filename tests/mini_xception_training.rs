//! Mini-Xception trains through the real optimizer: on a fixed batch the loss falls, and
//! every trainable parameter receives a non-zero gradient (the depthwise, pooling and
//! separable paths all backpropagate).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::loss::binary_cross_entropy_with_logits;
use convnet::optim::{RmsProp, RmsPropConfig, TrainOptimizer};

convnet::mini_xception!(
    /// The zoo's mini-Xception at 64x64.
    MiniXception64, 64
);

#[test]
fn loss_falls_and_every_parameter_gets_a_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let model = MiniXception64::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let x = Tensor::rand(0f32, 255f32, (8, 3, 64, 64), &dev)?;
    let y = Tensor::new(&[0u32, 1, 0, 1, 1, 0, 0, 1], &dev)?;

    // Gradients reach every trainable parameter (moving statistics excepted).
    let loss = binary_cross_entropy_with_logits(&model.forward_t(&x, true)?, &y)?;
    let grads = loss.backward()?;
    let data = varmap.data().lock().unwrap().clone();
    let mut trainable = 0;
    for (name, var) in &data {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "{name} must not get a gradient"
            );
            continue;
        }
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(
            norm > 0.0 && norm.is_finite(),
            "gradient of {name} has norm {norm}"
        );
        trainable += var.elem_count();
    }
    assert_eq!(trainable, MiniXception64::TRAINABLE_PARAMS);

    let mut opt = RmsProp::from_varmap(&varmap, RmsPropConfig::default());
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = binary_cross_entropy_with_logits(&model.forward_t(&x, true)?, &y)?;
        losses.push(loss.to_scalar::<f32>()?);
        opt.apply(&loss.backward()?)?;
    }
    let last = *losses.last().unwrap();
    assert!(
        last < losses[0] * 0.5,
        "loss did not fall on a fixed batch: {losses:?}"
    );
    Ok(())
}
