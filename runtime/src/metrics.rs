//! Metrics accumulated over the batches of an epoch (mean loss and accuracy), and the
//! confusion matrix of a classifier (per-class recall, balanced accuracy) or of a
//! segmentation model (pixel accuracy, per-class and mean IoU).
//!
//! Per-pixel logits `[N, K, H, W]` (classes on dim 1, any number of trailing dims) are
//! scored pixel by pixel: accuracy is pixel accuracy, and the confusion matrix counts
//! pixels.

use crate::error::Error;
use candle_core::{DType, Result, Tensor};

/// Correct predictions out of those scored in a batch: one per example for a classifier, one
/// per pixel for per-pixel logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    /// Predictions equal to their target.
    pub correct: usize,
    /// Predictions scored.
    pub scored: usize,
}

/// Correct predictions in a batch, per example or per pixel (see [`predicted_classes`]).
///
/// # Shapes
/// `logits`: `[N]`, `[N, 1]` or `[N, K]`, or per pixel `[N, 1, H, W]` or `[N, K, H, W]`;
/// `targets`: class indices of the predictions' shape (`[N]`, `[N, H, W]`; any integer or
/// float dtype holding whole numbers), that shape with a unit dim 1 (`[N, 1]`,
/// `[N, 1, H, W]`), or for `K > 1` one-hot targets of the logits' shape.
pub fn correct_predictions(logits: &Tensor, targets: &Tensor) -> Result<Hits> {
    let (predicted, targets) = (predicted_classes(logits)?, class_targets(logits, targets)?);
    let hits = predicted.eq(&targets)?.to_dtype(DType::U32)?.sum_all()?;
    Ok(Hits {
        correct: hits.to_scalar::<u32>()? as usize,
        scored: predicted.elem_count(),
    })
}

/// Whether `logits` hold one binary logit per example or pixel (`[N]`, or dim 1 of size 1).
fn is_binary(logits: &Tensor) -> Result<bool> {
    Ok(logits.rank() == 1 || logits.dim(1)? == 1)
}

/// The predicted class of each example or pixel: for binary logits (`[N]`, `[N, 1]`,
/// `[N, 1, H, W]`) 1 when the logit is positive, else the argmax over the `K > 1` classes on
/// dim 1.
///
/// # Shapes
/// `logits`: `[N]`, `[N, 1]` or `[N, K]`, or per pixel `[N, 1, H, W]` or `[N, K, H, W]`;
/// returns the logits' shape without dim 1 (`[N]`, `[N, H, W]`), as `u32`.
pub fn predicted_classes(logits: &Tensor) -> Result<Tensor> {
    if logits.rank() == 0 {
        return Err(Error::invalid(
            "logits",
            "expected [N, K] or [N, K, H, W], got a scalar".to_string(),
        )
        .into());
    }
    if logits.rank() == 1 {
        logits.gt(0.0)?.to_dtype(DType::U32)
    } else if is_binary(logits)? {
        logits.squeeze(1)?.gt(0.0)?.to_dtype(DType::U32)
    } else {
        logits.argmax(1)?.to_dtype(DType::U32)
    }
}

/// The targets as class indices of [`predicted_classes`]' shape.
fn class_targets(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let dims = logits.dims();
    let predicted: Vec<usize> = match dims.len() {
        0 | 1 => dims.to_vec(),
        _ => [&dims[..1], &dims[2..]].concat(),
    };
    let mut with_unit = predicted.clone();
    if !with_unit.is_empty() {
        with_unit.insert(1, 1);
    }
    let t = targets.dims();
    if t == predicted.as_slice() || t == with_unit.as_slice() {
        targets.reshape(predicted)?.to_dtype(DType::U32)
    } else if dims.len() >= 2 && !is_binary(logits)? && t == dims {
        targets.argmax(1)?.to_dtype(DType::U32)
    } else {
        Err(Error::invalid(
            "accuracy targets",
            format!(
                "targets {t:?} do not fit logits {dims:?}: expected class indices {predicted:?}{}",
                if dims.len() >= 2 && !is_binary(logits)? {
                    format!(" or one-hot {dims:?}")
                } else {
                    String::new()
                }
            ),
        )
        .into())
    }
}

/// Counts of (true class, predicted class) pairs of a classifier over `K` classes, or of a
/// segmentation model's pixels: its [`accuracy`](Self::accuracy) is then pixel accuracy,
/// and [`ious`](Self::ious) and [`mean_iou`](Self::mean_iou) score the segmentation.
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

    /// Adds a batch, one count per example or per pixel: predictions as in
    /// [`predicted_classes`]; a target or prediction outside the classes is an error.
    ///
    /// # Shapes
    /// As [`correct_predictions`]: `logits` `[N]`, `[N, 1]`, `[N, K]`, `[N, 1, H, W]` or
    /// `[N, K, H, W]`; `targets` class indices `[N]` or `[N, H, W]` (or one-hot).
    pub fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let predicted = predicted_classes(logits)?.flatten_all()?.to_vec1::<u32>()?;
        let targets = class_targets(logits, targets)?
            .flatten_all()?
            .to_vec1::<u32>()?;
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

    /// Intersection over union of each class, `TP / (TP + FP + FN)` over the pixels (or
    /// examples) counted; `None` for a class neither present nor predicted.
    pub fn ious(&self) -> Vec<Option<f64>> {
        let k = self.counts.len();
        (0..k)
            .map(|c| {
                let tp = self.counts[c][c];
                let actual: usize = self.counts[c].iter().sum();
                let predicted: usize = (0..k).map(|t| self.counts[t][c]).sum();
                let union = actual + predicted - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// Mean of [`ious`](Self::ious) over the classes that have one (Keras' `MeanIoU`, which
    /// also skips classes neither present nor predicted); NaN when empty.
    pub fn mean_iou(&self) -> f64 {
        let ious: Vec<f64> = self.ious().into_iter().flatten().collect();
        ious.iter().sum::<f64>() / ious.len() as f64
    }

    /// Mean recall over the classes that have examples (scikit-learn's
    /// `balanced_accuracy_score`); NaN when empty.
    pub fn balanced_accuracy(&self) -> f64 {
        let recalls: Vec<f64> = self.recalls().into_iter().flatten().collect();
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }
}

/// Running mean loss and accuracy over batches: the loss weighted by batch size, the
/// accuracy over every prediction scored (examples, or pixels for per-pixel logits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricAccumulator {
    loss_sum: f64,
    examples: usize,
    correct: usize,
    scored: usize,
    batches: usize,
}

impl MetricAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch: its mean loss, its size, and (for classification) its
    /// [`correct_predictions`].
    pub fn update(&mut self, mean_loss: f64, batch_size: usize, hits: Option<Hits>) {
        self.loss_sum += mean_loss * batch_size as f64;
        self.examples += batch_size;
        self.batches += 1;
        if let Some(h) = hits {
            self.correct += h.correct;
            self.scored += h.scored;
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
        (self.scored > 0).then(|| self.correct as f64 / self.scored as f64)
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
        let hits = |correct, scored| Hits { correct, scored };
        assert_eq!(correct_predictions(&logits, &targets).unwrap(), hits(2, 4));
        let logits = Tensor::new(&[[0.1f32, 0.7, 0.2], [3.0, 1.0, 2.0]], &d).unwrap();
        let targets = Tensor::new(&[1u32, 2], &d).unwrap();
        assert_eq!(correct_predictions(&logits, &targets).unwrap(), hits(1, 2));
        // One-hot targets of the logits' shape.
        let onehot = Tensor::new(&[[0f32, 1.0, 0.0], [0.0, 1.0, 0.0]], &d).unwrap();
        assert_eq!(correct_predictions(&logits, &onehot).unwrap(), hits(1, 2));
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
        acc.update(
            1.0,
            3,
            Some(Hits {
                correct: 3,
                scored: 3,
            }),
        );
        acc.update(
            0.0,
            1,
            Some(Hits {
                correct: 0,
                scored: 1,
            }),
        );
        assert_eq!(acc.loss(), 0.75);
        assert_eq!(acc.accuracy(), Some(0.75));
        // Pixel accuracy: a batch of 1 image with 8 pixels, 6 right, weighs 8 predictions.
        acc.update(
            0.0,
            1,
            Some(Hits {
                correct: 7,
                scored: 8,
            }),
        );
        assert_eq!(acc.accuracy(), Some(10.0 / 12.0));
        assert_eq!((acc.examples(), acc.batches()), (5, 3));
        assert_eq!(acc.loss(), 3.0 / 5.0);
    }

    /// Per-pixel logits `[2, 3, 2, 2]` whose argmax is `PREDICTED`, and targets `TARGETS`.
    const PREDICTED: [[[u32; 2]; 2]; 2] = [[[0, 1], [2, 0]], [[0, 0], [1, 1]]];
    const TARGETS: [[[u32; 2]; 2]; 2] = [[[0, 1], [1, 0]], [[0, 2], [1, 0]]];

    fn pixel_logits(d: &Device) -> Tensor {
        let mut z = vec![0f32; 2 * 3 * 4];
        for n in 0..2 {
            for p in 0..4 {
                let class = PREDICTED[n][p / 2][p % 2] as usize;
                z[(n * 3 + class) * 4 + p] = 2.0 + p as f32;
            }
        }
        Tensor::from_vec(z, (2, 3, 2, 2), d).unwrap()
    }

    #[test]
    fn accuracy_counts_pixels_of_per_pixel_logits() {
        let d = Device::Cpu;
        let logits = pixel_logits(&d);
        assert_eq!(
            predicted_classes(&logits)
                .unwrap()
                .to_vec3::<u32>()
                .unwrap(),
            PREDICTED.map(|m| m.map(|r| r.to_vec()).to_vec())
        );
        // Hand count: image 0 right at (0,0), (0,1), (1,1); image 1 at (0,0), (1,0).
        let targets = Tensor::new(&TARGETS, &d).unwrap();
        let want = Hits {
            correct: 5,
            scored: 8,
        };
        assert_eq!(correct_predictions(&logits, &targets).unwrap(), want);
        assert_eq!(
            correct_predictions(&logits, &targets.unsqueeze(1).unwrap()).unwrap(),
            want
        );
        // Binary per-pixel logits [N, 1, H, W] against [N, H, W] or [N, 1, H, W] masks.
        let binary = Tensor::new(&[[[[0.5f32, -1.0], [2.0, -0.1]]]], &d).unwrap();
        let mask = Tensor::new(&[[[1u32, 1], [1, 1]]], &d).unwrap();
        let want = Hits {
            correct: 2,
            scored: 4,
        };
        assert_eq!(correct_predictions(&binary, &mask).unwrap(), want);
        assert_eq!(
            correct_predictions(&binary, &mask.unsqueeze(1).unwrap()).unwrap(),
            want
        );
        // A mask of another size: the error names both shapes.
        let err = correct_predictions(&logits, &Tensor::zeros((2, 2, 3), DType::U32, &d).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[2, 2, 3]") && err.contains("[2, 3, 2, 2]") && err.contains("[2, 2, 2]"),
            "{err}"
        );
    }

    #[test]
    fn confusion_matrix_scores_segmentation_by_iou() {
        let d = Device::Cpu;
        let mut cm = ConfusionMatrix::new(4);
        cm.update(
            &pixel_pad(&pixel_logits(&d)),
            &Tensor::new(&TARGETS, &d).unwrap(),
        )
        .unwrap();
        // (target, predicted) pairs: (0,0) x3, (1,1) x2, (1,2), (2,0), (0,1).
        assert_eq!(
            cm.counts(),
            &[
                vec![3, 1, 0, 0],
                vec![0, 2, 1, 0],
                vec![1, 0, 0, 0],
                vec![0; 4]
            ]
        );
        assert_eq!(cm.total(), 8);
        assert_eq!(cm.accuracy(), 5.0 / 8.0);
        // Class 0: TP 3, FP 1, FN 1; class 1: TP 2, FP 1, FN 1; class 2: TP 0, FP 1, FN 1;
        // class 3 neither present nor predicted.
        assert_eq!(
            cm.ious(),
            [Some(3.0 / 5.0), Some(2.0 / 4.0), Some(0.0), None]
        );
        assert!((cm.mean_iou() - (0.6 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        assert!(ConfusionMatrix::new(2).mean_iou().is_nan());
    }

    /// `evaluate` (the same accumulation as `fit`) reports pixel accuracy over every pixel
    /// of every batch: a model that outputs its input, fed the logits above one image a batch.
    #[test]
    fn evaluate_reports_pixel_accuracy() {
        use crate::data::{DataLoader, TensorDataset};
        let d = Device::Cpu;
        let data =
            TensorDataset::new(pixel_logits(&d), Tensor::new(&TARGETS, &d).unwrap()).unwrap();
        let identity = |x: &Tensor| Ok(x.clone());
        let mut batches = DataLoader::new(data, 1);
        let eval = crate::train::evaluate(
            &identity,
            crate::loss::Loss::SparseCategoricalCrossEntropy,
            &mut batches,
        )
        .unwrap();
        // Image 0: 3 of 4 pixels right, image 1: 2 of 4.
        assert_eq!(eval.accuracy, Some(5.0 / 8.0));
        assert_eq!(eval.examples, 2);
    }

    /// `[N, 3, H, W]` logits with a fourth class that never wins.
    fn pixel_pad(logits: &Tensor) -> Tensor {
        let low = Tensor::full(-100f32, (2, 1, 2, 2), logits.device()).unwrap();
        Tensor::cat(&[logits, &low], 1).unwrap()
    }
}
