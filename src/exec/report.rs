//! The report: what every step did, and what the host had.

use crate::plan::{Op, Plan};
use crate::profile::Origin;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The report format's version.
pub const REPORT_FORMAT: u32 = 1;

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
        /// A fatal failure stopped the start; a non-fatal one (a conditional
        /// host path) was only reported.
        fatal: bool,
    },
    NotRun,
    /// Not implemented in this version of envc; nothing was done.
    NotYet {
        what: String,
    },
}

impl Status {
    pub fn done() -> Status {
        Status::Done { detail: None }
    }
    pub fn detail(d: impl Into<String>) -> Status {
        Status::Done {
            detail: Some(d.into()),
        }
    }
    pub fn word(&self) -> &'static str {
        match self {
            Status::Done { .. } => "done",
            Status::Skipped { .. } => "skipped",
            Status::Failed { .. } => "failed",
            Status::NotRun => "not run",
            Status::NotYet { .. } => "not yet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based, as `envc plan` numbers steps.
    pub step: usize,
    pub op: String,
    pub origin: Origin,
    #[serde(flatten)]
    pub status: Status,
    /// How long it took, in microseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub us: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A point in a run, in microseconds since envc started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    pub what: String,
    pub us: u64,
}

/// A conditional host path and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFact {
    pub path: String,
    /// `mounted`, `present, not mounted`, `absent`, or `error: ...`.
    pub state: String,
}

/// What the host supplied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// What init resolved to inside the rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// An unprivileged container's id map: the host ids its uids and gids are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<crate::idmap::IdMap>,
    pub conditional_paths: Vec<PathFact>,
    /// Host devices bound or skipped (`/dev/fuse`: found / not found).
    pub host_devices: Vec<PathFact>,
    /// `/dev/log`: served, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_log: Option<String>,
    /// The cgroup layout and what was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// How `/sys/fs/cgroup` was mounted inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_mounts: Option<String>,
    /// Each NIC: name inside, kind, host side, MAC, MTU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<String>,
    /// LXCFS: found and what was overlaid, or not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxcfs: Option<String>,
    /// The syscall filter: what it is, and that it was loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall_filter: Option<String>,
}

/// How the container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub exit_code: u8,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub name: String,
    /// The host's root is the container's root (no user namespace).
    #[serde(default)]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub steps: Vec<StepReport>,
    pub host: HostFacts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Milestones since envc started (`--timings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<Milestone>,
    /// What teardown could not undo (empty when the host is as it was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown_left: Vec<String>,
}

impl Report {
    /// A report with every step `not run`.
    pub fn new(plan: &Plan) -> Report {
        Report {
            format: REPORT_FORMAT,
            name: plan.name.clone(),
            privileged: plan.privileged(),
            pid: None,
            steps: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepReport {
                    step: i + 1,
                    op: s.op.name().to_string(),
                    origin: s.origin.clone(),
                    status: Status::NotRun,
                    us: 0,
                })
                .collect(),
            host: HostFacts::default(),
            outcome: None,
            milestones: crate::timing::early()
                .into_iter()
                .map(|(what, us)| Milestone { what, us })
                .collect(),
            teardown_left: Vec::new(),
        }
    }

    /// Records a step's status, and the host facts it carries.
    pub fn set(&mut self, plan: &Plan, index: usize, status: Status) {
        if let Some(step) = plan.steps.get(index) {
            match &step.op {
                Op::BindMount {
                    source,
                    when: crate::plan::BindWhen::IfMounted,
                    ..
                } => {
                    let state = match &status {
                        Status::Done { .. } => "mounted".to_string(),
                        Status::Skipped { reason } => reason.clone(),
                        Status::Failed { error, .. } => format!("error: {error}"),
                        Status::NotRun | Status::NotYet { .. } => "not checked".to_string(),
                    };
                    upsert(&mut self.host.conditional_paths, source.as_str(), state);
                }
                Op::BindDevice { source, .. } => {
                    let state = match &status {
                        Status::Done { .. } => "found, bound".to_string(),
                        Status::Skipped { reason } => reason.clone(),
                        Status::Failed { error, .. } => format!("error: {error}"),
                        _ => "not checked".to_string(),
                    };
                    upsert(&mut self.host.host_devices, source.as_str(), state);
                }
                Op::CreateCgroup { .. } => self.host.cgroup = Some(fact(&status)),
                Op::CreateNic { .. } => self.host.nics.push(fact(&status)),
                Op::MountCgroups { .. } => self.host.cgroup_mounts = Some(fact(&status)),
                Op::OverlayLxcfs { .. } => self.host.lxcfs = Some(fact(&status)),
                Op::LoadSyscallFilter { .. } => self.host.syscall_filter = Some(fact(&status)),
                Op::MakeLogSocket { .. } => {
                    self.host.dev_log = Some(match &status {
                        Status::Done { .. } => "a socket served by envc".to_string(),
                        Status::Skipped { reason } => format!("none ({reason})"),
                        Status::Failed { error, .. } => format!("error: {error}"),
                        _ => "not made".to_string(),
                    });
                }
                _ => {}
            }
        }
        if let Some(s) = self.steps.get_mut(index) {
            s.status = status;
        }
    }

    /// Records a milestone now.
    pub fn mark(&mut self, what: &str) {
        self.milestones.push(Milestone {
            what: what.to_string(),
            us: crate::timing::now_us(),
        });
    }

    /// Records how long step `index` took.
    pub fn set_us(&mut self, index: usize, us: u32) {
        if let Some(s) = self.steps.get_mut(index) {
            s.us = us;
        }
    }

    /// Adds to a step's time (a step done in two parts).
    pub fn add_us(&mut self, index: usize, us: u32) {
        if let Some(s) = self.steps.get_mut(index) {
            s.us = s.us.saturating_add(us);
        }
    }

    /// Where the time went: milestones, then the steps' time per phase.
    pub fn timings(&self, plan: &Plan) -> String {
        let mut out = crate::timing::format_milestones(
            self.milestones.iter().map(|m| (m.what.as_str(), m.us)),
        );
        let _ = writeln!(out, "  steps, by phase (ms):");
        let mut phases: Vec<(crate::plan::Phase, u64, usize)> = Vec::new();
        for (s, r) in plan.steps.iter().zip(&self.steps) {
            match phases.last_mut() {
                Some((p, us, n)) if *p == s.phase => {
                    *us += r.us as u64;
                    *n += 1;
                }
                _ => phases.push((s.phase, r.us as u64, 1)),
            }
        }
        for (p, us, n) in phases {
            let _ = writeln!(
                out,
                "    {:<24} {:>8.3}  ({n} steps)",
                p.title(),
                us as f64 / 1000.0
            );
        }
        let mut slow: Vec<&StepReport> = self.steps.iter().filter(|s| s.us > 0).collect();
        slow.sort_by_key(|s| std::cmp::Reverse(s.us));
        let _ = writeln!(out, "  slowest steps (ms):");
        for s in slow.iter().take(5) {
            let _ = writeln!(
                out,
                "    {:>8.3}  {} {} [{}]",
                s.us as f64 / 1000.0,
                s.step,
                s.op,
                s.origin
            );
        }
        out
    }

    /// The first fatal failure, if any.
    pub fn failure(&self) -> Option<&StepReport> {
        self.steps
            .iter()
            .find(|s| matches!(s.status, Status::Failed { fatal: true, .. }))
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("reports serialise");
        s.push('\n');
        s
    }

    /// The short human summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let count = |w: &str| self.steps.iter().filter(|s| s.status.word() == w).count();
        // Done, skipped and failed always; the rest only when there are some.
        let mut counts = vec![
            format!("{} done", count("done")),
            format!("{} skipped", count("skipped")),
            format!("{} failed", count("failed")),
        ];
        for w in ["not yet", "not run"] {
            if count(w) > 0 {
                counts.push(format!("{} {w}", count(w)));
            }
        }
        let _ = writeln!(
            out,
            "envc: {}: {} steps: {}",
            self.name,
            self.steps.len(),
            counts.join(", ")
        );
        if let Some(init) = &self.host.init {
            let _ = writeln!(out, "  init           {init}");
        }
        let _ = writeln!(
            out,
            "  mode           {}",
            if self.privileged {
                "privileged (the host's root is the container's root)"
            } else {
                "unprivileged (a user namespace of its own)"
            }
        );
        if let Some(map) = &self.host.idmap {
            let _ = writeln!(out, "  id map         {map}");
        }
        for f in &self.host.conditional_paths {
            let _ = writeln!(out, "  host path      {:<28} {}", f.path, f.state);
        }
        for f in &self.host.host_devices {
            let _ = writeln!(out, "  host device    {:<28} {}", f.path, f.state);
        }
        if let Some(l) = &self.host.dev_log {
            let _ = writeln!(out, "  /dev/log       {l}");
        }
        if let Some(c) = &self.host.cgroup {
            let _ = writeln!(out, "  cgroup         {c}");
        }
        if let Some(c) = &self.host.cgroup_mounts {
            let _ = writeln!(out, "  /sys/fs/cgroup {c}");
        }
        for n in &self.host.nics {
            let _ = writeln!(out, "  NIC            {n}");
        }
        if let Some(l) = &self.host.lxcfs {
            let _ = writeln!(out, "  LXCFS          {l}");
        }
        if let Some(f) = &self.host.syscall_filter {
            let _ = writeln!(out, "  syscalls       {f}");
        }
        let mut not_yet: Vec<&str> = Vec::new();
        for s in &self.steps {
            match &s.status {
                Status::Failed { error, fatal } => {
                    let _ = writeln!(
                        out,
                        "  {} step {} {} [{}]: {error}",
                        if *fatal {
                            "FAILED"
                        } else {
                            "failed (not fatal)"
                        },
                        s.step,
                        s.op,
                        s.origin
                    );
                }
                Status::NotYet { what } if !not_yet.contains(&what.as_str()) => {
                    not_yet.push(what);
                }
                _ => {}
            }
        }
        if !not_yet.is_empty() {
            let _ = writeln!(out, "  not yet        {}", not_yet.join("; "));
        }
        for t in &self.teardown_left {
            let _ = writeln!(out, "  NOT UNDONE     {t}");
        }
        if let Some(o) = &self.outcome {
            let _ = writeln!(out, "  outcome        {} (exit {})", o.summary, o.exit_code);
        }
        out
    }
}

fn fact(status: &Status) -> String {
    match status {
        Status::Done { detail } => detail.clone().unwrap_or_else(|| "done".into()),
        Status::Skipped { reason } => reason.clone(),
        Status::Failed { error, .. } => format!("error: {error}"),
        Status::NotRun => "not run".into(),
        Status::NotYet { what } => format!("not yet: {what}"),
    }
}

fn upsert(list: &mut Vec<PathFact>, path: &str, state: String) {
    match list.iter_mut().find(|f| f.path == path) {
        Some(f) => f.state = state,
        None => list.push(PathFact {
            path: path.to_string(),
            state,
        }),
    }
}
