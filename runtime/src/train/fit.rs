//! The Keras-like training loop: [`Trainer::fit`], [`evaluate`] and [`predict`].

use super::callbacks::{Callback, LrScheduler, TrainContext};
use super::guards::{ensure_finite, DivergenceGuard};
use super::history::{EpochLogs, History};
use super::precise_bn::recompute_batch_norm_statistics;
use super::progress::{Progress, Verbosity};
use super::run_state;
use crate::data::Batches;
use crate::error::Error;
use crate::loss::Loss;
use crate::metrics::{correct_predictions, MetricAccumulator};
use crate::optim::TrainOptimizer;
use crate::schedule::{Schedule, ScheduleUnit};
use candle_core::{DType, Result, Tensor};
use candle_nn::{ModuleT, VarMap};
use std::path::Path;
use std::time::Instant;

/// Loss and accuracy of a model over a data source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss per example.
    pub loss: f64,
    /// Fraction correct, for classification losses.
    pub accuracy: Option<f64>,
    /// Examples evaluated.
    pub examples: usize,
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// `model.forward_t(x, false)` without recording gradients ([`crate::grad_mode::no_grad`]).
fn infer<M: ModuleT + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    crate::grad_mode::no_grad(|| model.forward_t(x, false))
}

/// Evaluates `model` in inference mode (`forward_t(x, false)`, gradients off) on epoch 0 of
/// `data`.
///
/// # Shapes
/// Batches as [`crate::data::Batch`]; logits and targets as `loss` expects.
pub fn evaluate<M: ModuleT + ?Sized>(
    model: &M,
    loss: Loss,
    data: &mut dyn Batches,
) -> Result<Evaluation> {
    evaluate_logits(loss, data, |x| infer(model, x))
}

/// Loss and accuracy over epoch 0 of `data` of the logits `logits_of` gives for each batch's
/// inputs (plain or test-time-augmented inference).
pub(crate) fn evaluate_logits(
    loss: Loss,
    data: &mut dyn Batches,
    mut logits_of: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Evaluation> {
    let mut acc = MetricAccumulator::new();
    for batch in data.epoch(0) {
        let batch = batch?;
        let logits = logits_of(&batch.inputs)?;
        let l = scalar(&loss.compute(&logits, &batch.targets)?)?;
        let correct = if loss.is_classification() {
            Some(correct_predictions(&logits, &batch.targets)?)
        } else {
            None
        };
        acc.update(l, logits.dim(0)?, correct);
    }
    Ok(Evaluation {
        loss: acc.loss(),
        accuracy: acc.accuracy(),
        examples: acc.examples(),
    })
}

/// Runs `model` in inference mode (gradients off) over `inputs` in chunks of `batch_size` and concatenates
/// the outputs (logits: apply a sigmoid/softmax for probabilities).
///
/// # Shapes
/// `inputs`: `[N, ...]`; returns `[N, ...output]`.
pub fn predict<M: ModuleT + ?Sized>(
    model: &M,
    inputs: &Tensor,
    batch_size: usize,
) -> Result<Tensor> {
    map_chunks(inputs, batch_size, |x| infer(model, x))
}

/// `f` over `inputs` in chunks of `batch_size` examples, the outputs concatenated (plain or
/// test-time-augmented prediction).
pub(crate) fn map_chunks(
    inputs: &Tensor,
    batch_size: usize,
    mut f: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let n = inputs.dim(0)?;
    let batch_size = batch_size.max(1);
    let mut outs = Vec::with_capacity(n.div_ceil(batch_size));
    let mut start = 0;
    while start < n {
        let len = batch_size.min(n - start);
        outs.push(f(&inputs.narrow(0, start, len)?)?);
        start += len;
    }
    if outs.is_empty() {
        candle_core::bail!("predict: no inputs");
    }
    Tensor::cat(&outs, 0)
}

/// Runs `model` in inference mode (gradients off) over epoch 0 of `data` and concatenates the outputs.
///
/// # Shapes
/// Returns `[num_examples, ...output]`.
pub fn predict_batches<M: ModuleT + ?Sized>(model: &M, data: &mut dyn Batches) -> Result<Tensor> {
    let mut outs = Vec::new();
    for batch in data.epoch(0) {
        outs.push(infer(model, &batch?.inputs)?);
    }
    if outs.is_empty() {
        candle_core::bail!("predict: no batches");
    }
    Tensor::cat(&outs, 0)
}

/// Trains a model like Keras' `model.fit`: a model (any `candle_nn::ModuleT`, such as a
/// `convnet!` network), the `VarMap` holding its variables, a loss and an optimizer, plus
/// callbacks. Keeps the history and epoch count across `fit` calls and checkpoints.
///
/// # Faults
/// `fit` never trains on silently after a fault; each of these stops it with an error:
/// - a NaN or infinite batch loss: [`Error::NonFinite`] `training loss`, with the epoch and
///   batch (what Keras' `TerminateOnNaN` and Lightning's NaN check stop on), checked before
///   the step, so the weights and optimizer state stay those of the last good step;
/// - a batch loss past the [`DivergenceGuard`] (on by default: 100x the first-epoch loss):
///   [`Error::Diverged`], also before the step; see [`Trainer::with_divergence_guard`];
/// - a learning rate that is NaN, infinite or negative (see [`crate::optim::validate_lr`]):
///   [`Error::InvalidArgument`], before the first step;
/// - a NaN or infinite validation loss: [`Error::NonFinite`] `val_loss` at that epoch, after
///   the epoch is recorded in the history (and in the logs, through
///   [`Callback::on_epoch_logged`]) and before any `on_epoch_end` callback (so no
///   checkpoint is taken and it never counts as "no improvement");
/// - training or validation data that yields no examples: [`Error::InvalidArgument`].
///
/// Batch-norm layers update their moving statistics in the forward pass, before the loss is
/// known: a batch whose inputs are NaN taints them even though its step is not applied.
///
/// ```no_run
/// # use candle_core::{DType, Device, Tensor};
/// # use candle_nn::{VarBuilder, VarMap};
/// # use convnet_runtime::data::{DataLoader, TensorDataset};
/// # use convnet_runtime::{loss::Loss, optim::{RmsProp, RmsPropConfig}};
/// # use convnet_runtime::train::{ModelCheckpoint, Trainer};
/// # fn main() -> candle_core::Result<()> {
/// let dev = Device::Cpu;
/// let varmap = VarMap::new();
/// let model = candle_nn::linear(4, 1, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
/// let x = Tensor::randn(0f32, 1., (64, 4), &dev)?;
/// let y = x.sum(1)?.ge(0f32)?.to_dtype(DType::U32)?;
/// let mut train = DataLoader::new(TensorDataset::new(x, y)?, 16).shuffle(true).training(true);
/// let opt = RmsProp::from_varmap(&varmap, RmsPropConfig::default());
/// let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, opt)
///     .with_callback(ModelCheckpoint::best("ckpt", "loss"));
/// let history = trainer.fit(&mut train, None, 30)?;
/// println!("final loss {}", history.loss().last().unwrap());
/// # Ok(()) }
/// ```
pub struct Trainer<'a, M: ModuleT + ?Sized> {
    model: &'a M,
    varmap: &'a VarMap,
    loss: Loss,
    optimizer: Box<dyn TrainOptimizer + 'a>,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    verbosity: Verbosity,
    history: History,
    epoch: usize,
    global_step: u64,
    model_info: Option<super::ModelInfo>,
    divergence: Option<DivergenceGuard>,
    first_batch_loss: Option<f64>,
    precise_bn: Option<PreciseBnData<'a>>,
}

/// Where [`Trainer::with_precise_bn`] draws its batches from.
struct PreciseBnData<'a> {
    data: Box<dyn Batches + 'a>,
    max_batches: Option<usize>,
}

impl<'a, M: ModuleT + ?Sized> Trainer<'a, M> {
    /// A trainer for `model`, whose variables live in `varmap`, minimising `loss` with
    /// `optimizer` (built over the same `varmap`, e.g. `Adam::from_varmap`).
    pub fn new(
        model: &'a M,
        varmap: &'a VarMap,
        loss: Loss,
        optimizer: impl TrainOptimizer + 'a,
    ) -> Self {
        Self {
            model,
            varmap,
            loss,
            optimizer: Box::new(optimizer),
            callbacks: Vec::new(),
            verbosity: Verbosity::Auto,
            history: History::default(),
            epoch: 0,
            global_step: 0,
            divergence: Some(DivergenceGuard::default()),
            first_batch_loss: None,
            model_info: None,
            precise_bn: None,
        }
    }

    /// Sets the divergence guard (default [`DivergenceGuard::default`]: stop when a batch
    /// loss exceeds 100x the first-epoch loss); `None` turns it off.
    pub fn with_divergence_guard(mut self, guard: Option<DivergenceGuard>) -> Self {
        self.divergence = guard;
        self
    }

    /// The divergence guard in use, if any.
    pub fn divergence_guard(&self) -> Option<DivergenceGuard> {
        self.divergence
    }

    /// Continues this run (optimizer state, history, epoch and step counts, callbacks) with
    /// another model over the same `VarMap`: progressive resizing. A `convnet!` description
    /// compiled at another input size has the same parameter names and shapes, so a model
    /// trained at 96x96 goes on training at 180x180:
    ///
    /// ```ignore
    /// let small = MiniXception96::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let large = MiniXception180::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let mut trainer = Trainer::new(&small, &varmap, loss, opt);
    /// trainer.fit(&mut train96, Some(&mut val96), 30)?; // epochs 1-30 at 96x96
    /// let mut trainer = trainer.with_model(&large);
    /// trainer.fit(&mut train180, Some(&mut val180), 40)?; // epochs 31-40 at 180x180
    /// ```
    ///
    /// `model` must have been built from this trainer's `VarMap` (a `VarBuilder` over it
    /// returns the existing variables, and errors if a shape differs). The model record of
    /// checkpoints is kept: set the new one with [`Trainer::with_model_info`].
    pub fn with_model<'b, N: ModuleT + ?Sized>(self, model: &'b N) -> Trainer<'b, N>
    where
        'a: 'b,
    {
        Trainer {
            model,
            varmap: self.varmap,
            loss: self.loss,
            optimizer: self.optimizer,
            callbacks: self.callbacks,
            verbosity: self.verbosity,
            history: self.history,
            epoch: self.epoch,
            global_step: self.global_step,
            model_info: self.model_info,
            divergence: self.divergence,
            first_batch_loss: self.first_batch_loss,
            precise_bn: self.precise_bn,
        }
    }

    /// "Precise BN" as part of every epoch: after the epoch's last training batch and before
    /// validation (so validation, callbacks and checkpoints see them), the batch-norm moving
    /// statistics are replaced by population statistics over the first `max_batches` batches
    /// (all when `None`) of `data`, with the current model
    /// ([`super::recompute_batch_norm_statistics`]). Pass un-augmented training data at the
    /// model's input size. Replaces an earlier setting, so after
    /// [`Trainer::with_model`] to another input size, pass data of the new size.
    ///
    /// # Shapes
    /// Batches as the model takes them.
    pub fn with_precise_bn(mut self, data: impl Batches + 'a, max_batches: Option<usize>) -> Self {
        self.precise_bn = Some(PreciseBnData {
            data: Box::new(data),
            max_batches,
        });
        self
    }

    /// Records what the model is (name, shapes, class names) in every checkpoint this
    /// trainer and its `ModelCheckpoint`s write, e.g.
    /// `ModelInfo::of::<MiniXception>(train_set.class_names())`.
    pub fn with_model_info(mut self, info: super::ModelInfo) -> Self {
        self.model_info = Some(info);
        self
    }

    /// Adds a callback (run in the order added).
    pub fn with_callback(mut self, callback: impl Callback + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Adds a boxed callback (run in the order added).
    pub fn add_callback(&mut self, callback: Box<dyn Callback + 'a>) {
        self.callbacks.push(callback);
    }

    /// Applies a learning-rate schedule per epoch or per step (an [`LrScheduler`] callback).
    pub fn with_schedule(self, schedule: Schedule, unit: ScheduleUnit) -> Self {
        self.with_callback(LrScheduler { schedule, unit })
    }

    /// Sets what `fit` prints (default [`Verbosity::Auto`]).
    pub fn with_verbosity(mut self, verbosity: Verbosity) -> Self {
        self.verbosity = verbosity;
        self
    }

    /// The history of all completed epochs (resumed ones included).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Number of completed epochs; the next `fit` starts at this 0-based epoch.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps taken so far.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn TrainOptimizer {
        self.optimizer.as_ref()
    }

    /// The optimizer, mutably (e.g. to change the learning rate between `fit` calls).
    pub fn optimizer_mut(&mut self) -> &mut dyn TrainOptimizer {
        self.optimizer.as_mut()
    }

    /// Saves weights, optimizer state, epoch count and history to `dir`
    /// as one set (see [`super::save_checkpoint`]).
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        run_state::save_checkpoint_with(
            dir,
            self.varmap,
            Some(self.optimizer.as_ref()),
            self.epoch,
            self.global_step,
            &self.history,
            self.model_info.as_ref(),
            run_state::CheckpointExtras {
                ema: None,
                first_batch_loss: self.first_batch_loss,
            },
        )
    }

    /// Loads a checkpoint written by [`Trainer::save_checkpoint`] (or a `ModelCheckpoint`):
    /// weights, optimizer state, epoch count, history and the divergence guard's reference,
    /// so that the next `fit` continues where the saved run stopped.
    pub fn resume(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let state = run_state::load_checkpoint(dir, self.varmap, Some(self.optimizer.as_mut()))?;
        self.epoch = state.epoch;
        self.global_step = state.global_step;
        self.history = state.history;
        self.first_batch_loss = state.first_batch_loss;
        Ok(())
    }

    /// The run's first batch loss, a reference of the divergence guard (kept by
    /// checkpoints and restored by [`Trainer::resume`]).
    pub fn first_batch_loss(&self) -> Option<f64> {
        self.first_batch_loss
    }

    /// Evaluates the model on `data` in inference mode (see [`evaluate`]).
    pub fn evaluate(&self, data: &mut dyn Batches) -> Result<Evaluation> {
        evaluate(self.model, self.loss, data)
    }

    /// Predicts in inference mode (see [`predict`]).
    ///
    /// # Shapes
    /// `inputs`: `[N, ...]`; returns `[N, ...output]`.
    pub fn predict(&self, inputs: &Tensor, batch_size: usize) -> Result<Tensor> {
        predict(self.model, inputs, batch_size)
    }

    /// The reference of the relative divergence rule: the lower of the run's first batch
    /// loss (if this trainer saw it) and its first epoch's mean loss (if recorded).
    fn reference_loss(&self) -> Option<f64> {
        let first_epoch = self.history.epochs.first().map(|e| e.loss);
        [self.first_batch_loss, first_epoch]
            .into_iter()
            .flatten()
            .filter(|l| l.is_finite())
            .reduce(f64::min)
    }

    /// Fails on a non-finite or diverging batch loss (before its step is applied).
    fn check_batch_loss(&mut self, loss: f64, epoch: usize, batch: usize) -> Result<()> {
        ensure_finite("training loss", loss, Some(epoch), Some(batch))?;
        if let Some(threshold) = self
            .divergence
            .and_then(|g| g.threshold(self.reference_loss()))
        {
            if loss > threshold {
                return Err(Error::Diverged {
                    loss,
                    threshold,
                    epoch,
                    batch,
                }
                .into());
            }
        }
        if self.global_step == 0 && self.first_batch_loss.is_none() {
            self.first_batch_loss = Some(loss);
        }
        Ok(())
    }

    fn run_callbacks(
        &mut self,
        callbacks: &mut [Box<dyn Callback + 'a>],
        epoch: usize,
        mut hook: impl FnMut(&mut dyn Callback, &mut TrainContext) -> Result<()>,
    ) -> Result<bool> {
        let mut ctx = TrainContext {
            varmap: self.varmap,
            optimizer: self.optimizer.as_mut(),
            history: &self.history,
            global_step: self.global_step,
            epoch,
            stop_training: false,
            model_info: self.model_info.as_ref(),
            first_batch_loss: self.first_batch_loss,
        };
        for cb in callbacks.iter_mut() {
            hook(cb.as_mut(), &mut ctx)?;
        }
        Ok(ctx.stop_training)
    }

    /// Trains in training mode (`forward_t(x, true)`) from the current epoch up to `epochs`
    /// (Keras semantics: after a resume at epoch 5, `fit(.., 10)` runs epochs 6 to 10),
    /// validating in inference mode after each epoch when `validation` is given. Stops early
    /// when a callback asks (validation still runs for an epoch stopped mid-way, as in Keras).
    /// Returns the full history (resumed epochs included).
    ///
    /// # Errors
    /// Besides data, model and callback errors, the faults listed under
    /// [`Trainer`]'s "Faults": a non-finite loss, divergence, a non-finite validation loss.
    ///
    /// # Shapes
    /// Batches as [`crate::data::Batch`]; logits and targets as the loss expects.
    pub fn fit(
        &mut self,
        train: &mut dyn Batches,
        validation: Option<&mut dyn Batches>,
        epochs: usize,
    ) -> Result<History> {
        let mut callbacks = std::mem::take(&mut self.callbacks);
        let result = self.fit_inner(&mut callbacks, train, validation, epochs);
        self.callbacks = callbacks;
        result?;
        Ok(self.history.clone())
    }

    fn fit_inner(
        &mut self,
        cbs: &mut [Box<dyn Callback + 'a>],
        train: &mut dyn Batches,
        mut validation: Option<&mut dyn Batches>,
        epochs: usize,
    ) -> Result<()> {
        if let Some(guard) = self.divergence {
            guard.validate()?;
        }
        crate::optim::validate_lr(self.optimizer.kind(), self.optimizer.lr())?;
        let start_epoch = self.epoch;
        let mut stop = self.run_callbacks(cbs, start_epoch, |cb, ctx| cb.on_train_begin(ctx))?;
        let mut epoch = start_epoch;
        while !stop && epoch < epochs {
            stop |= self.run_callbacks(cbs, epoch, |cb, ctx| cb.on_epoch_begin(ctx))?;
            let started = Instant::now();
            let progress = Progress::new(self.verbosity, epoch, epochs, train.num_batches());
            let mut acc = MetricAccumulator::new();
            for (i, batch) in train.epoch(epoch).enumerate() {
                stop |= self.run_callbacks(cbs, epoch, |cb, ctx| cb.on_batch_begin(i, ctx))?;
                let batch = batch?;
                // Stochastic layers key their draws by the run's step (resumable streams).
                crate::seed::set_training_step(Some(self.global_step));
                let logits = self.model.forward_t(&batch.inputs, true);
                crate::seed::set_training_step(None);
                let logits = logits?;
                let loss = self.loss.compute(&logits, &batch.targets)?;
                let grads = loss.backward()?;
                let loss_value = scalar(&loss)?;
                self.check_batch_loss(loss_value, epoch, i)?;
                self.optimizer.apply(&grads)?;
                self.global_step += 1;
                let correct = if self.loss.is_classification() {
                    Some(correct_predictions(&logits.detach(), &batch.targets)?)
                } else {
                    None
                };
                acc.update(loss_value, logits.dim(0)?, correct);
                progress.batch(acc.loss(), acc.accuracy());
                stop |=
                    self.run_callbacks(cbs, epoch, |cb, ctx| cb.on_batch_end(i, loss_value, ctx))?;
                if stop {
                    break;
                }
            }
            if acc.examples() == 0 {
                return Err(Error::invalid(
                    "training data",
                    format!("yielded no examples in epoch {}", epoch + 1),
                )
                .into());
            }
            if let Some(p) = &mut self.precise_bn {
                recompute_batch_norm_statistics(
                    self.model,
                    self.varmap,
                    p.data.as_mut(),
                    p.max_batches,
                )?;
            }
            let val = match &mut validation {
                Some(v) => Some(evaluate(self.model, self.loss, &mut **v)?),
                None => None,
            };
            if val.is_some_and(|v| v.examples == 0) {
                return Err(Error::invalid(
                    "validation data",
                    format!("yielded no examples in epoch {}", epoch + 1),
                )
                .into());
            }
            let logs = EpochLogs {
                epoch,
                loss: acc.loss(),
                accuracy: acc.accuracy(),
                val_loss: val.map(|v| v.loss),
                val_accuracy: val.and_then(|v| v.accuracy),
                lr: self.optimizer.lr(),
                seconds: started.elapsed().as_secs_f64(),
            };
            progress.finish(&logs);
            self.history.epochs.push(logs.clone());
            self.epoch = epoch + 1;
            self.run_callbacks(cbs, epoch, |cb, ctx| cb.on_epoch_logged(&logs, ctx))?;
            if let Some(val_loss) = logs.val_loss {
                ensure_finite("val_loss", val_loss, Some(epoch), None)?;
            }
            stop |= self.run_callbacks(cbs, epoch, |cb, ctx| cb.on_epoch_end(&logs, ctx))?;
            epoch += 1;
        }
        self.run_callbacks(cbs, epoch.saturating_sub(1), |cb, ctx| cb.on_train_end(ctx))?;
        Ok(())
    }
}
