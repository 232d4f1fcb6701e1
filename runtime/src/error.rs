//! The runtime's error type: variants a program can match on, each naming its subject.
//!
//! Every function of the runtime still returns `candle_core::Result`, so `?` mixes runtime
//! and candle errors freely: [`Error`] converts into `candle_core::Error`, and
//! [`Error::find`] gets it back out. (candle's only variant that carries a foreign error
//! both displayed as itself and downcastable is `candle_core::Error::Io`: the runtime error
//! travels inside a `std::io::Error` of kind `Other`, or of the original kind for
//! [`Error::Io`], and displays as itself.)
//!
//! ```
//! use convnet_runtime::error::Error;
//! let err: candle_core::Error = Error::data("train/cats/1.jpg", "truncated JPEG").into();
//! assert!(matches!(Error::find(&err), Some(Error::Data { .. })));
//! assert!(err.to_string().contains("train/cats/1.jpg"));
//! ```

use std::path::{Path, PathBuf};

/// An error of the runtime, with what it concerns: a path, a tensor, a file, a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed on `path`; `source` keeps the `io::ErrorKind`.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `create folder`, `read`, `rename into`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error (its `kind()` is preserved).
        #[source]
        source: std::io::Error,
    },
    /// Tensors of a checkpoint do not fit the model: every missing, unexpected or
    /// mis-shaped tensor, by name.
    #[error("checkpoint {source_name} does not fit the model: {}", list(tensors))]
    CheckpointMismatch {
        /// Where the tensors came from (a file, or a description such as `best epoch`).
        source_name: String,
        /// Each tensor that does not fit.
        tensors: Vec<TensorMismatch>,
    },
    /// A checkpoint is incomplete, inconsistent or damaged (every problem listed).
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A data file or folder is unusable (corrupt image, mismatched classes, ...).
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder is locked by another live process (a second run on the same run folder).
    #[error("{} is in use by another run ({holder}); wait for it to end, or choose another folder", path.display())]
    InUse {
        /// The locked folder.
        path: PathBuf,
        /// Who holds it, as its lock file records: e.g. `PID 4242, started 2026-12-05T21:30:00Z`.
        holder: String,
    },
    /// A value that must be finite is not (a loss, a metric, weights, a learning rate).
    #[error("non-finite {what} ({value}){}", location(*epoch, *batch))]
    NonFinite {
        /// What went non-finite, e.g. `training loss`, `val_loss`, `weights`.
        what: String,
        /// The value (NaN or ±inf).
        value: f64,
        /// The 0-based epoch, when it happened during training.
        epoch: Option<usize>,
        /// The 0-based batch within the epoch, when it happened on a batch.
        batch: Option<usize>,
    },
    /// Training diverged: the loss grew past a threshold.
    #[error("training diverged: loss {loss:.4e} exceeds the threshold {threshold:.4e}{}", location(Some(*epoch), Some(*batch)))]
    Diverged {
        /// The loss that crossed the threshold.
        loss: f64,
        /// The threshold.
        threshold: f64,
        /// The 0-based epoch.
        epoch: usize,
        /// The 0-based batch within the epoch.
        batch: usize,
    },
    /// An argument is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument, e.g. `learning rate`.
        name: String,
        /// What was expected.
        reason: String,
    },
}

/// One tensor of a checkpoint that does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMismatch {
    /// The tensor's hierarchical name.
    pub tensor: String,
    /// Its shape in the model (`None`: the model has no such variable).
    pub expected: Option<Vec<usize>>,
    /// Its shape in the checkpoint (`None`: missing from the checkpoint).
    pub found: Option<Vec<usize>>,
}

impl std::fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.tensor;
        match (&self.expected, &self.found) {
            (Some(e), None) => write!(f, "tensor `{name}` is missing (model expects shape {e:?})"),
            (None, Some(s)) => write!(
                f,
                "unexpected tensor `{name}` of shape {s:?} (the model has no such variable)"
            ),
            (Some(e), Some(s)) => write!(
                f,
                "tensor `{name}` has shape {s:?} in the checkpoint but the model expects {e:?}"
            ),
            (None, None) => write!(f, "tensor `{name}`"),
        }
    }
}

fn list(tensors: &[TensorMismatch]) -> String {
    tensors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn location(epoch: Option<usize>, batch: Option<usize>) -> String {
    match (epoch, batch) {
        (Some(e), Some(b)) => format!(" at epoch {} batch {}", e + 1, b + 1),
        (Some(e), None) => format!(" at epoch {}", e + 1),
        _ => String::new(),
    }
}

impl Error {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A data problem with `path`.
    pub fn data(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self::Data {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A checkpoint problem with `path`.
    pub fn checkpoint(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// An invalid argument.
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The runtime error inside a `candle_core::Error`, if it holds one (also through
    /// candle's context and backtrace wrappers).
    pub fn find(err: &candle_core::Error) -> Option<&Error> {
        match err {
            candle_core::Error::Io(io) => io.get_ref()?.downcast_ref::<Error>(),
            candle_core::Error::Context { inner, .. }
            | candle_core::Error::WithBacktrace { inner, .. } => Self::find(inner),
            _ => None,
        }
    }
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::Other,
        };
        candle_core::Error::Io(std::io::Error::new(kind, e))
    }
}

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_kind_and_path() {
        let source = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err: candle_core::Error = Error::io("create folder", "/runs/x", source).into();
        assert!(err.to_string().contains("/runs/x"), "{err}");
        match Error::find(&err) {
            Some(Error::Io { source, path, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
                assert_eq!(path, Path::new("/runs/x"));
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn non_finite_names_epoch_and_batch_one_based() {
        let err = Error::NonFinite {
            what: "training loss".into(),
            value: f64::NAN,
            epoch: Some(2),
            batch: Some(0),
        };
        assert_eq!(
            err.to_string(),
            "non-finite training loss (NaN) at epoch 3 batch 1"
        );
        let wrapped = candle_core::Error::from(err).context("fit");
        assert!(matches!(
            Error::find(&wrapped),
            Some(Error::NonFinite { .. })
        ));
    }
}
