//! Container networking over rtnetlink (spec §7): the NICs of a container, made on the
//! host and moved into the container's network namespace, configured inside, and undone
//! at stop.
//!
//! Synchronous and thread-free: every call is a blocking request on a `NETLINK_ROUTE`
//! socket ([`Rtnl`]), which acts on the namespace it was opened in. The one exception is
//! [`Rtnl::in_netns`] (used by [`return_physical`]), which starts a short-lived thread to
//! open a socket in another namespace: only call it once the container child exists.
//!
//! How the executor uses it:
//! - host side, after the child exists, for each `CreateNic`: [`create_nic`] with a
//!   [`NicSpec`] whose `netns` is an fd of `/proc/CHILD/ns/net`; keep the [`CreatedNic`].
//!   The container end arrives in the container's namespace, down, under
//!   `container_name` (e.g. [`temp_name`] of the final name, or the final name itself:
//!   the namespace is the container's own, so no host name can clash either way).
//! - container side (in the child, in its namespace): [`bring_up_loopback`], then for
//!   each `ConfigureNic`: [`configure_nic`] (rename to `eth0`..., up, address, route).
//! - at stop or on failure, while envc still holds the container's netns fd:
//!   [`remove_nic`] for each [`CreatedNic`], last created first (deletes host veth ends,
//!   brings physical NICs back under their name).

mod error;
mod rtnl;

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};

use serde::{Deserialize, Serialize};

pub use self::error::{NetError, Result};
pub use self::rtnl::{LinkDetails, Netns, Rtnl};
pub use crate::profile::raw::NicType;

/// Linux's `IFNAMSIZ - 1`.
pub const IFNAME_MAX: usize = 15;

/// Checks `name` the way the kernel's `dev_valid_name` does.
pub fn validate_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > IFNAME_MAX {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("it contains `/`, `:`, NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetError::InvalidName {
            ifname: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A temporary name (`envc` + 8 hex digits, derived from `final_name`) for a NIC on its
/// way into the container, before [`configure_nic`] gives it `final_name`. Both sides
/// can compute it from the plan.
pub fn temp_name(final_name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in final_name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("envc{h:08x}")
}

/// `"00:16:3e:aa:bb:cc"` -> bytes (a unicast MAC, as profiles take it).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    crate::profile::values::parse_mac(s).ok()
}

pub use crate::profile::values::format_mac;

/// `"10.0.3.5/24"` -> (address, prefix length).
pub fn parse_ipv4_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    crate::profile::values::parse_ipv4_cidr(s).ok()
}

/// One NIC to create on the host (the executor's `CreateNic`).
#[derive(Debug, Clone, Copy)]
pub struct NicSpec<'a> {
    pub nictype: NicType,
    /// The bridge (bridged), the lower device (macvlan), the host interface (physical).
    pub parent: Option<&'a str>,
    /// The host end of the veth pair (p2p, bridged).
    pub host_name: Option<&'a str>,
    /// The name the NIC has when it arrives in the container's namespace.
    pub container_name: &'a str,
    /// MAC of the container side. For `physical`, `None` keeps the NIC's own.
    pub hwaddr: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// The container's network namespace (an fd of `/proc/PID/ns/net`).
    pub netns: BorrowedFd<'a>,
}

/// What [`create_nic`] made, i.e. what [`remove_nic`] has to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CreatedNic {
    /// A veth pair; deleting the host end deletes both.
    Veth { host_name: String },
    /// A macvlan in the container's namespace: it goes with the namespace.
    Macvlan { container_name: String },
    /// A host interface now in the container's namespace: to be moved back.
    Physical(PhysicalNic),
}

/// A host interface lent to the container, and how it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalNic {
    /// Its name on the host (restored when it comes back).
    pub host_name: String,
    /// Its MAC, MTU and up state on the host (restored when it comes back).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub was_up: bool,
}

/// See [`Rtnl::create_nic`]; on a new socket in the caller's namespace.
pub fn create_nic(spec: &NicSpec<'_>) -> Result<CreatedNic> {
    Rtnl::new()?.create_nic(spec)
}

/// See [`Rtnl::configure_nic`]; on a new socket in the caller's namespace.
pub fn configure_nic(
    current_name: &str,
    final_name: &str,
    ipv4: Option<(Ipv4Addr, u8)>,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    Rtnl::new()?.configure_nic(current_name, final_name, ipv4, gateway)
}

/// Brings `lo` up in the caller's namespace.
pub fn bring_up_loopback() -> Result<()> {
    Rtnl::new()?.set_up("lo")
}

/// See [`Rtnl::return_physical`]; into the caller's (thread's) namespace.
pub fn return_physical(
    container_netns: BorrowedFd<'_>,
    in_container_name: &str,
    nic: &PhysicalNic,
) -> Result<()> {
    Rtnl::new()?.return_physical(container_netns, in_container_name, nic)
}

/// See [`Rtnl::remove_nic`]; on a new socket in the caller's namespace.
pub fn remove_nic(
    nic: &CreatedNic,
    container_netns: BorrowedFd<'_>,
    in_container_name: &str,
) -> Result<()> {
    Rtnl::new()?.remove_nic(nic, container_netns, in_container_name)
}

/// Deletes the host end `host_name` of a veth pair; already gone is fine.
pub fn delete_link(host_name: &str) -> Result<bool> {
    Rtnl::new()?.delete_link(host_name)
}

pub use crate::profile::load::nictype_name;

fn need<'a>(v: Option<&'a str>, what: &str, nictype: NicType) -> Result<&'a str> {
    v.ok_or_else(|| NetError::InvalidSpec(format!("a {} NIC needs {what}", nictype_name(nictype))))
}

impl Rtnl {
    /// Host side of one NIC, in this socket's namespace (the host's): creates the
    /// interface, gives the container end `spec.hwaddr`/`spec.mtu` and puts it in
    /// `spec.netns` as `spec.container_name` (down); brings the host end up (p2p,
    /// bridged) and attaches it to the bridge `parent` (bridged). On failure nothing
    /// is left behind on the host (a physical NIC stays or is put back on the host).
    pub fn create_nic(&mut self, spec: &NicSpec<'_>) -> Result<CreatedNic> {
        validate_ifname(spec.container_name)?;
        match spec.nictype {
            NicType::P2p | NicType::Bridged => self.create_veth_nic(spec),
            NicType::Macvlan => {
                let parent = need(spec.parent, "a `parent` interface", spec.nictype)?;
                self.create_macvlan_into(
                    parent,
                    spec.container_name,
                    spec.hwaddr,
                    spec.mtu,
                    spec.netns,
                )?;
                Ok(CreatedNic::Macvlan {
                    container_name: spec.container_name.to_string(),
                })
            }
            NicType::Physical => self.lend_physical(spec),
        }
    }

    fn create_veth_nic(&mut self, spec: &NicSpec<'_>) -> Result<CreatedNic> {
        let host = need(spec.host_name, "a host-side name", spec.nictype)?;
        validate_ifname(host)?;
        let bridge = match spec.nictype {
            NicType::Bridged => {
                let br = need(spec.parent, "a `parent` bridge", spec.nictype)?;
                self.bridge_index(br)?; // before anything is made
                Some(br)
            }
            _ => None,
        };
        if self.link_exists(host)? {
            return Err(NetError::AlreadyExists {
                role: "host interface",
                ifname: host.to_string(),
            });
        }
        self.create_veth_into(host, spec.container_name, spec.hwaddr, spec.mtu, spec.netns)?;
        let finish = (|| {
            if let Some(br) = bridge {
                self.set_master(host, br)?;
            }
            self.set_up(host)
        })();
        match finish {
            Ok(()) => Ok(CreatedNic::Veth {
                host_name: host.to_string(),
            }),
            Err(e) => {
                let cleanup = self.delete_link(host).map(drop);
                Err(e.with_cleanup(cleanup))
            }
        }
    }

    fn lend_physical(&mut self, spec: &NicSpec<'_>) -> Result<CreatedNic> {
        let parent = need(spec.parent, "a `parent` host interface", spec.nictype)?;
        let before = self.require(parent, "physical interface")?;
        let orig = PhysicalNic {
            host_name: before.name.clone(),
            mac: before.mac,
            mtu: before.mtu,
            was_up: before.up,
        };
        let result = (|| {
            if before.up {
                self.set_down(parent)?;
            }
            if let Some(mac) = spec.hwaddr
                && before.mac != Some(mac)
            {
                self.set_mac(parent, mac)?;
            }
            if let Some(mtu) = spec.mtu
                && mtu != before.mtu
            {
                self.set_mtu(parent, mtu)?;
            }
            self.move_to_netns(parent, Netns::Fd(spec.netns), Some(spec.container_name))
        })();
        match result {
            Ok(()) => Ok(CreatedNic::Physical(orig)),
            Err(e) => {
                let cleanup = self.restore_physical(&orig);
                Err(e.with_cleanup(cleanup))
            }
        }
    }

    /// Puts back MAC, MTU and up state of a physical NIC that is on the host under its
    /// original name.
    fn restore_physical(&mut self, orig: &PhysicalNic) -> Result<()> {
        let name = orig.host_name.as_str();
        let now = self.require(name, "physical interface")?;
        if let Some(mac) = orig.mac
            && now.mac != Some(mac)
        {
            self.set_mac(name, mac)?;
        }
        if now.mtu != orig.mtu {
            self.set_mtu(name, orig.mtu)?;
        }
        if orig.was_up && !now.up {
            self.set_up(name)?;
        }
        Ok(())
    }

    /// Container side of one NIC, in this socket's namespace (the container's): renames
    /// `current_name` to `final_name` (if they differ), brings it up, adds `ipv4` and
    /// the default route via `gateway`.
    pub fn configure_nic(
        &mut self,
        current_name: &str,
        final_name: &str,
        ipv4: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        if current_name != final_name {
            if self.link_exists(final_name)? {
                return Err(NetError::AlreadyExists {
                    role: "container interface",
                    ifname: final_name.to_string(),
                });
            }
            self.rename(current_name, final_name)?;
        }
        self.set_up(final_name)?;
        if let Some((addr, prefix)) = ipv4 {
            self.add_ipv4_address(final_name, addr, prefix)?;
        }
        if let Some(gw) = gateway {
            self.add_default_route_v4(gw, Some(final_name))?;
        }
        Ok(())
    }

    /// Brings `lo` up.
    pub fn bring_up_loopback(&mut self) -> Result<()> {
        self.set_up("lo")
    }

    /// Moves the physical NIC `in_container_name` out of `container_netns` into this
    /// socket's namespace (the host's) under its original name `nic.host_name`, and
    /// restores its MAC, MTU and up state. Already back on the host counts as done.
    /// Starts a short-lived thread (see [`Rtnl::in_netns`]).
    pub fn return_physical(
        &mut self,
        container_netns: BorrowedFd<'_>,
        in_container_name: &str,
        nic: &PhysicalNic,
    ) -> Result<()> {
        let host_ns = self.netns_fd()?;
        let mut inner = Rtnl::in_netns(container_netns)?;
        if inner.link(in_container_name)?.is_none() {
            if self.link_exists(&nic.host_name)? {
                return self.restore_physical(nic);
            }
            return Err(NetError::NoSuchInterface {
                role: "physical NIC in the container",
                ifname: in_container_name.to_string(),
            });
        }
        if self.link_exists(&nic.host_name)? {
            return Err(NetError::InvalidSpec(format!(
                "cannot return physical NIC {in_container_name} to the host as {}: \
                 the host has another interface of that name",
                nic.host_name
            )));
        }
        inner.move_to_netns(
            in_container_name,
            Netns::Fd(host_ns.as_fd()),
            Some(&nic.host_name),
        )?;
        self.restore_physical(nic)
    }

    /// Undoes one [`create_nic`]: deletes a veth's host end (gone already is fine),
    /// returns a physical NIC (named `in_container_name` in the container), nothing for
    /// a macvlan (it goes with the namespace).
    pub fn remove_nic(
        &mut self,
        nic: &CreatedNic,
        container_netns: BorrowedFd<'_>,
        in_container_name: &str,
    ) -> Result<()> {
        match nic {
            CreatedNic::Veth { host_name } => self.delete_link(host_name).map(drop),
            CreatedNic::Macvlan { .. } => Ok(()),
            CreatedNic::Physical(p) => self.return_physical(container_netns, in_container_name, p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("veth0123456789a").is_ok());
        for bad in ["", "veth0123456789ab", ".", "..", "a/b", "a:b", "a b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
        let t = temp_name("eth0");
        assert_eq!(t.len(), 12);
        assert!(t.starts_with("envc"));
        assert_ne!(t, temp_name("eth1"));
        assert_eq!(t, temp_name("eth0"));
    }

    #[test]
    fn macs_and_cidrs() {
        let m = parse_mac("00:16:3e:Aa:0b:ff").unwrap();
        assert_eq!(m, [0, 0x16, 0x3e, 0xaa, 0x0b, 0xff]);
        assert_eq!(format_mac(m), "00:16:3e:aa:0b:ff");
        for bad in [
            "",
            "00:16:3e:aa:0b",
            "00:16:3e:aa:0b:ff:00",
            "0:16:3e:aa:0b:ff",
            "zz:16:3e:aa:0b:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_ipv4_cidr("10.0.3.5/24"),
            Some((Ipv4Addr::new(10, 0, 3, 5), 24))
        );
        assert_eq!(parse_ipv4_cidr("10.0.3.5/33"), None);
        assert_eq!(parse_ipv4_cidr("10.0.3.5"), None);
    }

    #[test]
    fn errors_name_what_failed() {
        let e = NetError::Kernel {
            op: "create veth pair a <-> b".into(),
            errno: libc::EEXIST,
            message: Some("some text".into()),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("create veth pair a <-> b: File exists"),
            "{s}"
        );
        assert!(s.ends_with("(some text)"), "{s}");
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let e = NetError::NotABridge {
            ifname: "dummy0".into(),
            kind: Some("dummy".into()),
        };
        assert_eq!(
            e.to_string(),
            "`dummy0` is not a bridge (it is a dummy interface)"
        );
    }
}
