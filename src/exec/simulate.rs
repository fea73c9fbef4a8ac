//! Replaying a plan against a kernel that does not really create a process
//! (the recording double in `recording.rs`): both sides run here, in plan
//! order, so tests see every call a start makes.

use super::kernel::{Kernel, Spawned};
use super::report::{self, Report, Status};
use super::{Failure, Runner, dropped_caps};
use crate::plan::{Op, Plan};

/// Replays `plan` through `k` and reports what each step did.
pub fn simulate<K: Kernel>(plan: &Plan, k: &mut K) -> Report {
    let mut report = Report::new(plan);
    let mut runner = Runner::new(k, &plan.name, plan.rootfs.clone().into());
    let mut failed: Option<(usize, Failure)> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let r = match &step.op {
            Op::CloneChild { namespaces } => clone_child(&mut runner, &mut report, namespaces),
            Op::ExecInit {
                command,
                env,
                drop_capabilities,
            } => exec_init(&mut runner, command, env, drop_capabilities),
            op => runner.run(op),
        };
        match r {
            Ok(s) => report.set(plan, i, s),
            Err(f) => {
                failed = Some((i, f));
                break;
            }
        }
    }
    report.host.init = runner.init.as_ref().map(|i| i.resolved.clone());
    report.host.idmap = runner.idmap.clone();
    report.teardown_left = runner.teardown();
    if let Some((i, f)) = failed {
        report.set(
            plan,
            i,
            Status::Failed {
                error: f.message.clone(),
                fatal: true,
            },
        );
        report.outcome = Some(report::Outcome {
            exit_code: f.exit_code,
            summary: format!("failed at step {} ({})", i + 1, plan.steps[i].op.name()),
        });
    }
    report
}

/// The driver's clone, as the recording kernel answers it.
fn clone_child<K: Kernel>(
    runner: &mut Runner<'_, K>,
    report: &mut Report,
    namespaces: &[crate::plan::Namespace],
) -> Result<Status, Failure> {
    match runner.k.spawn(namespaces) {
        Ok(Spawned::Parent { pid, .. }) => {
            runner.child_pid = Some(pid);
            report.pid = Some(pid);
            Ok(Status::detail(format!("pid {pid} on the host")))
        }
        Ok(Spawned::Child) => Err(Failure::new("a recording kernel does not fork")),
        Err(e) => Err(Failure::from(e)),
    }
}

/// The driver's exec, as the recording kernel answers it.
fn exec_init<K: Kernel>(
    runner: &mut Runner<'_, K>,
    command: &[String],
    env: &[String],
    drop_capabilities: &[String],
) -> Result<Status, Failure> {
    let caps = dropped_caps(drop_capabilities)?;
    let _ = runner.k.take_handoff();
    runner.k.exec_init(command, env, &caps)?;
    Ok(Status::done())
}
