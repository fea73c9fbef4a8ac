//! Files made inside the rootfs: placeholders to mount over, device nodes,
//! symlinks, ownership, removals; the console pty and the Unix sockets,
//! kept for the hand-off to the supervisor.

#![allow(unsafe_code)]

use super::mounts::{OPEN_TREE_CLONE, open_tree};
use super::{LinuxKernel, check, cstr, with_context};
use crate::exec::kernel::{Handoff, SocketKind};
use crate::paths::ContainerPath;
use crate::profile::model::NodeKind;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(super) fn make_placeholder(k: &LinuxKernel, path: &ContainerPath) -> io::Result<()> {
    k.ensure_dir(&path.parent(), 0o755)?;
    let (dir, name) = k.parent_of(path)?;
    // SAFETY: valid fd and C string; O_NOFOLLOW refuses a symlink planted there.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o000 as libc::c_uint,
        )
    };
    let fd = check(fd).map_err(|e| with_context(e, format!("placeholder {path}")))?;
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    Ok(())
}

/// A new file at `path` (none may be there: `O_EXCL`) holding `contents`.
pub(super) fn write_file(
    k: &LinuxKernel,
    path: &ContainerPath,
    contents: &str,
    mode: u32,
) -> io::Result<()> {
    use std::io::Write;
    let (dir, name) = k.parent_of(path)?;
    // SAFETY: valid fd and C string; O_EXCL|O_NOFOLLOW refuse anything
    // already there, a symlink included.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    let fd = check(fd).map_err(|e| with_context(e, format!("creating {path}")))?;
    // SAFETY: a new fd nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(contents.as_bytes())
        .map_err(|e| with_context(e, format!("writing {path}")))
}

pub(super) fn mknod(
    k: &LinuxKernel,
    path: &ContainerPath,
    kind: NodeKind,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    k.ensure_dir(&path.parent(), 0o755)?;
    let (dir, name) = k.parent_of(path)?;
    let t = match kind {
        NodeKind::Char => libc::S_IFCHR,
        NodeKind::Block => libc::S_IFBLK,
    };
    // SAFETY: valid fd and C string.
    let r = unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            t | (mode & 0o7777),
            libc::makedev(major, minor),
        )
    };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("mknod {path}")))?;
    // mknod is subject to the umask: set the mode exactly.
    // SAFETY: valid fd and C string.
    let r = unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode & 0o7777, 0) };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("chmod {path}")))
}

pub(super) fn chown(k: &LinuxKernel, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()> {
    let (dir, name) = k.parent_of(path)?;
    // SAFETY: valid fd and C string.
    let r = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("chown {path}")))
}

pub(super) fn symlink(k: &LinuxKernel, target: &str, path: &ContainerPath) -> io::Result<()> {
    k.ensure_dir(&path.parent(), 0o755)?;
    let (dir, name) = k.parent_of(path)?;
    let t = cstr(target.as_bytes())?;
    // SAFETY: valid C strings and fd.
    let r = unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("symlink {path}")))
}

pub(super) fn unlink(k: &LinuxKernel, path: &ContainerPath) -> io::Result<()> {
    let (dir, name) = k.parent_of(path)?;
    // SAFETY: valid fd and C string.
    let r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    check(r)
        .map(|_| ())
        .map_err(|e| with_context(e, format!("unlink {path}")))
}

pub(super) fn make_console(
    k: &mut LinuxKernel,
    ptmx: &ContainerPath,
    console: &ContainerPath,
) -> io::Result<()> {
    let master = k.open_in_root(ptmx, libc::O_RDWR | libc::O_NOCTTY)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let slave = check(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| with_context(e, "TIOCGPTPEER"))?;
    // SAFETY: a new fd nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    make_placeholder(k, console)?;
    let tree = open_tree(
        slave.as_raw_fd(),
        &c"".to_owned(),
        OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(|e| with_context(e, "open_tree of the console pty"))?;
    k.move_onto(&tree, console)?;
    k.console_master = Some(master);
    k.console_slave = Some(slave);
    Ok(())
}

pub(super) fn make_socket(
    k: &mut LinuxKernel,
    path: &ContainerPath,
    kind: SocketKind,
    mode: u32,
) -> io::Result<()> {
    k.ensure_dir(&path.parent(), 0o755)?;
    let (dir, name) = k.parent_of(path)?;
    let ty = match kind {
        SocketKind::Datagram => libc::SOCK_DGRAM,
        SocketKind::Stream => libc::SOCK_STREAM,
    };
    // SAFETY: plain socket(2).
    let s = check(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a new fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    let sun_path = format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        name.to_string_lossy()
    );
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if sun_path.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(sun_path.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: addr is a valid sockaddr_un of the size passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    check(r).map_err(|e| with_context(e, format!("bind {path}")))?;
    // SAFETY: valid fd and C string.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) })?;
    if kind == SocketKind::Stream {
        // SAFETY: listen on our socket.
        check(unsafe { libc::listen(sock.as_raw_fd(), 64) })?;
        k.guest_socket = Some(sock);
    } else {
        k.log_socket = Some(sock);
    }
    Ok(())
}

pub(super) fn take_handoff(k: &mut LinuxKernel) -> Handoff {
    Handoff {
        console: k.console_master.take(),
        log: k.log_socket.take(),
        guest_api: k.guest_socket.take(),
    }
}
