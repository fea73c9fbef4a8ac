//! The real driver: runs the host's steps here and the container's steps in
//! the cloned child (`child.rs`), passing the baton between them, then
//! supervises PID 1 (`monitor.rs`: drains the console, serves `/dev/log`,
//! forwards a stop request, waits), and tears down. `run` lists a boot's
//! phases in the order they happen.

use super::channel::{Channel, Msg};
use super::kernel::{Kernel, Spawned};
use super::linux::LinuxKernel;
use super::monitor::{self, End};
use super::report::{Outcome, Report, Status};
use super::{CgroupPart, CgroupSpec, Failure, Runner, child, clone_index};
use crate::plan::{Op, Plan, Side};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where things go while the container runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The rootfs, resolved.
    pub rootfs: PathBuf,
    /// The console log (appended), if any.
    pub console_log: Option<PathBuf>,
    /// What the guest sends to `/dev/log` (appended), if any.
    pub syslog: Option<PathBuf>,
    /// Copy the console to stdout.
    pub echo_console: bool,
    /// Attach the user's terminal (stdin and stdout are a tty, put in raw mode).
    pub terminal: bool,
}

/// What the caller hears about while the container runs.
pub trait Hooks {
    /// PID 1 runs (after every boot), in the container's cgroup `cgroups`
    /// (one directory on the host per hierarchy).
    fn started(&mut self, _pid: i32, _report: &Report, _cgroups: &[PathBuf]) {}
    /// The container stopped and will start again.
    fn rebooting(&mut self, _report: &Report) {}
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// The finished run.
pub struct Applied {
    pub report: Report,
    pub exit_code: u8,
}

fn finish(mut report: Report, code: u8, summary: String) -> Applied {
    report.outcome = Some(Outcome {
        exit_code: code,
        summary,
    });
    Applied {
        report,
        exit_code: code,
    }
}

/// Blocks the signals that mean "stop the container" and returns a signalfd for them.
fn stop_signals() -> io::Result<(OwnedFd, libc::sigset_t)> {
    crate::sys::signalfd_for(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGWINCH])
}

/// Builds and runs the container in the foreground; returns when PID 1 is
/// gone (for good: a reboot starts it again from the same plan) and the host
/// is as it was.
pub fn apply(
    plan: &Plan,
    opts: &ApplyOptions,
    control: Option<&UnixListener>,
    hooks: &mut dyn Hooks,
) -> Applied {
    let (sigfd, old_mask) = match stop_signals() {
        Ok(v) => v,
        Err(e) => return finish(Report::new(plan), 125, format!("cannot block signals: {e}")),
    };
    let _raw = if opts.terminal {
        crate::sys::RawTerminal::enter()
    } else {
        None
    };
    let mut boots: Vec<Instant> = Vec::new();
    let applied = loop {
        let (applied, reboot) = apply_once(plan, opts, &sigfd, control, hooks);
        if !reboot {
            break applied;
        }
        // A guest that reboots in a tight loop is stopped instead.
        boots.retain(|t| t.elapsed() < Duration::from_secs(10));
        boots.push(Instant::now());
        if boots.len() > 5 {
            // Not started again: PID 1's end stands as it was, a reboot
            // request (SIGHUP), hence 128+1.
            let mut a = applied;
            a.exit_code = 129;
            if let Some(o) = a.report.outcome.as_mut() {
                o.exit_code = 129;
                o.summary
                    .push_str("; rebooted more than 5 times in 10s, not starting it again");
            }
            break a;
        }
        hooks.rebooting(&applied.report);
    };
    crate::sys::restore_mask(&old_mask);
    applied
}

/// One boot: build, run, tear down. The bool says "start again".
fn apply_once(
    plan: &Plan,
    opts: &ApplyOptions,
    sigfd: &OwnedFd,
    control: Option<&UnixListener>,
    hooks: &mut dyn Hooks,
) -> (Applied, bool) {
    let mut report = Report::new(plan);
    let mut k = LinuxKernel::new();
    let Some(ci) = clone_index(plan) else {
        return (
            finish(report, 125, "the plan creates no container".into()),
            false,
        );
    };
    let mut runner = Runner::new(&mut k, &plan.name, opts.rootfs.clone());
    let mut guest_api = None;
    let result = run(
        plan,
        opts,
        &mut runner,
        ci,
        &mut report,
        sigfd,
        control,
        hooks,
        &mut guest_api,
    );
    report.mark("PID 1 gone");
    // The guest API's thread closes its listener, the last hold on the
    // container's /dev (the kernel frees that tmpfs then), on the other CPU
    // while this one removes the cgroups.
    if let Some(g) = guest_api.as_mut() {
        g.request_stop();
    }
    report.teardown_left = runner.teardown();
    drop(guest_api);
    report.mark("host torn down");
    match result {
        Ok(End::Stopped { code, summary }) => (finish(report, code, summary), false),
        Ok(End::Reboot { summary }) => (finish(report, 0, summary), true),
        Err((step, f)) => (failed(plan, report, step, f), false),
    }
}

/// A boot that failed at `step` (`None`: between the steps, in the
/// protocol with the child): the step's status and the outcome say why.
fn failed(plan: &Plan, mut report: Report, step: Option<usize>, f: Failure) -> Applied {
    if let Some(i) = step {
        report.set(
            plan,
            i,
            Status::Failed {
                error: f.message.clone(),
                fatal: true,
            },
        );
    }
    // A failure of no step (the protocol) says what it was here.
    let where_ = step.map_or(format!(": {}", f.message), |i| {
        format!(" at step {} ({})", i + 1, plan.steps[i].op.name())
    });
    finish(report, f.exit_code, format!("failed{where_}"))
}

type StepErr = (Option<usize>, Failure);

/// One boot, in the order things happen. The host's steps before the clone
/// (the cgroup only in cgroup2: the clone starts the child there); the
/// clone; then both sides at once: the child runs the container's steps
/// (`child.rs`) while the host makes the cgroup's v1 part and runs its own
/// steps after the clone, telling the child after each; the child sends its
/// results and execs init; the supervisor serves the guest API and watches
/// PID 1 until it is gone (`monitor.rs`).
#[allow(clippy::too_many_arguments)]
fn run(
    plan: &Plan,
    opts: &ApplyOptions,
    runner: &mut Runner<'_, LinuxKernel>,
    ci: usize,
    report: &mut Report,
    sigfd: &OwnedFd,
    control: Option<&UnixListener>,
    hooks: &mut dyn Hooks,
    guest_api: &mut Option<crate::devlxd::ServerHandle>,
) -> Result<End, StepErr> {
    run_host_steps_before_clone(plan, runner, ci, report)?;
    let (child, ch) = clone_child(plan, runner, ci, report)?;
    let handoff = host_side(plan, runner, &ch, ci + 1, report, &child, guest_api)
        .inspect_err(|_| child.kill_and_reap())?;
    wait_for_exec(plan, &ch, &child, report)?;
    drop(ch);
    serve_guest_api(handoff.guest_api, handoff.guest_api_error, guest_api);
    let cgroups: Vec<PathBuf> = runner
        .cgroup
        .as_ref()
        .map(|c| c.paths.iter().map(|(_, p)| p.clone()).collect())
        .unwrap_or_default();
    hooks.started(child.pid, report, &cgroups);
    let io = monitor::Io {
        console: handoff.console,
        log: handoff.log,
        sigfd,
        control,
        console_log: open_log(&opts.console_log),
        syslog: open_log(&opts.syslog),
        echo: opts.echo_console,
        terminal: opts.terminal,
    };
    Ok(monitor::run(plan, &child, io))
}

/// Runs host step `i` and records its status and time; the cgroup is made
/// only as far as `part` says.
fn run_host_step(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    report: &mut Report,
    i: usize,
    part: CgroupPart,
) -> Result<(), Failure> {
    let t = Instant::now();
    let s = match CgroupSpec::of(&plan.steps[i].op) {
        Some(spec) => runner.create_cgroup(&spec, part)?,
        None => runner.run(&plan.steps[i].op)?,
    };
    report.set(plan, i, s);
    report.set_us(i, t.elapsed().as_micros() as u32);
    Ok(())
}

/// The host's steps before the clone (`ci`). The cgroup only in cgroup2:
/// the clone starts the child there.
fn run_host_steps_before_clone(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ci: usize,
    report: &mut Report,
) -> Result<(), StepErr> {
    for i in 0..ci {
        run_host_step(plan, runner, report, i, CgroupPart::Cgroup2).map_err(|f| (Some(i), f))?;
    }
    report.host.init = runner.init.as_ref().map(|i| i.resolved.clone());
    report.host.idmap = runner.idmap.clone();
    Ok(())
}

/// Step `ci`: clones the container's first process, with a channel to it.
/// The child goes on in `child::main` and never comes back here; the host
/// gets the child and its end of the channel.
fn clone_child(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ci: usize,
    report: &mut Report,
) -> Result<(Child, Channel), StepErr> {
    let Op::CloneChild { namespaces } = &plan.steps[ci].op else {
        unreachable!("clone_index found it")
    };
    let (host_end, child_end) = Channel::pair().map_err(|e| (Some(ci), e.into()))?;
    report.mark("host steps before the clone done");
    let spawned = runner
        .k
        .spawn(namespaces)
        .map_err(|e| (Some(ci), e.into()))?;
    let (pid, pidfd) = match spawned {
        Spawned::Child => {
            drop(host_end);
            child::main(plan, runner, child_end, ci);
        }
        Spawned::Parent { pid, pidfd } => (pid, pidfd),
    };
    runner.child_pid = Some(pid);
    report.mark("container process cloned");
    drop(child_end);
    report.pid = Some(pid);
    report.set(plan, ci, Status::detail(format!("pid {pid} on the host")));
    Ok((Child { pid, pidfd }, host_end))
}

/// The host's half while the child works: starts the child on its steps
/// at once, makes the rest of the cgroup, runs the host's own steps after
/// the clone (NICs), starts the guest API's thread, and returns the
/// hand-off fds once the child is about to exec.
fn host_side(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ch: &Channel,
    start: usize,
    report: &mut Report,
    child: &Child,
    guest_api: &mut Option<crate::devlxd::ServerHandle>,
) -> Result<Handoff, StepErr> {
    ch.send(&Msg::Go { step: start }, &[])
        .map_err(|e| (None, e.into()))?;
    make_cgroup_after_clone(plan, runner, ch, report)?;
    run_host_steps_after_clone(plan, runner, ch, start, report)?;
    // The host's part is done: start the guest API's thread while the
    // child works (it waits for its listener, which comes with the exec).
    // Why it could not start is said only if the child gets that far (a
    // child that failed is the news then).
    // The container's root as the host sees it: uid 0 when privileged, the
    // map's base when not.
    let root_uid = runner.idmap.as_ref().map_or(Some(0), |m| m.root_host_uid());
    let guest_api_error = match start_guest_api(plan, child, root_uid) {
        Ok(api) => {
            *guest_api = api;
            None
        }
        Err(e) => Some(e.to_string()),
    };
    receive_exec(plan, ch, report, guest_api_error)
}

/// The rest of the cgroup, when its v1 hierarchies are still to be made:
/// the v1 part, passed to the child to join (`CgroupReady`), then the
/// devices allow-list (`CgroupDone`).
fn make_cgroup_after_clone(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ch: &Channel,
    report: &mut Report,
) -> Result<(), StepErr> {
    if !runner.cgroup.as_ref().is_some_and(|c| c.pending_v1) {
        return Ok(());
    }
    let i = plan
        .steps
        .iter()
        .position(|s| CgroupSpec::of(&s.op).is_some())
        .expect("a pending cgroup comes from a CreateCgroup step");
    let spec = CgroupSpec::of(&plan.steps[i].op).expect("found above");
    for part in [CgroupPart::V1, CgroupPart::Devices] {
        let t = Instant::now();
        match runner.create_cgroup(&spec, part) {
            Ok(s) => {
                report.set(plan, i, s);
                report.add_us(i, t.elapsed().as_micros() as u32);
            }
            Err(f) => return Err(abort(plan, report, ch, i, f)),
        }
        let sent = if part == CgroupPart::V1 {
            let tasks = runner.k.take_cgroup_join();
            let paths = tasks.iter().map(|(p, _)| p.display().to_string()).collect();
            let fds: Vec<RawFd> = tasks.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
            ch.send(&Msg::CgroupReady { tasks: paths }, &fds)
        } else {
            ch.send(&Msg::CgroupDone, &[])
        };
        if let Err(f) = told(sent) {
            return Err(abort(plan, report, ch, i, f));
        }
    }
    Ok(())
}

/// The host's steps after the clone (cgroup attach, NICs), while the child
/// works, telling it after each one (`HostDone`); a container step that
/// needs them waits for that word.
fn run_host_steps_after_clone(
    plan: &Plan,
    runner: &mut Runner<'_, LinuxKernel>,
    ch: &Channel,
    start: usize,
    report: &mut Report,
) -> Result<(), StepErr> {
    for j in start..plan.steps.len() {
        if plan.steps[j].side != Side::Host {
            continue;
        }
        if let Err(f) = run_host_step(plan, runner, report, j, CgroupPart::All) {
            return Err(abort(plan, report, ch, j, f));
        }
        // The idmapped mounts the step made go to the child with the word.
        let trees = runner.k.take_idmapped();
        let fds: Vec<RawFd> = trees.iter().map(|(_, t)| t.as_raw_fd()).collect();
        let names = trees.iter().map(|(n, _)| n.clone()).collect();
        if let Err(f) = told(ch.send(
            &Msg::HostDone {
                step: j,
                trees: names,
            },
            &fds,
        )) {
            return Err(abort(plan, report, ch, j, f));
        }
    }
    Ok(())
}

/// The child's `Exec`: its results go in the report, its fds are the
/// hand-off. A child that failed instead says which step.
fn receive_exec(
    plan: &Plan,
    ch: &Channel,
    report: &mut Report,
    guest_api_error: Option<String>,
) -> Result<Handoff, StepErr> {
    match recv_recording(ch, plan, report, None) {
        Ok(Some((
            Msg::Exec {
                results,
                console,
                log,
                guest_api,
            },
            fds,
        ))) => {
            record(plan, report, results);
            report.mark("container side set up; exec");
            let mut fds = fds.into_iter();
            Ok(Handoff {
                console: if console { fds.next() } else { None },
                log: if log { fds.next() } else { None },
                guest_api: if guest_api { fds.next() } else { None },
                guest_api_error,
            })
        }
        Ok(Some((msg @ Msg::Failed { .. }, _))) => Err(child_failed(plan, report, msg)),
        Ok(Some((other, _))) => Err((
            None,
            Failure::new(format!("unexpected message from the container: {other:?}")),
        )),
        Ok(None) => Err((
            None,
            Failure::new("the container's process died while being set up"),
        )),
        Err(e) => Err((
            None,
            Failure::new(format!("talking to the container's process: {e}")),
        )),
    }
}

/// Waits for the exec, the last step: it closes the child's end of the
/// channel, so end of file means it worked.
fn wait_for_exec(
    plan: &Plan,
    ch: &Channel,
    child: &Child,
    report: &mut Report,
) -> Result<(), StepErr> {
    let last = plan.steps.len() - 1;
    match ch.recv() {
        Ok(None) => report.mark("PID 1 exec'd"),
        Ok(Some((Msg::ExecFailed { error, exit_code }, _))) => {
            child.reap();
            return Err((
                Some(last),
                Failure {
                    message: error,
                    exit_code,
                },
            ));
        }
        Ok(Some(_)) | Err(_) => {
            child.kill_and_reap();
            return Err((
                None,
                Failure::new("the container's process broke the protocol"),
            ));
        }
    }
    report.set(
        plan,
        last,
        Status::detail(format!("PID 1 is {}", plan.steps[last].op_command())),
    );
    Ok(())
}

/// Hands the guest API's thread (started while the child was being set
/// up) its listener: it serves from now on.
fn serve_guest_api(
    listener: Option<OwnedFd>,
    start_error: Option<String>,
    guest_api: &mut Option<crate::devlxd::ServerHandle>,
) {
    let Some(listener) = listener else { return };
    let served = match guest_api.as_mut() {
        Some(g) => g.serve(listener).map_err(|e| e.to_string()),
        None => Err(start_error.unwrap_or_default()),
    };
    if let Err(e) = served {
        eprintln!("envc: the guest API could not start: {e}");
    }
}

/// Host step `j` failed: asks the child to stop and say what it did, so the
/// report is whole; it may also have failed first (which explains ours).
fn abort(plan: &Plan, report: &mut Report, ch: &Channel, j: usize, f: Failure) -> StepErr {
    let _ = ch.send(&Msg::Abort, &[]);
    match recv_recording(ch, plan, report, Some(Duration::from_secs(5))) {
        Ok(Some((msg @ Msg::Failed { .. }, _))) => return child_failed(plan, report, msg),
        Ok(Some((Msg::Aborted { results } | Msg::Exec { results, .. }, _))) => {
            record(plan, report, results);
        }
        _ => {}
    }
    (Some(j), f)
}

/// The child's `Failed`: what it did goes in the report; its step failed.
fn child_failed(plan: &Plan, report: &mut Report, msg: Msg) -> StepErr {
    match msg {
        Msg::Failed {
            results,
            step,
            error,
        } => {
            record(plan, report, results);
            (Some(step), Failure::new(error))
        }
        other => (
            None,
            Failure::new(format!("unexpected message from the container: {other:?}")),
        ),
    }
}

/// What a word to the child came to. A child that already failed has closed
/// its end (its message follows, and is read next): that is no failure of
/// ours. Any other error would leave it waiting for a word that never comes.
fn told(sent: io::Result<()>) -> Result<(), Failure> {
    match sent {
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => Err(
            Failure::new(format!("telling the container's process: {e}")),
        ),
        _ => Ok(()),
    }
}

/// The child's next message but `Results`, whose results go in the report.
fn recv_recording(
    ch: &Channel,
    plan: &Plan,
    report: &mut Report,
    timeout: Option<Duration>,
) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
    loop {
        let got = match timeout {
            Some(t) => ch.recv_timeout(t)?,
            None => ch.recv()?,
        };
        match got {
            Some((Msg::Results { results }, _)) => record(plan, report, results),
            other => return Ok(other),
        }
    }
}

fn record(plan: &Plan, report: &mut Report, results: Vec<(usize, Status, u32)>) {
    for (i, s, us) in results {
        report.set(plan, i, s);
        report.set_us(i, us);
    }
}

/// Starts the guest API's thread, waiting for its listener, when the plan
/// makes the guest API's socket (`None` when it does not).
fn start_guest_api(
    plan: &Plan,
    child: &Child,
    root_uid: Option<u32>,
) -> io::Result<Option<crate::devlxd::ServerHandle>> {
    if !plan
        .steps
        .iter()
        .any(|s| matches!(s.op, Op::MakeGuestApiSocket { .. }))
    {
        return Ok(None);
    }
    let pid = child.pid;
    // The host's name: this process is in the host's UTS namespace.
    let host_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root_uid =
        root_uid.ok_or_else(|| io::Error::other("the id map gives the container no root"))?;
    let authorized = match child.pidfd.as_ref() {
        Some(pidfd) => crate::devlxd::Authorizer::for_child(pidfd.as_fd(), pid as u32, root_uid)?,
        None => crate::devlxd::Authorizer::for_pid(pid as u32, root_uid)?,
    };
    let api = crate::devlxd::GuestApi {
        name: plan.name.clone(),
        host_name,
        config: plan.guest.config.clone(),
        devices: plan.guest.devices.clone(),
        authorized,
    };
    crate::devlxd::spawn_waiting(api, crate::devlxd::Limits::default()).map(Some)
}

/// What the child hands the supervisor with its `Exec`.
struct Handoff {
    console: Option<OwnedFd>,
    log: Option<OwnedFd>,
    guest_api: Option<OwnedFd>,
    /// Why the guest API's thread could not start, if it could not.
    guest_api_error: Option<String>,
}

struct Child {
    pid: i32,
    pidfd: Option<OwnedFd>,
}

impl monitor::Pid1 for Child {
    fn signal(&self, sig: i32) {
        Child::signal(self, sig)
    }
    fn try_reap(&self) -> Option<i32> {
        Child::try_reap(self)
    }
    fn reap(&self) -> i32 {
        Child::reap(self)
    }
    fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(|f| f.as_raw_fd())
    }
    fn blocks(&self, sig: i32) -> bool {
        Child::blocks(self, sig)
    }
}

impl Child {
    fn signal(&self, sig: i32) {
        use std::os::fd::AsFd;
        crate::sys::signal_child(self.pid, self.pidfd.as_ref().map(|f| f.as_fd()), sig);
    }

    /// Waits for the child; returns its wait status.
    fn reap(&self) -> i32 {
        crate::sys::wait(self.pid).map_or(0, |s| s.0)
    }

    fn kill_and_reap(&self) {
        self.signal(libc::SIGKILL);
        self.reap();
    }

    /// The wait status if the child has exited.
    fn try_reap(&self) -> Option<i32> {
        crate::sys::try_wait(self.pid).map(|s| s.0)
    }

    /// Whether PID 1 blocks a signal (from `SigBlk` in its status).
    fn blocks(&self, sig: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigBlk:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
    }
}

fn open_log(path: &Option<PathBuf>) -> Option<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    crate::state::open_making_dir(path.as_ref()?, &opts).ok()
}

impl crate::plan::Step {
    /// The init command line, for reports.
    pub fn op_command(&self) -> String {
        match &self.op {
            Op::ExecInit { command, .. } => command.join(" "),
            _ => String::new(),
        }
    }
}
