//! Checkpoints record their model (name, shapes, class names): a best-model checkpoint
//! written during `fit` can be used without repeating them, and is refused for another model
//! or input size, naming both.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use convnet::checkpoint::load_checkpoint_weights;
use convnet::data::{DataLoader, TensorDataset};
use convnet::error::Error;
use convnet::loss::Loss;
use convnet::optim::{Adam, AdamConfig};
use convnet::prelude::*;
use convnet::train::{load_state, ModelCheckpoint, ModelInfo, Trainer, Verbosity};

convnet! {
    /// A tiny classifier of 8x8 images.
    pub Tiny(3, 8, 8) -> (1) {
        conv2d(4, 3), relu, global_avg_pool2d, linear(1),
    }
    /// The same layers at 16x16: the same parameter names and shapes.
    pub Tiny16(3, 16, 16) -> (1) {
        conv2d(4, 3), relu, global_avg_pool2d, linear(1),
    }
}

#[test]
fn checkpoints_record_their_model_and_refuse_another() -> Result<()> {
    let dev = Device::Cpu;
    let dir = std::env::temp_dir().join(format!("convnet-model-info-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let varmap = VarMap::new();
    let model = Tiny::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let x = Tensor::randn(0f32, 1., (16, 3, 8, 8), &dev)?;
    let y = x.flatten_from(1)?.mean(1)?.ge(0f32)?.to_dtype(DType::U32)?;
    let mut train = DataLoader::new(TensorDataset::new(x, y)?, 8);
    let classes = vec!["cats".to_string(), "dogs".to_string()];
    let opt = Adam::from_varmap(&varmap, AdamConfig::default());
    let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, opt)
        .with_model_info(ModelInfo::of::<Tiny>(&classes))
        .with_verbosity(Verbosity::Silent)
        .with_callback(ModelCheckpoint::best(&dir, "loss"));
    trainer.fit(&mut train, None, 2)?;

    let info = load_state(&dir)?
        .model
        .expect("the checkpoint records its model");
    assert_eq!(info.name, "Tiny");
    assert_eq!(info.input_shape, [3, 8, 8]);
    assert_eq!(info.output_shape, [1]);
    assert_eq!(info.class_names, classes);
    assert!(info.is::<Tiny>() && !info.is::<Tiny16>());
    info.check::<Tiny>(&dir)?;
    let err = info.check::<Tiny16>(&dir).unwrap_err();
    assert!(
        matches!(Error::find(&err), Some(Error::Checkpoint { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("Tiny with input [3, 8, 8]")
            && msg.contains("not Tiny16 with input [3, 16, 16]"),
        "{msg}"
    );
    // The weights themselves load into a fresh model of the recorded kind.
    let fresh = VarMap::new();
    Tiny::new(VarBuilder::from_varmap(&fresh, DType::F32, &dev))?;
    load_checkpoint_weights(&fresh, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
