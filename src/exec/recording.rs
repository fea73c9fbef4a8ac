//! A recording kernel: one ordered list of every call, with an optional
//! failure injected at any call. It touches nothing.

use super::kernel::*;
use crate::paths::{ContainerPath, HostPath};
use crate::plan::Namespace;
use crate::profile::model::NodeKind;
use std::io;
use std::path::Path;

/// What the recording kernel answers for host probes.
#[derive(Debug, Clone)]
pub struct FakeHost {
    /// Host paths that are mount points.
    pub mounted: Vec<String>,
    /// Host paths that exist but are not mount points.
    pub present: Vec<String>,
    /// Host device nodes: path, kind, major, minor.
    pub devices: Vec<(String, NodeKind, u32, u32)>,
    /// Whether init resolves to systemd.
    pub init_is_systemd: bool,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            mounted: vec!["/sys/kernel/security".into(), "/sys/fs/pstore".into()],
            present: vec!["/sys/kernel/debug".into()],
            devices: vec![("/dev/fuse".into(), NodeKind::Char, 10, 229)],
            init_is_systemd: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct RecordingKernel {
    pub calls: Vec<String>,
    /// Fail the call with this index (0-based) with EIO.
    pub fail_at: Option<usize>,
    pub host: FakeHost,
}

impl RecordingKernel {
    pub fn new() -> RecordingKernel {
        RecordingKernel::default()
    }

    pub fn failing_at(n: usize) -> RecordingKernel {
        RecordingKernel {
            fail_at: Some(n),
            ..RecordingKernel::default()
        }
    }

    fn call(&mut self, what: String) -> io::Result<()> {
        let i = self.calls.len();
        self.calls.push(what);
        if self.fail_at == Some(i) {
            Err(io::Error::other(format!("injected failure at call {i}")))
        } else {
            Ok(())
        }
    }
}

impl Kernel for RecordingKernel {
    fn open_rootfs(&mut self, rootfs: &Path) -> io::Result<()> {
        self.call(format!("open_rootfs {}", rootfs.display()))
    }
    fn inspect_dir(&mut self, path: &ContainerPath, create: bool) -> io::Result<DirState> {
        self.call(format!("inspect_dir {path} create={create}"))?;
        Ok(DirState::Empty)
    }
    fn inspect_init(&mut self, path: &ContainerPath) -> Result<InitInfo, InitProblem> {
        self.call(format!("inspect_init {path}"))
            .map_err(InitProblem::Other)?;
        Ok(InitInfo {
            resolved: path.to_string(),
            is_systemd: self.host.init_is_systemd,
        })
    }
    fn spawn(&mut self, namespaces: &[Namespace]) -> io::Result<Spawned> {
        self.call(format!("spawn {namespaces:?}"))?;
        Ok(Spawned::Parent {
            pid: 4242,
            pidfd: None,
        })
    }
    fn make_mounts_slave(&mut self) -> io::Result<()> {
        self.call("make_mounts_slave".into())
    }
    fn bind_rootfs(&mut self) -> io::Result<()> {
        self.call("bind_rootfs".into())
    }
    fn unshare_cgroup_namespace(&mut self) -> io::Result<()> {
        self.call("unshare_cgroup_namespace".into())
    }
    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        self.call(format!("set_hostname {name}"))
    }
    fn make_dir_all(&mut self, path: &ContainerPath, mode: u32) -> io::Result<()> {
        self.call(format!("make_dir_all {path} {mode:o}"))
    }
    fn make_placeholder(&mut self, path: &ContainerPath) -> io::Result<()> {
        self.call(format!("make_placeholder {path}"))
    }
    fn mount_fs(
        &mut self,
        fstype: &str,
        target: &ContainerPath,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        self.call(format!("mount_fs {fstype} {target} {flags:?} {data}"))
    }
    fn bind_self(&mut self, target: &ContainerPath) -> io::Result<()> {
        self.call(format!("bind_self {target}"))
    }
    fn bind_host(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        recursive: bool,
        readonly: bool,
    ) -> io::Result<()> {
        self.call(format!(
            "bind_host {source} {target} recursive={recursive} readonly={readonly}"
        ))
    }
    fn bind_inside(&mut self, source: &ContainerPath, target: &ContainerPath) -> io::Result<()> {
        self.call(format!("bind_inside {source} {target}"))
    }
    fn host_path_state(&mut self, path: &HostPath) -> io::Result<HostPathState> {
        self.call(format!("host_path_state {path}"))?;
        let mounted = self.host.mounted.iter().any(|m| m == path.as_str());
        let present = self.host.present.iter().any(|m| m == path.as_str());
        let device = self.host.devices.iter().any(|(p, ..)| p == path.as_str());
        Ok(if mounted || present || device {
            HostPathState::Present {
                is_dir: !device,
                mounted,
            }
        } else {
            HostPathState::Absent
        })
    }
    fn host_device(&mut self, path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>> {
        self.call(format!("host_device {path}"))?;
        Ok(self
            .host
            .devices
            .iter()
            .find(|(p, ..)| p == path.as_str())
            .map(|(_, k, a, b)| (*k, *a, *b)))
    }
    fn mknod(
        &mut self,
        path: &ContainerPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.call(format!("mknod {path} {kind:?} {mode:o} {major}:{minor}"))
    }
    fn chown(&mut self, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()> {
        self.call(format!("chown {path} {uid}:{gid}"))
    }
    fn symlink(&mut self, target: &str, path: &ContainerPath) -> io::Result<()> {
        self.call(format!("symlink {path} -> {target}"))
    }
    fn unlink(&mut self, path: &ContainerPath) -> io::Result<()> {
        self.call(format!("unlink {path}"))
    }
    fn make_console(&mut self, ptmx: &ContainerPath, console: &ContainerPath) -> io::Result<()> {
        self.call(format!("make_console {ptmx} {console}"))
    }
    fn make_socket(&mut self, path: &ContainerPath, kind: SocketKind, mode: u32) -> io::Result<()> {
        self.call(format!("make_socket {path} {kind:?} {mode:o}"))
    }
    fn set_readonly(&mut self, target: &ContainerPath, recursive: bool) -> io::Result<()> {
        self.call(format!("set_readonly {target} recursive={recursive}"))
    }
    fn loopback_up(&mut self) -> io::Result<()> {
        self.call("loopback_up".into())
    }
    fn pivot_root(&mut self) -> io::Result<()> {
        self.call("pivot_root".into())
    }
    fn take_handoff(&mut self) -> Handoff {
        Handoff::default()
    }
    fn exec_init(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Result<()> {
        self.call(format!("exec_init {command:?} {env:?} {drop_caps:?}"))
    }
}
