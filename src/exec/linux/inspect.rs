//! The rootfs checks made before anything is mounted: whether a directory
//! is there and empty (made when asked), and what the init program resolves
//! to and whether it can be executed.

#![allow(unsafe_code)]

use super::{LinuxKernel, check, check_long, errno, mode_type, with_context};
use crate::exec::kernel::{DirState, InitInfo, InitProblem};
use crate::paths::ContainerPath;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

pub(super) fn inspect_dir(
    k: &LinuxKernel,
    path: &ContainerPath,
    create: bool,
) -> io::Result<DirState> {
    match k.open_in_root(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
        Ok(fd) => {
            // Its first entries, straight from getdents64 (not through a
            // DIR*, whose set-up makes system calls of its own): anything
            // but `.` and `..` means not empty.
            let mut buf = [0u8; 1024];
            let mut empty = true;
            // Batches until an entry other than `.` and `..`, or the end
            // (a filesystem may hand out the dots alone first).
            'batches: loop {
                // SAFETY: a valid directory fd and a buffer of the size passed.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_getdents64,
                        fd.as_raw_fd(),
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                };
                let n = check_long(n).map_err(|e| with_context(e, path))? as usize;
                if n == 0 {
                    break;
                }
                let mut at = 0;
                // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
                while at + 19 < n {
                    let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                    if reclen < 20 || at + reclen > n {
                        break 'batches;
                    }
                    let name = &buf[at + 19..at + reclen];
                    let name = name.split(|b| *b == 0).next().unwrap_or_default();
                    if name != b"." && name != b".." {
                        empty = false;
                        break 'batches;
                    }
                    at += reclen;
                }
            }
            Ok(if empty {
                DirState::Empty
            } else {
                DirState::NotEmpty
            })
        }
        Err(e) if errno(&e) == Some(libc::ENOENT) && create => {
            let (parent, name) = k.parent_of(path)?;
            // SAFETY: valid fd and C string.
            check(unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) })?;
            Ok(DirState::Created)
        }
        Err(e) if matches!(errno(&e), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            Err(io::Error::new(
                e.kind(),
                format!(
                    "{path} is not a directory in the rootfs (a symlink or another kind of file)"
                ),
            ))
        }
        Err(e) if errno(&e) == Some(libc::ENOENT) => Err(io::Error::new(
            e.kind(),
            format!("{path} is missing from the rootfs"),
        )),
        Err(e) => Err(e),
    }
}

pub(super) fn inspect_init(k: &LinuxKernel, path: &ContainerPath) -> Result<InitInfo, InitProblem> {
    let fd = match k.open_in_root(path, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e)
            if matches!(
                errno(&e),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
            ) =>
        {
            return Err(InitProblem::NotFound(format!(
                "{path} does not resolve to a file inside the rootfs ({e})"
            )));
        }
        Err(e) => return Err(InitProblem::Other(e)),
    };
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, valid stat buffer.
    let r = unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
    check(r).map_err(InitProblem::Other)?;
    let resolved_host = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(InitProblem::Other)?;
    // Against the rootfs as the kernel names it (`open_rootfs` read it so).
    let resolved = match resolved_host.strip_prefix(&k.rootfs) {
        Ok(r) => format!("/{}", r.display()),
        Err(_) => resolved_host.display().to_string(),
    };
    if mode_type(st.st_mode) != libc::S_IFREG {
        return Err(InitProblem::NotExecutable(format!(
            "{path} resolves to {resolved}, which is not a regular file"
        )));
    }
    if st.st_mode & 0o111 == 0 {
        return Err(InitProblem::NotExecutable(format!(
            "{path} resolves to {resolved}, which has no execute permission"
        )));
    }
    let is_systemd = Path::new(&resolved)
        .file_name()
        .is_some_and(|n| n == OsStr::new("systemd"));
    Ok(InitInfo {
        resolved,
        is_systemd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernel::Kernel;

    /// `inspect_dir` (the rootfs checks before anything is mounted): empty,
    /// not empty (however many entries, whatever their names' length), made
    /// when asked, refused through a symlink. No root needed.
    #[test]
    fn inspect_dir_tells_empty_from_not_empty() {
        let root = std::env::temp_dir().join(format!("envc-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["empty", "one", "many", "long"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("one/x"), "").unwrap();
        for i in 0..200 {
            std::fs::write(root.join(format!("many/{i}")), "").unwrap();
        }
        std::fs::write(root.join("long").join("n".repeat(255)), "").unwrap();
        std::os::unix::fs::symlink("/", root.join("link")).unwrap();
        let mut k = LinuxKernel::new();
        k.open_rootfs(&root).unwrap();
        let p = |s: &str| ContainerPath::new(s).unwrap();
        let state = |k: &mut LinuxKernel, s: &str, create: bool| match k.inspect_dir(&p(s), create)
        {
            Ok(DirState::Empty) => "empty",
            Ok(DirState::NotEmpty) => "not empty",
            Ok(DirState::Created) => "created",
            Err(_) => "error",
        };
        assert_eq!(state(&mut k, "/empty", false), "empty");
        assert_eq!(state(&mut k, "/one", false), "not empty");
        assert_eq!(state(&mut k, "/many", false), "not empty");
        assert_eq!(state(&mut k, "/long", false), "not empty");
        assert_eq!(state(&mut k, "/link", false), "error");
        assert_eq!(state(&mut k, "/missing", false), "error");
        assert_eq!(state(&mut k, "/missing", true), "created");
        assert_eq!(state(&mut k, "/missing", false), "empty");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
