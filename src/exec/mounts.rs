//! The container's mounts that need more than one call: binds of a path
//! onto itself, tmpfs, devpts, mqueue, binds from the host, and read-only
//! remounts.

use super::kernel::{HostPathState, Kernel, MountFlags};
use super::report::Status;
use super::{Failure, Runner};
use crate::paths::{ContainerPath, HostPath};
use crate::plan::BindWhen;

impl<K: Kernel> Runner<'_, K> {
    /// `BindSelf`. procfs and sysfs only have what the kernel offers (no
    /// `/proc/sysrq-trigger` without `CONFIG_MAGIC_SYSRQ`): a path they
    /// lack is skipped.
    pub(crate) fn bind_self(&mut self, target: &ContainerPath) -> Result<Status, Failure> {
        match self.k.bind_self(target) {
            Ok(()) => Ok(Status::done()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::Skipped {
                reason: "the kernel does not offer it".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// `MountTmpfs`, making its mount point.
    pub(crate) fn mount_tmpfs(
        &mut self,
        target: &ContainerPath,
        size: Option<u64>,
        mode: u32,
        nodev: bool,
        readonly: bool,
    ) -> Result<Status, Failure> {
        self.k.make_dir_all(target, 0o755)?;
        let mut data = format!("mode={mode:o}");
        if let Some(s) = size {
            data.push_str(&format!(",size={s}"));
        }
        let flags = MountFlags {
            nosuid: true,
            nodev,
            noexec: false,
            readonly,
        };
        self.k.mount_fs("tmpfs", target, flags, &data)?;
        Ok(Status::done())
    }

    /// `MountDevpts`: the container's own devpts instance.
    pub(crate) fn mount_devpts(
        &mut self,
        target: &ContainerPath,
        options: &str,
    ) -> Result<Status, Failure> {
        self.k.make_dir_all(target, 0o755)?;
        let flags = MountFlags {
            nosuid: true,
            noexec: true,
            ..MountFlags::NONE
        };
        self.k.mount_fs("devpts", target, flags, options)?;
        Ok(Status::done())
    }

    /// `MountMqueue`, making its mount point.
    pub(crate) fn mount_mqueue(&mut self, target: &ContainerPath) -> Result<Status, Failure> {
        self.k.make_dir_all(target, 0o755)?;
        self.k.mount_fs("mqueue", target, MountFlags::SECURE, "")?;
        Ok(Status::done())
    }

    /// `BindMount`: a host path into the container, on a mount point of
    /// its kind. `when` says what an absent or unmounted source means; a
    /// conditional bind (`IfMounted`) that fails is reported, never fatal.
    /// Whether the host's kernel is at least `major.minor`.
    pub(crate) fn kernel_at_least(&mut self, major: u32, minor: u32) -> Result<bool, Failure> {
        let release = self
            .k
            .read_host_file(std::path::Path::new("/proc/sys/kernel/osrelease"))?;
        let mut parts = release
            .trim()
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().ok());
        Ok(match (parts.next().flatten(), parts.next().flatten()) {
            (Some(a), Some(b)) => (a, b) >= (major, minor),
            _ => false,
        })
    }

    pub(crate) fn bind_mount(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        recursive: bool,
        readonly: bool,
        when: BindWhen,
        unless_own_binfmt: bool,
    ) -> Result<Status, Failure> {
        if unless_own_binfmt {
            match self.kernel_at_least(6, 7) {
                Ok(true) => {
                    return Ok(Status::Skipped {
                        reason: "the container can mount its own (Linux 6.7+)".into(),
                    });
                }
                Ok(false) => {}
                // A conditional path never stops the container.
                Err(f) if when == BindWhen::IfMounted => {
                    return Ok(Status::Failed {
                        error: f.message,
                        fatal: false,
                    });
                }
                Err(f) => return Err(f),
            }
        }
        let state = match self.k.host_path_state(source) {
            Ok(s) => s,
            // A conditional path that cannot even be probed is reported; it
            // never stops the container.
            Err(e) if when == BindWhen::IfMounted => {
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
        let fatal = when != BindWhen::IfMounted;
        let k = &mut *self.k;
        let r = (|| {
            if is_dir {
                k.make_dir_all(target, 0o755)?;
            } else {
                k.make_placeholder(target)?;
            }
            k.bind_host(source, target, recursive, readonly)
        })();
        // In a user namespace the host's mounts below `source` are locked to
        // it: a bind without them would uncover what they hide.
        let unprivileged = self.idmap.is_some();
        let r = r.map_err(|e| match crate::exec::linux::errno(&e) {
            Some(libc::EINVAL) if unprivileged && !recursive => std::io::Error::new(
                e.kind(),
                format!(
                    "{e} (an unprivileged container may bind {source} only with what is mounted \
                     below it: set `recursive = true`)"
                ),
            ),
            _ => e,
        });
        match r {
            Ok(()) => Ok(Status::done()),
            Err(e) if !fatal => Ok(Status::Failed {
                error: e.to_string(),
                fatal: false,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// `RemountReadOnly`; a path the kernel does not offer is skipped.
    pub(crate) fn remount_read_only(
        &mut self,
        target: &ContainerPath,
        recursive: bool,
    ) -> Result<Status, Failure> {
        match self.k.set_readonly(target, recursive) {
            Ok(()) => Ok(Status::done()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::Skipped {
                reason: "the kernel does not offer it".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}
