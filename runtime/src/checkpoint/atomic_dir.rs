//! Directories written as one unit: every file goes into a fresh sibling folder with a
//! manifest (`manifest.json`: each file's size and CRC-32), the files and the folder are
//! fsynced, and the folder is swapped in for the old one in one rename; the parent is then
//! fsynced. A reader that [`verify`]s the manifest sees either the old set or the new one,
//! never a mix, whatever moment a writer was killed at.
//!
//! On Linux the swap is `renameat2(RENAME_EXCHANGE)`: the target path always names a complete
//! directory. Elsewhere (or on a file system without it) the old directory is first renamed
//! aside to `.{name}.old`, then the new one into place; a writer killed between the two
//! renames leaves the old set under `.{name}.old`, which the next [`DirWriter::begin`] or
//! [`verify`] puts back.
//!
//! Leftover temporary folders (`.{name}.tmp-{pid}-*`, from a killed writer) are removed by
//! the next [`DirWriter::begin`] on the same directory, by [`verify`] (a load) when their
//! writer process is gone, by [`remove_abandoned`], and by [`DirWriter`]'s `Drop` when a
//! write fails.
//!
//! The target must be a folder or not exist: an existing regular file (or anything else that
//! is not a folder) is refused before anything is written.

use crate::error::Error;
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// File name of the manifest inside an atomically written directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Format version of [`Manifest`] this runtime writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Size and checksum of one file of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the contents.
    pub crc32: u32,
}

/// The list of files of a directory written by [`DirWriter`], with their checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`] at write time.
    pub format: u32,
    /// Every file of the set, by name.
    pub files: BTreeMap<String, FileEntry>,
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> candle_core::Error + 'a {
    move |e| Error::io(action, path, e).into()
}

fn name_of(dir: &Path) -> Result<(PathBuf, String)> {
    let name = dir
        .file_name()
        .ok_or_else(|| {
            Error::invalid(
                "checkpoint folder",
                format!("{} has no final component", dir.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

fn aside_path(parent: &Path, name: &str) -> PathBuf {
    parent.join(format!(".{name}.old"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync folder", dir))
}

/// Puts `.{name}.old` back when a writer was killed between the two renames of the
/// non-Linux swap (the target is then missing).
fn recover_aside(dir: &Path) -> Result<()> {
    let (parent, name) = name_of(dir)?;
    let aside = aside_path(&parent, &name);
    if !dir.exists() && aside.is_dir() {
        std::fs::rename(&aside, dir).map_err(io("restore", &aside))?;
        sync_dir(&parent)?;
    }
    Ok(())
}

/// Whether process `pid` is running: `Some` on Linux (`/proc/{pid}` exists), `None` where
/// this cannot be told. Tells the leftovers of a killed writer (their names carry its PID)
/// from those of a live one.
pub fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// The writer PID in a temporary folder's name `.{name}.tmp-{pid}-{nanos}`.
fn temp_writer(file_name: &str, prefix: &str) -> Option<u32> {
    file_name
        .strip_prefix(prefix)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Removes `.{name}.tmp-*` folders that killed writers left beside `dir`: every one when
/// `all` (a new writer of the same directory), else only those whose writer process is
/// known to be gone.
fn remove_stale_temps(parent: &Path, name: &str, all: bool) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with(&prefix) {
            continue;
        }
        let gone = temp_writer(&file_name, &prefix)
            .is_some_and(|pid| pid != std::process::id() && process_alive(pid) == Some(false));
        if all || gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Cleans up after writers of `dir` that were killed: puts back a set a killed writer moved
/// aside, and removes the temporary folders of writer processes that are gone (on Linux;
/// elsewhere only [`DirWriter::begin`] removes them). [`verify`] does this before reading.
pub fn remove_abandoned(dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    recover_aside(dir)?;
    let (parent, name) = name_of(dir)?;
    remove_stale_temps(&parent, &name, false);
    Ok(())
}

/// Refuses a target that exists and is not a folder (a regular file, a FIFO...), before
/// anything is written: the swap would otherwise move it to a temporary name.
fn ensure_folder_or_absent(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => {
            let kind = if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_file() {
                "a regular file"
            } else {
                "a special file"
            };
            Err(Error::invalid(
                "checkpoint folder",
                format!(
                    "{} exists and is {kind}, not a folder: refusing to replace it",
                    dir.display()
                ),
            )
            .into())
        }
        _ => Ok(()),
    }
}

/// Atomically swaps `new` into `dir` (see the module docs); `new` is gone afterwards.
fn swap_in(new: &Path, dir: &Path, parent: &Path, name: &str) -> Result<()> {
    if !dir.exists() {
        std::fs::rename(new, dir).map_err(io("rename into", dir))?;
        return sync_dir(parent);
    }
    if exchange(new, dir).map_err(io("swap in", dir))? {
        // `new` now holds the old set.
        sync_dir(parent)?;
        let _ = std::fs::remove_dir_all(new);
        return Ok(());
    }
    let aside = aside_path(parent, name);
    let _ = std::fs::remove_dir_all(&aside);
    std::fs::rename(dir, &aside).map_err(io("move aside", dir))?;
    std::fs::rename(new, dir).map_err(io("rename into", dir))?;
    sync_dir(parent)?;
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}

/// Replaces folder `dir` (which may be absent) with the complete folder `new` in one step,
/// as a [`DirWriter`] commit does (an exchange on Linux), then deletes the old contents;
/// `new` is gone afterwards. Used to put a whole new run folder in place of an old one.
pub fn replace_dir(new: impl AsRef<Path>, dir: impl AsRef<Path>) -> Result<()> {
    let (new, dir) = (new.as_ref(), dir.as_ref());
    let (parent, name) = name_of(dir)?;
    ensure_folder_or_absent(dir)?;
    sync_dir(new)?;
    swap_in(new, dir, &parent, &name)
}

/// Exchanges two paths atomically; `Ok(false)` when the platform or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

fn checksum(bytes: &[u8]) -> FileEntry {
    FileEntry {
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    }
}

/// Writes a set of files that replaces directory `dir` as one unit when
/// [`commit`](Self::commit)ted; dropped without a commit, it removes its temporary folder
/// and leaves `dir` as it was.
///
/// ```
/// # use convnet_runtime::checkpoint::{verify, DirWriter};
/// # fn main() -> candle_core::Result<()> {
/// let dir = std::env::temp_dir().join(format!("convnet-doc-dirwriter-{}", std::process::id()));
/// let mut w = DirWriter::begin(&dir)?;
/// w.write("a.txt", b"hello")?;
/// w.commit()?;
/// assert_eq!(verify(&dir)?["a.txt"], b"hello");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DirWriter {
    dir: PathBuf,
    parent: PathBuf,
    name: String,
    temp: PathBuf,
    files: BTreeMap<String, FileEntry>,
    committed: bool,
}

impl DirWriter {
    /// Starts a new set for `dir` in a fresh temporary folder beside it (creating the parent
    /// folders), after removing temporary folders that killed writers left there.
    pub fn begin(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let (parent, name) = name_of(&dir)?;
        std::fs::create_dir_all(&parent).map_err(io("create folder", &parent))?;
        recover_aside(&dir)?;
        ensure_folder_or_absent(&dir)?;
        remove_stale_temps(&parent, &name, true);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let temp = parent.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&temp).map_err(io("create folder", &temp))?;
        Ok(Self {
            dir,
            parent,
            name,
            temp,
            files: BTreeMap::new(),
            committed: false,
        })
    }

    /// Where a file named `name` is written before the commit (for writers that take a path;
    /// follow with [`add`](Self::add)).
    pub fn temp_path(&self, name: &str) -> PathBuf {
        self.temp.join(name)
    }

    /// Writes `bytes` as file `name` of the set.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.temp_path(name);
        std::fs::write(&path, bytes).map_err(io("write", &path))?;
        self.add(name)
    }

    /// Adds file `name`, already written at [`temp_path`](Self::temp_path), to the set:
    /// fsyncs it and records its size and checksum as read back from disk.
    pub fn add(&mut self, name: &str) -> Result<()> {
        if name == MANIFEST_FILE || name.contains(['/', '\\']) {
            return Err(Error::invalid(
                "checkpoint file name",
                format!("`{name}` is reserved or not a plain name"),
            )
            .into());
        }
        let path = self.temp_path(name);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io("fsync", &path))?;
        let bytes = std::fs::read(&path).map_err(io("read back", &path))?;
        self.files.insert(name.to_string(), checksum(&bytes));
        Ok(())
    }

    /// Writes the manifest, fsyncs the folder and swaps it in for the target directory.
    pub fn commit(mut self) -> Result<()> {
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            files: std::mem::take(&mut self.files),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| candle_core::Error::msg(format!("cannot serialize the manifest: {e}")))?;
        let path = self.temp_path(MANIFEST_FILE);
        std::fs::write(&path, json)
            .and_then(|_| File::open(&path)?.sync_all())
            .map_err(io("write", &path))?;
        sync_dir(&self.temp)?;
        // The target may have been replaced by a file since `begin`.
        ensure_folder_or_absent(&self.dir)?;
        swap_in(&self.temp, &self.dir, &self.parent, &self.name)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for DirWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

/// Reads the manifest of `dir` and every file it names, checking the format, each file's
/// size and checksum, and that no file is missing; returns the verified contents by name.
/// A directory without a manifest, a damaged or mixed set is an [`Error::Checkpoint`] that
/// lists every problem.
pub fn verify(dir: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<u8>>> {
    let dir = dir.as_ref();
    remove_abandoned(dir)?;
    if !dir.is_dir() {
        return Err(Error::checkpoint(dir, "no such checkpoint folder").into());
    }
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read(&manifest_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::checkpoint(
                dir,
                format!("no {MANIFEST_FILE}: not a checkpoint folder, or one written by an older convnet (its weights file can still be read with `checkpoint::load_weights`)"),
            )
            .into())
        }
        Err(e) => return Err(Error::io("read", &manifest_path, e).into()),
    };
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::checkpoint(&manifest_path, format!("damaged manifest: {e}")))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(Error::checkpoint(
            &manifest_path,
            format!(
                "manifest format {} is not the supported {MANIFEST_FORMAT}",
                manifest.format
            ),
        )
        .into());
    }
    let mut problems = Vec::new();
    let mut contents = BTreeMap::new();
    for (name, expected) in &manifest.files {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let found = checksum(&bytes);
                if found != *expected {
                    problems.push(format!(
                        "`{name}` does not match the manifest ({} bytes, crc32 {:08x}; manifest: {} bytes, crc32 {:08x}): damaged, or from another save",
                        found.bytes, found.crc32, expected.bytes, expected.crc32
                    ));
                } else {
                    contents.insert(name.clone(), bytes);
                }
            }
            Err(e) => problems.push(format!("`{name}` cannot be read: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(Error::checkpoint(dir, problems.join("; ")).into());
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_replaces_the_whole_set_and_leaves_no_temp_folders() {
        let root = temp_dir("atomic-dir");
        let dir = root.join("best");
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("a", b"1").unwrap();
        w.write("b", b"22").unwrap();
        w.commit().unwrap();
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("a", b"333").unwrap();
        w.commit().unwrap();
        let files = verify(&dir).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(files["a"], b"333");
        assert_eq!(names(&dir), ["a", MANIFEST_FILE]);
        assert_eq!(names(&root), ["best"], "no temporary folder is left");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_abandoned_write_leaves_the_old_set_and_no_temp_folder() {
        let root = temp_dir("atomic-dir-abandon");
        let dir = root.join("ckpt");
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("a", b"old").unwrap();
        w.commit().unwrap();
        {
            let mut w = DirWriter::begin(&dir).unwrap();
            w.write("a", b"new").unwrap();
        }
        assert_eq!(verify(&dir).unwrap()["a"], b"old");
        assert_eq!(names(&root), ["ckpt"]);
        // A temp folder left by a killed writer is removed by the next writer.
        std::fs::create_dir(root.join(".ckpt.tmp-1-2")).unwrap();
        DirWriter::begin(&dir).unwrap().commit().unwrap();
        assert_eq!(names(&root), ["ckpt"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn damaged_mixed_and_unmanifested_sets_are_refused() {
        let root = temp_dir("atomic-dir-verify");
        let dir = root.join("ckpt");
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("weights", b"epoch 3 weights").unwrap();
        w.write("state", b"epoch 3").unwrap();
        w.commit().unwrap();
        // A file from another save (the mix a per-file writer could leave).
        std::fs::write(dir.join("state"), b"epoch 4").unwrap();
        let err = verify(&dir).unwrap_err().to_string();
        assert!(err.contains("`state` does not match the manifest"), "{err}");
        // A missing file.
        std::fs::remove_file(dir.join("state")).unwrap();
        let err = verify(&dir).unwrap_err().to_string();
        assert!(err.contains("`state` cannot be read"), "{err}");
        // Another manifest format.
        std::fs::write(dir.join(MANIFEST_FILE), br#"{"format": 7, "files": {}}"#).unwrap();
        let err = verify(&dir).unwrap_err().to_string();
        assert!(err.contains("manifest format 7"), "{err}");
        // No manifest at all.
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let err = verify(&dir).unwrap_err();
        assert!(
            matches!(Error::find(&err), Some(Error::Checkpoint { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("no manifest.json"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_existing_regular_file_is_refused_and_kept() {
        let root = temp_dir("atomic-dir-file");
        let target = root.join("ckpt");
        std::fs::write(&target, b"precious").unwrap();
        let err = DirWriter::begin(&target).unwrap_err();
        assert!(
            matches!(Error::find(&err), Some(Error::InvalidArgument { .. })),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("exists and is a regular file, not a folder"),
            "{text}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(names(&root), ["ckpt"], "no hidden temporary is left");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_load_removes_the_temp_folder_of_a_killed_writer() {
        let root = temp_dir("atomic-dir-abandoned");
        let dir = root.join("ckpt");
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("a", b"1").unwrap();
        w.commit().unwrap();
        // A process that has exited: its PID names the writer of an abandoned folder.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let abandoned = root.join(format!(".ckpt.tmp-{dead}-123"));
        std::fs::create_dir(&abandoned).unwrap();
        std::fs::write(abandoned.join("a"), b"partial").unwrap();
        // A live writer's folder (this process) is kept by a load.
        let live = root.join(format!(".ckpt.tmp-{}-456", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        assert_eq!(verify(&dir).unwrap()["a"], b"1");
        if process_alive(dead) == Some(false) {
            assert!(!abandoned.exists(), "a load removes a dead writer's folder");
        }
        assert!(live.exists(), "a live writer's folder is left alone");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_set_moved_aside_by_a_killed_writer_is_put_back() {
        let root = temp_dir("atomic-dir-aside");
        let dir = root.join("ckpt");
        let mut w = DirWriter::begin(&dir).unwrap();
        w.write("a", b"kept").unwrap();
        w.commit().unwrap();
        std::fs::rename(&dir, root.join(".ckpt.old")).unwrap();
        assert_eq!(verify(&dir).unwrap()["a"], b"kept");
        assert_eq!(names(&root), ["ckpt"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
