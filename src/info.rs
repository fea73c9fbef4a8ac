//! `envc info NAME`: a running container as `lxc info` shows it: state,
//! PID 1 on the host, uptime, the id map, each network interface with its
//! addresses as the container sees them, and what its cgroup says it uses
//! (memory now and at peak, CPU time, processes). A container that is not
//! running shows how its last run ended, from its log directory.

use crate::exec::report::Report;
use crate::idmap::IdMap;
use crate::lifecycle::{Info, is_running, read_info};
use crate::net::Rtnl;
use crate::state::{log_dir, run_dir};
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Serialize)]
pub struct Shown {
    pub name: String,
    /// `running`, `starting`, `dead` (supervisor gone), `stopped`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
    pub interfaces: Vec<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// How the last run ended (a stopped container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<String>,
    pub console_log: String,
}

/// A network interface as the container sees it.
#[derive(Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: u32,
    pub up: bool,
    /// `ADDR/PREFIX`, IPv4 and IPv6.
    pub addresses: Vec<String>,
}

/// What the container's cgroup says it uses.
#[derive(Debug, Default, Serialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub processes: Option<u64>,
}

/// `envc info NAME [--format json]`.
pub fn info(name: &str, json: bool) -> ExitCode {
    let Some(shown) = show(name) else {
        eprintln!("envc: no container named `{name}` (not running, and no log of a run)");
        return ExitCode::from(1);
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        );
    } else {
        print!("{}", text(&shown));
    }
    ExitCode::SUCCESS
}

/// What `info` shows of `name`; `None` when envc knows nothing of it.
pub fn show(name: &str) -> Option<Shown> {
    if !crate::state::is_container_name(name) {
        return None;
    }
    let logs = log_dir().join(name);
    let console_log = logs.join("console.log").display().to_string();
    if !run_dir().join(name).is_dir() {
        let report: Report = read_json(&logs.join("report.json"))?;
        return Some(Shown {
            name: name.to_string(),
            state: "stopped".into(),
            pid: None,
            uptime_secs: None,
            rootfs: None,
            privileged: report.privileged,
            idmap: report.host.idmap,
            interfaces: Vec::new(),
            resources: None,
            last_outcome: report.outcome.map(|o| o.summary),
            console_log,
        });
    }
    let running = is_running(name);
    let info = read_info(name);
    let state = match (running, &info) {
        (true, Some(i)) if i.pid > 0 => "running",
        (true, _) => "starting",
        (false, _) => "dead",
    };
    let live = info.as_ref().filter(|i| running && i.pid > 0);
    Some(Shown {
        name: name.to_string(),
        state: state.into(),
        pid: info.as_ref().map(|i| i.pid).filter(|p| *p > 0),
        uptime_secs: live.map(|i| crate::lifecycle::now().saturating_sub(i.started)),
        rootfs: info.as_ref().map(|i| i.rootfs.clone()),
        privileged: info.as_ref().is_some_and(|i| i.idmap.is_none()),
        idmap: info.as_ref().and_then(|i| i.idmap.clone()),
        interfaces: live.map(interfaces).unwrap_or_default(),
        resources: live.map(resources),
        last_outcome: None,
        console_log,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The interfaces of PID 1's network namespace, through a netlink socket
/// made in it (nothing of envc's joins the namespace).
fn interfaces(info: &Info) -> Vec<Interface> {
    let Ok(ns) = File::open(format!("/proc/{}/ns/net", info.pid)) else {
        return Vec::new();
    };
    let Ok(mut rtnl) = Rtnl::in_netns(std::os::fd::AsFd::as_fd(&ns)) else {
        return Vec::new();
    };
    let links = rtnl.links().unwrap_or_default();
    let addrs = rtnl.addresses().unwrap_or_default();
    links
        .into_iter()
        .map(|l| Interface {
            addresses: addrs
                .iter()
                .filter(|(i, _, _)| *i == l.index)
                .map(|(_, a, p)| format!("{a}/{p}"))
                .collect(),
            mac: l.mac.map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }),
            name: l.name,
            mtu: l.mtu,
            up: l.up,
        })
        .collect()
}

/// Reads the first of `files` found in any of the container's cgroup
/// directories, parsed by `parse`.
fn first<T>(
    dirs: &[std::path::PathBuf],
    files: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    files.iter().find_map(|f| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .and_then(|t| parse(&t))
    })
}

fn number(t: &str) -> Option<u64> {
    t.trim().parse().ok()
}

/// Memory (cgroup2's `memory.current`/`memory.peak`, else v1's usage
/// files), CPU time (`cpu.stat`'s `usage_usec`, else v1's `cpuacct.usage`
/// in ns) and processes (`pids.current`).
fn resources(info: &Info) -> Resources {
    let d = &info.cgroup_dirs();
    let usage_usec = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(number)
    };
    Resources {
        memory_bytes: first(d, &["memory.current", "memory.usage_in_bytes"], number),
        memory_peak_bytes: first(d, &["memory.peak", "memory.max_usage_in_bytes"], number),
        cpu_usec: first(d, &["cpu.stat"], usage_usec)
            .or_else(|| first(d, &["cpuacct.usage"], number).map(|ns| ns / 1000)),
        processes: first(d, &["pids.current"], number),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The text form, `lxc info`'s layout.
pub fn text(s: &Shown) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Name: {}", s.name);
    let _ = writeln!(out, "Status: {}", s.state.to_uppercase());
    let mode = if s.privileged {
        "privileged"
    } else {
        "unprivileged"
    };
    let _ = writeln!(out, "Mode: {mode}");
    if let Some(p) = s.pid {
        let _ = writeln!(out, "PID: {p}");
    }
    if let Some(u) = s.uptime_secs {
        let _ = writeln!(out, "Uptime: {}", crate::lifecycle::uptime(u));
    }
    if let Some(r) = &s.rootfs {
        let _ = writeln!(out, "Rootfs: {r}");
    }
    if let Some(m) = &s.idmap {
        let _ = writeln!(out, "Id map: {m}");
    }
    if let Some(o) = &s.last_outcome {
        let _ = writeln!(out, "Last run: {o}");
    }
    let _ = writeln!(out, "Console log: {}", s.console_log);
    if let Some(r) = &s.resources {
        let _ = writeln!(out, "\nResources:");
        let _ = writeln!(out, "  Processes: {}", opt(r.processes, |n| n.to_string()));
        let _ = writeln!(out, "  CPU usage: {}", opt(r.cpu_usec, seconds));
        let _ = writeln!(out, "  Memory usage:");
        let _ = writeln!(out, "    Memory (current): {}", opt(r.memory_bytes, mib));
        let _ = writeln!(out, "    Memory (peak): {}", opt(r.memory_peak_bytes, mib));
    }
    if !s.interfaces.is_empty() {
        let _ = writeln!(out, "  Network usage:");
        for i in &s.interfaces {
            let state = if i.up { "up" } else { "down" };
            let _ = writeln!(out, "    {}:", i.name);
            let _ = writeln!(out, "      State: {state}");
            if let Some(m) = &i.mac {
                let _ = writeln!(out, "      MAC address: {m}");
            }
            let _ = writeln!(out, "      MTU: {}", i.mtu);
            for a in &i.addresses {
                let family = if a.contains(':') { "inet6" } else { "inet" };
                let _ = writeln!(out, "      IP address: {a} ({family})");
            }
        }
    }
    out
}

fn opt(v: Option<u64>, f: impl Fn(u64) -> String) -> String {
    v.map_or("unknown".to_string(), f)
}

fn seconds(usec: u64) -> String {
    format!("{}.{:06} seconds", usec / 1_000_000, usec % 1_000_000)
}
