//! The executor: replays a plan through a `Kernel`, records a report, and
//! undoes what it did on the host when a step fails. [`Runner::run`] is the
//! one table of what each step does; the steps that take more than a call
//! are in the files named after their concern.

mod caps;
pub mod cgroup;
pub mod channel;
mod checks;
mod child;
mod devices;
pub mod kernel;
pub mod linux;
pub mod lxcfs;
pub mod monitor;
mod mounts;
mod nic;
pub mod recording;
pub mod report;
mod simulate;
pub mod supervise;
mod userns;

pub use caps::{capability_number, dropped_caps};
pub use cgroup::{CgroupPart, CgroupSpec, CgroupState};
pub use simulate::simulate;

use crate::plan::{Op, Plan, Side};
use kernel::{InitInfo, Kernel, MountFlags};
use report::Status;
use std::path::PathBuf;

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

impl From<crate::paths::PathError> for Failure {
    fn from(e: crate::paths::PathError) -> Failure {
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
    /// Frees the isolated id range held under the container's name.
    ReleaseIdmap(PathBuf, String),
    RemoveNic {
        nic: crate::net::CreatedNic,
        netns: std::rc::Rc<std::os::fd::OwnedFd>,
        name: String,
    },
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
    /// The rootfs directory on the host (`OpenRootfs`).
    pub rootfs: PathBuf,
    /// The container's name (its isolated id range is held under it).
    pub name: String,
    /// The unprivileged container's id map (`ChooseIdmap`).
    pub idmap: Option<crate::idmap::IdMap>,
}

/// The status of a step that is one kernel call.
fn done(r: std::io::Result<()>) -> Result<Status, Failure> {
    r?;
    Ok(Status::done())
}

impl<'k, K: Kernel> Runner<'k, K> {
    pub fn new(k: &'k mut K, name: &str, rootfs: PathBuf) -> Runner<'k, K> {
        Runner {
            rootfs,
            name: name.to_string(),
            idmap: None,
            k,
            init: None,
            child_pid: None,
            cgroup: None,
            cgroup_namespace: false,
            undo: Vec::new(),
            netns: None,
        }
    }

    /// Runs one step. `Ok` carries its status (a non-fatal failure included).
    pub fn run(&mut self, op: &Op) -> Result<Status, Failure> {
        match op {
            Op::OpenRootfs => self.open_rootfs(),
            Op::CheckDirectory { path, create } => self.check_directory(path, *create),
            Op::CheckInit { path } => self.check_init(path),
            Op::CreateCgroup { .. } => {
                let spec = CgroupSpec::of(op).expect("a CreateCgroup");
                self.create_cgroup(&spec, CgroupPart::All)
            }
            Op::CloneChild { .. } | Op::ExecInit { .. } => {
                Err(Failure::new(format!("{} is run by the driver", op.name())))
            }
            Op::AttachCgroup => self.attach_cgroup(),
            Op::UnshareCgroupNamespace => self.unshare_cgroup_namespace(),
            Op::MakeMountsSlave => done(self.k.make_mounts_slave()),
            Op::BindRootfs { idmapped: false } => done(self.k.bind_rootfs()),
            Op::BindRootfs { idmapped: true } => done(self.k.attach_idmapped_rootfs()),
            Op::ChooseIdmap {
                isolated,
                size,
                base,
                raw,
            } => self.choose_idmap(*isolated, *size, *base, raw.as_deref()),
            Op::WriteIdmap => self.write_idmap(),
            Op::MakeIdmappedRootfs => self.make_idmapped_rootfs(),
            Op::MakeIdmappedMount {
                source,
                recursive,
                required,
            } => self.make_idmapped_mount(source, *recursive, *required),
            Op::BecomeRoot => done(self.k.become_root()),
            Op::BindBootId { target } => self.bind_boot_id(target),
            Op::SetHostname { hostname } => done(self.k.set_hostname(hostname)),
            Op::MountProc { target, .. } => {
                done(self.k.mount_fs("proc", target, MountFlags::SECURE, ""))
            }
            Op::MountSysfs { target } => {
                done(self.k.mount_fs("sysfs", target, MountFlags::SECURE, ""))
            }
            Op::BindSelf { target } => self.bind_self(target),
            Op::MountCgroups { target, namespace } => self.mount_cgroups(target, *namespace),
            Op::MountTmpfs {
                target,
                size,
                mode,
                nodev,
                readonly,
            } => self.mount_tmpfs(target, *size, *mode, *nodev, *readonly),
            Op::MakeDevice { .. } => self.make_device(op),
            Op::BindDevice {
                source,
                path,
                required,
            } => self.bind_device(source, path, *required),
            Op::MountDevpts { target, options } => self.mount_devpts(target, options),
            Op::BindPtmx { path } => self.bind_ptmx(path),
            Op::MakeConsole { path } => self.make_console(path),
            Op::MakeSymlink { path, target } => done(self.k.symlink(target, path)),
            Op::MountMqueue { target } => self.mount_mqueue(target),
            Op::MakeLogSocket {
                path,
                unless_systemd,
            } => self.make_log_socket(path, *unless_systemd),
            Op::MakeGuestApiSocket { path } => self.make_guest_api_socket(path),
            Op::BindMount {
                source,
                target,
                recursive,
                readonly,
                when,
                unless_own_binfmt,
                shift: false,
            } => self.bind_mount(
                source,
                target,
                *recursive,
                *readonly,
                *when,
                *unless_own_binfmt,
            ),
            Op::BindMount {
                source,
                target,
                readonly,
                when,
                shift: true,
                ..
            } => self.bind_idmapped(source, target, *readonly, *when),
            Op::OverlayLxcfs { source } => self.overlay_lxcfs(source),
            Op::BringUpLoopback => done(self.k.loopback_up()),
            Op::CreateNic { .. } => self.create_nic(op),
            Op::ConfigureNic {
                name,
                ipv4_address,
                ipv4_gateway,
            } => self.configure_nic(name, ipv4_address.as_deref(), ipv4_gateway.as_deref()),
            Op::RemountReadOnly { target, recursive } => self.remount_read_only(target, *recursive),
            Op::PivotRoot => done(self.k.pivot_root()),
            Op::LoadSyscallFilter { filter } => {
                self.k.prepare_syscall_filter(filter)?;
                Ok(Status::detail(filter.summary()))
            }
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
                Undo::RemoveCgroupTree(path) => self.remove_cgroup_tree(&path, &mut left),
                // A shared parent: left where other containers still use it.
                Undo::RemoveCgroupDir(path) => self.remove_shared_cgroup(&path, &mut left),
                Undo::ReleaseIdmap(run_dir, name) => {
                    if let Err(e) = crate::idmap::release(&run_dir, &name) {
                        left.push(format!("id range of {name}: {e}"));
                    }
                }
            }
        }
        left
    }
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
