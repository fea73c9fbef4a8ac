//! Creating the container's first process: `clone3` into its new
//! namespaces (and straight into its cgroup2 directory where the kernel
//! can), and the namespace calls that process makes itself (its own cgroup
//! namespace, its hostname).

#![allow(unsafe_code)]

use super::{LinuxKernel, check, check_long, with_context};
use crate::exec::kernel::Spawned;
use crate::plan::Namespace;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const PR_SET_PDEATHSIG: libc::c_int = 1;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Sets the signal the child gets when the supervisor dies: SIGKILL. The
/// kernel clears it whenever the child's ids change (`become_root`).
pub(super) fn kill_me_with_my_parent() {
    // SAFETY: prctl with plain integer arguments.
    unsafe { libc::prctl(PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}

pub(super) fn spawn(k: &mut LinuxKernel, namespaces: &[Namespace]) -> io::Result<Spawned> {
    let mut flags = libc::CLONE_PIDFD as u64;
    for ns in namespaces {
        flags |= match ns {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
        } as u64;
    }
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some((_, dir)) = &k.join_v2_dir {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without CLONE_VM and without a stack behaves like
    // fork: the child gets a copy of this (single-threaded) process.
    let clone = |args: &CloneArgs| unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let mut r = clone(&args);
    if r < 0
        && args.flags & CLONE_INTO_CGROUP != 0
        && matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::E2BIG | libc::EINVAL)
        )
    {
        // A kernel before 5.7: the child writes to cgroup.procs instead.
        if let Some((path, dir)) = &k.join_v2_dir {
            let procs = path.join("cgroup.procs");
            // SAFETY: a valid directory fd and a C string literal.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    c"cgroup.procs".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                )
            };
            let fd = check(fd).map_err(|e| with_context(e, procs.display()))?;
            // SAFETY: a new fd nothing else owns.
            k.join_v2_procs = Some((procs, unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        args.flags &= !CLONE_INTO_CGROUP;
        args.cgroup = 0;
        r = clone(&args);
    }
    let pid = check_long(r).map_err(|e| with_context(e, "clone3"))?;
    k.joined_v2_at_clone = args.flags & CLONE_INTO_CGROUP != 0;
    if pid == 0 {
        kill_me_with_my_parent();
        // The host base is the supervisor's (see `Kernel::host_base`).
        k.host_base = None;
        return Ok(Spawned::Child);
    }
    // The host has no use for them: only the child joins.
    k.join_tasks.clear();
    k.join_v2_dir = None;
    k.join_v2_procs = None;
    // SAFETY: CLONE_PIDFD stored a new fd that nothing else owns.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok(Spawned::Parent {
        pid: pid as i32,
        pidfd,
    })
}

pub(super) fn unshare_cgroup_namespace() -> io::Result<()> {
    // SAFETY: unshare with a namespace flag.
    check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }).map(|_| ())
}

pub(super) fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a valid buffer.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(|_| ())
}
