//! The supervisor's own system calls: signals, the terminal, poll, waiting
//! for and signalling the container's first process, locks, the detached
//! supervisor's fork. With `exec::linux` (the container steps), `devlxd::sys`
//! (the guest API's peer checks), `exec::channel` (fd passing) and
//! `net::rtnl` (netlink sockets in a namespace), this is the kernel layer:
//! the only code with `unsafe`. Everything here is safe to call.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The longest path `bind(2)`/`connect(2)` take for a unix socket (the
/// size of `sockaddr_un.sun_path`, less its terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// Runs `f` on a name for `path` short enough for a unix socket address:
/// `path` itself when it fits, else `/proc/self/fd/N/FILE` through an
/// `O_PATH` descriptor of its directory (a run directory deep in a build
/// tree or a long `ENVC_RUN_DIR` is still usable).
fn with_socket_name<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return f(path);
    }
    let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let mut short = std::ffi::OsString::from(format!("/proc/self/fd/{}/", dir.as_raw_fd()));
    short.push(file);
    if short.as_bytes().len() > SUN_PATH_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket name too long: {}", path.display()),
        ));
    }
    f(Path::new(&short))
}

/// Binds a listening unix socket at `path`, however long the path.
pub fn bind_unix(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    with_socket_name(path, |p| std::os::unix::net::UnixListener::bind(p))
}

/// Connects to the unix socket at `path`, however long the path.
pub fn connect_unix(path: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    with_socket_name(path, |p| std::os::unix::net::UnixStream::connect(p))
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a valid array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two new fds nothing else owns.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Which side of a fork this is.
pub enum Forked {
    Child,
    Parent(i32),
}

/// The number of threads of this process (from `/proc/self/status`).
fn threads() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `fork(2)`, refused unless this process is single-threaded (a child forked
/// from several threads may find a lock held by a thread it does not have).
pub fn fork_single_threaded() -> io::Result<Forked> {
    // Without /proc the count is unknown; envc starts no thread before this.
    if threads().is_some_and(|n| n != 1) {
        return Err(io::Error::other(
            "fork refused: envc is not single-threaded",
        ));
    }
    // SAFETY: one thread (checked above): the child continues this program
    // with every lock free.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// In a freshly forked detached supervisor: a session of its own, stdin and
/// stdout on `/dev/null`, stderr appended to `log` (else `/dev/null`), and no
/// fd of the caller's kept open but 0–2 and `keep`.
pub fn detach(log: &Path, keep: RawFd) {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(log)
        .ok();
    // Raw from here: one of them may itself have landed on 0, 1 or 2 (when
    // envc was started with that fd closed), and must then stay open.
    let null = null.map_or(-1, IntoRawFd::into_raw_fd);
    let log = log.map_or(-1, IntoRawFd::into_raw_fd);
    // SAFETY: plain calls on this process's own fds.
    unsafe {
        libc::setsid();
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
        }
        let err = if log >= 0 { log } else { null };
        if err >= 0 {
            libc::dup2(err, 2);
        }
        for fd in [null, log] {
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    let keep = keep as libc::c_uint;
    // SAFETY: closing fds this process owns and will not use again.
    unsafe {
        if keep > 3 {
            libc::close_range(3, keep - 1, 0);
        }
        libc::close_range(keep + 1, libc::c_uint::MAX, 0);
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl WaitStatus {
    pub fn exit_code(self) -> Option<i32> {
        libc::WIFEXITED(self.0).then(|| libc::WEXITSTATUS(self.0))
    }
    pub fn signal(self) -> Option<i32> {
        libc::WIFSIGNALED(self.0).then(|| libc::WTERMSIG(self.0))
    }
}

/// Waits for child `pid` (retrying on EINTR).
pub fn wait(pid: i32) -> io::Result<WaitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for a child of ours into a local int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(WaitStatus(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The status of child `pid` if it has ended (it is reaped then).
pub fn try_wait(pid: i32) -> Option<WaitStatus> {
    let mut status = 0;
    // SAFETY: a non-blocking wait for a child of ours into a local int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(WaitStatus(status))
}

/// Sends `sig` to a child of ours: by pidfd when there is one (no PID reuse
/// race), else by PID.
pub fn signal_child(pid: i32, pidfd: Option<BorrowedFd<'_>>, sig: i32) {
    // SAFETY: plain integer arguments; a null siginfo is allowed.
    unsafe {
        match pidfd {
            Some(fd) => {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
            None => {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Leaves this process at once, without running destructors or atexit
/// handlers (a forked child that must not touch its parent's state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Takes an exclusive `flock` without waiting; false if another holds it.
pub fn try_lock(f: &File) -> io::Result<bool> {
    // SAFETY: flock on a file we hold.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Blocks `signals` and returns a non-blocking signalfd for them, with the
/// mask to restore.
pub fn signalfd_for(signals: &[i32]) -> io::Result<(OwnedFd, libc::sigset_t)> {
    // SAFETY: sigset manipulation on local sets; signalfd returns a new fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        check(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old))?;
        let fd = check(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok((OwnedFd::from_raw_fd(fd), old))
    }
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

/// Every signal to its default disposition and nothing blocked, whatever
/// envc's own caller left behind (`SIG_IGN` survives exec): for a process
/// about to exec into a container. The raw system call: glibc's
/// `signal()` refuses its internal signals 32 and 33 (EINVAL), which would
/// keep an inherited `SIG_IGN` there.
pub fn reset_signals() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a valid struct and a null old action;
    // sigprocmask with an empty local set.
    unsafe {
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
    }
}

/// Restores a signal mask saved by [`signalfd_for`].
pub fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: restoring a mask the kernel gave us.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// The next signal number waiting on a signalfd, if any.
pub fn read_signal(fd: BorrowedFd<'_>) -> Option<u32> {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    let n = read(fd.as_raw_fd(), &mut info).ok()?;
    if n < info.len() {
        return None;
    }
    // SAFETY: the kernel wrote a whole signalfd_siginfo.
    let si: libc::signalfd_siginfo = unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
    Some(si.ssi_signo)
}

/// `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a live buffer of that length.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `write(2)` from `data`.
pub fn write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: writing from a live buffer of that length.
    let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Sets `O_NONBLOCK` on an fd.
pub fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd the caller holds.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// `poll(2)` on a set the caller built (an fd of -1 is ignored).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a live array of pollfd of that length.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check(r).map(|n| n as usize)
}

/// The terminal size of `fd`, if it is a terminal that has one.
pub fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: TIOCGWINSZ into a zeroed winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

/// Sets the terminal size of `fd`.
pub fn set_window_size(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ from a valid winsize.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}

/// The terminal on stdin in raw mode; restored on drop.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// `None` when stdin is not a terminal.
    pub fn enter() -> Option<RawTerminal> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a valid termios.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawTerminal { saved })
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restoring the settings saved above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// Sends `fd` over the unix socket `sock` (one byte and `SCM_RIGHTS`).
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let fds = [fd];
    sendmsg::<()>(
        sock,
        &[io::IoSlice::new(b"t")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The fd sent over `sock` by [`send_fd`]; `None` when the peer closed
/// the socket without sending one.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut received = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed these fds for us alone.
            received.extend(fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok(received.pop())
}

/// The name of the sealed copy [`exec_self_from`] runs from.
const SEALED_COPY: &str = "envc-sealed-copy";

/// Whether this process runs from a sealed in-memory copy of envc.
pub fn running_from_sealed_copy() -> bool {
    std::fs::read_link("/proc/self/exe").is_ok_and(|p| {
        p.to_string_lossy()
            .starts_with(&format!("/memfd:{SEALED_COPY}"))
    })
}

/// A sealed in-memory copy of envc's binary: it can never be written,
/// grown or shrunk, nor its seals taken off.
pub fn sealed_copy_of_self() -> io::Result<File> {
    use std::ffi::CString;
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = CString::new(SEALED_COPY).expect("no NUL");
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid name; the result is checked.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // Kernels before 6.3 know no MFD_EXEC (their memfds are executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    check(fd)?;
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let mut copy = unsafe { File::from_raw_fd(fd) };
    io::copy(&mut File::open("/proc/self/exe")?, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on the memfd we own.
    check(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) })?;
    Ok(copy)
}

/// Runs envc again, same arguments and environment, from `copy` (see
/// [`sealed_copy_of_self`]): what a process in a privileged container
/// finds behind `/proc/PID/exe` of it is then that copy, never the host's
/// file. Returns only on failure.
pub fn exec_self_from(copy: &File) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let argv: Option<Vec<CString>> = std::env::args_os().map(|a| to_c(&a)).collect();
    let envp: Option<Vec<CString>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(&kv)
        })
        .collect();
    let (Some(argv), Some(envp)) = (argv, envp) else {
        return io::Error::other("an argument holds a NUL byte");
    };
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: fexecve with our memfd and null-terminated arrays of valid C strings.
    unsafe { libc::fexecve(copy.as_raw_fd(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}
