//! The checks that come before anything is made: a directory the rootfs
//! must have, and the init program it must run.

use super::kernel::{DirState, InitProblem, Kernel};
use super::report::Status;
use super::{Failure, Runner};
use crate::paths::ContainerPath;

impl<K: Kernel> Runner<'_, K> {
    /// `OpenRootfs`: the rootfs directory, opened once for every later step.
    pub(crate) fn open_rootfs(&mut self) -> Result<Status, Failure> {
        match self.k.open_rootfs(&self.rootfs) {
            Ok(()) => Ok(Status::done()),
            Err(e) => Err(Failure::new(format!("cannot open the rootfs: {e}"))),
        }
    }

    /// `CheckDirectory`: the directory exists in the rootfs (made when
    /// `create` says so); a non-empty one gets a warning.
    pub(crate) fn check_directory(
        &mut self,
        path: &ContainerPath,
        create: bool,
    ) -> Result<Status, Failure> {
        Ok(match self.k.inspect_dir(path, create)? {
            DirState::Empty => Status::done(),
            DirState::NotEmpty => {
                Status::detail(format!("warning: {path} is not empty; it is mounted over"))
            }
            DirState::Created => Status::detail(format!("created {path}")),
        })
    }

    /// `CheckInit`: init resolves inside the rootfs to an executable file;
    /// what it resolves to is kept (for `MakeLogSocket` and the report).
    /// The exit status of a failure is the shell's: 127 not found, 126 not
    /// executable.
    pub(crate) fn check_init(&mut self, path: &ContainerPath) -> Result<Status, Failure> {
        match self.k.inspect_init(path) {
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
        }
    }
}
