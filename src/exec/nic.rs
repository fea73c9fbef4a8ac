//! The container's network interfaces: made on the host and moved into
//! the container's network namespace, then configured inside.

use super::kernel::Kernel;
use super::report::Status;
use super::{Failure, Runner, Undo};
use crate::plan::Op;
use std::os::fd::AsFd;

impl<K: Kernel> Runner<'_, K> {
    /// `CreateNic` (`op` is one): the NIC, in the network namespace of the
    /// container's process (opened once, held until teardown), undone at
    /// teardown. Its status says what was made.
    pub(crate) fn create_nic(&mut self, op: &Op) -> Result<Status, Failure> {
        let Op::CreateNic {
            device,
            nictype,
            parent,
            host_name,
            name,
            hwaddr,
            mtu,
        } = op
        else {
            unreachable!("run passes a CreateNic")
        };
        let pid = self
            .child_pid
            .ok_or_else(|| Failure::new("no container process for the NIC"))?;
        let netns = match &self.netns {
            Some(n) => n.clone(),
            None => {
                let n = std::rc::Rc::new(self.k.open_netns(pid)?);
                self.netns = Some(n.clone());
                n
            }
        };
        let mac = match hwaddr {
            Some(h) => Some(
                crate::profile::values::parse_mac(h)
                    .map_err(|e| Failure::new(format!("{device}: {e}")))?,
            ),
            None => None,
        };
        let spec = crate::net::NicSpec {
            nictype: *nictype,
            parent: parent.as_deref(),
            host_name: host_name.as_deref(),
            container_name: name,
            hwaddr: mac,
            mtu: *mtu,
            netns: netns.as_fd(),
        };
        let created = self.k.create_nic(&spec)?;
        self.undo.push(Undo::RemoveNic {
            nic: created,
            netns,
            name: name.clone(),
        });
        let mut d = format!("{name} ({})", crate::profile::load::nictype_name(*nictype));
        if let Some(h) = host_name {
            d.push_str(&format!(" host {h}"));
        }
        if let Some(p) = parent {
            d.push_str(&format!(" on {p}"));
        }
        d.push_str(&format!(" mac {}", hwaddr.as_deref().unwrap_or("(own)")));
        if let Some(m) = mtu {
            d.push_str(&format!(" mtu {m}"));
        }
        Ok(Status::detail(d))
    }

    /// `ConfigureNic`: address and default route inside, and up.
    pub(crate) fn configure_nic(
        &mut self,
        name: &str,
        ipv4_address: Option<&str>,
        ipv4_gateway: Option<&str>,
    ) -> Result<Status, Failure> {
        let ipv4 = match ipv4_address {
            Some(a) => Some(crate::profile::values::parse_ipv4_cidr(a).map_err(Failure::new)?),
            None => None,
        };
        let gw = match ipv4_gateway {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| Failure::new(format!("{g} is not an IPv4 address")))?,
            ),
            None => None,
        };
        self.k.configure_nic(name, ipv4, gw)?;
        Ok(Status::done())
    }
}
