//! A seed fixes a whole training run: seeded initialisation (`init::seeded_var_builder`),
//! seeded dropout masks (`seed::set_global_seed`) and a seeded shuffle give the same history
//! and weights twice; another seed gives another run.

use candle_core::{DType, Device, Result, Tensor};
use convnet::data::{DataLoader, TensorDataset};
use convnet::init::seeded_var_builder;
use convnet::loss::Loss;
use convnet::optim::{RmsProp, RmsPropConfig};
use convnet::prelude::*;
use convnet::train::{Trainer, Verbosity};
use std::collections::BTreeMap;

convnet!(
    /// A small conv net with every stochastic part: batch norm, dropout, shuffled batches.
    pub Tiny(3, 8, 8) -> (1) {
        conv2d(8, 3, padding = same), batch_norm(momentum = 0.1), relu,
        max_pool2d(2),
        separable_conv2d(8, 3, padding = same), batch_norm, relu,
        global_avg_pool2d, dropout(0.5), linear(1),
    }
);

/// 64 deterministic examples (no RNG): the label is whether the red channel's mean exceeds
/// the blue one's.
fn data() -> Result<(Tensor, Tensor)> {
    let n = 64;
    let per = 3 * 8 * 8;
    let x: Vec<f32> = (0..n * per)
        .map(|i| ((i as f32 * 0.7317).sin() * 43.7).fract())
        .collect();
    let x = Tensor::from_vec(x, (n, 3, 8, 8), &Device::Cpu)?;
    let means = x.mean_keepdim(3)?.mean_keepdim(2)?.flatten_from(1)?;
    let y = means
        .narrow(1, 0, 1)?
        .gt(&means.narrow(1, 2, 1)?)?
        .flatten_all()?
        .to_dtype(DType::U32)?;
    Ok((x, y))
}

struct Run {
    loss: Vec<f64>,
    accuracy: Vec<f64>,
    val_loss: Vec<f64>,
    weights: BTreeMap<String, Vec<f32>>,
}

fn run(seed: u64) -> Result<Run> {
    let dev = Device::Cpu;
    let (x, y) = data()?;
    convnet::seed::set_global_seed(seed);
    let varmap = VarMap::new();
    let model = Tiny::new(seeded_var_builder(&varmap, seed, DType::F32, &dev))?;
    let mut train = DataLoader::new(TensorDataset::new(x.clone(), y.clone())?, 16)
        .shuffle(true)
        .seed(seed)
        .training(true);
    let mut val = DataLoader::new(TensorDataset::new(x, y)?, 32);
    let opt = RmsProp::from_varmap(&varmap, RmsPropConfig::default());
    let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, opt)
        .with_verbosity(Verbosity::Silent);
    let h = trainer.fit(&mut train, Some(&mut val), 3)?;
    let weights = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
        .collect::<Result<_>>()?;
    Ok(Run {
        loss: h.loss(),
        accuracy: h.accuracy(),
        val_loss: h.val_loss(),
        weights,
    })
}

#[test]
fn same_seed_same_run_other_seed_other_run() -> Result<()> {
    // One test function: the dropout seed is process-wide.
    let a = run(7)?;
    let b = run(7)?;
    let c = run(8)?;
    assert_eq!(a.loss.len(), 3);
    assert_eq!(a.loss, b.loss, "training loss, same seed");
    assert_eq!(a.accuracy, b.accuracy, "training accuracy, same seed");
    assert_eq!(a.val_loss, b.val_loss, "validation loss, same seed");
    assert_eq!(a.weights.len(), b.weights.len());
    for (name, w) in &a.weights {
        assert_eq!(Some(w), b.weights.get(name), "{name}, same seed");
    }
    assert_ne!(a.loss, c.loss, "another seed gives another run");
    assert_ne!(a.weights["conv1.weight"], c.weights["conv1.weight"]);
    Ok(())
}
