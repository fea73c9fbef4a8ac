//! `/dev/lxd/sock`: LXD's dev-lxd guest API (spec §6), served by the supervisor.
//!
//! The container's first process creates the listening socket inside the container and
//! hands its fd to the supervisor. The supervisor starts the server's thread while the
//! child is being set up ([`spawn_waiting`]) and gives it the listener when it comes
//! ([`ServerHandle::serve`]); [`spawn`] does both at once. ONE thread runs running a poll(2) loop over non-blocking sockets: the
//! listener, a stop socket and every client. HTTP/1.1 with keep-alive and pipelining
//! (`httparse` for request heads), bounded requests (64 KiB head + body: 431/413), a
//! deadline per connection (an incomplete request or an unread response is dropped after
//! [`Limits::request_timeout`], an idle keep-alive connection after
//! [`Limits::idle_timeout`]), a cap on connections (the oldest idle or refused one makes
//! room, else 503), and `GET /1.0/events` streams that stay open without a thread.
//!
//! Every connection's peer is checked by the [`Authorizer`] when it is accepted; a
//! refused peer gets 401 (plain text) for its request and is disconnected.

mod api;
mod auth;
mod http;
pub(crate) mod sys;

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use nix::sys::socket::{MsgFlags, send};

pub use auth::{Authorizer, Denied};

use api::Action;
use http::{Parsed, Response};

/// What the guest API serves, and to whom.
#[derive(Debug)]
pub struct GuestApi {
    /// The instance name (`instance-id` and `local-hostname` of `/1.0/meta-data`).
    pub name: String,
    /// `location` of `GET /1.0`: the host's name.
    pub host_name: String,
    /// `user.*` and `cloud-init.*` config keys (others are never served).
    pub config: IndexMap<String, String>,
    /// `GET /1.0/devices`, as given.
    pub devices: crate::plan::GuestDevices,
    /// Who may connect.
    pub authorized: Authorizer,
}

/// The server's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes one request (head and body) may have.
    pub max_request_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time for a request to arrive once begun, and for its response to be taken.
    pub request_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_bytes: 64 * 1024,
            max_connections: 64,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How long a connection being closed after an error still has its input drained, so the
/// client reads the error instead of a reset.
const LINGER: Duration = Duration::from_secs(1);
/// Most input drained while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// Pause before accepting again after running out of fds.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Most reads from one connection per poll round.
const READS_PER_WAKEUP: usize = 16;
/// A buffer this much bigger than needed is given back after a request.
const KEEP_CAPACITY: usize = 8 * 1024;

/// The running server; [`ServerHandle::stop`] (or dropping it) stops it and closes every
/// connection and the listener.
#[derive(Debug)]
pub struct ServerHandle {
    /// Gives the thread its listener ([`ServerHandle::serve`]); dropped
    /// unused, it tells a thread still waiting for one to end.
    listener: Option<std::sync::mpsc::SyncSender<OwnedFd>>,
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
    ready: Arc<AtomicBool>,
}

impl ServerHandle {
    /// Whether the guest said `PATCH /1.0 {"state":"Ready"}` (and not `Started` since).
    pub fn guest_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Starts serving `listener`, for a server made by [`spawn_waiting`].
    pub fn serve(&mut self, listener: OwnedFd) -> io::Result<()> {
        match self.listener.take() {
            Some(tx) => tx
                .send(listener)
                .map_err(|_| io::Error::other("the guest API thread is gone")),
            None => Err(io::Error::other("the guest API already has its listener")),
        }
    }

    /// Stops the server and waits for its thread (promptly: the stop socket is in its
    /// poll set).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Tells the thread to stop without waiting for it: it closes the
    /// listener and every connection on its own CPU while the caller goes
    /// on. Dropping the handle (or [`ServerHandle::stop`]) waits for it.
    pub fn request_stop(&mut self) {
        drop(self.listener.take());
        // Closing our end makes the thread's end readable (EOF).
        drop(self.stop.take());
    }

    fn shutdown(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts serving `listener` (a listening `AF_UNIX` stream socket) in one background
/// thread, with the default [`Limits`].
pub fn spawn(listener: OwnedFd, api: GuestApi) -> io::Result<ServerHandle> {
    spawn_with_limits(listener, api, Limits::default())
}

/// [`spawn`] with explicit bounds.
pub fn spawn_with_limits(
    listener: OwnedFd,
    api: GuestApi,
    limits: Limits,
) -> io::Result<ServerHandle> {
    let mut h = spawn_waiting(api, limits)?;
    h.serve(listener)?;
    Ok(h)
}

/// Starts the server's thread before its listener exists: it waits for
/// [`ServerHandle::serve`]. The supervisor starts it while the container
/// is still being built, so the thread's start is off the start's path.
pub fn spawn_waiting(api: GuestApi, limits: Limits) -> io::Result<ServerHandle> {
    let (stop_tx, stop_rx) = UnixStream::pair()?;
    stop_rx.set_nonblocking(true)?;
    let (listener_tx, listener_rx) = std::sync::mpsc::sync_channel::<OwnedFd>(1);
    let ready = Arc::new(AtomicBool::new(false));
    let ready_thread = Arc::clone(&ready);
    let thread = std::thread::Builder::new()
        .name("devlxd".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            // No listener (the start failed, or it is over): nothing to serve.
            let Ok(listener) = listener_rx.recv() else {
                return;
            };
            let listener = UnixListener::from(listener);
            if let Err(e) = listener.set_nonblocking(true) {
                eprintln!("envc: the guest API cannot serve: {e}");
                return;
            }
            let GuestApi {
                name,
                host_name,
                config,
                devices,
                authorized,
            } = api;
            Server {
                listener,
                stop: stop_rx,
                data: api::Data {
                    name,
                    host_name,
                    config,
                    devices,
                },
                auth: authorized,
                ready: ready_thread,
                limits,
                conns: Vec::new(),
                accept_paused_until: None,
            }
            .run()
        })?;
    Ok(ServerHandle {
        listener: Some(listener_tx),
        stop: Some(stop_tx),
        thread: Some(thread),
        ready,
    })
}

struct Server {
    listener: UnixListener,
    stop: UnixStream,
    data: api::Data,
    auth: Authorizer,
    ready: Arc<AtomicBool>,
    limits: Limits,
    conns: Vec<Conn>,
    accept_paused_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading requests and answering them.
    Http,
    /// An events stream: input is discarded, nothing times out.
    Events,
    /// Answered an error and half-closed; draining input until EOF or the deadline.
    Linger,
}

struct Conn {
    stream: UnixStream,
    /// `Err(body)` for a refused peer.
    auth: Result<(), String>,
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// Close once `out` is written.
    close_after: bool,
    /// Switch to [`Phase::Events`] once `out` is written.
    events_after: bool,
    sent_continue: bool,
    peer_eof: bool,
    closed: bool,
    deadline: Option<Instant>,
    /// When it last became idle (accepted, or answered with nothing pending).
    idle_since: Instant,
    drained: usize,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.phase == Phase::Http && self.inbuf.is_empty() && self.out_pos >= self.out.len()
    }

    fn pending_out(&self) -> bool {
        self.out_pos < self.out.len()
    }

    fn interest(&self, max: usize) -> i16 {
        if self.pending_out() {
            return libc::POLLOUT;
        }
        match self.phase {
            Phase::Events | Phase::Linger => libc::POLLIN,
            Phase::Http if self.inbuf.len() <= max && !self.close_after => libc::POLLIN,
            Phase::Http => 0,
        }
    }

    fn queue(&mut self, bytes: &[u8], now: Instant, limits: &Limits) {
        if !self.pending_out() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(bytes);
        self.deadline = after(now, limits.request_timeout);
    }

    fn queue_response(
        &mut self,
        resp: &Response,
        head_only: bool,
        keep_alive_10: bool,
        now: Instant,
        limits: &Limits,
    ) {
        let bytes = resp.serialize(
            head_only,
            self.close_after,
            keep_alive_10 && !self.close_after,
        );
        self.queue(&bytes, now, limits);
    }

    /// Answers `status` and closes (after a linger so the client can read it).
    fn fail(&mut self, status: u16, now: Instant, limits: &Limits) {
        self.close_after = true;
        self.inbuf = Vec::new();
        self.queue_response(&Response::status(status), false, false, now, limits);
    }

    /// Writes what it can of `out`.
    fn flush(&mut self, now: Instant, limits: &Limits) {
        while self.pending_out() {
            match send(
                self.stream.as_raw_fd(),
                &self.out[self.out_pos..],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => self.out_pos += n,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        // Everything written.
        self.out = shrink(std::mem::take(&mut self.out));
        self.out_pos = 0;
        if self.events_after {
            self.events_after = false;
            self.phase = Phase::Events;
            self.deadline = None;
            self.inbuf = Vec::new();
        } else if self.close_after {
            if self.peer_eof {
                self.closed = true;
            } else {
                let _ = self.stream.shutdown(std::net::Shutdown::Write);
                self.phase = Phase::Linger;
                self.deadline = after(now, LINGER);
            }
        } else if self.inbuf.is_empty() {
            self.idle_since = now;
            self.deadline = after(now, limits.idle_timeout);
            if self.peer_eof {
                self.closed = true;
            }
        } else {
            self.deadline = after(now, limits.request_timeout);
        }
    }

    /// Reads what is there (up to one request's worth past the limit, and a bounded
    /// amount per wake-up so one client can't hold the thread).
    fn read(&mut self, scratch: &mut [u8], now: Instant, limits: &Limits) {
        for _ in 0..READS_PER_WAKEUP {
            let room = match self.phase {
                Phase::Http => (limits.max_request_bytes + 1).saturating_sub(self.inbuf.len()),
                Phase::Events | Phase::Linger => scratch.len(),
            };
            if room == 0 {
                return;
            }
            let want = room.min(scratch.len());
            match (&self.stream).read(&mut scratch[..want]) {
                Ok(0) => {
                    self.peer_eof = true;
                    if self.phase != Phase::Http {
                        self.closed = true;
                    }
                    return;
                }
                Ok(n) => match self.phase {
                    Phase::Http => {
                        if self.inbuf.is_empty() && !self.pending_out() {
                            // A request begins: it has request_timeout to arrive.
                            self.deadline = after(now, limits.request_timeout);
                        }
                        self.inbuf.extend_from_slice(&scratch[..n]);
                    }
                    Phase::Events => {}
                    Phase::Linger => {
                        self.drained += n;
                        if self.drained > LINGER_BYTES {
                            self.closed = true;
                            return;
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }
}

/// `now + d`, or no deadline at all if that is beyond what `Instant` can hold.
fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Gives back a buffer's memory if it grew for a big request.
fn shrink(mut v: Vec<u8>) -> Vec<u8> {
    v.clear();
    if v.capacity() > KEEP_CAPACITY {
        Vec::new()
    } else {
        v
    }
}

impl Server {
    fn run(mut self) {
        let mut scratch = vec![0u8; 16 * 1024];
        let mut fds: Vec<sys::PollFd> = Vec::new();
        loop {
            let now = Instant::now();
            self.conns
                .retain(|c| !c.closed && c.deadline.is_none_or(|d| d > now));
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }

            fds.clear();
            fds.push(pollfd(self.stop.as_raw_fd(), libc::POLLIN));
            let listen_events = if self.accept_paused_until.is_none() {
                libc::POLLIN
            } else {
                0
            };
            fds.push(pollfd(self.listener.as_raw_fd(), listen_events));
            for c in &self.conns {
                fds.push(pollfd(
                    c.stream.as_raw_fd(),
                    c.interest(self.limits.max_request_bytes),
                ));
            }
            let next = self
                .conns
                .iter()
                .filter_map(|c| c.deadline)
                .chain(self.accept_paused_until)
                .min();
            let timeout = match next {
                // Round up so a wake-up is never early.
                Some(t) => {
                    i32::try_from(t.saturating_duration_since(now).as_micros().div_ceil(1000))
                        .unwrap_or(i32::MAX)
                }
                None => -1,
            };
            if sys::poll(&mut fds, timeout).is_err() {
                // EINVAL/ENOMEM: nothing sensible to do but retry after a moment.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if fds[0].revents != 0 {
                return;
            }
            let now = Instant::now();
            let mut conns = std::mem::take(&mut self.conns);
            for (c, pfd) in conns.iter_mut().zip(&fds[2..]) {
                if pfd.revents != 0 {
                    self.serve(c, pfd.revents, &mut scratch, now);
                }
            }
            self.conns = conns;
            if fds[1].revents & libc::POLLIN != 0 {
                self.accept(now);
            }
        }
    }

    fn serve(&self, c: &mut Conn, revents: i16, scratch: &mut [u8], now: Instant) {
        if revents & libc::POLLNVAL != 0 {
            c.closed = true;
            return;
        }
        // A hang-up while an answer is pending: the write fails and closes it.
        if revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 && c.pending_out() {
            c.flush(now, &self.limits);
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            && !c.pending_out()
            && !c.closed
        {
            c.read(scratch, now, &self.limits);
        }
        if c.phase == Phase::Http && !c.closed {
            self.answer(c, now);
        }
    }

    /// Answers the complete requests in `c.inbuf`, one at a time (the next once the
    /// previous answer is written).
    fn answer(&self, c: &mut Conn, now: Instant) {
        let limits = &self.limits;
        while !c.closed && c.phase == Phase::Http && !c.pending_out() && !c.close_after {
            if c.inbuf.is_empty() {
                if c.peer_eof {
                    c.closed = true;
                }
                return;
            }
            match http::parse(&c.inbuf, limits.max_request_bytes) {
                Parsed::Partial { expect_continue } => {
                    if c.peer_eof {
                        c.closed = true;
                        return;
                    }
                    if expect_continue && !c.sent_continue && c.auth.is_ok() {
                        c.sent_continue = true;
                        c.queue(http::CONTINUE, now, limits);
                        c.flush(now, limits);
                        // The request is still being received.
                        c.deadline = after(now, limits.request_timeout);
                    }
                    return;
                }
                Parsed::Error(status) => {
                    c.fail(status, now, limits);
                }
                Parsed::Complete(req, used) => {
                    c.inbuf.drain(..used);
                    if c.inbuf.is_empty() {
                        c.inbuf = shrink(std::mem::take(&mut c.inbuf));
                    }
                    c.sent_continue = false;
                    let head_only = req.method == "HEAD";
                    match &c.auth {
                        Err(why) => {
                            c.close_after = true;
                            let resp = Response::error(401, why);
                            c.queue_response(&resp, head_only, false, now, limits);
                        }
                        Ok(()) => {
                            match api::handle(
                                &self.data,
                                &self.ready,
                                &req.method,
                                &req.target,
                                &req.body,
                            ) {
                                Action::Reply(resp) => {
                                    c.close_after = !req.keep_alive;
                                    c.queue_response(
                                        &resp,
                                        head_only,
                                        req.http10_keep_alive,
                                        now,
                                        limits,
                                    );
                                }
                                Action::Events => {
                                    c.events_after = true;
                                    c.queue(http::EVENTS_HEAD, now, limits);
                                }
                            }
                        }
                    }
                }
            }
            c.flush(now, limits);
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => {}
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                        // Out of fds or memory (or a broken listener): back off.
                        _ => self.accept_paused_until = after(now, ACCEPT_BACKOFF),
                    }
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= self.limits.max_connections && !self.make_room() {
                let resp = Response::error(503, "Too many connections");
                let _ = send(
                    stream.as_raw_fd(),
                    &resp.serialize(false, true, false),
                    MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                );
                // Take what the client already sent, so closing doesn't reset it.
                let mut sink = [0u8; 1024];
                for _ in 0..16 {
                    if !matches!((&stream).read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                continue;
            }
            let auth = self.auth.check(stream.as_fd()).map_err(|d| d.to_string());
            let timeout = if auth.is_ok() {
                self.limits.idle_timeout
            } else {
                self.limits.request_timeout
            };
            self.conns.push(Conn {
                stream,
                auth,
                phase: Phase::Http,
                inbuf: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                close_after: false,
                events_after: false,
                sent_continue: false,
                peer_eof: false,
                closed: false,
                deadline: after(now, timeout),
                idle_since: now,
                drained: 0,
            });
        }
    }

    /// Drops one connection to make room: a refused or lingering one first, else the
    /// longest idle. False if every connection is busy or streaming events.
    fn make_room(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .position(|c| c.auth.is_err() || c.phase == Phase::Linger)
            .or_else(|| {
                self.conns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.is_idle())
                    .min_by_key(|(_, c)| c.idle_since)
                    .map(|(i, _)| i)
            });
        match victim {
            Some(i) => {
                self.conns.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

fn pollfd(fd: i32, events: i16) -> sys::PollFd {
    sys::PollFd {
        fd,
        events,
        revents: 0,
    }
}
