//! The validated, stacked profile: every value is typed and knows the file
//! and key it came from.

use super::raw::{LogMode, NicType, NodeMethod, ProcMode, SysMode};
use super::values::{CpuAllowance, CpuLimit, MemoryLimit};
use crate::paths::{ContainerPath, HostPath};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a value came from: a profile file (relative to the top profile, or
/// `builtin:lxd`) and the dotted key inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Origin {
    pub file: String,
    pub key: String,
}

impl Origin {
    pub fn new(file: &str, key: impl Into<String>) -> Origin {
        Origin {
            file: file.to_string(),
            key: key.into(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.key)
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> At<T> {
    pub fn new(value: T, origin: Origin) -> At<T> {
        At { value, origin }
    }
}

/// How envc asks PID 1 for a clean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopSignal {
    /// `SIGRTMIN+3` (37) while PID 1 blocks it (systemd), else `SIGPWR`.
    Auto,
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Init {
    pub command: At<Vec<String>>,
    pub stop_signal: At<StopSignal>,
    pub reboot_signal: At<i32>,
    pub stop_timeout: At<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dev {
    pub size: At<u64>,
    pub mode: At<u32>,
    pub pts_options: At<String>,
    pub log: At<LogMode>,
    pub create: At<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub mode: At<ProcMode>,
    pub create: At<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sys {
    pub mode: At<SysMode>,
    pub create: At<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cgroup {
    pub parent: At<String>,
    pub namespace: At<bool>,
    pub device_allow: At<Vec<String>>,
    /// `cgroup.allow-unrestricted-devices`, when a layer sets it.
    pub allow_unrestricted_devices: Option<At<bool>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lxcfs {
    pub enabled: At<bool>,
    pub path: At<HostPath>,
}

/// The limits, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub memory: Option<MemoryLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub cpu: Option<CpuLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub cpu_allowance: Option<CpuAllowance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self == &Limits::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Char,
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Device {
    Unix {
        kind: NodeKind,
        path: ContainerPath,
        source: Option<HostPath>,
        number: Option<(u32, u32)>,
        mode: u32,
        uid: u32,
        gid: u32,
        required: bool,
        method: NodeMethod,
    },
    Disk {
        path: ContainerPath,
        source: HostPath,
        readonly: bool,
        required: bool,
        recursive: bool,
        only_if_mounted: bool,
        shift: bool,
    },
    Nic(Nic),
    Tmpfs {
        path: ContainerPath,
        size: Option<u64>,
        mode: u32,
        readonly: bool,
    },
    Symlink {
        path: ContainerPath,
        target: String,
    },
    Mqueue {
        path: ContainerPath,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    pub nictype: NicType,
    pub parent: Option<String>,
    pub name: Option<String>,
    pub hwaddr: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub host_name: Option<String>,
    pub ipv4_address: Option<(std::net::Ipv4Addr, u8)>,
    pub ipv4_gateway: Option<std::net::Ipv4Addr>,
}

impl Device {
    /// The container path the device occupies (NICs have none).
    pub fn path(&self) -> Option<&ContainerPath> {
        match self {
            Device::Unix { path, .. }
            | Device::Disk { path, .. }
            | Device::Tmpfs { path, .. }
            | Device::Symlink { path, .. }
            | Device::Mqueue { path } => Some(path),
            Device::Nic(_) => None,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Device::Unix {
                kind: NodeKind::Char,
                ..
            } => "unix-char",
            Device::Unix {
                kind: NodeKind::Block,
                ..
            } => "unix-block",
            Device::Disk { .. } => "disk",
            Device::Nic(_) => "nic",
            Device::Tmpfs { .. } => "tmpfs",
            Device::Symlink { .. } => "symlink",
            Device::Mqueue { .. } => "mqueue",
        }
    }
}

/// A named device and whether a user's profile (not the built-in base) declared it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedDevice {
    pub name: String,
    pub device: Device,
    pub origin: Origin,
    /// The raw keys as written, for the guest API's `/1.0/devices`.
    pub raw: crate::plan::DeviceKeys,
    pub from_user: bool,
}

/// The keys of an unprivileged container's id map, as the profile sets
/// them; the host's ranges settle the map when the container starts.
#[derive(Debug, Clone, PartialEq)]
pub struct IdmapKeys {
    pub isolated: bool,
    pub size: Option<u32>,
    pub base: Option<u32>,
    pub raw: Option<String>,
    /// The key a user would change when the map cannot be made: the most
    /// specific one set (`raw.idmap`, the isolated keys), else
    /// `security.privileged`.
    pub origin: Origin,
}

/// A stacked, validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: At<String>,
    pub description: Option<String>,
    /// As the plan writes it: relative to the top profile's directory, or absolute.
    pub rootfs: At<String>,
    /// Every config key, as LXD would store it.
    pub config: IndexMap<String, At<String>>,
    pub environment: IndexMap<String, At<String>>,
    pub limits: Limits,
    pub limits_origin: Option<Origin>,
    pub devlxd: At<bool>,
    /// `security.privileged`: the host's root is the container's root.
    pub privileged: At<bool>,
    /// An unprivileged container's id map keys (`None` when privileged).
    pub idmap: Option<IdmapKeys>,
    pub init: Init,
    pub dev: Dev,
    pub proc: Proc,
    pub sys: Sys,
    pub cgroup: Cgroup,
    pub lxcfs: Lxcfs,
    pub devices: Vec<NamedDevice>,
    /// The layer files, bottom first, as origins name them.
    pub layers: Vec<String>,
}
