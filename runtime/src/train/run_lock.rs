//! One writer per run folder: an exclusive advisory lock on `{folder}/.lock`, held for the
//! life of a run, recording the holder's PID and start time so that a refused run can name it.
//!
//! The lock is the operating system's (`flock(LOCK_EX | LOCK_NB)` on Unix): it is released
//! when its process ends however it ends, so the lock file a killed run leaves behind never
//! blocks the next run (it is stale: the file exists, nobody holds its lock). Where the file
//! system cannot lock, the recorded PID decides: a live process other than this one holds
//! the folder, a gone one left a stale record. Off Unix the record is written but not
//! enforced.

use crate::error::Error;
use candle_core::Result;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run folder, released when dropped (or when the process ends).
///
/// ```
/// # use convnet_runtime::train::RunLock;
/// # fn main() -> candle_core::Result<()> {
/// let dir = std::env::temp_dir().join(format!("convnet-doc-lock-{}", std::process::id()));
/// let lock = RunLock::acquire(&dir)?;
/// assert!(RunLock::acquire(&dir).is_err(), "a second holder is refused");
/// drop(lock);
/// RunLock::acquire(&dir)?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed and takes its lock at once (never waits). A lock held by
    /// another live run (or another handle in this process) is [`Error::InUse`] naming the
    /// folder and the holder's PID and start time; a lock file left by a killed run is
    /// taken over.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        let mut record = String::new();
        let busy = match try_lock(&file) {
            Ok(locked) => !locked,
            // A file system without locks (some network ones): the recorded PID decides,
            // a holder whose process is gone being stale.
            Err(_) => {
                let _ = file.read_to_string(&mut record);
                recorded_pid(&record).is_some_and(|pid| {
                    pid != std::process::id() && crate::checkpoint::process_alive(pid) == Some(true)
                })
            }
        };
        if busy {
            if record.is_empty() {
                let _ = file.read_to_string(&mut record);
            }
            return Err(Error::InUse {
                path: dir.to_path_buf(),
                holder: describe_holder(&record),
            }
            .into());
        }
        let record = format!(
            "pid {}\nstarted {}\n",
            std::process::id(),
            format_utc(now_unix())
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(record.as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io("write lock file", &path, e))?;
        Ok(Self { file, path })
    }

    /// The lock file, `{folder}/.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        unlock(&self.file);
    }
}

/// Takes an exclusive lock without waiting: `Ok(false)` when another holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.kind() {
        std::io::ErrorKind::WouldBlock => Ok(false),
        _ => Err(err),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(unix)]
fn unlock(file: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: as in `try_lock`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

#[cfg(not(unix))]
fn unlock(_file: &File) {}

/// The PID a lock file records.
fn recorded_pid(record: &str) -> Option<u32> {
    record
        .lines()
        .find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
}

/// `PID 4242, started 2026-12-05T21:30:00Z` from a lock file's `pid`/`started` lines.
fn describe_holder(record: &str) -> String {
    let field = |key: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    match (field("pid "), field("started ")) {
        (Some(pid), Some(started)) => format!("PID {pid}, started {started}"),
        (Some(pid), None) => format!("PID {pid}"),
        _ => "a process that has not yet recorded its PID".to_string(),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic Gregorian calendar,
/// days to civil date after Howard Hinnant's `civil_from_days`).
pub(crate) fn format_utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    #[test]
    fn utc_dates_are_formatted() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_796_506_200), "2026-12-05T21:30:00Z");
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = temp_dir("run-lock");
        let lock = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err();
        assert!(
            matches!(Error::find(&err), Some(Error::InUse { .. })),
            "{err}"
        );
        let text = err.to_string();
        let pid = format!("PID {}, started 20", std::process::id());
        assert!(
            text.contains(&pid) && text.contains(&dir.display().to_string()),
            "{text}"
        );
        drop(lock);
        RunLock::acquire(&dir).expect("released on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_file_left_by_a_killed_run_does_not_block() {
        let dir = temp_dir("run-lock-stale");
        std::fs::create_dir_all(&dir).unwrap();
        // What a killed run leaves: the record, with no process holding the lock.
        std::fs::write(
            dir.join(LOCK_FILE),
            "pid 999999\nstarted 2020-01-01T00:00:00Z\n",
        )
        .unwrap();
        let lock = RunLock::acquire(&dir).unwrap();
        let record = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(
            record.lines().next().unwrap(),
            format!("pid {}", std::process::id()),
            "the new holder's record replaces the stale one"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
