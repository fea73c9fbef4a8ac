//! Host files and directories: cgroupfs and `/proc` read and written,
//! cgroup directories made and removed (from the host base's fd when under
//! it), and what a bind or device entry finds at a host path.

#![allow(unsafe_code)]

use super::{LinuxKernel, check, cstr, errno, mode_type, with_context};
use crate::exec::kernel::HostPathState;
use crate::paths::HostPath;
use crate::profile::model::NodeKind;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl LinuxKernel {
    /// Where the `*at` calls find a host path: from the host base if the
    /// path is under it, else as it is (from `/` or the working directory).
    pub(super) fn host_at(&self, path: &Path) -> io::Result<(libc::c_int, CString)> {
        if let Some((base, fd)) = &self.host_base
            && let Ok(rest) = path.strip_prefix(base)
            && !rest.as_os_str().is_empty()
        {
            return Ok((fd.as_raw_fd(), cstr(rest.as_os_str().as_bytes())?));
        }
        Ok((libc::AT_FDCWD, cstr(path.as_os_str().as_bytes())?))
    }

    /// Opens a host file (see [`LinuxKernel::host_at`]); `flags` gain
    /// `O_CLOEXEC`.
    pub(super) fn open_host(&self, path: &Path, flags: libc::c_int) -> io::Result<std::fs::File> {
        let (dir, name) = self.host_at(path)?;
        // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
        check(fd)?;
        // SAFETY: a new fd nothing else owns.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

pub(super) fn host_base(k: &mut LinuxKernel, dir: &Path) {
    let Ok(c) = cstr(dir.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: valid C string; the fd is ours.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: a new fd nothing else owns.
        k.host_base = Some((dir.to_path_buf(), unsafe { OwnedFd::from_raw_fd(fd) }));
    }
}

pub(super) fn read_host_file(k: &LinuxKernel, path: &Path) -> io::Result<String> {
    use std::io::Read;
    // /proc and cgroupfs files say they are empty (size 0): with room
    // for a page up front, one read gets them, where `read_to_string`
    // would stat and seek first, then read a file of unknown size in
    // small growing pieces.
    let read = || -> io::Result<String> {
        let mut f = k.open_host(path, libc::O_RDONLY)?;
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        loop {
            if n == buf.len() {
                buf.resize(2 * n, 0);
            }
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(r) => n += r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        String::from_utf8(buf).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
    };
    read().map_err(|e| with_context(e, path.display()))
}

pub(super) fn write_host_file(k: &LinuxKernel, path: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = k
        .open_host(path, libc::O_WRONLY)
        .map_err(|e| with_context(e, path.display()))?;
    f.write_all(value.as_bytes())
        .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))
}

/// Gives a host file or directory (in cgroupfs) to `uid`:`gid`, without
/// following a symlink.
pub(super) fn chown_host(k: &LinuxKernel, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let (dir, name) = k.host_at(path)?;
    // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
    let r = unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("chown {}", path.display())))
}

pub(super) fn write_host_file_each(
    k: &LinuxKernel,
    path: &Path,
    values: &[String],
) -> io::Result<()> {
    use std::io::Write;
    let mut f = k
        .open_host(path, libc::O_WRONLY)
        .map_err(|e| with_context(e, path.display()))?;
    for value in values {
        f.write_all(value.as_bytes())
            .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))?;
    }
    Ok(())
}

pub(super) fn make_host_dir(k: &LinuxKernel, path: &Path) -> io::Result<bool> {
    let (dir, name) = k.host_at(path)?;
    // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
    match check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o777) }) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(with_context(e, format!("mkdir {}", path.display()))),
    }
}

pub(super) fn remove_host_dir(k: &LinuxKernel, path: &Path) -> io::Result<()> {
    let (dir, name) = k.host_at(path)?;
    // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
        .map(drop)
        .map_err(|e| with_context(e, format!("rmdir {}", path.display())))
}

pub(super) fn host_subdirs(path: &Path) -> io::Result<Vec<String>> {
    let rd = std::fs::read_dir(path).map_err(|e| with_context(e, path.display()))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

pub(super) fn list_host_dir(path: &Path) -> io::Result<Option<Vec<String>>> {
    match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(Some(names))
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(with_context(e, path.display())),
    }
}

pub(super) fn host_path_state(path: &HostPath) -> io::Result<HostPathState> {
    let c = cstr(path.as_str().as_bytes())?;
    // SAFETY: a zeroed statx is a valid out-parameter.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            0,
            &mut stx,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(HostPathState::Absent),
            _ => Err(e),
        };
    }
    let mounted = stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0
        && stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    let is_dir = (stx.stx_mode as u32) & libc::S_IFMT == libc::S_IFDIR;
    Ok(HostPathState::Present { is_dir, mounted })
}

pub(super) fn host_device(path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>> {
    let c = cstr(path.as_str().as_bytes())?;
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(e),
        };
    }
    let kind = match mode_type(st.st_mode) {
        libc::S_IFCHR => NodeKind::Char,
        libc::S_IFBLK => NodeKind::Block,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is not a device node"),
            ));
        }
    };
    Ok(Some((
        kind,
        libc::major(st.st_rdev),
        libc::minor(st.st_rdev),
    )))
}
