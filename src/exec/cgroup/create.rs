//! Making the container's cgroup on the host: the parent chain and the
//! container's directory in each hierarchy (with the v1 cpuset values a new
//! level needs), the controllers cgroup2 passes down, the limits, the
//! devices allow-list, and what the child joins it with.

use super::device_program::device_program;
use super::{Hierarchy, Layout, LayoutKind};
use crate::exec::kernel::Kernel;
use crate::exec::linux::errno;
use crate::exec::report::Status;
use crate::exec::{Failure, Runner, Undo};
use crate::plan::Op;
use crate::profile::model::{Limits, NodeKind};
use crate::profile::values::{CpuLimit, DeviceRule, MemoryLimit};
use std::path::{Path, PathBuf};

/// The container's cgroup, once made.
#[derive(Debug, Clone)]
pub struct CgroupState {
    pub layout: Layout,
    /// Each hierarchy and the container's cgroup in it.
    pub paths: Vec<(Hierarchy, PathBuf)>,
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
    pub limits: &'a Limits,
    pub device_allow: &'a [String],
    pub device_allow_from_host: &'a [crate::paths::HostPath],
    pub unrestricted_devices_ok: bool,
    pub delegate: bool,
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
                unrestricted_devices_ok,
                delegate,
            } => Some(CgroupSpec {
                parent,
                name,
                limits,
                device_allow,
                device_allow_from_host,
                unrestricted_devices_ok: *unrestricted_devices_ok,
                delegate: *delegate,
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

impl CgroupPart {
    /// Whether this part makes the container's cgroup in `h`.
    fn makes(self, h: &Hierarchy) -> bool {
        match self {
            CgroupPart::All => true,
            CgroupPart::Cgroup2 => h.v2,
            CgroupPart::V1 => !h.v2,
            CgroupPart::Devices => false,
        }
    }

    /// Whether this part writes the devices allow-list: the last part (the
    /// real driver writes it while the child joins and mounts its cgroups;
    /// it only has to be there before the exec).
    fn writes_devices(self, layout: &Layout) -> bool {
        match self {
            CgroupPart::All | CgroupPart::Devices => true,
            CgroupPart::Cgroup2 => !layout.hierarchies.iter().any(|h| !h.v2),
            CgroupPart::V1 => false,
        }
    }
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
fn common_dir(layout: &Layout) -> Option<PathBuf> {
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

impl<K: Kernel> Runner<'_, K> {
    /// Makes the container's cgroup in the hierarchies `part` names (see
    /// [`CgroupPart`]), with the limits and device rules that go there, and
    /// opens what the child joins them with. `self.cgroup` holds the layout
    /// and every hierarchy made so far; its detail adds up over the parts.
    pub fn create_cgroup(
        &mut self,
        spec: &CgroupSpec<'_>,
        part: CgroupPart,
    ) -> Result<Status, Failure> {
        let Some(layout) = self.cgroup_layout(spec)? else {
            let devices = self.devices_unrestricted(spec, "the host has no cgroup hierarchy")?;
            return Ok(Status::Skipped {
                reason: format!("the host has no cgroup hierarchy mounted; {devices}"),
            });
        };
        let mut paths = Vec::new();
        for h in layout.hierarchies.iter().filter(|h| part.makes(h)) {
            let cg = self.make_cgroup_dir(h, spec.parent, spec.name)?;
            if h.v2 && layout.kind == LayoutKind::Unified {
                self.enable_controllers(h, spec.parent, spec.limits)?;
            }
            if spec.delegate {
                self.delegate(h, &cg)?;
            }
            paths.push((h.clone(), cg));
        }
        let mut detail = self.write_limits(&layout, part, spec, &paths)?;
        if part.writes_devices(&layout) {
            detail.push(self.write_device_rules(&layout, spec)?);
        }
        self.prepare_join(&paths)?;
        Ok(self.add_part(part, paths, detail))
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

    /// The host's layout: read from mountinfo by the first part (which
    /// starts `self.cgroup`), kept for the others. `None`: the host has no
    /// cgroup hierarchy, and the profile sets no limits that would need one.
    fn cgroup_layout(&mut self, spec: &CgroupSpec<'_>) -> Result<Option<Layout>, Failure> {
        if let Some(state) = &self.cgroup {
            return Ok(Some(state.layout.clone()));
        }
        let mountinfo = self.k.read_host_file(Path::new("/proc/self/mountinfo"))?;
        let Some(layout) = super::parse_layout(&mountinfo) else {
            if !spec.limits.is_empty() {
                return Err(Failure::new(
                    "the profile sets limits, but the host has no cgroup hierarchy mounted",
                ));
            }
            return Ok(None);
        };
        if let Some(dir) = common_dir(&layout) {
            self.k.host_base(&dir);
        }
        self.cgroup = Some(CgroupState {
            detail: vec![layout.describe()],
            layout: layout.clone(),
            paths: Vec::new(),
            relative: format!("{}/{}", spec.parent, spec.name),
            pending_v1: false,
        });
        Ok(Some(layout))
    }

    /// Makes `PARENT/NAME` in hierarchy `h` and returns the container's
    /// directory. A shared parent can vanish under us: another container's
    /// teardown removes it when it looks unused. Then the chain is made
    /// again (a few times at most).
    fn make_cgroup_dir(
        &mut self,
        h: &Hierarchy,
        parent: &str,
        name: &str,
    ) -> Result<PathBuf, Failure> {
        let mut tries = 0;
        loop {
            tries += 1;
            // ENOENT: a parent is gone; ENODEV: a parent's file was being
            // written as it went.
            let retry = |e: &std::io::Error| {
                tries < 5 && matches!(errno(e), Some(libc::ENOENT | libc::ENODEV))
            };
            let mut inherit = match h.has("cpuset") {
                true => Some(CpusetValues::of(self.k, &h.mountpoint)?),
                false => None,
            };
            let dir = match self.make_parent_chain(h, parent, inherit.as_mut()) {
                Ok(dir) => dir,
                Err(e) if retry(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let cg = dir.join(name);
            match self.k.make_host_dir(&cg) {
                Ok(true) => {}
                Ok(false) => self.take_over_left_cgroup(&cg)?,
                Err(e) if retry(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            self.undo.push(Undo::RemoveCgroupTree(cg.clone()));
            if let Some(values) = inherit.as_mut() {
                values.pass_to(self.k, &cg, true)?;
            }
            return Ok(cg);
        }
    }

    /// Makes each level of `parent` in `h` that is missing, passing the
    /// cpuset values down when `h` has the cpuset controller. Returns the
    /// deepest level.
    fn make_parent_chain(
        &mut self,
        h: &Hierarchy,
        parent: &str,
        mut inherit: Option<&mut CpusetValues>,
    ) -> std::io::Result<PathBuf> {
        let mut dir = h.mountpoint.clone();
        for comp in parent.split('/') {
            dir.push(comp);
            let made = self.k.make_host_dir(&dir)?;
            // Removed at teardown if no other container uses it then
            // (whoever made it: containers may stop in any order).
            self.undo.push(Undo::RemoveCgroupDir(dir.clone()));
            if let Some(values) = inherit.as_mut() {
                values.pass_to(self.k, &dir, made)?;
            }
        }
        Ok(dir)
    }

    /// The container's cgroup exists already: left by a supervisor that
    /// died (the state lock says no container of this name runs). Taken
    /// over if it is empty.
    fn take_over_left_cgroup(&mut self, cg: &Path) -> Result<(), Failure> {
        self.k.remove_host_dir(cg).map_err(|e| {
            Failure::new(format!(
                "the cgroup {} exists and cannot be removed ({e}); is something still running in it?",
                cg.display()
            ))
        })?;
        self.k.make_host_dir(cg)?;
        Ok(())
    }

    /// On a pure cgroup2 host: passes on to the container every controller
    /// that reaches the parent chain (`cgroup.parent`, envc's own
    /// directories), and fails if the limits need one that does not. The
    /// root's own `cgroup.subtree_control` is the host's setting (systemd
    /// enables every controller there): envc never changes it, since nothing
    /// could undo that safely while other cgroups rely on it.
    fn enable_controllers(
        &mut self,
        h: &Hierarchy,
        parent: &str,
        limits: &Limits,
    ) -> Result<(), Failure> {
        let mut level = h.mountpoint.clone();
        let mut available = String::new();
        for comp in parent.split('/') {
            level.push(comp);
            available = self.k.read_host_file(&level.join("cgroup.controllers"))?;
            let enable: Vec<String> = available
                .split_whitespace()
                .map(|c| format!("+{c}"))
                .collect();
            if !enable.is_empty() {
                self.k
                    .write_host_file(&level.join("cgroup.subtree_control"), &enable.join(" "))?;
            }
        }
        let offered: Vec<&str> = available.split_whitespace().collect();
        if let Some(c) = super::limit_controllers(limits)
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
        Ok(())
    }

    /// Writes the limits, in the names the layout uses, where this part
    /// made the hierarchy they go to. Returns what the report says of them.
    fn write_limits(
        &mut self,
        layout: &Layout,
        part: CgroupPart,
        spec: &CgroupSpec<'_>,
        paths: &[(Hierarchy, PathBuf)],
    ) -> Result<Vec<String>, Failure> {
        let limits = spec.limits;
        let mut detail = Vec::new();
        if limits.is_empty() {
            return Ok(detail);
        }
        let v2 = layout.kind == LayoutKind::Unified;
        let target_of = |controller: &str| {
            layout
                .hierarchies
                .iter()
                .find(|h| if v2 { h.v2 } else { h.has(controller) })
        };
        let needed = super::limit_controllers(limits);
        if let Some(c) = needed.iter().find(|c| target_of(c).is_none()) {
            return Err(Failure::new(format!(
                "the limits need the {c} controller, which this host does not have"
            )));
        }
        let writes_here = needed
            .iter()
            .any(|c| target_of(c).is_some_and(|h| part.makes(h)));
        if part == CgroupPart::Cgroup2
            && !v2
            && let Some(CpuLimit::Count(_)) = limits.cpu
            && let Some(h) = layout.hierarchies.iter().find(|h| h.has("cpuset"))
        {
            self.check_cpu_count(h, spec.parent, limits)?;
        }
        if !writes_here {
            return Ok(detail);
        }
        let host_memory = self.host_memory(limits)?;
        let parent_cpus = self.parent_cpus(paths, v2, limits)?;
        let writes =
            super::limit_writes(limits, v2, host_memory, &parent_cpus).map_err(Failure::new)?;
        for w in writes {
            let target = paths
                .iter()
                .find(|(h, _)| if v2 { h.v2 } else { h.has(w.controller) });
            let Some((_, cg)) = target else {
                continue; // another part's hierarchy
            };
            self.k.write_host_file(&cg.join(w.file), &w.value)?;
            detail.push(format!("{}={}", w.file, w.value));
        }
        Ok(detail)
    }

    /// Refuses a CPU count the host cannot give before the clone, not after
    /// it: the CPUs of the deepest level of the parent chain in the v1
    /// cpuset hierarchy `h` that has its own (a level made later copies its
    /// parent's). The v1 part computes the limit again.
    fn check_cpu_count(
        &mut self,
        h: &Hierarchy,
        parent: &str,
        limits: &Limits,
    ) -> Result<(), Failure> {
        let mut level = h.mountpoint.clone();
        let mut cpus = self.k.read_host_file(&level.join("cpuset.cpus"))?;
        for comp in parent.split('/') {
            level.push(comp);
            match self.k.read_host_file(&level.join("cpuset.cpus")) {
                Ok(v) if !v.trim().is_empty() => cpus = v,
                _ => break,
            }
        }
        super::limit_writes(limits, false, 0, &super::parse_cpu_list(&cpus))
            .map_err(Failure::new)?;
        Ok(())
    }

    /// The host's memory in bytes, when the memory limit is a percentage
    /// of it (0 otherwise).
    fn host_memory(&mut self, limits: &Limits) -> Result<u64, Failure> {
        match limits.memory {
            Some(MemoryLimit::PercentHundredths(_)) => super::mem_total(
                &self.k.read_host_file(Path::new("/proc/meminfo"))?,
            )
            .ok_or_else(|| {
                Failure::new("limits.memory is a percentage, but /proc/meminfo has no MemTotal")
            }),
            _ => Ok(0),
        }
    }

    /// The CPUs the container's parent cgroup has, when the CPU limit needs
    /// them (empty otherwise).
    fn parent_cpus(
        &mut self,
        paths: &[(Hierarchy, PathBuf)],
        v2: bool,
        limits: &Limits,
    ) -> Result<Vec<u32>, Failure> {
        match paths.iter().find(|(h, _)| h.has("cpuset") || (v2 && h.v2)) {
            Some((h, cg)) if limits.cpu.is_some() => {
                let file = if h.v2 {
                    "cpuset.cpus.effective"
                } else {
                    "cpuset.cpus"
                };
                let parent_dir = cg.parent().unwrap_or(cg);
                Ok(super::parse_cpu_list(
                    &self.k.read_host_file(&parent_dir.join(file))?,
                ))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Hands the container's cgroup `cg` in hierarchy `h` to the container's
    /// root: the directory and the files that let it move its processes
    /// and make its own tree (LXD's delegation); the limits stay the host
    /// root's.
    fn delegate(&mut self, h: &Hierarchy, cg: &Path) -> Result<(), Failure> {
        let map = self
            .idmap
            .as_ref()
            .ok_or_else(|| Failure::new("no id map to delegate the cgroup to"))?;
        let (Some(uid), Some(gid)) = (map.root_host_uid(), map.root_host_gid()) else {
            return Err(Failure::new("the id map has no root"));
        };
        let files: &[&str] = if h.v2 {
            &["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]
        } else {
            &["tasks", "cgroup.procs", "notify_on_release"]
        };
        self.k.chown_host(cg, uid, gid)?;
        for f in files {
            match self.k.chown_host(&cg.join(f), uid, gid) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// The device allow-list: everything denied, then the profile's rules
    /// and the numbers of the host nodes it names. Enforced by the v1
    /// devices controller where the host has one, else by a device program
    /// on the container's cgroup2 directory. Where neither can be had the
    /// start is refused, unless the profile allows it. Returns what the
    /// report says of it.
    fn write_device_rules(
        &mut self,
        layout: &Layout,
        spec: &CgroupSpec<'_>,
    ) -> Result<String, Failure> {
        let rules = self.device_rules(spec)?;
        let n = rules.len();
        if let Some(h) = layout.hierarchies.iter().find(|h| h.has("devices")) {
            let cg = h.mountpoint.join(spec.parent).join(spec.name);
            self.k.write_host_file(&cg.join("devices.deny"), "a")?;
            // One rule a write, through one open.
            self.k
                .write_host_file_each(&cg.join("devices.allow"), &rules)?;
            return Ok(format!(
                "devices: deny all, allow {n} rules (v1 devices controller)"
            ));
        }
        let why = match layout.hierarchies.iter().find(|h| h.v2) {
            Some(h) => {
                let cg = h.mountpoint.join(spec.parent).join(spec.name);
                let parsed = (rules.iter())
                    .map(|r| DeviceRule::parse(r).map_err(|e| format!("device rule `{r}`: {e}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Failure::new)?;
                let program = device_program(&parsed);
                match self.k.attach_device_program(&cg, &program) {
                    Ok(()) => {
                        return Ok(format!(
                            "devices: deny all, allow {n} rules (cgroup2 device program, {} \
                             instructions)",
                            program.len()
                        ));
                    }
                    Err(e) => format!("no v1 devices controller, and {e}"),
                }
            }
            None => "no v1 devices controller and no cgroup2 hierarchy".into(),
        };
        self.devices_unrestricted(spec, &why)
    }

    /// The profile's rules and the rules for the host nodes it names.
    fn device_rules(&mut self, spec: &CgroupSpec<'_>) -> Result<Vec<String>, Failure> {
        let mut rules: Vec<String> = spec.device_allow.to_vec();
        for src in spec.device_allow_from_host {
            if let Some((kind, ma, mi)) = self.k.host_device(src)? {
                let t = match kind {
                    NodeKind::Char => 'c',
                    NodeKind::Block => 'b',
                };
                let rule = format!("{t} {ma}:{mi} rwm");
                if !spec.device_allow.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
        Ok(rules)
    }

    /// The device rules cannot be enforced (`why`): refused, unless the
    /// profile says to start anyway. Returns what the report says.
    fn devices_unrestricted(&self, spec: &CgroupSpec<'_>, why: &str) -> Result<String, Failure> {
        if spec.device_allow.is_empty() && spec.device_allow_from_host.is_empty() {
            return Ok(format!("devices: not restricted (no rules; {why})"));
        }
        if !spec.unrestricted_devices_ok {
            return Err(Failure::new(format!(
                "the container's device rules cannot be enforced: {why}. Every device node \
                 it could reach would be open to it; set `cgroup.allow-unrestricted-devices \
                 = true` in the profile to start it so"
            )));
        }
        Ok(format!(
            "devices: NOT RESTRICTED ({why}; cgroup.allow-unrestricted-devices = true)"
        ))
    }

    /// Opens what the child joins the hierarchies this part made with.
    fn prepare_join(&mut self, paths: &[(Hierarchy, PathBuf)]) -> Result<(), Failure> {
        let v1: Vec<PathBuf> = paths
            .iter()
            .filter(|(h, _)| !h.v2)
            .map(|(_, cg)| cg.clone())
            .collect();
        let v2 = paths.iter().find(|(h, _)| h.v2).map(|(_, cg)| cg.as_path());
        self.k.prepare_cgroup_join(&v1, v2)?;
        Ok(())
    }

    /// Adds what this part made to `self.cgroup`; the step's status says
    /// everything made so far.
    fn add_part(
        &mut self,
        part: CgroupPart,
        paths: Vec<(Hierarchy, PathBuf)>,
        detail: Vec<String>,
    ) -> Status {
        let state = self.cgroup.as_mut().expect("set by cgroup_layout");
        state.paths.extend(paths);
        // In the layout's order, whichever part made them.
        let order = |h: &Hierarchy| {
            (state.layout.hierarchies.iter()).position(|l| l.mountpoint == h.mountpoint)
        };
        state.paths.sort_by_key(|(h, _)| order(h));
        state.detail.extend(detail);
        state.pending_v1 =
            part == CgroupPart::Cgroup2 && state.layout.hierarchies.iter().any(|h| !h.v2);
        Status::detail(state.detail.join("; "))
    }
}
