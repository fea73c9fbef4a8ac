//! The container's side of its cgroup: joining it, unsharing the cgroup
//! namespace, and what `/sys/fs/cgroup` shows inside.

use super::{CgroupState, LayoutKind};
use crate::exec::kernel::{HostPathState, Kernel, MountFlags};
use crate::exec::report::Status;
use crate::exec::{Failure, Runner};
use crate::paths::{ContainerPath, HostPath};

impl<K: Kernel> Runner<'_, K> {
    /// `AttachCgroup`: the container's first process joins its cgroup in
    /// every hierarchy.
    pub(crate) fn attach_cgroup(&mut self) -> Result<Status, Failure> {
        if self.cgroup.is_none() {
            return Ok(Status::Skipped {
                reason: "the container has no cgroup".into(),
            });
        }
        let j = self.k.join_cgroups()?;
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

    /// `UnshareCgroupNamespace`, where the kernel has cgroup namespaces.
    pub(crate) fn unshare_cgroup_namespace(&mut self) -> Result<Status, Failure> {
        let ns = HostPath::new("/proc/self/ns/cgroup").expect("static");
        if self.k.host_path_state(&ns)? == HostPathState::Absent {
            return Ok(Status::Skipped {
                reason: "the kernel has no cgroup namespaces".into(),
            });
        }
        self.k.unshare_cgroup_namespace()?;
        self.cgroup_namespace = true;
        Ok(Status::done())
    }

    /// `MountCgroups`: `/sys/fs/cgroup` inside, read-only at the top. In a
    /// cgroup namespace the container mounts its own view of each
    /// hierarchy; without one it sees the host's, read-only, with its own
    /// cgroup writable.
    pub(crate) fn mount_cgroups(
        &mut self,
        target: &ContainerPath,
        namespace: bool,
    ) -> Result<Status, Failure> {
        let Some(state) = self.cgroup.clone() else {
            return Ok(Status::Skipped {
                reason: "the container has no cgroup".into(),
            });
        };
        let done = if namespace && self.cgroup_namespace {
            if state.layout.kind == LayoutKind::Unified {
                self.k.mount_fs("cgroup2", target, MountFlags::SECURE, "")?;
                return Ok(Status::detail(format!("cgroup2 on {target}")));
            }
            self.mount_own_hierarchies(&state, target)?
        } else {
            self.bind_host_hierarchies(&state, target)?
        };
        self.k.set_readonly(target, false)?;
        Ok(Status::detail(format!(
            "tmpfs on {target}: {}",
            done.join(", ")
        )))
    }

    /// A small tmpfs at `target` for the hierarchies' mount points.
    fn mount_cgroup_tmpfs(&mut self, target: &ContainerPath) -> std::io::Result<()> {
        self.k
            .mount_fs("tmpfs", target, MountFlags::SECURE, "mode=755,size=65536")
    }

    /// In a cgroup namespace on a host with v1 hierarchies: each hierarchy
    /// mounted afresh under a tmpfs. Returns what was mounted.
    fn mount_own_hierarchies(
        &mut self,
        state: &CgroupState,
        target: &ContainerPath,
    ) -> Result<Vec<String>, Failure> {
        self.mount_cgroup_tmpfs(target)?;
        let mut done = Vec::new();
        for (h, _) in &state.paths {
            let Some(dir) = h.dir_name() else { continue };
            let at = target.join(&dir)?;
            self.k.make_dir_all(&at, 0o755)?;
            if h.v2 {
                self.k.mount_fs("cgroup2", &at, MountFlags::SECURE, "")?;
            } else {
                self.k
                    .mount_fs("cgroup", &at, MountFlags::SECURE, &h.mount_data())?;
            }
            done.push(format!("{dir} ({})", h.label()));
        }
        Ok(done)
    }

    /// No cgroup namespace: the host's hierarchies read-only, the
    /// container's own cgroup writable. Returns what was bound.
    fn bind_host_hierarchies(
        &mut self,
        state: &CgroupState,
        target: &ContainerPath,
    ) -> Result<Vec<String>, Failure> {
        self.mount_cgroup_tmpfs(target)?;
        let mut done = Vec::new();
        for (h, cg) in &state.paths {
            let at = match h.dir_name() {
                Some(dir) => target.join(&dir)?,
                None => target.clone(),
            };
            let host = HostPath::new(&h.mountpoint.to_string_lossy())?;
            let own = HostPath::new(&cg.to_string_lossy())?;
            let own_at = at.join(&state.relative)?;
            self.k.make_dir_all(&at, 0o755)?;
            self.k.bind_host(&host, &at, false, true)?;
            self.k.bind_host(&own, &own_at, false, false)?;
            done.push(format!("{at} (read-only, own cgroup writable)"));
        }
        Ok(done)
    }
}
