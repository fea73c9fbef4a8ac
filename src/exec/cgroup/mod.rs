//! The container's own cgroup: the host's layout, the files its limits
//! write, making it (parent chain, cpusets, controllers, limits, the devices
//! allow-list), joining and mounting it inside, and removing it at teardown.

mod create;
pub mod device_program;
mod inside;
mod layout;
mod limits;
mod remove;

pub use create::{CgroupPart, CgroupSpec, CgroupState};
pub use layout::{Hierarchy, Layout, LayoutKind, format_cpu_list, parse_cpu_list, parse_layout};
pub use limits::{LimitWrite, limit_controllers, limit_writes, mem_total};
