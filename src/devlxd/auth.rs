//! Who may use the guest API: the container's root, from a process in the container's
//! PID namespace or one nested below it.
//!
//! Per connection: `SO_PEERCRED` gives the peer's uid and pid as the host sees them (as
//! of `connect()`); `SO_PEERPIDFD` (Linux 6.5+) gives a pidfd of that same process, so a
//! PID recycled since can't impersonate it. The peer's PID namespace is taken from the
//! pidfd (`PIDFD_GET_PID_NAMESPACE`, 6.11+), else from `/proc/<pid>/ns/pid` checked
//! against the pidfd afterwards (the process still exists, so the PID was not reused),
//! else (no pidfd at all) from `/proc/<pid>/ns/pid` alone. From there it walks up with
//! `NS_GET_PARENT` until it meets the container's namespace (allowed) or runs out.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sys::socket::getsockopt;
use nix::sys::socket::sockopt::{PeerCredentials, PeerPidfd};

use super::sys;

/// Linux nests PID namespaces at most 32 deep.
const MAX_PID_NS_DEPTH: usize = 33;

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NsId {
    dev: u64,
    ino: u64,
}

fn ns_id(fd: &OwnedFd) -> io::Result<NsId> {
    let f = File::from(fd.try_clone()?);
    let m = f.metadata()?;
    Ok(NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The PID namespace of process `pid` (host PID), using `pidfd` (a pidfd of the same
/// process) when there is one so the answer can't be about a recycled PID.
fn pid_namespace_of(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<OwnedFd> {
    if let Some(pidfd) = pidfd
        && let Ok(ns) = sys::pidfd_pid_namespace(pidfd)
    {
        return Ok(ns);
    }
    pid_namespace_via_proc(pid, pidfd)
}

/// The fallback of [`pid_namespace_of`] for kernels before 6.11.
fn pid_namespace_via_proc(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<OwnedFd> {
    if pid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "process not visible from here",
        ));
    }
    let ns: OwnedFd = File::open(format!("/proc/{pid}/ns/pid"))?.into();
    if let Some(pidfd) = pidfd
        && !sys::pidfd_alive(pidfd)?
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "process exited while being checked",
        ));
    }
    Ok(ns)
}

/// Why a peer is refused (the text is the 401 body).
#[derive(Debug)]
pub enum Denied {
    /// Its uid is not the container's root.
    NotRoot { uid: u32 },
    /// Its process is not in the container's PID namespace nor below it.
    OutsideContainer,
    /// Its credentials could not be read or its process is gone.
    Unknown(io::Error),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // LXD's words.
            Denied::NotRoot { .. } => f.write_str("Access denied for non-root user"),
            Denied::OutsideContainer => {
                f.write_str("Access denied for processes outside the container")
            }
            Denied::Unknown(_) => f.write_str("Access denied: peer credentials unavailable"),
        }
    }
}

/// Decides, per connection, whether the peer is the container's root.
#[derive(Debug)]
pub struct Authorizer {
    /// The container's PID namespace, held open so its inode can't be reused.
    _ns: OwnedFd,
    ns: NsId,
    root_uid: u32,
}

impl Authorizer {
    /// Serve root (`root_uid`, as the host sees it) of the PID namespace that process
    /// `pid` (a host PID: the container's PID 1) is in, and of namespaces nested below it.
    /// Opens a pidfd of `pid` itself to read its namespace race-free.
    pub fn for_pid(pid: u32, root_uid: u32) -> io::Result<Authorizer> {
        match sys::pidfd_open(pid) {
            Ok(pidfd) => Authorizer::for_pidfd(pidfd, pid, root_uid),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                Authorizer::from_ns(pid_namespace_of(pid, None)?, root_uid)
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`Authorizer::for_pid`], with a pidfd of that process the caller already has
    /// (e.g. from `clone3(CLONE_PIDFD)`); the pidfd is only used here, not kept.
    pub fn for_pidfd(pidfd: OwnedFd, pid: u32, root_uid: u32) -> io::Result<Authorizer> {
        Authorizer::from_ns(pid_namespace_of(pid, Some(pidfd.as_fd()))?, root_uid)
    }

    /// Like [`Authorizer::for_pidfd`], with a pidfd the caller keeps (its
    /// container's first process, from `clone3(CLONE_PIDFD)`).
    pub fn for_child(pidfd: BorrowedFd<'_>, pid: u32, root_uid: u32) -> io::Result<Authorizer> {
        Authorizer::from_ns(pid_namespace_of(pid, Some(pidfd))?, root_uid)
    }

    fn from_ns(ns: OwnedFd, root_uid: u32) -> io::Result<Authorizer> {
        Ok(Authorizer {
            ns: ns_id(&ns)?,
            _ns: ns,
            root_uid,
        })
    }

    /// The uid that is served.
    pub fn root_uid(&self) -> u32 {
        self.root_uid
    }

    /// Checks the peer of a connected Unix stream socket.
    pub fn check(&self, sock: BorrowedFd<'_>) -> Result<(), Denied> {
        let cred =
            getsockopt(&sock, PeerCredentials).map_err(|e| Denied::Unknown(io::Error::from(e)))?;
        if cred.uid() != self.root_uid {
            return Err(Denied::NotRoot { uid: cred.uid() });
        }
        let pidfd = match getsockopt(&sock, PeerPidfd) {
            Ok(fd) => Some(fd),
            // Kernels before 6.5 don't have SO_PEERPIDFD.
            Err(nix::errno::Errno::ENOPROTOOPT) => None,
            // EINVAL/ESRCH: the peer is gone (its PID may already be someone else's).
            Err(e) => return Err(Denied::Unknown(io::Error::from(e))),
        };
        let pid = u32::try_from(cred.pid()).unwrap_or(0);
        let ns =
            pid_namespace_of(pid, pidfd.as_ref().map(|f| f.as_fd())).map_err(Denied::Unknown)?;
        if self.is_inside(ns) {
            Ok(())
        } else {
            Err(Denied::OutsideContainer)
        }
    }

    /// Whether namespace `ns` is the container's or nested below it.
    fn is_inside(&self, mut ns: OwnedFd) -> bool {
        for _ in 0..MAX_PID_NS_DEPTH {
            match ns_id(&ns) {
                Ok(id) if id == self.ns => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
            match sys::ns_parent(ns.as_fd()) {
                Ok(parent) => ns = parent,
                Err(_) => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn id(fd: io::Result<OwnedFd>) -> NsId {
        ns_id(&fd.unwrap()).unwrap()
    }

    #[test]
    fn every_way_to_read_a_pid_namespace_agrees() {
        let me = std::process::id();
        let pidfd = sys::pidfd_open(me).unwrap();
        let proc_ns = id(File::open("/proc/self/ns/pid").map(OwnedFd::from));
        assert_eq!(id(pid_namespace_via_proc(me, None)), proc_ns);
        assert_eq!(id(pid_namespace_via_proc(me, Some(pidfd.as_fd()))), proc_ns);
        assert_eq!(id(pid_namespace_of(me, Some(pidfd.as_fd()))), proc_ns);
        match sys::pidfd_pid_namespace(pidfd.as_fd()) {
            Ok(ns) => assert_eq!(ns_id(&ns).unwrap(), proc_ns),
            // Before Linux 6.11.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {
                eprintln!("PIDFD_GET_PID_NAMESPACE unavailable here: {e}")
            }
            Err(e) => panic!("PIDFD_GET_PID_NAMESPACE: {e}"),
        }
        assert!(sys::pidfd_alive(pidfd.as_fd()).unwrap());
        assert!(pid_namespace_via_proc(0, None).is_err());
    }

    #[test]
    fn a_dead_process_is_not_vouched_for() {
        let mut kid = std::process::Command::new("true").spawn().unwrap();
        let pid = kid.id();
        let pidfd = sys::pidfd_open(pid).unwrap();
        kid.wait().unwrap();
        assert!(!sys::pidfd_alive(pidfd.as_fd()).unwrap());
        assert!(pid_namespace_via_proc(pid, Some(pidfd.as_fd())).is_err());
    }

    #[test]
    fn socket_peer_checks() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = std::process::id();
        let uid = nix::unistd::getuid().as_raw();
        assert!(
            Authorizer::for_pid(me, uid)
                .unwrap()
                .check(a.as_fd())
                .is_ok()
        );
        let other = Authorizer::for_pid(me, uid.wrapping_add(1)).unwrap();
        assert!(matches!(
            other.check(a.as_fd()),
            Err(Denied::NotRoot { .. })
        ));
        assert_eq!(other.root_uid(), uid.wrapping_add(1));
    }
}
