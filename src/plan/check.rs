//! `Plan::check`: the invariants every plan holds, asserted in tests and
//! before a saved plan is replayed.

use super::{Op, PLAN_FORMAT, Phase, Plan, Side};
use crate::paths::ContainerPath;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Bound::{Excluded, Included, Unbounded};

/// A broken invariant, naming the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub step: Option<usize>,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(i) => write!(f, "step {}: {}", i + 1, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PlanError {}

fn err(step: Option<usize>, message: impl Into<String>) -> Result<(), PlanError> {
    Err(PlanError {
        step,
        message: message.into(),
    })
}

/// Ops that put a new mount or file on their target (so a later one on a
/// parent path would hide them).
fn creates(op: &Op) -> bool {
    !matches!(
        op,
        Op::RemountReadOnly { .. } | Op::CheckDirectory { .. } | Op::CheckInit { .. }
    ) && op.target().is_some()
}

fn mounts_over(op: &Op) -> bool {
    matches!(
        op,
        Op::MountProc { .. }
            | Op::MountSysfs { .. }
            | Op::BindSelf { .. }
            | Op::MountCgroups { .. }
            | Op::MountTmpfs { .. }
            | Op::MountDevpts { .. }
            | Op::MountMqueue { .. }
            | Op::BindMount { .. }
    )
}

/// The container paths earlier steps created something on, each with the
/// first step that did, ordered so that everything below a path is one range.
#[derive(Default)]
struct Created<'a> {
    first: BTreeMap<&'a str, usize>,
    /// The bounds of the last range asked for, kept for their buffers.
    lo: String,
    hi: String,
}

impl<'a> Created<'a> {
    fn insert(&mut self, path: &'a str, step: usize) {
        self.first.entry(path).or_insert(step);
    }

    /// The earliest step that created something strictly below `t`, if any.
    /// Paths below `/a` are exactly the strings in `["/a/", "/a0")`, as `0`
    /// follows `/`; below `/` is everything but `/` itself.
    fn first_below(&mut self, t: &ContainerPath) -> Option<(usize, &'a str)> {
        let t = t.as_str();
        let earliest = |(path, step): (&&'a str, &usize)| (*step, *path);
        if t == "/" {
            return (self.first.range::<str, _>((Excluded("/"), Unbounded)))
                .map(earliest)
                .min();
        }
        for (bound, last) in [(&mut self.lo, '/'), (&mut self.hi, '0')] {
            bound.clear();
            bound.push_str(t);
            bound.push(last);
        }
        (self
            .first
            .range::<str, _>((Included(self.lo.as_str()), Excluded(self.hi.as_str()))))
        .map(earliest)
        .min()
    }
}

impl Plan {
    /// Checks: the format; phases in order; every step on its op's side;
    /// host steps before the clone are only checks and the cgroup; container
    /// steps only after it; no mount hides an earlier step's path; every
    /// read-only remount has a mount to act on; exec is last and only once.
    pub fn check(&self) -> Result<(), PlanError> {
        if self.format != PLAN_FORMAT {
            return err(None, format!("format {} is not {PLAN_FORMAT}", self.format));
        }
        if crate::profile::values::check_hostname(&self.name).is_err() {
            return err(
                None,
                format!("`{}` is not a valid container name", self.name),
            );
        }
        if self.rootfs.is_empty() {
            return err(None, "the rootfs is empty");
        }
        let mut last_phase = Phase::Checks;
        let mut cloned = false;
        // The paths earlier steps created or mounted on, so each step is
        // checked against them in O(log n), not by rescanning the plan.
        let mut created = Created::default();
        let mut mounted: HashSet<&str> = HashSet::new();
        for (i, s) in self.steps.iter().enumerate() {
            if s.phase < last_phase {
                return err(
                    Some(i),
                    format!(
                        "{} in phase `{}` after phase `{}`",
                        s.op.name(),
                        s.phase.title(),
                        last_phase.title()
                    ),
                );
            }
            last_phase = s.phase;
            if s.side != s.op.side() {
                return err(
                    Some(i),
                    format!("{} must run on the {:?} side", s.op.name(), s.op.side()),
                );
            }
            match (&s.op, cloned) {
                (Op::CloneChild { .. }, true) => return err(Some(i), "a second CloneChild"),
                (Op::CloneChild { .. }, false) => cloned = true,
                (op, false) if s.side == Side::Container => {
                    return err(
                        Some(i),
                        format!("{} runs in the container before it exists", op.name()),
                    );
                }
                (op @ (Op::AttachCgroup | Op::CreateNic { .. }), false) => {
                    return err(
                        Some(i),
                        format!("{} needs the container's process", op.name()),
                    );
                }
                (
                    op @ (Op::OpenRootfs
                    | Op::CheckDirectory { .. }
                    | Op::CheckInit { .. }
                    | Op::CreateCgroup { .. }
                    | Op::ChooseIdmap { .. }),
                    true,
                ) => {
                    return err(
                        Some(i),
                        format!("{} must come before the container is created", op.name()),
                    );
                }
                _ => {}
            }
            if matches!(s.op, Op::LoadSyscallFilter { .. })
                && !matches!(
                    self.steps.get(i + 1).map(|n| &n.op),
                    Some(Op::ExecInit { .. })
                )
            {
                return err(Some(i), "LoadSyscallFilter must come just before ExecInit");
            }
            if let Op::ExecInit { command, env, .. } = &s.op {
                if i + 1 != self.steps.len() {
                    return err(Some(i), "ExecInit must be the last step");
                }
                if command.is_empty() {
                    return err(Some(i), "ExecInit has no command");
                }
                if env.iter().any(|e| !e.contains('=')) {
                    return err(Some(i), "ExecInit has an environment entry without `=`");
                }
            }
            if mounts_over(&s.op) {
                let t = s.op.target().expect("mounts have targets");
                if let Some((j, e)) = created.first_below(t) {
                    return err(
                        Some(i),
                        format!(
                            "{} on {t} would hide step {} ({} on {e})",
                            s.op.name(),
                            j + 1,
                            self.steps[j].op.name()
                        ),
                    );
                }
            }
            if let Op::RemountReadOnly { target, .. } = &s.op
                && !mounted.contains(target.as_str())
            {
                return err(
                    Some(i),
                    format!("RemountReadOnly on {target}, which no step mounted"),
                );
            }
            if let Some(t) = s.op.target() {
                if creates(&s.op) {
                    created.insert(t.as_str(), i);
                }
                if mounts_over(&s.op) {
                    mounted.insert(t.as_str());
                }
            }
        }
        match self.steps.last() {
            Some(s) if matches!(s.op, Op::ExecInit { .. }) => Ok(()),
            _ => err(None, "the plan does not end with ExecInit"),
        }?;
        if !self.steps.iter().any(|s| matches!(s.op, Op::PivotRoot)) {
            return err(None, "the plan has no PivotRoot");
        }
        Ok(())
    }
}
