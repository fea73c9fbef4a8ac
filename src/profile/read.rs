//! Reading profile files: a bounded read that never blocks, which file a
//! path names (its device and inode), and a file's name as diagnostics
//! show it (relative to the top profile's directory).

use std::path::{Component, Path, PathBuf};

/// Lexically absolute (no symlink resolution, so names stay as the user wrote them).
pub(super) fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| "/".into())
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `path` relative to `base` (both absolute, normalised).
pub(super) fn relative_to(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    let s = out.to_string_lossy().into_owned();
    if s.is_empty() { ".".into() } else { s }
}

/// The most a profile file may hold.
const MAX_PROFILE_BYTES: u64 = 16 << 20;

/// Reads a profile file: a regular file of at most [`MAX_PROFILE_BYTES`]. Opened
/// non-blocking, so `profiles = ["/dev/stdin"]`, a FIFO, `/proc/kmsg` or `/dev/zero`
/// is an error, not a hang (found by fuzzing).
pub(super) fn read_profile(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_PROFILE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Why a file could not be read, as a diagnostic says it.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Which file a path names (device and inode): the same file reached by
/// two spellings or through a symlink is the same layer. `None` if it
/// cannot be looked up (reading it then says why).
pub(super) type FileId = Option<(u64, u64)>;

/// The [`FileId`] of `file`.
pub(super) fn file_id(file: &Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).ok().map(|m| (m.dev(), m.ino()))
}
