//! Trains a small DSL model on the real cats-vs-dogs photos and checks what a broken pipeline
//! would get wrong: every split has the training split's classes, labels consistent across
//! splits (validation accuracy well above chance), augmentation off at evaluation
//! (evaluating twice gives identical results), batch-norm moving statistics updated.
//!
//! Ignored by default: it needs the photos. `.ci/run` runs it explicitly
//! (`cargo test --release --test real_data_training -- --ignored`) with `CONVNET_DATA_DIR`
//! set; run that way without the variable, it fails rather than passing silently.

use candle_core::{DType, Device, Result};
use candle_nn::VarMap;
use convnet::data::{Augment, DataLoader, ImageFolder};
use convnet::init::seeded_var_builder;
use convnet::loss::Loss;
use convnet::optim::{Adam, AdamConfig};
use convnet::prelude::*;
use convnet::train::{Trainer, Verbosity};

convnet! {
    /// A small VGG-style classifier at 48x48 (fast-moving batch-norm statistics suit the
    /// short run).
    pub SmallCatsDogs(3, 48, 48) -> (1) {
        rescale(1.0 / 255.0),
        for filters in [16, 32, 64] {
            conv2d(filters, 3, padding = same), batch_norm(momentum = 0.1), relu,
            max_pool2d(2),
        }
        assert_shape(64, 6, 6),
        global_avg_pool2d,
        linear(1),
    }
}

#[test]
#[ignore = "needs the real photos: set CONVNET_DATA_DIR and run with --ignored"]
fn small_convnet_learns_real_cats_vs_dogs() -> Result<()> {
    let root = std::env::var("CONVNET_DATA_DIR").map_err(|_| {
        candle_core::Error::Msg(
            "CONVNET_DATA_DIR is not set: it must name the cats_vs_dogs folder (with train/, validation/, test/) for this test".into(),
        )
    })?;
    let device = Device::Cpu;
    // Opened together, so the splits' classes are checked against the training split's.
    let [train, validation, test] = ImageFolder::builder(root, 48, 48)
        .cache(true)
        .build_splits(["train", "validation", "test"])?;
    assert_eq!(train.class_names(), ["cats", "dogs"]);
    assert_eq!(train.class_counts(), [1000, 1000]);
    assert_eq!(validation.class_counts(), [250, 250]);
    assert_eq!(test.class_counts(), [250, 250]);
    train.check_classes_fit(&Loss::BinaryCrossEntropy, SmallCatsDogs::OUTPUT_SHAPE)?;
    let mut train = DataLoader::new(train, 32)
        .shuffle(true)
        .seed(7)
        .augment(Augment::new().flip_horizontal())
        .training(true)
        .device(device.clone());
    let mut validation = DataLoader::new(validation, 100)
        .augment(Augment::new().flip_horizontal().rotation(0.2))
        .device(device.clone());

    let varmap = VarMap::new();
    // Seeded initialisation (and a seeded shuffle): the run is the same every time, so a
    // threshold cannot fail by the luck of one initialisation.
    let model = SmallCatsDogs::new(seeded_var_builder(&varmap, 7, DType::F32, &device))?;
    let optimizer = Adam::from_varmap(
        &varmap,
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, optimizer)
        .with_verbosity(Verbosity::Lines);
    let history = trainer.fit(&mut train, Some(&mut validation), 6)?;

    let first = trainer.evaluate(&mut validation)?;
    let second = trainer.evaluate(&mut validation)?;
    assert_eq!(
        first.loss, second.loss,
        "evaluation must not augment: two passes differ"
    );
    assert_eq!(first.accuracy, history.val_accuracy().last().copied());
    // The best epoch of a working pipeline is well above chance (0.68 with this seed on the
    // Zen 4 of 2026-12-06; other CPUs round differently and take other paths, and unseeded
    // runs ranged 0.636-0.70), while swapped labels or stale batch-norm statistics keep every
    // epoch near 0.5: on 500 validation photos chance has a standard deviation of 0.022, so
    // the best of 6 chance epochs stays under 0.56 and 0.60 is still 4.5 deviations above.
    let best = history.val_accuracy().into_iter().fold(0.0, f64::max);
    assert!(
        best >= 0.60,
        "best validation accuracy {best:.3} is near chance; history: {}",
        history.to_csv()
    );
    let losses = history.loss();
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.95),
        "training loss did not fall: {losses:?}"
    );

    let data = varmap.data().lock().unwrap();
    let mean = data["bn1.running_mean"]
        .as_tensor()
        .abs()?
        .sum_all()?
        .to_scalar::<f32>()?;
    assert!(mean > 1e-3, "batch-norm moving mean never updated");
    Ok(())
}
