//! Opening paths inside the rootfs without ever leaving it: `openat2` with
//! `RESOLVE_IN_ROOT` from the rootfs fd, so `..` and absolute symlinks stay
//! inside; the directories kept open between steps (and dropped when a mount
//! covers them); a path's parent directory; directories made on the way.

#![allow(unsafe_code)]

use super::{LinuxKernel, check, check_long, cstr, errno, with_context};
use crate::paths::ContainerPath;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub(super) fn open_rootfs(k: &mut LinuxKernel, rootfs: &Path) -> io::Result<()> {
    let fd = k.open_rootfs_dir(rootfs)?;
    // The real path, with no symlink in it, for the bind and for reports.
    k.rootfs = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| with_context(e, rootfs.display()))?;
    k.root = Some(fd);
    Ok(())
}

impl LinuxKernel {
    fn root_fd(&self) -> io::Result<RawFd> {
        self.root
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| io::Error::other("the rootfs is not open"))
    }

    /// Opens the rootfs directory (`O_PATH`); later container paths resolve
    /// from it. Paths kept from before resolve afresh.
    pub(super) fn open_rootfs_dir(&self, rootfs: &Path) -> io::Result<OwnedFd> {
        self.mounts_changed();
        let c = cstr(rootfs.as_os_str().as_bytes())?;
        // SAFETY: valid C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        let fd = check(fd).map_err(|e| with_context(e, rootfs.display()))?;
        // SAFETY: a new fd nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens `path` inside the rootfs (`O_PATH` unless `flags` says otherwise).
    pub(super) fn open_in_root(&self, path: &ContainerPath, flags: i32) -> io::Result<OwnedFd> {
        self.open_in_root_how(path, flags, 0)
    }

    /// [`LinuxKernel::open_in_root`] with more `RESOLVE_*` flags.
    fn open_in_root_how(
        &self,
        path: &ContainerPath,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        let root = self.root_fd()?;
        let rel = cstr(path.relative().as_bytes())?;
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
        };
        // SAFETY: `rel` is a valid C string, `how` a valid open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let fd = check_long(fd).map_err(|e| with_context(e, path))?;
        // SAFETY: openat2 returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The directory `path` inside the rootfs, as an `O_PATH` fd (resolved
    /// with `RESOLVE_IN_ROOT`: symlinks followed inside the rootfs). The
    /// set-up makes most of its nodes and mount points in a few directories
    /// (`/dev`, `/sys/fs/cgroup`): a directory reached without a symlink is
    /// kept, so that it takes one lookup, not one per step and component,
    /// until a mount at its path or above it ([`LinuxKernel::mounted_at`]).
    /// One reached through a symlink is looked up each time.
    pub(super) fn dir(&self, path: &ContainerPath) -> io::Result<std::rc::Rc<OwnedFd>> {
        if let Some(fd) = self.kept_dir(path) {
            return Ok(fd);
        }
        match self.open_in_root_plain(path, libc::O_PATH | libc::O_DIRECTORY)? {
            (fd, true) => Ok(self.keep_dir(path, fd)),
            (fd, false) => Ok(std::rc::Rc::new(fd)),
        }
    }

    /// The directory `path` if it is kept (see [`LinuxKernel::dir`]).
    pub(super) fn kept_dir(&self, path: &ContainerPath) -> Option<std::rc::Rc<OwnedFd>> {
        let dirs = self.dirs.borrow();
        let (_, fd) = dirs.iter().find(|(p, _)| p == path)?;
        Some(std::rc::Rc::clone(fd))
    }

    /// Keeps `fd`, the directory `path` reached without a symlink.
    fn keep_dir(&self, path: &ContainerPath, fd: OwnedFd) -> std::rc::Rc<OwnedFd> {
        let fd = std::rc::Rc::new(fd);
        let mut dirs = self.dirs.borrow_mut();
        if dirs.len() >= 16 {
            dirs.remove(0);
        }
        dirs.push((path.clone(), std::rc::Rc::clone(&fd)));
        fd
    }

    /// [`LinuxKernel::open_in_root`], saying whether `path` was reached
    /// without a symlink (tried first with `RESOLVE_NO_SYMLINKS`).
    fn open_in_root_plain(&self, path: &ContainerPath, flags: i32) -> io::Result<(OwnedFd, bool)> {
        match self.open_in_root_how(path, flags, RESOLVE_NO_SYMLINKS) {
            Ok(fd) => Ok((fd, true)),
            Err(e) if errno(&e) == Some(libc::ELOOP) => {
                Ok((self.open_in_root(path, flags)?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens `target`, the place of a mount about to be made, as `O_PATH`;
    /// says whether it was reached without a symlink.
    pub(super) fn open_target(&self, target: &ContainerPath) -> io::Result<(OwnedFd, bool)> {
        self.open_in_root_plain(target, libc::O_PATH)
    }

    /// A mount is made at `target`. Paths at it and below it now resolve to
    /// the new mount; a kept directory elsewhere still is what its path
    /// resolves to, as both were reached without a symlink, component by
    /// component (and no mount of the container's propagates to another of
    /// its own: they are slaves of the host's or private). `plain`: the
    /// target was reached without a symlink too; if not, the mount may be
    /// anywhere, and nothing is kept.
    pub(super) fn mounted_at(&self, target: &ContainerPath, plain: bool) {
        if plain {
            self.dirs
                .borrow_mut()
                .retain(|(p, _)| !p.starts_with(target));
        } else {
            self.mounts_changed();
        }
    }

    /// Mounts were made, moved or changed anywhere: paths are resolved afresh.
    pub(super) fn mounts_changed(&self) {
        self.dirs.borrow_mut().clear();
    }

    /// The parent directory of `path` (resolved inside the rootfs) and its last component.
    pub(super) fn parent_of(
        &self,
        path: &ContainerPath,
    ) -> io::Result<(std::rc::Rc<OwnedFd>, CString)> {
        let name = path
            .components()
            .last()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = self.dir(&path.parent())?;
        Ok((dir, cstr(name.as_bytes())?))
    }

    /// [`Kernel::make_dir_all`](crate::exec::kernel::Kernel::make_dir_all),
    /// returning the directory.
    pub(super) fn ensure_dir(
        &self,
        path: &ContainerPath,
        mode: u32,
    ) -> io::Result<std::rc::Rc<OwnedFd>> {
        if let Some(fd) = self.kept_dir(path) {
            return Ok(fd);
        }
        let name = path.components().last();
        // Under a kept directory: one component from it, made if missing.
        if let Some(name) = name
            && let Some(parent) = self.kept_dir(&path.parent())
        {
            let name = cstr(name.as_bytes())?;
            match child_dir(&parent, &name) {
                Ok(fd) => return Ok(self.keep_dir(path, fd)),
                Err(e) if errno(&e) == Some(libc::ENOENT) => {
                    return self.make_kept_child(&parent, &name, mode, path);
                }
                // A symlink or another kind of file: resolved in full below.
                Err(_) => {}
            }
        }
        match self.dir(path) {
            Err(e) if errno(&e) == Some(libc::ENOENT) && name.is_some() => {
                let parent = self.ensure_dir(&path.parent(), mode)?;
                let name = cstr(name.expect("checked above").as_bytes())?;
                if self.kept_dir(&path.parent()).is_some() {
                    return self.make_kept_child(&parent, &name, mode, path);
                }
                mkdir_in(&parent, &name, mode, path)?;
                self.dir(path)
            }
            other => other,
        }
    }

    /// Makes the directory `name` (`path`) in the kept directory `parent`,
    /// opens it from there and keeps it.
    fn make_kept_child(
        &self,
        parent: &OwnedFd,
        name: &CString,
        mode: u32,
        path: &ContainerPath,
    ) -> io::Result<std::rc::Rc<OwnedFd>> {
        mkdir_in(parent, name, mode, path)?;
        let fd = child_dir(parent, name).map_err(|e| with_context(e, path))?;
        Ok(self.keep_dir(path, fd))
    }
}

/// The directory `name` in `parent` as an `O_PATH` fd; an error if it is
/// missing, a symlink (`O_NOFOLLOW`) or not a directory. Opened from a
/// kept directory, it was reached without a symlink too.
fn child_dir(parent: &OwnedFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    check(fd)?;
    // SAFETY: a new fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdir name` in `parent`; already there is fine.
fn mkdir_in(parent: &OwnedFd, name: &CString, mode: u32, path: &ContainerPath) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
    match check(r) {
        Err(e) if errno(&e) != Some(libc::EEXIST) => Err(with_context(e, format!("mkdir {path}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernel::Kernel;

    /// The directories kept between steps: only those reached without a
    /// symlink; a mount drops those at its path and below it, and all of them
    /// if its own path had a symlink; a directory made under a kept one is
    /// kept; a symlink where a directory is wanted is followed inside the
    /// rootfs, never out of it. No root needed (no mount is made: what a
    /// mount does to the kept directories is what is checked).
    #[test]
    fn kept_directories_are_plain_and_dropped_by_mounts_at_or_above_them() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("envc-kept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/b", "c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("a", root.join("l")).unwrap();
        std::os::unix::fs::symlink("/", root.join("a/up")).unwrap();
        let mut k = LinuxKernel::new();
        k.open_rootfs(&root).unwrap();
        let p = |s: &str| ContainerPath::new(s).unwrap();
        let id = |fd: &OwnedFd| {
            let st = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
            (st.dev(), st.ino())
        };
        let on_host = |s: &str| {
            let st = std::fs::metadata(root.join(s)).unwrap();
            (st.dev(), st.ino())
        };
        let kept = |k: &LinuxKernel, s: &str| k.kept_dir(&p(s)).is_some();

        assert_eq!(id(&k.dir(&p("/a/b")).unwrap()), on_host("a/b"));
        k.dir(&p("/c")).unwrap();
        assert!(kept(&k, "/a/b") && kept(&k, "/c"));
        // Through a symlink: the same directory, looked up each time.
        assert_eq!(id(&k.dir(&p("/l/b")).unwrap()), on_host("a/b"));
        assert!(!kept(&k, "/l/b") && !kept(&k, "/l"));
        k.dir(&p("/a")).unwrap();
        // A mount at /a: /a and /a/b resolve to something else now; /c does not.
        k.mounted_at(&p("/a"), true);
        assert!(!kept(&k, "/a") && !kept(&k, "/a/b") && kept(&k, "/c"));
        // A mount below a kept directory leaves it.
        k.dir(&p("/a")).unwrap();
        k.mounted_at(&p("/a/b"), true);
        assert!(kept(&k, "/a") && kept(&k, "/c"));
        // A mount reached through a symlink may be anywhere: nothing is kept.
        k.mounted_at(&p("/l/b"), false);
        assert!(!kept(&k, "/a") && !kept(&k, "/c"));

        // Made under a kept directory: made, and kept.
        k.dir(&p("/a")).unwrap();
        let made = k.ensure_dir(&p("/a/new"), 0o755).unwrap();
        assert_eq!(id(&made), on_host("a/new"));
        assert!(kept(&k, "/a/new"));
        // Made through a symlink: inside the rootfs, not kept.
        let made = k.ensure_dir(&p("/l/other"), 0o755).unwrap();
        assert_eq!(id(&made), on_host("a/other"));
        assert!(!kept(&k, "/l/other"));
        // A symlink to / under a kept directory: the rootfs's root, not the host's.
        assert!(kept(&k, "/a"));
        let up = k.ensure_dir(&p("/a/up"), 0o755).unwrap();
        assert_eq!(id(&up), on_host(""));
        assert!(!kept(&k, "/a/up"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
