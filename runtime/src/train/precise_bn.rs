//! "Precise BN": batch-norm moving statistics recomputed as true population statistics over
//! training data, replacing the momentum average that training leaves behind (which mixes
//! statistics of many past weights and of augmented inputs).

use super::callbacks::{Callback, TrainContext};
use crate::data::Batches;
use crate::error::Error;
use crate::layers::with_batch_norm_momentum;
use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{ModuleT, VarMap};

/// What [`recompute_batch_norm_statistics`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreciseBnReport {
    /// Batch-norm layers whose statistics were replaced.
    pub layers: usize,
    /// Batches run.
    pub batches: usize,
    /// Examples in those batches.
    pub examples: usize,
}

/// One layer's statistics variables and the per-channel sums over batches.
struct Stats {
    mean: Var,
    var: Var,
    sum_mean: Vec<f64>,
    sum_second_moment: Vec<f64>,
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// The batch-norm statistics in `varmap`: every `<prefix>running_mean` with a matching
/// `<prefix>running_var`, sorted by name.
fn batch_norm_stats(varmap: &VarMap) -> Result<Vec<Stats>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::msg("precise BN: the VarMap's lock is poisoned"))?;
    let mut names: Vec<&String> = data
        .keys()
        .filter(|k| k.ends_with("running_mean"))
        .collect();
    names.sort();
    let mut stats = Vec::new();
    for name in names {
        let prefix = &name[..name.len() - "running_mean".len()];
        if let Some(var) = data.get(&format!("{prefix}running_var")) {
            let c = var.elem_count();
            stats.push(Stats {
                mean: data[name].clone(),
                var: var.clone(),
                sum_mean: vec![0.0; c],
                sum_second_moment: vec![0.0; c],
            });
        }
    }
    Ok(stats)
}

/// Replaces the moving statistics of every batch-norm layer of `model` (variables named
/// `*running_mean` / `*running_var` in `varmap`) by population statistics over the first
/// `max_batches` batches (all when `None`) of epoch 0 of `data`: for each channel, the
/// example-weighted mean of the batch means, and the pooled variance
/// `E[var_b + mean_b^2] - mean^2` (so the between-batch spread of the means counts).
///
/// Each batch runs `model.forward_t(x, true)` without gradients, with every batch norm's
/// momentum set to 1 ([`with_batch_norm_momentum`]), so each layer's batch statistics
/// are those of its input under the current weights. Pass un-augmented training data. The
/// weights are unchanged; dropout layers draw (and advance) their masks as in training. On
/// error the previous statistics are restored.
///
/// # Shapes
/// Batches as the model takes them.
pub fn recompute_batch_norm_statistics<M: ModuleT + ?Sized>(
    model: &M,
    varmap: &VarMap,
    data: &mut dyn Batches,
    max_batches: Option<usize>,
) -> Result<PreciseBnReport> {
    let mut stats = batch_norm_stats(varmap)?;
    if stats.is_empty() {
        return Err(Error::invalid(
            "precise BN model",
            "no batch-norm statistics (`*running_mean` with `*running_var`) in the VarMap",
        )
        .into());
    }
    let saved: Vec<(Tensor, Tensor)> = stats
        .iter()
        .map(|s| Ok((s.mean.as_tensor().copy()?, s.var.as_tensor().copy()?)))
        .collect::<Result<_>>()?;
    let result = accumulate(model, data, max_batches, &mut stats);
    let result = result.and_then(|(batches, examples)| {
        if examples == 0 {
            return Err(Error::invalid("precise BN data", "no batches to estimate from").into());
        }
        for s in &stats {
            let n = examples as f64;
            let mean: Vec<f64> = s.sum_mean.iter().map(|v| v / n).collect();
            let var: Vec<f64> = s
                .sum_second_moment
                .iter()
                .zip(&mean)
                .map(|(m2, m)| (m2 / n - m * m).max(0.0))
                .collect();
            let device = s.mean.device();
            s.mean
                .set(&Tensor::new(mean, device)?.to_dtype(s.mean.dtype())?)?;
            s.var
                .set(&Tensor::new(var, device)?.to_dtype(s.var.dtype())?)?;
        }
        Ok(PreciseBnReport {
            layers: stats.len(),
            batches,
            examples,
        })
    });
    if result.is_err() {
        for (s, (mean, var)) in stats.iter().zip(&saved) {
            s.mean.set(mean)?;
            s.var.set(var)?;
        }
    }
    result
}

/// Runs the batches and sums each layer's per-channel batch statistics, weighted by batch
/// size; returns the batch and example counts.
fn accumulate<M: ModuleT + ?Sized>(
    model: &M,
    data: &mut dyn Batches,
    max_batches: Option<usize>,
    stats: &mut [Stats],
) -> Result<(usize, usize)> {
    let (mut batches, mut examples) = (0, 0);
    for batch in data.epoch(0).take(max_batches.unwrap_or(usize::MAX)) {
        let x = batch?.inputs;
        let n = x.dim(0)?;
        // With momentum 1 the old value is multiplied by 0: zero it so a non-finite one
        // (a diverged run) cannot leak into the estimate.
        for s in stats.iter() {
            s.mean.set(&s.mean.zeros_like()?)?;
            s.var.set(&s.var.zeros_like()?)?;
        }
        let (out, updates) = with_batch_norm_momentum(1.0, || {
            crate::grad_mode::no_grad(|| model.forward_t(&x, true))
        });
        out?;
        if updates < stats.len() {
            return Err(Error::invalid(
                "precise BN model",
                format!(
                    "the VarMap holds {} batch-norm statistics but the forward pass updated \
                     only {updates} through convnet's BatchNorm2d; other batch-norm layers \
                     (e.g. candle_nn::BatchNorm) or statistics of another model cannot be \
                     re-estimated",
                    stats.len()
                ),
            )
            .into());
        }
        for s in stats.iter_mut() {
            let mean = to_f64(s.mean.as_tensor())?;
            let var = to_f64(s.var.as_tensor())?;
            for c in 0..mean.len() {
                s.sum_mean[c] += n as f64 * mean[c];
                s.sum_second_moment[c] += n as f64 * (var[c] + mean[c] * mean[c]);
            }
        }
        batches += 1;
        examples += n;
    }
    Ok((batches, examples))
}

/// A callback that recomputes the batch-norm statistics ([`recompute_batch_norm_statistics`])
/// after the last training batch of every `every`-th epoch, before validation, so that
/// validation, checkpoints and early stopping see the precise statistics; and once more when
/// training ends if batches ran since the last recomputation.
///
/// `fit` does not tell callbacks an epoch's batch count, so it is given here: pass the
/// training source's `num_batches()`. [`crate::train::Trainer::with_precise_bn`] does the
/// same as a trainer setting, needs no batch count, and follows
/// [`crate::train::Trainer::with_model`] (progressive resizing).
pub struct PreciseBn<'a, M: ModuleT + ?Sized> {
    model: &'a M,
    data: Box<dyn Batches + 'a>,
    max_batches: Option<usize>,
    batches_per_epoch: usize,
    every: usize,
    stale: bool,
    last: Option<PreciseBnReport>,
}

impl<'a, M: ModuleT + ?Sized> PreciseBn<'a, M> {
    /// Recomputes `model`'s statistics from `data` (un-augmented training examples) after
    /// batch `batches_per_epoch - 1` of each epoch, from at most `max_batches` batches.
    pub fn new(
        model: &'a M,
        data: impl Batches + 'a,
        max_batches: Option<usize>,
        batches_per_epoch: usize,
    ) -> Self {
        Self {
            model,
            data: Box::new(data),
            max_batches,
            batches_per_epoch,
            every: 1,
            stale: false,
            last: None,
        }
    }

    /// Recomputes only every `every` epochs (>= 1; default 1).
    pub fn every(mut self, every: usize) -> Self {
        self.every = every.max(1);
        self
    }

    /// The report of the last recomputation.
    pub fn last_report(&self) -> Option<PreciseBnReport> {
        self.last
    }

    fn recompute(&mut self, ctx: &TrainContext) -> Result<()> {
        self.last = Some(recompute_batch_norm_statistics(
            self.model,
            ctx.varmap,
            self.data.as_mut(),
            self.max_batches,
        )?);
        self.stale = false;
        Ok(())
    }
}

impl<M: ModuleT + ?Sized> Callback for PreciseBn<'_, M> {
    fn on_batch_end(&mut self, batch: usize, _loss: f64, ctx: &mut TrainContext) -> Result<()> {
        self.stale = true;
        if batch + 1 == self.batches_per_epoch && (ctx.epoch + 1) % self.every == 0 {
            self.recompute(ctx)?;
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut TrainContext) -> Result<()> {
        if self.stale {
            self.recompute(ctx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;
    use crate::optim::{Sgd, SgdConfig};
    use crate::train::testmodel::{batches, images, BnNet};
    use crate::train::{Trainer, Verbosity};
    use candle_core::Module;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn eval(model: &BnNet, x: &Tensor) -> Tensor {
        crate::grad_mode::no_grad(|| model.forward_t(x, false)).unwrap()
    }

    /// Training-mode output on the whole of `x` as one batch, leaving the statistics alone.
    fn train_mode(model: &BnNet, x: &Tensor) -> Tensor {
        let (out, updates) = with_batch_norm_momentum(0.0, || {
            crate::grad_mode::no_grad(|| model.forward_t(x, true))
        });
        assert_eq!(updates, 2);
        out.unwrap()
    }

    #[test]
    fn eval_mode_matches_training_mode_statistics_after_recompute() {
        // Momentum 0.001: the moving statistics barely leave their (0, 1) start, far from the
        // data (offset 3, scale 2).
        let (varmap, model) = BnNet::new(1, 0.001);
        let (x, y) = images(64, 2, 3.0, 2.0);
        for batch in batches(&x, &y, 16).epoch(0) {
            model.forward_t(&batch.unwrap().inputs, true).unwrap();
        }
        let reference = train_mode(&model, &x);
        let before = max_diff(&eval(&model, &x), &reference);
        assert!(
            before > 0.1,
            "the moving statistics should be off: {before}"
        );
        let report =
            recompute_batch_norm_statistics(&model, &varmap, &mut batches(&x, &y, 64), None)
                .unwrap();
        assert_eq!(
            report,
            PreciseBnReport {
                layers: 2,
                batches: 1,
                examples: 64
            }
        );
        let after = max_diff(&eval(&model, &x), &reference);
        assert!(
            after < 1e-4,
            "eval vs training mode after precise BN: {after}"
        );
    }

    #[test]
    fn statistics_pool_batches_into_population_mean_and_biased_variance() {
        let (varmap, model) = BnNet::new(3, 0.1);
        let (x, y) = images(40, 4, -1.0, 0.5);
        // Batches of 16, 16, 8 (unequal: the weights matter); the first layer's input does not
        // depend on batching, so its statistics must be the population ones.
        let report =
            recompute_batch_norm_statistics(&model, &varmap, &mut batches(&x, &y, 16), None)
                .unwrap();
        assert_eq!((report.batches, report.examples), (3, 40));
        let h = model.conv1.forward(&x).unwrap();
        let h = h.transpose(0, 1).unwrap().flatten_from(1).unwrap();
        let rows: Vec<Vec<f32>> = h.to_vec2().unwrap();
        let mean = model.bn1.running_mean().to_vec1::<f32>().unwrap();
        let var = model.bn1.running_var().to_vec1::<f32>().unwrap();
        for (c, row) in rows.iter().enumerate() {
            let n = row.len() as f64;
            let m = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let v = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
            assert!(
                (mean[c] as f64 - m).abs() < 1e-4,
                "mean {c}: {} vs {m}",
                mean[c]
            );
            assert!(
                (var[c] as f64 - v).abs() < 1e-4 * v.max(1.0),
                "var {c}: {} vs {v}",
                var[c]
            );
        }
        // Only `max_batches` batches are used.
        let report =
            recompute_batch_norm_statistics(&model, &varmap, &mut batches(&x, &y, 16), Some(2))
                .unwrap();
        assert_eq!((report.batches, report.examples), (2, 32));
    }

    /// One good batch, then a failing one.
    struct GoodThenBad(crate::data::Batch);

    impl Batches for GoodThenBad {
        fn epoch(
            &mut self,
            _epoch: usize,
        ) -> Box<dyn Iterator<Item = Result<crate::data::Batch>> + '_> {
            let bad = Err(candle_core::Error::msg("unreadable batch"));
            Box::new([Ok(self.0.clone()), bad].into_iter())
        }
        fn num_batches(&self) -> usize {
            2
        }
        fn num_examples(&self) -> usize {
            2 * self.0.inputs.dim(0).unwrap()
        }
    }

    #[test]
    fn errors_leave_the_statistics_as_they_were() {
        let (varmap, model) = BnNet::new(5, 0.1);
        let before = model.bn2.running_var().to_vec1::<f32>().unwrap();
        let (x, y) = images(8, 6, 2.0, 1.0);
        let mut data = GoodThenBad(crate::data::Batch {
            inputs: x.clone(),
            targets: y.clone(),
        });
        let err = recompute_batch_norm_statistics(&model, &varmap, &mut data, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreadable batch"), "{err}");
        assert_eq!(model.bn2.running_var().to_vec1::<f32>().unwrap(), before);
        // Statistics the model does not update through BatchNorm2d (here: a candle_nn batch
        // norm's, created in the same VarMap) are an error, not a silent partial estimate.
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, x.device());
        candle_nn::batch_norm(4, 1e-3, vb.pp("other")).unwrap();
        let err = recompute_batch_norm_statistics(&model, &varmap, &mut batches(&x, &y, 4), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds 3 batch-norm statistics") && err.contains("only 2"),
            "{err}"
        );
        assert_eq!(model.bn2.running_var().to_vec1::<f32>().unwrap(), before);
        let empty = VarMap::new();
        let err = recompute_batch_norm_statistics(&model, &empty, &mut batches(&x, &y, 4), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no batch-norm statistics"), "{err}");
    }

    /// Both forms, the callback and `Trainer::with_precise_bn`, recompute after the last
    /// training batch and before validation.
    #[test]
    fn callback_and_trainer_setting_recompute_before_validation() {
        for setting in [false, true] {
            let (varmap, model) = BnNet::new(7, 0.001);
            let (x, y) = images(64, 8, 3.0, 2.0);
            let mut train = batches(&x, &y, 16);
            let per_epoch = train.num_batches();
            let mut val = batches(&x, &y, 64);
            let opt = Sgd::from_varmap(
                &varmap,
                SgdConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            );
            let trainer = Trainer::new(&model, &varmap, Loss::BinaryCrossEntropy, opt)
                .with_verbosity(Verbosity::Silent);
            let mut trainer = match setting {
                true => trainer.with_precise_bn(batches(&x, &y, 64), None),
                false => trainer.with_callback(PreciseBn::new(
                    &model,
                    batches(&x, &y, 64),
                    None,
                    per_epoch,
                )),
            };
            let h = trainer.fit(&mut train, Some(&mut val), 2).unwrap();
            // Validation ran on the recomputed statistics: the same as evaluating now, in eval
            // mode, equal to the training-mode output on the whole set.
            let reference = train_mode(&model, &x);
            assert!(
                max_diff(&eval(&model, &x), &reference) < 1e-4,
                "setting: {setting}"
            );
            let logits = eval(&model, &x);
            let val_loss = Loss::BinaryCrossEntropy.compute(&logits, &y).unwrap();
            let val_loss = val_loss.to_scalar::<f32>().unwrap() as f64;
            assert!(
                (h.val_loss()[1] - val_loss).abs() < 1e-6,
                "setting {setting}: {:?} vs {val_loss}",
                h.val_loss()
            );
        }
    }
}
