//! The plan for people: one line per step, grouped by phase, conditions and
//! origins shown.

use super::{BindWhen, DeviceNumber, Op, Phase, Plan, Side};
use crate::profile::model::{NodeKind, StopSignal};
use crate::profile::values::signal_name;
use std::fmt::Write;

fn what(op: &Op) -> String {
    match op {
        Op::OpenRootfs => "the rootfs directory, which every later path resolves in".to_string(),
        Op::CheckDirectory { path, create } => {
            format!(
                "{path} is a directory{}",
                if *create { " (created if missing)" } else { "" }
            )
        }
        Op::CheckInit { path } => format!("{path} resolves inside the rootfs to an executable"),
        Op::CreateCgroup {
            parent,
            name,
            limits,
            device_allow,
            device_allow_from_host,
            unrestricted_devices_ok,
            delegate,
        } => {
            let mut s = format!("{parent}/{name} in every hierarchy the host has");
            let mut l = Vec::new();
            if let Some(m) = &limits.memory {
                l.push(match m {
                    crate::profile::values::MemoryLimit::Bytes(b) => format!("memory {b} B"),
                    crate::profile::values::MemoryLimit::PercentHundredths(p) => {
                        format!("memory {}.{:02}% of host", p / 100, p % 100)
                    }
                });
            }
            if let Some(c) = &limits.cpu {
                l.push(match c {
                    crate::profile::values::CpuLimit::Count(n) => format!("cpus {n}"),
                    crate::profile::values::CpuLimit::Set(s) => format!("cpuset {s}"),
                });
            }
            if let Some(a) = &limits.cpu_allowance {
                l.push(format!("cpu {}us/{}us", a.quota_us, a.period_us));
            }
            if let Some(p) = limits.processes {
                l.push(format!("pids {p}"));
            }
            if !l.is_empty() {
                let _ = write!(s, "; {}", l.join(", "));
            }
            let _ = write!(
                s,
                "; {} device rules",
                device_allow.len() + device_allow_from_host.len()
            );
            if *unrestricted_devices_ok {
                s.push_str(" (unenforced where the host cannot)");
            }
            if *delegate {
                s.push_str("; handed to the container's root");
            }
            s
        }
        Op::CloneChild { namespaces } => {
            let n: Vec<String> = namespaces
                .iter()
                .map(|n| format!("{n:?}").to_lowercase())
                .collect();
            format!("new {} namespaces", n.join(", "))
        }
        Op::AttachCgroup => "the container's process joins it in every hierarchy".into(),
        Op::UnshareCgroupNamespace => "if the kernel has cgroup namespaces".into(),
        Op::MakeMountsSlave => "/ recursively, so no mount reaches the host".into(),
        Op::BindRootfs { idmapped: false } => "rootfs onto itself".into(),
        Op::BindRootfs { idmapped: true } => "the host's idmapped mount of the rootfs".into(),
        Op::ChooseIdmap {
            isolated,
            size,
            base,
            raw,
        } => {
            let mut s = if *isolated {
                format!(
                    "a range of {} ids no other container has{}",
                    size.unwrap_or(65536),
                    base.map_or(String::new(), |b| format!(", from host id {b}"))
                )
            } else {
                "root's range in /etc/subuid and /etc/subgid (else 1000000, size 1000000000)"
                    .to_string()
            };
            if let Some(r) = raw {
                s.push_str(&format!("; raw.idmap: {}", r.trim().replace('\n', "; ")));
            }
            s
        }
        Op::WriteIdmap => "the chosen map into the container's user namespace".into(),
        Op::MakeIdmappedRootfs => "the rootfs, idmapped with the container's user namespace".into(),
        Op::MakeIdmappedMount {
            source,
            recursive,
            required,
        } => format!(
            "{source}{}, idmapped with the container's user namespace{}",
            if *recursive { " (recursive)" } else { "" },
            if *required { "" } else { "  if host has it" }
        ),
        Op::BecomeRoot => "uid and gid 0 of the container's user namespace".into(),
        Op::BindBootId { target } => format!("{target} <- a random id for this start (read-only)"),
        Op::SetHostname { hostname } => hostname.clone(),
        Op::MountProc { target, mode } => format!(
            "{target} ({})",
            match mode {
                crate::profile::raw::ProcMode::Mixed => "proc:mixed",
                crate::profile::raw::ProcMode::Rw => "proc:rw",
                crate::profile::raw::ProcMode::Auto => "proc:auto",
            }
        ),
        Op::MountSysfs { target } => target.to_string(),
        Op::BindSelf { target } => target.to_string(),
        Op::MountCgroups { target, namespace } => format!(
            "{target} as the host's layout needs{}",
            if *namespace {
                ""
            } else {
                " (tmpfs + read-only binds, no cgroup namespace)"
            }
        ),
        Op::MountTmpfs {
            target,
            size,
            mode,
            nodev,
            readonly,
        } => {
            let mut s = format!("{target} mode={mode:04o}");
            if let Some(sz) = size {
                let _ = write!(s, " size={sz}");
            }
            if *nodev {
                s.push_str(" nodev");
            }
            if *readonly {
                s.push_str(" ro");
            }
            s
        }
        Op::MakeDevice {
            path,
            kind,
            number,
            fallback,
            mode,
            uid,
            gid,
            required,
        } => {
            let k = match kind {
                NodeKind::Char => 'c',
                NodeKind::Block => 'b',
            };
            let num = match number {
                DeviceNumber::Fixed { major, minor } => format!("{major}:{minor}"),
                DeviceNumber::FromHost { source } => format!("(numbers of {source})"),
            };
            let mut s = format!("{path} {k} {num} mode={mode:04o} {uid}:{gid}");
            if let Some(f) = fallback {
                let _ = write!(s, "; else bind {f}");
            }
            if !required {
                s.push_str("; if the host has it");
            }
            s
        }
        Op::BindDevice {
            source,
            path,
            required,
        } => {
            format!(
                "{source} -> {path}{}",
                if *required { "" } else { "  if host has it" }
            )
        }
        Op::MountDevpts { target, options } => format!("{target} {options}"),
        Op::BindPtmx { path } => format!("{path} <- /dev/pts/ptmx (else symlink pts/ptmx)"),
        Op::MakeConsole { path } => {
            format!("{path}: a pty of the container's devpts; PID 1's stdio")
        }
        Op::MakeSymlink { path, target } => format!("{path} -> {target}"),
        Op::MountMqueue { target } => target.to_string(),
        Op::MakeLogSocket {
            path,
            unless_systemd,
        } => {
            format!(
                "{path} served by envc{}",
                if *unless_systemd {
                    "  unless init is systemd"
                } else {
                    ""
                }
            )
        }
        Op::MakeGuestApiSocket { path } => format!("{path} mode=0666 served by envc"),
        Op::BindMount {
            source,
            target,
            recursive,
            readonly,
            when,
            unless_own_binfmt,
            shift,
        } => {
            let mut s = format!("{source} -> {target}");
            if *shift {
                s.push_str(" idmapped");
            }
            if *recursive {
                s.push_str(" rbind");
            }
            if *readonly {
                s.push_str(" ro");
            }
            match when {
                BindWhen::Always => {}
                BindWhen::IfExists => {
                    let _ = write!(s, "  if host has {source}");
                }
                BindWhen::IfMounted => {
                    let _ = write!(s, "  if host has a mount at {source}");
                }
            }
            if *unless_own_binfmt {
                s.push_str(", unless the container can mount its own");
            }
            s
        }
        Op::OverlayLxcfs { source } => {
            format!("{source}/proc/* and sys/devices/system/cpu  if LXCFS runs")
        }
        Op::BringUpLoopback => "lo up".into(),
        Op::CreateNic {
            device,
            nictype,
            parent,
            host_name,
            name,
            hwaddr,
            mtu,
        } => {
            let mut s = format!(
                "{device}: {} {name} {}",
                crate::profile::load::nictype_name(*nictype),
                hwaddr.as_deref().unwrap_or("(own MAC)")
            );
            if let Some(h) = host_name {
                let _ = write!(s, " host={h}");
            }
            if let Some(p) = parent {
                let _ = write!(s, " parent={p}");
            }
            if let Some(m) = mtu {
                let _ = write!(s, " mtu={m}");
            }
            s
        }
        Op::ConfigureNic {
            name,
            ipv4_address,
            ipv4_gateway,
        } => {
            let mut s = format!("{name} up");
            if let Some(a) = ipv4_address {
                let _ = write!(s, " {a}");
            }
            if let Some(g) = ipv4_gateway {
                let _ = write!(s, " via {g}");
            }
            s
        }
        Op::RemountReadOnly { target, recursive } => {
            format!("{target}{}", if *recursive { " recursively" } else { "" })
        }
        Op::PivotRoot => "into the rootfs; detach the old root".into(),
        Op::LoadSyscallFilter { filter } => {
            format!("{}; loaded just before exec", filter.describe())
        }
        Op::ExecInit {
            command,
            env,
            drop_capabilities,
        } => {
            let mut s = format!("{}  env: {}", command.join(" "), env.join(" "));
            if drop_capabilities.is_empty() {
                s.push_str("  every capability (in its user namespace)");
            } else {
                let _ = write!(s, "  without {}", drop_capabilities.join(","));
            }
            s
        }
    }
}

impl Plan {
    /// The plan as aligned text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "plan for container `{}`: {} steps",
            self.name,
            self.steps.len()
        );
        let _ = writeln!(out, "rootfs  {}", self.rootfs);
        let _ = writeln!(out, "layers  {}", self.layers.join(" < "));
        let stop = match self.supervise.stop_signal {
            StopSignal::Auto => "SIGRTMIN+3 if PID 1 blocks it, else SIGPWR".to_string(),
            StopSignal::Signal(n) => signal_name(n),
        };
        let _ = writeln!(
            out,
            "init    stop: {stop}, after {}s kill; reboot: {}",
            self.supervise.stop_timeout_secs,
            signal_name(self.supervise.reboot_signal)
        );
        let name_w = self
            .steps
            .iter()
            .map(|s| s.op.name().len())
            .max()
            .unwrap_or(0);
        let whats: Vec<String> = self.steps.iter().map(|s| what(&s.op)).collect();
        let what_w = whats
            .iter()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
            .min(64);
        let mut phase: Option<Phase> = None;
        for (i, (s, w)) in self.steps.iter().zip(&whats).enumerate() {
            if phase != Some(s.phase) {
                phase = Some(s.phase);
                let _ = writeln!(out, "\n{}", s.phase.title());
            }
            let side = match s.side {
                Side::Host => "host",
                Side::Container => "ctr ",
            };
            let pad = what_w.saturating_sub(w.chars().count());
            let _ = writeln!(
                out,
                "{:>3}  {side}  {:<name_w$}  {w}{}  [{}]",
                i + 1,
                s.op.name(),
                " ".repeat(pad),
                s.origin
            );
        }
        out
    }
}
