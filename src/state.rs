//! Per-container state on the host: `RUN_DIR/NAME/` (default
//! `/run/envc/NAME/`), held under an exclusive lock for as long as the
//! supervisor runs, and removed when it ends. A second container with the
//! same name is refused; a directory whose lock nobody holds was left by a
//! supervisor that died, and is taken over.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The run directory: `ENVC_RUN_DIR`, else `/run/envc`.
pub fn run_dir() -> PathBuf {
    std::env::var_os("ENVC_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/envc"))
}

/// The log directory: `ENVC_LOG_DIR`, else `/var/log/envc`.
pub fn log_dir() -> PathBuf {
    std::env::var_os("ENVC_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/log/envc"))
}

/// Replaces a file's contents by overwriting it from the start and cutting
/// it to the new length. Unlike a truncate-then-write (`O_TRUNC`), this does
/// not make ext4 allocate and flush the file's blocks at close (its guard for
/// files replaced by truncation), which every start would wait for on the
/// report in the log directory. Readers can see a half-written file
/// meanwhile: they read again when it does not parse ([`read_consistent`]).
pub fn overwrite(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_over(overwrite_options().open(path)?, contents)
}

/// Opened to be overwritten: made if missing, never truncated first.
fn overwrite_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    opts
}

/// Writes `contents` from the start of `f` and cuts it to their length.
fn write_over(mut f: File, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    f.write_all(contents)?;
    f.set_len(contents.len() as u64)
}

/// Opens `path` with `opts`; if its directory is missing, makes it (and its
/// parents) and opens again. For the log directory, which is there on every
/// start but the first: no `mkdir` and `stat` of it each time.
pub fn open_making_dir(path: &Path, opts: &std::fs::OpenOptions) -> io::Result<File> {
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            opts.open(path)
        }
        other => other,
    }
}

/// [`overwrite`], making the file's directory if it is missing.
pub fn overwrite_making_dir(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_over(open_making_dir(path, &overwrite_options())?, contents)
}

/// Reads a state file that its supervisor may be replacing in place
/// ([`State::replace`]): `parse` says whether what was read is whole; a torn
/// read is read again (a few times, a millisecond apart). `None` if the file
/// is missing or never reads whole.
pub fn read_consistent<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    for _ in 0..5 {
        let bytes = std::fs::read(path).ok()?;
        // A torn read can split a multi-byte character too: read again.
        if let Some(v) = std::str::from_utf8(&bytes).ok().and_then(&parse) {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    None
}

/// A container's state directory, locked.
pub struct State {
    pub dir: PathBuf,
    lock: Option<File>,
}

#[derive(Debug)]
pub enum StateError {
    Running(String),
    Io(io::Error),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Running(n) => write!(f, "a container named `{n}` is already running"),
            StateError::Io(e) => write!(f, "state directory: {e}"),
        }
    }
}

/// The files of a state directory: the report, the control socket, the
/// container's info, and the lock last (it is held until they are gone).
const STATE_FILES: [&str; 4] = ["report.json", "control", "info.json", "lock"];

impl State {
    pub fn acquire(name: &str) -> Result<State, StateError> {
        let run = run_dir();
        let dir = run.join(name);
        // A supervisor that stops removes its lock file while holding the
        // lock: one that opened that file just before may take the lock
        // after, on a file no longer in the directory. Such a lock guards
        // nothing: start again (a few times, then say why not).
        for _ in 0..10 {
            let lock = Self::lock_in(&run, &dir, name)?;
            let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
                use std::os::unix::fs::MetadataExt;
                a.dev() == b.dev() && a.ino() == b.ino()
            };
            match (lock.metadata(), std::fs::metadata(dir.join("lock"))) {
                (Ok(held), Ok(named)) if same(&held, &named) => {
                    return Ok(State {
                        dir,
                        lock: Some(lock),
                    });
                }
                _ => continue,
            }
        }
        Err(StateError::Io(io::Error::other(format!(
            "{} keeps changing under us",
            dir.display()
        ))))
    }

    /// Makes `dir` (and `run`) if needed and takes the lock in it.
    fn lock_in(run: &Path, dir: &Path, name: &str) -> Result<File, StateError> {
        // The run directory goes with the last container that stops, so
        // another container's exit can remove it between our two mkdirs:
        // make it again (a few times, then say why not).
        let mut tries = 0;
        loop {
            tries += 1;
            match std::fs::create_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => {
                    match std::fs::create_dir(run) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            std::fs::create_dir_all(run).map_err(StateError::Io)?
                        }
                        Err(e) => return Err(StateError::Io(e)),
                    }
                }
                Err(e) => return Err(StateError::Io(e)),
            }
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(StateError::Io)?;
        if !crate::sys::try_lock(&lock).unwrap_or(false) {
            return Err(StateError::Running(name.to_string()));
        }
        Ok(lock)
    }

    pub fn write(&self, file: &str, contents: &str) -> io::Result<()> {
        std::fs::write(self.dir.join(file), contents)
    }

    /// Replaces a file written before, in place ([`overwrite`]): a
    /// truncate-and-rewrite would make ext4 flush it at close. A reader can
    /// see it half-written for a moment; [`read_consistent`] reads it again then.
    pub fn replace(&self, file: &str, contents: &str) -> io::Result<()> {
        overwrite(&self.dir.join(file), contents.as_bytes())
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Removes the directory (and the run directory, if we made it and it is empty).
    pub fn release(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if self.lock.is_none() {
            return;
        }
        // The files a supervisor makes there, the lock last, then the
        // directory. Once the lock is gone, a start of the same name may
        // make the directory its own (a new lock, its info): if the
        // directory is not empty then and has a lock, it is that start's
        // and stays. Anything else in it (left by a version that made more)
        // goes the long way.
        for name in STATE_FILES {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        if std::fs::remove_dir(&self.dir).is_err() && !self.dir.join("lock").exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        self.lock = None;
        // The run directory goes with its last container (if another is
        // still there, it is not empty and stays).
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether `name`, given on the command line, can name a container: one
/// path component that is not hidden (`.idmap` and the like are envc's).
pub fn is_container_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/')
}

/// Whether a state directory exists for `name`.
pub fn exists(name: &str) -> bool {
    Path::new(&run_dir()).join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file replaced in place by shorter contents has no tail of the old ones, and
    /// `read_consistent` reads it (or says it is gone).
    #[test]
    fn replaced_in_place_and_read_whole() {
        let dir = std::env::temp_dir().join(format!("envc-state-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("info.json");
        overwrite(
            &f,
            br#"{"pid": 0, "rootfs": "/a/much/longer/path/than/later"}"#,
        )
        .unwrap();
        overwrite(&f, br#"{"pid": 42}"#).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), r#"{"pid": 42}"#);
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
        let v = read_consistent(&f, parse).unwrap();
        assert_eq!(v["pid"], 42);
        // Never whole (not JSON at all): given up after a few tries, not forever.
        std::fs::write(&f, "{").unwrap();
        let t = std::time::Instant::now();
        assert!(read_consistent(&f, parse).is_none());
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(read_consistent(&dir.join("missing"), parse).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
