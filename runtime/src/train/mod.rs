//! Keras-like training: [`Trainer`] (`fit`, `evaluate`, `predict`, checkpoint/resume),
//! callbacks, the guards against non-finite and diverging losses, the [`History`] of a run,
//! training checkpoints (weights, optimizer state and history as one verified set), progress
//! display and the history plot.

mod callbacks;
mod fit;
mod guards;
mod history;
mod plot;
mod progress;
mod run_state;

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
pub use run_state::{
    load_checkpoint, load_state, save_checkpoint, ModelInfo, OptimizerMeta, TrainingState,
    OPTIMIZER_FILE, STATE_FILE, STATE_FORMAT,
};

#[cfg(test)]
mod tests;
