//! The cgroup writer (spec §3, §8; issue 4), with the recording double: no root, touches
//! nothing. These machines are hybrid hosts, so the pure-cgroup2 writer is proven only
//! here; the hybrid one is proven here for its order (and for real in tests/hostdeps.rs).
//!
//! The recording kernel answers `0-1` for every `cpuset.cpus` it is asked about, so a v1
//! cpuset copy would be invisible. [`Cgroupfs`] wraps it (every call is still recorded by
//! the recording kernel, and a failure can still be injected at any call) and models
//! what matters of cgroupfs: a directory envc made has EMPTY `cpuset.cpus`/`cpuset.mems`
//! until written (a fresh v1 cpuset refuses tasks then), and a file reads back what was
//! written to it.

mod common;

use envc::exec::kernel::*;
use envc::exec::recording::{FakeHost, HYBRID_MOUNTINFO, RecordingKernel, UNIFIED_MOUNTINFO};
use envc::exec::report::{Report, Status};
use envc::paths::{ContainerPath, HostPath};
use envc::plan::{Namespace, Plan};
use envc::profile::model::NodeKind;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

const NAME: &str = "hd-rec";
const ALL_LIMITS: &str = r#"
[config]
"limits.memory" = "256MiB"
"limits.cpu" = "1"
"limits.cpu.allowance" = "25ms/100ms"
"limits.processes" = "10"
"#;
/// LXD's allow-list (spec §8), as the built-in base profile writes it.
const LXD_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:229 rwm",
    "c 10:200 rwm",
];
/// The hierarchies of `HYBRID_MOUNTINFO`, by directory under /sys/fs/cgroup.
const HYBRID_DIRS: &[&str] = &[
    "cpu", "cpuset", "memory", "devices", "pids", "systemd", "unified",
];

// ------------------------------------------------------------------ plans

fn plan_of(body: &str) -> Plan {
    let dir = common::TempDir::new("hd-cgroup-recording");
    let path = dir.path().join(format!("{NAME}.toml"));
    // Privileged unless the body says otherwise (device rules are theirs).
    std::fs::write(
        dir.path().join("privileged.toml"),
        "[config]\n\"security.privileged\" = true\n",
    )
    .unwrap();
    std::fs::write(
        &path,
        format!(
            "name = \"{NAME}\"\nrootfs = \"rootfs\"\nprofiles = [\"privileged.toml\"]\n{body}\n"
        ),
    )
    .unwrap();
    let (profile, _) = envc::profile::load(&path).unwrap_or_else(|problems| {
        panic!(
            "profile does not load:\n{body}\n{}",
            envc::diag::render(&problems, envc::diag::Style::plain())
        )
    });
    let plan = envc::compile::compile(&profile);
    plan.check()
        .unwrap_or_else(|e| panic!("inconsistent plan: {e}"));
    plan
}

fn host(mountinfo: &str) -> FakeHost {
    FakeHost {
        mountinfo: mountinfo.to_string(),
        ..FakeHost::default()
    }
}

/// Runs `plan` through `simulate` on the fake host (failing at call `fail_at`); the
/// report and every recorded call.
fn run(plan: &Plan, host: FakeHost, fail_at: Option<usize>) -> (Report, Vec<String>) {
    let mut k = Cgroupfs::new(host, fail_at);
    let report = envc::exec::simulate(plan, &mut k);
    (report, k.inner.calls)
}

// ------------------------------------------------------------------ reading the calls

/// Index of the first call equal to `call`; panics with all calls if there is none.
fn pos(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in:\n{}", calls.join("\n")))
}

fn write(path: &str, value: &str) -> String {
    format!("write_host_file {path} {value}")
}

fn matching(calls: &[String], pred: impl Fn(&str) -> bool) -> Vec<&str> {
    calls
        .iter()
        .map(String::as_str)
        .filter(|c| pred(c))
        .collect()
}

fn step_status<'a>(report: &'a Report, op: &str) -> &'a Status {
    &report
        .steps
        .iter()
        .find(|s| s.op == op)
        .unwrap_or_else(|| panic!("no {op} step"))
        .status
}

/// A successful run: no outcome (the recording kernel's exec "returns"), nothing left,
/// no step failed.
fn assert_clean(report: &Report) {
    assert!(report.outcome.is_none(), "{}", report.summary());
    assert!(report.teardown_left.is_empty(), "{}", report.summary());
    assert!(report.failure().is_none(), "{}", report.summary());
}

/// The calls after the exec: only the teardown.
fn teardown_calls(calls: &[String]) -> Vec<&str> {
    let exec = calls
        .iter()
        .position(|c| c.starts_with("exec_init "))
        .expect("the run got to the exec");
    calls[exec + 1..].iter().map(String::as_str).collect()
}

/// The directories made by `make_host_dir`, in order.
fn made_dirs(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| c.strip_prefix("make_host_dir "))
        .map(str::to_string)
        .collect()
}

fn removed_dirs(calls: &[&str]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| c.strip_prefix("remove_host_dir "))
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------------ pure cgroup2

#[test]
fn unified_host_gets_v2_names_delegation_one_cgroup2_mount_and_teardown() {
    let plan = plan_of(ALL_LIMITS);
    let (report, calls) = run(&plan, host(UNIFIED_MOUNTINFO), None);
    assert_clean(&report);
    let root = "/sys/fs/cgroup";
    let parent = format!("{root}/envc");
    let own = format!("{parent}/{NAME}");

    // The parent, then the container's own cgroup, in the one cgroup2 root.
    assert_eq!(made_dirs(&calls), [parent.clone(), own.clone()]);

    // Every controller that reaches the parent (cgroup.controllers of the fake: cpuset
    // cpu io memory pids) is passed on to the container, before any limit. The root's
    // subtree_control is the host's: never written.
    let delegate = "+cpuset +cpu +io +memory +pids";
    let at_parent = pos(
        &calls,
        &write(&format!("{parent}/cgroup.subtree_control"), delegate),
    );
    assert!(pos(&calls, &format!("make_host_dir {own}")) < at_parent);
    assert_eq!(
        matching(&calls, |c| c.contains("subtree_control")),
        [write(&format!("{parent}/cgroup.subtree_control"), delegate)],
        "{}",
        calls.join("\n")
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(&format!("{root}/cgroup.subtree_control")))
    );

    // The limits, in v2 names, in the container's cgroup, after the delegation.
    let limits = [
        write(&format!("{own}/memory.max"), "268435456"),
        // A count of 1: the first CPU the parent has (its cpuset.cpus.effective, 0-1).
        write(&format!("{own}/cpuset.cpus"), "0"),
        write(&format!("{own}/cpu.max"), "25000 100000"),
        write(&format!("{own}/pids.max"), "10"),
    ];
    let mut last = at_parent;
    for l in &limits {
        let i = pos(&calls, l);
        assert!(i > last, "{l} out of order:\n{}", calls.join("\n"));
        last = i;
    }
    pos(
        &calls,
        &format!("read_host_file {parent}/cpuset.cpus.effective"),
    );
    let v1_names = [
        "memory.limit_in_bytes",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "devices.deny",
        "devices.allow",
    ];
    for c in &calls {
        assert!(
            !v1_names.iter().any(|n| c.contains(n)),
            "a v1 name on a cgroup2 host: {c}"
        );
    }

    // The clone starts the first process in the cgroup (prepared after every limit):
    // no PID is written anywhere; the child's join comes before it unshares its
    // cgroup namespace.
    let spawn = calls.iter().position(|c| c.starts_with("spawn ")).unwrap();
    let prepare = pos(&calls, &format!("prepare_cgroup_join into {own}"));
    assert!(last < prepare && prepare < spawn);
    let join = pos(&calls, "join_cgroups");
    assert!(join > spawn);
    assert!(
        matching(&calls, |c| c.contains("cgroup.procs")
            || c.contains("/tasks"))
        .is_empty()
    );
    assert!(pos(&calls, "unshare_cgroup_namespace") > join);

    // Inside: one fresh cgroup2 mount on /sys/fs/cgroup, nothing else there.
    let on_cgroup = matching(&calls, |c| {
        !c.starts_with("write_host_file")
            && !c.starts_with("read_host_file")
            && !c.starts_with("make_host_dir")
            && !c.starts_with("remove_host_dir")
            && !c.starts_with("host_subdirs")
            && !c.starts_with("prepare_cgroup_join")
            && !c.starts_with("attach_device_program")
            && c.contains("/sys/fs/cgroup")
    });
    assert_eq!(
        on_cgroup,
        [
            "mount_fs cgroup2 /sys/fs/cgroup MountFlags { nosuid: true, nodev: true, noexec: true, readonly: false } "
        ],
        "MountCgroups on a pure cgroup2 host"
    );
    assert_eq!(
        report.host.cgroup_mounts.as_deref(),
        Some("cgroup2 on /sys/fs/cgroup")
    );

    // The report: layout, every value written; the allow-list as a device program
    // on the container's cgroup, attached before the clone starts the child there.
    let cg = report.host.cgroup.as_deref().unwrap();
    for want in [
        "pure cgroup2",
        "memory.max=268435456",
        "cpuset.cpus=0",
        "cpu.max=25000 100000",
        "pids.max=10",
        "devices: deny all, allow 13 rules (cgroup2 device program",
    ] {
        assert!(
            cg.contains(want),
            "report's cgroup fact lacks {want:?}: {cg}"
        );
    }

    // Stop: the container's cgroup (one rmdir: it is empty and has no
    // sub-cgroups of a guest's own, which would make it walk the tree) and
    // the parent envc made, newest first, and nothing else.
    assert_eq!(
        teardown_calls(&calls),
        [
            format!("remove_host_dir {own}"),
            format!("remove_host_dir {parent}"),
        ]
    );
}

#[test]
fn unified_host_a_nested_parent_is_delegated_at_every_level_below_the_root() {
    let plan = plan_of(&format!(
        "{ALL_LIMITS}\n[cgroup]\nparent = \"envc/nested\"\n"
    ));
    let (report, calls) = run(&plan, host(UNIFIED_MOUNTINFO), None);
    assert_clean(&report);
    let subtree = matching(&calls, |c| c.contains("subtree_control"));
    assert_eq!(
        subtree,
        [
            "write_host_file /sys/fs/cgroup/envc/cgroup.subtree_control +cpuset +cpu +io +memory +pids",
            "write_host_file /sys/fs/cgroup/envc/nested/cgroup.subtree_control +cpuset +cpu +io +memory +pids",
        ]
    );
    let own = format!("/sys/fs/cgroup/envc/nested/{NAME}");
    pos(&calls, &write(&format!("{own}/memory.max"), "268435456"));
    assert_eq!(
        removed_dirs(&teardown_calls(&calls)),
        [
            own,
            "/sys/fs/cgroup/envc/nested".to_string(),
            "/sys/fs/cgroup/envc".to_string()
        ]
    );
}

// ------------------------------------------------------------------ hybrid

/// A v1 cpuset parent that was already there (another container's, or one the
/// admin made and restricted) keeps its own CPUs and memory nodes: they are read,
/// never written, and passed on to the container's cgroup. A level envc makes is
/// written without being read first (it has none of its own).
#[test]
fn an_existing_cpuset_parent_keeps_its_values_and_passes_them_on() {
    let plan = plan_of("");
    let parent = "/sys/fs/cgroup/cpuset/envc";
    let own = format!("{parent}/{NAME}");
    let mut k = Cgroupfs::new(host(HYBRID_MOUNTINFO), None);
    k.existing.insert(
        PathBuf::from(parent),
        BTreeMap::from([("cpuset.cpus", "1\n"), ("cpuset.mems", "0\n")]),
    );
    let report = envc::exec::simulate(&plan, &mut k);
    assert_clean(&report);
    let calls = k.inner.calls;
    pos(&calls, &format!("read_host_file {parent}/cpuset.cpus"));
    pos(&calls, &format!("read_host_file {parent}/cpuset.mems"));
    let parent_writes = matching(&calls, |c| {
        c.starts_with(&format!("write_host_file {parent}/cpuset."))
    });
    assert!(parent_writes.is_empty(), "{parent_writes:?}");
    let spawn = calls.iter().position(|c| c.starts_with("spawn ")).unwrap();
    assert!(pos(&calls, &write(&format!("{own}/cpuset.cpus"), "1")) < spawn);
    assert!(pos(&calls, &write(&format!("{own}/cpuset.mems"), "0")) < spawn);
    let own_reads = matching(&calls, |c| {
        c.starts_with(&format!("read_host_file {own}/cpuset."))
    });
    assert!(own_reads.is_empty(), "{own_reads:?}");
}

#[test]
fn hybrid_host_gets_v1_names_in_their_hierarchies_cpuset_copied_and_devices_list() {
    let plan = plan_of(ALL_LIMITS);
    let (report, calls) = run(&plan, host(HYBRID_MOUNTINFO), None);
    assert_clean(&report);
    let own = |h: &str| format!("/sys/fs/cgroup/{h}/envc/{NAME}");
    let parent = |h: &str| format!("/sys/fs/cgroup/{h}/envc");

    // envc/NAME in EVERY hierarchy, name=systemd and the cgroup2 one included.
    let mut want_dirs = Vec::new();
    for h in HYBRID_DIRS {
        want_dirs.push(parent(h));
        want_dirs.push(own(h));
    }
    assert_eq!(made_dirs(&calls), want_dirs);

    // Limits in v1 names, each in its controller's hierarchy and nowhere else.
    let spawn = calls.iter().position(|c| c.starts_with("spawn ")).unwrap();
    for (h, file, value) in [
        ("memory", "memory.limit_in_bytes", "268435456"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "25000"),
        ("pids", "pids.max", "10"),
    ] {
        let w = write(&format!("{}/{file}", own(h)), value);
        assert!(pos(&calls, &w) < spawn, "{w} after the spawn");
        let elsewhere = matching(&calls, |c| {
            c.starts_with("write_host_file")
                && c.contains(&format!("/{file} "))
                && !c.starts_with(&format!("write_host_file {}", own(h)))
                && !(file.starts_with("cpuset."))
        });
        assert!(
            elsewhere.is_empty(),
            "{file} written elsewhere: {elsewhere:?}"
        );
    }
    for v2 in ["memory.max", "cpu.max", "subtree_control"] {
        assert!(
            !calls.iter().any(|c| c.contains(v2)),
            "a v2 name on a hybrid host: {v2}\n{}",
            calls.join("\n")
        );
    }

    // v1 cpuset: cpus and mems copied from the parent into envc, then into envc/NAME,
    // before the first process is attached (a fresh cpuset refuses tasks).
    let copies = [
        write(&format!("{}/cpuset.cpus", parent("cpuset")), "0-1"),
        write(&format!("{}/cpuset.mems", parent("cpuset")), "0"),
        write(&format!("{}/cpuset.cpus", own("cpuset")), "0-1"),
        write(&format!("{}/cpuset.mems", own("cpuset")), "0"),
    ];
    let mut last = pos(&calls, &format!("make_host_dir {}", parent("cpuset")));
    for c in &copies {
        let i = pos(&calls, c);
        assert!(i > last, "{c} out of order:\n{}", calls.join("\n"));
        last = i;
    }
    let prepare = calls
        .iter()
        .position(|c| c.starts_with("prepare_cgroup_join "))
        .unwrap();
    assert!(prepare > last);
    // The count is taken from the parent's CPUs (0-1): the first one.
    assert!(
        pos(
            &calls,
            &write(&format!("{}/cpuset.cpus", own("cpuset")), "0")
        ) > last,
        "the limit must come after the copy"
    );

    // The devices allow-list: deny all first, then every rule, before the spawn. The
    // host devices the profile binds (/dev/fuse on the fake host, 10:229) are already
    // in LXD's list, so they are not written twice.
    let dev = own("devices");
    let mut want_dev = vec![write(&format!("{dev}/devices.deny"), "a")];
    for r in LXD_ALLOW {
        want_dev.push(write(&format!("{dev}/devices.allow"), r));
    }
    let got_dev: Vec<String> = matching(&calls, |c| c.contains("/devices."))
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(got_dev, want_dev);
    assert!(pos(&calls, want_dev.last().unwrap()) < spawn);

    // Joining: every v1 hierarchy's tasks file and the cgroup2 directory prepared
    // before the spawn; the child joins after it, before the unshare. No PID is
    // written to any cgroup.procs.
    let mut want = String::from("prepare_cgroup_join");
    for h in HYBRID_DIRS.iter().filter(|h| **h != "unified") {
        want.push_str(&format!(" {}/tasks", own(h)));
    }
    want.push_str(&format!(" into {}", own("unified")));
    assert_eq!(calls[prepare], want);
    assert!(prepare < spawn);
    let unshare = pos(&calls, "unshare_cgroup_namespace");
    let join = pos(&calls, "join_cgroups");
    assert!(spawn < join && join < unshare, "join out of order");
    assert!(matching(&calls, |c| c.contains("cgroup.procs")).is_empty());

    // Inside: a tmpfs with each hierarchy mounted, then the tmpfs made read-only.
    let mounts = matching(&calls, |c| {
        c.starts_with("mount_fs ") && c.contains(" /sys/fs/cgroup")
    });
    assert_eq!(mounts.len(), 1 + HYBRID_DIRS.len(), "{mounts:#?}");
    assert!(mounts[0].starts_with("mount_fs tmpfs /sys/fs/cgroup "));
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("mount_fs cgroup2 /sys/fs/cgroup/unified "))
    );
    assert!(mounts.iter().any(|m| {
        m.starts_with("mount_fs cgroup /sys/fs/cgroup/systemd ")
            && m.ends_with(" none,name=systemd")
    }));
    pos(&calls, "set_readonly /sys/fs/cgroup recursive=false");

    // Report and teardown: every directory made, removed newest first.
    let cg = report.host.cgroup.as_deref().unwrap();
    for want in [
        "hybrid",
        "memory.limit_in_bytes=268435456",
        "cpu.cfs_quota_us=25000",
        "cpu.cfs_period_us=100000",
        "pids.max=10",
        "devices: deny all, allow 13 rules",
    ] {
        assert!(
            cg.contains(want),
            "report's cgroup fact lacks {want:?}: {cg}"
        );
    }
    let mut reversed = want_dirs.clone();
    reversed.reverse();
    assert_eq!(removed_dirs(&teardown_calls(&calls)), reversed);
}

#[test]
fn the_profiles_own_devices_join_the_allow_list() {
    let plan = plan_of(
        r#"
[devices.hdloop]
type = "unix-block"
path = "/dev/hd-loop"
major = 7
minor = 1
"#,
    );
    let (report, calls) = run(&plan, host(HYBRID_MOUNTINFO), None);
    assert_clean(&report);
    let allow = matching(&calls, |c| c.contains("/devices.allow "));
    assert!(
        allow.contains(
            &"write_host_file /sys/fs/cgroup/devices/envc/hd-rec/devices.allow b 7:1 rwm"
        ),
        "{allow:#?}"
    );
}

// ------------------------------------------------------------------ devices without a v1 controller

/// `HYBRID_MOUNTINFO` without its devices hierarchy.
fn hybrid_without_devices() -> String {
    (HYBRID_MOUNTINFO.lines())
        .filter(|l| !l.contains("rw,devices"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `HYBRID_MOUNTINFO` without cgroup2 nor devices: nothing can enforce the list.
fn v1_without_devices() -> String {
    (hybrid_without_devices().lines())
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// On a pure cgroup2 host the list is a device program on the container's cgroup,
/// attached before the clone (which starts the child in that cgroup); on a hybrid host
/// without a v1 devices controller, on its cgroup2 directory, before the exec.
#[test]
fn without_a_devices_controller_the_list_is_a_cgroup2_device_program() {
    let plan = plan_of("");
    for (mountinfo, dir) in [
        (UNIFIED_MOUNTINFO.to_string(), "/sys/fs/cgroup"),
        (hybrid_without_devices(), "/sys/fs/cgroup/unified"),
    ] {
        let (report, calls) = run(&plan, host(&mountinfo), None);
        assert_clean(&report);
        let attach = matching(&calls, |c| c.starts_with("attach_device_program "));
        assert_eq!(
            attach,
            [format!(
                "attach_device_program {dir}/envc/{NAME} (74 instructions)"
            )],
            "{}",
            calls.join("\n")
        );
        let at = pos(&calls, attach[0]);
        assert!(at > pos(&calls, &format!("make_host_dir {dir}/envc/{NAME}")));
        assert!(
            at < calls
                .iter()
                .position(|c| c.starts_with("exec_init "))
                .unwrap()
        );
        if dir == "/sys/fs/cgroup" {
            assert!(at < calls.iter().position(|c| c.starts_with("spawn ")).unwrap());
        }
        assert!(matching(&calls, |c| c.contains("devices.")).is_empty());
        let cg = report.host.cgroup.as_deref().unwrap();
        assert!(
            cg.contains(
                "devices: deny all, allow 13 rules (cgroup2 device program, 74 instructions)"
            ),
            "{cg}"
        );
    }
}

/// The profile's own devices are in the program too (one more rule, five instructions).
#[test]
fn the_profiles_own_devices_join_the_device_program() {
    let plan = plan_of(
        r#"
[devices.hdloop]
type = "unix-block"
path = "/dev/hd-loop"
major = 7
minor = 1
"#,
    );
    let (report, calls) = run(&plan, host(UNIFIED_MOUNTINFO), None);
    assert_clean(&report);
    pos(
        &calls,
        &format!("attach_device_program /sys/fs/cgroup/envc/{NAME} (79 instructions)"),
    );
}

/// Neither a v1 devices controller nor a device program: the start is refused, the
/// error names the key that allows it, and nothing is left; with the key it starts and
/// the report says the devices are not restricted, and why.
#[test]
fn unenforceable_device_rules_refuse_the_start_unless_the_profile_allows_it() {
    let refused = plan_of("");
    let allowed = plan_of("[cgroup]\nallow-unrestricted-devices = true\n");
    // No cgroup2 hierarchy at all; and a device program the kernel will not attach.
    let clean_unified = run(&refused, host(UNIFIED_MOUNTINFO), None).1;
    let attach_call = (clean_unified.iter())
        .position(|c| c.starts_with("attach_device_program "))
        .unwrap();
    for (mountinfo, fail_at, why) in [
        (
            v1_without_devices(),
            None,
            "no v1 devices controller and no cgroup2 hierarchy",
        ),
        (
            UNIFIED_MOUNTINFO.to_string(),
            Some(attach_call),
            "no v1 devices controller, and injected failure",
        ),
    ] {
        let (report, calls) = run(&refused, host(&mountinfo), fail_at);
        let o = report.outcome.as_ref().expect("refused");
        assert_eq!(o.exit_code, 125, "{}", report.summary());
        match step_status(&report, "CreateCgroup") {
            Status::Failed { error, .. } => assert!(
                error.contains(why) && error.contains("`cgroup.allow-unrestricted-devices = true`"),
                "{error}"
            ),
            other => panic!("CreateCgroup: {other:?}"),
        }
        assert!(
            !calls.iter().any(|c| c.starts_with("exec_init")),
            "{calls:#?}"
        );
        assert!(report.teardown_left.is_empty());
        let mut made = made_dirs(&calls);
        made.reverse();
        let all: Vec<&str> = calls.iter().map(String::as_str).collect();
        assert_eq!(removed_dirs(&all), made);

        let (report, _) = run(&allowed, host(&mountinfo), fail_at);
        assert_clean(&report);
        let cg = report.host.cgroup.as_deref().unwrap();
        assert!(
            cg.contains("devices: NOT RESTRICTED (")
                && cg.contains(why)
                && cg.contains("cgroup.allow-unrestricted-devices = true"),
            "{cg}"
        );
    }
}

// ------------------------------------------------------------------ percentages and failures

#[test]
fn a_percentage_memory_limit_is_computed_from_the_hosts_meminfo() {
    // The fake /proc/meminfo: MemTotal 1048576 kB = 1 GiB.
    for (pct, bytes) in [("50%", "536870912"), ("12.5%", "134217728")] {
        let plan = plan_of(&format!("[config]\n\"limits.memory\" = \"{pct}\"\n"));
        for (mountinfo, file) in [
            (HYBRID_MOUNTINFO, "memory/envc/hd-rec/memory.limit_in_bytes"),
            (UNIFIED_MOUNTINFO, "envc/hd-rec/memory.max"),
        ] {
            let (report, calls) = run(&plan, host(mountinfo), None);
            assert_clean(&report);
            let read = pos(&calls, "read_host_file /proc/meminfo");
            let w = pos(&calls, &write(&format!("/sys/fs/cgroup/{file}"), bytes));
            assert!(read < w, "{pct}: meminfo read after the write");
        }
    }
}

#[test]
fn more_cpus_than_the_parent_has_fails_clearly_and_undoes_everything() {
    let plan = plan_of("[config]\n\"limits.cpu\" = \"3\"\n");
    for mountinfo in [HYBRID_MOUNTINFO, UNIFIED_MOUNTINFO] {
        let (report, calls) = run(&plan, host(mountinfo), None);
        let o = report
            .outcome
            .as_ref()
            .expect("a failed run has an outcome");
        assert_eq!(o.exit_code, 125, "{}", report.summary());
        match step_status(&report, "CreateCgroup") {
            Status::Failed { error, fatal: true } => assert!(
                error.contains("limits.cpu asks for 3 CPUs")
                    && error.contains("only 2 are available (0-1)"),
                "unclear: {error}"
            ),
            other => panic!("CreateCgroup: {other:?}\n{}", report.summary()),
        }
        let i = report
            .steps
            .iter()
            .position(|s| s.op == "CreateCgroup")
            .unwrap();
        assert!(
            report.steps[i + 1..]
                .iter()
                .all(|s| s.status == Status::NotRun),
            "{}",
            report.summary()
        );
        assert!(
            report.teardown_left.is_empty(),
            "{:?}",
            report.teardown_left
        );
        assert!(!calls.iter().any(|c| c.starts_with("spawn ")));
        // Nothing but the v1 cpuset copies and the v2 delegation was written: no limit.
        assert!(
            !calls.iter().any(|c| c.starts_with("write_host_file")
                && !c.contains("/cpuset.")
                && !c.contains("/cgroup.subtree_control ")),
            "{}",
            calls.join("\n")
        );
        // Everything made is removed, newest first; nothing is written after the failure.
        let fail = calls
            .iter()
            .position(|c| c.starts_with("host_subdirs ") || c.starts_with("remove_host_dir "))
            .expect("a teardown");
        let after: Vec<&str> = calls[fail..].iter().map(String::as_str).collect();
        assert!(
            after
                .iter()
                .all(|c| c.starts_with("host_subdirs ") || c.starts_with("remove_host_dir ")),
            "{after:#?}"
        );
        let mut made = made_dirs(&calls);
        made.reverse();
        assert_eq!(removed_dirs(&after), made);
    }
}

/// A failure injected at every call of the cgroup step (and the attach): the step fails,
/// and exactly what was made before it is removed, newest first.
#[test]
fn a_failure_at_any_cgroup_call_removes_what_was_made() {
    let plan = plan_of(ALL_LIMITS);
    for mountinfo in [HYBRID_MOUNTINFO, UNIFIED_MOUNTINFO] {
        let (_, clean) = run(&plan, host(mountinfo), None);
        let first = pos(&clean, "read_host_file /proc/self/mountinfo");
        // Every call of CreateCgroup (up to preparing the join), and the join itself.
        let prepare = clean
            .iter()
            .position(|c| c.starts_with("prepare_cgroup_join"))
            .unwrap();
        let join = pos(&clean, "join_cgroups");
        for n in (first..=prepare).chain([join]) {
            let (report, calls) = run(&plan, host(mountinfo), Some(n));
            let at = format!("failure at call {n} ({})", clean[n]);
            assert_eq!(calls[..=n], clean[..=n], "{at}");
            let o = report
                .outcome
                .as_ref()
                .unwrap_or_else(|| panic!("{at}: no outcome"));
            assert_eq!(o.exit_code, 125, "{at}");
            assert!(report.teardown_left.is_empty(), "{at}");
            let made = made_dirs(&calls[..=n]);
            let after: Vec<&str> = calls[n + 1..].iter().map(String::as_str).collect();
            assert!(
                after
                    .iter()
                    .all(|c| c.starts_with("host_subdirs ") || c.starts_with("remove_host_dir ")),
                "{at}: {after:#?}"
            );
            let mut want = made.clone();
            // A make_host_dir that failed made nothing.
            if clean[n].starts_with("make_host_dir ") {
                want.pop();
            }
            want.reverse();
            assert_eq!(removed_dirs(&after), want, "{at}");
        }
    }
}

/// A pure cgroup2 host whose root does not pass on a controller the limits need: the
/// start fails before the clone, says what to enable, and leaves nothing. envc never
/// enables it at the root itself.
#[test]
fn unified_host_without_a_needed_controller_fails_before_the_clone() {
    let plan = plan_of(ALL_LIMITS);
    let mut k = Cgroupfs::new(host(UNIFIED_MOUNTINFO), None);
    k.controllers = Some("cpu io\n".into());
    let report = envc::exec::simulate(&plan, &mut k);
    let calls = k.inner.calls;
    let o = report.outcome.as_ref().expect("the start failed");
    assert_eq!(o.exit_code, 125, "{}", report.summary());
    match step_status(&report, "CreateCgroup") {
        Status::Failed { error, .. } => assert!(
            error.contains("the memory controller")
                && error.contains("/sys/fs/cgroup/cgroup.subtree_control"),
            "{error}"
        ),
        other => panic!("CreateCgroup: {other:?}"),
    }
    assert!(!calls.iter().any(|c| c.starts_with("spawn ")), "{calls:#?}");
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("/sys/fs/cgroup/cgroup.subtree_control")),
        "{calls:#?}"
    );
    assert!(report.teardown_left.is_empty());
    let mut made = made_dirs(&calls);
    made.reverse();
    let all: Vec<&str> = calls.iter().map(String::as_str).collect();
    assert_eq!(removed_dirs(&all), made);
}

// ------------------------------------------------------------------ the cgroupfs model

/// The recording kernel, plus what cgroupfs would answer (see the module doc).
struct Cgroupfs {
    inner: RecordingKernel,
    made: BTreeSet<PathBuf>,
    written: BTreeMap<PathBuf, String>,
    /// What every `cgroup.controllers` says, if not the fake host's default.
    controllers: Option<String>,
    /// Directories that are there before envc runs, with their files' values.
    existing: BTreeMap<PathBuf, BTreeMap<&'static str, &'static str>>,
}

impl Cgroupfs {
    fn new(host: FakeHost, fail_at: Option<usize>) -> Cgroupfs {
        let mut inner = match fail_at {
            Some(n) => RecordingKernel::failing_at(n),
            None => RecordingKernel::new(),
        };
        inner.host = host;
        Cgroupfs {
            inner,
            made: BTreeSet::new(),
            written: BTreeMap::new(),
            controllers: None,
            existing: BTreeMap::new(),
        }
    }
}

impl Kernel for Cgroupfs {
    fn open_rootfs(&mut self, rootfs: &Path) -> io::Result<()> {
        self.inner.open_rootfs(rootfs)
    }
    fn inspect_dir(&mut self, path: &ContainerPath, create: bool) -> io::Result<DirState> {
        self.inner.inspect_dir(path, create)
    }
    fn inspect_init(&mut self, path: &ContainerPath) -> Result<InitInfo, InitProblem> {
        self.inner.inspect_init(path)
    }
    fn spawn(&mut self, namespaces: &[Namespace]) -> io::Result<Spawned> {
        self.inner.spawn(namespaces)
    }
    fn prepare_cgroup_join(&mut self, v1: &[PathBuf], v2: Option<&Path>) -> io::Result<()> {
        self.inner.prepare_cgroup_join(v1, v2)
    }
    fn take_cgroup_join(&mut self) -> Vec<(PathBuf, std::os::fd::OwnedFd)> {
        self.inner.take_cgroup_join()
    }
    fn adopt_cgroup_join(&mut self, tasks: Vec<(PathBuf, std::os::fd::OwnedFd)>) {
        self.inner.adopt_cgroup_join(tasks)
    }
    fn join_cgroups(&mut self) -> io::Result<CgroupJoin> {
        self.inner.join_cgroups()
    }
    fn read_host_file(&mut self, path: &Path) -> io::Result<String> {
        let fake = self.inner.read_host_file(path)?;
        if let Some(v) = self.written.get(path) {
            return Ok(v.clone());
        }
        if let (Some(c), true) = (&self.controllers, path.ends_with("cgroup.controllers")) {
            return Ok(c.clone());
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(v) = (path.parent())
            .and_then(|d| self.existing.get(d))
            .and_then(|files| files.get(name))
        {
            return Ok(v.to_string());
        }
        let fresh = path.parent().is_some_and(|d| self.made.contains(d));
        if fresh && (name == "cpuset.cpus" || name == "cpuset.mems") {
            return Ok(String::new());
        }
        Ok(fake)
    }
    fn write_host_file(&mut self, path: &Path, value: &str) -> io::Result<()> {
        self.inner.write_host_file(path, value)?;
        self.written.insert(path.to_path_buf(), value.to_string());
        Ok(())
    }
    fn attach_device_program(
        &mut self,
        cgroup: &Path,
        program: &[envc::exec::cgroup::device_program::Insn],
    ) -> io::Result<()> {
        self.inner.attach_device_program(cgroup, program)
    }
    fn make_host_dir(&mut self, path: &Path) -> io::Result<bool> {
        let made = self.inner.make_host_dir(path)?;
        if self.existing.contains_key(path) {
            return Ok(false);
        }
        self.made.insert(path.to_path_buf());
        Ok(made)
    }
    fn remove_host_dir(&mut self, path: &Path) -> io::Result<()> {
        self.inner.remove_host_dir(path)?;
        self.made.remove(path);
        Ok(())
    }
    fn host_subdirs(&mut self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.host_subdirs(path)
    }
    fn list_host_dir(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
        self.inner.list_host_dir(path)
    }
    fn open_netns(&mut self, pid: i32) -> io::Result<std::os::fd::OwnedFd> {
        self.inner.open_netns(pid)
    }
    fn create_nic(&mut self, spec: &envc::net::NicSpec<'_>) -> io::Result<envc::net::CreatedNic> {
        self.inner.create_nic(spec)
    }
    fn remove_nic(
        &mut self,
        nic: &envc::net::CreatedNic,
        netns: std::os::fd::BorrowedFd<'_>,
        in_container_name: &str,
    ) -> io::Result<()> {
        self.inner.remove_nic(nic, netns, in_container_name)
    }
    fn make_mounts_slave(&mut self) -> io::Result<()> {
        self.inner.make_mounts_slave()
    }
    fn bind_rootfs(&mut self) -> io::Result<()> {
        self.inner.bind_rootfs()
    }
    fn unshare_cgroup_namespace(&mut self) -> io::Result<()> {
        self.inner.unshare_cgroup_namespace()
    }
    fn set_hostname(&mut self, name: &str) -> io::Result<()> {
        self.inner.set_hostname(name)
    }
    fn make_dir_all(&mut self, path: &ContainerPath, mode: u32) -> io::Result<()> {
        self.inner.make_dir_all(path, mode)
    }
    fn make_placeholder(&mut self, path: &ContainerPath) -> io::Result<()> {
        self.inner.make_placeholder(path)
    }
    fn mount_fs(
        &mut self,
        fstype: &str,
        target: &ContainerPath,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        self.inner.mount_fs(fstype, target, flags, data)
    }
    fn bind_self(&mut self, target: &ContainerPath) -> io::Result<()> {
        self.inner.bind_self(target)
    }
    fn bind_host(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        recursive: bool,
        readonly: bool,
    ) -> io::Result<()> {
        self.inner.bind_host(source, target, recursive, readonly)
    }
    fn bind_inside(&mut self, source: &ContainerPath, target: &ContainerPath) -> io::Result<()> {
        self.inner.bind_inside(source, target)
    }
    fn host_path_state(&mut self, path: &HostPath) -> io::Result<HostPathState> {
        self.inner.host_path_state(path)
    }
    fn host_device(&mut self, path: &HostPath) -> io::Result<Option<(NodeKind, u32, u32)>> {
        self.inner.host_device(path)
    }
    fn mknod(
        &mut self,
        path: &ContainerPath,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.inner.mknod(path, kind, mode, major, minor)
    }
    fn chown(&mut self, path: &ContainerPath, uid: u32, gid: u32) -> io::Result<()> {
        self.inner.chown(path, uid, gid)
    }
    fn symlink(&mut self, target: &str, path: &ContainerPath) -> io::Result<()> {
        self.inner.symlink(target, path)
    }
    fn unlink(&mut self, path: &ContainerPath) -> io::Result<()> {
        self.inner.unlink(path)
    }
    fn make_console(&mut self, ptmx: &ContainerPath, console: &ContainerPath) -> io::Result<()> {
        self.inner.make_console(ptmx, console)
    }
    fn make_socket(&mut self, path: &ContainerPath, kind: SocketKind, mode: u32) -> io::Result<()> {
        self.inner.make_socket(path, kind, mode)
    }
    fn set_readonly(&mut self, target: &ContainerPath, recursive: bool) -> io::Result<()> {
        self.inner.set_readonly(target, recursive)
    }
    fn loopback_up(&mut self) -> io::Result<()> {
        self.inner.loopback_up()
    }
    fn configure_nic(
        &mut self,
        name: &str,
        ipv4: Option<(std::net::Ipv4Addr, u8)>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> io::Result<()> {
        self.inner.configure_nic(name, ipv4, gateway)
    }
    fn pivot_root(&mut self) -> io::Result<()> {
        self.inner.pivot_root()
    }
    fn chown_host(&mut self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.inner.chown_host(path, uid, gid)
    }
    fn write_file(&mut self, path: &ContainerPath, contents: &str, mode: u32) -> io::Result<()> {
        self.inner.write_file(path, contents, mode)
    }
    fn write_idmap(&mut self, pid: i32, uid_map: &str, gid_map: &str) -> io::Result<()> {
        self.inner.write_idmap(pid, uid_map, gid_map)
    }
    fn make_idmapped_rootfs(&mut self, pid: i32) -> io::Result<()> {
        self.inner.make_idmapped_rootfs(pid)
    }
    fn make_idmapped_mount(
        &mut self,
        source: &HostPath,
        recursive: bool,
        pid: i32,
    ) -> io::Result<()> {
        self.inner.make_idmapped_mount(source, recursive, pid)
    }
    fn take_idmapped(&mut self) -> Vec<(String, std::os::fd::OwnedFd)> {
        self.inner.take_idmapped()
    }
    fn adopt_idmapped(&mut self, trees: Vec<(String, std::os::fd::OwnedFd)>) {
        self.inner.adopt_idmapped(trees)
    }
    fn attach_idmapped(
        &mut self,
        source: &HostPath,
        target: &ContainerPath,
        readonly: bool,
    ) -> io::Result<bool> {
        self.inner.attach_idmapped(source, target, readonly)
    }
    fn attach_idmapped_rootfs(&mut self) -> io::Result<()> {
        self.inner.attach_idmapped_rootfs()
    }
    fn become_root(&mut self) -> io::Result<()> {
        self.inner.become_root()
    }
    fn take_handoff(&mut self) -> Handoff {
        self.inner.take_handoff()
    }
    fn prepare_syscall_filter(&mut self, filter: &envc::seccomp::SyscallFilter) -> io::Result<()> {
        self.inner.prepare_syscall_filter(filter)
    }
    fn exec_init(
        &mut self,
        command: &[String],
        env: &[String],
        drop_caps: &[u32],
    ) -> io::Result<()> {
        self.inner.exec_init(command, env, drop_caps)
    }
}

/// An unprivileged container on both layouts: its cgroup is handed to its
/// root (the map's base, here LXD's fallback: the fake host has no subuid
/// range for root), with the same device allow-list as a privileged one
/// where there is a devices controller; the map is written into the
/// child's user namespace.
#[test]
fn an_unprivileged_containers_cgroup_is_handed_to_its_root() {
    let plan = plan_of("[config]\n\"security.privileged\" = false\n\"limits.processes\" = 10\n");
    for (layout, mountinfo) in [("unified", UNIFIED_MOUNTINFO), ("hybrid", HYBRID_MOUNTINFO)] {
        let mut fake = host(mountinfo);
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            fake.devices
                .push((format!("/dev/{name}"), NodeKind::Char, major, minor));
        }
        let (report, calls) = run(&plan, fake, None);
        assert_clean(&report);
        let owner = "1000000:1000000";
        let dirs: Vec<String> = if layout == "unified" {
            vec![format!("/sys/fs/cgroup/envc/{NAME}")]
        } else {
            HYBRID_DIRS
                .iter()
                .map(|d| format!("/sys/fs/cgroup/{d}/envc/{NAME}"))
                .collect()
        };
        for dir in &dirs {
            let files: &[&str] = if dir.contains("/unified/") || layout == "unified" {
                &[
                    "",
                    "/cgroup.procs",
                    "/cgroup.subtree_control",
                    "/cgroup.threads",
                ]
            } else {
                &["", "/tasks", "/cgroup.procs", "/notify_on_release"]
            };
            for f in files {
                pos(&calls, &format!("chown_host {dir}{f} {owner}"));
            }
        }
        // Only the container's own cgroup: never its parent or the root.
        assert_eq!(
            matching(&calls, |c| c.starts_with("chown_host")).len(),
            dirs.len() * 4,
            "{layout}: {}",
            calls.join("\n")
        );
        let denied = matching(&calls, |c| c.contains("devices.deny"));
        if layout == "hybrid" {
            assert_eq!(
                denied,
                [write(
                    &format!("/sys/fs/cgroup/devices/envc/{NAME}/devices.deny"),
                    "a"
                )],
                "{layout}: deny all, then the allow-list"
            );
            assert_eq!(
                matching(&calls, |c| c.contains("/devices.allow ")).len(),
                LXD_ALLOW.len(),
                "{layout}: LXD's allow-list"
            );
        } else {
            assert!(denied.is_empty(), "{layout}: no devices controller");
            // The same list as a device program: the rootfs is nodev, but its
            // root may remount it (see SECURITY.md), and an image's nodes stay shut.
            let attach = pos(
                &calls,
                &format!("attach_device_program /sys/fs/cgroup/envc/{NAME} (74 instructions)"),
            );
            assert!(attach < calls.iter().position(|c| c.starts_with("spawn ")).unwrap());
        }
        // The map is chosen before the cgroup is made, written after the clone.
        let chosen = pos(&calls, "read_host_file /etc/subuid");
        assert!(chosen < pos(&calls, &format!("make_host_dir {}", dirs[0])));
        pos(
            &calls,
            "write_idmap 4242 uid 0 1000000 1000000000 gid 0 1000000 1000000000",
        );
        assert!(pos(&calls, "attach_idmapped_rootfs") < pos(&calls, "become_root"));
    }
}

/// `security.idmap.size` without `isolated` does nothing (as in LXD); the
/// report says so instead of staying silent.
#[test]
fn an_idmap_size_without_isolated_is_reported_as_ignored() {
    let plan =
        plan_of("[config]\n\"security.privileged\" = false\n\"security.idmap.size\" = 70000\n");
    let (report, _) = run(&plan, host(UNIFIED_MOUNTINFO), None);
    match step_status(&report, "ChooseIdmap") {
        Status::Done { detail: Some(d) } => assert!(
            d.contains("security.idmap.size ignored: the container is not isolated"),
            "{d}"
        ),
        other => panic!("{other:?}"),
    }
}
