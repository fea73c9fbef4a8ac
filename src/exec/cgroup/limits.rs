//! What a container's limits write: the file and value in each hierarchy,
//! in cgroup v1 or cgroup2 names, from the profile's `[limits]`.

use super::format_cpu_list;
use crate::profile::model::Limits;
use crate::profile::values::{CpuLimit, MemoryLimit};

/// One file write the limits need: in the hierarchy with `controller`
/// (`None`: cgroup2), `file` gets `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitWrite {
    pub v2: bool,
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

/// What the limits write, in v1 or v2 names. `host_memory` is the host's
/// memory in bytes (for a percentage); `parent_cpus` the CPUs the parent
/// cgroup has (for a CPU count).
pub fn limit_writes(
    limits: &Limits,
    v2: bool,
    host_memory: u64,
    parent_cpus: &[u32],
) -> Result<Vec<LimitWrite>, String> {
    let mut out = Vec::new();
    let w = |controller, file, value: String| LimitWrite {
        v2,
        controller,
        file,
        value,
    };
    if let Some(m) = &limits.memory {
        let bytes = match m {
            MemoryLimit::Bytes(b) => *b,
            MemoryLimit::PercentHundredths(p) => (host_memory as u128 * *p as u128 / 10_000) as u64,
        };
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        out.push(w("memory", file, bytes.to_string()));
    }
    if let Some(c) = &limits.cpu {
        let set = match c {
            CpuLimit::Set(s) => s.clone(),
            CpuLimit::Count(n) => {
                if parent_cpus.len() < *n as usize {
                    return Err(format!(
                        "limits.cpu asks for {n} CPUs; only {} are available ({})",
                        parent_cpus.len(),
                        format_cpu_list(parent_cpus)
                    ));
                }
                format_cpu_list(&parent_cpus[..*n as usize])
            }
        };
        out.push(w("cpuset", "cpuset.cpus", set));
    }
    if let Some(a) = &limits.cpu_allowance {
        if v2 {
            out.push(w(
                "cpu",
                "cpu.max",
                format!("{} {}", a.quota_us, a.period_us),
            ));
        } else {
            out.push(w("cpu", "cpu.cfs_period_us", a.period_us.to_string()));
            out.push(w("cpu", "cpu.cfs_quota_us", a.quota_us.to_string()));
        }
    }
    if let Some(p) = limits.processes {
        out.push(w("pids", "pids.max", p.to_string()));
    }
    Ok(out)
}

/// The controllers the limits write to (v1 names; on cgroup2 they all go to
/// the one hierarchy).
pub fn limit_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut out = Vec::new();
    if limits.memory.is_some() {
        out.push("memory");
    }
    if limits.cpu.is_some() {
        out.push("cpuset");
    }
    if limits.cpu_allowance.is_some() {
        out.push("cpu");
    }
    if limits.processes.is_some() {
        out.push("pids");
    }
    out
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_v1_and_v2() {
        let limits = Limits {
            memory: Some(MemoryLimit::PercentHundredths(5000)),
            cpu: Some(CpuLimit::Count(1)),
            cpu_allowance: Some(crate::profile::values::CpuAllowance {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            processes: Some(64),
        };
        let v1 = limit_writes(&limits, false, 1 << 30, &[0, 1]).unwrap();
        let files: Vec<(&str, &str)> = v1.iter().map(|w| (w.file, w.value.as_str())).collect();
        assert_eq!(
            files,
            [
                ("memory.limit_in_bytes", "536870912"),
                ("cpuset.cpus", "0"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "64"),
            ]
        );
        let v2 = limit_writes(&limits, true, 1 << 30, &[0, 1]).unwrap();
        let files: Vec<&str> = v2.iter().map(|w| w.file).collect();
        assert_eq!(files, ["memory.max", "cpuset.cpus", "cpu.max", "pids.max"]);
        assert!(
            limit_writes(
                &Limits {
                    cpu: Some(CpuLimit::Count(3)),
                    ..Limits::default()
                },
                true,
                0,
                &[0, 1]
            )
            .is_err()
        );
        assert_eq!(
            mem_total("MemTotal:       24668800 kB\n"),
            Some(24668800 * 1024)
        );
    }
}
