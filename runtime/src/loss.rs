//! Loss functions computed from logits: binary, sparse categorical (class indices) and
//! categorical (one-hot) cross-entropy, and mean squared error, plus the [`Loss`] enum the
//! training loop takes.
//!
//! The cross-entropies are also per-pixel losses for segmentation: with logits
//! `[N, K, H, W]` (classes on dim 1, as PyTorch's `CrossEntropyLoss`; any number of trailing
//! spatial dims) they average over every pixel of every example.

use crate::error::Error;
use candle_core::{DType, Result, Tensor};

/// A loss the training loop minimises, always reduced to the mean over the batch (and over
/// the pixels of per-pixel logits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Binary cross-entropy from logits (Keras `BinaryCrossentropy(from_logits=True)`).
    ///
    /// # Shapes
    /// logits `[N]` or `[N, 1]`; targets `[N]` (`u32` 0/1 or float) or the logits' shape.
    /// Per pixel: logits `[N, 1, H, W]`, targets `[N, 1, H, W]` or `[N, H, W]`.
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
    /// `SparseCategoricalCrossentropy(from_logits=True)`, PyTorch `CrossEntropyLoss`).
    ///
    /// # Shapes
    /// logits `[N, K]`; targets `[N]` as `u32` class indices. Per pixel: logits
    /// `[N, K, H, W]`, targets `[N, H, W]` (see [`sparse_categorical_cross_entropy`]).
    SparseCategoricalCrossEntropy,
    /// Categorical cross-entropy from logits with one-hot or probability targets (Keras
    /// `CategoricalCrossentropy(from_logits=True)`).
    ///
    /// # Shapes
    /// logits and targets `[N, K]`, or `[N, K, H, W]` per pixel (see
    /// [`categorical_cross_entropy`]).
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
            Loss::SparseCategoricalCrossEntropy => {
                sparse_categorical_cross_entropy(logits, targets)
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
            Loss::SparseCategoricalCrossEntropy => "sparse_categorical_crossentropy",
            Loss::CategoricalCrossEntropy => "categorical_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }
}

/// Numerically stable binary cross-entropy from logits, averaged over all elements:
/// `max(z, 0) - z * y + log(1 + exp(-|z|))`, finite for any finite logit.
///
/// # Shapes
/// `logits`: `[N]` or `[N, 1]`, or `[N, 1, H, W]` per pixel (any shape works); `targets`:
/// same element count as `logits` (`[N]`, `[N, 1]`, `[N, H, W]`, `[N, 1, H, W]`), `u32` 0/1
/// labels or float probabilities. Returns a rank-0 tensor in the logits' dtype.
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
        return Err(Error::invalid(
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
/// and, for per-pixel logits, over every pixel (log-softmax over dim 1, so stable at extreme
/// logits): `mean over n, h, w of logsumexp_k z[n, k, h, w] - z[n, y[n, h, w], h, w]`.
///
/// # Shapes
/// `logits`: `[N, K]`, or `[N, K, H, W]` per pixel (any number of trailing dims);
/// `targets`: the logits' shape without dim 1 (`[N]`, `[N, H, W]`), or with dim 1 of size 1
/// (`[N, 1]`, `[N, 1, H, W]`), holding class indices in `0..K` (`u32`, `u8`, `i64`, or
/// floats holding whole numbers). Returns a rank-0 tensor. Other shapes and out-of-range
/// classes are an [`Error::InvalidArgument`] naming
/// both shapes.
pub fn sparse_categorical_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    const WHAT: &str = "sparse categorical cross-entropy targets";
    let dims = logits.dims();
    if dims.len() < 2 {
        return Err(Error::invalid(
            "sparse categorical cross-entropy logits",
            format!("expected [N, K] or [N, K, H, W] with classes on dim 1, got {dims:?}"),
        )
        .into());
    }
    let classes = dims[1];
    let mut index_dims = dims.to_vec();
    index_dims[1] = 1;
    let without_classes: Vec<usize> = [&dims[..1], &dims[2..]].concat();
    if targets.dims() != without_classes.as_slice() && targets.dims() != index_dims.as_slice() {
        return Err(Error::invalid(
            WHAT,
            format!(
                "class indices for logits {dims:?} must be {without_classes:?} (or {index_dims:?}), got {:?}",
                targets.dims()
            ),
        )
        .into());
    }
    if targets.elem_count() > 0 {
        let values = targets.to_dtype(DType::F64)?;
        let largest = values.max_all()?.to_scalar::<f64>()?;
        let smallest = values.min_all()?.to_scalar::<f64>()?;
        if largest >= classes as f64 || smallest < 0.0 {
            let bad = if smallest < 0.0 { smallest } else { largest };
            return Err(Error::invalid(
                WHAT,
                format!(
                    "class {bad} is out of range for logits {dims:?} with {classes} classes (0..{classes}); targets {:?}",
                    targets.dims()
                ),
            )
            .into());
        }
        let fractional = if !targets.dtype().is_float() {
            0.0
        } else {
            (&values - values.floor()?)?
                .abs()?
                .max_all()?
                .to_scalar::<f64>()?
        };
        if fractional > 0.0 {
            return Err(Error::invalid(
                WHAT,
                format!(
                    "class indices must be whole numbers, got a fractional one (targets {:?}, {:?})",
                    targets.dims(),
                    targets.dtype()
                ),
            )
            .into());
        }
    }
    let targets = match targets.dtype() {
        DType::U32 | DType::I64 | DType::U8 => targets.clone(),
        _ => targets.to_dtype(DType::U32)?,
    };
    let log_p = candle_nn::ops::log_softmax(logits, 1)?;
    let picked = log_p.gather(&targets.reshape(index_dims)?.contiguous()?, 1)?;
    picked.mean_all()?.neg()
}

/// Categorical cross-entropy from logits with one-hot (or any probability) targets, averaged
/// over the batch and, for per-pixel logits, over every pixel:
/// `mean over n, h, w of -sum_k y[n, k, h, w] * log_softmax(z)[n, k, h, w]`.
///
/// # Shapes
/// `logits` and `targets`: the same shape, `[N, K]` or `[N, K, H, W]` (classes on dim 1,
/// any number of trailing dims); targets in any float or integer dtype. Returns a rank-0
/// tensor. Differing shapes are an
/// [`Error::InvalidArgument`] naming both.
pub fn categorical_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.rank() < 2 || logits.dims() != targets.dims() {
        return Err(Error::invalid(
            "categorical cross-entropy targets",
            format!(
                "one-hot targets must have the logits' shape [N, K, ...] with classes on dim 1: logits {:?}, targets {:?}",
                logits.dims(),
                targets.dims()
            ),
        )
        .into());
    }
    let y = targets.to_dtype(logits.dtype())?;
    let log_p = candle_nn::ops::log_softmax(logits, 1)?;
    (y * log_p)?.sum_keepdim(1)?.mean_all()?.neg()
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

    /// The gradient of `loss` with respect to `var`, flattened.
    fn gradient(loss: &Tensor, var: &Var) -> Vec<f64> {
        let grads = loss.backward().unwrap();
        let grad = grads.get(var).unwrap();
        grad.flatten_all().unwrap().to_vec1().unwrap()
    }

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
        let g = gradient(&loss, &z);
        let zs = [-1e4f64, -3.0, 0.0, 2.0, 1e4];
        let ys = [1.0f64, 0.0, 1.0, 1.0, 0.0];
        for i in 0..5 {
            let want = (1.0 / (1.0 + (-zs[i]).exp()) - ys[i]) / 5.0;
            assert!((g[i] - want).abs() < 1e-12, "{i}: {} vs {want}", g[i]);
        }
    }

    #[test]
    fn sparse_categorical_cross_entropy_matches_log_softmax() {
        let logits =
            Tensor::new(&[[1.0f64, 2.0, 3.0], [1000.0, -1000.0, 0.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[2u32, 1], &Device::Cpu).unwrap();
        let got: f64 = sparse_categorical_cross_entropy(&logits, &targets)
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

    /// Deterministic pseudo-random values in [-4, 4).
    fn wiggle(n: usize, phase: f64) -> Vec<f64> {
        (0..n)
            .map(|i| 4.0 * ((i as f64 * 1.618 + phase).sin() * 43758.5453).fract())
            .collect()
    }

    /// Logits `[2, 3, 4, 5]` and class indices `[2, 4, 5]` in 0..3.
    fn pixel_case() -> (Vec<f64>, Vec<u32>, [usize; 4]) {
        let dims = [2, 3, 4, 5];
        let z = wiggle(dims.iter().product(), 0.3);
        let y = (0..2 * 4 * 5)
            .map(|i| ((i * 7 + i / 3) % 3) as u32)
            .collect();
        (z, y, dims)
    }

    /// Naive per-pixel loop: the loss and its gradient `(softmax - onehot) / pixels`.
    fn naive_pixel_cross_entropy(
        z: &[f64],
        y: &[u32],
        [n, k, h, w]: [usize; 4],
    ) -> (f64, Vec<f64>) {
        let at = |b: usize, c: usize, p: usize| (b * k + c) * h * w + p;
        let pixels = (n * h * w) as f64;
        let (mut loss, mut grad) = (0.0, vec![0.0; z.len()]);
        for b in 0..n {
            for p in 0..h * w {
                let target = y[b * h * w + p] as usize;
                let max = (0..k).map(|c| z[at(b, c, p)]).fold(f64::MIN, f64::max);
                let sum: f64 = (0..k).map(|c| (z[at(b, c, p)] - max).exp()).sum();
                loss += max + sum.ln() - z[at(b, target, p)];
                for c in 0..k {
                    let softmax = (z[at(b, c, p)] - max).exp() / sum;
                    let onehot = if c == target { 1.0 } else { 0.0 };
                    grad[at(b, c, p)] = (softmax - onehot) / pixels;
                }
            }
        }
        (loss / pixels, grad)
    }

    #[test]
    fn sparse_cross_entropy_per_pixel_matches_a_naive_loop_with_gradients() {
        let dev = Device::Cpu;
        let (z, y, dims) = pixel_case();
        let (want, want_grad) = naive_pixel_cross_entropy(&z, &y, dims);
        let logits = Var::from_vec(z, &dims, &dev).unwrap();
        let targets = Tensor::from_vec(y, (2, 4, 5), &dev).unwrap();
        let loss = Loss::SparseCategoricalCrossEntropy
            .compute(logits.as_tensor(), &targets)
            .unwrap();
        let got: f64 = loss.to_scalar().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let grad = gradient(&loss, &logits);
        for (i, (g, w)) in grad.iter().zip(&want_grad).enumerate() {
            assert!((g - w).abs() < 1e-12, "gradient {i}: {g} vs {w}");
        }
        // Targets with a unit class dim, and float class indices, give the same loss.
        let same = |targets: Tensor| -> f64 {
            sparse_categorical_cross_entropy(logits.as_tensor(), &targets)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert_eq!(same(targets.unsqueeze(1).unwrap()), got);
        assert_eq!(same(targets.to_dtype(DType::F32).unwrap()), got);
    }

    #[test]
    fn sparse_cross_entropy_names_both_shapes_and_bad_classes() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 3, 4, 5), DType::F32, &dev).unwrap();
        let err = |targets: Tensor| {
            sparse_categorical_cross_entropy(&logits, &targets)
                .unwrap_err()
                .to_string()
        };
        let msg = err(Tensor::zeros((2, 5, 4), DType::U32, &dev).unwrap());
        assert!(
            msg.contains("[2, 3, 4, 5]") && msg.contains("[2, 5, 4]") && msg.contains("[2, 4, 5]"),
            "{msg}"
        );
        let msg = err((Tensor::ones((2, 4, 5), DType::U32, &dev).unwrap() * 3.0).unwrap());
        assert!(
            msg.contains("class 3") && msg.contains("3 classes"),
            "{msg}"
        );
        let msg = err(Tensor::full(-1f32, (2, 4, 5), &dev).unwrap());
        assert!(msg.contains("class -1"), "{msg}");
        let msg = err(Tensor::full(0.5f32, (2, 4, 5), &dev).unwrap());
        assert!(msg.contains("whole numbers"), "{msg}");
        let msg = sparse_categorical_cross_entropy(
            &Tensor::zeros(4, DType::F32, &dev).unwrap(),
            &Tensor::zeros(4, DType::U32, &dev).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("[4]") && msg.contains("[N, K]"), "{msg}");
    }

    #[test]
    fn one_hot_cross_entropy_matches_sparse_and_soft_targets() {
        let dev = Device::Cpu;
        let (z, y, dims) = pixel_case();
        let logits = Var::from_vec(z.clone(), &dims, &dev).unwrap();
        let classes = Tensor::from_vec(y.clone(), (2, 4, 5), &dev).unwrap();
        // One-hot targets [2, 3, 4, 5] give the sparse loss and gradient.
        let onehot: Vec<f32> = (0..z.len())
            .map(|i| {
                let (b, c, p) = (i / 60, i / 20 % 3, i % 20);
                (y[b * 20 + p] as usize == c) as u8 as f32
            })
            .collect();
        let onehot = Tensor::from_vec(onehot, &dims, &dev).unwrap();
        let loss = Loss::CategoricalCrossEntropy
            .compute(logits.as_tensor(), &onehot)
            .unwrap();
        let sparse = sparse_categorical_cross_entropy(logits.as_tensor(), &classes).unwrap();
        let (a, b): (f64, f64) = (loss.to_scalar().unwrap(), sparse.to_scalar().unwrap());
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        let (_, want_grad) = naive_pixel_cross_entropy(&z, &y, dims);
        let grad = gradient(&loss, &logits);
        for (i, (g, w)) in grad.iter().zip(&want_grad).enumerate() {
            assert!((g - w).abs() < 1e-12, "gradient {i}: {g} vs {w}");
        }
        // Soft targets on [N, K]: -sum_k y_k log softmax_k, averaged over rows.
        let z2 = [[1.0f64, -2.0, 0.5], [3.0, 3.0, -1.0]];
        let y2 = [[0.2f64, 0.3, 0.5], [0.0, 0.9, 0.1]];
        let want: f64 = z2
            .iter()
            .zip(&y2)
            .map(|(z, y)| {
                let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
                -(0..3).map(|k| y[k] * (z[k] - lse)).sum::<f64>()
            })
            .sum::<f64>()
            / 2.0;
        let got: f64 = categorical_cross_entropy(
            &Tensor::new(&z2, &dev).unwrap(),
            &Tensor::new(&y2, &dev).unwrap(),
        )
        .unwrap()
        .to_scalar()
        .unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert_eq!(
            Loss::CategoricalCrossEntropy.name(),
            "categorical_crossentropy"
        );
        assert_eq!(
            Loss::SparseCategoricalCrossEntropy.name(),
            "sparse_categorical_crossentropy"
        );
        // Class-index targets are not one-hot: the error names both shapes.
        let msg = categorical_cross_entropy(logits.as_tensor(), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("[2, 3, 4, 5]") && msg.contains("[2, 4, 5]"),
            "{msg}"
        );
    }

    #[test]
    fn binary_cross_entropy_per_pixel_averages_over_every_pixel() {
        let dev = Device::Cpu;
        let z = wiggle(2 * 3 * 4, 1.1);
        let y: Vec<u32> = (0..24).map(|i| (i % 5 < 2) as u32).collect();
        let want = z
            .iter()
            .zip(&y)
            .map(|(&z, &y)| reference_bce(z, y as f64))
            .sum::<f64>()
            / 24.0;
        let logits = Var::from_vec(z.clone(), (2, 1, 3, 4), &dev).unwrap();
        for targets in [
            Tensor::from_vec(y.clone(), (2, 3, 4), &dev).unwrap(),
            Tensor::from_vec(y.clone(), (2, 1, 3, 4), &dev).unwrap(),
        ] {
            let loss = Loss::BinaryCrossEntropy
                .compute(logits.as_tensor(), &targets)
                .unwrap();
            let got: f64 = loss.to_scalar().unwrap();
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
            let grad = gradient(&loss, &logits);
            for i in 0..24 {
                let w = (1.0 / (1.0 + (-z[i]).exp()) - y[i] as f64) / 24.0;
                assert!(
                    (grad[i] - w).abs() < 1e-12,
                    "gradient {i}: {} vs {w}",
                    grad[i]
                );
            }
        }
        let msg = binary_cross_entropy_with_logits(
            logits.as_tensor(),
            &Tensor::zeros((2, 3, 3), DType::U32, &dev).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("[2, 1, 3, 4]") && msg.contains("[2, 3, 3]"),
            "{msg}"
        );
    }
}
