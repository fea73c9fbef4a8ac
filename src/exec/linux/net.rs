//! Network calls: NICs made, moved and configured through `crate::net`,
//! the container's network namespace held open, its loopback brought up.

#![allow(unsafe_code)]

use super::{Context, check, with_context};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A `crate::net` error as an `io::Error`, keeping its errno.
fn net_error(e: crate::net::NetError) -> io::Error {
    let errno = e.errno();
    let kind = errno.map_or(io::ErrorKind::Other, |n| {
        io::Error::from_raw_os_error(n).kind()
    });
    io::Error::new(
        kind,
        Context {
            errno,
            message: e.to_string(),
        },
    )
}

pub(super) fn open_netns(pid: i32) -> io::Result<OwnedFd> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| with_context(e, format!("the network namespace of {pid}")))?;
    Ok(OwnedFd::from(f))
}

pub(super) fn create_nic(spec: &crate::net::NicSpec<'_>) -> io::Result<crate::net::CreatedNic> {
    crate::net::create_nic(spec).map_err(net_error)
}

pub(super) fn remove_nic(
    nic: &crate::net::CreatedNic,
    netns: std::os::fd::BorrowedFd<'_>,
    in_container_name: &str,
) -> io::Result<()> {
    crate::net::remove_nic(nic, netns, in_container_name).map_err(net_error)
}

pub(super) fn configure_nic(
    name: &str,
    ipv4: Option<(std::net::Ipv4Addr, u8)>,
    gateway: Option<std::net::Ipv4Addr>,
) -> io::Result<()> {
    crate::net::configure_nic(name, name, ipv4, gateway).map_err(net_error)
}

pub(super) fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket for the interface ioctls.
    let s =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a new fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: a zeroed ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: reading and writing the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(|_| ())
}
