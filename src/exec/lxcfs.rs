//! The LXCFS overlay: where LXCFS runs on the host, its files are bound
//! over the container's `/proc` and `/sys/devices/system/cpu`, so the guest
//! sees its own limits in them.

use super::kernel::Kernel;
use super::linux::errno;
use super::report::Status;
use super::{Failure, Runner};
use crate::paths::{ContainerPath, HostPath};
use std::path::Path;

/// The `/proc` files LXCFS offers.
pub const OFFERED: &[&str] = &[
    "cpuinfo",
    "meminfo",
    "stat",
    "uptime",
    "diskstats",
    "swaps",
    "loadavg",
    "slabinfo",
    "pressure",
];

impl<K: Kernel> Runner<'_, K> {
    /// `OverlayLxcfs`: binds what LXCFS offers under `source`, or skips
    /// when it does not run.
    pub(crate) fn overlay_lxcfs(&mut self, source: &HostPath) -> Result<Status, Failure> {
        let base = Path::new(source.as_str());
        let Some(proc_files) = self.k.list_host_dir(&base.join("proc"))? else {
            return Ok(Status::Skipped {
                reason: format!("LXCFS not found ({source}/proc does not exist)"),
            });
        };
        let mut bound = self.overlay_proc(source, &proc_files)?;
        bound.extend(self.overlay_cpu_dir(source)?);
        Ok(Status::detail(format!(
            "LXCFS found; overlaid {}",
            bound.join(" ")
        )))
    }

    /// Binds the offered files LXCFS has in `proc/` over `/proc`. Returns
    /// the paths bound.
    fn overlay_proc(
        &mut self,
        source: &HostPath,
        proc_files: &[String],
    ) -> Result<Vec<String>, Failure> {
        let mut bound = Vec::new();
        for f in proc_files.iter().filter(|f| OFFERED.contains(&f.as_str())) {
            let src = HostPath::new(&format!("{source}/proc/{f}"))?;
            let dst = ContainerPath::new(&format!("/proc/{f}"))?;
            match self.k.bind_host(&src, &dst, false, false) {
                Ok(()) => bound.push(format!("/proc/{f}")),
                // The kernel's /proc lacks it (e.g. no PSI): nothing to overlay.
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(bound)
    }

    /// Binds LXCFS's `sys/devices/system/cpu`, if it has one: the whole
    /// directory where LXCFS offers it whole (it has a `uevent`), else each
    /// entry. Returns the paths bound.
    fn overlay_cpu_dir(&mut self, source: &HostPath) -> Result<Vec<String>, Failure> {
        let mut bound = Vec::new();
        let cpu = Path::new(source.as_str()).join("sys/devices/system/cpu");
        let Some(entries) = self.k.list_host_dir(&cpu)? else {
            return Ok(bound);
        };
        let dst = ContainerPath::new("/sys/devices/system/cpu").expect("static");
        let src_root = format!("{source}/sys/devices/system/cpu");
        if entries.iter().any(|e| e == "uevent") {
            let src = HostPath::new(&src_root)?;
            self.k.bind_host(&src, &dst, false, false)?;
            bound.push(dst.to_string());
            return Ok(bound);
        }
        for e in &entries {
            let src = HostPath::new(&format!("{src_root}/{e}"))?;
            let d = dst.join(e)?;
            match self.k.bind_host(&src, &d, false, false) {
                Ok(()) => bound.push(d.to_string()),
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(bound)
    }
}
