//! A pure cgroup2 host on this (hybrid) machine: a command run in a private mount
//! namespace whose `/sys/fs/cgroup` holds only `cgroup2`, the layout of every current
//! Debian, Ubuntu and Fedora. envc reads that layout from mountinfo and goes the cgroup2
//! way: one hierarchy, a device program for the allow-list, `CLONE_INTO_CGROUP`.
//!
//! The cgroup2 mounted there is the host's own hierarchy (the one at
//! `/sys/fs/cgroup/unified`): what envc makes in it is visible, and checked, from outside.
//! It is mounted with no options: options given to a new mount of cgroup2 (such as
//! `nsdelegate`) change the superblock the host shares. Most controllers stay bound to
//! the v1 hierarchies on this machine, so limits cannot be checked in it.

use std::process::Command;

/// `cmd` (program, arguments, environment, directory) run on a pure cgroup2 layout.
/// The namespace goes with the command: nothing to undo.
pub fn on_pure_cgroup2(cmd: &Command) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup \
             && exec \"$@\"",
        )
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// Whether the host has a cgroup2 hierarchy to show alone (a hybrid or pure host).
pub fn host_has_cgroup2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(" - cgroup2 "))
}
