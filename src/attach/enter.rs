//! The way into the container, from envc's fork to the command's exec, in
//! two processes. The first (forked on the host) joins the container's
//! cgroup and, with the pidfd of PID 1, every namespace at once; narrows
//! its capabilities to PID 1's bounding set; works out the user, home and
//! environment from the container's files; sets up fds 0–2 (the caller's,
//! pipes, or a pty from the container's own devpts, whose master goes to
//! envc); and closes every other fd, inherited ones included. Only then
//! does it fork the second, in the container's PID namespace: a process
//! the guest can see is wholly inside and holds nothing of the host's.
//! The second loads PID 1's syscall filter, becomes the user, enters the
//! working directory and execs the command found on the container's
//! `PATH`. The first, which the guest cannot see (it is not in the PID
//! namespace), passes envc's signals on and exits with the command's
//! status. Neither is dumpable (a guest can't
//! open their `/proc/PID/exe`, fds or memory).

#![allow(unsafe_code)]

use super::environment::{self, Identity, PASSWD_LIMIT, Request};
use super::target::Target;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// What the child is to do.
pub struct Entry<'a> {
    pub target: &'a Target,
    pub request: Request<'a>,
    /// Init's environment, the exec's starting point.
    pub init_env: &'a [String],
    /// The commands to try in order: the first found runs (`envc shell`
    /// falls back from `su -l` to `sh -l`).
    pub commands: &'a [Vec<String>],
    /// Make a terminal and send its master over this socket; its size.
    pub terminal: Option<(RawFd, Option<libc::winsize>)>,
    /// Pipes standing in for envc's own terminal fds (the child's end, for
    /// fd 0, 1, 2): a container never gets a terminal of the host's.
    pub stdio: [Option<RawFd>; 3],
}

/// Why the child stopped before the exec: its exit status and message.
struct Stop(i32, String);

fn os(what: impl std::fmt::Display) -> Stop {
    Stop(125, format!("{what}: {}", io::Error::last_os_error()))
}

/// Runs in the child envc forked; never returns: exits with the
/// command's status (`128+N` when it died of signal N), or 125/126/127
/// when it could not be started, having said why on stderr.
pub fn enter_and_exec(e: &Entry<'_>) -> ! {
    let Err(Stop(code, message)) = join(e);
    eprintln!("envc exec: {message}");
    crate::sys::exit_now(code)
}

/// The first process: joins, sets up 0–2, forks the command's process and
/// waits for it.
fn join(e: &Entry<'_>) -> Result<std::convert::Infallible, Stop> {
    // SAFETY: prctl on our own process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    for f in &e.target.cgroup_procs {
        // SAFETY: writing one byte from a static buffer to an fd we hold.
        if unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) } < 0 {
            return Err(os("joining the container's cgroup"));
        }
    }
    let pidfd = e.target.pidfd.as_raw_fd();
    // SAFETY: setns with a pidfd we hold; the flags name namespaces only.
    if e.target.namespaces != 0 && unsafe { libc::setns(pidfd, e.target.namespaces) } < 0 {
        return Err(os("joining the container's namespaces"));
    }
    narrow_capabilities(e.target.bounding);
    // Done with what we joined by: nothing of the host's is open while we
    // look at the container's files.
    // SAFETY: closing fds of ours that nothing uses after this.
    unsafe {
        libc::close(pidfd);
        for f in &e.target.cgroup_procs {
            libc::close(f.as_raw_fd());
        }
    }
    // The container's root from here on (in its user namespace, our host
    // ids mean nothing): what we make inside, the pty, is its.
    become_user(&Identity {
        uid: 0,
        gid: 0,
        cwd: String::new(),
        env: Vec::new(),
    })?;
    let passwd = read_passwd();
    let entry = environment::passwd_entry(&passwd, e.request.user.uid);
    let id = environment::identity(&e.request, e.init_env, entry.as_ref());
    match e.terminal {
        Some((sock, size)) => take_terminal(sock, size, id.uid)?,
        None => {
            for (target, fd) in e.stdio.iter().enumerate() {
                // SAFETY: dup2 of an fd we hold onto 0–2.
                if let Some(fd) = fd
                    && unsafe { libc::dup2(*fd, target as RawFd) } < 0
                {
                    return Err(os("dup2"));
                }
            }
        }
    }
    // SAFETY: closing every fd above 2: ours (the terminal's socket, the
    // pipes' other copies) and whatever envc's caller left open; nothing
    // of them is used after.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    // SAFETY: this process is single-threaded.
    match unsafe { libc::fork() } {
        // A PID namespace whose init is gone takes no new process.
        -1 if io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM) => {
            Err(Stop(125, format!("`{}` has stopped", e.target.info.name)))
        }
        -1 => Err(os("starting the command's process")),
        0 => enter(e, &id),
        pid => crate::sys::exit_now(wait_passing_signals(pid)),
    }
}

/// In the first process, once the command's runs: passes SIGINT, SIGTERM
/// and SIGHUP on to it (envc sends them here; they are blocked, as envc
/// blocked them before the fork) and returns its status.
fn wait_passing_signals(pid: libc::pid_t) -> i32 {
    // Nothing here writes to the command's fds: the terminal ends when
    // the command (and what it started) closes it.
    // SAFETY: closing our own copies of 0–2.
    unsafe {
        for fd in 0..3 {
            libc::close(fd);
        }
    }
    let Ok((sigfd, _)) = crate::sys::signalfd_for(&super::relay::FORWARDED_AND_CHLD) else {
        return crate::sys::wait(pid).map_or(125, status_code);
    };
    loop {
        let mut pfd = [libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let _ = crate::sys::poll(&mut pfd, -1);
        while let Some(sig) = crate::sys::read_signal(std::os::fd::AsFd::as_fd(&sigfd)) {
            if sig as i32 != libc::SIGCHLD {
                crate::sys::signal_child(pid, None, sig as i32);
            }
        }
        if let Some(st) = crate::sys::try_wait(pid) {
            return status_code(st);
        }
    }
}

/// An exit status as a shell gives it: the code, or `128+N` for signal N.
pub fn status_code(st: crate::sys::WaitStatus) -> i32 {
    match (st.exit_code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    }
}

/// The second process, inside the PID namespace: becomes the user, a
/// session of its own (with the terminal as its controlling one), and
/// execs the command.
fn enter(e: &Entry<'_>, id: &Identity) -> Result<std::convert::Infallible, Stop> {
    crate::sys::reset_signals();
    // PID 1's syscall filter, loaded while we are still the container's
    // root (as liblxc does for an attached process): no `no_new_privs`, so
    // a setuid program the command runs keeps working.
    if let Some(f) = &e.target.info.seccomp {
        crate::seccomp::install(f).map_err(|err| Stop(125, format!("{err}")))?;
    }
    become_user(id)?;
    if let Err(err) = std::env::set_current_dir(&id.cwd) {
        if e.request.cwd.is_some() {
            return Err(Stop(125, format!("cannot enter {}: {err}", id.cwd)));
        }
        // A home that isn't there: start in `/`, as a login would.
        let _ = std::env::set_current_dir("/");
    }
    // SAFETY: setsid, then (with a terminal) fd 0 as controlling terminal.
    unsafe {
        libc::setsid();
        if e.terminal.is_some() && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(os("TIOCSCTTY"));
        }
    }
    Err(exec_first_found(e.commands, &id.env))
}

/// The container's `/etc/passwd`, read as the container's root would (we
/// are in its mount namespace and root): a regular file only (a FIFO would
/// block), at most `PASSWD_LIMIT` bytes; empty when there is none.
fn read_passwd() -> String {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open("/etc/passwd")
    else {
        return String::new();
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(PASSWD_LIMIT).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// PID 1's bounding set, no ambient capabilities. What the exec'd command
/// may hold follows from these (a root command gets the bounding set).
fn narrow_capabilities(bounding: u64) {
    for cap in 0..64u32 {
        if bounding & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments; caps above the
            // kernel's last one fail with EINVAL, which is what we want.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

/// No supplementary groups, then the group, then the user (inside the
/// container's user namespace these are its ids).
fn become_user(id: &Identity) -> Result<(), Stop> {
    let unmapped = |what: &str, n: u32| {
        Stop(
            125,
            format!(
                "cannot become {what} {n}: {} (is it mapped in the container?)",
                io::Error::last_os_error()
            ),
        )
    };
    // SAFETY: setgroups with an empty list; setres[ug]id with plain ids.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) < 0 {
            return Err(os("setgroups"));
        }
        if libc::setresgid(id.gid, id.gid, id.gid) < 0 {
            return Err(unmapped("group", id.gid));
        }
        if libc::setresuid(id.uid, id.uid, id.uid) < 0 {
            return Err(unmapped("user", id.uid));
        }
    }
    Ok(())
}

/// A pty from the container's own devpts (`/dev/ptmx` inside): its
/// master goes to envc over `sock`, its slave (owned by the user `uid`)
/// becomes fds 0–2.
fn take_terminal(sock: RawFd, size: Option<libc::winsize>, uid: u32) -> Result<(), Stop> {
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/ptmx")
        .map_err(|e| Stop(125, format!("the container's /dev/ptmx: {e}")))?;
    let m = master.as_raw_fd();
    let mut n: libc::c_int = 0;
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the fd we just opened, with valid pointers.
    let slave = unsafe {
        if libc::ioctl(m, libc::TIOCGPTN, &mut n) < 0 {
            return Err(Stop(125, "the container's /dev/ptmx is not a pty".into()));
        }
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(os("unlocking the pty"));
        }
        let s = libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if s < 0 {
            return Err(os("opening the pty's slave"));
        }
        OwnedFd::from_raw_fd(s)
    };
    let s = slave.as_raw_fd();
    // SAFETY: fchown of the slave we hold to the user (its group stays the
    // devpts mount's, tty).
    if unsafe { libc::fchown(s, uid, u32::MAX) } < 0 {
        return Err(os("giving the terminal to the user"));
    }
    if let Some(ws) = size {
        crate::sys::set_window_size(s, &ws);
    }
    crate::sys::send_fd(sock, m).map_err(|e| Stop(125, format!("passing the terminal: {e}")))?;
    drop(master);
    for target in 0..3 {
        // SAFETY: dup2 of the slave we hold onto 0–2.
        if unsafe { libc::dup2(s, target) } < 0 {
            return Err(os("dup2"));
        }
    }
    Ok(())
}

/// Execs the first of `commands` found (on `PATH` from `env` when its
/// name has no `/`); returns why none ran: 127 not found, 126 found but
/// not executable.
fn exec_first_found(commands: &[Vec<String>], env: &[String]) -> Stop {
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(environment::DEFAULT_PATH);
    let Ok(envp) = env
        .iter()
        .map(|e| CString::new(e.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Stop(125, "an environment entry holds a NUL byte".into());
    };
    let mut last = Stop(127, "no command".into());
    for command in commands {
        let Ok(argv) = command
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Stop(125, "an argument holds a NUL byte".into());
        };
        let candidates: Vec<String> = if command[0].contains('/') {
            vec![command[0].clone()]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| format!("{d}/{}", command[0]))
                .collect()
        };
        let mut denied = None;
        for c in candidates {
            let Ok(file) = CString::new(c.as_str()) else {
                continue;
            };
            let err = execve(&file, &argv, &envp);
            match err.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
                _ => denied = denied.or(Some(err)),
            }
        }
        last = match denied {
            Some(err) => Stop(126, format!("{}: {err}", command[0])),
            None => Stop(127, format!("{}: command not found", command[0])),
        };
    }
    last
}

/// `execve(2)`; returns only on failure.
fn execve(file: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: valid C strings and null-terminated arrays that outlive the call.
    unsafe { libc::execve(file.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}
