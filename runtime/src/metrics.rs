//! Metrics accumulated over the batches of an epoch (mean loss and accuracy), and the
//! confusion matrix of a classifier (per-class recall, balanced accuracy).

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
    let (predicted, targets) = (predicted_classes(logits)?, class_targets(logits, targets)?);
    let hits = predicted.eq(&targets)?.to_dtype(DType::U32)?.sum_all()?;
    Ok(hits.to_scalar::<u32>()? as usize)
}

/// The predicted class of each example: for binary logits (`[N]` or `[N, 1]`) 1 when the
/// logit is positive, else the argmax over `K > 1` classes.
///
/// # Shapes
/// `logits`: `[N]`, `[N, 1]` or `[N, K]`; returns `[N]` (u32).
pub fn predicted_classes(logits: &Tensor) -> Result<Tensor> {
    let binary = logits.rank() == 1 || (logits.rank() == 2 && logits.dim(1)? == 1);
    if binary {
        logits.flatten_all()?.gt(0.0)?.to_dtype(DType::U32)
    } else {
        logits.argmax(1)?.to_dtype(DType::U32)
    }
}

fn class_targets(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let n = logits.dim(0)?;
    let targets = targets.flatten_all()?.to_dtype(DType::U32)?;
    if targets.dim(0)? != n {
        candle_core::bail!(
            "accuracy: {} targets for a batch of {n} predictions",
            targets.dim(0)?
        );
    }
    Ok(targets)
}

/// Counts of (true class, predicted class) pairs of a classifier over `K` classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// `counts[actual][predicted]`.
    counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` classes (2 for a binary classifier with one logit).
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Adds a batch: predictions as in [`predicted_classes`]; a target or prediction outside
    /// the classes is an error.
    ///
    /// # Shapes
    /// `logits`: `[N]`, `[N, 1]` or `[N, K]`; `targets`: `[N]` class indices.
    pub fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let predicted = predicted_classes(logits)?.to_vec1::<u32>()?;
        let targets = class_targets(logits, targets)?.to_vec1::<u32>()?;
        let k = self.counts.len();
        for (&t, &p) in targets.iter().zip(&predicted) {
            let (t, p) = (t as usize, p as usize);
            if t >= k || p >= k {
                candle_core::bail!(
                    "confusion matrix over {k} classes: got target {t} and prediction {p}"
                );
            }
            self.counts[t][p] += 1;
        }
        Ok(())
    }

    /// `counts[actual][predicted]`.
    pub fn counts(&self) -> &[Vec<usize>] {
        &self.counts
    }

    /// Examples counted.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Fraction of examples classified correctly (NaN when empty).
    pub fn accuracy(&self) -> f64 {
        let hits: usize = (0..self.counts.len()).map(|c| self.counts[c][c]).sum();
        hits as f64 / self.total() as f64
    }

    /// Recall of each class: the fraction of its examples predicted as it (`None` for a
    /// class without examples).
    pub fn recalls(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }

    /// Mean recall over the classes that have examples (scikit-learn's
    /// `balanced_accuracy_score`); NaN when empty.
    pub fn balanced_accuracy(&self) -> f64 {
        let recalls: Vec<f64> = self.recalls().into_iter().flatten().collect();
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }
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
    fn confusion_matrix_recall_and_balanced_accuracy() {
        let d = Device::Cpu;
        let mut cm = ConfusionMatrix::new(2);
        // Targets 0,0,0,1; predictions 1 (0.3 > 0), 0, 0, 1.
        let logits = Tensor::new(&[0.3f32, -2.0, -1.0, 5.0], &d).unwrap();
        cm.update(&logits, &Tensor::new(&[0u32, 0, 0, 1], &d).unwrap())
            .unwrap();
        assert_eq!(cm.counts(), &[vec![2, 1], vec![0, 1]]);
        assert_eq!(cm.accuracy(), 0.75);
        assert_eq!(cm.recalls(), [Some(2.0 / 3.0), Some(1.0)]);
        assert!((cm.balanced_accuracy() - 5.0 / 6.0).abs() < 1e-12);
        // A class without examples has no recall and does not count in the balance.
        let mut cm = ConfusionMatrix::new(3);
        let logits = Tensor::new(&[[0.1f32, 0.7, 0.2], [3.0, 1.0, 2.0]], &d).unwrap();
        cm.update(&logits, &Tensor::new(&[1u32, 1], &d).unwrap())
            .unwrap();
        assert_eq!(cm.recalls(), [None, Some(0.5), None]);
        assert_eq!(cm.balanced_accuracy(), 0.5);
        let err = cm
            .update(&logits, &Tensor::new(&[3u32, 0], &d).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("target 3"), "{err}");
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
