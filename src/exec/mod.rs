//! The executor: replays a plan through a `Kernel`, records a report, and
//! undoes what it did on the host when a step fails.

pub mod channel;
pub mod kernel;
pub mod linux;
pub mod recording;
pub mod report;
pub mod supervise;

use crate::paths::ContainerPath;
use crate::plan::{BindWhen, DeviceNumber, Op, Plan, Side};
use kernel::*;
use report::{Report, Status};

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

/// What the issue tracker calls the parts that are not built yet.
const NOT_YET_CGROUP: &str = "cgroups (the host-dependent parts)";
const NOT_YET_LXCFS: &str = "LXCFS overlays";
const NOT_YET_NETWORK: &str = "NICs (network)";
const NOT_YET_GUEST_API: &str = "the guest API (/dev/lxd/sock)";

fn not_yet(what: &str) -> Status {
    Status::NotYet {
        what: what.to_string(),
    }
}

/// Runs the steps that need no special handling by the driver.
pub struct Runner<'k, K: Kernel> {
    pub k: &'k mut K,
    pub init: Option<InitInfo>,
}

impl<K: Kernel> Runner<'_, K> {
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
            Op::CreateCgroup { .. } | Op::AttachCgroup | Op::UnshareCgroupNamespace => {
                Ok(not_yet(NOT_YET_CGROUP))
            }
            Op::MountCgroups { .. } => Ok(not_yet(NOT_YET_CGROUP)),
            Op::OverlayLxcfs { .. } => Ok(not_yet(NOT_YET_LXCFS)),
            Op::CreateNic { .. } | Op::ConfigureNic { .. } => Ok(not_yet(NOT_YET_NETWORK)),
            Op::MakeGuestApiSocket { .. } => Ok(not_yet(NOT_YET_GUEST_API)),
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
                let state = k.host_path_state(source)?;
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
    let mut runner = Runner { k, init: None };
    let rootfs = std::path::Path::new(&plan.rootfs).to_path_buf();
    if let Err(e) = runner.k.open_rootfs(&rootfs) {
        report.set(
            plan,
            0,
            Status::Failed {
                error: e.to_string(),
                fatal: true,
            },
        );
        return report;
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let r = match &step.op {
            Op::CloneChild { namespaces } => runner
                .k
                .spawn(namespaces)
                .map(|_| Status::done())
                .map_err(Failure::from),
            Op::ExecInit {
                command,
                env,
                drop_capabilities,
            } => dropped_caps(drop_capabilities).and_then(|caps| {
                let _ = runner.k.take_handoff();
                match runner.k.exec_init(command, env, &caps) {
                    Ok(()) => Ok(Status::done()),
                    Err(e) => Err(e.into()),
                }
            }),
            op => runner.run(op),
        };
        match r {
            Ok(s) => report.set(plan, i, s),
            Err(f) => {
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
                    summary: format!("failed at step {}", i + 1),
                });
                return report;
            }
        }
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
