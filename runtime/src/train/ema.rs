//! An exponential moving average of the weights (Keras' `use_ema`, TF's
//! `ExponentialMovingAverage`), kept by a callback and swapped into the model for evaluation
//! and checkpoints.

use super::callbacks::{Callback, TrainContext};
use crate::optim::named_vars;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The scalar state of a [`WeightEma`] a training checkpoint keeps (in `state.json`; the
/// tensors go to `ema.safetensors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmaMeta {
    /// Updates applied so far (they drive the warm-up of the decay).
    pub updates: u64,
    /// Whether the model held the average (and the handle the live weights).
    pub swapped: bool,
}

#[derive(Debug)]
struct EmaState {
    decay: f64,
    warmup: bool,
    updates: u64,
    /// Each variable with its average (or, while swapped, its live value).
    average: Vec<(String, Var, Tensor)>,
    swapped: bool,
    evaluate_every_epoch: Option<usize>,
}

/// An exponential moving average of every float variable in the model's `VarMap` (weights and
/// batch-norm moving statistics, as timm's `ModelEmaV2`), updated after each optimizer step:
/// `average = d * average + (1 - d) * w` with `d = decay`, or with
/// `d = min(decay, (1 + n) / (10 + n))` after `n` updates when warm-up is on (the default, TF's
/// `num_updates` rule), starting from the weights at the start of training.
///
/// A cheap handle: clone it, give one clone to the trainer (`with_callback(ema.clone())`)
/// and keep the other to [`WeightEma::swap`] the average in after training. With
/// [`WeightEma::evaluate_with_average`] the average is swapped in after each epoch's last
/// batch, so validation, `ModelCheckpoint` and early stopping see it, and swapped back
/// before the next epoch trains (after `fit` the model then holds the average). A
/// [`super::PreciseBn`] added after this callback recomputes the statistics for the averaged
/// weights.
#[derive(Debug, Clone)]
pub struct WeightEma {
    state: Arc<Mutex<EmaState>>,
}

impl WeightEma {
    /// An average with `decay` in `[0, 1)` (e.g. 0.999 per step), warm-up on.
    pub fn new(decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(crate::error::Error::invalid(
                "weight EMA decay",
                format!("must be in [0, 1), got {decay}"),
            )
            .into());
        }
        Ok(Self {
            state: Arc::new(Mutex::new(EmaState {
                decay,
                warmup: true,
                updates: 0,
                average: Vec::new(),
                swapped: false,
                evaluate_every_epoch: None,
            })),
        })
    }

    /// Turns the `(1 + n) / (10 + n)` warm-up of the decay on or off.
    pub fn warmup(self, warmup: bool) -> Self {
        self.lock().warmup = warmup;
        self
    }

    /// Swaps the average in after batch `batches_per_epoch - 1` of every epoch (pass the
    /// training source's `num_batches()`) and back before the next epoch.
    pub fn evaluate_with_average(self, batches_per_epoch: usize) -> Self {
        self.lock().evaluate_every_epoch = Some(batches_per_epoch);
        self
    }

    fn lock(&self) -> MutexGuard<'_, EmaState> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates applied so far.
    pub fn updates(&self) -> u64 {
        self.lock().updates
    }

    /// Whether the model currently holds the average (and this handle the live weights).
    pub fn is_swapped(&self) -> bool {
        self.lock().swapped
    }

    /// The average of variable `name` (while swapped, the model's value).
    pub fn average(&self, name: &str) -> Result<Option<Tensor>> {
        let state = self.lock();
        let Some((_, var, kept)) = state.average.iter().find(|(n, _, _)| n == name) else {
            return Ok(None);
        };
        Ok(Some(if state.swapped {
            var.as_tensor().copy()?
        } else {
            kept.clone()
        }))
    }

    /// Starts the average from the current values of `varmap`'s float variables (done by
    /// the callback at the start of training when there is none yet).
    pub fn reset(&self, varmap: &VarMap) -> Result<()> {
        let mut state = self.lock();
        state.average = named_vars(varmap)
            .into_iter()
            .map(|(n, v)| Ok((n, v.clone(), v.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        state.updates = 0;
        state.swapped = false;
        Ok(())
    }

    /// Folds the current weights into the average (what the callback does after each step).
    pub fn update(&self) -> Result<()> {
        let mut state = self.lock();
        if state.swapped {
            candle_core::bail!("weight EMA: cannot update while the average is swapped in");
        }
        let n = state.updates as f64;
        let d = if state.warmup {
            state.decay.min((1.0 + n) / (10.0 + n))
        } else {
            state.decay
        };
        for (_, var, avg) in state.average.iter_mut() {
            let w = var.as_tensor().detach();
            *avg = ((&*avg * d)? + (w * (1.0 - d))?)?.detach();
        }
        state.updates += 1;
        Ok(())
    }

    /// What this handle keeps, by variable name (the average, or while it is swapped in,
    /// the live weights), with its [`EmaMeta`]: with the model's own values, everything a
    /// resumed run needs to continue the average exactly ([`WeightEma::import_state`]).
    pub fn export_state(&self) -> Result<(HashMap<String, Tensor>, EmaMeta)> {
        let state = self.lock();
        let kept = state
            .average
            .iter()
            .map(|(name, _, kept)| (name.clone(), kept.clone()))
            .collect();
        let meta = EmaMeta {
            updates: state.updates,
            swapped: state.swapped,
        };
        Ok((kept, meta))
    }

    /// Continues the average that [`WeightEma::export_state`] gave, over `varmap`'s float
    /// variables (holding the values saved with it); every variable must have its tensor
    /// of the same shape, else an error naming it and nothing changes.
    pub fn import_state(
        &self,
        varmap: &VarMap,
        kept: &HashMap<String, Tensor>,
        meta: EmaMeta,
    ) -> Result<()> {
        let average = named_vars(varmap)
            .into_iter()
            .map(|(name, var)| match kept.get(&name) {
                Some(t) if t.dims() == var.dims() => {
                    let t = t.to_device(var.device())?.to_dtype(var.dtype())?;
                    Ok((name, var, t))
                }
                Some(t) => Err(crate::error::Error::invalid(
                    format!("weight average of `{name}`"),
                    format!("has shape {:?}, the variable {:?}", t.dims(), var.dims()),
                )
                .into()),
                None => Err(crate::error::Error::invalid(
                    format!("weight average of `{name}`"),
                    "is missing",
                )
                .into()),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.lock();
        state.average = average;
        state.updates = meta.updates;
        state.swapped = meta.swapped;
        Ok(())
    }

    /// Exchanges the model's values and the average: call once to evaluate or save the
    /// averaged model, again to go back to the live weights.
    pub fn swap(&self) -> Result<()> {
        let mut state = self.lock();
        for (_, var, kept) in state.average.iter_mut() {
            let live = var.as_tensor().copy()?;
            var.set(kept)?;
            *kept = live;
        }
        state.swapped = !state.swapped;
        Ok(())
    }
}

impl Callback for WeightEma {
    fn on_train_begin(&mut self, ctx: &mut TrainContext) -> Result<()> {
        if self.lock().average.is_empty() {
            self.reset(ctx.varmap)?;
        }
        Ok(())
    }

    fn on_epoch_begin(&mut self, _ctx: &mut TrainContext) -> Result<()> {
        if self.is_swapped() {
            self.swap()?;
        }
        Ok(())
    }

    fn on_batch_end(&mut self, batch: usize, _loss: f64, _ctx: &mut TrainContext) -> Result<()> {
        self.update()?;
        let every = self.lock().evaluate_every_epoch;
        if every == Some(batch + 1) {
            self.swap()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Batches;
    use crate::loss::Loss;
    use crate::optim::{Sgd, SgdConfig};
    use crate::train::testmodel::{batches, images, BnNet};
    use crate::train::{Trainer, Verbosity};
    use candle_core::{DType, Device};
    use candle_nn::{Init, ModuleT};

    fn scalar(t: &Tensor) -> f64 {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64
    }

    #[test]
    fn average_follows_the_naive_recurrence_with_and_without_warmup() {
        for warmup in [true, false] {
            let varmap = VarMap::new();
            let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            vb.get_with_hints(1, "w", Init::Const(0.0)).unwrap();
            let var = varmap.data().lock().unwrap()["w"].clone();
            let ema = WeightEma::new(0.9).unwrap().warmup(warmup);
            ema.reset(&varmap).unwrap();
            let mut want = 0.0f64;
            for (n, w) in [1.0f64, 2.0, 3.0, 5.0, 8.0].into_iter().enumerate() {
                var.set(&Tensor::new(&[w as f32], &Device::Cpu).unwrap())
                    .unwrap();
                ema.update().unwrap();
                let n = n as f64;
                let d = if warmup {
                    0.9f64.min((1.0 + n) / (10.0 + n))
                } else {
                    0.9
                };
                want = d * want + (1.0 - d) * w;
                let got = scalar(&ema.average("w").unwrap().unwrap());
                assert!(
                    (got - want).abs() < 1e-6,
                    "warmup={warmup}: {got} vs {want}"
                );
            }
            assert_eq!(ema.updates(), 5);
            // Swapping twice gives the live weights back.
            ema.swap().unwrap();
            assert!((scalar(var.as_tensor()) - want).abs() < 1e-6);
            assert!(ema.update().is_err(), "no update while swapped");
            ema.swap().unwrap();
            assert_eq!(scalar(var.as_tensor()), 8.0);
        }
        assert!(WeightEma::new(1.0).is_err());
    }

    #[test]
    fn validation_sees_the_average_and_training_the_live_weights() {
        let (varmap, model) = BnNet::new(11, 0.1);
        let (x, y) = images(32, 12, 0.5, 1.0);
        let mut train = batches(&x, &y, 8);
        let mut val = batches(&x, &y, 32);
        let ema = WeightEma::new(0.5)
            .unwrap()
            .evaluate_with_average(train.num_batches());
        let sgd = Sgd::from_varmap(
            &varmap,
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        let mut trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, sgd)
            .with_verbosity(Verbosity::Silent)
            .with_callback(ema.clone());
        let h = trainer.fit(&mut train, Some(&mut val), 2).unwrap();
        assert_eq!(ema.updates(), 8);
        assert!(ema.is_swapped(), "after fit the model holds the average");
        let eval = |m: &BnNet| {
            let logits = m.forward_t(&x, false).unwrap();
            Loss::BinaryCrossEntropy
                .compute(&logits, &y)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let averaged = eval(&model);
        assert!(
            (h.val_loss()[1] - averaged).abs() < 1e-6,
            "{:?} vs {averaged}",
            h.val_loss()
        );
        ema.swap().unwrap();
        let live = eval(&model);
        assert!(
            (live - averaged).abs() > 1e-6,
            "the average differs from the live weights"
        );
    }
}
