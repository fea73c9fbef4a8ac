//! The exported LXD profile on a real LXD (Debian's lxd 5.0.2), as root:
//! an LXD daemon of the test's own (its state, logs and storage pool under
//! the test's directory through LXD_DIR), one `dir` pool and no network,
//! an image made from the probe rootfs without any download, the profile
//! made with `lxc profile create` + `lxc profile edit < exported.yaml`, a
//! container launched with it. What the probe sees there is compared with
//! what it sees under `envc apply` of the same profile: each difference is
//! one listed here (and in docs/environment.md) with why. Then the daemon
//! is stopped, everything LXD made is deleted (containers, image, state,
//! the empty cgroups liblxc leaves), /etc/subuid and /etc/subgid are put
//! back byte for byte with their times, and the host is shown to be as it
//! was. The real `lxc profile show default` and `lxc config show
//! --expanded` outputs are the committed fixtures under
//! tests/fixtures/lxd/ (`ENVC_UPDATE_LXD_FIXTURES=1` rewrites them; their
//! golden imports are in tests/export_lxd.rs).

mod common;

use common::{HostState, TempDir, busybox_rootfs};
use envc::export::import::{ImportOptions, from_lxd};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(3);
/// The range root gets in /etc/subuid and /etc/subgid for the test when
/// the host has none (put back afterwards).
const ROOT_RANGE: &str = "root:100000:65536\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lxd")
}

/// A file as it was: bytes, mode and times, to be put back exactly.
struct Saved {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
    mode: u32,
    atime: (i64, i64),
    mtime: (i64, i64),
}

impl Saved {
    fn take(path: &str) -> Saved {
        let path = PathBuf::from(path);
        match std::fs::metadata(&path) {
            Ok(m) => Saved {
                bytes: Some(std::fs::read(&path).unwrap()),
                mode: m.mode() & 0o7777,
                atime: (m.atime(), m.atime_nsec()),
                mtime: (m.mtime(), m.mtime_nsec()),
                path,
            },
            Err(_) => Saved {
                path,
                bytes: None,
                mode: 0o644,
                atime: (0, 0),
                mtime: (0, 0),
            },
        }
    }

    fn restore(&self) {
        use std::os::unix::fs::PermissionsExt;
        match &self.bytes {
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
            Some(b) => {
                std::fs::write(&self.path, b).unwrap();
                std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode))
                    .unwrap();
                let t = |(s, ns): (i64, i64)| nix::sys::time::TimeSpec::new(s, ns);
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &self.path,
                    &t(self.atime),
                    &t(self.mtime),
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .unwrap();
            }
        }
    }

    fn same_as_now(&self) -> bool {
        let now = Saved::take(self.path.to_str().unwrap());
        now.bytes == self.bytes && now.mode == self.mode && now.mtime == self.mtime
    }
}

/// The cgroups liblxc names `lxc*` at the top of each hierarchy.
fn lxc_cgroups() -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if let Ok(top) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in top.flatten() {
            if let Ok(inner) = std::fs::read_dir(h.path()) {
                for c in inner.flatten() {
                    if c.file_name().to_string_lossy().starts_with("lxc") && c.path().is_dir() {
                        out.insert(c.path());
                    }
                }
            }
        }
    }
    out
}

/// Names and sizes under the package's own LXD directories: a daemon with
/// LXD_DIR set must not touch them.
fn package_dirs() -> Vec<String> {
    let mut out = Vec::new();
    for d in ["/var/lib/lxd", "/var/log/lxd", "/var/cache/lxd"] {
        match std::fs::read_dir(d) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| {
                        let m = e.metadata().ok();
                        format!(
                            "{d}/{} {:?}",
                            e.file_name().to_string_lossy(),
                            m.map(|m| (m.mode(), m.mtime()))
                        )
                    })
                    .collect();
                names.sort();
                out.extend(names);
            }
            Err(_) => out.push(format!("{d} absent")),
        }
    }
    out
}

/// The daemon and what it made; `Drop` takes it all down (also when the
/// test fails halfway).
struct Lxd {
    dir: PathBuf,
    conf: PathBuf,
    daemon: Option<Child>,
    cgroups_before: BTreeSet<PathBuf>,
    subuid: Saved,
    subgid: Saved,
}

impl Lxd {
    fn lxc(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("lxc");
        c.args(args)
            .env("LXD_DIR", &self.dir)
            .env("LXD_CONF", &self.conf);
        common::proc::run_cmd(c, TIMEOUT)
    }
    fn lxc_ok(&self, args: &[&str]) -> String {
        let o = self.lxc(args);
        assert!(
            o.status.success(),
            "lxc {args:?}: {}",
            common::proc::show(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// `sh -c SCRIPT` with the daemon's environment (for `< file`).
    fn sh_ok(&self, script: &str) -> String {
        let mut c = Command::new("sh");
        c.args(["-c", script])
            .env("LXD_DIR", &self.dir)
            .env("LXD_CONF", &self.conf);
        let o = common::proc::run_cmd(c, TIMEOUT);
        assert!(o.status.success(), "{script}: {}", common::proc::show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn start(base: &Path) -> Lxd {
        let dir = base.join("lxd");
        let conf = base.join("lxc-conf");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&conf).unwrap();
        let subuid = Saved::take("/etc/subuid");
        let subgid = Saved::take("/etc/subgid");
        let mut lxd = Lxd {
            dir,
            conf,
            daemon: None,
            cgroups_before: lxc_cgroups(),
            subuid,
            subgid,
        };
        // newuidmap maps only what /etc/subuid grants root.
        let root = envc::idmap::read_root_ids(Path::new("/etc")).unwrap();
        if root.source == envc::idmap::RootSource::Fallback {
            std::fs::write("/etc/subuid", ROOT_RANGE).unwrap();
            std::fs::write("/etc/subgid", ROOT_RANGE).unwrap();
        }
        let log = std::fs::File::create(base.join("lxd.out")).unwrap();
        let daemon = Command::new("lxd")
            .args(["--group", "lxd", "--logfile"])
            .arg(base.join("lxd.log"))
            .env("LXD_DIR", &lxd.dir)
            .env("LXD_CONF", &lxd.conf)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start lxd (apt-get install lxd)");
        lxd.daemon = Some(daemon);
        let mut c = Command::new("lxd");
        c.args(["waitready", "--timeout", "60"])
            .env("LXD_DIR", &lxd.dir);
        let o = common::proc::run_cmd(c, TIMEOUT);
        assert!(
            o.status.success(),
            "lxd waitready: {}\n{}",
            common::proc::show(&o),
            std::fs::read_to_string(base.join("lxd.out")).unwrap_or_default()
        );
        lxd
    }
}

impl Drop for Lxd {
    fn drop(&mut self) {
        for args in [
            &["delete", "--force", "ex-lxd"][..],
            &["delete", "--force", "ex-lxdp"][..],
            &["image", "delete", "ex-probe"][..],
            &["profile", "delete", "ex-lxd"][..],
            &["profile", "delete", "ex-lxdp"][..],
        ] {
            let _ = self.lxc(args);
        }
        if let Some(mut d) = self.daemon.take() {
            let mut c = Command::new("lxd");
            c.args(["shutdown", "--timeout", "30"])
                .env("LXD_DIR", &self.dir);
            let _ = common::proc::run_cmd(c, Duration::from_secs(60));
            let start = Instant::now();
            while d.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = d.kill();
                    let _ = d.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // liblxc leaves lxc.pivot (and, after a failure, lxc.payload.* /
        // lxc.monitor.*) in every hierarchy: remove the ones it made,
        // deepest first.
        let made: Vec<PathBuf> = lxc_cgroups()
            .difference(&self.cgroups_before)
            .cloned()
            .collect();
        for c in made {
            let mut all = Vec::new();
            collect_dirs(&c, &mut all);
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in all {
                let _ = std::fs::remove_dir(&d);
            }
        }
        self.subuid.restore();
        self.subgid.restore();
    }
}

fn collect_dirs(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Waits for a probe block in `file` (a console log).
fn probe_from(file: &Path) -> Value {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(common::PROBE_END) {
            return common::extract_probe_json(&text);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no probe output in {}:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the probe saw, in comparable parts.
#[derive(Debug)]
struct Seen {
    ids: String,
    hostname: String,
    caps: String,
    namespaces: BTreeSet<String>,
    env: BTreeSet<String>,
    mounts: BTreeSet<(String, String)>,
    dev: BTreeSet<String>,
    writable: BTreeSet<String>,
}

fn seen(v: &Value) -> Seen {
    let caps = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .map(|c| format!("{c}={}", v["status"][c]))
        .collect::<Vec<_>>()
        .join(" ");
    let mounts = (v["mountinfo"].as_array().unwrap().iter())
        .filter_map(|l| {
            let f: Vec<&str> = l.as_str()?.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f[4].to_string(), f[dash + 1].to_string()))
        })
        .collect();
    let mut dev = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        for e in v.as_array().into_iter().flatten() {
            if let Some(p) = e["path"].as_str() {
                out.insert(format!("{p} {}", e["type"].as_str().unwrap_or("")));
            }
            walk(&e["children"], out);
        }
    }
    walk(&v["dev"], &mut dev);
    Seen {
        ids: format!("{} {} {} {}", v["uid"], v["euid"], v["gid"], v["egid"]),
        hostname: v["hostname"].to_string(),
        caps,
        namespaces: v["ns"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        env: (v["env"].as_array().unwrap().iter())
            .map(|e| e.as_str().unwrap().to_string())
            .collect(),
        mounts,
        dev,
        writable: (v["write_probes"].as_object().unwrap().iter())
            .map(|(k, w)| format!("{k}={w}"))
            .collect(),
    }
}

/// Mounts envc makes that LXD does not, and why.
const MOUNTS_ONLY_ENVC: &[(&str, &str, &str)] = &[
    (
        "/sys/fs/cgroup",
        "tmpfs",
        "LXD mounts no cgroup filesystem: with a cgroup namespace liblxc leaves it to the container's init (systemd mounts it); envc mounts the host's layout",
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "LXD mounts /dev/mqueue only in a privileged container; envc in every one",
    ),
];
/// Mount points under these are the cgroup hierarchies envc mounts (see above).
const CGROUP_TREE: &str = "/sys/fs/cgroup/";
/// Mounts LXD makes that envc does not, and why.
const MOUNTS_ONLY_LXD: &[(&str, &str, &str)] = &[
    (
        "/dev/lxd",
        "tmpfs",
        "LXD serves the guest API from a tmpfs of its own mounted at /dev/lxd; envc makes the socket in the /dev tmpfs",
    ),
    (
        "/dev/.lxd-mounts",
        "tmpfs",
        "LXD's directory for hot-plugged mounts",
    ),
    (
        "/proc/sys/fs/binfmt_misc",
        "proc",
        "LXD binds the host's /proc/sys/fs/binfmt_misc even when nothing is mounted there (an empty proc directory); envc binds it only where a binfmt_misc is mounted",
    ),
    (
        "/sys/fs/fuse/connections",
        "sysfs",
        "as binfmt_misc: LXD binds the sysfs directory where the host has no fusectl mounted; envc only a mounted one",
    ),
    (
        "/sys/fs/pstore",
        "sysfs",
        "as binfmt_misc: the bare sysfs directory (no pstore mounted on the host)",
    ),
    (
        "/sys/kernel/debug",
        "sysfs",
        "as binfmt_misc: the bare sysfs directory (no debugfs mounted on the host)",
    ),
    (
        "/sys/kernel/security",
        "sysfs",
        "as binfmt_misc: the bare sysfs directory (no securityfs mounted on the host)",
    ),
    (
        "/sys/kernel/tracing",
        "sysfs",
        "as binfmt_misc: the bare sysfs directory (no tracefs mounted on the host)",
    ),
];
/// Write probes that differ, and why.
const WRITABLE_DIFFERS: &[(&str, &str)] = &[(
    "/sys/fs/cgroup",
    "envc's /sys/fs/cgroup is its read-only tmpfs of the hierarchies; LXD's is the bare sysfs directory (it mounts none)",
)];
/// /dev entries only one side has, and why.
const DEV_ONLY_ENVC: &[(&str, &str)] = &[
    (
        "/dev/log",
        "the /dev/log socket envc serves (LXD makes none)",
    ),
    ("/dev/mqueue", "see /dev/mqueue above"),
];
const DEV_ONLY_LXD: &[(&str, &str)] = &[
    ("/dev/.lxd-mounts", "LXD's hot-plug directory"),
    (
        "/dev/.lxc-boot-id",
        "liblxc keeps the per-start boot id in a file on /dev; envc keeps it out of sight",
    ),
];

fn allowed<'a>(
    what: &str,
    rt_only: impl Iterator<Item = &'a String>,
    list: &[(&str, &str)],
) -> Vec<String> {
    rt_only
        .filter(|e| !list.iter().any(|(p, _)| e.split(' ').next() == Some(p)))
        .map(|e| format!("{what}: {e}"))
        .collect()
}

#[test]
fn the_exported_profile_runs_on_a_real_lxd() {
    if !common::require_root("the_exported_profile_runs_on_a_real_lxd") {
        return;
    }
    let have = |b: &str| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("lxd") || !have("lxc") {
        if std::env::var("ENVC_REQUIRE_ROOT").as_deref() == Ok("1") {
            panic!("lxd is not installed (apt-get install lxd)");
        }
        eprintln!("SKIPPED: lxd is not installed");
        return;
    }
    let _serial = common::serial();
    let tmp = TempDir::new("ex-lxd");
    let rootfs = busybox_rootfs(tmp.path());
    std::fs::create_dir_all(tmp.path().join("share")).unwrap();
    // The same probe profile unprivileged (LXD's default) and privileged.
    let cases = [
        ("ex-lxd", ""),
        ("ex-lxdp", "\"security.privileged\" = true\n"),
    ];
    for (name, config) in cases {
        std::fs::write(
            tmp.path().join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\nrootfs = \"rootfs\"\n[config]\n{config}\"environment.MODE\" = \"probe\"\n\"limits.processes\" = 64\n[init]\ncommand = [\"/sbin/probe\", \"--sleep\"]\n[devices.scratch]\ntype = \"tmpfs\"\npath = \"/scratch\"\nsize = \"1MiB\"\n[devices.data]\ntype = \"disk\"\nsource = \"{}\"\npath = \"/data\"\nreadonly = true\n",
                tmp.path().join("share").display()
            ),
        )
        .unwrap();
    }
    let before = HostState::capture();
    let dirs_before = package_dirs();
    let cgroups_before = lxc_cgroups();
    let (subuid, subgid) = (Saved::take("/etc/subuid"), Saved::take("/etc/subgid"));
    let lxd = Lxd::start(tmp.path());

    // envc, with the same /etc/subuid LXD has; and each profile exported.
    let envc_env = |c: &mut Command| {
        c.env("ENVC_RUN_DIR", tmp.path().join("run"))
            .env("ENVC_LOG_DIR", tmp.path().join("log"));
    };
    let mut envc_saw = Vec::new();
    let mut envc_exec_saw = Vec::new();
    for (name, _) in cases {
        let profile = tmp.path().join(format!("{name}.toml"));
        let mut apply = Command::new(common::envc_bin());
        apply.args(["apply", "-d"]).arg(&profile);
        envc_env(&mut apply);
        let o = common::proc::run_cmd(apply, TIMEOUT);
        assert!(o.status.success(), "{}", common::proc::show(&o));
        envc_saw.push(probe_from(
            &tmp.path().join(format!("log/{name}/console.log")),
        ));
        // A process started inside, as `lxc exec` starts one below.
        let mut exec = Command::new(common::envc_bin());
        exec.args(["exec", name, "--", "/sbin/probe"]);
        envc_env(&mut exec);
        let o = common::proc::run_cmd(exec, TIMEOUT);
        assert!(o.status.success(), "{}", common::proc::show(&o));
        envc_exec_saw.push(common::extract_probe_json(&String::from_utf8_lossy(
            &o.stdout,
        )));
        let mut stop = Command::new(common::envc_bin());
        stop.args(["stop", name, "--force"]);
        envc_env(&mut stop);
        let o = common::proc::run_cmd(stop, TIMEOUT);
        assert!(o.status.success(), "{}", common::proc::show(&o));
        let o = Command::new(common::envc_bin())
            .args(["export", "--to", "lxd", "-o"])
            .arg(tmp.path().join(format!("{name}.yaml")))
            .arg(&profile)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::proc::show(&o));
    }

    // LXD: one dir pool, no network.
    std::fs::write(
        tmp.path().join("preseed.yaml"),
        "storage_pools:\n- name: default\n  driver: dir\nprofiles:\n- name: default\n  devices:\n    root: {path: /, pool: default, type: disk}\n",
    )
    .unwrap();
    lxd.sh_ok(&format!(
        "lxd init --preseed < {}",
        tmp.path().join("preseed.yaml").display()
    ));
    let default_profile = lxd.lxc_ok(&["profile", "show", "default"]);

    // An image of the probe rootfs: a metadata tarball and a rootfs tarball.
    std::fs::write(
        tmp.path().join("metadata.yaml"),
        "architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  description: envc probe\n",
    )
    .unwrap();
    let t = |p: &str| tmp.path().join(p).to_string_lossy().into_owned();
    common::proc::run_ok(
        &["tar", "-C", &t(""), "-cf", &t("meta.tar"), "metadata.yaml"],
        TIMEOUT,
    );
    common::proc::run_ok(
        &[
            "tar",
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            &t("rootfs.tar"),
            ".",
        ],
        TIMEOUT,
    );
    lxd.lxc_ok(&[
        "image",
        "import",
        &t("meta.tar"),
        &t("rootfs.tar"),
        "--alias",
        "ex-probe",
    ]);
    let mut lxd_saw = Vec::new();
    let mut lxd_exec_saw = Vec::new();
    let mut lxc_confs = Vec::new();
    for (name, _) in cases {
        lxd.lxc_ok(&["profile", "create", name]);
        lxd.sh_ok(&format!(
            "lxc profile edit {name} < {}",
            t(&format!("{name}.yaml"))
        ));
        lxd.lxc_ok(&["launch", "ex-probe", name, "-p", "default", "-p", name]);
        lxd_saw.push(probe_from(
            &lxd.dir.join(format!("logs/{name}/console.log")),
        ));
        let out = lxd.lxc_ok(&["exec", name, "--", "/sbin/probe"]);
        lxd_exec_saw.push(common::extract_probe_json(&out));
        lxc_confs.push(
            std::fs::read_to_string(lxd.dir.join(format!("logs/{name}/lxc.conf")))
                .unwrap_or_default(),
        );
    }
    let expanded = lxd.lxc_ok(&["config", "show", "--expanded", "ex-lxd"]);
    drop(lxd);

    // The host as it was.
    assert!(subuid.same_as_now(), "/etc/subuid is not as it was");
    assert!(subgid.same_as_now(), "/etc/subgid is not as it was");
    before.assert_restored_within(SETTLE);
    assert_eq!(
        package_dirs(),
        dirs_before,
        "the package's LXD directories changed"
    );
    assert_eq!(
        lxc_cgroups(),
        cgroups_before,
        "liblxc's cgroups are not as they were"
    );
    let daemons = common::proc::run_ok(&["ps", "-eo", "args"], TIMEOUT);
    let ours = tmp.path().to_string_lossy().into_owned();
    assert!(
        !daemons.lines().any(|l| l.contains(&ours)),
        "a process of the test's LXD is left:\n{daemons}"
    );

    // The fixtures: real output of this daemon.
    if std::env::var("ENVC_UPDATE_LXD_FIXTURES").as_deref() == Ok("1") {
        std::fs::write(fixtures().join("profile-default.yaml"), &default_profile).unwrap();
        // The disk's source is this run's directory: the fixture names a
        // path of no machine instead.
        let share = tmp.path().join("share").to_string_lossy().into_owned();
        std::fs::write(
            fixtures().join("config-expanded.yaml"),
            expanded.replace(&share, "/srv/share"),
        )
        .unwrap();
    }
    assert_eq!(
        default_profile,
        std::fs::read_to_string(fixtures().join("profile-default.yaml")).unwrap(),
        "lxc profile show default changed"
    );
    // The instance's config imports back: the profile's keys, and LXD's own listed.
    let back = from_lxd(
        &expanded,
        &ImportOptions {
            name: Some("ex-lxd"),
            rootfs: "rootfs",
            schema: "envc-profile.schema.json",
            from: "expanded.yaml",
        },
    )
    .unwrap();
    assert!(back.toml.contains("[devices.scratch]"), "{}", back.toml);
    assert!(
        back.toml
            .contains("command = [\"/sbin/probe\", \"--sleep\"]"),
        "{}",
        back.toml
    );

    // What a process started by `envc exec` and by `lxc exec` sees: the
    // same ids, working directory, capabilities, namespaces, environment
    // (LXD's exec environment), cgroups (`.lxc` in cgroup2), fds 0-2 only,
    // and a session of its own.
    for (i, (name, _)) in cases.iter().enumerate() {
        let (e, l) = (&envc_exec_saw[i], &lxd_exec_saw[i]);
        let (es, ls) = (seen(e), seen(l));
        assert_eq!(ls.ids, es.ids, "{name} exec: ids");
        assert_eq!(l["cwd"], e["cwd"], "{name} exec: working directory");
        assert_eq!(ls.caps, es.caps, "{name} exec: capabilities");
        assert_eq!(ls.namespaces, es.namespaces, "{name} exec: namespaces");
        assert_eq!(ls.env, es.env, "{name} exec: environment");
        let fds = |v: &Value| -> Vec<i64> {
            (v["fds"].as_array().unwrap().iter())
                .map(|f| f["fd"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(fds(l), fds(e), "{name} exec: fds");
        assert_eq!(e["sid"], e["pid"], "{name} exec: a session of its own");
        assert_eq!(l["cgroup"], e["cgroup"], "{name} exec: cgroups");
    }

    // What the probe saw, side by side.
    for (i, (name, _)) in cases.iter().enumerate() {
        let e = seen(&envc_saw[i]);
        let l = seen(&lxd_saw[i]);
        assert_eq!(l.ids, e.ids, "{name}: ids");
        assert_eq!(l.hostname, e.hostname, "{name}: hostname");
        assert_eq!(l.caps, e.caps, "{name}: capabilities");
        assert_eq!(l.namespaces, e.namespaces, "{name}: namespaces");
        eprintln!(
            "{name}: mounts only under envc {:?}; only under LXD {:?}",
            e.mounts.difference(&l.mounts).collect::<Vec<_>>(),
            l.mounts.difference(&e.mounts).collect::<Vec<_>>()
        );
        let mut problems = Vec::new();
        // LXD gives init a PATH; envc passes exactly the profile's environment.
        problems.extend(
            e.env
                .difference(&l.env)
                .map(|v| format!("env only under envc: {v}")),
        );
        problems.extend(
            l.env
                .difference(&e.env)
                .filter(|v| !v.starts_with("PATH="))
                .map(|v| format!("env only under LXD: {v}")),
        );
        for (mp, fs) in e.mounts.difference(&l.mounts) {
            let ok = MOUNTS_ONLY_ENVC.iter().any(|(p, f, _)| p == mp && f == fs)
                || mp.starts_with(CGROUP_TREE);
            if !ok {
                problems.push(format!("mount only under envc: {mp} {fs}"));
            }
        }
        for (mp, fs) in l.mounts.difference(&e.mounts) {
            let ok = MOUNTS_ONLY_LXD.iter().any(|(p, f, _)| p == mp && f == fs);
            if !ok {
                problems.push(format!("mount only under LXD: {mp} {fs}"));
            }
        }
        problems.extend(allowed(
            "/dev only under envc",
            e.dev.difference(&l.dev),
            DEV_ONLY_ENVC,
        ));
        problems.extend(allowed(
            "/dev only under LXD",
            l.dev.difference(&e.dev),
            DEV_ONLY_LXD,
        ));
        for w in l.writable.difference(&e.writable) {
            if !WRITABLE_DIFFERS
                .iter()
                .any(|(p, _)| w.starts_with(&format!("{p}=")))
            {
                problems.push(format!("write probe differs under LXD: {w}"));
            }
        }
        assert!(
            problems.is_empty(),
            "{name}: undocumented differences between envc and LXD:\n{}\n--- envc mounts {:?}\n--- LXD mounts {:?}\n--- envc dev {:?}\n--- LXD dev {:?}\n--- envc writes {:?}\n--- LXD writes {:?}\n--- lxc.conf\n{}",
            problems.join("\n"),
            e.mounts,
            l.mounts,
            e.dev,
            l.dev,
            e.writable,
            l.writable,
            lxc_confs[i]
        );
    }
}
