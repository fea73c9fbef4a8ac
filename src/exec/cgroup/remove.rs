//! Removing the container's cgroup at teardown: its own tree (with whatever
//! its guest made below it), and the shared parents no other container uses.

use crate::exec::Runner;
use crate::exec::kernel::Kernel;
use crate::exec::linux::errno;
use std::path::Path;
use std::time::Duration;

/// Removes a cgroup directory, waiting a moment for its last tasks to leave
/// (the container's processes exit just after PID 1). Gone already is fine.
fn remove_cgroup_dir<K: Kernel>(k: &mut K, path: &Path) -> std::io::Result<()> {
    // Short waits first (the kernel usually lets go at once), doubling up
    // to 5 ms a wait: about a second in all.
    let mut wait = Duration::from_micros(50);
    for _ in 0..210 {
        match k.remove_host_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if errno(&e) == Some(libc::ENOENT) => return Ok(()),
            Err(e) if errno(&e) == Some(libc::EBUSY) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    k.remove_host_dir(path)
}

impl<K: Kernel> Runner<'_, K> {
    /// Removes the container's own cgroup at `path` and every cgroup below
    /// it. Adds what could not be removed to `left`.
    pub(crate) fn remove_cgroup_tree(&mut self, path: &Path, left: &mut Vec<String>) {
        // Usually the container's cgroup is empty and has no children: one
        // rmdir. Else (EBUSY: tasks still leaving, or cgroups of its own)...
        match self.k.remove_host_dir(path) {
            Ok(()) => return,
            Err(e) => match errno(&e) {
                Some(libc::ENOENT) => return,
                Some(libc::EBUSY | libc::ENOTEMPTY) => {}
                _ => {
                    left.push(format!("{}: {e}", path.display()));
                    return;
                }
            },
        }
        // ... deepest first: a guest's init (systemd) makes its own tree.
        let mut dirs = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Ok(names) = self.k.host_subdirs(&d) {
                stack.extend(names.iter().map(|n| d.join(n)));
            }
            dirs.push(d);
        }
        for d in dirs.into_iter().rev() {
            if let Err(e) = remove_cgroup_dir(self.k, &d) {
                left.push(format!("{}: {e}", d.display()));
            }
        }
    }

    /// Removes a shared parent cgroup at `path`, unless other containers
    /// still use it. Adds what could not be removed to `left`.
    pub(crate) fn remove_shared_cgroup(&mut self, path: &Path, left: &mut Vec<String>) {
        match self.k.remove_host_dir(path) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    errno(&e),
                    Some(libc::ENOENT | libc::EBUSY | libc::ENOTEMPTY)
                ) => {}
            Err(e) => left.push(format!("{}: {e}", path.display())),
        }
    }
}
