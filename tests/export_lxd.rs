//! `envc export --to lxd` and `envc import`: golden files of the export and
//! the import of every example, the round trip (export, import, compile:
//! the same plan as the profile less what LXD cannot say), and bad input.

mod common;

use common::TempDir;
use envc::export::NotCarried;
use envc::export::import::{ImportOptions, from_lxd};
use envc::export::lxd::to_lxd;
use envc::plan::Plan;
use envc::profile::Origin;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The top-level profiles: the examples and the valid fixtures.
fn profiles() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (prefix, dir) in [("example", "examples"), ("fixture", "tests/fixtures/valid")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((format!("{prefix}-{stem}"), f));
        }
    }
    assert!(out.len() >= 3, "{out:?}");
    out
}

fn export(path: &Path) -> (String, Vec<NotCarried>) {
    let (p, sources) = envc::profile::load(path).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
    let e = to_lxd(&p, &sources);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (e.yaml(&name), e.not_carried)
}

fn compile(path: &Path) -> Plan {
    let (p, _) = envc::profile::load(path).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
    let plan = envc::compile::compile(&p);
    plan.check().unwrap();
    plan
}

/// A plan without where its keys came from (an import is one file; the
/// original may be several).
fn without_origins(mut plan: Plan) -> Plan {
    let none = Origin::new("", "");
    plan.layers.clear();
    plan.supervise.origin = none.clone();
    for s in &mut plan.steps {
        s.origin = none.clone();
    }
    plan
}

#[test]
fn golden_exports_and_imports() {
    for (snap, path) in profiles() {
        let (yaml, skipped) = export(&path);
        let listed: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(
            format!("{snap}-lxd"),
            format!("{yaml}\n--- not exported\n{}\n", listed.join("\n"))
        );
        let imported = from_lxd(
            &yaml,
            &ImportOptions {
                name: None,
                rootfs: "rootfs",
                schema: "envc-profile.schema.json",
                from: &format!("{snap}.yaml"),
            },
        )
        .unwrap();
        let listed: Vec<String> = imported
            .not_imported
            .iter()
            .map(ToString::to_string)
            .collect();
        insta::assert_snapshot!(
            format!("{snap}-import"),
            format!(
                "{}\n--- not imported\n{}\n",
                imported.toml,
                listed.join("\n")
            )
        );
    }
}

/// Splits a dotted key path (`devices.lan."ipv4.gateway"`) into its keys.
fn key_path(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Copies `src` (a directory tree of profiles) to `dst`.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_tree(&e.path(), &to);
        } else if t.is_file() {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Removes each not-carried key from the file that set it (in the copy
/// under `dir`): the profile as LXD will run it.
fn remove_keys(dir: &Path, skipped: &[NotCarried]) {
    for s in skipped {
        let file = dir.join(&s.origin.file);
        let text = std::fs::read_to_string(&file).unwrap();
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        let path = key_path(&s.origin.key);
        let (last, parents) = path.split_last().unwrap();
        let mut t = &mut doc;
        for k in parents {
            t = t
                .get_mut(k)
                .and_then(|v| v.as_table_mut())
                .unwrap_or_else(|| panic!("{}: no table {k} for {}", file.display(), s.origin.key));
        }
        assert!(
            t.remove(last).is_some(),
            "{}: no key {}",
            file.display(),
            s.origin.key
        );
        std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
    }
}

/// Export, import, compile: the plan of the profile less what LXD cannot
/// say, key for key and step for step.
#[test]
fn round_trip_compiles_to_the_same_plan() {
    for (snap, path) in profiles() {
        let tmp = TempDir::new("ex-roundtrip");
        let src_dir = path.parent().unwrap();
        copy_tree(src_dir, tmp.path());
        let top = tmp.path().join(path.file_name().unwrap());
        let (yaml, skipped) = export(&top);
        remove_keys(tmp.path(), &skipped);
        let expected = compile(&top);
        let imported = from_lxd(
            &yaml,
            &ImportOptions {
                name: None,
                rootfs: &expected.rootfs,
                schema: "envc-profile.schema.json",
                from: "exported.yaml",
            },
        )
        .unwrap();
        let out = tmp.path().join("imported.toml");
        std::fs::write(&out, &imported.toml).unwrap();
        let got = compile(&out);
        assert!(
            imported.not_imported.is_empty(),
            "{snap}: an export imports whole: {:?}",
            imported.not_imported
        );
        assert_eq!(
            without_origins(got).to_text(),
            without_origins(expected).to_text(),
            "{snap}: the round trip changed the plan"
        );
    }
}

fn import_text(yaml: &str) -> Result<envc::export::import::Imported, String> {
    from_lxd(
        yaml,
        &ImportOptions {
            name: None,
            rootfs: "rootfs",
            schema: "envc-profile.schema.json",
            from: "bad.yaml",
        },
    )
}

/// Unknown keys and device types envc lacks are listed, not dropped
/// silently; the rest is imported.
#[test]
fn import_lists_what_it_leaves_out() {
    let yaml = r#"
name: mixed
description: from LXD
config:
  limits.memory: 1GiB
  security.nesting: "true"
  volatile.uuid: 1234
  security.privileged: "no"
devices:
  gpu0: {type: gpu}
  cam: {type: usb, vendorid: "046d"}
  web: {type: proxy, listen: "tcp:0.0.0.0:80", connect: "tcp:127.0.0.1:80"}
  root: {type: disk, path: /, pool: default}
  eth0: {type: nic, network: lxdbr0, name: eth0}
  data: {type: disk, path: /data, source: /srv/data, propagation: rshared}
used_by: []
"#;
    let i = import_text(yaml).unwrap();
    let listed: Vec<String> = i.not_imported.iter().map(|n| n.key.clone()).collect();
    assert_eq!(
        listed,
        [
            "used_by",
            "config.security.nesting",
            "config.volatile.uuid",
            "devices.gpu0",
            "devices.cam",
            "devices.web",
            "devices.root",
            "devices.eth0",
            "devices.data.propagation",
        ]
    );
    assert!(
        i.toml.starts_with("#:schema envc-profile.schema.json\n"),
        "{}",
        i.toml
    );
    assert!(
        i.toml.contains("\"security.privileged\" = false"),
        "{}",
        i.toml
    );
    assert!(i.toml.contains("[devices.data]"), "{}", i.toml);
    assert!(!i.toml.contains("gpu"), "{}", i.toml);
}

/// Wrong types are errors that name the key.
#[test]
fn import_refuses_wrong_types() {
    for (yaml, says) in [
        ("name: x\nconfig: [a, b]\n", "`config` must be a mapping"),
        (
            "name: x\nconfig:\n  limits.memory: {a: 1}\n",
            "`config.limits.memory` must be a string",
        ),
        (
            "name: x\nconfig:\n  security.privileged: maybe\n",
            "`config.security.privileged` must be true or false",
        ),
        (
            "name: x\ndevices:\n  d: {type: disk, path: /d, source: /s, readonly: sometimes}\n",
            "`readonly` must be true or false",
        ),
        (
            "name: x\ndevices:\n  d: {type: unix-char, path: /dev/x, major: ten}\n",
            "`major` must be an integer",
        ),
        (
            "name: x\ndevices:\n  d: {path: /d}\n",
            "device `d` has no `type`",
        ),
        ("name: x\ndevices: 7\n", "`devices` must be a mapping"),
        ("- a\n- b\n", "an LXD profile is a mapping"),
        ("name: [x\n", "invalid YAML"),
        ("config: {}\n", "names no container"),
        (
            "name: x\nconfig:\n  boot.host_shutdown_timeout: soon\n",
            "a number of seconds",
        ),
    ] {
        let err = import_text(yaml)
            .err()
            .unwrap_or_else(|| panic!("{yaml}: accepted"));
        assert!(err.contains(says), "{yaml}: {err}");
    }
}

/// Unknown raw.lxc lines are listed; a mount entry envc's comment no
/// longer describes is read from the entry itself.
#[test]
fn import_reads_raw_lxc() {
    let yaml = r#"
name: raw
config:
  raw.lxc: |
    lxc.apparmor.profile = unconfined
    lxc.mount.auto = proc:mixed cgroup:rw
    # envc device {"name":"scratch","position":0,"keys":{"type":"tmpfs","path":"/scratch","size":"1MiB"}}
    lxc.mount.entry = tmpfs scratch tmpfs rw,size=2m 0 0
    lxc.mount.entry = /srv srv none bind,create=dir 0 0
    lxc.init.cmd = /sbin/init --log-level=debug
"#;
    let i = import_text(yaml).unwrap();
    let listed: Vec<String> = i.not_imported.iter().map(ToString::to_string).collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].contains("lxc.apparmor.profile"), "{listed:?}");
    assert!(listed[1].contains("cgroup:rw"), "{listed:?}");
    assert!(listed[2].contains("a none mount"), "{listed:?}");
    assert!(
        i.toml
            .contains("[devices.scratch]\ntype = \"tmpfs\"\npath = \"/scratch\"\nsize = 2097152"),
        "{}",
        i.toml
    );
    assert!(
        i.toml
            .contains("command = [\"/sbin/init\", \"--log-level=debug\"]"),
        "{}",
        i.toml
    );
    assert!(i.toml.contains("[proc]\nmode = \"mixed\""), "{}", i.toml);
}

fn envc(args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_envc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The commands: --strict writes nothing when a key cannot go; an import
/// that does not make a valid profile writes nothing; a good one is written whole.
#[test]
fn commands_write_only_on_success() {
    let tmp = TempDir::new("ex-cli");
    copy_tree(&root().join("examples"), tmp.path());
    let out = tmp.path().join("web.yaml");
    std::fs::write(&out, "old\n").unwrap();
    let r = envc(
        &[
            "export", "web.toml", "--to", "lxd", "-o", "web.yaml", "--strict",
        ],
        tmp.path(),
    );
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("not exported: web.toml:devices.fuse"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    let r = envc(
        &[
            "export",
            "stacked.toml",
            "--to",
            "lxd",
            "-o",
            "web.yaml",
            "--strict",
        ],
        tmp.path(),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("name: builder")
    );

    // The YAML is fine, the profile it makes is not (a device on /dev/console).
    std::fs::write(
        tmp.path().join("bad.yaml"),
        "name: bad\ndevices:\n  c: {type: unix-char, path: /dev/console, major: 5, minor: 1}\n",
    )
    .unwrap();
    let r = envc(&["import", "bad.yaml", "-o", "bad.toml"], tmp.path());
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("/dev/console"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!tmp.path().join("bad.toml").exists());
    let r = envc(
        &[
            "import",
            "web.yaml",
            "-o",
            "back.toml",
            "--rootfs",
            "rootfs",
        ],
        tmp.path(),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = envc(&["check", "back.toml"], tmp.path());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Real LXD output (captured by tests/lxd_real.rs from Debian's LXD 5.0.2):
/// the default profile and an instance's expanded config, imported.
#[test]
fn golden_imports_of_real_lxd_output() {
    for (file, name) in [
        ("profile-default.yaml", None),
        ("config-expanded.yaml", Some("ex-lxd")),
    ] {
        let yaml = std::fs::read_to_string(root().join("tests/fixtures/lxd").join(file)).unwrap();
        let i = from_lxd(
            &yaml,
            &ImportOptions {
                name,
                rootfs: "rootfs",
                schema: "envc-profile.schema.json",
                from: file,
            },
        )
        .unwrap();
        let listed: Vec<String> = i.not_imported.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(
            format!("lxd-{file}"),
            format!("{}\n--- not imported\n{}\n", i.toml, listed.join("\n"))
        );
        // What it writes is a valid profile.
        let tmp = TempDir::new("ex-import");
        let out = tmp.path().join("imported.toml");
        std::fs::write(&out, &i.toml).unwrap();
        compile(&out);
    }
}
