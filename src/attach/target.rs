//! The running container a process joins, found from the host: its
//! supervisor's state, a pidfd of its PID 1 (checked against the state
//! after it is taken, so a recycled PID is never joined), the namespaces
//! PID 1 does not share with us, its capability bounding set, and the
//! `cgroup.procs` file of its cgroup in every hierarchy.

use crate::lifecycle::{Info, is_running, read_info};
use crate::state::run_dir;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The namespaces a process joins, by `/proc/PID/ns/` name, in the order
/// `setns(2)` takes them when given all at once (the user namespace first).
pub const NAMESPACES: [(&str, i32); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// The cgroup2 leaf below the container's cgroup that a process joins, as
/// liblxc puts `lxc exec`'s processes (`0::/.lxc` inside): the container's
/// own cgroup may not take processes (cgroup2 allows none in a cgroup that
/// passes controllers down, as a systemd guest's does).
pub const ATTACH_LEAF: &str = ".lxc";

pub struct Target {
    pub info: Info,
    pub pidfd: OwnedFd,
    /// `CLONE_NEW*` flags of the namespaces PID 1 does not share with us.
    pub namespaces: i32,
    /// PID 1's capability bounding set.
    pub bounding: u64,
    /// Open for writing: `cgroup.procs` of the container's cgroup (or its
    /// attach leaf) in each hierarchy.
    pub cgroup_procs: Vec<File>,
}

/// Why a container can't be joined; the message names it.
#[derive(Debug)]
pub struct NotJoinable(pub String);

/// The running container `name`, ready to be joined.
pub fn find(name: &str) -> Result<Target, NotJoinable> {
    let fail = |m: String| Err(NotJoinable(m));
    if !crate::state::is_container_name(name) || !run_dir().join(name).is_dir() {
        return fail(format!("no container named `{name}` is running"));
    }
    if !is_running(name) {
        return fail(format!(
            "`{name}` is not running (its supervisor is gone; `envc gc` cleans up what it left)"
        ));
    }
    let Some(info) = read_info(name).filter(|i| i.pid > 0) else {
        return fail(format!("`{name}` is starting: PID 1 does not run yet"));
    };
    let pidfd = crate::devlxd::sys::pidfd_open(info.pid as u32)
        .map_err(|e| NotJoinable(format!("`{name}` has stopped ({e})")))?;
    // The PID was read before the pidfd was taken: it is PID 1 only if the
    // supervisor still runs and still names it.
    let again = read_info(name);
    if !is_running(name) || again.as_ref().map(|i| i.pid) != Some(info.pid) {
        return fail(format!("`{name}` has stopped or restarted; try again"));
    }
    let proc_dir = Path::new("/proc").join(info.pid.to_string());
    let namespaces = differing_namespaces(&proc_dir)
        .map_err(|e| NotJoinable(format!("cannot read `{name}`'s namespaces: {e}")))?;
    let bounding = std::fs::read_to_string(proc_dir.join("status"))
        .ok()
        .and_then(|s| status_field(&s, "CapBnd"))
        .ok_or_else(|| NotJoinable(format!("cannot read `{name}`'s capabilities")))?;
    let cgroup_procs = info
        .cgroup_dirs()
        .iter()
        .map(|dir| open_procs(dir, info.idmap.as_ref()))
        .collect::<io::Result<Vec<File>>>()
        .map_err(|e| NotJoinable(format!("cannot join `{name}`'s cgroup: {e}")))?;
    Ok(Target {
        info,
        pidfd,
        namespaces,
        bounding,
        cgroup_procs,
    })
}

/// The `CLONE_NEW*` flags of the namespaces of the process at `proc_dir`
/// that are not ours (`setns(2)` refuses to join our own user namespace).
fn differing_namespaces(proc_dir: &Path) -> io::Result<i32> {
    let mut flags = 0;
    for (ns, flag) in NAMESPACES {
        let theirs = match std::fs::metadata(proc_dir.join("ns").join(ns)) {
            Ok(m) => m,
            // A kernel without that namespace type.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let ours = std::fs::metadata(Path::new("/proc/self/ns").join(ns))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// A hex field of `/proc/PID/status` (`CapBnd:\t000001ffffffffff`).
fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        u64::from_str_radix(v.trim(), 16).ok()
    })
}

/// `cgroup.procs` of the cgroup to join in the container's cgroup `dir`:
/// `dir` itself in a v1 hierarchy, its attach leaf in cgroup2 (made on
/// first use, owned like the container's cgroup).
fn open_procs(dir: &Path, idmap: Option<&crate::idmap::IdMap>) -> io::Result<File> {
    let dir = if dir.join("cgroup.controllers").exists() {
        let leaf = dir.join(ATTACH_LEAF);
        match std::fs::create_dir(&leaf) {
            Ok(()) => {
                if let Some(m) = idmap {
                    let (uid, gid) = (m.root_host_uid(), m.root_host_gid());
                    std::os::unix::fs::chown(&leaf, uid, gid)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        leaf
    } else {
        dir.to_path_buf()
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_as_hex() {
        let s = "Name:\tinit\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        assert_eq!(status_field(s, "CapBnd"), Some(0x1ff_ffff_ffff));
        assert_eq!(status_field(s, "CapEff"), None);
    }

    #[test]
    fn we_share_every_namespace_with_ourselves() {
        assert_eq!(differing_namespaces(Path::new("/proc/self")).unwrap(), 0);
    }
}
