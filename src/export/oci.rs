//! `envc export --to oci`: an OCI runtime bundle's `config.json`, made
//! from the compiled plan step by step, so that runc or crun build the
//! environment envc builds as far as the runtime spec can say it. What the
//! host decides at start (which conditional paths are mounted, LXCFS, the
//! device numbers of host nodes, the id map, a CPU count or a memory
//! percentage) is decided at export time, on this host. What OCI cannot
//! say is a [`NotCarried`] with the step's origin.

use super::NotCarried;
use crate::exec::cgroup::{format_cpu_list, mem_total, parse_cpu_list};
use crate::idmap::{self, IdMap, IdmapConfig};
use crate::plan::{BindWhen, DeviceNumber, Namespace, Op, Plan, Step};
use crate::profile::model::NodeKind;
use crate::profile::raw::ProcMode;
use crate::profile::values::{CpuLimit, MemoryLimit};
use crate::seccomp::Action;
use oci_spec::runtime::Arch;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscallBuilder,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The result of an export: the spec and what it leaves out.
#[derive(Debug)]
pub struct OciExport {
    pub spec: Spec,
    pub not_carried: Vec<NotCarried>,
    /// What was decided on this host at export time, one line each.
    pub decided: Vec<String>,
}

/// Every capability the kernel defines (0 to 40), by name.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The links every OCI runtime makes in `/dev` itself.
const RUNTIME_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// The bundle's spec for `plan`, whose rootfs is `rootfs` (absolute).
pub fn to_oci(plan: &Plan, rootfs: &Path) -> Result<OciExport, String> {
    let mut cx = Cx {
        plan,
        mounts: Vec::new(),
        devices: Vec::new(),
        readonly_paths: Vec::new(),
        namespaces: Vec::new(),
        map: None,
        resources: None,
        process: None,
        hostname: None,
        not_carried: Vec::new(),
        decided: Vec::new(),
        sys_readonly: false,
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    };
    for step in &plan.steps {
        cx.step(step)?;
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(cx.namespaces.clone())
        .devices(cx.devices.clone())
        .readonly_paths(cx.readonly_paths.clone())
        .masked_paths(Vec::<String>::new())
        .rootfs_propagation("rslave")
        .cgroups_path(PathBuf::from(format!("/{}", cgroup_path(plan))));
    if let Some(r) = cx.resources.take() {
        linux = linux.resources(r);
    }
    if let Some(map) = &cx.map {
        let conv = |ranges: &[idmap::IdRange]| -> Result<Vec<_>, String> {
            ranges
                .iter()
                .map(|r| {
                    LinuxIdMappingBuilder::default()
                        .container_id(r.inside)
                        .host_id(r.outside)
                        .size(r.count)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        linux = linux
            .uid_mappings(conv(&map.uids)?)
            .gid_mappings(conv(&map.gids)?);
    }
    if let Some(filter) = seccomp(plan)? {
        linux = linux.seccomp(filter);
    }
    // A mount point /sys/fs/cgroup needs /sys read-write while it is made;
    // the sysfs mount's `ro` option says it instead.
    if cx.sys_readonly
        && let Some(m) = cx
            .mounts
            .iter_mut()
            .find(|m| m.destination() == Path::new("/sys"))
    {
        let mut opts = m.options().clone().unwrap_or_default();
        opts.push("ro".into());
        m.set_options(Some(opts));
    }
    let process = cx.process.take().ok_or("the plan has no ExecInit step")?;
    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .hostname(cx.hostname.clone().unwrap_or_else(|| plan.name.clone()))
        .mounts(cx.mounts.clone())
        .process(process)
        .linux(linux.build().map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(OciExport {
        spec,
        not_carried: cx.not_carried,
        decided: cx.decided,
    })
}

/// The cgroup the runtime makes: one level, `PARENT-NAME`, because a
/// runtime removes the cgroup it made at the end but not the parents it
/// made on the way (a caller such as containerd sets its own anyway).
fn cgroup_path(plan: &Plan) -> String {
    plan.steps
        .iter()
        .find_map(|s| match &s.op {
            Op::CreateCgroup { parent, name, .. } => Some(format!("{parent}-{name}")),
            _ => None,
        })
        .unwrap_or_else(|| plan.name.clone())
}

/// The plan's syscall filter as `linux.seccomp`: the same default, rules
/// and argument conditions, for the native ABI and (unless `deny_compat`)
/// the 32-bit ones.
fn seccomp(plan: &Plan) -> Result<Option<LinuxSeccomp>, String> {
    let Some(filter) = plan.steps.iter().find_map(|s| match &s.op {
        Op::LoadSyscallFilter { filter } => Some(filter),
        _ => None,
    }) else {
        return Ok(None);
    };
    let action = |a: Action| match a {
        Action::Allow => (LinuxSeccompAction::ScmpActAllow, None),
        Action::Errno(n) => (LinuxSeccompAction::ScmpActErrno, Some(u32::from(n))),
        // liblxc's kill: the calling thread.
        Action::Kill => (LinuxSeccompAction::ScmpActKillThread, None),
    };
    let mut syscalls = Vec::new();
    for r in &filter.rules {
        let (act, errno) = action(r.action);
        let mut b = LinuxSyscallBuilder::default()
            .names(vec![r.syscall.clone()])
            .action(act);
        if let Some(e) = errno {
            b = b.errno_ret(e);
        }
        if let Some(w) = r.when {
            // libseccomp's masked compare: (arg & value) == value_two.
            let arg = LinuxSeccompArgBuilder::default()
                .index(usize::from(w.arg))
                .value(w.mask)
                .value_two(w.value)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .map_err(|e| e.to_string())?;
            b = b.args(vec![arg]);
        }
        syscalls.push(b.build().map_err(|e| e.to_string())?);
    }
    let architectures = match (std::env::consts::ARCH, filter.deny_compat) {
        ("x86_64", false) => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        ("x86_64", true) => vec![Arch::ScmpArchX86_64],
        ("aarch64", false) => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        ("aarch64", true) => vec![Arch::ScmpArchAarch64],
        _ => Vec::new(),
    };
    let (default, default_errno) = action(filter.default);
    let mut b = LinuxSeccompBuilder::default()
        .default_action(default)
        .architectures(architectures)
        .syscalls(syscalls);
    if let Some(e) = default_errno {
        b = b.default_errno_ret(e);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

struct Cx<'a> {
    plan: &'a Plan,
    mounts: Vec<oci_spec::runtime::Mount>,
    devices: Vec<oci_spec::runtime::LinuxDevice>,
    readonly_paths: Vec<String>,
    namespaces: Vec<oci_spec::runtime::LinuxNamespace>,
    map: Option<IdMap>,
    resources: Option<oci_spec::runtime::LinuxResources>,
    process: Option<oci_spec::runtime::Process>,
    hostname: Option<String>,
    not_carried: Vec<NotCarried>,
    decided: Vec<String>,
    sys_readonly: bool,
    mountinfo: String,
}

fn opts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Cx<'_> {
    /// The step (named by its op, at the key that asked for it) has no OCI form.
    fn skip(&mut self, step: &Step, why: impl Into<String>) {
        self.not_carried.push(NotCarried::new(
            step.origin.clone(),
            format!("{}: {}", step.op.name(), why.into()),
        ));
    }

    fn mount(
        &mut self,
        dest: &str,
        typ: &str,
        source: &str,
        options: Vec<String>,
    ) -> Result<(), String> {
        let m = MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options)
            .build()
            .map_err(|e| e.to_string())?;
        self.mounts.push(m);
        Ok(())
    }

    /// True if a filesystem is mounted at `path` on this host.
    fn host_has_mount(&self, path: &str) -> bool {
        self.mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|mp| unescape_mountinfo(mp) == path)
    }

    /// A node at `path`: its kind, numbers, mode and owner.
    fn device(
        &mut self,
        path: &str,
        kind: NodeKind,
        (major, minor): (u32, u32),
        (mode, uid, gid): (u32, u32, u32),
    ) -> Result<(), String> {
        let typ = match kind {
            NodeKind::Char => LinuxDeviceType::C,
            NodeKind::Block => LinuxDeviceType::B,
        };
        let d = LinuxDeviceBuilder::default()
            .path(path)
            .typ(typ)
            .major(major as i64)
            .minor(minor as i64)
            .file_mode(mode)
            .uid(uid)
            .gid(gid)
            .build()
            .map_err(|e| e.to_string())?;
        self.devices.push(d);
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match &step.op {
            // The runtime opens the rootfs, pivots into it and keeps its
            // mounts from the host (rootfsPropagation rslave).
            Op::OpenRootfs
            | Op::MakeMountsSlave
            | Op::BindRootfs { .. }
            | Op::PivotRoot
            | Op::WriteIdmap
            | Op::BecomeRoot
            | Op::AttachCgroup
            | Op::UnshareCgroupNamespace
            | Op::BindSelf { .. }
            | Op::BringUpLoopback
            | Op::BindPtmx { .. }
            | Op::CheckDirectory { .. }
            | Op::CheckInit { .. }
            | Op::MakeIdmappedMount { .. } => {}
            Op::LoadSyscallFilter { filter } if filter.deny_compat => self.skip(
                step,
                "OCI has no action for the 32-bit ABIs: the filter lists only the native one, and what a call through another meets is the runtime's choice (envc's: ENOSYS)",
            ),
            // linux.seccomp (see `seccomp`).
            Op::LoadSyscallFilter { .. } => {}
            Op::MakeIdmappedRootfs => self.skip(
                step,
                "the rootfs is not idmapped: an OCI runtime mounts it as it is, so the image's files show with their host owners (host root's as nobody) unless the image is chowned to the map",
            ),
            Op::CreateCgroup {
                limits,
                device_allow,
                device_allow_from_host,
                ..
            } => {
                let mut r = LinuxResourcesBuilder::default();
                if let Some(m) = &limits.memory {
                    let bytes = match m {
                        MemoryLimit::Bytes(b) => *b,
                        MemoryLimit::PercentHundredths(p) => {
                            let total = std::fs::read_to_string("/proc/meminfo")
                                .ok()
                                .and_then(|t| mem_total(&t))
                                .ok_or("cannot read the host's memory size")?;
                            self.decided.push(format!("limits.memory: {} of {total} bytes", *p as f64 / 100.0));
                            (total as u128 * *p as u128 / 10_000) as u64
                        }
                    };
                    r = r.memory(LinuxMemoryBuilder::default().limit(bytes as i64).build().map_err(|e| e.to_string())?);
                }
                let mut cpu = LinuxCpuBuilder::default();
                let mut any_cpu = false;
                if let Some(c) = &limits.cpu {
                    let set = match c {
                        CpuLimit::Set(s) => s.clone(),
                        CpuLimit::Count(n) => {
                            let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
                                .map_err(|e| format!("cannot read the host's CPUs: {e}"))?;
                            let cpus = parse_cpu_list(online.trim());
                            if cpus.len() < *n as usize {
                                return Err(format!("limits.cpu asks for {n} CPUs; this host has {}", cpus.len()));
                            }
                            let set = format_cpu_list(&cpus[..*n as usize]);
                            self.decided.push(format!("limits.cpu: {n} CPUs are {set}"));
                            set
                        }
                    };
                    cpu = cpu.cpus(set);
                    any_cpu = true;
                }
                if let Some(a) = &limits.cpu_allowance {
                    cpu = cpu.quota(a.quota_us as i64).period(a.period_us);
                    any_cpu = true;
                }
                if any_cpu {
                    r = r.cpu(cpu.build().map_err(|e| e.to_string())?);
                }
                if let Some(p) = limits.processes {
                    r = r.pids(LinuxPidsBuilder::default().limit(p as i64).build().map_err(|e| e.to_string())?);
                }
                let mut rules = vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().map_err(|e| e.to_string())?];
                for rule in device_allow {
                    rules.push(device_rule(rule)?);
                }
                for src in device_allow_from_host {
                    if let Some((kind, major, minor)) = host_node(Path::new(src.as_str())) {
                        let t = if kind == NodeKind::Char { "c" } else { "b" };
                        rules.push(device_rule(&format!("{t} {major}:{minor} rwm"))?);
                    }
                }
                let mut seen = HashSet::new();
                rules.retain(|r| seen.insert(serde_json::to_string(r).unwrap_or_default()));
                r = r.devices(rules);
                self.resources = Some(r.build().map_err(|e| e.to_string())?);
            }
            Op::ChooseIdmap { isolated, size, base, raw } => {
                if *isolated {
                    self.skip(step, "security.idmap.isolated: no runtime keeps ranges apart; the bundle has the range this host would give now, which another container may take");
                }
                let root = idmap::read_root_ids(Path::new("/etc")).map_err(|e| e.to_string())?;
                let raw = match raw {
                    Some(t) => idmap::parse_raw(t).map_err(|e| format!("raw.idmap: {e:?}"))?,
                    None => Vec::new(),
                };
                let config = IdmapConfig { isolated: *isolated, size: *size, base: *base, raw };
                let taken = idmap::allocations(&crate::state::run_dir()).unwrap_or_default();
                let map = idmap::choose(&config, &root, &taken).map_err(|e| e.to_string())?;
                self.decided.push(format!("id map: {map}"));
                self.map = Some(map);
            }
            Op::CloneChild { namespaces } => {
                for ns in namespaces.iter().chain([&Namespace::Cgroup]) {
                    let typ = match ns {
                        Namespace::User => LinuxNamespaceType::User,
                        Namespace::Mount => LinuxNamespaceType::Mount,
                        Namespace::Pid => LinuxNamespaceType::Pid,
                        Namespace::Uts => LinuxNamespaceType::Uts,
                        Namespace::Ipc => LinuxNamespaceType::Ipc,
                        Namespace::Net => LinuxNamespaceType::Network,
                        Namespace::Cgroup => LinuxNamespaceType::Cgroup,
                    };
                    if self.namespaces.iter().any(|n| n.typ() == typ) {
                        continue;
                    }
                    self.namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build().map_err(|e| e.to_string())?);
                }
            }
            Op::BindBootId { .. } => self.skip(step, "a boot id of each start's own: no OCI field (the guest sees the host's)"),
            Op::SetHostname { hostname } => self.hostname = Some(hostname.clone()),
            Op::MountProc { target, mode } => {
                self.mount(target.as_str(), "proc", "proc", opts(&["nosuid", "noexec", "nodev"]))?;
                // The read-only parts are the plan's RemountReadOnly steps.
                if *mode == ProcMode::Mixed {
                    self.skip(step, "proc mode mixed: /proc/sys/net stays read-only (OCI's readonlyPaths cannot make a path below one writable again)");
                }
            }
            Op::MountSysfs { target } => {
                self.mount(target.as_str(), "sysfs", "sysfs", opts(&["nosuid", "noexec", "nodev"]))?;
            }
            Op::RemountReadOnly { target, .. } if target.as_str() == "/sys" => {
                self.sys_readonly = true;
                let mixed = self.plan.steps.iter().any(|s| matches!(&s.op, Op::BindSelf { target } if target.as_str() == "/sys/devices/virtual/net"));
                if mixed {
                    self.skip(step, "sys mode mixed: /sys/devices/virtual/net stays read-only with the rest of /sys");
                }
            }
            Op::RemountReadOnly { target, .. } => {
                self.readonly_paths.push(target.to_string());
            }
            Op::MountCgroups { target, namespace } => {
                if !namespace {
                    self.skip(step, "cgroup.namespace = false: a runtime mounts the container's own cgroup in its namespace");
                }
                self.mount(target.as_str(), "cgroup", "cgroup", opts(&["nosuid", "noexec", "nodev", "relatime", "rw"]))?;
            }
            Op::MountTmpfs { target, size, mode, nodev, readonly } => {
                let mut o = opts(&["nosuid"]);
                if *nodev {
                    o.push("nodev".into());
                }
                if *readonly {
                    o.push("ro".into());
                }
                o.push(format!("mode={mode:o}"));
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                self.mount(target.as_str(), "tmpfs", "tmpfs", o)?;
            }
            Op::MakeDevice { path, kind, number, mode, uid, gid, required, .. } => {
                let num = match number {
                    DeviceNumber::Fixed { major, minor } => Some((*major, *minor)),
                    DeviceNumber::FromHost { source } => match host_node(Path::new(source.as_str())) {
                        Some((_, ma, mi)) => {
                            self.decided.push(format!("{path}: the numbers of host {source} ({ma}:{mi})"));
                            Some((ma, mi))
                        }
                        None if *required => return Err(format!("{path}: the host has no device node {source}")),
                        None => {
                            self.decided.push(format!("{path}: left out, the host has no {source}"));
                            None
                        }
                    },
                };
                if let Some((ma, mi)) = num {
                    self.device(path.as_str(), *kind, (ma, mi), (*mode, *uid, *gid))?;
                }
            }
            // The host's node, by its numbers: a runtime makes it (or, in a
            // user namespace, binds the host's), with the host node's mode
            // and owner. Binding it as a mount would clash with the nodes a
            // runtime makes itself (/dev/tty and the rest).
            Op::BindDevice { source, path, required } => match host_node(Path::new(source.as_str())) {
                Some((kind, ma, mi)) => {
                    let meta = std::fs::metadata(source.as_str()).map_err(|e| e.to_string())?;
                    self.decided.push(format!("{path}: host {source} is {ma}:{mi}"));
                    self.device(path.as_str(), kind, (ma, mi), (meta.mode() & 0o7777, meta.uid(), meta.gid()))?;
                }
                None if *required => {
                    return Err(format!("{path}: the host has no device node {source}"));
                }
                None => self.decided.push(format!("{path}: left out, the host has no {source}")),
            },
            Op::MountDevpts { target, options } => {
                let mut o = opts(&["nosuid", "noexec"]);
                o.extend(options.split(',').map(str::to_string));
                self.mount(target.as_str(), "devpts", "devpts", o)?;
            }
            Op::MakeConsole { .. } => self.skip(step, "envc's console (a pty of the container's devpts whose output envc logs): an OCI runtime gives PID 1 its caller's stdio, or a console only with process.terminal"),
            Op::MakeSymlink { path, target } => {
                if !RUNTIME_LINKS.contains(&(path.as_str(), target.as_str())) {
                    self.skip(step, format!("{path} -> {target}: OCI has no symlinks (make it in the image)"));
                }
            }
            Op::MountMqueue { target } => {
                self.mount(target.as_str(), "mqueue", "mqueue", opts(&["nosuid", "noexec", "nodev"]))?;
            }
            Op::MakeLogSocket { .. } => self.skip(step, "/dev/log served by envc: no OCI field (the guest's syslog daemon makes its own)"),
            Op::MakeGuestApiSocket { .. } => self.skip(step, "the guest API /dev/lxd/sock: an OCI runtime serves no socket"),
            Op::BindMount { source, target, recursive, readonly, when, unless_own_binfmt, shift } => {
                let present = match when {
                    BindWhen::Always => true,
                    BindWhen::IfExists => Path::new(source.as_str()).exists(),
                    BindWhen::IfMounted => self.host_has_mount(source.as_str()),
                };
                if *when != BindWhen::Always {
                    self.decided.push(format!("{target}: {}", if present { format!("bound, the host has {source}") } else { format!("left out, the host has no {source}") }));
                }
                if !present {
                    return Ok(());
                }
                if *unless_own_binfmt {
                    self.decided.push(format!("{target}: the host's bound (a runtime does not check for a binfmt_misc of the container's own)"));
                }
                if *shift {
                    self.skip(step, "shift: the bind is not idmapped (runc and crun of Debian 12 make no idmapped binds)");
                }
                let mut o = vec![if *recursive { "rbind" } else { "bind" }.to_string()];
                if *readonly {
                    o.push("ro".into());
                }
                self.mount(target.as_str(), "bind", source.as_str(), o)?;
            }
            Op::OverlayLxcfs { source } => {
                let proc_dir = Path::new(source.as_str()).join("proc");
                let Ok(entries) = std::fs::read_dir(&proc_dir) else {
                    self.decided.push(format!("LXCFS: not running ({} does not exist): no binds", proc_dir.display()));
                    return Ok(());
                };
                let mut files: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|f| crate::exec::lxcfs::OFFERED.contains(&f.as_str())).collect();
                files.sort();
                for f in &files {
                    self.mount(&format!("/proc/{f}"), "bind", &format!("{source}/proc/{f}"), opts(&["bind"]))?;
                }
                let cpu = format!("{source}/sys/devices/system/cpu");
                if Path::new(&cpu).is_dir() {
                    self.mount("/sys/devices/system/cpu", "bind", &cpu, opts(&["bind"]))?;
                }
                self.decided.push(format!("LXCFS: running, {} files bound", files.len()));
            }
            Op::CreateNic { device, .. } => self.skip(step, format!("NIC {device}: OCI leaves networking to the caller (CNI)")),
            Op::ConfigureNic { .. } => {}
            Op::ExecInit { command, env, drop_capabilities } => {
                // A privileged container's capabilities cannot exceed the
                // host's bounding set (the runtime fails to apply them); in
                // a user namespace of its own it has every one the kernel knows.
                let privileged = self.map.is_none();
                let host = host_capabilities(privileged);
                let missing: Vec<&str> = ALL_CAPS
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| !host.contains(i) && !drop_capabilities.iter().any(|d| d == *c))
                    .map(|(_, c)| *c)
                    .collect();
                if !missing.is_empty() {
                    self.decided.push(format!(
                        "capabilities: this host cannot give {}",
                        missing.join(", ")
                    ));
                }
                let caps: HashSet<Capability> = ALL_CAPS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| host.contains(i))
                    .map(|(_, c)| c)
                    .filter(|c| !drop_capabilities.iter().any(|d| d == *c))
                    .filter_map(|c| Capability::from_str(c.trim_start_matches("CAP_")).ok())
                    .collect();
                let process = ProcessBuilder::default()
                    .terminal(false)
                    .user(UserBuilder::default().uid(0u32).gid(0u32).build().map_err(|e| e.to_string())?)
                    .args(command.clone())
                    .env(env.clone())
                    .cwd("/")
                    .no_new_privileges(false)
                    .capabilities(
                        oci_spec::runtime::LinuxCapabilitiesBuilder::default()
                            .bounding(caps.clone())
                            .effective(caps.clone())
                            .permitted(caps)
                            .inheritable(HashSet::new())
                            .ambient(HashSet::new())
                            .build()
                            .map_err(|e| e.to_string())?,
                    )
                    .build()
                    .map_err(|e| e.to_string())?;
                self.process = Some(process);
            }
        }
        Ok(())
    }
}

/// A mount point as mountinfo writes it (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(n) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(n);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The capability numbers this host can give: those the kernel knows
/// (`cap_last_cap`), and for a privileged container only those in envc's
/// own bounding set (the host's).
fn host_capabilities(privileged: bool) -> HashSet<usize> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = if privileged {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("CapBnd:"))?;
                u64::from_str_radix(line["CapBnd:".len()..].trim(), 16).ok()
            })
            .unwrap_or(u64::MAX)
    } else {
        u64::MAX
    };
    (0..=last.min(ALL_CAPS.len() - 1))
        .filter(|i| bounding & (1u64 << i) != 0)
        .collect()
}

/// A device rule (`c 1:3 rwm`, `b *:* m`) for `linux.resources.devices`.
fn device_rule(rule: &str) -> Result<oci_spec::runtime::LinuxDeviceCgroup, String> {
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [t, num, access] = parts[..] else {
        return Err(format!(
            "device rule `{rule}` is not TYPE MAJOR:MINOR ACCESS"
        ));
    };
    let (ma, mi) = num
        .split_once(':')
        .ok_or_else(|| format!("device rule `{rule}`: no MAJOR:MINOR"))?;
    let n = |s: &str| {
        if s == "*" {
            None
        } else {
            s.parse::<i64>().ok()
        }
    };
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .access(access);
    b = b.typ(match t {
        "c" => LinuxDeviceType::C,
        "b" => LinuxDeviceType::B,
        _ => LinuxDeviceType::A,
    });
    if let Some(m) = n(ma) {
        b = b.major(m);
    }
    if let Some(m) = n(mi) {
        b = b.minor(m);
    }
    b.build().map_err(|e| e.to_string())
}

/// A host device node's kind and numbers, if `path` is one.
fn host_node(path: &Path) -> Option<(NodeKind, u32, u32)> {
    let m = std::fs::metadata(path).ok()?;
    let kind = if m.file_type().is_char_device() {
        NodeKind::Char
    } else if m.file_type().is_block_device() {
        NodeKind::Block
    } else {
        return None;
    };
    let rdev = m.rdev();
    Some((kind, libc::major(rdev), libc::minor(rdev)))
}

/// `config.json`'s text: the spec with its capability sets sorted (they
/// are sets), so that the same profile on the same host gives the same file.
pub fn config_json(spec: &Spec) -> String {
    let mut v = serde_json::to_value(spec).expect("a spec is always JSON");
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
    }
    let mut s = serde_json::to_string_pretty(&v).expect("JSON");
    s.push('\n');
    s
}

/// `envc-export.json`: what the bundle leaves out and what was decided here.
pub fn export_json(e: &OciExport, profile: &str) -> String {
    let not: Vec<serde_json::Value> = e
        .not_carried
        .iter()
        .map(|n| serde_json::json!({"file": n.origin.file, "key": n.origin.key, "why": n.why}))
        .collect();
    let v = serde_json::json!({
        "profile": profile,
        "not_carried": not,
        "decided_at_export": e.decided,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON");
    s.push('\n');
    s
}
