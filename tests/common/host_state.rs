//! A snapshot of the host state envc must leave as it found it.

use super::mountinfo::{Mount, parse_mountinfo};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a container run must not leave behind on the host. Capture before, capture
/// after, `before.assert_unchanged(&after)`. Hold [`super::serial()`] throughout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The host's mounts (/proc/self/mountinfo: mount point, root, fs type, source,
    /// options, propagation fields; mount ids and device numbers ignored), sorted.
    pub mounts: Vec<String>,
    /// Network interfaces (/sys/class/net).
    pub net_links: Vec<String>,
    /// Processes whose comm or exe name mentions envc, probe or busybox (except this
    /// test process, its ancestors and other cargo test binaries in target/*/deps).
    pub processes: Vec<String>,
    /// Directories whose name starts with "envc", and everything below them, at the root
    /// of every cgroup hierarchy and in this process's own cgroup there.
    pub cgroups: Vec<String>,
    /// Everything under /run/envc (path, type, size), if it exists.
    pub run_envc: Vec<String>,
    /// Owner, group and mode of the host's device nodes a container is
    /// handed (bound over its own /dev): a container or runtime that chowns
    /// or chmods its node changes the host's.
    pub device_nodes: Vec<String>,
}

/// The host nodes containers get bound from the host.
const HOST_NODES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/fuse",
    "/dev/net/tun",
    "/dev/ptmx",
    "/dev/console",
    "/dev/kmsg",
];

fn device_nodes() -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    HOST_NODES
        .iter()
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(p).ok()?;
            Some(format!("{p} {}:{} {:o}", m.uid(), m.gid(), m.mode()))
        })
        .collect()
}

const WATCHED_NAMES: &[&str] = &["envc", "probe", "busybox"];

impl HostState {
    pub fn capture() -> HostState {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_else(|e| panic!("read /proc/self/mountinfo: {e}"));
        let mounts = parse_mountinfo(&mountinfo);
        let mut mount_lines: Vec<String> = mounts.iter().map(describe_mount).collect();
        mount_lines.sort();
        HostState {
            mounts: mount_lines,
            net_links: dir_names(Path::new("/sys/class/net")),
            processes: watched_processes(),
            cgroups: envc_cgroups(&mounts),
            run_envc: {
                let mut v = Vec::new();
                list_tree(Path::new("/run/envc"), false, 0, &mut v);
                v
            },
            device_nodes: device_nodes(),
        }
    }

    /// Panics with a readable diff (`-` only before, `+` only after) when `after`
    /// differs from `self`.
    pub fn assert_unchanged(&self, after: &HostState) {
        let report = self.diff(after);
        if !report.is_empty() {
            panic!("host state changed by the test:\n{report}");
        }
    }

    /// Captures repeatedly until the host state equals `self` or `timeout` passes (for
    /// teardown the kernel finishes asynchronously), then asserts.
    pub fn assert_restored_within(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let now = HostState::capture();
            if *self == now || start.elapsed() >= timeout {
                return self.assert_unchanged(&now);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Empty when equal; otherwise one section per differing part.
    pub fn diff(&self, after: &HostState) -> String {
        let mut out = String::new();
        for (name, a, b) in [
            ("mounts", &self.mounts, &after.mounts),
            ("network links", &self.net_links, &after.net_links),
            (
                "envc/probe/busybox processes",
                &self.processes,
                &after.processes,
            ),
            ("envc cgroups", &self.cgroups, &after.cgroups),
            ("/run/envc", &self.run_envc, &after.run_envc),
            ("host device nodes", &self.device_nodes, &after.device_nodes),
        ] {
            let a_set: BTreeSet<&String> = a.iter().collect();
            let b_set: BTreeSet<&String> = b.iter().collect();
            // Multisets matter for mounts (the same mount stacked twice).
            if a == b {
                continue;
            }
            out.push_str(&format!("--- {name}:\n"));
            for x in a_set.difference(&b_set) {
                out.push_str(&format!("  - {x}\n"));
            }
            for x in b_set.difference(&a_set) {
                out.push_str(&format!("  + {x}\n"));
            }
            if a_set == b_set {
                out.push_str(&format!(
                    "  (same entries, different counts: {} before, {} after)\n",
                    a.len(),
                    b.len()
                ));
            }
        }
        out
    }
}

fn describe_mount(m: &Mount) -> String {
    format!(
        "{} root={} type={} source={} opts={} [{}] super={}",
        m.mount_point,
        m.root,
        m.fs_type,
        m.source,
        m.mount_options,
        m.optional.join(" "),
        m.super_options
    )
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn ppid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn watched_processes() -> Vec<String> {
    let me = std::process::id();
    let my_exe = std::fs::read_link("/proc/self/exe").ok();
    let mut ancestors = BTreeSet::new();
    let mut p = me;
    while let Some(pp) = ppid_of(p) {
        if pp == 0 || !ancestors.insert(pp) {
            break;
        }
        p = pp;
    }
    let mut found = Vec::new();
    for pid in dir_names(Path::new("/proc")) {
        let Ok(pid_n) = pid.parse::<u32>() else {
            continue;
        };
        if pid_n == me || ancestors.contains(&pid_n) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue; // gone meanwhile
        };
        let comm = comm.trim_end_matches('\n').to_string();
        let exe: Option<PathBuf> = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.is_some() && exe == my_exe {
            continue; // this test binary (threads are not listed; forks are)
        }
        if exe
            .as_deref()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|d| d == "deps")
        {
            continue; // another cargo test binary (nextest runs them concurrently)
        }
        let exe_name = exe
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !WATCHED_NAMES
            .iter()
            .any(|w| comm.contains(w) || exe_name.contains(w))
        {
            continue;
        }
        // Fields after the command: state, ppid, ..., start time (tells a recycled
        // PID apart from the same process).
        let stat: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let after = s.rsplit_once(')')?.1.to_string();
                Some(after.split_whitespace().map(str::to_string).collect())
            })
            .unwrap_or_default();
        let ppid: Option<u32> = stat.get(1).and_then(|p| p.parse().ok());
        if stat.first().is_some_and(|st| st == "Z")
            && ppid.is_some_and(|pp| pp == 1 || ancestors.contains(&pp))
        {
            // An orphan that already exited and waits for this PID namespace's
            // reaper (a PID 1 that may not reap promptly): it holds nothing.
            continue;
        }
        let start = stat.get(20).cloned().unwrap_or_default();
        let exe_s = exe.map_or("?".to_string(), |e| e.display().to_string());
        found.push(format!("pid={pid} start={start} comm={comm} exe={exe_s}"));
    }
    found.sort();
    found
}

/// This process's cgroup path in the hierarchy mounted as `m`, from /proc/self/cgroup.
fn own_cgroup_in(m: &Mount, proc_cgroup: &str) -> Option<String> {
    let super_opts: BTreeSet<&str> = m.super_options.split(',').collect();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let matches = if m.fs_type == "cgroup2" {
            id == "0" && ctrls.is_empty()
        } else {
            !ctrls.is_empty() && ctrls.split(',').all(|c| super_opts.contains(c))
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

fn envc_cgroups(mounts: &[Mount]) -> Vec<String> {
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut found = BTreeSet::new();
    for m in mounts
        .iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
    {
        let mp = PathBuf::from(&m.mount_point);
        let mut bases = vec![mp.clone()];
        if let Some(own) = own_cgroup_in(m, &proc_cgroup) {
            // Path relative to the mount's root (which is "/" outside a cgroup namespace).
            let rel = own
                .strip_prefix(m.root.trim_end_matches('/'))
                .unwrap_or(&own);
            let rel = rel.trim_start_matches('/');
            if !rel.is_empty() {
                bases.push(mp.join(rel));
            }
        }
        for base in bases {
            for name in dir_names(&base) {
                let p = base.join(&name);
                if name.starts_with("envc") && p.is_dir() {
                    let mut v = Vec::new();
                    list_tree(&p, true, 0, &mut v);
                    found.extend(v);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Appends "<path> <type>" for `p` and everything below it (symlinks not followed,
/// depth-limited). With `dirs_only`, only directories are listed.
fn list_tree(p: &Path, dirs_only: bool, depth: usize, out: &mut Vec<String>) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        "symlink".to_string()
    } else if ft.is_file() {
        format!("file size={}", md.len())
    } else {
        "other".to_string()
    };
    if !dirs_only || ft.is_dir() {
        out.push(format!("{} {kind}", p.display()));
    }
    if ft.is_dir() && depth < 12 {
        for name in dir_names(p) {
            let child = p.join(name);
            if !dirs_only || child.is_dir() {
                list_tree(&child, dirs_only, depth + 1, out);
            }
        }
    }
}
