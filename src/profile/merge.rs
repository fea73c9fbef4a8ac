//! The stacked whole: the layers' values merged (a later layer wins; a
//! device is replaced whole or masked), then what only the whole can show
//! (a missing name or rootfs, two devices on one path, a device on a path
//! envc itself uses), and the [`Profile`] made of it.

use super::convert::Part;
use super::layer::Layer;
use super::load::Sources;
use super::model::*;
use super::raw::*;
use super::spans::join;
use super::values::*;
use crate::diag::Problem;
use crate::paths::ContainerPath;
use indexmap::IndexMap;
use std::collections::HashMap;

/// Merges the layers' parts (bottom first) and checks the whole.
pub(super) fn merge_layers(
    mut parts: Vec<Part>,
    layers: &[Layer],
    sources: &Sources,
) -> Result<Profile, Vec<Problem>> {
    let mut problems = Vec::new();
    macro_rules! last {
        ($field:ident) => {
            parts.iter().rev().find_map(|p| p.$field.clone())
        };
    }
    let top = layers.last().expect("the top profile is a layer");
    // A missing key has no span: point at the top file's start.
    let at_top = |p: Problem, label: &str| p.at(&top.source, 0..0, label);
    let name = last!(name);
    let rootfs = last!(rootfs);
    if name.is_none() {
        problems.push(at_top(
            Problem::new("the profile has no `name`").help(
                "add a line like `name = \"web\"` (the name is also the container's hostname)",
            ),
            "no `name` here or in the files it stacks",
        ));
    }
    if rootfs.is_none() {
        problems.push(at_top(
            Problem::new("the profile has no `rootfs`")
                .help("add a line like `rootfs = \"rootfs\"` (relative to the file that sets it)"),
            "no `rootfs` here or in the files it stacks",
        ));
    }
    let mut config: IndexMap<String, At<String>> = IndexMap::new();
    for p in &parts {
        for (k, v) in &p.config {
            config.insert(k.clone(), v.clone());
        }
    }
    let devices = merge_devices(&mut parts);
    check_paths_unique(&devices, sources, &mut problems);
    check_nic_names_unique(&devices, sources, &mut problems);
    let mut missing = |what: &str| {
        problems.push(Problem::new(format!(
            "internal: the built-in base profile does not set `{what}`"
        )));
    };
    macro_rules! need {
        ($field:ident, $what:expr) => {
            match last!($field) {
                Some(v) => Some(v),
                None => {
                    missing($what);
                    None
                }
            }
        };
    }
    let command = need!(command, "init.command");
    let stop_signal = need!(stop_signal, "init.stop-signal");
    let reboot_signal = need!(reboot_signal, "init.reboot-signal");
    let stop_timeout = need!(stop_timeout, "init.stop-timeout");
    let dev_size = need!(dev_size, "dev.size");
    let dev_mode = need!(dev_mode, "dev.mode");
    let dev_pts = need!(dev_pts, "dev.pts-options");
    let dev_log = need!(dev_log, "dev.log");
    let dev_create = need!(dev_create, "dev.create");
    let proc_mode = need!(proc_mode, "proc.mode");
    let proc_create = need!(proc_create, "proc.create");
    let sys_mode = need!(sys_mode, "sys.mode");
    let sys_create = need!(sys_create, "sys.create");
    let cgroup_parent = need!(cgroup_parent, "cgroup.parent");
    let cgroup_ns = need!(cgroup_ns, "cgroup.namespace");
    let device_allow = need!(device_allow, "cgroup.device-allow");
    let unrestricted_devices = last!(unrestricted_devices);
    let lxcfs_enabled = need!(lxcfs_enabled, "lxcfs.enabled");
    let lxcfs_path = need!(lxcfs_path, "lxcfs.path");
    let devlxd = config
        .get("security.devlxd")
        .map(|v| At::new(v.value == "true", v.origin.clone()));
    if devlxd.is_none() {
        missing("config.\"security.devlxd\"");
    }
    let privileged = config
        .get("security.privileged")
        .map(|v| At::new(v.value == "true", v.origin.clone()));
    if privileged.is_none() {
        missing("config.\"security.privileged\"");
    }
    // `auto` modes: LXD's `mixed` for a privileged container, `rw` for an
    // unprivileged one (the kernel limits what its root may write).
    let is_privileged = privileged.as_ref().is_some_and(|p| p.value);
    let proc_mode = proc_mode.map(|m| match m.value {
        ProcMode::Auto if is_privileged => At::new(ProcMode::Mixed, m.origin),
        ProcMode::Auto => At::new(ProcMode::Rw, m.origin),
        _ => m,
    });
    let sys_mode = sys_mode.map(|m| match m.value {
        SysMode::Auto if is_privileged => At::new(SysMode::Mixed, m.origin),
        SysMode::Auto => At::new(SysMode::Rw, m.origin),
        _ => m,
    });
    // Without a cgroup namespace the host's hierarchies are bound inside,
    // and every unprivileged container of the same map owns its cgroup as
    // the same host uid: one could move into another's. LXD always uses one.
    if !is_privileged && let Some(ns) = cgroup_ns.as_ref().filter(|n| !n.value) {
        problems.push(
            sources
                .problem(
                    &ns.origin,
                    "an unprivileged container needs a cgroup namespace".into(),
                    "not for an unprivileged container",
                    true,
                )
                .help(
                    "remove `namespace = false`, or run privileged: \"security.privileged\" = true",
                ),
        );
    }
    let reserved = reserved_paths(
        dev_log.as_ref(),
        devlxd.as_ref(),
        proc_mode.as_ref(),
        sys_mode.as_ref(),
    );
    check_reserved_paths(&devices, &reserved, sources, &mut problems);
    if let Some((other, key)) = crate::seccomp::conflicting_keys(&config) {
        let allow = &config[crate::seccomp::ALLOW];
        problems.push(
            sources
                .problem(
                    &allow.origin,
                    format!(
                        "`{}` cannot be combined with `{key}` (set at {})",
                        crate::seccomp::ALLOW,
                        other.origin
                    ),
                    "an allow-list",
                    true,
                )
                .help("an allow-list replaces LXD's whole filter (LXD's rule); remove one of them"),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Limits and environment from the stacked config (each value was checked in its file).
    let mut limits = Limits::default();
    let mut limits_origin = None;
    let mut environment = IndexMap::new();
    for (k, v) in &config {
        match k.as_str() {
            "limits.memory" => limits.memory = parse_memory_limit(&v.value).ok(),
            "limits.cpu" => limits.cpu = parse_cpu_limit(&v.value).ok(),
            "limits.cpu.allowance" => limits.cpu_allowance = parse_cpu_allowance(&v.value).ok(),
            "limits.processes" => limits.processes = parse_processes(&v.value).ok(),
            _ => {
                if let Some(var) = k.strip_prefix("environment.") {
                    environment.insert(var.to_string(), v.clone());
                }
                continue;
            }
        }
        limits_origin.get_or_insert_with(|| v.origin.clone());
    }
    let (Some(name), Some(rootfs)) = (name, rootfs) else {
        unreachable!("checked above")
    };
    let privileged = privileged.expect("checked above");
    let idmap = (!privileged.value).then(|| idmap_keys(&config, &privileged.origin));
    Ok(Profile {
        name,
        description: parts.iter().rev().find_map(|p| p.description.clone()),
        rootfs,
        config,
        environment,
        limits,
        limits_origin,
        devlxd: devlxd.expect("checked above"),
        privileged,
        idmap,
        init: Init {
            command: command.expect("checked"),
            stop_signal: stop_signal.expect("checked"),
            reboot_signal: reboot_signal.expect("checked"),
            stop_timeout: stop_timeout.expect("checked"),
        },
        dev: Dev {
            size: dev_size.expect("checked"),
            mode: dev_mode.expect("checked"),
            pts_options: dev_pts.expect("checked"),
            log: dev_log.expect("checked"),
            create: dev_create.expect("checked"),
        },
        proc: Proc {
            mode: proc_mode.expect("checked"),
            create: proc_create.expect("checked"),
        },
        sys: Sys {
            mode: sys_mode.expect("checked"),
            create: sys_create.expect("checked"),
        },
        cgroup: Cgroup {
            parent: cgroup_parent.expect("checked"),
            namespace: cgroup_ns.expect("checked"),
            device_allow: device_allow.expect("checked"),
            allow_unrestricted_devices: unrestricted_devices,
        },
        lxcfs: Lxcfs {
            enabled: lxcfs_enabled.expect("checked"),
            path: lxcfs_path.expect("checked"),
        },
        devices: devices.into_values().collect(),
        layers: layers.iter().map(|l| l.source.name.clone()).collect(),
    })
}

/// The layers' devices stacked: a device replaces an earlier one of the
/// same name whole, where that one was; `type = "none"` removes it.
fn merge_devices(parts: &mut [Part]) -> IndexMap<String, NamedDevice> {
    let mut devices: IndexMap<String, NamedDevice> = IndexMap::new();
    for p in parts {
        for (name, d) in std::mem::take(&mut p.devices) {
            match d {
                Some(d) => match devices.get_mut(&name) {
                    Some(slot) => *slot = d,
                    None => {
                        devices.insert(name, d);
                    }
                },
                None => {
                    devices.shift_remove(&name);
                }
            }
        }
    }
    devices
}

/// No two devices on one container path.
fn check_paths_unique(
    devices: &IndexMap<String, NamedDevice>,
    sources: &Sources,
    problems: &mut Vec<Problem>,
) {
    let mut by_path: HashMap<&str, &NamedDevice> = HashMap::new();
    for d in devices.values() {
        if let Some(p) = d.device.path() {
            if let Some(first) = by_path.get(p.as_str()) {
                problems.push(
                sources
                    .problem(&Origin::new(&d.origin.file, join(&d.origin.key, "path")), format!("devices `{}` and `{}` both use {p}", first.name, d.name), "used twice", true)
                    .help(format!("`{}` ({}) already puts something at {p}; remove one, or mask it with type = \"none\"", first.name, first.origin.file)),
            );
            } else {
                by_path.insert(p.as_str(), d);
            }
        }
    }
}

/// No two NICs with one interface name.
fn check_nic_names_unique(
    devices: &IndexMap<String, NamedDevice>,
    sources: &Sources,
    problems: &mut Vec<Problem>,
) {
    let mut nic_names: HashMap<&str, &NamedDevice> = HashMap::new();
    for d in devices.values() {
        if let Device::Nic(n) = &d.device
            && let Some(name) = &n.name
        {
            if let Some(first) = nic_names.get(name.as_str()) {
                problems.push(sources.problem(
                &Origin::new(&d.origin.file, join(&d.origin.key, "name")),
                format!(
                    "nics `{}` and `{}` are both named `{name}`",
                    first.name, d.name
                ),
                "name used twice",
                true,
            ).help(format!(
                "`{}` ({}) already names its interface `{name}`; set another `name`, or leave it out to get the first free ethN",
                first.name, first.origin.file
            )));
            } else {
                nic_names.insert(name, d);
            }
        }
    }
}

/// Paths envc itself mounts or creates, and what it puts there: no device
/// may take one, nor sit above one (a bind of /sys/fs would hide
/// /sys/fs/cgroup). Some depend on the stacked settings.
fn reserved_paths(
    dev_log: Option<&At<LogMode>>,
    devlxd: Option<&At<bool>>,
    proc_mode: Option<&At<ProcMode>>,
    sys_mode: Option<&At<SysMode>>,
) -> Vec<(ContainerPath, &'static str)> {
    let mut reserved: Vec<(&str, &str)> = vec![
        ("/dev", "the /dev tmpfs (see [dev])"),
        ("/dev/pts", "the container's devpts (see [dev] pts-options)"),
        ("/dev/ptmx", "the pty multiplexer"),
        ("/dev/console", "the console"),
        ("/proc", "procfs (see [proc])"),
        ("/sys", "sysfs (see [sys])"),
        ("/sys/fs/cgroup", "the cgroup filesystem (see [cgroup])"),
    ];
    if dev_log.is_some_and(|l| l.value != LogMode::None) {
        reserved.push(("/dev/log", "the /dev/log socket (see [dev] log)"));
    }
    if devlxd.is_some_and(|d| d.value) {
        reserved.push((
            "/dev/lxd/sock",
            "the guest API socket (see \"security.devlxd\")",
        ));
    }
    if proc_mode.is_some_and(|m| m.value == ProcMode::Mixed) {
        for p in ["/proc/sys", "/proc/sys/net", "/proc/sysrq-trigger"] {
            reserved.push((
                p,
                "the read-only parts of /proc (see [proc] mode = \"mixed\")",
            ));
        }
    }
    if sys_mode.is_some_and(|m| m.value == SysMode::Mixed) {
        reserved.push((
            "/sys/devices/virtual/net",
            "the writable part of /sys (see [sys] mode = \"mixed\")",
        ));
    }
    reserved
        .into_iter()
        .map(|(r, what)| (ContainerPath::new(r).expect("static path"), what))
        .collect()
}

/// No device on, above or (for files and filesystems of their own) inside
/// a path envc uses.
fn check_reserved_paths(
    devices: &IndexMap<String, NamedDevice>,
    reserved: &[(ContainerPath, &str)],
    sources: &Sources,
    problems: &mut Vec<Problem>,
) {
    // Of the reserved paths, what nothing may go inside: files, and filesystems of their
    // own (devpts, the cgroup filesystem, mounted after the devices).
    let sealed = |r: &ContainerPath| {
        !matches!(
            r.as_str(),
            "/dev" | "/proc" | "/sys" | "/proc/sys" | "/proc/sys/net" | "/sys/devices/virtual/net"
        )
    };
    for d in devices.values() {
        let Some(p) = d.device.path() else { continue };
        let clash = reserved
            .iter()
            .find(|(r, _)| r.starts_with(p) || (sealed(r) && p.starts_with(r)));
        if let Some((r, what)) = clash {
            let origin = Origin::new(&d.origin.file, join(&d.origin.key, "path"));
            let (message, label) = if p == r {
                (
                    format!("device `{}` is on {p}, where envc puts {what}", d.name),
                    "taken by envc",
                )
            } else if r.starts_with(p) {
                (
                    format!(
                        "device `{}` on {p} would hide {r}, where envc puts {what}",
                        d.name
                    ),
                    "hides what envc puts below it",
                )
            } else {
                (
                    format!(
                        "device `{}` on {p} is inside {r}, where envc puts {what}",
                        d.name
                    ),
                    "inside what envc puts there",
                )
            };
            problems.push(
            sources
                .problem(&origin, message, label, true)
                .help("choose another path: the built-in parts of the container are configured in their own sections"),
        );
        }
    }
}

/// The id map keys of an unprivileged container (each value was checked in
/// its file).
fn idmap_keys(config: &IndexMap<String, At<String>>, privileged: &Origin) -> IdmapKeys {
    let get = |k: &str| config.get(k);
    let number = |k: &str| get(k).and_then(|v| v.value.parse::<u32>().ok());
    let origin = [
        "raw.idmap",
        "security.idmap.base",
        "security.idmap.size",
        "security.idmap.isolated",
    ]
    .into_iter()
    .find_map(|k| get(k).map(|v| v.origin.clone()))
    .unwrap_or_else(|| privileged.clone());
    IdmapKeys {
        isolated: get("security.idmap.isolated").is_some_and(|v| v.value == "true"),
        size: number("security.idmap.size"),
        base: number("security.idmap.base"),
        raw: get("raw.idmap").map(|v| v.value.clone()),
        origin,
    }
}
