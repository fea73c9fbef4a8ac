//! Plan -> kernel calls, with the recording double (no root, touches nothing).
//!
//! For every example profile: the ordered calls of a whole run (a golden snapshot), the
//! report's status of every step, the host facts the fake host supplied; then, for EVERY
//! call index n of that run, the same run with a failure injected at call n: exactly one
//! step fails (or recovers, where the contract says a failure is not fatal), the steps
//! before it are as in the clean run, the ones after it did not run, the outcome is
//! exit 125, and no kernel call follows the failing one except the host-side teardown,
//! which removes what was made, newest first.
//!
//! The runs go through `envc::exec::simulate`: the real driver's sequence
//! (`supervise::apply_once`) without the process split: `Runner::run` for every step,
//! the clone's pid handed to the runner, `Runner::teardown` at the end and after a
//! failure.

use envc::exec::kernel::Kernel;
use envc::exec::recording::{FakeHost, RecordingKernel};
use envc::exec::report::{Report, Status};
use envc::plan::{BindWhen, Op, Plan};
use std::path::{Path, PathBuf};

/// The driver's replay of a plan through one kernel, in one process.
fn replay<K: Kernel>(plan: &Plan, k: &mut K) -> Report {
    envc::exec::simulate(plan, k)
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 3,
        "expected the example profiles in {}",
        dir.display()
    );
    v
}

fn compile(path: &Path) -> Plan {
    let (profile, _) = envc::profile::load(path).unwrap_or_else(|problems| {
        panic!(
            "{} does not load: {}",
            path.display(),
            envc::diag::render(&problems, envc::diag::Style::plain())
        )
    });
    let plan = envc::compile::compile(&profile);
    plan.check()
        .unwrap_or_else(|e| panic!("{}: inconsistent plan: {e}", path.display()));
    plan
}

/// The fake host: the recording kernel's default (some conditional paths mounted, one
/// present but not mounted, /dev/fuse but no /dev/net/tun), plus every source a
/// profile's required disk binds need, so that a clean run gets to the exec.
fn host_for(plan: &Plan) -> FakeHost {
    let mut host = FakeHost::default();
    for s in &plan.steps {
        if let Op::BindMount {
            source,
            when: BindWhen::Always,
            ..
        } = &s.op
        {
            host.present.push(source.as_str().to_string());
        }
    }
    host
}

fn run(plan: &Plan, fail_at: Option<usize>) -> (Report, Vec<String>) {
    let mut k = match fail_at {
        Some(n) => RecordingKernel::failing_at(n),
        None => RecordingKernel::new(),
    };
    k.host = host_for(plan);
    let report = replay(plan, &mut k);
    (report, k.calls)
}

/// For each step, the number of calls made once it has run (the calls of step i are
/// `ends[i-1]..ends[i]`), from runs of the plan cut after each step (without the
/// teardown that ends each of those runs).
fn call_ends(plan: &Plan) -> Vec<usize> {
    (0..plan.steps.len())
        .map(|i| {
            let mut cut = plan.clone();
            cut.steps.truncate(i + 1);
            let calls = run(&cut, None).1;
            let teardown = calls.iter().rev().take_while(|c| is_teardown(c)).count();
            calls.len() - teardown
        })
        .collect()
}

fn status_line(r: &envc::exec::report::StepReport) -> String {
    let what = match &r.status {
        Status::Done { detail: Some(d) } => format!(" ({d})"),
        Status::Skipped { reason } => format!(" ({reason})"),
        Status::Failed { error, fatal } => format!(" (fatal={fatal}: {error})"),
        Status::NotYet { what } => format!(" ({what})"),
        _ => String::new(),
    };
    format!("{:>2} {:<22} {}{what}", r.step, r.op, r.status.word())
}

fn name_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The host-side teardown expected after call `n`: every directory made before it,
/// removed newest first.
/// Calls the teardown makes: cgroups (the container's own walked for a
/// guest's sub-cgroups), NICs.
fn is_teardown(call: &str) -> bool {
    ["remove_host_dir ", "host_subdirs ", "remove_nic "]
        .iter()
        .any(|p| call.starts_with(p))
}

/// The directory removals among `calls`.
fn removals(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.starts_with("remove_host_dir "))
        .cloned()
        .collect()
}

fn teardown_after(calls: &[String], n: usize) -> Vec<String> {
    calls[..n]
        .iter()
        .rev()
        .filter_map(|c| c.strip_prefix("make_host_dir "))
        .map(|d| format!("remove_host_dir {d}"))
        .collect()
}

#[test]
fn clean_runs_call_the_kernel_in_plan_order() {
    for path in examples() {
        let name = name_of(&path);
        let plan = compile(&path);
        let (report, calls) = run(&plan, None);
        insta::assert_snapshot!(format!("{name}_calls"), calls.join("\n"));
        let statuses: Vec<String> = report.steps.iter().map(status_line).collect();
        insta::assert_snapshot!(format!("{name}_statuses"), statuses.join("\n"));

        // A clean run: nothing failed, nothing left out, nothing left behind.
        assert!(report.failure().is_none(), "{name}: {}", report.summary());
        assert!(report.outcome.is_none(), "{name}: {:?}", report.outcome);
        assert!(
            report.teardown_left.is_empty(),
            "{name}: {:?}",
            report.teardown_left
        );
        for s in &report.steps {
            assert!(
                !matches!(s.status, Status::NotRun | Status::Failed { .. }),
                "{name}: step {} {} is {}",
                s.step,
                s.op,
                s.status.word()
            );
        }
        assert!(calls[0].starts_with("open_rootfs "), "{name}: {}", calls[0]);
        // The exec once, last but for the teardown (after PID 1 exits).
        let execs: Vec<usize> = (0..calls.len())
            .filter(|&i| calls[i].starts_with("exec_init "))
            .collect();
        assert_eq!(execs.len(), 1, "{name}: exec_init not once");
        let exec = execs[0];
        assert!(
            calls[exec + 1..].iter().all(|c| is_teardown(c)),
            "{name}: after the exec: {:?}",
            &calls[exec + 1..]
        );
        assert_eq!(
            removals(&calls[exec + 1..]),
            teardown_after(&calls, exec),
            "{name}: after the exec"
        );
        let at = |what: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(what))
                .unwrap_or_else(|| panic!("{name}: no {what} call"))
        };
        let (spawn, slave, bind_rootfs, pivot) = (
            at("spawn "),
            at("make_mounts_slave"),
            // An unprivileged container attaches the host's idmapped rootfs.
            if calls.iter().any(|c| c == "attach_idmapped_rootfs") {
                at("attach_idmapped_rootfs")
            } else {
                at("bind_rootfs")
            },
            at("pivot_root"),
        );
        assert!(
            spawn < slave && slave < bind_rootfs && bind_rootfs < pivot && pivot < exec,
            "{name}: clone, slave, rootfs bind, pivot, exec out of order"
        );
        // The rootfs checks come before anything else; everything that mounts or makes
        // a node happens after the clone (in the container's namespaces) and before the
        // pivot.
        for (i, c) in calls.iter().enumerate() {
            let checks = c.starts_with("inspect_");
            assert!(!checks || i < spawn, "{name}: {c} after the clone");
            let inside = [
                "mount_fs",
                "bind_",
                "mknod",
                "symlink",
                "make_console",
                "make_socket",
                "set_readonly",
                "make_placeholder",
                "make_dir_all",
                "chown ",
                "unlink",
            ]
            .iter()
            .any(|p| c.starts_with(p));
            assert!(
                !inside || (spawn < i && i < pivot),
                "{name}: {c} outside the container's setup"
            );
        }
    }
}

/// The host facts come from the fake host: conditional paths mounted / present, not
/// mounted / absent, host devices found or not.
#[test]
fn clean_run_reports_what_the_host_had() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let plan = compile(&path);
    let (report, _) = run(&plan, None);
    let fact = |list: &[envc::exec::report::PathFact], p: &str| -> String {
        list.iter()
            .find(|f| f.path == p)
            .unwrap_or_else(|| panic!("no fact for {p}: {list:?}"))
            .state
            .clone()
    };
    let paths = &report.host.conditional_paths;
    assert_eq!(fact(paths, "/sys/kernel/security"), "mounted");
    assert_eq!(fact(paths, "/sys/fs/pstore"), "mounted");
    assert_eq!(fact(paths, "/sys/kernel/debug"), "present, not mounted");
    for p in [
        "/proc/sys/fs/binfmt_misc",
        "/sys/firmware/efi/efivars",
        "/sys/fs/fuse/connections",
        "/sys/kernel/config",
        "/sys/kernel/tracing",
    ] {
        assert_eq!(fact(paths, p), "absent", "{p}");
    }
    assert_eq!(paths.len(), 8, "{paths:?}");
    let devices = &report.host.host_devices;
    assert_eq!(fact(devices, "/dev/fuse"), "found, bound");
    assert_eq!(fact(devices, "/dev/net/tun"), "not found on the host");
    assert_eq!(
        report.host.dev_log.as_deref(),
        Some("a socket served by envc")
    );
    assert_eq!(report.host.init.as_deref(), Some("/bin/sh"));
    // The steps that bound them are done; the others skipped, with the reason.
    for (s, st) in plan.steps.iter().zip(&report.steps) {
        if let Op::BindMount {
            source,
            when: BindWhen::IfMounted,
            ..
        } = &s.op
        {
            let want = fact(paths, source.as_str());
            match &st.status {
                Status::Done { .. } => assert_eq!(want, "mounted", "{source}"),
                Status::Skipped { reason } => assert_eq!(reason, &want, "{source}"),
                other => panic!("{source}: {other:?}"),
            }
        }
    }
}

/// Whether an injected failure at `call`, made by step `op`, is one the contract says
/// does not stop the container.
fn recovers(op: &Op, call: &str) -> bool {
    match op {
        // /dev/ptmx: a refused bind falls back to a symlink to pts/ptmx.
        Op::BindPtmx { .. } => call.starts_with("bind_inside "),
        // A conditional host path: "one failure never stops the container" (spec §4).
        Op::BindMount {
            when: BindWhen::IfMounted,
            ..
        } => true,
        _ => false,
    }
}

#[test]
fn a_failure_at_every_call_fails_exactly_its_step() {
    for path in examples() {
        let name = name_of(&path);
        let plan = compile(&path);
        let (clean, clean_calls) = run(&plan, None);
        let ends = call_ends(&plan);
        let exec = clean_calls
            .iter()
            .position(|c| c.starts_with("exec_init "))
            .unwrap();
        assert_eq!(ends.last(), Some(&(exec + 1)), "{name}: cut runs disagree");
        for n in 0..clean_calls.len() {
            let at = format!("{name}: failure injected at call {n} ({})", clean_calls[n]);
            let (report, calls) = run(&plan, Some(n));
            assert_eq!(
                calls[..=n],
                clean_calls[..=n],
                "{at}: the calls before it differ"
            );
            if n > exec {
                // In the teardown: every step as in the clean run, the failed removal
                // reported, the others still done.
                for (a, b) in report.steps.iter().zip(&clean.steps) {
                    assert_eq!(a.status, b.status, "{at}: step {}", a.step);
                }
                // Listing a cgroup's sub-cgroups is only a look: the removal
                // still runs and says whether anything was left.
                let expected = usize::from(!clean_calls[n].starts_with("host_subdirs "));
                assert_eq!(
                    report.teardown_left.len(),
                    expected,
                    "{at}: {:?}",
                    report.teardown_left
                );
                if let Some(what) = clean_calls[n]
                    .strip_prefix("remove_host_dir ")
                    .or_else(|| clean_calls[n].split_whitespace().last())
                    .filter(|_| expected == 1)
                {
                    assert!(
                        report.teardown_left[0].contains(what),
                        "{at}: {:?}",
                        report.teardown_left
                    );
                }
                assert_eq!(calls.len(), clean_calls.len(), "{at}: the teardown stopped");
                continue;
            }
            let i = ends.iter().position(|&e| e > n).unwrap();
            let failed: Vec<usize> = (0..report.steps.len())
                .filter(|&j| matches!(report.steps[j].status, Status::Failed { .. }))
                .collect();
            assert!(
                report.teardown_left.is_empty(),
                "{at}: {:?}",
                report.teardown_left
            );
            match &report.steps[i].status {
                Status::Failed { fatal: true, error } => {
                    assert!(
                        !recovers(&plan.steps[i].op, &clean_calls[n]),
                        "{at}: step {} {} should have recovered",
                        i + 1,
                        report.steps[i].op
                    );
                    assert!(
                        error.contains(&format!("injected failure at call {n}")),
                        "{at}: {error}"
                    );
                    assert_eq!(failed, vec![i], "{at}: not exactly one step failed");
                    for j in 0..i {
                        assert_eq!(
                            report.steps[j].status,
                            clean.steps[j].status,
                            "{at}: step {}",
                            j + 1
                        );
                    }
                    for j in i + 1..report.steps.len() {
                        assert_eq!(
                            report.steps[j].status,
                            Status::NotRun,
                            "{at}: step {} ran",
                            j + 1
                        );
                    }
                    let o = report
                        .outcome
                        .as_ref()
                        .unwrap_or_else(|| panic!("{at}: no outcome"));
                    assert_eq!(o.exit_code, 125, "{at}: {o:?}");
                    assert!(
                        o.summary.contains(&format!("step {}", i + 1)),
                        "{at}: {o:?}"
                    );
                    assert!(
                        report.summary().contains("FAILED"),
                        "{at}: {}",
                        report.summary()
                    );
                    // Nothing touches the kernel after a fatal failure but the host-side
                    // teardown of what was made before it, newest first.
                    assert!(
                        calls[n + 1..].iter().all(|c| is_teardown(c)),
                        "{at}: after the failure: {:?}",
                        &calls[n + 1..]
                    );
                    assert_eq!(
                        removals(&calls[n + 1..]),
                        teardown_after(&calls, n),
                        "{at}: after the failure"
                    );
                }
                other => {
                    // Recovered: the run went on to the exec; only this step differs.
                    assert!(
                        recovers(&plan.steps[i].op, &clean_calls[n]),
                        "{at}: step {} {} is {other:?}",
                        i + 1,
                        report.steps[i].op
                    );
                    assert!(report.outcome.is_none(), "{at}: {:?}", report.outcome);
                    assert!(
                        calls.iter().any(|c| c.starts_with("exec_init ")),
                        "{at}: no exec"
                    );
                    for j in (0..report.steps.len()).filter(|&j| j != i) {
                        assert_eq!(
                            report.steps[j].status,
                            clean.steps[j].status,
                            "{at}: step {}",
                            j + 1
                        );
                    }
                    match other {
                        Status::Failed { fatal: false, .. } => {
                            let Op::BindMount { source, .. } = &plan.steps[i].op else {
                                panic!("{at}: non-fatal failure of {other:?}")
                            };
                            let f = report
                                .host
                                .conditional_paths
                                .iter()
                                .find(|f| f.path == source.as_str())
                                .unwrap();
                            assert!(f.state.starts_with("error: "), "{at}: {f:?}");
                            assert_eq!(failed, vec![i], "{at}");
                        }
                        Status::Done { detail: Some(d) } => {
                            assert!(d.contains("symlink to pts/ptmx"), "{at}: {d}");
                            assert!(failed.is_empty(), "{at}");
                        }
                        _ => panic!("{at}: step {} is {other:?}", i + 1),
                    }
                }
            }
        }
    }
}

/// Probing a conditional host path (`host_path_state`) that fails with an error other
/// than "absent" does not stop the container (spec §4: one failure never stops it);
/// it becomes that path's `error: ...` fact.
#[test]
fn a_failure_probing_a_conditional_path_is_not_fatal() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let plan = compile(&path);
    let (_, clean_calls) = run(&plan, None);
    let ends = call_ends(&plan);
    for (n, c) in clean_calls.iter().enumerate() {
        let Some(i) = ends.iter().position(|&e| e > n) else {
            continue; // the teardown
        };
        let conditional = matches!(
            plan.steps[i].op,
            Op::BindMount {
                when: BindWhen::IfMounted,
                ..
            }
        );
        if conditional && c.starts_with("host_path_state ") {
            let (report, _) = run(&plan, Some(n));
            assert!(
                report.failure().is_none(),
                "failure at {c}: {}",
                report.summary()
            );
        }
    }
}
