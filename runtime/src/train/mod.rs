//! Keras-like training: [`Trainer`] (`fit`, `evaluate`, `predict`, checkpoint/resume),
//! callbacks, the guards against non-finite and diverging losses, the [`History`] of a run,
//! training checkpoints (weights, optimizer state and history as one verified set), progress
//! display and the history plot.

mod callbacks;
mod ema;
mod fit;
mod guards;
mod history;
mod plot;
mod precise_bn;
mod progress;
mod run_lock;
mod run_state;
mod tta;

#[allow(deprecated)]
pub use callbacks::{
    Callback, CsvLogger, EarlyStopping, JsonLogger, LrScheduler, ModelCheckpoint,
    ReduceLrOnPlateau, TerminateOnNan, TrainContext,
};
pub use ema::{EmaMeta, WeightEma};
pub use fit::{evaluate, predict, predict_batches, Evaluation, Trainer};
pub use guards::DivergenceGuard;
pub use history::{EpochLogs, History};
pub use plot::plot_history;
pub use precise_bn::{recompute_batch_norm_statistics, PreciseBn, PreciseBnReport};
pub use progress::{epoch_line, Progress, Verbosity};
pub use run_lock::{RunLock, LOCK_FILE};
pub use run_state::{
    load_checkpoint, load_ema, load_state, save_checkpoint, save_checkpoint_with, CheckpointExtras,
    ModelInfo, OptimizerMeta, TrainingState, EMA_FILE, OPTIMIZER_FILE, STATE_FILE, STATE_FORMAT,
};
pub use tta::{evaluate_tta, flip_averaged_logits, flip_averaged_probabilities, predict_tta};

#[cfg(test)]
mod testmodel;
#[cfg(test)]
mod tests;
