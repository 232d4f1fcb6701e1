//! Progress display for `fit`: a live indicatif bar when stderr is a terminal, one line per
//! epoch otherwise.

use super::history::EpochLogs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// How much `fit` prints (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing.
    Silent,
    /// A bar on a terminal, epoch lines otherwise.
    #[default]
    Auto,
    /// Always the bar (plus the epoch line when each epoch ends).
    Bar,
    /// One line per epoch.
    Lines,
}

/// The end-of-epoch line:
/// `epoch 3/30 - loss 0.6123 - accuracy 0.6650 - val_loss 0.6001 - val_accuracy 0.6900 - 41.2s`
/// (`epoch` shown 1-based; absent metrics left out).
pub fn epoch_line(logs: &EpochLogs, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{} - loss {:.4}",
        logs.epoch + 1,
        epochs,
        logs.loss
    );
    for (name, value) in [
        ("accuracy", logs.accuracy),
        ("val_loss", logs.val_loss),
        ("val_accuracy", logs.val_accuracy),
    ] {
        if let Some(v) = value {
            line.push_str(&format!(" - {name} {v:.4}"));
        }
    }
    line.push_str(&format!(" - {:.1}s", logs.seconds));
    line
}

/// Progress of one epoch.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    epochs: usize,
}

impl Progress {
    /// Starts the display of 0-based `epoch` out of `epochs`, with `num_batches` batches.
    pub fn new(verbosity: Verbosity, epoch: usize, epochs: usize, num_batches: usize) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, lines) = match verbosity {
            Verbosity::Silent => (false, false),
            Verbosity::Lines => (false, true),
            Verbosity::Bar => (true, true),
            Verbosity::Auto => (terminal, true),
        };
        let bar = bar.then(|| {
            let pb = ProgressBar::with_draw_target(
                Some(num_batches as u64),
                ProgressDrawTarget::stderr(),
            );
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
            pb
        });
        Self { bar, lines, epochs }
    }

    /// Reports a finished batch with the running mean loss and accuracy.
    pub fn batch(&self, loss: f64, accuracy: Option<f64>) {
        if let Some(bar) = &self.bar {
            let mut msg = format!("loss {loss:.4}");
            if let Some(a) = accuracy {
                msg.push_str(&format!(" - accuracy {a:.4}"));
            }
            bar.set_message(msg);
            bar.inc(1);
        }
    }

    /// Ends the epoch: clears the bar and prints the epoch line.
    pub fn finish(&self, logs: &EpochLogs) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.lines {
            eprintln!("{}", epoch_line(logs, self.epochs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_line_format() {
        let logs = EpochLogs {
            epoch: 2,
            loss: 0.61234,
            accuracy: Some(0.665),
            val_loss: Some(0.7),
            val_accuracy: Some(0.5),
            lr: 1e-3,
            seconds: 41.23,
        };
        assert_eq!(
            epoch_line(&logs, 30),
            "epoch 3/30 - loss 0.6123 - accuracy 0.6650 - val_loss 0.7000 - val_accuracy 0.5000 - 41.2s"
        );
        let logs = EpochLogs {
            accuracy: None,
            val_loss: None,
            val_accuracy: None,
            ..logs
        };
        assert_eq!(epoch_line(&logs, 30), "epoch 3/30 - loss 0.6123 - 41.2s");
    }
}
