//! Joining the container's cgroup: the host opens the v1 `tasks` files and
//! the cgroup2 directory before the clone (see
//! [`Kernel::prepare_cgroup_join`](crate::exec::kernel::Kernel::prepare_cgroup_join)),
//! hands the v1 files opened after it to the child, and the child writes `0`
//! to each (and to `cgroup.procs` when the clone could not start it in the
//! cgroup2 directory).

#![allow(unsafe_code)]

use super::{LinuxKernel, check_long, with_context};
use crate::exec::kernel::CgroupJoin;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(super) fn prepare_cgroup_join(
    k: &mut LinuxKernel,
    v1: &[PathBuf],
    v2: Option<&Path>,
) -> io::Result<()> {
    let open = |k: &LinuxKernel, path: &Path, flags: libc::c_int| -> io::Result<OwnedFd> {
        k.open_host(path, flags)
            .map(OwnedFd::from)
            .map_err(|e| with_context(e, path.display()))
    };
    for dir in v1 {
        let tasks = dir.join("tasks");
        let fd = open(k, &tasks, libc::O_WRONLY)?;
        k.join_tasks.push((tasks, fd));
    }
    if let Some(dir) = v2 {
        // Its `cgroup.procs` only if the clone cannot start the child in
        // it (see `spawn`).
        k.join_v2_dir = Some((
            dir.to_path_buf(),
            open(k, dir, libc::O_RDONLY | libc::O_DIRECTORY)?,
        ));
    }
    Ok(())
}

pub(super) fn take_cgroup_join(k: &mut LinuxKernel) -> Vec<(PathBuf, OwnedFd)> {
    std::mem::take(&mut k.join_tasks)
}

pub(super) fn adopt_cgroup_join(k: &mut LinuxKernel, tasks: Vec<(PathBuf, OwnedFd)>) {
    k.join_tasks.extend(tasks);
}

pub(super) fn join_cgroups(k: &mut LinuxKernel) -> io::Result<CgroupJoin> {
    let write_zero = |path: &Path, fd: &OwnedFd| -> io::Result<()> {
        // SAFETY: writing one byte from a static buffer to our fd.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
        check_long(n as libc::c_long)
            .map(drop)
            .map_err(|e| with_context(e, format!("writing 0 to {}", path.display())))
    };
    let mut joined = CgroupJoin::default();
    for (path, fd) in std::mem::take(&mut k.join_tasks) {
        write_zero(&path, &fd)?;
        joined.v1 += 1;
    }
    let v2 = k.join_v2_dir.take().is_some();
    if v2 && k.joined_v2_at_clone {
        joined.v2_at_clone = true;
    } else if let Some((path, fd)) = k.join_v2_procs.take() {
        write_zero(&path, &fd)?;
        joined.v2_by_write = true;
    }
    Ok(joined)
}
