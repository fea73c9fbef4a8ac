//! The container's `/dev` entries that need more than one call: device
//! nodes (made, or bound from the host), the ptmx, and the sockets envc
//! serves (`/dev/log`, the guest API).

use super::kernel::{HostPathState, Kernel, SocketKind};
use super::linux::errno;
use super::report::Status;
use super::{Failure, Runner};
use crate::paths::{ContainerPath, HostPath};
use crate::plan::{DeviceNumber, Op};

impl<K: Kernel> Runner<'_, K> {
    /// `MakeDevice` (`op` is one): `mknod` with the fixed number or the
    /// host node's; where `mknod` is refused and a host node is named, that
    /// node is bound over a placeholder instead. A host node that is missing
    /// skips the step unless it is required.
    pub(crate) fn make_device(&mut self, op: &Op) -> Result<Status, Failure> {
        let Op::MakeDevice {
            path,
            kind,
            number,
            fallback,
            mode,
            uid,
            gid,
            required,
        } = op
        else {
            unreachable!("run passes a MakeDevice")
        };
        let (major, minor) = match number {
            DeviceNumber::Fixed { major, minor } => (*major, *minor),
            DeviceNumber::FromHost { source } => match self.k.host_device(source)? {
                Some((_, a, b)) => (a, b),
                None if !required => {
                    return Ok(Status::Skipped {
                        reason: format!("the host has no {source}"),
                    });
                }
                None => return Err(Failure::new(format!("the host has no {source}"))),
            },
        };
        match self.k.mknod(path, *kind, *mode, major, minor) {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EPERM) && fallback.is_some() => {
                let src = fallback.as_ref().expect("checked");
                self.k.make_placeholder(path)?;
                self.k.bind_host(src, path, false, false)?;
                return Ok(Status::detail(format!(
                    "mknod refused; bound the host's {src}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if *uid != 0 || *gid != 0 {
            self.k.chown(path, *uid, *gid)?;
        }
        Ok(Status::detail("mknod"))
    }

    /// `BindDevice`: the host's node over a placeholder; a missing one
    /// skips the step unless it is required.
    pub(crate) fn bind_device(
        &mut self,
        source: &HostPath,
        path: &ContainerPath,
        required: bool,
    ) -> Result<Status, Failure> {
        match self.k.host_path_state(source)? {
            HostPathState::Absent if !required => Ok(Status::Skipped {
                reason: "not found on the host".into(),
            }),
            HostPathState::Absent => Err(Failure::new(format!("the host has no {source}"))),
            HostPathState::Present { .. } => {
                self.k.make_placeholder(path)?;
                self.k.bind_host(source, path, false, false)?;
                Ok(Status::done())
            }
        }
    }

    /// `BindPtmx`: `/dev/pts/ptmx` bound at `path`, or a symlink to
    /// `pts/ptmx` where the bind is refused.
    pub(crate) fn bind_ptmx(&mut self, path: &ContainerPath) -> Result<Status, Failure> {
        let ptmx = ContainerPath::new("/dev/pts/ptmx").expect("static");
        self.k.make_placeholder(path)?;
        match self.k.bind_inside(&ptmx, path) {
            Ok(()) => Ok(Status::detail("bind of /dev/pts/ptmx")),
            Err(e) => {
                self.k.unlink(path)?;
                self.k.symlink("pts/ptmx", path)?;
                Ok(Status::detail(format!(
                    "bind refused ({e}); symlink to pts/ptmx"
                )))
            }
        }
    }

    /// `MakeConsole`: a pty from the container's devpts at `path`.
    pub(crate) fn make_console(&mut self, path: &ContainerPath) -> Result<Status, Failure> {
        let ptmx = ContainerPath::new("/dev/pts/ptmx").expect("static");
        self.k.make_console(&ptmx, path)?;
        Ok(Status::done())
    }

    /// `MakeLogSocket`: the `/dev/log` datagram socket, unless init is
    /// systemd and the step says so (journald makes its own).
    pub(crate) fn make_log_socket(
        &mut self,
        path: &ContainerPath,
        unless_systemd: bool,
    ) -> Result<Status, Failure> {
        if unless_systemd && self.init.as_ref().is_some_and(|i| i.is_systemd) {
            return Ok(Status::Skipped {
                reason: "init is systemd; journald makes /dev/log".into(),
            });
        }
        self.k.make_socket(path, SocketKind::Datagram, 0o666)?;
        Ok(Status::done())
    }

    /// `MakeGuestApiSocket`: the guest API's listening socket.
    pub(crate) fn make_guest_api_socket(
        &mut self,
        path: &ContainerPath,
    ) -> Result<Status, Failure> {
        self.k.make_socket(path, SocketKind::Stream, 0o666)?;
        Ok(Status::detail("served by envc"))
    }
}
