//! The few raw syscalls the guest API server needs that `nix` (with the features envc
//! enables) does not wrap: poll(2), pidfd_open(2), pidfd_send_signal(2) and the two
//! namespace ioctls. Every `unsafe` block of the devlxd module lives here.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `ioctl(nsfd, NS_GET_PARENT)`: the parent of a PID (or user) namespace.
const NS_GET_PARENT: libc::c_ulong = 0xb702;
/// `ioctl(pidfd, PIDFD_GET_PID_NAMESPACE)` (Linux 6.11+): the PID namespace the process
/// lives in, race-free.
const PIDFD_GET_PID_NAMESPACE: libc::c_ulong = 0xff05;

pub use libc::pollfd as PollFd;

/// poll(2) over `fds`; `timeout_ms` < 0 waits forever. EINTR is reported as 0 ready fds.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid, exclusively borrowed slice of pollfd of the length passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

/// pidfd_open(2) with `PIDFD_NONBLOCK` off.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) })
}

/// Whether the process a pidfd refers to still exists (`pidfd_send_signal(fd, 0)`): a
/// PID cannot be recycled while it does, so what was read under `/proc/<pid>` before this
/// returned true belonged to it.
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: signal 0 only checks existence and permission; null siginfo is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        // Not allowed to signal it, but it exists.
        Some(libc::EPERM) => Ok(true),
        _ => Err(e),
    }
}

fn ioctl_new_fd(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<OwnedFd> {
    // SAFETY: both requests take no argument (pidfs insists it be 0) and return a new fd
    // or -1.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, 0 as libc::c_ulong) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The parent of the namespace `nsfd` refers to (EPERM at the top, or when the parent is
/// outside the caller's own namespace).
pub fn ns_parent(nsfd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_new_fd(nsfd, NS_GET_PARENT)
}

/// The PID namespace of the process `pidfd` refers to (ENOTTY/EINVAL before Linux 6.11).
pub fn pidfd_pid_namespace(pidfd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_new_fd(pidfd, PIDFD_GET_PID_NAMESPACE)
}
