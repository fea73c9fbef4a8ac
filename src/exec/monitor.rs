//! The supervisor's loop while PID 1 runs: drains the console (to stdout, to
//! the log, to attached `envc console` clients), forwards the user's
//! terminal, serves `/dev/log`, answers the control socket (stop, reboot,
//! console), turns SIGINT/SIGTERM/SIGHUP into a clean stop, and decides
//! how the run ended.

use crate::plan::Plan;
use crate::profile::model::StopSignal;
use crate::profile::values::signal_name;
use crate::sys::{read as read_raw, set_nonblocking};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// The kernel's SIGRTMIN+3 (never libc's SIGRTMIN, which differs by libc).
pub const SIGRTMIN_3: i32 = 37;

/// The escape key: Ctrl-a. `Ctrl-a q` stops (foreground) or detaches
/// (`envc console`); `Ctrl-a a` sends a literal Ctrl-a.
pub const ESCAPE: u8 = 0x01;

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// PID 1 is gone; envc's exit status and a summary.
    Stopped { code: u8, summary: String },
    /// Start again from the same plan.
    Reboot { summary: String },
}

/// What PID 1 is, to the monitor.
pub trait Pid1 {
    fn signal(&self, sig: i32);
    /// The wait status, if PID 1 has exited.
    fn try_reap(&self) -> Option<i32>;
    fn reap(&self) -> i32;
    fn pidfd(&self) -> Option<RawFd>;
    /// Whether PID 1 blocks `sig` (`SigBlk`).
    fn blocks(&self, sig: i32) -> bool;
}

/// The fds and places the monitor works with.
pub struct Io<'a> {
    pub console: Option<OwnedFd>,
    pub log: Option<OwnedFd>,
    pub sigfd: &'a OwnedFd,
    pub control: Option<&'a UnixListener>,
    pub console_log: Option<File>,
    pub syslog: Option<File>,
    /// Copy the console to stdout.
    pub echo: bool,
    /// Forward the user's terminal (stdin is a tty in raw mode).
    pub terminal: bool,
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    kind: ClientKind,
    since: Instant,
}

#[derive(PartialEq, Eq)]
enum ClientKind {
    /// Has not said what it wants yet.
    New,
    /// Waits for the stop to finish.
    StopWaiter,
    /// Attached to the console.
    Console,
}

struct Stopping {
    deadline: Instant,
    last_signal: Instant,
    killed: bool,
    reboot: bool,
}

fn write_all_raw(fd: RawFd, mut data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !data.is_empty() && Instant::now() < deadline {
        match crate::sys::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
                _ => return,
            },
        }
    }
}

/// Copies the terminal size of `from` to the pty `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    if let Some(ws) = crate::sys::window_size(from).filter(|ws| ws.ws_row > 0) {
        crate::sys::set_window_size(to, &ws);
    }
}

/// Filters what the user typed for the escape sequence. Returns the bytes
/// to forward and whether `Ctrl-a q` was typed.
pub fn filter_escape(input: &[u8], pending_escape: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if *pending_escape {
            *pending_escape = false;
            match b {
                b'q' | b'Q' => return (out, true),
                ESCAPE | b'a' => out.push(ESCAPE),
                other => {
                    out.push(ESCAPE);
                    out.push(other);
                }
            }
        } else if b == ESCAPE {
            *pending_escape = true;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Appends every waiting `/dev/log` datagram to the syslog file, one per line.
fn drain_log(log: &Option<OwnedFd>, syslog: &mut Option<File>) {
    let Some(l) = log else { return };
    let mut dgram = [0u8; 8192];
    while let Ok(n) = read_raw(l.as_raw_fd(), &mut dgram) {
        if n == 0 {
            break;
        }
        if let Some(f) = syslog.as_mut() {
            let mut line = dgram[..n].to_vec();
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            let _ = f.write_all(&line);
        }
    }
}

/// Watches PID 1 until it is gone, serving everything around it, and says
/// how the run ended.
pub fn run(plan: &Plan, pid1: &dyn Pid1, io: Io<'_>) -> End {
    let mut m = Monitor::new(plan, pid1, io);
    let status = m.watch();
    m.finish(status)
}

/// The poll set's fixed slots; each control client has one after them.
const SLOT_PIDFD: usize = 0;
const SLOT_SIGNALS: usize = 1;
const SLOT_CONSOLE: usize = 2;
const SLOT_LOG: usize = 3;
const SLOT_CONTROL: usize = 4;
const SLOT_STDIN: usize = 5;
const SLOT_CLIENTS: usize = 6;

/// The monitor's state while PID 1 runs.
struct Monitor<'a> {
    io: Io<'a>,
    stop: Stopper<'a>,
    clients: Vec<Client>,
    buf: Vec<u8>,
    /// `Ctrl-a` was typed; the next key says what it means.
    escape: bool,
    stdin_open: bool,
    /// The console hung up: it is left out of the poll set until then.
    console_muted_until: Option<Instant>,
    /// A sealed copy of envc's binary, made at the first `exe` request and
    /// handed to every `envc exec` into a privileged container.
    sealed_exe: Option<std::fs::File>,
}

impl<'a> Monitor<'a> {
    fn new(plan: &'a Plan, pid1: &'a dyn Pid1, io: Io<'a>) -> Monitor<'a> {
        if let Some(c) = &io.console {
            set_nonblocking(c.as_raw_fd());
            if io.terminal {
                copy_winsize(0, c.as_raw_fd());
            }
        }
        if let Some(l) = &io.log {
            set_nonblocking(l.as_raw_fd());
        }
        if let Some(c) = io.control {
            let _ = c.set_nonblocking(true);
        }
        Monitor {
            stop: Stopper {
                plan,
                pid1,
                timeout: Duration::from_secs(plan.supervise.stop_timeout_secs as u64),
                stopping: None,
            },
            stdin_open: io.terminal,
            io,
            clients: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            escape: false,
            sealed_exe: None,
            console_muted_until: None,
        }
    }

    /// Serves whatever is ready until PID 1 is gone; returns its wait status.
    fn watch(&mut self) -> i32 {
        let pid1 = self.stop.pid1;
        loop {
            if let Some(st) = pid1.try_reap() {
                return st;
            }
            // Unmute before building the poll set: unmuting after it would
            // leave the console out of a whole poll (up to a second), so a
            // console whose every writer closes it (systemd) would be read
            // only that often, one buffer's worth each time.
            if self
                .console_muted_until
                .is_some_and(|t| Instant::now() >= t)
            {
                self.console_muted_until = None;
            }
            let mut pfds = self.poll_set();
            if let Err(e) = crate::sys::poll(&mut pfds, self.poll_wait_ms())
                && e.kind() != io::ErrorKind::Interrupted
            {
                return pid1.reap();
            }
            // Clients accepted below have no slot in this round: they wait
            // for the next.
            let ready: Vec<bool> = pfds
                .iter()
                .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
                .collect();
            if ready[SLOT_CONSOLE] {
                self.drain_console();
            }
            if ready[SLOT_LOG] {
                drain_log(&self.io.log, &mut self.io.syslog);
            }
            if ready[SLOT_STDIN] {
                self.forward_terminal();
            }
            if ready[SLOT_SIGNALS] {
                self.read_signals();
            }
            if ready[SLOT_CONTROL] {
                self.accept_clients();
            }
            self.serve_clients(&ready[SLOT_CLIENTS..]);
            self.stop.press();
        }
    }

    /// The fds to wait on: the fixed slots (-1 where there is none, or the
    /// console is muted), then one per client.
    fn poll_set(&self) -> Vec<libc::pollfd> {
        let io = &self.io;
        let mut fds = vec![-1; SLOT_CLIENTS];
        fds[SLOT_PIDFD] = self.stop.pid1.pidfd().unwrap_or(-1);
        fds[SLOT_SIGNALS] = io.sigfd.as_raw_fd();
        fds[SLOT_CONSOLE] = match (&io.console, self.console_muted_until) {
            (Some(c), None) => c.as_raw_fd(),
            _ => -1,
        };
        fds[SLOT_LOG] = io.log.as_ref().map_or(-1, |f| f.as_raw_fd());
        fds[SLOT_CONTROL] = io.control.map_or(-1, |c| c.as_raw_fd());
        fds[SLOT_STDIN] = if self.stdin_open { 0 } else { -1 };
        fds.extend(self.clients.iter().map(|c| c.stream.as_raw_fd()));
        fds.into_iter()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect()
    }

    /// How long one poll waits: briefly while the console is muted, a
    /// little while a stop is in progress or without a pidfd (PID 1's end
    /// is then only seen by trying to reap it), else up to a second.
    fn poll_wait_ms(&self) -> i32 {
        if self.console_muted_until.is_some() {
            50
        } else if self.stop.stopping.is_some() || self.stop.pid1.pidfd().is_none() {
            200
        } else {
            1000
        }
    }

    /// The console: to stdout, the log and every attached client.
    fn drain_console(&mut self) {
        let mut idle = true;
        if let Some(c) = &self.io.console {
            loop {
                match read_raw(c.as_raw_fd(), &mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        idle = false;
                        let data = &self.buf[..n];
                        if self.io.echo {
                            let mut out = io::stdout().lock();
                            let _ = out.write_all(data);
                            let _ = out.flush();
                        }
                        copy_to_readers(data, &mut self.io.console_log, &mut self.clients);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        if idle {
            // A hang-up: no process has the terminal open right now. Look
            // again a little later rather than spin on it.
            self.console_muted_until = Some(Instant::now() + Duration::from_millis(50));
        }
    }

    /// The user's terminal: what they type goes to the console; `Ctrl-a q`
    /// stops the container.
    fn forward_terminal(&mut self) {
        match read_raw(0, &mut self.buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => {
                let (fwd, quit) = filter_escape(&self.buf[..n], &mut self.escape);
                if let Some(c) = &self.io.console {
                    write_all_raw(c.as_raw_fd(), &fwd);
                }
                if quit {
                    self.stop.begin(false, false, self.stop.timeout);
                }
            }
        }
    }

    /// Signals to envc: a window size change is passed on to the console;
    /// any other asks PID 1 to stop.
    fn read_signals(&mut self) {
        use std::os::fd::AsFd;
        while let Some(signo) = crate::sys::read_signal(self.io.sigfd.as_fd()) {
            if signo as i32 == libc::SIGWINCH {
                if let (true, Some(c)) = (self.io.terminal, &self.io.console) {
                    copy_winsize(0, c.as_raw_fd());
                }
            } else {
                self.stop.begin(false, false, self.stop.timeout);
            }
        }
    }

    /// New control connections (64 at most at a time).
    fn accept_clients(&mut self) {
        let Some(l) = self.io.control else { return };
        while let Ok((s, _)) = l.accept() {
            let _ = s.set_nonblocking(true);
            if self.clients.len() < 64 {
                self.clients.push(Client {
                    stream: s,
                    buf: Vec::new(),
                    kind: ClientKind::New,
                    since: Instant::now(),
                });
            }
        }
    }

    /// Control clients: each one `ready` says has something is served; the
    /// ones done with are dropped.
    fn serve_clients(&mut self, ready: &[bool]) {
        let mut drop_idx = Vec::new();
        for (i, cl) in self.clients.iter_mut().enumerate() {
            let ready = ready.get(i).copied().unwrap_or(false);
            if !serve_client(
                cl,
                ready,
                &self.io.console,
                &mut self.stop,
                &mut self.sealed_exe,
            ) {
                drop_idx.push(i);
            }
        }
        for i in drop_idx.into_iter().rev() {
            self.clients.remove(i);
        }
    }

    /// PID 1 is gone: whatever it and the guest wrote last, then how the
    /// run ended, which the clients waiting for the stop are told.
    fn finish(mut self, status: i32) -> End {
        // Whatever the guest logged last.
        drain_log(&self.io.log, &mut self.io.syslog);
        // Whatever PID 1 wrote last.
        if let Some(c) = &self.io.console {
            while let Ok(n) = read_raw(c.as_raw_fd(), &mut self.buf) {
                if n == 0 {
                    break;
                }
                let data = &self.buf[..n];
                if self.io.echo {
                    let _ = io::stdout().lock().write_all(data);
                }
                copy_to_readers(data, &mut self.io.console_log, &mut self.clients);
            }
        }
        let _ = io::stdout().flush();
        let stopping = self.stop.stopping.as_ref();
        let reboot_requested = stopping.is_some_and(|s| s.reboot);
        let killed = stopping.is_some_and(|s| s.killed);
        let end = decide(status, killed, reboot_requested);
        let code = match &end {
            End::Stopped { code, .. } => *code,
            End::Reboot { .. } => 0,
        };
        for cl in self
            .clients
            .iter_mut()
            .filter(|c| c.kind == ClientKind::StopWaiter)
        {
            let _ = cl.stream.set_nonblocking(false);
            let _ = cl.stream.write_all(format!("stopped {code}\n").as_bytes());
        }
        end
    }
}

/// Console output to the console log and every attached client.
fn copy_to_readers(data: &[u8], console_log: &mut Option<File>, clients: &mut [Client]) {
    if let Some(f) = console_log.as_mut() {
        let _ = f.write_all(data);
    }
    for cl in clients.iter_mut().filter(|c| c.kind == ClientKind::Console) {
        let _ = cl.stream.write_all(data);
    }
}

/// Serves control client `cl` (`ready`: it has something to read).
/// Returns false when it is to be dropped: it left, said too much or
/// something unknown, asked for a reboot, or never said what it wants.
fn serve_client(
    cl: &mut Client,
    ready: bool,
    console: &Option<OwnedFd>,
    stop: &mut Stopper<'_>,
    sealed_exe: &mut Option<std::fs::File>,
) -> bool {
    if !ready {
        return !(cl.kind == ClientKind::New && cl.since.elapsed() > Duration::from_secs(5));
    }
    let mut tmp = [0u8; 4096];
    match cl.stream.read(&mut tmp) {
        Ok(0) => false,
        Ok(n) => match cl.kind {
            ClientKind::Console => {
                if let Some(c) = console {
                    write_all_raw(c.as_raw_fd(), &tmp[..n]);
                }
                true
            }
            ClientKind::StopWaiter => true,
            ClientKind::New => {
                cl.buf.extend_from_slice(&tmp[..n]);
                if cl.buf.len() > 4096 {
                    return false;
                }
                let Some(nl) = cl.buf.iter().position(|b| *b == b'\n') else {
                    return true;
                };
                let line = String::from_utf8_lossy(&cl.buf[..nl]).trim().to_string();
                let rest = cl.buf[nl + 1..].to_vec();
                handle_request(cl, &line, &rest, console, stop, sealed_exe)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

/// A client's request line: `stop TIMEOUT FORCE` (it then waits for the
/// end), `reboot`, `console [ROWS COLS]` (`rest`, what it sent after the
/// line, goes to the console), or `exe` (a sealed copy of envc's binary,
/// passed as an fd). Returns false when the client is done.
fn handle_request(
    cl: &mut Client,
    line: &str,
    rest: &[u8],
    console: &Option<OwnedFd>,
    stop: &mut Stopper<'_>,
    sealed_exe: &mut Option<std::fs::File>,
) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["stop", t, force] => {
            let t = t
                .parse::<u64>()
                .map(Duration::from_secs)
                .unwrap_or(stop.timeout);
            let _ = cl.stream.write_all(b"stopping\n");
            cl.kind = ClientKind::StopWaiter;
            stop.begin(*force == "1", false, t);
            true
        }
        ["reboot"] => {
            let _ = cl.stream.write_all(b"rebooting\n");
            stop.begin(false, true, stop.timeout);
            false
        }
        ["console", rest_words @ ..] => {
            let _ = cl.stream.write_all(b"console\n");
            if let ([rows, cols], Some(c)) = (rest_words, console)
                && let (Ok(r), Ok(cc)) = (rows.parse::<u16>(), cols.parse::<u16>())
            {
                let ws = libc::winsize {
                    ws_row: r,
                    ws_col: cc,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                crate::sys::set_window_size(c.as_raw_fd(), &ws);
            }
            cl.kind = ClientKind::Console;
            if let (false, Some(c)) = (rest.is_empty(), console) {
                write_all_raw(c.as_raw_fd(), rest);
            }
            true
        }
        ["exe"] => {
            if sealed_exe.is_none() {
                *sealed_exe = crate::sys::sealed_copy_of_self().ok();
            }
            match sealed_exe {
                Some(f) => {
                    let _ = crate::sys::send_fd(cl.stream.as_raw_fd(), f.as_raw_fd());
                }
                None => {
                    let _ = cl.stream.write_all(b"error no copy\n");
                }
            }
            false
        }
        _ => {
            let _ = cl.stream.write_all(b"error unknown request\n");
            false
        }
    }
}

/// Stopping PID 1: the request, asked again while it boots, and the kill
/// at the deadline.
struct Stopper<'a> {
    plan: &'a Plan,
    pid1: &'a dyn Pid1,
    /// The profile's stop timeout.
    timeout: Duration,
    stopping: Option<Stopping>,
}

/// The signal that asks PID 1 to stop, or to reboot.
fn request_signal(plan: &Plan, pid1: &dyn Pid1, reboot: bool) -> i32 {
    if reboot {
        return plan.supervise.reboot_signal;
    }
    match plan.supervise.stop_signal {
        StopSignal::Signal(s) => s,
        StopSignal::Auto => {
            if pid1.blocks(SIGRTMIN_3) {
                SIGRTMIN_3
            } else {
                libc::SIGPWR
            }
        }
    }
}

impl Stopper<'_> {
    /// Asks PID 1 to stop (or reboot) within `t`; `force`, or a second
    /// request while stopping, kills it now.
    fn begin(&mut self, force: bool, reboot: bool, t: Duration) {
        if force {
            self.pid1.signal(libc::SIGKILL);
            self.stopping = Some(Stopping {
                deadline: Instant::now(),
                last_signal: Instant::now(),
                killed: true,
                reboot,
            });
            return;
        }
        if let Some(s) = self.stopping.as_mut() {
            // Asked again while stopping: stop now.
            self.pid1.signal(libc::SIGKILL);
            s.killed = true;
            return;
        }
        let sig = request_signal(self.plan, self.pid1, reboot);
        eprintln!(
            "envc: {} {} (sent {} to PID 1; killing after {}s)",
            if reboot { "rebooting" } else { "stopping" },
            self.plan.name,
            signal_name(sig),
            t.as_secs()
        );
        self.pid1.signal(sig);
        self.stopping = Some(Stopping {
            deadline: Instant::now() + t,
            last_signal: Instant::now(),
            killed: false,
            reboot,
        });
    }

    /// A stop in progress: asks again about once a second; kills at the
    /// deadline.
    fn press(&mut self) {
        let Some(s) = self.stopping.as_mut().filter(|s| !s.killed) else {
            return;
        };
        if Instant::now() >= s.deadline {
            eprintln!(
                "envc: {} did not stop within its timeout; killing it",
                self.plan.name
            );
            self.pid1.signal(libc::SIGKILL);
            s.killed = true;
        } else if s.last_signal.elapsed() >= Duration::from_secs(1) {
            // Early in boot init may not handle it yet (and systemd
            // blocks SIGRTMIN+3 only once it runs): ask again.
            let sig = request_signal(self.plan, self.pid1, s.reboot);
            self.pid1.signal(sig);
            s.last_signal = Instant::now();
        }
    }
}

/// How a wait status ends the run.
pub fn decide(status: i32, killed: bool, reboot_requested: bool) -> End {
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGHUP {
        return End::Reboot {
            summary: "PID 1 rebooted (died of SIGHUP)".into(),
        };
    }
    if reboot_requested {
        return End::Reboot {
            summary: if killed {
                "PID 1 ignored the reboot request; killed and starting again".into()
            } else {
                "rebooting on request".into()
            },
        };
    }
    let (code, summary) = if libc::WIFEXITED(status) {
        let c = libc::WEXITSTATUS(status);
        (c as u8, format!("PID 1 exited with status {c}"))
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        if s == libc::SIGINT {
            (0, "PID 1 halted (died of SIGINT: halt or poweroff)".into())
        } else if s == libc::SIGKILL && killed {
            (
                137,
                "killed (SIGKILL): it did not stop in time, or a forced stop".into(),
            )
        } else {
            ((128 + s) as u8, format!("PID 1 died of {}", signal_name(s)))
        }
    } else {
        (125, format!("unexpected wait status {status:#x}"))
    };
    End::Stopped { code, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape() {
        let mut p = false;
        assert_eq!(filter_escape(b"ls\r", &mut p), (b"ls\r".to_vec(), false));
        assert_eq!(filter_escape(b"a\x01q", &mut p), (b"a".to_vec(), true));
        let mut p = false;
        assert_eq!(filter_escape(b"\x01", &mut p), (vec![], false));
        assert!(p);
        assert_eq!(filter_escape(b"a", &mut p), (vec![ESCAPE], false));
        assert_eq!(filter_escape(b"\x01x", &mut p), (vec![ESCAPE, b'x'], false));
    }

    #[test]
    fn endings() {
        // Wait statuses as the kernel encodes them.
        let exited = |c: i32| c << 8;
        let signaled = |s: i32| s;
        assert_eq!(
            decide(exited(7), false, false),
            End::Stopped {
                code: 7,
                summary: "PID 1 exited with status 7".into()
            }
        );
        assert!(matches!(
            decide(signaled(libc::SIGINT), false, false),
            End::Stopped { code: 0, .. }
        ));
        assert!(matches!(
            decide(signaled(libc::SIGHUP), false, false),
            End::Reboot { .. }
        ));
        assert!(matches!(
            decide(signaled(libc::SIGKILL), true, false),
            End::Stopped { code: 137, .. }
        ));
        assert!(matches!(
            decide(signaled(libc::SIGTERM), false, false),
            End::Stopped { code: 143, .. }
        ));
        assert!(matches!(decide(exited(0), true, true), End::Reboot { .. }));
    }
}
