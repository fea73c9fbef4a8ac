//! A pseudo-terminal made by a test, to drive envc the way a user's
//! terminal does (`apply` in the foreground, `console`, `exec -t`, `shell`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A pseudo-terminal made by the test: the master stays here (non-blocking, CLOEXEC),
/// the slave becomes a child's stdin/stdout/stderr and controlling terminal.
pub struct Pty {
    pub master: OwnedFd,
    /// Everything read from the master so far.
    pub seen: Vec<u8>,
}

impl Pty {
    pub fn open(rows: u16, cols: u16) -> (Pty, OwnedFd) {
        let (mut m, mut s) = (-1, -1);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds; null name and termios are allowed.
        let r =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds, owned from here on.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        for fd in [m, s] {
            // SAFETY: fcntl on fds we own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: as above.
        unsafe {
            let fl = libc::fcntl(m, libc::F_GETFL);
            libc::fcntl(m, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        (
            Pty {
                master,
                seen: Vec::new(),
            },
            slave,
        )
    }

    /// Starts `cmd` in a new session with `slave` as its terminal (0, 1, 2 and the
    /// controlling terminal). The caller drops its `slave` afterwards.
    pub fn spawn(mut cmd: Command, slave: &OwnedFd) -> Child {
        let dup = || Stdio::from(slave.try_clone().expect("dup the pty slave"));
        cmd.stdin(dup()).stdout(dup()).stderr(dup());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} on a pty: {e}"))
    }

    pub fn write(&self, bytes: &[u8]) {
        let mut data = bytes;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !data.is_empty() {
            // SAFETY: writing from a live buffer to our fd.
            let r =
                unsafe { libc::write(self.master.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if r > 0 {
                data = &data[r as usize..];
            } else {
                assert!(Instant::now() < deadline, "cannot write to the pty master");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Reads what is there (waiting up to `ms`); false once the slave side is closed.
    pub fn pump(&mut self, ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reading into a live buffer.
            let r =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                self.seen.extend_from_slice(&buf[..r as usize]);
                continue;
            }
            let e = std::io::Error::last_os_error();
            // EIO: no process has the slave open any more.
            return !(r == 0 || e.raw_os_error() == Some(libc::EIO));
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Waits until the output holds `needle` (counting from byte `from`).
    pub fn wait_for(&mut self, needle: &str, from: usize, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let text =
                String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..]).into_owned();
            if let Some(i) = text.find(needle) {
                return from + i + needle.len();
            }
            let open = self.pump(50);
            if !open || start.elapsed() > timeout {
                self.pump(0);
                panic!(
                    "no {needle:?} on the terminal ({}); it shows:\n{}",
                    if open { "timed out" } else { "closed" },
                    super::tail(&self.text(), 4000)
                );
            }
        }
    }

    /// The terminal's local modes (the master reports the slave's termios).
    pub fn lflag(&self) -> libc::tcflag_t {
        // SAFETY: tcgetattr into a zeroed termios.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(self.master.as_raw_fd(), &mut t), 0);
            t.c_lflag
        }
    }
}

/// Waits for a child started on a pty, pumping the pty meanwhile (so it never blocks
/// on a full terminal); kills it and panics after `timeout`.
pub fn wait_pty_child(child: &mut Child, pty: &mut Pty, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        pty.pump(20);
        if let Some(st) = child.try_wait().expect("try_wait") {
            pty.pump(50);
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the process on the pty did not exit within {timeout:?}; the terminal shows:\n{}",
                super::tail(&pty.text(), 4000)
            );
        }
    }
}

/// Kills a pty child on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
