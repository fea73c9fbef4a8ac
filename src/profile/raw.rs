//! The profile language as serde reads it. The JSON Schema shipped in
//! `schema/` is generated from these types (doc comments become descriptions),
//! and the structural check of every file walks that same schema, so the
//! editor and `envc check` can never disagree.

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// An envc profile: a system container described as data, in LXD's layout
/// (`config` keys and named `devices`), plus envc's own sections for the parts
/// of the container environment LXD hard-codes. Profiles stack: the built-in
/// base (`builtin:lxd`) first, then the files listed in `profiles`, then this
/// file; later layers win.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "envc profile")]
pub struct RawProfile {
    /// The container's name. It is also its hostname, so it must be a valid
    /// hostname: letters, digits and `-`, 1 to 63 characters, not starting or
    /// ending with `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text describing the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The root filesystem directory. A relative path is relative to the
    /// directory of the file that sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// Further profile files stacked under this one, in order (each later one
    /// wins over the earlier ones, and this file wins over all of them).
    /// Relative to this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// LXD's flat configuration keys (quote them: `"limits.cpu" = "2"`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "ConfigSchema")]
    pub config: Config,
    /// The container's init (PID 1) and how envc signals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<RawInit>,
    /// The `/dev` tmpfs and what envc builds in it besides devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<RawDev>,
    /// How `/proc` is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc: Option<RawProc>,
    /// How `/sys` is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys: Option<RawSys>,
    /// The container's own cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<RawCgroup>,
    /// LXCFS overlays of `/proc` and `/sys` files, when LXCFS runs on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxcfs: Option<RawLxcfs>,
    /// Named devices, in LXD's vocabulary. A device with the same name in a
    /// later layer replaces the earlier one whole; `type = "none"` removes it.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub devices: IndexMap<String, RawDevice>,
}

/// A config value as written: LXD keeps every value as a string; envc also
/// accepts TOML booleans and integers where the key means one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl ConfigValue {
    /// The value as LXD would store it.
    pub fn to_lxd_string(&self) -> String {
        match self {
            ConfigValue::Bool(b) => b.to_string(),
            ConfigValue::Int(i) => i.to_string(),
            ConfigValue::Str(s) => s.clone(),
        }
    }
}

/// The `[config]` table: known keys plus the free `user.*`, `cloud-init.*` and
/// `environment.*` namespaces.
pub type Config = IndexMap<String, ConfigValue>;

/// The known config keys: name, JSON Schema of the value, description.
pub const CONFIG_KEYS: &[(&str, &str, &str)] = &[
    (
        "limits.memory",
        "string",
        "Memory limit: bytes with a unit (`512MiB`, `2GB`, `1073741824`) or a percentage of the host's memory (`50%`).",
    ),
    (
        "limits.cpu",
        "string-or-int",
        "CPUs: a count (`2`: that many CPUs, pinned) or a CPU set (`0-1,3`).",
    ),
    (
        "limits.cpu.allowance",
        "string",
        "CPU time: a percentage (`50%`) or a quota per period (`25ms/100ms`).",
    ),
    (
        "limits.processes",
        "string-or-int",
        "Maximum number of processes in the container.",
    ),
    (
        "security.devlxd",
        "bool",
        "Serve LXD's guest API at `/dev/lxd/sock` (default true).",
    ),
    (
        "security.privileged",
        "bool",
        "Run the container privileged: the host's root is the container's root (not a security boundary). Default false: the container gets its own user namespace and its root is an unprivileged host uid (LXD's default).",
    ),
    (
        "security.idmap.isolated",
        "bool",
        "Give this unprivileged container a range of host ids no other running container has (default false: root's whole range from /etc/subuid).",
    ),
    (
        "security.idmap.size",
        "string-or-int",
        "The size of an isolated container's id range (default 65536).",
    ),
    (
        "security.idmap.base",
        "string-or-int",
        "The host id an isolated container's range starts at (default: the first free range after root's first 65536 ids).",
    ),
    (
        "security.syscalls.deny_default",
        "bool",
        "LXD's default syscall filter (default true): `kexec_load`, `open_by_handle_at`, `init_module`, `finit_module` and `delete_module` fail with ENOSYS, `umount2` with `MNT_FORCE` with EACCES, in every ABI (on x86_64 also i386 and x32).",
    ),
    (
        "security.syscalls.deny_compat",
        "bool",
        "Refuse every 32-bit syscall (i386 and x32 on x86_64) with ENOSYS (default false).",
    ),
    (
        "security.syscalls.deny",
        "string",
        "System calls whose caller is killed (SIGSYS), added to the default filter: names separated by whitespace or commas (`mknodat`). Not with `security.syscalls.allow`.",
    ),
    (
        "security.syscalls.allow",
        "string",
        "An allow-list instead of the default filter: only these system calls run, any other kills its caller (SIGSYS). Names separated by whitespace or commas; it must hold `execve`. Not with the `security.syscalls.deny*` keys.",
    ),
    (
        "raw.idmap",
        "string",
        "Host ids mapped into an unprivileged container as they are, one per line, host first: `both 1000 1000`, `uid 50-60 500-510`, `gid 100000-110000 10000-20000`.",
    ),
];

/// The free config namespaces: prefix and description.
pub const CONFIG_NAMESPACES: &[(&str, &str)] = &[
    (
        "user.",
        "User data, served to the guest by `/dev/lxd/sock` (`user.meta-data` is appended to the meta-data).",
    ),
    (
        "cloud-init.",
        "cloud-init data (`cloud-init.user-data`, `cloud-init.vendor-data`, `cloud-init.network-config`), served by `/dev/lxd/sock`.",
    ),
    (
        "environment.",
        "An environment variable of PID 1: `\"environment.TZ\" = \"UTC\"`.",
    ),
];

/// Schema of the `[config]` table, written out by hand because its keys
/// contain dots: each known key with its value type, the free namespaces as
/// pattern properties, and nothing else.
pub fn config_schema(_: &mut SchemaGenerator) -> Schema {
    let mut props = serde_json::Map::new();
    for (key, kind, desc) in CONFIG_KEYS {
        let v = match *kind {
            "bool" => serde_json::json!({"type": "boolean", "description": desc}),
            "string-or-int" => {
                serde_json::json!({"type": ["string", "integer"], "description": desc})
            }
            _ => serde_json::json!({"type": "string", "description": desc}),
        };
        props.insert((*key).to_string(), v);
    }
    let mut patterns = serde_json::Map::new();
    for (prefix, desc) in CONFIG_NAMESPACES {
        let pat = format!("^{}.+$", prefix.replace('.', "\\."));
        patterns.insert(
            pat,
            serde_json::json!({"type": "string", "description": desc}),
        );
    }
    json_schema!({
        "description": "LXD's flat configuration keys. Unknown keys are errors, except under `user.`, `cloud-init.` and `environment.`.",
        "type": "object",
        "properties": props,
        "patternProperties": patterns,
        "additionalProperties": false
    })
}

/// Marker type so the `config` field gets the hand-written schema.
pub struct ConfigSchema;
impl JsonSchema for ConfigSchema {
    fn schema_name() -> Cow<'static, str> {
        "Config".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        config_schema(generator)
    }
}

/// A signal, by name (`SIGPWR`, `SIGRTMIN+3`) or number.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSignal {
    Name(String),
    Number(i64),
}

/// `[init]`: the container's PID 1.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawInit {
    /// The init program and its arguments, resolved inside the rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Signal for a clean shutdown. `auto`: `SIGRTMIN+3` (signal 37) when PID 1
    /// blocks it (systemd), else `SIGPWR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<RawSignal>,
    /// Signal that asks PID 1 to reboot (`SIGINT` for systemd and sysvinit;
    /// busybox init reboots on `SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_signal: Option<RawSignal>,
    /// Seconds to wait for a clean shutdown before the container is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub stop_timeout: Option<i64>,
}

/// A size: bytes as an integer, or a string with a unit (`500000`, `64MiB`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

/// What `/dev/log` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogMode {
    /// `none` when init resolves to systemd (journald makes `/dev/log`), `host` otherwise.
    Auto,
    /// A datagram socket served by envc, which writes what the guest logs to the container's log.
    Host,
    /// Nothing: the guest's syslog makes its own (what LXD really does).
    None,
}

/// `[dev]`: the `/dev` tmpfs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDev {
    /// The tmpfs size (LXD: 500000 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<RawSize>,
    /// The tmpfs root's mode, an octal string (LXD: `"0755"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Options of the container's own devpts instance at `/dev/pts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pts_options: Option<String>,
    /// What `/dev/log` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogMode>,
    /// Create `/dev` in the rootfs if it is missing (otherwise a missing one is an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// How `/proc` is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcMode {
    /// `mixed` for a privileged container, `rw` for an unprivileged one (LXD's defaults).
    Auto,
    /// LXD's `proc:mixed`: `/proc/sys` and `/proc/sysrq-trigger` read-only, `/proc/sys/net` writable.
    Mixed,
    /// Everything writable (LXD's `proc:rw`).
    Rw,
}

/// `[proc]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProc {
    /// `auto` (the default: `mixed` privileged, `rw` unprivileged), `mixed` or `rw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProcMode>,
    /// Create `/proc` in the rootfs if it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// How `/sys` is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SysMode {
    /// `mixed` for a privileged container, `rw` for an unprivileged one (LXD's defaults).
    Auto,
    /// LXD's `sys:mixed`: read-only, with `/sys/devices/virtual/net` writable.
    Mixed,
    /// Read-only.
    Ro,
    /// Writable (LXD's `sys:rw`).
    Rw,
}

/// `[sys]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSys {
    /// `auto` (the default: `mixed` privileged, `rw` unprivileged), `mixed`, `ro` or `rw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SysMode>,
    /// Create `/sys` in the rootfs if it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// `[cgroup]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCgroup {
    /// The cgroup under each hierarchy's root that holds envc's containers;
    /// the container's own cgroup is `PARENT/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Use a cgroup namespace when the kernel has one. `false` simulates a
    /// kernel without: `/sys/fs/cgroup` becomes a tmpfs with the host's
    /// hierarchies bound read-only and the container's own cgroup writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<bool>,
    /// Rules for the devices controller (where the host has one), after
    /// "deny all": `TYPE MAJOR:MINOR ACCESS` as in `c 1:3 rwm` (`*` for any
    /// number; type `c`, `b` or `a`; access of `r`, `w`, `m`). The
    /// container's own unix devices are added to these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_allow: Option<Vec<String>>,
    /// Start the container even where its device rules cannot be enforced
    /// (no v1 devices controller, and no cgroup2 device program: a kernel
    /// without `CONFIG_CGROUP_BPF`, or envc itself confined). Without it,
    /// such a start is refused. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unrestricted_devices: Option<bool>,
}

/// `[lxcfs]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLxcfs {
    /// Overlay LXCFS's files when LXCFS runs on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Where LXCFS is mounted on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A device, in LXD's vocabulary, selected by `type`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RawDevice {
    /// A character device node.
    UnixChar(RawUnixDevice),
    /// A block device node.
    UnixBlock(RawUnixDevice),
    /// A bind mount of a host path (file or directory) into the container.
    Disk(RawDisk),
    /// A network interface.
    Nic(RawNic),
    /// An extra tmpfs mount.
    Tmpfs(RawTmpfs),
    /// A symbolic link (envc's own type, used for the `/dev/fd` family).
    Symlink(RawSymlink),
    /// A fresh POSIX message queue filesystem (envc's own type).
    Mqueue(RawMqueue),
    /// Removes an inherited device of the same name.
    None(RawNone),
}

impl RawDevice {
    pub fn type_name(&self) -> &'static str {
        match self {
            RawDevice::UnixChar(_) => "unix-char",
            RawDevice::UnixBlock(_) => "unix-block",
            RawDevice::Disk(_) => "disk",
            RawDevice::Nic(_) => "nic",
            RawDevice::Tmpfs(_) => "tmpfs",
            RawDevice::Symlink(_) => "symlink",
            RawDevice::Mqueue(_) => "mqueue",
            RawDevice::None(_) => "none",
        }
    }
}

/// How a device node is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMethod {
    /// `mknod`; if that is refused and `source` is set, bind the host's node instead.
    Mknod,
    /// Bind-mount the host's node (`source`) over an empty placeholder.
    Bind,
}

/// `unix-char` / `unix-block`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUnixDevice {
    /// Where the node appears in the container (under `/dev`). Defaults to `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A host device node to take the major:minor from (read when the container starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Major number (with `minor`, instead of `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// Minor number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Permission bits, an octal string (`"0660"`; a bare 660 would be decimal in TOML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner uid inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967294u32))]
    pub uid: Option<i64>,
    /// Owner gid inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967294u32))]
    pub gid: Option<i64>,
    /// If false, a missing `source` is skipped and reported instead of failing the start (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// How the node is made (default `mknod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<NodeMethod>,
}

/// `disk`: a bind mount.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDisk {
    /// Where it is mounted in the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The host path to bind (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Mount read-only (recursively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    /// If false, a missing source is skipped and reported instead of failing the start (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Bind the mounts below the source too (`rbind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// Bind only if a filesystem is mounted at `source` on the host (envc's
    /// key, used for the conditional host paths such as `/sys/kernel/debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_if_mounted: Option<bool>,
    /// An unprivileged container sees the host's files through its id map
    /// (an idmapped mount, LXD's `shift`): host uid N is its uid N, and what
    /// its root makes is host uid 0's. Without it host files keep their
    /// host ids (unmapped ones show as `nobody`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
}

/// LXD's NIC kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NicType {
    /// A veth pair; the host side is `veth` + 8 hex digits unless `host_name` is set.
    P2p,
    /// A veth pair whose host side joins the bridge `parent`.
    Bridged,
    /// A macvlan (mode bridge) on the host interface `parent`.
    Macvlan,
    /// The host interface `parent` moved into the container (and back at stop).
    Physical,
}

/// `nic`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNic {
    /// The kind of interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nictype: Option<NicType>,
    /// The host bridge (`bridged`) or interface (`macvlan`, `physical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The name inside the container (default: the first free `ethN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// MAC address (default `00:16:3e:` + 3 bytes derived from the container and device names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<String>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<i64>,
    /// The host side's name (`p2p`, `bridged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// A static IPv4 address with prefix (`10.0.3.2/24`).
    #[serde(
        default,
        rename = "ipv4.address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<String>,
    /// The IPv4 default gateway.
    #[serde(
        default,
        rename = "ipv4.gateway",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_gateway: Option<String>,
}

/// `tmpfs`: an extra tmpfs mount.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTmpfs {
    /// Where it is mounted in the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size: bytes or a string with a unit (`64MiB`). Default: the kernel's (half of RAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<RawSize>,
    /// The root directory's mode, an octal string (default `"1777"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
}

/// `symlink`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSymlink {
    /// The link's path in the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What it points to (stored as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `mqueue`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMqueue {
    /// Where it is mounted (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `none`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNone {}

/// The JSON Schema of the profile language.
pub fn schema() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft07();
    let generator = settings.into_generator();
    let schema = generator.into_root_schema_for::<RawProfile>();
    let mut value = serde_json::to_value(schema).expect("a schema is always JSON");
    drop_nulls(&mut value);
    value
}

/// TOML has no null: an absent key is how a profile leaves a value unset. So
/// `Option<T>` is described as plain `T`.
fn drop_nulls(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(alts)) = map.get_mut("anyOf") {
                alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                if alts.len() == 1 {
                    let only = alts.remove(0);
                    map.remove("anyOf");
                    map.insert("allOf".into(), Value::Array(vec![only]));
                }
            }
            if map.get("format").and_then(Value::as_str) == Some("int64") {
                map.remove("format");
            }
            for (_, child) in map.iter_mut() {
                drop_nulls(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The schema as shipped in `schema/envc-profile.schema.json` (pretty JSON
/// with a trailing newline).
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).expect("a schema is always JSON");
    s.push('\n');
    s
}
