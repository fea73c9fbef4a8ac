//! The real kernel: [`LinuxKernel`] implements [`Kernel`] with Linux system
//! calls. Every container path is opened with `openat2` and
//! `RESOLVE_IN_ROOT` relative to the rootfs fd, so `..` and absolute
//! symlinks stay inside the rootfs; mounts go through fds (`open_tree`,
//! `move_mount`, `mount_setattr`, or `mount(2)` onto `/proc/self/fd/N` of
//! an fd so resolved).
//!
//! This file holds the kernel's state, the helpers every part shares, and
//! the `Kernel` impl, which only dispatches: each concern lives in a module
//! of its own, and those modules are where the `unsafe` code is.

mod bpf;
mod cgroup_join;
mod exec_init;
mod host;
mod inspect;
mod mounts;
mod net;
mod nodes;
mod resolve;
mod spawn;
mod userns;

use super::kernel::*;
use crate::paths::{ContainerPath, HostPath};
use crate::plan::Namespace;
use crate::profile::model::NodeKind;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// `s` as a C string; an error if it holds a NUL.
fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// A system call's return value: negative means the errno is the error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`check`] for a call that returns a `long` (`syscall(2)`).
fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An OS error with what was being done, keeping the errno.
#[derive(Debug)]
struct Context {
    errno: Option<i32>,
    message: String,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Context {}

/// `e` with what was being done, keeping its kind and errno.
fn with_context(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        e.kind(),
        Context {
            errno: errno(&e),
            message: format!("{what}: {e}"),
        },
    )
}

/// The errno behind an error, with or without context.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Context>())
            .and_then(|c| c.errno)
    })
}

/// The real kernel.
pub struct LinuxKernel {
    /// The rootfs's real path, with no symlink in it.
    rootfs: PathBuf,
    /// The rootfs, open: container paths resolve from it (see `resolve`).
    root: Option<OwnedFd>,
    /// The console pty's two ends (see `nodes::make_console`): the master
    /// for the hand-off, the terminal end for init's stdio.
    console_master: Option<OwnedFd>,
    console_slave: Option<OwnedFd>,
    /// The sockets made for the hand-off (see `nodes::make_socket`).
    log_socket: Option<OwnedFd>,
    guest_socket: Option<OwnedFd>,
    /// The cgroup to join (see `prepare_cgroup_join`): v1 `tasks` files with
    /// their paths (for errors), the cgroup2 directory and its `cgroup.procs`.
    join_tasks: Vec<(PathBuf, OwnedFd)>,
    join_v2_dir: Option<(PathBuf, OwnedFd)>,
    join_v2_procs: Option<(PathBuf, OwnedFd)>,
    /// The clone put the child in the cgroup2 directory.
    joined_v2_at_clone: bool,
    /// Directories resolved since the last mount (see [`LinuxKernel::dir`]).
    dirs: std::cell::RefCell<Vec<(ContainerPath, std::rc::Rc<OwnedFd>)>>,
    /// See [`Kernel::host_base`]: host paths under this directory resolve
    /// from its fd.
    host_base: Option<(PathBuf, OwnedFd)>,
    /// Idmapped mount trees: made by the host for the child, handed over
    /// with the host's step, attached by the child.
    idmapped: Vec<(String, OwnedFd)>,
    /// The syscall filter, loaded just before init's `execve`.
    syscall_filter: Option<crate::seccomp::Prepared>,
}

impl Default for LinuxKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxKernel {
    pub fn new() -> LinuxKernel {
        LinuxKernel {
            rootfs: PathBuf::new(),
            root: None,
            console_master: None,
            console_slave: None,
            log_socket: None,
            guest_socket: None,
            join_tasks: Vec::new(),
            join_v2_dir: None,
            join_v2_procs: None,
            joined_v2_at_clone: false,
            dirs: std::cell::RefCell::new(Vec::new()),
            host_base: None,
            idmapped: Vec::new(),
            syscall_filter: None,
        }
    }
}

/// The file type bits of a `st_mode`.
fn mode_type(mode: u32) -> u32 {
    mode & libc::S_IFMT
}

impl Kernel for LinuxKernel {
    fn open_rootfs(&mut self, rootfs: &Path) -> io::Result<()> {
        resolve::open_rootfs(self, rootfs)
    }

    fn inspect_dir(&mut self, path: &ContainerPath, create: bool) -> io::Result<DirState> {
        inspect::inspect_dir(self, path, create)
    }

    fn inspect_init(&mut self, path: &ContainerPath) -> Result<InitInfo, InitProblem> {
        inspect::inspect_init(self, path)
    }

    fn spawn(&mut self, namespaces: &[Namespace]) -> io::Result<Spawned> {
        spawn::spawn(self, namespaces)
    }

    fn prepare_cgroup_join(&mut self, v1: &[PathBuf], v2: Option<&Path>) -> io::Result<()> {
        cgroup_join::prepare_cgroup_join(self, v1, v2)
    }

    fn take_cgroup_join(&mut self) -> Vec<(PathBuf, OwnedFd)> {
        cgroup_join::take_cgroup_join(self)
    }

    fn adopt_cgroup_join(&mut self, tasks: Vec<(PathBuf, OwnedFd)>) {
        cgroup_join::adopt_cgroup_join(self, tasks)
    }

    fn join_cgroups(&mut self) -> io::Result<CgroupJoin> {
        cgroup_join::join_cgroups(self)
    }

    fn host_base(&mut self, dir: &Path) {
        host::host_base(self, dir)
    }

    fn read_host_file(&mut self, path: &Path) -> io::Result<String> {
        host::read_host_file(self, path)
    }

    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()> {
        host::write_host_file(self, path, value)
    }

    fn write_host_file_each(&mut self, path: &Path, values: &[String]) -> io::Result<()> {
        host::write_host_file_each(self, path, values)
    }
    fn attach_device_program(
        &mut self,
        cgroup: &Path,
        program: &[crate::exec::cgroup::device_program::Insn],
    ) -> io::Result<()> {
        let code = crate::exec::cgroup::device_program::encode(program);
        bpf::attach_device_program(self, cgroup, &code)
    }

    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool> {
        host::make_host_dir(self, path)
    }

    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()> {
        host::remove_host_dir(self, path)
    }

    fn host_subdirs(&mut self, path: &Path) -> io::Result<Vec<String>> {
        host::host_subdirs(path)
    }

    fn list_host_dir(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
        host::list_host_dir(path)
    }

    fn open_netns(&mut self, pid: i32) -> io::Result<OwnedFd> {
        net::open_netns(pid)
    }

    fn create_nic(&mut self, spec: &crate::net::NicSpec<'_>) -> io::Result<crate::net::CreatedNic> {
        net::create_nic(spec)
    }

    fn remove_nic(
        &mut self,
        nic: &crate::net::CreatedNic,
        netns: std::os::fd::BorrowedFd<'_>,
        in_container_name: &str,
    ) -> io::Result<()> {
        net::remove_nic(nic, netns, in_container_name)
    }

    fn make_mounts_slave(&mut self) -> io::Result<()> {
        mounts::make_mounts_slave()
    }

    fn bind_rootfs(&mut self) -> io::Result<()> {
        mounts::bind_rootfs(self)
    }

    fn unshare_cgroup_namespace(&mut self) -> io::Result<()> {
        spawn::unshare_cgroup_namespace()
    }

    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        spawn::set_hostname(name)
    }

    fn make_dir_all(&mut self, path: &ContainerPath, mode: u32) -> io::Result<()> {
        self.ensure_dir(path, mode).map(drop)
    }

    fn make_placeholder(&mut self, path: &ContainerPath) -> io::Result<()> {
        nodes::make_placeholder(self, path)
    }

    fn mount_fs(
        &mut self,
        fstype: &str,
        target: &ContainerPath,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        mounts::mount_fs(self, fstype, target, flags, data)
    }

    fn bind_self(&mut self, target: &ContainerPath) -> io::Result<()> {
        mounts::bind_self(self, target)
    }

    fn bind_host(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        recursive: bool,
        readonly: bool,
    ) -> io::Result<()> {
        mounts::bind_host(self, source, target, recursive, readonly)
    }

    fn bind_inside(&mut self, source: &ContainerPath, target: &ContainerPath) -> io::Result<()> {
        mounts::bind_inside(self, source, target)
    }

    fn host_path_state(&mut self, path: &HostPath) -> io::Result<HostPathState> {
        host::host_path_state(path)
    }

    fn host_device(&mut self, path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>> {
        host::host_device(path)
    }

    fn mknod(
        &mut self,
        path: &ContainerPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        nodes::mknod(self, path, kind, mode, major, minor)
    }

    fn chown(&mut self, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()> {
        nodes::chown(self, path, uid, gid)
    }

    fn symlink(&mut self, target: &str, path: &ContainerPath) -> io::Result<()> {
        nodes::symlink(self, target, path)
    }

    fn unlink(&mut self, path: &ContainerPath) -> io::Result<()> {
        nodes::unlink(self, path)
    }

    fn make_console(&mut self, ptmx: &ContainerPath, console: &ContainerPath) -> io::Result<()> {
        nodes::make_console(self, ptmx, console)
    }

    fn make_socket(&mut self, path: &ContainerPath, kind: SocketKind, mode: u32) -> io::Result<()> {
        nodes::make_socket(self, path, kind, mode)
    }

    fn set_readonly(&mut self, target: &ContainerPath, recursive: bool) -> io::Result<()> {
        mounts::set_readonly(self, target, recursive)
    }

    fn loopback_up(&mut self) -> io::Result<()> {
        net::loopback_up()
    }

    fn configure_nic(
        &mut self,
        name: &str,
        ipv4: Option<(std::net::Ipv4Addr, u8)>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> io::Result<()> {
        net::configure_nic(name, ipv4, gateway)
    }

    fn pivot_root(&mut self) -> io::Result<()> {
        mounts::pivot_root(self)
    }

    fn chown_host(&mut self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        host::chown_host(self, path, uid, gid)
    }

    fn write_file(&mut self, path: &ContainerPath, contents: &str, mode: u32) -> io::Result<()> {
        nodes::write_file(self, path, contents, mode)
    }

    fn write_idmap(&mut self, pid: i32, uid_map: &str, gid_map: &str) -> io::Result<()> {
        userns::write_idmap(pid, uid_map, gid_map)
    }

    fn make_idmapped_rootfs(&mut self, pid: i32) -> io::Result<()> {
        userns::make_idmapped_rootfs(self, pid)
    }

    fn make_idmapped_mount(
        &mut self,
        source: &HostPath,
        recursive: bool,
        pid: i32,
    ) -> io::Result<()> {
        userns::make_idmapped_mount(self, source, recursive, pid)
    }

    fn take_idmapped(&mut self) -> Vec<(String, OwnedFd)> {
        std::mem::take(&mut self.idmapped)
    }

    fn adopt_idmapped(&mut self, trees: Vec<(String, OwnedFd)>) {
        self.idmapped.extend(trees);
    }

    fn attach_idmapped(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        readonly: bool,
    ) -> io::Result<bool> {
        userns::attach_idmapped(self, source, target, readonly)
    }

    fn attach_idmapped_rootfs(&mut self) -> io::Result<()> {
        userns::attach_idmapped_rootfs(self)
    }

    fn become_root(&mut self) -> io::Result<()> {
        userns::become_root()
    }

    fn take_handoff(&mut self) -> Handoff {
        nodes::take_handoff(self)
    }

    fn prepare_syscall_filter(&mut self, filter: &crate::seccomp::SyscallFilter) -> io::Result<()> {
        self.syscall_filter = Some(crate::seccomp::prepare(filter)?);
        Ok(())
    }

    fn exec_init(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Result<()> {
        Err(exec_init::exec_init(self, command, env, drop_caps))
    }
}
