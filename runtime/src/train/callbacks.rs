//! Callbacks run by [`crate::train::Trainer::fit`]: best-model checkpoints, early stopping
//! with best-weight restore, CSV/JSON history logs, learning-rate schedules and
//! reduce-on-plateau (and the former stop-on-NaN, now built into `fit`).

use super::guards::{ensure_finite, ensure_finite_weights};
use super::history::{EpochLogs, History};
use crate::checkpoint;
use crate::optim::TrainOptimizer;
use crate::schedule::{Mode, ReduceOnPlateau, Schedule, ScheduleUnit};
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::PathBuf;

/// What a callback may read and change while training runs.
pub struct TrainContext<'a> {
    /// All model variables (weights and moving statistics).
    pub varmap: &'a VarMap,
    /// The optimizer (learning rate, state).
    pub optimizer: &'a mut dyn TrainOptimizer,
    /// Completed epochs so far (at `on_epoch_end`, the current epoch included).
    pub history: &'a History,
    /// Optimizer steps taken over the whole run.
    pub global_step: u64,
    /// The current 0-based epoch.
    pub epoch: usize,
    /// Set to `true` to stop training (after the current batch or epoch).
    pub stop_training: bool,
    /// The model record checkpoints carry ([`crate::train::Trainer::with_model_info`]).
    pub model_info: Option<&'a super::ModelInfo>,
    /// The run's first batch loss (the divergence guard's reference), for checkpoints.
    pub first_batch_loss: Option<f64>,
}

/// Hooks into the training loop; every method defaults to doing nothing.
pub trait Callback {
    /// Before the first epoch of a `fit` call.
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// Before each epoch.
    fn on_epoch_begin(&mut self, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// Before each batch (`batch` is the index within the epoch).
    fn on_batch_begin(&mut self, _batch: usize, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// After each optimizer step, with the batch's mean loss.
    fn on_batch_end(&mut self, _batch: usize, _loss: f64, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// As soon as an epoch is recorded in `ctx.history`, before its validation loss is
    /// checked: the place for logs, which then also hold an epoch whose validation loss was
    /// NaN (`fit` fails right after, and `on_epoch_end` does not run).
    fn on_epoch_logged(&mut self, _logs: &EpochLogs, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// After each epoch (validation included); `logs` is already in `ctx.history`.
    fn on_epoch_end(&mut self, _logs: &EpochLogs, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
    /// After the last epoch (or a stop).
    fn on_train_end(&mut self, _ctx: &mut TrainContext) -> Result<()> {
        Ok(())
    }
}

/// The value of `monitor` in `logs`: an error saying why when it is missing, and an
/// [`crate::error::Error::NonFinite`] when it is NaN or infinite (never a silent "no
/// improvement").
fn monitored(logs: &EpochLogs, monitor: &str) -> Result<f64> {
    let Some(value) = logs.get(monitor) else {
        let why = match monitor {
            m if m.starts_with("val_") && logs.val_loss.is_none() => {
                "`fit` was given no validation data"
            }
            "accuracy" | "acc" | "val_accuracy" | "val_acc" => {
                "accuracy needs a classification loss"
            }
            _ => "not a metric name (see `EpochLogs::get`)",
        };
        return Err(crate::error::Error::invalid(
            "monitored metric",
            format!(
                "`{monitor}` is not available at epoch {}: {why}",
                logs.epoch + 1
            ),
        )
        .into());
    };
    ensure_finite(monitor, value, Some(logs.epoch), None)?;
    Ok(value)
}

/// Saves a full checkpoint (see [`super::save_checkpoint`]) to `dir` whenever the monitored
/// metric improves (Keras `ModelCheckpoint(save_best_only=True)`), or after every epoch when
/// `save_best_only` is false. Before every save the weights are checked: a NaN or infinite
/// value is an [`crate::error::Error::NonFinite`] naming the tensor, and the last good
/// checkpoint stays as it was.
#[derive(Debug, Clone)]
pub struct ModelCheckpoint {
    /// Checkpoint directory (overwritten on each save).
    pub dir: PathBuf,
    /// Metric name, e.g. `val_loss`.
    pub monitor: String,
    /// Direction of improvement.
    pub mode: Mode,
    /// Save only on improvement.
    pub save_best_only: bool,
    best: f64,
    best_epoch: Option<usize>,
    ema: Option<super::WeightEma>,
}

impl ModelCheckpoint {
    /// Saves the best model by `monitor` (mode inferred: `Max` for accuracies, else `Min`).
    pub fn best(dir: impl Into<PathBuf>, monitor: &str) -> Self {
        let mode = Mode::for_metric(monitor);
        Self {
            dir: dir.into(),
            monitor: monitor.to_string(),
            mode,
            save_best_only: true,
            best: mode.worst(),
            best_epoch: None,
            ema: None,
        }
    }

    /// Also saves the state of the weight average `ema` (a clone of the handle given to the
    /// trainer), so that a resumed run continues it ([`super::load_ema`]).
    pub fn with_ema(mut self, ema: super::WeightEma) -> Self {
        self.ema = Some(ema);
        self
    }

    /// Saves after every epoch (`save_best_only = false`, monitoring the training loss): the
    /// training checkpoint of the last completed epoch, to resume from.
    pub fn every_epoch(dir: impl Into<PathBuf>) -> Self {
        let mut checkpoint = Self::best(dir, "loss");
        checkpoint.save_best_only = false;
        checkpoint
    }

    /// Overrides the direction of improvement.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self.best = mode.worst();
        self
    }

    /// Takes the best value so far from the epochs `from_epoch..` of `history` (a resumed
    /// run's, so that its next epoch is saved only when it beats them, as in the
    /// uninterrupted run); epochs without a finite value of the metric are skipped.
    pub fn with_best_from(mut self, history: &History, from_epoch: usize) -> Self {
        for logs in history.epochs.iter().filter(|e| e.epoch >= from_epoch) {
            match logs.get(&self.monitor) {
                Some(v) if v.is_finite() && self.mode.improves(v, self.best, 0.0) => {
                    self.best = v;
                    self.best_epoch = Some(logs.epoch);
                }
                _ => {}
            }
        }
        self
    }

    /// The best monitored value so far and its 0-based epoch.
    pub fn best_so_far(&self) -> Option<(f64, usize)> {
        self.best_epoch.map(|e| (self.best, e))
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        let value = monitored(logs, &self.monitor)?;
        let improved = self.mode.improves(value, self.best, 0.0);
        if improved {
            self.best = value;
            self.best_epoch = Some(logs.epoch);
        }
        if improved || !self.save_best_only {
            ensure_finite_weights(ctx.varmap, logs.epoch)?;
            super::run_state::save_checkpoint_with(
                &self.dir,
                ctx.varmap,
                Some(&*ctx.optimizer),
                logs.epoch + 1,
                ctx.global_step,
                ctx.history,
                ctx.model_info,
                super::CheckpointExtras {
                    ema: self.ema.as_ref(),
                    first_batch_loss: ctx.first_batch_loss,
                },
            )?;
        }
        Ok(())
    }
}

/// Stops training when the monitored metric has not improved for `patience` epochs (Keras
/// `EarlyStopping`); with `restore_best_weights`, the weights (and moving statistics) of the
/// best epoch are put back when training ends.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    /// Metric name, e.g. `val_loss`.
    pub monitor: String,
    /// Direction of improvement.
    pub mode: Mode,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change counted as an improvement.
    pub min_delta: f64,
    /// Restore the best epoch's weights at the end of training.
    pub restore_best_weights: bool,
    best: f64,
    wait: usize,
    best_epoch: Option<usize>,
    stopped_epoch: Option<usize>,
    best_weights: Option<HashMap<String, Tensor>>,
}

impl EarlyStopping {
    /// Early stopping on `monitor` (mode inferred) with `patience`, restoring the best
    /// weights.
    pub fn new(monitor: &str, patience: usize) -> Self {
        let mode = Mode::for_metric(monitor);
        Self {
            monitor: monitor.to_string(),
            mode,
            patience,
            min_delta: 0.0,
            restore_best_weights: true,
            best: mode.worst(),
            wait: 0,
            best_epoch: None,
            stopped_epoch: None,
            best_weights: None,
        }
    }

    /// Overrides the direction of improvement.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self.best = mode.worst();
        self
    }

    /// The 0-based epoch with the best value so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The 0-based epoch after which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        let value = monitored(logs, &self.monitor)?;
        if self.mode.improves(value, self.best, self.min_delta) {
            self.best = value;
            self.wait = 0;
            self.best_epoch = Some(logs.epoch);
            if self.restore_best_weights {
                self.best_weights = Some(checkpoint::snapshot(ctx.varmap)?);
            }
        } else {
            self.wait += 1;
            if self.wait >= self.patience {
                self.stopped_epoch = Some(logs.epoch);
                ctx.stop_training = true;
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut TrainContext) -> Result<()> {
        if self.restore_best_weights {
            if let Some(best) = &self.best_weights {
                checkpoint::restore(ctx.varmap, best, "best epoch (early stopping)")?;
            }
        }
        Ok(())
    }
}

/// Rewrites `path` with the whole history as CSV after every epoch (atomically), an epoch
/// whose validation loss was NaN included; see [`History::to_csv`].
#[derive(Debug, Clone)]
pub struct CsvLogger {
    /// Output file.
    pub path: PathBuf,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Callback for CsvLogger {
    fn on_epoch_logged(&mut self, _logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        checkpoint::write_atomic(&self.path, ctx.history.to_csv().as_bytes())
    }
}

/// Rewrites `path` with the whole history as JSON after every epoch (atomically), an epoch
/// whose validation loss was NaN included; see [`History::to_json`].
#[derive(Debug, Clone)]
pub struct JsonLogger {
    /// Output file.
    pub path: PathBuf,
}

impl JsonLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Callback for JsonLogger {
    fn on_epoch_logged(&mut self, _logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        checkpoint::write_atomic(&self.path, ctx.history.to_json().as_bytes())
    }
}

/// Keras `TerminateOnNaN`, now subsumed by `fit` itself: `fit` checks every batch loss
/// before its step is applied and fails with [`crate::error::Error::NonFinite`] (the
/// weights stay the last good ones), so this callback never sees a non-finite loss. It is
/// kept so that code written for it still compiles; it stops training if a non-finite loss
/// ever reaches `on_batch_end`.
#[deprecated(note = "`fit` now fails on a non-finite loss before the step, by default")]
#[derive(Debug, Clone, Default)]
pub struct TerminateOnNan {
    /// Global step at which a non-finite loss was seen.
    pub stopped_at_step: Option<u64>,
}

#[allow(deprecated)]
impl Callback for TerminateOnNan {
    fn on_batch_end(&mut self, _batch: usize, loss: f64, ctx: &mut TrainContext) -> Result<()> {
        if !loss.is_finite() {
            self.stopped_at_step = Some(ctx.global_step);
            ctx.stop_training = true;
        }
        Ok(())
    }
}

/// Sets the learning rate from a [`Schedule`] before each epoch or each step; a rate the
/// optimizer rejects (NaN, infinite or negative; 0 is allowed) stops `fit` with
/// [`crate::error::Error::InvalidArgument`].
#[derive(Debug, Clone)]
pub struct LrScheduler {
    /// The schedule.
    pub schedule: Schedule,
    /// Whether its index counts epochs or steps.
    pub unit: ScheduleUnit,
}

impl Callback for LrScheduler {
    fn on_epoch_begin(&mut self, ctx: &mut TrainContext) -> Result<()> {
        if self.unit == ScheduleUnit::Epoch {
            ctx.optimizer.set_lr(self.schedule.at(ctx.epoch))?;
        }
        Ok(())
    }

    fn on_batch_begin(&mut self, _batch: usize, ctx: &mut TrainContext) -> Result<()> {
        if self.unit == ScheduleUnit::Step {
            ctx.optimizer
                .set_lr(self.schedule.at(ctx.global_step as usize))?;
        }
        Ok(())
    }
}

/// Keras `ReduceLROnPlateau` on a monitored metric, applied at each epoch end.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    /// Metric name, e.g. `val_loss`.
    pub monitor: String,
    /// The reduction rule and its state.
    pub rule: ReduceOnPlateau,
}

impl ReduceLrOnPlateau {
    /// Reduces by `factor` after `patience` epochs without improvement of `monitor` (mode
    /// inferred).
    pub fn new(monitor: &str, factor: f64, patience: usize) -> Self {
        Self {
            monitor: monitor.to_string(),
            rule: ReduceOnPlateau::new(factor, patience, Mode::for_metric(monitor)),
        }
    }
}

impl Callback for ReduceLrOnPlateau {
    fn on_epoch_end(&mut self, logs: &EpochLogs, ctx: &mut TrainContext) -> Result<()> {
        let value = monitored(logs, &self.monitor)?;
        let lr = self.rule.update(value, ctx.optimizer.lr());
        ctx.optimizer.set_lr(lr)?;
        Ok(())
    }
}
