//! Compiles a validated profile into a plan. Pure: it reads nothing from the
//! host, so the same profiles give the same plan on every machine. The phase
//! order is written out in `compile`, top to bottom.

use crate::paths::{ContainerPath, HostPath};
use crate::plan::{
    BindWhen, DeviceNumber, Guest, Namespace, Op, PLAN_FORMAT, Phase, Plan, Step, Supervise,
};
use crate::profile::Origin;
use crate::profile::model::{Device, NamedDevice, NodeKind, Profile};
use crate::profile::raw::{NodeMethod, ProcMode, SysMode};
use crate::profile::values::{derived_mac, format_mac};
use std::collections::{HashMap, HashSet};

/// Capabilities PID 1 runs without (LXD's list for privileged containers).
pub const DROPPED_CAPABILITIES: &[&str] = &[
    "CAP_SYS_TIME",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
];

fn cpath(s: &str) -> ContainerPath {
    ContainerPath::new(s).expect("a static container path")
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, phase: Phase, origin: &Origin, op: Op) {
        self.steps.push(Step {
            phase,
            side: op.side(),
            origin: origin.clone(),
            op,
        });
    }
}

/// Where a device's steps belong: nodes, links and filesystems under `/dev`
/// are built with `/dev`; everything else is a mount of its own.
fn device_phase(path: &ContainerPath) -> Phase {
    if path.starts_with(&cpath("/dev")) {
        Phase::Dev
    } else {
        Phase::Mounts
    }
}

/// The plan of a profile.
pub fn compile(p: &Profile) -> Plan {
    let mut b = Builder { steps: Vec::new() };
    let name = &p.name.value;
    let name_origin = &p.name.origin;
    let rootfs_origin = &p.rootfs.origin;

    // Rootfs checks (host side, before anything is mounted).
    b.push(Phase::Checks, rootfs_origin, Op::OpenRootfs);
    b.push(
        Phase::Checks,
        &p.dev.create.origin,
        Op::CheckDirectory {
            path: cpath("/dev"),
            create: p.dev.create.value,
        },
    );
    b.push(
        Phase::Checks,
        &p.proc.create.origin,
        Op::CheckDirectory {
            path: cpath("/proc"),
            create: p.proc.create.value,
        },
    );
    b.push(
        Phase::Checks,
        &p.sys.create.origin,
        Op::CheckDirectory {
            path: cpath("/sys"),
            create: p.sys.create.value,
        },
    );
    let init_path = ContainerPath::new(&p.init.command.value[0]).expect("checked when loaded");
    b.push(
        Phase::Checks,
        &p.init.command.origin,
        Op::CheckInit { path: init_path },
    );

    // Namespaces and the cgroup: the cgroup exists and holds the child in
    // every hierarchy before the child unshares its cgroup namespace.
    // An unprivileged container: its id map first (the cgroup is handed to
    // its root), a user namespace that owns every other one, the map
    // written as soon as the child exists.
    if let Some(idmap) = &p.idmap {
        b.push(
            Phase::Namespaces,
            &idmap.origin,
            Op::ChooseIdmap {
                isolated: idmap.isolated,
                size: idmap.size,
                base: idmap.base,
                raw: idmap.raw.clone(),
            },
        );
    }
    let unprivileged = p.idmap.is_some();
    // The allow-list in both modes. LXD writes none for an unprivileged
    // container (its user namespace refuses mknod), but its root may
    // remount the nodev rootfs (the flag is not locked) and open a node the
    // image holds: the list stops that, by the v1 devices controller or a
    // cgroup2 device program.
    let (device_allow, device_allow_from_host) = device_rules(p);
    b.push(
        Phase::Namespaces,
        &p.cgroup.parent.origin,
        Op::CreateCgroup {
            parent: p.cgroup.parent.value.clone(),
            name: name.clone(),
            limits: p.limits.clone(),
            device_allow,
            device_allow_from_host,
            unrestricted_devices_ok: (p.cgroup.allow_unrestricted_devices.as_ref())
                .is_some_and(|u| u.value),
            delegate: unprivileged,
        },
    );
    let mut namespaces = vec![
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
    ];
    if unprivileged {
        namespaces.insert(0, Namespace::User);
    }
    b.push(
        Phase::Namespaces,
        name_origin,
        Op::CloneChild { namespaces },
    );
    if let Some(idmap) = &p.idmap {
        b.push(Phase::Namespaces, &idmap.origin, Op::WriteIdmap);
    }
    b.push(
        Phase::Namespaces,
        name_origin,
        Op::SetHostname {
            hostname: name.clone(),
        },
    );

    // The rootfs becomes a mount of its own, invisible to the host.
    b.push(Phase::Rootfs, rootfs_origin, Op::MakeMountsSlave);
    if unprivileged {
        b.push(Phase::Rootfs, rootfs_origin, Op::MakeIdmappedRootfs);
    }
    b.push(
        Phase::Rootfs,
        rootfs_origin,
        Op::BindRootfs {
            idmapped: unprivileged,
        },
    );
    if let Some(idmap) = &p.idmap {
        b.push(Phase::Rootfs, &idmap.origin, Op::BecomeRoot);
    }

    // /proc and /sys.
    let proc_o = &p.proc.mode.origin;
    b.push(
        Phase::ProcSys,
        proc_o,
        Op::MountProc {
            target: cpath("/proc"),
            mode: p.proc.mode.value,
        },
    );
    if p.proc.mode.value == ProcMode::Mixed {
        b.push(
            Phase::ProcSys,
            proc_o,
            Op::BindSelf {
                target: cpath("/proc/sys"),
            },
        );
        b.push(
            Phase::ProcSys,
            proc_o,
            Op::BindSelf {
                target: cpath("/proc/sys/net"),
            },
        );
        b.push(
            Phase::ProcSys,
            proc_o,
            Op::BindSelf {
                target: cpath("/proc/sysrq-trigger"),
            },
        );
    }
    let sys_o = &p.sys.mode.origin;
    b.push(
        Phase::ProcSys,
        sys_o,
        Op::MountSysfs {
            target: cpath("/sys"),
        },
    );
    if p.sys.mode.value == SysMode::Mixed {
        b.push(
            Phase::ProcSys,
            sys_o,
            Op::BindSelf {
                target: cpath("/sys/devices/virtual/net"),
            },
        );
    }

    // /dev: a tmpfs, then devpts, ptmx, the console, then every device in
    // device order, then the sockets envc serves.
    b.push(
        Phase::Dev,
        &p.dev.size.origin,
        Op::MountTmpfs {
            target: cpath("/dev"),
            size: Some(p.dev.size.value),
            mode: p.dev.mode.value,
            nodev: false,
            readonly: false,
        },
    );
    // A boot id of this start's own, kept in a file on the /dev tmpfs.
    b.push(
        Phase::Dev,
        &p.dev.size.origin,
        Op::BindBootId {
            target: cpath("/proc/sys/kernel/random/boot_id"),
        },
    );
    let pts_o = &p.dev.pts_options.origin;
    b.push(
        Phase::Dev,
        pts_o,
        Op::MountDevpts {
            target: cpath("/dev/pts"),
            options: p.dev.pts_options.value.clone(),
        },
    );
    b.push(
        Phase::Dev,
        pts_o,
        Op::BindPtmx {
            path: cpath("/dev/ptmx"),
        },
    );
    b.push(
        Phase::Dev,
        pts_o,
        Op::MakeConsole {
            path: cpath("/dev/console"),
        },
    );

    // Devices: those under /dev now, mounts elsewhere in the mounts phase;
    // both shallow before deep (a tmpfs on /dev/net must not hide the
    // /dev/net/tun made before it), otherwise in device order.
    let mut in_dev: Vec<&NamedDevice> = Vec::new();
    let mut mounts: Vec<&NamedDevice> = Vec::new();
    let mut nics: Vec<&NamedDevice> = Vec::new();
    for d in &p.devices {
        match d.device.path() {
            Some(path) if device_phase(path) == Phase::Dev => in_dev.push(d),
            Some(_) => mounts.push(d),
            None => nics.push(d),
        }
    }
    in_dev.sort_by_cached_key(|d| d.device.path().map_or(0, ContainerPath::depth));
    for d in in_dev {
        device_steps(&mut b, Phase::Dev, d, unprivileged);
    }
    use crate::profile::raw::LogMode;
    match p.dev.log.value {
        LogMode::None => {}
        mode => b.push(
            Phase::Dev,
            &p.dev.log.origin,
            Op::MakeLogSocket {
                path: cpath("/dev/log"),
                unless_systemd: mode == LogMode::Auto,
            },
        ),
    }
    if p.devlxd.value {
        b.push(
            Phase::Dev,
            &p.devlxd.origin,
            Op::MakeGuestApiSocket {
                path: cpath("/dev/lxd/sock"),
            },
        );
    }

    // Mounts and conditional host paths, shallow before deep (a mount must
    // not hide one made before it), otherwise in device order.
    mounts.sort_by_cached_key(|d| d.device.path().map_or(0, ContainerPath::depth));
    for d in mounts {
        device_steps(&mut b, Phase::Mounts, d, unprivileged);
    }

    // LXCFS, if it runs on the host.
    if p.lxcfs.enabled.value {
        b.push(
            Phase::Lxcfs,
            &p.lxcfs.enabled.origin,
            Op::OverlayLxcfs {
                source: p.lxcfs.path.value.clone(),
            },
        );
    }

    // The child joins its cgroup: cgroup2 it entered with the clone; each v1
    // hierarchy, which the host makes while the child builds its mounts, by
    // writing 0 to its `tasks` (a write of the PID to `cgroup.procs` waits
    // out an RCU grace period, milliseconds). Then the cgroup namespace, and
    // /sys/fs/cgroup as the host's layout needs.
    b.push(Phase::Cgroups, &p.cgroup.parent.origin, Op::AttachCgroup);
    if p.cgroup.namespace.value {
        b.push(
            Phase::Cgroups,
            &p.cgroup.namespace.origin,
            Op::UnshareCgroupNamespace,
        );
    }
    b.push(
        Phase::Cgroups,
        &p.cgroup.namespace.origin,
        Op::MountCgroups {
            target: cpath("/sys/fs/cgroup"),
            namespace: p.cgroup.namespace.value,
        },
    );

    // Network: lo, then every NIC in device order, named ethN by LXD's rule
    // (the first free index) unless the profile names it.
    b.push(Phase::Network, name_origin, Op::BringUpLoopback);
    let taken: HashSet<&str> = nics
        .iter()
        .filter_map(|d| match &d.device {
            Device::Nic(n) => n.name.as_deref(),
            _ => None,
        })
        .collect();
    // Every index below `next_eth` is taken by a named NIC or was given to
    // an earlier unnamed one, so the search for the first free one resumes there.
    let mut next_eth = 0;
    for d in &nics {
        let Device::Nic(n) = &d.device else { continue };
        let ifname = match &n.name {
            Some(x) => x.clone(),
            None => loop {
                let candidate = format!("eth{next_eth}");
                next_eth += 1;
                if !taken.contains(candidate.as_str()) {
                    break candidate;
                }
            },
        };
        // A physical NIC keeps its own MAC unless the profile sets one.
        let hwaddr = match (n.hwaddr, n.nictype) {
            (Some(m), _) => Some(format_mac(m)),
            (None, crate::profile::raw::NicType::Physical) => None,
            (None, _) => Some(format_mac(derived_mac(name, &d.name))),
        };
        let host_name = match n.nictype {
            crate::profile::raw::NicType::P2p | crate::profile::raw::NicType::Bridged => Some(
                n.host_name
                    .clone()
                    .unwrap_or_else(|| veth_name(name, &d.name)),
            ),
            _ => None,
        };
        b.push(
            Phase::Network,
            &d.origin,
            Op::CreateNic {
                device: d.name.clone(),
                nictype: n.nictype,
                parent: n.parent.clone(),
                host_name,
                name: ifname.clone(),
                hwaddr,
                mtu: n.mtu,
            },
        );
        b.push(
            Phase::Network,
            &d.origin,
            Op::ConfigureNic {
                name: ifname,
                ipv4_address: n.ipv4_address.map(|(a, l)| format!("{a}/{l}")),
                ipv4_gateway: n.ipv4_gateway.map(|g| g.to_string()),
            },
        );
    }

    // Deferred read-only remounts: only now, so nothing above was refused.
    if p.proc.mode.value == ProcMode::Mixed {
        b.push(
            Phase::ReadOnly,
            proc_o,
            Op::RemountReadOnly {
                target: cpath("/proc/sys"),
                recursive: false,
            },
        );
        b.push(
            Phase::ReadOnly,
            proc_o,
            Op::RemountReadOnly {
                target: cpath("/proc/sysrq-trigger"),
                recursive: false,
            },
        );
    }
    if matches!(p.sys.mode.value, SysMode::Mixed | SysMode::Ro) {
        b.push(
            Phase::ReadOnly,
            sys_o,
            Op::RemountReadOnly {
                target: cpath("/sys"),
                recursive: false,
            },
        );
    }

    // Pivot and exec.
    b.push(Phase::Finish, rootfs_origin, Op::PivotRoot);
    // The profile's keys are unique: only `container` can replace an entry.
    let mut env = Vec::with_capacity(p.environment.len() + 1);
    if !p.environment.contains_key("container") {
        env.push("container=lxc".to_string());
    }
    for (k, v) in &p.environment {
        env.push(format!("{k}={}", v.value));
    }
    if let Some((filter, origin)) = crate::seccomp::filter_from_config(&p.config) {
        b.push(Phase::Finish, &origin, Op::LoadSyscallFilter { filter });
    }
    b.push(
        Phase::Finish,
        &p.init.command.origin,
        Op::ExecInit {
            command: p.init.command.value.clone(),
            env,
            // LXD drops these only for privileged containers: an
            // unprivileged root's capabilities reach no further than its
            // own namespaces.
            drop_capabilities: if unprivileged {
                Vec::new()
            } else {
                DROPPED_CAPABILITIES.iter().map(|s| s.to_string()).collect()
            },
        },
    );

    let mut guest = Guest::default();
    for (k, v) in &p.config {
        if k.starts_with("user.") || k.starts_with("cloud-init.") {
            guest.config.insert(k.clone(), v.value.clone());
        }
    }
    let created_nics: HashMap<&str, &Op> = b
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            op @ Op::CreateNic { device, .. } => Some((device.as_str(), op)),
            _ => None,
        })
        .collect();
    for d in p.devices.iter().filter(|d| d.from_user) {
        let mut entry = d.raw.clone();
        if let Device::Nic(_) = d.device
            && let Some(Op::CreateNic { name, hwaddr, .. }) = created_nics.get(d.name.as_str())
        {
            entry.insert("name".into(), name.clone());
            if let Some(h) = hwaddr {
                entry.insert("hwaddr".into(), h.clone());
            }
        }
        guest.devices.insert(d.name.clone(), entry);
    }

    Plan {
        format: PLAN_FORMAT,
        name: name.clone(),
        rootfs: p.rootfs.value.clone(),
        layers: p.layers.clone(),
        supervise: Supervise {
            stop_signal: p.init.stop_signal.value,
            reboot_signal: p.init.reboot_signal.value,
            stop_timeout_secs: p.init.stop_timeout.value,
            origin: p.init.stop_signal.origin.clone(),
        },
        guest,
        steps: b.steps,
    }
}

/// The steps of one non-NIC device.
/// `unprivileged`: a user namespace refuses `mknod`, so a node is the
/// host's node bound (LXD's way): its `source`, else the same path.
fn device_steps(b: &mut Builder, phase: Phase, d: &NamedDevice, unprivileged: bool) {
    let o = &d.origin;
    match &d.device {
        Device::Unix {
            kind,
            path,
            source,
            number,
            mode,
            uid,
            gid,
            required,
            method,
        } => match (method, source) {
            // Without a `source`, the host's node at the same path (LXD's
            // rule: `path` names the host's node too).
            _ if unprivileged => b.push(
                phase,
                o,
                Op::BindDevice {
                    source: source.clone().unwrap_or_else(|| {
                        HostPath::new(path.as_str()).expect("a container path is a host path")
                    }),
                    path: path.clone(),
                    required: *required,
                },
            ),
            (NodeMethod::Bind, Some(source)) => b.push(
                phase,
                o,
                Op::BindDevice {
                    source: source.clone(),
                    path: path.clone(),
                    required: *required,
                },
            ),
            _ => {
                let number = match (number, source) {
                    (Some((major, minor)), _) => DeviceNumber::Fixed {
                        major: *major,
                        minor: *minor,
                    },
                    (None, Some(s)) => DeviceNumber::FromHost { source: s.clone() },
                    (None, None) => unreachable!("checked when loaded"),
                };
                b.push(
                    phase,
                    o,
                    Op::MakeDevice {
                        path: path.clone(),
                        kind: *kind,
                        number,
                        fallback: source.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                        required: *required,
                    },
                );
            }
        },
        Device::Disk {
            path,
            source,
            readonly,
            required,
            recursive,
            only_if_mounted,
            shift,
        } => {
            // A shift means nothing to a privileged container: its ids are
            // the host's already.
            let shift = *shift && unprivileged;
            if shift {
                b.push(
                    phase,
                    o,
                    Op::MakeIdmappedMount {
                        source: source.clone(),
                        recursive: *recursive,
                        required: *required,
                    },
                );
            }
            b.push(
                phase,
                o,
                Op::BindMount {
                    source: source.clone(),
                    target: path.clone(),
                    recursive: *recursive,
                    readonly: *readonly,
                    when: if *only_if_mounted {
                        BindWhen::IfMounted
                    } else if *required {
                        BindWhen::Always
                    } else {
                        BindWhen::IfExists
                    },
                    unless_own_binfmt: unprivileged && path.as_str() == "/proc/sys/fs/binfmt_misc",
                    shift,
                },
            )
        }
        Device::Tmpfs {
            path,
            size,
            mode,
            readonly,
        } => b.push(
            phase,
            o,
            Op::MountTmpfs {
                target: path.clone(),
                size: *size,
                mode: *mode,
                nodev: true,
                readonly: *readonly,
            },
        ),
        Device::Symlink { path, target } => b.push(
            phase,
            o,
            Op::MakeSymlink {
                path: path.clone(),
                target: target.clone(),
            },
        ),
        Device::Mqueue { path } => b.push(
            phase,
            o,
            Op::MountMqueue {
                target: path.clone(),
            },
        ),
        Device::Nic(_) => {}
    }
}

/// The devices controller's rules: the profile's list, plus every unix
/// device the profile makes (numbers known now, or read from a host node).
fn device_rules(p: &Profile) -> (Vec<String>, Vec<HostPath>) {
    let mut rules = p.cgroup.device_allow.value.clone();
    let mut from_host = Vec::new();
    // Membership in sets, order from the vectors: a profile with thousands
    // of devices must not compare every rule with every other.
    let mut seen_rules: HashSet<String> = rules.iter().cloned().collect();
    let mut seen_hosts: HashSet<&HostPath> = HashSet::new();
    for d in &p.devices {
        if let Device::Unix {
            kind,
            number,
            source,
            method,
            ..
        } = &d.device
        {
            let t = match kind {
                NodeKind::Char => 'c',
                NodeKind::Block => 'b',
            };
            match (number, source, method) {
                (Some((ma, mi)), _, NodeMethod::Mknod) => {
                    let rule = format!("{t} {ma}:{mi} rwm");
                    if seen_rules.insert(rule.clone()) {
                        rules.push(rule);
                    }
                }
                (_, Some(s), _) if seen_hosts.insert(s) => from_host.push(s.clone()),
                _ => {}
            }
        }
    }
    (rules, from_host)
}

/// The default host-side name of a veth: `veth` + 8 hex digits derived from
/// the container and device names (stable, so a plan is reproducible).
fn veth_name(container: &str, device: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in container
        .bytes()
        .chain(std::iter::once(0))
        .chain(device.bytes())
    {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("veth{h:08x}")
}
