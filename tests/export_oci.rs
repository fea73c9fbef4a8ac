//! `envc export --to oci`: the bundle says what the plan says (as root-less
//! checks of config.json and envc-export.json), refuses what it must, and
//! — as root — the probe rootfs's bundle runs under Debian's runc and crun,
//! where the probe sees what it sees under `envc apply` of the same
//! profile but for the documented differences, each listed here with why.

mod common;

use common::{HostState, TempDir, busybox_rootfs};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(2);

fn envc(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(common::envc_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A profile with limits, environment, a disk, a tmpfs, a unix device, a NIC
/// and a symlink, over an (empty) rootfs.
fn world() -> (TempDir, PathBuf) {
    let tmp = TempDir::new("ex-oci");
    for d in ["rootfs/dev", "rootfs/proc", "rootfs/sys", "srv"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let srv = tmp.path().join("srv");
    let profile = tmp.path().join("app.toml");
    std::fs::write(
        &profile,
        format!(
            r#"name = "ex-app"
rootfs = "rootfs"
[config]
"limits.memory" = "256MiB"
"limits.cpu.allowance" = "25ms/100ms"
"limits.processes" = 100
"environment.MODE" = "test"
[init]
command = ["/bin/app", "--serve"]
[devices.data]
type = "disk"
source = "{}"
path = "/data"
readonly = true
[devices.scratch]
type = "tmpfs"
path = "/scratch"
size = "1MiB"
[devices.zero2]
type = "unix-char"
path = "/dev/zero2"
source = "/dev/zero"
[devices.eth0]
type = "nic"
nictype = "p2p"
[devices.link]
type = "symlink"
path = "/dev/link"
target = "/dev/null"
"#,
            srv.display()
        ),
    )
    .unwrap();
    (tmp, profile)
}

#[test]
fn the_bundle_says_what_the_plan_says() {
    let (tmp, _) = world();
    let r = envc(&["export", "app.toml", "--to", "oci", "bundle"], tmp.path());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let c = read_json(&tmp.path().join("bundle/config.json"));
    let rootfs = tmp.path().join("rootfs").canonicalize().unwrap();
    assert_eq!(c["root"]["path"], rootfs.to_str().unwrap());
    assert_eq!(c["hostname"], "ex-app");
    assert_eq!(
        c["process"]["args"],
        serde_json::json!(["/bin/app", "--serve"])
    );
    assert_eq!(
        c["process"]["env"],
        serde_json::json!(["container=lxc", "MODE=test"])
    );
    // Unprivileged: every capability in its own user namespace, and a map.
    assert_eq!(
        c["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        41
    );
    let ns: Vec<&str> = (c["linux"]["namespaces"].as_array().unwrap().iter())
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        ns,
        ["user", "mount", "pid", "uts", "ipc", "network", "cgroup"]
    );
    let root = envc::idmap::read_root_ids(Path::new("/etc")).unwrap();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], root.uid.start);
    let res = &c["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 256 << 20);
    assert_eq!(
        (res["cpu"]["quota"].as_i64(), res["cpu"]["period"].as_i64()),
        (Some(25000), Some(100000))
    );
    assert_eq!(res["pids"]["limit"], 100);
    assert_eq!(
        res["devices"][0],
        serde_json::json!({"allow": false, "access": "rwm"})
    );
    let mounts: Vec<(String, String, Vec<String>)> = (c["mounts"].as_array().unwrap().iter())
        .map(|m| {
            let o = m["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            (
                m["destination"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
                o,
            )
        })
        .collect();
    let find = |d: &str| {
        mounts
            .iter()
            .find(|m| m.0 == d)
            .unwrap_or_else(|| panic!("no {d} in {mounts:?}"))
    };
    assert_eq!(find("/dev").2, ["nosuid", "mode=755", "size=500000"]);
    assert!(find("/dev/pts").2.contains(&"ptmxmode=0666".to_string()));
    assert_eq!(find("/dev/mqueue").1, "mqueue");
    assert_eq!(find("/sys/fs/cgroup").1, "cgroup");
    assert_eq!(find("/data").2, ["bind", "ro"]);
    assert!(find("/scratch").2.contains(&"size=1048576".to_string()));
    let devices: Vec<&str> = (c["linux"]["devices"].as_array().unwrap().iter())
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for d in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/zero2",
    ] {
        assert!(devices.contains(&d), "{d} in {devices:?}");
    }
    // LXD's default filter, as the plan has it.
    let sc = &c["linux"]["seccomp"];
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ALLOW", "{sc:#}");
    assert_eq!(
        sc["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        "{sc:#}"
    );
    let rules = sc["syscalls"].as_array().unwrap();
    for name in [
        "kexec_load",
        "open_by_handle_at",
        "init_module",
        "finit_module",
        "delete_module",
    ] {
        let r = rules
            .iter()
            .find(|r| r["names"][0] == name)
            .unwrap_or_else(|| panic!("no {name}: {sc:#}"));
        assert_eq!(r["action"], "SCMP_ACT_ERRNO", "{r}");
        assert_eq!(r["errnoRet"], libc::ENOSYS, "{r}");
    }
    let umount = rules.iter().find(|r| r["names"][0] == "umount2").unwrap();
    assert_eq!(umount["args"][0]["op"], "SCMP_CMP_MASKED_EQ", "{umount}");
    assert_eq!(umount["args"][0]["value"], libc::MNT_FORCE, "{umount}");
    assert_eq!(umount["args"][0]["valueTwo"], libc::MNT_FORCE, "{umount}");
    let e = read_json(&tmp.path().join("bundle/envc-export.json"));
    let why: Vec<String> = (e["not_carried"].as_array().unwrap().iter())
        .map(|n| {
            n["why"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for op in [
        "MakeConsole",
        "MakeGuestApiSocket",
        "CreateNic",
        "MakeSymlink",
        "BindBootId",
        "MakeLogSocket",
    ] {
        assert!(why.iter().any(|w| w == op), "{op} not listed: {why:?}");
    }
}

#[test]
fn the_bundle_refuses_what_it_must() {
    let (tmp, profile) = world();
    // A directory that is not empty.
    std::fs::create_dir_all(tmp.path().join("full")).unwrap();
    std::fs::write(tmp.path().join("full/keep"), "mine").unwrap();
    let r = envc(&["export", "app.toml", "--to", "oci", "full"], tmp.path());
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("not empty"));
    assert!(!tmp.path().join("full/config.json").exists());
    let r = envc(
        &["export", "app.toml", "--to", "oci", "full", "--force"],
        tmp.path(),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("full/keep")).unwrap(),
        "mine"
    );
    // --strict: the NIC and the console cannot go; nothing is made.
    let r = envc(
        &["export", "app.toml", "--to", "oci", "strict", "--strict"],
        tmp.path(),
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(!tmp.path().join("strict").exists());
    // A missing rootfs.
    std::fs::rename(tmp.path().join("rootfs"), tmp.path().join("gone")).unwrap();
    let r = envc(
        &["export", "app.toml", "--to", "oci", "norootfs"],
        tmp.path(),
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("rootfs"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!tmp.path().join("norootfs").exists());
    // --to oci needs a directory; --to lxd takes none.
    let r = envc(
        &["export", profile.to_str().unwrap(), "--to", "oci"],
        tmp.path(),
    );
    assert_eq!(r.status.code(), Some(2));
    let r = envc(
        &["export", "app.toml", "--to", "lxd", "somedir"],
        tmp.path(),
    );
    assert_eq!(r.status.code(), Some(2));
}

/// What the probe saw, reduced to what can be compared across runtimes.
#[derive(Debug)]
struct Seen {
    ids: String,
    hostname: String,
    cwd: String,
    env: BTreeSet<String>,
    caps: String,
    namespaces: BTreeSet<String>,
    /// (mount point, filesystem type)
    mounts: BTreeSet<(String, String)>,
    dev: BTreeSet<String>,
    writable: BTreeSet<String>,
}

fn seen(v: &Value) -> Seen {
    let s = |k: &str| v[k].to_string();
    let caps = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .map(|c| format!("{c}={}", v["status"][c]))
        .collect::<Vec<_>>()
        .join(" ");
    let mounts = (v["mountinfo"].as_array().unwrap().iter())
        .filter_map(|l| {
            let l = l.as_str()?;
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f[4].to_string(), f[dash + 1].to_string()))
        })
        .collect();
    let mut dev = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        if let Some(a) = v.as_array() {
            for e in a {
                if let Some(p) = e["path"].as_str() {
                    out.insert(format!("{p} {}", e["type"].as_str().unwrap_or("")));
                }
                walk(&e["children"], out);
            }
        }
    }
    walk(&v["dev"], &mut dev);
    let writable = (v["write_probes"].as_object().unwrap().iter())
        .map(|(k, w)| format!("{k}={w}"))
        .collect();
    Seen {
        ids: format!("{} {} {} {}", s("uid"), s("euid"), s("gid"), s("egid")),
        hostname: s("hostname"),
        cwd: s("cwd"),
        env: (v["env"].as_array().unwrap().iter())
            .map(|e| e.as_str().unwrap().to_string())
            .collect(),
        caps,
        namespaces: v["ns"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        mounts,
        dev,
        writable,
    }
}

/// `a`'s items not in `b`, and `b`'s not in `a`.
fn differ<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        a.difference(b).cloned().collect(),
        b.difference(a).cloned().collect(),
    )
}

/// The probe under a runtime: `runtime --root STATE run --bundle BUNDLE ID`,
/// for crun in a private mount namespace without the host's cgroup2 mount
/// (crun 1.8 refuses this hybrid layout; the host's mounts are untouched).
fn run_runtime(runtime: &str, state: &Path, bundle: &Path, id: &str) -> std::process::Output {
    let mut cmd = if runtime == "crun" {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount -l /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"")
            .arg("sh")
            .arg("crun");
        c
    } else {
        Command::new(runtime)
    };
    cmd.arg("--root")
        .arg(state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id);
    // Stdin a pipe, not /dev/null: runc and crun give the container's
    // stdio to its root, and crun would chown the host's /dev/null.
    let out = common::proc::Proc::spawn_feeding(cmd, b"").wait(TIMEOUT);
    std::process::Output {
        status: out.status.expect("finished"),
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
    }
}

/// What differs between envc and an OCI runtime on this profile, and why
/// (each is also in docs/environment.md, "An OCI bundle").
const MOUNTS_ONLY_ENVC: &[(&str, &str, &str)] = &[
    (
        "/dev/console",
        "devpts",
        "envc's console, a pty it drains (OCI: the caller's stdio)",
    ),
    (
        "/proc/sys/kernel/random/boot_id",
        "tmpfs",
        "a boot id per start (OCI has no field)",
    ),
    (
        "/dev/ptmx",
        "devpts",
        "envc binds /dev/pts/ptmx there; the runtimes make a symlink to pts/ptmx",
    ),
    (
        "/sys/fs/cgroup/unified",
        "cgroup2",
        "on a hybrid host the runtimes mount the v1 hierarchies only (crun runs without the host's cgroup2 mount)",
    ),
    (
        "/proc/sys/net",
        "proc",
        "proc mode mixed: envc binds /proc/sys/net onto itself to keep it writable under the read-only /proc/sys; OCI's readonlyPaths cannot make a path below one writable again (in envc-export.json)",
    ),
    (
        "/sys/devices/virtual/net",
        "sysfs",
        "sys mode mixed: the same for /sys/devices/virtual/net under the read-only /sys (in envc-export.json)",
    ),
    (
        "/dev/fuse",
        "devtmpfs",
        "privileged: envc binds the host's node (the base profile's method = \"bind\"); a runtime makes the node from its numbers",
    ),
    ("/dev/net/tun", "devtmpfs", "privileged: as /dev/fuse"),
];
const DEV_ONLY_ENVC: &[(&str, &str)] = &[
    ("/dev/console", "envc's console (OCI: the caller's stdio)"),
    ("/dev/log", "the /dev/log socket envc serves (OCI: none)"),
    (
        "/dev/lxd",
        "the guest API's directory (OCI serves no socket)",
    ),
    ("/dev/lxd/sock", "the guest API (OCI serves no socket)"),
    (
        "/dev/pts/0",
        "the console's pty (OCI: no console without process.terminal)",
    ),
    (
        "/dev/ptmx",
        "envc binds /dev/pts/ptmx there (a node); the runtimes make a symlink",
    ),
];
const WRITABLE_DIFFERS: &[(&str, &str)] = &[
    (
        "/sys/fs/cgroup",
        "envc mounts the tmpfs holding the v1 hierarchies read-only (LXD's cgroup:mixed, with the container's own cgroup writable); the runtimes leave it writable",
    ),
    ("/proc/sys/net", "see the /proc/sys/net mount above"),
    (
        "/proc/sys/net/ipv4/ip_forward",
        "see the /proc/sys/net mount above",
    ),
    (
        "/sys/devices/virtual/net",
        "see the /sys/devices/virtual/net mount above",
    ),
];
const DEV_ONLY_RUNTIME: &[(&str, &str)] = &[
    (
        "/dev/ptmx symlink",
        "the runtimes' /dev/ptmx is a symlink to pts/ptmx, envc's a bind of it",
    ),
    (
        "/dev/core symlink",
        "crun adds /dev/core -> /proc/kcore (runc and LXD do not)",
    ),
];

#[test]
fn the_probe_sees_the_same_under_runc_and_crun() {
    if !common::require_root("the_probe_sees_the_same_under_runc_and_crun") {
        return;
    }
    compare_under_runtimes("ex-oci", "");
}

#[test]
fn a_privileged_probe_sees_the_same_under_runc_and_crun() {
    if !common::require_root("a_privileged_probe_sees_the_same_under_runc_and_crun") {
        return;
    }
    compare_under_runtimes("ex-ocip", "\"security.privileged\" = true\n");
}

/// Runs the probe profile `name` (with the `[config]` lines `config`)
/// under envc, runc and crun, and compares.
fn compare_under_runtimes(name: &str, config: &str) {
    let _serial = common::serial();
    for rt in ["runc", "crun"] {
        assert!(
            Command::new(rt)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "{rt} is not installed (apt-get install runc crun)"
        );
    }
    let tmp = TempDir::new("ex-ocirun");
    busybox_rootfs(tmp.path());
    let file = format!("{name}.toml");
    let profile = tmp.path().join(&file);
    std::fs::write(
        &profile,
        format!("name = \"{name}\"\nrootfs = \"rootfs\"\n[config]\n{config}\"environment.MODE\" = \"probe\"\n\"limits.processes\" = 64\n[init]\ncommand = [\"/sbin/probe\"]\n[devices.scratch]\ntype = \"tmpfs\"\npath = \"/scratch\"\nsize = \"1MiB\"\n"),
    )
    .unwrap();
    let before = HostState::capture();

    let mut apply = Command::new(common::envc_bin());
    apply
        .arg("apply")
        .arg(&profile)
        .env("ENVC_RUN_DIR", tmp.path().join("run"))
        .env("ENVC_LOG_DIR", tmp.path().join("log"))
        .stdin(std::process::Stdio::null());
    let out = common::proc::run_cmd(apply, TIMEOUT);
    assert!(out.status.success(), "{}", common::proc::show(&out));
    let envc_saw = seen(&common::extract_probe_json(&String::from_utf8_lossy(
        &out.stdout,
    )));

    let bundle = tmp.path().join("bundle");
    let r = envc(&["export", &file, "--to", "oci", "bundle"], tmp.path());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();

    let mut report = String::new();
    for rt in ["runc", "crun"] {
        let out = run_runtime(rt, &state, &bundle, &format!("{name}-{rt}"));
        assert!(out.status.success(), "{rt}: {}", common::proc::show(&out));
        let rt_saw = seen(&common::extract_probe_json(&String::from_utf8_lossy(
            &out.stdout,
        )));
        assert_eq!(rt_saw.ids, envc_saw.ids, "{rt}: ids");
        assert_eq!(rt_saw.hostname, envc_saw.hostname, "{rt}: hostname");
        assert_eq!(rt_saw.cwd, envc_saw.cwd, "{rt}: cwd");
        assert_eq!(rt_saw.caps, envc_saw.caps, "{rt}: capabilities");
        assert_eq!(rt_saw.namespaces, envc_saw.namespaces, "{rt}: namespaces");
        // The runtimes add HOME when the environment has none (the spec lets them).
        let (only_envc, only_rt) = differ(&envc_saw.env, &rt_saw.env);
        assert!(
            only_envc.is_empty(),
            "{rt}: env only under envc: {only_envc:?}"
        );
        assert!(
            only_rt.iter().all(|e| e == "HOME=/root"),
            "{rt}: env only under {rt}: {only_rt:?}"
        );
        // Mounts: the documented ones differ, nothing else.
        let (mut only_envc, mut only_rt) = differ(&envc_saw.mounts, &rt_saw.mounts);
        if rt == "crun" {
            // crun binds the device nodes it puts in /dev from a tmpfs of its
            // own; envc and runc bind the host's nodes (devtmpfs).
            let node = |p: &str| {
                p.starts_with("/dev/") && !p.starts_with("/dev/pts") && p != "/dev/mqueue"
            };
            let crun_nodes: BTreeSet<String> = (only_rt.iter())
                .filter(|(p, fs)| node(p) && fs == "tmpfs")
                .map(|(p, _)| p.clone())
                .collect();
            only_envc.retain(|(p, fs)| !(fs == "devtmpfs" && crun_nodes.contains(p)));
            let envc_nodes: BTreeSet<&String> = envc_saw
                .mounts
                .iter()
                .filter(|(_, fs)| fs == "devtmpfs")
                .map(|(p, _)| p)
                .collect();
            only_rt.retain(|(p, fs)| {
                !(fs == "tmpfs"
                    && node(p)
                    && (envc_nodes.contains(p)
                        || envc_saw.dev.iter().any(|d| d.split(' ').next() == Some(p))))
            });
        }
        let undocumented: Vec<_> = only_envc
            .iter()
            .filter(|(mp, fs)| !MOUNTS_ONLY_ENVC.iter().any(|(p, f, _)| p == mp && f == fs))
            .collect();
        report.push_str(&format!(
            "{rt}: mounts only under envc {only_envc:?}, only under {rt} {only_rt:?}\n"
        ));
        assert!(
            undocumented.is_empty(),
            "{rt}: mounts only under envc, undocumented: {undocumented:?}\n{report}"
        );
        assert!(
            only_rt.is_empty(),
            "{rt}: mounts only under {rt}: {only_rt:?}\n{report}"
        );
        let (only_envc, only_rt) = differ(&envc_saw.dev, &rt_saw.dev);
        report.push_str(&format!(
            "{rt}: /dev only under envc {only_envc:?}, only under {rt} {only_rt:?}\n"
        ));
        let undocumented: Vec<_> = only_envc
            .iter()
            .filter(|e| {
                !DEV_ONLY_ENVC
                    .iter()
                    .any(|(p, _)| e.split(' ').next() == Some(p))
            })
            .collect();
        assert!(
            undocumented.is_empty(),
            "{rt}: /dev only under envc, undocumented: {undocumented:?}\n{report}"
        );
        let undocumented: Vec<_> = (only_rt.iter())
            .filter(|e| !DEV_ONLY_RUNTIME.iter().any(|(d, _)| d == e))
            .collect();
        assert!(
            undocumented.is_empty(),
            "{rt}: /dev only under {rt}: {undocumented:?}\n{report}"
        );
        let (only_envc, only_rt) = differ(&envc_saw.writable, &rt_saw.writable);
        report.push_str(&format!(
            "{rt}: write probes only under envc {only_envc:?}, only under {rt} {only_rt:?}\n"
        ));
        let undocumented: Vec<_> = (only_rt.iter())
            .filter(|w| {
                !WRITABLE_DIFFERS
                    .iter()
                    .any(|(p, _)| w.starts_with(&format!("{p}=")))
            })
            .collect();
        assert!(
            undocumented.is_empty(),
            "{rt}: write probes differ: {undocumented:?}\n{report}"
        );
    }
    eprintln!("{report}");
    before.assert_restored_within(SETTLE);
}

/// A privileged profile: no user namespace and no map, LXD's capability
/// drop list applied, `proc` and `sys` mixed.
#[test]
fn a_privileged_bundle_drops_lxds_capabilities() {
    let (tmp, _) = world();
    std::fs::write(
        tmp.path().join("priv.toml"),
        "name = \"ex-priv\"\nrootfs = \"rootfs\"\n[config]\n\"security.privileged\" = true\n",
    )
    .unwrap();
    let r = envc(&["export", "priv.toml", "--to", "oci", "b"], tmp.path());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let c = read_json(&tmp.path().join("b/config.json"));
    let ns: Vec<&str> = (c["linux"]["namespaces"].as_array().unwrap().iter())
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(!ns.contains(&"user"), "{ns:?}");
    assert!(c["linux"].get("uidMappings").is_none());
    let caps: Vec<&str> = (c["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter())
    .map(|c| c.as_str().unwrap())
    .collect();
    // Every capability of this host's bounding set (the kernel's, as far as
    // cap_last_cap goes) but LXD's five.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let bnd = u64::from_str_radix(bnd["CapBnd:".len()..].trim(), 16).unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dropped_bits: u64 = [25, 16, 17, 33, 32].iter().map(|b| 1u64 << b).sum();
    let want = (bnd & !dropped_bits & ((1u64 << (last.min(40) + 1)) - 1)).count_ones();
    assert_eq!(caps.len() as u32, want, "{caps:?}");
    for dropped in [
        "CAP_SYS_TIME",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_MAC_ADMIN",
        "CAP_MAC_OVERRIDE",
    ] {
        assert!(!caps.contains(&dropped), "{dropped} kept");
    }
    assert_eq!(
        c["linux"]["readonlyPaths"],
        serde_json::json!(["/proc/sys", "/proc/sysrq-trigger"])
    );
    let sys = (c["mounts"].as_array().unwrap().iter())
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(
        sys["options"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("ro")),
        "{sys}"
    );
}
