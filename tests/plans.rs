//! Profile → Plan: the text and JSON plans of every example profile (and of
//! the valid stacking fixtures) are snapshotted; every plan holds its
//! invariants, round-trips through JSON, is byte-identical when compiled
//! again or from elsewhere, and names no path of this machine. Then
//! `Plan::check` is shown to refuse broken plans.

use envc::diag::{Style, render};
use envc::paths::ContainerPath;
use envc::plan::{Op, PLAN_FORMAT, Phase, Plan, Side, Step};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Every profile whose plan is snapshotted, with its snapshot name.
fn profiles() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (prefix, dir) in [("example", "examples"), ("fixture", "tests/fixtures/valid")] {
        for f in toml_files(&root().join(dir)) {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((format!("{prefix}-{stem}"), f));
        }
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

fn compile(path: &Path) -> Plan {
    match envc::profile::load(path) {
        Ok((profile, _)) => envc::compile::compile(&profile),
        Err(p) => panic!("{}:\n{}", path.display(), render(&p, Style::plain())),
    }
}

fn example(name: &str) -> Plan {
    compile(&root().join("examples").join(name))
}

#[test]
fn plans_of_every_example() {
    let here = root().to_string_lossy().into_owned();
    for (name, path) in profiles() {
        let plan = compile(&path);
        if let Err(e) = plan.check() {
            panic!("{name}: {e}");
        }
        let text = plan.to_text();
        let json = plan.to_json();
        for (kind, out) in [("text", &text), ("json", &json)] {
            assert!(
                !out.contains(&here),
                "{name}: the {kind} plan names this machine's path {here}"
            );
        }
        // The same profile compiles to the same bytes.
        let again = compile(&path);
        assert_eq!(
            again.to_text(),
            text,
            "{name}: text differs when compiled again"
        );
        assert_eq!(
            again.to_json(),
            json,
            "{name}: JSON differs when compiled again"
        );
        // JSON round trip.
        let back = Plan::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, plan, "{name}: the JSON plan does not round-trip");
        assert_eq!(back.to_json(), json);

        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        settings.set_description(format!("{}", path.strip_prefix(root()).unwrap().display()));
        settings.bind(|| {
            insta::assert_snapshot!(format!("{name}.text"), text);
            insta::assert_snapshot!(format!("{name}.json"), json);
        });
    }
}

#[test]
fn the_binary_prints_the_same_plan_from_any_directory() {
    // From the repo root with a relative path, and from /tmp with an
    // absolute one: the same bytes as the library's.
    for (name, path) in profiles() {
        let plan = compile(&path);
        let rel = path.strip_prefix(root()).unwrap();
        for (cwd, arg) in [(root(), rel), (Path::new("/"), path.as_path())] {
            for (format, expected) in [("text", plan.to_text()), ("json", plan.to_json())] {
                let out = Command::new(env!("CARGO_BIN_EXE_envc"))
                    .args(["plan", "--format", format])
                    .arg(arg)
                    .current_dir(cwd)
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0), "{name}");
                assert!(
                    String::from_utf8(out.stdout).unwrap() == expected,
                    "{name}: `envc plan --format {format}` from {} differs",
                    cwd.display()
                );
            }
        }
        // `apply --dry-run` prints the same plan.
        let out = Command::new(env!("CARGO_BIN_EXE_envc"))
            .args(["apply", "--dry-run"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            plan.to_text(),
            "{name}"
        );
    }
}

#[test]
fn plan_from_a_saved_file_replays_the_same_plan() {
    let dir = std::env::temp_dir().join(format!("envc-plans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("web.json");
    let out = Command::new(env!("CARGO_BIN_EXE_envc"))
        .args(["plan", "--format", "json", "-o"])
        .arg(&file)
        .arg(root().join("examples/web.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let saved = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(Plan::from_json(&saved).unwrap(), example("web.toml"));
}

#[test]
fn what_the_examples_say_is_what_the_plans_do() {
    let web = example("web.toml");
    let ops: Vec<&Op> = web.steps.iter().map(|s| &s.op).collect();
    // The masked device is gone; the others are there.
    assert!(
        !ops.iter()
            .any(|op| op.target().is_some_and(|t| t.as_str() == "/dev/fuse"))
    );
    assert!(
        ops.iter()
            .any(|op| op.target().is_some_and(|t| t.as_str() == "/dev/net/tun"))
    );
    // NICs: LXD's naming (first free ethN) unless named.
    let nics: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateNic { device, name, .. } => Some((device.as_str(), name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        nics,
        [("lan", "eth0"), ("admin", "admin0"), ("public", "eth1")]
    );
    // Environment.
    let Some(Op::ExecInit { env, .. }) = ops.last() else {
        panic!("ExecInit is last")
    };
    assert_eq!(env, &["container=lxc", "TZ=UTC", "NGINX_PORT=8080"]);
    // Guest data: only user.* and cloud-init.*; only the user's devices.
    let keys: Vec<&String> = web.guest.config.keys().collect();
    assert_eq!(keys, ["user.role", "cloud-init.user-data"]);
    assert!(web.guest.devices.contains_key("kvm"));
    assert!(!web.guest.devices.contains_key("null"));
    assert_eq!(web.guest.devices["lan"]["hwaddr"], "00:16:3e:00:00:10");

    let stacked = example("stacked.toml");
    assert_eq!(
        stacked.layers,
        ["builtin:lxd", "base/common.toml", "stacked.toml"]
    );
    // The layer's `../rootfs` is named relative to the top profile.
    assert_eq!(stacked.rootfs, "rootfs");
    let targets: Vec<&str> = stacked
        .steps
        .iter()
        .filter_map(|s| s.op.target().map(ContainerPath::as_str))
        .collect();
    assert!(
        !targets.contains(&"/var/cache/build"),
        "the cache was masked"
    );
    let tmp = stacked
        .steps
        .iter()
        .find(|s| s.op.target().is_some_and(|t| t.as_str() == "/tmp"))
        .unwrap();
    assert_eq!(
        tmp.origin.file, "stacked.toml",
        "the top's /tmp replaced the layer's"
    );
    assert_eq!(stacked.supervise.stop_timeout_secs, 20, "from the layer");

    // Deep stack: the nested layer's mounts, parents before children.
    let deep = compile(&root().join("tests/fixtures/valid/deep-stack.toml"));
    assert_eq!(
        deep.layers,
        [
            "builtin:lxd",
            "layers/a.toml",
            "layers/c.toml",
            "layers/b.toml",
            "deep-stack.toml"
        ]
    );
    let pos = |t: &str| {
        deep.steps
            .iter()
            .position(|s| s.op.target().is_some_and(|x| x.as_str() == t))
            .unwrap_or_else(|| panic!("no step on {t}"))
    };
    assert!(pos("/work") < pos("/work/nested"));
    assert!(pos("/work/nested") < pos("/work/nested/deeper"));
}

// ---- Plan::check refuses broken plans ------------------------------------

fn base() -> Plan {
    let p = example("web.toml");
    p.check().expect("the example's plan is valid");
    p
}

fn index(plan: &Plan, pred: impl Fn(&Op) -> bool) -> usize {
    plan.steps
        .iter()
        .position(|s| pred(&s.op))
        .expect("the step exists")
}

fn refused(plan: &Plan, expect: &str) {
    match plan.check() {
        Ok(()) => panic!("a broken plan passed Plan::check (expected: {expect})"),
        Err(e) => assert!(
            e.to_string().contains(expect),
            "expected an error containing {expect:?}, got: {e}"
        ),
    }
    // A saved plan that breaks an invariant is refused too.
    let err = Plan::from_json(&plan.to_json()).expect_err("from_json checks the plan");
    assert!(
        err.contains("inconsistent") || err.contains("format"),
        "{err}"
    );
}

#[test]
fn check_refuses_exec_before_the_end() {
    let mut p = base();
    let exec = p.steps.pop().unwrap();
    let at = p.steps.len() - 1;
    p.steps.insert(at, exec);
    refused(&p, "ExecInit");
}

#[test]
fn check_refuses_a_second_exec() {
    let mut p = base();
    let exec = p.steps.last().unwrap().clone();
    p.steps.push(exec);
    refused(&p, "ExecInit must be the last step");
}

#[test]
fn check_refuses_a_container_step_before_the_clone() {
    let mut p = base();
    let clone = index(&p, |op| matches!(op, Op::CloneChild { .. }));
    let host = index(&p, |op| matches!(op, Op::SetHostname { .. }));
    let step = p.steps.remove(host);
    p.steps.insert(clone, step);
    refused(&p, "before it exists");
}

#[test]
fn check_refuses_host_preparation_after_the_clone() {
    let mut p = base();
    let check = index(&p, |op| matches!(op, Op::CheckInit { .. }));
    let step = p.steps.remove(check);
    let clone = index(&p, |op| matches!(op, Op::CloneChild { .. }));
    p.steps.insert(
        clone + 1,
        Step {
            phase: Phase::Namespaces,
            ..step
        },
    );
    refused(&p, "must come before the container is created");
}

#[test]
fn check_refuses_a_nic_before_the_clone() {
    let mut p = base();
    let nic = index(&p, |op| matches!(op, Op::CreateNic { .. }));
    let step = p.steps.remove(nic);
    p.steps.insert(
        0,
        Step {
            phase: Phase::Checks,
            ..step
        },
    );
    refused(&p, "needs the container's process");
}

#[test]
fn check_refuses_a_mount_over_a_parent_after_a_child() {
    // /dev's tmpfs after /dev/pts: it would hide devpts.
    let mut p = base();
    let dev = index(
        &p,
        |op| matches!(op, Op::MountTmpfs { target, .. } if target.as_str() == "/dev"),
    );
    let step = p.steps.remove(dev);
    let pts = index(&p, |op| matches!(op, Op::MountDevpts { .. }));
    p.steps.insert(pts + 1, step);
    refused(&p, "would hide");

    // A bind of a parent directory after a bind below it.
    let mut p = base();
    let www = index(
        &p,
        |op| matches!(op, Op::BindMount { target, .. } if target.as_str() == "/var/www"),
    );
    let mut parent = p.steps[www].clone();
    if let Op::BindMount { target, .. } = &mut parent.op {
        *target = ContainerPath::new("/var").unwrap();
    }
    p.steps.insert(www + 1, parent);
    refused(&p, "would hide");
}

#[test]
fn check_allows_a_mount_on_a_parent_before_its_children() {
    let mut p = base();
    let www = index(
        &p,
        |op| matches!(op, Op::BindMount { target, .. } if target.as_str() == "/var/www"),
    );
    let mut parent = p.steps[www].clone();
    if let Op::BindMount { target, .. } = &mut parent.op {
        *target = ContainerPath::new("/var").unwrap();
    }
    let first_mount = index(&p, |op| matches!(op, Op::BindMount { .. }));
    p.steps.insert(first_mount, parent);
    p.check()
        .expect("a parent mounted before its children is fine");
}

#[test]
fn check_refuses_a_read_only_remount_of_nothing() {
    let mut p = base();
    let pivot = index(&p, |op| matches!(op, Op::PivotRoot));
    p.steps.insert(
        pivot,
        Step {
            phase: Phase::ReadOnly,
            side: Side::Container,
            origin: p.steps[pivot].origin.clone(),
            op: Op::RemountReadOnly {
                target: ContainerPath::new("/opt").unwrap(),
                recursive: true,
            },
        },
    );
    refused(&p, "which no step mounted");
}

#[test]
fn check_refuses_the_wrong_side() {
    let mut p = base();
    let i = index(&p, |op| matches!(op, Op::BindRootfs { .. }));
    p.steps[i].side = Side::Host;
    refused(&p, "must run on the");

    let mut p = base();
    let i = index(&p, |op| matches!(op, Op::CreateCgroup { .. }));
    p.steps[i].side = Side::Container;
    refused(&p, "must run on the");
}

#[test]
fn check_refuses_phases_out_of_order() {
    let mut p = base();
    let i = index(&p, |op| matches!(op, Op::BringUpLoopback));
    p.steps[i].phase = Phase::Dev;
    refused(&p, "after phase");
}

#[test]
fn check_refuses_a_plan_without_pivot_or_exec() {
    let mut p = base();
    p.steps.retain(|s| !matches!(s.op, Op::PivotRoot));
    refused(&p, "no PivotRoot");

    let mut p = base();
    p.steps.pop();
    refused(&p, "LoadSyscallFilter must come just before ExecInit");
    p.steps.pop();
    refused(&p, "does not end with ExecInit");

    // The filter is the last thing before the exec.
    let mut p = base();
    let f = index(&p, |op| matches!(op, Op::LoadSyscallFilter { .. }));
    let filter = p.steps.remove(f);
    p.steps.insert(f - 1, filter);
    refused(&p, "LoadSyscallFilter must come just before ExecInit");
}

#[test]
fn check_refuses_a_bad_name_or_an_empty_exec() {
    let mut p = base();
    p.name = "not a hostname".into();
    refused(&p, "not a valid container name");

    let mut p = base();
    if let Some(Step {
        op: Op::ExecInit { command, .. },
        ..
    }) = p.steps.last_mut()
    {
        command.clear();
    }
    refused(&p, "no command");
}

#[test]
fn from_json_refuses_other_formats_and_unknown_fields() {
    let json = base().to_json();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["format"] = 99.into();
    let err = Plan::from_json(&v.to_string()).unwrap_err();
    assert!(err.contains("plan format 99 is not supported"), "{err}");
    assert!(err.contains(&format!("format {PLAN_FORMAT}")), "{err}");

    let mut p = base();
    p.format = 99;
    refused(&p, "format 99");

    v["format"] = PLAN_FORMAT.into();
    v.as_object_mut().unwrap().remove("format");
    assert!(
        Plan::from_json(&v.to_string())
            .unwrap_err()
            .contains("no `format`")
    );

    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["steps"][1]["surprise"] = true.into();
    assert!(
        Plan::from_json(&v.to_string()).is_err(),
        "unknown step fields"
    );
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["steps"][0]["op"] = "FormatDisk".into();
    assert!(Plan::from_json(&v.to_string()).is_err(), "unknown ops");
    assert!(Plan::from_json("not json").is_err());
}

/// A file two stacked files both stack (a diamond) is one layer, where it comes first:
/// what the first of them overrides in it stays overridden.
#[test]
fn a_file_stacked_twice_is_one_layer_where_it_comes_first() {
    let dir = std::env::temp_dir().join(format!("envc-plans-diamond-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: &str| std::fs::write(dir.join(name), body).unwrap();
    write("common.toml", "[init]\nstop-timeout = 5\n");
    write(
        "a.toml",
        "profiles = [\"common.toml\"]\n[init]\nstop-timeout = 7\n",
    );
    write("b.toml", "profiles = [\"common.toml\"]\n");
    write(
        "top.toml",
        "name = \"diamond\"\nrootfs = \"rootfs\"\nprofiles = [\"a.toml\", \"b.toml\"]\n",
    );
    let loaded = envc::profile::load(&dir.join("top.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let (profile, _) = loaded.unwrap_or_else(|p| panic!("{}", render(&p, Style::plain())));
    assert_eq!(
        profile.init.stop_timeout.value, 7,
        "b's common.toml undid a.toml"
    );
    assert!(
        format!("{:?}", profile.init.stop_timeout.origin).contains("a.toml"),
        "{:?}",
        profile.init.stop_timeout.origin
    );
    assert_eq!(
        envc::compile::compile(&profile).supervise.stop_timeout_secs,
        7
    );
}

/// A profile with thousands of devices of every kind (a quarter MiB and more).
fn big_profile(devices: usize, extra: &str) -> String {
    let mut text = String::from(
        "name = \"big\"\nrootfs = \"rootfs\"\nprofiles = [\"small.toml\"]\n\n[config]\n",
    );
    for i in 0..devices {
        text.push_str(&format!("\"user.key{i}\" = \"value {i}\"\n"));
    }
    for i in 0..devices {
        text.push_str(&match i % 4 {
            0 => format!(
                "\n[devices.d{i}]\ntype = \"disk\"\nsource = \"/srv/data/{i}\"\npath = \"/mnt/g{}/d{i}\"\nreadonly = {}\n",
                i % 7,
                i % 2 == 0
            ),
            1 => format!(
                "\n[devices.c{i}]\ntype = \"unix-char\"\npath = \"/dev/c{i}\"\nmajor = 10\nminor = {}\nmode = \"0660\"\n",
                i % 250
            ),
            2 => format!("\n[devices.t{i}]\ntype = \"tmpfs\"\npath = \"/run/t{i}\"\n"),
            _ => format!("\n[devices.s{i}]\ntype = \"symlink\"\npath = \"/opt/s{i}\"\ntarget = \"/srv/{i}\"\n"),
        });
    }
    text.push_str(extra);
    text
}

#[test]
fn a_big_profile_plans_and_checks_as_the_library_does() {
    let dir = std::env::temp_dir().join(format!("envc-plans-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("small.toml"),
        "[init]\ncommand = [\"/sbin/init\"]\n",
    )
    .unwrap();
    let text = big_profile(3000, "");
    assert!(text.len() >= 256 << 10, "{} bytes", text.len());
    let good = dir.join("big.toml");
    std::fs::write(&good, &text).unwrap();
    let plan = compile(&good);
    assert!(plan.steps.len() > 3000, "{}", plan.steps.len());
    for (format, expected) in [("json", plan.to_json()), ("text", plan.to_text())] {
        let out = Command::new(env!("CARGO_BIN_EXE_envc"))
            .args(["plan", "--format", format])
            .arg(&good)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8(out.stdout).unwrap() == expected,
            "`envc plan --format {format}` differs"
        );
    }
    // A structural problem and a semantic one far down the file: both
    // reported where they are.
    let bad_text = big_profile(
        3000,
        "\n[devices.late]\ntype = \"disk\"\nsource = \"relative/x\"\npath = 7\n\n[devices.later]\ntype = \"disk\"\nsource = \"relative/y\"\npath = \"/srv/y\"\n",
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, &bad_text).unwrap();
    let at = |needle: &str| {
        let offset = bad_text.rfind(needle).unwrap();
        let line = bad_text[..offset].matches('\n').count() + 1;
        let col = offset - bad_text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("bad.toml:{line}:{col}")
    };
    let out = Command::new(env!("CARGO_BIN_EXE_envc"))
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`devices.late.path` must be a string"),
        "{stderr}"
    );
    for place in ["7\n\n[devices.later]", "\"relative/x\"", "\"relative/y\""] {
        assert!(stderr.contains(&at(place)), "{place}: {stderr}");
    }
    assert!(stderr.contains("3 problems found"), "{stderr}");
}
