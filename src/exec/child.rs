//! The container's first process, between the clone and the exec: runs the
//! container's steps in plan order, waits for the host's word where a step
//! needs what the host does after the clone, sends its results back, and
//! becomes init. It never returns: it execs, or exits.

use super::channel::{Channel, Msg};
use super::kernel::Kernel;
use super::linux::LinuxKernel;
use super::report::Status;
use super::{Runner, dropped_caps};
use crate::plan::{Op, Plan, Side};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

/// Results sent in one message at most (a step's result is tens of bytes;
/// the channel takes messages of 256 KiB at most).
const RESULTS_PER_MESSAGE: usize = 128;

/// What the child waits for from the host.
struct Owed {
    /// The last host step after the clone known done.
    host_done: usize,
    /// The cgroup's v1 `tasks` files.
    cgroup: bool,
    /// The cgroup's devices allow-list.
    devices: bool,
}

/// The child's side of the channel, and what it has to report.
struct ChildSide<'r, 'k> {
    runner: &'r mut Runner<'k, LinuxKernel>,
    ch: Channel,
    /// Results not sent yet: step, status, microseconds.
    results: Vec<(usize, Status, u32)>,
    owed: Owed,
}

/// Leaves the child without running the parent's destructors.
fn exit(code: i32) -> ! {
    crate::sys::exit_now(code)
}

/// Runs the container's steps from the host's `Go`, then execs init.
/// `ci` is the clone step.
pub(crate) fn main(plan: &Plan, runner: &mut Runner<'_, LinuxKernel>, ch: Channel, ci: usize) -> ! {
    let mut j = match ch.recv() {
        Ok(Some((Msg::Go { step }, _))) => step,
        _ => exit(1),
    };
    // What the host still owes the child: the cgroup's v1 files (before it
    // joins them), then its devices allow-list (before the exec); the v1
    // hierarchies are made by the host after the clone.
    let cgroup_pending = runner.cgroup.as_ref().is_some_and(|c| c.pending_v1);
    let mut child = ChildSide {
        runner,
        ch,
        results: Vec::new(),
        owed: Owed {
            host_done: ci,
            cgroup: cgroup_pending,
            devices: cgroup_pending,
        },
    };
    // The last host step after the clone before the current step.
    let mut last_host = ci;
    loop {
        let Some(step) = plan.steps.get(j) else {
            exit(1)
        };
        if step.side == Side::Host {
            last_host = j;
            j += 1;
            continue;
        }
        child.wait_for_host(j, &step.op, last_host);
        if let Op::ExecInit {
            command,
            env,
            drop_capabilities,
        } = &step.op
        {
            child.exec_init(j, command, env, drop_capabilities);
        }
        child.run_step(j, &step.op);
        j += 1;
    }
}

impl ChildSide<'_, '_> {
    /// Reads the host's words until step `j` (`op`) has what it needs: the
    /// host steps before it done, the cgroup's v1 files before
    /// `AttachCgroup`, the devices allow-list before `ExecInit`.
    fn wait_for_host(&mut self, j: usize, op: &Op, last_host: usize) {
        while self.owed.host_done < last_host
            || (self.owed.cgroup && matches!(op, Op::AttachCgroup))
            || (self.owed.devices && matches!(op, Op::ExecInit { .. }))
        {
            match self.ch.recv() {
                Ok(Some((Msg::HostDone { step, trees }, fds))) => {
                    if trees.len() != fds.len() {
                        let error = format!(
                            "the host passed {} of {} idmapped mounts",
                            fds.len(),
                            trees.len()
                        );
                        self.fail(j, error);
                    }
                    self.runner
                        .k
                        .adopt_idmapped(trees.into_iter().zip(fds).collect());
                    self.owed.host_done = step;
                }
                Ok(Some((Msg::CgroupReady { tasks }, fds))) if tasks.len() != fds.len() => {
                    let error = format!(
                        "the host passed {} of the cgroup's {} tasks files",
                        fds.len(),
                        tasks.len()
                    );
                    self.fail(j, error);
                }
                Ok(Some((Msg::CgroupReady { tasks }, fds))) => {
                    let tasks = tasks.into_iter().map(PathBuf::from).zip(fds).collect();
                    self.runner.k.adopt_cgroup_join(tasks);
                    self.runner.cgroup_v1_made();
                    self.owed.cgroup = false;
                }
                Ok(Some((Msg::CgroupDone, _))) => self.owed.devices = false,
                Ok(Some((Msg::Abort, _))) => {
                    let results = std::mem::take(&mut self.results);
                    let _ = self.ch.send(&Msg::Aborted { results }, &[]);
                    exit(1);
                }
                _ => exit(1),
            }
        }
    }

    /// Runs container step `j` and keeps its result; a big profile's
    /// results are sent ahead in parts, since one message holds only so
    /// many.
    fn run_step(&mut self, j: usize, op: &Op) {
        let t = Instant::now();
        match self.runner.run(op) {
            Ok(s) => {
                self.results.push((j, s, t.elapsed().as_micros() as u32));
                if self.results.len() >= RESULTS_PER_MESSAGE {
                    let part = std::mem::take(&mut self.results);
                    if self.ch.send(&Msg::Results { results: part }, &[]).is_err() {
                        exit(1);
                    }
                }
            }
            Err(f) => self.fail(j, f.message),
        }
        // New ids cleared the parent-death signal; it is set again, but a
        // supervisor that died before that would leave this process alone.
        if matches!(op, Op::BecomeRoot) && self.ch.peer_gone() {
            exit(1);
        }
    }

    /// Tells the host step `j` failed (with every result not sent yet), and exits.
    fn fail(&mut self, j: usize, error: String) -> ! {
        let results = std::mem::take(&mut self.results);
        let _ = self.ch.send(
            &Msg::Failed {
                results,
                step: j,
                error,
            },
            &[],
        );
        exit(1);
    }

    /// Step `j`, `ExecInit`: sends the results and the hand-off fds (the
    /// console, `/dev/log`, the guest API's socket) with `Exec`, then
    /// execs. The exec closes the child's end of the channel, which tells
    /// the host it worked; a failed exec is sent as `ExecFailed`, with the
    /// shell's exit status for it.
    fn exec_init(
        &mut self,
        j: usize,
        command: &[String],
        env: &[String],
        drop_capabilities: &[String],
    ) -> ! {
        let caps = match dropped_caps(drop_capabilities) {
            Ok(c) => c,
            Err(f) => self.fail(j, f.message),
        };
        let h = self.runner.k.take_handoff();
        let mut fds: Vec<RawFd> = Vec::new();
        for fd in [&h.console, &h.log, &h.guest_api].into_iter().flatten() {
            fds.push(fd.as_raw_fd());
        }
        let msg = Msg::Exec {
            results: std::mem::take(&mut self.results),
            console: h.console.is_some(),
            log: h.log.is_some(),
            guest_api: h.guest_api.is_some(),
        };
        if self.ch.send(&msg, &fds).is_err() {
            exit(1);
        }
        drop(h);
        let e = match self.runner.k.exec_init(command, env, &caps) {
            Err(e) => e,
            Ok(()) => exit(0),
        };
        let code = match super::linux::errno(&e) {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
            Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EPERM) => 126,
            _ => 125,
        };
        let _ = self.ch.send(
            &Msg::ExecFailed {
                error: e.to_string(),
                exit_code: code as u8,
            },
            &[],
        );
        exit(code);
    }
}
