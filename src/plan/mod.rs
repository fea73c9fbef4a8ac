//! The plan: an ordered list of small imperative steps, pure data, that the
//! executor replays. Compiling the same profiles gives the same plan on every
//! machine; what the host decides stays in the plan as a condition.

mod check;
mod text;

pub use check::PlanError;

use crate::paths::{ContainerPath, HostPath};
use crate::profile::Origin;
use crate::profile::model::{Limits, NodeKind, StopSignal};
use crate::profile::raw::{NicType, ProcMode};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The plan format's version; a saved plan with another version is refused.
pub const PLAN_FORMAT: u32 = 2;

/// A compiled container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The plan format's version (`PLAN_FORMAT`).
    pub format: u32,
    /// The container's name (and hostname).
    pub name: String,
    /// The rootfs directory: absolute, or relative to the top profile's
    /// directory (for a saved plan: to the plan file's directory).
    pub rootfs: String,
    /// The profile files, bottom layer first.
    pub layers: Vec<String>,
    /// How the supervisor treats PID 1.
    pub supervise: Supervise,
    /// What the guest API (`/dev/lxd/sock`) serves.
    pub guest: Guest,
    pub steps: Vec<Step>,
}

/// The supervisor's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Supervise {
    pub stop_signal: StopSignal,
    pub reboot_signal: i32,
    pub stop_timeout_secs: u32,
    pub origin: Origin,
}

/// A device's keys as LXD lists them (`type`, `path`, `nictype`, ...).
pub type DeviceKeys = IndexMap<String, String>;

/// The devices of the guest API, by name.
pub type GuestDevices = IndexMap<String, DeviceKeys>;

/// The guest API's data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// `user.*` and `cloud-init.*` config keys, as LXD stores them.
    pub config: IndexMap<String, String>,
    /// The devices the user's profiles declare (not the built-in base's), as LXD lists them.
    pub devices: GuestDevices,
}

/// Who runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// envc's supervisor, on the host.
    Host,
    /// The container's first process, inside its new namespaces.
    Container,
}

/// The fixed phase order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Checks,
    Namespaces,
    Rootfs,
    ProcSys,
    Dev,
    Mounts,
    Lxcfs,
    Cgroups,
    Network,
    ReadOnly,
    Finish,
}

impl Phase {
    pub fn title(self) -> &'static str {
        match self {
            Phase::Checks => "rootfs checks",
            Phase::Namespaces => "namespaces and cgroup",
            Phase::Rootfs => "rootfs",
            Phase::ProcSys => "/proc and /sys",
            Phase::Dev => "/dev",
            Phase::Mounts => "mounts and host paths",
            Phase::Lxcfs => "LXCFS",
            Phase::Cgroups => "cgroup namespace",
            Phase::Network => "network",
            Phase::ReadOnly => "read-only remounts",
            Phase::Finish => "pivot and exec",
        }
    }
}

/// One step: what to do, who does it, in which phase, and which profile key asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub phase: Phase,
    pub side: Side,
    pub origin: Origin,
    #[serde(flatten)]
    pub op: Op,
}

/// A namespace the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// A user namespace: it owns every other namespace of the container.
    User,
    Mount,
    Pid,
    Uts,
    Ipc,
    Net,
    Cgroup,
}

/// When a conditional bind happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BindWhen {
    /// Always; a missing source fails the start.
    Always,
    /// If the source exists; otherwise skipped and reported.
    IfExists,
    /// If a filesystem is mounted at the source; otherwise skipped and reported.
    IfMounted,
}

/// Where a device node's number comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceNumber {
    Fixed {
        major: u32,
        minor: u32,
    },
    /// Read from a host node when the container starts.
    FromHost {
        source: HostPath,
    },
}

/// The imperative steps. Each variant carries only its own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", deny_unknown_fields)]
pub enum Op {
    /// Opens the rootfs directory on the host; every later step resolves
    /// its paths inside it.
    OpenRootfs,
    /// The directory must exist in the rootfs (resolved inside it); created
    /// when `create` is set. A non-empty one gets a warning.
    CheckDirectory {
        path: ContainerPath,
        create: bool,
    },
    /// The init program must resolve inside the rootfs to an executable file.
    CheckInit {
        path: ContainerPath,
    },
    /// Create the container's cgroup (`parent/name`) in every hierarchy the
    /// host has, with the limits. Expands at run time: the report lists the
    /// hierarchies.
    CreateCgroup {
        parent: String,
        name: String,
        #[serde(default, skip_serializing_if = "Limits::is_empty")]
        limits: Limits,
        /// Device rules the devices controller allows (`c 1:3 rwm`): LXD's
        /// list plus the profile's own devices.
        device_allow: Vec<String>,
        /// Host nodes whose numbers are allowed too (read when the container starts).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        device_allow_from_host: Vec<HostPath>,
        /// Start even where the rules cannot be enforced
        /// (`cgroup.allow-unrestricted-devices`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unrestricted_devices_ok: bool,
        /// Hands the cgroup to the container's root (an unprivileged
        /// container's init makes its own tree below it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        delegate: bool,
    },
    /// Create the container's first process with these new namespaces.
    /// Chooses the unprivileged container's id map (host side, before the
    /// clone): root's range in `/etc/subuid` and `/etc/subgid` (LXD's
    /// fallback without one), a range of its own when `isolated`, and the
    /// `raw` lines (`raw.idmap`) punched in.
    ChooseIdmap {
        isolated: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<String>,
    },
    CloneChild {
        namespaces: Vec<Namespace>,
    },
    /// Writes the chosen map into the child's user namespace, which waits.
    WriteIdmap,
    /// Makes the rootfs as a detached mount idmapped with the child's user
    /// namespace (host side: it needs privilege over the filesystem) and
    /// hands it to the child, which attaches it with `BindRootfs`.
    MakeIdmappedRootfs,
    /// The container's first process joins its cgroup in every hierarchy (it
    /// writes 0 to each v1 `tasks`; cgroup2 it entered with the clone).
    AttachCgroup,
    /// Unshare the cgroup namespace (after the process was attached everywhere).
    UnshareCgroupNamespace,
    /// Make every mount private-to-the-container (`rslave`), so nothing propagates to the host.
    MakeMountsSlave,
    /// Bind the rootfs onto itself, so it is a mount point for `pivot_root`.
    BindRootfs {
        /// The host's idmapped mount of the rootfs (`MakeIdmappedRootfs`),
        /// not a bind of the rootfs onto itself.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        idmapped: bool,
    },
    /// The child takes the container's root (uid and gid 0 of its user
    /// namespace) once the rootfs is attached: from here on it acts as a
    /// host uid of the map.
    BecomeRoot,
    /// A random boot id for this start, bound read-only over `target`
    /// (`/proc/sys/kernel/random/boot_id`).
    BindBootId {
        target: ContainerPath,
    },
    /// Set the UTS hostname.
    SetHostname {
        hostname: String,
    },
    /// Mount a fresh procfs (`nosuid,nodev,noexec`).
    MountProc {
        target: ContainerPath,
        mode: ProcMode,
    },
    /// Mount sysfs (`nosuid,nodev,noexec`).
    MountSysfs {
        target: ContainerPath,
    },
    /// Bind a path onto itself, so it can keep other flags than its parent.
    BindSelf {
        target: ContainerPath,
    },
    /// Mount `/sys/fs/cgroup` as the host's layout needs (cgroup2, or the v1
    /// hierarchies of a hybrid host, or a tmpfs with binds without a cgroup
    /// namespace). Expands at run time: the report lists the mounts.
    MountCgroups {
        target: ContainerPath,
        namespace: bool,
    },
    /// Mount a tmpfs.
    MountTmpfs {
        target: ContainerPath,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        mode: u32,
        /// Device nodes may not be used (`nodev`): true except for `/dev`.
        nodev: bool,
        readonly: bool,
    },
    /// Make a device node (`mknod`); where that is refused and a host node is
    /// named, bind it over an empty placeholder instead. The report says which.
    MakeDevice {
        path: ContainerPath,
        kind: NodeKind,
        number: DeviceNumber,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<HostPath>,
        mode: u32,
        uid: u32,
        gid: u32,
        required: bool,
    },
    /// Bind a host device node over an empty placeholder.
    BindDevice {
        source: HostPath,
        path: ContainerPath,
        required: bool,
    },
    /// Mount the container's own devpts instance.
    MountDevpts {
        target: ContainerPath,
        options: String,
    },
    /// Bind `/dev/pts/ptmx` onto a placeholder at `path` (a symlink to
    /// `pts/ptmx` where the bind is refused).
    BindPtmx {
        path: ContainerPath,
    },
    /// Allocate a pty from the container's devpts, bind it on `path`, and hand
    /// the other end to the supervisor: PID 1's stdin, stdout and stderr.
    MakeConsole {
        path: ContainerPath,
    },
    /// Create a symbolic link.
    MakeSymlink {
        path: ContainerPath,
        target: String,
    },
    /// Mount a fresh mqueue filesystem.
    MountMqueue {
        target: ContainerPath,
    },
    /// Create the `/dev/log` datagram socket (a socket inode on the /dev
    /// tmpfs, not a mount); the supervisor receives and serves it. With
    /// `unless_systemd`, skipped when init resolves to systemd inside the
    /// rootfs (journald makes its own).
    MakeLogSocket {
        path: ContainerPath,
        unless_systemd: bool,
    },
    /// Create the guest API's listening socket (mode 0666); the supervisor
    /// receives and serves it.
    MakeGuestApiSocket {
        path: ContainerPath,
    },
    /// Bind a host path into the container, creating the mount point.
    BindMount {
        source: HostPath,
        target: ContainerPath,
        recursive: bool,
        readonly: bool,
        when: BindWhen,
        /// An unprivileged container's `binfmt_misc`: not bound where the
        /// kernel lets its user namespace mount a `binfmt_misc` of its own
        /// (Linux 6.7 and later; LXD's check).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unless_own_binfmt: bool,
        /// Attach the host's idmapped mount of `source`
        /// (`MakeIdmappedMount`) instead of a plain bind.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shift: bool,
    },
    /// Makes `source` as a detached mount idmapped with the child's user
    /// namespace (host side) for the `BindMount` with `shift` after it.
    MakeIdmappedMount {
        source: HostPath,
        recursive: bool,
        required: bool,
    },
    /// Overlay the files LXCFS offers under `source` onto /proc and /sys,
    /// if LXCFS runs. Expands at run time: the report lists the files.
    OverlayLxcfs {
        source: HostPath,
    },
    /// Bring the loopback interface up.
    BringUpLoopback,
    /// Create a NIC on the host and move it into the container's network namespace.
    CreateNic {
        device: String,
        nictype: NicType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
        /// The name the host side gets (p2p, bridged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_name: Option<String>,
        /// The name inside the container.
        name: String,
        /// The MAC (`None`: a physical NIC keeps its own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hwaddr: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
    },
    /// Configure a NIC inside: name, address, route, up.
    ConfigureNic {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ipv4_address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ipv4_gateway: Option<String>,
    },
    /// Make a mount read-only (`recursive`: the whole subtree, with `mount_setattr`).
    RemountReadOnly {
        target: ContainerPath,
        recursive: bool,
    },
    /// Make the rootfs the root (`pivot_root`) and detach the old one.
    PivotRoot,
    /// Hand the syscall filter to libseccomp; it is loaded into init just
    /// before `execve`, the last system call it does not filter.
    LoadSyscallFilter {
        filter: crate::seccomp::SyscallFilter,
    },
    /// Start init: `setsid`, console as 0/1/2, capabilities dropped, every fd
    /// above 2 closed, `execve` with exactly this environment, cwd `/`.
    ExecInit {
        command: Vec<String>,
        env: Vec<String>,
        drop_capabilities: Vec<String>,
    },
}

impl Op {
    /// The op's name as serialised.
    pub fn name(&self) -> &'static str {
        match self {
            Op::OpenRootfs => "OpenRootfs",
            Op::CheckDirectory { .. } => "CheckDirectory",
            Op::CheckInit { .. } => "CheckInit",
            Op::CreateCgroup { .. } => "CreateCgroup",
            Op::ChooseIdmap { .. } => "ChooseIdmap",
            Op::CloneChild { .. } => "CloneChild",
            Op::WriteIdmap => "WriteIdmap",
            Op::MakeIdmappedRootfs => "MakeIdmappedRootfs",
            Op::MakeIdmappedMount { .. } => "MakeIdmappedMount",
            Op::BecomeRoot => "BecomeRoot",
            Op::BindBootId { .. } => "BindBootId",
            Op::AttachCgroup => "AttachCgroup",
            Op::UnshareCgroupNamespace => "UnshareCgroupNamespace",
            Op::MakeMountsSlave => "MakeMountsSlave",
            Op::BindRootfs { .. } => "BindRootfs",
            Op::SetHostname { .. } => "SetHostname",
            Op::MountProc { .. } => "MountProc",
            Op::MountSysfs { .. } => "MountSysfs",
            Op::BindSelf { .. } => "BindSelf",
            Op::MountCgroups { .. } => "MountCgroups",
            Op::MountTmpfs { .. } => "MountTmpfs",
            Op::MakeDevice { .. } => "MakeDevice",
            Op::BindDevice { .. } => "BindDevice",
            Op::MountDevpts { .. } => "MountDevpts",
            Op::BindPtmx { .. } => "BindPtmx",
            Op::MakeConsole { .. } => "MakeConsole",
            Op::MakeSymlink { .. } => "MakeSymlink",
            Op::MountMqueue { .. } => "MountMqueue",
            Op::MakeLogSocket { .. } => "MakeLogSocket",
            Op::MakeGuestApiSocket { .. } => "MakeGuestApiSocket",
            Op::BindMount { .. } => "BindMount",
            Op::OverlayLxcfs { .. } => "OverlayLxcfs",
            Op::BringUpLoopback => "BringUpLoopback",
            Op::CreateNic { .. } => "CreateNic",
            Op::ConfigureNic { .. } => "ConfigureNic",
            Op::RemountReadOnly { .. } => "RemountReadOnly",
            Op::PivotRoot => "PivotRoot",
            Op::LoadSyscallFilter { .. } => "LoadSyscallFilter",
            Op::ExecInit { .. } => "ExecInit",
        }
    }

    /// Who runs it. Fixed per op; `Plan::check` holds steps to it.
    pub fn side(&self) -> Side {
        match self {
            Op::OpenRootfs
            | Op::CheckDirectory { .. }
            | Op::CheckInit { .. }
            | Op::CreateCgroup { .. }
            | Op::ChooseIdmap { .. }
            | Op::WriteIdmap
            | Op::MakeIdmappedRootfs
            | Op::MakeIdmappedMount { .. }
            | Op::CloneChild { .. }
            | Op::CreateNic { .. } => Side::Host,
            _ => Side::Container,
        }
    }

    /// The container path the step creates or mounts on, if any.
    pub fn target(&self) -> Option<&ContainerPath> {
        match self {
            Op::MountProc { target, .. }
            | Op::BindBootId { target }
            | Op::MountSysfs { target }
            | Op::BindSelf { target }
            | Op::MountCgroups { target, .. }
            | Op::MountTmpfs { target, .. }
            | Op::MountDevpts { target, .. }
            | Op::MountMqueue { target }
            | Op::BindMount { target, .. }
            | Op::RemountReadOnly { target, .. } => Some(target),
            Op::MakeDevice { path, .. }
            | Op::BindDevice { path, .. }
            | Op::BindPtmx { path }
            | Op::MakeConsole { path }
            | Op::MakeSymlink { path, .. }
            | Op::MakeLogSocket { path, .. }
            | Op::MakeGuestApiSocket { path }
            | Op::CheckDirectory { path, .. }
            | Op::CheckInit { path } => Some(path),
            _ => None,
        }
    }
}

impl Plan {
    /// Whether the container is privileged: no user namespace of its own,
    /// the host's root is its root.
    pub fn privileged(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| matches!(s.op, Op::ChooseIdmap { .. }))
    }

    /// The plan as pretty JSON (with a trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plans serialise");
        s.push('\n');
        s
    }

    /// Reads a saved plan, refusing other format versions and broken invariants.
    pub fn from_json(text: &str) -> Result<Plan, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a plan: {e}"))?;
        match v.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if f == PLAN_FORMAT as u64 => {}
            Some(f) => {
                return Err(format!(
                    "plan format {f} is not supported (this envc reads format {PLAN_FORMAT}); compile it again with `envc plan`"
                ));
            }
            None => return Err("not a plan: no `format` field".into()),
        }
        let plan: Plan = serde_json::from_value(v).map_err(|e| format!("not a valid plan: {e}"))?;
        plan.check()
            .map_err(|e| format!("the plan is inconsistent: {e}"))?;
        Ok(plan)
    }
}
