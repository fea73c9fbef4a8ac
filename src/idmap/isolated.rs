//! Isolated blocks held across processes: `RUN_DIR/idmap/NAME.json` holds
//! the [`Allocation`] of each running isolated container, and every change
//! is made under an exclusive `flock` on `RUN_DIR/idmap/lock`, so two starts
//! at once can never pick the same block (a lock, not luck).
//!
//! LXD does the same under an in-process mutex (`idmapLock` in `findIdmap`),
//! reading other containers' `volatile.idmap.base` from its database; envc
//! has no daemon, so the files are the record and the lock is a file lock.
//! A supervisor killed while holding a block leaves its file behind: the
//! block stays taken until [`reclaim`] (`envc gc`) finds its container is not
//! running. The kernel drops a dead process's `flock`, so a kill never leaves
//! the lock itself held.
//!
//! Order for callers: make `is_running(NAME)` true (take the container's
//! state lock) before [`allocate`], or a `gc` running at that moment could
//! reclaim the fresh allocation.

use super::choose::{Allocation, IdmapConfig, build, choose, isolated_block};
use super::error::IdMapError;
use super::map::IdMap;
use super::subid::RootIds;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directory of allocation files under the run directory.
pub fn dir(run_dir: &Path) -> PathBuf {
    // A dot name: no container can be called that (names are host names).
    run_dir.join(".idmap")
}

/// The map of container `name`. For an isolated container, a block no other
/// running isolated container holds is chosen and recorded in
/// `RUN_DIR/idmap/NAME.json`, all under the lock; a container that isn't
/// isolated gets root's whole ranges and no file (and a stale file of its
/// own from an earlier isolated run is dropped). Nothing is written when an
/// error is returned.
pub fn allocate(
    run_dir: &Path,
    name: &str,
    config: &IdmapConfig,
    root: &RootIds,
) -> Result<IdMap, IdMapError> {
    check_name(name)?;
    let dir = dir(run_dir);
    if !config.isolated {
        let map = choose(config, root, &[])?;
        remove_if_present(&file_of(&dir, name))?;
        return Ok(map);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|e| IdMapError::io(format!("creating {}", dir.display()), e))?;
    let _lock = lock(&dir)?;
    let taken: Vec<(String, Allocation)> = read_all(&dir)?
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect();
    let block = isolated_block(config, root, &taken)?;
    #[cfg(test)]
    test_pause();
    // Build the map before recording anything: a raw.idmap error leaves no file.
    let map = build(block.uids, block.gids, &config.raw)?;
    write_atomic(&dir, name, &block)?;
    Ok(map)
}

/// Tests widen the window between reading the records and writing one, so
/// that a missing lock would show as two containers given one block.
#[cfg(test)]
pub(crate) static TEST_PAUSE_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
fn test_pause() {
    let ms = TEST_PAUSE_MS.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Free the block of container `name` (at stop). `Ok(false)` if it held none.
pub fn release(run_dir: &Path, name: &str) -> Result<bool, IdMapError> {
    check_name(name)?;
    let dir = dir(run_dir);
    if !dir.exists() {
        return Ok(false);
    }
    let _lock = lock(&dir)?;
    remove_if_present(&file_of(&dir, name))
}

/// For `gc`: free the block of every container for which `is_running` says
/// no (its supervisor is gone), and leftovers of a write cut short. Returns
/// the names freed, sorted.
pub fn reclaim(
    run_dir: &Path,
    is_running: impl Fn(&str) -> bool,
) -> Result<Vec<String>, IdMapError> {
    let dir = dir(run_dir);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let _lock = lock(&dir)?;
    let mut freed = Vec::new();
    for (file, path) in entries(&dir)? {
        if let Some(name) = container_of(&file) {
            if !is_running(name) && remove_if_present(&path)? {
                freed.push(name.to_string());
            }
        } else if file.starts_with('.') && file.ends_with(".tmp") {
            // Under the lock nobody is writing: a temp file is from a killed writer.
            remove_if_present(&path)?;
        }
    }
    freed.sort();
    Ok(freed)
}

/// Every recorded allocation (name, block), sorted by name: for reports and `gc`.
pub fn allocations(run_dir: &Path) -> Result<Vec<(String, Allocation)>, IdMapError> {
    let dir = dir(run_dir);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let _lock = lock(&dir)?;
    read_all(&dir)
}

/// The container a file in the directory is the allocation of, if it is one.
fn container_of(file: &str) -> Option<&str> {
    let name = file.strip_suffix(".json")?;
    (!name.is_empty() && !name.starts_with('.')).then_some(name)
}

fn file_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// A name must make one plain file name: not empty, no `/` or NUL, not
/// starting with `.` (those are the temp files), short enough with `.json`.
fn check_name(name: &str) -> Result<(), IdMapError> {
    let bad =
        name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) || name.len() > 250;
    if bad {
        Err(IdMapError::BadName(name.to_string()))
    } else {
        Ok(())
    }
}

/// Take the directory's lock, waiting for it. The lock file is never
/// removed, so every process locks the same file.
fn lock(dir: &Path) -> Result<Flock<File>, IdMapError> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| IdMapError::io(format!("opening {}", path.display()), e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(held) => return Ok(held),
            // A signal cut the wait short: wait again.
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(IdMapError::io(
                    format!("locking {}", path.display()),
                    io::Error::from_raw_os_error(errno as i32),
                ));
            }
        }
    }
}

/// The files of the directory: (file name, path).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, IdMapError> {
    let read_err = |e| IdMapError::io(format!("reading {}", dir.display()), e);
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if let Ok(file) = entry.file_name().into_string() {
            out.push((file, entry.path()));
        }
    }
    Ok(out)
}

/// Every allocation file, parsed; one that can't be read is an error naming
/// it (a block nobody can account for must not be handed out again).
fn read_all(dir: &Path) -> Result<Vec<(String, Allocation)>, IdMapError> {
    let mut out = Vec::new();
    for (file, path) in entries(dir)? {
        let Some(name) = container_of(&file) else {
            continue;
        };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            // Released between the listing and the read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(IdMapError::io(format!("reading {}", path.display()), e)),
        };
        let allocation: Allocation =
            serde_json::from_str(&text).map_err(|e| IdMapError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        out.push((name.to_string(), allocation));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Write `NAME.json` whole or not at all: a temp file, then a rename.
fn write_atomic(dir: &Path, name: &str, block: &Allocation) -> Result<(), IdMapError> {
    let path = file_of(dir, name);
    let tmp = dir.join(format!(".{name}.json.tmp"));
    let text = serde_json::to_string(block).map_err(|e| IdMapError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    fs::write(&tmp, text + "\n")
        .map_err(|e| IdMapError::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        IdMapError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// Remove `path`; `Ok(false)` if it wasn't there.
fn remove_if_present(path: &Path) -> Result<bool, IdMapError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IdMapError::io(format!("removing {}", path.display()), e)),
    }
}

#[cfg(test)]
#[path = "isolated_tests.rs"]
mod tests;
