//! The host side of `envc exec`: forks the child that joins the container
//! and starts the command there (`enter.rs`), then stays on the host with
//! the caller's terminal and signals until the command ends. With a terminal it copies
//! between the caller and the pty master the child sent back, in raw mode,
//! forwarding window-size changes; without one the command has the
//! caller's own stdin, stdout and stderr, except a terminal among them,
//! which a pipe stands in for (a container never holds a host terminal).
//! SIGINT, SIGTERM and SIGHUP are passed to the command either way.

use super::enter::{Entry, enter_and_exec};
use super::environment::Request;
use super::target::Target;
use crate::sys::{self, Forked, RawTerminal};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The signals envc passes on to the command.
const FORWARDED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
/// Those, and the end of a child.
pub const FORWARDED_AND_CHLD: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD];

/// One direction of copying: from `from` to `to`, through a buffer.
struct Pump {
    from: RawFd,
    to: RawFd,
    buf: Vec<u8>,
    done: bool,
    /// The pipe end this pump owns, closed when it ends (for the
    /// command's stdin: its EOF).
    owned: Option<OwnedFd>,
}

impl Pump {
    fn new(from: RawFd, to: RawFd, owned: Option<OwnedFd>) -> Pump {
        Pump {
            from,
            to,
            buf: Vec::new(),
            done: false,
            owned,
        }
    }

    fn end(&mut self) {
        self.done = true;
        self.buf.clear();
        self.owned = None;
    }

    /// Reads what is there (one read) into the buffer; `false` when
    /// nothing was (the source would block).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match sys::read(self.from, &mut chunk) {
            Ok(0) => self.end(),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: a pty whose slave is closed everywhere.
            Err(_) => self.end(),
        }
        true
    }

    /// Writes what it can of the buffer.
    fn flush(&mut self) {
        while !self.buf.is_empty() {
            match sys::write(self.to, &self.buf) {
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The reader is gone (EPIPE): nothing more goes this way.
                Err(_) => return self.end(),
            }
        }
    }
}

/// Forks the child into the container and relays until the command ends;
/// returns its exit status (`128+N` for signal N, 125 when envc failed).
pub fn run(
    target: &Target,
    request: Request<'_>,
    init_env: &[String],
    commands: &[Vec<String>],
    terminal: bool,
) -> u8 {
    match start_and_relay(target, request, init_env, commands, terminal) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("envc exec: {e}");
            125
        }
    }
}

fn start_and_relay(
    target: &Target,
    request: Request<'_>,
    init_env: &[String],
    commands: &[Vec<String>],
    terminal: bool,
) -> io::Result<u8> {
    let mut signals = FORWARDED.to_vec();
    signals.extend([libc::SIGWINCH, libc::SIGCHLD]);
    let (sigfd, _old_mask) = sys::signalfd_for(&signals)?;
    let socks = if terminal {
        Some(socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?)
    } else {
        None
    };
    // Pipes for our terminal fds: (our end, the child's end).
    let mut pipes: [Option<(OwnedFd, OwnedFd)>; 3] = [None, None, None];
    if !terminal {
        for (fd, slot) in pipes.iter_mut().enumerate() {
            if is_terminal(fd as RawFd) {
                let (r, w) = sys::pipe()?;
                let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
                *slot = Some(if fd == 0 { (w, r) } else { (r, w) });
            }
        }
    }
    let size = if terminal { sys::window_size(0) } else { None };
    let child_stdio = [0, 1, 2].map(|i| pipes[i].as_ref().map(|p| p.1.as_raw_fd()));
    // Our child joins, starts the command and passes it our signals; it
    // ends with the command's status.
    let pid = match sys::fork_single_threaded()? {
        Forked::Child => enter_and_exec(&Entry {
            target,
            request,
            init_env,
            commands,
            terminal: socks.as_ref().map(|(_, c)| (c.as_raw_fd(), size)),
            stdio: child_stdio,
        }),
        Forked::Parent(pid) => pid,
    };
    let mut relay = Relay {
        child: pid,
        status: None,
        sigfd,
        master: None,
        eof_to_terminal: false,
    };
    let mut pumps = Vec::new();
    match socks {
        Some((ours, theirs)) => {
            drop(theirs);
            relay.master = relay.receive_master(ours.as_raw_fd())?;
            if let Some(m) = &relay.master {
                sys::set_nonblocking(m.as_raw_fd());
                pumps.push(Pump::new(0, m.as_raw_fd(), None));
                relay.eof_to_terminal = !io::stdin().is_terminal();
                pumps.push(Pump::new(m.as_raw_fd(), 1, None));
            }
        }
        None => {
            for (fd, p) in pipes.into_iter().enumerate() {
                let Some((ours, theirs)) = p else { continue };
                drop(theirs);
                sys::set_nonblocking(ours.as_raw_fd());
                let raw = ours.as_raw_fd();
                pumps.push(match fd {
                    0 => Pump::new(0, raw, Some(ours)),
                    _ => Pump::new(raw, fd as RawFd, Some(ours)),
                });
            }
        }
    }
    let _raw = (relay.master.is_some() && io::stdin().is_terminal())
        .then(RawTerminal::enter)
        .flatten();
    relay.pump(&mut pumps);
    let status = match relay.status {
        Some(s) => s,
        None => sys::wait(pid)?,
    };
    Ok(super::enter::status_code(status).clamp(0, 255) as u8)
}

/// Whether our fd 0, 1 or 2 is a terminal.
fn is_terminal(fd: RawFd) -> bool {
    match fd {
        0 => io::stdin().is_terminal(),
        1 => io::stdout().is_terminal(),
        _ => io::stderr().is_terminal(),
    }
}

/// The parent's state while the command runs.
struct Relay {
    child: i32,
    status: Option<sys::WaitStatus>,
    sigfd: OwnedFd,
    master: Option<OwnedFd>,
    /// The command has a terminal but our stdin is not one: when stdin
    /// ends, the command gets the terminal's end of file (Ctrl-D).
    eof_to_terminal: bool,
}

impl Relay {
    /// Handles the signals that arrived: forwards, resizes, reaps.
    fn signals(&mut self) {
        while let Some(sig) = sys::read_signal(self.sigfd.as_fd()) {
            let sig = sig as i32;
            if FORWARDED.contains(&sig) && self.status.is_none() {
                sys::signal_child(self.child, None, sig);
            } else if sig == libc::SIGWINCH
                && let (Some(m), Some(ws)) = (&self.master, sys::window_size(0))
            {
                sys::set_window_size(m.as_raw_fd(), &ws);
            }
        }
        if self.status.is_none() {
            self.status = sys::try_wait(self.child);
        }
    }

    /// Waits for the pty master the child sends (or for the child to end
    /// without one: it said why on stderr).
    fn receive_master(&mut self, sock: RawFd) -> io::Result<Option<OwnedFd>> {
        loop {
            let mut pfds = [pollin(sock), pollin(self.sigfd.as_raw_fd())];
            if let Err(e) = sys::poll(&mut pfds, -1)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            if pfds[0].revents != 0 {
                return sys::recv_fd(sock).or(Ok(None));
            }
            if pfds[1].revents != 0 {
                self.signals();
            }
        }
    }

    /// Copies until the command has ended and its output is drained.
    fn pump(&mut self, pumps: &mut [Pump]) {
        loop {
            if self.status.is_some() {
                // The command is gone: what its output still holds, then stop
                // (a process it left behind may keep the pipe open).
                for p in pumps.iter_mut().filter(|p| p.to <= 2 && p.from > 2) {
                    while !p.done && p.fill() {
                        p.flush();
                    }
                }
                return;
            }
            let mut pfds = vec![pollin(self.sigfd.as_raw_fd())];
            for p in pumps.iter() {
                pfds.push(match (p.done, p.buf.is_empty()) {
                    (true, _) => pollnone(),
                    (false, true) => pollin(p.from),
                    (false, false) => libc::pollfd {
                        fd: p.to,
                        events: libc::POLLOUT,
                        revents: 0,
                    },
                });
            }
            if let Err(e) = sys::poll(&mut pfds, -1)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return;
            }
            for (p, fd) in pumps.iter_mut().zip(&pfds[1..]) {
                if fd.revents == 0 {
                    continue;
                }
                if p.buf.is_empty() {
                    p.fill();
                }
                p.flush();
            }
            if pfds[0].revents != 0 {
                self.signals();
            }
            // Once stdin has ended: the terminal's end of file, Ctrl-D.
            if self.eof_to_terminal
                && pumps.first().is_some_and(|p| p.done)
                && let Some(m) = &self.master
            {
                let _ = sys::write(m.as_raw_fd(), &[0x04]);
                self.eof_to_terminal = false;
            }
        }
    }
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn pollnone() -> libc::pollfd {
    libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }
}
