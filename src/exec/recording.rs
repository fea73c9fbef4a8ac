//! A recording kernel: one ordered list of every call, with an optional
//! failure injected at any call. It touches nothing.

use super::kernel::*;
use crate::paths::{ContainerPath, HostPath};
use crate::plan::Namespace;
use crate::profile::model::NodeKind;
use std::io;
use std::path::{Path, PathBuf};

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
    /// What `/proc/self/mountinfo` says (the cgroup layout).
    pub mountinfo: String,
    /// Whether LXCFS runs (its files, relative to its mount, e.g. `proc/meminfo`).
    pub lxcfs: Vec<String>,
}

/// The development machines' hybrid layout.
pub const HYBRID_MOUNTINFO: &str =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// A pure cgroup2 host.
pub const UNIFIED_MOUNTINFO: &str =
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
";

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            mounted: vec!["/sys/kernel/security".into(), "/sys/fs/pstore".into()],
            present: vec!["/sys/kernel/debug".into(), "/proc/self/ns/cgroup".into()],
            devices: vec![
                ("/dev/null".into(), NodeKind::Char, 1, 3),
                ("/dev/zero".into(), NodeKind::Char, 1, 5),
                ("/dev/full".into(), NodeKind::Char, 1, 7),
                ("/dev/random".into(), NodeKind::Char, 1, 8),
                ("/dev/urandom".into(), NodeKind::Char, 1, 9),
                ("/dev/tty".into(), NodeKind::Char, 5, 0),
                ("/dev/fuse".into(), NodeKind::Char, 10, 229),
            ],
            init_is_systemd: false,
            mountinfo: HYBRID_MOUNTINFO.into(),
            lxcfs: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct RecordingKernel {
    pub calls: Vec<String>,
    /// Fail the call with this index (0-based) with EIO.
    pub fail_at: Option<usize>,
    pub host: FakeHost,
    /// What `prepare_cgroup_join` was given (v1 count, a cgroup2 directory).
    joins: usize,
    join_v2: bool,
    /// The sources `make_idmapped_mount` was asked for.
    idmapped: Vec<String>,
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
    fn prepare_cgroup_join(&mut self, v1: &[PathBuf], v2: Option<&Path>) -> io::Result<()> {
        let mut s = String::from("prepare_cgroup_join");
        for p in v1 {
            s.push_str(&format!(" {}/tasks", p.display()));
        }
        if let Some(p) = v2 {
            s.push_str(&format!(" into {}", p.display()));
        }
        self.joins += v1.len();
        self.join_v2 |= v2.is_some();
        self.call(s)
    }
    fn take_cgroup_join(&mut self) -> Vec<(PathBuf, std::os::fd::OwnedFd)> {
        Vec::new()
    }
    fn adopt_cgroup_join(&mut self, tasks: Vec<(PathBuf, std::os::fd::OwnedFd)>) {
        let _ = self.call(format!("adopt_cgroup_join {}", tasks.len()));
    }
    fn join_cgroups(&mut self) -> io::Result<CgroupJoin> {
        self.call("join_cgroups".into())?;
        Ok(CgroupJoin {
            v1: self.joins,
            v2_at_clone: self.join_v2,
            v2_by_write: false,
        })
    }
    fn read_host_file(&mut self, path: &Path) -> io::Result<String> {
        self.call(format!("read_host_file {}", path.display()))?;
        let p = path.to_string_lossy();
        Ok(if p == "/proc/self/mountinfo" {
            self.host.mountinfo.clone()
        } else if p.ends_with("cpuset.cpus") || p.ends_with("cpuset.cpus.effective") {
            "0-1\n".into()
        } else if p.ends_with("cpuset.mems") || p.ends_with("cpuset.mems.effective") {
            "0\n".into()
        } else if p == "/proc/meminfo" {
            "MemTotal:       1048576 kB\n".into()
        } else if p.ends_with("cgroup.controllers") {
            "cpuset cpu io memory pids\n".into()
        } else {
            String::new()
        })
    }
    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()> {
        self.call(format!("write_host_file {} {value}", path.display()))
    }
    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool> {
        self.call(format!("make_host_dir {}", path.display()))?;
        Ok(true)
    }
    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()> {
        self.call(format!("remove_host_dir {}", path.display()))
    }
    fn host_subdirs(&mut self, path: &Path) -> io::Result<Vec<String>> {
        self.call(format!("host_subdirs {}", path.display()))?;
        Ok(Vec::new())
    }
    fn list_host_dir(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
        self.call(format!("list_host_dir {}", path.display()))?;
        let p = path.to_string_lossy().into_owned();
        let mut names: Vec<String> = Vec::new();
        for f in &self.host.lxcfs {
            let full = format!("/var/lib/lxcfs/{f}");
            if let Some(rest) = full.strip_prefix(&format!("{p}/")) {
                let first = rest.split('/').next().unwrap_or(rest).to_string();
                if !names.contains(&first) {
                    names.push(first);
                }
            }
        }
        names.sort();
        Ok(if names.is_empty() { None } else { Some(names) })
    }
    fn open_netns(&mut self, pid: i32) -> io::Result<std::os::fd::OwnedFd> {
        self.call(format!("open_netns {pid}"))?;
        // A harmless stand-in fd.
        Ok(std::fs::File::open("/dev/null")?.into())
    }
    fn create_nic(&mut self, spec: &crate::net::NicSpec<'_>) -> io::Result<crate::net::CreatedNic> {
        self.call(format!(
            "create_nic {:?} parent={:?} host={:?} name={} mtu={:?}",
            spec.nictype, spec.parent, spec.host_name, spec.container_name, spec.mtu
        ))?;
        Ok(match (spec.nictype, spec.host_name) {
            (crate::profile::raw::NicType::Macvlan, _) => crate::net::CreatedNic::Macvlan {
                container_name: spec.container_name.to_string(),
            },
            (crate::profile::raw::NicType::Physical, _) => {
                crate::net::CreatedNic::Physical(crate::net::PhysicalNic {
                    host_name: spec.parent.unwrap_or_default().to_string(),
                    mac: None,
                    mtu: 1500,
                    was_up: true,
                })
            }
            (_, h) => crate::net::CreatedNic::Veth {
                host_name: h.unwrap_or_default().to_string(),
            },
        })
    }
    fn remove_nic(
        &mut self,
        nic: &crate::net::CreatedNic,
        _netns: std::os::fd::BorrowedFd<'_>,
        in_container_name: &str,
    ) -> io::Result<()> {
        self.call(format!("remove_nic {nic:?} {in_container_name}"))
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
    fn configure_nic(
        &mut self,
        name: &str,
        ipv4: Option<(std::net::Ipv4Addr, u8)>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> io::Result<()> {
        self.call(format!("configure_nic {name} {ipv4:?} {gateway:?}"))
    }
    fn pivot_root(&mut self) -> io::Result<()> {
        self.call("pivot_root".into())
    }
    fn attach_device_program(
        &mut self,
        cgroup: &Path,
        program: &[crate::exec::cgroup::device_program::Insn],
    ) -> io::Result<()> {
        self.call(format!(
            "attach_device_program {} ({} instructions)",
            cgroup.display(),
            program.len()
        ))
    }
    fn chown_host(&mut self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.call(format!("chown_host {} {uid}:{gid}", path.display()))
    }
    fn write_file(&mut self, path: &ContainerPath, contents: &str, mode: u32) -> io::Result<()> {
        self.call(format!("write_file {path} {mode:o} {}", contents.len()))
    }
    fn write_idmap(&mut self, pid: i32, uid_map: &str, gid_map: &str) -> io::Result<()> {
        self.call(format!(
            "write_idmap {pid} uid {} gid {}",
            uid_map.trim().replace('\n', ", "),
            gid_map.trim().replace('\n', ", ")
        ))
    }
    fn make_idmapped_rootfs(&mut self, pid: i32) -> io::Result<()> {
        self.call(format!("make_idmapped_rootfs {pid}"))
    }
    fn make_idmapped_mount(
        &mut self,
        source: &HostPath,
        recursive: bool,
        pid: i32,
    ) -> io::Result<()> {
        self.call(format!("make_idmapped_mount {source} {recursive} {pid}"))?;
        self.idmapped.push(source.as_str().to_string());
        Ok(())
    }
    fn take_idmapped(&mut self) -> Vec<(String, std::os::fd::OwnedFd)> {
        Vec::new()
    }
    fn adopt_idmapped(&mut self, _trees: Vec<(String, std::os::fd::OwnedFd)>) {}
    fn attach_idmapped(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        readonly: bool,
    ) -> io::Result<bool> {
        self.call(format!("attach_idmapped {source} {target} {readonly}"))?;
        // Both sides run in this one process: the host's trees are here.
        Ok(self.idmapped.iter().any(|s| s == source.as_str()))
    }
    fn attach_idmapped_rootfs(&mut self) -> io::Result<()> {
        self.call("attach_idmapped_rootfs".into())
    }
    fn become_root(&mut self) -> io::Result<()> {
        self.call("become_root".into())
    }
    fn take_handoff(&mut self) -> Handoff {
        Handoff::default()
    }
    fn prepare_syscall_filter(&mut self, filter: &crate::seccomp::SyscallFilter) -> io::Result<()> {
        self.call(format!("prepare_syscall_filter {}", filter.describe()))
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
