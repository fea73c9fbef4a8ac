//! The real driver: runs the host's steps here and the container's steps in
//! the cloned child, passing the baton between them, then supervises PID 1:
//! drains the console, serves `/dev/log`, forwards a stop request, waits,
//! and tears down.

use super::channel::{Channel, Msg};
use super::kernel::{Kernel, Spawned};
use super::linux::LinuxKernel;
use super::report::{Outcome, Report, Status};
use super::{Failure, Runner, clone_index, dropped_caps};
use crate::plan::{Op, Plan, Side};
use crate::profile::model::StopSignal;
use crate::profile::values::signal_name;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where things go while the container runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The rootfs, resolved.
    pub rootfs: PathBuf,
    /// The console log (appended), if any.
    pub console_log: Option<PathBuf>,
    /// What the guest sends to `/dev/log` (appended), if any.
    pub syslog: Option<PathBuf>,
    /// Copy the console to stdout.
    pub echo_console: bool,
}

/// The finished run.
pub struct Applied {
    pub report: Report,
    pub exit_code: u8,
}

const SIGRTMIN_3: i32 = 37;

fn finish(mut report: Report, code: u8, summary: String) -> Applied {
    report.outcome = Some(Outcome {
        exit_code: code,
        summary,
    });
    Applied {
        report,
        exit_code: code,
    }
}

/// Blocks the signals that mean "stop the container" and returns a signalfd for them.
fn stop_signals() -> io::Result<(OwnedFd, libc::sigset_t)> {
    // SAFETY: sigset manipulation on a local set; signalfd returns a new fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fd), old))
    }
}

fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: restoring a mask we saved.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// Builds and runs the container in the foreground; returns when PID 1 is gone
/// and the host is as it was.
pub fn apply(plan: &Plan, opts: &ApplyOptions) -> Applied {
    let mut report = Report::new(plan);
    let mut k = LinuxKernel::new();
    if let Err(e) = k.open_rootfs(&opts.rootfs) {
        report.set(
            plan,
            0,
            Status::Failed {
                error: format!("cannot open the rootfs {}: {e}", opts.rootfs.display()),
                fatal: true,
            },
        );
        return finish(report, 125, "failed at step 1".into());
    }
    let Some(ci) = clone_index(plan) else {
        return finish(report, 125, "the plan creates no container".into());
    };
    let (sigfd, old_mask) = match stop_signals() {
        Ok(v) => v,
        Err(e) => return finish(report, 125, format!("cannot block signals: {e}")),
    };
    let mut runner = Runner::new(&mut k);
    let result = run(plan, opts, &mut runner, ci, &mut report, &sigfd);
    report.teardown_left = runner.teardown();
    restore_mask(&old_mask);
    match result {
        Ok((code, summary)) => finish(report, code, summary),
        Err((step, f)) => {
            if let Some(i) = step {
                report.set(
                    plan,
                    i,
                    Status::Failed {
                        error: f.message.clone(),
                        fatal: true,
                    },
                );
            }
            let where_ = step.map_or(String::new(), |i| {
                format!(" at step {} ({})", i + 1, plan.steps[i].op.name())
            });
            finish(report, f.exit_code, format!("failed{where_}"))
        }
    }
}

type StepErr = (Option<usize>, Failure);

fn run(
    plan: &Plan,
    opts: &ApplyOptions,
    runner: &mut Runner<'_, LinuxKernel>,
    ci: usize,
    report: &mut Report,
    sigfd: &OwnedFd,
) -> Result<(u8, String), StepErr> {
    // Host steps before the clone.
    for i in 0..ci {
        let s = runner.run(&plan.steps[i].op).map_err(|f| (Some(i), f))?;
        report.set(plan, i, s);
    }
    report.host.init = runner.init.as_ref().map(|i| i.resolved.clone());
    let Op::CloneChild { namespaces } = &plan.steps[ci].op else {
        unreachable!("clone_index found it")
    };
    let (host_end, child_end) = Channel::pair().map_err(|e| (Some(ci), e.into()))?;
    let spawned = runner
        .k
        .spawn(namespaces)
        .map_err(|e| (Some(ci), e.into()))?;
    let (pid, pidfd) = match spawned {
        Spawned::Child => {
            drop(host_end);
            child_main(plan, runner, child_end, ci);
        }
        Spawned::Parent { pid, pidfd } => (pid, pidfd),
    };
    runner.child_pid = Some(pid);
    drop(child_end);
    report.pid = Some(pid);
    report.set(plan, ci, Status::detail(format!("pid {pid} on the host")));
    let child = Child { pid, pidfd };

    // Pass the baton until the child is about to exec.
    let handoff = match baton(plan, runner, &host_end, ci + 1, report) {
        Ok(h) => h,
        Err(e) => {
            child.kill_and_reap();
            return Err(e);
        }
    };
    // The exec closes the child's end: end of file means it worked.
    match host_end.recv() {
        Ok(None) => {}
        Ok(Some((Msg::ExecFailed { error, exit_code }, _))) => {
            child.reap();
            let last = plan.steps.len() - 1;
            return Err((
                Some(last),
                Failure {
                    message: error,
                    exit_code,
                },
            ));
        }
        Ok(Some(_)) | Err(_) => {
            child.kill_and_reap();
            return Err((
                None,
                Failure::new("the container's process broke the protocol"),
            ));
        }
    }
    let last = plan.steps.len() - 1;
    report.set(
        plan,
        last,
        Status::detail(format!("PID 1 is {}", plan.steps[last].op_command())),
    );
    drop(host_end);
    let status = supervise(plan, opts, &child, handoff, sigfd);
    Ok(status)
}

/// The host's half of the baton protocol. Returns the hand-off fds.
fn baton(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ch: &Channel,
    mut j: usize,
    report: &mut Report,
) -> Result<Handoff, StepErr> {
    let n = plan.steps.len();
    loop {
        while j < n && plan.steps[j].side == Side::Host {
            let s = runner.run(&plan.steps[j].op).map_err(|f| (Some(j), f))?;
            report.set(plan, j, s);
            j += 1;
        }
        ch.send(&Msg::Go { step: j }, &[])
            .map_err(|e| (None, e.into()))?;
        match ch.recv() {
            Ok(Some((Msg::Reached { step, results }, _))) => {
                for (i, s) in results {
                    report.set(plan, i, s);
                }
                j = step;
            }
            Ok(Some((
                Msg::Exec {
                    results,
                    console,
                    log,
                    guest_api,
                },
                fds,
            ))) => {
                for (i, s) in results {
                    report.set(plan, i, s);
                }
                let mut fds = fds.into_iter();
                return Ok(Handoff {
                    console: if console { fds.next() } else { None },
                    log: if log { fds.next() } else { None },
                    _guest_api: if guest_api { fds.next() } else { None },
                });
            }
            Ok(Some((
                Msg::Failed {
                    results,
                    step,
                    error,
                },
                _,
            ))) => {
                for (i, s) in results {
                    report.set(plan, i, s);
                }
                return Err((Some(step), Failure::new(error)));
            }
            Ok(Some((other, _))) => {
                return Err((
                    None,
                    Failure::new(format!("unexpected message from the container: {other:?}")),
                ));
            }
            Ok(None) => {
                return Err((
                    None,
                    Failure::new("the container's process died while being set up"),
                ));
            }
            Err(e) => {
                return Err((
                    None,
                    Failure::new(format!("talking to the container's process: {e}")),
                ));
            }
        }
    }
}

struct Handoff {
    console: Option<OwnedFd>,
    log: Option<OwnedFd>,
    _guest_api: Option<OwnedFd>,
}

/// The container's first process: runs its steps, then becomes init.
fn child_main(plan: &Plan, runner: &mut Runner<'_, LinuxKernel>, ch: Channel, ci: usize) -> ! {
    let exit = |code: i32| -> ! {
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) }
    };
    let mut results: Vec<(usize, Status)> = Vec::new();
    let mut j = match ch.recv() {
        Ok(Some((Msg::Go { step }, _))) => step,
        _ => exit(1),
    };
    let _ = ci;
    loop {
        let Some(step) = plan.steps.get(j) else {
            exit(1)
        };
        if step.side == Side::Host {
            let msg = Msg::Reached {
                step: j,
                results: std::mem::take(&mut results),
            };
            if ch.send(&msg, &[]).is_err() {
                exit(1);
            }
            j = match ch.recv() {
                Ok(Some((Msg::Go { step }, _))) => step,
                _ => exit(1),
            };
            continue;
        }
        if let Op::ExecInit {
            command,
            env,
            drop_capabilities,
        } = &step.op
        {
            let caps = match dropped_caps(drop_capabilities) {
                Ok(c) => c,
                Err(f) => {
                    let _ = ch.send(
                        &Msg::Failed {
                            results,
                            step: j,
                            error: f.message,
                        },
                        &[],
                    );
                    exit(1);
                }
            };
            let h = runner.k.take_handoff();
            let mut fds: Vec<RawFd> = Vec::new();
            for fd in [&h.console, &h.log, &h.guest_api].into_iter().flatten() {
                fds.push(fd.as_raw_fd());
            }
            let msg = Msg::Exec {
                results,
                console: h.console.is_some(),
                log: h.log.is_some(),
                guest_api: h.guest_api.is_some(),
            };
            if ch.send(&msg, &fds).is_err() {
                exit(1);
            }
            drop(h);
            let e = match runner.k.exec_init(command, env, &caps) {
                Err(e) => e,
                Ok(()) => exit(0),
            };
            let code = match super::linux::errno(&e) {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
                Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EPERM) => 126,
                _ => 125,
            };
            let _ = ch.send(
                &Msg::ExecFailed {
                    error: e.to_string(),
                    exit_code: code as u8,
                },
                &[],
            );
            exit(code);
        }
        match runner.run(&step.op) {
            Ok(s) => results.push((j, s)),
            Err(f) => {
                let _ = ch.send(
                    &Msg::Failed {
                        results,
                        step: j,
                        error: f.message,
                    },
                    &[],
                );
                exit(1);
            }
        }
        j += 1;
    }
}

struct Child {
    pid: i32,
    pidfd: Option<OwnedFd>,
}

impl Child {
    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, by pidfd when we have one (no PID reuse race).
        unsafe {
            match &self.pidfd {
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
                    libc::kill(self.pid, sig);
                }
            }
        }
    }

    /// Waits for the child; returns its wait status.
    fn reap(&self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return status;
            }
        }
    }

    fn kill_and_reap(&self) {
        self.signal(libc::SIGKILL);
        self.reap();
    }

    /// The wait status if the child has exited.
    fn try_reap(&self) -> Option<i32> {
        let mut status = 0;
        // SAFETY: non-blocking wait for our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        (r == self.pid).then_some(status)
    }

    /// Whether PID 1 blocks a signal (from `SigBlk` in its status).
    fn blocks(&self, sig: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigBlk:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on our own fd.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn open_log(path: &Option<PathBuf>) -> Option<File> {
    let p = path.as_ref()?;
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .ok()
}

/// Reads what is there; `Ok(0)` at end, `Err(WouldBlock)` when drained.
fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a live buffer.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Waits for PID 1, draining its console and serving `/dev/log`, and turns a
/// stop request (SIGINT, SIGTERM, SIGHUP to envc) into a clean shutdown.
fn supervise(
    plan: &Plan,
    opts: &ApplyOptions,
    child: &Child,
    h: Handoff,
    sigfd: &OwnedFd,
) -> (u8, String) {
    let mut console_log = open_log(&opts.console_log);
    let mut syslog = open_log(&opts.syslog);
    let mut console = h.console;
    let log = h.log;
    if let Some(c) = &console {
        set_nonblocking(c);
    }
    if let Some(l) = &log {
        set_nonblocking(l);
    }
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut lbuf = vec![0u8; 8 * 1024];
    let mut stop_deadline: Option<Instant> = None;
    let mut last_stop_signal = Instant::now();
    let mut killed_after_timeout = false;
    let timeout = Duration::from_secs(plan.supervise.stop_timeout_secs as u64);
    let stop_sig = |child: &Child| match plan.supervise.stop_signal {
        StopSignal::Signal(s) => s,
        StopSignal::Auto => {
            if child.blocks(SIGRTMIN_3) {
                SIGRTMIN_3
            } else {
                libc::SIGPWR
            }
        }
    };
    let mut drain_console =
        |console: &mut Option<OwnedFd>, stdout: &mut io::StdoutLock<'_>, log: &mut Option<File>| {
            let Some(c) = console.as_ref() else { return };
            loop {
                match read_fd(c, &mut buf) {
                    Ok(0) => {
                        *console = None;
                        return;
                    }
                    Ok(n) => {
                        if opts.echo_console {
                            let _ = stdout.write_all(&buf[..n]);
                            let _ = stdout.flush();
                        }
                        if let Some(f) = log.as_mut() {
                            let _ = f.write_all(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    // EIO: no process has the terminal open right now.
                    Err(_) => return,
                }
            }
        };
    let status = loop {
        if let Some(st) = child.try_reap() {
            break st;
        }
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut push = |fd: RawFd| {
            pfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        };
        push(child.pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()));
        push(sigfd.as_raw_fd());
        push(console.as_ref().map_or(-1, |f| f.as_raw_fd()));
        push(log.as_ref().map_or(-1, |f| f.as_raw_fd()));
        let wait_ms = if stop_deadline.is_some() || child.pidfd.is_none() {
            200
        } else {
            1000
        };
        // SAFETY: pfds is a live array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break child.reap();
        }
        if pfds[2].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            if pfds[2].revents & libc::POLLIN == 0 {
                // Hang-up with nothing to read: the terminal has no reader now;
                // do not spin on it.
                drain_console(&mut console, &mut stdout, &mut console_log);
                std::thread::sleep(Duration::from_millis(10));
            } else {
                drain_console(&mut console, &mut stdout, &mut console_log);
            }
        }
        if pfds[3].revents & libc::POLLIN != 0
            && let Some(l) = &log
        {
            loop {
                match read_fd(l, &mut lbuf) {
                    Ok(n) if n > 0 => {
                        if let Some(f) = syslog.as_mut() {
                            let mut line = lbuf[..n].to_vec();
                            if line.last() != Some(&b'\n') {
                                line.push(b'\n');
                            }
                            let _ = f.write_all(&line);
                        }
                    }
                    _ => break,
                }
            }
        }
        if pfds[1].revents & libc::POLLIN != 0 {
            // SAFETY: reading one signalfd_siginfo from our signalfd.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            while read_fd(sigfd, unsafe {
                std::slice::from_raw_parts_mut(
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            })
            .is_ok_and(|n| n > 0)
            {
                if stop_deadline.is_some() {
                    // A second request: stop now.
                    child.signal(libc::SIGKILL);
                    killed_after_timeout = true;
                } else {
                    let sig = stop_sig(child);
                    eprintln!(
                        "envc: stopping {} (sent {} to PID 1; killing after {}s)",
                        plan.name,
                        signal_name(sig),
                        timeout.as_secs()
                    );
                    child.signal(sig);
                    stop_deadline = Some(Instant::now() + timeout);
                    last_stop_signal = Instant::now();
                }
            }
        }
        if let Some(deadline) = stop_deadline {
            if Instant::now() >= deadline && !killed_after_timeout {
                eprintln!(
                    "envc: {} did not stop within {}s; killing it",
                    plan.name,
                    timeout.as_secs()
                );
                child.signal(libc::SIGKILL);
                killed_after_timeout = true;
            } else if last_stop_signal.elapsed() >= Duration::from_secs(1) && !killed_after_timeout
            {
                // Early in boot init may not handle it yet: ask again.
                child.signal(stop_sig(child));
                last_stop_signal = Instant::now();
            }
        }
    };
    drain_console(&mut console, &mut stdout, &mut console_log);
    exit_status(status, killed_after_timeout)
}

/// envc's exit status for PID 1's wait status (podman's convention).
fn exit_status(status: i32, killed: bool) -> (u8, String) {
    if libc::WIFEXITED(status) {
        let c = libc::WEXITSTATUS(status);
        (c as u8, format!("PID 1 exited with status {c}"))
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        if s == libc::SIGINT {
            (0, "PID 1 halted (died of SIGINT: halt or poweroff)".into())
        } else if s == libc::SIGKILL && killed {
            (137, "killed (SIGKILL) after the stop timeout".into())
        } else if s == libc::SIGHUP {
            (129, "PID 1 asked for a reboot (died of SIGHUP)".into())
        } else {
            ((128 + s) as u8, format!("PID 1 died of {}", signal_name(s)))
        }
    } else {
        (125, format!("unexpected wait status {status:#x}"))
    }
}

impl crate::plan::Step {
    /// The init command line, for reports.
    pub fn op_command(&self) -> String {
        match &self.op {
            Op::ExecInit { command, .. } => command.join(" "),
            _ => String::new(),
        }
    }
}
