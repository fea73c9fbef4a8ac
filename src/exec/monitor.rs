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

pub fn run(plan: &Plan, pid1: &dyn Pid1, mut io: Io<'_>) -> End {
    let name = &plan.name;
    let timeout = Duration::from_secs(plan.supervise.stop_timeout_secs as u64);
    let stop_sig = |p: &dyn Pid1| match plan.supervise.stop_signal {
        StopSignal::Signal(s) => s,
        StopSignal::Auto => {
            if p.blocks(SIGRTMIN_3) {
                SIGRTMIN_3
            } else {
                libc::SIGPWR
            }
        }
    };
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
    let mut clients: Vec<Client> = Vec::new();
    let mut stopping: Option<Stopping> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut escape = false;
    let mut stdin_open = io.terminal;
    let mut console_muted_until: Option<Instant> = None;

    let begin_stop = |stopping: &mut Option<Stopping>, force: bool, reboot: bool, t: Duration| {
        if force {
            pid1.signal(libc::SIGKILL);
            *stopping = Some(Stopping {
                deadline: Instant::now(),
                last_signal: Instant::now(),
                killed: true,
                reboot,
            });
            return;
        }
        if let Some(s) = stopping.as_mut() {
            // Asked again while stopping: stop now.
            pid1.signal(libc::SIGKILL);
            s.killed = true;
            return;
        }
        let sig = if reboot {
            plan.supervise.reboot_signal
        } else {
            stop_sig(pid1)
        };
        eprintln!(
            "envc: {} {name} (sent {} to PID 1; killing after {}s)",
            if reboot { "rebooting" } else { "stopping" },
            signal_name(sig),
            t.as_secs()
        );
        pid1.signal(sig);
        *stopping = Some(Stopping {
            deadline: Instant::now() + t,
            last_signal: Instant::now(),
            killed: false,
            reboot,
        });
    };

    let status = loop {
        if let Some(st) = pid1.try_reap() {
            break st;
        }
        // Unmute before building the poll set: unmuting after it left the
        // console out of a whole 1 s poll, so a console whose every writer
        // closes it (systemd) was read only once a second, one buffer's worth.
        if console_muted_until.is_some_and(|t| Instant::now() >= t) {
            console_muted_until = None;
        }
        // Poll set: fixed slots, then one per client.
        let mut pfds = vec![
            libc::pollfd {
                fd: pid1.pidfd().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: io.sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: match (&io.console, console_muted_until) {
                    (Some(c), None) => c.as_raw_fd(),
                    _ => -1,
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: io.log.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: io.control.map_or(-1, |c| c.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        for c in &clients {
            pfds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wait_ms = if console_muted_until.is_some() {
            50
        } else if stopping.is_some() || pid1.pidfd().is_none() {
            200
        } else {
            1000
        };
        if let Err(e) = crate::sys::poll(&mut pfds, wait_ms)
            && e.kind() != io::ErrorKind::Interrupted
        {
            break pid1.reap();
        }
        // Clients accepted below have no slot in this round: they wait for the next.
        let ready = |i: usize| {
            pfds.get(i)
                .is_some_and(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        };

        // The console: to stdout, the log and every attached client.
        if ready(2) {
            let mut idle = true;
            if let Some(c) = &io.console {
                loop {
                    match read_raw(c.as_raw_fd(), &mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            idle = false;
                            let data = &buf[..n];
                            if io.echo {
                                let mut out = io::stdout().lock();
                                let _ = out.write_all(data);
                                let _ = out.flush();
                            }
                            if let Some(f) = io.console_log.as_mut() {
                                let _ = f.write_all(data);
                            }
                            for cl in clients.iter_mut().filter(|c| c.kind == ClientKind::Console) {
                                let _ = cl.stream.write_all(data);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
            }
            if idle {
                // A hang-up: no process has the terminal open right now. Look
                // again a little later rather than spin on it.
                console_muted_until = Some(Instant::now() + Duration::from_millis(50));
            }
        }
        // /dev/log datagrams.
        if ready(3) {
            drain_log(&io.log, &mut io.syslog);
        }
        // The user's terminal.
        if ready(5) {
            match read_raw(0, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (fwd, quit) = filter_escape(&buf[..n], &mut escape);
                    if let Some(c) = &io.console {
                        write_all_raw(c.as_raw_fd(), &fwd);
                    }
                    if quit {
                        begin_stop(&mut stopping, false, false, timeout);
                    }
                }
            }
        }
        // Signals to envc.
        if ready(1) {
            use std::os::fd::AsFd;
            while let Some(signo) = crate::sys::read_signal(io.sigfd.as_fd()) {
                if signo as i32 == libc::SIGWINCH {
                    if let (true, Some(c)) = (io.terminal, &io.console) {
                        copy_winsize(0, c.as_raw_fd());
                    }
                } else {
                    begin_stop(&mut stopping, false, false, timeout);
                }
            }
        }
        // New control connections.
        if ready(4)
            && let Some(l) = io.control
        {
            while let Ok((s, _)) = l.accept() {
                let _ = s.set_nonblocking(true);
                if clients.len() < 64 {
                    clients.push(Client {
                        stream: s,
                        buf: Vec::new(),
                        kind: ClientKind::New,
                        since: Instant::now(),
                    });
                }
            }
        }
        // Control clients.
        let mut drop_idx = Vec::new();
        for (i, cl) in clients.iter_mut().enumerate() {
            if !ready(6 + i) {
                if cl.kind == ClientKind::New && cl.since.elapsed() > Duration::from_secs(5) {
                    drop_idx.push(i);
                }
                continue;
            }
            let mut tmp = [0u8; 4096];
            match cl.stream.read(&mut tmp) {
                Ok(0) => drop_idx.push(i),
                Ok(n) => match cl.kind {
                    ClientKind::Console => {
                        if let Some(c) = &io.console {
                            write_all_raw(c.as_raw_fd(), &tmp[..n]);
                        }
                    }
                    ClientKind::StopWaiter => {}
                    ClientKind::New => {
                        cl.buf.extend_from_slice(&tmp[..n]);
                        if cl.buf.len() > 4096 {
                            drop_idx.push(i);
                            continue;
                        }
                        let Some(nl) = cl.buf.iter().position(|b| *b == b'\n') else {
                            continue;
                        };
                        let line = String::from_utf8_lossy(&cl.buf[..nl]).trim().to_string();
                        let rest = cl.buf[nl + 1..].to_vec();
                        let words: Vec<&str> = line.split_whitespace().collect();
                        match words.as_slice() {
                            ["stop", t, force] => {
                                let t =
                                    t.parse::<u64>().map(Duration::from_secs).unwrap_or(timeout);
                                let _ = cl.stream.write_all(b"stopping\n");
                                cl.kind = ClientKind::StopWaiter;
                                begin_stop(&mut stopping, *force == "1", false, t);
                            }
                            ["reboot"] => {
                                let _ = cl.stream.write_all(b"rebooting\n");
                                drop_idx.push(i);
                                begin_stop(&mut stopping, false, true, timeout);
                            }
                            ["console", rest_words @ ..] => {
                                let _ = cl.stream.write_all(b"console\n");
                                if let ([rows, cols], Some(c)) = (rest_words, &io.console)
                                    && let (Ok(r), Ok(cc)) =
                                        (rows.parse::<u16>(), cols.parse::<u16>())
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
                                if let (false, Some(c)) = (rest.is_empty(), &io.console) {
                                    write_all_raw(c.as_raw_fd(), &rest);
                                }
                            }
                            _ => {
                                let _ = cl.stream.write_all(b"error unknown request\n");
                                drop_idx.push(i);
                            }
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => drop_idx.push(i),
            }
        }
        for i in drop_idx.into_iter().rev() {
            clients.remove(i);
        }
        // A stop in progress: re-ask about once a second; kill at the deadline.
        if let Some(s) = stopping.as_mut()
            && !s.killed
        {
            if Instant::now() >= s.deadline {
                eprintln!("envc: {name} did not stop within its timeout; killing it");
                pid1.signal(libc::SIGKILL);
                s.killed = true;
            } else if s.last_signal.elapsed() >= Duration::from_secs(1) {
                // Early in boot init may not handle it yet (and systemd
                // blocks SIGRTMIN+3 only once it runs): ask again.
                let sig = if s.reboot {
                    plan.supervise.reboot_signal
                } else {
                    stop_sig(pid1)
                };
                pid1.signal(sig);
                s.last_signal = Instant::now();
            }
        }
    };
    // Whatever the guest logged last.
    drain_log(&io.log, &mut io.syslog);
    // Whatever PID 1 wrote last.
    if let Some(c) = &io.console {
        while let Ok(n) = read_raw(c.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            if io.echo {
                let _ = io::stdout().lock().write_all(&buf[..n]);
            }
            if let Some(f) = io.console_log.as_mut() {
                let _ = f.write_all(&buf[..n]);
            }
            for cl in clients.iter_mut().filter(|c| c.kind == ClientKind::Console) {
                let _ = cl.stream.write_all(&buf[..n]);
            }
        }
    }
    let _ = io::stdout().flush();
    let reboot_requested = stopping.as_ref().is_some_and(|s| s.reboot);
    let killed = stopping.as_ref().is_some_and(|s| s.killed);
    let end = decide(status, killed, reboot_requested);
    let code = match &end {
        End::Stopped { code, .. } => *code,
        End::Reboot { .. } => 0,
    };
    for cl in clients
        .iter_mut()
        .filter(|c| c.kind == ClientKind::StopWaiter)
    {
        let _ = cl.stream.set_nonblocking(false);
        let _ = cl.stream.write_all(format!("stopped {code}\n").as_bytes());
    }
    end
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
