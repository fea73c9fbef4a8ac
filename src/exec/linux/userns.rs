//! The user namespace of an unprivileged container: the host writes the
//! child's id map and makes the idmapped mount of its rootfs (only the host
//! has privilege over the filesystem); the child attaches that mount and
//! takes the container's root.

#![allow(unsafe_code)]

use super::mounts::{MOVE_MOUNT_F_EMPTY_PATH, OPEN_TREE_CLONE, open_tree, set_mount_attr};
use super::{LinuxKernel, check, check_long, cstr, with_context};
use crate::exec::kernel::ROOTFS_TREE;
use crate::paths::{ContainerPath, HostPath};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Writes the child's `uid_map` and `gid_map` (the kernel takes each in one
/// write, once).
pub(super) fn write_idmap(pid: i32, uid_map: &str, gid_map: &str) -> io::Result<()> {
    for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map).map_err(|e| with_context(e, format!("writing {path}")))?;
    }
    Ok(())
}

/// `path` as a detached mount tree idmapped with the user namespace of
/// process `pid`: files owned by host uid N show as the container's uid N.
fn idmapped_tree(path: &std::path::Path, recursive: bool, pid: i32) -> io::Result<OwnedFd> {
    let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .map_err(|e| with_context(e, "opening the container's user namespace"))?;
    let c = cstr(path.as_os_str().as_bytes())?;
    let mut flags = OPEN_TREE_CLONE;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = open_tree(libc::AT_FDCWD, &c, flags)
        .map_err(|e| with_context(e, format!("open_tree {}", path.display())))?;
    // nodev: a device node the tree holds (a hostile image's, say) is not
    // a way to a host device; the container's devices are binds of their own.
    set_mount_attr(
        &tree,
        MOUNT_ATTR_IDMAP | MOUNT_ATTR_NODEV,
        Some(userns.as_raw_fd()),
        recursive,
    )
    .map_err(|e| not_idmappable(e, path))?;
    Ok(tree)
}

/// The rootfs, idmapped (with everything mounted below it), for the child.
pub(super) fn make_idmapped_rootfs(k: &mut LinuxKernel, pid: i32) -> io::Result<()> {
    let tree = idmapped_tree(&k.rootfs, true, pid)?;
    k.idmapped.push((ROOTFS_TREE.to_string(), tree));
    Ok(())
}

/// A disk device's source, idmapped (`shift = true`), for the child.
pub(super) fn make_idmapped_mount(
    k: &mut LinuxKernel,
    source: &HostPath,
    recursive: bool,
    pid: i32,
) -> io::Result<()> {
    let tree = idmapped_tree(std::path::Path::new(source.as_str()), recursive, pid)?;
    k.idmapped.push((source.as_str().to_string(), tree));
    Ok(())
}

/// In the child: the host's idmapped tree of `source`, attached on
/// `target`; `false` if the host handed over none.
pub(super) fn attach_idmapped(
    k: &mut LinuxKernel,
    source: &HostPath,
    target: &ContainerPath,
    readonly: bool,
) -> io::Result<bool> {
    let Some(i) = k
        .idmapped
        .iter()
        .position(|(name, _)| name == source.as_str())
    else {
        return Ok(false);
    };
    let (_, tree) = k.idmapped.remove(i);
    if readonly {
        super::mounts::setattr_readonly(&tree, true)
            .map_err(|e| with_context(e, format!("read-only {source}")))?;
    }
    k.move_onto(&tree, target)?;
    Ok(true)
}

/// Why `path` cannot be idmapped, with its filesystem and the ways out.
fn not_idmappable(e: io::Error, rootfs: &std::path::Path) -> io::Error {
    let fstype = filesystem_of(rootfs).unwrap_or_else(|| "its filesystem".into());
    let why = match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => format!(
            "{} is on {fstype}, which this kernel cannot idmap: run the container \
             privileged (\"security.privileged\" = true) or use a filesystem that \
             supports idmapped mounts (ext4, xfs, btrfs, tmpfs)",
            rootfs.display()
        ),
        _ => format!("idmapping {} ({fstype})", rootfs.display()),
    };
    with_context(e, why)
}

/// The filesystem type of the mount `path` is on (from `/proc/self/mountinfo`).
fn filesystem_of(path: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let (Some(point), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
            continue;
        };
        let point = std::path::Path::new(point);
        if path.starts_with(point)
            && best
                .as_ref()
                .is_none_or(|(n, _)| point.as_os_str().len() >= *n)
        {
            best = Some((point.as_os_str().len(), (*fstype).to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// In the child: attaches the host's idmapped rootfs (the first tree the
/// host handed over) onto the rootfs path, and opens it as the root every
/// later path resolves in. Done by path, as the child's own mount namespace
/// names the rootfs, before the child takes the container's root: until
/// then it may still pass directories only the host's root may enter.
pub(super) fn attach_idmapped_rootfs(k: &mut LinuxKernel) -> io::Result<()> {
    let Some(i) = k.idmapped.iter().position(|(name, _)| name == ROOTFS_TREE) else {
        return Err(io::Error::other("the host handed over no idmapped rootfs"));
    };
    let (_, tree) = k.idmapped.remove(i);
    let rootfs = cstr(k.rootfs.as_os_str().as_bytes())?;
    // SAFETY: a valid tree fd with an empty path, a C string target.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            rootfs.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check_long(r).map_err(|e| with_context(e, "attaching the idmapped rootfs"))?;
    k.root = Some(k.open_rootfs_dir(&k.rootfs)?);
    Ok(())
}

/// In the child, once its map is written: uid and gid 0 of its user
/// namespace, with no supplementary groups. Changing ids clears the
/// parent-death signal: it is set again (the child's caller then checks
/// that the supervisor did not die in between: `Channel::peer_gone`).
pub(super) fn become_root() -> io::Result<()> {
    // SAFETY: plain system calls on this process's own credentials.
    unsafe {
        check(libc::setresgid(0, 0, 0)).map_err(|e| with_context(e, "setresgid 0"))?;
        check(libc::setgroups(0, std::ptr::null())).map_err(|e| with_context(e, "setgroups"))?;
        check(libc::setresuid(0, 0, 0)).map_err(|e| with_context(e, "setresuid 0"))?;
    }
    super::spawn::kill_me_with_my_parent();
    Ok(())
}
