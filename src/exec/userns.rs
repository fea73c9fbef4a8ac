//! The steps of an unprivileged container's user namespace, and the boot id
//! every container gets: the map is chosen before the clone (the cgroup is
//! handed to the container's root), written once the child exists, and the
//! rootfs is idmapped for it.

use super::kernel::HostPathState;
use super::report::Status;
use super::{Failure, Runner, Undo};
use crate::idmap::{self, IdMap, IdmapConfig, SubIds};
use crate::paths::ContainerPath;
use std::path::Path;

impl<K: super::kernel::Kernel> Runner<'_, K> {
    /// `ChooseIdmap`: root's ranges from `/etc/subuid` and `/etc/subgid`
    /// (LXD's fallback without them), an isolated block held for this
    /// container until it stops, and the `raw.idmap` lines punched in.
    pub(crate) fn choose_idmap(
        &mut self,
        isolated: bool,
        size: Option<u32>,
        base: Option<u32>,
        raw: Option<&str>,
    ) -> Result<Status, Failure> {
        let subuid = self.read_subids("/etc/subuid")?;
        let subgid = self.read_subids("/etc/subgid")?;
        let root = idmap::root_ids(subuid.as_ref(), subgid.as_ref()).map_err(fail)?;
        let raw = match raw {
            Some(text) => idmap::parse_raw(text).map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                Failure::new(format!("raw.idmap: {}", lines.join("; ")))
            })?,
            None => Vec::new(),
        };
        let config = IdmapConfig {
            isolated,
            size,
            base,
            raw,
        };
        // As in LXD, the size and base of a range are read only for an
        // isolated container; the report says when they were set for nothing.
        let ignored = config.ignored_keys();
        let map = if isolated {
            let run_dir = crate::state::run_dir();
            let map = idmap::allocate(&run_dir, &self.name, &config, &root).map_err(fail)?;
            self.undo
                .push(Undo::ReleaseIdmap(run_dir, self.name.clone()));
            map
        } else {
            // A range an earlier isolated start of this name left (its
            // supervisor killed) is this container's no longer.
            let run_dir = crate::state::run_dir();
            if idmap::isolated::dir(&run_dir)
                .join(format!("{}.json", self.name))
                .exists()
            {
                idmap::release(&run_dir, &self.name).map_err(fail)?;
            }
            idmap::choose(&config, &root, &[]).map_err(fail)?
        };
        let from = match root.source {
            idmap::RootSource::SubIdFiles => "",
            idmap::RootSource::Fallback => " (no range for root in /etc/subuid: LXD's fallback)",
        };
        let mut detail = format!("{map}{from}");
        if !ignored.is_empty() {
            detail.push_str(&format!(
                "; {} ignored: the container is not isolated",
                ignored.join(", ")
            ));
        }
        let status = Status::detail(detail);
        self.idmap = Some(map);
        Ok(status)
    }

    /// `/etc/subuid` or `/etc/subgid`, parsed; `None` when the host has none.
    fn read_subids(&mut self, file: &str) -> Result<Option<SubIds>, Failure> {
        match self.k.read_host_file(Path::new(file)) {
            Ok(text) => SubIds::parse(file, &text).map(Some).map_err(fail),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::new(format!("reading {file}: {e}"))),
        }
    }

    /// The chosen map (`ChooseIdmap` comes first in every unprivileged plan).
    fn chosen_idmap(&self) -> Result<&IdMap, Failure> {
        self.idmap
            .as_ref()
            .ok_or_else(|| Failure::new("no id map was chosen (the plan lacks ChooseIdmap)"))
    }

    /// `WriteIdmap`: the map, written into the child's user namespace.
    pub(crate) fn write_idmap(&mut self) -> Result<Status, Failure> {
        let pid = self.child()?;
        let map = self.chosen_idmap()?;
        // Every kernel envc runs on (openat2, clone3) takes 340 lines.
        let uids = map.uid_map_text(idmap::MAX_EXTENTS).map_err(fail)?;
        let gids = map.gid_map_text(idmap::MAX_EXTENTS).map_err(fail)?;
        self.k.write_idmap(pid, &uids, &gids)?;
        Ok(Status::done())
    }

    /// `MakeIdmappedRootfs`: the rootfs idmapped with the child's user
    /// namespace, handed to the child with the word that this step is done.
    pub(crate) fn make_idmapped_rootfs(&mut self) -> Result<Status, Failure> {
        let pid = self.child()?;
        self.k.make_idmapped_rootfs(pid)?;
        Ok(Status::done())
    }

    /// `MakeIdmappedMount`: a disk's source idmapped with the child's user
    /// namespace (`shift = true`), handed to the child with the word that
    /// this step is done. A source the host lacks fails the start only if
    /// the device is required.
    pub(crate) fn make_idmapped_mount(
        &mut self,
        source: &crate::paths::HostPath,
        recursive: bool,
        required: bool,
    ) -> Result<Status, Failure> {
        let pid = self.child()?;
        if matches!(self.k.host_path_state(source)?, HostPathState::Absent) {
            if required {
                return Err(Failure::new(format!("the host has no {source}")));
            }
            return Ok(Status::Skipped {
                reason: "absent".into(),
            });
        }
        self.k.make_idmapped_mount(source, recursive, pid)?;
        Ok(Status::done())
    }

    /// `BindMount` with `shift`: attaches the host's idmapped mount of
    /// `source` (made by `MakeIdmappedMount`); skipped when the host made
    /// none because the source is absent and not required.
    pub(crate) fn bind_idmapped(
        &mut self,
        source: &crate::paths::HostPath,
        target: &ContainerPath,
        readonly: bool,
        when: crate::plan::BindWhen,
    ) -> Result<Status, Failure> {
        let is_dir = match self.k.host_path_state(source)? {
            HostPathState::Present { is_dir, .. } => is_dir,
            HostPathState::Absent => true,
        };
        if is_dir {
            self.k.make_dir_all(target, 0o755)?;
        } else {
            self.k.make_placeholder(target)?;
        }
        if self.k.attach_idmapped(source, target, readonly)? {
            return Ok(Status::done());
        }
        match when {
            crate::plan::BindWhen::Always => Err(Failure::new(format!(
                "the host made no idmapped mount of {source}"
            ))),
            _ => Ok(Status::Skipped {
                reason: "absent".into(),
            }),
        }
    }

    fn child(&self) -> Result<i32, Failure> {
        self.child_pid
            .ok_or_else(|| Failure::new("no container process yet"))
    }

    /// `BindBootId`: a fresh random id (the kernel makes one for each read
    /// of `/proc/sys/kernel/random/uuid`) in a file on the container's
    /// `/dev`, bound read-only over `target`, and the file unlinked: the
    /// mount keeps it. liblxc does the same for every LXD container:
    /// journald and systemd tell boots apart by it.
    pub(crate) fn bind_boot_id(&mut self, target: &ContainerPath) -> Result<Status, Failure> {
        let id = self
            .k
            .read_host_file(Path::new("/proc/sys/kernel/random/uuid"))?;
        let file = ContainerPath::new("/dev/.envc-boot-id").expect("a static path");
        self.k
            .write_file(&file, &format!("{}\n", id.trim()), 0o444)?;
        // (A failure leaves the file on the container's /dev, which goes
        // with the container.)
        self.k.bind_inside(&file, target)?;
        self.k.set_readonly(target, false)?;
        self.k.unlink(&file)?;
        Ok(Status::done())
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(e.to_string())
}
