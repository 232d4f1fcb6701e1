//! Metrics accumulated over the batches of an epoch: mean loss and accuracy.

use candle_core::{DType, Result, Tensor};

/// Number of correct predictions in a batch.
///
/// Binary classification (logits `[N]` or `[N, 1]`) predicts class 1 when the logit is
/// positive; multi-class (logits `[N, K]`, `K > 1`) predicts the argmax.
///
/// # Shapes
/// `logits`: `[N]`, `[N, 1]` or `[N, K]`; `targets`: `[N]` class indices (any integer or
/// float dtype holding whole numbers).
pub fn correct_predictions(logits: &Tensor, targets: &Tensor) -> Result<usize> {
    let n = logits.dim(0)?;
    let targets = targets.flatten_all()?.to_dtype(DType::U32)?;
    if targets.dim(0)? != n {
        candle_core::bail!(
            "accuracy: {} targets for a batch of {n} predictions",
            targets.dim(0)?
        );
    }
    let binary = logits.rank() == 1 || (logits.rank() == 2 && logits.dim(1)? == 1);
    let predicted = if binary {
        logits.flatten_all()?.gt(0.0)?.to_dtype(DType::U32)?
    } else {
        logits.argmax(1)?.to_dtype(DType::U32)?
    };
    let hits = predicted.eq(&targets)?.to_dtype(DType::U32)?.sum_all()?;
    Ok(hits.to_scalar::<u32>()? as usize)
}

/// Running mean loss and accuracy over batches, each batch weighted by its size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricAccumulator {
    loss_sum: f64,
    examples: usize,
    correct: usize,
    counted: usize,
    batches: usize,
}

impl MetricAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch: its mean loss, its size, and (for classification) its number of
    /// correct predictions.
    pub fn update(&mut self, mean_loss: f64, batch_size: usize, correct: Option<usize>) {
        self.loss_sum += mean_loss * batch_size as f64;
        self.examples += batch_size;
        self.batches += 1;
        if let Some(c) = correct {
            self.correct += c;
            self.counted += batch_size;
        }
    }

    /// Mean loss per example so far (NaN before any batch).
    pub fn loss(&self) -> f64 {
        if self.examples == 0 {
            f64::NAN
        } else {
            self.loss_sum / self.examples as f64
        }
    }

    /// Fraction of correct predictions so far, `None` when no batch reported accuracy.
    pub fn accuracy(&self) -> Option<f64> {
        (self.counted > 0).then(|| self.correct as f64 / self.counted as f64)
    }

    /// Examples seen so far.
    pub fn examples(&self) -> usize {
        self.examples
    }

    /// Batches seen so far.
    pub fn batches(&self) -> usize {
        self.batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn binary_and_multiclass_accuracy() {
        let d = Device::Cpu;
        let logits = Tensor::new(&[[0.3f32], [-2.0], [0.0], [5.0]], &d).unwrap();
        let targets = Tensor::new(&[1u32, 0, 1, 0], &d).unwrap();
        // 0.3 -> 1 ok, -2 -> 0 ok, 0 -> 0 wrong, 5 -> 1 wrong.
        assert_eq!(correct_predictions(&logits, &targets).unwrap(), 2);
        let logits = Tensor::new(&[[0.1f32, 0.7, 0.2], [3.0, 1.0, 2.0]], &d).unwrap();
        let targets = Tensor::new(&[1u32, 2], &d).unwrap();
        assert_eq!(correct_predictions(&logits, &targets).unwrap(), 1);
    }

    #[test]
    fn accumulator_weights_by_batch_size() {
        let mut acc = MetricAccumulator::new();
        assert!(acc.loss().is_nan());
        assert_eq!(acc.accuracy(), None);
        acc.update(1.0, 3, Some(3));
        acc.update(0.0, 1, Some(0));
        assert_eq!(acc.loss(), 0.75);
        assert_eq!(acc.accuracy(), Some(0.75));
        assert_eq!((acc.examples(), acc.batches()), (4, 2));
    }
}
