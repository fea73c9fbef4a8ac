//! [`Rtnl`]: one blocking `NETLINK_ROUTE` socket and the link/address/route requests
//! envc makes on it.
//!
//! A netlink socket acts on the network namespace it was created in, for its whole
//! life: [`Rtnl::new`] works on the caller's (thread's) namespace, [`Rtnl::in_netns`]
//! on another one.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::error::{NetError, Result};
use super::validate_ifname;

/// `NLM_F_CAPPED` / `NLM_F_ACK_TLVS` (flags of an `NLMSG_ERROR` reply).
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Receive buffer: larger than any single rtnetlink datagram (the kernel's dump
/// messages fit in 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// A network namespace to move an interface to.
#[derive(Debug, Clone, Copy)]
pub enum Netns<'a> {
    /// An fd of the namespace (`/proc/PID/ns/net`, `/proc/thread-self/ns/net`, ...).
    Fd(BorrowedFd<'a>),
    /// The namespace of a process.
    Pid(u32),
}

/// What one link looks like (from `RTM_GETLINK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetails {
    pub index: u32,
    pub name: String,
    /// The hardware address, when it is a 6-byte (Ethernet) one.
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The `IFLA_INFO_KIND` ("veth", "bridge", "macvlan", "dummy", ...), if any.
    pub kind: Option<String>,
    /// The index of the bridge/bond it is attached to.
    pub master: Option<u32>,
}

impl LinkDetails {
    fn from_message(m: &LinkMessage) -> LinkDetails {
        let mut d = LinkDetails {
            index: m.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            kind: None,
            master: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => d.name = n.clone(),
                LinkAttribute::Address(a) => d.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => d.mtu = *m,
                LinkAttribute::Controller(i) => d.master = Some(*i),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            d.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        d
    }
}

/// Why a request failed, before it is given its context (see [`ReqError::ctx`]).
#[derive(Debug)]
pub(crate) enum ReqError {
    Nack { errno: i32, message: Option<String> },
    Io(io::Error),
    Protocol(String),
}

impl ReqError {
    fn errno(&self) -> Option<i32> {
        match self {
            ReqError::Nack { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn ctx(self, op: impl Into<String>) -> NetError {
        let op = op.into();
        match self {
            ReqError::Nack { errno, message } => NetError::Kernel { op, errno, message },
            ReqError::Io(source) => NetError::Os { op, source },
            ReqError::Protocol(detail) => NetError::Protocol { op, detail },
        }
    }
}

/// One `NETLINK_ROUTE` socket (blocking) and its sequence counter.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

fn os(op: &str) -> impl FnOnce(io::Error) -> NetError + '_ {
    move |source| NetError::Os {
        op: op.to_string(),
        source,
    }
}

impl Rtnl {
    /// A socket in the calling thread's network namespace. Starts no thread.
    pub fn new() -> Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(os("open a NETLINK_ROUTE socket"))?;
        socket
            .bind_auto()
            .map_err(os("bind the NETLINK_ROUTE socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(os("connect the NETLINK_ROUTE socket"))?;
        // Both only improve error reports; kernels without them still work.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A socket in the network namespace `netns` (an fd of `/proc/PID/ns/net`). The
    /// calling thread's namespace is not touched: a short-lived thread enters `netns`,
    /// opens the socket and exits (the socket stays bound to `netns`). So: not before
    /// the container child exists.
    pub fn in_netns(netns: BorrowedFd<'_>) -> Result<Rtnl> {
        let raw = netns.as_raw_fd();
        let joined = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("envc-netns".into())
                .spawn_scoped(s, move || {
                    // SAFETY: setns on an fd the caller keeps open for this call; it
                    // only changes this (short-lived) thread's network namespace.
                    if unsafe { libc::setns(raw, libc::CLONE_NEWNET) } != 0 {
                        return Err(NetError::Os {
                            op: "enter the network namespace (setns)".into(),
                            source: io::Error::last_os_error(),
                        });
                    }
                    Rtnl::new()
                })
                .map(|h| h.join())
        });
        match joined {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NetError::Protocol {
                op: "open a NETLINK_ROUTE socket in another network namespace".into(),
                detail: "the helper thread panicked".into(),
            }),
            Err(source) => Err(NetError::Os {
                op: "start a thread to enter a network namespace".into(),
                source,
            }),
        }
    }

    /// A new fd of the network namespace this socket works in (`SIOCGSKNS`).
    pub fn netns_fd(&self) -> Result<OwnedFd> {
        // SAFETY: SIOCGSKNS takes no argument and returns a new fd (or -1).
        let fd = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::SIOCGSKNS as _) };
        if fd < 0 {
            return Err(NetError::Os {
                op: "get the netlink socket's network namespace (SIOCGSKNS)".into(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the kernel just gave us this fd; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    // ---- the request loop ----------------------------------------------------------

    /// Sends one request (with `NLM_F_REQUEST | NLM_F_ACK | flags`) and returns the
    /// messages of the reply, once the kernel acknowledged it (or ended the dump).
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, ReqError> {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        loop {
            match self.socket.send(&out, 0) {
                Ok(n) if n == out.len() => break,
                Ok(n) => {
                    return Err(ReqError::Protocol(format!(
                        "short send ({n} of {} bytes)",
                        out.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReqError::Io(e)),
            }
        }

        let mut replies = Vec::new();
        loop {
            let n = loop {
                match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ReqError::Io(e)),
                }
            };
            if n > self.buf.len() {
                return Err(ReqError::Protocol(format!(
                    "reply of {n} bytes does not fit the {}-byte buffer",
                    self.buf.len()
                )));
            }
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let b = &self.buf[off..n];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(ReqError::Protocol(format!(
                        "bad message length {len} in a {n}-byte reply"
                    )));
                }
                let msg = &b[..len];
                off += (len + 3) & !3;
                let mtype = u16::from_ne_bytes([msg[4], msg[5]]);
                let mflags = u16::from_ne_bytes([msg[6], msg[7]]);
                let mseq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
                if mseq != seq {
                    continue; // left over from an earlier, abandoned request
                }
                match mtype {
                    NLMSG_ERROR => {
                        let p = &msg[NLMSG_HDRLEN..];
                        if p.len() < 4 {
                            return Err(ReqError::Protocol("short NLMSG_ERROR".into()));
                        }
                        let code = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                        if code == 0 {
                            return Ok(replies);
                        }
                        return Err(ReqError::Nack {
                            errno: code.checked_abs().unwrap_or(i32::MAX),
                            message: ext_ack_message(p, mflags),
                        });
                    }
                    NLMSG_DONE => return Ok(replies),
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => return Err(ReqError::Protocol("NLMSG_OVERRUN".into())),
                    _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                        Ok(m) => {
                            if let NetlinkPayload::InnerMessage(inner) = m.payload {
                                replies.push(inner);
                            }
                        }
                        Err(e) => {
                            return Err(ReqError::Protocol(format!(
                                "cannot decode a reply of type {mtype}: {e}"
                            )));
                        }
                    },
                }
            }
        }
    }

    fn link_request(&mut self, msg: LinkMessage, flags: u16) -> Result<(), ReqError> {
        self.request(RouteNetlinkMessage::SetLink(msg), flags)
            .map(drop)
    }

    // ---- looking -------------------------------------------------------------------

    /// The link called `ifname`, or `None`.
    pub fn link(&mut self, ifname: &str) -> Result<Option<LinkDetails>> {
        validate_ifname(ifname)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(ifname.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(LinkDetails::from_message(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e.ctx(format!("look up interface {ifname}"))),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<LinkDetails>> {
        let replies = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|e| e.ctx("list the interfaces"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(LinkDetails::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Whether a link called `ifname` exists.
    pub fn link_exists(&mut self, ifname: &str) -> Result<bool> {
        Ok(self.link(ifname)?.is_some())
    }

    /// The index of `ifname` (error if there is none).
    pub fn ifindex(&mut self, ifname: &str) -> Result<u32> {
        self.require(ifname, "interface").map(|l| l.index)
    }

    /// The link `ifname`, or [`NetError::NoSuchInterface`] naming its `role`.
    pub(crate) fn require(&mut self, ifname: &str, role: &'static str) -> Result<LinkDetails> {
        self.link(ifname)?.ok_or_else(|| NetError::NoSuchInterface {
            role,
            ifname: ifname.to_string(),
        })
    }

    /// The index of the bridge `bridge`, after checking it exists and is a bridge.
    pub fn bridge_index(&mut self, bridge: &str) -> Result<u32> {
        let l = self.require(bridge, "bridge")?;
        if l.kind.as_deref() != Some("bridge") {
            return Err(NetError::NotABridge {
                ifname: bridge.to_string(),
                kind: l.kind,
            });
        }
        Ok(l.index)
    }

    // ---- creating and deleting ----------------------------------------------------

    /// A veth pair `host_name` <-> `peer_name`, both in this namespace, both down.
    pub fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        mtu: Option<u32>,
    ) -> Result<()> {
        self.create_veth_full(host_name, peer_name, None, mtu, None)
    }

    /// A veth pair whose end `peer_name` is created directly in the namespace
    /// `peer_netns` (with MAC `peer_hwaddr`), and `host_name` here. Both ends get `mtu`;
    /// both are down.
    pub fn create_veth_into(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_hwaddr: Option<[u8; 6]>,
        mtu: Option<u32>,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<()> {
        self.create_veth_full(host_name, peer_name, peer_hwaddr, mtu, Some(peer_netns))
    }

    fn create_veth_full(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_hwaddr: Option<[u8; 6]>,
        mtu: Option<u32>,
        peer_netns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        validate_ifname(host_name)?;
        validate_ifname(peer_name)?;
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.into()));
        if let Some(mac) = peer_hwaddr {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host_name.into()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let where_ = if peer_netns.is_some() {
            " (peer in the container's namespace)"
        } else {
            ""
        };
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| {
                e.ctx(format!(
                    "create veth pair {host_name} <-> {peer_name}{where_}"
                ))
            })
    }

    /// A macvlan (mode bridge) `name` on `parent`, in this namespace, down.
    pub fn create_macvlan(&mut self, parent: &str, name: &str, mtu: Option<u32>) -> Result<()> {
        self.create_macvlan_full(parent, name, None, mtu, None)
    }

    /// A macvlan (mode bridge) `name` on `parent` (a link of this namespace), created
    /// directly in the namespace `netns`, with MAC `hwaddr`; down.
    pub fn create_macvlan_into(
        &mut self,
        parent: &str,
        name: &str,
        hwaddr: Option<[u8; 6]>,
        mtu: Option<u32>,
        netns: BorrowedFd<'_>,
    ) -> Result<()> {
        self.create_macvlan_full(parent, name, hwaddr, mtu, Some(netns))
    }

    fn create_macvlan_full(
        &mut self,
        parent: &str,
        name: &str,
        hwaddr: Option<[u8; 6]>,
        mtu: Option<u32>,
        netns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        validate_ifname(name)?;
        let parent_index = self.require(parent, "macvlan parent")?.index;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Link(parent_index));
        if let Some(mac) = hwaddr {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = netns {
            m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Bridge,
            )])),
        ]));
        let where_ = if netns.is_some() {
            " in the container's namespace"
        } else {
            ""
        };
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.ctx(format!("create macvlan {name} on {parent}{where_}")))
    }

    /// Deletes the link `ifname` (one end of a veth pair takes the other with it).
    /// Returns `false` if it did not exist (already gone counts as done).
    pub fn delete_link(&mut self, ifname: &str) -> Result<bool> {
        validate_ifname(ifname)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(ifname.into()));
        match self.request(RouteNetlinkMessage::DelLink(m), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e.ctx(format!("delete interface {ifname}"))),
        }
    }

    // ---- changing a link ----------------------------------------------------------

    /// An `RTM_SETLINK` on `ifname` with `attrs` and the header flags `set`/`mask`.
    fn setlink(
        &mut self,
        ifname: &str,
        attrs: Vec<LinkAttribute>,
        set: LinkFlags,
        mask: LinkFlags,
        op: impl FnOnce() -> String,
    ) -> Result<()> {
        let index = self.ifindex(ifname)?;
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = set;
        m.header.change_mask = mask;
        m.attributes = attrs;
        self.link_request(m, 0).map_err(|e| e.ctx(op()))
    }

    /// Brings `ifname` up.
    pub fn set_up(&mut self, ifname: &str) -> Result<()> {
        self.setlink(ifname, vec![], LinkFlags::Up, LinkFlags::Up, || {
            format!("bring {ifname} up")
        })
    }

    /// Brings `ifname` down.
    pub fn set_down(&mut self, ifname: &str) -> Result<()> {
        self.setlink(ifname, vec![], LinkFlags::empty(), LinkFlags::Up, || {
            format!("bring {ifname} down")
        })
    }

    /// Attaches `ifname` to the bridge `bridge` (which must exist and be a bridge).
    pub fn set_master(&mut self, ifname: &str, bridge: &str) -> Result<()> {
        let br = self.bridge_index(bridge)?;
        self.set_master_index(ifname, br, bridge)
    }

    fn set_master_index(&mut self, ifname: &str, bridge_index: u32, bridge: &str) -> Result<()> {
        self.setlink(
            ifname,
            vec![LinkAttribute::Controller(bridge_index)],
            LinkFlags::empty(),
            LinkFlags::empty(),
            || format!("attach {ifname} to bridge {bridge}"),
        )
    }

    /// Renames `ifname` to `new_name` (the link must be down).
    pub fn rename(&mut self, ifname: &str, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        self.setlink(
            ifname,
            vec![LinkAttribute::IfName(new_name.into())],
            LinkFlags::empty(),
            LinkFlags::empty(),
            || format!("rename {ifname} to {new_name}"),
        )
    }

    /// Sets the MAC address of `ifname`.
    pub fn set_mac(&mut self, ifname: &str, mac: [u8; 6]) -> Result<()> {
        self.setlink(
            ifname,
            vec![LinkAttribute::Address(mac.to_vec())],
            LinkFlags::empty(),
            LinkFlags::empty(),
            || {
                format!(
                    "set the MAC address of {ifname} to {}",
                    super::format_mac(mac)
                )
            },
        )
    }

    /// Sets the MTU of `ifname`.
    pub fn set_mtu(&mut self, ifname: &str, mtu: u32) -> Result<()> {
        self.setlink(
            ifname,
            vec![LinkAttribute::Mtu(mtu)],
            LinkFlags::empty(),
            LinkFlags::empty(),
            || format!("set the MTU of {ifname} to {mtu}"),
        )
    }

    /// Moves `ifname` into the namespace `target`, under `new_name` there if given
    /// (the move and the rename are one request: the link never appears in `target`
    /// under its old name). The link arrives down.
    pub fn move_to_netns(
        &mut self,
        ifname: &str,
        target: Netns<'_>,
        new_name: Option<&str>,
    ) -> Result<()> {
        let mut attrs = vec![match target {
            Netns::Fd(fd) => LinkAttribute::NetNsFd(fd.as_raw_fd()),
            Netns::Pid(pid) => LinkAttribute::NetNsPid(pid),
        }];
        if let Some(n) = new_name {
            validate_ifname(n)?;
            attrs.push(LinkAttribute::IfName(n.into()));
        }
        self.setlink(
            ifname,
            attrs,
            LinkFlags::empty(),
            LinkFlags::empty(),
            || match new_name {
                Some(n) => format!("move {ifname} to another network namespace as {n}"),
                None => format!("move {ifname} to another network namespace"),
            },
        )
    }

    // ---- addresses and routes -----------------------------------------------------

    /// Every address of the namespace: (interface index, address, prefix).
    pub fn addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>> {
        let replies = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|e| e.ctx("list the addresses"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) => {
                    let addr = a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })?;
                    Some((a.header.index, addr, a.header.prefix_len))
                }
                _ => None,
            })
            .collect())
    }

    /// Adds `addr/prefix` to `ifname` (with the subnet's broadcast address for
    /// prefixes up to /30).
    pub fn add_ipv4_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        if prefix > 32 {
            return Err(NetError::InvalidSpec(format!(
                "IPv4 prefix length {prefix} of {addr} on {ifname} is over 32"
            )));
        }
        let index = self.ifindex(ifname)?;
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.scope = AddressScope::Universe;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        if prefix <= 30 {
            let host_mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let brd = Ipv4Addr::from(u32::from(addr) | host_mask);
            m.attributes.push(AddressAttribute::Broadcast(brd));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.ctx(format!("add address {addr}/{prefix} to {ifname}")))
    }

    /// Adds the IPv4 default route via `gateway` (through `ifname` if given).
    pub fn add_default_route_v4(&mut self, gateway: Ipv4Addr, ifname: Option<&str>) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header = RouteHeader {
            address_family: AddressFamily::Inet,
            destination_prefix_length: 0,
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Static,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        if let Some(dev) = ifname {
            let index = self.ifindex(dev)?;
            m.attributes.push(RouteAttribute::Oif(index));
        }
        let via = ifname.map(|d| format!(" dev {d}")).unwrap_or_default();
        self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.ctx(format!("add default route via {gateway}{via}")))
    }
}

/// The extended-ack text (`NLMSGERR_ATTR_MSG`) of an `NLMSG_ERROR` payload `p`
/// (code, then the echoed request, then TLVs when `NLM_F_ACK_TLVS`).
fn ext_ack_message(p: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || p.len() < 4 + NLMSG_HDRLEN {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize
    };
    let mut off = 4usize.checked_add(echoed)?;
    off = (off + 3) & !3;
    while off.checked_add(4)? <= p.len() {
        let len = u16::from_ne_bytes([p[off], p[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([p[off + 2], p[off + 3]]) & 0x3fff;
        if len < 4 || off + len > p.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let v = &p[off + 4..off + len];
            let v = v.split(|&b| b == 0).next().unwrap_or(v);
            let s = String::from_utf8_lossy(v).trim().to_string();
            return (!s.is_empty()).then_some(s);
        }
        off += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_is_found_after_a_capped_header() {
        let mut p = Vec::new();
        p.extend_from_slice(&(-22i32).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]); // echoed header
        let text = b"Invalid MTU\0";
        p.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(&p, NLM_F_CAPPED | NLM_F_ACK_TLVS).as_deref(),
            Some("Invalid MTU")
        );
        assert_eq!(ext_ack_message(&p, NLM_F_CAPPED), None);
        assert_eq!(
            ext_ack_message(&p[..10], NLM_F_CAPPED | NLM_F_ACK_TLVS),
            None
        );
    }
}
