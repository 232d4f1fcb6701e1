//! The main job's run folder: one writer at a time (a [`RunLock`]), a new run that replaces
//! an old one only once it has a complete checkpoint (`--overwrite`), and the files a run
//! writes after each epoch (`history.csv`, `best/`, `last/`) for `--resume`.
//!
//! Layout of a run folder:
//! - `.lock`: the lock file (PID and start time of the run that holds it);
//! - `flags.txt`: the flags that shape the run's history, compared by `--resume`;
//! - `history.csv`, `history.png`: the history (rewritten after each epoch) and its plot;
//! - `best/`: the checkpoint of the last stage's lowest validation loss (the one scored);
//! - `last/`: the training checkpoint of the last completed epoch (what `--resume` reads);
//! - `synthetic-data/`: the generated images, without `--data`.
//!
//! `--overwrite` of a folder that holds a run writes the new run into a staging folder
//! beside it (`.{name}.staging-{pid}`), and swaps it in for the old one in one step
//! ([`checkpoint::replace_dir`]) right after its first `last/` checkpoint: a new run that
//! fails or is killed before then leaves the old run exactly as it was (the staging folder
//! of a killed run is removed by the next run on the folder).

use convnet::checkpoint;
use convnet::error::Error;
use convnet::train::{Callback, EpochLogs, ModelCheckpoint, RunLock, TrainContext, WeightEma};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Checkpoint of the best epoch of the last stage, inside a run folder.
pub const BEST: &str = "best";
/// Training checkpoint of the last completed epoch, inside a run folder.
pub const LAST: &str = "last";
/// The recorded flags, inside a run folder.
pub const FLAGS: &str = "flags.txt";
/// The history log, inside a run folder.
pub const HISTORY: &str = "history.csv";

/// How a run treats its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A folder without a run (refused if it holds one).
    Fresh,
    /// Replace the run in the folder, once the new one has a complete checkpoint.
    Overwrite,
    /// Continue the run in the folder from its `last/` checkpoint.
    Resume,
}

/// A locked run folder and where the run writes now.
pub struct RunFolder {
    /// The folder the run ends up in.
    pub out: PathBuf,
    /// `out` resolved (absolute, links followed): what the staging folder replaces.
    target: PathBuf,
    /// The folder written now: a staging folder until an `--overwrite` run's first
    /// checkpoint, then `out`.
    current: Rc<RefCell<PathBuf>>,
    _locks: Vec<RunLock>,
}

/// Whether `dir` holds a run (a `best/` or `last/` checkpoint).
pub fn holds_run(dir: &Path) -> bool {
    dir.join(BEST).exists() || dir.join(LAST).exists()
}

/// Removes staging folders beside `out` left by killed `--overwrite` runs (their PID gone).
fn remove_stale_staging(out: &Path) {
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(".{}.staging-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = pid != std::process::id() && checkpoint::process_alive(pid) == Some(false);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl RunFolder {
    /// Locks `out` (refused at once when another run holds it, naming it) and checks it
    /// against `mode`: a fresh run is refused where a run exists, a resume where none does.
    /// An `--overwrite` of an existing run also locks a fresh staging folder beside `out`.
    pub fn open(out: &Path, mode: Mode) -> candle_core::Result<Self> {
        // A folder a killed swap left aside (where renames cannot exchange) is put back.
        if out.file_name().is_some() {
            checkpoint::remove_abandoned(out)?;
        }
        let lock = RunLock::acquire(out)?;
        // The staging folder and the swap need the folder's real name (`--out .` has none).
        let target = std::fs::canonicalize(out).map_err(|e| Error::io("resolve", out, e))?;
        remove_stale_staging(&target);
        for part in [BEST, LAST] {
            checkpoint::remove_abandoned(out.join(part))?;
        }
        let exists = holds_run(out);
        let mut current = out.to_path_buf();
        let mut locks = vec![lock];
        match mode {
            Mode::Fresh if exists => {
                return Err(Error::invalid(
                    "--out",
                    format!(
                        "{} already holds a run (its checkpoint {}); pass --resume to continue it, --overwrite to replace it, or choose another --out",
                        out.display(),
                        out.join(if out.join(BEST).exists() { BEST } else { LAST }).display()
                    ),
                )
                .into());
            }
            Mode::Resume if !out.join(LAST).exists() => {
                return Err(Error::invalid(
                    "--resume",
                    format!(
                        "{} holds no training checkpoint ({}) to resume from; run without --resume to start it",
                        out.display(),
                        out.join(LAST).display()
                    ),
                )
                .into());
            }
            Mode::Overwrite if exists => {
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let staging =
                    target.with_file_name(format!(".{name}.staging-{}", std::process::id()));
                if staging.exists() {
                    std::fs::remove_dir_all(&staging)
                        .map_err(|e| Error::io("remove", &staging, e))?;
                }
                locks.push(RunLock::acquire(&staging)?);
                println!(
                    "--overwrite: the new run writes into {} and replaces the run in {} after its first checkpoint",
                    staging.display(),
                    out.display()
                );
                current = staging;
            }
            _ => {}
        }
        Ok(Self {
            out: out.to_path_buf(),
            target,
            current: Rc::new(RefCell::new(current)),
            _locks: locks,
        })
    }

    /// The first `runs/cats_vs_dogs[-N]` that holds no run and no other run has locked.
    pub fn first_free() -> candle_core::Result<Self> {
        for n in 1.. {
            let dir = match n {
                1 => PathBuf::from("runs/cats_vs_dogs"),
                n => PathBuf::from(format!("runs/cats_vs_dogs-{n}")),
            };
            if holds_run(&dir) {
                continue;
            }
            match Self::open(&dir, Mode::Fresh) {
                Err(e) if matches!(Error::find(&e), Some(Error::InUse { .. })) => continue,
                other => return other,
            }
        }
        unreachable!("an unbounded range has a free name")
    }

    /// The folder written now (see [`RunFolder::current`]'s field docs).
    pub fn current(&self) -> PathBuf {
        self.current.borrow().clone()
    }

    /// The callback that writes the run's files after each epoch (see [`RunFiles`]); the
    /// best checkpoint competes from 0-based epoch `best_from` on (the last stage).
    /// With `ema`, `last/` keeps the weight average's state too.
    pub fn files(
        &self,
        best: ModelCheckpoint,
        best_from: usize,
        ema: Option<WeightEma>,
    ) -> RunFiles {
        let last = ModelCheckpoint::every_epoch(LAST);
        let staging = self.current();
        RunFiles {
            current: self.current.clone(),
            pending_swap: (staging != self.out)
                .then(|| (staging, self.target.clone(), self.out.clone())),
            best,
            best_from,
            last: match ema {
                Some(ema) => last.with_ema(ema),
                None => last,
            },
        }
    }
}

impl Drop for RunFolder {
    /// A run that ends before its first checkpoint (an error) removes its staging folder.
    fn drop(&mut self) {
        let current = self.current();
        let staging = current
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".staging-"));
        if current != self.out && staging {
            let _ = std::fs::remove_dir_all(current);
        }
    }
}

/// Writes a run's files into its current folder: `history.csv` as soon as an epoch is
/// recorded (an epoch whose validation loss was NaN included), then after each epoch the
/// `best/` checkpoint (when the validation loss improved, from the last stage on) and the
/// `last/` training checkpoint; after the first `last/` of an `--overwrite` run, swaps the
/// staging folder in for the old run.
pub struct RunFiles {
    current: Rc<RefCell<PathBuf>>,
    /// The staging folder, the folder it replaces (resolved), and that folder as named.
    pending_swap: Option<(PathBuf, PathBuf, PathBuf)>,
    best: ModelCheckpoint,
    best_from: usize,
    last: ModelCheckpoint,
}

impl Callback for RunFiles {
    fn on_epoch_logged(
        &mut self,
        _logs: &EpochLogs,
        ctx: &mut TrainContext,
    ) -> candle_core::Result<()> {
        let path = self.current.borrow().join(HISTORY);
        checkpoint::write_atomic(path, ctx.history.to_csv().as_bytes())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        ctx: &mut TrainContext,
    ) -> candle_core::Result<()> {
        let root = self.current.borrow().clone();
        if logs.epoch >= self.best_from {
            self.best.dir = root.join(BEST);
            self.best.on_epoch_end(logs, ctx)?;
        }
        self.last.dir = root.join(LAST);
        self.last.on_epoch_end(logs, ctx)?;
        if let Some((staging, target, out)) = self.pending_swap.take() {
            checkpoint::replace_dir(&staging, &target)?;
            println!(
                "--overwrite: the new run has a complete checkpoint; it replaced the old run in {}",
                out.display()
            );
            // The resolved path: `--out .` would now name the old folder, deleted.
            *self.current.borrow_mut() = target;
        }
        Ok(())
    }
}

/// The flags recorded in `flags.txt`, one `--name value` a line.
pub fn flags_text(flags: &[(&str, String)]) -> String {
    flags.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

/// Checks that `recorded` (a run folder's `flags.txt`) matches the flags of this
/// invocation; the error lists every flag that differs, with both values.
pub fn check_flags(
    folder: &Path,
    recorded: &str,
    now: &[(&str, String)],
) -> candle_core::Result<()> {
    let value_of = |name: &str| {
        recorded.lines().find_map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k == name).then(|| v.to_string())
        })
    };
    let differences: Vec<String> = now
        .iter()
        .filter_map(|(name, value)| match value_of(name) {
            Some(was) if was == *value => None,
            Some(was) => Some(format!("{name} was `{was}`, now `{value}`")),
            None => Some(format!("{name} was not recorded, now `{value}`")),
        })
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        "--resume",
        format!(
            "the run in {} was started with other flags ({}); give the same flags to continue it",
            folder.display(),
            differences.join("; ")
        ),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_names_every_flag_that_differs() {
        let recorded = flags_text(&[("--seed", "1".into()), ("--lr", "0.001".into())]);
        let same = [("--seed", "1".to_string()), ("--lr", "0.001".to_string())];
        check_flags(Path::new("r"), &recorded, &same).unwrap();
        let other = [
            ("--seed", "2".to_string()),
            ("--lr", "0.001".to_string()),
            ("--ema", "x".to_string()),
        ];
        let err = check_flags(Path::new("r"), &recorded, &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--seed was `1`, now `2`") && err.contains("--ema was not recorded"),
            "{err}"
        );
        assert!(!err.contains("--lr"), "{err}");
    }
}
