//! The real kernel. Every container path is opened with `openat2` and
//! `RESOLVE_IN_ROOT` relative to the rootfs fd, so `..` and absolute
//! symlinks stay inside the rootfs; mounts go through fds (`open_tree`,
//! `move_mount`, `mount_setattr`, or `mount(2)` onto `/proc/self/fd/N` of
//! an fd so resolved). This is the only module with `unsafe` code.

use super::kernel::*;
use crate::paths::{ContainerPath, HostPath};
use crate::plan::Namespace;
use crate::profile::model::NodeKind;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;
const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const PR_SET_PDEATHSIG: libc::c_int = 1;
const PR_CAPBSET_DROP: libc::c_int = 24;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

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

/// The kernel's `struct sigaction` for `rt_sigaction(2)` (x86_64 and
/// aarch64 layout: handler, flags, restorer, 64-bit mask).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `/proc/self/fd/N`: how `mount(2)` and `bind(2)` reach an fd-resolved path.
fn fd_path(fd: &OwnedFd) -> CString {
    cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes()).expect("no NUL")
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

fn with_context(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        e.kind(),
        Context {
            errno: errno(&e),
            message: format!("{what}: {e}"),
        },
    )
}

fn net_error(e: crate::net::NetError) -> io::Error {
    let errno = e.errno();
    let kind = errno.map_or(io::ErrorKind::Other, |n| {
        io::Error::from_raw_os_error(n).kind()
    });
    io::Error::new(
        kind,
        Context {
            errno,
            message: e.to_string(),
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
    rootfs: PathBuf,
    root: Option<OwnedFd>,
    console_master: Option<OwnedFd>,
    console_slave: Option<OwnedFd>,
    log_socket: Option<OwnedFd>,
    guest_socket: Option<OwnedFd>,
    /// The cgroup to join (see `prepare_cgroup_join`): v1 `tasks` files with
    /// their paths (for errors), the cgroup2 directory and its `cgroup.procs`.
    join_tasks: Vec<(PathBuf, OwnedFd)>,
    join_v2_dir: Option<OwnedFd>,
    join_v2_procs: Option<(PathBuf, OwnedFd)>,
    /// The clone put the child in the cgroup2 directory.
    joined_v2_at_clone: bool,
    /// Directories resolved since the last mount (see [`LinuxKernel::dir`]).
    dirs: std::cell::RefCell<Vec<(ContainerPath, std::rc::Rc<OwnedFd>)>>,
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
        }
    }

    fn root_fd(&self) -> io::Result<RawFd> {
        self.root
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| io::Error::other("the rootfs is not open"))
    }

    /// Opens `path` inside the rootfs (`O_PATH` unless `flags` says otherwise).
    fn open_in_root(&self, path: &ContainerPath, flags: i32) -> io::Result<OwnedFd> {
        let root = self.root_fd()?;
        let rel = cstr(path.relative().as_bytes())?;
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
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

    /// The directory `path` inside the rootfs, as an `O_PATH` fd: resolved
    /// (`RESOLVE_IN_ROOT`, symlinks followed inside the rootfs) once, then
    /// kept until the next mount, which may change what a path resolves to
    /// ([`LinuxKernel::mounts_changed`]). The set-up makes most of its nodes
    /// and mount points in a few directories (`/dev`, `/sys/fs/cgroup`): one
    /// lookup each instead of one per step and path component.
    fn dir(&self, path: &ContainerPath) -> io::Result<std::rc::Rc<OwnedFd>> {
        if let Some((_, fd)) = self.dirs.borrow().iter().find(|(p, _)| p == path) {
            return Ok(std::rc::Rc::clone(fd));
        }
        let fd = std::rc::Rc::new(self.open_in_root(path, libc::O_PATH | libc::O_DIRECTORY)?);
        let mut dirs = self.dirs.borrow_mut();
        if dirs.len() >= 16 {
            dirs.remove(0);
        }
        dirs.push((path.clone(), std::rc::Rc::clone(&fd)));
        Ok(fd)
    }

    /// A mount was made, moved or changed: paths are resolved afresh.
    fn mounts_changed(&self) {
        self.dirs.borrow_mut().clear();
    }

    /// The parent directory of `path` (resolved inside the rootfs) and its last component.
    fn parent_of(&self, path: &ContainerPath) -> io::Result<(std::rc::Rc<OwnedFd>, CString)> {
        let name = path
            .components()
            .last()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = self.dir(&path.parent())?;
        Ok((dir, cstr(name.as_bytes())?))
    }

    /// [`Kernel::make_dir_all`], returning the directory.
    fn ensure_dir(&self, path: &ContainerPath, mode: u32) -> io::Result<std::rc::Rc<OwnedFd>> {
        match self.dir(path) {
            Err(e) if errno(&e) == Some(libc::ENOENT) && path.components().next().is_some() => {
                let parent = self.ensure_dir(&path.parent(), mode)?;
                let name = path.components().last().expect("not the root");
                let name = cstr(name.as_bytes())?;
                // SAFETY: valid fd and C string.
                let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
                if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(with_context(
                        io::Error::last_os_error(),
                        format!("mkdir {path}"),
                    ));
                }
                self.dir(path)
            }
            other => other,
        }
    }

    /// Attaches a detached mount tree (from `open_tree`) onto `target`.
    fn move_onto(&self, tree: &OwnedFd, target: &ContainerPath) -> io::Result<()> {
        let t = self.open_in_root(target, libc::O_PATH)?;
        self.mounts_changed();
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

    fn open_tree(dirfd: RawFd, path: &CString, flags: u32) -> io::Result<OwnedFd> {
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

    fn setattr_readonly(fd: &OwnedFd, recursive: bool) -> io::Result<()> {
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
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
}

fn mode_type(mode: u32) -> u32 {
    mode & libc::S_IFMT
}

impl Kernel for LinuxKernel {
    fn open_rootfs(&mut self, rootfs: &Path) -> io::Result<()> {
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
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The real path, with no symlink in it, for the bind and for reports.
        self.rootfs = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| with_context(e, rootfs.display()))?;
        self.root = Some(fd);
        Ok(())
    }

    fn inspect_dir(&mut self, path: &ContainerPath, create: bool) -> io::Result<DirState> {
        match self.open_in_root(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Ok(fd) => {
                // Its first entries, straight from getdents64 (no DIR*: that
                // is a dup, a stat and two fcntls more): anything but `.` and
                // `..` means not empty.
                let mut buf = [0u8; 1024];
                let mut empty = true;
                // Batches until an entry other than `.` and `..`, or the end
                // (a filesystem may hand out the dots alone first).
                'batches: loop {
                    // SAFETY: a valid directory fd and a buffer of the size passed.
                    let n = unsafe {
                        libc::syscall(
                            libc::SYS_getdents64,
                            fd.as_raw_fd(),
                            buf.as_mut_ptr(),
                            buf.len(),
                        )
                    };
                    let n = check_long(n).map_err(|e| with_context(e, path))? as usize;
                    if n == 0 {
                        break;
                    }
                    let mut at = 0;
                    // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
                    while at + 19 < n {
                        let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                        if reclen < 20 || at + reclen > n {
                            break 'batches;
                        }
                        let name = &buf[at + 19..at + reclen];
                        let name = name.split(|b| *b == 0).next().unwrap_or_default();
                        if name != b"." && name != b".." {
                            empty = false;
                            break 'batches;
                        }
                        at += reclen;
                    }
                }
                Ok(if empty {
                    DirState::Empty
                } else {
                    DirState::NotEmpty
                })
            }
            Err(e) if errno(&e) == Some(libc::ENOENT) && create => {
                let (parent, name) = self.parent_of(path)?;
                // SAFETY: valid fd and C string.
                check(unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) })?;
                Ok(DirState::Created)
            }
            Err(e) if matches!(errno(&e), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{path} is not a directory in the rootfs (a symlink or another kind of file)"
                    ),
                ))
            }
            Err(e) if errno(&e) == Some(libc::ENOENT) => Err(io::Error::new(
                e.kind(),
                format!("{path} is missing from the rootfs"),
            )),
            Err(e) => Err(e),
        }
    }

    fn inspect_init(&mut self, path: &ContainerPath) -> Result<InitInfo, InitProblem> {
        let fd = match self.open_in_root(path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    errno(&e),
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                ) =>
            {
                return Err(InitProblem::NotFound(format!(
                    "{path} does not resolve to a file inside the rootfs ({e})"
                )));
            }
            Err(e) => return Err(InitProblem::Other(e)),
        };
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, empty path with AT_EMPTY_PATH, valid stat buffer.
        let r =
            unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
        check(r).map_err(InitProblem::Other)?;
        let resolved_host = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(InitProblem::Other)?;
        // Against the rootfs as the kernel names it: `self.rootfs` may be
        // relative, or reach the rootfs through a symlink.
        let root_host = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            self.root_fd().map_err(InitProblem::Other)?
        ))
        .map_err(InitProblem::Other)?;
        let resolved = match resolved_host.strip_prefix(&root_host) {
            Ok(r) => format!("/{}", r.display()),
            Err(_) => resolved_host.display().to_string(),
        };
        if mode_type(st.st_mode) != libc::S_IFREG {
            return Err(InitProblem::NotExecutable(format!(
                "{path} resolves to {resolved}, which is not a regular file"
            )));
        }
        if st.st_mode & 0o111 == 0 {
            return Err(InitProblem::NotExecutable(format!(
                "{path} resolves to {resolved}, which has no execute permission"
            )));
        }
        let is_systemd = Path::new(&resolved)
            .file_name()
            .is_some_and(|n| n == OsStr::new("systemd"));
        Ok(InitInfo {
            resolved,
            is_systemd,
        })
    }

    fn spawn(&mut self, namespaces: &[Namespace]) -> io::Result<Spawned> {
        let mut flags = libc::CLONE_PIDFD as u64;
        for ns in namespaces {
            flags |= match ns {
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
        if let Some(dir) = &self.join_v2_dir {
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
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
            r = clone(&args);
        }
        let pid = check_long(r).map_err(|e| with_context(e, "clone3"))?;
        self.joined_v2_at_clone = args.flags & CLONE_INTO_CGROUP != 0;
        if pid == 0 {
            // SAFETY: prctl with plain integer arguments.
            unsafe { libc::prctl(PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            return Ok(Spawned::Child);
        }
        // The host has no use for them: only the child joins.
        self.join_tasks.clear();
        self.join_v2_dir = None;
        self.join_v2_procs = None;
        // SAFETY: CLONE_PIDFD stored a new fd that nothing else owns.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
        Ok(Spawned::Parent {
            pid: pid as i32,
            pidfd,
        })
    }

    fn prepare_cgroup_join(&mut self, v1: &[PathBuf], v2: Option<&Path>) -> io::Result<()> {
        let open = |path: &Path, flags: libc::c_int| -> io::Result<OwnedFd> {
            let c = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: open with a valid C string; the fd is ours.
            let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
            check(fd).map_err(|e| with_context(e, path.display()))?;
            // SAFETY: a new fd nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        for dir in v1 {
            let tasks = dir.join("tasks");
            let fd = open(&tasks, libc::O_WRONLY)?;
            self.join_tasks.push((tasks, fd));
        }
        if let Some(dir) = v2 {
            self.join_v2_dir = Some(open(dir, libc::O_RDONLY | libc::O_DIRECTORY)?);
            let procs = dir.join("cgroup.procs");
            let fd = open(&procs, libc::O_WRONLY)?;
            self.join_v2_procs = Some((procs, fd));
        }
        Ok(())
    }

    fn take_cgroup_join(&mut self) -> Vec<(PathBuf, OwnedFd)> {
        std::mem::take(&mut self.join_tasks)
    }

    fn adopt_cgroup_join(&mut self, tasks: Vec<(PathBuf, OwnedFd)>) {
        self.join_tasks.extend(tasks);
    }

    fn join_cgroups(&mut self) -> io::Result<CgroupJoin> {
        let write_zero = |path: &Path, fd: &OwnedFd| -> io::Result<()> {
            // SAFETY: writing one byte from a static buffer to our fd.
            let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            check_long(n as libc::c_long)
                .map(drop)
                .map_err(|e| with_context(e, format!("writing 0 to {}", path.display())))
        };
        let mut joined = CgroupJoin::default();
        for (path, fd) in std::mem::take(&mut self.join_tasks) {
            write_zero(&path, &fd)?;
            joined.v1 += 1;
        }
        self.join_v2_dir = None;
        if let Some((path, fd)) = self.join_v2_procs.take() {
            if self.joined_v2_at_clone {
                joined.v2_at_clone = true;
            } else {
                write_zero(&path, &fd)?;
                joined.v2_by_write = true;
            }
        }
        Ok(joined)
    }

    fn read_host_file(&mut self, path: &Path) -> io::Result<String> {
        use std::io::Read;
        // /proc and cgroupfs files say they are empty (size 0): with room
        // for a page up front, one read gets them (not probes of 32 bytes,
        // then 64, 128, ... as for a file of unknown size).
        // (Plain reads: `read_to_string` would also stat and seek first.)
        let read = || -> io::Result<String> {
            let mut f = std::fs::File::open(path)?;
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

    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| with_context(e, path.display()))?;
        f.write_all(value.as_bytes())
            .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))
    }

    fn write_host_file_each(&mut self, path: &Path, values: &[String]) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| with_context(e, path.display()))?;
        for value in values {
            f.write_all(value.as_bytes())
                .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))?;
        }
        Ok(())
    }

    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool> {
        match std::fs::create_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(with_context(e, format!("mkdir {}", path.display()))),
        }
    }

    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path).map_err(|e| with_context(e, format!("rmdir {}", path.display())))
    }

    fn host_subdirs(&mut self, path: &Path) -> io::Result<Vec<String>> {
        let rd = std::fs::read_dir(path).map_err(|e| with_context(e, path.display()))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn list_host_dir(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
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

    fn open_netns(&mut self, pid: i32) -> io::Result<OwnedFd> {
        let f = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| with_context(e, format!("the network namespace of {pid}")))?;
        Ok(OwnedFd::from(f))
    }

    fn create_nic(&mut self, spec: &crate::net::NicSpec<'_>) -> io::Result<crate::net::CreatedNic> {
        crate::net::create_nic(spec).map_err(net_error)
    }

    fn remove_nic(
        &mut self,
        nic: &crate::net::CreatedNic,
        netns: std::os::fd::BorrowedFd<'_>,
        in_container_name: &str,
    ) -> io::Result<()> {
        crate::net::remove_nic(nic, netns, in_container_name).map_err(net_error)
    }

    fn make_mounts_slave(&mut self) -> io::Result<()> {
        let none = c"none".to_owned();
        let root = c"/".to_owned();
        Self::raw_mount(&none, &root, None, libc::MS_SLAVE | libc::MS_REC, None)
            .map_err(|e| with_context(e, "making / a slave mount"))
    }

    fn bind_rootfs(&mut self) -> io::Result<()> {
        // By path: an fd opened before the clone belongs to the host's mount
        // namespace, and a bind from another namespace is refused.
        let c = cstr(self.rootfs.as_os_str().as_bytes())?;
        Self::raw_mount(&c, &c, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| with_context(e, "binding the rootfs onto itself"))?;
        // Re-open: later paths resolve in the new mount.
        self.open_rootfs(&self.rootfs.clone())
    }

    fn unshare_cgroup_namespace(&mut self) -> io::Result<()> {
        // SAFETY: unshare with a namespace flag.
        check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }).map(|_| ())
    }

    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        // SAFETY: pointer and length of a valid buffer.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(|_| ())
    }

    fn make_dir_all(&mut self, path: &ContainerPath, mode: u32) -> io::Result<()> {
        self.ensure_dir(path, mode).map(drop)
    }

    fn make_placeholder(&mut self, path: &ContainerPath) -> io::Result<()> {
        self.make_dir_all(&path.parent(), 0o755)?;
        let (dir, name) = self.parent_of(path)?;
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

    fn mount_fs(
        &mut self,
        fstype: &str,
        target: &ContainerPath,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let t = self.dir(target)?;
        self.mounts_changed();
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
        Self::raw_mount(&src, &fd_path(&t), Some(&src), f, data.as_ref())
            .map_err(|e| with_context(e, format!("mount {fstype} on {target}")))
    }

    fn bind_self(&mut self, target: &ContainerPath) -> io::Result<()> {
        let t = self.open_in_root(target, libc::O_PATH)?;
        let tree = Self::open_tree(
            t.as_raw_fd(),
            &c"".to_owned(),
            OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(|e| with_context(e, format!("open_tree {target}")))?;
        self.move_onto(&tree, target)
    }

    fn bind_host(
        &mut self,
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
        let tree = Self::open_tree(libc::AT_FDCWD, &src, flags)
            .map_err(|e| with_context(e, format!("open_tree {source}")))?;
        if readonly {
            Self::setattr_readonly(&tree, recursive)
                .map_err(|e| with_context(e, format!("read-only {source}")))?;
        }
        self.move_onto(&tree, target)
    }

    fn bind_inside(&mut self, source: &ContainerPath, target: &ContainerPath) -> io::Result<()> {
        let s = self.open_in_root(source, libc::O_PATH)?;
        let tree = Self::open_tree(
            s.as_raw_fd(),
            &c"".to_owned(),
            OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(|e| with_context(e, format!("open_tree {source}")))?;
        self.move_onto(&tree, target)
    }

    fn host_path_state(&mut self, path: &HostPath) -> io::Result<HostPathState> {
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

    fn host_device(&mut self, path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>> {
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

    fn mknod(
        &mut self,
        path: &ContainerPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.make_dir_all(&path.parent(), 0o755)?;
        let (dir, name) = self.parent_of(path)?;
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

    fn chown(&mut self, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
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

    fn symlink(&mut self, target: &str, path: &ContainerPath) -> io::Result<()> {
        self.make_dir_all(&path.parent(), 0o755)?;
        let (dir, name) = self.parent_of(path)?;
        let t = cstr(target.as_bytes())?;
        // SAFETY: valid C strings and fd.
        let r = unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) };
        check(r)
            .map(|_| ())
            .map_err(|e| with_context(e, format!("symlink {path}")))
    }

    fn unlink(&mut self, path: &ContainerPath) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        // SAFETY: valid fd and C string.
        let r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        check(r)
            .map(|_| ())
            .map_err(|e| with_context(e, format!("unlink {path}")))
    }

    fn make_console(&mut self, ptmx: &ContainerPath, console: &ContainerPath) -> io::Result<()> {
        let master = self.open_in_root(ptmx, libc::O_RDWR | libc::O_NOCTTY)?;
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
        self.make_placeholder(console)?;
        let tree = Self::open_tree(
            slave.as_raw_fd(),
            &c"".to_owned(),
            OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(|e| with_context(e, "open_tree of the console pty"))?;
        self.move_onto(&tree, console)?;
        self.console_master = Some(master);
        self.console_slave = Some(slave);
        Ok(())
    }

    fn make_socket(&mut self, path: &ContainerPath, kind: SocketKind, mode: u32) -> io::Result<()> {
        self.make_dir_all(&path.parent(), 0o755)?;
        let (dir, name) = self.parent_of(path)?;
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
            self.guest_socket = Some(sock);
        } else {
            self.log_socket = Some(sock);
        }
        Ok(())
    }

    fn set_readonly(&mut self, target: &ContainerPath, recursive: bool) -> io::Result<()> {
        let t = self.open_in_root(target, libc::O_PATH)?;
        self.mounts_changed();
        Self::setattr_readonly(&t, recursive)
            .map_err(|e| with_context(e, format!("read-only {target}")))
    }

    fn loopback_up(&mut self) -> io::Result<()> {
        // SAFETY: a plain socket for the interface ioctls.
        let s = check(unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: a new fd nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: a zeroed ifreq is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS fills the ifreq.
        check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: reading and writing the flags member of the union.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads the ifreq.
        check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(|_| ())
    }

    fn configure_nic(
        &mut self,
        name: &str,
        ipv4: Option<(std::net::Ipv4Addr, u8)>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> io::Result<()> {
        crate::net::configure_nic(name, name, ipv4, gateway).map_err(net_error)
    }

    fn pivot_root(&mut self) -> io::Result<()> {
        self.mounts_changed();
        let root = self
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

    fn take_handoff(&mut self) -> Handoff {
        Handoff {
            console: self.console_master.take(),
            log: self.log_socket.take(),
            guest_api: self.guest_socket.take(),
        }
    }

    fn exec_init(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Result<()> {
        Err(self.exec_init_inner(command, env, drop_caps))
    }
}

impl LinuxKernel {
    fn exec_init_inner(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Error {
        let argv: Vec<CString> = match command.iter().map(|a| cstr(a.as_bytes())).collect() {
            Ok(v) => v,
            Err(e) => return e,
        };
        let envp: Vec<CString> = match env.iter().map(|a| cstr(a.as_bytes())).collect() {
            Ok(v) => v,
            Err(e) => return e,
        };
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
        envp_p.push(std::ptr::null());
        let console = self.console_slave.take();
        // SAFETY: plain system calls on our own process; pointers are valid
        // C strings and null-terminated arrays that outlive the exec.
        unsafe {
            // Signals: default dispositions and nothing blocked, whatever
            // envc's own caller left behind (SIG_IGN survives exec). The raw
            // system call: glibc's signal() refuses its internal signals 32
            // and 33 (EINVAL), which would keep an inherited SIG_IGN there.
            let dfl = KernelSigaction {
                handler: libc::SIG_DFL,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &dfl as *const KernelSigaction,
                        std::ptr::null_mut::<KernelSigaction>(),
                        8usize,
                    );
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if libc::setsid() < 0 {
                return with_context(io::Error::last_os_error(), "setsid");
            }
            if let Some(c) = &console {
                let fd = c.as_raw_fd();
                if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                    return with_context(io::Error::last_os_error(), "TIOCSCTTY");
                }
                for target in 0..3 {
                    if libc::dup2(fd, target) < 0 {
                        return with_context(io::Error::last_os_error(), "dup2");
                    }
                }
            }
            drop(console);
            for cap in drop_caps {
                if libc::prctl(PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) < 0 {
                    return with_context(
                        io::Error::last_os_error(),
                        format!("dropping capability {cap}"),
                    );
                }
            }
            libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
            let mut hdr = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            if libc::syscall(
                libc::SYS_capget,
                &mut hdr as *mut CapHeader,
                data.as_mut_ptr(),
            ) < 0
            {
                return with_context(io::Error::last_os_error(), "capget");
            }
            for cap in drop_caps {
                let (i, bit) = ((*cap / 32) as usize, 1u32 << (cap % 32));
                if i < 2 {
                    data[i].effective &= !bit;
                    data[i].permitted &= !bit;
                    data[i].inheritable &= !bit;
                }
            }
            if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) < 0 {
                return with_context(io::Error::last_os_error(), "capset");
            }
            if libc::chdir(c"/".as_ptr()) < 0 {
                return with_context(io::Error::last_os_error(), "chdir /");
            }
            // Every fd above 2 is closed by the exec itself (close-on-exec),
            // so the supervisor's channel stays usable to report a failure.
            if libc::close_range(3, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC as libc::c_int) < 0 {
                return with_context(io::Error::last_os_error(), "close_range");
            }
            libc::execve(argv_p[0], argv_p.as_ptr(), envp_p.as_ptr());
        }
        let e = io::Error::last_os_error();
        with_context(e, format!("exec {}", command[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inspect_dir` (the rootfs checks before anything is mounted): empty,
    /// not empty (however many entries, whatever their names' length), made
    /// when asked, refused through a symlink. No root needed.
    #[test]
    fn inspect_dir_tells_empty_from_not_empty() {
        let root = std::env::temp_dir().join(format!("envc-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["empty", "one", "many", "long"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("one/x"), "").unwrap();
        for i in 0..200 {
            std::fs::write(root.join(format!("many/{i}")), "").unwrap();
        }
        std::fs::write(root.join("long").join("n".repeat(255)), "").unwrap();
        std::os::unix::fs::symlink("/", root.join("link")).unwrap();
        let mut k = LinuxKernel::new();
        k.open_rootfs(&root).unwrap();
        let p = |s: &str| ContainerPath::new(s).unwrap();
        let state = |k: &mut LinuxKernel, s: &str, create: bool| match k.inspect_dir(&p(s), create)
        {
            Ok(DirState::Empty) => "empty",
            Ok(DirState::NotEmpty) => "not empty",
            Ok(DirState::Created) => "created",
            Err(_) => "error",
        };
        assert_eq!(state(&mut k, "/empty", false), "empty");
        assert_eq!(state(&mut k, "/one", false), "not empty");
        assert_eq!(state(&mut k, "/many", false), "not empty");
        assert_eq!(state(&mut k, "/long", false), "not empty");
        assert_eq!(state(&mut k, "/link", false), "error");
        assert_eq!(state(&mut k, "/missing", false), "error");
        assert_eq!(state(&mut k, "/missing", true), "created");
        assert_eq!(state(&mut k, "/missing", false), "empty");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
