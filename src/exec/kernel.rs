//! The one trait through which the executor touches the kernel. The real
//! implementation (`linux/`) makes system calls; the recording one keeps an
//! ordered list of calls and can fail any of them. Which one runs is chosen
//! where the executor is built.
//!
//! Container paths are always resolved inside the rootfs by the
//! implementation, never following a symlink out of it.

use crate::paths::{ContainerPath, HostPath};
use crate::plan::Namespace;
use crate::profile::model::NodeKind;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What a rootfs directory check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirState {
    Empty,
    NotEmpty,
    Created,
}

/// What the init program resolves to inside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// The resolved path, inside the rootfs.
    pub resolved: String,
    pub is_systemd: bool,
}

/// Why init cannot run.
#[derive(Debug)]
pub enum InitProblem {
    NotFound(String),
    NotExecutable(String),
    Other(io::Error),
}

/// A host path as a bind sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathState {
    Absent,
    Present {
        is_dir: bool,
        /// A filesystem is mounted right there.
        mounted: bool,
    },
}

/// The result of creating the container's process.
#[derive(Debug)]
pub enum Spawned {
    /// In envc: the child's pid (on the host) and a pidfd for it.
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    /// In the child, inside its new namespaces.
    Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Datagram,
    Stream,
}

/// Mount flags the executor asks for (a subset of `MS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub readonly: bool,
}

impl MountFlags {
    pub const NONE: MountFlags = MountFlags {
        nosuid: false,
        nodev: false,
        noexec: false,
        readonly: false,
    };
    pub const SECURE: MountFlags = MountFlags {
        nosuid: true,
        nodev: true,
        noexec: true,
        readonly: false,
    };
}

/// What the idmapped tree of the rootfs is handed over as (host paths,
/// the other trees' names, are absolute).
pub const ROOTFS_TREE: &str = ":rootfs";

/// The fds the container's first process hands to the supervisor.
#[derive(Debug, Default)]
pub struct Handoff {
    pub console: Option<OwnedFd>,
    pub log: Option<OwnedFd>,
    pub guest_api: Option<OwnedFd>,
}

/// How the container's process joined its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupJoin {
    /// v1 hierarchies joined by writing to `tasks`.
    pub v1: usize,
    /// The cgroup2 hierarchy: joined by the clone itself.
    pub v2_at_clone: bool,
    /// The cgroup2 hierarchy: joined by a write to `cgroup.procs` (a kernel
    /// without `CLONE_INTO_CGROUP`).
    pub v2_by_write: bool,
}

/// Every effect the executor has on the kernel.
pub trait Kernel {
    // ---- host side, before the container exists ----

    /// Opens the rootfs directory; later container paths resolve inside it.
    fn open_rootfs(&mut self, rootfs: &Path) -> io::Result<()>;
    /// Checks that `path` is a directory inside the rootfs (creating it if allowed).
    fn inspect_dir(&mut self, path: &ContainerPath, create: bool) -> io::Result<DirState>;
    /// Resolves the init program inside the rootfs and checks it can be executed.
    fn inspect_init(&mut self, path: &ContainerPath) -> Result<InitInfo, InitProblem>;
    /// Creates the container's first process in new namespaces (fork-like:
    /// returns in both processes).
    fn spawn(&mut self, namespaces: &[Namespace]) -> io::Result<Spawned>;
    /// Before the clone: opens what the container's process joins its cgroup
    /// with. Each cgroup v1 hierarchy's `tasks` file: the process writes `0`
    /// there itself, which moves one thread without the global lock that a
    /// write of a PID to `cgroup.procs` takes (its first taker waits out an
    /// RCU grace period, milliseconds). The cgroup2 directory: the clone starts
    /// the process in it (`CLONE_INTO_CGROUP`).
    fn prepare_cgroup_join(&mut self, v1: &[PathBuf], v2: Option<&Path>) -> io::Result<()>;
    /// In the container's process: joins what `prepare_cgroup_join` opened.
    fn join_cgroups(&mut self) -> io::Result<CgroupJoin>;
    /// Host side, after the clone: hands over the v1 `tasks` files opened
    /// since, to pass to the child.
    fn take_cgroup_join(&mut self) -> Vec<(PathBuf, OwnedFd)>;
    /// In the container's process: the v1 `tasks` files the host passed.
    fn adopt_cgroup_join(&mut self, tasks: Vec<(PathBuf, OwnedFd)>);

    // ---- host files: cgroupfs and /proc, paths envc builds itself ----

    /// From now on, host paths under `dir` may be resolved from one open
    /// handle on it instead of from `/` (the cgroup hierarchies' common
    /// parent: a start makes, opens and removes some sixty paths under it).
    /// Only the process that calls it uses it: a child made later resolves
    /// host paths from `/` again. A hint: a kernel may ignore it, and a
    /// directory that cannot be opened is simply not used.
    fn host_base(&mut self, dir: &Path) {
        let _ = dir;
    }
    fn read_host_file(&mut self, path: &Path) -> io::Result<String>;
    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()>;
    /// Writes each of `values` to `path` with a write of its own (a cgroup
    /// file that takes one rule a write: `devices.allow`); the real kernel
    /// opens the file once.
    fn write_host_file_each(&mut self, path: &Path, values: &[String]) -> io::Result<()> {
        for v in values {
            self.write_host_file(path, v)?;
        }
        Ok(())
    }
    /// Loads `program` as a cgroup device program and attaches it to the
    /// cgroup2 directory `cgroup`, letting programs attached below it run
    /// too (all must allow). The attachment lasts as long as the cgroup.
    fn attach_device_program(
        &mut self,
        cgroup: &Path,
        program: &[crate::exec::cgroup::device_program::Insn],
    ) -> io::Result<()>;
    /// Creates a directory; `Ok(false)` if it was already there.
    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool>;
    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()>;
    /// The subdirectories of a host directory (not following symlinks).
    fn host_subdirs(&mut self, path: &Path) -> io::Result<Vec<String>>;
    /// The names in a host directory (sorted); `None` if it does not exist.
    fn list_host_dir(&mut self, path: &Path) -> io::Result<Option<Vec<String>>>;

    // ---- network, host side ----

    /// An fd of a process's network namespace (kept to undo NICs).
    fn open_netns(&mut self, pid: i32) -> io::Result<OwnedFd>;
    /// Creates a NIC on the host and moves its container end into `spec.netns`.
    fn create_nic(&mut self, spec: &crate::net::NicSpec<'_>) -> io::Result<crate::net::CreatedNic>;
    /// Undoes `create_nic` (a physical NIC goes back under its own name).
    fn remove_nic(
        &mut self,
        nic: &crate::net::CreatedNic,
        netns: std::os::fd::BorrowedFd<'_>,
        in_container_name: &str,
    ) -> io::Result<()>;

    // ---- container side ----

    /// Makes every mount a slave, so nothing propagates back to the host.
    fn make_mounts_slave(&mut self) -> io::Result<()>;
    /// Binds the rootfs onto itself and resolves later paths in the new mount.
    fn bind_rootfs(&mut self) -> io::Result<()>;
    fn unshare_cgroup_namespace(&mut self) -> io::Result<()>;
    fn set_hostname(&mut self, name: &str) -> io::Result<()>;
    /// Creates a directory and its missing parents inside the rootfs.
    fn make_dir_all(&mut self, path: &ContainerPath, mode: u32) -> io::Result<()>;
    /// Creates an empty file (and missing parents) to mount a file over.
    fn make_placeholder(&mut self, path: &ContainerPath) -> io::Result<()>;
    /// Mounts a fresh filesystem on `target` (which must exist).
    fn mount_fs(
        &mut self,
        fstype: &str,
        target: &ContainerPath,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()>;
    /// Binds a path onto itself.
    fn bind_self(&mut self, target: &ContainerPath) -> io::Result<()>;
    /// Binds a host path onto `target`; read-only before it is attached when asked.
    fn bind_host(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        recursive: bool,
        readonly: bool,
    ) -> io::Result<()>;
    /// Binds one container path onto another.
    fn bind_inside(&mut self, source: &ContainerPath, target: &ContainerPath) -> io::Result<()>;
    /// Whether `path` exists on the host, is a directory, and has a filesystem mounted there.
    fn host_path_state(&mut self, path: &HostPath) -> io::Result<HostPathState>;
    /// The kind and numbers of a host device node; `None` if it is absent.
    fn host_device(&mut self, path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>>;
    fn mknod(
        &mut self,
        path: &ContainerPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    fn chown(&mut self, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()>;
    fn symlink(&mut self, target: &str, path: &ContainerPath) -> io::Result<()>;
    /// Removes a file (not a directory) inside the rootfs.
    fn unlink(&mut self, path: &ContainerPath) -> io::Result<()>;
    /// Allocates a pty from the devpts whose `ptmx` is given, binds its
    /// terminal end onto `console`, and keeps both ends for the hand-off and exec.
    fn make_console(&mut self, ptmx: &ContainerPath, console: &ContainerPath) -> io::Result<()>;
    /// Creates a Unix socket bound at `path` with `mode`, kept for the hand-off.
    fn make_socket(&mut self, path: &ContainerPath, kind: SocketKind, mode: u32) -> io::Result<()>;
    /// Makes the mount at `target` read-only (its subtree too, if `recursive`).
    fn set_readonly(&mut self, target: &ContainerPath, recursive: bool) -> io::Result<()>;
    fn loopback_up(&mut self) -> io::Result<()>;
    /// Configures a NIC inside the container's network namespace: name, up,
    /// address, default route.
    fn configure_nic(
        &mut self,
        name: &str,
        ipv4: Option<(std::net::Ipv4Addr, u8)>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> io::Result<()>;
    /// Makes the rootfs the root and detaches the old one.
    fn pivot_root(&mut self) -> io::Result<()>;

    /// Gives a host path (a cgroup's directory or file) to `uid`:`gid`.
    fn chown_host(&mut self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// A new file inside the rootfs with `contents` (nothing may be there).
    fn write_file(&mut self, path: &ContainerPath, contents: &str, mode: u32) -> io::Result<()>;

    // The user namespace (unprivileged containers).
    /// Host side: writes `/proc/PID/uid_map` and `gid_map`.
    fn write_idmap(&mut self, pid: i32, uid_map: &str, gid_map: &str) -> io::Result<()>;
    /// Host side: the rootfs as a detached mount idmapped with `pid`'s user
    /// namespace, kept for [`Kernel::take_idmapped`].
    fn make_idmapped_rootfs(&mut self, pid: i32) -> io::Result<()>;
    /// Host side: `source` as a detached mount idmapped with `pid`'s user
    /// namespace (with what is mounted below it when `recursive`), kept for
    /// [`Kernel::take_idmapped`].
    fn make_idmapped_mount(
        &mut self,
        source: &HostPath,
        recursive: bool,
        pid: i32,
    ) -> io::Result<()>;
    /// Host side: the idmapped trees made, each with what it is of (a host
    /// path, or [`ROOTFS_TREE`]), to hand to the child.
    fn take_idmapped(&mut self) -> Vec<(String, OwnedFd)>;
    /// Child side: the trees the host handed over, in order.
    fn adopt_idmapped(&mut self, trees: Vec<(String, OwnedFd)>);
    /// Child side: attaches the idmapped rootfs where the rootfs is.
    fn attach_idmapped_rootfs(&mut self) -> io::Result<()>;
    /// Child side: attaches the host's idmapped mount of `source` on
    /// `target` (read-only if asked); `false` if the host made none.
    fn attach_idmapped(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        readonly: bool,
    ) -> io::Result<bool>;
    /// Child side: uid and gid 0 of its user namespace.
    fn become_root(&mut self) -> io::Result<()>;
    /// The fds made for the supervisor.
    fn take_handoff(&mut self) -> Handoff;
    /// Child side: takes the syscall filter, to load just before `execve`
    /// (an error: a rule libseccomp refuses).
    fn prepare_syscall_filter(&mut self, filter: &crate::seccomp::SyscallFilter) -> io::Result<()>;
    /// Becomes init: session, console as stdio, signals reset, capabilities,
    /// fds, the syscall filter if one was prepared, exec. The real kernel
    /// returns only on failure; the recording one
    /// returns `Ok` to say the exec was recorded.
    fn exec_init(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Result<()>;
}
