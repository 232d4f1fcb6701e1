//! Loss functions computed from logits: binary and categorical cross-entropy, and mean squared
//! error, plus the [`Loss`] enum the training loop takes.

use candle_core::{DType, Result, Tensor};

/// A loss the training loop minimises, always reduced to the mean over the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Binary cross-entropy from logits (Keras `BinaryCrossentropy(from_logits=True)`).
    ///
    /// # Shapes
    /// logits `[N]` or `[N, 1]`; targets `[N]` (`u32` 0/1 or float) or the logits' shape.
    BinaryCrossEntropy,
    /// Binary cross-entropy from logits against smoothed targets
    /// `y * (1 - label_smoothing) + 0.5 * label_smoothing` (Keras
    /// `BinaryCrossentropy(from_logits=True, label_smoothing=...)`); `label_smoothing` in
    /// `[0, 1]`. Accuracy is still measured against the unsmoothed targets.
    ///
    /// # Shapes
    /// As [`Loss::BinaryCrossEntropy`].
    BinaryCrossEntropySmoothed {
        /// Weight of the uniform target 0.5.
        label_smoothing: f64,
    },
    /// Categorical cross-entropy from logits with class-index targets (Keras
    /// `SparseCategoricalCrossentropy(from_logits=True)`).
    ///
    /// # Shapes
    /// logits `[N, K]`; targets `[N]` as `u32` class indices.
    CategoricalCrossEntropy,
    /// Mean squared error over all elements.
    ///
    /// # Shapes
    /// predictions and targets of the same shape, e.g. `[N, K]`.
    MeanSquaredError,
}

impl Loss {
    /// The mean loss of a batch as a scalar tensor (differentiable w.r.t. `logits`).
    ///
    /// # Shapes
    /// See each variant; returns a rank-0 tensor.
    pub fn compute(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        match self {
            Loss::BinaryCrossEntropy => binary_cross_entropy_with_logits(logits, targets),
            Loss::BinaryCrossEntropySmoothed { label_smoothing } => {
                smoothed_binary_cross_entropy_with_logits(logits, targets, *label_smoothing)
            }
            Loss::CategoricalCrossEntropy => categorical_cross_entropy(logits, targets),
            Loss::MeanSquaredError => mean_squared_error(logits, targets),
        }
    }

    /// Whether accuracy is a meaningful metric for this loss (the classification losses).
    pub fn is_classification(&self) -> bool {
        !matches!(self, Loss::MeanSquaredError)
    }

    /// The Keras-style name, e.g. `binary_crossentropy`.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySmoothed { .. } => {
                "binary_crossentropy"
            }
            Loss::CategoricalCrossEntropy => "sparse_categorical_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }
}

/// Numerically stable binary cross-entropy from logits, averaged over all elements:
/// `max(z, 0) - z * y + log(1 + exp(-|z|))`, finite for any finite logit.
///
/// # Shapes
/// `logits`: `[N]` or `[N, 1]` (any shape works); `targets`: same element count as `logits`,
/// `u32` 0/1 labels or float probabilities. Returns a rank-0 tensor in the logits' dtype.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.elem_count() != targets.elem_count() {
        candle_core::bail!(
            "binary cross-entropy: logits {:?} and targets {:?} differ in element count",
            logits.dims(),
            targets.dims()
        );
    }
    let y = targets.to_dtype(logits.dtype())?.reshape(logits.shape())?;
    let z = logits;
    let positive = z.relu()?;
    let log_term = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_elem = ((positive - (z * y)?)? + log_term)?;
    per_elem.mean_all()
}

/// [`binary_cross_entropy_with_logits`] against targets smoothed towards 0.5:
/// `y * (1 - label_smoothing) + 0.5 * label_smoothing` (Keras' `label_smoothing`).
///
/// # Shapes
/// As [`binary_cross_entropy_with_logits`].
pub fn smoothed_binary_cross_entropy_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    label_smoothing: f64,
) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(crate::error::Error::invalid(
            "label smoothing",
            format!("must be in [0, 1], got {label_smoothing}"),
        )
        .into());
    }
    let y = targets.to_dtype(logits.dtype())?;
    let y = y.affine(1.0 - label_smoothing, 0.5 * label_smoothing)?;
    binary_cross_entropy_with_logits(logits, &y)
}

/// Categorical cross-entropy from logits with class-index targets, averaged over the batch
/// (log-softmax, so stable at extreme logits).
///
/// # Shapes
/// `logits`: `[N, K]`; `targets`: `[N]` integer class indices. Returns a rank-0 tensor.
pub fn categorical_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let targets = match targets.dtype() {
        DType::U32 | DType::I64 | DType::U8 => targets.clone(),
        _ => targets.to_dtype(DType::U32)?,
    };
    let targets = targets.flatten_all()?;
    candle_nn::loss::cross_entropy(logits, &targets)
}

/// Mean squared error over all elements.
///
/// # Shapes
/// `predictions` and `targets`: same element count (targets are reshaped to the predictions'
/// shape and cast to their dtype). Returns a rank-0 tensor.
pub fn mean_squared_error(predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if predictions.elem_count() != targets.elem_count() {
        candle_core::bail!(
            "mean squared error: predictions {:?} and targets {:?} differ in element count",
            predictions.dims(),
            targets.dims()
        );
    }
    let y = targets
        .to_dtype(predictions.dtype())?
        .reshape(predictions.shape())?;
    (predictions - y)?.sqr()?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn reference_bce(z: f64, y: f64) -> f64 {
        z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
    }

    #[test]
    fn bce_is_finite_and_exact_at_extreme_logits() {
        let zs = [100.0f64, -100.0, 1e4, -1e4, 0.0, 2.5];
        for &y in &[0.0f64, 1.0] {
            for &z in &zs {
                let logits = Tensor::new(&[[z]], &Device::Cpu).unwrap();
                let targets = Tensor::new(&[y as u32], &Device::Cpu).unwrap();
                let got: f64 = binary_cross_entropy_with_logits(&logits, &targets)
                    .unwrap()
                    .to_scalar()
                    .unwrap();
                let want = reference_bce(z, y);
                assert!(got.is_finite(), "z={z} y={y}: {got}");
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "z={z} y={y}: got {got}, want {want}"
                );
            }
        }
        // f32 too, and the mean over a batch.
        let logits = Tensor::new(&[100f32, -100.0, 1e4, -1e4], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 1, 0, 1], &Device::Cpu).unwrap();
        let got: f32 = binary_cross_entropy_with_logits(&logits, &targets)
            .unwrap()
            .to_scalar()
            .unwrap();
        let want = (100.0 + 100.0 + 1e4 + 1e4) / 4.0;
        assert!((got as f64 - want).abs() < 1e-2, "{got} vs {want}");
    }

    #[test]
    fn bce_gradient_is_sigmoid_minus_target() {
        let z = Var::new(&[-1e4f64, -3.0, 0.0, 2.0, 1e4], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1u32, 0, 1, 1, 0], &Device::Cpu).unwrap();
        let loss = binary_cross_entropy_with_logits(z.as_tensor(), &y).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<f64> = grads.get(&z).unwrap().to_vec1().unwrap();
        let zs = [-1e4f64, -3.0, 0.0, 2.0, 1e4];
        let ys = [1.0f64, 0.0, 1.0, 1.0, 0.0];
        for i in 0..5 {
            let want = (1.0 / (1.0 + (-zs[i]).exp()) - ys[i]) / 5.0;
            assert!((g[i] - want).abs() < 1e-12, "{i}: {} vs {want}", g[i]);
        }
    }

    #[test]
    fn categorical_cross_entropy_matches_log_softmax() {
        let logits =
            Tensor::new(&[[1.0f64, 2.0, 3.0], [1000.0, -1000.0, 0.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[2u32, 1], &Device::Cpu).unwrap();
        let got: f64 = categorical_cross_entropy(&logits, &targets)
            .unwrap()
            .to_scalar()
            .unwrap();
        // Row 0: logsumexp(1,2,3) - 3; row 1: 1000 - (-1000) = 2000.
        let lse0 = 3.0 + ((-2.0f64).exp() + (-1.0f64).exp() + 1.0).ln();
        let want = ((lse0 - 3.0) + 2000.0) / 2.0;
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    #[test]
    fn mse_and_loss_enum() {
        let p = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[[1.0f32, 0.0], [0.0, 4.0]], &Device::Cpu).unwrap();
        let got: f32 = Loss::MeanSquaredError
            .compute(&p, &t)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(got, (4.0 + 9.0) / 4.0);
        assert!(!Loss::MeanSquaredError.is_classification());
        assert!(Loss::BinaryCrossEntropy.is_classification());
    }

    #[test]
    fn label_smoothing_pulls_targets_towards_one_half() {
        let dev = Device::Cpu;
        let z = [-3.0f32, -0.5, 0.0, 2.0, 7.0];
        let y = [0u32, 1, 1, 0, 1];
        let logits = Tensor::new(&z, &dev).unwrap();
        let targets = Tensor::new(&y, &dev).unwrap();
        let ls = 0.2;
        let want = z
            .iter()
            .zip(&y)
            .map(|(&z, &y)| reference_bce(z as f64, y as f64 * (1.0 - ls) + 0.5 * ls))
            .sum::<f64>()
            / z.len() as f64;
        let loss = Loss::BinaryCrossEntropySmoothed {
            label_smoothing: ls,
        };
        let got = loss
            .compute(&logits, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(loss.name(), "binary_crossentropy");
        assert!(loss.is_classification());
        // No smoothing is plain binary cross-entropy.
        let plain = Loss::BinaryCrossEntropy.compute(&logits, &targets).unwrap();
        let zero = smoothed_binary_cross_entropy_with_logits(&logits, &targets, 0.0).unwrap();
        assert_eq!(
            plain.to_scalar::<f32>().unwrap(),
            zero.to_scalar::<f32>().unwrap()
        );
        let err = smoothed_binary_cross_entropy_with_logits(&logits, &targets, 1.5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("label smoothing") && err.contains("[0, 1]"),
            "{err}"
        );
    }
}
