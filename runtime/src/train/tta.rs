//! Test-time augmentation by horizontal flip: predictions averaged over each image and its
//! mirror image.

use super::fit::Evaluation;
use crate::data::Batches;
use crate::loss::Loss;
use candle_core::{DType, Result, Tensor};
use candle_nn::ModuleT;

/// The model's probabilities for `x` averaged with those for `x` mirrored left-right
/// (inference mode, gradients off): sigmoid of the logits for binary cross-entropy, softmax
/// over dim 1 for categorical cross-entropy, the raw outputs for mean squared error.
///
/// # Shapes
/// `x`: `[N, C, H, W]`; returns `[N, ...output]`.
pub fn flip_averaged_probabilities<M: ModuleT + ?Sized>(
    model: &M,
    loss: Loss,
    x: &Tensor,
) -> Result<Tensor> {
    if x.rank() != 4 {
        return Err(crate::error::Error::invalid(
            "test-time augmentation input",
            format!("expected images [N, C, H, W], got shape {:?}", x.dims()),
        )
        .into());
    }
    let probabilities = |x: &Tensor| -> Result<Tensor> {
        let out = crate::grad_mode::no_grad(|| model.forward_t(x, false))?;
        match loss {
            Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySmoothed { .. } => {
                candle_nn::ops::sigmoid(&out)
            }
            Loss::SparseCategoricalCrossEntropy | Loss::CategoricalCrossEntropy => {
                candle_nn::ops::softmax(&out, 1)
            }
            Loss::MeanSquaredError => Ok(out),
        }
    };
    let plain = probabilities(x)?;
    let mirrored = probabilities(&x.flip(&[3])?)?;
    ((plain + mirrored)? * 0.5)?.detach().to_dtype(DType::F32)
}

/// Logits whose probabilities are `p` (the inverse of the mapping in
/// [`flip_averaged_probabilities`]), clamped away from 0 and 1 so losses stay finite.
fn logits_of(loss: Loss, p: &Tensor) -> Result<Tensor> {
    const EPS: f64 = 1e-7;
    match loss {
        Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySmoothed { .. } => {
            let p = p.clamp(EPS, 1.0 - EPS)?;
            p.log()? - p.affine(-1.0, 1.0)?.log()?
        }
        Loss::SparseCategoricalCrossEntropy | Loss::CategoricalCrossEntropy => {
            p.clamp(EPS, 1.0)?.log()
        }
        Loss::MeanSquaredError => Ok(p.clone()),
    }
}

/// [`flip_averaged_probabilities`] over `inputs` in chunks of `batch_size`, concatenated.
///
/// # Shapes
/// `inputs`: `[N, C, H, W]`; returns `[N, ...output]`.
pub fn predict_tta<M: ModuleT + ?Sized>(
    model: &M,
    loss: Loss,
    inputs: &Tensor,
    batch_size: usize,
) -> Result<Tensor> {
    super::fit::map_chunks(inputs, batch_size, |x| {
        flip_averaged_probabilities(model, loss, x)
    })
}

/// The logits of [`flip_averaged_probabilities`] (clamped away from probabilities 0 and 1),
/// for what takes logits: a loss, a confusion matrix.
///
/// # Shapes
/// `x`: `[N, C, H, W]`; returns `[N, ...output]`.
pub fn flip_averaged_logits<M: ModuleT + ?Sized>(
    model: &M,
    loss: Loss,
    x: &Tensor,
) -> Result<Tensor> {
    logits_of(loss, &flip_averaged_probabilities(model, loss, x)?)
}

/// Like [`super::evaluate`], but on flip-averaged probabilities: the loss is computed from
/// the averaged probabilities (through the logits that give them) and accuracy from their
/// argmax / threshold 0.5, over epoch 0 of `data`.
///
/// # Shapes
/// Batches of images `[N, C, H, W]`; targets as `loss` expects.
pub fn evaluate_tta<M: ModuleT + ?Sized>(
    model: &M,
    loss: Loss,
    data: &mut dyn Batches,
) -> Result<Evaluation> {
    super::fit::evaluate_logits(loss, data, |x| flip_averaged_logits(model, loss, x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::testmodel::{batches, images, BnNet};

    /// Naive reference: mirror each image by hand, average the sigmoids.
    fn naive(model: &BnNet, x: &Tensor) -> Vec<f32> {
        let (n, c, h, w) = x.dims4().unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut m = vec![0f32; v.len()];
        for i in 0..n * c * h {
            for j in 0..w {
                m[i * w + j] = v[i * w + (w - 1 - j)];
            }
        }
        let mirrored = Tensor::from_vec(m, (n, c, h, w), x.device()).unwrap();
        let sig = |t: &Tensor| -> Vec<f32> {
            let z = model.forward_t(t, false).unwrap().flatten_all().unwrap();
            z.to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|z| 1.0 / (1.0 + (-z).exp()))
                .collect()
        };
        sig(x)
            .iter()
            .zip(sig(&mirrored))
            .map(|(a, b)| (a + b) / 2.0)
            .collect()
    }

    #[test]
    fn predictions_average_an_image_and_its_mirror() {
        let (_varmap, model) = BnNet::new(21, 0.1);
        let (x, y) = images(10, 22, 0.0, 1.0);
        let p = predict_tta(&model, Loss::BinaryCrossEntropy, &x, 4).unwrap();
        assert_eq!(p.dims(), &[10, 1]);
        let got = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = naive(&model, &x);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        // The evaluation scores those probabilities: BCE of p against y.
        let e = evaluate_tta(&model, Loss::BinaryCrossEntropy, &mut batches(&x, &y, 4)).unwrap();
        let labels = y.to_vec1::<u32>().unwrap();
        let (mut bce, mut correct) = (0.0f64, 0);
        for (p, &t) in want.iter().zip(&labels) {
            let p = *p as f64;
            bce -= if t == 1 { p.ln() } else { (1.0 - p).ln() };
            correct += usize::from((p > 0.5) == (t == 1));
        }
        assert_eq!(e.examples, 10);
        assert!(
            (e.loss - bce / 10.0).abs() < 1e-5,
            "{} vs {}",
            e.loss,
            bce / 10.0
        );
        assert_eq!(e.accuracy, Some(correct as f64 / 10.0));
        let err = predict_tta(
            &model,
            Loss::BinaryCrossEntropy,
            &x.flatten_from(1).unwrap(),
            4,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[N, C, H, W]"), "{err}");
    }
}
