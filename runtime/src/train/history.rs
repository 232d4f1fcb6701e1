//! The per-epoch record of a training run, as CSV or JSON.

use serde::{Deserialize, Serialize};

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLogs {
    /// 0-based epoch index (as in Keras' CSV logs).
    pub epoch: usize,
    /// Mean training loss (NaN when training diverged; `null` in JSON).
    #[serde(with = "nan_as_null")]
    pub loss: f64,
    /// Training accuracy, for classification losses.
    pub accuracy: Option<f64>,
    /// Validation loss, when validation data was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when validation data was given and the loss classifies.
    pub val_accuracy: Option<f64>,
    /// Learning rate in effect at the end of the epoch.
    pub lr: f64,
    /// Wall-clock seconds the epoch took, validation included.
    pub seconds: f64,
}

impl EpochLogs {
    /// A metric by its Keras name: `loss`, `accuracy`, `val_loss`, `val_accuracy`, `lr`,
    /// `seconds` (also `acc`/`val_acc`).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" | "acc" => self.accuracy,
            "val_loss" => self.val_loss,
            "val_accuracy" | "val_acc" => self.val_accuracy,
            "lr" | "learning_rate" => Some(self.lr),
            "seconds" => Some(self.seconds),
            _ => None,
        }
    }
}

/// Per-epoch logs of a run, like Keras' `History.history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per completed epoch, in order.
    pub epochs: Vec<EpochLogs>,
}

impl History {
    /// Number of recorded epochs.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// Whether no epoch is recorded.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }

    /// The series of one metric (see [`EpochLogs::get`]), `None` where an epoch lacks it.
    pub fn series(&self, name: &str) -> Vec<Option<f64>> {
        self.epochs.iter().map(|e| e.get(name)).collect()
    }

    /// Training losses.
    pub fn loss(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.loss).collect()
    }

    /// Training accuracies (epochs without one are skipped).
    pub fn accuracy(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.accuracy).collect()
    }

    /// Validation losses (epochs without one are skipped).
    pub fn val_loss(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.val_loss).collect()
    }

    /// Validation accuracies (epochs without one are skipped).
    pub fn val_accuracy(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.val_accuracy).collect()
    }

    /// Learning rates.
    pub fn lr(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.lr).collect()
    }

    /// Keras `CSVLogger` style: header `epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds`
    /// (columns absent from every epoch dropped), one row per epoch, empty cells for
    /// missing values, `nan` for NaN.
    pub fn to_csv(&self) -> String {
        let columns: Vec<&str> = [
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "lr",
            "seconds",
        ]
        .into_iter()
        .filter(|c| self.epochs.iter().any(|e| e.get(c).is_some()))
        .collect();
        let mut out = String::from("epoch");
        for c in &columns {
            out.push(',');
            out.push_str(c);
        }
        out.push('\n');
        for e in &self.epochs {
            out.push_str(&e.epoch.to_string());
            for c in &columns {
                out.push(',');
                match e.get(c) {
                    Some(v) if v.is_nan() => out.push_str("nan"),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {}
                }
            }
            out.push('\n');
        }
        out
    }

    /// Pretty JSON: `{"epochs": [{"epoch": 0, "loss": ..., ...}, ...]}`; NaN as `null`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("history serializes")
    }

    /// Parses [`History::to_json`] output.
    pub fn from_json(text: &str) -> candle_core::Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| candle_core::Error::msg(format!("invalid history JSON: {e}")))
    }
}

mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        History {
            epochs: vec![
                EpochLogs {
                    epoch: 0,
                    loss: 0.5,
                    accuracy: Some(0.75),
                    val_loss: Some(0.625),
                    val_accuracy: Some(0.5),
                    lr: 0.001,
                    seconds: 1.5,
                },
                EpochLogs {
                    epoch: 1,
                    loss: f64::NAN,
                    accuracy: Some(0.25),
                    val_loss: None,
                    val_accuracy: None,
                    lr: 0.001,
                    seconds: 2.0,
                },
            ],
        }
    }

    #[test]
    fn csv_layout() {
        assert_eq!(
            sample().to_csv(),
            "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n\
             0,0.5,0.75,0.625,0.5,0.001,1.5\n\
             1,nan,0.25,,,0.001,2\n"
        );
    }

    #[test]
    fn json_round_trip_keeps_nan() {
        let h = sample();
        let text = h.to_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["epochs"][0]["val_accuracy"], 0.5);
        assert!(v["epochs"][1]["loss"].is_null());
        let back = History::from_json(&text).unwrap();
        assert!(back.epochs[1].loss.is_nan());
        assert_eq!(back.epochs[0], h.epochs[0]);
    }
}
