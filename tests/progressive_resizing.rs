//! Progressive resizing: a model trained at one input size goes on training at another on
//! the same `VarMap` (`Trainer::with_model`), keeping the optimizer state, history and
//! epoch count.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use convnet::data::{DataLoader, TensorDataset};
use convnet::loss::Loss;
use convnet::optim::{Adam, AdamConfig};
use convnet::prelude::*;
use convnet::train::{Trainer, Verbosity};

convnet! {
    /// The same layers at two input sizes.
    pub Small(3, 8, 8) -> (1) {
        conv2d(4, 3, padding = same), batch_norm, relu, global_avg_pool2d, linear(1),
    }
    pub Large(3, 16, 16) -> (1) {
        conv2d(4, 3, padding = same), batch_norm, relu, global_avg_pool2d, linear(1),
    }
}

/// Images whose class is the sign of their mean colour lean, at `size` x `size`.
fn data(size: usize, seed: u64) -> Result<DataLoader> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (32, 3, size, size), &dev)?;
    let y = x.flatten_from(1)?.mean(1)?.ge(0f32)?.to_dtype(DType::U32)?;
    Ok(DataLoader::new(TensorDataset::new(x, y)?, 8)
        .shuffle(true)
        .seed(seed))
}

#[test]
fn training_continues_at_another_input_size_on_the_same_variables() -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let small = Small::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let large = Large::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    assert_eq!(
        varmap.all_vars().len(),
        8,
        "both models share one set of variables"
    );
    let opt = Adam::from_varmap(&varmap, AdamConfig::default());
    let mut trainer = Trainer::new(&small, &varmap, Loss::BinaryCrossEntropy, opt)
        .with_verbosity(Verbosity::Silent);
    trainer.fit(&mut data(8, 1)?, None, 2)?;
    let steps_small = trainer.optimizer().iterations();
    let before = varmap.data().lock().unwrap()["conv1.weight"]
        .as_tensor()
        .copy()?;

    let mut trainer = trainer.with_model(&large);
    let history = trainer.fit(&mut data(16, 2)?, None, 3)?;
    assert_eq!(history.len(), 3, "epochs 1-2 at 8x8 and epoch 3 at 16x16");
    assert_eq!(trainer.epoch(), 3);
    assert_eq!(trainer.optimizer().iterations(), steps_small + 4);
    let after = varmap.data().lock().unwrap()["conv1.weight"]
        .as_tensor()
        .copy()?;
    let moved = (after - before)?.abs()?.sum_all()?.to_scalar::<f32>()?;
    assert!(moved > 0.0, "the 16x16 epoch trained the shared weights");
    Ok(())
}
