//! End-to-end tests of the training loop on a small synthetic problem.

use super::*;
use crate::checkpoint;
use crate::loss::Loss;
use crate::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use crate::schedule::{Schedule, ScheduleUnit};
use crate::testutil::{blob_batches, mlp, temp_dir, weights, MemBatches};
use candle_core::{Device, Result, Tensor};
use std::cell::RefCell;

fn adam(varmap: &candle_nn::VarMap, lr: f64) -> Adam {
    Adam::from_varmap(
        varmap,
        AdamConfig {
            lr,
            ..Default::default()
        },
    )
}

#[test]
fn fit_learns_a_separable_problem() {
    let (varmap, model) = mlp();
    let mut train = blob_batches(256, 1, false, 32);
    let mut val = blob_batches(128, 2, false, 64);
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent);
    // Initialisation is random (candle's CPU RNG cannot be seeded): 10 epochs leave a margin.
    let h = trainer.fit(&mut train, Some(&mut val), 10).unwrap();
    assert_eq!(h.len(), 10);
    let (first, last) = (&h.epochs[0], &h.epochs[9]);
    assert!(last.loss < first.loss * 0.7, "{:?}", h.loss());
    assert!(last.accuracy.unwrap() > first.accuracy.unwrap() || first.accuracy == Some(1.0));
    assert!(last.accuracy.unwrap() >= 0.95, "{:?}", h.accuracy());
    assert!(last.val_accuracy.unwrap() >= 0.95, "{:?}", h.val_accuracy());
    assert!(last.val_loss.unwrap() < first.val_loss.unwrap());
    assert_eq!(trainer.epoch(), 10);
    assert_eq!(trainer.global_step(), 10 * 8);
    assert_eq!(trainer.optimizer().iterations(), 10 * 8);
    // evaluate() is the same inference-mode pass as validation.
    let e = trainer.evaluate(&mut val).unwrap();
    assert_eq!(e.examples, 128);
    assert_eq!(Some(e.loss), last.val_loss);
    assert_eq!(e.accuracy, last.val_accuracy);
    // predict() in chunks matches one batch of batch_predict.
    let p = trainer.predict(&val.x, 50).unwrap();
    assert_eq!(p.dims(), &[128, 1]);
    let p2 = predict_batches(
        &model,
        &mut MemBatches {
            seed: None,
            ..val_clone(&val)
        },
    )
    .unwrap();
    let (a, b): (Vec<f32>, Vec<f32>) = (
        p.flatten_all().unwrap().to_vec1().unwrap(),
        p2.flatten_all().unwrap().to_vec1().unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5);
    }
}

fn val_clone(b: &MemBatches) -> MemBatches {
    MemBatches {
        x: b.x.clone(),
        y: b.y.clone(),
        batch_size: b.batch_size,
        seed: b.seed,
    }
}

/// Records a snapshot of all weights at every epoch end.
type Weights = Vec<(String, Vec<f32>)>;

struct Recorder<'r>(&'r RefCell<Vec<Weights>>);

impl Callback for Recorder<'_> {
    fn on_epoch_end(&mut self, _logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        self.0.borrow_mut().push(weights(ctx.varmap));
        Ok(())
    }
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let dir = temp_dir("early-stop");
    let (varmap, model) = mlp();
    let mut train = blob_batches(256, 3, false, 32);
    // Validation labels are flipped: the better the model fits, the worse val_loss gets.
    let mut val = blob_batches(128, 4, true, 64);
    let snapshots = RefCell::new(Vec::new());
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(Recorder(&snapshots))
    .with_callback(ModelCheckpoint::best(&dir, "val_loss"))
    .with_callback(EarlyStopping::new("val_loss", 2));
    let h = trainer.fit(&mut train, Some(&mut val), 20).unwrap();
    assert!(h.len() < 20, "did not stop: {:?}", h.val_loss());
    let val_loss = h.val_loss();
    let best = (0..val_loss.len())
        .min_by(|&a, &b| val_loss[a].partial_cmp(&val_loss[b]).unwrap())
        .unwrap();
    assert_eq!(h.len(), best + 3, "patience 2 after the best epoch");
    let snapshots = snapshots.borrow().clone();
    let now = weights(&varmap);
    assert_eq!(now, snapshots[best], "best epoch's weights restored");
    assert_ne!(
        now,
        snapshots[h.len() - 1],
        "last epoch differs from the best"
    );
    // The best-model checkpoint holds the same weights and says which epoch it is.
    let (fresh_varmap, _fresh_model) = mlp();
    checkpoint::load_checkpoint_weights(&fresh_varmap, &dir).unwrap();
    assert_eq!(weights(&fresh_varmap), now);
    let state = super::load_state(&dir).unwrap();
    assert_eq!(state.epoch, best + 1);
    assert_eq!(state.history.len(), best + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain linear model `2 -> 1` (ReLU would turn NaN activations into zeros).
fn linear() -> (candle_nn::VarMap, candle_nn::Linear) {
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
    let model = candle_nn::linear(2, 1, vb).unwrap();
    (varmap, model)
}

/// Unshuffled batches of 16 over `n` blobs, with input feature `nan_at` (flat index) NaN.
fn blobs_with_nan(n: usize, seed: u64, nan_at: Option<usize>) -> MemBatches {
    let (x, y) = crate::testutil::blobs(n, seed, false);
    let mut xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    if let Some(i) = nan_at {
        xv[i] = f32::NAN;
    }
    MemBatches {
        x: Tensor::from_vec(xv, (n, 2), &Device::Cpu).unwrap(),
        y,
        batch_size: 16,
        seed: None,
    }
}

/// Records all weights after every batch.
struct BatchRecorder<'r>(&'r RefCell<Vec<Weights>>);

impl Callback for BatchRecorder<'_> {
    fn on_batch_end(&mut self, _batch: usize, _loss: f64, ctx: &mut TrainContext) -> Result<()> {
        self.0.borrow_mut().push(weights(ctx.varmap));
        Ok(())
    }
}

fn non_finite(err: &candle_core::Error) -> (String, f64, Option<usize>, Option<usize>) {
    match crate::error::Error::find(err) {
        Some(crate::error::Error::NonFinite {
            what,
            value,
            epoch,
            batch,
        }) => (what.clone(), *value, *epoch, *batch),
        other => panic!("expected NonFinite, got {other:?} from `{err}`"),
    }
}

#[test]
fn nan_loss_fails_before_the_step_is_applied() {
    let dir = temp_dir("nan-loss");
    for terminate_on_nan in [false, true] {
        let (varmap, model) = linear();
        // Example 20 (second batch of 16, unshuffled) is NaN.
        let mut train = blobs_with_nan(64, 5, Some(40));
        let mut val = blob_batches(32, 6, false, 32);
        let after_batch = RefCell::new(Vec::new());
        let mut trainer = Trainer::new(
            &model,
            &varmap,
            Loss::BinaryCrossEntropy,
            adam(&varmap, 0.01),
        )
        .with_verbosity(Verbosity::Silent)
        .with_callback(BatchRecorder(&after_batch))
        .with_callback(ModelCheckpoint::best(&dir, "val_loss"));
        if terminate_on_nan {
            #[allow(deprecated)]
            trainer.add_callback(Box::new(TerminateOnNan::default()));
        }
        let err = trainer.fit(&mut train, Some(&mut val), 5).unwrap_err();
        let (what, value, epoch, batch) = non_finite(&err);
        assert_eq!(
            (what.as_str(), epoch, batch),
            ("training loss", Some(0), Some(1))
        );
        assert!(value.is_nan());
        assert!(err.to_string().contains("at epoch 1 batch 2"), "{err}");
        assert!(!err.to_string().contains("validation"), "{err}");
        assert_eq!(trainer.global_step(), 1, "the NaN step was not taken");
        assert_eq!(trainer.optimizer().iterations(), 1);
        let after_batch = after_batch.borrow();
        assert_eq!(after_batch.len(), 1);
        assert_eq!(
            weights(&varmap),
            after_batch[0],
            "weights of the last good step"
        );
        assert!(
            trainer.history().is_empty(),
            "the failed epoch is not recorded"
        );
        assert!(!dir.join(checkpoint::WEIGHTS_FILE).exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_mid_epoch_still_validates() {
    struct StopAt(usize);
    impl Callback for StopAt {
        fn on_batch_end(&mut self, batch: usize, _l: f64, ctx: &mut TrainContext) -> Result<()> {
            ctx.stop_training |= batch == self.0;
            Ok(())
        }
    }
    let dir = temp_dir("stop-mid-epoch");
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(StopAt(1))
    .with_callback(ModelCheckpoint::best(&dir, "val_loss"));
    let h = trainer
        .fit(
            &mut blob_batches(64, 13, false, 16),
            Some(&mut blob_batches(32, 14, false, 32)),
            3,
        )
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(trainer.global_step(), 2);
    assert!(h.epochs[0].val_loss.unwrap().is_finite());
    assert!(dir.join(checkpoint::WEIGHTS_FILE).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nan_val_loss_is_an_error_not_a_missed_improvement() {
    let dir = temp_dir("nan-val");
    let (varmap, model) = linear();
    let mut train = blob_batches(64, 15, false, 16);
    let mut val = blobs_with_nan(32, 16, Some(3));
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(CsvLogger::new(dir.join("history.csv")))
    .with_callback(ModelCheckpoint::best(&dir, "val_loss"));
    let err = trainer.fit(&mut train, Some(&mut val), 3).unwrap_err();
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let row = csv.lines().nth(1).expect("the NaN epoch is logged");
    assert_eq!(
        row.split(',').nth(3),
        Some("nan"),
        "val_loss column of the NaN epoch: {csv}"
    );
    let (what, value, epoch, batch) = non_finite(&err);
    assert_eq!((what.as_str(), epoch, batch), ("val_loss", Some(0), None));
    assert!(value.is_nan());
    assert_eq!(err.to_string(), "non-finite val_loss (NaN) at epoch 1");
    let h = trainer.history();
    assert_eq!(h.len(), 1, "the epoch is recorded");
    assert!(h.epochs[0].val_loss.unwrap().is_nan());
    assert!(
        !dir.join(checkpoint::WEIGHTS_FILE).exists(),
        "no checkpoint"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_checkpoint_tracker_keeps_the_best_of_the_history() {
    let epoch = |epoch, val_loss| EpochLogs {
        epoch,
        loss: 1.0,
        accuracy: None,
        val_loss: Some(val_loss),
        val_accuracy: None,
        lr: 0.1,
        seconds: 0.0,
    };
    let history = History {
        epochs: vec![
            epoch(0, 0.1),
            epoch(1, 0.5),
            epoch(2, f64::NAN),
            epoch(3, 0.4),
        ],
    };
    let tracker = ModelCheckpoint::best("unused", "val_loss");
    assert_eq!(
        tracker.clone().with_best_from(&history, 0).best_so_far(),
        Some((0.1, 0))
    );
    assert_eq!(
        tracker.clone().with_best_from(&history, 1).best_so_far(),
        Some((0.4, 3))
    );
    assert_eq!(tracker.with_best_from(&history, 4).best_so_far(), None);
}

#[test]
fn monitoring_a_missing_or_nan_metric_says_why() {
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(EarlyStopping::new("val_loss", 2));
    let err = trainer
        .fit(&mut blob_batches(32, 17, false, 16), None, 1)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`val_loss` is not available at epoch 1: `fit` was given no validation data"),
        "{err}"
    );
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(&model, &varmap, Loss::MeanSquaredError, adam(&varmap, 0.01))
        .with_verbosity(Verbosity::Silent)
        .with_callback(ReduceLrOnPlateau::new("val_accuracy", 0.5, 1));
    let mut data = blob_batches(32, 18, false, 16);
    data.y = data
        .y
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    let mut val = val_clone(&data);
    let err = trainer.fit(&mut data, Some(&mut val), 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("accuracy needs a classification loss"),
        "{err}"
    );
}

#[test]
fn model_checkpoint_never_saves_non_finite_weights() {
    let dir = temp_dir("nan-weights");
    let (varmap, _model) = mlp();
    let mut opt = adam(&varmap, 0.01);
    let history = History::default();
    let logs = |epoch| EpochLogs {
        epoch,
        loss: 0.5,
        accuracy: None,
        val_loss: None,
        val_accuracy: None,
        lr: 0.01,
        seconds: 1.0,
    };
    let mut cb = ModelCheckpoint::best(&dir, "loss");
    cb.save_best_only = false;
    let mut ctx = TrainContext {
        varmap: &varmap,
        optimizer: &mut opt,
        history: &history,
        global_step: 0,
        epoch: 0,
        stop_training: false,
        model_info: None,
        first_batch_loss: None,
    };
    cb.on_epoch_end(&logs(0), &mut ctx).unwrap();
    let good = weights(&varmap);
    let poisoned =
        Tensor::new(&[0f32, 1., f32::INFINITY, 3., 4., 5., 6., 7.], &Device::Cpu).unwrap();
    varmap.data().lock().unwrap()["bn.running_var"]
        .set(&poisoned)
        .unwrap();
    ctx.epoch = 1;
    let err = cb.on_epoch_end(&logs(1), &mut ctx).unwrap_err();
    let (what, value, epoch, batch) = non_finite(&err);
    assert_eq!(what, "weights (tensor `bn.running_var`)");
    assert_eq!((value, epoch, batch), (f64::INFINITY, Some(1), None));
    // The last good checkpoint is intact.
    let (fresh, _) = mlp();
    checkpoint::load_checkpoint_weights(&fresh, &dir).unwrap();
    assert_eq!(weights(&fresh), good);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression batches `y = x0 + x1` over the blobs (inputs around +-1.5).
fn regression_batches(n: usize, seed: u64) -> MemBatches {
    let (x, _) = crate::testutil::blobs(n, seed, false);
    let y = x.sum_keepdim(1).unwrap();
    MemBatches {
        x,
        y,
        batch_size: 16,
        seed: None,
    }
}

#[test]
fn divergence_stops_the_run() {
    // Plain SGD at lr 1.0 on a quadratic whose curvature is about 5: each step multiplies
    // the error by about 4, so the loss explodes.
    let sgd = |varmap: &candle_nn::VarMap| {
        Sgd::from_varmap(
            varmap,
            SgdConfig {
                lr: 1.0,
                ..Default::default()
            },
        )
    };
    // Without the guard, the run "succeeds" with an absurd loss (what the issue observed).
    let (varmap, model) = linear();
    let mut trainer = Trainer::new(&model, &varmap, Loss::MeanSquaredError, sgd(&varmap))
        .with_verbosity(Verbosity::Silent)
        .with_divergence_guard(None);
    let h = trainer
        .fit(&mut regression_batches(64, 19), None, 3)
        .unwrap();
    assert!(h.loss()[2] > 1e6, "{:?}", h.loss());
    // With the default guard: Diverged within the first epoch, the step not applied.
    let (varmap, model) = linear();
    let after_batch = RefCell::new(Vec::new());
    let mut trainer = Trainer::new(&model, &varmap, Loss::MeanSquaredError, sgd(&varmap))
        .with_verbosity(Verbosity::Silent)
        .with_callback(BatchRecorder(&after_batch));
    assert_eq!(trainer.divergence_guard(), Some(DivergenceGuard::default()));
    let err = trainer
        .fit(&mut regression_batches(64, 19), None, 3)
        .unwrap_err();
    let Some(crate::error::Error::Diverged {
        loss,
        threshold,
        epoch,
        batch,
    }) = crate::error::Error::find(&err)
    else {
        panic!("expected Diverged, got {err}");
    };
    assert_eq!(*epoch, 0);
    assert!(*loss > *threshold && loss.is_finite(), "{err}");
    assert_eq!(
        trainer.global_step() as usize,
        *batch,
        "the diverged step was not taken"
    );
    assert_eq!(after_batch.borrow().last(), Some(&weights(&varmap)));
    assert!(
        err.to_string().starts_with("training diverged: loss"),
        "{err}"
    );

    // An absolute limit applies from the first batch on, to a run that learns normally.
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_divergence_guard(Some(DivergenceGuard::absolute(1e-6)));
    let err = trainer
        .fit(&mut blob_batches(32, 20, false, 16), None, 1)
        .unwrap_err();
    assert!(
        matches!(
            crate::error::Error::find(&err),
            Some(crate::error::Error::Diverged { epoch: 0, batch: 0, threshold, .. }) if *threshold == 1e-6
        ),
        "{err}"
    );
    assert_eq!(trainer.global_step(), 0);
    // A factor of 1 or less is refused.
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_divergence_guard(Some(DivergenceGuard::relative(0.5)));
    let err = trainer
        .fit(&mut blob_batches(32, 20, false, 16), None, 1)
        .unwrap_err();
    assert!(err.to_string().contains("divergence guard factor"), "{err}");
}

#[test]
fn invalid_learning_rates_from_schedules_stop_fit() {
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(&varmap, SgdConfig::default()),
    )
    .with_verbosity(Verbosity::Silent)
    .with_schedule(Schedule::Constant(-0.1), ScheduleUnit::Epoch);
    let before = weights(&varmap);
    let err = trainer
        .fit(&mut blob_batches(32, 21, false, 16), None, 1)
        .unwrap_err();
    assert!(
        matches!(
            crate::error::Error::find(&err),
            Some(crate::error::Error::InvalidArgument { name, .. }) if name == "learning rate"
        ),
        "{err}"
    );
    assert_eq!(weights(&varmap), before);
    // A NaN rate in the optimizer's config fails before the first step.
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(
            &varmap,
            SgdConfig {
                lr: f64::NAN,
                ..Default::default()
            },
        ),
    )
    .with_verbosity(Verbosity::Silent);
    let err = trainer
        .fit(&mut blob_batches(32, 21, false, 16), None, 1)
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid learning rate: sgd"),
        "{err}"
    );
    assert_eq!((trainer.global_step(), weights(&varmap)), (0, before));
    // A cosine decay to 0 is fine.
    let cosine = Schedule::Cosine {
        initial: 0.1,
        decay_steps: 2,
        alpha: 0.0,
    };
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(&varmap, SgdConfig::default()),
    )
    .with_verbosity(Verbosity::Silent)
    .with_schedule(cosine, ScheduleUnit::Step);
    let h = trainer
        .fit(&mut blob_batches(64, 21, false, 16), None, 1)
        .unwrap();
    assert_eq!(h.lr(), [0.0]);
}

#[test]
fn csv_and_json_logs_hold_the_history() {
    let dir = temp_dir("logs");
    let (varmap, model) = mlp();
    let mut train = blob_batches(64, 7, false, 16);
    let mut val = blob_batches(32, 8, false, 32);
    let csv = dir.join("history.csv");
    let json = dir.join("history.json");
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        adam(&varmap, 0.01),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(CsvLogger::new(&csv))
    .with_callback(JsonLogger::new(&json));
    let h = trainer.fit(&mut train, Some(&mut val), 3).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
    );
    assert_eq!(lines.len(), 4);
    for (i, line) in lines[1..].iter().enumerate() {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let e = &h.epochs[i];
        assert_eq!(
            cells,
            [
                i as f64,
                e.loss,
                e.accuracy.unwrap(),
                e.val_loss.unwrap(),
                e.val_accuracy.unwrap(),
                e.lr,
                e.seconds
            ]
        );
    }
    let back = History::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in back.epochs.iter().zip(&h.epochs) {
        assert_eq!(a.epoch, b.epoch);
        assert!((a.loss - b.loss).abs() <= 1e-12 * b.loss.abs());
        assert_eq!(a.accuracy, b.accuracy);
        assert!((a.val_loss.unwrap() - b.val_loss.unwrap()).abs() <= 1e-12);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn schedules_and_plateau_set_the_learning_rate() {
    let (varmap, model) = mlp();
    let mut train = blob_batches(64, 9, false, 16);
    let schedule = Schedule::Step {
        initial: 0.1,
        factor: 0.5,
        every: 2,
    };
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(&varmap, SgdConfig::default()),
    )
    .with_verbosity(Verbosity::Silent)
    .with_schedule(schedule, ScheduleUnit::Epoch);
    let h = trainer.fit(&mut train, None, 5).unwrap();
    assert_eq!(h.lr(), [0.1, 0.1, 0.05, 0.05, 0.025]);
    assert_eq!(h.epochs[0].val_loss, None);

    // Per step: 4 steps per epoch, lr at the last step of epoch e is at(4e + 3).
    let (varmap, model) = mlp();
    let cosine = Schedule::Cosine {
        initial: 0.1,
        decay_steps: 8,
        alpha: 0.0,
    };
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(&varmap, SgdConfig::default()),
    )
    .with_verbosity(Verbosity::Silent)
    .with_schedule(cosine.clone(), ScheduleUnit::Step);
    let h = trainer.fit(&mut train, None, 2).unwrap();
    assert_eq!(h.lr(), [cosine.at(3), cosine.at(7)]);

    // Reduce on plateau: a monitored metric that never improves (lr 0 freezes the model).
    let (varmap, model) = mlp();
    let mut trainer = Trainer::new(
        &model,
        &varmap,
        Loss::BinaryCrossEntropy,
        Sgd::from_varmap(&varmap, SgdConfig::default()),
    )
    .with_verbosity(Verbosity::Silent)
    .with_callback(ReduceLrOnPlateau::new("lr", 0.5, 1));
    let h = trainer.fit(&mut train, None, 3).unwrap();
    // Epoch 0: lr 0.01 is the first "best"; epoch 1: no improvement -> 0.005 for epoch 2.
    assert_eq!(h.lr(), [0.01, 0.01, 0.005]);
}

#[test]
fn resume_is_bit_identical_to_straight_training() {
    let dir = temp_dir("resume");
    let schedule = Schedule::Exponential {
        initial: 0.02,
        rate: 0.5,
        decay_steps: 10,
        staircase: false,
    };
    let run = |init: Option<&std::collections::HashMap<String, Tensor>>| {
        let (varmap, model) = mlp();
        if let Some(init) = init {
            checkpoint::restore(&varmap, init, "initial weights").unwrap();
        }
        (varmap, model)
    };
    // A: two epochs straight.
    let (va, ma) = run(None);
    let init = checkpoint::snapshot(&va).unwrap();
    let mut ta = Trainer::new(&ma, &va, Loss::BinaryCrossEntropy, adam(&va, 0.02))
        .with_verbosity(Verbosity::Silent)
        .with_schedule(schedule.clone(), ScheduleUnit::Step);
    let ha = ta
        .fit(&mut blob_batches(96, 11, false, 16), None, 2)
        .unwrap();
    // B: one epoch, checkpoint.
    let (vb, mb) = run(Some(&init));
    let mut tb = Trainer::new(&mb, &vb, Loss::BinaryCrossEntropy, adam(&vb, 0.02))
        .with_verbosity(Verbosity::Silent)
        .with_schedule(schedule.clone(), ScheduleUnit::Step);
    tb.fit(&mut blob_batches(96, 11, false, 16), None, 1)
        .unwrap();
    tb.save_checkpoint(&dir).unwrap();
    // C: fresh model, varmap, optimizer and data source; resume; second epoch.
    let (vc, mc) = run(None);
    let mut tc = Trainer::new(&mc, &vc, Loss::BinaryCrossEntropy, adam(&vc, 0.5))
        .with_verbosity(Verbosity::Silent)
        .with_schedule(schedule, ScheduleUnit::Step);
    tc.resume(&dir).unwrap();
    assert_eq!((tc.epoch(), tc.global_step()), (1, 6));
    assert!(tb.first_batch_loss().is_some());
    assert_eq!(
        tc.first_batch_loss(),
        tb.first_batch_loss(),
        "the divergence guard's reference is restored"
    );
    let hc = tc
        .fit(&mut blob_batches(96, 11, false, 16), None, 2)
        .unwrap();
    assert_eq!(weights(&vc), weights(&va), "bit-identical after resume");
    assert_eq!(hc.loss(), ha.loss());
    assert_eq!(hc.accuracy(), ha.accuracy());
    assert_eq!(
        tc.optimizer().export_state().unwrap().step,
        ta.optimizer().export_state().unwrap().step
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_writes_a_png_of_the_requested_size() {
    let dir = temp_dir("plot");
    let mut h = History::default();
    for e in 0..12 {
        let t = e as f64;
        h.epochs.push(EpochLogs {
            epoch: e,
            loss: 0.7 * (-t / 5.0).exp() + 0.05,
            accuracy: Some(0.5 + 0.45 * (1.0 - (-t / 4.0).exp())),
            val_loss: Some(0.7 * (-t / 5.0).exp() + 0.1 + 0.01 * t),
            val_accuracy: Some(0.5 + 0.35 * (1.0 - (-t / 4.0).exp())),
            lr: 1e-3,
            seconds: 1.0,
        });
    }
    let path = dir.join("history.png");
    plot_history(&h, &path, 1000, 400).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 400));
    // Keep a copy for visual inspection when asked.
    if let Ok(out) = std::env::var("CONVNET_PLOT_OUT") {
        std::fs::copy(&path, out).unwrap();
    }
    // Loss-only histories (regression) get one panel.
    let mut r = h.clone();
    for e in &mut r.epochs {
        e.accuracy = None;
        e.val_accuracy = None;
    }
    plot_history(&r, dir.join("loss.png"), 500, 400).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn moving_statistics_get_no_optimizer_state_nor_weight_decay() {
    use crate::optim::{AdamW, AdamWConfig};
    // One batch with weight decay 0.5 and one without, from the same initial weights: the
    // moving statistics are computed in the forward pass before any update, so they must
    // come out identical unless the optimizer touched them.
    let (init_vm, _) = mlp();
    let init = checkpoint::snapshot(&init_vm).unwrap();
    let run = |weight_decay: f64| {
        let (varmap, model) = mlp();
        checkpoint::restore(&varmap, &init, "init").unwrap();
        let opt = AdamW::from_varmap(
            &varmap,
            AdamWConfig {
                lr: 0.01,
                weight_decay,
                ..Default::default()
            },
        );
        let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, opt)
            .with_verbosity(Verbosity::Silent);
        trainer
            .fit(&mut blob_batches(32, 12, false, 32), None, 1)
            .unwrap();
        let state = trainer.optimizer().export_state().unwrap();
        let mut keys: Vec<String> = state.tensors.keys().cloned().collect();
        keys.sort();
        (weights(&varmap), keys)
    };
    let (decayed, keys) = run(0.5);
    let (plain, _) = run(0.0);
    assert_eq!(
        keys,
        [
            "m/bn.bias",
            "m/bn.weight",
            "m/l1.bias",
            "m/l1.weight",
            "m/l2.bias",
            "m/l2.weight",
            "v/bn.bias",
            "v/bn.weight",
            "v/l1.bias",
            "v/l1.weight",
            "v/l2.bias",
            "v/l2.weight"
        ]
    );
    for ((name, a), (_, b)) in decayed.iter().zip(&plain) {
        if name.contains("running") {
            assert_eq!(a, b, "{name} was updated by the optimizer");
        } else if name.ends_with("weight") {
            assert_ne!(a, b, "{name} was not decayed");
        }
    }
}

#[test]
fn a_resumed_weight_average_continues_exactly() {
    let dir = temp_dir("resume-ema");
    let data = || blob_batches(96, 11, false, 16);
    let per_epoch = crate::data::Batches::num_batches(&data());
    let (vi, _) = mlp();
    let init = checkpoint::snapshot(&vi).unwrap();
    let run = || {
        let (varmap, model) = mlp();
        checkpoint::restore(&varmap, &init, "initial weights").unwrap();
        let ema = WeightEma::new(0.9)
            .unwrap()
            .evaluate_with_average(per_epoch);
        (varmap, model, ema)
    };
    // A: three epochs straight.
    let (va, ma, ea) = run();
    let mut ta = Trainer::new(&ma, &va, Loss::BinaryCrossEntropy, adam(&va, 0.02))
        .with_verbosity(Verbosity::Silent)
        .with_callback(ea.clone());
    let ha = ta.fit(&mut data(), Some(&mut data()), 3).unwrap();
    // B: one epoch with a checkpoint that keeps the average; C resumes it.
    let (vb, mb, eb) = run();
    let mut tb = Trainer::new(&mb, &vb, Loss::BinaryCrossEntropy, adam(&vb, 0.02))
        .with_verbosity(Verbosity::Silent)
        .with_callback(eb.clone())
        .with_callback(ModelCheckpoint::every_epoch(&dir).with_ema(eb.clone()));
    tb.fit(&mut data(), Some(&mut data()), 1).unwrap();
    let (vc, mc, ec) = run();
    let mut tc = Trainer::new(&mc, &vc, Loss::BinaryCrossEntropy, adam(&vc, 0.5))
        .with_verbosity(Verbosity::Silent)
        .with_callback(ec.clone());
    tc.resume(&dir).unwrap();
    load_ema(&dir, &vc, &ec).unwrap();
    assert_eq!(ec.updates(), per_epoch as u64);
    let hc = tc.fit(&mut data(), Some(&mut data()), 3).unwrap();
    assert_eq!(
        weights(&vc),
        weights(&va),
        "the model (the average) is bit-identical"
    );
    assert_eq!(hc.val_loss(), ha.val_loss());
    ea.swap().unwrap();
    ec.swap().unwrap();
    assert_eq!(
        weights(&vc),
        weights(&va),
        "the live weights are bit-identical"
    );
    // A checkpoint saved without an average says so.
    let plain = dir.with_file_name("resume-ema-plain");
    tc.save_checkpoint(&plain).unwrap();
    let err = load_ema(&plain, &vc, &ec).unwrap_err().to_string();
    assert!(err.contains("holds no weight average"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&plain);
}
