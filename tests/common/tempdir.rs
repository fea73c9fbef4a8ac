//! A per-test scratch directory that refuses to delete through a live mount.

use super::mountinfo::parse_mountinfo;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory `CARGO_TARGET_TMPDIR/envc-tests/<name>-<pid>-<n>`, removed
/// recursively on drop — unless anything is mounted at or below it, as seen in the mount
/// namespace of the dropping thread (`/proc/thread-self/mountinfo`): then nothing at all
/// is removed and a loud error is printed, so a bug (e.g. a container that outlived its
/// test) can never make cleanup delete through a live bind mount into the host.
/// Set `ENVC_KEEP_TMP=1` to keep every directory for inspection.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envc-tests");
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        // Canonical, so it compares equal to the mount points the kernel reports.
        let base = base
            .canonicalize()
            .unwrap_or_else(|e| panic!("canonicalize {}: {e}", base.display()));
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{name}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path, keep: false },
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue, // stale, pid reused
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mount points at or below this directory in the calling thread's mount namespace.
    pub fn mounts_below(&self) -> Result<Vec<PathBuf>, String> {
        let text = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .map_err(|e| format!("cannot read /proc/thread-self/mountinfo: {e}"))?;
        Ok(parse_mountinfo(&text)
            .into_iter()
            .map(|m| {
                // An unlinked mount point is shown as "<path>//deleted".
                let p = m.mount_point;
                PathBuf::from(p.strip_suffix("//deleted").unwrap_or(&p))
            })
            .filter(|p| p.starts_with(&self.path))
            .collect())
    }

    /// Removes the directory recursively, or refuses (removing nothing) when anything is
    /// mounted below it or the mount table cannot be read.
    pub fn try_remove(&self) -> Result<(), String> {
        let mounts = self.mounts_below()?;
        if !mounts.is_empty() {
            return Err(format!(
                "refusing to remove {}: mounted below it: {:?}",
                self.path.display(),
                mounts
            ));
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("remove {}: {e}", self.path.display())),
        }
    }

    /// Keeps the directory (no removal on drop) and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("ENVC_KEEP_TMP").is_some_and(|v| v == "1") {
            eprintln!("keeping test directory {}", self.path.display());
            return;
        }
        if let Err(e) = self.try_remove() {
            eprintln!(
                "\n!!!!!!!!!!!!!!!! TEST CLEANUP ERROR !!!!!!!!!!!!!!!!\n{e}\n\
                 Nothing was deleted. Inspect and unmount by hand.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
        }
    }
}
