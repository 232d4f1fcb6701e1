//! The checks `fit` and the checkpoint callback make so that a fault never passes silently:
//! a non-finite loss or weight is an [`Error::NonFinite`], a diverging loss an
//! [`Error::Diverged`] ([`DivergenceGuard`]).

use crate::error::Error;
use candle_core::{DType, Result, Tensor};
use candle_nn::VarMap;

/// Stops `fit` with [`Error::Diverged`] when a batch's training loss grows past a threshold;
/// the batch's step is not applied. On by default in [`crate::train::Trainer`] with
/// `factor = 100` and no absolute limit; turn it off with
/// `Trainer::with_divergence_guard(None)`.
///
/// The threshold is the lower of the two rules that are set:
/// - relative: `factor` times the reference loss, which is the run's first-epoch loss: the
///   lower of the first batch's loss and the first epoch's mean (the first batch's alone
///   until the first epoch ends; after a resume, the first epoch's mean from the history).
///   A reference of 0 (a model that starts at a perfect fit) disables this rule;
/// - absolute: `max_loss`.
///
/// ```
/// use convnet_runtime::train::DivergenceGuard;
/// let guard = DivergenceGuard::default().with_max_loss(50.0);
/// assert_eq!(guard.threshold(Some(0.7)), Some(50.0));
/// assert_eq!(guard.threshold(Some(0.2)), Some(20.0));
/// assert_eq!(DivergenceGuard::absolute(1e3).threshold(Some(0.7)), Some(1e3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DivergenceGuard {
    /// Fail above `factor` times the reference loss; `None` turns the relative rule off.
    pub factor: Option<f64>,
    /// Fail above this loss; `None` turns the absolute rule off.
    pub max_loss: Option<f64>,
}

impl Default for DivergenceGuard {
    /// The relative rule at 100x the first-epoch loss, no absolute limit.
    fn default() -> Self {
        Self::relative(100.0)
    }
}

impl DivergenceGuard {
    /// Only the relative rule: fail above `factor` times the first-epoch loss.
    pub fn relative(factor: f64) -> Self {
        Self {
            factor: Some(factor),
            max_loss: None,
        }
    }

    /// Only the absolute rule: fail above `max_loss`.
    pub fn absolute(max_loss: f64) -> Self {
        Self {
            factor: None,
            max_loss: Some(max_loss),
        }
    }

    /// Adds (or replaces) the absolute limit.
    pub fn with_max_loss(mut self, max_loss: f64) -> Self {
        self.max_loss = Some(max_loss);
        self
    }

    /// Checks the settings: a factor must be finite and > 1, a limit finite and > 0.
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.factor {
            if !(f.is_finite() && f > 1.0) {
                return Err(Error::invalid(
                    "divergence guard factor",
                    format!("expected a finite number > 1, got {f}"),
                )
                .into());
            }
        }
        if let Some(m) = self.max_loss {
            if !(m.is_finite() && m > 0.0) {
                return Err(Error::invalid(
                    "divergence guard max_loss",
                    format!("expected a finite number > 0, got {m}"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// The loss above which training counts as diverged, given the reference (first-epoch)
    /// loss if known; `None` when no rule applies.
    pub fn threshold(&self, reference: Option<f64>) -> Option<f64> {
        let relative = match (self.factor, reference) {
            (Some(f), Some(r)) if r.is_finite() && r > 0.0 => Some(f * r),
            _ => None,
        };
        match (relative, self.max_loss) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// An [`Error::NonFinite`] for `value` unless it is finite.
pub(crate) fn ensure_finite(
    what: &str,
    value: f64,
    epoch: Option<usize>,
    batch: Option<usize>,
) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: what.to_string(),
            value,
            epoch,
            batch,
        }
        .into())
    }
}

/// The first NaN or infinite value of `t`, if any (one reduction on the device, the values
/// copied to the host only when one is found).
pub(crate) fn first_non_finite(t: &Tensor) -> Result<Option<f64>> {
    if !t.dtype().is_float() {
        return Ok(None);
    }
    let t = t.to_dtype(DType::F64)?.flatten_all()?;
    // 0 * x is 0 for finite values and NaN for NaN and +-inf.
    if t.affine(0.0, 0.0)?
        .sum_all()?
        .to_scalar::<f64>()?
        .is_finite()
    {
        return Ok(None);
    }
    Ok(t.to_vec1::<f64>()?.into_iter().find(|v| !v.is_finite()))
}

/// An [`Error::NonFinite`] naming the first variable of `varmap` (in name order) that holds
/// a NaN or infinite value, at `epoch`.
pub(crate) fn ensure_finite_weights(varmap: &VarMap, epoch: usize) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = {
        let data = varmap.data().lock().unwrap();
        data.iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect()
    };
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        if let Some(value) = first_non_finite(&t)? {
            return ensure_finite(
                &format!("weights (tensor `{name}`)"),
                value,
                Some(epoch),
                None,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn thresholds_combine_the_two_rules() {
        let g = DivergenceGuard::default();
        assert_eq!(g.threshold(None), None, "no reference yet, no limit");
        assert_eq!(
            g.threshold(Some(0.0)),
            None,
            "a zero reference disables the factor"
        );
        assert_eq!(g.threshold(Some(f64::NAN)), None);
        assert_eq!(g.threshold(Some(0.5)), Some(50.0));
        let both = g.with_max_loss(10.0);
        assert_eq!(both.threshold(Some(0.5)), Some(10.0));
        assert_eq!(both.threshold(Some(0.05)), Some(5.0));
        assert_eq!(both.threshold(None), Some(10.0));
        assert!(DivergenceGuard::relative(1.0).validate().is_err());
        assert!(DivergenceGuard::relative(f64::NAN).validate().is_err());
        assert!(DivergenceGuard::absolute(-1.0).validate().is_err());
        assert!(both.validate().is_ok());
    }

    #[test]
    fn first_non_finite_finds_nan_and_infinity() {
        let dev = Device::Cpu;
        let ok = Tensor::new(&[1f32, -2.0, 3e38], &dev).unwrap();
        assert_eq!(first_non_finite(&ok).unwrap(), None);
        let inf = Tensor::new(&[1f32, f32::INFINITY, f32::NAN], &dev).unwrap();
        assert_eq!(first_non_finite(&inf).unwrap(), Some(f64::INFINITY));
        let nan = Tensor::new(&[[0f64, f64::NAN]], &dev).unwrap();
        assert!(first_non_finite(&nan).unwrap().unwrap().is_nan());
        let ints = Tensor::new(&[1u32, 2], &dev).unwrap();
        assert_eq!(first_non_finite(&ints).unwrap(), None);
    }
}
