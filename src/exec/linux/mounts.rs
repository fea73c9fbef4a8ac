//! Mounts: the rootfs bound onto itself and every mount made a slave,
//! filesystems mounted, binds made through `open_tree` and `move_mount`,
//! mounts made read-only with `mount_setattr`, and the final `pivot_root`.

#![allow(unsafe_code)]

use super::{LinuxKernel, check, check_long, cstr, with_context};
use crate::exec::kernel::MountFlags;
use crate::paths::{ContainerPath, HostPath};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

pub(super) const OPEN_TREE_CLONE: u32 = 1;
pub(super) const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `/proc/self/fd/N`: how `mount(2)` and `bind(2)` reach an fd-resolved path.
fn fd_path(fd: &OwnedFd) -> CString {
    cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes()).expect("no NUL")
}

pub(super) fn make_mounts_slave() -> io::Result<()> {
    let none = c"none".to_owned();
    let root = c"/".to_owned();
    raw_mount(&none, &root, None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| with_context(e, "making / a slave mount"))
}

pub(super) fn bind_rootfs(k: &mut LinuxKernel) -> io::Result<()> {
    // By path: an fd opened before the clone belongs to the host's mount
    // namespace, and a bind from another namespace is refused.
    let c = cstr(k.rootfs.as_os_str().as_bytes())?;
    raw_mount(&c, &c, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| with_context(e, "binding the rootfs onto itself"))?;
    // Re-open: later paths resolve in the new mount (the same path,
    // already free of symlinks).
    k.root = Some(k.open_rootfs_dir(&k.rootfs)?);
    Ok(())
}

pub(super) fn mount_fs(
    k: &LinuxKernel,
    fstype: &str,
    target: &ContainerPath,
    flags: MountFlags,
    data: &str,
) -> io::Result<()> {
    let t = k.dir(target)?;
    let plain = k.kept_dir(target).is_some();
    k.mounted_at(target, plain);
    let mut f: libc::c_ulong = 0;
    if flags.nosuid {
        f |= libc::MS_NOSUID;
    }
    if flags.nodev {
        f |= libc::MS_NODEV;
    }
    if flags.noexec {
        f |= libc::MS_NOEXEC;
    }
    if flags.readonly {
        f |= libc::MS_RDONLY;
    }
    let src = cstr(fstype.as_bytes())?;
    let data = (!data.is_empty())
        .then(|| cstr(data.as_bytes()))
        .transpose()?;
    raw_mount(&src, &fd_path(&t), Some(&src), f, data.as_ref())
        .map_err(|e| with_context(e, format!("mount {fstype} on {target}")))
}

pub(super) fn bind_self(k: &LinuxKernel, target: &ContainerPath) -> io::Result<()> {
    // One lookup for both ends: the copy goes where it was taken from.
    let (t, plain) = k.open_target(target)?;
    let tree = open_tree(
        t.as_raw_fd(),
        &c"".to_owned(),
        OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(|e| with_context(e, format!("open_tree {target}")))?;
    k.move_onto_fd(&tree, &t, target, plain)
}

pub(super) fn bind_host(
    k: &LinuxKernel,
    source: &HostPath,
    target: &ContainerPath,
    recursive: bool,
    readonly: bool,
) -> io::Result<()> {
    let src = cstr(source.as_str().as_bytes())?;
    let mut flags = OPEN_TREE_CLONE;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = open_tree(libc::AT_FDCWD, &src, flags)
        .map_err(|e| with_context(e, format!("open_tree {source}")))?;
    if readonly {
        setattr_readonly(&tree, recursive)
            .map_err(|e| with_context(e, format!("read-only {source}")))?;
    }
    k.move_onto(&tree, target)
}

pub(super) fn bind_inside(
    k: &LinuxKernel,
    source: &ContainerPath,
    target: &ContainerPath,
) -> io::Result<()> {
    let s = k.open_in_root(source, libc::O_PATH)?;
    let tree = open_tree(
        s.as_raw_fd(),
        &c"".to_owned(),
        OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(|e| with_context(e, format!("open_tree {source}")))?;
    k.move_onto(&tree, target)
}

pub(super) fn set_readonly(
    k: &LinuxKernel,
    target: &ContainerPath,
    recursive: bool,
) -> io::Result<()> {
    let t = k.open_in_root(target, libc::O_PATH)?;
    k.mounts_changed();
    setattr_readonly(&t, recursive).map_err(|e| with_context(e, format!("read-only {target}")))
}

pub(super) fn pivot_root(k: &mut LinuxKernel) -> io::Result<()> {
    k.mounts_changed();
    let root = k
        .root
        .take()
        .ok_or_else(|| io::Error::other("the rootfs is not open"))?;
    // SAFETY: fchdir to our fd; pivot_root(".", ".") stacks the old root
    // under the new one, then it is detached.
    unsafe {
        check(libc::fchdir(root.as_raw_fd()))?;
        check_long(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c".".as_ptr(),
        ))
        .map_err(|e| with_context(e, "pivot_root"))?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))
            .map_err(|e| with_context(e, "detaching the old root"))?;
        check(libc::chdir(c"/".as_ptr()))?;
    }
    Ok(())
}

impl LinuxKernel {
    /// Attaches a detached mount tree (from `open_tree`) onto `target`.
    pub(super) fn move_onto(&self, tree: &OwnedFd, target: &ContainerPath) -> io::Result<()> {
        let (t, plain) = self.open_target(target)?;
        self.move_onto_fd(tree, &t, target, plain)
    }

    /// [`LinuxKernel::move_onto`] the target opened by [`LinuxKernel::open_target`].
    pub(super) fn move_onto_fd(
        &self,
        tree: &OwnedFd,
        t: &OwnedFd,
        target: &ContainerPath,
        plain: bool,
    ) -> io::Result<()> {
        self.mounted_at(target, plain);
        let empty = c"";
        // SAFETY: both fds are valid; empty C strings with the EMPTY_PATH flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                empty.as_ptr(),
                t.as_raw_fd(),
                empty.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        check_long(r)
            .map(|_| ())
            .map_err(|e| with_context(e, format!("move_mount onto {target}")))
    }
}

pub(super) fn open_tree(dirfd: RawFd, path: &CString, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid C string; flags are open_tree flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            path.as_ptr(),
            flags | libc::O_CLOEXEC as u32,
        )
    };
    let fd = check_long(fd)?;
    // SAFETY: a new fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub(super) fn setattr_readonly(fd: &OwnedFd, recursive: bool) -> io::Result<()> {
    set_mount_attr(fd, MOUNT_ATTR_RDONLY, None, recursive)
}

/// `mount_setattr(2)` on the mount `fd` is: sets `attr_set` (with the user
/// namespace an idmap takes), on the mounts below it too when `recursive`.
pub(super) fn set_mount_attr(
    fd: &OwnedFd,
    attr_set: u64,
    userns: Option<RawFd>,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check_long(r).map(|_| ())
}

fn raw_mount(
    source: &CString,
    target: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> io::Result<()> {
    // SAFETY: all pointers are valid C strings or null.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    check(r).map(|_| ())
}
