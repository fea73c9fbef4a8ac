//! The executor: replays a plan through a `Kernel`, records a report, and
//! undoes what it did on the host when a step fails.

pub mod cgroup;
pub mod channel;
pub mod kernel;
pub mod linux;
pub mod monitor;
pub mod recording;
pub mod report;
pub mod supervise;

use crate::paths::ContainerPath;
use crate::plan::{BindWhen, DeviceNumber, Op, Plan, Side};
use kernel::*;
use report::{Report, Status};
use std::path::{Path, PathBuf};

/// Removes a cgroup directory, waiting a moment for its last tasks to leave
/// (the container's processes exit just after PID 1). Gone already is fine.
fn remove_cgroup_dir<K: Kernel>(k: &mut K, path: &Path) -> std::io::Result<()> {
    // Short waits first (the kernel usually lets go within microseconds),
    // then 5 ms at a time: about a second in all.
    let mut wait = std::time::Duration::from_micros(50);
    for _ in 0..210 {
        match k.remove_host_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if linux::errno(&e) == Some(libc::ENOENT) => return Ok(()),
            Err(e) if linux::errno(&e) == Some(libc::EBUSY) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    k.remove_host_dir(path)
}

/// The v1 cpuset values passed down the container's cgroup path: a new
/// cpuset cgroup has no CPUs and memory nodes of its own and refuses tasks
/// until they are written.
struct CpusetValues {
    cpus: String,
    mems: String,
}

impl CpusetValues {
    /// A hierarchy root's own.
    fn of<K: Kernel>(k: &mut K, dir: &Path) -> std::io::Result<CpusetValues> {
        Ok(CpusetValues {
            cpus: k
                .read_host_file(&dir.join("cpuset.cpus"))?
                .trim()
                .to_string(),
            mems: k
                .read_host_file(&dir.join("cpuset.mems"))?
                .trim()
                .to_string(),
        })
    }

    /// Gives `dir`, the level below the last one, the values it lacks, and
    /// carries on those it has. A directory envc has just made is written
    /// without being read: it has none, or (under `cgroup.clone_children`)
    /// its parent's, which are the ones carried.
    fn pass_to<K: Kernel>(&mut self, k: &mut K, dir: &Path, made: bool) -> std::io::Result<()> {
        for (file, value) in [
            ("cpuset.cpus", &mut self.cpus),
            ("cpuset.mems", &mut self.mems),
        ] {
            if !made {
                let have = k.read_host_file(&dir.join(file))?;
                if !have.trim().is_empty() {
                    *value = have.trim().to_string();
                    continue;
                }
            }
            k.write_host_file(&dir.join(file), value)?;
        }
        Ok(())
    }
}

/// The directory the hierarchies' mount points have in common (`/sys/fs/cgroup`
/// on a hybrid host, the cgroup2 mount point itself on a pure one); `None`
/// for `/`.
fn common_dir(layout: &cgroup::Layout) -> Option<std::path::PathBuf> {
    let mut it = layout.hierarchies.iter().map(|h| h.mountpoint.as_path());
    let first = it.next()?;
    let mut common = if layout.hierarchies.len() == 1 {
        first
    } else {
        first.parent()?
    };
    for p in it {
        while !p.starts_with(common) {
            common = common.parent()?;
        }
    }
    (common.parent().is_some()).then(|| common.to_path_buf())
}

/// Capability numbers by name (the five the contract drops, and a few more).
pub fn capability_number(name: &str) -> Option<u32> {
    Some(match name {
        "CAP_SYS_MODULE" => 16,
        "CAP_SYS_RAWIO" => 17,
        "CAP_SYS_TIME" => 25,
        "CAP_MAC_OVERRIDE" => 32,
        "CAP_MAC_ADMIN" => 33,
        "CAP_SYS_ADMIN" => 21,
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_BOOT" => 22,
        _ => return None,
    })
}

/// A fatal step failure, and the exit status it means.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit_code: 125,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(e.to_string())
    }
}

/// Something on the host to undo at stop or after a failure.
#[derive(Debug, Clone)]
pub enum Undo {
    /// A parent cgroup envc created (left if other containers use it).
    RemoveCgroupDir(PathBuf),
    /// The container's own cgroup, with whatever its guest made below it.
    RemoveCgroupTree(PathBuf),
    /// A NIC: the host side of a veth, or a physical NIC to give back. The
    /// container's network namespace is held open until then.
    RemoveNic {
        nic: crate::net::CreatedNic,
        netns: std::rc::Rc<std::os::fd::OwnedFd>,
        name: String,
    },
}

/// The container's cgroup, once made.
#[derive(Debug, Clone)]
pub struct CgroupState {
    pub layout: cgroup::Layout,
    /// Each hierarchy and the container's cgroup in it.
    pub paths: Vec<(cgroup::Hierarchy, PathBuf)>,
    /// `PARENT/NAME`, relative to each hierarchy's root.
    pub relative: String,
    /// What the report says of it, part by part.
    pub detail: Vec<String>,
    /// The v1 hierarchies are still to be made (after the clone).
    pub pending_v1: bool,
}

/// What `CreateCgroup` makes.
pub struct CgroupSpec<'a> {
    pub parent: &'a str,
    pub name: &'a str,
    pub limits: &'a crate::profile::model::Limits,
    pub device_allow: &'a [String],
    pub device_allow_from_host: &'a [crate::paths::HostPath],
}

impl<'a> CgroupSpec<'a> {
    /// The spec of a `CreateCgroup` step; `None` for any other op.
    pub fn of(op: &'a Op) -> Option<CgroupSpec<'a>> {
        match op {
            Op::CreateCgroup {
                parent,
                name,
                limits,
                device_allow,
                device_allow_from_host,
            } => Some(CgroupSpec {
                parent,
                name,
                limits,
                device_allow,
                device_allow_from_host,
            }),
            _ => None,
        }
    }
}

/// Which part of the cgroup a `create_cgroup` call makes. The real driver
/// splits the step across the clone: cgroup2 before it (the clone starts the
/// process there); the v1 hierarchies after it, while the child builds its
/// mounts; the devices allow-list once the child has them to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupPart {
    All,
    Cgroup2,
    V1,
    Devices,
}

/// Runs the steps that need no special handling by the driver.
pub struct Runner<'k, K: Kernel> {
    pub k: &'k mut K,
    pub init: Option<InitInfo>,
    /// The container's first process, once it exists (host side).
    pub child_pid: Option<i32>,
    pub cgroup: Option<CgroupState>,
    /// Whether this process unshared its cgroup namespace.
    pub cgroup_namespace: bool,
    /// What to undo on the host, in the order it was done.
    pub undo: Vec<Undo>,
    /// The container's network namespace, once a NIC needed it.
    pub netns: Option<std::rc::Rc<std::os::fd::OwnedFd>>,
}

impl<'k, K: Kernel> Runner<'k, K> {
    pub fn new(k: &'k mut K) -> Runner<'k, K> {
        Runner {
            k,
            init: None,
            child_pid: None,
            cgroup: None,
            cgroup_namespace: false,
            undo: Vec::new(),
            netns: None,
        }
    }

    /// Undoes everything on the host, newest first. Returns what could not be undone.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::RemoveNic { nic, netns, name } => {
                    use std::os::fd::AsFd;
                    if let Err(e) = self.k.remove_nic(&nic, netns.as_fd(), &name) {
                        left.push(format!("NIC {name}: {e}"));
                    }
                }
                Undo::RemoveCgroupTree(path) => {
                    // Usually the container's cgroup is empty and has no
                    // children: one rmdir. Else (EBUSY: tasks still leaving,
                    // or cgroups of its own)...
                    match self.k.remove_host_dir(&path) {
                        Ok(()) => continue,
                        Err(e) => match linux::errno(&e) {
                            Some(libc::ENOENT) => continue,
                            Some(libc::EBUSY | libc::ENOTEMPTY) => {}
                            _ => {
                                left.push(format!("{}: {e}", path.display()));
                                continue;
                            }
                        },
                    }
                    // ... deepest first: a guest's init (systemd) makes its own tree.
                    let mut dirs = Vec::new();
                    let mut stack = vec![path.clone()];
                    while let Some(d) = stack.pop() {
                        if let Ok(names) = self.k.host_subdirs(&d) {
                            stack.extend(names.iter().map(|n| d.join(n)));
                        }
                        dirs.push(d);
                    }
                    for d in dirs.into_iter().rev() {
                        if let Err(e) = remove_cgroup_dir(self.k, &d) {
                            left.push(format!("{}: {e}", d.display()));
                        }
                    }
                }
                Undo::RemoveCgroupDir(path) => {
                    // A shared parent: left where other containers still use it.
                    match self.k.remove_host_dir(&path) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                linux::errno(&e),
                                Some(libc::ENOENT | libc::EBUSY | libc::ENOTEMPTY)
                            ) => {}
                        Err(e) => left.push(format!("{}: {e}", path.display())),
                    }
                }
            }
        }
        left
    }

    /// In the container's process: the host made the v1 part of the cgroup
    /// (the same paths it made in cgroup2: `MOUNTPOINT/PARENT/NAME`).
    pub fn cgroup_v1_made(&mut self) {
        if let Some(state) = self.cgroup.as_mut().filter(|s| s.pending_v1) {
            // Every hierarchy, in the layout's order.
            state.paths = (state.layout.hierarchies.iter())
                .map(|h| (h.clone(), h.mountpoint.join(&state.relative)))
                .collect();
            state.pending_v1 = false;
        }
    }

    /// Makes the container's cgroup in the hierarchies `part` names (see
    /// [`CgroupPart`]), with the limits and device rules that go there, and
    /// opens what the child joins them with. `self.cgroup` holds the layout
    /// and every hierarchy made so far; its detail adds up over the parts.
    pub fn create_cgroup(
        &mut self,
        spec: &CgroupSpec<'_>,
        part: CgroupPart,
    ) -> Result<Status, Failure> {
        use std::path::Path;
        let k = &mut *self.k;
        let layout = match &self.cgroup {
            Some(state) => state.layout.clone(),
            None => {
                let mountinfo = k.read_host_file(Path::new("/proc/self/mountinfo"))?;
                let Some(layout) = cgroup::parse_layout(&mountinfo) else {
                    if !spec.limits.is_empty() {
                        return Err(Failure::new(
                            "the profile sets limits, but the host has no cgroup hierarchy mounted",
                        ));
                    }
                    return Ok(Status::Skipped {
                        reason: "the host has no cgroup hierarchy mounted".into(),
                    });
                };
                if let Some(dir) = common_dir(&layout) {
                    k.host_base(&dir);
                }
                self.cgroup = Some(CgroupState {
                    detail: vec![layout.describe()],
                    layout,
                    paths: Vec::new(),
                    relative: format!("{}/{}", spec.parent, spec.name),
                    pending_v1: false,
                });
                self.cgroup.as_ref().expect("just set").layout.clone()
            }
        };
        let (parent, name, limits) = (spec.parent, spec.name, spec.limits);
        let mine = |h: &cgroup::Hierarchy| match part {
            CgroupPart::All => true,
            CgroupPart::Cgroup2 => h.v2,
            CgroupPart::V1 => !h.v2,
            CgroupPart::Devices => false,
        };
        let mut paths = Vec::new();
        for h in layout.hierarchies.iter().filter(|h| mine(h)) {
            let cpuset = h.has("cpuset");
            // A shared parent can vanish under us: another container's
            // teardown removes it when it looks unused. Make the chain again.
            let mut tries = 0;
            let mut inherit: Option<CpusetValues>;
            let (_dir, cg) = loop {
                tries += 1;
                // ENOENT: a parent is gone; ENODEV: a parent's file was being
                // written as it went.
                let retry = |e: &std::io::Error| {
                    tries < 5 && matches!(linux::errno(e), Some(libc::ENOENT | libc::ENODEV))
                };
                let mut dir = h.mountpoint.clone();
                let mut vanished = false;
                inherit = match cpuset {
                    true => Some(CpusetValues::of(k, &dir)?),
                    false => None,
                };
                for comp in parent.split('/') {
                    dir.push(comp);
                    // Removed at teardown if no other container uses it then
                    // (whoever made it: containers may stop in any order).
                    let made = k.make_host_dir(&dir).and_then(|made| {
                        self.undo.push(Undo::RemoveCgroupDir(dir.clone()));
                        match inherit.as_mut() {
                            Some(values) => values.pass_to(k, &dir, made),
                            None => Ok(()),
                        }
                    });
                    match made {
                        Ok(()) => {}
                        Err(e) if retry(&e) => {
                            vanished = true;
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if vanished {
                    continue;
                }
                let cg = dir.join(name);
                match k.make_host_dir(&cg) {
                    Ok(true) => break (dir, cg),
                    Ok(false) => {
                        // Left by a supervisor that died (the state lock says
                        // no container of this name runs): take it over if it
                        // is empty.
                        k.remove_host_dir(&cg).map_err(|e| {
                            Failure::new(format!("the cgroup {} exists and cannot be removed ({e}); is something still running in it?", cg.display()))
                        })?;
                        k.make_host_dir(&cg)?;
                        break (dir, cg);
                    }
                    Err(e) if retry(&e) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            self.undo.push(Undo::RemoveCgroupTree(cg.clone()));
            if let Some(values) = inherit.as_mut() {
                values.pass_to(k, &cg, true)?;
            }
            if h.v2 && layout.kind == cgroup::LayoutKind::Unified {
                // Pass on to the container every controller that reaches the
                // parent chain (`cgroup.parent`, envc's own directories). The
                // root's own `cgroup.subtree_control` is the host's setting
                // (systemd enables every controller there): envc never
                // changes it, since nothing could undo that safely while
                // other cgroups rely on it.
                let mut level = h.mountpoint.clone();
                let mut available = String::new();
                for comp in parent.split('/') {
                    level.push(comp);
                    available = k.read_host_file(&level.join("cgroup.controllers"))?;
                    let enable: Vec<String> = available
                        .split_whitespace()
                        .map(|c| format!("+{c}"))
                        .collect();
                    if !enable.is_empty() {
                        k.write_host_file(
                            &level.join("cgroup.subtree_control"),
                            &enable.join(" "),
                        )?;
                    }
                }
                let offered: Vec<&str> = available.split_whitespace().collect();
                if let Some(c) = cgroup::limit_controllers(limits)
                    .into_iter()
                    .find(|c| !offered.contains(c))
                {
                    return Err(Failure::new(format!(
                        "the limits need the {c} controller, which the host's root cgroup does not \
                         pass on (`+{c}` is not in {}/cgroup.subtree_control; systemd sets it, or \
                         write it there)",
                        h.mountpoint.display()
                    )));
                }
            }
            paths.push((h.clone(), cg));
        }
        let mut detail = Vec::new();
        // Limits, in the names the layout uses, written where this part made
        // the hierarchy they go to.
        if !limits.is_empty() {
            let v2 = layout.kind == cgroup::LayoutKind::Unified;
            let target_of = |controller: &str| {
                layout
                    .hierarchies
                    .iter()
                    .find(|h| if v2 { h.v2 } else { h.has(controller) })
            };
            let needed = cgroup::limit_controllers(limits);
            if let Some(c) = needed.iter().find(|c| target_of(c).is_none()) {
                return Err(Failure::new(format!(
                    "the limits need the {c} controller, which this host does not have"
                )));
            }
            let writes_here = needed.iter().any(|c| target_of(c).is_some_and(mine));
            if part == CgroupPart::Cgroup2
                && !v2
                && let Some(crate::profile::values::CpuLimit::Count(_)) = limits.cpu
                && let Some(h) = layout.hierarchies.iter().find(|h| h.has("cpuset"))
            {
                // Refuse a CPU count the host cannot give before the clone,
                // not after it: the CPUs of the deepest level of the parent
                // chain that has its own (a level made later copies its
                // parent's). The v1 part computes the limit again.
                let mut level = h.mountpoint.clone();
                let mut cpus = k.read_host_file(&level.join("cpuset.cpus"))?;
                for comp in parent.split('/') {
                    level.push(comp);
                    match k.read_host_file(&level.join("cpuset.cpus")) {
                        Ok(v) if !v.trim().is_empty() => cpus = v,
                        _ => break,
                    }
                }
                cgroup::limit_writes(limits, false, 0, &cgroup::parse_cpu_list(&cpus))
                    .map_err(Failure::new)?;
            }
            if writes_here {
                let host_memory = match limits.memory {
                    Some(crate::profile::values::MemoryLimit::PercentHundredths(_)) => {
                        cgroup::mem_total(&k.read_host_file(Path::new("/proc/meminfo"))?)
                            .ok_or_else(|| {
                                Failure::new(
                                    "limits.memory is a percentage, but /proc/meminfo has no MemTotal",
                                )
                            })?
                    }
                    _ => 0,
                };
                let parent_cpus = match paths.iter().find(|(h, _)| h.has("cpuset") || (v2 && h.v2))
                {
                    Some((h, cg)) if limits.cpu.is_some() => {
                        let file = if h.v2 {
                            "cpuset.cpus.effective"
                        } else {
                            "cpuset.cpus"
                        };
                        let parent_dir = cg.parent().unwrap_or(cg);
                        cgroup::parse_cpu_list(&k.read_host_file(&parent_dir.join(file))?)
                    }
                    _ => Vec::new(),
                };
                let writes = cgroup::limit_writes(limits, v2, host_memory, &parent_cpus)
                    .map_err(Failure::new)?;
                for w in writes {
                    let target = paths
                        .iter()
                        .find(|(h, _)| if v2 { h.v2 } else { h.has(w.controller) });
                    let Some((_, cg)) = target else {
                        continue; // another part's hierarchy
                    };
                    k.write_host_file(&cg.join(w.file), &w.value)?;
                    detail.push(format!("{}={}", w.file, w.value));
                }
            }
        }
        // The devices allow-list, where the host has a devices controller:
        // in the last part (the real driver writes it while the child joins
        // and mounts its cgroups; it only has to be there before the exec).
        let has_v1 = layout.hierarchies.iter().any(|h| !h.v2);
        let devices_now = match part {
            CgroupPart::All | CgroupPart::Devices => true,
            CgroupPart::Cgroup2 => !has_v1,
            CgroupPart::V1 => false,
        };
        match layout.hierarchies.iter().find(|h| h.has("devices")) {
            Some(h) if devices_now => {
                let cg = h.mountpoint.join(parent).join(name);
                k.write_host_file(&cg.join("devices.deny"), "a")?;
                let mut rules: Vec<String> = spec.device_allow.to_vec();
                for src in spec.device_allow_from_host {
                    if let Some((kind, ma, mi)) = k.host_device(src)? {
                        let t = match kind {
                            crate::profile::model::NodeKind::Char => 'c',
                            crate::profile::model::NodeKind::Block => 'b',
                        };
                        let rule = format!("{t} {ma}:{mi} rwm");
                        if !spec.device_allow.contains(&rule) {
                            rules.push(rule);
                        }
                    }
                }
                // One rule a write, through one open.
                k.write_host_file_each(&cg.join("devices.allow"), &rules)?;
                detail.push(format!("devices: deny all, allow {} rules", rules.len()));
            }
            None if devices_now => {
                detail.push("devices: no devices controller (not restricted)".into())
            }
            _ => {}
        }
        let v1: Vec<PathBuf> = paths
            .iter()
            .filter(|(h, _)| !h.v2)
            .map(|(_, cg)| cg.clone())
            .collect();
        let v2 = paths.iter().find(|(h, _)| h.v2).map(|(_, cg)| cg.as_path());
        k.prepare_cgroup_join(&v1, v2)?;
        let state = self.cgroup.as_mut().expect("set above");
        state.paths.extend(paths);
        // In the layout's order, whichever part made them.
        let order = |h: &cgroup::Hierarchy| {
            (state.layout.hierarchies.iter()).position(|l| l.mountpoint == h.mountpoint)
        };
        state.paths.sort_by_key(|(h, _)| order(h));
        state.detail.extend(detail);
        state.pending_v1 = part == CgroupPart::Cgroup2 && layout.hierarchies.iter().any(|h| !h.v2);
        Ok(Status::detail(state.detail.join("; ")))
    }

    fn mount_cgroups(
        &mut self,
        target: &ContainerPath,
        namespace: bool,
    ) -> Result<Status, Failure> {
        let Some(state) = self.cgroup.clone() else {
            return Ok(Status::Skipped {
                reason: "the container has no cgroup".into(),
            });
        };
        let k = &mut *self.k;
        let mut done = Vec::new();
        let small_tmpfs =
            |k: &mut K| k.mount_fs("tmpfs", target, MountFlags::SECURE, "mode=755,size=65536");
        if namespace && self.cgroup_namespace {
            if state.layout.kind == cgroup::LayoutKind::Unified {
                k.mount_fs("cgroup2", target, MountFlags::SECURE, "")?;
                return Ok(Status::detail(format!("cgroup2 on {target}")));
            }
            small_tmpfs(k)?;
            for (h, _) in &state.paths {
                let Some(dir) = h.dir_name() else { continue };
                let at = target.join(&dir).map_err(|e| Failure::new(e.to_string()))?;
                k.make_dir_all(&at, 0o755)?;
                if h.v2 {
                    k.mount_fs("cgroup2", &at, MountFlags::SECURE, "")?;
                } else {
                    k.mount_fs("cgroup", &at, MountFlags::SECURE, &h.mount_data())?;
                }
                done.push(format!("{dir} ({})", h.label()));
            }
        } else {
            // No cgroup namespace: the host's hierarchies read-only, the
            // container's own cgroup writable.
            small_tmpfs(k)?;
            for (h, cg) in &state.paths {
                let at = match h.dir_name() {
                    Some(dir) => target.join(&dir).map_err(|e| Failure::new(e.to_string()))?,
                    None => target.clone(),
                };
                let host = crate::paths::HostPath::new(&h.mountpoint.to_string_lossy())
                    .map_err(|e| Failure::new(e.to_string()))?;
                let own = crate::paths::HostPath::new(&cg.to_string_lossy())
                    .map_err(|e| Failure::new(e.to_string()))?;
                let own_at = at
                    .join(&state.relative)
                    .map_err(|e| Failure::new(e.to_string()))?;
                k.make_dir_all(&at, 0o755)?;
                k.bind_host(&host, &at, false, true)?;
                k.bind_host(&own, &own_at, false, false)?;
                done.push(format!("{at} (read-only, own cgroup writable)"));
            }
        }
        k.set_readonly(target, false)?;
        Ok(Status::detail(format!(
            "tmpfs on {target}: {}",
            done.join(", ")
        )))
    }

    fn overlay_lxcfs(&mut self, source: &crate::paths::HostPath) -> Result<Status, Failure> {
        use std::path::Path;
        let k = &mut *self.k;
        let base = Path::new(source.as_str());
        let Some(proc_files) = k.list_host_dir(&base.join("proc"))? else {
            return Ok(Status::Skipped {
                reason: format!("LXCFS not found ({source}/proc does not exist)"),
            });
        };
        let mut bound = Vec::new();
        const OFFERED: &[&str] = &[
            "cpuinfo",
            "meminfo",
            "stat",
            "uptime",
            "diskstats",
            "swaps",
            "loadavg",
            "slabinfo",
            "pressure",
        ];
        for f in proc_files.iter().filter(|f| OFFERED.contains(&f.as_str())) {
            let src = crate::paths::HostPath::new(&format!("{source}/proc/{f}"))
                .map_err(|e| Failure::new(e.to_string()))?;
            let dst = ContainerPath::new(&format!("/proc/{f}"))
                .map_err(|e| Failure::new(e.to_string()))?;
            match k.bind_host(&src, &dst, false, false) {
                Ok(()) => bound.push(format!("/proc/{f}")),
                // The kernel's /proc lacks it (e.g. no PSI): nothing to overlay.
                Err(e) if linux::errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let cpu = base.join("sys/devices/system/cpu");
        if let Some(entries) = k.list_host_dir(&cpu)? {
            let dst = ContainerPath::new("/sys/devices/system/cpu").expect("static");
            let src_root = format!("{source}/sys/devices/system/cpu");
            if entries.iter().any(|e| e == "uevent") {
                let src = crate::paths::HostPath::new(&src_root)
                    .map_err(|e| Failure::new(e.to_string()))?;
                k.bind_host(&src, &dst, false, false)?;
                bound.push(dst.to_string());
            } else {
                for e in &entries {
                    let src = crate::paths::HostPath::new(&format!("{src_root}/{e}"))
                        .map_err(|e| Failure::new(e.to_string()))?;
                    let d = dst.join(e).map_err(|e| Failure::new(e.to_string()))?;
                    match k.bind_host(&src, &d, false, false) {
                        Ok(()) => bound.push(d.to_string()),
                        Err(e) if linux::errno(&e) == Some(libc::ENOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(Status::detail(format!(
            "LXCFS found; overlaid {}",
            bound.join(" ")
        )))
    }
    /// Runs one step. `Ok` carries its status (a non-fatal failure included).
    pub fn run(&mut self, op: &Op) -> Result<Status, Failure> {
        let k = &mut *self.k;
        match op {
            Op::CheckDirectory { path, create } => match k.inspect_dir(path, *create)? {
                DirState::Empty => Ok(Status::done()),
                DirState::NotEmpty => Ok(Status::detail(format!(
                    "warning: {path} is not empty; it is mounted over"
                ))),
                DirState::Created => Ok(Status::detail(format!("created {path}"))),
            },
            Op::CheckInit { path } => match k.inspect_init(path) {
                Ok(info) => {
                    let d = if info.resolved == path.as_str() {
                        None
                    } else {
                        Some(format!("{path} resolves to {}", info.resolved))
                    };
                    self.init = Some(info);
                    Ok(Status::Done { detail: d })
                }
                Err(InitProblem::NotFound(m)) => Err(Failure {
                    message: format!("init not found: {m}"),
                    exit_code: 127,
                }),
                Err(InitProblem::NotExecutable(m)) => Err(Failure {
                    message: format!("init cannot be executed: {m}"),
                    exit_code: 126,
                }),
                Err(InitProblem::Other(e)) => Err(e.into()),
            },
            Op::CreateCgroup { .. } => {
                let spec = CgroupSpec::of(op).expect("a CreateCgroup");
                self.create_cgroup(&spec, CgroupPart::All)
            }
            Op::AttachCgroup => {
                if self.cgroup.is_none() {
                    return Ok(Status::Skipped {
                        reason: "the container has no cgroup".into(),
                    });
                }
                let j = k.join_cgroups()?;
                let mut how = Vec::new();
                if j.v1 > 0 {
                    how.push(format!("{} v1 hierarchies (tasks)", j.v1));
                }
                if j.v2_at_clone {
                    how.push("cgroup2 from the clone".to_string());
                }
                if j.v2_by_write {
                    how.push("cgroup2 (cgroup.procs)".to_string());
                }
                Ok(Status::detail(format!("joined {}", how.join(", "))))
            }
            Op::UnshareCgroupNamespace => {
                let ns = crate::paths::HostPath::new("/proc/self/ns/cgroup").expect("static");
                if k.host_path_state(&ns)? == HostPathState::Absent {
                    return Ok(Status::Skipped {
                        reason: "the kernel has no cgroup namespaces".into(),
                    });
                }
                k.unshare_cgroup_namespace()?;
                self.cgroup_namespace = true;
                Ok(Status::done())
            }
            Op::MountCgroups { target, namespace } => self.mount_cgroups(target, *namespace),
            Op::OverlayLxcfs { source } => self.overlay_lxcfs(source),
            Op::CreateNic {
                device,
                nictype,
                parent,
                host_name,
                name,
                hwaddr,
                mtu,
            } => {
                let pid = self
                    .child_pid
                    .ok_or_else(|| Failure::new("no container process for the NIC"))?;
                let netns = match &self.netns {
                    Some(n) => n.clone(),
                    None => {
                        let n = std::rc::Rc::new(k.open_netns(pid)?);
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
                use std::os::fd::AsFd;
                let spec = crate::net::NicSpec {
                    nictype: *nictype,
                    parent: parent.as_deref(),
                    host_name: host_name.as_deref(),
                    container_name: name,
                    hwaddr: mac,
                    mtu: *mtu,
                    netns: netns.as_fd(),
                };
                let created = k.create_nic(&spec)?;
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
            Op::ConfigureNic {
                name,
                ipv4_address,
                ipv4_gateway,
            } => {
                let ipv4 = match ipv4_address {
                    Some(a) => {
                        Some(crate::profile::values::parse_ipv4_cidr(a).map_err(Failure::new)?)
                    }
                    None => None,
                };
                let gw = match ipv4_gateway {
                    Some(g) => Some(
                        g.parse()
                            .map_err(|_| Failure::new(format!("{g} is not an IPv4 address")))?,
                    ),
                    None => None,
                };
                k.configure_nic(name, ipv4, gw)?;
                Ok(Status::done())
            }
            Op::MakeGuestApiSocket { path } => {
                k.make_socket(path, SocketKind::Stream, 0o666)?;
                Ok(Status::detail("served by envc"))
            }
            Op::CloneChild { .. } | Op::ExecInit { .. } => {
                Err(Failure::new(format!("{} is run by the driver", op.name())))
            }
            Op::SetHostname { hostname } => {
                k.set_hostname(hostname)?;
                Ok(Status::done())
            }
            Op::MakeMountsSlave => {
                k.make_mounts_slave()?;
                Ok(Status::done())
            }
            Op::BindRootfs => {
                k.bind_rootfs()?;
                Ok(Status::done())
            }
            Op::MountProc { target, .. } => {
                k.mount_fs("proc", target, MountFlags::SECURE, "")?;
                Ok(Status::done())
            }
            Op::MountSysfs { target } => {
                k.mount_fs("sysfs", target, MountFlags::SECURE, "")?;
                Ok(Status::done())
            }
            Op::BindSelf { target } => match k.bind_self(target) {
                Ok(()) => Ok(Status::done()),
                // procfs and sysfs only have what the kernel offers
                // (no /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::Skipped {
                    reason: "the kernel does not offer it".into(),
                }),
                Err(e) => Err(e.into()),
            },
            Op::MountTmpfs {
                target,
                size,
                mode,
                nodev,
                readonly,
            } => {
                k.make_dir_all(target, 0o755)?;
                let mut data = format!("mode={mode:o}");
                if let Some(s) = size {
                    data.push_str(&format!(",size={s}"));
                }
                let flags = MountFlags {
                    nosuid: true,
                    nodev: *nodev,
                    noexec: false,
                    readonly: *readonly,
                };
                k.mount_fs("tmpfs", target, flags, &data)?;
                Ok(Status::done())
            }
            Op::MakeDevice {
                path,
                kind,
                number,
                fallback,
                mode,
                uid,
                gid,
                required,
            } => {
                let (major, minor) = match number {
                    DeviceNumber::Fixed { major, minor } => (*major, *minor),
                    DeviceNumber::FromHost { source } => match k.host_device(source)? {
                        Some((_, a, b)) => (a, b),
                        None if !required => {
                            return Ok(Status::Skipped {
                                reason: format!("the host has no {source}"),
                            });
                        }
                        None => return Err(Failure::new(format!("the host has no {source}"))),
                    },
                };
                match k.mknod(path, *kind, *mode, major, minor) {
                    Ok(()) => {}
                    Err(e) if linux::errno(&e) == Some(libc::EPERM) && fallback.is_some() => {
                        let src = fallback.as_ref().expect("checked");
                        k.make_placeholder(path)?;
                        k.bind_host(src, path, false, false)?;
                        return Ok(Status::detail(format!(
                            "mknod refused; bound the host's {src}"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
                if *uid != 0 || *gid != 0 {
                    k.chown(path, *uid, *gid)?;
                }
                Ok(Status::detail("mknod"))
            }
            Op::BindDevice {
                source,
                path,
                required,
            } => match k.host_path_state(source)? {
                HostPathState::Absent if !required => Ok(Status::Skipped {
                    reason: "not found on the host".into(),
                }),
                HostPathState::Absent => Err(Failure::new(format!("the host has no {source}"))),
                HostPathState::Present { .. } => {
                    k.make_placeholder(path)?;
                    k.bind_host(source, path, false, false)?;
                    Ok(Status::done())
                }
            },
            Op::MountDevpts { target, options } => {
                k.make_dir_all(target, 0o755)?;
                let flags = MountFlags {
                    nosuid: true,
                    noexec: true,
                    ..MountFlags::NONE
                };
                k.mount_fs("devpts", target, flags, options)?;
                Ok(Status::done())
            }
            Op::BindPtmx { path } => {
                let ptmx = ContainerPath::new("/dev/pts/ptmx").expect("static");
                k.make_placeholder(path)?;
                match k.bind_inside(&ptmx, path) {
                    Ok(()) => Ok(Status::detail("bind of /dev/pts/ptmx")),
                    Err(e) => {
                        k.unlink(path)?;
                        k.symlink("pts/ptmx", path)?;
                        Ok(Status::detail(format!(
                            "bind refused ({e}); symlink to pts/ptmx"
                        )))
                    }
                }
            }
            Op::MakeConsole { path } => {
                let ptmx = ContainerPath::new("/dev/pts/ptmx").expect("static");
                k.make_console(&ptmx, path)?;
                Ok(Status::done())
            }
            Op::MakeSymlink { path, target } => {
                k.symlink(target, path)?;
                Ok(Status::done())
            }
            Op::MountMqueue { target } => {
                k.make_dir_all(target, 0o755)?;
                k.mount_fs("mqueue", target, MountFlags::SECURE, "")?;
                Ok(Status::done())
            }
            Op::MakeLogSocket {
                path,
                unless_systemd,
            } => {
                if *unless_systemd && self.init.as_ref().is_some_and(|i| i.is_systemd) {
                    return Ok(Status::Skipped {
                        reason: "init is systemd; journald makes /dev/log".into(),
                    });
                }
                k.make_socket(path, SocketKind::Datagram, 0o666)?;
                Ok(Status::done())
            }
            Op::BindMount {
                source,
                target,
                recursive,
                readonly,
                when,
            } => {
                let state = match k.host_path_state(source) {
                    Ok(s) => s,
                    // A conditional path that cannot even be probed is
                    // reported; it never stops the container.
                    Err(e) if *when == BindWhen::IfMounted => {
                        return Ok(Status::Failed {
                            error: e.to_string(),
                            fatal: false,
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
                let is_dir = match (state, when) {
                    (HostPathState::Absent, BindWhen::Always) => {
                        return Err(Failure::new(format!("the host has no {source}")));
                    }
                    (HostPathState::Absent, _) => {
                        return Ok(Status::Skipped {
                            reason: "absent".into(),
                        });
                    }
                    (HostPathState::Present { mounted: false, .. }, BindWhen::IfMounted) => {
                        return Ok(Status::Skipped {
                            reason: "present, not mounted".into(),
                        });
                    }
                    (HostPathState::Present { is_dir, .. }, _) => is_dir,
                };
                let fatal = *when != BindWhen::IfMounted;
                let r = (|| {
                    if is_dir {
                        k.make_dir_all(target, 0o755)?;
                    } else {
                        k.make_placeholder(target)?;
                    }
                    k.bind_host(source, target, *recursive, *readonly)
                })();
                match r {
                    Ok(()) => Ok(Status::done()),
                    Err(e) if !fatal => Ok(Status::Failed {
                        error: e.to_string(),
                        fatal: false,
                    }),
                    Err(e) => Err(e.into()),
                }
            }
            Op::BringUpLoopback => {
                k.loopback_up()?;
                Ok(Status::done())
            }
            Op::RemountReadOnly { target, recursive } => match k.set_readonly(target, *recursive) {
                Ok(()) => Ok(Status::done()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::Skipped {
                    reason: "the kernel does not offer it".into(),
                }),
                Err(e) => Err(e.into()),
            },
            Op::PivotRoot => {
                k.pivot_root()?;
                Ok(Status::done())
            }
        }
    }
}

/// The capability numbers an `ExecInit` drops.
pub fn dropped_caps(names: &[String]) -> Result<Vec<u32>, Failure> {
    names
        .iter()
        .map(|n| {
            capability_number(n).ok_or_else(|| Failure::new(format!("unknown capability {n}")))
        })
        .collect()
}

/// Replays a plan through a kernel that does not really create a process
/// (the recording double): both sides run here, in plan order.
pub fn simulate<K: Kernel>(plan: &Plan, k: &mut K) -> Report {
    let mut report = Report::new(plan);
    if let Err(e) = k.open_rootfs(Path::new(&plan.rootfs)) {
        report.set(
            plan,
            0,
            Status::Failed {
                error: format!("cannot open the rootfs {}: {e}", plan.rootfs),
                fatal: true,
            },
        );
        report.outcome = Some(report::Outcome {
            exit_code: 125,
            summary: "failed at step 1".into(),
        });
        return report;
    }
    let mut runner = Runner::new(k);
    let mut failed: Option<(usize, Failure)> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let r = match &step.op {
            Op::CloneChild { namespaces } => match runner.k.spawn(namespaces) {
                Ok(Spawned::Parent { pid, .. }) => {
                    runner.child_pid = Some(pid);
                    report.pid = Some(pid);
                    Ok(Status::detail(format!("pid {pid} on the host")))
                }
                Ok(Spawned::Child) => Err(Failure::new("a recording kernel does not fork")),
                Err(e) => Err(Failure::from(e)),
            },
            Op::ExecInit {
                command,
                env,
                drop_capabilities,
            } => dropped_caps(drop_capabilities).and_then(|caps| {
                let _ = runner.k.take_handoff();
                runner
                    .k
                    .exec_init(command, env, &caps)
                    .map(|()| Status::done())
                    .map_err(Failure::from)
            }),
            op => runner.run(op),
        };
        match r {
            Ok(s) => report.set(plan, i, s),
            Err(f) => {
                failed = Some((i, f));
                break;
            }
        }
    }
    report.host.init = runner.init.as_ref().map(|i| i.resolved.clone());
    report.teardown_left = runner.teardown();
    if let Some((i, f)) = failed {
        report.set(
            plan,
            i,
            Status::Failed {
                error: f.message.clone(),
                fatal: true,
            },
        );
        report.outcome = Some(report::Outcome {
            exit_code: f.exit_code,
            summary: format!("failed at step {} ({})", i + 1, plan.steps[i].op.name()),
        });
    }
    report
}

/// Whether a step is the driver's: the clone and the exec.
pub fn is_driver_step(op: &Op) -> bool {
    matches!(op, Op::CloneChild { .. } | Op::ExecInit { .. })
}

/// The index of the clone step.
pub fn clone_index(plan: &Plan) -> Option<usize> {
    plan.steps
        .iter()
        .position(|s| matches!(s.op, Op::CloneChild { .. }))
}

/// Side of step `i`, or None past the end.
pub fn side_of(plan: &Plan, i: usize) -> Option<Side> {
    plan.steps.get(i).map(|s| s.side)
}
