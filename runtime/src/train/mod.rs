//! Keras-like training: [`Trainer`] (`fit`, `evaluate`, `predict`, checkpoint/resume),
//! callbacks, the guards against non-finite and diverging losses, the [`History`] of a run,
//! progress display and the history plot.

mod callbacks;
mod fit;
mod guards;
mod history;
mod plot;
mod progress;

#[allow(deprecated)]
pub use callbacks::{
    Callback, CsvLogger, EarlyStopping, JsonLogger, LrScheduler, ModelCheckpoint,
    ReduceLrOnPlateau, TerminateOnNan, TrainContext,
};
pub use fit::{evaluate, predict, predict_batches, Evaluation, Trainer};
pub use guards::DivergenceGuard;
pub use history::{EpochLogs, History};
pub use plot::plot_history;
pub use progress::{epoch_line, Progress, Verbosity};

#[cfg(test)]
mod tests;
