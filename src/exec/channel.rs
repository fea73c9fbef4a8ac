//! The supervisor and the container's first process talk over a
//! `SOCK_SEQPACKET` socketpair: one JSON message per packet, fds passed with
//! `SCM_RIGHTS`. The child runs the container's steps as soon as it is told
//! to go; the host runs its own (cgroup attach, NICs) meanwhile and says when
//! each is done, and a container step waits only for the host steps before it.

#![allow(unsafe_code)]

use super::report::Status;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Host → child: run your steps from `step` (0-based) on.
    Go { step: usize },
    /// Host → child: the host's step `step` is done.
    /// The host's step `step` is done; with it, the idmapped mount trees it
    /// made, named (as many fds as names).
    HostDone {
        step: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        trees: Vec<String>,
    },
    /// Host → child: the container's cgroup is made in the v1 hierarchies
    /// too; carries their `tasks` files (these paths, in order).
    CgroupReady { tasks: Vec<String> },
    /// Host → child: the cgroup is whole (the devices allow-list written).
    CgroupDone,
    /// Host → child: a host step failed; report what you did and stop.
    Abort,
    /// Child → host: what the steps so far did, ahead of the message that
    /// ends the set-up (a big profile's results would not fit in one).
    Results { results: Vec<(usize, Status, u32)> },
    /// Child → host: stopped on `Abort`, with what it did.
    Aborted { results: Vec<(usize, Status, u32)> },
    /// Child → host: every container step done; exec follows. Carries the
    /// console, `/dev/log` and guest API fds (the flags say which).
    Exec {
        results: Vec<(usize, Status, u32)>,
        console: bool,
        log: bool,
        guest_api: bool,
    },
    /// Child → host: a step failed; the child exits.
    Failed {
        results: Vec<(usize, Status, u32)>,
        step: usize,
        error: String,
    },
    /// Child → host: execve failed.
    ExecFailed { error: String, exit_code: u8 },
}

pub struct Channel {
    fd: OwnedFd,
    /// The receive buffer, made on the first receive and kept: room for the
    /// largest message, never zeroed (the kernel writes what is read), so a
    /// message does not cost a fresh zeroed buffer the size of the largest.
    buf: std::cell::RefCell<Vec<u8>>,
}

/// The largest message: a big profile's results come in several.
const MAX_MESSAGE: usize = 256 * 1024;

fn check(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

impl Channel {
    /// A connected pair (close-on-exec).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds is a valid array of two ints.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair returned two new fds nothing else owns.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let channel = |fd| Channel {
            fd,
            buf: Default::default(),
        };
        Ok((channel(a), channel(b)))
    }

    /// Whether the other end is closed (its process gone), without waiting.
    pub fn peer_gone(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        r > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    pub fn send(&self, msg: &Msg, fds: &[RawFd]) -> io::Result<()> {
        let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let mut iov = libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        };
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
        let mut cbuf = vec![0u8; space.max(1)];
        // SAFETY: a zeroed msghdr is valid; pointers set below stay alive for the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if !fds.is_empty() {
            hdr.msg_control = cbuf.as_mut_ptr().cast();
            hdr.msg_controllen = space as _;
            // SAFETY: the control buffer has room for one cmsg with these fds.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&hdr);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr(),
                    libc::CMSG_DATA(c) as *mut RawFd,
                    fds.len(),
                );
            }
        }
        loop {
            // SAFETY: hdr points at live buffers.
            let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
            match check(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The next message and any fds it carried; `None` at end of file.
    pub fn recv(&self) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
        self.recv_flags(0)
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setting a receive timeout on our socket with a valid timeval.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        self.recv()
    }

    fn recv_flags(&self, flags: libc::c_int) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut body = self.buf.borrow_mut();
        body.clear();
        body.reserve(MAX_MESSAGE);
        let room = body.spare_capacity_mut();
        let mut iov = libc::iovec {
            iov_base: room.as_mut_ptr().cast(),
            iov_len: room.len(),
        };
        let mut cbuf = [0u8; 256];
        // SAFETY: a zeroed msghdr is valid; the buffers outlive the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        hdr.msg_controllen = cbuf.len() as _;
        let mut reset_seen = false;
        let n = loop {
            // SAFETY: hdr points at live buffers.
            let r = unsafe {
                libc::recvmsg(
                    self.fd.as_raw_fd(),
                    &mut hdr,
                    libc::MSG_CMSG_CLOEXEC | flags,
                )
            };
            match check(r) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The peer exited with a message of ours unread (a child that
                // failed before it read the cgroup's files). The kernel reports
                // that once, even before messages still queued for us: read on.
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) && !reset_seen => {
                    reset_seen = true;
                    continue;
                }
                other => break other?,
            }
        };
        let mut fds = Vec::new();
        // SAFETY: walking the control messages the kernel filled in.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let count = len / std::mem::size_of::<RawFd>();
                    let data = libc::CMSG_DATA(c) as *const RawFd;
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                    }
                }
                c = libc::CMSG_NXTHDR(&hdr, c);
            }
        }
        if n == 0 {
            return Ok(None);
        }
        if hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(io::Error::other("message truncated"));
        }
        // SAFETY: recvmsg wrote the first `n` bytes of the spare capacity
        // (`n` is at most its length).
        unsafe { body.set_len(n) };
        let msg = serde_json::from_slice(&body).map_err(io::Error::other)?;
        Ok(Some((msg, fds)))
    }
}
