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
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
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
    join_v2_dir: Option<(PathBuf, OwnedFd)>,
    join_v2_procs: Option<(PathBuf, OwnedFd)>,
    /// The clone put the child in the cgroup2 directory.
    joined_v2_at_clone: bool,
    /// Directories resolved since the last mount (see [`LinuxKernel::dir`]).
    dirs: std::cell::RefCell<Vec<(ContainerPath, std::rc::Rc<OwnedFd>)>>,
    /// See [`Kernel::host_base`]: host paths under this directory resolve
    /// from its fd.
    host_base: Option<(PathBuf, OwnedFd)>,
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
        }
    }

    /// Where the `*at` calls find a host path: from the host base if the
    /// path is under it, else as it is (from `/` or the working directory).
    fn host_at(&self, path: &Path) -> io::Result<(libc::c_int, CString)> {
        if let Some((base, fd)) = &self.host_base
            && let Ok(rest) = path.strip_prefix(base)
            && !rest.as_os_str().is_empty()
        {
            return Ok((fd.as_raw_fd(), cstr(rest.as_os_str().as_bytes())?));
        }
        Ok((libc::AT_FDCWD, cstr(path.as_os_str().as_bytes())?))
    }

    /// Opens a host file (see [`LinuxKernel::host_at`]); `flags` gain
    /// `O_CLOEXEC`.
    fn open_host(&self, path: &Path, flags: libc::c_int) -> io::Result<std::fs::File> {
        let (dir, name) = self.host_at(path)?;
        // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
        check(fd)?;
        // SAFETY: a new fd nothing else owns.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn root_fd(&self) -> io::Result<RawFd> {
        self.root
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| io::Error::other("the rootfs is not open"))
    }

    /// Opens the rootfs directory (`O_PATH`); later container paths resolve
    /// from it. Paths kept from before resolve afresh.
    fn open_rootfs_dir(&self, rootfs: &Path) -> io::Result<OwnedFd> {
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
    fn open_in_root(&self, path: &ContainerPath, flags: i32) -> io::Result<OwnedFd> {
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
    fn dir(&self, path: &ContainerPath) -> io::Result<std::rc::Rc<OwnedFd>> {
        if let Some(fd) = self.kept_dir(path) {
            return Ok(fd);
        }
        match self.open_in_root_plain(path, libc::O_PATH | libc::O_DIRECTORY)? {
            (fd, true) => Ok(self.keep_dir(path, fd)),
            (fd, false) => Ok(std::rc::Rc::new(fd)),
        }
    }

    /// The directory `path` if it is kept (see [`LinuxKernel::dir`]).
    fn kept_dir(&self, path: &ContainerPath) -> Option<std::rc::Rc<OwnedFd>> {
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
    fn open_target(&self, target: &ContainerPath) -> io::Result<(OwnedFd, bool)> {
        self.open_in_root_plain(target, libc::O_PATH)
    }

    /// A mount is made at `target`. Paths at it and below it now resolve to
    /// the new mount; a kept directory elsewhere still is what its path
    /// resolves to, as both were reached without a symlink, component by
    /// component (and no mount of the container's propagates to another of
    /// its own: they are slaves of the host's or private). `plain`: the
    /// target was reached without a symlink too; if not, the mount may be
    /// anywhere, and nothing is kept.
    fn mounted_at(&self, target: &ContainerPath, plain: bool) {
        if plain {
            self.dirs
                .borrow_mut()
                .retain(|(p, _)| !p.starts_with(target));
        } else {
            self.mounts_changed();
        }
    }

    /// Mounts were made, moved or changed anywhere: paths are resolved afresh.
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
        if let Some(fd) = self.kept_dir(path) {
            return Ok(fd);
        }
        let name = path.components().last();
        // Under a kept directory: one component from it, made if missing.
        if let Some(name) = name
            && let Some(parent) = self.kept_dir(&path.parent())
        {
            let name = cstr(name.as_bytes())?;
            match Self::child_dir(&parent, &name) {
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
                Self::mkdir_in(&parent, &name, mode, path)?;
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
        Self::mkdir_in(parent, name, mode, path)?;
        let fd = Self::child_dir(parent, name).map_err(|e| with_context(e, path))?;
        Ok(self.keep_dir(path, fd))
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
    fn mkdir_in(
        parent: &OwnedFd,
        name: &CString,
        mode: u32,
        path: &ContainerPath,
    ) -> io::Result<()> {
        // SAFETY: valid fd and C string.
        let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
        match check(r) {
            Err(e) if errno(&e) != Some(libc::EEXIST) => {
                Err(with_context(e, format!("mkdir {path}")))
            }
            _ => Ok(()),
        }
    }

    /// Attaches a detached mount tree (from `open_tree`) onto `target`.
    fn move_onto(&self, tree: &OwnedFd, target: &ContainerPath) -> io::Result<()> {
        let (t, plain) = self.open_target(target)?;
        self.move_onto_fd(tree, &t, target, plain)
    }

    /// [`LinuxKernel::move_onto`] the target opened by [`LinuxKernel::open_target`].
    fn move_onto_fd(
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
        let fd = self.open_rootfs_dir(rootfs)?;
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
        // Against the rootfs as the kernel names it (`open_rootfs` read it so).
        let resolved = match resolved_host.strip_prefix(&self.rootfs) {
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
        if let Some((_, dir)) = &self.join_v2_dir {
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
            if let Some((path, dir)) = &self.join_v2_dir {
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
                self.join_v2_procs = Some((procs, unsafe { OwnedFd::from_raw_fd(fd) }));
            }
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
            r = clone(&args);
        }
        let pid = check_long(r).map_err(|e| with_context(e, "clone3"))?;
        self.joined_v2_at_clone = args.flags & CLONE_INTO_CGROUP != 0;
        if pid == 0 {
            // SAFETY: prctl with plain integer arguments.
            unsafe { libc::prctl(PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            // The host base is the supervisor's (see `Kernel::host_base`).
            self.host_base = None;
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
        let open = |k: &Self, path: &Path, flags: libc::c_int| -> io::Result<OwnedFd> {
            k.open_host(path, flags)
                .map(OwnedFd::from)
                .map_err(|e| with_context(e, path.display()))
        };
        for dir in v1 {
            let tasks = dir.join("tasks");
            let fd = open(self, &tasks, libc::O_WRONLY)?;
            self.join_tasks.push((tasks, fd));
        }
        if let Some(dir) = v2 {
            // Its `cgroup.procs` only if the clone cannot start the child in
            // it (see `spawn`).
            self.join_v2_dir = Some((
                dir.to_path_buf(),
                open(self, dir, libc::O_RDONLY | libc::O_DIRECTORY)?,
            ));
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
        let v2 = self.join_v2_dir.take().is_some();
        if v2 && self.joined_v2_at_clone {
            joined.v2_at_clone = true;
        } else if let Some((path, fd)) = self.join_v2_procs.take() {
            write_zero(&path, &fd)?;
            joined.v2_by_write = true;
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
            let mut f = self.open_host(path, libc::O_RDONLY)?;
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

    fn host_base(&mut self, dir: &Path) {
        let Ok(c) = cstr(dir.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: valid C string; the fd is ours.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: a new fd nothing else owns.
            self.host_base = Some((dir.to_path_buf(), unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }

    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write;
        let mut f = self
            .open_host(path, libc::O_WRONLY)
            .map_err(|e| with_context(e, path.display()))?;
        f.write_all(value.as_bytes())
            .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))
    }

    fn write_host_file_each(&mut self, path: &Path, values: &[String]) -> io::Result<()> {
        use std::io::Write;
        let mut f = self
            .open_host(path, libc::O_WRONLY)
            .map_err(|e| with_context(e, path.display()))?;
        for value in values {
            f.write_all(value.as_bytes())
                .map_err(|e| with_context(e, format!("writing {value:?} to {}", path.display())))?;
        }
        Ok(())
    }

    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool> {
        let (dir, name) = self.host_at(path)?;
        // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
        match check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o777) }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(with_context(e, format!("mkdir {}", path.display()))),
        }
    }

    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.host_at(path)?;
        // SAFETY: a valid directory fd (or AT_FDCWD) and C string.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
            .map_err(|e| with_context(e, format!("rmdir {}", path.display())))
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
        // Re-open: later paths resolve in the new mount (the same path,
        // already free of symlinks).
        self.root = Some(self.open_rootfs_dir(&self.rootfs)?);
        Ok(())
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
        let plain = self.kept_dir(target).is_some();
        self.mounted_at(target, plain);
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
        // One lookup for both ends: the copy goes where it was taken from.
        let (t, plain) = self.open_target(target)?;
        let tree = Self::open_tree(
            t.as_raw_fd(),
            &c"".to_owned(),
            OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(|e| with_context(e, format!("open_tree {target}")))?;
        self.move_onto_fd(&tree, &t, target, plain)
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
